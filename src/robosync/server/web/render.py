"""Templates of the console and the filters they use (sizes, times)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from robosync.server.services.web_sessions import SignedIn
from robosync.server.web.session import CSRF_FIELD


def human_size(n: int) -> str:
    """Bytes as a short human-readable size (``1.5 MB``)."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def short_time(value: datetime | None) -> str:
    """A UTC timestamp as ``2026-11-30 23:41 UTC`` (empty for None)."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def query(**params: Any) -> str:
    """A query string of the params that are not None."""
    return urlencode({k: v for k, v in params.items() if v is not None and v != ""})


_env = Environment(
    loader=PackageLoader("robosync.server.web", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["size"] = human_size
_env.filters["time"] = short_time
_env.globals["query"] = query
_env.globals["csrf_field"] = CSRF_FIELD


def page(
    request: Request,
    template: str,
    who: SignedIn | None = None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Render ``template`` for the signed-in person ``who`` (None on the sign-in page)."""
    html = _env.get_template(template).render(request=request, who=who, **context)
    headers = {
        "Cache-Control": "no-store",
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob: *; "
        "connect-src 'self' *; frame-ancestors 'none'",
    }
    return HTMLResponse(html, status_code=status, headers=headers)
