"""Project members: share a project with a user at a role, unshare, list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from robosync.errors import InvalidInput, NotFound
from robosync.server.access import Role, authorize
from robosync.server.db.models import Member, User, utcnow
from robosync.server.services import audit
from robosync.server.services.accounts import Principal, find_user


@dataclass(frozen=True)
class MemberRow:
    """One member of a project: the owner first, as an admin."""

    user: str
    role: Role
    owner: bool
    since: datetime


def list_members(session: Session, who: Principal, project_id: int) -> list[MemberRow]:
    """The project's owner and members (any member may look)."""
    project = authorize(session, who.user_id, project_id, Role.READ).project
    owner = session.get_one(User, project.owner_id)
    rows = [MemberRow(owner.name, Role.ADMIN, True, project.created_at)]
    found = session.execute(
        select(User.name, Member.role, Member.created_at)
        .join(User, User.id == Member.user_id)
        .where(Member.project_id == project_id)
        .order_by(User.name)
    )
    rows.extend(MemberRow(name, Role(role), False, at) for name, role, at in found)
    return rows


def share(session: Session, who: Principal, project_id: int, user_name: str, role: Role) -> Role:
    """Give ``user_name`` ``role`` in the project (an admin's action); the previous role."""
    project = authorize(session, who.user_id, project_id, Role.ADMIN, lock=True).project
    user = find_user(session, user_name)
    if user.id == project.owner_id:
        raise InvalidInput(
            f"{user_name} owns the project and is always its admin", {"user": user_name}
        )
    member = session.get(Member, (project_id, user.id))
    before = Role(member.role) if member is not None else None
    if member is None:
        session.add(Member(project_id=project_id, user_id=user.id, role=role, created_at=utcnow()))
    else:
        member.role = role
    audit.record(
        session,
        audit.Actor.of(who),
        audit.SHARE,
        project,
        user=user_name,
        role=str(role),
        previous=str(before) if before else None,
    )
    session.flush()
    return before or role


def unshare(session: Session, who: Principal, project_id: int, user_name: str) -> None:
    """Remove ``user_name`` from the project; an admin's action, or a member leaving."""
    leaving = user_name == who.user_name
    needed = Role.READ if leaving else Role.ADMIN
    project = authorize(session, who.user_id, project_id, needed, lock=True).project
    user = find_user(session, user_name)
    if user.id == project.owner_id:
        raise InvalidInput(
            f"{user_name} owns the project; the owner cannot be removed", {"user": user_name}
        )
    gone = session.execute(
        delete(Member).where(Member.project_id == project_id, Member.user_id == user.id)
    )
    if getattr(gone, "rowcount", 0) == 0:
        raise NotFound(
            f"{user_name} is not a member of this project; see `robosync members`",
            {"user": user_name},
        )
    audit.record(session, audit.Actor.of(who), audit.UNSHARE, project, user=user_name)
