"""Error responses in the native shape: `{"error", "code", "details"}`."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from launchbay.operations.errors import OperationError, validation_failed

log = logging.getLogger("launchbay.http")


def error_response(exc: OperationError) -> JSONResponse:
    headers = {}
    if isinstance(exc.details, dict) and "retryAfterSeconds" in exc.details:
        headers["Retry-After"] = str(exc.details["retryAfterSeconds"])
    return JSONResponse({"error": exc.message, "code": exc.code, "details": exc.details},
                        status_code=exc.status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(OperationError)
    async def _operation_error(_: Request, exc: OperationError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(validation_failed(list(exc.errors())))

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": str(exc.detail), "code": code, "details": {}},
                            status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": "internal error", "code": "internal", "details": {}},
                            status_code=500)


def install_plain(face: FastAPI, message_of: Callable[[OperationError], str]) -> None:
    """Errors as `{"error": "..."}` (the Shipyard and Dploy faces' shape); `message_of` words
    an operation's refusal as the face's clients expect it."""
    @face.exception_handler(OperationError)
    async def _operation_error(_: Request, exc: OperationError) -> JSONResponse:
        return JSONResponse({"error": message_of(exc)}, status_code=exc.status)

    @face.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    @face.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return JSONResponse({"error": "Internal server error"}, status_code=500)
