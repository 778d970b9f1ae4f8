"""Alembic migrations of the metadata database, run by ``robosync.server.db.migrate``."""
