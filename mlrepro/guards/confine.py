"""Path rules shared by the manifest (here) and the lock (``mlrepro.project.paths``).

A path read from a manifest, a lock or a bundle is untrusted: it must be a plain relative
POSIX path and, with symlinks followed, stay inside its folder.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

from mlrepro.errors import ManifestError

STORE_DIR = ".mlrepro"
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")
_DRIVE = re.compile(r"^[A-Za-z]:")
MAX_PATH = 4096


def path_problem(path: Any) -> str | None:
    """Why ``path`` is not a plain relative POSIX path, or None."""
    if not isinstance(path, str) or not path:
        return "is not a non-empty string"
    if len(path) > MAX_PATH:
        return "is implausibly long"
    if _BAD_CHARS.search(path):
        return "holds a backslash or a control character"
    if path.startswith("/") or _DRIVE.match(path):
        return "is absolute"
    parts = PurePosixPath(path).parts
    if any(p in ("..", ".") for p in path.split("/")) or "" in path.split("/"):
        return "has '..', '.' or empty parts"
    if not parts:
        return "is empty"
    return None


def inside(root: Path, rel: str, within: str = "") -> bool:
    """Whether ``root/rel``, symlinks followed, stays inside ``root/within``."""
    base = Path(root).resolve()
    fence = (base / within).resolve() if within else base
    if within and not fence.is_relative_to(base):  # .mlrepro itself is a symlink out
        return False
    target = (base / rel).resolve()
    return target.is_relative_to(fence) and target != fence


def _plain(value: str) -> str:
    """A manifest path as written, without the leading ``./`` people like to write."""
    while value.startswith("./"):
        value = value[2:]
    return value


def manifest_output(root: Path, value: str, field: str) -> None:
    """Refuse (exit 2) a manifest-declared output path that would leave the project.

    The manifest of a project you did not write is untrusted like its lock, and ``verify``
    and ``run`` write there: so declared outputs are relative paths inside the project
    (outside ``.mlrepro/``). To write elsewhere, pass ``predict -o PATH`` on the command
    line: a path you type yourself is trusted.
    """
    value = _plain(value)
    why = path_problem(value)
    if why is None and value.split("/")[0] == STORE_DIR:
        why = "is inside .mlrepro/"
    if why is None and not inside(root, value):
        why = "leaves the project through a symlink"
    if why is not None:
        raise ManifestError(
            f"manifest field '{field}': path {value!r} {why}",
            hint="declared outputs must be relative paths inside the project; to write "
            "elsewhere pass 'mlrepro predict -o PATH' yourself",
        )


def manifest_input(root: Path, value: str, field: str) -> None:
    """Refuse (exit 2) a manifest-declared input file outside the project."""
    value = _plain(value)
    why = path_problem(value)
    if why is None and not inside(root, value):
        why = "leaves the project through a symlink"
    if why is not None:
        raise ManifestError(
            f"manifest field '{field}': path {value!r} {why}",
            hint="declared inputs must be relative paths inside the project; to read a file "
            "elsewhere pass 'mlrepro predict -i PATH' yourself",
        )
