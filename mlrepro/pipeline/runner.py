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

from mlrepro.core import env, interrupt
from mlrepro.core.manifest import Manifest
from mlrepro.core.sources import redact
from mlrepro.errors import DataError, UsageError
from mlrepro.fingerprint import hash_file
from mlrepro.pipeline import plan
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
        self._env: dict[str, Any] | None = None
        self._checked = False  # preflight done: every class path and parameter resolves

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
            return {"input": hash_file(path)}
        return {"input": f"query@{_now()}"}  # a query's result may change: always rerun

    def assess(self, stage: str) -> plan.StageState:
        return plan.assess(stage, self.m, self.lock, self.store.is_intact, self.extra_inputs(stage))

    def status(self) -> list[plan.StageState]:
        return [self.assess(s) for s in plan.stages_for(self.m)]

    # ------------------------------------------------------------------ running
    def run(self, stages: list[str] | None = None, *, force: bool = False) -> list[StageResult]:
        results = []
        for stage in stages or plan.stages_for(self.m):
            results.append(self.run_stage(stage, force=force))
        return results

    def run_stage(self, stage: str, *, force: bool = False) -> StageResult:
        state = self.assess(stage)
        if state.inputs is None:
            need = ", ".join(sorted({up for up, _ in plan.INPUTS[stage].values()}))
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

            check_classes(self.m)  # fail before hours of extract, not after
            self._checked = True
        self.report("start", stage, state.reason)
        try:
            return self._execute(stage, state)
        except BaseException:
            # leave no orphans: keep only what the lock on disk names
            self.store.discard_created(lockfile.referenced_paths_on_disk(self.lock_root))
            raise

    def _unpublish(self, stage: str) -> None:
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
        outputs, details = getattr(self, f"_{stage}")()
        duration = time.perf_counter() - t0
        if self._env is None:
            self._env = env.capture(self.m.plugins)
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

    def _advance(self, stage: str, total: int | None = None) -> Callable[[int], None] | None:
        return self.progress(stage, total) if self.progress else None

    # ------------------------------------------------------------------ stages
    def _extract(self) -> tuple[dict, dict]:
        import pyarrow.parquet as pq

        from mlrepro.fingerprint import FrameHasher
        from mlrepro.pipeline.extract import iter_batches, summarise
        from mlrepro.pipeline.schema import infer_yaml

        src = self.m.source
        hasher, summary = FrameHasher(), {}
        writer = None
        with self.store.temp(".parquet") as tmp:
            try:
                for batch in iter_batches(src, self.root, self._advance("extract")):
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, batch.schema)
                    writer.write_batch(batch)
                    hasher.update(batch)
                    summarise(batch, summary)
            finally:
                if writer is not None:
                    writer.close()
            if hasher.rows == 0:
                raise DataError(
                    f"the source query returned zero rows as of {src.as_of}",
                    hint="check source.query, source.as_of and source.timestamp_column",
                )
            if self.m.target not in hasher.columns:
                from mlrepro.transformers import missing_columns_error

                raise missing_columns_error(
                    [self.m.target], hasher.columns, "target (manifest field 'target')"
                )
            snapshot = self.store.write_parquet_file(
                tmp, hasher.hexdigest(), hasher.rows, len(hasher.columns)
            )
        schema = self.store.write_text(infer_yaml(summary, self.m.name), "yaml")
        details = {
            "url": redact(src.url),
            "query": src.query,
            "as_of": src.as_of,
            "timestamp_column": src.timestamp_column,
            "order_by": list(src.order_by),
            "rows": hasher.rows,
            "columns": hasher.columns,
        }
        return {"snapshot": snapshot, "schema": schema}, details

    def _features(self) -> tuple[dict, dict]:
        from mlrepro.pipeline.features import fit_features

        snapshot = self.store.read_frame(self.output("extract", "snapshot"))
        transformer, matrix, details = fit_features(snapshot, self.m)
        outputs = {
            "matrix": self.store.write_frame(matrix),
            "transformer": self.store.write_model(transformer),
        }
        return outputs, details

    def _select(self) -> tuple[dict, dict]:
        from mlrepro.pipeline.select import fit_selection

        matrix = self.store.read_frame(self.output("features", "matrix"))
        task = self.record("features")["details"]["task"]
        selector, selected = fit_selection(matrix, self.m, task)
        details = {"selected": selected, "count": len(selected)}
        return {"selector": self.store.write_model(selector)}, details

    def _train(self) -> tuple[dict, dict]:
        from mlrepro.pipeline.train import fit_model

        matrix = self.store.read_frame(self.output("features", "matrix"))
        frame_api = ("transform", "get_feature_names_out")
        transformer = self.store.read_model(self.output("features", "transformer"), frame_api)
        selector = self.store.read_model(self.output("select", "selector"), frame_api)
        task = self.record("features")["details"]["task"]
        pipeline, details = fit_model(matrix, transformer, selector, self.m, task)
        return {"pipeline": self.store.write_model(pipeline)}, details

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
        return read_query_chunks(url, p.query, self.root, chunk_rows)

    def _predict(self) -> tuple[dict, dict]:
        from mlrepro.predict.batchio import BeforePublish, FileWriter, TableWriter
        from mlrepro.predict.sink import run_prediction

        p = self.m.predict
        assert p is not None
        chunks = self.predict_input_chunks()
        contract = self.contract()
        if p.table:
            writer = TableWriter(p.output_url or self.m.source.url, p.table, self.root)
            out_path = None
        else:
            out_path = self.root / (p.output or "predictions.parquet")
            writer = FileWriter(out_path, {"mlrepro_model_fingerprint": contract.model_fingerprint})
        summary = run_prediction(
            self.load_pipeline(),
            contract,
            chunks,
            BeforePublish(writer, lambda: self._unpublish("predict")),
            on_progress=self._advance("predict"),
            warn=lambda msg: self.report("warn", "predict", msg),
        )
        out: dict[str, Any] = {"fingerprint": summary["fingerprint"], "rows": summary["predicted"]}
        if out_path is not None:
            out["path"] = out_path.relative_to(self.root).as_posix()
            out["file_hash"] = hash_file(out_path)
        else:
            out["table"] = p.table
        return {"predictions": out}, summary
