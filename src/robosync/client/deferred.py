"""Modules loaded, and objects made, on first use, so a command that needs no server
starts fast.

``httpx`` (with its TLS and HTTP/2 machinery; only needed behind a proxy, for https, or
to report a failed connection) and ``robosync.client.wire`` (the API's messages: ~10-20 ms
of dataclass building, only needed once the server is asked something) would be a large
part of the client's import time. This module puts a placeholder for each into
``sys.modules`` (the standard library's :class:`importlib.util.LazyLoader`); the real
module is executed the first time one of its attributes is read.

Reading any attribute loads it, and so does an ``import`` statement naming it (the
import system reads ``__spec__``). Client modules therefore write
``from robosync.client.deferred import httpx`` (or ``wire``), then ``httpx.X`` where they
use it. A module that was already imported is left as it is.

:class:`OnFirstUse` holds an object that is costly to make (an HTTP connection pool loads
the TLS trust store) and made the first time it is asked for, once even when many
transfer threads ask at the same moment.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Generic, TypeVar

T = TypeVar("T")


def defer(name: str) -> ModuleType:
    """``sys.modules[name]``, or a placeholder there that loads ``name`` when first used."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return module


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

    from robosync.client import wire
else:
    httpx = defer("httpx")
    wire = defer("robosync.client.wire")

__all__ = ["OnFirstUse", "defer", "httpx", "wire"]
