"""RFC 9457 problem details for every error answer, and the handlers that produce them."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from lineside.domain import errors

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("lineside.api")

_STATUS_BY_ERROR: list[tuple[type[errors.DomainError], int]] = [
    (errors.BatchRejected, 422),
    (errors.Gone, 410),
    (errors.TooManyAttempts, 429),
    (errors.NotFound, 404),
    (errors.AlreadyExists, 409),
    (errors.Conflict, 409),
    (errors.InvalidInput, 422),
    (errors.Unauthenticated, 401),
    (errors.PermissionDenied, 403),
]


def problem(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra},
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def status_of(error: errors.DomainError) -> int:
    for kind, status in _STATUS_BY_ERROR:
        if isinstance(error, kind):
            return status
    return 400


def _domain_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, errors.DomainError)
    extra: dict[str, Any] = {}
    if isinstance(error, errors.BatchRejected):
        extra["errors"] = [{"row": e.row, "column": e.column, "reason": e.reason} for e in error.errors]
    headers = None
    if isinstance(error, errors.TooManyAttempts):
        headers = {"Retry-After": str(error.retry_after_seconds)}
    return problem(status_of(error), error.title, error.detail, headers, **extra)


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(part) for part in loc if part not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    if _json_body_sent_as_something_else(request, error):
        sent = request.headers.get("content-type") or "no Content-Type"
        return problem(
            422,
            "Invalid request",
            f"This call takes a JSON body: send Content-Type: application/json (the request said {sent}).",
        )
    issues = [
        {"field": _location(item.get("loc", ())), "reason": str(item.get("msg", "is invalid"))}
        for item in error.errors()
    ]
    if any(item.get("type") == "json_invalid" for item in error.errors()):
        return problem(400, "Malformed JSON", "The request body is not valid JSON.")
    detail = "; ".join(f"{issue['field']}: {issue['reason']}" for issue in issues)
    return problem(422, "Invalid request", detail, errors=issues)


def _json_body_sent_as_something_else(request: Request, error: RequestValidationError) -> bool:
    """A body FastAPI did not parse as JSON because its content type did not say JSON: curl's
    ``-d`` sends application/x-www-form-urlencoded unless told otherwise."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return False
    sent_a_body = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    if not sent_a_body:
        return False
    return any(tuple(item.get("loc", ())) == ("body",) for item in error.errors())


def _http_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    title = {404: "Not found", 405: "Method not allowed"}.get(error.status_code, "Error")
    # Starlette names the allowed methods of a 405 in its headers (Allow): keep them.
    return problem(error.status_code, title, str(error.detail), dict(error.headers or {}))


def _unexpected(_request: Request, error: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=error)
    return problem(500, "Internal error", "The server failed; the error was logged.")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
