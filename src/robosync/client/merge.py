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
a file where the merged version needs a folder     the folder stays, the file moves to
                                                   its conflict name (either side)
case twins                                         as both added (policy; L moves)
=================================================  ===============================

The merged version must be checkable out (the server refuses it otherwise):
see ``_resolve_clashes``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from robosync.client.case_tree import CaseTree, Clash
from robosync.client.conflict_names import conflict_path
from robosync.values import FrozenValue, Value

Policy = Literal["keep-both", "ours", "theirs", "newest"]
POLICIES: tuple[Policy, ...] = ("keep-both", "ours", "theirs", "newest")


@dataclass(frozen=True)  # compared per file: dataclass's own, faster methods
class Entry:
    """The content of a path: its digest and size."""

    digest: str
    size: int


Change = Entry | None  # None: the path is deleted


@dataclass(frozen=True, eq=False, repr=False)
class MergeNote(FrozenValue):
    """One decision of a merge, for the report printed to the user."""

    path: str
    outcome: str  # remote | local | same | kept-both | ours | theirs | kept-modified
    detail: str = ""


@dataclass(eq=False, repr=False)
class MergeResult(Value):
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


def _free_conflict_path(path: str, robot: str, when: datetime, taken: Callable[[str], bool]) -> str:
    n = 1
    candidate = conflict_path(path, robot, when)
    while taken(candidate):
        n += 1
        candidate = conflict_path(path, robot, when, n)
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
    _resolve_clashes(
        result,
        _Sides(base, local, remote, local_mtimes or {}, remote_time),
        policy,
        lambda path, taken_too: _free_conflict_path(path, robot, when, taken_too),
        is_taken,
    )
    return result


@dataclass(frozen=True, eq=False, repr=False)
class _Sides(FrozenValue):
    base: Mapping[str, Entry]
    local: Mapping[str, Change]
    remote: Mapping[str, Change]
    local_mtimes: Mapping[str, float]
    remote_time: float | None

    def head(self, path: str) -> Change:
        """The path on the server before the commit."""
        return self.remote[path] if path in self.remote else self.base.get(path)


def _resolve_clashes(
    result: MergeResult,
    sides: _Sides,
    policy: Policy,
    free_name: Callable[[str, Callable[[str], bool]], str],
    is_taken: Callable[[str], bool],
) -> None:
    """Make the merged version checkable out: no file where a folder is, no case twins.

    Each clash is resolved like an add/add conflict: a file against a folder
    keeps the folder and moves the file to its conflict name; case twins
    follow ``policy`` with the local path as "ours". The base is clash-free
    (the server refuses such versions), so only changed paths can clash.
    """
    final = dict(sides.base)
    for path, change in [*sides.remote.items(), *result.commit.items()]:
        if change is None:
            final.pop(path, None)
        else:
            final[path] = change
    tree = CaseTree(final)
    pending = sorted(p for p in {*sides.local, *sides.remote, *result.commit} if p in final)
    while pending:
        clash = tree.clash(pending[-1]) if pending[-1] in tree else None
        if clash is None:
            pending.pop()
            continue
        loser, keep_it = _loser(result, sides, clash, policy)
        final.pop(loser)
        tree.remove(loser)
        if not keep_it:  # `ours` or `theirs` dropped one of the twins
            after = result.commit[loser] if loser in result.commit else sides.head(loser)
            if after is not None:
                final[loser] = after
                tree.add(loser)
            continue
        copy = free_name(loser, lambda p: is_taken(p) or not tree.is_free(p))
        entry = result.commit.get(loser) or sides.head(loser)
        assert entry is not None
        _move(result, sides, loser, copy, entry)
        tree.add(copy)
        final[copy] = entry
        other = clash.second if loser == clash.first else clash.first
        detail = (
            f"differs only in case from {other}"
            if clash.twins
            else f"a file where {clash.second} needs a folder"
        )
        # This note replaces the plain "local"/"remote" one of the path.
        result.notes = [
            n for n in result.notes if n.path != loser or n.outcome not in ("local", "remote")
        ]
        result.notes.append(MergeNote(loser, "kept-both", f"{detail}: saved as {copy}"))


def _is_ours(result: MergeResult, path: str) -> bool:
    return result.commit.get(path) is not None


def _loser(result: MergeResult, sides: _Sides, clash: Clash, policy: Policy) -> tuple[str, bool]:
    """The path that gives way, and whether it moves to its conflict name (else: dropped).

    A twin is dropped only by the ``ours`` and ``theirs`` policies.
    """
    a, b = clash.first, clash.second
    if not clash.twins:
        return a, True  # the file; its folder stays
    if _is_ours(result, a) == _is_ours(result, b):
        # Both from one side: keep the one the base already had, else the first by name.
        if (a in sides.base) != (b in sides.base):
            return (b if a in sides.base else a), True
        return max(a, b), True
    ours, theirs = (a, b) if _is_ours(result, a) else (b, a)
    if policy == "newest":
        local_t = sides.local_mtimes.get(ours)
        if local_t is None or sides.remote_time is None:
            policy = "keep-both"
        else:
            policy = "ours" if local_t > sides.remote_time else "theirs"
    if policy == "ours":
        result.commit[theirs] = None
        result.take_remote[theirs] = None
        result.notes.append(MergeNote(theirs, "ours", f"differs only in case from {ours}: removed"))
        return theirs, False
    if policy == "theirs":
        del result.commit[ours]
        result.take_remote[ours] = sides.head(ours)
        result.notes.append(
            MergeNote(ours, "theirs", f"differs only in case from {theirs}: took the remote side")
        )
        return ours, False
    return ours, True


def _move(result: MergeResult, sides: _Sides, path: str, copy: str, entry: Entry) -> None:
    """Commit ``entry`` at ``copy`` instead of at ``path``; the folder moves it there too."""
    result.conflict_copies[path] = copy
    result.commit[copy] = entry
    if _is_ours(result, path):
        del result.commit[path]
        if sides.head(path) is not None:
            result.commit[path] = None
        return
    # The server's file moves: delete it there, and take the copy like a remote change.
    result.commit[path] = None
    result.take_remote.pop(path, None)
    result.take_remote[copy] = entry


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
