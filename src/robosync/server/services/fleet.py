"""Reports for the operator of a fleet: users, tokens, projects, storage use and dedup.

Each function returns plain dicts (the ``--json`` output of the admin
commands); the command line prints them as tables.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from robosync.server.db.models import (
    BLOB_PRESENT,
    Blob,
    File,
    Member,
    Project,
    Token,
    User,
    Version,
)
from robosync.server.services.accounts import find_user


def _user_id(session: Session, user: str | None) -> int | None:
    return find_user(session, user).id if user is not None else None


def list_users(session: Session) -> list[dict[str, Any]]:
    """Every user: name, created, quota, live tokens, owned projects, logical bytes."""
    tokens = (
        select(Token.user_id, func.count().label("n"))
        .where(Token.revoked_at.is_(None))
        .group_by(Token.user_id)
        .subquery()
    )
    owned = (
        select(
            Project.owner_id,
            func.count().label("n"),
            func.coalesce(func.sum(Project.total_bytes), 0).label("bytes"),
        )
        .where(Project.deleted_at.is_(None))
        .group_by(Project.owner_id)
        .subquery()
    )
    rows = session.execute(
        select(User, tokens.c.n, owned.c.n, owned.c.bytes)
        .outerjoin(tokens, tokens.c.user_id == User.id)
        .outerjoin(owned, owned.c.owner_id == User.id)
        .order_by(User.name)
    )
    return [
        {
            "user": user.name,
            "created_at": user.created_at,
            "quota_bytes": user.quota_bytes,
            "tokens": int(n_tokens or 0),
            "projects": int(n_projects or 0),
            "logical_bytes": int(logical or 0),
        }
        for user, n_tokens, n_projects, logical in rows
    ]


def list_tokens(session: Session, user: str | None = None) -> list[dict[str, Any]]:
    """Tokens (live and revoked): user, robot, created, last used, last push, revoked."""
    query = (
        select(Token, User.name).join(User, User.id == Token.user_id).order_by(User.name, Token.id)
    )
    user_id = _user_id(session, user)
    if user_id is not None:
        query = query.where(Token.user_id == user_id)
    return [
        {
            "user": name,
            "robot": t.robot,
            "prefix": t.prefix,
            "created_at": t.created_at,
            "last_used_at": t.last_used_at,
            "last_push_at": t.last_push_at,
            "revoked_at": t.revoked_at,
        }
        for t, name in session.execute(query)
    ]


def list_projects(session: Session, user: str | None = None) -> list[dict[str, Any]]:
    """Projects (live and in the trash), optionally those a user owns or is a member of."""
    query = (
        select(Project, User.name)
        .join(User, User.id == Project.owner_id)
        .order_by(User.name, Project.name)
    )
    user_id = _user_id(session, user)
    if user_id is not None:
        shared = select(Member.project_id).where(Member.user_id == user_id)
        query = query.where((Project.owner_id == user_id) | Project.id.in_(shared))
    members = dict(
        session.execute(select(Member.project_id, func.count()).group_by(Member.project_id)).all()
    )
    pushed = dict(
        session.execute(
            select(Version.project_id, func.max(Version.created_at))
            .where(Version.number > 0)
            .group_by(Version.project_id)
        ).all()
    )
    return [
        {
            "id": p.id,
            "owner": owner,
            "name": p.name,
            "images": p.file_count,
            "logical_bytes": p.total_bytes,
            "head_version": p.head_version,
            "last_push_at": pushed.get(p.id),
            "members": int(members.get(p.id, 0)),
            "deleted_at": p.deleted_at,
        }
        for p, owner in session.execute(query)
    ]


def _stored_bytes(session: Session, project_ids: list[int]) -> int:
    """Bytes of the distinct present blobs any version of these projects names."""
    if not project_ids:
        return 0
    digests = select(distinct(File.digest)).where(File.project_id.in_(project_ids))
    total = session.scalar(
        select(func.coalesce(func.sum(Blob.size), 0)).where(
            Blob.digest.in_(digests), Blob.state == BLOB_PRESENT
        )
    )
    return int(total or 0)


def usage(session: Session) -> dict[str, Any]:
    """Logical bytes (heads of live projects) vs bytes stored after dedup, per user and total.

    A user's stored bytes count each distinct blob their projects name (in any
    version) once; a blob two users share counts for both, and once in the
    total, which is every present blob.
    """
    per_user: list[dict[str, Any]] = []
    for user in session.scalars(select(User).order_by(User.name)):
        projects = session.execute(
            select(Project.id, Project.total_bytes).where(
                Project.owner_id == user.id, Project.deleted_at.is_(None)
            )
        ).all()
        logical = sum(b for _, b in projects)
        stored = _stored_bytes(session, [pid for pid, _ in projects])
        per_user.append(
            {
                "user": user.name,
                "logical_bytes": logical,
                "stored_bytes": stored,
                "dedup_ratio": _ratio(logical, stored),
                "quota_bytes": user.quota_bytes,
            }
        )
    logical = sum(int(u["logical_bytes"] or 0) for u in per_user)
    count, stored = session.execute(
        select(func.count(), func.coalesce(func.sum(Blob.size), 0)).where(
            Blob.state == BLOB_PRESENT
        )
    ).one()
    return {
        "users": per_user,
        "total": {
            "logical_bytes": logical,
            "stored_bytes": int(stored),
            "blobs": int(count),
            "dedup_ratio": _ratio(logical, int(stored)),
        },
    }


def _ratio(logical: int, stored: int) -> float | None:
    return round(logical / stored, 3) if stored else None


def set_quota(session: Session, user: str, quota_bytes: int | None) -> None:
    """Set (or with ``None`` remove) a user's quota of logical bytes."""
    find_user(session, user).quota_bytes = quota_bytes
