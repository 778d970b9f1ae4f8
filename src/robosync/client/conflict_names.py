"""Names of conflict copies: always a valid project path, however long the original.

``dir/stem.conflict-<robot>-<UTC yyyymmddThhmmss><ext>``; the ``n``-th try
adds ``-<n>`` after the robot. The stem is shortened (never inside a UTF-8
character) so that the name stays within :data:`MAX_NAME_BYTES` (what Linux,
macOS and Windows file systems allow per component) and the whole path within
:data:`robosync.paths.MAX_PATH_BYTES`. When even an empty stem leaves no room,
the tag gets shorter (no robot, then only the time, then only ``~<n>``), so a
name always exists; uniqueness comes from the caller trying ``n = 2, 3, …``.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime

from robosync.paths import MAX_PATH_BYTES

MAX_NAME_BYTES = 255
MAX_ROBOT_BYTES = 64
# A longer "extension" is part of the name rather than a file type; it may be cut.
MAX_EXT_BYTES = 16

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def conflict_path(path: str, robot: str, when: datetime, n: int = 1) -> str:
    """The ``n``-th candidate conflict-copy path of ``path`` (see the module doc)."""
    head, sep, name = path.rpartition("/")
    dot = name.rfind(".")
    stem, ext = (name[:dot], name[dot:]) if dot > 0 else (name, "")
    if len(ext.encode()) > MAX_EXT_BYTES:
        stem, ext = name, ""
    stamp = when.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    safe_robot = (_UNSAFE.sub("_", robot).strip("._") or "robot")[:MAX_ROBOT_BYTES]
    nth = f"-{n}" if n > 1 else ""
    tags = (
        f".conflict-{safe_robot}{nth}-{stamp}{ext}",
        f".conflict{nth}-{stamp}{ext}",
        f".c{nth}-{stamp}",
        f"~{n}",
    )
    room_for_name = MAX_PATH_BYTES - len(f"{head}{sep}".encode())
    for tag in tags:
        room = min(MAX_NAME_BYTES, room_for_name) - len(tag.encode())
        if room >= 0:
            return f"{head}{sep}{_cut(stem, room)}{tag}"
    raise ValueError(f"no conflict name fits in the folder of {path!r}")


def _cut(text: str, max_bytes: int) -> str:
    """The longest NFC prefix of ``text`` within ``max_bytes`` UTF-8 bytes."""
    raw = text.encode()
    while True:
        # Dropping a partial trailing sequence never cuts inside a character.
        cut = unicodedata.normalize("NFC", raw[:max_bytes].decode("utf-8", "ignore"))
        if len(cut.encode()) <= max_bytes:
            return cut
        max_bytes -= 1
