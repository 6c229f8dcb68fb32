"""Attack 2: a manifest that calls arbitrary functions or instantiates arbitrary classes.

Functions given as parameters come from a reviewed allow-list (or a plugin module); class
paths must name estimator classes; the standard library and mlrepro's own dependencies are
never plugins. Refused with exit 2 naming the field, before anything is called: the marker
file the attack would write never appears.
"""

from __future__ import annotations

import textwrap

import pytest
import yaml


def edit(root, change) -> None:  # noqa: ANN001
    path = root / "mlrepro.yaml"
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def add_step(doc, transformer: str, **params) -> None:  # noqa: ANN001
    doc["features"].insert(
        0, {"name": "evil", "transformer": transformer, "params": params, "columns": ["bmi"]}
    )


COMMANDS = [("run",), ("verify", "--offline"), ("verify",), ("features", "--force")]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_function_transformer_cannot_write_files(hostile, cli, args) -> None:  # noqa: ANN001
    marker = hostile.outside / "marker.svm"
    edit(
        hostile.root,
        lambda d: add_step(
            d,
            "sklearn.preprocessing.FunctionTransformer",
            func="sklearn.datasets.dump_svmlight_file",
            kw_args={"y": [0], "f": str(marker)},
        ),
    )
    res = cli(*args, "-p", hostile.root)
    assert res.code == 2, res.err
    assert "features[0].params.func" in res.err
    assert "not a reviewed function" in res.err and "numpy.log1p" in res.err
    assert not marker.exists()


@pytest.mark.parametrize(
    "func", ["sklearn.metrics.r2_score", "sklearn.datasets.dump_svmlight_file", "os.system"]
)
def test_score_func_must_be_a_score_function(hostile, cli, func) -> None:  # noqa: ANN001
    edit(hostile.root, lambda d: d["selection"]["params"].update(score_func=func))
    res = cli("run", "-p", hostile.root)
    assert res.code == 2, res.err
    assert "selection.params.score_func" in res.err
    assert "sklearn.feature_selection.f_regression" in res.err  # the allowed choices


def test_reviewed_functions_work(hostile, cli) -> None:  # noqa: ANN001
    edit(
        hostile.root,
        lambda d: (
            add_step(d, "sklearn.preprocessing.FunctionTransformer", func="numpy.log1p"),
            d["selection"]["params"].update(score_func="sklearn.feature_selection.r_regression"),
        ),
    )
    res = cli("run", "-p", hostile.root)
    assert res.code == 0, res.err


def test_a_class_that_is_not_an_estimator_is_never_instantiated(hostile, cli) -> None:  # noqa: ANN001
    edit(hostile.root, lambda d: add_step(d, "sklearn.utils.Bunch"))
    res = cli("run", "-p", hostile.root)
    assert res.code == 2
    assert "features[0]" in res.err and "not an estimator, transformer or selector" in res.err


@pytest.mark.parametrize("module", ["subprocess", "os", "builtins", "joblib", "numpy"])
def test_stdlib_and_dependencies_are_not_plugins(hostile, cli, module) -> None:  # noqa: ANN001
    marker = hostile.outside / "marker"
    edit(
        hostile.root,
        lambda d: (
            d.update(plugins=[module]),
            add_step(d, f"{module}.Popen", args=["touch", str(marker)]),
        ),
    )
    res = cli("run", "-p", hostile.root)
    assert res.code == 2, res.err
    assert "plugins[0]" in res.err
    assert not marker.exists()


PLUGIN = textwrap.dedent(
    """
    from pathlib import Path

    import numpy as np
    from sklearn.base import BaseEstimator, TransformerMixin

    MARKER = Path({marker!r})


    class NotAnEstimator:
        def __init__(self, **kw):
            MARKER.write_text("instantiated")


    def returns_none(X):
        return None


    def one_column(X):
        return np.asarray(X)[:, 0]


    def bad_scores(X, y):
        raise RuntimeError("not a score function")


    def wrong_scores(X, y):
        return "scores"


    class Exploding(TransformerMixin, BaseEstimator):
        def fit(self, X, y=None):
            raise KeyError("boom")
    """
)


@pytest.fixture
def plugin(hostile, monkeypatch, tmp_path):  # noqa: ANN001, ANN201
    folder = tmp_path / "plugins"
    folder.mkdir()
    marker = hostile.outside / "marker"
    (folder / "evilplug.py").write_text(PLUGIN.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(folder))
    edit(hostile.root, lambda d: d.update(plugins=["evilplug"]))
    yield marker
    import sys

    sys.modules.pop("evilplug", None)


def test_plugin_class_without_fit_is_not_instantiated(hostile, cli, plugin) -> None:  # noqa: ANN001
    edit(hostile.root, lambda d: add_step(d, "evilplug.NotAnEstimator"))
    res = cli("run", "-p", hostile.root)
    assert res.code == 2
    assert "not an estimator" in res.err
    assert not plugin.exists()


@pytest.mark.parametrize(
    ("func", "found"), [("evilplug.returns_none", "None"), ("evilplug.one_column", "shape")]
)
def test_function_transformer_returning_garbage(hostile, cli, plugin, func, found) -> None:  # noqa: ANN001
    edit(
        hostile.root, lambda d: add_step(d, "sklearn.preprocessing.FunctionTransformer", func=func)
    )
    res = cli("run", "-p", hostile.root)
    assert res.code == 3, res.err
    assert "feature step 'evil' (FunctionTransformer) returned" in res.err and found in res.err
    assert "hint:" in res.err


def test_plugin_step_raising_anything_is_a_data_error(hostile, cli, plugin) -> None:  # noqa: ANN001
    edit(hostile.root, lambda d: add_step(d, "evilplug.Exploding"))
    res = cli("run", "-p", hostile.root)
    assert res.code == 3, res.err
    assert "feature step 'evil' (Exploding)" in res.err


@pytest.mark.parametrize(
    ("func", "code"), [("evilplug.bad_scores", 2), ("evilplug.wrong_scores", 3)]
)
def test_plugin_score_func_that_fails(hostile, cli, plugin, func, code) -> None:  # noqa: ANN001
    """Raising is a manifest error; scores that are not numbers fail like bad data."""
    edit(hostile.root, lambda d: d["selection"]["params"].update(score_func=func))
    res = cli("run", "-p", hostile.root)
    assert res.code == code, res.err
    assert "selection" in res.err and "hint:" in res.err
