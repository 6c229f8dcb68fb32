"""``mlrepro stream`` as a real process: kill -9 mid-stream, restart, count; SIGTERM."""

from __future__ import annotations

import json
import signal
import time

import pytest
import redis

from .conftest import Proc

pytestmark = [pytest.mark.redis, pytest.mark.slow]
GROUP = "mlrepro"


def fill(client, stream: str, records: list[dict], n: int, bad_every: int) -> tuple[list, set]:
    """``n`` messages cycling through ``records``; every ``bad_every``-th one is invalid."""
    ids, bad = [], set()
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        record = dict(records[i % len(records)])
        if i % bad_every == bad_every - 1:
            record["bmi"] = "not a number"
        pipe.xadd(stream, {"record": json.dumps(record)})
    for i, msg_id in enumerate(pipe.execute()):
        ids.append(msg_id.decode())
        if i % bad_every == bad_every - 1:
            bad.add(msg_id.decode())
    return ids, bad


def consumer(bundle, url, streams, name: str, *extra: str) -> Proc:
    proc = Proc(
        "stream",
        str(bundle),
        "--redis",
        url,
        "--input",
        streams["input"],
        "--output",
        streams["output"],
        "--consumer",
        name,
        "--block-ms",
        "200",
        *extra,
    )
    proc.wait_for("reading", timeout=90)
    return proc


def handled(client, streams) -> int:
    return client.xlen(streams["output"]) + client.xlen(streams["dead"])


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def input_ids(client, stream: str) -> list[str]:
    return [fields[b"input_id"].decode() for _, fields in client.xrange(stream)]


@pytest.mark.parametrize("restart_as", ["c1", "c2"], ids=["same consumer", "another consumer"])
def test_kill_9_mid_stream_then_restart_loses_and_duplicates_nothing(
    bundles, redis_url, streams, new_visits, restart_as
):
    client = redis.Redis.from_url(redis_url)
    n = 2000
    ids, bad = fill(client, streams["input"], new_visits, n, bad_every=40)
    first = consumer(bundles["diabetes"], redis_url, streams, "c1", "--batch", "50")
    try:
        wait_until(lambda: handled(client, streams) >= 150, 120, "the first outputs")
        first.popen.kill()  # SIGKILL: no clean-up of any kind
        assert first.finish() == -signal.SIGKILL
    finally:
        first.stop()
    done_at_kill = handled(client, streams)
    assert done_at_kill < n, "the consumer finished before it was killed: use more messages"
    if client.xpending(streams["input"], GROUP)["pending"] == 0:
        # The kill fell between two batches: leave one read but unacknowledged, the state
        # a kill in the middle of a batch leaves, so the restart must recover it.
        client.xreadgroup(GROUP, "c1", {streams["input"]: ">"}, count=50)
    assert client.xpending(streams["input"], GROUP)["pending"] > 0

    second = consumer(
        bundles["diabetes"], redis_url, streams, restart_as, "--batch", "50",
        "--claim-idle-ms", "300",
    )  # fmt: skip
    try:
        wait_until(lambda: handled(client, streams) >= n, 180, f"all {n} messages")
        time.sleep(0.5)  # anything extra (a duplicate) would show up now
        second.signal(signal.SIGTERM)
        assert second.finish() == 0, second.stderr()
    finally:
        second.stop()

    outputs = input_ids(client, streams["output"])
    dead = input_ids(client, streams["dead"])
    assert len(outputs) + len(dead) == n
    assert sorted(outputs + dead) == sorted(ids)  # each input exactly once: none lost
    assert set(dead) == bad
    assert client.xpending(streams["input"], GROUP)["pending"] == 0
    assert "stopped:" in second.stderr()


def test_sigterm_finishes_the_batch_acks_and_exits_0(bundles, redis_url, streams, new_visits):
    client = redis.Redis.from_url(redis_url)
    ids, _ = fill(client, streams["input"], new_visits, 1500, bad_every=1000)
    proc = consumer(bundles["diabetes"], redis_url, streams, "c1", "--batch", "100")
    try:
        wait_until(lambda: handled(client, streams) >= 100, 120, "the first outputs")
        proc.signal(signal.SIGTERM)
        assert proc.finish() == 0, proc.stderr()
    finally:
        proc.stop()
    assert client.xpending(streams["input"], GROUP)["pending"] == 0  # nothing half-done
    assert handled(client, streams) % 100 == 0  # whole batches only
    assert "stopped:" in proc.stderr()

    rest = consumer(bundles["diabetes"], redis_url, streams, "c1", "--batch", "100")
    try:
        wait_until(lambda: handled(client, streams) >= 1500, 120, "the rest")
        rest.signal(signal.SIGINT)
        assert rest.finish() == 0
    finally:
        rest.stop()
    out = input_ids(client, streams["output"]) + input_ids(client, streams["dead"])
    assert sorted(out) == sorted(ids)
