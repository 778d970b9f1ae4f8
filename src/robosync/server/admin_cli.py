"""Administration commands of ``robosync-server``: users, tokens, projects, usage, audit.

Parsing and printing only: the queries are in ``services/fleet.py`` and
``services/audit.py``. Each command prints a table, or JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from robosync.server.cli import CommandError, _open_database, _settings

AddCommand = Callable[[str, Callable[[argparse.Namespace], None], str], argparse.ArgumentParser]

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*((?:[kmgtp]i?)?)b?\s*$", re.I)
_SIZE_UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4, "p": 1000**5}


def parse_size(text: str) -> int:
    """``"500MB"``, ``"10GiB"``, ``"2T"`` or plain bytes as a number of bytes."""
    match = _SIZE_RE.match(text)
    if match is None:
        raise CommandError(f"invalid size {text!r}: write it like 500MB, 10GiB or 2000000")
    unit = match.group(2).lower()
    base = 1024 ** (" kmgtp".index(unit[0])) if unit.endswith("i") else _SIZE_UNITS[unit]
    return int(float(match.group(1)) * base)


def parse_since(text: str) -> datetime:
    """An ISO time (``2026-11-30T12:00``) or an age (``24h``, ``7d``) as a UTC time."""
    from robosync.server.services.gc import parse_duration

    try:
        when = datetime.fromisoformat(text)
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    except ValueError:
        pass
    try:
        return datetime.now(UTC) - parse_duration(text)
    except ValueError as e:
        raise CommandError(f"invalid --since {text!r}: an ISO time or an age like 24h, 7d") from e


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def print_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str], as_json: bool) -> None:
    """Rows as JSON (all fields) or as a table of ``columns``."""
    if as_json:
        print(json.dumps(list(rows), default=str))
        return
    table = [list(columns)] + [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())
    sys.stdout.flush()


def _db(args: argparse.Namespace) -> Any:
    return _open_database(_settings(args))


def cmd_users_list(args: argparse.Namespace) -> None:
    """List users."""
    from robosync.server.services import fleet

    with _db(args).reading() as session:
        rows = fleet.list_users(session)
    columns = ["user", "created_at", "tokens", "projects", "logical_bytes", "quota_bytes"]
    print_rows(rows, columns, args.json)


def cmd_users_quota(args: argparse.Namespace) -> None:
    """Set or remove a user's quota."""
    from robosync.server.services import audit, fleet

    quota = None if args.size.lower() in ("none", "off", "unlimited") else parse_size(args.size)
    with _db(args).writing() as session:
        fleet.set_quota(session, args.user, quota)
        audit.record(session, audit.Actor.operator(), audit.QUOTA_SET, user=args.user, quota=quota)
    shown = "no quota" if quota is None else f"a quota of {quota} bytes"
    print(f"robosync-server: user {args.user!r} has {shown}")


def cmd_tokens_list(args: argparse.Namespace) -> None:
    """List robot tokens."""
    from robosync.server.services import fleet

    with _db(args).reading() as session:
        rows = fleet.list_tokens(session, args.user)
    columns = ["user", "robot", "created_at", "last_used_at", "last_push_at", "revoked_at"]
    print_rows(rows, columns, args.json)


def cmd_projects_list(args: argparse.Namespace) -> None:
    """List projects."""
    from robosync.server.services import fleet

    with _db(args).reading() as session:
        rows = fleet.list_projects(session, args.user)
    columns = [
        "id",
        "owner",
        "name",
        "images",
        "logical_bytes",
        "head_version",
        "last_push_at",
        "members",
        "deleted_at",
    ]
    print_rows(rows, columns, args.json)


def cmd_usage(args: argparse.Namespace) -> None:
    """Logical vs stored bytes."""
    from robosync.server.services import fleet

    with _db(args).reading() as session:
        report = fleet.usage(session)
    if args.json:
        print(json.dumps(report, default=str))
        return
    total = {"user": "(total)", **report["total"]}
    columns = ["user", "logical_bytes", "stored_bytes", "dedup_ratio", "quota_bytes"]
    print_rows([*report["users"], total], columns, False)


def cmd_audit(args: argparse.Namespace) -> None:
    """Show the audit trail."""
    from robosync.server.services import audit

    since = parse_since(args.since) if args.since else None
    with _db(args).reading() as session:
        project_id = _project_id(session, args.project) if args.project else None
        rows = [
            audit.event_dict(e)
            for e in audit.list_events(session, project_id=project_id, since=since)
        ]
    columns = ["at", "action", "user", "actor", "address", "project", "details"]
    print_rows(rows, columns, args.json)


def _project_id(session: Any, spec: str) -> int:
    """A project id from ``ID`` or ``OWNER/NAME`` (deleted projects too)."""
    from sqlalchemy import select

    from robosync.server.db.models import Project, User

    if spec.isdigit():
        return int(spec)
    owner, _, name = spec.rpartition("/")
    if not owner:
        raise CommandError(f"--project {spec!r}: write an id or OWNER/NAME")
    found = session.scalars(
        select(Project.id)
        .join(User, User.id == Project.owner_id)
        .where(User.name == owner, Project.name == name)
        .order_by(Project.id.desc())
    ).first()
    if found is None:
        raise CommandError(f"no project {spec!r}; see `robosync-server projects list`")
    return int(found)


def add_admin_commands(add: AddCommand, common: argparse.ArgumentParser) -> None:
    """Register users/tokens/projects/usage/audit on the ``robosync-server`` parser."""
    output = argparse.ArgumentParser(add_help=False, parents=[common])
    output.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def group(name: str, help_: str) -> Callable[..., argparse.ArgumentParser]:
        parser = add(name, _needs_action, help_)
        actions = parser.add_subparsers(dest="action", metavar="ACTION")

        def action(
            verb: str, func: Callable[[argparse.Namespace], None], text: str
        ) -> argparse.ArgumentParser:
            p = actions.add_parser(verb, parents=[output], help=text, description=text)
            p.set_defaults(func=func)
            return p

        return action

    users = group("users", "list users, set quotas")
    users("list", cmd_users_list, "every user: tokens, projects, logical bytes, quota")
    quota = users("quota", cmd_users_quota, "set a user's quota of logical bytes (or none)")
    quota.add_argument("user")
    quota.add_argument("size", help="e.g. 500MB, 10GiB, 2000000, or none")
    tokens = group("tokens", "list robot tokens")
    tokens("list", cmd_tokens_list, "robot, created, last used, last push, revoked").add_argument(
        "--user", help="only this user's tokens"
    )
    projects = group("projects", "list projects")
    projects(
        "list", cmd_projects_list, "images, logical bytes, head version, last push, trash"
    ).add_argument("--user", help="only projects this user owns or is a member of")
    usage = add("usage", cmd_usage, "logical bytes vs bytes stored after dedup, per user and total")
    usage.add_argument("--json", action="store_true", help="print JSON instead of a table")
    trail = add(
        "audit",
        cmd_audit,
        "the audit trail: commits, shares, renames, deletes, token changes (who, when, where)",
    )
    trail.add_argument("--project", help="only this project (ID or OWNER/NAME)")
    trail.add_argument("--since", help="only events since an ISO time or an age (24h, 7d)")
    trail.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _needs_action(args: argparse.Namespace) -> None:
    raise CommandError(f"`{args.command}` needs an action: run `robosync-server {args.command} -h`")
