"""Concurrent uploads and downloads of blobs, straight between disk and the store.

Uploads: one ``POST /v1/uploads`` per 1000 blobs says which are missing and
gives presigned part URLs; each part is PUT streamed from disk with the
headers the server presigned (its ``x-amz-checksum-sha256``, so the store
checks every byte); parts the store already holds (``done``, after an
interrupted push) are skipped; finished blobs are completed in batches.

Downloads: every byte is verified block by block while it streams into a
temporary file next to its target, renamed into place only if size and digest
match. Durability is batched (as git's ``core.fsyncMethod=batch``): after every
``DURABLE_EVERY_FILES`` files or ``DURABLE_EVERY_BYTES`` bytes the batch is
flushed by one ``syncfs`` (large files, when the machine holds much else waiting to be
written, one ``fdatasync`` each instead, so the flush does not wait for other programs'
pages), each folder written to is fsync'ed, and
only then are they handed to ``on_durable`` (the index records them). Until then the index holds
them as ``landing``, and a scan re-verifies such a file before any push may
commit it (a crash can leave it empty or torn).
A digest already on disk is copied, not downloaded. Bodies are read by
:mod:`robosync.client.storeget` straight into one reused buffer per thread.

Every HTTP exchange goes through the same :class:`Retrying` wrapper.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import queue
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from robosync.client import confined, directio
from robosync.client.api import Api, error_of
from robosync.client.deferred import OnFirstUse, httpx, wire
from robosync.client.leftout import (
    SHRANK,
    FileTrouble,
    Stamp,
    file_trouble,
    open_as_hashed,
    still_as_hashed,
)
from robosync.client.progress import NoProgress, Progress
from robosync.client.retry import Retrying, is_rate_limited
from robosync.client.settings import DEFAULT_JOBS
from robosync.client.trust import UntrustedAnswer, checked_links
from robosync.digest import BlockVerifier
from robosync.errors import Forbidden, IntegrityError, RobosyncError

if TYPE_CHECKING:
    from robosync.client.fetchloop import FetchLoop
    from robosync.client.storeget import FileSpan, StoreGetter

BATCH = 1000
# A download asks for its first links in a smaller batch: the threads start on them
# while the server signs the next thousand (a thousand took it 0.06-0.3 s). 256 small
# files make 16 runs (RUN_FILES), one for each of the 16 threads.
FIRST_LINKS = 256
_CHUNK = 1024 * 1024
# Each download thread reads into one reused buffer of this size (16 jobs:
# 16 MiB); larger reads cost fewer Python round trips per byte.
_DOWNLOAD_CHUNK = 1024 * 1024
# Finished blobs are completed a plan's worth at a time (or every 2 s): each call costs
# the API its transactions whatever its size (per push of 10,000 small images its CPU
# went from 5.3-5.9 s at 100 per call to 4.2-4.6 s).
_COMPLETE_EVERY = BATCH
DURABLE_EVERY_FILES = 1000
DURABLE_EVERY_BYTES = 1 << 30
# A downloaded file at least this large has its writeback started at once: for 8 MiB
# images the clone took 0.86x the time; for 32 KiB ones the extra call cost more
# (bench/push_cpu.py), and the batch's syncfs merges their writes anyway.
WRITEBACK_FROM_BYTES = 256 * 1024
# Past this many bytes of other programs' writes waiting to go out, a batch of large
# files is flushed file by file, not by one syncfs that would wait for them too.
OTHERS_PENDING_LIMIT = 64 * 1024 * 1024
# Blobs smaller than this are sent and fetched from one thread (client/fetchloop.py).
LOOPED_BELOW_BYTES = 256 * 1024
_COMPLETERS = 4
# Copies of a blob written from its bytes as they stream in (each one more open file).
TEE_COPIES = 8
# A download task fetches blobs one after another up to this many, or this many bytes.
RUN_FILES = 16
RUN_BYTES = 1024 * 1024
T = TypeVar("T")
F = TypeVar("F")
# What the store said of one PUT of a part: (digest, part number, size, ETag or trouble).
PutOutcome = tuple[str, int, int, "str | FileTrouble"]


@dataclass(frozen=True)
class UploadSource:
    """A blob to make present in the store, and a local file that holds it."""

    digest: str
    size: int
    blocks: list[str]
    file: Path
    stamp: Stamp | None = None  # as hashed; a file that no longer has it is not sent


@dataclass(frozen=True)
class DownloadTarget:
    """A file to write: project path, its digest and size."""

    path: str
    digest: str
    size: int


@dataclass(frozen=True)
class Written:
    """A file a download or copy wrote, with what the index needs of it."""

    path: str
    digest: str
    size: int
    blocks: bytes
    stat: os.stat_result
    # Bytes of it that went through the page cache (only a last partial block, for a
    # file written past it), still to be written out by the batch's flush.
    cached: int = 0


@dataclass
class TransferStats:
    """Counts of one transfer run."""

    blobs: int = 0
    already_present: int = 0
    uploaded_blobs: int = 0
    parts_sent: int = 0
    parts_skipped: int = 0
    bytes_sent: int = 0
    downloaded: int = 0
    copied: int = 0
    bytes_received: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        """Add to counters (thread-safe)."""
        with self.lock:
            for k, v in counts.items():
                setattr(self, k, getattr(self, k) + v)


_S3_CODE = re.compile(r"<Code>([^<]+)</Code>")


def store_error(resp: httpx.Response, what: str) -> RobosyncError:
    """Turn a store's refusal (S3 XML or the embedded store's JSON) into an error."""
    code_match = _S3_CODE.search(resp.text) if resp.content else None
    if code_match is None:
        plain = error_of(resp)
        plain.message = f"{what}: {plain.message}"
        return plain
    code = code_match.group(1)
    err: RobosyncError
    if code in ("BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "IncompleteBody"):
        err = IntegrityError(
            f"{what}: the store refused the bytes ({code}); "
            "the file changed while it was uploaded? run push again"
        )
    elif resp.status_code == 403:
        err = Forbidden(f"{what}: the store refused the presigned URL ({code}); run again")
    else:
        err = RobosyncError(f"{what}: the store answered HTTP {resp.status_code} {code}")
    err.details["http_status"] = resp.status_code
    return err


def batched(items: Iterable[T], size: int, first: int | None = None) -> Iterator[list[T]]:
    """Lists of at most ``size`` items; the first of at most ``first``, if given."""
    batch: list[T] = []
    limit = first or size
    for item in items:
        batch.append(item)
        if len(batch) >= limit:
            yield batch
            batch, limit = [], size
    if batch:
        yield batch


class Abandoned(Exception):
    """A transfer given up because another one of the same command failed for good."""


class Cancelled(Exception):
    """The caller asked the transfer to stop (the agent on SIGTERM); what finished is kept."""


class Transfer:
    """Moves blobs between a folder and the store, ``jobs`` at a time."""

    def __init__(
        self,
        api: Api,
        *,
        jobs: int = DEFAULT_JOBS,
        progress: Progress | None = None,
        retrying: Retrying | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.api = api
        self.limiter = api.limiter
        # Set by the caller to stop: bodies stop at their next slice, pauses at once.
        self._cancel = cancel or threading.Event()
        self.jobs = max(1, jobs)
        self.progress = progress or NoProgress()
        # Set when one transfer failed for good: the others stop at their next
        # attempt or pause instead of spending their whole retry budget.
        self._abandoned = threading.Event()
        base = retrying or api.retrying
        self.retrying = dataclasses.replace(base, sleep=self._pause)
        self.stats = TransferStats()
        self._store = OnFirstUse(self._new_store)
        self._getter = OnFirstUse(_new_getter)
        self._fetch_loop = OnFirstUse(lambda: _new_fetch_loop(self.jobs))
        # Its own: a loop is driven by one thread at a time.
        self._put_loop = OnFirstUse(lambda: _new_fetch_loop(self.jobs))
        self._buffers = threading.local()
        # Folders (project paths) that renames of this download went into.
        self._written_dirs: set[str] = set()
        # Whether a store origin is reached without a proxy (the environment is read once).
        self._direct: dict[str, bool] = {}
        # Digests whose completion answered ``retry`` in the first round; None
        # in the second round, where a lost race is an error like any other.
        self._lost_races: set[str] | None = set()

    def _pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            self._check_stop()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self._abandoned.wait(min(left, 0.2)):
                self._check_stop()

    def _is_direct(self, url: str) -> bool:
        """Whether ``url``'s origin is reached without a proxy (see :func:`direct_route`)."""
        scheme, _, rest = url.partition("://")
        origin = f"{scheme}://{rest.split('/', 1)[0]}"
        direct = self._direct.get(origin)
        if direct is None:
            direct = self._direct[origin] = _direct_route(url)
        return direct

    def _check_stop(self) -> None:
        if self._cancel.is_set():
            raise Cancelled("stopped on request")
        if self._abandoned.is_set():
            raise Abandoned("another transfer of this command failed")

    @property
    def store(self) -> httpx.Client:
        """The httpx pool for the store, made on first use (most bodies go through
        :attr:`getter`; a push with nothing to send needs neither)."""
        return self._store.get()

    def _new_store(self) -> httpx.Client:
        return httpx.Client(
            timeout=httpx.Timeout(120.0, connect=10.0),
            limits=httpx.Limits(
                max_connections=self.jobs * 2,
                max_keepalive_connections=self.jobs * 2,
            ),
        )

    @property
    def getter(self) -> StoreGetter:
        """The store connections of most bodies, made on first use: a push with nothing
        to send loads neither them nor ``http.client`` and ``ssl``."""
        return self._getter.get()

    def close(self) -> None:
        """Close the store connection pools."""
        if (store := self._store.made) is not None:
            store.close()
        if (getter := self._getter.made) is not None:
            getter.close()
        for made in (self._fetch_loop.made, self._put_loop.made):
            if made is not None:
                made.close()

    # --- uploads ----------------------------------------------------------

    def upload(
        self, sources: list[UploadSource], quota: wire.PushQuota | None = None
    ) -> dict[str, str]:
        """Make every blob of ``sources`` present in the store (uploading only what is missing).

        Returns the blobs whose file changed, vanished or could not be read
        (digest -> one-line reason): they are not present, every other blob is.
        ``quota``: the push's quota check, asked with the first plan, so a push that
        does not fit is refused (:class:`~robosync.errors.QuotaExceeded`) before any PUT.
        """
        unique = list({s.digest: s for s in sources}.values())
        troubled: dict[str, str] = {}
        self.stats.add(blobs=len(unique))
        self.progress.start("upload", len(unique), sum(s.size for s in unique))
        self._lost_races = set()
        try:
            with (
                ThreadPoolExecutor(self.jobs, thread_name_prefix="robosync-up") as pool,
                ThreadPoolExecutor(_COMPLETERS, thread_name_prefix="robosync-done") as completers,
                ThreadPoolExecutor(1, thread_name_prefix="robosync-plan") as planner,
                ThreadPoolExecutor(1, thread_name_prefix="robosync-put") as putter,
            ):
                workers = _UploadWorkers(pool, completers, planner, putter)
                self._upload_batches(workers, list(batched(unique, BATCH)), troubled, quota)
                # Blobs whose upload lost a race (another user stored the same
                # blob at the same moment): planned again, they upload as a proof.
                again, self._lost_races = self._lost_races, None
                lost = [s for s in unique if s.digest in (again or ())]
                self._upload_batches(workers, list(batched(lost, BATCH)), troubled)
        finally:
            self.progress.finish()
        return troubled

    def _upload_batches(
        self,
        workers: _UploadWorkers,
        batches: list[list[UploadSource]],
        troubled: dict[str, str],
        quota: wire.PushQuota | None = None,
    ) -> None:
        """Upload batch after batch, every blob completed when this returns (``quota`` is
        asked with the first batch's plan).

        Once a batch's PUTs are under way and the batch before it is completed, the
        next batch's plan is asked for early, so that it is at hand when the PUTs end
        (waiting for it and for the last completions left nothing in flight for
        150-330 ms per batch of small images). The server caps the uploads a user
        has in flight; if the early ask is over that cap, the batch is planned the
        usual way once this one is completed, when nothing is in flight.
        """
        completing: list[Future[None]] = []
        plan: Future[wire.UploadResponse] | None = None
        for i, batch in enumerate(batches):
            ask = quota if i == 0 else None
            try:
                plans = plan.result() if plan is not None else self._plan(batch, quota=ask)
            except RobosyncError as e:
                if not is_rate_limited(e):
                    raise
                _wait_all(completing)
                plans = self._plan(batch, quota=ask)
            before, following = completing, batches[i + 1] if i + 1 < len(batches) else None

            def started(
                before: list[Future[None]] = before,
                following: list[UploadSource] | None = following,
            ) -> None:
                nonlocal plan
                _wait_all(before)  # their uploads no longer count as in flight
                plan = workers.planner.submit(self._plan, following, True) if following else None

            plan = None
            completing = self._upload_batch(workers, batch, plans, troubled, started)
        _wait_all(completing)

    def _plan(
        self,
        batch: list[UploadSource],
        early: bool = False,
        quota: wire.PushQuota | None = None,
    ) -> wire.UploadResponse:
        items = [wire.UploadItem(digest=s.digest, size=s.size, blocks=s.blocks) for s in batch]
        return self.api.plan_uploads(items, early=early, quota=quota)

    def _upload_batch(
        self,
        workers: _UploadWorkers,
        batch: list[UploadSource],
        plans: wire.UploadResponse,
        troubled: dict[str, str],
        started: Callable[[], None],
    ) -> list[Future[None]]:
        """PUT what ``plans`` says is missing; ``started`` runs once every PUT is queued.
        Completions are started as blobs finish and returned still running."""
        by_digest = {s.digest: s for s in batch}
        etags: dict[str, dict[int, str]] = defaultdict(dict)
        remaining: dict[str, int] = {}
        upload_ids: dict[str, str | None] = {}
        # A task PUTs a run of parts; a multipart blob's parts go one task each.
        futures: dict[Future[list[PutOutcome]], list[str]] = {}
        # Each task's future lands here when done: one wait() over a thousand pending
        # futures walked all of them at every wake-up.
        finished: queue.SimpleQueue[Future[list[PutOutcome]]] = queue.SimpleQueue()
        ready: list[wire.CompleteItem] = []
        singles: list[tuple[UploadSource, wire.PresignedPart]] = []

        def submit(run: list[tuple[UploadSource, wire.PresignedPart]]) -> None:
            fut = workers.pool.submit(self._put_run, run)
            futures[fut] = [src.digest for src, _ in run]
            fut.add_done_callback(finished.put)

        for plan in plans.items:
            src = by_digest[plan.digest]
            if plan.status == "present":
                self.stats.add(already_present=1)
                self.progress.advance(files=1, nbytes=src.size)
                continue
            upload_ids[plan.digest] = plan.upload_id
            todo = [p for p in plan.parts if not p.done]
            for p in plan.parts:
                if p.done:
                    etags[plan.digest][p.number] = p.etag or ""
                    self.stats.add(parts_skipped=1)
                    self.progress.advance(nbytes=p.size)
            remaining[plan.digest] = len(todo)
            if not todo:
                ready.append(self._complete_item(plan.digest, plan.upload_id, etags))
                self.progress.advance(files=1)
            if plan.upload_id is None and len(todo) == 1:
                singles.append((src, todo[0]))
                continue
            for part in todo:
                submit([(src, part)])
        # Only a batch of small single PUTs alone goes to the loop: beside the pool's
        # threads its connections would be more transfers at once than ``--jobs``.
        small = all(self._loop_suits(part.url, part.size) for _, part in singles)
        looped = singles if not futures and small else []
        if looped:
            # One future per blob, settled by the loop as each PUT is answered.
            outcomes: list[Future[list[PutOutcome]]] = []
            for src, _ in looped:
                fut: Future[list[PutOutcome]] = Future()
                futures[fut] = [src.digest]
                fut.add_done_callback(finished.put)
                outcomes.append(fut)
            workers.putter.submit(self._put_looped, looped, outcomes, workers.pool)
            singles = []
        for run in _runs(singles, lambda single: single[1].size):
            submit(run)
        completing: list[Future[None]] = []
        last_complete = time.monotonic()
        try:
            started()
            for _ in range(len(futures)):
                fut = self._next_done(finished)
                if all(d in troubled for d in futures[fut]):
                    continue  # cancelled: the other parts of a troubled blob
                for digest, number, size, etag in fut.result():
                    if digest in troubled:
                        continue
                    if isinstance(etag, FileTrouble):
                        # This file's problem, not the push's: drop its blob, go on.
                        troubled[digest] = etag.reason
                        for other, digests in futures.items():
                            if digests == [digest]:
                                other.cancel()
                        continue
                    self._put_done(digest, number, size, etag, etags, remaining, upload_ids, ready)
                    # Complete in batches as blobs finish (an interrupted push
                    # keeps its finished blobs), beside the PUTs: the server
                    # proves every blob with a HEAD, which takes a while.
                    if len(ready) >= _COMPLETE_EVERY or (
                        ready and time.monotonic() - last_complete > 2
                    ):
                        completing.append(
                            workers.completers.submit(self._complete, ready, by_digest)
                        )
                        ready, last_complete = [], time.monotonic()
        except BaseException:
            self._abandoned.set()
            for fut in futures:
                fut.cancel()
            raise
        if ready:
            completing.append(workers.completers.submit(self._complete, ready, by_digest))
        return completing

    def _put_done(
        self,
        digest: str,
        number: int,
        size: int,
        etag: str,
        etags: dict[str, dict[int, str]],
        remaining: dict[str, int],
        upload_ids: dict[str, str | None],
        ready: list[wire.CompleteItem],
    ) -> None:
        """Account for one part the store took; a blob whose last part it was is ready."""
        etags[digest][number] = etag
        self.stats.add(parts_sent=1, bytes_sent=size)
        self.progress.advance(nbytes=size)
        remaining[digest] -= 1
        if remaining[digest] == 0:
            ready.append(self._complete_item(digest, upload_ids[digest], etags))
            self.stats.add(uploaded_blobs=1)
            self.progress.advance(files=1)

    def _put_run(self, run: list[tuple[UploadSource, wire.PresignedPart]]) -> list[PutOutcome]:
        """PUT parts one after another in one task: ``(digest, number, size, ETag)`` of
        each, or the :class:`FileTrouble` of its file instead of the ETag (one file's
        trouble is its own; any other failure ends the task, and the push)."""
        out: list[PutOutcome] = []
        for src, part in run:
            try:
                etag: str | FileTrouble = self._put_part(src, part)
            except FileTrouble as e:
                etag = e
            out.append((src.digest, part.number, part.size, etag))
        return out

    def _loop_suits(self, url: str, size: int) -> bool:
        """Whether a blob is sent or fetched by the one thread of a loop: a small one,
        over plain http without a proxy, and no bandwidth cap to pace it."""
        return (
            size < LOOPED_BELOW_BYTES
            and self.limiter is None
            and url.startswith("http://")
            and self._is_direct(url)
        )

    def _put_looped(
        self,
        singles: list[tuple[UploadSource, wire.PresignedPart]],
        outcomes: list[Future[list[PutOutcome]]],
        pool: ThreadPoolExecutor,
    ) -> None:
        """PUT small blobs from this one thread (:mod:`~robosync.client.fetchloop`),
        settling each blob's future with its outcome as its answer arrives; what the
        loop hands back is PUT the usual way, on ``pool``, with its retries and errors."""

        def settle(i: int, etag: str | FileTrouble) -> None:
            src, part = singles[i]
            with contextlib.suppress(InvalidStateError):  # cancelled: the push is ending
                outcomes[i].set_result([(src.digest, part.number, part.size, etag)])

        def body(i: int) -> bytes | None:
            self._check_stop()
            try:
                return _read_single(*singles[i])
            except FileTrouble as e:
                settle(i, e)
                return None

        requests = [(part.url, part.headers) for _, part in singles]
        try:
            again = self._put_loop.get().put(
                requests, body, lambda i: settle(i, ""), self._check_stop
            )
        except BaseException as e:  # a stop, or a failure of the loop: every blob left ends
            for fut in outcomes:
                if not fut.done():
                    with contextlib.suppress(InvalidStateError):
                        fut.set_exception(e)
            return
        for i in again:
            retried = pool.submit(self._put_run, [singles[i]])
            retried.add_done_callback(functools.partial(_copy_outcome, into=outcomes[i]))

    def _next_done(self, finished: queue.SimpleQueue[F]) -> F:
        """The next future to finish (a stop request is noticed within 0.2 s)."""
        while True:
            if self._cancel.is_set():
                raise Cancelled("stopped on request")
            try:
                return finished.get(timeout=0.2)
            except queue.Empty:
                continue

    @staticmethod
    def _complete_item(
        digest: str, upload_id: str | None, etags: dict[str, dict[int, str]]
    ) -> wire.CompleteItem:
        if upload_id is None:  # a single PUT: the store's checksum is the whole proof
            return wire.CompleteItem(digest=digest)
        parts = [wire.CompletedPart(number=n, etag=e) for n, e in sorted(etags[digest].items())]
        return wire.CompleteItem(digest=digest, upload_id=upload_id, parts=parts)

    def _complete(self, items: list[wire.CompleteItem], sources: dict[str, UploadSource]) -> None:
        answer = self.api.complete_uploads(items)
        failed = [r for r in answer.items if r.status != "present"]
        lost = self._lost_races
        if lost is not None:
            lost.update(r.digest for r in failed if r.retry)  # set.update: atomic under the GIL
            failed = [r for r in failed if not r.retry]
        if failed:
            first = failed[0]
            raise IntegrityError(
                f"the store did not accept {sources[first.digest].file}: {first.error}; "
                "run push again",
                {"failed": [r.digest for r in failed]},
            )

    def _put_part(self, src: UploadSource, part: wire.PresignedPart) -> str:
        what = f"upload of {src.file} part {part.number}"
        direct = self._is_direct(part.url)

        def chunks() -> Iterator[bytes]:
            with _part_file(src) as fd:
                for offset, size in _pieces(part):
                    self._check_stop()
                    chunk = os.pread(fd, size, offset)
                    if len(chunk) != size:
                        raise FileTrouble(SHRANK)
                    yield chunk

        paced = self._paced(chunks)
        body: Callable[[], Iterable[bytes | FileSpan]] = paced
        if direct and self.limiter is None:
            # Unpaced on a stdlib connection: spans of the open file, which the kernel
            # sends from the page cache (storeget.FileSpan), not bytes read into Python.
            from robosync.client.storeget import FileSpan  # loaded with the getter

            def spans() -> Iterator[FileSpan]:
                with _part_file(src) as fd:
                    for offset, size in _pieces(part):
                        self._check_stop()
                        yield FileSpan(fd, offset, size)

            body = spans

        def once() -> str:
            self._check_stop()
            headers = {**part.headers, "Content-Length": str(part.size)}
            if direct:
                answer = self.getter.put(part.url, headers, body)
                if answer.status >= 400:
                    raise store_error(answer.to_httpx(), what)
                return answer.header("ETag") or ""
            resp = self.store.put(part.url, content=paced(), headers=headers)
            if resp.status_code >= 400:
                raise store_error(resp, what)
            return resp.headers.get("ETag", "")

        with file_trouble("uploaded"):
            return self.retrying.call(once, what)

    def _paced(self, body: Callable[[], Iterator[bytes]]) -> Callable[[], Iterable[bytes]]:
        """``body`` at the pace of the bandwidth cap, if there is one."""
        limiter = self.limiter
        if limiter is None:
            return body
        return lambda: limiter.throttle(body())

    # --- downloads --------------------------------------------------------

    def download(
        self,
        project_id: int,
        root: Path,
        targets: list[DownloadTarget],
        local_source: Callable[[str], str | None],
        on_durable: Callable[[list[Written]], None] | None = None,
    ) -> tuple[list[Written], list[BaseException]]:
        """Write every target under ``root``, verified; copy digests ``local_source`` has.

        ``local_source`` names a project file holding a digest, if any.
        ``on_durable`` is given each batch of written files once they are on
        disk for good (flushed, and their folders too).

        Returns what was written and the errors of what could not be (every
        file that can be written is, so a re-run has less to do).
        """
        groups: dict[str, list[DownloadTarget]] = defaultdict(list)
        for t in targets:
            groups[t.digest].append(t)
        self.progress.start("download", len(targets), sum(t.size for t in targets))
        written: list[Written] = []
        errors: list[BaseException] = []
        unflushed: list[Written] = []
        unflushed_bytes = 0

        def flush() -> None:
            nonlocal unflushed_bytes
            batch = list(unflushed)
            unflushed.clear()
            unflushed_bytes = 0
            if batch:
                _make_durable(root, batch, self.jobs)
            self._sync_dirs(root)
            if batch and on_durable is not None:
                on_durable(batch)

        try:
            with (
                ThreadPoolExecutor(self.jobs, thread_name_prefix="robosync-down") as pool,
                ThreadPoolExecutor(1, thread_name_prefix="robosync-fetch") as looper,
            ):
                futures: list[Future[tuple[list[Written], list[BaseException]]]] = []
                to_fetch: list[str] = []
                for digest, group in groups.items():
                    source = local_source(digest)
                    if source is not None:
                        futures.append(pool.submit(self._copy_group, root, source, group))
                    else:
                        to_fetch.append(digest)
                for batch in batched(to_fetch, BATCH, FIRST_LINKS):
                    answer = self.api.download_links(project_id, batch).items
                    try:
                        links = checked_links(batch, answer)
                    except UntrustedAnswer as e:  # fails this batch's files, not the others
                        errors.append(e)
                        continue
                    fetches = [(link.url, groups[link.digest]) for link in links]
                    looped: list[tuple[str, list[DownloadTarget]]] = []
                    rest: list[tuple[str, list[DownloadTarget]]] = []
                    for fetch in fetches:
                        suits = self._loop_suits(fetch[0], fetch[1][0].size)
                        (looped if suits else rest).append(fetch)
                    if looped:
                        futures.append(looper.submit(self._fetch_looped, root, looped, pool))
                    for run in _runs(rest, lambda fetch: fetch[1][0].size):
                        futures.append(pool.submit(self._fetch_run, root, run))
                for fut in futures:
                    try:
                        done, failed = fut.result()
                    except BaseException as e:  # keep going: report every file we could write
                        errors.append(e)
                        continue
                    errors.extend(failed)
                    written.extend(done)
                    unflushed.extend(done)
                    unflushed_bytes += sum(w.size for w in done)
                    if (
                        len(unflushed) >= DURABLE_EVERY_FILES
                        or unflushed_bytes >= DURABLE_EVERY_BYTES
                    ):
                        flush()
        finally:
            flush()
            self.progress.finish()
        return written, errors

    @property
    def fetch_loop(self) -> FetchLoop:
        """The connections small blobs are fetched over from one thread, made on first use."""
        return self._fetch_loop.get()

    def _fetch_looped(
        self,
        root: Path,
        fetches: list[tuple[str, list[DownloadTarget]]],
        pool: ThreadPoolExecutor,
    ) -> tuple[list[Written], list[BaseException]]:
        """Fetch small blobs from this one thread (:mod:`~robosync.client.fetchloop`),
        written as they arrive; what it could not fetch plainly goes the usual way,
        on ``pool``, with its retries and error reports."""
        written: list[Written] = []
        errors: list[BaseException] = []
        with confined.OpenFolders(root) as folders:

            def on_body(i: int, body: memoryview) -> None:
                group = fetches[i][1]
                try:
                    self._check_stop()
                    teed = group[1 : 1 + TEE_COPIES]
                    readinto = ChunkFiller([body]).readinto
                    done = self._write_verified(root, group[0], readinto, folders, teed)
                    written.extend(self._group_written(root, group, done))
                except Exception as e:  # one blob's failure is its own: the others go on
                    errors.append(e)

            requests = [(url, group[0].size) for url, group in fetches]
            try:
                again = self.fetch_loop.fetch(requests, on_body, self._check_stop)
            except Exception as e:  # a stop: what was written is still reported
                errors.append(e)
                return written, errors
        rest = [fetches[i] for i in again]
        runs = [
            pool.submit(self._fetch_run, root, run)
            for run in _runs(rest, lambda fetch: fetch[1][0].size)
        ]
        for fut in runs:
            done, failed = fut.result()
            written.extend(done)
            errors.extend(failed)
        return written, errors

    def _fetch_run(
        self, root: Path, run: list[tuple[str, list[DownloadTarget]]]
    ) -> tuple[list[Written], list[BaseException]]:
        """Fetch several small blobs in one task: what was written, and each failure."""
        written: list[Written] = []
        errors: list[BaseException] = []
        with confined.OpenFolders(root) as folders:
            for url, group in run:
                try:
                    self._check_stop()
                    written.extend(self._fetch_group(root, url, group, folders))
                except Exception as e:  # one blob's failure is its own: the others go on
                    errors.append(e)
        return written, errors

    def _fetch_group(
        self,
        root: Path,
        url: str,
        group: list[DownloadTarget],
        folders: confined.OpenFolders,
    ) -> list[Written]:
        first = group[0]
        what = f"download of {first.path}"
        direct = self._is_direct(url)

        # Copies of the same image are written from the bytes as they stream in, up to a
        # few (each holds a descriptor open); any others are copied from the first after.
        teed = group[1 : 1 + TEE_COPIES]

        def once() -> list[Written]:
            if direct:
                with self.getter.get(url) as body:
                    if body.status >= 400:
                        raise store_error(body.to_httpx(), what)
                    return self._write_verified(root, first, body.readinto, folders, teed)
            with self.store.stream("GET", url) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise store_error(resp, what)
                filler = ChunkFiller(resp.iter_bytes())
                return self._write_verified(root, first, filler.readinto, folders, teed)

        return self._group_written(root, group, self.retrying.call(once, what))

    def _group_written(
        self, root: Path, group: list[DownloadTarget], written: list[Written]
    ) -> list[Written]:
        """Count a blob's download, whose bytes wrote ``written`` (its first file and
        copies), and copy the group's other files from the first."""
        self.stats.add(downloaded=1, copied=len(written) - 1, bytes_received=group[0].size)
        self.progress.advance(files=len(written))
        return [*written, *self._copy_rest(root, group[0].path, group[len(written) :])]

    def _copy_group(
        self, root: Path, source: str, group: list[DownloadTarget]
    ) -> tuple[list[Written], list[BaseException]]:
        return self._copy_rest(root, source, group), []

    def _copy_rest(self, root: Path, source: str, group: list[DownloadTarget]) -> list[Written]:
        out = []
        for t in group:
            with open(confined.open_file(root, source), "rb", buffering=0) as f:
                out.extend(self._write_verified(root, t, f.readinto))
            self.stats.add(copied=1)
            self.progress.advance(files=1)
        return out

    def _buffer(self) -> memoryview:
        """This thread's read buffer (reused for every file it writes)."""
        buf: memoryview | None = getattr(self._buffers, "buf", None)
        if buf is None:
            buf = self._buffers.buf = directio.aligned_buffer(_DOWNLOAD_CHUNK)
        return buf

    def _write_verified(
        self,
        root: Path,
        t: DownloadTarget,
        readinto: Callable[[memoryview], int],
        folders: confined.OpenFolders | None = None,
        copies: list[DownloadTarget] | None = None,
    ) -> list[Written]:
        """Write ``t`` (and ``copies`` of the same content) from ``readinto`` via a verifier
        into temp files; rename them all if it matches, else none.

        Each file is written by :func:`confined.write_file`: never through a
        symlink, whatever the server named (``folders`` keeps its folder open for
        the task's next files). The copies' temp files are made inside the first's
        ``fill``, each inside the one before, so all are renamed only once the bytes
        have been verified, and all are removed if they were not.
        """
        targets = [t, *(copies or [])]
        fds: list[int] = []
        stats: dict[str, os.stat_result] = {}
        verified: list[BlockVerifier] = []
        cached = t.size

        def fill_from(i: int) -> Callable[[int], None]:
            def fill(fd: int) -> None:
                nonlocal cached
                fds.append(fd)
                if i + 1 < len(targets):
                    nxt = targets[i + 1].path
                    stats[nxt] = confined.write_file(
                        root, nxt, fill_from(i + 1), durable=False, sync_data=False, folders=folders
                    )
                    return
                verifier, direct = self._stream_verified(fds, t, readinto)
                problem = verifier.problem()
                if problem is not None:
                    raise IntegrityError(
                        f"{t.path}: the bytes received do not match the project ({problem}); "
                        "nothing was written; report the corrupted blob to the server operator",
                        {"path": t.path, "digest": t.digest},
                    )
                verified.append(verifier)
                if direct:
                    # On disk but a last partial block; that, the size and the extents
                    # are left to the batch's flush.
                    cached = t.size % directio.ALIGN
                elif t.size >= WRITEBACK_FROM_BYTES:
                    for each in fds:
                        confined.start_writeback(each)

            return fill

        stats[t.path] = confined.write_file(
            root, t.path, fill_from(0), durable=False, sync_data=False, folders=folders
        )
        blocks = b"".join(verified[0].block_hashes())
        for target in targets:
            folder = target.path.rpartition("/")[0]
            if folder not in self._written_dirs:
                with self.stats.lock:
                    self._written_dirs.add(folder)
        return [Written(w.path, w.digest, w.size, blocks, stats[w.path], cached) for w in targets]

    def _stream_verified(
        self, fds: list[int], t: DownloadTarget, readinto: Callable[[memoryview], int]
    ) -> tuple[BlockVerifier, bool]:
        """Stream ``t``'s bytes from ``readinto`` into every one of ``fds``, verifying them;
        and whether every file was opened to be written past the page cache (all but a
        last partial block of it)."""
        verifier = BlockVerifier(t.digest, t.size)
        buf = self._buffer()
        if self.limiter is not None:
            readinto = self.limiter.readinto(readinto)
        # A large file goes past the page cache (see directio); then every write but
        # the file's last must be whole blocks, so the buffer is filled before each
        # (a stop is still noticed between reads).
        direct = [t.size >= WRITEBACK_FROM_BYTES and directio.try_direct(fd) for fd in fds]
        all_direct = all(direct)
        # One byte more than expected is asked for, so an oversized body is
        # noticed without reading all of it.
        left = t.size + 1
        while left:
            self._check_stop()
            want = buf[: min(len(buf), left)]
            n = _filled(readinto, want, self._check_stop) if any(direct) else readinto(want)
            if not n:
                break
            left -= n
            chunk = buf[:n]
            verifier.update(chunk)
            if verifier.received > t.size:
                break
            for i, fd in enumerate(fds):
                if direct[i]:
                    direct[i] = directio.write_direct(fd, chunk)
                else:
                    rest = chunk
                    while rest:
                        rest = rest[os.write(fd, rest) :]
            self.progress.advance(nbytes=n * len(fds))
        return verifier, all_direct

    def _sync_dirs(self, root: Path) -> None:
        """Make the renames of this download durable: fsync each folder written to, once."""
        with self.stats.lock:
            dirs, self._written_dirs = self._written_dirs, set()
        for d in dirs:
            _fsync_dir(root / d)


def _make_durable(root: Path, batch: list[Written], jobs: int) -> None:
    """Flush a batch of written files to disk: one ``syncfs``, unless they are large and
    the machine holds more than :data:`OTHERS_PENDING_LIMIT` bytes of other writes, which
    that call would wait for too (an object store on the same disk that has just taken
    gigabytes, a camera writing beside the project); then one ``fdatasync`` per file.

    One ``syncfs`` for 1,000 files written past the page cache cost the clone of
    2,000 x 1 MB 0.82-0.91x the time of one ``fdatasync`` each (docs/PERFORMANCE.md):
    each ``fdatasync`` also flushes the disk's cache. Small files always get one call,
    the cheaper whatever else waits.
    """
    large = sum(w.size for w in batch) >= WRITEBACK_FROM_BYTES * len(batch)
    if large:
        others = confined.pending_writes(ours=sum(w.cached for w in batch))
        if others is None or others > OTHERS_PENDING_LIMIT:
            confined.sync_files(root, [w.path for w in batch], jobs)
            return
    confined.sync_filesystem(root)


def _wait_all(futures: list[Future[None]]) -> None:
    """Wait for every one of ``futures``; the first failure is raised."""
    for fut in futures:
        fut.result()


def _filled(
    readinto: Callable[[memoryview], int], buffer: memoryview, between: Callable[[], None]
) -> int:
    """Read into all of ``buffer``, short only where the body ends: bytes read.
    ``between`` runs before each read after the first (a stop check)."""
    got = 0
    while got < len(buffer):
        if got:
            between()
        n = readinto(buffer[got:])
        if not n:
            break
        got += n
    return got


def _runs(items: Iterable[T], size_of: Callable[[T], int]) -> Iterator[list[T]]:
    """``items`` cut into runs for one thread each: small ones together, up to
    :data:`RUN_FILES` or :data:`RUN_BYTES` (one task per 32 KiB image cost the main
    thread more than the transfer), a large one alone."""
    run: list[T] = []
    run_bytes = 0
    for item in items:
        run.append(item)
        run_bytes += size_of(item)
        if len(run) >= RUN_FILES or run_bytes >= RUN_BYTES:
            yield run
            run, run_bytes = [], 0
    if run:
        yield run


def _new_getter() -> StoreGetter:
    from robosync.client.storeget import StoreGetter  # loaded with the first body

    return StoreGetter(timeout=120.0, connect_timeout=10.0)


@dataclass(frozen=True)
class _UploadWorkers:
    """The threads of one upload: PUTs, completions, the early plan, the put loop."""

    pool: ThreadPoolExecutor
    completers: ThreadPoolExecutor
    planner: ThreadPoolExecutor
    putter: ThreadPoolExecutor


@contextlib.contextmanager
def _part_file(src: UploadSource) -> Iterator[int]:
    """The descriptor of ``src``'s file, open while its bytes are sent; refused
    (:class:`FileTrouble`) unless the file is as it was hashed, before and after."""
    # FileTrouble, not OSError, leaves a body: the HTTP layers take an OSError
    # for a broken connection and would retry it.
    with file_trouble("uploaded"):
        with open_as_hashed(src.file, src.stamp, "uploaded") as f:
            yield f.fileno()
        if src.stamp is not None:
            still_as_hashed(src.file, src.stamp, "uploaded")


def _pieces(part: wire.PresignedPart) -> Iterator[tuple[int, int]]:
    """``(offset, size)`` of each piece of at most :data:`_CHUNK` bytes ``part`` is sent in."""
    offset, end = part.offset, part.offset + part.size
    while offset < end:
        size = min(_CHUNK, end - offset)
        yield offset, size
        offset += size


def _read_single(src: UploadSource, part: wire.PresignedPart) -> bytes:
    """The bytes of a one-part blob's file, refused (:class:`FileTrouble`) unless the file
    is still as it was hashed."""
    with _part_file(src) as fd:
        data = os.pread(fd, part.size, part.offset)
        if len(data) != part.size:
            raise FileTrouble(SHRANK)
    return data


def _copy_outcome(done: Future[list[PutOutcome]], into: Future[list[PutOutcome]]) -> None:
    """Settle ``into`` as ``done`` was (unless it was cancelled meanwhile)."""
    try:
        if done.cancelled():
            into.cancel()
        elif (error := done.exception()) is not None:
            into.set_exception(error)
        else:
            into.set_result(done.result())
    except InvalidStateError:
        pass


def _new_fetch_loop(connections: int) -> FetchLoop:
    from robosync.client.fetchloop import FetchLoop  # loaded with the first small download

    return FetchLoop(connections, timeout=120.0, connect_timeout=10.0)


def _direct_route(url: str) -> bool:
    from robosync.client.storeget import direct_route  # loaded with the first body

    return direct_route(url)


class ChunkFiller:
    """``readinto`` over an iterator of byte chunks (the httpx path, used behind a proxy;
    a body the fetch loop read whole)."""

    def __init__(self, chunks: Iterable[bytes | memoryview]) -> None:
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")

    def readinto(self, buffer: memoryview) -> int:
        """Copy up to ``len(buffer)`` of the next bytes into ``buffer``; 0 at the end."""
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not every platform can open a folder
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
