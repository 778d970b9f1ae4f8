"""The audit trail: who committed, shared, renamed, deleted, made or revoked a token.

Each event is a row of ``audit_events``, written in the transaction of the
action it records (so an action that rolls back leaves no row), and one JSON
log line on the ``robosync.audit`` logger once that transaction commits.
"""

from __future__ import annotations

import getpass
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from robosync.server.db.models import AuditEvent, Project, utcnow

if TYPE_CHECKING:
    from robosync.server.services.accounts import Principal

log = logging.getLogger("robosync.audit")

COMMIT = "commit"
SHARE = "share"
UNSHARE = "unshare"
RENAME = "rename"
DELETE = "delete"
RESTORE = "restore"
PURGE = "purge"
TOKEN_CREATE = "token_create"
TOKEN_REVOKE = "token_revoke"
QUOTA_SET = "quota_set"

_PENDING = "audit_pending"


@dataclass(frozen=True)
class Actor:
    """Who acted: the user, the robot (or the operator's login) and the address."""

    user_name: str
    actor: str
    address: str

    @classmethod
    def of(cls, who: Principal) -> Actor:
        """The actor behind an API caller."""
        return cls(who.user_name, who.robot, who.address or "unknown")

    @classmethod
    def operator(cls) -> Actor:
        """The person running an administration command on this machine."""
        try:
            login = getpass.getuser()
        except (KeyError, OSError):
            login = "unknown"
        return cls("(operator)", login, "local")


def record(
    session: Session,
    actor: Actor,
    action: str,
    project: Project | None = None,
    **details: Any,
) -> AuditEvent:
    """Add one audit row (in the caller's transaction) and queue its log line."""
    row = AuditEvent(
        at=utcnow(),
        action=action,
        user_name=actor.user_name,
        actor=actor.actor,
        address=actor.address[:64],
        project_id=project.id if project is not None else None,
        project_name=project.name if project is not None else None,
        details=json.dumps(details, sort_keys=True, default=str),
    )
    session.add(row)
    session.info.setdefault(_PENDING, []).append(event_dict(row))
    return row


def event_dict(row: AuditEvent) -> dict[str, Any]:
    """An audit row as plain data (the JSON log line and ``audit --json``)."""
    return {
        "at": row.at.isoformat() if row.at else None,
        "action": row.action,
        "user": row.user_name,
        "actor": row.actor,
        "address": row.address,
        "project_id": row.project_id,
        "project": row.project_name,
        "details": json.loads(row.details or "{}"),
    }


def list_events(
    session: Session,
    *,
    project_id: int | None = None,
    since: datetime | None = None,
    limit: int = 10_000,
) -> list[AuditEvent]:
    """Events oldest first, optionally of one project and/or since a time."""
    query = select(AuditEvent).order_by(AuditEvent.at, AuditEvent.id).limit(limit)
    if project_id is not None:
        query = query.where(AuditEvent.project_id == project_id)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    return list(session.scalars(query))


@event.listens_for(Session, "after_commit")
def _log_committed(session: Session) -> None:
    for line in session.info.pop(_PENDING, []):
        log.info(
            "audit %s by %s/%s", line["action"], line["user"], line["actor"], extra={"audit": line}
        )


@event.listens_for(Session, "after_rollback")
def _drop_rolled_back(session: Session) -> None:
    session.info.pop(_PENDING, None)
