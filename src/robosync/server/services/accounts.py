"""Users and robot tokens; a token is shown once and only its SHA-256 is kept."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from robosync.errors import AlreadyExists, NotFound, Unauthorized
from robosync.server.db.models import Token, User, utcnow

TOKEN_PREFIX = "rs_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user and the robot whose token was presented."""

    user_id: int
    user_name: str
    robot: str


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


def create_token(session: Session, user: User, robot: str) -> str:
    """A new token for ``robot`` of ``user``; refused if that robot has a live token."""
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
    return token


def revoke_token(session: Session, user: User, robot: str) -> None:
    """Revoke the live token of ``robot``; :class:`NotFound` if it has none."""
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


def authenticate(session: Session, token: str) -> Principal:
    """The principal a bearer token stands for; :class:`Unauthorized` if unknown or revoked."""
    digest = hash_token(token)
    row = session.execute(
        select(Token.token_hash, Token.robot, Token.revoked_at, User.id, User.name)
        .join(User, User.id == Token.user_id)
        .where(Token.token_hash == digest)
    ).first()
    if row is None or not hmac.compare_digest(row.token_hash, digest) or row.revoked_at:
        raise Unauthorized("unknown or revoked token")
    return Principal(user_id=row.id, user_name=row.name, robot=row.robot)


def has_users(session: Session) -> bool:
    """Whether any user exists (a fresh deployment has none)."""
    return session.scalar(select(User.id).limit(1)) is not None
