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
from robosync.server.logs import configure_logging
from robosync.server.services import accounts, gc
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
    configure_logging(settings.log_format, settings.log_level)
    db = _open_database(settings, create=not args.no_migrate)
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
    # Our own request log line (logs.RequestLogMiddleware) replaces uvicorn's access log.
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        log_level=settings.log_level.lower(),
    )


def cmd_gc(args: argparse.Namespace) -> None:
    """Delete unreferenced old blobs and expired uploads (and old versions if asked)."""
    from robosync.server.app import build_store

    settings = _settings(args)
    configure_logging(settings.log_format, settings.log_level)
    try:
        policy = gc.GcPolicy(
            grace=gc.parse_duration(args.grace),
            keep_versions=args.keep_versions,
            older_than=None if args.older_than is None else gc.parse_duration(args.older_than),
            dry_run=args.dry_run,
        )
    except ValueError as e:
        raise CommandError(str(e)) from e
    if policy.keep_versions is not None and policy.keep_versions < 1:
        raise CommandError("--keep-versions must be at least 1 (the head is always kept)")
    db = _open_database(settings, create=False)
    report = gc.collect_garbage(db, build_store(settings), policy)
    dry = " (dry run: nothing deleted)" if policy.dry_run else ""
    print(f"{PROG}: garbage collection, grace {args.grace}{dry}:")
    for line in gc.describe(report, policy.dry_run):
        print(f"  {line}", flush=True)
    if report.blobs_failed:
        raise CommandError(f"{report.blobs_failed} blob(s) could not be deleted; see the log")


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
    serve.add_argument(
        "--no-migrate",
        action="store_true",
        help="never change the schema: refuse to start unless `migrate` brought it to this "
        "version (for replicas behind a migration job)",
    )
    collect = add(
        "gc",
        cmd_gc,
        "delete blobs no version references (older than the grace period) and expired "
        "uploads; optionally drop old versions first",
    )
    collect.add_argument(
        "--grace",
        default="24h",
        help="spare blobs created or used within this time, e.g. 24h, 30m, 90s (default 24h)",
    )
    collect.add_argument(
        "--dry-run", action="store_true", help="print what would be deleted, delete nothing"
    )
    collect.add_argument(
        "--keep-versions",
        type=int,
        metavar="N",
        help="keep only the newest N versions of each project (default: keep all)",
    )
    collect.add_argument(
        "--older-than",
        metavar="DURATION",
        help="drop versions created longer ago than this, e.g. 90d (with --keep-versions, "
        "a version either rule keeps stays; the head always stays)",
    )
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
