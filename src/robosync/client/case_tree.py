"""The paths of a version indexed so that checkout clashes are found fast (pure).

A version can be checked out when no path is a folder of another (``cam0``
and ``cam0/x.jpg``) and no two paths differ only in case; both are judged on
:func:`robosync.paths.case_key`, so the version also fits a case-insensitive
file system. The server refuses such versions; the merge uses this to resolve
them before committing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from robosync.paths import case_key
from robosync.values import FrozenValue


def _folder_keys(key: str) -> Iterator[str]:
    cut = key.rfind("/")
    while cut > 0:
        yield key[:cut]
        cut = key.rfind("/", 0, cut)


@dataclass(frozen=True, eq=False, repr=False)
class Clash(FrozenValue):
    """Two paths that cannot both be checked out.

    ``twins``: ``first`` and ``second`` differ only in case. Otherwise ``first``
    is a file that ``second`` needs as a folder.
    """

    first: str
    second: str
    twins: bool


class CaseTree:
    """A set of paths with, per case key, its paths and the number of paths below it."""

    def __init__(self, paths: Iterable[str] = ()) -> None:
        self._paths: dict[str, set[str]] = {}
        self._below: dict[str, dict[str, None]] = {}
        for path in paths:
            self.add(path)

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and path in self._paths.get(case_key(path), ())

    def add(self, path: str) -> None:
        """Add ``path`` (a file)."""
        key = case_key(path)
        self._paths.setdefault(key, set()).add(path)
        for folder in _folder_keys(key):
            self._below.setdefault(folder, {})[path] = None

    def remove(self, path: str) -> None:
        """Remove ``path`` if present."""
        key = case_key(path)
        same = self._paths.get(key)
        if same is None or path not in same:
            return
        same.discard(path)
        if not same:
            del self._paths[key]
        for folder in _folder_keys(key):
            under = self._below[folder]
            del under[path]
            if not under:
                del self._below[folder]

    def clash(self, path: str) -> Clash | None:
        """The first clash of ``path`` (one of the two) with another path, if any."""
        key = case_key(path)
        # Folders first: a twin's conflict name lives in the twin's folder, which
        # must not be a file any more when the twin is renamed.
        for folder in _folder_keys(key):
            files = self._paths.get(folder)
            if files:
                return Clash(min(files), path, twins=False)
        under = self._below.get(key)
        if under:
            return Clash(path, next(iter(under)), twins=False)
        for twin in sorted(self._paths.get(key, ())):
            if twin != path:
                return Clash(path, twin, twins=True)
        return None

    def is_free(self, path: str) -> bool:
        """Whether ``path`` could be added without a clash."""
        key = case_key(path)
        return (
            key not in self._paths
            and key not in self._below
            and not any(f in self._paths for f in _folder_keys(key))
        )
