"""One numeric rule for every way in: the CLI, the Python API, serve and stream.

A project trained with an integer column (``children``) and float columns: the text
``true``/``True``, JSON ``true``, ``9.5`` for the integer column, ``1_000`` and non-ASCII
digits are refused alike, with the same reason, and real numbers are accepted alike.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import warnings
from pathlib import Path

import pandas as pd
import pytest

from mlrepro import load_bundle
from mlrepro.errors import PredictionRejected
from mlrepro.guards import numbers

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
IGNORE = shutil.ignore_patterns(".mlrepro", "mlrepro.lock", "predictions*", "__pycache__")

# (column, value as the CSV cell / JSON value, the reason's rule)
REFUSED = [
    ("bp", "true", numbers.BOOLEAN),
    ("bp", "True", numbers.BOOLEAN),
    ("bp", True, numbers.BOOLEAN),
    ("children", "9.5", numbers.NOT_WHOLE),
    ("children", 9.5, numbers.NOT_WHOLE),
    ("bp", "1_000", numbers.NOT_A_NUMBER),
    ("bp", "\u0661\u0662", numbers.NOT_A_NUMBER),  # Arabic-Indic digits
    ("bp", "\uff11\uff12", numbers.NOT_A_NUMBER),  # full-width digits
]
ACCEPTED = [("bp", "93"), ("bp", 93.5), ("bp", "-1.5e2"), ("children", 3), ("children", "3.0")]


@pytest.fixture(scope="module")
def int_project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The small diabetes project plus an integer input column, trained and bundled."""
    from cli_helpers import run_subprocess
    from reliability.helpers import make_small

    root = tmp_path_factory.mktemp("numeric") / "diabetes"
    shutil.copytree(EXAMPLES / "diabetes", root, ignore=IGNORE)
    make_small(root)
    with sqlite3.connect(root / "data" / "diabetes.db") as db:
        db.execute("ALTER TABLE visits ADD COLUMN children INTEGER")
        db.execute("UPDATE visits SET children = visit_id % 4")
    visits = pd.read_csv(root / "data" / "new_visits.csv")
    visits["children"] = visits["visit_id"] % 4
    visits.to_csv(root / "data" / "new_visits.csv", index=False)
    assert run_subprocess("run", "-q", cwd=root).returncode == 0
    bundle = root / "model.mlrepro"
    proc = run_subprocess("bundle", "-q", "-o", str(bundle), cwd=root)
    assert proc.returncode == 0, proc.stderr
    return root, bundle


def _row(root: Path) -> dict:
    return pd.read_csv(root / "data" / "new_visits.csv").iloc[0].to_dict()


def _csv_with(root: Path, tmp_path: Path, column: str, value: object) -> Path:
    visits = pd.read_csv(root / "data" / "new_visits.csv").astype(object)
    visits.loc[0, column] = "true" if value is True else value
    path = tmp_path / "in.csv"
    visits.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(("column", "value", "rule"), REFUSED)
def test_cli_refuses(int_project, tmp_path, cli, column, value, rule) -> None:  # noqa: ANN001
    root, bundle = int_project
    src = _csv_with(root, tmp_path, column, value)
    for args in (("-p", root), ("-b", bundle)):
        res = cli("predict", *args, "-i", src, "-o", tmp_path / "out.csv")
        assert res.code == 1, res.err
        assert f"row 0: column '{column}': {rule}" in res.err
        assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize(("column", "value", "rule"), REFUSED)
def test_python_api_refuses(int_project, column, value, rule) -> None:  # noqa: ANN001
    root, bundle = int_project
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load_bundle(bundle)
    record = {**_row(root), column: value}
    with pytest.raises(PredictionRejected, match=re.escape(f"column '{column}': {rule}")):
        model.predict([record])
    with pytest.raises(PredictionRejected, match=f"column '{column}'"):
        model.predict(pd.DataFrame([record]))


@pytest.fixture(scope="module")
def client(int_project):  # noqa: ANN001, ANN201
    from mlrepro.serving.http import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

        model = load_bundle(int_project[1])
    with TestClient(create_app(model)) as c:
        yield c


def _clean(record: dict) -> dict:
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in record.items()}


@pytest.mark.parametrize(("column", "value", "rule"), REFUSED)
def test_serve_refuses(int_project, client, column, value, rule) -> None:  # noqa: ANN001
    record = {**_clean(_row(int_project[0])), column: value}
    r = client.post("/predict", json=[record])
    assert r.status_code == 422, r.text
    text = json.dumps(r.json())
    assert column in text and rule in text


@pytest.mark.parametrize(("column", "value"), ACCEPTED)
def test_every_way_accepts_real_numbers(int_project, client, tmp_path, cli, column, value) -> None:  # noqa: ANN001
    root, bundle = int_project
    record = {**_clean(_row(root)), column: value}
    assert client.post("/predict", json=[record]).status_code == 200
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert len(load_bundle(bundle).predict([record])) == 1
    src = _csv_with(root, tmp_path, column, value)
    assert cli("predict", "-b", bundle, "-i", src, "-o", tmp_path / "o.csv").code == 0


@pytest.fixture
def streams(redis_url: str):  # noqa: ANN201 - unique stream names, deleted afterwards
    import uuid

    import redis

    tag = uuid.uuid4().hex[:10]
    names = {"input": f"s{tag}:in", "output": f"s{tag}:out", "dead": f"s{tag}:in:dead"}
    yield names
    client = redis.Redis.from_url(redis_url)
    client.delete(*names.values())
    client.close()


@pytest.mark.redis
@pytest.mark.parametrize(("column", "value", "rule"), REFUSED)
def test_stream_refuses(int_project, redis_url, streams, column, value, rule) -> None:  # noqa: ANN001
    from mlrepro.serving.stream import Consumer, StreamSpec, connect, ensure_group

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load_bundle(int_project[1])
    client = connect(redis_url)
    try:
        spec = StreamSpec(
            bundle="unused",
            url=redis_url,
            input=streams["input"],
            output=streams["output"],
            dead=streams["dead"],
            batch=8,
            block_ms=10,
        )
        ensure_group(client, spec)
        consumer = Consumer(client, spec, model)
        record = {**_clean(_row(int_project[0])), column: value}
        flat = {k: ("" if v is None else str(v)) for k, v in record.items()}
        ids = [
            client.xadd(streams["input"], {"record": json.dumps(record)}),
            client.xadd(streams["input"], flat),
        ]
        reply = client.xreadgroup(spec.group, consumer.name, {spec.input: ">"}, count=8)
        consumer.process(reply[0][1], redelivered=False)
        dead = {
            fields[b"input_id"]: fields[b"reason"].decode()
            for _, fields in client.xrange(streams["dead"])
        }
        assert set(dead) == set(ids)
        for reason in dead.values():
            assert column in reason and rule in reason
    finally:
        client.close()


@pytest.mark.redis
def test_stream_dead_letters_deeply_nested_records(int_project, redis_url, streams) -> None:  # noqa: ANN001
    """200,000 nested '[' in a record: a dead letter, not a RecursionError in the consumer."""
    from mlrepro.serving.stream import Consumer, StreamSpec, connect, ensure_group

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load_bundle(int_project[1])
    client = connect(redis_url)
    try:
        spec = StreamSpec(
            bundle="unused",
            url=redis_url,
            input=streams["input"],
            output=streams["output"],
            dead=streams["dead"],
            batch=8,
            block_ms=10,
        )
        ensure_group(client, spec)
        consumer = Consumer(client, spec, model)
        msg = client.xadd(streams["input"], {"record": "[" * 200_000 + "]" * 200_000})
        reply = client.xreadgroup(spec.group, consumer.name, {spec.input: ">"}, count=8)
        consumer.process(reply[0][1], redelivered=False)
        dead = {f[b"input_id"]: f[b"reason"].decode() for _, f in client.xrange(streams["dead"])}
        assert "nested more than 64 levels deep" in dead[msg]
    finally:
        client.close()
