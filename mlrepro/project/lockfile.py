"""``mlrepro.lock``: the per-stage record of inputs, parameters, outputs and environment.

JSON with sorted keys, written atomically, so a killed run leaves the previous lock intact
and diffs of the lock in version control stay readable.

Environment records are stored once, in ``environments`` (fingerprint -> record); each
stage names its record by fingerprint. In memory (after ``read``) every stage holds its
record itself under ``environment`` and the fingerprint under ``environment_fingerprint``;
``write`` folds them back. Lock format 1 (mlrepro 0.1) kept a copy of the record in each
stage and had no ``fingerprint_format``: it reads as fingerprint format 1, unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlrepro.core import atomic
from mlrepro.errors import ArtifactError
from mlrepro.fingerprint import FINGERPRINT_FORMAT, SUPPORTED_FINGERPRINT_FORMATS
from mlrepro.fingerprint import fingerprint_params as _fingerprint
from mlrepro.guards import safejson
from mlrepro.guards.confine import inside
from mlrepro.project.paths import check_lock, check_store
from mlrepro.version import __version__

LOCK_NAME = "mlrepro.lock"
LOCK_FORMAT = 2  # 1: mlrepro 0.1 (an environment copy per stage); 2: an environments table


def empty_lock(project: str) -> dict[str, Any]:
    return {
        "lock_format": LOCK_FORMAT,
        "fingerprint_format": FINGERPRINT_FORMAT,
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
    check_fingerprint_format(data, LOCK_NAME)
    data = expand(data, LOCK_NAME)  # environment references -> records (reads no path)
    check_lock(Path(root), data)  # before any path it names is read, linked or deleted
    return data


def check_fingerprint_format(data: dict[str, Any], what: str) -> int:
    """The lock's fingerprint format (1 when absent: 0.1 locks), refused when unknown.

    Fingerprints of another format cannot be compared with the ones this mlrepro computes:
    every artifact would look "different". So such a lock is refused, never judged.
    """
    fmt = data.get("fingerprint_format", 1)
    if fmt not in SUPPORTED_FINGERPRINT_FORMATS or isinstance(fmt, bool):
        known = ", ".join(map(str, sorted(SUPPORTED_FINGERPRINT_FORMATS)))
        raise ArtifactError(
            f"{what} records fingerprint format {fmt!r} (written by mlrepro "
            f"{data.get('mlrepro_version', '?')}); this is mlrepro {__version__}, which "
            f"computes fingerprint format {FINGERPRINT_FORMAT} and can compare format(s) {known}",
            hint="verify with the mlrepro version that wrote it (see 'mlrepro_version' in the "
            "lock), or re-record the pipeline with 'mlrepro run --force' and commit the new lock",
        )
    return int(fmt)


def environment_fingerprint(record: dict[str, Any]) -> str:
    """The fingerprint of an environment record (canonical JSON)."""
    return _fingerprint(record)


def expand(data: dict[str, Any], what: str = LOCK_NAME) -> dict[str, Any]:
    """Give every stage its environment record (from the lock's ``environments`` table)."""
    table = data.get("environments", {})
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        raise ArtifactError(
            f"{what}: 'environments' is not a mapping of fingerprints to records",
            hint=f"restore {what} from version control, or delete it and run 'mlrepro run'",
        )
    for name, stage in data["stages"].items():
        if not isinstance(stage, dict):
            raise ArtifactError(
                f"{what}: stage record {str(name)[:40]} is not a mapping",
                hint=f"restore {what} from version control, or delete it and run 'mlrepro run'",
            )
        ref = stage.get("environment")
        if isinstance(ref, str):
            if ref not in table:
                raise ArtifactError(
                    f"{what}: stage {str(name)[:40]!r} names environment {ref[:20]}, which the "
                    "lock's 'environments' table does not hold",
                    hint=f"restore {what} from version control, or re-run the stage",
                )
            stage["environment"] = table[ref]
            stage["environment_fingerprint"] = ref
        elif isinstance(ref, dict):  # lock format 1: the record itself
            stage["environment_fingerprint"] = environment_fingerprint(ref)
        elif ref is not None:
            raise ArtifactError(
                f"{what}: stage {str(name)[:40]!r} has a malformed environment record",
                hint=f"restore {what} from version control, or re-run the stage",
            )
    data.pop("environments", None)
    return data


def compact(data: dict[str, Any]) -> dict[str, Any]:
    """The lock as written: each environment record once, stages naming it by fingerprint."""
    table: dict[str, Any] = {}
    stages = {}
    for name, stage in data.get("stages", {}).items():
        stage = dict(stage)
        stage.pop("environment_fingerprint", None)
        record = stage.get("environment")
        if isinstance(record, dict):
            fp = environment_fingerprint(record)
            table[fp] = record
            stage["environment"] = fp
        stages[name] = stage
    out = dict(data, stages=stages, lock_format=LOCK_FORMAT, mlrepro_version=__version__)
    out["fingerprint_format"] = FINGERPRINT_FORMAT
    out["environments"] = table
    return out


def dumps(data: dict[str, Any]) -> bytes:
    text = json.dumps(compact(data), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return text.encode("utf-8")


def write(root: Path, data: dict[str, Any]) -> None:
    atomic.write_bytes(Path(root) / LOCK_NAME, dumps(data))


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
