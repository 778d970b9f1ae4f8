"""The error hierarchy, shared by client and server.

The server maps each class to one HTTP status and the JSON body
``{"error": {"code", "message", "details"}}``; the client turns that body
back into the same class and the CLI prints its message as one line.
"""

from __future__ import annotations

from typing import Any


class RobosyncError(Exception):
    """Base of every error robosync raises on purpose."""

    status = 500
    code = "internal"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_body(self) -> dict[str, Any]:
        """The JSON error body for this error."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class InvalidInput(RobosyncError):
    """The request is malformed: bad path, bad digest, bad NDJSON, sizes that do not add up."""

    status = 400
    code = "invalid_input"


class Unauthorized(RobosyncError):
    """No token, or a token that is unknown or revoked."""

    status = 401
    code = "unauthorized"


class Forbidden(RobosyncError):
    """A role too low for the action (a reader's push), or a forged or expired signature."""

    status = 403
    code = "forbidden"


class NotFound(RobosyncError):
    """The thing does not exist, or the caller may not know it exists."""

    status = 404
    code = "not_found"


class ConflictError(RobosyncError):
    """A commit's base is not the head any more; ``details['head_version']`` is the head."""

    status = 409
    code = "conflict"

    @property
    def head_version(self) -> int:
        """The project's head version when the commit was refused."""
        return int(self.details.get("head_version", 0))


class AlreadyExists(RobosyncError):
    """A project (or user) of that name already exists."""

    status = 409
    code = "already_exists"


class Gone(RobosyncError):
    """A version that garbage collection pruned (``gc --keep-versions`` / ``--older-than``)."""

    status = 410
    code = "gone"


class PayloadTooLarge(RobosyncError):
    """A body or an NDJSON line over the server's size cap."""

    status = 413
    code = "too_large"


class QuotaExceeded(PayloadTooLarge):
    """A push would take the owner's logical bytes over their quota (details: quota, used)."""

    code = "quota_exceeded"


class Unprocessable(RobosyncError):
    """A well-formed request the server cannot apply (missing blobs, case-only twins)."""

    status = 422
    code = "unprocessable"


class MissingBlobs(Unprocessable):
    """A commit names digests that are not present; ``details['missing']`` lists them."""

    code = "missing_blobs"


class RateLimited(RobosyncError):
    """Over a rate limit; ``details['retry_after']`` seconds, ``details['limit']`` which one."""

    status = 429
    code = "rate_limited"

    @property
    def retry_after(self) -> float:
        """Seconds to wait before retrying."""
        return float(self.details.get("retry_after", 1))


class IntegrityError(RobosyncError):
    """Bytes that do not match their digest (upload verification or download)."""

    status = 400
    code = "integrity"


class Unavailable(RobosyncError):
    """A dependency (database, object store) is down; retry later."""

    status = 503
    code = "unavailable"


_BY_CODE: dict[str, type[RobosyncError]] = {
    cls.code: cls
    for cls in (
        InvalidInput,
        Unauthorized,
        Forbidden,
        NotFound,
        ConflictError,
        AlreadyExists,
        Gone,
        PayloadTooLarge,
        QuotaExceeded,
        Unprocessable,
        MissingBlobs,
        RateLimited,
        IntegrityError,
        Unavailable,
    )
}


def error_from_body(status: int, body: Any) -> RobosyncError:
    """Rebuild the error a server answered with from its status and JSON body."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return RobosyncError(f"server answered HTTP {status}", {"status": status})
    cls = _BY_CODE.get(str(err.get("code")), RobosyncError)
    e = cls(str(err.get("message", f"HTTP {status}")), err.get("details") or {})
    return e
