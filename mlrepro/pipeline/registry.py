"""The stages, registered in one place: name, inputs, parameters, code version, execution.

Plan (what is stale), the runner (what to execute), verify (what each stage reads) and the
bundle (which stages make the model) all read ``STAGES``; adding a stage means adding one
``Stage`` here and one pure module beside this one.

A stage's ``execute(ctx)`` is the glue between the store and the stage's pure function: it
loads the recorded inputs, calls the function, saves the outputs, and returns
``(outputs, details)``. The stage modules are imported inside ``execute`` so that planning
(``status``, a no-op ``run``) never imports pandas or scikit-learn.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mlrepro.core.manifest import Manifest
from mlrepro.core.sources import redact
from mlrepro.errors import DataError

Outputs = tuple[dict[str, Any], dict[str, Any]]


class StageContext(Protocol):
    """What a stage's ``execute`` may use: the runner provides it."""

    m: Manifest
    root: Path
    store: Any  # mlrepro.project.store.Store
    predictions: Any  # where the predict stage writes (mlrepro.pipeline.runner)

    def record(self, stage: str) -> dict[str, Any]: ...
    def output(self, stage: str, name: str) -> dict[str, Any]: ...
    def advance(self, stage: str, total: int | None = None) -> Callable[[int], None] | None: ...
    def report(self, *args: Any) -> None: ...
    def contract(self) -> Any: ...
    def load_pipeline(self) -> Any: ...
    def predict_input_chunks(self, chunk_rows: int = 100_000) -> Any: ...


@dataclass(frozen=True)
class Stage:
    """One pipeline stage.

    ``inputs`` are the upstream outputs that enter the stage key ({name: (stage, output)});
    ``reads`` lists upstream outputs the stage also needs but that do not change its result
    (predict reads extract's schema for the input contract). ``trained`` stages make up the
    model a bundle carries.
    """

    name: str
    version: int
    params: Callable[[Manifest], dict[str, Any]]
    execute: Callable[[StageContext], Outputs]
    inputs: dict[str, tuple[str, str]] = field(default_factory=dict)
    reads: tuple[tuple[str, str], ...] = ()
    trained: bool = True
    applies: Callable[[Manifest], bool] = lambda _m: True

    def needs(self) -> dict[str, list[str]]:
        """{upstream stage: [outputs]} this stage reads (its inputs and ``reads``)."""
        out: dict[str, list[str]] = {}
        for up, name in [*self.inputs.values(), *self.reads]:
            if name not in out.setdefault(up, []):
                out[up].append(name)
        return out

    def upstream(self) -> list[str]:
        return sorted({up for up, _ in self.inputs.values()})


# ---------------------------------------------------------------------------- parameters
def _with_format(params: dict[str, Any], m: Manifest) -> dict[str, Any]:
    """Stages that save models re-run when model.format changes (joblib keeps old keys)."""
    if m.model.format != "joblib":
        params["model_format"] = m.model.format
    return params


def _extract_params(m: Manifest) -> dict[str, Any]:
    s = m.source
    return {
        "url": redact(s.url),
        "query": s.query,
        "timestamp_column": s.timestamp_column,
        "as_of": s.as_of_utc().isoformat(),
        "order_by": list(s.order_by),
    }


def _features_params(m: Manifest) -> dict[str, Any]:
    params = {
        "seed": m.seed,
        "target": m.target,
        "excluded": list(m.excluded_columns),
        "features": m.raw.get("features") or [],
        "plugins": list(m.plugins),
        "split": {
            "test_size": m.model.test_size,
            "stratify": m.model.stratify,
            "estimator": m.model.estimator,
        },
    }
    return _with_format(params, m)


def _select_params(m: Manifest) -> dict[str, Any]:
    params = {"seed": m.seed, "selection": m.raw.get("selection"), "estimator": m.model.estimator}
    return _with_format(params, m)


def _train_params(m: Manifest) -> dict[str, Any]:
    return {"seed": m.seed, "model": dict(m.raw.get("model") or {})}


def _predict_params(m: Manifest) -> dict[str, Any]:
    p = m.predict
    return {k: redact(v) for k, v in vars(p).items() if v is not None} if p else {}


def _predicts(m: Manifest) -> bool:
    return bool(m.predict and (m.predict.input or m.predict.query))


# ----------------------------------------------------------------------------- execution
def _extract(ctx: StageContext) -> Outputs:
    from mlrepro.core.database import RESTART, iter_batches
    from mlrepro.pipeline.extract import SnapshotWriter
    from mlrepro.pipeline.schema import infer_yaml

    m, store = ctx.m, ctx.store
    src = m.source
    with store.temp(".parquet") as tmp:
        # closing(): on any error (Ctrl-C in a write) the reader's connections close here,
        # not whenever the generator is collected (at interpreter exit, ADBC crashed: -11)
        batches = contextlib.closing(iter_batches(src, ctx.root, ctx.advance("extract")))
        with SnapshotWriter(tmp) as sink, batches as stream:
            for batch in stream:
                if batch is RESTART:
                    sink.restart()
                    continue
                sink.add(batch)
        hasher, summary = sink.hasher, sink.summary
        if hasher.rows == 0:
            raise DataError(
                f"the source query returned zero rows as of {src.as_of}",
                hint="check source.query, source.as_of and source.timestamp_column",
            )
        if m.target not in hasher.columns:
            from mlrepro.transformers import missing_columns_error

            raise missing_columns_error(
                [m.target], hasher.columns, "target (manifest field 'target')"
            )
        snapshot = store.write_parquet_file(
            tmp, hasher.hexdigest(), hasher.rows, len(hasher.columns)
        )
    schema = store.write_text(infer_yaml(summary, m.name), "yaml")
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


def _features(ctx: StageContext) -> Outputs:
    from mlrepro.pipeline.features import fit_features

    snapshot = ctx.store.read_frame(ctx.output("extract", "snapshot"))
    transformer, matrix, details = fit_features(snapshot, ctx.m)
    outputs = {
        "matrix": ctx.store.write_frame(matrix),
        "transformer": ctx.store.write_model(transformer),
    }
    return outputs, details


def _select(ctx: StageContext) -> Outputs:
    from mlrepro.pipeline.select import fit_selection

    matrix = ctx.store.read_frame(ctx.output("features", "matrix"))
    task = ctx.record("features")["details"]["task"]
    selector, selected = fit_selection(matrix, ctx.m, task)
    details = {"selected": selected, "count": len(selected)}
    return {"selector": ctx.store.write_model(selector)}, details


def _train(ctx: StageContext) -> Outputs:
    from mlrepro.pipeline.train import fit_model

    matrix = ctx.store.read_frame(ctx.output("features", "matrix"))
    frame_api = ("transform", "get_feature_names_out")  # a wrong object is exit 4, not 70
    transformer = ctx.store.read_model(ctx.output("features", "transformer"), frame_api)
    selector = ctx.store.read_model(ctx.output("select", "selector"), frame_api)
    task = ctx.record("features")["details"]["task"]
    pipeline, details = fit_model(matrix, transformer, selector, ctx.m, task)
    outputs = {
        "pipeline": ctx.store.write_model(pipeline),
        "matrix_predictions": ctx.store.write_frame(
            matrix_predictions(pipeline, matrix, ctx.m, task)
        ),
    }
    if ctx.m.model.accelerate:
        from mlrepro.pipeline.compiled import PROGRAM_EXT, compile_checked, input_rows

        snapshot = ctx.store.read_frame(ctx.output("extract", "snapshot"))
        compiled = compile_checked(pipeline, input_rows(snapshot, details["input_columns"]), task)
        details["acceleration"] = compiled.record
        if compiled.program is not None:
            outputs["program"] = ctx.store.write_bytes(compiled.program, PROGRAM_EXT)
        else:
            ctx.report("warn", "train", f"no accelerated program: {compiled.record['reason']}")
    return outputs, details


def matrix_predictions(pipeline: Any, matrix: Any, m: Manifest, task: str) -> Any:
    """The model's predictions on every matrix row (training and held-out), as a frame.

    A safe record of the model's behaviour: verify compares it without unpickling the
    recorded model. The feature steps are skipped, since the matrix is their output.
    """
    import pandas as pd

    from mlrepro.pipeline.features import SPLIT_COLUMN
    from mlrepro.predict.scoring import predict_frame

    X = matrix.drop(columns=[m.target, SPLIT_COLUMN], errors="ignore")
    return pd.DataFrame(predict_frame(pipeline[1:], X, task))


def _predict(ctx: StageContext) -> Outputs:
    from mlrepro.predict.sink import run_prediction

    contract = ctx.contract()
    target = ctx.predictions.open(ctx)
    summary = run_prediction(
        ctx.load_pipeline(),
        contract,
        ctx.predict_input_chunks(),
        target.writer,
        on_progress=ctx.advance("predict"),
        warn=lambda msg: ctx.report("warn", "predict", msg),
    )
    return {"predictions": target.record(summary)}, summary


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage("extract", 2, _extract_params, _extract),
        Stage("features", 1, _features_params, _features, {"snapshot": ("extract", "snapshot")}),
        Stage("select", 1, _select_params, _select, {"matrix": ("features", "matrix")}),
        Stage(
            "train",
            1,
            _train_params,
            _train,
            {
                "matrix": ("features", "matrix"),
                "transformer": ("features", "transformer"),
                "selector": ("select", "selector"),
            },
        ),
        Stage(
            "predict",
            1,
            _predict_params,
            _predict,
            {"pipeline": ("train", "pipeline")},
            reads=(("extract", "schema"),),
            trained=False,
            applies=_predicts,
        ),
    )
}

#: The stages whose outputs make up the trained model (what a bundle pins).
TRAINED_STAGES: tuple[str, ...] = tuple(s.name for s in STAGES.values() if s.trained)


def stages_for(manifest: Manifest) -> list[str]:
    """The project's stages, in execution order."""
    return [s.name for s in STAGES.values() if s.applies(manifest)]
