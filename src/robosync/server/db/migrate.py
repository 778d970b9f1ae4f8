"""Programmatic Alembic: bring a database to the newest schema, or say where it is.

Alembic is imported inside the functions: the admin commands only need
``head_revision`` and skip the import cost of the migration machinery.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

from robosync.server.db.models import is_partition

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy import Engine

_SCRIPTS = Path(__file__).parent / "migrations"
_REVISION_RE = re.compile(r"^revision(?:\s*:\s*str)?\s*=\s*[\"']([^\"']+)[\"']", re.M)
_DOWN_REVISION_RE = re.compile(r"^down_revision(?:\s*:[^=]+)?\s*=\s*[\"']([^\"']+)[\"']", re.M)
# Alembic logs at info on import and on every use ("Context impl SQLiteImpl.",
# plugin setup): noise in the commands' output, which say what they did.
logging.getLogger("alembic").setLevel(logging.WARNING)


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic autogenerate filter: leave out the hash partitions (they are not models).

    The partitions of ``files`` and ``blobs`` are created by the migration on
    PostgreSQL only; comparing the database with the models must not see them
    as tables to drop.
    """
    return not (type_ == "table" and name is not None and is_partition(name))


def _config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    return cfg


def head_revision() -> str:
    """The newest revision shipped with this package.

    Read from the ``revision``/``down_revision`` lines of the version files
    rather than through Alembic's script directory, whose import alone costs
    every admin command a third of a second; a test checks both agree.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (_SCRIPTS / "versions").glob("*.py"):
        text = script.read_text(encoding="utf-8")
        revisions.update(_REVISION_RE.findall(text))
        parents.update(_DOWN_REVISION_RE.findall(text))
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"the migrations must form one line; heads found: {sorted(heads)}")
    return heads.pop()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or ``None`` for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Apply every migration the database lacks."""
    from alembic import command

    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
