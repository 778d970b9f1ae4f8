"""Who is signed in to the console: the session cookie, and the CSRF check of each form.

The session cookie is HttpOnly and SameSite=Lax (Secure when the console is
reached over https). Every state-changing request carries the session's CSRF
token in a form field; the sign-in form, which has no session yet, carries a
random token that must match a cookie set with the form (double submit).
"""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Form, Request
from fastapi.responses import Response

from robosync.errors import Forbidden, Unauthorized
from robosync.server.logs import set_user_id
from robosync.server.routes.deps import get_db, get_settings
from robosync.server.services.web_sessions import SignedIn, signed_in

SESSION_COOKIE = "robosync_session"
SIGNIN_CSRF_COOKIE = "robosync_signin"
CSRF_FIELD = "csrf"


def is_https(request: Request) -> bool:
    """Whether the browser reached us over https (directly or per the public URL)."""
    return request.url.scheme == "https" or get_settings(request).effective_public_url.startswith(
        "https:"
    )


def session_lifetime(request: Request) -> timedelta:
    """How long a new sign-in lasts."""
    return timedelta(hours=get_settings(request).session_hours)


def set_cookie(request: Request, response: Response, name: str, value: str, seconds: int) -> None:
    """Set an HttpOnly, SameSite=Lax cookie for the whole console (Secure over https)."""
    response.set_cookie(
        name,
        value,
        max_age=seconds,
        path="/",
        httponly=True,
        samesite="lax",
        secure=is_https(request),
    )


def signed_in_user(request: Request) -> SignedIn:
    """The signed-in person; :class:`Unauthorized` (answered by a redirect) otherwise."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise Unauthorized("sign in first")
    with get_db(request).reading() as session:
        who = signed_in(session, cookie)
    set_user_id(who.principal.user_id)
    return who


def checked_user(
    request: Request,
    who: Annotated[SignedIn, Depends(signed_in_user)],
    csrf: Annotated[str, Form()] = "",
) -> SignedIn:
    """The signed-in person, for a state-changing request whose form has the session's token."""
    if not csrf or not hmac.compare_digest(csrf, who.csrf_token):
        raise Forbidden("the form's security token is missing or stale; reload the page")
    return who


def new_signin_token() -> str:
    """A fresh token for the sign-in form and its cookie."""
    return secrets.token_urlsafe(24)


def check_signin_token(request: Request, csrf: str) -> None:
    """Refuse a sign-in whose form token does not match its cookie."""
    cookie = request.cookies.get(SIGNIN_CSRF_COOKIE, "")
    if not csrf or not cookie or not hmac.compare_digest(csrf, cookie):
        raise Forbidden("the sign-in form expired; reload the page and sign in again")


Viewer = Annotated[SignedIn, Depends(signed_in_user)]
Actor = Annotated[SignedIn, Depends(checked_user)]
