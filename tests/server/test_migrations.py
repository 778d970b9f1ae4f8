"""The shipped Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from robosync.server.db import migrate
from robosync.server.db.engine import Database
from robosync.server.db.models import Base
from tests.fixtures.postgres import fresh_database, postgres_reachable


def _schema_differences(url: str) -> list[object]:
    db = Database(url)
    try:
        migrate.upgrade(db.engine)
        assert migrate.current_revision(db.engine) == migrate.head_revision()
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_name": migrate.include_name})
            return list(compare_metadata(context, Base.metadata))
    finally:
        db.dispose()


def test_migrations_match_the_models_on_sqlite(tmp_path: Path) -> None:
    assert _schema_differences(f"sqlite:///{tmp_path / 'm.sqlite'}") == []


def test_migrations_match_the_models_on_postgresql() -> None:
    problem = postgres_reachable()
    if problem is not None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(problem)
        pytest.skip(problem)
    with fresh_database("robosync_migrations") as url:
        assert _schema_differences(url) == []


def test_head_revision_is_alembics_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrate.__file__).parent / "migrations"))
    assert migrate.head_revision() == ScriptDirectory.from_config(cfg).get_current_head()
