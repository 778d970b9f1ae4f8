"""Synthetic metadata written straight into PostgreSQL with COPY (not through the API).

Shared by ``tests/scale`` (query plans) and ``bench/scale.py`` (timings as the
tables grow). Rows are a pure function of their index, so a table can be grown
in steps (``fill_files(conn, 0, 10_000)`` then ``fill_files(conn, 10_000,
200_000)``) and a bench can name blobs that exist without reading them back.

Shape: users own projects; every project is at version 2; one ``files`` row in
ten is a file deleted in version 2, a third of the rest were added in version 2.
Blob ``i`` is a one-block blob whose digest and block hash :func:`blob` gives,
so ``POST /v1/uploads`` accepts it as ``present``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

COPY_CHUNK_ROWS = 20_000
STAMP = datetime(2026, 11, 1, tzinfo=UTC).isoformat()


@dataclass(frozen=True)
class SyntheticBlob:
    """A present one-block blob: what ``POST /v1/uploads`` needs to name it."""

    digest: str
    block: str
    size: int


def blob(i: int) -> SyntheticBlob:
    """Blob number ``i`` (any non-negative int; those below the filled count exist)."""
    block = hashlib.sha256(b"robosync-synthetic-%d" % i).digest()
    return SyntheticBlob(hashlib.sha256(block).hexdigest(), block.hex(), 100_000 + i % 900_000)


def file_path(j: int) -> str:
    """Path of ``files`` row ``j`` (unique across the table, lower case)."""
    return f"cam-{j % 4}/day-{(j // 4096) % 30:02d}/img-{j:09d}.jpg"


def libpq_url(sqlalchemy_url: str) -> str:
    """The libpq form of a ``postgresql+psycopg://`` SQLAlchemy URL."""
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


def _copy(conn: psycopg.Connection, statement: str, lines: Iterator[str]) -> None:
    with conn.cursor() as cur, cur.copy(statement) as copy:  # type: ignore[arg-type]
        chunk: list[str] = []
        for line in lines:
            chunk.append(line)
            if len(chunk) == COPY_CHUNK_ROWS:
                copy.write("".join(chunk))
                chunk = []
        if chunk:
            copy.write("".join(chunk))


def fill_accounts(conn: psycopg.Connection, users: int, projects: int) -> None:
    """Users ``1..users`` and projects ``1..projects`` (at version 2), round robin owners."""
    _copy(
        conn,
        "COPY users (id, name, created_at) FROM STDIN",
        (f"{u}\tsynthetic-user-{u}\t{STAMP}\n" for u in range(1, users + 1)),
    )
    _copy(
        conn,
        "COPY projects (id, owner_id, name, head_version, file_count, total_bytes,"
        " created_at, updated_at) FROM STDIN",
        (
            f"{p}\t{1 + p % users}\tsynthetic-{p}\t2\t0\t0\t{STAMP}\t{STAMP}\n"
            for p in range(1, projects + 1)
        ),
    )
    _copy(
        conn,
        "COPY versions (project_id, number, robot, message, created_at, files_added,"
        " files_removed, file_count, total_bytes) FROM STDIN",
        (
            f"{p}\t{n}\tsynthetic\t\t{STAMP}\t0\t0\t0\t0\n"
            for p in range(1, projects + 1)
            for n in (1, 2)
        ),
    )
    with conn.cursor() as cur:
        for table in ("users", "projects"):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"
            )
    conn.commit()


def fill_blobs(conn: psycopg.Connection, start: int, stop: int) -> None:
    """Present blobs ``start..stop-1``."""

    def lines() -> Iterator[str]:
        for i in range(start, stop):
            b = blob(i)
            yield f"{b.digest}\t{b.size}\tpresent\t{STAMP}\t{STAMP}\n"

    _copy(conn, "COPY blobs (digest, size, state, created_at, last_used_at) FROM STDIN", lines())
    conn.commit()


def fill_files(conn: psycopg.Connection, start: int, stop: int, projects: int, blobs: int) -> None:
    """``files`` rows ``start..stop-1``: row ``j`` is in project ``1 + j % projects``."""

    def lines() -> Iterator[str]:
        for j in range(start, stop):
            b = blob(j % blobs)
            path = file_path(j)
            if j % 10 == 9:
                added, removed = 1, "2"
            else:
                added, removed = (2 if j % 3 == 0 else 1), "\\N"
            yield f"{1 + j % projects}\t{path}\t{path}\t{b.digest}\t{b.size}\t{added}\t{removed}\n"

    _copy(
        conn,
        "COPY files (project_id, path, path_key, digest, size, added_in, removed_in) FROM STDIN",
        lines(),
    )
    conn.commit()


def vacuum_analyze(conn: psycopg.Connection) -> None:
    """VACUUM ANALYZE the bulk tables, as autovacuum would eventually (fresh statistics)."""
    autocommit = conn.autocommit
    conn.autocommit = True
    try:
        for table in ("files", "blobs", "projects", "versions", "users"):
            conn.execute(f"VACUUM (ANALYZE) {table}")  # type: ignore[arg-type]
    finally:
        conn.autocommit = autocommit


def possess_all(conn: psycopg.Connection, user_name: str) -> None:
    """Let ``user_name`` possess every blob, as if it had uploaded them all."""
    conn.execute(
        "INSERT INTO possessions (user_id, digest, created_at) "
        "SELECT users.id, blobs.digest, now() FROM users, blobs WHERE users.name = %s "
        "ON CONFLICT DO NOTHING",
        (user_name,),
    )
    conn.commit()
