"""Structured logs: one JSON object per line, each tagged with the request it belongs to.

A request id comes from the incoming ``X-Request-ID`` header (if it looks like
an id) or is generated, is echoed in the response header, and is carried in a
context variable so that every log line written while serving the request
carries it, also from worker threads (Starlette copies the context into them).

:class:`RequestLogMiddleware` replaces uvicorn's access log with one line per
request: method, route template, path without query string, status, duration,
request id and user id. Query strings and headers are never logged: they hold
presigned-URL signatures and bearer tokens.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from robosync.server import metrics

REQUEST_ID_HEADER = "X-Request-ID"
LOG_FORMATS = ("json", "text")
_ID_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
# Probes and scrapes succeed every few seconds per replica: not worth an info line.
_QUIET_PATHS = frozenset({"/healthz", "/readyz", metrics.METRICS_PATH})

request_log = logging.getLogger("robosync.request")


@dataclass
class RequestContext:
    """What is known of the request being served; filled in as it is learnt."""

    request_id: str
    user_id: int | None = None


_current: ContextVar[RequestContext | None] = ContextVar("robosync_request", default=None)


def current_request() -> RequestContext | None:
    """The context of the request being served by this task or thread, if any."""
    return _current.get()


def set_user_id(user_id: int) -> None:
    """Record the authenticated user of the current request (shown in its log lines)."""
    ctx = _current.get()
    if ctx is not None:
        ctx.user_id = user_id


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's ``X-Request-ID`` if it is a plausible id, else a new random one."""
    wanted = REQUEST_ID_HEADER.lower().encode()
    for name, value in headers:
        if name.lower() == wanted:
            candidate = value.decode("latin-1")
            if _ID_RE.match(candidate):
                return candidate
            break
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The path template of the route that served ``scope``, or ``unmatched``."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(template) if template else metrics.UNMATCHED_ROUTE


class RequestLogMiddleware:
    """ASGI middleware: request id, one log line and the latency metric per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve ``scope`` with a request context, then log and measure it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctx = RequestContext(request_id_from(scope.get("headers", [])))
        token = _current.set(ctx)
        start = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = ctx.request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _finish(scope, status, time.perf_counter() - start)
        # Left set on an exception so the outer error handler's line keeps the id.
        _current.reset(token)


def _finish(scope: Scope, status: int, seconds: float) -> None:
    route = route_template(scope)
    method = str(scope.get("method", ""))
    metrics.REQUEST_SECONDS.labels(method=method, route=route, status=str(status)).observe(seconds)
    path = str(scope.get("path", ""))
    level = logging.DEBUG if path in _QUIET_PATHS and status < 400 else logging.INFO
    request_log.log(
        level,
        "%s %s %d %.1f ms",
        method,
        route,
        status,
        seconds * 1000,
        extra={
            "method": method,
            "route": route,
            "path": path,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
        },
    )


class ContextFilter(logging.Filter):
    """Adds ``request_id`` and ``user_id`` of the current request to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate ``record``; never drops it."""
        ctx = _current.get()
        if not hasattr(record, "request_id"):
            record.request_id = ctx.request_id if ctx else None
        if not hasattr(record, "user_id"):
            record.user_id = ctx.user_id if ctx else None
        return True


_STANDARD_ATTRS = frozenset(
    set(vars(logging.LogRecord("", 0, "", 0, "", None, None)))
    | {"message", "asctime", "taskName", "color_message"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, msg, request/user ids, extras."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_") and value is not None:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def configure_logging(fmt: str = "json", level: str = "info") -> None:
    """Send every log record to stderr as JSON lines (``json``) or readable text (``text``)."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {fmt!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's own loggers go through the root handler; its access log is replaced.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
