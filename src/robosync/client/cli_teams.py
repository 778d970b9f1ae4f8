"""``robosync`` commands for sharing and managing projects: parsing and printing only.

share / unshare / members act on ``--project OWNER/NAME`` or, without it, on
the project of the current folder; rename-project / delete-project /
undelete / trash name their project explicitly.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from robosync.client.api import Api
from robosync.client.deferred import wire
from robosync.client.index import ProjectConfig
from robosync.client.project import find_root
from robosync.client.settings import ClientSettings
from robosync.client.teams import find_project

if TYPE_CHECKING:
    from robosync.client.cli import Output

ROLES = ("read", "write", "admin")
AddCommand = Callable[[str, Callable[..., int], str], argparse.ArgumentParser]


@contextmanager
def _server(s: ClientSettings, server: str | None = None) -> Iterator[Api]:
    url = s.server_url(server)
    api = Api(url, s.token_for(url))
    try:
        yield api
    finally:
        api.close()


@contextmanager
def _target(a: argparse.Namespace, s: ClientSettings) -> Iterator[tuple[Api, int, str]]:
    """The API, project id and ``OWNER/NAME`` (or name) a command acts on."""
    if a.project:
        with _server(s) as api:
            info = find_project(api, a.project)
            yield api, info.id, f"{info.owner}/{info.name}"
        return
    config = ProjectConfig.load(find_root(a.project_dir))
    with _server(s, s.server or config.server) as api:
        yield api, config.project_id, config.project_name


def cmd_share(a: argparse.Namespace, s: ClientSettings, o: Output) -> int:
    """Give a user a role in a project."""
    with _target(a, s) as (api, project_id, label):
        member = api.share(project_id, a.user, a.role)
    o.result(
        {"project": label, "user": member.user, "role": member.role},
        f"{member.user} has {member.role} access to {label}",
    )
    return 0


def cmd_unshare(a: argparse.Namespace, s: ClientSettings, o: Output) -> int:
    """Remove a user from a project."""
    with _target(a, s) as (api, project_id, label):
        api.unshare(project_id, a.user)
    o.result({"project": label, "user": a.user}, f"{a.user} no longer has access to {label}")
    return 0


def cmd_members(a: argparse.Namespace, s: ClientSettings, o: Output) -> int:
    """List a project's owner and members."""
    with _target(a, s) as (api, project_id, _label):
        members = api.members(project_id)
    lines = [f"{m.user:30} {m.role:6}{'  (owner)' if m.owner else ''}" for m in members]
    o.result([wire.plain(m) for m in members], "\n".join(lines))
    return 0


def cmd_rename_project(a: argparse.Namespace, s: ClientSettings, o: Output) -> int:
    """Rename a project; clones keep working (they follow its id)."""
    with _server(s) as api:
        info = api.rename_project(find_project(api, a.project).id, a.new_name)
    o.result(wire.plain(info), f"renamed {a.project} to {info.owner}/{info.name}")
    return 0


def cmd_delete_project(a: argparse.Namespace, s: ClientSettings, o: Output) -> int:
    """Move a project into the server's trash."""
    with _server(s) as api:
        info = api.delete_project(find_project(api, a.project).id)
    o.result(
        wire.plain(info),
        f"moved {info.owner}/{info.name} to the trash; "
        f"`robosync undelete {info.owner}/{info.name}` brings it back",
    )
    return 0


def cmd_undelete(a: argparse.Namespace, s: ClientSettings, o: Output) -> int:
    """Take a project out of the trash."""
    with _server(s) as api:
        info = api.restore_project(find_project(api, a.project, trash=True).id)
    o.result(wire.plain(info), f"restored {info.owner}/{info.name}")
    return 0


def cmd_trash(a: argparse.Namespace, s: ClientSettings, o: Output) -> int:
    """List deleted projects you administer."""
    with _server(s) as api:
        found = api.project_list(trash=True).projects
    lines = [f"{p.owner + '/' + p.name:40} deleted {p.deleted_at:%Y-%m-%d %H:%M}" for p in found]
    o.result([wire.plain(p) for p in found], "\n".join(lines) or "the trash is empty")
    return 0


def add_team_commands(add: AddCommand) -> None:
    """Register the sharing and project-management commands on the ``robosync`` parser."""

    def project_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--project",
            metavar="OWNER/NAME",
            help="the project (default: the project of the current folder)",
        )

    p = add("share", cmd_share, "give a user read, write or admin access to a project")
    p.add_argument("user")
    p.add_argument(
        "--role",
        choices=ROLES,
        required=True,
        help="read: clone and pull; write: also push; admin: also share, rename, delete",
    )
    project_option(p)
    p = add("unshare", cmd_unshare, "remove a user's access to a project (or leave one)")
    p.add_argument("user")
    project_option(p)
    project_option(add("members", cmd_members, "list a project's owner and members"))
    p = add("rename-project", cmd_rename_project, "rename a project (clones keep working)")
    p.add_argument("project", metavar="PROJECT", help="NAME or OWNER/NAME")
    p.add_argument("new_name", metavar="NEW_NAME")
    p = add(
        "delete-project",
        cmd_delete_project,
        "move a project into the server's trash (restorable with `undelete` until purged)",
    )
    p.add_argument("project", metavar="PROJECT", help="NAME or OWNER/NAME")
    p = add("undelete", cmd_undelete, "take a deleted project out of the trash")
    p.add_argument("project", metavar="PROJECT", help="NAME or OWNER/NAME")
    add("trash", cmd_trash, "list deleted projects you administer")
