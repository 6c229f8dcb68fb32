"""The REST API of ``mlrepro serve``: a FastAPI app around one verified, loaded bundle.

    POST /predict    a JSON list of records, or an object of columns -> predictions
    GET  /health     the process is up
    GET  /ready      the model is loaded and verified
    GET  /metadata   fingerprints, feature order, input schema, metrics, model card
    GET  /card       the model card (Markdown)
    GET  /report     the bundle's report: lineage, metrics, fingerprints (self-contained HTML)

The request schema (and so the OpenAPI document) is generated from the bundle's input
schema (``records.RequestModels``). Bad input is answered with 422 and per-record, per-field
reasons, an oversize batch with 413; a 500 means a bug, never bad input.
"""

import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError, create_model
from starlette.exceptions import HTTPException as StarletteHTTPException

from mlrepro.errors import PredictionRejected
from mlrepro.serving.errors import (
    BodyLimit,
    ErrorBody,
    error_response,
    invalid_response,
    json_response,
    too_large_response,
)
from mlrepro.serving.records import (
    TOO_LARGE,
    Issue,
    RequestModels,
    issues_from_errors,
    issues_from_reasons,
)
from mlrepro.serving.scoring import Scorer
from mlrepro.serving.swap import ModelHolder, Served

if TYPE_CHECKING:
    from mlrepro.delivery.api import Bundle

log = logging.getLogger("mlrepro.serving.http")
BYTES_PER_RECORD = 16 * 1024  # body limit per allowed record, on top of 1 MiB


def _response_model(bundle: "Bundle", scorer: Scorer, models: RequestModels) -> type[BaseModel]:
    task = bundle.metadata.task
    label: Any = float if task == "regression" else bool | int | float | str
    fields: dict[str, Any] = {
        f"c{i}": (Any, Field(None, alias=c.name, description="id column, when sent"))
        for i, c in enumerate(models.ids)
    }
    fields["prediction"] = (label | None, ...)
    for j, name in enumerate(scorer.output_names[1:]):
        fields[f"p{j}"] = (float | None, Field(..., alias=name))
    row = create_model(f"{models.record.__name__[:-6]}Prediction", **fields)
    return create_model(
        f"{models.record.__name__[:-6]}Predictions",
        model_fingerprint=(str, Field(description="content fingerprint of the fitted pipeline")),
        bundle_fingerprint=(str, Field(description="fingerprint of the bundle file")),
        count=(int, ...),
        predictions=(
            list[row] | dict[str, list[Any]],  # type: ignore[valid-type]
            Field(description="one object per record; one list per column for columnar input"),
        ),
    )


def _metadata(bundle: "Bundle", models: RequestModels, scorer: Scorer) -> dict[str, Any]:
    meta = dict(bundle.metadata.raw)
    meta["bundle_fingerprint"] = bundle.fingerprint
    meta["output_columns"] = scorer.output_names
    meta["schema"] = [
        {
            "name": c.name,
            "type": c.kind,
            "nullable": c.nullable,
            "categories": list(c.categories) if c.categories else None,
            "id": c.is_id,
        }
        for c in models.columns
    ]
    meta["card"] = bundle.card
    meta["runtime"] = {
        "name": bundle.runtime,  # "accelerated" (the compiled program) or "sklearn"
        "acceleration": bundle.acceleration,
        "rows": dict(getattr(bundle.pipeline, "rows", {}) or {}),  # rows scored by each
    }
    return meta


def create_app(bundle: "Bundle | ModelHolder", *, max_batch: int = 1000) -> FastAPI:
    """The API for ``bundle`` (already loaded and verified), or for a ``ModelHolder`` that
    follows a registry alias (the model may then be swapped between requests)."""
    holder = bundle if isinstance(bundle, ModelHolder) else ModelHolder.fixed(bundle, max_batch)
    first = holder.current
    bundle, models, scorer = first.bundle, first.models, first.scorer
    max_batch = first.max_batch
    meta = json_response(_metadata(bundle, models, scorer)).body
    state = {"ready": False}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        holder.start()
        state["ready"] = True
        yield
        state["ready"] = False
        holder.close()

    m = bundle.metadata
    app = FastAPI(
        title=f"{m.project} (mlrepro)",
        version=bundle.fingerprint[:15],
        description=(
            f"{m.raw.get('description') or ''}\n\n{m.task} model of `{m.target}`, "
            f"model fingerprint `{m.model_fingerprint}`."
        ).strip(),
        lifespan=lifespan,
    )
    app.add_middleware(
        BodyLimit, limit=(1 << 20) + max_batch * BYTES_PER_RECORD, max_batch=max_batch
    )
    errors: dict[int | str, dict[str, Any]] = {422: {"model": ErrorBody}, 413: {"model": ErrorBody}}

    def refused(errs: list[Any]) -> Response:
        big = next((e for e in errs if e.get("type") == TOO_LARGE), None)
        if big is not None:
            return too_large_response(max_batch, f"a batch of {big['ctx']['actual']} records")
        return invalid_response(issues_from_errors(errs), None)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return refused(list(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:  # a body FastAPI could not parse (e.g. nested too deep)
            issue = Issue(None, None, f"the body cannot be parsed as JSON ({exc.detail})")
            return invalid_response([issue], None)
        return error_response(exc.status_code, "http", str(exc.detail), None)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> Response:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error_response(
            500, "internal", f"internal error ({type(exc).__name__})", "see the server log"
        )

    @app.get("/health", summary="Liveness: the server process is up")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", summary="Readiness: the model is loaded and verified", responses={503: {}})
    def ready() -> Response:
        now = holder.current.fingerprints
        if not state["ready"]:
            return json_response({"ready": False, **now}, 503)
        return json_response({"ready": True, "project": m.project, **now})

    @app.get("/metadata", summary="Fingerprints, feature order, input schema, metrics, card")
    def metadata() -> Response:
        if not holder.following and not hasattr(bundle.pipeline, "rows"):
            return Response(meta, media_type="application/json")
        served = holder.current  # live: the runtime's row counts, the registry's state
        body = _metadata(served.bundle, served.models, served.scorer)
        if holder.following:
            body["registry"] = holder.status()
        return json_response(body)

    @app.get(
        "/card",
        summary="The model card (Markdown)",
        response_class=Response,
        responses={200: {"content": {"text/markdown": {"schema": {"type": "string"}}}}},
    )
    def model_card() -> Response:
        return Response(holder.current.bundle.card, media_type="text/markdown; charset=utf-8")

    report_cache: dict[str, bytes] = {}

    @app.get(
        "/report",
        summary="Report of the bundle: lineage, metrics, fingerprints (HTML)",
        response_class=Response,
        responses={
            200: {"content": {"text/html": {"schema": {"type": "string"}}}},
            503: {"model": ErrorBody},
        },
    )
    def report() -> Response:
        current = holder.current.bundle
        if current.fingerprint not in report_cache:
            from mlrepro.errors import MlreproError
            from mlrepro.serving.pages import bundle_report

            try:
                html = bundle_report(current)
            except MlreproError as exc:  # the file changed on disk since it was loaded
                return error_response(503, exc.kind, exc.message, exc.hint)
            report_cache.clear()  # one model's report at a time
            report_cache[current.fingerprint] = html
        return Response(
            report_cache[current.fingerprint],
            media_type="text/html; charset=utf-8",
            headers={
                "Content-Security-Policy": "default-src 'none'; img-src data:; "
                "style-src 'unsafe-inline'"
            },
        )

    def answer(served: Served, batch: Any) -> Response:
        one = served.models.single(batch)  # one record: no DataFrame when the program scores
        scored = served.scorer.score_one(*one) if one is not None else None
        if scored is None:
            frame, ids, columns = served.models.frame_and_columns(batch)
            try:
                scored = served.scorer.score(frame, ids, columns)
            except PredictionRejected as exc:  # the model refuses the records as a whole
                return error_response(422, "invalid_input", exc.message, exc.hint)
            if scored.rejects:
                return invalid_response(issues_from_reasons(scored.rejects), len(frame))
        else:
            ids = one[2]
        count = len(batch) if isinstance(batch, list) else len(scored.positions)
        rows: Any = scored.rows
        if not isinstance(batch, list):
            names = [*ids, *served.scorer.output_names]
            rows = {k: [r[k] for r in scored.rows] for k in names}
        if holder.following and count:
            holder.remember(served.models.frame(batch)[0])
        return json_response({**served.fingerprints, "count": count, "predictions": rows})

    if not holder.following:

        @app.post(
            "/predict",
            summary="Predict a batch of records",
            response_model=_response_model(bundle, scorer, models),
            responses=errors,
        )
        def predict(batch: Annotated[models.batch, Body()]) -> Response:  # type: ignore[name-defined]
            """A JSON list of records, or an object with one list per column. Every record must
            pass the model's input contract, or the answer is 422 naming each bad field."""
            return answer(first, batch)

        return app

    @app.post(
        "/predict",
        summary="Predict a batch of records (with the model the alias names now)",
        response_model=_response_model(bundle, scorer, models),
        responses=errors,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": first.adapter("batch").json_schema()}},
            }
        },
    )
    def predict_following(body: Annotated[Any, Body()]) -> Response:
        """As without a registry; the request is validated against the current model, which
        answers it even if the alias moves meanwhile (its fingerprint is in the answer)."""
        served = holder.current  # taken once: this request finishes on this model
        try:
            batch = served.adapter("batch").validate_python(body)
        except ValidationError as exc:
            return refused(list(exc.errors(include_url=False)))
        return answer(served, batch)

    return app
