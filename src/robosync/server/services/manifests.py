"""Manifests and changes as NDJSON streams, read in keyset-paginated batches.

A row is live in version ``v`` when ``added_in <= v`` and (``removed_in`` is
NULL or ``removed_in > v``). Each batch is a short read of at most
:data:`BATCH_ROWS` rows, so memory stays flat whatever the project size; the
answer is stable across batches because a version's rows never change once it
exists (later commits only set ``removed_in`` to a larger number).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from sqlalchemy import ColumnElement, and_, exists, or_, select, tuple_
from sqlalchemy.orm import aliased

from robosync.server.db.engine import Database
from robosync.server.db.models import File

BATCH_ROWS = 2000


def live_at(version: int, row: type[File] = File) -> ColumnElement[bool]:
    """SQL condition: the ``files`` row is live in ``version``."""
    return and_(row.added_in <= version, or_(row.removed_in.is_(None), row.removed_in > version))


def _line(obj: dict[str, object]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


def iter_manifest(db: Database, project_id: int, version: int) -> Iterator[bytes]:
    """NDJSON ``{path, digest, size}`` lines of the files at ``version``, by path."""
    after: str | None = None
    while True:
        query = (
            select(File.path, File.digest, File.size)
            .where(File.project_id == project_id, live_at(version))
            .order_by(File.path)
            .limit(BATCH_ROWS)
        )
        if after is not None:
            query = query.where(File.path > after)
        with db.reading() as session:
            rows = session.execute(query).all()
        if not rows:
            return
        yield "".join(_line({"path": p, "digest": d, "size": s}) for p, d, s in rows).encode()
        after = rows[-1].path


def iter_changes(db: Database, project_id: int, since: int, head: int) -> Iterator[bytes]:
    """NDJSON put/delete lines that turn version ``since`` into version ``head``.

    Puts are rows live at ``head`` added after ``since``; deletes are paths live
    at ``since`` whose row was removed by ``head`` and that no row brings back.
    Both are O(changes): they scan the (project, added_in) and (project,
    removed_in) indexes, never the whole project.
    """
    yield from _iter_puts(db, project_id, since, head)
    yield from _iter_deletes(db, project_id, since, head)


def _iter_puts(db: Database, project_id: int, since: int, head: int) -> Iterator[bytes]:
    after = (since, 0)
    while True:
        query = (
            select(File.id, File.added_in, File.path, File.digest, File.size)
            .where(
                File.project_id == project_id,
                File.added_in > since,
                live_at(head),
                tuple_(File.added_in, File.id) > tuple_(*after),
            )
            .order_by(File.added_in, File.id)
            .limit(BATCH_ROWS)
        )
        with db.reading() as session:
            rows = session.execute(query).all()
        if not rows:
            return
        yield "".join(
            _line({"op": "put", "path": r.path, "digest": r.digest, "size": r.size}) for r in rows
        ).encode()
        after = (rows[-1].added_in, rows[-1].id)


def _iter_deletes(db: Database, project_id: int, since: int, head: int) -> Iterator[bytes]:
    later = aliased(File)
    back = exists().where(
        later.project_id == File.project_id, later.path == File.path, live_at(head, later)
    )
    after = (since, 0)
    while True:
        query = (
            select(File.id, File.removed_in, File.path)
            .where(
                File.project_id == project_id,
                File.removed_in > since,
                File.removed_in <= head,
                File.added_in <= since,
                ~back,
                tuple_(File.removed_in, File.id) > tuple_(*after),
            )
            .order_by(File.removed_in, File.id)
            .limit(BATCH_ROWS)
        )
        with db.reading() as session:
            rows = session.execute(query).all()
        if not rows:
            return
        yield "".join(_line({"op": "delete", "path": r.path}) for r in rows).encode()
        after = (rows[-1].removed_in, rows[-1].id)
