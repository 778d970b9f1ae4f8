"""Prometheus gauges of the whole deployment, read from the database at scrape time.

Blobs stored (count, bytes), logical bytes (heads of live projects), and the
seconds since each robot's last push. Every replica reports the same values
(they come from the shared database): aggregate them with ``max``, not
``sum``. Answers are cached for :data:`CACHE_SECONDS` so frequent scrapes of
many replicas do not each scan the blob table.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from robosync.server.db.engine import Database
from robosync.server.db.models import BLOB_PRESENT, Blob, Project, Token, User, utcnow
from robosync.server.metrics import REGISTRY

log = logging.getLogger(__name__)
CACHE_SECONDS = 15.0


class FleetCollector(Collector):
    """Reads the gauges from the database of the app that is serving (see :func:`watch`)."""

    def __init__(self) -> None:
        self.db: Database | None = None
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    def collect(self) -> Iterator[Metric]:
        """The gauges (empty until an app set the database, or if it cannot be read)."""
        if self.db is None:
            return iter(())
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] > CACHE_SECONDS:
                try:
                    self._cached = (now, self._read(self.db))
                except Exception as e:  # a scrape must not fail because the database is down
                    log.warning("fleet metrics unavailable: %s", e)
                    return iter(())
            return iter(self._cached[1])

    def forget(self) -> None:
        """Drop the cached answer (the database changed)."""
        with self._lock:
            self._cached = None

    @staticmethod
    def _read(db: Database) -> list[Metric]:
        with db.reading() as session:
            count, stored = session.execute(
                select(func.count(), func.coalesce(func.sum(Blob.size), 0)).where(
                    Blob.state == BLOB_PRESENT
                )
            ).one()
            logical = session.scalar(
                select(func.coalesce(func.sum(Project.total_bytes), 0)).where(
                    Project.deleted_at.is_(None)
                )
            )
            pushes = session.execute(
                select(User.name, Token.robot, Token.last_push_at)
                .join(User, User.id == Token.user_id)
                .where(Token.revoked_at.is_(None), Token.last_push_at.is_not(None))
            ).all()
        blobs = GaugeMetricFamily("robosync_blobs_stored", "Blobs present in the store.")
        blobs.add_metric([], int(count))
        stored_bytes = GaugeMetricFamily(
            "robosync_blobs_stored_bytes", "Bytes of the blobs present in the store (after dedup)."
        )
        stored_bytes.add_metric([], int(stored))
        logical_bytes = GaugeMetricFamily(
            "robosync_logical_bytes", "Sum of the head sizes of every live project (before dedup)."
        )
        logical_bytes.add_metric([], int(logical or 0))
        since = GaugeMetricFamily(
            "robosync_robot_last_push_age_seconds",
            "Seconds since each robot (live token) last pushed a version.",
            labels=["user", "robot"],
        )
        now = utcnow()
        for user, robot, at in pushes:
            if at is None:
                continue
            since.add_metric([user, robot], max(0.0, (now - at).total_seconds()))
        return [blobs, stored_bytes, logical_bytes, since]


FLEET = FleetCollector()
REGISTRY.register(FLEET)


def watch(db: Database) -> None:
    """Report the gauges of ``db`` (the database of the app being created)."""
    FLEET.db = db
    FLEET.forget()
