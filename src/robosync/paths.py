"""Project-relative path rules, shared by client and server (pure).

A project path is a ``/``-separated relative path of at most 1024 UTF-8 bytes,
in Unicode NFC. Refused: empty, absolute, ``.``/``..`` or empty segments,
backslashes, NUL and other control characters, invalid UTF-8, and any path
under ``.robosync/`` (the client's own folder).

Normalisation: the server refuses a path that is not NFC (so an NFC/NFD twin
can never exist on the server); the client normalises names it reads from
disk to NFC before sending. Two live paths that differ only in case are
refused at commit (``case_key``), so a project can always be checked out on a
case-insensitive file system.
"""

from __future__ import annotations

import re
import unicodedata

MAX_PATH_BYTES = 1024
RESERVED_PREFIX = ".robosync"
# C0 controls (NUL included), DEL and the C1 controls.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


class InvalidPath(ValueError):
    """A path that breaks the project path rules; ``path`` and ``reason`` say how."""

    def __init__(self, path: str | bytes, reason: str) -> None:
        self.path = path if isinstance(path, str) else path.decode("utf-8", "backslashreplace")
        self.reason = reason
        super().__init__(f"invalid path {self.path!r}: {reason}")


def path_problem(path: str | bytes) -> str | None:
    """``None`` if ``path`` is a valid project path, else the reason it is not."""
    if isinstance(path, bytes):
        try:
            path = path.decode("utf-8")
        except UnicodeDecodeError:
            return "not valid UTF-8"
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid UTF-8 (contains a lone surrogate)"
    if not path:
        return "empty"
    if len(encoded) > MAX_PATH_BYTES:
        return f"longer than {MAX_PATH_BYTES} bytes ({len(encoded)})"
    if _CONTROL.search(path):
        return "contains a NUL or control character"
    if "\\" in path:
        return "contains a backslash"
    if path.startswith("/"):
        return "absolute (starts with /)"
    if len(path) >= 2 and path[1] == ":":
        return "absolute (drive letter)"
    segments = path.split("/")
    if any(s == ".." for s in segments):
        return "contains '..'"
    if any(s in ("", ".") for s in segments):
        return "has an empty or '.' segment"
    if segments[0] == RESERVED_PREFIX:
        return f"inside the reserved {RESERVED_PREFIX}/ folder"
    if not unicodedata.is_normalized("NFC", path):
        return "not in Unicode NFC form (normalise it to NFC)"
    return None


def validate_path(path: str | bytes) -> str:
    """Return ``path`` as ``str`` if valid, else raise :class:`InvalidPath`."""
    reason = path_problem(path)
    if reason is not None:
        raise InvalidPath(path, reason)
    return path if isinstance(path, str) else path.decode("utf-8")


def normalize_path(path: str) -> str:
    """NFC-normalise a path read from a local file system (macOS gives NFD)."""
    return unicodedata.normalize("NFC", path)


def case_key(path: str) -> str:
    """Key under which two paths differing only in case collide."""
    return unicodedata.normalize("NFC", path).casefold()
