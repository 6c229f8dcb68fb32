"""Messages name the column, the row and the rule, never the data (CI logs are not private).

A sentinel value stands for a sensitive one; wherever it breaks a rule, the output must name
where and why, and must not contain it. Prediction input with extra or reordered columns is
not an error: columns are matched by name (extra ones are named in a warning).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import run_cli

from mlrepro.errors import EXIT_DATA, EXIT_NOT_REPRODUCED, PredictionRejected
from mlrepro.guards.safe_text import first_line, strip_values
from mlrepro.predict.contract import Contract
from mlrepro.predict.scoring import predict_chunk

SENTINEL = "PATIENT-Jane-Doe-SSN-078-05-1120"


def _predict(project: Path, frame: pd.DataFrame, *extra: str) -> tuple[int, Path]:
    frame.to_csv(project / "in.csv", index=False)
    out = project / "out.csv"
    code = run_cli(
        "predict", "-p", str(project), "-i", str(project / "in.csv"), "-o", str(out), *extra
    ).code
    return code, out


def _visits(project: Path) -> pd.DataFrame:
    return pd.read_csv(project / "data" / "new_visits.csv")


@pytest.mark.parametrize(("column", "row"), [("clinic", 4), ("bmi", 7), ("age", 0)])
def test_invalid_prediction_input_is_described_without_values(trained_copy, capsys, column, row):
    df = _visits(trained_copy)
    df[column] = df[column].astype(object)
    df.loc[row, column] = SENTINEL
    for extra in ((), ("--json",)):
        code, out = _predict(trained_copy, df, *extra)
        captured = capsys.readouterr()
        text = captured.out + captured.err
        assert code == EXIT_NOT_REPRODUCED
        assert f"row {row}: column '{column}'" in text
        assert SENTINEL not in text
        assert not out.exists()


def test_skipped_rows_are_reported_without_values(trained_copy, capsys):
    df = _visits(trained_copy)
    df["clinic"] = df["clinic"].astype(object)
    df.loc[[1, 2], "clinic"] = SENTINEL
    code, out = _predict(trained_copy, df, "--on-invalid", "skip", "--json")
    captured = capsys.readouterr()
    assert code == 0 and out.exists()
    assert '"rejected": 2' in captured.out
    assert SENTINEL not in captured.out + captured.err


def test_training_error_names_step_and_column_not_values(small_project, capsys):
    manifest = small_project / "mlrepro.yaml"
    text = manifest.read_text()
    cols = "visit_id, recorded_at, age, sex, bmi, bp, s1, s2, s3, s4, s5, s6, progression"
    text = text.replace(
        "SELECT * FROM visits",
        f"SELECT {cols}, CASE WHEN visit_id = 9 THEN '{SENTINEL}' ELSE clinic END AS clinic "
        "FROM visits",
    )
    manifest.write_text(text.replace("columns: [bmi, bp]", "columns: [bmi, bp, clinic]"))
    assert run_cli("run", "--json", "-p", str(small_project)).code == EXIT_DATA
    captured = capsys.readouterr()
    assert "feature step 'impute' (SimpleImputer)" in captured.err
    assert "['clinic']" in captured.err
    assert SENTINEL not in captured.out + captured.err


class _Refusing:
    """A fitted pipeline whose library error quotes the offending value (as sklearn does)."""

    classes_ = None

    def predict(self, X):  # type: ignore[no-untyped-def]
        raise ValueError(f"could not convert string to float: '{SENTINEL}' at {[SENTINEL] * 50}")


def test_library_errors_are_stripped_of_values() -> None:
    import pandera.pandas as pa

    contract = Contract(input_columns=["a"], schema_yaml="", model_fingerprint="b3:x")
    contract._schema = pa.DataFrameSchema({})  # every row valid: the model itself refuses
    with pytest.raises(PredictionRejected) as info:
        predict_chunk(_Refusing(), pd.DataFrame({"a": [1.0]}), contract)
    assert SENTINEL not in str(info.value)
    assert "could not convert string to float" in info.value.message
    long = ValueError("bad input " + repr(list(range(10_000))))
    assert len(strip_values(long)) <= 200
    pg = (
        'new row violates check constraint "c"\nDETAIL:  Failing row contains (1, '
        + SENTINEL
        + ")."
    )
    assert SENTINEL not in first_line(pg) and "violates check constraint" in first_line(pg)


def test_extra_and_reordered_columns_match_by_name(trained_copy, capsys):
    base = _visits(trained_copy)
    code, out = _predict(trained_copy, base)
    assert code == 0
    expected = pd.read_csv(out)["prediction"]
    capsys.readouterr()

    shuffled = base[list(reversed(base.columns))].assign(note="n")
    code, out = _predict(trained_copy, shuffled)
    assert code == 0
    pd.testing.assert_series_equal(pd.read_csv(out)["prediction"], expected)
    assert "ignoring 1 input column(s) the model does not use: note" in capsys.readouterr().err


def test_numpy_dtype_names_survive_value_stripping():
    msg = "Cannot cast array data from dtype('float64') to dtype('<M8[ns]'), value 'Jane Doe'"
    assert strip_values(msg) == (
        "Cannot cast array data from dtype(float64) to dtype(<M8 ns), value <value>"
    )
