"""``mlrepro stream --registry --alias``: swaps while consuming, and a kill -9 during a swap.

5,000 messages arrive over ~10 s; the alias moves A -> B -> C; the consumer is killed with
SIGKILL while it is checking C, then restarted. Every input must get exactly one output or
dead letter, and each output's model must be one the alias named, in alias order, and
never written before the alias moved to it.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import pytest
import redis
from registry_util import models

from mlrepro import load_bundle

from .conftest import Proc

pytestmark = [pytest.mark.redis, pytest.mark.slow]
N = 5000
BAD_EVERY = 50


@pytest.fixture(scope="module")
def m(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return models(tmp_path_factory.mktemp("swap_stream"))


def publish(registry: Path, bundle: Path) -> float:
    from cli_helpers import run_cli

    at = time.time()
    r = run_cli("publish", str(bundle), "--registry", str(registry), "--alias", "prod")
    assert r.returncode == 0, r.stderr
    return at


def start(registry: Path, redis_url: str, streams: dict[str, str]) -> Proc:
    proc = Proc(
        "stream", "--registry", str(registry), "--alias", "prod", "--redis", redis_url,
        "--input", streams["input"], "--output", streams["output"], "--consumer", "c1",
        "--batch", "50", "--block-ms", "200", "--poll", "0.3",
    )  # fmt: skip
    proc.wait_for("reading", timeout=120)
    return proc


def produce(client: redis.Redis, stream: str, records: list[dict], ids: list, bad: set) -> None:
    for start_at in range(0, N, 100):
        pipe = client.pipeline(transaction=False)
        for i in range(start_at, start_at + 100):
            record = dict(records[i % len(records)])
            if i % BAD_EVERY == BAD_EVERY - 1:
                record["bmi"] = "not a number"
            pipe.xadd(stream, {"record": json.dumps(record)})
        for i, msg_id in zip(range(start_at, start_at + 100), pipe.execute(), strict=True):
            ids.append(msg_id.decode())
            if i % BAD_EVERY == BAD_EVERY - 1:
                bad.add(msg_id.decode())
        time.sleep(0.2)


def test_swaps_and_a_kill_during_a_swap_lose_and_duplicate_nothing(
    m, tmp_path, redis_url, streams, new_visits
):
    client = redis.Redis.from_url(redis_url)
    registry = tmp_path / "registry"
    moved = {"A": publish(registry, m["a"])}
    fp = {x: load_bundle(m[x.lower()]).model_fingerprint for x in "ABC"}
    ids: list[str] = []
    bad: set[str] = set()
    first = start(registry, redis_url, streams)
    producer = threading.Thread(
        target=produce, args=(client, streams["input"], new_visits, ids, bad), daemon=True
    )
    producer.start()
    try:
        time.sleep(3)
        moved["B"] = publish(registry, m["b"])
        first.wait_for("(move 2, publish)", timeout=60)
        time.sleep(2)
        moved["C"] = publish(registry, m["c"])
        first.wait_for("names move 3 now", timeout=60)  # the swap has started: kill it now
        first.popen.kill()
        assert first.finish() == -signal.SIGKILL
        swapped_before_kill = "(move 3, publish)" in first.stderr()
    finally:
        first.stop()
    second = start(registry, redis_url, streams)
    try:
        producer.join(120)
        deadline = time.monotonic() + 180
        while client.xlen(streams["output"]) + client.xlen(streams["dead"]) < N:
            assert time.monotonic() < deadline, "not every message was handled"
            time.sleep(0.1)
        time.sleep(0.5)  # a duplicate would show up now
        second.signal(signal.SIGTERM)
        assert second.finish() == 0, second.stderr()
    finally:
        second.stop()

    outputs = client.xrange(streams["output"])
    dead = client.xrange(streams["dead"])
    out_ids = [f[b"input_id"].decode() for _, f in outputs]
    dead_ids = [f[b"input_id"].decode() for _, f in dead]
    assert len(out_ids) + len(dead_ids) == N
    assert sorted(out_ids + dead_ids) == sorted(ids)  # exactly one result per input
    assert set(dead_ids) == bad
    assert client.xpending(streams["input"], "mlrepro")["pending"] == 0

    order = {fp["A"]: 0, fp["B"]: 1, fp["C"]: 2}
    label = {v: k for k, v in fp.items()}
    generations = []
    for entry_id, fields in outputs:
        model = fields[b"model_fingerprint"].decode()
        assert model in order, f"output by a model never under the alias: {model}"
        written = int(entry_id.decode().split("-")[0]) / 1000  # Redis server time, ms
        assert written >= moved[label[model]] - 0.005, "an output written before its move"
        generations.append(order[model])
    assert generations == sorted(generations), "outputs did not follow the alias order"
    assert set(generations) == {0, 1, 2}
    print(f"swap to C done before the kill: {swapped_before_kill}")
