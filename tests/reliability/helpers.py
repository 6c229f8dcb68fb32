"""Shared helpers: run the real CLI in a subprocess, and check a project's integrity."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
HOOK_DIR = Path(__file__).resolve().parent / "crashhook"
SMALL_FOREST = "n_estimators: 10"  # the diabetes example with 10 trees trains in a blink


def cli_env(hook: bool = False, **extra: str) -> dict[str, str]:
    """Environment for a subprocess that runs this checkout's mlrepro (hook: crash injection)."""
    paths = [str(REPO_ROOT)] + ([str(HOOK_DIR)] if hook else [])
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLREPRO_CRASH")}
    env.update(PYTHONPATH=os.pathsep.join(paths), PYTHONUNBUFFERED="1", **extra)
    return env


def make_small(project: Path) -> Path:
    """Shrink the diabetes example's forest so end-to-end tests stay fast."""
    manifest = project / "mlrepro.yaml"
    text = manifest.read_text()
    assert "n_estimators: 200" in text
    manifest.write_text(text.replace("n_estimators: 200", SMALL_FOREST))
    return project


def read_lock(project: Path) -> dict[str, Any] | None:
    path = project / "mlrepro.lock"
    return json.loads(path.read_text()) if path.exists() else None


def artifact_records(lock: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(stage, output name, record) for every output that is a file."""
    return [
        (stage, name, rec)
        for stage, srec in lock["stages"].items()
        for name, rec in srec["outputs"].items()
        if "path" in rec
    ]


def content_fingerprint(project: Path, stage: str, name: str, rec: dict[str, Any]) -> str:
    """Recompute an artifact's content fingerprint from its file (test-side, trusted files)."""
    import joblib
    import pyarrow.parquet as pq

    from mlrepro.fingerprint import fingerprint_frame, fingerprint_model, hash_bytes

    path = project / rec["path"]
    if path.suffix == ".parquet" and stage == "predict":
        return fingerprint_frame(pq.read_table(path).to_pandas())
    if path.suffix == ".parquet":
        return fingerprint_frame(pq.read_table(path))
    if path.suffix == ".joblib":
        return fingerprint_model(joblib.load(path))
    if path.suffix == ".skops":
        import skops.io as sio

        return fingerprint_model(sio.load(path, trusted=rec["trusted_types"]))
    if path.suffix == ".csv":
        import pandas as pd

        return fingerprint_frame(pd.read_csv(path))
    return hash_bytes(path.read_bytes())


def check_integrity(project: Path, *, fingerprints: bool = True) -> dict[str, Any] | None:
    """Assert the lock parses and names only intact artifacts; return the lock (or None)."""
    from mlrepro.fingerprint import hash_file
    from mlrepro.project import lockfile

    if not (project / "mlrepro.lock").exists():
        return None
    lock = lockfile.read(project)  # raises on a torn or unreadable lock
    for stage, name, rec in artifact_records(lock):
        path = project / rec["path"]
        assert path.is_file(), f"lock names missing artifact {stage}.{name}: {rec['path']}"
        assert hash_file(path) == rec["file_hash"], f"{stage}.{name}: byte hash differs"
        if fingerprints:
            got = content_fingerprint(project, stage, name, rec)
            assert got == rec["fingerprint"], f"{stage}.{name}: content fingerprint differs"
    return lock


def temp_files(project: Path) -> list[str]:
    """Temp files anywhere in the project (left by a crash, or leaked)."""
    return sorted(p.relative_to(project).as_posix() for p in project.rglob(".tmp-*"))


def orphan_objects(project: Path) -> list[str]:
    """Store objects the lock does not name."""
    from mlrepro.project.lockfile import referenced_paths

    lock = read_lock(project) or {"stages": {}}
    keep = referenced_paths(lock)
    objects = project / ".mlrepro" / "objects"
    found = objects.rglob("*") if objects.exists() else []
    return sorted(
        p.relative_to(project).as_posix()
        for p in found
        if p.is_file() and p.relative_to(project).as_posix() not in keep
    )


def output_fingerprints(lock: dict[str, Any]) -> dict[str, str]:
    return {
        f"{stage}.{name}": rec["fingerprint"]
        for stage, srec in lock["stages"].items()
        for name, rec in srec["outputs"].items()
    }
