"""``mlrepro.lock``: the per-stage record of inputs, parameters, outputs and environment.

JSON with sorted keys, written atomically, so a killed run leaves the previous lock intact
and diffs of the lock in version control stay readable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlrepro.core import atomic, safejson
from mlrepro.core.confine import inside
from mlrepro.errors import ArtifactError
from mlrepro.project.paths import check_lock, check_store
from mlrepro.version import __version__

LOCK_NAME = "mlrepro.lock"
LOCK_FORMAT = 1


def empty_lock(project: str) -> dict[str, Any]:
    return {
        "lock_format": LOCK_FORMAT,
        "mlrepro_version": __version__,
        "project": project,
        "stages": {},
    }


def read(root: Path, project: str = "") -> dict[str, Any]:
    """Read the lock of a project; an absent lock is an empty one."""
    check_store(Path(root))
    path = Path(root) / LOCK_NAME
    if path.is_symlink() and not inside(Path(root), LOCK_NAME):
        raise ArtifactError(
            f"{LOCK_NAME} is a symbolic link out of the project: refusing to read it",
            hint=f"replace the link with the project's own {LOCK_NAME}",
        )
    if not path.exists():
        return empty_lock(project)
    try:
        data = safejson.loads(path.read_bytes())  # depth checked: no RecursionError
    except (UnicodeDecodeError, json.JSONDecodeError, safejson.TooDeep) as exc:
        raise ArtifactError(
            f"{LOCK_NAME} is not valid JSON ({exc.__class__.__name__})",
            hint=f"restore {LOCK_NAME} from version control, or delete it and run "
            "'mlrepro run' to record a new one",
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("stages"), dict):
        raise ArtifactError(
            f"{LOCK_NAME} does not look like an mlrepro lock (no 'stages' mapping)",
            hint=f"restore {LOCK_NAME} from version control, or delete it and run 'mlrepro run'",
        )
    fmt = data.get("lock_format")
    if not isinstance(fmt, int) or fmt > LOCK_FORMAT:
        raise ArtifactError(
            f"{LOCK_NAME} has format {fmt!r}, written by mlrepro "
            f"{data.get('mlrepro_version', '?')}; this is mlrepro {__version__} "
            f"(lock format {LOCK_FORMAT})",
            hint="upgrade mlrepro (pip install -U mlrepro) to read this lock",
        )
    check_lock(Path(root), data)  # before any path it names is read, linked or deleted
    return data


def write(root: Path, data: dict[str, Any]) -> None:
    data = dict(data, lock_format=LOCK_FORMAT, mlrepro_version=__version__)
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    atomic.write_bytes(Path(root) / LOCK_NAME, text.encode("utf-8"))


def referenced_paths(data: dict[str, Any]) -> set[str]:
    """Every artifact path the lock names."""
    return {
        out["path"]
        for stage in data.get("stages", {}).values()
        for out in stage.get("outputs", {}).values()
        if isinstance(out, dict) and "path" in out
    }


def referenced_paths_on_disk(root: Path) -> set[str] | None:
    """Artifact paths the lock file on disk names (None if it cannot be read).

    After a failure this, not the in-memory lock, says which new artifacts are in use.
    """
    try:
        return referenced_paths(read(root))
    except Exception:
        return None
