"""Console sign-in: Argon2 passwords and browser sessions kept in the shared database.

A session is a random cookie value; only its SHA-256 is stored, with the
user, an expiry and the CSRF token every form of that session must carry.
Any replica can serve any session, since all of them read the same table.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from robosync.errors import InvalidInput, Unauthorized
from robosync.server.db.models import User, WebSession, utcnow
from robosync.server.services.accounts import Principal, find_user

MIN_PASSWORD_LENGTH = 8
CONSOLE_ROBOT = "console"
_hasher = PasswordHasher()
# Verified against when the user does not exist, so that an unknown name takes
# as long to refuse as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class SignedIn:
    """The person behind a session cookie, as a principal of the services."""

    principal: Principal
    csrf_token: str


def _session_hash(cookie: str) -> bytes:
    return hashlib.sha256(cookie.encode("utf-8")).digest()


def set_password(session: Session, user_name: str, password: str) -> None:
    """Set (or replace) the console password of ``user_name``; ends their sessions."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    user = find_user(session, user_name)
    user.password_hash = _hasher.hash(password)
    session.execute(delete(WebSession).where(WebSession.user_id == user.id))


def check_password(session: Session, user_name: str, password: str) -> User:
    """The user if ``password`` is theirs; :class:`Unauthorized` otherwise (same message)."""
    user = session.scalar(select(User).where(User.name == user_name))
    stored = user.password_hash if user is not None else None
    try:
        _hasher.verify(stored or _DUMMY_HASH, password)
        ok = stored is not None
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None:
        raise Unauthorized("wrong user name or password")
    if stored is not None and _hasher.check_needs_rehash(stored):
        user.password_hash = _hasher.hash(password)
    return user


def open_session(session: Session, user: User, lifetime: timedelta) -> str:
    """A new session for ``user``; the cookie value (shown only to that browser)."""
    cookie = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        WebSession(
            id_hash=_session_hash(cookie),
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    # Expired sessions of this user go as a new one comes, so the table stays small.
    session.execute(
        delete(WebSession).where(WebSession.user_id == user.id, WebSession.expires_at < now)
    )
    session.flush()
    return cookie


def signed_in(session: Session, cookie: str) -> SignedIn:
    """Who a session cookie belongs to; :class:`Unauthorized` if unknown or expired."""
    row = session.execute(
        select(WebSession.csrf_token, WebSession.expires_at, User.id, User.name)
        .join(User, User.id == WebSession.user_id)
        .where(WebSession.id_hash == _session_hash(cookie))
    ).first()
    if row is None or row.expires_at <= utcnow():
        raise Unauthorized("not signed in, or the session expired")
    return SignedIn(Principal(row.id, row.name, CONSOLE_ROBOT), row.csrf_token)


def close_session(session: Session, cookie: str) -> None:
    """End a session (no error if it is already gone)."""
    session.execute(delete(WebSession).where(WebSession.id_hash == _session_hash(cookie)))
