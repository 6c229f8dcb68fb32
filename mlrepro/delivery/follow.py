"""Follow a registry alias: load what it names, notice when it moves, check, warm up, swap.

``Follower`` holds the current *generation* (a loaded bundle, the move that named it and
whatever ``prepare`` built from it). A background thread waits ``poll`` seconds (or for a
PostgreSQL ``NOTIFY``), looks at the alias and, when it names another bundle:

1. fetches it and checks it against its hash, then loads it with ``load_bundle``: every
   member verified, the signature checked against ``trusted_keys`` (before unpickling);
2. checks the input contract is the same (input columns, their types, nullability and
   categories, id columns, task and classes) unless ``allow_contract_change``;
3. builds the caller's state (``prepare``) and warms it up on a few recorded input rows
   (rows that the current model accepted recently; a row it accepted that the new model
   rejects or fails on is a refusal);
4. swaps: one reference assignment. A request or batch that already took the old
   generation finishes with it.

A bundle that fails any step is refused: logged, counted, remembered (it is not retried
until the alias moves again) and the current generation keeps serving.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlrepro.errors import ArtifactError, MlreproError, UsageError

if TYPE_CHECKING:
    import pandas as pd

    from mlrepro.delivery.registry import Move, Registry

LoadedBundle = Any  # a delivery.api.Bundle (not imported: api imports this module)

WARM_ROWS = 8
DEFAULT_POLL = 2.0


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Generation:
    """One loaded model: the bundle, the alias move that named it, the caller's state."""

    bundle: LoadedBundle
    move: Move
    state: Any
    number: int
    loaded_at: str

    @property
    def model_fingerprint(self) -> str:
        return self.bundle.model_fingerprint


def contract_of(bundle: LoadedBundle) -> dict[str, Any]:
    m = bundle.metadata
    return {
        "inputs": [(c.name, c.dtype, c.nullable, c.categories) for c in bundle.columns],
        "id_columns": list(m.id_columns),
        "task": m.task,
        "classes": list(m.classes) if m.classes is not None else None,
    }


def contract_changes(old: LoadedBundle, new: LoadedBundle) -> list[str]:
    """What a request written for ``old`` would find different in ``new`` (empty: same)."""
    a, b = contract_of(old), contract_of(new)
    out = []
    cols_a = {c[0]: c for c in a["inputs"]}
    cols_b = {c[0]: c for c in b["inputs"]}
    added = [n for n in cols_b if n not in cols_a]
    removed = [n for n in cols_a if n not in cols_b]
    if added:
        out.append(f"new input column(s) {added[:5]}")
    if removed:
        out.append(f"input column(s) {removed[:5]} removed")
    for name, (_, dtype, nullable, cats) in cols_a.items():
        if name not in cols_b:
            continue
        _, dtype2, nullable2, cats2 = cols_b[name]
        if dtype != dtype2:
            out.append(f"column {name!r} is {dtype2}, was {dtype}")
        if nullable != nullable2:
            out.append(f"column {name!r} {'accepts' if nullable2 else 'refuses'} nulls now")
        if cats != cats2:
            out.append(f"column {name!r} has other categories")
    if not out and [c[0] for c in a["inputs"]] != [c[0] for c in b["inputs"]]:
        out.append("the input columns are in another order")
    for key in ("id_columns", "task", "classes"):
        if a[key] != b[key]:
            out.append(f"{key.replace('_', ' ')} {b[key]!r}, was {a[key]!r}")
    return out


def synthetic_rows(bundle: LoadedBundle, n: int = 2) -> pd.DataFrame:
    """Rows that satisfy the input contract, for a warm-up before any input was recorded."""
    import pandas as pd

    row: dict[str, Any] = {}
    for c in bundle.columns:
        if c.categories:
            row[c.name] = c.categories[0]
        elif c.dtype.startswith(("float", "int")):
            row[c.name] = 0.0
        elif c.dtype == "bool":
            row[c.name] = False
        else:
            row[c.name] = "x"
    return pd.DataFrame([row] * n)


class Follower:
    """The current generation of an alias, swapped when the alias moves (see module doc)."""

    def __init__(
        self,
        registry: Registry,
        alias: str,
        *,
        trusted_keys: Sequence[Any] = (),
        allow_contract_change: bool = False,
        poll: float = DEFAULT_POLL,
        prepare: Callable[[LoadedBundle], Any] | None = None,
        warm: Callable[[Any, pd.DataFrame], Any] | None = None,
        log: Callable[[str], None] | None = None,
        check_environment: bool = True,
        load: Callable[..., Any],
        runtime: str = "auto",
    ) -> None:
        from mlrepro.delivery.registry import check_alias, scratch_folder

        self.load = load  # delivery.api.load_bundle (injected: api builds followers)
        self.runtime = runtime  # load_bundle's runtime choice, for every generation

        if not poll > 0:
            raise UsageError(f"--poll {poll} is not valid", hint="use a number of seconds > 0")
        self.registry = registry
        self.alias = check_alias(alias)
        self.trusted_keys = tuple(trusted_keys)
        self.allow_contract_change = allow_contract_change
        self.poll = float(poll)
        self.prepare = prepare or (lambda bundle: None)
        self.warm = warm
        self.log = log or (lambda message: None)
        self.check_environment = check_environment
        self.folder = scratch_folder()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rows: deque[pd.DataFrame] = deque(maxlen=WARM_ROWS)
        self._seen = 0
        self._refused: set[str] = set()
        self.swaps = 0
        self.refusals = 0
        self.check_errors = 0
        self.last_swap: dict[str, Any] | None = None
        self.last_refusal: dict[str, Any] | None = None
        self.last_check: str | None = None
        self._generation = self._first()

    # ------------------------------------------------------------------ reading
    @property
    def current(self) -> Generation:
        return self._generation

    def remember(self, frame: pd.DataFrame) -> None:
        """Keep a few input rows the current model accepted, for warming up the next one."""
        self._seen += 1
        if len(self._rows) < WARM_ROWS or self._seen % 64 == 0:
            with contextlib.suppress(Exception):
                self._rows.append(frame.head(2).copy())

    def status(self) -> dict[str, Any]:
        g = self._generation
        return {
            "registry": self.registry.url,
            "alias": self.alias,
            "watch": self.registry.watch,
            "poll_seconds": self.poll,
            "current": {
                **g.move.to_dict(),
                "generation": g.number,
                "loaded_at": g.loaded_at,
            },
            "swaps": self.swaps,
            "refusals": self.refusals,
            "check_errors": self.check_errors,
            "last_swap": self.last_swap,
            "last_refusal": self.last_refusal,
            "last_check": self.last_check,
        }

    # ------------------------------------------------------------------ loading
    def _load(self, move: Move) -> Any:
        path = self.registry.fetch(move, self.folder)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            bundle = self.load(
                path,
                expect_fingerprint=move.bundle_fingerprint,
                trusted_keys=self.trusted_keys,
                check_environment=self.check_environment,
                runtime=self.runtime,
            )
        for w in caught:
            self.log(f"warning: {w.message}")
        if bundle.model_fingerprint != move.model_fingerprint:
            raise ArtifactError(
                f"alias {self.alias!r} move {move.seq} names model {move.model_fingerprint[:20]}"
                f"..., but its bundle holds {bundle.model_fingerprint[:20]}...",
                hint="the registry record was modified; publish the bundle again",
            )
        return bundle

    def _first(self) -> Generation:
        move = self.registry.current(self.alias)
        if move is None:
            raise UsageError(
                f"alias {self.alias!r} does not exist in registry {self.registry.url}",
                hint=f"publish a bundle first: mlrepro publish FILE --registry URL "
                f"--alias {self.alias}",
            )
        bundle = self._load(move)
        state = self.prepare(bundle)
        return Generation(bundle, move, state, 1, _now())

    def _warm_rows(self, bundle: LoadedBundle) -> tuple[pd.DataFrame, bool]:
        import pandas as pd

        rows = list(self._rows)
        if rows:
            return pd.concat(rows, ignore_index=True), True
        return synthetic_rows(bundle), False

    def _candidate(self, move: Move) -> Generation:
        old = self._generation
        bundle = self._load(move)
        if not self.allow_contract_change:
            changes = contract_changes(old.bundle, bundle)
            if changes:
                raise UsageError(
                    f"the input contract changed: {'; '.join(changes[:4])}",
                    hint="publish a compatible model, or restart with --allow-contract-change "
                    "if every client sends what the new model needs",
                )
        state = self.prepare(bundle)
        frame, recorded = self._warm_rows(bundle)
        result = bundle.predict_valid(frame)  # a model that fails here is refused
        if recorded and len(result.rejects) and not self.allow_contract_change:
            why = result.rejects["reason"].iloc[0]
            raise UsageError(
                f"the new model rejects {len(result.rejects)} of {len(frame)} recorded "
                f"input row(s) the current model accepted ({str(why)[:160]})",
                hint="publish a model that accepts the same inputs",
            )
        if self.warm is not None:
            self.warm(state, frame)
        return Generation(bundle, move, state, old.number + 1, _now())

    # ------------------------------------------------------------------ checking
    def check(self) -> str:
        """Look at the alias once: "unchanged", "swapped", "refused" or "error"."""
        self.last_check = _now()
        try:
            move = self.registry.current(self.alias)
        except MlreproError as exc:
            self.check_errors += 1
            self.log(f"cannot read alias {self.alias!r}: {exc.message}")
            return "error"
        if move is None:
            self.check_errors += 1
            self.log(f"alias {self.alias!r} disappeared from the registry; keeping the model")
            return "error"
        if move.seq == self._generation.move.seq or move.object in self._refused:
            return "unchanged"  # the fast path of nearly every poll (no lock)
        with self._lock:  # one check at a time (the thread, and check_now from a caller)
            old = self._generation
            if move.object == old.move.object:
                if move.seq > old.move.seq:  # the same bundle published again: same model
                    self._generation = dataclasses.replace(old, move=move)
                return "unchanged"
            if move.object in self._refused:
                return "unchanged"
            started = time.monotonic()
            self.log(
                f"alias {self.alias!r} names move {move.seq} now (bundle "
                f"{move.bundle_fingerprint[:20]}...): checking it"
            )
            try:
                new = self._candidate(move)
            except Exception as exc:  # noqa: BLE001 - any failure refuses the bundle
                self._refuse(move, exc)
                return "refused"
            self._generation = new
        self.swaps += 1
        self.last_swap = {
            "at": _now(),
            "from": old.model_fingerprint,
            "to": new.model_fingerprint,
            "bundle_fingerprint": new.bundle.fingerprint,
            "seq": move.seq,
            "action": move.action,
            "seconds": round(time.monotonic() - started, 4),
        }
        self.log(
            f"alias {self.alias!r} moved (move {move.seq}, {move.action}): now serving model "
            f"{new.model_fingerprint} (was {old.model_fingerprint}; checked and swapped in "
            f"{self.last_swap['seconds']:.3f} s)"
        )
        return "swapped"

    def _refuse(self, move: Move, exc: Exception) -> None:
        reason = exc.message if isinstance(exc, MlreproError) else f"{type(exc).__name__}: {exc}"
        self._refused.add(move.object)
        self.refusals += 1
        self.last_refusal = {
            "at": _now(),
            "seq": move.seq,
            "object": move.object,
            "bundle_fingerprint": move.bundle_fingerprint,
            "model_fingerprint": move.model_fingerprint,
            "reason": reason[:500],
        }
        self.log(
            f"refused move {move.seq} of alias {self.alias!r} (bundle "
            f"{move.bundle_fingerprint[:20]}...): {reason[:300]}; still serving model "
            f"{self._generation.model_fingerprint}"
        )

    # ------------------------------------------------------------------ background
    def start(self) -> Follower:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, name=f"mlrepro-follow-{self.alias}", daemon=True
            )
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.registry.wait(self.poll, self._stop)
                if not self._stop.is_set():
                    self.check()
            except Exception as exc:  # noqa: BLE001 - the loop must survive anything
                self.check_errors += 1
                self.log(f"alias check failed ({type(exc).__name__}: {exc})")
                self._stop.wait(self.poll)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self._thread = None
        self.registry.close()
        from mlrepro.delivery.registry import remove_scratch

        remove_scratch(Path(self.folder))
