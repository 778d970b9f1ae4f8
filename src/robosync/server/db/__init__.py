"""Metadata database: models, engine/session, migrations."""
