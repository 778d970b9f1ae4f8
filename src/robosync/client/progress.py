"""Progress reporting: what long operations tell whoever displays them.

The library calls a :class:`Progress`; the CLI supplies one that draws a line on
a terminal. Methods may be called from worker threads.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Receiver of progress events."""

    def start(self, phase: str, files: int, total_bytes: int) -> None:
        """A phase (``hash``, ``upload``, ``download``) begins with this much work."""
        ...

    def advance(self, files: int = 0, nbytes: int = 0) -> None:
        """Some work of the current phase is done."""
        ...

    def finish(self) -> None:
        """The current phase is over."""
        ...


class NoProgress:
    """A :class:`Progress` that shows nothing."""

    def start(self, phase: str, files: int, total_bytes: int) -> None:
        """Ignore."""

    def advance(self, files: int = 0, nbytes: int = 0) -> None:
        """Ignore."""

    def finish(self) -> None:
        """Ignore."""
