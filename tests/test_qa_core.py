"""Regressions found by QA on new data sets and mistakes a new user makes (core pipeline)."""

from __future__ import annotations

import pytest
from cli_helpers import run_cli


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuch"], "No such command"),
        (["run", "--nosuch"], "No such option"),
        (["verify", "--rtol"], "requires an argument"),
    ],
)
def test_usage_errors_are_exit_2_not_internal(capsys, args, message) -> None:
    result = run_cli(capsys, *args)
    assert result.code == 2, result.err
    assert message in result.err
    assert "bug in mlrepro" not in result.err


def _manifest(params_model: dict, selection: dict | None = None) -> object:
    from mlrepro.manifest import from_dict

    data = {
        "name": "qa",
        "source": {
            "url": "sqlite:///x.db",
            "query": "SELECT * FROM t",
            "timestamp_column": "ts",
            "as_of": "2020-01-01",
            "order_by": ["id"],
        },
        "target": "y",
        "model": {"estimator": "sklearn.svm.SVC", "params": params_model},
    }
    if selection:
        data["selection"] = selection
    return from_dict(data)


def test_parameter_errors_name_the_manifest_field() -> None:
    """'model.params.x' / 'selection.params.x' is where the user wrote it, not '.estimator.'."""
    from mlrepro.errors import ManifestError
    from mlrepro.preflight import check_classes

    with pytest.raises(ManifestError, match=r"'model\.params\.probabilty': SVC has no"):
        check_classes(_manifest({"probabilty": True}))
    nested = {
        "method": "sklearn.feature_selection.RFE",
        "params": {"estimator": {"class": "sklearn.svm.SVC", "params": {"C1": 1}}},
    }
    with pytest.raises(ManifestError, match=r"'selection\.params\.estimator\.params\.C1'"):
        check_classes(_manifest({}, nested))


def test_estimator_class_as_a_plain_string_parameter_is_explained() -> None:
    from mlrepro.errors import ManifestError
    from mlrepro.preflight import check_classes

    selection = {
        "method": "sklearn.feature_selection.RFE",
        "params": {"estimator": "sklearn.linear_model.LogisticRegression"},
    }
    with pytest.raises(ManifestError) as info:
        check_classes(_manifest({}, selection))
    assert "'selection.params.estimator'" in info.value.message
    assert "{class: sklearn.linear_model.LogisticRegression" in info.value.hint


def test_derived_seeds_are_unchanged_by_message_paths() -> None:
    """Seeds derive from the internal key; changing it would change every recorded model."""
    from mlrepro.resolve import build

    est = build("sklearn.svm.SVC", {}, ("sklearn.",), "model.estimator", 42)
    from mlrepro.resolve import derive_seed

    assert est.random_state == derive_seed(42, "model.estimator/random_state")
