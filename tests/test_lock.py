"""Lock file format, atomic writes and the store's integrity checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import run_cli

from mlrepro.errors import ArtifactError
from mlrepro.project import lockfile
from mlrepro.project.store import Store


def test_absent_lock_is_empty(tmp_path: Path) -> None:
    lock = lockfile.read(tmp_path, "p")
    assert lock["stages"] == {} and lock["lock_format"] == lockfile.LOCK_FORMAT


def test_write_is_atomic_and_sorted(tmp_path: Path) -> None:
    lockfile.write(tmp_path, {"stages": {"b": {"x": 1}, "a": {"y": 2}}, "project": "p"})
    text = (tmp_path / "mlrepro.lock").read_text()
    assert text.index('"a"') < text.index('"b"')
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    assert lockfile.read(tmp_path)["stages"]["a"] == {"y": 2}


@pytest.mark.parametrize(
    ("content", "message", "hint"),
    [
        ("{not json", "mlrepro.lock is not valid JSON", "restore mlrepro.lock"),
        ('{"a": 1}', "does not look like an mlrepro lock", "restore mlrepro.lock"),
        (
            '{"lock_format": 99, "mlrepro_version": "9.0", "stages": {}}',
            "mlrepro.lock has format 99, written by mlrepro 9.0",
            "upgrade mlrepro",
        ),
    ],
)
def test_bad_locks_are_refused(tmp_path: Path, content: str, message: str, hint: str) -> None:
    (tmp_path / "mlrepro.lock").write_text(content)
    with pytest.raises(ArtifactError) as info:
        lockfile.read(tmp_path)
    assert message in info.value.message and hint in info.value.hint
    assert info.value.exit_code == 4


def test_newer_lock_stops_run_without_touching_it(copy_example, capsys) -> None:
    project = copy_example("diabetes")
    newer = '{"lock_format": 99, "mlrepro_version": "9.9.9", "stages": {}}\n'
    (project / "mlrepro.lock").write_text(newer)
    r = run_cli("run", "-p", project)
    assert r.code == 4 and "upgrade mlrepro" in r.err
    assert (project / "mlrepro.lock").read_text() == newer


def test_store_refuses_modified_artifact(tmp_path: Path) -> None:
    store = Store(tmp_path)
    record = store.write_model({"weights": [1, 2, 3]})
    assert store.read_model(record) == {"weights": [1, 2, 3]}
    path = tmp_path / record["path"]
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    fresh = Store(tmp_path)  # no in-process copy: must read from disk
    with pytest.raises(ArtifactError, match="does not match its recorded hash"):
        fresh.read_model(record)
    path.unlink()
    with pytest.raises(ArtifactError, match="is missing"):
        fresh.read_model(record)


def test_same_content_is_stored_once(tmp_path: Path) -> None:
    import pandas as pd

    store = Store(tmp_path)
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", None]})
    one, two = store.write_frame(df), store.write_frame(df.copy())
    assert one == two
    files = [p for p in (tmp_path / ".mlrepro" / "objects").rglob("*") if p.is_file()]
    assert len(files) == 1


def test_lock_paths_are_relative_so_projects_move(copy_example, capsys, tmp_path) -> None:
    import shutil

    project = copy_example("diabetes")
    assert run_cli("run", "-p", project).code == 0
    lock = json.loads((project / "mlrepro.lock").read_text())
    paths = [
        o["path"] for s in lock["stages"].values() for o in s["outputs"].values() if "path" in o
    ]
    assert paths and all(not Path(p).is_absolute() for p in paths)
    moved = tmp_path / "elsewhere"
    shutil.copytree(project, moved)
    r = run_cli("run", "-p", moved)
    assert r.code == 0 and r.out.count("unchanged, skipped") == 5


def test_status_of_a_fresh_project(copy_example, capsys) -> None:
    project = copy_example("diabetes")
    r = run_cli("status", "-p", project, "--json")
    assert r.code == 0
    states = {s["stage"]: (s["state"], s["reason"]) for s in r.json()["stages"]}
    assert states["extract"] == ("missing", "never run")
    assert states["train"] == ("missing", "an upstream stage has not run")
