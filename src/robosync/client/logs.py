"""The client's log, with ``logging`` loaded by its first line.

Only a retry (:mod:`robosync.client.retry`) and the agent log; a command that needs
neither, such as a push with nothing to send, does not import ``logging`` (with
``traceback`` and ``string``, ~4 ms of that push's ~100, docs/PERFORMANCE.md). The
command line asks for its lines on stderr as ``robosync: LEVEL: message``
(:func:`to_stderr`); used as a library, the client leaves ``logging``'s set-up to
the program.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging

FORMAT = "robosync: %(levelname)s: %(message)s"
_DEBUG, _WARNING = 10, 30  # logging.DEBUG, logging.WARNING, without loading it
# The level the command line asked for, until the first line sets logging up.
_asked: int | None = None


def to_stderr(debug: bool) -> None:
    """Send log lines to stderr: every one with ``debug`` (set up now), else warnings
    and worse (set up by the first line logged)."""
    global _asked
    _asked = _DEBUG if debug else _WARNING
    if debug:
        logger("robosync")


def logger(name: str) -> logging.Logger:
    """The logger ``name``; the first one asked for after :func:`to_stderr` sets up stderr."""
    import logging

    global _asked
    asked, _asked = _asked, None
    if asked is not None:
        logging.basicConfig(level=asked, format=FORMAT)
        if asked > _DEBUG:
            logging.getLogger("httpx").setLevel(logging.WARNING)
    return logging.getLogger(name)
