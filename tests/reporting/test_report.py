"""`mlrepro report` and verify's CI outputs (--report, --junit, --format github), end to end."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest
from cli_helpers import run_cli

SECTIONS = ("summary", "lineage", "verify", "metrics", "plots", "environment")


def _images(html: str) -> list[str]:
    return re.findall(r'<img alt="([^"]+)" src="data:image/svg\+xml;base64,', html)


def _no_remote(html: str) -> None:
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.I)
    assert "<script" not in html.lower()
    assert "default-src 'none'" in html


@pytest.mark.slow
def test_report_of_a_classifier_has_every_section_and_plot(capsys, trained, tmp_path):
    out = tmp_path / "report.html"
    res = run_cli("report", "-p", trained["breast_cancer"], "-o", out)
    assert res.code == 0, res.err
    assert "reproduced" in res.out and str(out) in res.out
    html = out.read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f'<section id="{section}">' in html
    assert _images(html) == [
        "Confusion matrix",
        "ROC curve",
        "Precision-recall curve",
        "Permutation importance",
    ]
    _no_remote(html)
    assert "reproduced" in html and "not reproduced" not in html
    # lineage: the source, the query, as_of, rows, and every stage with its fingerprints
    lock = json.loads((trained["breast_cancer"] / "mlrepro.lock").read_text())
    assert "SELECT * FROM biopsies" in html and "2026-06-30T00:00:00Z" in html
    for stage, rec in lock["stages"].items():
        assert f"<b>{stage}</b>" in html
        for output in rec["outputs"].values():
            assert output["fingerprint"][:15] in html
    assert (
        "accuracy" in html and f"{lock['stages']['train']['details']['metrics']['f1']:.4g}" in html
    )


def test_report_of_a_regressor_without_verify(capsys, trained, tmp_path):
    out = tmp_path / "r.html"
    res = run_cli("report", "-p", trained["diabetes"], "-o", out, "--no-verify", "--json")
    assert res.code == 0, res.err
    summary = res.json()
    assert summary == {
        "report": str(out),
        "format": "html",
        "project": "diabetes-progression",
        "verified": False,
        "reproduced": None,
        "verify_exit_code": None,
    }
    html = out.read_text(encoding="utf-8")
    assert _images(html) == ["Predicted vs actual", "Residuals", "Permutation importance"]
    assert "not verified" in html
    _no_remote(html)


def test_markdown_report_for_a_pull_request(capsys, trained):
    res = run_cli("report", "-p", trained["diabetes"], "--format", "markdown", "--offline")
    assert res.code == 0, res.err
    md = res.out
    assert md.startswith("## mlrepro report: diabetes-progression (reproduced)")
    assert "| stage | verdict | reasons |" in md
    for stage in ("extract", "features", "select", "train", "predict"):
        assert re.search(rf"\| {stage} \| \S+ (identical|skipped) \|", md), stage
    assert "<img" not in md and "<svg" not in md


@pytest.mark.slow
def test_verify_outputs_for_a_stage_that_is_not_identical(capsys, project_copy, tmp_path):
    project = project_copy("diabetes")
    manifest = project / "mlrepro.yaml"
    manifest.write_text(manifest.read_text().replace("n_estimators: 200", "n_estimators: 150"))
    junit, html_file = tmp_path / "verify.xml", tmp_path / "verify.html"
    res = run_cli(
        "verify",
        "-p",
        project,
        "--offline",
        "--format",
        "github",
        "--junit",
        junit,
        "--report",
        html_file,
    )
    assert res.code == 1, res.err
    lines = res.out.splitlines()
    train = next(line for line in lines if "train different" in line)
    assert train.startswith(
        "::error title=mlrepro verify diabetes-progression%3A train different::"
    )
    assert "parameter model.params.n_estimators: 200 -> 150" in train
    assert "%0A" in train  # several reasons, newlines escaped: one command per line
    assert lines[-1].startswith("::error title=mlrepro verify::not reproduced")

    root = ET.parse(junit).getroot()
    # predict fails too: the recorded pipeline is a pickle, so it is fed the changed model
    assert root.tag == "testsuites" and root.get("failures") == "2"
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert list(cases) == ["extract", "features", "select", "train", "predict"]
    failure = cases["train"].find("failure")
    assert failure is not None and failure.get("type") == "different"
    assert "n_estimators: 200 -> 150" in failure.text
    assert cases["extract"].find("skipped") is not None  # --offline
    assert cases["features"].find("failure") is None

    html = html_file.read_text(encoding="utf-8")
    assert "Prediction differences (train)" in _images(html)
    assert "not reproduced" in html and "n_estimators: 200 -&gt; 150" in html


def test_junit_of_a_reproduced_project(capsys, trained, tmp_path):
    junit = tmp_path / "j.xml"
    res = run_cli("verify", "-p", trained["breast_cancer"], "-q", "--junit", junit)
    assert res.code == 0 and res.out == ""
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("tests") == "5" and suite.get("failures") == "0"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["reproduced"] == "true" and props["exit_code"] == "0"


def test_tampered_artifact_junit_and_report_are_still_written(capsys, project_copy, tmp_path):
    project = project_copy("breast_cancer")
    lock = json.loads((project / "mlrepro.lock").read_text())
    pipeline = project / lock["stages"]["train"]["outputs"]["pipeline"]["path"]
    pipeline.write_bytes(pipeline.read_bytes() + b"x")
    junit, report = tmp_path / "j.xml", tmp_path / "r.html"
    res = run_cli("verify", "-p", project, "--offline", "--junit", junit, "--report", report)
    assert res.code == 4
    case = next(c for c in ET.parse(junit).getroot().iter("testcase") if c.get("name") == "train")
    assert case.find("failure").get("type") == "tampered"
    html = report.read_text(encoding="utf-8")
    assert re.search(r"<b>train</b></td><td><span class=\"badge\"[^>]*>tampered</span>", html)
    assert "no evaluation plots" in html and "does not match its recorded hash" in html
    assert _images(html) == []  # nothing is drawn from a tampered pipeline


def test_hostile_lock_text_is_escaped_and_odd_types_do_not_crash(capsys, project_copy, tmp_path):
    project = project_copy("diabetes")
    path = project / "mlrepro.lock"
    lock = json.loads(path.read_text())
    lock["stages"]["extract"]["details"]["query"] = "<script>alert(1)</script>"
    lock["stages"]["extract"]["details"]["rows"] = "many"
    lock["stages"]["train"]["details"]["metrics"] = {"r2": "high", "mae": None}
    lock["stages"]["weird<b>"] = {"params": {}, "outputs": {}}
    path.write_text(json.dumps(lock))
    out = tmp_path / "r.html"
    res = run_cli("report", "-p", project, "-o", out, "--no-verify")
    assert res.code == 0, res.err
    html = out.read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html and "weird&lt;b&gt;" in html
    # an output record of the wrong shape is refused when the lock is read (exit 4)
    lock["stages"]["features"]["outputs"]["matrix"] = ["not", "a", "record"]
    path.write_text(json.dumps(lock))
    res = run_cli("report", "-p", project, "-o", out, "--no-verify")
    assert res.code == 4 and "features.matrix" in res.err


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (("report", "--format", "pdf"), "unknown report format 'pdf'", 2),
        (("report", "-o", "missing/r.html"), "does not exist", 2),
        (("report", "--offline", "--no-verify"), "--offline needs --verify", 2),
        (("verify", "--format", "xml"), "unknown --format 'xml'", 2),
        (("verify", "--json", "--format", "github"), "disagree", 2),
        (("verify", "--junit", "missing/j.xml"), "does not exist", 2),
        (("verify", "--report", "."), "is a folder", 2),
        (("verify", "--junit", "-"), "--junit needs a file name", 2),
    ],
)
def test_bad_usage(capsys, trained, monkeypatch, tmp_path, args, message, code):
    monkeypatch.chdir(tmp_path)
    res = run_cli(*args, "-p", trained["diabetes"])
    assert res.code == code
    assert message in res.err and "hint:" in res.err


def test_report_without_a_lock(capsys, copy_example, tmp_path):
    project = copy_example("diabetes")
    res = run_cli("report", "-p", project, "-o", tmp_path / "r.html", "--no-verify")
    assert res.code == 4
    assert "records no stages: nothing to report" in res.err and "mlrepro run" in res.err
    assert not (tmp_path / "r.html").exists()
    res = run_cli("report", "-p", project, "-o", tmp_path / "r.html", "--json")
    assert res.code == 4 and res.json()["error"] == "artifact"


def test_verify_report_markdown_file_and_json_format(capsys, trained, tmp_path):
    res = run_cli(
        "verify",
        "-p",
        trained["diabetes"],
        "--offline",
        "--format",
        "json",
        "--report",
        tmp_path / "v.md",
    )
    assert res.code == 0
    assert res.json()["reproduced"] is True
    assert (tmp_path / "v.md").read_text().startswith("## mlrepro report: diabetes-progression")


def test_unreadable_output_path_fails_before_verifying(capsys, trained, tmp_path):
    target = tmp_path / "r.html"
    target.mkdir()
    res = run_cli("report", "-p", trained["diabetes"], "-o", target)
    assert res.code == 2 and "is a folder" in res.err


def test_github_format_writes_the_job_summary(capsys, trained, tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    res = run_cli("verify", "-p", trained["diabetes"], "--offline", "--format", "github")
    assert res.code == 0
    text = summary.read_text()
    assert text.startswith("earlier step\n## mlrepro report: diabetes-progression (reproduced)")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "no" / "such" / "file"))
    res = run_cli("verify", "-p", trained["diabetes"], "--offline", "--format", "github")
    assert res.code == 0 and "cannot append the report to GITHUB_STEP_SUMMARY" in res.err


def test_report_json_needs_a_file(capsys, trained):
    res = run_cli("report", "-p", trained["diabetes"], "-o", "-", "--json")
    assert res.code == 2 and "needs -o FILE" in res.err
    assert res.json()["error"] == "usage"


@pytest.mark.slow
def test_multiclass_text_labels(capsys, copy_example, tmp_path):
    """A new user's data: three text classes (the lab), one-vs-rest curves per class."""
    project = copy_example("breast_cancer")
    manifest = project / "mlrepro.yaml"
    text = manifest.read_text().replace("target: diagnosis", "target: lab")
    text = text.replace(
        "  - name: onehot\n    transformer: sklearn.preprocessing.OneHotEncoder\n"
        "    params: {handle_unknown: error, sparse_output: false}\n    columns: [lab]\n",
        "",
    )
    text = text.replace("metrics: [accuracy, f1, roc_auc]", "metrics: [accuracy]")
    text = text[: text.index("predict:")]  # the new biopsies have no diagnosis column
    manifest.write_text(text)
    assert run_cli("run", "-p", project, "-q").code == 0
    out = tmp_path / "r.html"
    res = run_cli("report", "-p", project, "-o", out, "--no-verify")
    assert res.code == 0, res.err
    html = out.read_text(encoding="utf-8")
    assert _images(html) == [
        "Confusion matrix",
        "ROC curve",
        "Precision-recall curve",
        "Permutation importance",
    ]
    assert "no evaluation plots" not in html


def test_changed_prediction_input_shows_the_prediction_differences(capsys, project_copy, tmp_path):
    """predict's differences come from the two prediction files, rows matched by key."""
    import pandas as pd

    project = project_copy("diabetes")
    path = project / "data" / "new_visits.csv"
    frame = pd.read_csv(path)
    frame.loc[3, "bmi"] = frame["bmi"].max() + 10  # one row's prediction moves
    frame.iloc[::-1].to_csv(path, index=False)  # and the rows come in another order
    report = tmp_path / "r.html"
    res = run_cli("verify", "-p", project, "--stage", "predict", "--report", report, "--json")
    assert res.code == 1, res.err
    stage = res.json()["stages"][0]
    assert stage["verdict"] == "source changed"
    deltas = stage["prediction_differences"]
    assert deltas["count"] == 20 and deltas["nonzero"] == 1 and deltas["max_abs"] > 0
    assert "Prediction differences (predict)" in _images(report.read_text(encoding="utf-8"))
