"""Opening the metadata database for a command: only ``serve`` and ``migrate`` create one.

Every other command opens the database the settings name and fails with a
message saying where it looked when there is none: silently creating an empty
database next to the real one (a mistyped ``--data-dir``, another working
folder) would make ``create-user`` or ``gc`` act on nothing.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, make_url, text

from robosync.server.db import migrate
from robosync.server.db.engine import Database
from robosync.server.settings import DATA_DIR_DEFAULT, SQLITE_FILE, Settings

PROG = "robosync-server"
_VERSION_TABLE = "alembic_version"


class DatabaseUnavailable(Exception):
    """No usable robosync database where the settings point; the message says what to do."""


def where_to_point() -> str:
    """How to point a command at the server's data, for error messages."""
    return (
        "run the command in the folder you ran `serve` in, or point it at the server's data "
        f"with --data-dir DIR (env ROBOSYNC_DATA_DIR; default ./{DATA_DIR_DEFAULT}), "
        "or ROBOSYNC_DATABASE_URL for PostgreSQL"
    )


def describe_location(settings: Settings) -> str:
    """Where the database is, for messages (a URL without its password)."""
    if settings.database_url is None:
        return str(sqlite_path(settings))
    return make_url(settings.database_url).render_as_string(hide_password=True)


def sqlite_path(settings: Settings) -> Path:
    """The SQLite file of the embedded database in the data dir."""
    return settings.data_dir.resolve() / SQLITE_FILE


def open_database(settings: Settings, *, create: bool) -> Database:
    """The database of ``settings`` at the schema this code needs.

    ``create``: an empty database gets the schema (``serve``). Otherwise a
    missing or empty database, or one whose schema lags the code, raises
    :class:`DatabaseUnavailable`.
    """
    if settings.database_url is None:
        if create:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        elif not sqlite_path(settings).is_file():
            raise DatabaseUnavailable(
                f"no robosync database at {describe_location(settings)}; {where_to_point()}"
            )
    db = Database(settings.effective_database_url)
    current = schema_revision(db)
    if current is None and create:
        migrate.upgrade(db.engine)
        print(f"{PROG}: created the database schema at {describe_location(settings)}", flush=True)
        return db
    if current is None:
        db.dispose()
        raise DatabaseUnavailable(
            f"the database at {describe_location(settings)} has no robosync schema; "
            f"{where_to_point()} (`{PROG} migrate` creates the schema)"
        )
    head = migrate.head_revision()
    if current != head:
        db.dispose()
        raise DatabaseUnavailable(
            f"database schema is at {current}, this version needs {head}; "
            f"run `{PROG} migrate` first"
        )
    return db


def schema_revision(db: Database) -> str | None:
    """The schema revision recorded in the database, ``None`` if it has none.

    Read with one query rather than through Alembic's migration context, which
    is slower to import and logs on every use.
    """
    with db.engine.connect() as conn:
        if not inspect(conn).has_table(_VERSION_TABLE):
            return None
        return conn.scalar(text(f"SELECT version_num FROM {_VERSION_TABLE}"))
