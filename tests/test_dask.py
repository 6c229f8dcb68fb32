"""``--engine dask``: the same predictions as the local engine, on a real Dask cluster."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
from cli_helpers import run_cli, run_subprocess
from delivery_util import trained_bundle

distributed = pytest.importorskip("distributed")

from mlrepro.delivery.api import load_bundle  # noqa: E402
from mlrepro.errors import DataError, PredictionRejected  # noqa: E402
from mlrepro.predict import dask as dask_engine  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded workers in this process, reachable over TCP (so a CLI can join)."""
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=logging.ERROR,
    ) as c:
        yield c.scheduler_address


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory):
    return trained_bundle("diabetes", tmp_path_factory.getbasetemp() / "delivery")


@pytest.fixture
def inputs(diabetes, tmp_path):
    """60 rows (the new visits three times over) with invalid rows in different partitions."""
    frame = pd.read_csv(diabetes[0] / "data" / "new_visits.csv")
    frame = pd.concat([frame] * 3, ignore_index=True).astype({"age": object})
    frame["visit_id"] = np.arange(len(frame))
    frame.loc[5, "clinic"] = "mars"
    frame.loc[33, "age"] = "old"
    frame.loc[58, "s4"] = np.nan
    frame.to_csv(tmp_path / "in.csv", index=False)
    frame.astype({"age": str}).to_parquet(tmp_path / "in.parquet", row_group_size=8)
    return tmp_path


@pytest.mark.parametrize("source", ["in.csv", "in.parquet"])
def test_dask_matches_the_local_engine(diabetes, inputs, cluster, source):
    model = load_bundle(diabetes[1])
    common = {"on_invalid": "quarantine", "chunk_rows": 7}
    local = model.predict_file(
        inputs / source, inputs / "local.parquet", rejects=inputs / "local-rejects.csv", **common
    )
    remote = model.predict_file(
        inputs / source, inputs / "dask.parquet", rejects=inputs / "dask-rejects.csv",
        engine="dask", scheduler=cluster, **common,
    )  # fmt: skip
    assert remote.engine == "dask" and local.engine == "local"
    assert (remote.rows, remote.predicted, remote.rejected) == (60, 57, 3)
    assert remote.fingerprint == local.fingerprint
    assert (inputs / "dask-rejects.csv").read_text() == (inputs / "local-rejects.csv").read_text()
    assert pd.read_csv(inputs / "dask-rejects.csv")["row"].tolist() == [5, 33, 58]


def test_dask_fail_reports_global_row_numbers(diabetes, inputs, cluster):
    frame = pd.read_csv(inputs / "in.csv")
    frame.loc[5, "clinic"] = "north"  # first invalid row: 33, in the fourth partition
    frame.to_csv(inputs / "late.csv", index=False)
    model = load_bundle(diabetes[1])
    with pytest.raises(
        PredictionRejected, match="1 input row.s. are invalid: row 33: column 'age'"
    ):
        model.predict_file(
            inputs / "late.csv", inputs / "o.csv", chunk_rows=10, engine="dask",
            scheduler=cluster, on_invalid="fail",
        )  # fmt: skip
    assert not (inputs / "o.csv").exists()


def test_errors_raised_on_workers_keep_their_hint(diabetes, inputs, cluster):
    frame = pd.read_csv(inputs / "in.csv").drop(columns=["bmi"])
    frame.to_csv(inputs / "short.csv", index=False)
    model = load_bundle(diabetes[1])
    with pytest.raises(DataError, match=r"missing column\(s\) \['bmi'\]") as exc:
        model.predict_file(inputs / "short.csv", inputs / "o.csv", engine="dask", scheduler=cluster)
    assert exc.value.hint == "provide these columns or fix the column names"


def test_cli_joins_a_running_scheduler(diabetes, inputs, cluster):
    args = ["-i", "in.parquet", "-o", "out.csv", "--on-invalid", "skip", "--chunk-rows", "16"]
    result = run_cli(
        "predict", "--bundle", str(diabetes[1]), *args, "--engine", "dask",
        "--scheduler", cluster, "--json", cwd=inputs,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["engine"], summary["predicted"], summary["rejected"]) == ("dask", 57, 3)
    assert len(pd.read_csv(inputs / "out.csv")) == 57


def test_unreachable_scheduler_is_exit_5(diabetes, inputs, monkeypatch):
    monkeypatch.setattr(dask_engine, "CONNECT_TIMEOUT", "1s")
    result = run_cli(
        "predict", "--bundle", str(diabetes[1]), "-i", "in.csv", "-o", "o.csv",
        "--engine", "dask", "--scheduler", "tcp://127.0.0.1:9", cwd=inputs,
    )  # fmt: skip
    assert result.returncode == 5
    assert "cannot connect to the Dask scheduler at tcp://127.0.0.1:9" in result.stderr
    assert not (inputs / "o.csv").exists()


def test_workers_and_scheduler_conflict(diabetes, inputs):
    result = run_cli(
        "predict", "--bundle", str(diabetes[1]), "-i", "in.csv", "-o", "o.csv",
        "--engine", "dask", "--scheduler", "tcp://127.0.0.1:9", "--workers", "2", cwd=inputs,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--workers sizes a local cluster" in result.stderr


@pytest.mark.slow
def test_cli_starts_a_local_cluster(diabetes, inputs):
    """No --scheduler: a real local cluster of worker processes, in a real subprocess."""
    result = run_subprocess(
        "predict", "--bundle", str(diabetes[1]), "-i", "in.csv", "-o", "out.parquet",
        "--on-invalid", "skip", "--engine", "dask", "--workers", "2", "--json", cwd=inputs,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["predicted"] == 57
