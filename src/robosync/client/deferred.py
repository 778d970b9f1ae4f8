"""Modules loaded, and objects made, on first use, so a command that needs no server
starts fast.

``httpx`` (with its TLS and HTTP/2 machinery; only needed behind a proxy, for https, or
to report a failed connection) and ``robosync.client.wire`` (the API's messages: ~10-20 ms
of dataclass building, only needed once the server is asked something) would be a large
part of the client's import time. :func:`defer` gives a stand-in for each (a
:class:`Deferred`); the real module is imported the first time one of the stand-in's
attributes is read, and its names are then copied onto the stand-in, so later reads cost
what a module's do.

Client modules write ``from robosync.client.deferred import httpx`` (or ``wire``), then
``httpx.X`` where they use it. ``robosync.client.transfer`` and ``robosync.client.history``
(the blob transfers and the version views, with their threads, shutil and tempfile) are
deferred the same way for the project and the command line: a push with nothing to
send uses neither. Unlike the standard library's ``LazyLoader`` (used here
before), the first load is safe from many threads at once: the real import goes through
the import system, under a lock, and a thread that reads a name meanwhile waits for it.
With ``LazyLoader`` on Python 3.11, transfer threads that all failed at once and all
reached for ``httpx.TransportError`` met a half-executed module ("module 'httpx' has no
attribute 'TransportError'").
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

T = TypeVar("T")
# Re-entrant: a module being loaded may itself read a deferred name.
_LOADING = threading.RLock()


class Deferred(ModuleType):
    """A stand-in for module ``__name__`` that imports it when a name is first read."""

    def __getattr__(self, attr: str) -> Any:
        # Only called for names not (yet) on the stand-in.
        with _LOADING:
            module = importlib.import_module(self.__name__)
            vars(self).update(vars(module))
        return getattr(module, attr)


def defer(name: str) -> ModuleType:
    """Module ``name`` if it is imported already, else a stand-in that imports it when one
    of its names is first read."""
    return sys.modules.get(name) or Deferred(name)


class OnFirstUse(Generic[T]):
    """An object made by ``make`` the first time :meth:`get` is called, and only once."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._value: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        """The object, made now if this is the first call."""
        value = self._value
        if value is None:
            with self._lock:
                value = self._value
                if value is None:
                    value = self._value = self._make()
        return value

    @property
    def made(self) -> T | None:
        """The object if it was made, else ``None`` (to close only what exists)."""
        return self._value


if TYPE_CHECKING:
    import httpx

    from robosync.client import history, transfer, wire
else:
    httpx = defer("httpx")
    wire = defer("robosync.client.wire")
    history = defer("robosync.client.history")
    transfer = defer("robosync.client.transfer")

__all__ = ["OnFirstUse", "defer", "history", "httpx", "transfer", "wire"]
