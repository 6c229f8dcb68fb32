"""Error answers of ``mlrepro serve`` and the request-body size limit.

Every error has one shape (``ErrorBody``): ``error`` (a kind), ``message``, ``hint`` and
``issues``, each naming a record (0-based) and a field where it can.
"""

import json
from collections.abc import Callable
from typing import Any

from fastapi.responses import Response
from pydantic import BaseModel, Field

from mlrepro.serving.records import Issue

MAX_ISSUES = 200  # listed in one 422 answer


class IssueBody(BaseModel):
    """One refused record (or the whole request when ``record`` is null) and why."""

    record: int | None = Field(description="0-based position of the record")
    field: str | None = Field(description="the input column, when the issue is about one")
    reason: str


class ErrorBody(BaseModel):
    """Every error answer: what went wrong, what to do, and per-record issues if any."""

    error: str
    message: str
    hint: str | None = None
    issues: list[IssueBody] = []


def json_response(payload: Any, status: int = 200) -> Response:
    body = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return Response(body.encode("utf-8"), status_code=status, media_type="application/json")


def error_response(
    status: int,
    error: str,
    message: str,
    hint: str | None,
    issues: list[Issue] = (),  # type: ignore[assignment]
) -> Response:
    listed = [i.to_dict() for i in issues[:MAX_ISSUES]]
    if len(issues) > MAX_ISSUES:
        message += f" (first {MAX_ISSUES} of {len(issues)} issues listed)"
    return json_response(
        {"error": error, "message": message, "hint": hint, "issues": listed}, status
    )


def invalid_response(issues: list[Issue], total: int | None) -> Response:
    records = {i.record for i in issues if i.record is not None}
    if records and all(i.record is not None for i in issues):
        of = f" of {total}" if total is not None else ""
        message = f"{len(records)}{of} record(s) are invalid"
    else:
        message = "the request body is invalid"
    hint = "fix the listed fields; GET /metadata (or /docs) shows each column's type and values"
    return error_response(422, "invalid_input", message, hint, issues)


def too_large_response(limit: int, what: str) -> Response:
    return error_response(
        413,
        "too_large",
        f"{what} exceeds the limit of {limit} record(s) per request",
        "send smaller batches, or start the server with a larger --max-batch",
    )


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``limit`` bytes with 413 before reading."""

    def __init__(self, app: Any, limit: int, max_batch: int) -> None:
        self.app, self.limit, self.max_batch = app, limit, max_batch

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            if length.isdigit() and int(length) > self.limit:
                return await self._refuse(scope, receive, send)
            return await self.app(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:  # chunked body: buffer it (up to the limit) and replay it
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.limit:
                return await self._refuse(scope, receive, send)
        body: bytes | None = b"".join(chunks)

        async def replay() -> dict:
            nonlocal body
            if body is None:  # replayed already: what comes next is the client's (disconnect)
                return await receive()
            out, body = body, None
            return {"type": "http.request", "body": out, "more_body": False}

        return await self.app(scope, replay, send)

    async def _refuse(self, scope: dict, receive: Callable, send: Callable) -> None:
        response = error_response(
            413,
            "too_large",
            f"the request body is larger than {self.limit} bytes",
            f"send at most {self.max_batch} records per request, or raise --max-batch",
        )
        await response(scope, receive, send)
