"""Users and robot tokens; a token is shown once and only its SHA-256 is kept."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from robosync.errors import AlreadyExists, NotFound, Unauthorized
from robosync.server.db.models import Token, User, utcnow
from robosync.server.services import audit
from robosync.server.services.audit import Actor

TOKEN_PREFIX = "rs_"
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user and the robot whose token was presented."""

    user_id: int
    user_name: str
    robot: str
    # The token's row (None for a console session), and the client's address.
    token_id: int | None = None
    address: str = ""


def hash_token(token: str) -> bytes:
    """The SHA-256 of a token, as stored."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def create_user(session: Session, name: str) -> User:
    """Create a user named ``name``; :class:`AlreadyExists` if taken."""
    if session.scalar(select(User.id).where(User.name == name)) is not None:
        raise AlreadyExists(f"user {name!r} already exists", {"user": name})
    user = User(name=name)
    session.add(user)
    session.flush()
    return user


def find_user(session: Session, name: str) -> User:
    """The user named ``name``; :class:`NotFound` otherwise."""
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(f"no user named {name!r}", {"user": name})
    return user


def create_token(session: Session, user: User, robot: str, actor: Actor | None = None) -> str:
    """A new token for ``robot`` of ``user``; refused if that robot has a live token.

    Audited as done by ``actor`` (default: the operator running this command).
    """
    live = session.scalar(
        select(Token.id).where(
            Token.user_id == user.id, Token.robot == robot, Token.revoked_at.is_(None)
        )
    )
    if live is not None:
        raise AlreadyExists(
            f"robot {robot!r} of user {user.name!r} already has a token; revoke it first",
            {"user": user.name, "robot": robot},
        )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        Token(user_id=user.id, robot=robot, token_hash=hash_token(token), prefix=token[:10])
    )
    session.flush()
    audit.record(
        session, actor or audit.Actor.operator(), audit.TOKEN_CREATE, user=user.name, robot=robot
    )
    return token


def revoke_token(session: Session, user: User, robot: str, actor: Actor | None = None) -> None:
    """Revoke the live token of ``robot``; :class:`NotFound` if it has none (audited)."""
    result = session.execute(
        update(Token)
        .where(Token.user_id == user.id, Token.robot == robot, Token.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    if getattr(result, "rowcount", 0) == 0:
        raise NotFound(
            f"robot {robot!r} of user {user.name!r} has no live token",
            {"user": user.name, "robot": robot},
        )
    audit.record(
        session, actor or audit.Actor.operator(), audit.TOKEN_REVOKE, user=user.name, robot=robot
    )


def authenticate(session: Session, token: str) -> Principal:
    """The principal a bearer token stands for; :class:`Unauthorized` if unknown or revoked."""
    return authenticate_token(session, token)[0]


def authenticate_token(session: Session, token: str) -> tuple[Principal, datetime | None]:
    """:func:`authenticate`, and when the token was last noted as used."""
    digest = hash_token(token)
    row = session.execute(
        select(
            Token.id.label("token_id"),
            Token.token_hash,
            Token.robot,
            Token.revoked_at,
            Token.last_used_at,
            User.id,
            User.name,
        )
        .join(User, User.id == Token.user_id)
        .where(Token.token_hash == digest)
    ).first()
    if row is None or not hmac.compare_digest(row.token_hash, digest) or row.revoked_at:
        raise Unauthorized("unknown or revoked token")
    who = Principal(user_id=row.id, user_name=row.name, robot=row.robot, token_id=row.token_id)
    return who, row.last_used_at


def token_use_is_stale(last_used_at: datetime | None, now: datetime) -> bool:
    """Whether a token's ``last_used_at`` is old enough to be written again.

    Written at most once per :data:`LAST_USED_RESOLUTION`, so reads stay reads.
    """
    return last_used_at is None or now - last_used_at >= LAST_USED_RESOLUTION


def note_token_used(session: Session, token_id: int, now: datetime) -> None:
    """Set a token's ``last_used_at`` (only if it is stale, so concurrent requests skip it)."""
    session.execute(
        update(Token)
        .where(
            Token.id == token_id,
            or_(Token.last_used_at.is_(None), Token.last_used_at <= now - LAST_USED_RESOLUTION),
        )
        .values(last_used_at=now)
    )


def has_users(session: Session) -> bool:
    """Whether any user exists (a fresh deployment has none)."""
    return session.scalar(select(User.id).limit(1)) is not None


@dataclass(frozen=True)
class RobotToken:
    """What the console shows of one token."""

    robot: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    last_push_at: datetime | None
    revoked_at: datetime | None


def list_tokens(session: Session, user_id: int) -> list[RobotToken]:
    """Every token of the user: live ones first, then by robot and newest."""
    rows = session.scalars(
        select(Token)
        .where(Token.user_id == user_id)
        .order_by(Token.revoked_at.is_not(None), Token.robot, Token.created_at.desc())
    )
    return [
        RobotToken(
            robot=t.robot,
            prefix=t.prefix,
            created_at=t.created_at,
            last_used_at=t.last_used_at,
            last_push_at=t.last_push_at,
            revoked_at=t.revoked_at,
        )
        for t in rows
    ]
