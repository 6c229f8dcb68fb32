"""The model holder of ``serve`` and ``stream``: one fixed bundle, or a followed alias.

``ModelHolder.current`` is the ``Served`` generation to use for one request or one batch:
the bundle with its request models and scorer, built (and warmed up) *before* the swap, so
a swap is one reference assignment and the first request on the new model pays nothing.
A caller takes ``current`` once and uses only it, so an in-flight request finishes on the
model it started with. Following is ``delivery.follow.Follower``'s job; this module adds
what serving needs per model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from mlrepro.delivery.api import Bundle


@dataclass
class Served:
    """What serving needs of one model, built once per generation."""

    bundle: Bundle
    max_batch: int
    number: int = 1
    models: Any = None
    scorer: Any = None
    _adapters: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from mlrepro.serving.records import RequestModels
        from mlrepro.serving.scoring import Scorer

        self.models = RequestModels(self.bundle, max_batch=self.max_batch)
        self.scorer = Scorer(self.bundle)

    @property
    def fingerprints(self) -> dict[str, str]:
        return {
            "model_fingerprint": self.bundle.model_fingerprint,
            "bundle_fingerprint": self.bundle.fingerprint,
        }

    def adapter(self, kind: str) -> Any:
        """A pydantic TypeAdapter for a whole batch ("batch") or one record ("record")."""
        if kind not in self._adapters:
            from pydantic import TypeAdapter

            self._adapters[kind] = TypeAdapter(
                self.models.batch if kind == "batch" else self.models.record
            )
        return self._adapters[kind]

    def warm(self, frame: pd.DataFrame) -> None:
        """Score a few rows through the serving path (imports, caches, first-call costs)."""
        columns = list(self.bundle.metadata.input_columns)
        self.scorer.score(frame[columns].reset_index(drop=True))
        self.adapter("batch")
        self.adapter("record")


class ModelHolder:
    """``current`` for every request; ``status()`` for /metadata; ``remember`` for warm-ups."""

    def __init__(self, served: Served, follower: Any = None) -> None:
        self._static = served
        self.follower = follower

    @property
    def following(self) -> bool:
        return self.follower is not None

    @property
    def current(self) -> Served:
        if self.follower is None:
            return self._static
        return self.follower.current.state

    def remember(self, frame: pd.DataFrame) -> None:
        if self.follower is not None:
            self.follower.remember(frame)

    def status(self) -> dict[str, Any] | None:
        return self.follower.status() if self.follower is not None else None

    def start(self) -> ModelHolder:
        if self.follower is not None:
            self.follower.start()
        return self

    def close(self) -> None:
        if self.follower is not None:
            self.follower.close()

    @classmethod
    def fixed(cls, bundle: Bundle, max_batch: int) -> ModelHolder:
        return cls(Served(bundle, max_batch))

    @classmethod
    def follow(
        cls,
        registry: str,
        alias: str,
        *,
        max_batch: int,
        trust: Sequence[str] = (),
        poll: float = 2.0,
        allow_contract_change: bool = False,
        log: Callable[[str], None] | None = None,
        runtime: str = "auto",
    ) -> ModelHolder:
        """Follow ``alias``: the first model is loaded (and checked) before this returns."""
        from mlrepro.delivery import signing
        from mlrepro.delivery.api import load_bundle
        from mlrepro.delivery.follow import Follower
        from mlrepro.delivery.registry import open_registry

        keys = signing.trusted(trust)
        reg = open_registry(registry)
        counter = {"n": 0}

        def prepare(bundle: Bundle) -> Served:
            counter["n"] += 1
            return Served(bundle, max_batch, counter["n"])

        try:
            follower = Follower(
                reg,
                alias,
                trusted_keys=keys,
                allow_contract_change=allow_contract_change,
                poll=poll,
                prepare=prepare,
                warm=lambda served, frame: served.warm(frame),
                log=log,
                load=load_bundle,
                runtime=runtime,
            )
        except BaseException:
            reg.close()
            raise
        return cls(follower.current.state, follower)


def status_json(holder: ModelHolder) -> bytes:
    return json.dumps(holder.status(), sort_keys=True, default=str).encode("utf-8")
