"""Helpers for the accelerated runtime's tests.

numba is the optional extra ``accelerate``: missing locally -> the tests skip; in CI
(``CI=true``) -> they fail, since CI installs ``.[dev]``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def need_numba() -> None:
    """Call at the top of each test module: skip without numba locally, fail in CI."""
    if importlib.util.find_spec("numba") is not None:
        return
    if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
        pytest.fail("CI=true but numba (extra 'accelerate') is not installed", pytrace=False)
    pytest.skip("numba is not installed (extra 'accelerate')", allow_module_level=True)


def need_module(module: str, extra: str) -> None:
    """Like ``need_numba`` for another optional module (e.g. lightgbm, extra 'boosting')."""
    if importlib.util.find_spec(module) is not None:
        return
    if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
        pytest.fail(f"CI=true but {module} (extra {extra!r}) is not installed", pytrace=False)
    pytest.skip(f"{module} is not installed (extra {extra!r})", allow_module_level=True)


def fit_pipeline(frame: pd.DataFrame, y: Any, steps: list[Any], model: Any, k: Any = None) -> Any:
    """Fit features/select/model the way ``mlrepro.pipeline.train.fit_model`` assembles them."""
    from sklearn.feature_selection import SelectKBest, f_classif, f_regression
    from sklearn.pipeline import Pipeline

    from mlrepro.transformers import FeatureSteps, KeepColumns

    features = FeatureSteps(steps)
    matrix = features.fit_transform(frame, y)
    if k is None:
        selector: Any = KeepColumns().fit(matrix, y)
    else:
        score = f_classif if hasattr(model, "predict_proba") else f_regression
        selector = SelectKBest(score, k=k)
        selector.set_output(transform="pandas")
        selector.fit(matrix, y)
    model.fit(selector.transform(matrix), y)
    return Pipeline([("features", features), ("select", selector), ("model", model)])


def frame_of(n: int, seed: int = 0, nan: float = 0.0) -> pd.DataFrame:
    """Numbers (some NaN), an integer column and a text column."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(scale=100.0, size=n),
            "c": rng.integers(-5, 50, size=n),
            "town": rng.choice(["north", "south", "east", "west"], size=n).astype(object),
            "d": rng.exponential(size=n),
        }
    )
    if nan:
        for col in ("a", "b"):
            df.loc[rng.random(n) < nan, col] = np.nan
    return df


def target_of(frame: pd.DataFrame, kind: str, seed: int = 0) -> Any:
    rng = np.random.default_rng(seed)
    score = (
        frame["a"].fillna(0.3).to_numpy()
        + frame["b"].fillna(-2.0).to_numpy() / 50
        + (frame["town"] == "east").to_numpy() * 1.5
        + rng.normal(scale=0.3, size=len(frame))
    )
    if kind == "regression":
        return score * 10
    if kind == "binary":
        return np.where(score > 0.2, "yes", "no").astype(object)
    return np.digitize(score, [-0.5, 0.5, 1.5])  # four integer classes


@pytest.fixture(scope="session")
def example_pipelines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Both examples trained by the CLI: {name: (pipeline, task, new input rows)}."""
    from cli_helpers import run_cli

    out: dict[str, Any] = {}
    root = tmp_path_factory.mktemp("examples")
    for name, task, new in (
        ("diabetes", "regression", "new_visits.csv"),
        ("breast_cancer", "classification", "new_biopsies.csv"),
    ):
        project = root / name
        shutil.copytree(
            REPO_ROOT / "examples" / name,
            project,
            ignore=shutil.ignore_patterns(".mlrepro", "*.lock*", "predictions*"),
        )
        result = run_cli("run", cwd=project)
        assert result.returncode == 0, result.stderr
        pipelines = []
        for path in sorted((project / ".mlrepro" / "objects").glob("*/*.joblib")):
            obj = joblib.load(path)  # written by this test run
            if type(obj).__name__ == "Pipeline":
                pipelines.append(obj)
        assert len(pipelines) == 1
        out[name] = (pipelines[0], task, pd.read_csv(project / "data" / new))
    return out
