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
from pydantic import BaseModel, Field, create_model
from starlette.exceptions import HTTPException as StarletteHTTPException

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
    return meta


def create_app(bundle: "Bundle", *, max_batch: int = 1000) -> FastAPI:
    """The API for ``bundle`` (already loaded and verified)."""
    models = RequestModels(bundle, max_batch=max_batch)
    scorer = Scorer(bundle)
    meta = json_response(_metadata(bundle, models, scorer)).body
    fingerprints = {
        "model_fingerprint": bundle.model_fingerprint,
        "bundle_fingerprint": bundle.fingerprint,
    }
    state = {"ready": False}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state["ready"] = True
        yield
        state["ready"] = False

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

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        errs = list(exc.errors())
        big = next((e for e in errs if e.get("type") == TOO_LARGE), None)
        if big is not None:
            return too_large_response(max_batch, f"a batch of {big['ctx']['actual']} records")
        return invalid_response(issues_from_errors(errs), None)

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
        if not state["ready"]:
            return json_response({"ready": False, **fingerprints}, 503)
        return json_response({"ready": True, "project": m.project, **fingerprints})

    @app.get("/metadata", summary="Fingerprints, feature order, input schema, metrics, card")
    def metadata() -> Response:
        return Response(meta, media_type="application/json")

    @app.get(
        "/card",
        summary="The model card (Markdown)",
        response_class=Response,
        responses={200: {"content": {"text/markdown": {"schema": {"type": "string"}}}}},
    )
    def model_card() -> Response:
        return Response(bundle.card, media_type="text/markdown; charset=utf-8")

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
        if "html" not in report_cache:
            from mlrepro.errors import MlreproError
            from mlrepro.serving.pages import bundle_report

            try:
                report_cache["html"] = bundle_report(bundle)
            except MlreproError as exc:  # the file changed on disk since it was loaded
                return error_response(503, exc.kind, exc.message, exc.hint)
        return Response(
            report_cache["html"],
            media_type="text/html; charset=utf-8",
            headers={
                "Content-Security-Policy": "default-src 'none'; img-src data:; "
                "style-src 'unsafe-inline'"
            },
        )

    @app.post(
        "/predict",
        summary="Predict a batch of records",
        response_model=_response_model(bundle, scorer, models),
        responses=errors,
    )
    def predict(batch: Annotated[models.batch, Body()]) -> Response:  # type: ignore[name-defined]
        """A JSON list of records, or an object with one list per column. Every record must
        pass the model's input contract, or the answer is 422 naming each bad field."""
        frame, ids = models.frame(batch)
        scored = scorer.score(frame, ids)
        if scored.rejects:
            return invalid_response(issues_from_reasons(scored.rejects), len(frame))
        rows: Any = scored.rows
        if not isinstance(batch, list):
            names = [*ids, *scorer.output_names]
            rows = {k: [r[k] for r in scored.rows] for k in names}
        return json_response({**fingerprints, "count": len(frame), "predictions": rows})

    return app
