"""The ``robosync-server`` command: parsing and printing only.

Only the standard library is imported at module level: a client-only install
(without the ``server`` extra) still has this script, and must be told how to
install the server rather than crash. Each command imports what it needs, so
the admin commands start quickly.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robosync.errors import RobosyncError

if TYPE_CHECKING:
    from robosync.server.db.engine import Database
    from robosync.server.settings import Settings

FIRST_USER = "admin"
PROG = "robosync-server"


class CommandError(Exception):
    """A failure to report as one line on stderr."""


# The top-level modules of the ``server`` extra this command cannot run without.
SERVER_MODULES = (
    "sqlalchemy",
    "alembic",
    "pydantic_settings",
    "fastapi",
    "uvicorn",
    "boto3",
    "prometheus_client",
    "limits",
)
SERVER_INSTALL_HINT = 'pip install "robosync[server]"'


def _settings(args: argparse.Namespace) -> Settings:
    from robosync.server.settings import Settings

    overrides: dict[str, Any] = {
        name: getattr(args, name)
        for name in ("data_dir", "host", "port")
        if getattr(args, name, None) is not None
    }
    return Settings(**overrides)


def _open_database(settings: Settings, *, create: bool = False) -> Database:
    """The database at the schema this code needs; only ``serve`` passes ``create``.

    Raises :class:`CommandError` saying where it looked when there is no
    robosync database there.
    """
    from robosync.server.db.opening import DatabaseUnavailable, open_database

    try:
        return open_database(settings, create=create)
    except DatabaseUnavailable as e:
        raise CommandError(str(e)) from e


def cmd_serve(args: argparse.Namespace) -> None:
    """Run the API server (one process)."""
    import uvicorn

    from robosync.server.app import create_app
    from robosync.server.listen import PortUnavailable, bind_listener
    from robosync.server.logs import configure_logging
    from robosync.server.services import accounts
    from robosync.server.store.s3 import S3Store

    settings = _settings(args)
    configure_logging(settings.log_format, settings.log_level)
    # The port first: a server that cannot listen must not spend the one-time token.
    try:
        listener = bind_listener(settings.host, settings.port)
    except PortUnavailable as e:
        raise CommandError(str(e)) from e
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
        print(token, flush=True)
        print(f"{PROG}: on a robot, log in with:", flush=True)
        print(
            f"  robosync login --server {settings.effective_public_url} --token {token}",
            flush=True,
        )
        print(
            f"{PROG}: to sign in to the web console at {settings.effective_public_url}/, "
            f"first run `{PROG} set-password {FIRST_USER}`",
            flush=True,
        )
    app = create_app(settings, db)
    if isinstance(app.state.store, S3Store):
        try:
            app.state.store.ensure_bucket()
        except RobosyncError as e:
            # Start anyway: /readyz reports the store until it answers.
            print(f"{PROG}: warning: bucket {settings.s3_bucket!r} not usable yet: {e}")
    print(f"{PROG}: serving on http://{settings.host}:{settings.port}", flush=True)
    # Our own request log line (logs.RequestLogMiddleware) replaces uvicorn's access log.
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        log_level=settings.log_level.lower(),
    )
    uvicorn.Server(config).run(sockets=[listener])


def cmd_gc(args: argparse.Namespace) -> None:
    """Delete unreferenced old blobs and expired uploads (and old versions if asked)."""
    from datetime import timedelta

    from robosync.server.logs import configure_logging
    from robosync.server.services import gc
    from robosync.server.store.build import build_store

    settings = _settings(args)
    configure_logging(settings.log_format, settings.log_level)
    try:
        policy = gc.GcPolicy(
            grace=gc.parse_duration(args.grace),
            trash=timedelta(days=settings.trash_days),
            keep_versions=args.keep_versions,
            older_than=None if args.older_than is None else gc.parse_duration(args.older_than),
            dry_run=args.dry_run,
        )
    except ValueError as e:
        raise CommandError(str(e)) from e
    if policy.keep_versions is not None and policy.keep_versions < 1:
        raise CommandError("--keep-versions must be at least 1 (the head is always kept)")
    db = _open_database(settings)
    report = gc.collect_garbage(db, build_store(settings), policy)
    dry = " (dry run: nothing deleted)" if policy.dry_run else ""
    print(f"{PROG}: garbage collection, grace {args.grace}{dry}:")
    for line in gc.describe(report, policy.dry_run):
        print(f"  {line}", flush=True)
    if report.blobs_failed:
        raise CommandError(f"{report.blobs_failed} blob(s) could not be deleted; see the log")


def cmd_migrate(args: argparse.Namespace) -> None:
    """Bring the database schema to the newest version (creating the database if needed)."""
    from robosync.server.db import migrate
    from robosync.server.db.engine import Database
    from robosync.server.db.opening import describe_location, schema_revision

    settings = _settings(args)
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.effective_database_url)
    before = schema_revision(db)
    migrate.upgrade(db.engine)
    print(
        f"{PROG}: schema at {migrate.head_revision()} (was {before or 'empty'}) "
        f"in {describe_location(settings)}"
    )


def cmd_create_user(args: argparse.Namespace) -> None:
    """Create a user."""
    from robosync.server.services import accounts

    db = _open_database(_settings(args))
    with db.writing() as session:
        accounts.create_user(session, args.name)
    print(f"{PROG}: created user {args.name!r}")


def cmd_create_token(args: argparse.Namespace) -> None:
    """Create a robot token; the token is the last line of stdout."""
    from robosync.server.services import accounts

    db = _open_database(_settings(args))
    with db.writing() as session:
        user = accounts.find_user(session, args.user)
        token = accounts.create_token(session, user, args.robot)
    print(f"{PROG}: token for robot {args.robot!r} of user {args.user!r} (shown only once):")
    print(token, flush=True)


def cmd_revoke_token(args: argparse.Namespace) -> None:
    """Revoke a robot's token."""
    from robosync.server.services import accounts

    db = _open_database(_settings(args))
    with db.writing() as session:
        user = accounts.find_user(session, args.user)
        accounts.revoke_token(session, user, args.robot)
    print(f"{PROG}: revoked the token of robot {args.robot!r} of user {args.user!r}")


def _read_password(prompt: bool) -> str:
    if not prompt:
        line = sys.stdin.readline()
        if not line:
            raise CommandError("no password on standard input")
        return line.rstrip("\r\n")
    import getpass

    first = getpass.getpass("new console password: ")
    if getpass.getpass("again: ") != first:
        raise CommandError("the two passwords differ; nothing changed")
    return first


def cmd_set_password(args: argparse.Namespace) -> None:
    """Set a user's web console password (prompted, or one line of stdin)."""
    from robosync.server.services import web_sessions

    db = _open_database(_settings(args))
    password = _read_password(sys.stdin.isatty())
    with db.writing() as session:
        web_sessions.set_password(session, args.user, password)
    print(f"{PROG}: console password of {args.user!r} set; their browser sessions were ended")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    from robosync.server.settings import DATA_DIR_DEFAULT, env_help

    common.add_argument(
        "--data-dir",
        type=Path,
        help="the server's data folder, the same for every command "
        f"(env ROBOSYNC_DATA_DIR; default ./{DATA_DIR_DEFAULT})",
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

    serve = add(
        "serve",
        cmd_serve,
        "run the API server; creates the database (and a first token) if there is none",
    )
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
        "purge projects deleted longer ago than ROBOSYNC_TRASH_DAYS, delete blobs no version "
        "references (older than the grace period) and expired uploads; optionally drop old "
        "versions first",
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
    add(
        "migrate",
        cmd_migrate,
        "bring the database schema to the newest version (creates the database if needed)",
    )
    add("create-user", cmd_create_user, "create a user").add_argument("name")
    add(
        "set-password",
        cmd_set_password,
        "set a user's web console password (prompts twice, or reads one line from stdin)",
    ).add_argument("user")
    token = add("create-token", cmd_create_token, "create a token for one robot of a user")
    token.add_argument("user")
    token.add_argument("--robot", required=True, help="name of the robot the token is for")
    revoke = add("revoke-token", cmd_revoke_token, "revoke the token of one robot of a user")
    revoke.add_argument("user")
    revoke.add_argument("--robot", required=True, help="name of the robot")
    from robosync.server.admin_cli import add_admin_commands

    add_admin_commands(add, common)
    return parser


def missing_server_module() -> str | None:
    """The first module of the ``server`` extra that cannot be imported, if any."""
    for name in SERVER_MODULES:
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except (ImportError, ValueError):
            return name
    return None


def _server_not_installed(module: str | None) -> int:
    print(
        f"{PROG}: error: the robosync server is not installed here (no module {module!r}); "
        f"install it with: {SERVER_INSTALL_HINT}",
        file=sys.stderr,
    )
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``robosync-server``; returns the exit status."""
    missing = missing_server_module()
    if missing is not None:
        return _server_not_installed(missing)
    try:
        return _run(argv)
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] in SERVER_MODULES:
            return _server_not_installed(e.name)
        raise


def _run(argv: Sequence[str] | None) -> int:
    from pydantic import ValidationError
    from sqlalchemy.exc import SQLAlchemyError

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
