"""Handoff bundles: build, inspect, integrity before unpickling, the embedded API."""

from __future__ import annotations

import io
import json
import pickle
import shutil
import sqlite3
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import joblib
import pandas as pd
import pytest
from cli_helpers import run_cli, run_subprocess
from delivery_util import REPO_ROOT, train_project, trained_bundle

import mlrepro
from mlrepro.delivery import bundle as fmt
from mlrepro.delivery.api import EnvironmentWarning, IgnoredColumnsWarning, load_bundle
from mlrepro.errors import ArtifactError, DataError, PredictionRejected


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory):
    return trained_bundle("diabetes", tmp_path_factory.getbasetemp() / "delivery")


@pytest.fixture(scope="module")
def cancer(tmp_path_factory):
    return trained_bundle("breast_cancer", tmp_path_factory.getbasetemp() / "delivery")


class Marker:
    """A pickle that creates a file when unpickled: proof that code ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def rewrite(src: Path, dest: Path, replace: dict[str, bytes], fix_index: bool) -> None:
    """Copy a bundle, replacing members; with ``fix_index`` the index matches the new bytes."""
    with zipfile.ZipFile(src) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members.update(replace)
    if fix_index:
        index = json.loads(members[fmt.INDEX])
        fmt.write_archive(
            dest, index["project"], index["model_fingerprint"], {n: members[n] for n in fmt.MEMBERS}
        )
        return
    with zipfile.ZipFile(dest, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


# ------------------------------------------------------------------------------ build


def test_bundle_command_writes_one_deterministic_file(diabetes, tmp_path):
    project, _ = diabetes
    first = run_cli("bundle", "-p", str(project), "-o", str(tmp_path / "a.mlrepro"), "--json")
    second = run_cli("bundle", "-p", str(project), "-o", str(tmp_path / "b.mlrepro"), "--json")
    assert first.returncode == 0, first.stderr
    info = json.loads(first.stdout)
    assert info["fingerprint"] == json.loads(second.stdout)["fingerprint"]
    assert (tmp_path / "a.mlrepro").read_bytes() == (tmp_path / "b.mlrepro").read_bytes()
    lock = json.loads((project / "mlrepro.lock").read_text())
    pipeline = lock["stages"]["train"]["outputs"]["pipeline"]
    assert info["model_fingerprint"] == pipeline["fingerprint"]
    with zipfile.ZipFile(tmp_path / "a.mlrepro") as zf:
        assert zf.namelist() == [fmt.INDEX, *fmt.MEMBERS]


def test_bundle_refuses_a_stale_project(tmp_path):
    project = train_project("breast_cancer", tmp_path / "p")
    manifest = project / "mlrepro.yaml"
    manifest.write_text(manifest.read_text().replace("max_iter: 1000", "max_iter: 999"))
    result = run_cli("bundle", "-p", str(project), "-o", str(tmp_path / "m.mlrepro"))
    assert result.returncode == 2
    assert "stage 'train' is stale (parameters changed: model)" in result.stderr
    assert "run 'mlrepro run' first" in result.stderr
    assert not (tmp_path / "m.mlrepro").exists()


def test_bundle_refuses_an_untrained_project(tmp_path):
    shutil.copytree(
        REPO_ROOT / "examples" / "diabetes",
        tmp_path / "p",
        ignore=shutil.ignore_patterns(".mlrepro", "mlrepro.lock", "predictions*"),
    )
    result = run_cli("bundle", "-p", str(tmp_path / "p"), "-o", str(tmp_path / "m.mlrepro"))
    assert result.returncode == 2
    assert "stage 'extract' is missing (never run)" in result.stderr


def test_bundle_output_must_end_in_mlrepro(diabetes, tmp_path):
    result = run_cli("bundle", "-p", str(diabetes[0]), "-o", str(tmp_path / "m.zip"))
    assert result.returncode == 2
    assert "should end in '.mlrepro'" in result.stderr


# ------------------------------------------------------------------------------ inspect


def test_inspect_prints_card_and_fingerprints(diabetes):
    _, path = diabetes
    result = run_cli("inspect", str(path))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    lock = json.loads((diabetes[0] / "mlrepro.lock").read_text())
    for heading in ("# Model card: diabetes-progression", "## Training data", "## Metrics"):
        assert heading in out
    assert "as of **2026-06-30T00:00:00Z**" in out and "**398 rows**" in out
    assert lock["stages"]["train"]["outputs"]["pipeline"]["fingerprint"] in out
    assert "`bmi`, `bp`, `s3`, `s4`, `s5`, `s6`" in out  # selected features, model order
    assert "pipeline.joblib" in out and "every member verified" in out


def test_inspect_json(diabetes):
    _, path = diabetes
    data = json.loads(run_cli("inspect", str(path), "--json").stdout)
    assert data["fingerprint"] == load_bundle(path).fingerprint
    assert set(data["members"]) == set(fmt.MEMBERS)
    assert data["metadata"]["data"]["rows"] == 398
    assert data["metadata"]["input_columns"][0] == "clinic"
    assert data["card"].startswith("# Model card")


# ------------------------------------------------------------------------------ integrity


def evil_pickle(marker: Path, size: int | None = None) -> bytes:
    data = pickle.dumps(Marker(marker))
    return data + b"\0" * (size - len(data)) if size else data  # unpickling ignores the tail


@pytest.mark.parametrize(
    ("via", "same_size"), [("cli", False), ("cli", True), ("api", True), ("inspect", False)]
)
def test_tampered_bundle_is_refused_before_unpickling(diabetes, tmp_path, via, same_size):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.mlrepro"
    with zipfile.ZipFile(diabetes[1]) as zf:
        size = zf.getinfo(fmt.PIPELINE).file_size if same_size else None
    rewrite(diabetes[1], evil, {fmt.PIPELINE: evil_pickle(marker, size)}, fix_index=False)
    expected = "hash" if same_size else "size"
    if via == "api":
        match = f"pipeline.joblib does not match its recorded {expected}"
        with pytest.raises(ArtifactError, match=match):
            load_bundle(evil)
    else:
        args = ["inspect", str(evil)] if via == "inspect" else ["predict", "--bundle", str(evil)]
        if via == "cli":
            args += ["-i", str(diabetes[0] / "data" / "new_visits.csv"), "-o", "out.csv"]
        # one case in a real subprocess: the whole command never unpickles
        result = (run_subprocess if same_size else run_cli)(*args, cwd=tmp_path)
        assert result.returncode == 4
        assert f"member pipeline.joblib does not match its recorded {expected}" in result.stderr
        assert "refusing to load it (nothing was deserialized)" in result.stderr
        assert not (tmp_path / "out.csv").exists()
    assert not marker.exists()
    # the same payload, loaded directly, does run: the check above is what stopped it
    joblib.load(io.BytesIO(evil_pickle(marker, size)))
    assert marker.exists()


def test_rewritten_index_is_caught_by_the_pinned_fingerprint(diabetes, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.mlrepro"
    pinned = load_bundle(diabetes[1]).fingerprint
    rewrite(diabetes[1], evil, {fmt.PIPELINE: evil_pickle(marker)}, fix_index=True)
    csv = diabetes[0] / "data" / "new_visits.csv"
    args = ["--bundle", str(evil), "--expect", pinned, "-i", str(csv), "-o", "o.csv"]
    result = run_cli("predict", *args)
    assert result.returncode == 4
    assert f"not the expected {pinned}" in result.stderr
    with pytest.raises(ArtifactError, match="not the expected"):
        load_bundle(evil, expect_fingerprint=pinned)
    # inspect never unpickles, even when the index was forged consistently
    assert run_cli("inspect", str(evil)).returncode == 0
    assert not marker.exists()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("flip", "not a readable zip archive"),
        ("extra", "member(s) not listed in its index: ['extra.py']"),
        ("missing", "member(s) listed in its index but missing: ['schema.yaml']"),
        ("not_zip", "not a readable zip archive"),
        ("newer", "has format 99"),
    ],
)
def test_damaged_bundles_are_refused(diabetes, tmp_path, damage, message):
    path = tmp_path / "bad.mlrepro"
    src = diabetes[1]
    if damage == "flip":
        data = bytearray(src.read_bytes())
        data[len(data) // 2] ^= 0xFF  # inside the deflated pipeline: the CRC fails
        path.write_bytes(bytes(data))
    elif damage == "not_zip":
        path.write_text("hello")
    else:
        with zipfile.ZipFile(src) as zf:
            members = {n: zf.read(n) for n in zf.namelist()}
        if damage == "extra":
            members["extra.py"] = b"print('hi')"
        elif damage == "missing":
            del members[fmt.SCHEMA]
        else:
            index = json.loads(members[fmt.INDEX])
            members[fmt.INDEX] = json.dumps({**index, "bundle_format": 99}).encode()
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
    with pytest.raises(ArtifactError) as exc:
        load_bundle(path)
    assert message in exc.value.message
    assert exc.value.exit_code == 4


def test_missing_bundle_file(tmp_path):
    result = run_cli("inspect", str(tmp_path / "nope.mlrepro"))
    assert result.returncode == 4
    assert "does not exist" in result.stderr and "mlrepro bundle -o FILE" in result.stderr


# ------------------------------------------------------------------------------ predict --bundle


def test_predict_with_bundle_needs_no_project_or_database(diabetes, tmp_path):
    project, path = diabetes
    work = tmp_path / "prod"
    work.mkdir()
    shutil.copy(path, work / "model.mlrepro")
    shutil.copy(project / "data" / "new_visits.csv", work / "new.csv")
    result = run_subprocess(
        "predict", "--bundle", "model.mlrepro", "-i", "new.csv", "-o", "p.parquet", "--json",
        cwd=work,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["rows"], summary["predicted"], summary["rejected"]) == (20, 20, 0)
    project_run = run_cli(
        "predict", "-p", str(project), "-i", "new.csv", "-o", str(tmp_path / "q.parquet"),
        "--json", cwd=work,
    )  # fmt: skip
    assert json.loads(project_run.stdout)["fingerprint"] == summary["fingerprint"]
    assert sorted(p.name for p in work.iterdir()) == ["model.mlrepro", "new.csv", "p.parquet"]


def test_predict_bundle_to_a_table_needs_url(diabetes, tmp_path):
    csv = str(diabetes[0] / "data" / "new_visits.csv")
    refused = run_cli("predict", "--bundle", str(diabetes[1]), "-i", csv, "--table", "preds")
    assert refused.returncode == 2
    assert "--query and --table need --url" in refused.stderr
    sqlite3.connect(tmp_path / "out.db").close()  # mlrepro writes into existing databases
    url = f"sqlite:///{tmp_path / 'out.db'}"
    ok = run_cli(
        "predict", "--bundle", str(diabetes[1]), "-i", csv, "--table", "preds", "--url", url
    )
    assert ok.returncode == 0, ok.stderr
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM preds")).scalar_one() == 20
    engine.dispose()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "."], "use just one of --bundle or -p/--project"),
        (["--query", "SELECT 1"], "--query and --table need --url"),
        (["--engine", "spark"], "--engine 'spark' is not valid"),
        (["--scheduler", "tcp://x:1"], "--scheduler and --workers need --engine dask"),
    ],
)
def test_predict_bundle_usage_errors(diabetes, tmp_path, args, message):
    base = ["predict", "--bundle", str(diabetes[1]), "-o", "o.csv"]
    if "--query" not in args:
        base += ["-i", str(diabetes[0] / "data" / "new_visits.csv")]
    result = run_cli(*base, *args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr


def test_expect_needs_bundle(diabetes):
    result = run_cli(
        "predict", "-p", str(diabetes[0]), "--expect", "b3:00", "-i", "x.csv", "-o", "o"
    )
    assert result.returncode == 2
    assert "--expect needs --bundle" in result.stderr


# ------------------------------------------------------------------------------ embedded API


def test_load_bundle_metadata_and_contract(diabetes):
    project, path = diabetes
    model = mlrepro.load_bundle(path)
    lock = json.loads((project / "mlrepro.lock").read_text())
    train = lock["stages"]["train"]
    m = model.metadata
    assert m.model_fingerprint == train["outputs"]["pipeline"]["fingerprint"]
    assert m.features == tuple(train["details"]["features"])
    assert m.input_columns == tuple(train["details"]["input_columns"])
    assert (m.as_of, m.training_rows, m.task) == ("2026-06-30T00:00:00Z", 398, "regression")
    assert m.metrics == train["details"]["metrics"]
    assert (
        m.fingerprints["extract"]["snapshot"]
        == lock["stages"]["extract"]["outputs"]["snapshot"]["fingerprint"]
    )
    assert m.card.startswith("# Model card: diabetes-progression")
    assert model.contract.input_columns == list(m.input_columns)
    clinic = model.columns[0]
    assert (clinic.name, clinic.dtype, clinic.nullable) == ("clinic", "str", False)
    assert clinic.categories == ("east", "north", "south", "west")
    assert [c.nullable for c in model.columns if c.name in ("bmi", "bp")] == [True, True]
    assert model.output_columns == ["visit_id", "prediction", "model_fingerprint"]
    # the BLAS/OpenMP pools loaded depend on what this test process imported before (a
    # LightGBM test loads another OpenMP): only package differences would be wrong here
    pools = ("openmp ", "blas ")
    assert [d for d in model.environment_diff() if not d.startswith(pools)] == []


def test_api_predict_matches_the_cli(diabetes, tmp_path):
    project, path = diabetes
    csv = project / "data" / "new_visits.csv"
    run_cli("predict", "--bundle", str(path), "-i", str(csv), "-o", str(tmp_path / "p.csv"))
    expected = pd.read_csv(tmp_path / "p.csv")
    frame = pd.read_csv(csv)
    frame.index = frame.index + 100
    got = load_bundle(path).predict(frame)
    assert list(got.index) == list(frame.index)
    assert got["prediction"].tolist() == pytest.approx(expected["prediction"].tolist(), rel=1e-12)
    assert got["visit_id"].tolist() == frame["visit_id"].tolist()


def test_api_accepts_records(diabetes):
    model = load_bundle(diabetes[1])
    rows = pd.read_csv(diabetes[0] / "data" / "new_visits.csv").head(3).to_dict("records")
    one = model.predict(rows[0])
    many = model.predict(rows)
    assert len(one) == 1 and len(many) == 3
    assert one["prediction"].iloc[0] == many["prediction"].iloc[0]
    with pytest.raises(DataError, match="expected a DataFrame, a record"):
        model.predict("not records")


def invalid_frame(project: Path) -> pd.DataFrame:
    frame = pd.read_csv(project / "data" / "new_visits.csv")
    frame["age"] = frame["age"].astype(object)
    frame.loc[1, "clinic"] = "mars"
    frame.loc[2, "age"] = "forty"
    frame.loc[3, "s1"] = float("nan")
    return frame


def test_api_strict_predict_names_invalid_rows(diabetes):
    model = load_bundle(diabetes[1])
    with pytest.raises(PredictionRejected) as exc:
        model.predict(invalid_frame(diabetes[0]))
    assert exc.value.message == (
        "3 input row(s) are invalid: row 1: column 'clinic': unseen category (not in the "
        "training data); row 2: column 'age': not a number; row 3: column 's1': missing value "
        "(the training data had none)"
    )


def test_api_validate_and_predict_valid(diabetes):
    model = load_bundle(diabetes[1])
    frame = invalid_frame(diabetes[0]).set_axis([f"r{i}" for i in range(20)], axis=0)
    check = model.validate(frame)
    assert not check.ok
    assert sorted(check.reasons) == [1, 2, 3]
    assert list(check.rejects.index) == ["r1", "r2", "r3"]
    assert len(check.valid) == 17 and check.valid["age"].dtype == "float64"
    result = model.predict_valid(frame)
    assert list(result.rejects.index) == ["r1", "r2", "r3"]
    assert result.rejects["age"].tolist()[1] == "forty"  # kept as text
    assert len(result.predictions) == 17 and "r1" not in result.predictions.index
    full = model.predict(frame.drop(index=["r1", "r2", "r3"]))
    assert full["prediction"].tolist() == result.predictions["prediction"].tolist()


def test_api_warns_about_ignored_columns_and_keeps_asked_ones(diabetes):
    model = load_bundle(diabetes[1])
    frame = pd.read_csv(diabetes[0] / "data" / "new_visits.csv").assign(note="x")
    with pytest.warns(IgnoredColumnsWarning, match="ignoring 1 input column"):
        model.predict(frame)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kept = model.predict(frame, keep=["note"])
    assert kept["note"].tolist() == ["x"] * 20


def test_api_missing_column_is_a_data_error(diabetes):
    model = load_bundle(diabetes[1])
    frame = pd.read_csv(diabetes[0] / "data" / "new_visits.csv").rename(columns={"bmi": "bmi_"})
    with pytest.raises(DataError, match=r"missing column\(s\) \['bmi'\]") as exc:
        model.predict(frame)
    assert "did you mean 'bmi' -> 'bmi_'" in exc.value.hint


def test_classification_bundle_has_probabilities(cancer):
    model = load_bundle(cancer[1])
    frame = pd.read_csv(cancer[0] / "data" / "new_biopsies.csv")
    out = model.predict(frame)
    assert model.metadata.task == "classification"
    assert list(out.columns) == model.output_columns == [
        "biopsy_id", "prediction", "proba_0", "proba_1", "model_fingerprint",
    ]  # fmt: skip
    assert ((out["proba_0"] + out["proba_1"]) - 1).abs().max() < 1e-9


def test_environment_mismatch_warns(diabetes, tmp_path):
    with zipfile.ZipFile(diabetes[1]) as zf:
        members = {n: zf.read(n) for n in fmt.MEMBERS}
    meta = json.loads(members[fmt.METADATA])
    meta["environment"]["packages"]["scikit-learn"] = "0.1.0"
    members[fmt.METADATA] = json.dumps(meta).encode()
    path = tmp_path / "old.mlrepro"
    fmt.write_archive(path, meta["project"], meta["model_fingerprint"], members)
    with pytest.warns(EnvironmentWarning, match=r"scikit-learn 0\.1\.0 -> "):
        load_bundle(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_bundle(path, check_environment=False)


def test_import_mlrepro_stays_light():
    code = (
        "import sys, mlrepro; mlrepro.load_bundle; from mlrepro import cli; "
        "heavy = [m for m in ('pandas', 'sklearn', 'pandera', 'distributed', 'pyarrow') "
        "if m in sys.modules]; print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert result.stdout.strip() == "[]", result.stderr


def _metadata_without(key: str):
    def edit(meta: dict) -> dict:
        return {k: v for k, v in meta.items() if k != key}

    return edit


@pytest.mark.parametrize(
    ("member", "content", "message"),
    [
        (fmt.METADATA, b"{", "member metadata.json is not valid JSON"),
        (fmt.METADATA, b"[1, 2]", "member metadata.json is not a JSON object"),
        (fmt.METADATA, _metadata_without("input_columns"), "field 'input_columns' is missing"),
        (fmt.METADATA, lambda m: {**m, "data": None}, "member metadata.json is malformed"),
        (fmt.CARD, b"\xff\xfe", "member MODEL_CARD.md is not UTF-8 text"),
        (fmt.SCHEMA, b"::::", "its input schema does not describe input column(s)"),
        (fmt.PIPELINE, "dict", "member pipeline.joblib holds a dict, not a fitted model"),
    ],
    ids=["meta-not-json", "meta-list", "meta-no-key", "meta-bad-field", "card", "schema", "pipe"],
)
def test_consistently_reindexed_but_unusable_members_are_artifact_errors(
    diabetes, tmp_path, member, content, message
):
    """Regression: members whose bytes match a (rewritten) index but whose content is unusable
    crashed with exit 70 (KeyError, JSONDecodeError...) or, for a damaged schema, loaded
    and predicted with no input validation at all."""
    if callable(content):
        with zipfile.ZipFile(diabetes[1]) as zf:
            content = json.dumps(content(json.loads(zf.read(member)))).encode()
    elif content == "dict":
        buf = io.BytesIO()
        joblib.dump({"not": "a model"}, buf)
        content = buf.getvalue()
    path = tmp_path / "odd.mlrepro"
    rewrite(diabetes[1], path, {member: content}, fix_index=True)
    with pytest.raises(ArtifactError, match="refusing to load it") as exc:
        load_bundle(path)
    assert message in exc.value.message
    csv = diabetes[0] / "data" / "new_visits.csv"
    result = run_cli("predict", "--bundle", str(path), "-i", str(csv), "-o", "o.csv", cwd=tmp_path)
    assert result.returncode == 4, result.stderr
    assert message in result.stderr
    assert run_cli("inspect", str(path)).returncode in (0, 4)  # never an internal error
