"""The stream consumer in-process against a real Redis: outputs, dead letters, idempotency."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mlrepro import load_bundle
from mlrepro.serving.stream import Consumer, StreamSpec, connect, ensure_group

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def diabetes(bundles):
    return load_bundle(bundles["diabetes"])


@pytest.fixture
def client(redis_url):
    c = connect(redis_url)
    yield c
    c.close()


def spec_for(streams, redis_url, **kw) -> StreamSpec:
    return StreamSpec(
        bundle="unused",
        url=redis_url,
        input=streams["input"],
        output=streams["output"],
        dead=streams["dead"],
        **{"batch": 8, "block_ms": 10, **kw},
    )


def consumer(client, streams, redis_url, bundle, **kw) -> Consumer:
    spec = spec_for(streams, redis_url, **kw)
    ensure_group(client, spec)
    return Consumer(client, spec, bundle)


def entries(client, key) -> list[dict[str, str]]:
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in client.xrange(key)]


def test_records_become_predictions_and_bad_ones_dead_letters(
    client, streams, redis_url, diabetes, new_visits
):
    ids = [client.xadd(streams["input"], {"record": json.dumps(r)}) for r in new_visits[:6]]
    flat = {k: ("" if v is None else str(v)) for k, v in new_visits[6].items()}
    ids.append(client.xadd(streams["input"], flat))  # flat fields, text values
    bad = {
        "not json": {"record": "{oops"},
        "not an object": {"record": "[1, 2]"},
        "bad value": {"record": json.dumps({**new_visits[7], "bmi": "heavy"})},
        "missing field": {"record": json.dumps({"clinic": "north"})},
        "unseen category": {"record": json.dumps({**new_visits[8], "clinic": "mars"})},
    }
    bad_ids = {why: client.xadd(streams["input"], fields) for why, fields in bad.items()}
    c = consumer(client, streams, redis_url, diabetes)
    for _ in range(3):
        c.round()

    out = entries(client, streams["output"])
    expected = diabetes.predict(pd.DataFrame(new_visits[:7]))
    assert [o["input_id"] for o in out] == [i.decode() for i in ids]
    assert [float(o["prediction"]) for o in out] == expected["prediction"].tolist()
    assert [int(o["visit_id"]) for o in out] == expected["visit_id"].tolist()
    assert {o["model_fingerprint"] for o in out} == {diabetes.model_fingerprint}

    dead = {d["input_id"]: d for d in entries(client, streams["dead"])}
    assert set(dead) == {i.decode() for i in bad_ids.values()}
    reason = {why: dead[i.decode()]["reason"] for why, i in bad_ids.items()}
    assert reason["not json"].startswith("field 'record' is not valid JSON")
    assert reason["not an object"] == "field 'record' must hold a JSON object"
    assert reason["bad value"].startswith("bmi: Input should be a valid number")
    assert reason["missing field"].startswith("age: missing field")
    assert "clinic: Input should be 'east', 'north', 'south' or 'west'" in reason["unseen category"]
    assert json.loads(dead[bad_ids["not json"].decode()]["message"]) == {"record": "{oops"}
    assert client.xpending(streams["input"], "mlrepro")["pending"] == 0
    assert c.counts == {"read": 12, "predicted": 7, "dead_lettered": 5, "already_done": 0}


def test_a_message_handled_elsewhere_is_never_written_twice(
    client, streams, redis_url, diabetes, new_visits
):
    for r in new_visits[:5]:
        client.xadd(streams["input"], {"record": json.dumps(r)})
    slow = consumer(client, streams, redis_url, diabetes, consumer="slow")
    taken = slow.read(">", block=False)  # read, then stalls before writing
    assert len(taken) == 5
    fast = consumer(client, streams, redis_url, diabetes, consumer="fast", claim_idle_ms=0)
    fast.round()  # claims the stalled messages and handles them
    assert len(entries(client, streams["output"])) == 5
    slow.process(taken, redelivered=False)  # the stalled consumer wakes up
    out = entries(client, streams["output"])
    assert len(out) == 5 and len({o["input_id"] for o in out}) == 5
    assert slow.counts["already_done"] == 5 and slow.counts["predicted"] == 0
    assert fast.counts["predicted"] == 5


def test_a_message_delivered_too_often_is_dead_lettered(
    client, streams, redis_url, diabetes, new_visits
):
    msg = client.xadd(streams["input"], {"record": json.dumps(new_visits[0])})
    c = consumer(client, streams, redis_url, diabetes, consumer="c", max_deliveries=3)
    for _ in range(3):  # three deliveries that never finished (crashes)
        client.xreadgroup("mlrepro", "c", {streams["input"]: "0" if _ else ">"})
    c.drain_own()  # the fourth delivery
    [dead] = entries(client, streams["dead"])
    assert dead["input_id"] == msg.decode()
    assert dead["reason"].startswith("delivered 4 times without being processed")
    assert entries(client, streams["output"]) == []


def test_a_restarted_consumer_first_finishes_its_own_pending_messages(
    client, streams, redis_url, diabetes, new_visits
):
    for r in new_visits[:4]:
        client.xadd(streams["input"], {"record": json.dumps(r)})
    client.xgroup_create(streams["input"], "mlrepro", id="0")
    client.xreadgroup("mlrepro", "c", {streams["input"]: ">"}, count=3)  # then it crashed
    c = consumer(client, streams, redis_url, diabetes, consumer="c")
    c.drain_own()
    assert len(entries(client, streams["output"])) == 3
    c.round()
    assert len(entries(client, streams["output"])) == 4
    assert client.xpending(streams["input"], "mlrepro")["pending"] == 0


def test_classifier_outputs_carry_probabilities(client, streams, redis_url, bundles, new_biopsies):
    model = load_bundle(bundles["breast_cancer"])
    client.xadd(streams["input"], {"record": json.dumps(new_biopsies[0])})
    consumer(client, streams, redis_url, model).round()
    [out] = entries(client, streams["output"])
    want = model.predict(pd.DataFrame(new_biopsies[:1])).iloc[0]
    assert int(out["prediction"]) == want["prediction"]
    assert float(out["proba_1"]) == want["proba_1"]
    assert int(out["biopsy_id"]) == want["biopsy_id"]


def test_a_deleted_group_is_a_clear_error(client, streams, redis_url, diabetes):
    from mlrepro.errors import SourceError

    c = consumer(client, streams, redis_url, diabetes)
    client.xgroup_destroy(streams["input"], "mlrepro")
    with pytest.raises(SourceError, match="Redis refused a command on .*NOGROUP") as info:
        c.run()
    assert "XINFO GROUPS" in info.value.hint


def test_a_lost_connection_is_retried_not_fatal(client, streams, redis_url, diabetes, capsys):
    import threading

    import redis

    c = consumer(client, streams, redis_url, diabetes)
    c.client = redis.Redis(port=1, socket_connect_timeout=1)  # nothing listens there
    threading.Timer(1.0, lambda: setattr(c, "stopping", True)).start()
    assert c.run()["read"] == 0  # returned once asked to stop, after retrying
    assert "lost the connection to Redis" in capsys.readouterr().err


def test_batch_one_with_the_accelerated_program_matches_sklearn(
    client, streams, redis_url, tmp_path, new_visits
):
    """--batch 1 takes the program's one-record path; outputs equal scikit-learn's."""
    pytest.importorskip("numba")
    from cli_helpers import run_cli
    from delivery_util import train_project

    project = train_project("diabetes", tmp_path / "diabetes")
    path = tmp_path / "fast.mlrepro"
    assert run_cli("bundle", "-p", project, "-o", path, "--accelerate").code == 0
    fast, slow = load_bundle(path), load_bundle(path, runtime="sklearn")
    assert fast.runtime == "accelerated"
    for r in new_visits:
        client.xadd(streams["input"], {"record": json.dumps(r)})
    c = consumer(client, streams, redis_url, fast, batch=1)
    for _ in range(len(new_visits) + 2):
        c.round()
    out = entries(client, streams["output"])
    expected = slow.predict(pd.DataFrame(new_visits))["prediction"].tolist()
    assert [float(o["prediction"]) for o in out] == pytest.approx(expected, rel=1e-9)
    assert c.scorer.counts["fast"] == len(new_visits)
    assert fast.pipeline.rows == {"accelerated": len(new_visits), "reference": 0}
