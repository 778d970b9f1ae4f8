"""A user's finished uploads cost nothing to later plans and completions.

Completed upload rows stay in ``uploads`` until they expire (a week by
default): a robot that pushed 150,000 images today has 150,000 of them. Every
plan counts the user's uploads in flight, and every completion looks up the
user's open uploads of its digests; both must read only open rows. The work
is counted in SQLite virtual-machine steps (a progress handler), which is
exact and does not depend on the machine's speed.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert

from robosync.protocol import CompleteItem
from robosync.server.db.engine import Database
from robosync.server.db.migrate import upgrade
from robosync.server.db.models import Upload, User, utcnow
from robosync.server.db.queries import table_of
from robosync.server.limits import count_inflight_uploads
from robosync.server.services.accounts import Principal
from robosync.server.services.uploads import complete_uploads
from robosync.server.store.local import LocalStore

OPEN = 5
FINISHED = 3000


@dataclass
class StepCounter:
    """SQLite VM steps run on the database's connections while ``counting``."""

    steps: int = 0
    counting: bool = False

    def tick(self) -> int:
        if self.counting:
            self.steps += 1
        return 0  # 0: let the statement go on

    def measure(self, action: Any) -> int:
        """The steps ``action()`` runs."""
        self.steps, self.counting = 0, True
        try:
            action()
        finally:
            self.counting = False
        return self.steps


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Database, StepCounter]]:
    """A migrated SQLite database whose connections report every VM step."""
    database = Database(f"sqlite:///{tmp_path_factory.mktemp('uploads') / 'm.sqlite'}")
    upgrade(database.engine)
    counter = StepCounter()

    @event.listens_for(database.engine, "checkout")
    def _count_steps(dbapi_connection: sqlite3.Connection, *_: object) -> None:
        dbapi_connection.set_progress_handler(counter.tick, 1)

    yield database, counter
    database.dispose()


def _user_with_uploads(database: Database, finished: int) -> Principal:
    """A new user with ``OPEN`` open uploads and ``finished`` completed ones, unexpired."""
    now = utcnow()
    with database.writing() as session:
        name = f"u-{uuid.uuid4().hex[:10]}"
        user = User(name=name)
        session.add(user)
        session.flush()
        user_id = user.id
        rows = [
            {
                "digest": uuid.uuid4().hex * 2,
                "user_id": user_id,
                "upload_id": None,
                "staging_key": None,
                "size": 1,
                "parts": 1,
                "blocks": "00" * 32,
                "created_at": now,
                "expires_at": now + timedelta(days=7),
                "completed_at": now if i >= OPEN else None,
            }
            for i in range(OPEN + finished)
        ]
        session.execute(insert(table_of(Upload)), rows)
    return Principal(user_id=user_id, user_name=name, robot="r")


def _work(database: Database, counter: StepCounter, who: Principal, store: LocalStore) -> int:
    """Steps of what a push asks per batch: count in flight, then complete 100 digests."""

    def count() -> None:
        with database.reading() as session:
            count_inflight_uploads(session, who.user_id, 900)

    items = [CompleteItem(digest=uuid.uuid4().hex * 2) for _ in range(100)]
    return counter.measure(count) + counter.measure(
        lambda: complete_uploads(database, store, who, items)
    )


def test_finished_uploads_add_no_work_to_counting_and_completing(
    db: tuple[Database, StepCounter], tmp_path: Path
) -> None:
    database, counter = db
    store = LocalStore(tmp_path / "store", "http://127.0.0.1:1", b"k" * 32)
    fresh = _work(database, counter, _user_with_uploads(database, 0), store)
    seasoned = _work(database, counter, _user_with_uploads(database, FINISHED), store)
    assert fresh > 0
    # Reading the finished rows would cost at least a few steps each: thousands here.
    assert seasoned < fresh + FINISHED // 10, (fresh, seasoned)
