"""Batch predict: invalid-row policies, reasons, streaming, atomic outputs, bounded memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import run_cli
from delivery_util import REPO_ROOT, trained_bundle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlrepro.delivery.api import load_bundle
from mlrepro.errors import DataError, PredictionRejected
from mlrepro.predict.contract import Contract, fast_validate, invalid_rows
from mlrepro.predict.prefetch import prefetch
from mlrepro.predict.scoring import AcceleratedPipeline, score_chunk
from mlrepro.predict.sink import run_prediction


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory):
    return trained_bundle("diabetes", tmp_path_factory.getbasetemp() / "delivery")


@pytest.fixture
def bad_csv(diabetes, tmp_path) -> Path:
    """The 20 new visits with one problem of each kind in rows 4, 7, 10, 13 and 16."""
    frame = pd.read_csv(diabetes[0] / "data" / "new_visits.csv")
    frame = frame.astype({"age": object})
    frame.loc[4, "clinic"] = "mars"  # unseen category
    frame.loc[7, "age"] = "forty"  # text in a numeric column
    frame.loc[10, "s1"] = np.nan  # missing where training had none
    frame.loc[13, "s2"] = np.inf  # infinite
    frame.loc[16, "bmi"] = np.nan  # missing, but bmi had missing values: valid
    frame.loc[19, ["clinic", "s3"]] = ["pluto", np.nan]  # two problems in one row
    frame["note"] = "extra"
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    return path


REASONS = {
    4: "column 'clinic': unseen category (not in the training data)",
    7: "column 'age': not a number",
    10: "column 's1': missing value (the training data had none)",
    13: "column 's2': infinite value",
    19: "column 'clinic': unseen category (not in the training data); "
    "column 's3': missing value (the training data had none)",
}


def predict(bundle: Path, *args: str, cwd: Path) -> tuple[int, dict, str]:
    result = run_cli("predict", "--bundle", str(bundle), "--json", *args, cwd=cwd)
    return result.returncode, json.loads(result.stdout or "{}"), result.stderr


@pytest.mark.parametrize("chunk_rows", ["3", "100000"])
def test_quarantine_writes_each_rejected_row_with_its_reason(diabetes, bad_csv, chunk_rows):
    work = bad_csv.parent
    code, summary, err = predict(
        diabetes[1], "-i", "bad.csv", "-o", "out.csv", "--on-invalid", "quarantine",
        "--rejects", "rejects.csv", "--chunk-rows", chunk_rows, cwd=work,
    )  # fmt: skip
    assert code == 0, err
    assert (summary["rows"], summary["predicted"], summary["rejected"]) == (20, 15, 5)
    assert "ignoring 1 input column(s) the model does not use: note" in err
    rejects = pd.read_csv(work / "rejects.csv")
    assert dict(zip(rejects["row"], rejects["reason"], strict=True)) == REASONS
    assert rejects.loc[rejects["row"] == 7, "age"].item() == "forty"  # the value as given
    out = pd.read_csv(work / "out.csv")
    assert len(out) == 15 and not set(out["visit_id"]) & set(rejects["visit_id"])


def test_fail_names_rows_and_publishes_nothing(diabetes, bad_csv):
    work = bad_csv.parent
    code, _, err = predict(
        diabetes[1], "-i", "bad.csv", "-o", "out.parquet", "--chunk-rows", "4", cwd=work
    )
    assert code == 1
    # the first chunk (rows 0-3) was fine and written to a temp file; it is gone
    assert (
        "2 input row(s) are invalid: row 4: column 'clinic': unseen category (not in the "
        "training data); row 7: column 'age': not a number"
    ) in err
    assert "--on-invalid skip|quarantine" in err
    assert sorted(p.name for p in work.iterdir()) == ["bad.csv"]


def test_fail_names_invalid_rows_even_when_the_model_rejects_another(diabetes, tmp_path):
    """Row 2 breaks the schema; row 5 passes it but overflows the forest's float32: the
    error names row 2 (the model's whole-input complaint must not hide it), and numpy's
    overflow warnings do not reach stderr."""
    frame = pd.read_csv(diabetes[0] / "data" / "new_visits.csv")
    frame.loc[2, "s2"] = np.inf
    frame.loc[5, "bp"] = 1e308
    frame.to_csv(tmp_path / "in.csv", index=False)
    code, _, err = predict(diabetes[1], "-i", "in.csv", "-o", "out.csv", cwd=tmp_path)
    assert code == 1 and "1 input row(s) are invalid: row 2: column 's2': infinite value" in err
    assert "RuntimeWarning" not in err and not (tmp_path / "out.csv").exists()
    code, summary, err = predict(
        diabetes[1], "-i", "in.csv", "-o", "out.csv", "--on-invalid", "skip", cwd=tmp_path
    )
    assert code == 0 and summary["rejected"] == 2 and "RuntimeWarning" not in err, err


def test_skip_counts_what_it_drops(diabetes, bad_csv):
    code, summary, _ = predict(
        diabetes[1], "-i", "bad.csv", "-o", "out.csv", "--on-invalid", "skip", cwd=bad_csv.parent
    )
    assert code == 0
    assert (summary["predicted"], summary["rejected"]) == (15, 5)


def test_output_does_not_depend_on_chunking_or_input_format(diabetes, tmp_path):
    frame = pd.read_csv(diabetes[0] / "data" / "new_visits.csv")
    frame.to_parquet(tmp_path / "in.parquet", row_group_size=6)
    frame.to_csv(tmp_path / "in.csv", index=False)
    fingerprints = set()
    for name, chunk_rows in [("in.csv", "1"), ("in.csv", "7"), ("in.parquet", "4")]:
        code, summary, err = predict(
            diabetes[1], "-i", name, "-o", f"o{chunk_rows}.parquet", "--chunk-rows", chunk_rows,
            cwd=tmp_path,
        )  # fmt: skip
        assert code == 0, err
        fingerprints.add(summary["fingerprint"])
    assert len(fingerprints) == 1


def test_quarantine_without_rejects_replaces_a_stale_rejects_file(diabetes, tmp_path):
    (tmp_path / "rejects.csv").write_text("row,reason\n0,old\n")
    csv = diabetes[0] / "data" / "new_visits.csv"
    code, summary, _ = predict(
        diabetes[1], "-i", str(csv), "-o", "o.csv", "--on-invalid", "quarantine",
        "--rejects", "rejects.csv", cwd=tmp_path,
    )  # fmt: skip
    assert code == 0 and summary["rejected"] == 0
    rejects = pd.read_csv(tmp_path / "rejects.csv")
    assert len(rejects) == 0 and list(rejects.columns)[:2] == ["row", "visit_id"]


def test_keep_copies_columns(diabetes, bad_csv):
    code, _, err = predict(
        diabetes[1], "-i", "bad.csv", "-o", "o.csv", "--on-invalid", "skip", "--keep", "note",
        cwd=bad_csv.parent,
    )  # fmt: skip
    assert code == 0 and "ignoring" not in err
    out = pd.read_csv(bad_csv.parent / "o.csv")
    assert list(out.columns) == ["visit_id", "note", "prediction", "model_fingerprint"]
    code, _, err = predict(
        diabetes[1], "-i", "bad.csv", "-o", "o.csv", "--keep", "nope", cwd=bad_csv.parent
    )
    assert code == 2 and "--keep column(s) ['nope'] are not in the input" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "is empty"), ("visit_id,clinic\n", "missing column(s)"), ("\n\n", "has no columns")],
)
def test_unusable_inputs_are_data_errors(diabetes, tmp_path, content, message):
    (tmp_path / "in.csv").write_text(content)
    code, _, err = predict(diabetes[1], "-i", "in.csv", "-o", "o.csv", cwd=tmp_path)
    assert code == 3
    assert message in err
    assert not (tmp_path / "o.csv").exists()


def test_header_only_input_has_no_rows(diabetes, tmp_path):
    header = (diabetes[0] / "data" / "new_visits.csv").read_text().splitlines()[0]
    (tmp_path / "in.csv").write_text(header + "\n")
    code, _, err = predict(diabetes[1], "-i", "in.csv", "-o", "o.csv", cwd=tmp_path)
    assert code == 3 and "prediction input has no rows" in err


def test_progress_counts_every_row(diabetes):
    model = load_bundle(diabetes[1])
    frame = pd.read_csv(diabetes[0] / "data" / "new_visits.csv")
    seen: list[int] = []

    class Sink:
        rows = 0

        def write(self, df):
            self.rows += len(df)

        def close(self):
            pass

        def abort(self):
            pass

    chunks = [frame.iloc[i : i + 6] for i in range(0, 20, 6)]
    summary = run_prediction(
        model.pipeline, model.contract, chunks, Sink(), on_progress=seen.append
    )
    assert seen == [6, 6, 6, 2] and summary["predicted"] == 20


# ------------------------------------------------------------------------ rows the model rejects


class PickyModel:
    """Predicts 1.0, but raises like OneHotEncoder(handle_unknown='error') on 'bad' rows."""

    classes_ = None

    def __init__(self, always: bool = False) -> None:
        self.always = always
        self.calls = 0

    def predict(self, X):
        self.calls += 1
        if self.always or (X["kind"] == "bad").any():
            raise ValueError("Found unknown categories ['bad'] in column 0 during transform")
        return np.ones(len(X))


def picky_contract() -> Contract:
    yaml_text = (
        "schema_type: dataframe\nversion: 0.0.0\ncolumns:\n"
        "  kind: {dtype: str, nullable: false}\n  x: {dtype: float64, nullable: false}\n"
    )
    return Contract(input_columns=["kind", "x"], schema_yaml=yaml_text, model_fingerprint="b3:m")


def test_rows_the_model_rejects_are_isolated():
    chunk = pd.DataFrame({"kind": ["ok"] * 1000, "x": np.arange(1000.0)})
    chunk.loc[[17, 600], "kind"] = "bad"
    model = PickyModel()
    result = score_chunk(model, chunk, picky_contract())
    assert result.rejects["row"].tolist() == [17, 600]
    assert set(result.rejects["reason"]) == {
        "the model rejected the row: unseen category in a one-hot encoded column"
    }
    assert len(result.predictions) == 998
    assert model.calls < 60  # bisection, not one call per row


def test_widely_spread_rejected_rows_are_all_isolated():
    chunk = pd.DataFrame({"kind": ["ok"] * 3000, "x": np.arange(3000.0)})
    bad = list(range(3, 3000, 7))  # 429 rows, spread over the whole chunk
    chunk.loc[bad, "kind"] = "bad"
    model = PickyModel()
    result = score_chunk(model, chunk, picky_contract())
    assert result.rejects["row"].tolist() == bad
    assert len(result.predictions) == 3000 - len(bad)
    assert model.calls <= 2 * 3000 + 16  # bisection is bounded whatever the spread


class RefusingProgram:
    """A program that hands every frame to the reference (as on an unseen category)."""

    def predict(self, frame):
        return None


def test_trial_predictions_while_isolating_are_not_counted_as_scored_rows():
    chunk = pd.DataFrame({"kind": ["ok"] * 1000, "x": np.arange(1000.0)})
    chunk.loc[[17, 600], "kind"] = "bad"
    accelerated = AcceleratedPipeline(RefusingProgram(), PickyModel(), "regression")
    result = score_chunk(accelerated, chunk, picky_contract())
    assert len(result.predictions) == 998
    assert accelerated.rows == {"accelerated": 0, "reference": 998}


def test_a_model_that_rejects_everything_fails_the_chunk():
    chunk = pd.DataFrame({"kind": ["ok"] * 300, "x": np.arange(300.0)})
    model = PickyModel(always=True)
    with pytest.raises(PredictionRejected, match="the model rejected the input: unseen category"):
        score_chunk(model, chunk, picky_contract())
    assert model.calls <= 1 + 16  # the whole chunk, then a few single rows: no bisection
    with pytest.raises(PredictionRejected):
        score_chunk(PickyModel(), chunk.assign(kind="bad"), picky_contract(), isolate=False)


# ------------------------------------------------------------------------ validation fast path

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**6), 10**6),
    st.sampled_from(["1.5", "abc", "", None]),
)
labels = st.sampled_from(["east", "west", "east", "west", "mars", "", None, 3])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.lists(st.tuples(numbers, numbers, labels), min_size=1, max_size=5),
    numeric=st.booleans(),
)
def test_fast_path_accepts_only_what_pandera_accepts(data, numeric):
    yaml_text = (
        "schema_type: dataframe\nversion: 0.0.0\ncolumns:\n"
        "  a: {dtype: float64, nullable: false}\n"
        "  b: {dtype: float64, nullable: true}\n"
        "  c: {dtype: str, nullable: false, checks: {isin: [east, west]}}\n"
    )
    contract = Contract(input_columns=["a", "b", "c"], schema_yaml=yaml_text, model_fingerprint="")
    frame = pd.DataFrame(data, columns=["a", "b", "c"])
    if numeric:  # the common case: numeric columns read as numbers
        frame[["a", "b"]] = frame[["a", "b"]].apply(pd.to_numeric, errors="coerce")
    fast = fast_validate(frame, contract)
    _, reasons = invalid_rows(frame, contract)
    if fast is not None:
        assert reasons == {}
        slow = contract.schema().validate(frame, lazy=True)
        pd.testing.assert_frame_equal(fast, slow, check_dtype=True)


def test_fast_path_is_taken_for_valid_input(diabetes):
    model = load_bundle(diabetes[1])
    frame = pd.read_csv(diabetes[0] / "data" / "new_visits.csv")
    fast = fast_validate(frame[model.contract.input_columns], model.contract)
    assert fast is not None
    slow = model.contract.schema().validate(frame[model.contract.input_columns])
    pd.testing.assert_frame_equal(fast, slow)


# ------------------------------------------------------------------------ prefetch


def test_prefetch_keeps_order_and_reraises_in_place():
    def items():
        yield from range(5)
        raise DataError("boom", hint="h")

    got = []
    with pytest.raises(DataError, match="boom"):
        for item in prefetch(items(), depth=2):
            got.append(item)
    assert got == [0, 1, 2, 3, 4]


def test_closing_prefetch_stops_the_producer():
    produced = []

    def items():
        for i in range(1000):
            produced.append(i)
            yield i

    gen = prefetch(items(), depth=2)
    assert next(gen) == 0
    gen.close()
    assert len(produced) <= 4
    assert not [t for t in threading.enumerate() if t.name == "mlrepro-prefetch"]


# ------------------------------------------------------------------------ bounded memory


def peak_rss(args: list[str], cwd: Path) -> int:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "mlrepro.cli.main", *args], cwd=cwd, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0
    return usage.ru_maxrss * 1024


@pytest.mark.slow
def test_memory_stays_flat_as_the_input_grows(tmp_path_factory, tmp_path):
    project, bundle = trained_bundle("breast_cancer", tmp_path_factory.getbasetemp() / "delivery")
    rows = pd.read_csv(project / "data" / "new_biopsies.csv")
    small, big = 50_000, 1_000_000
    frame = rows.sample(big, replace=True, random_state=0).reset_index(drop=True)
    in_memory = frame.memory_usage(deep=True).sum()
    frame.iloc[:small].to_parquet(tmp_path / "small.parquet", row_group_size=50_000)
    frame.to_parquet(tmp_path / "big.parquet", row_group_size=100_000)
    del frame
    args = ["predict", "--bundle", str(bundle), "-q", "--chunk-rows", "50000"]
    rss_small = peak_rss([*args, "-i", "small.parquet", "-o", "s.parquet"], tmp_path)
    rss_big = peak_rss([*args, "-i", "big.parquet", "-o", "b.parquet"], tmp_path)
    # 20x the rows; holding them would cost ~in_memory bytes more
    print(f"peak RSS {rss_small / 2**20:.0f} MiB -> {rss_big / 2**20:.0f} MiB")
    assert rss_big - rss_small < min(120 * 2**20, in_memory / 2), (rss_small, rss_big, in_memory)


def test_progress_total_is_known_for_parquet(tmp_path):
    from mlrepro.predict.io import known_rows

    pd.DataFrame({"a": range(7)}).to_parquet(tmp_path / "a.parquet")
    (tmp_path / "a.csv").write_text("a\n1\n")
    assert known_rows(tmp_path / "a.parquet") == 7
    assert known_rows(tmp_path / "a.csv") is None
    (tmp_path / "broken.parquet").write_text("nope")
    assert known_rows(tmp_path / "broken.parquet") is None


def test_csv_text_columns_keep_their_cells_as_written(tmp_path):
    """Regression: a CSV cell '02134' or 'NA' in a text column was read as 2134 / missing.

    The training data (from SQL) held them as text, so every row was rejected ('unseen
    category', 'missing value') although it was a training row.
    """
    from mlrepro.predict.batchio import read_chunks

    yaml_text = (
        "schema_type: dataframe\nversion: 0.0.0\ncolumns:\n"
        "  zip: {dtype: 'string[pyarrow]', nullable: false, checks: {isin: ['02134', '10001']}}\n"
        "  country: {dtype: str, nullable: true, checks: {isin: ['NA', 'None', 'US']}}\n"
        "  x: {dtype: float64, nullable: true}\n"
        "  code: {dtype: str, nullable: false}\n"
    )
    contract = Contract(
        input_columns=["zip", "country", "x"],
        schema_yaml=yaml_text,
        model_fingerprint="b3:m",
        id_columns=["code"],
    )
    assert contract.text_columns() == ["zip", "country", "code"]
    path = tmp_path / "in.csv"
    path.write_text(
        "code,zip,country,x,note\n007,02134,NA,NA,NA\n010,10001,None,,\n011,10001,,1.5,x\n"
    )
    (chunk,) = read_chunks(path, 100, text_columns=contract.text_columns())
    assert chunk["zip"].tolist() == ["02134", "10001", "10001"]
    assert chunk["code"].tolist() == ["007", "010", "011"]
    assert chunk["country"].tolist()[:2] == ["NA", "None"]
    assert chunk["country"].isna().tolist() == [False, False, True]  # only an empty cell
    assert chunk["x"].isna().tolist() == [True, True, False]  # numbers: pandas' NA markers
    assert chunk["note"].isna().tolist() == [True, True, False]
    valid, reasons = invalid_rows(chunk[contract.input_columns], contract)
    assert reasons == {}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-i", "in.csv", "-o", "./in.csv"], "--input and --output are the same file (in.csv)"),
        (["-i", "in.csv", "-o", "link.csv"], "--input and --output are the same file (link.csv)"),
        (
            ["-i", "in.csv", "-o", "o.csv", "--on-invalid", "quarantine", "--rejects", "o.csv"],
            "--output and --rejects are the same file (o.csv)",
        ),
        (
            ["-i", "in.csv", "-o", "o.csv", "--on-invalid", "quarantine", "--rejects", "in.csv"],
            "--input and --rejects are the same file (in.csv)",
        ),
    ],
)
def test_an_output_never_replaces_the_input_or_the_other_output(diabetes, tmp_path, args, message):
    """Regression: `-o` naming the input replaced the input file with the predictions, and
    `--rejects` naming the output replaced the predictions with the rejects."""
    data = (diabetes[0] / "data" / "new_visits.csv").read_bytes()
    (tmp_path / "in.csv").write_bytes(data)
    os.link(tmp_path / "in.csv", tmp_path / "link.csv")
    result = run_cli("predict", "--bundle", str(diabetes[1]), *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert (tmp_path / "in.csv").read_bytes() == data
    assert not (tmp_path / "o.csv").exists()
