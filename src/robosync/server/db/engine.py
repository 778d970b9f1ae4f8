"""Engine and sessions: SQLite tuned for one process (WAL), PostgreSQL as is."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

# Write transactions on SQLite start with BEGIN IMMEDIATE: a deferred transaction
# that reads then writes fails at once with SQLITE_BUSY under WAL when another
# writer committed in between; IMMEDIATE waits for the write lock (busy_timeout).
_BEGIN_OPTION = "robosync_sqlite_begin"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; on SQLite with WAL, busy timeout and foreign keys on."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _tune_sqlite(engine)
        return engine
    # No server-side prepared statements: after five runs psycopg would switch to
    # a generic plan in which ``= ANY(:array)`` is not hashed (a commit's batched
    # lookups went from ~10 ms to ~500 ms each, measured); also PgBouncer-safe.
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
        connect_args={"prepare_threshold": None} if _driver(url) == "psycopg" else {},
    )


def _driver(url: str) -> str:
    return make_url(url).get_driver_name()


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """The engine plus session factories for reads and for writes."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(
            self.engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"}),
            expire_on_commit=False,
        )

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for reads only; closing it ends (rolls back) its transaction.

        Objects loaded stay readable after the block (closing does not expire them).
        """
        with self._read() as session:
            yield session

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """One write transaction: committed if the block succeeds, else rolled back."""
        with self._write() as session, session.begin():
            yield session

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
