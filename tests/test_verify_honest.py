"""verify must not pass what was never recorded, and its hints must name a command that
works (issue 11, items 4 and 5)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import yaml
from cli_helpers import run_cli


def _edit_manifest(project: Path, change) -> None:  # noqa: ANN001 - a callable on the dict
    path = project / "mlrepro.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _small_model(data: dict) -> None:
    data["model"]["params"] = {"n_estimators": 10, "max_depth": 4}
    data.pop("predict", None)


def test_verify_fails_when_a_stage_never_trained(copy_example, capsys) -> None:
    project = copy_example("diabetes")

    def broken_train(data: dict) -> None:
        _small_model(data)
        data["model"]["params"]["max_depth"] = -3  # refused by scikit-learn at fit time

    _edit_manifest(project, broken_train)
    ran = run_cli("run", "-q", "-p", project)
    assert ran.code == 2 and "RandomForestRegressor" in ran.err
    result = run_cli("verify", "-p", project, "--offline", "--json")
    assert result.code == 1, result.out
    report = result.json()
    assert report["reproduced"] is False and report["cause"] == "train"
    train = next(s for s in report["stages"] if s["stage"] == "train")
    assert train["verdict"] == "never recorded"
    assert train["reasons"][0].startswith("train: never recorded")

    text = run_cli("verify", "-p", project, "--offline")
    assert text.code == 1
    assert "never recorded" in text.out and "'train' is the first stage" in text.out
    assert "mlrepro run" in text.out
    assert "not reproduced" in text.out and "\nreproduced:" not in text.out


def test_backfill_hint_names_a_command_that_re_queries(copy_example, capsys) -> None:
    project = copy_example("diabetes")
    _edit_manifest(project, _small_model)
    assert run_cli("run", "-q", "-p", project).code == 0
    with sqlite3.connect(project / "data" / "diabetes.db") as conn:
        row = conn.execute("SELECT * FROM visits ORDER BY visit_id LIMIT 1").fetchone()
        cols = [d[1] for d in conn.execute("PRAGMA table_info(visits)")]
        new = dict(zip(cols, row, strict=True))
        new["visit_id"] = 90001
        new["recorded_at"] = "2026-01-15T00:00:00Z"  # before as_of: a back-fill
        marks = ", ".join("?" for _ in cols)
        conn.execute(f"INSERT INTO visits VALUES ({marks})", list(new.values()))

    verify = run_cli("verify", "-p", project)
    assert verify.code == 1
    assert "source changed" in verify.out
    assert "mlrepro extract --force" in verify.out

    # 'run' does not re-query: extract's key is unchanged, so status says up to date.
    rerun = run_cli("run", "--json", "-p", project).json()
    assert {s["stage"]: s["status"] for s in rerun["stages"]}["extract"] == "skipped"
    assert run_cli("verify", "-p", project).code == 1

    # The hinted commands do: a new snapshot, the stages after it rebuilt, verify passes.
    assert run_cli("extract", "--force", "-q", "-p", project).code == 0
    assert run_cli("run", "-q", "-p", project).code == 0
    again = run_cli("verify", "-p", project, "--json")
    assert again.code == 0, again.out
    assert again.json()["reproduced"] is True


@pytest.mark.parametrize("stage", ["extract"])
def test_verify_of_a_project_that_only_extracted(copy_example, capsys, stage) -> None:
    project = copy_example("diabetes")
    _edit_manifest(project, _small_model)
    assert run_cli(stage, "-q", "-p", project).code == 0
    report = run_cli("verify", "-p", project, "--json")
    assert report.code == 1
    verdicts = {s["stage"]: s["verdict"] for s in report.json()["stages"]}
    assert verdicts["extract"] == "identical"
    assert verdicts["features"] == verdicts["select"] == verdicts["train"] == "never recorded"
