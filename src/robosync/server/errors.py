"""One mapping from failures to JSON error answers ``{"error": {code, message, details}}``."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from robosync.errors import InvalidInput, RobosyncError, Unavailable

log = logging.getLogger(__name__)

_HTTP_CODES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
}


class ErrorResponse(JSONResponse):
    """JSON with non-ASCII escaped: an invalid path (a lone surrogate) must still encode."""

    def render(self, content: Any) -> bytes:
        """Serialise ``content`` as ASCII-only JSON."""
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


async def _robosync_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RobosyncError)
    headers = None
    if exc.status == 429:
        headers = {"Retry-After": str(int(exc.details.get("retry_after", 1)))}
    return ErrorResponse(exc.to_body(), status_code=exc.status, headers=headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    message = f"invalid request: {'.'.join(first['loc'])}: {first['msg']}"
    return ErrorResponse(
        _body(InvalidInput.code, message, {"errors": errors}), status_code=InvalidInput.status
    )


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return ErrorResponse(
        _body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
    )


async def _database_down(_request: Request, exc: Exception) -> JSONResponse:
    # Connection refused/lost, or SQLite busy: worth a retry, unlike a bug.
    log.error("database unavailable: %s", str(exc).splitlines()[0] if str(exc) else exc)
    err = Unavailable("the database is unavailable; retry later", {"dependency": "database"})
    return ErrorResponse(err.to_body(), status_code=err.status, headers={"Retry-After": "5"})


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return ErrorResponse(_body("internal", "internal server error"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Make every error answer of ``app`` the JSON error shape."""
    app.add_exception_handler(RobosyncError, _robosync_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, _database_down)
    app.add_exception_handler(Exception, _unexpected)
