"""One ``__eq__``, ``__hash__`` and ``__repr__`` for the package's small dataclasses.

``dataclass`` compiles these methods anew for every class when its module is imported:
most of the ~1 ms each that the twenty classes a client command loads before doing
anything cost on a small machine (docs/PERFORMANCE.md). A class declared
``@dataclass(eq=False, repr=False)`` deriving from :class:`Value` (frozen:
``@dataclass(frozen=True, eq=False, repr=False)`` deriving from :class:`FrozenValue`)
takes them from here instead, with dataclass's meaning: equal to an object of its own
class whose compared fields are equal, shown by its shown fields, hashable (by its
compared fields) only when frozen. A call costs ~1.7x dataclass's own (~0.32 against
~0.19 µs for ``==``): a class compared once per file, as ``merge.Entry``, keeps those.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from operator import attrgetter
from typing import Any

_COMPARED: dict[type, Callable[[Any], Any]] = {}
_SHOWN: dict[type, tuple[str, ...]] = {}


def _compared(cls: type) -> Callable[[Any], Any]:
    """What instances of ``cls`` are compared and hashed by (their compared fields'
    values): made on first use and kept in ``_COMPARED``, where callers look first."""
    names = [f.name for f in dataclasses.fields(cls) if f.compare]
    key = _COMPARED[cls] = attrgetter(*names) if names else (lambda obj: ())
    return key


def _shown(cls: type) -> tuple[str, ...]:
    names = _SHOWN.get(cls)
    if names is None:
        names = _SHOWN[cls] = tuple(f.name for f in dataclasses.fields(cls) if f.repr)
    return names


class _Fields:
    """Equality and display by a dataclass's fields."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        cls = self.__class__
        if other.__class__ is not cls:
            return NotImplemented
        key = _COMPARED.get(cls) or _compared(cls)
        return key(self) == key(other)

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in _shown(self.__class__))
        return f"{self.__class__.__qualname__}({shown})"


class Value(_Fields):
    """The base of a mutable dataclass declared with ``eq=False, repr=False``: unhashable,
    as with dataclass's own ``__eq__``."""

    __slots__ = ()
    __hash__ = None  # type: ignore[assignment]


class FrozenValue(_Fields):
    """The base of a frozen dataclass declared with ``eq=False, repr=False``: hashable."""

    __slots__ = ()

    def __hash__(self) -> int:
        cls = self.__class__
        return hash((_COMPARED.get(cls) or _compared(cls))(self))
