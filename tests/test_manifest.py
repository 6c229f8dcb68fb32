"""Manifest loading: valid documents, and every validation error's message and hint."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from mlrepro.core import manifest as mf
from mlrepro.errors import ManifestError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

BASE = {
    "name": "t",
    "seed": 1,
    "source": {
        "url": "sqlite:///data.db",
        "query": "SELECT * FROM t",
        "timestamp_column": "ts",
        "as_of": "2026-01-01T00:00:00Z",
        "order_by": ["id"],
    },
    "target": "y",
    "features": [
        {
            "name": "scale",
            "transformer": "sklearn.preprocessing.StandardScaler",
            "columns": "numeric",
        }
    ],
    "selection": {"method": "sklearn.feature_selection.SelectKBest", "params": {"k": 2}},
    "model": {"estimator": "sklearn.linear_model.Ridge", "params": {"alpha": 1.0}},
}


def with_change(path: str, value: object) -> dict:
    data = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node = data
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if value is KeyError:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


@pytest.mark.parametrize("example", ["diabetes", "breast_cancer"])
def test_examples_load(example: str) -> None:
    m = mf.load(EXAMPLES / example)
    assert m.name and m.model.estimator.startswith("sklearn.")
    assert m.root == (EXAMPLES / example).resolve()


def test_loads_design_sketch_defaults() -> None:
    m = mf.from_dict(BASE)
    assert m.source.order_by == ("id",)
    assert m.model.test_size == 0.2
    assert m.features[0].columns == "numeric"
    assert m.excluded_columns == ("y", "ts", "id")


def test_project_may_be_folder_or_file(tmp_path: Path) -> None:
    (tmp_path / "mlrepro.yaml").write_text(yaml.safe_dump(BASE))
    assert mf.load(tmp_path).name == "t"
    assert mf.load(tmp_path / "mlrepro.yaml").name == "t"


def test_utf16_and_bom_manifests_load(tmp_path: Path) -> None:
    text = yaml.safe_dump(BASE)
    (tmp_path / "mlrepro.yaml").write_bytes(text.encode("utf-8-sig"))
    a = mf.load(tmp_path)
    (tmp_path / "mlrepro.yaml").write_bytes(text.encode("utf-16"))
    assert mf.load(tmp_path) == a


def test_yaml_timestamp_is_accepted() -> None:
    import datetime as dt

    m = mf.from_dict(with_change("source.as_of", dt.datetime(2026, 1, 1, 12)))
    assert m.source.as_of == "2026-01-01T12:00:00Z"


CASES = [
    ("nam", "x", "manifest field 'nam': unknown key", "did you mean 'name'?"),
    ("source.querry", "x", "manifest field 'source.querry': unknown key", "did you mean 'query'?"),
    ("model.estimater", "x", "unknown key", "did you mean 'estimator'?"),
    ("target", KeyError, "manifest field 'target' is required but missing", "add 'target:'"),
    ("source.as_of", KeyError, "'source.as_of' is required", "source section"),
    ("seed", "abc", "manifest field 'seed': expected an integer, found 'abc' (str)", "fix 'seed'"),
    ("seed", -1, "between 0 and 2**32-1", "fix 'seed'"),
    ("model.test_size", 1.5, "'model.test_size': expected a number between 0 and 1", "fix"),
    ("source.order_by", [], "expected a non-empty list of strings", "fix 'source.order_by'"),
    ("source.order_by", ["id", "id"], "duplicate entries ['id']", "list each name once"),
    ("source.as_of", "yesterday", "expected an ISO 8601 timestamp", "fix 'source.as_of'"),
    ("source.as_of", "2999-01-01", "is in the future", "use a past timestamp"),
    (
        "features.0.columns",
        "numerik",
        "'numerik' is not a column selector",
        "did you mean 'numeric'?",
    ),
    ("features.0.transformer", "os.system", "class path 'os.system' is not allowed", "plugins:"),
    ("features.0.transformer", "StandardScaler", "expected a dotted class path", "fix"),
    ("model.estimator", "subprocess.Popen", "'model.estimator': class path", "scikit-learn"),
    ("model.metrics", ["r3"], "unknown metric 'r3'", "did you mean 'r2'?"),
    ("model.format", "pickle", "expected one of joblib, skops", "fix 'model.format'"),
    ("model.params", [1, 2], "'model.params': expected a mapping", "fix 'model.params'"),
    ("source", "sqlite://", "'source': expected a mapping", "fix 'source'"),
    ("plugins", ["bad-name"], "expected a Python module name", "fix 'plugins[0]'"),
]


@pytest.mark.parametrize(("path", "value", "message", "hint"), CASES)
def test_validation_errors_name_field_and_fix(
    path: str, value: object, message: str, hint: str
) -> None:
    data = with_change(path, value) if "." in path or path in BASE else {**BASE, path: value}
    with pytest.raises(ManifestError) as info:
        mf.from_dict(data)
    assert message in info.value.message
    assert hint in (info.value.hint or "")


def test_duplicate_step_names() -> None:
    data = copy.deepcopy(BASE)
    data["features"].append(dict(data["features"][0]))
    with pytest.raises(ManifestError, match="step name 'scale' is used twice"):
        mf.from_dict(data)


def test_plugins_extend_the_allow_list() -> None:
    data = with_change("features.0.transformer", "mycompany.features.Clipper")
    data["plugins"] = ["mycompany.features"]
    assert mf.from_dict(data).features[0].transformer == "mycompany.features.Clipper"


def test_not_a_mapping() -> None:
    with pytest.raises(ManifestError, match="must be a mapping"):
        mf.from_dict(["a", "b"])


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "mlrepro.yaml").write_text("name: x\nsource: [unclosed\n")
    with pytest.raises(ManifestError) as info:
        mf.load(tmp_path)
    assert "is not valid YAML at line" in info.value.message


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no manifest found") as info:
        mf.load(tmp_path)
    assert "-p/--project" in info.value.hint


def test_unquoted_yaml_date_is_midnight_utc() -> None:
    import datetime as dt

    m = mf.from_dict(with_change("source.as_of", dt.date(2025, 5, 1)))
    assert m.source.as_of == "2025-05-01T00:00:00Z"
