"""The one place where strata's exception tree becomes HTTP: OpenAI's error body
``{"error": {"message", "type", "param", "code"}}`` with the matching status, keyed on the
exception's type. Validation errors from FastAPI become 400s naming the offending param;
anything unexpected becomes a 500 with no traceback in the body (it is logged instead)."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from strata.core.errors import QueueFull, QuotaExceeded, RateLimited, StrataError
from strata.edges.http.schemas import ErrorResponse

log = logging.getLogger("strata.http")


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 429, 500, 502, 503, 504)
}


def error_body(
    message: str, type_: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def strata_error_response(exc: StrataError) -> JSONResponse:
    headers = {}
    if isinstance(exc, QueueFull):
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    elif isinstance(exc, RateLimited):  # rounded up: a client back early is refused again
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    elif isinstance(exc, QuotaExceeded):
        # Retrying cannot help until the budget resets; OpenAI's SDKs honour this header.
        headers["x-should-retry"] = "false"
    body = error_body(exc.message, exc.error_type, exc.param, exc.code)
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


def _param(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc if p != "body"]
    # Drop pydantic's union-branch tags such as "str" or "list[str]" or "function-after[...]".
    parts = [p for p in parts if not any(c in p for c in "[]") and p not in {"str", "int"}]
    return ".".join(parts) or None


def _validation_response(exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
    if first.get("type") == "json_invalid":
        message = f"We could not parse the JSON body of your request: {first.get('msg')}"
        return JSONResponse(error_body(message, "invalid_request_error"), status_code=400)
    param = _param(tuple(first.get("loc", ())))
    msg = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    # No param means the body as a whole is missing or not a JSON object.
    where = f"'{param}'" if param else "the request body"
    if first.get("type") == "missing":
        message = f"Missing required parameter: {where}." if param else "Missing request body."
        code = "missing_required_parameter"
    else:
        shown = repr(first.get("input"))
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        message = f"Invalid value for {where}: {msg} (got {shown})."
        code = "invalid_value"
    return JSONResponse(error_body(message, "invalid_request_error", param, code), status_code=400)


def install_error_handlers(app: FastAPI) -> None:
    async def on_strata(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StrataError)
        if exc.status_code >= 500:
            log.warning("%s: %s", type(exc).__name__, exc.message)
        return strata_error_response(exc)

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return _validation_response(exc)

    async def on_http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        type_ = "invalid_request_error" if exc.status_code < 500 else "server_error"
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return JSONResponse(
            error_body(str(exc.detail), type_, None, code),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return JSONResponse(
            error_body("The server had an error processing your request.", "server_error"),
            status_code=500,
        )

    app.add_exception_handler(StrataError, on_strata)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
