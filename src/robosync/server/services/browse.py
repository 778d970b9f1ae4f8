"""What the console shows of a project: folders, pages of files, a path's history, diffs.

Every query names the project and walks the ``(project_id, path)`` or
``(project_id, added_in/removed_in)`` indexes, so a page costs the same in a
project of ten files as in one of a million.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, and_, func, select, tuple_
from sqlalchemy.orm import Session, aliased

from robosync.errors import NotFound
from robosync.protocol import ProjectInfo
from robosync.server.db.models import File, Version
from robosync.server.services.manifests import live_at

PAGE_FILES = 60
MAX_FOLDERS = 500
DIFF_ROWS = 300
# Greater than any character of a path: the upper bound of a prefix's key range.
_PATH_END = "\U0010ffff"
CONFLICT_MARK = ".conflict-"


@dataclass(frozen=True)
class Entry:
    """A file of a version."""

    path: str
    digest: str
    size: int

    @property
    def name(self) -> str:
        """The last component of the path."""
        return self.path.rsplit("/", 1)[-1]

    @property
    def is_conflict_copy(self) -> bool:
        """Whether this is a merge's conflict copy (``*.conflict-<robot>-<time>.*``)."""
        return CONFLICT_MARK in self.name


@dataclass(frozen=True)
class FolderPage:
    """One page of a folder: its subfolders (first page only) and files by path."""

    folders: list[str]
    files: list[Entry]
    next_after: str | None


@dataclass(frozen=True)
class PathChange:
    """A version in which a path got new content or was deleted."""

    version: int
    digest: str | None  # None: deleted in this version
    size: int


@dataclass
class VersionDiff:
    """What a version changed against its parent (each list capped at :data:`DIFF_ROWS`)."""

    added: list[Entry] = field(default_factory=list)
    modified: list[tuple[Entry, Entry]] = field(default_factory=list)  # (before, after)
    deleted: list[Entry] = field(default_factory=list)
    truncated: bool = False


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _in_prefix(prefix: str) -> ColumnElement[bool]:
    return and_(File.path >= prefix, File.path < prefix + _PATH_END)


def _nested(prefix: str) -> ColumnElement[bool]:
    return File.path.like(_escape_like(prefix) + "%/%", escape="\\")


def subfolders(session: Session, project_id: int, version: int, prefix: str) -> list[str]:
    """Names of the folders directly inside ``prefix`` (``""`` or ``"a/b/"``) at ``version``.

    A skip scan: each step seeks the first nested path after the previous
    folder, so the cost grows with the number of folders, not of files.
    """
    names: list[str] = []
    after = prefix
    while len(names) < MAX_FOLDERS:
        path = session.scalar(
            select(File.path)
            .where(
                File.project_id == project_id,
                File.path > after,
                _in_prefix(prefix),
                _nested(prefix),
                live_at(version),
            )
            .order_by(File.path)
            .limit(1)
        )
        if path is None:
            break
        name = path[len(prefix) :].split("/", 1)[0]
        names.append(name)
        after = prefix + name + "/" + _PATH_END
    return names


def folder_page(
    session: Session,
    project_id: int,
    version: int,
    prefix: str,
    after: str | None = None,
    name_filter: str = "",
    limit: int = PAGE_FILES,
) -> FolderPage:
    """A page of files directly in ``prefix`` (or, with a filter, anywhere below it)."""
    query = (
        select(File.path, File.digest, File.size)
        .where(File.project_id == project_id, _in_prefix(prefix), live_at(version))
        .order_by(File.path)
        .limit(limit + 1)
    )
    if name_filter:
        query = query.where(File.path.ilike(f"%{_escape_like(name_filter)}%", escape="\\"))
    else:
        query = query.where(~_nested(prefix))
    if after is not None:
        query = query.where(File.path > after)
    rows = session.execute(query).all()
    files = [Entry(r.path, r.digest, r.size) for r in rows[:limit]]
    folders = []
    if after is None and not name_filter:
        folders = subfolders(session, project_id, version, prefix)
    next_after = files[-1].path if len(rows) > limit else None
    return FolderPage(folders, files, next_after)


def file_at(session: Session, project_id: int, version: int, path: str) -> Entry:
    """The file at ``path`` in ``version``; :class:`NotFound` if it has none."""
    row = session.execute(
        select(File.path, File.digest, File.size).where(
            File.project_id == project_id, File.path == path, live_at(version)
        )
    ).first()
    if row is None:
        raise NotFound(f"no file {path!r} in version {version}", {"path": path})
    return Entry(row.path, row.digest, row.size)


def path_history(session: Session, project_id: int, path: str) -> list[PathChange]:
    """The versions in which ``path`` got new content or was deleted, newest first."""
    rows = session.execute(
        select(File.digest, File.size, File.added_in, File.removed_in)
        .where(File.project_id == project_id, File.path == path)
        .order_by(File.added_in)
    ).all()
    changes: list[PathChange] = []
    for i, r in enumerate(rows):
        changes.append(PathChange(r.added_in, r.digest, r.size))
        reopened = i + 1 < len(rows) and rows[i + 1].added_in == r.removed_in
        if r.removed_in is not None and not reopened:
            changes.append(PathChange(r.removed_in, None, 0))
    return changes[::-1]


def modified_counts(session: Session, project_id: int, versions: list[int]) -> dict[int, int]:
    """Per version, how many paths it gave new content (rather than adding them)."""
    if not versions:
        return {}
    before = aliased(File)
    rows = session.execute(
        select(File.added_in, func.count())
        .join(
            before,
            and_(
                before.project_id == File.project_id,
                before.path == File.path,
                before.removed_in == File.added_in,
            ),
        )
        .where(File.project_id == project_id, File.added_in.in_(versions))
        .group_by(File.added_in)
    ).all()
    return {v: n for v, n in rows}


def version_diff(session: Session, project_id: int, number: int) -> VersionDiff:
    """What version ``number`` added, modified and deleted against ``number - 1``."""
    put_rows = session.execute(
        select(File.path, File.digest, File.size)
        .where(File.project_id == project_id, File.added_in == number)
        .order_by(File.path)
        .limit(DIFF_ROWS + 1)
    ).all()
    closed_rows = session.execute(
        select(File.path, File.digest, File.size)
        .where(File.project_id == project_id, File.removed_in == number)
        .order_by(File.path)
        .limit(DIFF_ROWS + 1)
    ).all()
    puts = {r.path: Entry(r.path, r.digest, r.size) for r in put_rows[:DIFF_ROWS]}
    closed = {r.path: Entry(r.path, r.digest, r.size) for r in closed_rows[:DIFF_ROWS]}
    diff = VersionDiff(truncated=len(put_rows) > DIFF_ROWS or len(closed_rows) > DIFF_ROWS)
    for path, entry in puts.items():
        if path in closed:
            diff.modified.append((closed[path], entry))
        else:
            diff.added.append(entry)
    diff.deleted = [e for p, e in closed.items() if p not in puts]
    return diff


def head_versions(session: Session, projects: list[ProjectInfo]) -> dict[int, Version]:
    """The head version row of each project (its last push: robot and time)."""
    if not projects:
        return {}
    keys = [(p.id, p.head_version) for p in projects]
    rows = session.scalars(
        select(Version).where(tuple_(Version.project_id, Version.number).in_(keys))
    )
    return {v.project_id: v for v in rows}
