"""verify never unpickles the checked project's models unless --trust-artifacts is given.

A hostile project replaces a pickled artifact by one whose unpickling runs code (here: it
creates a marker file) and updates the lock's ``file_hash`` so the integrity check passes.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
from cli_helpers import run_cli

from mlrepro.fingerprint import hash_file

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "diabetes"
IGNORE = shutil.ignore_patterns(".mlrepro", "mlrepro.lock", "predictions*", "__pycache__")

pytestmark = pytest.mark.slow


class _RunsCode:
    """Unpickling this creates ``marker``: the stand-in for arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.marker), "w"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("trained") / "p"
    shutil.copytree(EXAMPLE, project, ignore=IGNORE)
    manifest = project / "mlrepro.yaml"
    manifest.write_text(manifest.read_text().replace("n_estimators: 200", "n_estimators: 10"))
    assert run_cli("run", "-q", "-p", project).code == 0
    return project


def _poison(trained: Path, tmp_path: Path, stage: str, output: str) -> tuple[Path, Path]:
    """A copy of the project whose ``stage.output`` pickle runs code; hashes made to match."""
    project = tmp_path / "hostile"
    shutil.copytree(trained, project)
    marker = tmp_path / "marker"
    lock_path = project / "mlrepro.lock"
    lock = json.loads(lock_path.read_text())
    record = lock["stages"][stage]["outputs"][output]
    artifact = project / record["path"]
    artifact.write_bytes(pickle.dumps(_RunsCode(marker)))
    record["file_hash"] = hash_file(artifact)
    lock_path.write_text(json.dumps(lock, indent=2))
    return project, marker


@pytest.mark.parametrize(
    ("stage", "output", "args"),
    [
        ("features", "transformer", ["--stage", "train"]),
        ("select", "selector", ["--stage", "train"]),
        ("train", "pipeline", ["--stage", "predict"]),
        ("features", "transformer", []),
        ("train", "pipeline", ["--offline"]),
    ],
)
def test_verify_never_unpickles_the_projects_models(trained, tmp_path, stage, output, args):
    project, marker = _poison(trained, tmp_path, stage, output)
    result = run_cli("verify", "--json", "-p", project, *args)
    assert not marker.exists(), "verify ran code from the project's pickle"
    report = json.loads(result.out)
    assert result.code == 0, report  # the re-executed models reproduce the recorded ones
    notes = [n for s in report["stages"] for n in s.get("notes", [])]
    if args and args[0] == "--stage":
        assert any("loaded only with --trust-artifacts" in n for n in notes), notes


def test_trust_artifacts_is_what_loads_them(trained, tmp_path):
    """The opt-in does what it says: the recorded pickle is loaded (and its code runs)."""
    project, marker = _poison(trained, tmp_path, "features", "transformer")
    run_cli("verify", "--json", "-p", project, "--stage", "train", "--trust-artifacts")
    assert marker.exists()


def test_a_changed_model_is_judged_by_its_recorded_predictions(trained, tmp_path):
    """Without unpickling, a different model fingerprint is explained by behaviour."""
    project = tmp_path / "changed"
    shutil.copytree(trained, project)
    lock_path = project / "mlrepro.lock"
    lock = json.loads(lock_path.read_text())
    lock["stages"]["train"]["outputs"]["pipeline"]["fingerprint"] = "b3:" + "0" * 64
    lock_path.write_text(json.dumps(lock, indent=2))
    result = run_cli("verify", "--json", "-p", project, "--offline")
    train = next(s for s in result.json()["stages"] if s["stage"] == "train")
    text = " ".join(train["reasons"])
    assert "predictions on the" in text and "was not loaded" in text, train
    assert train["verdict"] in ("equivalent", "different")
