"""The consumer loop of ``mlrepro stream``: read, validate, score, write-and-acknowledge.

Each round reads a batch - first this consumer's own pending messages (once, after a
start or a lost connection), then messages other consumers left pending longer than
``claim_idle_ms`` (``XAUTOCLAIM``), then new ones (``XREADGROUP``) - and writes every result
together with the acknowledgement of its input (``stream_codec.WRITE_AND_ACK``).
"""

from __future__ import annotations

import socket
import sys
import time
from dataclasses import dataclass
from typing import Any

from mlrepro.errors import SourceError
from mlrepro.guards.safe_text import printable
from mlrepro.serving import codec


@dataclass(frozen=True)
class StreamSpec:
    bundle: str
    url: str
    input: str
    output: str
    dead: str
    group: str = "mlrepro"
    consumer: str | None = None
    batch: int = 100
    block_ms: int = 1000
    claim_idle_ms: int = 30_000
    max_deliveries: int = 5
    start: str = "0"
    expect: str | None = None
    trust: tuple[str, ...] = ()  # public keys: refuse a bundle not signed by one of them
    registry: str | None = None  # follow ``alias`` in this registry instead of ``bundle``
    alias: str | None = None
    poll: float = 2.0
    allow_contract_change: bool = False
    runtime: str = "auto"  # what scores: the bundle's accelerated program, or scikit-learn


class StopRequested(BaseException):
    """Raised by the signal handler only while pausing between retries (never mid-read)."""


def say(message: str) -> None:
    sys.stderr.write(f"mlrepro stream: {printable(message)}\n")
    sys.stderr.flush()


class Consumer:
    """Reads, scores and writes batches until ``stop()``; counts what it did."""

    def __init__(self, client: Any, spec: StreamSpec, bundle: Any) -> None:
        from mlrepro.serving.swap import ModelHolder

        self.client, self.spec = client, spec
        # ``bundle`` is a loaded Bundle, or a ModelHolder following a registry alias.
        self.holder = (
            bundle
            if isinstance(bundle, ModelHolder)
            else ModelHolder.fixed(bundle, max_batch=spec.batch)
        )
        self.name = spec.consumer or socket.gethostname()
        self._served: Any = None
        self._sync()
        self.write = client.register_script(codec.WRITE_AND_ACK)
        self.counts = {"read": 0, "predicted": 0, "dead_lettered": 0, "already_done": 0}
        self.stopping = False
        self.waiting = False
        self._cursor = "0-0"
        self._claim_at = 0.0

    def _sync(self) -> None:
        """Take the holder's current model for the next batch (a swap lands between batches)."""
        served = self.holder.current
        if served is self._served:
            return
        if self._served is not None:
            say(f"now predicting with model {served.bundle.model_fingerprint}")
        self._served = served
        self.bundle = served.bundle
        self.models = served.models
        self.adapter = served.adapter("record")
        self.scorer = served.scorer
        self.fp = served.bundle.model_fingerprint

    # ------------------------------------------------------------------ control
    def stop(self, *_: Any) -> None:
        self.stopping = True
        if self.waiting:
            raise StopRequested

    def run(self) -> dict[str, int]:
        """Rounds until stopped; a lost connection is retried (with back-off), not fatal."""
        import redis

        backoff, drained = 0.5, False
        while not self.stopping:
            try:
                if not drained:
                    self.drain_own()
                    drained = True
                self.round()
                backoff = 0.5
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                say(f"lost the connection to Redis ({exc}); retrying in {backoff:g} s")
                self._pause(backoff)
                backoff, drained = min(backoff * 2, 10.0), False
            except redis.ResponseError as exc:  # e.g. the group was deleted meanwhile
                raise SourceError(
                    f"Redis refused a command on {self.spec.input!r}: {exc}",
                    hint="check the stream and its consumer group (redis-cli XINFO GROUPS KEY)",
                ) from None
        return self.counts

    def round(self) -> None:
        claimed = self._claim()
        if claimed:
            self.process(claimed, redelivered=True)
            return
        entries = self.read(">", block=True)
        if entries:
            self.process(entries, redelivered=False)

    def _pause(self, seconds: float) -> None:
        self.waiting = True
        try:
            if not self.stopping:
                time.sleep(seconds)
        finally:
            self.waiting = False

    # ------------------------------------------------------------------ reading
    def read(self, start: str | bytes, block: bool) -> list[tuple[bytes, dict[bytes, Any]]]:
        # A stop request never interrupts a read: messages the server hands out are pending
        # for us, so the batch is finished and acknowledged first (waits <= block_ms).
        if self.stopping:
            return []
        reply = self.client.xreadgroup(
            self.spec.group,
            self.name,
            {self.spec.input: start},
            count=self.spec.batch,
            block=self.spec.block_ms if block else None,
        )
        return reply[0][1] if reply else []

    def drain_own(self) -> None:
        """Messages this consumer read before a crash or restart: handle them first."""
        start: str | bytes = "0"
        while not self.stopping:
            entries = self.read(start, block=False)
            if not entries:
                return
            start = entries[-1][0]
            gone = [i for i, fields in entries if fields is None]  # deleted from the stream
            if gone:
                self.client.xack(self.spec.input, self.spec.group, *gone)
            self.process([e for e in entries if e[1] is not None], redelivered=True)

    def _claim(self) -> list[tuple[bytes, dict]]:
        """Messages other consumers left pending for ``claim_idle_ms``."""
        if time.monotonic() < self._claim_at:
            return []
        reply = self.client.xautoclaim(
            self.spec.input,
            self.spec.group,
            self.name,
            self.spec.claim_idle_ms,
            start_id=self._cursor,
            count=self.spec.batch,
        )
        cursor, entries = reply[0], reply[1]
        self._cursor = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
        if self._cursor == "0-0":  # scanned the whole pending list: look again later
            self._claim_at = time.monotonic() + max(self.spec.claim_idle_ms / 2000, 0.5)
        return [e for e in entries if e[1] is not None]

    def _deliveries(self, ids: list[str]) -> dict[str, int]:
        pending = self.client.xpending_range(
            self.spec.input,
            self.spec.group,
            min=ids[0],  # entries come in id order
            max=ids[-1],
            count=len(ids) * 2,
            consumername=self.name,
        )
        wanted = set(ids)
        return {
            _str(p["message_id"]): int(p["times_delivered"])
            for p in pending
            if _str(p["message_id"]) in wanted
        }

    # ------------------------------------------------------------------ scoring
    def process(self, entries: list[tuple[bytes, dict]], redelivered: bool) -> None:
        """Validate, predict and write one batch; acknowledged in the same atomic step."""
        if not entries:
            return
        self._sync()
        self.counts["read"] += len(entries)
        raw = {_str(i): fields for i, fields in entries}
        ids = list(raw)
        outcomes: dict[str, codec.Outcome] = {}
        if redelivered:
            for msg_id, n in self._deliveries(ids).items():
                if n > self.spec.max_deliveries:
                    why = f"delivered {n} times without being processed (a crash each time?)"
                    outcomes[msg_id] = codec.dead_letter(msg_id, self.fp, why, raw[msg_id])
        records, valid_ids = [], []
        for msg_id in ids:
            if msg_id in outcomes:
                continue
            try:
                records.append(self._validate(codec.decode(raw[msg_id])))
                valid_ids.append(msg_id)
            except ValueError as exc:
                outcomes[msg_id] = codec.dead_letter(msg_id, self.fp, str(exc), raw[msg_id])
        for msg_id, outcome in self._score(records, valid_ids, raw).items():
            outcomes[msg_id] = outcome
        self._write([outcomes[i] for i in ids])

    def _validate(self, record: dict[str, Any]) -> Any:
        from pydantic import ValidationError

        from mlrepro.serving.records import issues_from_errors

        try:
            return self.adapter.validate_python(record)
        except ValidationError as exc:
            issues = issues_from_errors(exc.errors(include_url=False))
            raise ValueError(
                "; ".join(f"{i.field or 'record'}: {i.reason}" for i in issues)
            ) from None

    def _score(self, records: list, ids: list[str], raw: dict) -> dict[str, codec.Outcome]:
        if not records:
            return {}
        try:
            one = self.models.single(records)  # batch 1: no DataFrame when the program scores
            scored = self.scorer.score_one(*one) if one is not None else None
            if scored is None:
                frame, id_values, columns = self.models.frame_and_columns(records)
                scored = self.scorer.score(frame, id_values, columns)
            if self.holder.following and scored.rows and not scored.rejects:
                self.holder.remember(self.models.frame(records)[0])
        except Exception as exc:  # noqa: BLE001 - a bug or an odd record: find out which
            if len(records) == 1:
                why = f"prediction failed ({type(exc).__name__}: {str(exc)[:200]})"
                return {ids[0]: codec.dead_letter(ids[0], self.fp, why, raw[ids[0]])}
            out = {}
            for record, msg_id in zip(records, ids, strict=True):
                out.update(self._score([record], [msg_id], raw))
            return out
        out = {
            ids[p]: codec.output(ids[p], self.fp, row)
            for p, row in zip(scored.positions, scored.rows, strict=True)
        }
        for p, why in scored.rejects.items():
            out[ids[p]] = codec.dead_letter(ids[p], self.fp, why, raw[ids[p]])
        return out

    def _write(self, outcomes: list[codec.Outcome]) -> None:
        keys = [self.spec.input, self.spec.output, self.spec.dead]
        flags = self.write(keys=keys, args=codec.script_args(self.spec.group, outcomes))
        for outcome, written in zip(outcomes, flags, strict=True):
            kind = (
                "already_done" if not written else "dead_lettered" if outcome.dead else "predicted"
            )
            self.counts[kind] += 1


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
