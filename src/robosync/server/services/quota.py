"""Per-user storage quotas, in logical bytes: the sum of the heads of the user's live projects.

A push into a project counts against the project *owner's* quota, whoever
pushes. The client asks before uploading (``quota-check``) and the commit
checks again in its transaction; two concurrent commits into different
projects of one owner may each pass and together overshoot by one commit.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from robosync.errors import QuotaExceeded
from robosync.protocol import QuotaInfo
from robosync.server.access import Role, authorize
from robosync.server.db.models import Project, User
from robosync.server.services.accounts import Principal


def used_bytes(session: Session, owner_id: int) -> int:
    """Logical bytes of the owner's live projects (their heads)."""
    total = session.scalar(
        select(func.coalesce(func.sum(Project.total_bytes), 0)).where(
            Project.owner_id == owner_id, Project.deleted_at.is_(None)
        )
    )
    return int(total or 0)


def quota_of(session: Session, owner_id: int) -> QuotaInfo:
    """The owner's quota (None: unlimited) and current use."""
    quota = session.scalar(select(User.quota_bytes).where(User.id == owner_id))
    return QuotaInfo(quota_bytes=quota, used_bytes=used_bytes(session, owner_id))


def check_quota(session: Session, owner_id: int, added_bytes: int, *, applied: bool) -> QuotaInfo:
    """Refuse with 413 ``quota_exceeded`` if adding ``added_bytes`` goes over the quota.

    ``applied``: the use already includes the addition (checked after a commit's
    rows were written, inside its transaction).
    """
    info = quota_of(session, owner_id)
    if info.quota_bytes is None or added_bytes <= 0:
        return info
    after = info.used_bytes + (0 if applied else added_bytes)
    if after > info.quota_bytes:
        before = after - added_bytes
        raise QuotaExceeded(
            f"this push adds {added_bytes} bytes; the project owner's quota is "
            f"{info.quota_bytes} bytes and {before} are used; delete files or projects, "
            "or ask the operator for a larger quota",
            {"quota": info.quota_bytes, "used": before, "added": added_bytes},
        )
    return info


def check_push(session: Session, who: Principal, project_id: int, added_bytes: int) -> QuotaInfo:
    """Whether a push by ``who`` adding ``added_bytes`` to ``project_id`` fits the project
    owner's quota (413 if not); ``who`` must be able to write the project."""
    project = authorize(session, who.user_id, project_id, Role.WRITE).project
    return check_quota(session, project.owner_id, added_bytes, applied=False)
