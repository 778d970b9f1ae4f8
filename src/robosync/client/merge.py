"""Three-way merge of a project's files (pure: no I/O).

Inputs are the base manifest (the last version this folder synced), the local
changes against it and the remote changes against it (``changes?since=base``).
A change maps a path to its new :class:`Entry`, or to ``None`` for a deletion.
The result says what to commit on top of the remote head, what the folder must
take from the remote side, which local files move to a conflict copy, and a
report of every decision. Rules (DESIGN.md):

=================================================  ===============================
case                                               result
=================================================  ===============================
L == R, or only one side changed                   that side
both changed to different contents (incl. added)   policy; default keep-both: R keeps
                                                   the path, L is committed as
                                                   ``<stem>.conflict-<robot>-<UTC><ext>``
one side deleted, the other modified               keep the modified bytes
=================================================  ===============================
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

Policy = Literal["keep-both", "ours", "theirs", "newest"]
POLICIES: tuple[Policy, ...] = ("keep-both", "ours", "theirs", "newest")


@dataclass(frozen=True)
class Entry:
    """The content of a path: its digest and size."""

    digest: str
    size: int


Change = Entry | None  # None: the path is deleted


@dataclass(frozen=True)
class MergeNote:
    """One decision of a merge, for the report printed to the user."""

    path: str
    outcome: str  # remote | local | same | kept-both | ours | theirs | kept-modified
    detail: str = ""


@dataclass
class MergeResult:
    """What a merge decided.

    ``commit``: ops to commit on top of the remote head (``None`` = delete).
    ``take_remote``: paths whose local state must become the remote one.
    ``conflict_copies``: local file at key moves to the value (and is committed there).
    """

    commit: dict[str, Change] = field(default_factory=dict)
    take_remote: dict[str, Change] = field(default_factory=dict)
    conflict_copies: dict[str, str] = field(default_factory=dict)
    notes: list[MergeNote] = field(default_factory=list)

    @property
    def conflicts(self) -> list[MergeNote]:
        """Notes of paths that both sides changed differently."""
        return [n for n in self.notes if n.outcome in ("kept-both", "ours", "theirs")]


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def conflict_path(path: str, robot: str, when: datetime) -> str:
    """``dir/stem.conflict-<robot>-<UTC yyyymmddThhmmss><ext>`` for ``path``."""
    head, sep, name = path.rpartition("/")
    dot = name.rfind(".")
    stem, ext = (name[:dot], name[dot:]) if dot > 0 else (name, "")
    stamp = when.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    safe_robot = _UNSAFE.sub("_", robot).strip("._") or "robot"
    return f"{head}{sep}{stem}.conflict-{safe_robot}-{stamp}{ext}"


def _free_conflict_path(path: str, robot: str, when: datetime, taken: Callable[[str], bool]) -> str:
    candidate = conflict_path(path, robot, when)
    n = 2
    while taken(candidate):
        base = conflict_path(path, f"{robot}-{n}", when)
        candidate, n = base, n + 1
    return candidate


def merge(
    base: Mapping[str, Entry],
    local: Mapping[str, Change],
    remote: Mapping[str, Change],
    *,
    policy: Policy = "keep-both",
    robot: str = "robot",
    now: datetime | None = None,
    local_mtimes: Mapping[str, float] | None = None,
    remote_time: float | None = None,
    taken: Callable[[str], bool] = lambda p: False,
) -> MergeResult:
    """Merge ``local`` and ``remote`` changes made on top of ``base``.

    ``local_mtimes`` (seconds) and ``remote_time`` (seconds) are used by the
    ``newest`` policy; ``taken`` says whether a candidate conflict path is in use.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown merge policy {policy!r}; choose one of {', '.join(POLICIES)}")
    when = now or datetime.now(UTC)
    result = MergeResult()
    used: set[str] = set()

    def is_taken(p: str) -> bool:
        return p in used or p in base or p in local or p in remote or taken(p)

    for path in sorted(set(local) | set(remote)):
        b = base.get(path)
        in_l, in_r = path in local, path in remote
        lv = local[path] if in_l else b
        rv = remote[path] if in_r else b
        if lv == rv:
            if in_l and in_r:
                result.notes.append(MergeNote(path, "same", "both sides made the same change"))
            continue
        if lv == b:  # only the remote side changed
            result.take_remote[path] = rv
            result.notes.append(MergeNote(path, "remote", _describe(rv)))
        elif rv == b:  # only the local side changed
            result.commit[path] = lv
            result.notes.append(MergeNote(path, "local", _describe(lv)))
        elif lv is None:  # local deleted, remote modified: keep the bytes
            result.take_remote[path] = rv
            result.notes.append(
                MergeNote(path, "kept-modified", "deleted here, modified remotely: kept")
            )
        elif rv is None:  # remote deleted, local modified: keep the bytes
            result.commit[path] = lv
            result.notes.append(
                MergeNote(path, "kept-modified", "deleted remotely, modified here: kept")
            )
        else:
            _resolve_both_changed(
                result, path, lv, rv, policy, robot, when, local_mtimes, remote_time, is_taken, used
            )
    return result


def _resolve_both_changed(
    result: MergeResult,
    path: str,
    lv: Entry,
    rv: Entry,
    policy: Policy,
    robot: str,
    when: datetime,
    local_mtimes: Mapping[str, float] | None,
    remote_time: float | None,
    is_taken: Callable[[str], bool],
    used: set[str],
) -> None:
    if policy == "newest":
        local_t = (local_mtimes or {}).get(path)
        # Without both times there is nothing to compare: keep both, lose nothing.
        if local_t is None or remote_time is None:
            policy = "keep-both"
        else:
            policy = "ours" if local_t > remote_time else "theirs"
    if policy == "ours":
        result.commit[path] = lv
        result.notes.append(MergeNote(path, "ours", "both changed: kept this robot's version"))
    elif policy == "theirs":
        result.take_remote[path] = rv
        result.notes.append(MergeNote(path, "theirs", "both changed: took the remote version"))
    else:
        copy = _free_conflict_path(path, robot, when, is_taken)
        used.add(copy)
        result.take_remote[path] = rv
        result.conflict_copies[path] = copy
        result.commit[copy] = lv
        result.notes.append(
            MergeNote(path, "kept-both", f"both changed: this robot's version saved as {copy}")
        )


def _describe(change: Change) -> str:
    return "deleted" if change is None else f"{change.size} bytes"
