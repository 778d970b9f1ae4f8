"""Files a push leaves out: one file that changes, vanishes or cannot be read never sinks a push.

On a robot, files are rewritten, deleted and become unreadable while a push
runs. Such a file is *left out* of this commit with one line saying why, and
everything else is committed. Its index row loses its stat (``mtime_ns = -1``),
so the next push hashes it from scratch instead of trusting a digest of
bytes that are gone.

This module is the one place that decides what counts as "this file's
trouble" rather than a failure of the push (:func:`file_trouble`), the one
way a file is opened to be hashed or uploaded (:func:`open_as_hashed`, which
refuses a file that is no longer the regular file that was stat'ed), and the
push's list of what it left out (:class:`LeftOutFiles`).
"""

from __future__ import annotations

import os
import re
import stat as stat_mod
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

from robosync.errors import IntegrityError, RobosyncError
from robosync.values import FrozenValue

DELETED = "deleted during the push"
SHRANK = "changed while it was uploaded (it shrank)"
_STORE_CODE = re.compile(r"BadDigest|InvalidDigest|XAmzContentSHA256Mismatch|IncompleteBody")
V = TypeVar("V")


@dataclass(frozen=True, eq=False, repr=False)
class LeftOut(FrozenValue):
    """A file a push left out, and why (one line)."""

    path: str
    reason: str


class FileTrouble(RobosyncError):
    """One file cannot be pushed now (changed, deleted, unreadable); the others can."""

    code = "file_trouble"

    def __init__(self, reason: str) -> None:
        super().__init__(reason, {"reason": reason})
        self.reason = reason


@dataclass(frozen=True)  # compared per file: dataclass's own, faster methods
class Stamp:
    """What a file looked like when it was stat'ed: a change moves at least one of these."""

    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, st: os.stat_result) -> Stamp:
        """The stamp of a stat result."""
        return cls(st.st_size, st.st_mtime_ns, st.st_ino)


@contextmanager
def file_trouble(doing: str) -> Iterator[None]:
    """Turn what can go wrong with one file's disk or bytes into :class:`FileTrouble`.

    ``doing`` ("hashed", "uploaded") names the step, for the reason line.
    """
    try:
        yield
    except FileTrouble:
        raise
    except FileNotFoundError:
        raise FileTrouble(DELETED) from None
    except IntegrityError as e:
        # The store checks every block against the hash taken at scan time:
        # a refusal means the bytes on disk are not the ones that were hashed.
        found = _STORE_CODE.search(e.message)
        why = found.group(0) if found else "its bytes did not match"
        raise FileTrouble(
            f"changed while it was {doing} (the store refused its bytes: {why})"
        ) from None
    except OSError as e:
        raise FileTrouble(f"cannot be read ({e.strerror or e})") from None


def still_as_hashed(file: Path, stamp: Stamp, doing: str) -> None:
    """Raise :class:`FileTrouble` unless ``file`` still has ``stamp``."""
    if Stamp.of(os.stat(file)) != stamp:
        raise FileTrouble(f"changed while it was {doing} (size or mtime moved)")


@contextmanager
def open_as_hashed(file: Path | str, stamp: Stamp | None, doing: str) -> Iterator[BinaryIO]:
    """Open ``file`` to read it, refusing it unless it is still the regular file of ``stamp``."""
    # O_NONBLOCK: a FIFO put in the file's place must be refused, not block the push.
    fd = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        st = os.fstat(fd)
        if not stat_mod.S_ISREG(st.st_mode):
            raise FileTrouble("cannot be read (not a regular file any more)")
        if stamp is not None and Stamp.of(st) != stamp:
            raise FileTrouble(f"changed before it was {doing} (size or mtime moved)")
        # Unbuffered: a buffered reader costs three more system calls per file (its
        # own fstat, an isatty ioctl, an lseek), and every read here is large anyway.
        f = os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise
    with f:
        yield f


class LeftOutFiles:
    """The files one push leaves out (the first reason given for a path is kept)."""

    def __init__(self, found: Iterable[LeftOut] = ()) -> None:
        self._reasons: dict[str, str] = {}
        for item in found:
            self.add(item.path, item.reason)

    def add(self, path: str, reason: str) -> None:
        """Leave ``path`` out, for ``reason``."""
        self._reasons.setdefault(path, reason)

    def __contains__(self, path: object) -> bool:
        return path in self._reasons

    def __bool__(self) -> bool:
        return bool(self._reasons)

    def paths(self) -> list[str]:
        """The paths left out, sorted."""
        return sorted(self._reasons)

    def still_on_disk(self) -> list[str]:
        """The paths left out for a reason other than their deletion, sorted."""
        return sorted(p for p, why in self._reasons.items() if why != DELETED)

    def without(self, changes: Mapping[str, V]) -> dict[str, V]:
        """``changes`` less the paths left out (nothing is known for sure about them now)."""
        return {p: c for p, c in changes.items() if p not in self._reasons}

    def listed(self) -> list[LeftOut]:
        """What was left out and why, by path."""
        return [LeftOut(p, self._reasons[p]) for p in self.paths()]
