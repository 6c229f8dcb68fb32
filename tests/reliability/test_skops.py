"""``model.format: skops``: models that can be loaded from an untrusted source.

Every model artifact is saved with skops, the non-default types it holds are recorded in
the lock, and loading refuses any type outside both that record and mlrepro's reviewed list,
so neither a swapped file nor an edited lock gets code to run.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from cli_helpers import run_cli

from mlrepro.errors import EXIT_ARTIFACT, ArtifactError, ManifestError
from mlrepro.fingerprint import hash_file
from mlrepro.project import formats as safe_model
from mlrepro.project.store import Store

from .helpers import check_integrity, read_lock

MODEL_STAGES = (("features", "transformer"), ("select", "selector"), ("train", "pipeline"))


def predict(project: Path) -> list[str]:
    return [
        "predict",
        "-p",
        str(project),
        "-i",
        str(project / "data/new_visits.csv"),
        "-o",
        str(project / "out.csv"),
    ]


class Trap:
    """Restoring this object's state creates a marker file (arbitrary code, in effect)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __setstate__(self, state: dict) -> None:
        Path(state["marker"]).write_text("code ran")
        self.__dict__.update(state)


def _use_skops(project: Path) -> None:
    manifest = project / "mlrepro.yaml"
    manifest.write_text(
        manifest.read_text().replace(
            "  metrics: [r2, mae]", "  metrics: [r2, mae]\n  format: skops"
        )
    )


@pytest.fixture
def skops_project(trained_copy: Path) -> Path:
    _use_skops(trained_copy)
    assert run_cli("run", "-q", "-p", str(trained_copy)).code == 0
    return trained_copy


def _edit_lock(project: Path, stage: str, name: str, **changes) -> None:
    path = project / "mlrepro.lock"
    lock = json.loads(path.read_text())
    rec = lock["stages"][stage]["outputs"][name]
    for key, value in changes.items():
        if value is None:
            rec.pop(key, None)
        else:
            rec[key] = value
    path.write_text(json.dumps(lock, indent=2, sort_keys=True))


def test_skops_run_records_reviewed_types_and_predicts(trained_copy: Path) -> None:
    joblib_fp = read_lock(trained_copy)["stages"]["train"]["outputs"]["pipeline"]["fingerprint"]
    _use_skops(trained_copy)
    assert run_cli("run", "-q", "-p", str(trained_copy)).code == 0
    lock = check_integrity(trained_copy)
    for stage, name in MODEL_STAGES:
        rec = lock["stages"][stage]["outputs"][name]
        assert rec["format"] == "skops" and rec["path"].endswith(".skops")
        assert set(rec["trusted_types"]) <= safe_model.REVIEWED_TYPES
    pipeline = lock["stages"]["train"]["outputs"]["pipeline"]
    assert "mlrepro.transformers.FeatureSteps" in pipeline["trusted_types"]
    assert pipeline["fingerprint"] == joblib_fp  # the same model, in another file format
    assert run_cli(*predict(trained_copy)).code == 0


def _trap_file(path: Path, marker: Path) -> None:
    """Write a skops file holding a Trap, after proving a trusting load runs its code."""
    import skops.io as sio

    data = sio.dumps({"model": Trap(str(marker))})
    sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    assert marker.read_text() == "code ran"
    marker.unlink()
    path.write_bytes(data)


def test_swapped_skops_file_with_foreign_type_is_refused(skops_project, tmp_path, capsys):
    marker = tmp_path / "pwned"
    rec = read_lock(skops_project)["stages"]["train"]["outputs"]["pipeline"]
    path = skops_project / rec["path"]
    _trap_file(path, marker)
    # the attacker controls the lock too: the byte hash matches the swapped file
    _edit_lock(skops_project, "train", "pipeline", file_hash=hash_file(path))
    assert run_cli(*predict(skops_project)).code == EXIT_ARTIFACT
    err = capsys.readouterr().err
    assert "holds types not recorded in the lock" in err and "Trap" in err
    assert not marker.exists()


def test_lock_that_trusts_foreign_types_is_refused(skops_project, tmp_path, capsys):
    marker = tmp_path / "pwned"
    rec = read_lock(skops_project)["stages"]["train"]["outputs"]["pipeline"]
    path = skops_project / rec["path"]
    _trap_file(path, marker)
    trap_type = f"{Trap.__module__}.Trap"
    _edit_lock(
        skops_project,
        "train",
        "pipeline",
        file_hash=hash_file(path),
        trusted_types=[*rec["trusted_types"], trap_type, "builtins.exec"],
    )
    assert run_cli(*predict(skops_project)).code == EXIT_ARTIFACT
    err = capsys.readouterr().err
    assert "trusts types outside mlrepro's reviewed list" in err
    assert "hint:" in err
    assert not marker.exists()


class Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (exec, (f"open({self.marker!r}, 'w').write('code ran')",))


def test_pickle_posing_as_model_is_never_unpickled(skops_project, tmp_path, capsys):
    """With format: skops a pickle is refused even when the lock was edited to match it."""
    marker = tmp_path / "pwned"
    rec = read_lock(skops_project)["stages"]["train"]["outputs"]["pipeline"]
    evil = skops_project / ".mlrepro" / "objects" / "evil.joblib"
    evil.write_bytes(pickle.dumps(Payload(str(marker))))
    _edit_lock(
        skops_project,
        "train",
        "pipeline",
        path=evil.relative_to(skops_project).as_posix(),
        file_hash=hash_file(evil),
        format=None,
        trusted_types=None,
    )
    assert rec["format"] == "skops"
    assert run_cli(*predict(skops_project)).code == EXIT_ARTIFACT
    err = capsys.readouterr().err
    assert "is a pickle" in err and "never loaded" in err
    assert not marker.exists()


def test_unreviewed_type_is_refused_at_save(tmp_path: Path) -> None:
    import numpy as np
    from sklearn.preprocessing import FunctionTransformer
    from sklearn.utils.validation import check_array

    model = FunctionTransformer(func=check_array).fit(np.ones((4, 2)))
    with pytest.raises(ManifestError, match="not reviewed for safe loading") as info:
        Store(tmp_path, model_format="skops").write_model(model)
    assert "plugins:" in info.value.hint
    assert not list(tmp_path.rglob("*.skops"))
    # a module the manifest lists under plugins: is trusted on purpose
    rec = Store(tmp_path, model_format="skops", plugins=("sklearn.utils",)).write_model(model)
    assert rec["trusted_types"] == ["sklearn.utils.validation.check_array"]
    with pytest.raises(ArtifactError, match="outside mlrepro's reviewed list"):
        Store(tmp_path, model_format="skops").read_model(rec)


def test_mlrepro_transformers_round_trip_through_skops(tmp_path: Path) -> None:
    """FeatureSteps and KeepColumns (in every pipeline) are on the reviewed list and load."""
    import pandas as pd
    from sklearn.preprocessing import StandardScaler

    from mlrepro.fingerprint import fingerprint_model
    from mlrepro.transformers import FeatureSteps, KeepColumns

    X = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [0.5, 0.1, 0.2]})
    store = Store(tmp_path, model_format="skops")
    for model in (FeatureSteps([("s", StandardScaler(), ["a"])]).fit(X), KeepColumns(["b"]).fit(X)):
        rec = store.write_model(model)
        assert f"mlrepro.transformers.{type(model).__name__}" in rec["trusted_types"]
        loaded = store.read_model(rec)
        assert fingerprint_model(loaded) == rec["fingerprint"]
        pd.testing.assert_frame_equal(loaded.transform(X), model.transform(X))
