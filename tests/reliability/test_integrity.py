"""Artifacts are checked against the lock before they are deserialized.

A flipped byte or a swapped file is refused with exit code 4 (artifact missing, corrupted
or tampered). A replaced model file holding a pickle whose ``__reduce__`` would run code is
refused before unpickling: the test proves the payload works, then that it never runs.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import run_cli, run_subprocess

from mlrepro.errors import EXIT_ARTIFACT

from .helpers import check_integrity, cli_env, read_lock


class Payload:
    """Unpickling this creates ``marker``: a stand-in for arbitrary code execution."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (exec, (f"open({self.marker!r}, 'w').write('code ran')",))


def _artifact(project: Path, stage: str, name: str) -> Path:
    return project / read_lock(project)["stages"][stage]["outputs"][name]["path"]


def _flip_byte(path: Path, offset: int = -20) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _plant(path: Path, marker: Path) -> None:
    """Replace ``path`` with a malicious pickle, after proving that loading it runs code."""
    path.write_bytes(pickle.dumps(Payload(marker)))
    probe = subprocess.run(
        [sys.executable, "-c", f"import joblib; joblib.load({str(path)!r})"],
        capture_output=True,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    assert marker.read_text() == "code ran"  # the payload works: loading it would run code
    marker.unlink()


def test_flipped_byte_in_model_is_refused(trained_copy: Path, capsys) -> None:
    _flip_byte(_artifact(trained_copy, "train", "pipeline"))
    lock = (trained_copy / "mlrepro.lock").read_bytes()
    data = trained_copy / "data" / "new_visits.csv"
    args = [
        "predict",
        "-p",
        str(trained_copy),
        "-i",
        str(data),
        "-o",
        str(trained_copy / "out.csv"),
    ]
    code = run_cli(*args).code
    err = capsys.readouterr().err
    assert code == EXIT_ARTIFACT
    assert "does not match its recorded hash" in err and "refusing to load it" in err
    assert "hint:" in err and "mlrepro run --force" in err
    assert not (trained_copy / "out.csv").exists()
    assert (trained_copy / "mlrepro.lock").read_bytes() == lock


def test_flipped_byte_in_snapshot_is_refused_and_run_heals_it(trained_copy: Path, capsys) -> None:
    snapshot = _artifact(trained_copy, "extract", "snapshot")
    _flip_byte(snapshot, offset=len(snapshot.read_bytes()) // 2)
    assert run_cli("features", "--force", "-p", str(trained_copy)).code == EXIT_ARTIFACT
    assert "does not match its recorded hash" in capsys.readouterr().err

    run_cli("status", "--json", "-p", str(trained_copy))
    states = {s["stage"]: s for s in json.loads(capsys.readouterr().out)["stages"]}
    assert states["extract"]["state"] == "stale"
    assert "modified" in states["extract"]["reason"]

    assert run_cli("run", "-q", "-p", str(trained_copy)).code == 0  # rebuilt from the source
    check_integrity(trained_copy)


@pytest.mark.slow
def test_malicious_model_never_runs_its_code(trained_copy: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    _plant(_artifact(trained_copy, "train", "pipeline"), marker)
    lock = (trained_copy / "mlrepro.lock").read_bytes()

    proc = run_subprocess("predict", "-i", "data/new_visits.csv", "-o", "out.csv", cwd=trained_copy)
    assert proc.returncode == EXIT_ARTIFACT, proc.stderr
    assert "does not match its recorded hash" in proc.stderr
    assert not marker.exists()
    assert (trained_copy / "mlrepro.lock").read_bytes() == lock

    # the manifest's own predict stage refuses it the same way
    proc = run_subprocess("predict", cwd=trained_copy, env=cli_env())
    assert proc.returncode == EXIT_ARTIFACT, proc.stderr
    assert not marker.exists()
    assert (trained_copy / "mlrepro.lock").read_bytes() == lock

    # a full run sees the model as modified and retrains it, without ever loading it
    proc = run_subprocess("run", "-q", cwd=trained_copy)
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists()
    check_integrity(trained_copy)


def test_malicious_transformer_is_refused_before_training(trained_copy: Path, tmp_path, capsys):
    marker = tmp_path / "pwned"
    _plant(_artifact(trained_copy, "features", "transformer"), marker)
    assert run_cli("train", "--force", "-p", str(trained_copy)).code == EXIT_ARTIFACT
    assert "does not match its recorded hash" in capsys.readouterr().err
    assert not marker.exists()


def test_missing_model_is_reported(trained_copy: Path, capsys) -> None:
    _artifact(trained_copy, "train", "pipeline").unlink()
    data = trained_copy / "data" / "new_visits.csv"
    args = ["predict", "-p", str(trained_copy), "-i", str(data), "-o", str(trained_copy / "o.csv")]
    assert run_cli(*args).code == EXIT_ARTIFACT
    err = capsys.readouterr().err
    assert "is missing" in err and "hint: run 'mlrepro run'" in err
