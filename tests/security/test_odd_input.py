"""Hostile or odd input that used to end in an internal error (exit 70), and leftovers.

Hash-valid artifacts holding the wrong object, parquet inputs with list/struct columns,
terminal escapes in names that get printed, and the ``.partial`` files a killed
``predict --bundle`` leaves behind.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from mlrepro.fingerprint import hash_file

OSC = "\x1b]0;pwned\x07"


def _swap(hostile, stage: str, output: str, obj: object) -> None:  # noqa: ANN001
    """Replace an artifact by a pickle of ``obj`` and update the lock's hash to match."""
    lock = hostile.lock()
    rec = lock["stages"][stage]["outputs"][output]
    path = hostile.root / rec["path"]
    path.write_bytes(pickle.dumps(obj))
    rec["file_hash"] = hash_file(path)
    hostile.write_lock(lock)


@pytest.mark.parametrize(
    ("stage", "output", "args"),
    [
        ("select", "selector", ("train", "--force")),
        ("features", "transformer", ("train", "--force")),
        ("train", "pipeline", ("predict",)),
    ],
)
@pytest.mark.parametrize("obj", [{"not": "a model"}, [1, 2, 3]], ids=["dict", "list"])
def test_hash_valid_artifact_of_the_wrong_type(hostile, cli, stage, output, args, obj) -> None:  # noqa: ANN001
    _swap(hostile, stage, output, obj)
    res = cli(*args, "-p", hostile.root)
    assert res.code == 4, res.err
    assert f"holds a {type(obj).__name__}" in res.err and "hint:" in res.err


def test_estimator_of_the_wrong_kind(hostile, cli) -> None:  # noqa: ANN001
    from sklearn.linear_model import LinearRegression  # no transform(): not a selector

    _swap(hostile, "select", "selector", LinearRegression())
    res = cli("train", "--force", "-p", hostile.root)
    assert res.code == 4
    assert "holds a LinearRegression without transform(), get_feature_names_out()" in res.err


@pytest.fixture
def odd_parquet(hostile, tmp_path):  # noqa: ANN001, ANN201
    visits = pd.read_csv(hostile.root / "data" / "new_visits.csv")
    made = {}
    for name, column, value in [
        ("list-number", "bmi", [1.0, 2.0]),
        ("struct-number", "bp", {"x": 1.0}),
        ("list-category", "clinic", ["north"]),
        ("struct-id", "visit_id", {"id": 1}),
    ]:
        frame = visits.copy()
        frame[column] = [value] * len(frame)
        made[name] = tmp_path / f"{name}.parquet"
        frame.to_parquet(made[name])
    return made


@pytest.mark.parametrize("kind", ["list-number", "struct-number", "list-category"])
def test_list_and_struct_columns_are_rejected_rows(
    hostile, cli, odd_parquet, kind, tmp_path
) -> None:  # noqa: ANN001
    bundle = tmp_path / "m.mlrepro"
    assert cli("bundle", "-q", "-o", bundle, "-p", hostile.root).code == 0
    for args in (("-p", hostile.root), ("-b", bundle)):
        res = cli("predict", *args, "-i", odd_parquet[kind], "-o", tmp_path / "o.parquet")
        assert res.code == 1, res.err
        rule = "not a single value" if kind == "list-category" else "not a number"
        assert "row 0: column '" in res.err and rule in res.err
        res = cli(
            "predict", *args, "-i", odd_parquet[kind], "-o", tmp_path / "o.parquet",
            "--on-invalid", "quarantine", "--rejects", tmp_path / "rejects.parquet",
        )  # fmt: skip
        assert res.code == 0, res.err
        assert len(pd.read_parquet(tmp_path / "rejects.parquet")) == 20


def test_struct_id_column_is_passed_through(hostile, cli, odd_parquet, tmp_path) -> None:  # noqa: ANN001
    res = cli(
        "predict", "-p", hostile.root, "-i", odd_parquet["struct-id"], "-o", tmp_path / "o.csv"
    )
    assert res.code == 0, res.err


def test_escapes_in_column_names_are_not_printed(hostile, cli, tmp_path) -> None:  # noqa: ANN001
    visits = pd.read_csv(hostile.root / "data" / "new_visits.csv")
    visits[f"extra{OSC}"] = 1
    visits.to_csv(tmp_path / "in.csv", index=False)
    res = cli("predict", "-p", hostile.root, "-i", tmp_path / "in.csv", "-o", tmp_path / "o.csv")
    assert res.code == 0, res.err
    assert "ignoring 1 input column(s)" in res.err and "extra" in res.err
    assert "\x1b" not in res.err + res.out and "\x07" not in res.err + res.out


def test_escapes_in_lock_details_are_not_printed(hostile, cli) -> None:  # noqa: ANN001
    lock = hostile.lock()
    lock["stages"]["select"]["details"]["selected"][0] = f"bmi{OSC}\x1b[2J"
    hostile.write_lock(lock)
    res = cli("verify", "--stage", "select", "-p", hostile.root)
    assert res.code == 1, res.err
    assert "\x1b" not in res.out + res.err and "\x07" not in res.out + res.err
    assert "select" in res.out


KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import pandas as pd
    from mlrepro.predict.batchio import FileWriter
    w = FileWriter(Path(sys.argv[1]))
    w.write(pd.DataFrame({"prediction": [1.0, 2.0]}))
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_next_predict_removes_partials_of_killed_runs(hostile, cli, tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(out / "preds.csv")], env=env, timeout=120
    )
    assert killed.returncode == -9
    left = list(out.glob(".tmp-*.partial"))
    assert len(left) == 1
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        busy = out / f".tmp-{alive.pid}-abc.partial"  # another predict still writing
        busy.write_text("in progress")
        other = out / ".tmp-999999999-x.csv"  # not ours to remove in a user folder
        other.write_text("x")
        bundle = tmp_path / "m.mlrepro"
        assert cli("bundle", "-q", "-o", bundle, "-p", hostile.root).code == 0
        src = hostile.root / "data" / "new_visits.csv"
        res = cli("predict", "-b", bundle, "-i", src, "-o", out / "preds.csv")
        assert res.code == 0, res.err
        assert not left[0].exists()
        assert busy.exists() and other.exists()
        assert (out / "preds.csv").is_file()
    finally:
        alive.kill()
        alive.wait()


class _Poison:
    """Unpickling this runs ``open(marker, 'w')``: the marker proves code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (open, (self.marker, "w"))


def test_poisoned_pickle_is_never_loaded_by_status_bundle_inspect(hostile, cli, tmp_path) -> None:  # noqa: ANN001
    """status, bundle and inspect never unpickle (verify's policy is its own section)."""
    marker = hostile.outside / "marker"
    _swap(hostile, "train", "pipeline", _Poison(str(marker)))
    assert cli("status", "-p", hostile.root).code == 0
    bundle = tmp_path / "poisoned.mlrepro"
    assert cli("bundle", "-q", "-o", bundle, "-p", hostile.root).code == 0
    res = cli("inspect", bundle)
    assert res.code == 0 and "NOT PROVEN" in res.out
    assert not marker.exists()
