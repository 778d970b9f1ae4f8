"""The robot agent: keeps project folders synced by itself, offline first.

One loop, one thread for file-system events:

- **When to push**: a watcher thread (``watchfiles``: inotify on Linux) marks
  a folder dirty on every change under it; the loop pushes once no change
  has arrived for ``settle`` seconds (under continuous capture, at the latest
  once the oldest change is ``max(5, 4 x settle)`` seconds old), plus a full
  rescan every ``rescan`` seconds in case an event was missed. The push itself leaves out any file
  written less than ``settle`` seconds ago (``Project.push(settle_seconds=)``),
  so a file still being copied is never uploaded; ``save_image`` temp files
  are never scanned at all. A burst of captures becomes one commit.
- **Offline first**: any failure backs off (doubling, jittered, up to
  ``max_backoff``); the next attempt resumes where the last one stopped
  (hashes are in the index, parts the store accepted are not sent again).
  One log line per state change (online, offline, waiting, error), not one
  per retry.
- **When to sync**: only inside ``window`` and while ``only_if`` exits 0.
- **Disk**: with ``keep_free`` the oldest files that are in a committed
  version are evicted until that much space is free again (never a file not
  on the server); ``evict_after_push`` evicts every committed file. Both
  work offline: capture is never blocked by the agent.
- **Stop**: ``stop`` (set on SIGTERM) cancels a transfer at its next slice;
  the index is only written in transactions, so the next start resumes.

State for ``robosync agent status`` is written to ``.robosync/agent.json``.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import watchfiles

from robosync.client.agentstate import (
    ERROR,
    OFFLINE,
    ONLINE,
    STARTING,
    STOPPED,
    WAITING,
    AgentState,
    save_state,
    utc_now,
)
from robosync.client.deferred import httpx
from robosync.client.index import DIRNAME, LOCAL, ProjectConfig
from robosync.client.lock import ProjectLocked
from robosync.client.project import Project, find_root
from robosync.client.retry import Retrying, is_transient
from robosync.client.scan import is_temp_name
from robosync.client.schedule import Backoff, SyncWindow, check_passes
from robosync.client.settings import DEFAULT_JOBS, ClientSettings
from robosync.client.sizes import parse_size
from robosync.client.transfer import Abandoned, Cancelled
from robosync.errors import InvalidInput, RobosyncError, Unavailable

log = logging.getLogger("robosync.agent")

# How long a passing --only-if check is trusted before it is run again.
CHECK_TTL = 30.0
# How often agent.json is rewritten while a transfer runs (for its rate).
STATE_EVERY = 2.0
# A user command holding the folder: try again this soon.
LOCKED_RETRY = 5.0
# Free space is looked at this often at most (and after every push).
DISK_CHECK_EVERY = 5.0
# Rate shown by `agent status`: bytes moved over this many last seconds.
RATE_WINDOW = 5.0


@dataclass
class AgentOptions:
    """How the agent syncs; from the command line and/or a TOML file."""

    folders: list[Path] = field(default_factory=list)
    settle: float = 2.0
    rescan: float = 300.0
    pull: bool = False
    pull_interval: float = 600.0
    window: SyncWindow | None = None
    only_if: str | None = None
    keep_free: int | None = None
    evict_after_push: bool = False
    bwlimit: int | None = None
    max_backoff: float = 300.0
    jobs: int = DEFAULT_JOBS

    @classmethod
    def from_toml(cls, path: Path) -> AgentOptions:
        """Options of a config file: ``folders = [...]`` and any option by name.

        Sizes (``keep_free``, ``bwlimit``) may be strings (``"2M"``), the
        window a string ``"22:00-06:00"``; relative folders are relative to
        the file.
        """
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InvalidInput(f"config file {path} not found") from None
        except tomllib.TOMLDecodeError as e:
            raise InvalidInput(f"{path}: not valid TOML ({e})") from None
        return cls().updated(data, base=path.parent, source=str(path))

    def updated(
        self, values: dict[str, Any], *, base: Path | None = None, source: str = "options"
    ) -> AgentOptions:
        """A copy with ``values`` (names as in the config file) applied and checked."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidInput(
                f"{source}: unknown option {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        out: dict[str, Any] = {}
        try:
            for name, value in values.items():
                out[name] = _option_value(name, value, base)
        except (TypeError, ValueError) as e:
            raise InvalidInput(f"{source}: {name}: {e}") from None
        return replace(self, **out)


def _option_value(name: str, value: Any, base: Path | None) -> Any:
    if name == "folders":
        return [(base / str(f)) if base else Path(str(f)) for f in value]
    if name in ("keep_free", "bwlimit"):
        return parse_size(value) if isinstance(value, str) else int(value)
    if name == "window":
        return SyncWindow.parse(value) if isinstance(value, str) else value
    if name in ("rescan", "pull_interval", "max_backoff"):
        if float(value) < 1:
            raise ValueError("must be at least 1 (seconds)")
        return float(value)
    if name == "settle":
        if float(value) < 0:
            raise ValueError("must not be negative")
        return float(value)
    if name in ("pull", "evict_after_push"):
        if not isinstance(value, bool):
            raise TypeError("must be true or false")
        return value
    if name == "jobs":
        return int(value)
    return value


class RateMeter:
    """A :class:`Progress` that remembers bytes moved, for the rate ``agent status`` shows."""

    def __init__(self, on_tick: Any = None) -> None:
        self._lock = threading.Lock()
        self._samples: list[tuple[float, int]] = []
        self._on_tick = on_tick
        self._ticked = 0.0

    def start(self, phase: str, files: int, total_bytes: int) -> None:
        """A phase begins (nothing to do)."""

    def advance(self, files: int = 0, nbytes: int = 0) -> None:
        """Record bytes moved."""
        now = time.monotonic()
        with self._lock:
            if nbytes:
                self._samples.append((now, nbytes))
            tick = now - self._ticked >= STATE_EVERY
            if tick:
                self._ticked = now
        if tick and self._on_tick is not None:
            self._on_tick()

    def finish(self) -> None:
        """A phase ends (nothing to do)."""

    def rate(self) -> float:
        """Bytes per second over the last :data:`RATE_WINDOW` seconds."""
        now = time.monotonic()
        with self._lock:
            self._samples = [s for s in self._samples if now - s[0] <= RATE_WINDOW]
            return sum(n for _, n in self._samples) / RATE_WINDOW


class FolderSync:
    """The agent's bookkeeping for one project folder."""

    def __init__(self, root: Path, options: AgentOptions) -> None:
        self.root = root
        self.name = _project_name(root)
        self.options = options
        self.backoff = Backoff(cap=max(options.max_backoff, 0.1))
        # When the oldest change not pushed yet was seen (None: nothing new).
        # Written by the watcher thread too, hence the lock.
        self.dirty_since: float | None = time.monotonic()
        # When the newest change was seen: a burst is pushed once it is quiet.
        self.last_change: float | None = None
        self._dirty_lock = threading.Lock()
        self.next_try = 0.0  # not before (back-off, a folder locked by a user command)
        self.next_rescan = 0.0
        self.next_pull = 0.0
        self.next_disk_check = 0.0
        self.disk_warned = False  # "nothing left to evict" said once, until space is back
        self.meter = RateMeter(on_tick=self.save)
        self.state = AgentState(folder=str(root), pid=os.getpid(), since=utc_now())
        self._last_reason = ""

    # --- state ------------------------------------------------------------

    def change_state(self, state: str, reason: str) -> None:
        """Record ``state``; one log line when the state (or its reason) changes."""
        if state != self.state.state or (state != ONLINE and reason != self._last_reason):
            text = f"{self.name}: {state}: {reason}" if reason else f"{self.name}: {state}"
            (log.warning if state in (OFFLINE, ERROR) else log.info)(text)
            if state != self.state.state:
                self.state.since = utc_now()
        self._last_reason = reason
        self.state.state = state
        if state in (OFFLINE, ERROR):
            self.state.last_error = reason
        self.save()

    def save(self) -> None:
        """Write ``agent.json`` (atomically)."""
        self.state.rate_bytes_per_s = round(self.meter.rate(), 1)
        try:
            save_state(self.root, self.state)
        except OSError as e:  # a full disk must not stop the agent
            log.debug("%s: cannot write agent state: %s", self.name, e)

    # --- changes ----------------------------------------------------------

    def note_change(self) -> None:
        """The watcher saw a change under this folder."""
        now = time.monotonic()
        with self._dirty_lock:
            self.last_change = now
            if self.dirty_since is None:
                self.dirty_since = now

    def take_changes(self) -> float | None:
        """A push starts: what it covers is no longer pending; returns when it began."""
        with self._dirty_lock:
            since, self.dirty_since = self.dirty_since, None
        return since

    def still_pending(self, since: float | None) -> None:
        """Changes from ``since`` were not pushed after all (failure, files not settled)."""
        if since is None:
            return
        with self._dirty_lock:
            self.dirty_since = since if self.dirty_since is None else min(since, self.dirty_since)
            # Files left out were too young: ask again once they can have settled.
            self.last_change = max(self.last_change or 0.0, time.monotonic())

    # --- decisions --------------------------------------------------------

    def push_due(self, now: float) -> bool:
        """Whether a push should run now: a burst went quiet, waited long enough, or rescan time.

        A push waits until no change arrived for ``settle`` seconds, so a burst
        of captures becomes one commit; under continuous capture it still runs
        once the oldest change is ``max_batch_delay`` old, and the push itself
        leaves out whatever is younger than ``settle``.
        """
        if now < self.next_try:
            return False
        if now >= self.next_rescan:
            return True
        return self._batch_due_at() <= now

    def _batch_due_at(self) -> float:
        since = self.dirty_since
        if since is None:
            return float("inf")
        quiet = self.last_change if self.last_change is not None else since
        return min(quiet + self.options.settle, since + self.max_batch_delay)

    @property
    def max_batch_delay(self) -> float:
        """Longest a change waits for its burst to end before it is pushed anyway."""
        return max(5.0, 4 * self.options.settle)

    def wake_in(self, now: float) -> float:
        """Seconds until this folder may need the loop again."""
        times = [max(self.next_try, self.next_rescan), max(self.next_try, self._batch_due_at())]
        if self.options.pull:
            times.append(max(self.next_try, self.next_pull))
        return max(0.0, min(times) - now)


class Agent:
    """Syncs folders until ``stop`` is set."""

    def __init__(
        self,
        options: AgentOptions,
        settings: ClientSettings,
        stop: threading.Event | None = None,
    ) -> None:
        self.options = options
        self.settings = replace(settings, bwlimit=options.bwlimit or settings.bwlimit)
        self.stop = stop or threading.Event()
        self.wake = threading.Event()
        roots = [find_root(f) for f in (options.folders or [Path.cwd()])]
        self.folders = [FolderSync(r, options) for r in dict.fromkeys(roots)]
        self._check_until = 0.0
        self._check_ok = True

    # --- the loop ---------------------------------------------------------

    def request_stop(self) -> None:
        """Stop soon (safe from a signal handler): transfers stop at their next slice."""
        self.stop.set()
        self.wake.set()

    def run(self) -> None:
        """Sync until ``stop`` is set; the state of every folder is left as ``stopped``."""
        watcher = threading.Thread(target=self._watch, name="robosync-watch", daemon=True)
        watcher.start()
        for f in self.folders:
            f.state.server = self.settings.server or _configured_server(f.root)
            f.change_state(STARTING, "")
        log.info(
            "watching %s (settle %.1fs, rescan every %.0fs%s)",
            ", ".join(str(f.root) for f in self.folders),
            self.options.settle,
            self.options.rescan,
            f", bandwidth cap {self.options.bwlimit} B/s" if self.options.bwlimit else "",
        )
        try:
            while not self.stop.is_set():
                self._round()
                now = time.monotonic()
                pause = min(f.wake_in(now) for f in self.folders)
                self.wake.wait(min(max(pause, 0.05), 60.0))
                self.wake.clear()
        except Cancelled:
            pass
        finally:
            self.stop.set()
            self.wake.set()
            for f in self.folders:
                f.change_state(STOPPED, "agent stopped")
            watcher.join(timeout=5)

    def _round(self) -> None:
        for f in self.folders:
            if self.stop.is_set():
                return
            now = time.monotonic()
            if self.options.keep_free is not None and now >= f.next_disk_check:
                f.next_disk_check = now + DISK_CHECK_EVERY
                self._keep_free(f)
            if not (f.push_due(now) or self._pull_due(f, now)):
                continue
            blocked = self._blocked()
            if blocked:
                f.change_state(WAITING, blocked)
                f.next_try = now + min(60.0, self.options.rescan or 60.0)
                continue
            self._sync(f)

    def _pull_due(self, f: FolderSync, now: float) -> bool:
        return self.options.pull and now >= max(f.next_pull, f.next_try)

    def _blocked(self) -> str:
        """Why syncing is not allowed now ("" if it is)."""
        window = self.options.window
        if window is not None and not window.contains(datetime.now()):
            return f"outside the sync window {window}"
        if self.options.only_if:
            now = time.monotonic()
            if now >= self._check_until:
                self._check_ok = check_passes(self.options.only_if)
                self._check_until = now + CHECK_TTL
            if not self._check_ok:
                return f"the check `{self.options.only_if}` fails"
        return ""

    # --- one sync ---------------------------------------------------------

    def _retrying(self) -> Retrying:
        # Short inner budgets: the agent's own back-off does the waiting, and a
        # stop request interrupts any pause.
        def pause(seconds: float) -> None:
            if self.stop.wait(seconds):
                raise Cancelled("stopped on request")

        return Retrying(attempts=4, unreachable_attempts=1, max_delay=8.0, sleep=pause)

    def _sync(self, f: FolderSync) -> None:
        try:
            p = Project.open(f.root, settings=self.settings, retrying=self._retrying())
        except Exception as e:
            self._failed(f, e)
            return
        with p:
            f.state.server = p.api.server
            since: float | None = None
            pushing = f.push_due(time.monotonic())
            try:
                if pushing:
                    since = f.take_changes()
                    self._push(f, p, since)
                if self._pull_due(f, time.monotonic()):
                    self._pull(f, p)
            except Cancelled:
                f.still_pending(since)
                raise
            except ProjectLocked:
                f.still_pending(since)
                f.next_try = time.monotonic() + LOCKED_RETRY
            except Exception as e:
                f.still_pending(since)
                self._failed(f, e)
            else:
                f.backoff.reset()
                if pushing:
                    f.next_rescan = time.monotonic() + self.options.rescan
            finally:
                _record_pending(f, p)
                f.save()

    def _push(self, f: FolderSync, p: Project, since: float | None) -> None:
        started = time.monotonic()
        r = p.push(
            jobs=self.options.jobs,
            message=f"agent on {p.config.robot}",
            progress=f.meter,
            settle_seconds=self.options.settle,
            cancel=self.stop,
        )
        back = f.state.state in (OFFLINE, ERROR)
        if r.committed:
            f.state.last_sync = utc_now()
            f.state.last_version = r.version
            log.info(
                "%s: pushed v%d: +%d ~%d -%d files, %d bytes sent%s",
                f.name,
                r.version,
                r.added,
                r.modified,
                r.deleted,
                r.bytes_sent,
                f", {r.parts_skipped} parts already there" if r.parts_skipped else "",
            )
        elif f.state.last_version is None:
            f.state.last_version = r.version
        f.change_state(ONLINE, "back online" if back else "pushing when captures settle")
        f.next_disk_check = 0.0
        if r.left_out:
            # Written during the settle time, or changed while uploaded: due
            # again once they have settled. After a commit they date from this
            # push (what was older went in with it); dated from the burst's start
            # the batch stayed overdue and, under continuous capture, push followed
            # push back to back (60 versions for a 10 s burst).
            if r.committed or since is None:
                f.still_pending(started)
            else:
                f.still_pending(min(since, started))
        if self.options.evict_after_push:
            self._evict(f, p, None)

    def _pull(self, f: FolderSync, p: Project) -> None:
        r = p.pull(jobs=self.options.jobs, progress=f.meter)
        f.next_pull = time.monotonic() + self.options.pull_interval
        f.state.last_sync = utc_now()
        f.state.last_version = r.version
        if r.downloaded or r.copied or r.merged:
            log.info(
                "%s: pulled v%d: %d downloaded, %d copied",
                f.name,
                r.version,
                r.downloaded,
                r.copied,
            )
        f.change_state(ONLINE, "")

    def _failed(self, f: FolderSync, e: Exception) -> None:
        delay = f.backoff.next_delay()
        f.next_try = time.monotonic() + delay
        if _is_offline(e):
            f.change_state(OFFLINE, f"{_reason(e)}; retrying with back-off up to {_span(f)}")
        else:
            f.change_state(ERROR, f"{_reason(e)}; retrying with back-off up to {_span(f)}")
        log.debug("%s: next attempt in %.1fs", f.name, delay)

    # --- disk -------------------------------------------------------------

    def _keep_free(self, f: FolderSync) -> None:
        assert self.options.keep_free is not None
        try:
            short = self.options.keep_free - shutil.disk_usage(f.root).free
            if short <= 0:
                f.disk_warned = False
                return
            with Project.open(f.root, settings=self.settings, retrying=self._retrying()) as p:
                self._evict(f, p, short)
        except ProjectLocked:
            f.next_disk_check = 0.0
        except (OSError, RobosyncError) as e:
            log.warning("%s: cannot free disk: %s", f.name, _reason(e))

    def _evict(self, f: FolderSync, p: Project, short: int | None) -> None:
        """Evict committed files, oldest first, until ``short`` bytes are freed (all if None)."""
        index = p.index
        committed = (r for r in index.file_rows() if r.state == LOCAL)
        rows = sorted(
            (r for r in committed if index.is_committed(r)),
            key=lambda r: (r.mtime_ns, r.path),
        )
        chosen: list[str] = []
        total = 0
        for r in rows:
            if short is not None and total >= short:
                break
            chosen.append(r.path)
            total += r.size
        if not chosen:
            if short is not None and not f.disk_warned:
                f.disk_warned = True
                log.warning(
                    "%s: %d bytes short of --keep-free, and no committed file left to evict",
                    f.name,
                    short,
                )
            return
        result = p.evict(chosen)
        if result.evicted:
            f.state.evicted_files += len(result.evicted)
            f.state.evicted_bytes += result.bytes_freed
            log.info(
                "%s: evicted %d committed files (%d bytes): %s",
                f.name,
                len(result.evicted),
                result.bytes_freed,
                _listing(result.evicted),
            )
            f.save()

    # --- events -----------------------------------------------------------

    def _watch(self) -> None:
        roots = {str(f.root): f for f in self.folders}
        try:
            for changes in watchfiles.watch(
                *roots,
                watch_filter=_is_capture,
                debounce=200,
                step=50,
                stop_event=self.stop,
                raise_interrupt=False,
            ):
                for _, path in changes:
                    for root, f in roots.items():
                        if path.startswith(root + os.sep):
                            f.note_change()
                self.wake.set()
        except Exception as e:  # the periodic rescan still finds every change
            log.warning("file-system events unavailable (%s); relying on the periodic rescan", e)


def _record_pending(f: FolderSync, p: Project) -> None:
    """Files and bytes of local changes not committed yet, as the index knows them."""
    try:
        delta = p.index.local_delta()
    except Exception as e:  # the state file is best effort
        log.debug("%s: cannot count pending changes: %s", f.name, e)
        return
    f.state.pending_files = len(delta.added) + len(delta.modified) + len(delta.deleted)
    f.state.pending_bytes = sum(e.size for e in (*delta.added.values(), *delta.modified.values()))


def _is_capture(change: watchfiles.Change, path: str) -> bool:
    parts = Path(path).parts
    return DIRNAME not in parts and not is_temp_name(parts[-1])


def _configured_server(root: Path) -> str:
    try:
        return ProjectConfig.load(root).server
    except (OSError, ValueError, KeyError):
        return ""


def _project_name(root: Path) -> str:
    try:
        return ProjectConfig.load(root).project_name
    except (OSError, ValueError, KeyError):
        return root.name


def _is_offline(e: BaseException) -> bool:
    if isinstance(e, Abandoned | httpx.TransportError | Unavailable):
        return True
    return is_transient(e)


def _reason(e: BaseException) -> str:
    if isinstance(e, RobosyncError):
        return e.message
    if isinstance(e, httpx.TransportError):
        return f"cannot reach the server ({e or type(e).__name__})"
    return f"{type(e).__name__}: {e}"


def _span(f: FolderSync) -> str:
    cap = f.backoff.cap
    return f"{cap / 60:g} min" if cap >= 60 else f"{cap:g} s"


def _listing(paths: Iterable[str], limit: int = 10) -> str:
    paths = list(paths)
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")
