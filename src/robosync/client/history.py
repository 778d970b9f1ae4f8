"""Read-only views of a project's versions: ``ls``, ``get`` and ``diff``.

Nothing here changes a project folder: ``ls`` and ``diff`` read manifests
(and, for ``diff`` against the folder, the index after a scan), ``get``
writes one verified file wherever it is asked to, without a clone.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from robosync.client.api import Api
from robosync.client.cmdpaths import check_selectors, matches
from robosync.client.deferred import wire
from robosync.client.merge import Entry
from robosync.client.progress import NoProgress, Progress
from robosync.client.settings import ClientSettings
from robosync.client.teams import find_project
from robosync.client.transfer import DownloadTarget, Transfer
from robosync.errors import InvalidInput, NotFound
from robosync.paths import normalize_path, path_problem


@dataclass(frozen=True)
class Listing:
    """The files of one version under some paths."""

    version: int
    files: list[wire.ManifestEntry]

    @property
    def total_bytes(self) -> int:
        """Sum of the listed sizes."""
        return sum(f.size for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "version": self.version,
            "files": [wire.plain(f) for f in self.files],
            "total_bytes": self.total_bytes,
        }


@dataclass
class Diff:
    """What changed from one side to the other: each list is ``(path, size)`` by path."""

    old: str  # "v3", or "local"
    new: str
    added: list[tuple[str, int]] = field(default_factory=list)
    modified: list[tuple[str, int]] = field(default_factory=list)
    deleted: list[tuple[str, int]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.modified or self.deleted)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def list_version(
    api: Api, project_id: int, version: int | None, paths: Iterable[str] = ()
) -> Listing:
    """The files of ``version`` (head if ``None``) under ``paths`` (all if none), by path."""
    selectors = check_selectors(paths) or None
    with api.manifest(project_id, version) as (v, entries):
        files = [e for e in entries if matches(e.path, selectors)]
    if selectors and not files:
        raise NotFound(
            f"nothing under {', '.join(s or '.' for s in selectors)} in version {v}; "
            "see `robosync ls` and `robosync log`"
        )
    return Listing(v, sorted(files, key=lambda e: e.path))


def manifest_of(api: Api, project_id: int, version: int | None) -> tuple[int, dict[str, Entry]]:
    """``(version, path -> entry)`` of a version (head if ``None``)."""
    with api.manifest(project_id, version) as (v, entries):
        return v, {e.path: Entry(e.digest, e.size) for e in entries}


def diff_manifests(
    old_label: str, old: Mapping[str, Entry], new_label: str, new: Mapping[str, Entry]
) -> Diff:
    """What changed from ``old`` to ``new`` (pure)."""
    d = Diff(old_label, new_label)
    for path in sorted(set(old) | set(new)):
        before, after = old.get(path), new.get(path)
        if before is None and after is not None:
            d.added.append((path, after.size))
        elif after is None and before is not None:
            d.deleted.append((path, before.size))
        elif before != after and after is not None:
            d.modified.append((path, after.size))
    return d


def get_file(
    name: str,
    path: str,
    output: str | os.PathLike[str] | None = None,
    *,
    version: int | None = None,
    settings: ClientSettings | None = None,
    progress: Progress | None = None,
    stdout: BinaryIO | None = None,
) -> tuple[int, wire.ManifestEntry, Path | None]:
    """Download ``path`` of project ``name`` (or ``OWNER/NAME``) at ``version``, verified.

    Writes ``output`` (default: the file's name in the current folder), or
    ``stdout`` when ``output`` is ``"-"`` (only once every byte is verified).
    Returns ``(version, entry, written path or None)``.
    """
    settings = settings or ClientSettings.from_env()
    rel = normalize_path(path.strip().strip("/"))
    problem = path_problem(rel)
    if problem is not None:
        raise InvalidInput(f"{path!r} is not a project path: {problem}", {"path": path})
    url = settings.server_url()
    api = Api(url, settings.token_for(url))
    try:
        project_id = find_project(api, name).id
        entry: wire.ManifestEntry | None = None
        with api.manifest(project_id, version) as (v, entries):
            for e in entries:
                if e.path == rel:
                    entry = e
        if entry is None:
            raise NotFound(
                f"{rel} is not in version {v} of {name}; "
                "see `robosync ls --version N` in a clone, or `robosync log`"
            )
        if output is not None and str(output) == "-":
            _to_stream(api, project_id, entry, stdout or sys.stdout.buffer, progress)
            return v, entry, None
        dest = Path(output if output is not None else Path(rel).name).resolve()
        if dest.is_dir():
            dest = dest / Path(rel).name
        _download_to(api, project_id, entry, dest, progress)
        return v, entry, dest
    finally:
        api.close()


def _download_to(
    api: Api, project_id: int, entry: wire.ManifestEntry, dest: Path, progress: Progress | None
) -> None:
    transfer = Transfer(api, jobs=1, progress=progress or NoProgress())
    try:
        target = DownloadTarget(dest.name, entry.digest, entry.size)
        _, errors = transfer.download(project_id, dest.parent, [target], lambda _digest: None)
    finally:
        transfer.close()
    if errors:
        raise errors[0]


def _to_stream(
    api: Api,
    project_id: int,
    entry: wire.ManifestEntry,
    out: BinaryIO,
    progress: Progress | None,
) -> None:
    with tempfile.TemporaryDirectory(prefix="robosync-get-") as tmp:
        path = Path(tmp) / "blob"
        _download_to(api, project_id, entry, path, progress)
        with open(path, "rb") as f:
            shutil.copyfileobj(f, out)
        out.flush()
