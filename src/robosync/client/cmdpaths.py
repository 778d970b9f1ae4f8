"""Paths typed on the command line, turned into project paths (like git).

A relative path is taken from the current folder (or ``-C DIR``), an absolute
one must lie inside the project folder; ``.`` at the top (or the top folder
itself) stands for the whole project, written ``""``. A path outside the
folder is one clear error, never an "invalid path".
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from robosync.errors import InvalidInput
from robosync.paths import normalize_path, path_problem

WHOLE_PROJECT = ""


def _inside(root: Path, candidate: Path) -> str | None:
    try:
        rel = candidate.relative_to(root)
    except ValueError:
        return None
    return rel.as_posix()


def to_project_path(root: Path, arg: str, cwd: Path) -> str:
    """The project path ``arg`` names, seen from ``cwd``; ``""`` is the whole project."""
    given = Path(arg).expanduser()
    absolute = Path(os.path.normpath(given if given.is_absolute() else cwd / given))
    rel = _inside(root, absolute)
    if rel is None:
        # The folder may be reached through a symbolic link (/tmp -> /private/tmp).
        rel = _inside(root, absolute.resolve())
    if rel is None:
        raise InvalidInput(
            f"{arg} is outside the project folder {root}; give a path inside it",
            {"path": arg, "project": str(root)},
        )
    if rel in ("", "."):
        return WHOLE_PROJECT
    rel = normalize_path(rel)
    problem = path_problem(rel)
    if problem is not None:
        raise InvalidInput(f"{arg} cannot be a project path: {problem}", {"path": arg})
    return rel


def to_project_paths(root: Path, args: Iterable[str], cwd: Path) -> list[str]:
    """:func:`to_project_path` of each argument."""
    return [to_project_path(root, a, cwd) for a in args]


def selector_problem(path: str) -> str | None:
    """Why a project path given to rm/evict/fetch/restore/ls is not usable, else ``None``."""
    if path == WHOLE_PROJECT:
        return None
    return path_problem(path)


def check_selectors(paths: Iterable[str]) -> list[str]:
    """Project paths (``""`` = everything) with trailing slashes dropped, NFC; checked."""
    out = []
    for p in paths:
        sel = normalize_path(p.strip().rstrip("/"))
        if sel == ".":
            sel = WHOLE_PROJECT
        problem = selector_problem(sel)
        if problem is not None:
            raise InvalidInput(f"{p!r} is not a project path: {problem}", {"path": p})
        out.append(sel)
    return out


def matches(path: str, selectors: list[str] | None) -> bool:
    """Whether ``path`` is one of ``selectors`` or inside one (no selectors: everything)."""
    if not selectors:
        return True
    return any(not s or path == s or path.startswith(s + "/") for s in selectors)
