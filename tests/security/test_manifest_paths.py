"""Manifest-declared files (predict.input, predict.output) stay inside the project."""

from __future__ import annotations

import os

import pytest


def _set_predict(root, **values) -> None:  # noqa: ANN001
    text = (root / "mlrepro.yaml").read_text()
    head, _, _ = text.partition("predict:")
    lines = "".join(f"  {k}: {v!r}\n" for k, v in values.items())
    (root / "mlrepro.yaml").write_text(f"{head}predict:\n{lines}")


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "store"])
def test_output_outside_the_project_is_a_manifest_error(hostile, cli, kind) -> None:  # noqa: ANN001
    target = {
        "absolute": str(hostile.decoy),
        "dotdot": os.path.relpath(hostile.decoy, hostile.root),
        "store": ".mlrepro/objects/x.parquet",
    }[kind]
    _set_predict(hostile.root, input="data/new_visits.csv", output=target)
    for args in (("predict",), ("run",), ("verify", "--offline"), ("status",)):
        res = cli(*args, "-p", hostile.root)
        assert res.code == 2, (args, res.err)
        assert "predict.output" in res.err and "hint:" in res.err
    assert hostile.decoy_intact()


def test_output_through_a_symlinked_folder_is_refused(hostile, cli) -> None:  # noqa: ANN001
    (hostile.root / "out").symlink_to(hostile.outside)
    _set_predict(hostile.root, input="data/new_visits.csv", output="out/decoy.yaml")
    res = cli("predict", "-p", hostile.root)
    assert res.code == 2
    assert "predict.output" in res.err and "symlink" in res.err
    assert hostile.decoy_intact()


def test_input_outside_the_project_is_refused(hostile, cli) -> None:  # noqa: ANN001
    _set_predict(hostile.root, input=str(hostile.decoy))
    res = cli("predict", "-p", hostile.root)
    assert res.code == 2
    assert "predict.input" in res.err and "is absolute" in res.err


def test_dot_slash_and_nested_outputs_still_work(hostile, cli) -> None:  # noqa: ANN001
    _set_predict(hostile.root, input="./data/new_visits.csv", output="./out/preds.csv")
    res = cli("predict", "-p", hostile.root)
    assert res.code == 0, res.err
    assert (hostile.root / "out" / "preds.csv").is_file()


def test_a_path_typed_on_the_command_line_is_trusted(hostile, cli, tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "elsewhere" / "preds.csv"
    out.parent.mkdir()
    res = cli("predict", "-p", hostile.root, "-i", hostile.root / "data/new_visits.csv", "-o", out)
    assert res.code == 0, res.err
    assert out.is_file()
