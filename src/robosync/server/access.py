"""Who may do what to which project: the one place that decides.

Every API route and every console page asks :func:`authorize` before it
touches a project. A project has an owner (an ``admin``) and members with a
role: ``read`` (clone, pull, see it in the console), ``write`` (push) or
``admin`` (share, rename, delete). Roles are ordered: each includes the ones
below it.

A caller who may not *read* a project gets :class:`NotFound`, worded exactly
as for an id no project has, so a project's existence never leaks. A member
whose role is too low gets :class:`Forbidden` saying which role is needed and
who can grant it. A project in the trash exists only for its admins'
``restore`` (``deleted=True``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from robosync.errors import Forbidden, NotFound
from robosync.server.db.models import Member, Project, User


class Role(StrEnum):
    """A member's role in a project, lowest first."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """Position in the order read < write < admin."""
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        """Whether this role includes ``needed``."""
        return self.rank >= needed.rank


# What each needed role lets a caller do, for the 403 message.
_VERB = {Role.READ: "read it", Role.WRITE: "push to it", Role.ADMIN: "administer it"}


@dataclass(frozen=True)
class Access:
    """A project the caller may use, and the caller's role in it."""

    project: Project
    role: Role


def not_found(project_id: int) -> NotFound:
    """The answer for a project that does not exist *for this caller*."""
    return NotFound(f"no project {project_id}", {"project": project_id})


def role_in(session: Session, user_id: int, project: Project) -> Role | None:
    """The user's role in ``project`` (owner: admin), or ``None`` if not a member."""
    if project.owner_id == user_id:
        return Role.ADMIN
    role = session.scalar(
        select(Member.role).where(Member.project_id == project.id, Member.user_id == user_id)
    )
    return Role(role) if role is not None else None


def authorize(
    session: Session,
    user_id: int,
    project_id: int,
    needed: Role,
    *,
    deleted: bool = False,
    lock: bool = False,
) -> Access:
    """The project if user ``user_id`` holds ``needed`` in it; else NotFound or Forbidden.

    ``deleted`` selects a project in the trash instead of a live one (only
    restore asks for that). ``lock`` holds the project row until the
    transaction ends (rename, delete and commits serialise on it).
    """
    query = select(Project).where(Project.id == project_id)
    if lock:
        query = query.with_for_update()
    project = session.scalar(query)
    if project is None or (project.deleted_at is not None) != deleted:
        raise not_found(project_id)
    role = role_in(session, user_id, project)
    if role is None:
        raise not_found(project_id)
    if not role.allows(needed):
        owner = session.get_one(User, project.owner_id).name
        raise Forbidden(
            f"you have {role} access to project {owner}/{project.name}; to {_VERB[needed]} "
            f"you need {needed} access: ask its owner ({owner}) or an admin of the project "
            f"to run `robosync share <your user> --role {needed}`",
            {"project": project_id, "role": str(role), "needed": str(needed)},
        )
    return Access(project, role)


def readable_project_ids(session: Session, user_id: int) -> list[int]:
    """Ids of the live projects the user may read (owned or shared), ascending."""
    owned = select(Project.id).where(Project.owner_id == user_id, Project.deleted_at.is_(None))
    shared = (
        select(Project.id)
        .join(Member, Member.project_id == Project.id)
        .where(Member.user_id == user_id, Project.deleted_at.is_(None))
    )
    return sorted(set(session.scalars(owned)) | set(session.scalars(shared)))
