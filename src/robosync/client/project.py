"""The public Python API of a robosync project folder.

>>> p = Project.open("/data/run42")                       # doctest: +SKIP
>>> p.save_image("cam0/000001.png", png_bytes, meta={"exposure": 0.01})  # doctest: +SKIP
>>> p.push()                                               # doctest: +SKIP

Every command that changes the folder holds the folder lock. Push and pull
never lose an image: a path both sides changed is kept twice (default
policy), a deletion never wins over a modification, and files are written
only after their bytes were verified.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from robosync.client import confined
from robosync.client.api import Api
from robosync.client.bandwidth import process_limiter
from robosync.client.cmdpaths import check_selectors, matches
from robosync.client.deferred import history, httpx, wire
from robosync.client.deferred import transfer as transfers
from robosync.client.index import (
    DIRNAME,
    EVICTED,
    LANDING,
    LOCAL,
    REMOTE,
    UNHASHED,
    FileRow,
    Index,
    LocalDelta,
    ProjectConfig,
)
from robosync.client.leftout import DELETED, LeftOut, LeftOutFiles, Stamp
from robosync.client.lock import ProjectLocked, folder_lock
from robosync.client.merge import Change, Entry, MergeNote, MergeResult, Policy, merge
from robosync.client.progress import NoProgress, Progress
from robosync.client.retry import Retrying
from robosync.client.scan import ScanReport, disk_name, disk_path, scan
from robosync.client.settings import DEFAULT_JOBS, ClientSettings
from robosync.client.teams import find_project
from robosync.errors import (
    AlreadyExists,
    ConflictError,
    InvalidInput,
    MissingBlobs,
    NotFound,
    RobosyncError,
    Unavailable,
    Unprocessable,
)
from robosync.paths import normalize_path, validate_path
from robosync.values import Value

if TYPE_CHECKING:
    from robosync.client.history import Diff, Listing
    from robosync.client.transfer import DownloadTarget, Transfer, TransferStats, Written

COMMIT_ATTEMPTS = 10
# Rounds of re-uploading blobs a commit found missing (deleted by garbage
# collection or an operator between upload and commit) before giving up.
REUPLOAD_ROUNDS = 3
# Rounds of resolving paths the server refused as not checkable out together.
CLASH_ROUNDS = 2
META_SUFFIX = ".meta.json"
# `status` asks the server for its head once, this long at most: it must answer
# promptly with no server at all.
REMOTE_STATUS_TIMEOUT = 2.0


class NotAProject(RobosyncError):
    """The folder (and none of its parents) is a robosync project."""

    status = 404
    code = "not_a_project"


# --- results ------------------------------------------------------------------


@dataclass(eq=False, repr=False)
class PushResult(Value):
    """What a push did."""

    version: int
    committed: bool
    added: int = 0
    modified: int = 0
    deleted: int = 0
    hashed: int = 0
    blobs: int = 0
    already_present: int = 0
    uploaded_blobs: int = 0
    parts_sent: int = 0
    parts_skipped: int = 0
    bytes_sent: int = 0
    commit_attempts: int = 0
    # Files other robots changed that a merging push recorded but did not
    # download (a push never spends bandwidth on them): `pull` brings them.
    not_downloaded: int = 0
    merged: list[MergeNote] = field(default_factory=list)
    invalid: list[tuple[str, str]] = field(default_factory=list)
    # Files that changed, vanished or could not be read during this push: not
    # in this commit (everything else is), picked up again by the next push.
    left_out: list[LeftOut] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(eq=False, repr=False)
class PullResult(Value):
    """What a pull (or clone, fetch, restore) did."""

    version: int
    downloaded: int = 0
    copied: int = 0
    bytes_received: int = 0
    removed: int = 0
    merged: list[MergeNote] = field(default_factory=list)
    invalid: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(eq=False, repr=False)
class Status(Value):
    """Local changes against the last synced version, and where the server is."""

    base_version: int
    head_version: int | None
    added: list[str]
    modified: list[str]
    deleted: list[str]
    evicted: list[str]
    remote_only: list[str]
    invalid: list[tuple[str, str]]
    # Changing, vanished or unreadable right now: a push would leave them out.
    left_out: list[LeftOut] = field(default_factory=list)
    remote_error: str | None = None  # why head_version is unknown

    @property
    def server_moved(self) -> bool:
        """Whether the server has versions this folder has not pulled."""
        return self.head_version is not None and self.head_version > self.base_version

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {**asdict(self), "server_moved": self.server_moved}


@dataclass(eq=False, repr=False)
class EvictResult(Value):
    """Files whose disk was freed, and files that were kept and why."""

    evicted: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    kept: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


# --- helpers ------------------------------------------------------------------


def find_root(start: str | os.PathLike[str]) -> Path:
    """The project folder containing ``start`` (itself or a parent)."""
    here = Path(start).resolve()
    for candidate in (here, *here.parents):
        if (candidate / DIRNAME / "config.json").is_file():
            return candidate
    raise NotAProject(
        f"{here} is not in a robosync project; "
        "run `robosync init NAME` or `robosync clone NAME DIR`"
    )


def connect(
    settings: ClientSettings,
    server: str,
    token: str | None = None,
    *,
    retrying: Retrying | None = None,
) -> Api:
    """A session with ``server`` under ``settings`` (token, bandwidth cap)."""
    return Api(
        server,
        settings.token_for(server, token),
        retrying=retrying,
        limiter=process_limiter(settings.bwlimit),
    )


def write_atomically(dest: Path, source: bytes | bytearray | memoryview | IO[bytes]) -> None:
    """Write ``dest`` (a file the user named) through a temp file beside it, fsync'ed, renamed."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    confined.write_file(dest.parent, dest.name, confined.filler(source))


def _ops(changes: Mapping[str, Change]) -> Iterator[wire.PutOp | wire.DeleteOp]:
    for path in sorted(changes):
        c = changes[path]
        if c is None:
            yield wire.DeleteOp(path=path)
        else:
            yield wire.PutOp(path=path, digest=c.digest, size=c.size)


# --- the project --------------------------------------------------------------


class Project:
    """A project folder bound to its server project."""

    def __init__(
        self, root: Path, config: ProjectConfig, api: Api, robot: str | None = None
    ) -> None:
        self.root = root
        self.config = config
        self.api = api
        self.index = Index(root)
        # The one rule (settings.robot_name): ROBOSYNC_ROBOT wins, else the
        # name saved in the folder by init/clone (--robot, else the host name).
        self.robot = robot or config.robot

    # --- opening ----------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] = ".",
        *,
        token: str | None = None,
        settings: ClientSettings | None = None,
        retrying: Retrying | None = None,
    ) -> Project:
        """Open the project folder containing ``path``."""
        settings = settings or ClientSettings.from_env()
        root = find_root(path)
        config = ProjectConfig.load(root)
        server = settings.server or config.server
        return cls(
            root, config, connect(settings, server, token, retrying=retrying), settings.robot
        )

    @classmethod
    def init(
        cls,
        name: str,
        path: str | os.PathLike[str] = ".",
        *,
        server: str | None = None,
        token: str | None = None,
        robot: str | None = None,
        settings: ClientSettings | None = None,
    ) -> Project:
        """Create project ``name`` on the server; ``path`` (existing files adopted) becomes it."""
        settings = settings or ClientSettings.from_env()
        root = Path(path).resolve()
        if (root / DIRNAME / "config.json").exists():
            raise AlreadyExists(f"{root} is already a robosync project")
        url = settings.server_url(server)
        api = connect(settings, url, token)
        try:
            info = api.create_project(name)
        except AlreadyExists as e:
            api.close()
            raise AlreadyExists(
                f"project {name!r} already exists on {url}; use `robosync clone {name} DIR`"
            ) from e
        return cls._create_folder(root, url, info, settings.robot_name(robot), api)

    @classmethod
    def _create_folder(
        cls, root: Path, server: str, info: wire.ProjectInfo, robot: str, api: Api
    ) -> Project:
        (root / DIRNAME).mkdir(parents=True, exist_ok=True)
        config = ProjectConfig(server, info.id, info.name, robot)
        config.save(root)
        return cls(root, config, api)

    def close(self) -> None:
        """Release the index and the connections."""
        self.index.close()
        self.api.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with folder_lock(self.root / DIRNAME):
            yield

    # --- capture ----------------------------------------------------------

    def save_image(
        self,
        relpath: str,
        data_or_file: bytes | bytearray | memoryview | str | os.PathLike[str] | IO[bytes],
        meta: Mapping[str, Any] | None = None,
    ) -> Path:
        """Write an image into the project atomically (temp file, fsync, rename).

        ``data_or_file`` is the bytes, a path of a file to copy, or a binary
        file object. ``meta`` is saved next to the image as
        ``<relpath>.meta.json`` (also atomically), so it is versioned and
        synced with the image.
        """
        rel = validate_path(normalize_path(relpath))
        if isinstance(data_or_file, str | os.PathLike):
            with open(data_or_file, "rb") as f:
                confined.write_file(self.root, rel, confined.filler(f))
        else:
            confined.write_file(self.root, rel, confined.filler(data_or_file))
        if meta is not None:
            body = json.dumps(dict(meta), indent=2, sort_keys=True, default=str).encode()
            confined.write_file(self.root, rel + META_SUFFIX, confined.filler(body + b"\n"))
        return self.root / rel

    # --- scan & status ----------------------------------------------------

    def _scan(self, progress: Progress, settle_seconds: float = 0.0) -> ScanReport:
        progress.start("scan", 0, 0)
        try:
            return scan(
                self.index,
                on_hashed=lambda n: progress.advance(files=1, nbytes=n),
                settle_seconds=settle_seconds,
            )
        finally:
            progress.finish()

    def status(self, *, remote: bool = True, progress: Progress | None = None) -> Status:
        """Local changes, and the server's head if it answers within ``REMOTE_STATUS_TIMEOUT``.

        Works with no server: the remote side is then unknown (``head_version``
        ``None``, ``remote_error`` says why). While another command (the agent)
        holds the folder, the index is read as that command keeps it, unscanned.
        """
        try:
            with self._locked():
                report = self._scan(progress or NoProgress())
        except ProjectLocked:
            report = ScanReport()
        delta = self.index.local_delta()
        head, remote_error = self._head_now() if remote else (None, None)
        return Status(
            base_version=self.index.base_version,
            head_version=head,
            added=sorted(delta.added),
            modified=sorted(delta.modified),
            deleted=delta.deleted,
            evicted=[r.path for r in self.index.paths_in_state(EVICTED)],
            remote_only=[r.path for r in self.index.paths_in_state(REMOTE)],
            invalid=report.invalid,
            left_out=report.left_out,
            remote_error=remote_error,
        )

    def _head_now(self) -> tuple[int | None, str | None]:
        """The server's head version, or ``None`` and why it is unknown (one quick attempt)."""
        try:
            info = self._follow_server(quick=True)
        except httpx.HTTPError as e:
            return None, f"server at {self.api.server} unreachable ({str(e) or type(e).__name__})"
        except RobosyncError as e:
            return None, e.message
        return info.head_version, None

    def log(self) -> list[wire.VersionInfo]:
        """The project's history, newest first."""
        return self.api.versions(self.config.project_id).versions

    def info(self) -> wire.ProjectInfo:
        """The server's view of the project."""
        return self._follow_server()

    def _follow_server(self, *, quick: bool = False) -> wire.ProjectInfo:
        """The server's view of the project; a rename there is adopted here (the id stays).

        ``quick``: one attempt of at most ``REMOTE_STATUS_TIMEOUT`` (for ``status``).
        """
        pid = self.config.project_id
        info = self.api.project_once(pid, REMOTE_STATUS_TIMEOUT) if quick else self.api.project(pid)
        if info.name != self.config.project_name:
            self.config = replace(self.config, project_name=info.name)
            self.config.save(self.root)
        return info

    # --- history (read-only; the work is in history.py) ----------------------

    def ls(self, paths: Iterable[str] = (), version: int | None = None) -> Listing:
        """The files of ``version`` (head if ``None``) under project ``paths`` (all if none)."""
        return history.list_version(self.api, self.config.project_id, version, paths)

    def diff(
        self,
        old: int | None = None,
        new: int | None = None,
        *,
        progress: Progress | None = None,
    ) -> Diff:
        """What changed from version ``old`` (default head) to ``new`` (default: the folder)."""
        old_v, old_files = history.manifest_of(self.api, self.config.project_id, old)
        if new is not None:
            new_v, new_files = history.manifest_of(self.api, self.config.project_id, new)
            return history.diff_manifests(f"v{old_v}", old_files, f"v{new_v}", new_files)
        with self._locked():
            self._scan(progress or NoProgress())
        folder = {r.path: r.entry for r in self.index.file_rows()}
        return history.diff_manifests(f"v{old_v}", old_files, "folder", folder)

    # --- push -------------------------------------------------------------

    def push(
        self,
        jobs: int = DEFAULT_JOBS,
        policy: Policy = "keep-both",
        message: str = "",
        *,
        progress: Progress | None = None,
        settle_seconds: float = 0.0,
        cancel: threading.Event | None = None,
    ) -> PushResult:
        """Upload what the server lacks and commit the local changes (merging on conflict).

        A file that changes, vanishes or cannot be read meanwhile is left out
        (``PushResult.left_out`` says why) and everything else is committed.
        ``settle_seconds``: files written (or renamed into place) more recently
        than that are left out too, as maybe still being written. ``cancel``:
        set it to stop the transfers (:class:`Cancelled` is raised; parts the
        store accepted are kept, so the next push resumes).
        """
        progress = progress or NoProgress()
        with self._locked():
            report = self._scan(progress, settle_seconds)
            left_out = LeftOutFiles(report.left_out)
            delta = self.index.local_delta()
            result = PushResult(
                version=self.index.base_version,
                committed=False,
                hashed=report.hashed,
                invalid=report.invalid,
            )
            changes = left_out.without(delta.changes())
            if not changes:  # nothing to send: no transfer machinery, no connection
                result.not_downloaded = self.index.count_in_state(REMOTE)
                self._account_left_out(delta, left_out, result)
                return result
            quota = self._quota_ask(changes)
            transfer = transfers.Transfer(self.api, jobs=jobs, progress=progress, cancel=cancel)
            try:
                uploaded: set[str] = set()
                with self._naming_the_store():
                    changes = self._upload(transfer, changes, uploaded, left_out, quota=quota)
                    self._commit_with_merges(
                        transfer, changes, uploaded, policy, message, result, left_out
                    )
                result.not_downloaded = self.index.count_in_state(REMOTE)
            finally:
                transfer.close()
                self._copy_stats(transfer.stats, result)
                self._account_left_out(delta, left_out, result)
            return result

    def _account_left_out(
        self, delta: LocalDelta, left_out: LeftOutFiles, result: PushResult
    ) -> None:
        """Count only what was pushed; make the next scan hash every left-out file anew."""
        result.added = sum(p not in left_out for p in delta.added)
        result.modified = sum(p not in left_out for p in delta.modified)
        result.deleted = sum(p not in left_out for p in delta.deleted)
        result.left_out = left_out.listed()
        unsettled = left_out.still_on_disk()
        if unsettled:
            # Its row may hold a digest of bytes the file no longer has (even
            # with an unchanged mtime): never trust it again.
            with self.index.transaction():
                self.index.mark_unhashed(unsettled)

    def _quota_ask(self, changes: Mapping[str, Change]) -> wire.PushQuota | None:
        """What the push adds to the owner's quota, to be checked with its first upload plan
        (so a push that does not fit is refused before any byte is sent); ``None`` if it
        adds nothing. The commit checks again, whatever was asked."""
        replaced = self.index.base_entries(changes)
        added = sum(e.size for e in changes.values() if e is not None)
        added -= sum(e.size for e in replaced.values())
        return wire.PushQuota(self.config.project_id, added) if added > 0 else None

    @contextmanager
    def _naming_the_store(self) -> Iterator[None]:
        """Say "object store", not "server", when the store is what cannot be reached."""
        try:
            yield
        except httpx.TransportError as e:
            try:
                url = e.request.url
            except RuntimeError:
                raise e from None
            api = httpx.URL(self.api.server)
            if (url.scheme, url.host, url.port) == (api.scheme, api.host, api.port):
                raise
            where = f"{url.scheme}://{url.netloc.decode()}"
            raise Unavailable(
                f"cannot reach the object store at {where} ({str(e) or type(e).__name__}); "
                "what was uploaded is kept: run `robosync push` again when it is back"
            ) from e

    def _upload(
        self,
        transfer: Transfer,
        changes: Mapping[str, Change],
        uploaded: set[str],
        left_out: LeftOutFiles,
        quota: wire.PushQuota | None = None,
    ) -> dict[str, Change]:
        """Make the blobs of ``changes`` present; return ``changes`` less the files left out.

        A blob whose file failed is tried again from another file holding the
        same digest (a duplicate elsewhere in the folder), if there is one.
        ``quota`` is asked with the first upload plan (see :meth:`_quota_ask`).
        """
        holders: dict[str, list[FileRow]] = {}
        for path, change in changes.items():
            if change is None or change.digest in uploaded:
                continue
            row = self.index.file(path)
            if row is not None and row.state != LOCAL and self.index.has_base_digest(row.digest):
                # Not on disk, but the server has its bytes: a server file moved to a
                # conflict name, or a change evicted before it was pushed (older
                # clients allowed that).
                continue
            if row is None or row.state != LOCAL:
                left_out.add(path, DELETED)
                continue
            if row.digest == UNHASHED:  # e.g. the conflict copy of a file left out
                left_out.add(path, "changed while it was hashed (not hashed yet)")
                continue
            holders.setdefault(row.digest, []).append(row)
        while holders:
            sources = [
                transfers.UploadSource(
                    r.digest,
                    r.size,
                    r.block_hashes(),
                    disk_path(self.root, r.path),
                    Stamp(r.size, r.mtime_ns, r.inode),
                )
                for r in (rows[0] for rows in holders.values())
            ]
            troubled = transfer.upload(sources, quota)
            quota = None
            uploaded.update(d for d in holders if d not in troubled)
            for digest, reason in troubled.items():
                left_out.add(holders[digest][0].path, reason)
            holders = {d: holders[d][1:] for d in troubled if len(holders[d]) > 1}
        return left_out.without(changes)

    def _commit_with_merges(
        self,
        transfer: Transfer,
        changes: dict[str, Change],
        uploaded: set[str],
        policy: Policy,
        message: str,
        result: PushResult,
        left_out: LeftOutFiles,
    ) -> None:
        rng = random.Random()
        reuploads = clash_rounds = 0
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            if not changes:  # nothing, or only files left out
                result.version = self.index.base_version
                return
            result.commit_attempts = attempt
            # One key per attempt-set: the retry wrapper resends this same commit
            # with this key, a commit after a merge is a new commit with a new key.
            key = secrets.token_hex(16)
            base = self.index.base_version
            try:
                snapshot = dict(changes)
                committed = self.api.commit(
                    self.config.project_id,
                    base,
                    lambda snapshot=snapshot: _ops(snapshot),  # type: ignore[misc]
                    message=message,
                    robot=self.robot,
                    idempotency_key=key,
                )
            except ConflictError:
                changes = self._merge_and_upload(transfer, uploaded, policy, result, left_out)
                time.sleep(rng.uniform(0, min(2.0, 0.05 * 2**attempt)))
                continue
            except MissingBlobs as e:
                reuploads += 1
                if reuploads > REUPLOAD_ROUNDS:
                    raise
                changes = self._reupload_missing(transfer, changes, uploaded, e, left_out)
                continue
            except Unprocessable as e:
                # Paths that cannot be checked out together (a file where a folder
                # is, case twins) among this folder's own changes: move one aside.
                if not e.details.get("paths") or clash_rounds >= CLASH_ROUNDS:
                    raise
                clash_rounds += 1
                changes = self._merge_and_upload(
                    transfer, uploaded, policy, result, left_out, always=True
                )
                continue
            with self.index.transaction():
                self.index.apply_to_base(changes.items())
                self.index.base_version = committed.version
            result.version = committed.version
            result.committed = True
            return
        raise ConflictError(
            f"the project kept moving: gave up after {COMMIT_ATTEMPTS} commit attempts; "
            "run push again",
            {"head_version": self.index.base_version},
        )

    def _merge_and_upload(
        self,
        transfer: Transfer,
        uploaded: set[str],
        policy: Policy,
        result: PushResult,
        left_out: LeftOutFiles,
        *,
        always: bool = False,
    ) -> dict[str, Change]:
        """Merge the server's changes, upload what that adds; the changes left to commit."""
        result.merged.extend(self._merge_remote(policy, always=always))
        changes = left_out.without(self.index.local_delta().changes())
        return self._upload(transfer, changes, uploaded, left_out)

    def _reupload_missing(
        self,
        transfer: Transfer,
        changes: Mapping[str, Change],
        uploaded: set[str],
        err: MissingBlobs,
        left_out: LeftOutFiles,
    ) -> dict[str, Change]:
        """Upload again the blobs a commit was refused for (the server lost them meanwhile).

        Returns ``changes`` less the files that could not be uploaded again.
        """
        listed = {str(d) for d in err.details.get("missing", [])}
        complete_list = int(err.details.get("missing_count", len(listed))) <= len(listed)
        digests = {c.digest for c in changes.values() if c is not None}
        missing = listed & digests if listed and complete_list else digests
        uploaded.difference_update(missing)
        self._upload(
            transfer,
            {p: c for p, c in changes.items() if c and c.digest in missing},
            uploaded,
            left_out,
        )
        return left_out.without(changes)

    @staticmethod
    def _copy_stats(stats: TransferStats, result: PushResult) -> None:
        result.blobs = stats.blobs
        result.already_present = stats.already_present
        result.uploaded_blobs = stats.uploaded_blobs
        result.parts_sent = stats.parts_sent
        result.parts_skipped = stats.parts_skipped
        result.bytes_sent = stats.bytes_sent

    # --- merge ------------------------------------------------------------

    def _remote_changes(self) -> tuple[int, dict[str, Change]]:
        changes: dict[str, Change] = {}
        with self.api.changes(self.config.project_id, self.index.base_version) as (head, ops):
            for op in ops:
                changes[op.path] = Entry(op.digest, op.size) if isinstance(op, wire.PutOp) else None
        return head, changes

    def _merge_remote(self, policy: Policy, *, always: bool = False) -> list[MergeNote]:
        """Merge the server's changes since the base into the folder; base becomes the head.

        Files changed remotely become ``remote`` rows (fetched by pull/fetch);
        the local file they replace is removed (its bytes are in the base
        version on the server). Local changes stay local changes. A file where
        the merged version needs a folder, and case twins, move to their
        conflict names (see ``merge.py``). With ``always``, merge even when the
        server did not move (to resolve such clashes among local changes).
        """
        head, remote = self._remote_changes()
        if head <= self.index.base_version and not remote and not always:
            return []
        local = self.index.local_delta().changes()
        mtimes: dict[str, float] = {}
        remote_time: float | None = None
        if policy == "newest":
            for p, change in local.items():
                row = self.index.file(p) if change is not None else None
                if row is not None and row.mtime_ns > 0:
                    mtimes[p] = row.mtime_ns / 1e9
            remote_time = self.info().updated_at.timestamp()
        decided = merge(
            self.index.base_manifest(),
            local,
            remote,
            policy=policy,
            robot=self.robot,
            local_mtimes=mtimes,
            remote_time=remote_time,
            taken=lambda p: self.index.file(p) is not None or self.index.base_entry(p) is not None,
        )
        moves, dropped = self._move_conflict_copies(decided)
        moved_to = {copy for _, copy in moves}
        notes = list(decided.notes)
        for path in decided.take_remote:
            if path in decided.conflict_copies or path in moved_to:
                continue
            row = self.index.file(path)
            if row is not None and row.state == LOCAL:
                # Only reached when the local file is the base version or deleted
                # remotely-vs-unchanged, or the user chose `theirs`.
                try:
                    self._unlink(path)
                except (confined.SymlinkInPath, confined.NotAFolder) as e:
                    refused = MergeNote(path, "refused", f"left on disk: {e.message}")
                    notes = [refused if n.path == path else n for n in notes]
        with self.index.transaction():
            self.index.remove_files(dropped)
            for row, copy in moves:
                self.index.remove_files([row.path])
                self.index.put_files([replace(row, path=copy)])
            for path, change in decided.take_remote.items():
                if path in moved_to:
                    continue
                if change is None:
                    self.index.remove_files([path])
                    continue
                current = self.index.file(path)
                # An evicted file stays evicted when it changes remotely: the
                # user chose not to keep it on this disk.
                evicted = current is not None and current.state == EVICTED
                self.index.set_remote_only(path, change, EVICTED if evicted else REMOTE)
            self.index.apply_to_base(remote.items())
            self.index.base_version = head
        return notes

    def _move_conflict_copies(
        self, decided: MergeResult
    ) -> tuple[list[tuple[FileRow, str]], list[str]]:
        """Rename files to their conflict names; ``(moved rows, paths forgotten)``.

        When the server's version of a path moves to the copy (a file where the
        merge keeps a folder), this folder fetches the copy like any remote
        change, and an older local version of the path (the base one, safe on
        the server) is removed instead of moved.
        """
        moves: list[tuple[FileRow, str]] = []
        dropped: list[str] = []
        for path, copy in decided.conflict_copies.items():
            row = self.index.file(path)
            if row is None:
                continue
            fetched = decided.take_remote.get(copy)
            if fetched is not None and row.entry != fetched:
                if row.state == LOCAL:
                    self._unlink(path)
                dropped.append(path)
                continue
            if row.state == LOCAL:
                # A file deleted during this push was left out; its row still moves.
                with contextlib.suppress(FileNotFoundError):
                    confined.rename_file(self.root, disk_name(self.root, path), copy)
                confined.prune_empty_folders(self.root, path)
            moves.append((row, copy))
        return moves, dropped

    def _unlink(self, path: str) -> None:
        """Remove a file and the folders it leaves empty (a file may take their place)."""
        confined.remove_file(self.root, disk_name(self.root, path))
        confined.prune_empty_folders(self.root, path)

    # --- pull, fetch, restore, clone -----------------------------------------

    def pull(
        self,
        jobs: int = DEFAULT_JOBS,
        policy: Policy = "keep-both",
        *,
        progress: Progress | None = None,
    ) -> PullResult:
        """Bring the folder to the head, keeping every local change; download what is missing."""
        progress = progress or NoProgress()
        with self._locked():
            report = self._scan(progress)
            notes = self._merge_remote(policy)
            result = PullResult(self.index.base_version, merged=notes, invalid=report.invalid)
            # Landing rows are files a crash may have torn: written again.
            rows = self.index.paths_in_state(REMOTE) + self.index.paths_in_state(LANDING)
            self._download_rows(rows, jobs, progress, result)
            return result

    def fetch(
        self,
        paths: list[str] | None = None,
        jobs: int = DEFAULT_JOBS,
        *,
        progress: Progress | None = None,
    ) -> PullResult:
        """Download evicted (and not yet downloaded) files, all or those under ``paths``."""
        progress = progress or NoProgress()
        selectors = check_selectors(paths) if paths else None
        with self._locked():
            rows = [
                r
                for r in self.index.paths_in_state(EVICTED) + self.index.paths_in_state(REMOTE)
                if matches(r.path, selectors)
            ]
            if selectors and not rows:
                raise NotFound(f"nothing to fetch under {_listed(selectors)}")
            result = PullResult(self.index.base_version)
            self._download_rows(rows, jobs, progress, result)
            return result

    def restore(
        self,
        path: str,
        version: int,
        *,
        progress: Progress | None = None,
    ) -> PullResult:
        """Put ``path`` (a file or a folder) as it was in ``version`` into the folder.

        Push commits it. Files of the folder that were not in ``version`` are
        left alone.
        """
        selectors = check_selectors([path])
        with self._locked():
            targets: list[DownloadTarget] = []
            with self.api.manifest(self.config.project_id, version) as (_, entries):
                for e in entries:
                    if matches(e.path, selectors):
                        targets.append(transfers.DownloadTarget(e.path, e.digest, e.size))
            if not targets:
                raise NotFound(
                    f"{_listed(selectors)} is not in version {version}; "
                    "see `robosync log` and `robosync ls --version N`"
                )
            result = PullResult(self.index.base_version)
            self._download(targets, DEFAULT_JOBS, progress or NoProgress(), result)
            return result

    def _download_rows(
        self, rows: list[FileRow], jobs: int, progress: Progress, result: PullResult
    ) -> None:
        targets = [transfers.DownloadTarget(r.path, r.digest, r.size) for r in rows]
        self._download(targets, jobs, progress, result)

    def _local_source(self, digest: str) -> str | None:
        for row in self.index.files_with_digest(digest):
            st = confined.stat_file(self.root, disk_name(self.root, row.path))
            if st is None:
                continue
            if (st.st_size, st.st_mtime_ns, st.st_ino) == (row.size, row.mtime_ns, row.inode):
                return row.path
        return None

    def _download(
        self,
        targets: list[DownloadTarget],
        jobs: int,
        progress: Progress,
        result: PullResult,
        *,
        marked: bool = False,
    ) -> None:
        """Download ``targets``, recording each batch once durable; ``marked``: their rows
        are landing already."""
        if not targets:
            return
        if not marked:
            # Landing until flushed: a scan re-verifies a file a crash may have torn.
            with self.index.transaction():
                self.index.mark_landing((t.path, Entry(t.digest, t.size)) for t in targets)
        held = self.index.digests_held({t.digest for t in targets})
        transfer = transfers.Transfer(self.api, jobs=jobs, progress=progress)
        try:
            written, errors = transfer.download(
                self.config.project_id,
                self.root,
                targets,
                lambda digest: self._local_source(digest) if digest in held else None,
                on_durable=self._record,
            )
        finally:
            transfer.close()
        result.downloaded += transfer.stats.downloaded
        result.copied += transfer.stats.copied
        result.bytes_received += transfer.stats.bytes_received
        if errors:
            raise errors[0]

    def _record(self, written: Iterable[Written]) -> None:
        rows = [
            FileRow(w.path, w.size, w.stat.st_mtime_ns, w.stat.st_ino, w.digest, w.blocks, LOCAL)
            for w in written
        ]
        with self.index.transaction():
            self.index.put_files(rows)

    def populate(
        self, version: int | None, *, jobs: int = DEFAULT_JOBS, progress: Progress | None = None
    ) -> PullResult:
        """Record the manifest of ``version`` as the base and download every file."""
        with self._locked():
            targets: list[DownloadTarget] = []
            # One transaction: a manifest line refused half way leaves no half base. The
            # rows are landing at once (the folder is new, and every file is downloaded
            # next): written once, not as remote and then again as landing.
            with (
                self.api.manifest(self.config.project_id, version) as (v, entries),
                self.index.transaction(),
            ):
                for batch in transfers.batched(entries, 1000):
                    known = [(e.path, Entry(e.digest, e.size)) for e in batch]
                    self.index.apply_to_base(known)
                    self.index.mark_landing(known)
                    targets.extend(
                        transfers.DownloadTarget(e.path, e.digest, e.size) for e in batch
                    )
                self.index.base_version = v
            result = PullResult(v)
            self._download(targets, jobs, progress or NoProgress(), result, marked=True)
            return result

    # --- rm, evict ------------------------------------------------------------

    def rm(self, paths: list[str]) -> list[str]:
        """Delete files (or folders) from the project; the next push commits the deletions."""
        selectors = check_selectors(paths)
        with self._locked():
            self._scan(NoProgress())
            rows = [r for r in self.index.file_rows() if matches(r.path, selectors)]
            missing = [s for s in selectors if not any(matches(r.path, [s]) for r in rows)]
            if missing:
                raise NotFound(f"not in the project: {_listed(missing)}")
            for r in rows:
                if r.state == LOCAL:
                    # Behind a symlink the file is not the project's to delete:
                    # the path leaves the project, what the link points to stays.
                    with contextlib.suppress(confined.SymlinkInPath, confined.NotAFolder):
                        confined.remove_file(self.root, disk_name(self.root, r.path))
            with self.index.transaction():
                self.index.remove_files(r.path for r in rows)
            return sorted(r.path for r in rows)

    def _eviction_refusal(self, row: FileRow) -> str | None:
        """Why ``row``'s file may not be evicted; ``None`` if the server holds it at its path.

        Evicting is only safe for the content the last synced version holds
        at this same path: any other content (a change not pushed yet, even if
        the same bytes sit at another path) would be a change with no bytes
        left on disk to upload.
        """
        if self.index.is_committed(row):
            return None
        if self.index.base_entry(row.path) is None:
            return "not on the server yet; push first"
        return "changed since the last push (the server holds other bytes for it); push first"

    def evict(self, paths: list[str] | None = None) -> EvictResult:
        """Free the disk of files whose content is what the server holds for their path.

        A file with a change not pushed yet is kept and listed in ``kept``
        with the reason.
        """
        selectors = check_selectors(paths) if paths else None
        result = EvictResult()
        with self._locked():
            self._scan(NoProgress())
            rows = [
                r for r in self.index.file_rows() if r.state == LOCAL and matches(r.path, selectors)
            ]
            if selectors and not rows:
                raise NotFound(f"no local file under {_listed(selectors)}")
            freed: list[FileRow] = []
            for r in sorted(rows, key=lambda r: r.path):
                reason = self._eviction_refusal(r)
                if reason is not None:
                    result.kept.append((r.path, reason))
                    continue
                try:
                    confined.remove_file(self.root, disk_name(self.root, r.path))
                except (confined.SymlinkInPath, confined.NotAFolder) as e:
                    result.kept.append((r.path, e.message))
                    continue
                freed.append(r)
            with self.index.transaction():
                for r in freed:
                    self.index.set_remote_only(r.path, r.entry, EVICTED)
            result.evicted = [r.path for r in freed]
            result.bytes_freed = sum(r.size for r in freed)
        return result


def _listed(selectors: list[str]) -> str:
    return ", ".join(s or "the project folder" for s in selectors)


def clone(
    name: str,
    path: str | os.PathLike[str],
    *,
    version: int | None = None,
    server: str | None = None,
    token: str | None = None,
    robot: str | None = None,
    jobs: int = DEFAULT_JOBS,
    settings: ClientSettings | None = None,
    progress: Progress | None = None,
) -> Project:
    """Download project ``name`` (``NAME`` or ``OWNER/NAME``) at ``version`` into new ``path``."""
    settings = settings or ClientSettings.from_env()
    root = Path(path).resolve()
    if root.exists() and any(root.iterdir()):
        raise InvalidInput(
            f"{root} is not empty; clone into a new folder (or `robosync init` to adopt files)"
        )
    url = settings.server_url(server)
    api = connect(settings, url, token)
    try:
        found = find_project(api, name)
    except RobosyncError:
        api.close()
        raise
    project = Project._create_folder(root, url, found, settings.robot_name(robot), api)
    project.populate(version, jobs=jobs, progress=progress)
    return project
