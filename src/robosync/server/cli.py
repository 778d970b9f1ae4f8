"""The ``robosync-server`` command: parsing and printing only."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from robosync.errors import RobosyncError
from robosync.server.db import migrate
from robosync.server.db.engine import Database
from robosync.server.services import accounts
from robosync.server.settings import Settings, env_help

FIRST_USER = "admin"
PROG = "robosync-server"


class CommandError(Exception):
    """A failure to report as one line on stderr."""


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        name: getattr(args, name)
        for name in ("data_dir", "host", "port")
        if getattr(args, name, None) is not None
    }
    return Settings(**overrides)


def _open_database(settings: Settings, *, create: bool = True) -> Database:
    """The database, migrated if it was empty; refuses one that lags the code."""
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.effective_database_url)
    current = migrate.current_revision(db.engine)
    if current is None and create:
        migrate.upgrade(db.engine)
    elif current != migrate.head_revision():
        raise CommandError(
            f"database schema is at {current}, this version needs {migrate.head_revision()}; "
            f"run `{PROG} migrate` first"
        )
    return db


def cmd_serve(args: argparse.Namespace) -> None:
    """Run the API server (one process)."""
    import uvicorn

    from robosync.server.app import create_app
    from robosync.server.store.s3 import S3Store

    settings = _settings(args)
    db = _open_database(settings)
    with db.writing() as session:
        token = None
        if not accounts.has_users(session):
            user = accounts.create_user(session, FIRST_USER)
            token = accounts.create_token(session, user, FIRST_USER)
    if token is not None:
        print(
            f"{PROG}: created user {FIRST_USER!r}; its token (shown only this once, "
            "keep it secret):",
            flush=True,
        )
        print(f"ROBOSYNC_TOKEN={token}", flush=True)
    app = create_app(settings, db)
    if isinstance(app.state.store, S3Store):
        try:
            app.state.store.ensure_bucket()
        except RobosyncError as e:
            # Start anyway: /readyz reports the store until it answers.
            print(f"{PROG}: warning: bucket {settings.s3_bucket!r} not usable yet: {e}")
    print(f"{PROG}: serving on http://{settings.host}:{settings.port}", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")


def cmd_migrate(args: argparse.Namespace) -> None:
    """Bring the database schema to the newest version."""
    settings = _settings(args)
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.effective_database_url)
    before = migrate.current_revision(db.engine)
    migrate.upgrade(db.engine)
    print(f"{PROG}: schema at {migrate.head_revision()} (was {before or 'empty'})")


def cmd_create_user(args: argparse.Namespace) -> None:
    """Create a user."""
    db = _open_database(_settings(args))
    with db.writing() as session:
        accounts.create_user(session, args.name)
    print(f"{PROG}: created user {args.name!r}")


def cmd_create_token(args: argparse.Namespace) -> None:
    """Create a robot token; the token is the last line of stdout."""
    db = _open_database(_settings(args))
    with db.writing() as session:
        user = accounts.find_user(session, args.user)
        token = accounts.create_token(session, user, args.robot)
    print(f"{PROG}: token for robot {args.robot!r} of user {args.user!r} (shown only once):")
    print(token, flush=True)


def cmd_revoke_token(args: argparse.Namespace) -> None:
    """Revoke a robot's token."""
    db = _open_database(_settings(args))
    with db.writing() as session:
        user = accounts.find_user(session, args.user)
        accounts.revoke_token(session, user, args.robot)
    print(f"{PROG}: revoked the token of robot {args.robot!r} of user {args.user!r}")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir", type=Path, help="data folder (env ROBOSYNC_DATA_DIR; default ./robosync-data)"
    )
    env = "environment variables (every command reads them):\n" + env_help()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="The robosync API server and its administration commands.",
        epilog=env,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Callable[[argparse.Namespace], None], help_: str) -> Any:
        p = sub.add_parser(
            name,
            parents=[common],
            help=help_,
            description=help_,
            epilog=env,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(func=func)
        return p

    serve = add("serve", cmd_serve, "run the API server; an empty database is initialised")
    serve.add_argument("--host", help="address to listen on (env ROBOSYNC_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (env ROBOSYNC_PORT)")
    add("migrate", cmd_migrate, "bring the database schema to the newest version")
    add("create-user", cmd_create_user, "create a user").add_argument("name")
    token = add("create-token", cmd_create_token, "create a token for one robot of a user")
    token.add_argument("user")
    token.add_argument("--robot", required=True, help="name of the robot the token is for")
    revoke = add("revoke-token", cmd_revoke_token, "revoke the token of one robot of a user")
    revoke.add_argument("user")
    revoke.add_argument("--robot", required=True, help="name of the robot")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``robosync-server``; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        args.func(args)
    except (CommandError, RobosyncError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except ValidationError as e:
        print(f"{PROG}: error: invalid configuration: {e.errors()[0]['msg']}", file=sys.stderr)
        return 2
    except SQLAlchemyError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"{PROG}: error: database: {first}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
