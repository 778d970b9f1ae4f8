"""Alembic environment: runs on the connection ``migrate.py`` passes in."""

from __future__ import annotations

from alembic import context

from robosync.server.db.migrate import include_name
from robosync.server.db.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    include_name=include_name,
)
with context.begin_transaction():
    context.run_migrations()
