"""Run stages: load inputs from the store, call the stage, save outputs, record the lock.

The lock is rewritten atomically after each completed stage, so at any moment it names only
artifacts that exist with the recorded fingerprints.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlrepro.core import interrupt
from mlrepro.core.manifest import Manifest
from mlrepro.errors import UsageError
from mlrepro.fingerprint import hash_file
from mlrepro.pipeline import plan
from mlrepro.pipeline.registry import STAGES
from mlrepro.project import lockfile
from mlrepro.project.store import STORE_DIR, Store

Reporter = Callable[..., None]


def _noop(*_: Any, **__: Any) -> None:
    return None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class StageResult:
    stage: str
    status: str  # "ran" | "skipped"
    reason: str = ""
    duration_s: float = 0.0
    outputs: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "status": self.status,
            "reason": self.reason,
            "duration_s": round(self.duration_s, 4),
            "outputs": self.outputs,
            "warnings": list(self.details.get("warnings", [])),
        }


class Runner:
    """Executes a project's stages against a store and a lock."""

    def __init__(
        self,
        manifest: Manifest,
        *,
        store_root: Path | None = None,
        lock_root: Path | None = None,
        report: Reporter = _noop,
        progress: Any = None,
        predictions: PredictionTarget | None = None,
    ) -> None:
        self.m = manifest
        self.root = manifest.root
        self.store = Store(
            store_root or self.root, model_format=manifest.model.format, plugins=manifest.plugins
        )
        self.lock_root = lock_root or self.root
        self.lock = lockfile.read(self.lock_root, manifest.name)
        self.report = report
        self.progress = progress  # callable(stage, total|None) -> advance(n) or None
        self.predictions = predictions or ProjectPredictions()
        self._env: dict[str, Any] | None = None
        self._checked = False  # preflight done: every class path and parameter resolves
        self._planned: list[str] | None = None  # the stages of this run (None: all)

    # ------------------------------------------------------------------ planning
    def extra_inputs(self, stage: str) -> dict[str, str]:
        if stage != "predict" or not self.m.predict:
            return {}
        if self.m.predict.input:
            path = self.root / self.m.predict.input
            if not path.is_file():
                raise UsageError(
                    f"predict input {self.m.predict.input} does not exist",
                    hint="fix predict.input in the manifest, or remove the predict section",
                )
            return {"input": self.store.hashes.hash_file(path)}
        return {"input": f"query@{_now()}"}  # a query's result may change: always rerun

    def assess(self, stage: str) -> plan.StageState:
        return plan.assess(
            stage, self.m, self.lock, self.store.is_unchanged, self.extra_inputs(stage)
        )

    def status(self) -> list[plan.StageState]:
        states = [self.assess(s) for s in plan.stages_for(self.m)]
        self.store.hashes.save()
        return states

    # ------------------------------------------------------------------ running
    def run(self, stages: list[str] | None = None, *, force: bool = False) -> list[StageResult]:
        results = []
        self._planned = list(stages or plan.stages_for(self.m))
        for stage in self._planned:
            results.append(self.run_stage(stage, force=force))
        self.store.hashes.save()
        return results

    def run_stage(self, stage: str, *, force: bool = False) -> StageResult:
        state = self.assess(stage)
        if state.inputs is None:
            need = ", ".join(STAGES[stage].upstream())
            raise UsageError(
                f"stage '{stage}' needs the output of '{need}', which has not run",
                hint=f"run 'mlrepro {need.split(', ')[0]}' first, or 'mlrepro run'",
            )
        if state.state == "up to date" and not force:
            self.report("skip", stage)
            rec = self.lock["stages"][stage]
            return StageResult(stage, "skipped", "unchanged", outputs=rec["outputs"])
        interrupt.check()  # a Ctrl-C swallowed by a library stops us at the next stage
        if not self._checked:
            from mlrepro.pipeline.preflight import check_classes

            check_classes(self.m, self._planned)  # fail before hours of extract, not after
            self._checked = True
        self.report("start", stage, state.reason)
        try:
            return self._execute(stage, state)
        except BaseException:
            # leave no orphans: keep only what the lock on disk names
            self.store.discard_created(lockfile.referenced_paths_on_disk(self.lock_root))
            raise

    def unpublish(self, stage: str) -> None:
        """Drop a stage's record before it overwrites an output outside the store.

        Predictions go to a fixed file or table, not to a new content address: right before
        they are replaced, the lock must stop naming the old ones, or a crash between the
        overwrite and the lock write would leave the lock naming bytes it does not know.
        """
        outputs = self.lock["stages"].get(stage, {}).get("outputs", {})
        if any(not str(o.get("path", "")).startswith(STORE_DIR) for o in outputs.values()):
            del self.lock["stages"][stage]
            lockfile.write(self.lock_root, self.lock)

    def _execute(self, stage: str, state: plan.StageState) -> StageResult:
        started, t0 = _now(), time.perf_counter()
        outputs, details = STAGES[stage].execute(self)
        duration = time.perf_counter() - t0
        if self._env is None:
            from mlrepro.environment import record as env

            self._env = env.capture(self.m.plugins, cache_dir=self.store.root / STORE_DIR)
        record = {
            "key": state.key,
            "code_version": plan.code_version(stage),
            "params": state.params,
            "params_fingerprint": state.params_fp,
            "inputs": state.inputs,
            "outputs": outputs,
            "details": details,
            "environment": self._env,
            "started_at": started,
            "duration_s": round(duration, 4),
        }
        self.lock["stages"][stage] = record
        self.lock["project"] = self.m.name
        lockfile.write(self.lock_root, self.lock)
        self.store.created.clear()  # now named by the lock
        result = StageResult(stage, "ran", state.reason, duration, outputs, details)
        self.report("done", stage, result)
        return result

    def finish(self) -> int:
        """Remove store objects no longer named by the lock (after a successful run)."""
        return self.store.prune(lockfile.referenced_paths(self.lock))

    # ------------------------------------------------------------------ helpers
    def record(self, stage: str) -> dict[str, Any]:
        rec = self.lock["stages"].get(stage)
        if not rec:
            raise UsageError(
                f"stage '{stage}' has not run yet", hint=f"run 'mlrepro {stage}' or 'mlrepro run'"
            )
        return rec

    def output(self, stage: str, name: str) -> dict[str, Any]:
        return self.record(stage)["outputs"][name]

    def adopt(self, stage: str, record: dict[str, Any]) -> None:
        """Take a stage record as this runner's own (verify feeds recorded upstream outputs)."""
        self.lock["stages"][stage] = record

    def advance(self, stage: str, total: int | None = None) -> Callable[[int], None] | None:
        return self.progress(stage, total) if self.progress else None

    # ------------------------------------------------------------------ stage context
    def contract(self) -> Any:
        from mlrepro.predict.contract import Contract

        train = self.record("train")
        return Contract(
            input_columns=train["details"]["input_columns"],
            schema_yaml=self.store.read_text(self.output("extract", "schema")),
            model_fingerprint=train["outputs"]["pipeline"]["fingerprint"],
            id_columns=list(self.m.source.order_by),
            task=train["details"]["task"],
            classes=train["details"].get("classes"),
            open_columns=list(train["details"].get("open_categories", [])),
        )

    def predict_adhoc(
        self,
        *,
        on_progress: Callable[[int], None] | None = None,
        warn: Callable[[str], None] | None = None,
        **io: Any,
    ) -> dict[str, Any]:
        """Predict with the trained pipeline into a file or table (not recorded in the lock)."""
        from mlrepro.predict.io import predict_io

        contract = self.contract()
        return predict_io(
            self.load_pipeline(),
            contract,
            root=self.root,
            default_url=self.m.source.url,
            on_progress=on_progress,
            warn=warn,
            **io,
        )

    def load_pipeline(self) -> Any:
        return self.store.read_model(self.output("train", "pipeline"), ("predict",))

    def predict_input_chunks(self, chunk_rows: int = 100_000) -> Any:
        """Chunks of the manifest's predict input (a file or a query)."""
        from mlrepro.predict.batchio import read_chunks, read_query_chunks

        p = self.m.predict
        assert p is not None
        if p.input:
            return read_chunks(
                self.root / p.input, chunk_rows, text_columns=self.contract().text_columns()
            )
        url = p.input_url or self.m.source.url
        return read_query_chunks(url, p.query or "", self.root, chunk_rows)


# ----------------------------------------------------------------------- prediction targets
@dataclass
class OpenTarget:
    """Where one predict stage writes, and how its output record is made afterwards."""

    writer: Any
    record: Callable[[dict[str, Any]], dict[str, Any]]


class PredictionTarget:
    """Where the predict stage writes: injected into the Runner (verify writes elsewhere)."""

    def open(self, runner: Runner) -> OpenTarget:
        raise NotImplementedError


def _file_record(path: Path, relative_to: Path, summary: dict[str, Any]) -> dict[str, Any]:
    return {
        "fingerprint": summary["fingerprint"],
        "rows": summary["predicted"],
        "path": path.relative_to(relative_to).as_posix(),
        "file_hash": hash_file(path),
    }


class ProjectPredictions(PredictionTarget):
    """The manifest's ``predict.output`` file or ``predict.table`` (the default target).

    The lock stops naming the previous predictions right before they are replaced.
    """

    def open(self, runner: Runner) -> OpenTarget:
        from mlrepro.predict.batchio import BeforePublish, predictions_writer

        m = runner.m
        p = m.predict
        assert p is not None
        path = runner.root / (p.output or "predictions.parquet")
        writer = predictions_writer(
            output=None if p.table else path,
            table=p.table or None,
            url=p.output_url or m.source.url,
            root=runner.root,
            model_fingerprint=runner.contract().model_fingerprint,
        )
        table = p.table or None

        def record(summary: dict[str, Any]) -> dict[str, Any]:
            if table is None:
                return _file_record(path, runner.root, summary)
            return {
                "fingerprint": summary["fingerprint"],
                "rows": summary["predicted"],
                "table": table,
            }

        return OpenTarget(BeforePublish(writer, lambda: runner.unpublish("predict")), record)


class ScratchPredictions(PredictionTarget):
    """Predictions into the runner's own store folder, never the user's output (verify)."""

    def open(self, runner: Runner) -> OpenTarget:
        from mlrepro.predict.batchio import FileWriter

        path = runner.store.root / "predictions.parquet"
        return OpenTarget(
            FileWriter(path), lambda summary: _file_record(path, runner.store.root, summary)
        )
