"""Path confinement: every path read from a lock, a manifest or a bundle stays in its tree.

A lock, a manifest and a bundle may come from someone else (``mlrepro verify`` exists to
check a colleague's project), so a path they name is untrusted: an absolute path, a ``..``
escape or a symlink that leaves the project would let them make mlrepro read, link, delete
or overwrite a file anywhere on the machine. These checks run when the lock is read and
when the manifest is loaded, before anything touches the file system.

Rules (documented in README "Guarantees"):

- a lock record's ``path`` is a relative POSIX path without ``.``/``..`` parts, backslashes,
  drive letters or control characters;
- artifacts of the store stages (extract, features, select, train) live under
  ``.mlrepro/objects/``; a predictions file lives anywhere inside the project but not in
  ``.mlrepro/``;
- resolved with symlinks followed, the path must still be inside that folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlrepro.errors import ArtifactError
from mlrepro.guards.confine import STORE_DIR, inside, path_problem

OBJECTS_DIR = f"{STORE_DIR}/objects"
# stages whose outputs are content-addressed store objects
STORE_STAGES = ("extract", "features", "select", "train")


def _refuse(record: str, path: Any, problem: str, where: str) -> ArtifactError:
    shown = path if isinstance(path, str) else repr(path)
    shown = shown if len(shown) <= 120 else shown[:117] + "..."
    return ArtifactError(
        f"mlrepro.lock record {record} names path {shown!r}, which {problem}: refusing to "
        "read, link or delete it",
        hint=f"artifact paths must be relative and inside {where}; restore mlrepro.lock "
        "from version control, or delete it and run 'mlrepro run'",
    )


def check_lock(root: Path, data: dict[str, Any]) -> None:
    """Refuse (exit 4) a lock whose outputs are malformed or name a path outside the tree."""
    root = Path(root)
    for stage, rec in data["stages"].items():
        mappings = ("outputs", "inputs", "params", "details", "environment")
        if not isinstance(rec, dict) or not all(
            isinstance(rec.get(key, {}), dict) for key in mappings
        ):
            raise ArtifactError(
                f"mlrepro.lock record {stage} is not a mapping whose {', '.join(mappings)} "
                "are mappings",
                hint="restore mlrepro.lock from version control, or delete it and run "
                "'mlrepro run'",
            )
        for name, out in rec.get("outputs", {}).items():
            record = f"{stage}.{name}"
            if not isinstance(out, dict):
                raise _refuse(record, out, "is not an output record", "the project")
            if "path" not in out:
                if stage in STORE_STAGES:
                    raise _refuse(record, None, "is missing", f"{OBJECTS_DIR}/")
                continue
            path = out["path"]
            if not isinstance(out.get("file_hash"), str):
                raise _refuse(record, path, "has no file_hash string", "the project")
            store = stage in STORE_STAGES
            where = f"{OBJECTS_DIR}/" if store else "the project (outside .mlrepro/)"
            problem = path_problem(path)
            if problem is None and store and not path.startswith(OBJECTS_DIR + "/"):
                problem = f"is not under {OBJECTS_DIR}/"
            if problem is None and not store and path.split("/")[0] == STORE_DIR:
                problem = "is inside .mlrepro/"
            if problem is None and not inside(root, path, OBJECTS_DIR if store else ""):
                problem = "leaves the project through a symlink"
            if problem is not None:
                raise _refuse(record, path, problem, where)


STORE_ENTRIES = ("", "objects", "staging", "project.lock", "project.lock.flock")


def check_store(root: Path) -> None:
    """Refuse (exit 4) a project whose ``.mlrepro/`` folders are symlinks.

    mlrepro writes, links and deletes inside ``.mlrepro/``; a hostile project could point
    it (or its ``objects``/``staging`` folder, or the lock file) somewhere else.
    """
    base = Path(root) / STORE_DIR
    for entry in STORE_ENTRIES:
        path = base / entry if entry else base
        if path.is_symlink():
            shown = f"{STORE_DIR}/{entry}" if entry else STORE_DIR
            raise ArtifactError(
                f"{shown} is a symbolic link: refusing to read, write or delete through it",
                hint=f"replace the link with a real folder (or delete {STORE_DIR}/ and run "
                "'mlrepro run' to rebuild it)",
            )
