"""Prometheus metrics of one API process, and the ``/metrics`` route that exposes them.

Each replica is one process (no multiprocess mode): Prometheus scrapes every
replica and sums. Requests are labelled by route *template*
(``/v1/projects/{project_id}/commits``), never the raw path, so the number of
series stays bounded. ``/metrics`` has no authentication: keep it on the
internal network (the example nginx does not route it).
"""

from __future__ import annotations

import hmac
import inspect
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

from robosync.errors import RateLimited, RobosyncError, Unauthorized

METRICS_PATH = "/metrics"
UNMATCHED_ROUTE = "unmatched"

REGISTRY = CollectorRegistry(auto_describe=True)
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_collector)

REQUEST_SECONDS = Histogram(
    "robosync_http_request_duration_seconds",
    "Time from request start to the end of the response, by route template.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
COMMITS = Counter("robosync_commits_total", "Commits accepted (new versions).", registry=REGISTRY)
CONFLICTS = Counter(
    "robosync_commit_conflicts_total",
    "Commits refused with 409 because the head had moved.",
    registry=REGISTRY,
)
COMMITTED_BYTES = Counter(
    "robosync_committed_bytes_total",
    "Sum of the sizes of the put lines of accepted commits.",
    registry=REGISTRY,
)
UPLOADS = Counter(
    "robosync_uploads_total",
    "Blobs by upload event: presigned (URLs handed out), already_present (dedup hit), "
    "completed (verified and present), failed (completion refused).",
    ["event"],
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "robosync_rate_limited_total",
    "Requests answered 429, by the limit that refused them.",
    ["limit"],
    registry=REGISTRY,
)

UPLOAD_PRESIGNED = "presigned"
UPLOAD_ALREADY_PRESENT = "already_present"
UPLOAD_COMPLETED = "completed"
UPLOAD_FAILED = "failed"


def record_commit(put_bytes: int) -> None:
    """Count one accepted commit whose put lines sum to ``put_bytes``."""
    COMMITS.inc()
    COMMITTED_BYTES.inc(put_bytes)


def record_uploads(event: str, count: int = 1) -> None:
    """Count ``count`` blobs reaching upload ``event``."""
    if count:
        UPLOADS.labels(event=event).inc(count)


def render() -> tuple[bytes, str]:
    """The current metrics in the Prometheus text format, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def count_rate_limited(app: FastAPI) -> None:
    """Count each 429 by its ``details["limit"]``, then answer as the app already does."""
    answer = app.exception_handlers.get(RateLimited) or app.exception_handlers[RobosyncError]

    async def counted(request: Request, exc: Exception) -> Any:
        limit = exc.details.get("limit") if isinstance(exc, RateLimited) else None
        RATE_LIMITED.labels(limit=str(limit or "unknown")).inc()
        response = answer(request, exc)
        return await response if inspect.isawaitable(response) else response

    app.add_exception_handler(RateLimited, counted)


router = APIRouter(tags=["operations"])


def check_metrics_token(expected: str | None, request: Request) -> None:
    """Raise :class:`Unauthorized` unless ``expected`` is unset or sent as the bearer token.

    A robot's API token does not open it: metrics are the operator's.
    """
    if expected is None:
        return
    scheme, _, sent = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        sent.strip().encode(), expected.encode()
    ):
        raise Unauthorized(
            "metrics need the metrics token: send Authorization: Bearer <ROBOSYNC_METRICS_TOKEN>"
        )


@router.get(METRICS_PATH, include_in_schema=False)
def metrics(request: Request) -> Response:
    """Every metric of this process, for Prometheus (bearer ``METRICS_TOKEN`` if set)."""
    check_metrics_token(request.app.state.settings.metrics_token, request)
    body, content_type = render()
    return Response(body, media_type=content_type)
