"""``mlrepro stream``: a Redis Streams consumer-group worker around one verified bundle.

Each round reads a batch (first this consumer's own pending messages, then messages other
consumers left pending longer than ``claim_idle_ms``, then new ones), validates and predicts
it, and writes every result - output or dead letter - and acknowledges its input in one
atomic Lua script (``stream_codec.WRITE_AND_ACK``). Delivery is at least once; the script
makes the output idempotent, so a consumer killed at any point and restarted (or another
consumer of the group) leaves exactly one output or dead letter per input message.
SIGTERM/SIGINT finish the current batch, then exit 0.
"""

from __future__ import annotations

import signal
from typing import Any

from mlrepro.errors import SourceError, UsageError
from mlrepro.serving.consumer import Consumer, StopRequested, StreamSpec, say


def _check(spec: StreamSpec) -> None:
    for name, value in (("--batch", spec.batch), ("--max-deliveries", spec.max_deliveries)):
        if value < 1:
            raise UsageError(f"{name} {value} is not valid", hint=f"use {name} 1 or more")
    if spec.block_ms < 0 or spec.claim_idle_ms < 0:
        raise UsageError("--block-ms and --claim-idle-ms cannot be negative", hint="use 0 or more")
    if len({spec.input, spec.output, spec.dead}) < 3:
        raise UsageError(
            "--input, --output and --dead-letter must be three different streams",
            hint="e.g. --input visits --output visits:predictions",
        )


def connect(url: str) -> Any:
    """A Redis client that answered PING, or a SourceError."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)
        client.ping()
    except ValueError as exc:
        raise UsageError(
            f"--redis {url!r} is not a Redis URL ({exc})", hint="e.g. redis://localhost:6379/0"
        ) from None
    except redis.RedisError as exc:
        raise SourceError(
            f"cannot reach Redis at {_safe(url)} ({type(exc).__name__}: {exc})",
            hint="check --redis and that the server is running",
        ) from None
    return client


def _safe(url: str) -> str:
    from mlrepro.core.sources import redact

    return redact(url)


def ensure_group(client: Any, spec: StreamSpec) -> None:
    import redis

    try:
        client.xgroup_create(spec.input, spec.group, id=spec.start, mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" in str(exc):
            return
        raise SourceError(
            f"cannot create consumer group {spec.group!r} on {spec.input!r}: {exc}",
            hint="is the key a stream? (redis-cli TYPE KEY)",
        ) from None


def _holder(spec: StreamSpec) -> Any:
    """The model(s) to predict with: the bundle, or the followed alias."""
    from mlrepro.delivery.api import load_reporting
    from mlrepro.serving.swap import ModelHolder

    if spec.registry is not None:
        return ModelHolder.follow(
            spec.registry,
            str(spec.alias),
            max_batch=spec.batch,
            trust=spec.trust,
            poll=spec.poll,
            allow_contract_change=spec.allow_contract_change,
            log=say,
            runtime=spec.runtime,
        )
    bundle = load_reporting(
        spec.bundle,
        expect_fingerprint=spec.expect,
        report=lambda msg: say(f"warning: {msg}"),
        trusted_keys=spec.trust,
        runtime=spec.runtime,
    )
    return ModelHolder.fixed(bundle, max_batch=spec.batch)


def run(spec: StreamSpec) -> dict[str, int]:
    """Consume until SIGTERM/SIGINT; returns the counts."""
    _check(spec)
    holder = _holder(spec)
    bundle = holder.current.bundle
    client = connect(spec.url)
    ensure_group(client, spec)
    consumer = Consumer(client, spec, holder)
    previous = {s: signal.signal(s, consumer.stop) for s in (signal.SIGTERM, signal.SIGINT)}
    say(
        f"{bundle.metadata.project}: bundle {bundle.fingerprint} verified, model {consumer.fp}; "
        f"reading {spec.input!r} as {spec.group}/{consumer.name}, writing {spec.output!r} "
        f"(dead letters: {spec.dead!r})"
        + (
            f"; following alias {spec.alias!r} of {holder.status()['registry']}"
            if holder.following
            else ""
        )
    )
    holder.start()
    try:
        consumer.run()
    except StopRequested:
        pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        holder.close()
    c = consumer.counts
    say(
        f"stopped: {c['read']} message(s) read, {c['predicted']} predicted, "
        f"{c['dead_lettered']} dead-lettered, {c['already_done']} already done elsewhere"
    )
    return c
