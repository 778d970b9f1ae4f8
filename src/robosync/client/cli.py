"""The ``robosync`` command: parsing and printing only; the work is in :mod:`project`."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import logging
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import httpx

from robosync.client.api import Api
from robosync.client.cli_teams import add_team_commands
from robosync.client.merge import POLICIES, MergeNote
from robosync.client.project import Project, PullResult, PushResult, clone
from robosync.client.settings import ClientSettings
from robosync.client.sizes import parse_size
from robosync.client.transfer import DEFAULT_JOBS
from robosync.errors import RateLimited, RobosyncError, Unauthorized, Unavailable

# Exit codes: 0 done; 1 failed (one line on stderr says why); 2 bad usage
# (argparse); 3 a push committed everything but some files it left out (each
# named on stderr with its reason, and in --json `left_out`); 130 Ctrl-C.
EXIT_FAILED = 1
EXIT_LEFT_OUT = 3
EXIT_INTERRUPTED = 130


def human_bytes(n: float) -> str:
    """``1.5 MiB``-style size."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class TerminalProgress:
    """Draws ``phase files/total bytes/total rate ETA`` on one stderr line (a TTY)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.lock = threading.Lock()
        self.phase = ""
        self.files = self.total_files = self.nbytes = self.total_bytes = 0
        self.started = self.drawn = 0.0

    def start(self, phase: str, files: int, total_bytes: int) -> None:
        """Begin a phase."""
        with self.lock:
            self.phase, self.total_files, self.total_bytes = phase, files, total_bytes
            self.files = self.nbytes = 0
            self.started = time.monotonic()

    def advance(self, files: int = 0, nbytes: int = 0) -> None:
        """Count work and redraw at most 10 times a second."""
        with self.lock:
            self.files += files
            self.nbytes += nbytes
            now = time.monotonic()
            if now - self.drawn >= 0.1:
                self.drawn = now
                self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self.started, 1e-6)
        rate = self.nbytes / elapsed
        line = f"{self.phase}: {self.files}"
        if self.total_files:
            line += f"/{self.total_files}"
        line += f" files, {human_bytes(self.nbytes)}"
        if self.total_bytes:
            line += f"/{human_bytes(self.total_bytes)}"
        line += f", {human_bytes(rate)}/s"
        if self.total_bytes and rate > 0 and self.nbytes < self.total_bytes:
            line += f", ETA {int((self.total_bytes - self.nbytes) / rate)}s"
        self.stream.write("\r\033[K" + line)
        self.stream.flush()

    def finish(self) -> None:
        """End the phase and clear the line."""
        with self.lock:
            if self.drawn:
                self.stream.write("\r\033[K")
                self.stream.flush()
            self.drawn = 0.0


class Output:
    """Where results go: one-line summaries, or JSON with ``--json``."""

    def __init__(self, as_json: bool, out: TextIO, err: TextIO) -> None:
        self.as_json, self.out, self.err = as_json, out, err

    def result(self, data: Any, text: str | Callable[[], str]) -> None:
        """Print ``data`` as JSON, or ``text``."""
        if self.as_json:
            self.out.write(json.dumps(data, default=str, indent=None) + "\n")
        else:
            body = text() if callable(text) else text
            if body:
                self.out.write(body.rstrip("\n") + "\n")

    def warn(self, message: str) -> None:
        """A warning line on stderr."""
        self.err.write(f"robosync: warning: {message}\n")

    def progress(self) -> TerminalProgress | None:
        """A progress display if stderr is a terminal and output is not JSON."""
        return TerminalProgress(self.err) if self.err.isatty() and not self.as_json else None


# --- commands -------------------------------------------------------------------


def _notes_text(notes: list[MergeNote]) -> list[str]:
    return [
        f"  merged {n.path}: {n.outcome} ({n.detail})"
        for n in notes
        if n.outcome not in ("same", "local")
    ]


def _warn_invalid(o: Output, invalid: list[tuple[str, str]]) -> None:
    for path, reason in invalid:
        o.warn(f"skipped {path!r}: {reason}; rename it to sync it")


def cmd_login(a: argparse.Namespace, s: ClientSettings, o: Output) -> int:
    """Check the token against the server and save it."""
    api = Api(a.server, a.token)
    try:
        projects = api.list_projects()
    finally:
        api.close()
    path = s.save_login(a.server, a.token)
    o.result(
        {"server": a.server, "credentials": str(path), "projects": len(projects)},
        f"logged in to {a.server} ({len(projects)} projects); token saved in {path}",
    )
    return 0


def cmd_projects(a: argparse.Namespace, s: ClientSettings, o: Output) -> int:
    """List the projects the user may read: own and shared, with owner and role."""
    url = s.server_url()
    api = Api(url, s.token_for(url))
    try:
        projects = api.list_projects()
    finally:
        api.close()
    lines = [
        f"{p.owner + '/' + p.name:40} {p.role:5} v{p.head_version:<6} {p.file_count:>8} files "
        f"{human_bytes(p.total_bytes):>11}"
        for p in projects
    ]
    o.result([p.model_dump(mode="json") for p in projects], "\n".join(lines) or "no projects yet")
    return 0


def cmd_init(a: argparse.Namespace, s: ClientSettings, o: Output) -> int:
    """Create a project and make a folder its working folder."""
    with Project.init(a.name, a.dir, robot=a.robot, settings=s) as p:
        o.result(
            {"project": p.config.project_name, "id": p.config.project_id, "dir": str(p.root)},
            f"created project {p.config.project_name} in {p.root}; "
            "add images and run `robosync push`",
        )
    return 0


def cmd_clone(a: argparse.Namespace, s: ClientSettings, o: Output) -> int:
    """Download a project into a new folder."""
    p = clone(
        a.name,
        a.dir,
        version=a.version,
        robot=a.robot,
        jobs=a.jobs,
        settings=s,
        progress=o.progress(),
    )
    with p:
        v = p.index.base_version
        n = p.index.base_count()
        o.result(
            {"project": p.config.project_name, "version": v, "files": n, "dir": str(p.root)},
            f"cloned {p.config.project_name} v{v}: {n} files into {p.root}",
        )
    return 0


def cmd_status(a: argparse.Namespace, s: ClientSettings, o: Output) -> int:
    """Show local changes and whether the server moved on."""
    with Project.open(a.project_dir, settings=s) as p:
        st = p.status(progress=o.progress())

    def text() -> str:
        lines = [f"project {p.config.project_name}, synced at v{st.base_version}"]
        if st.remote_error:
            lines.append(f"server: unknown ({st.remote_error})")
        if st.server_moved:
            lines.append(f"server is at v{st.head_version}: run `robosync pull`")
        for label, paths in (
            ("added", st.added),
            ("modified", st.modified),
            ("deleted", st.deleted),
            ("evicted", st.evicted),
            ("not downloaded", st.remote_only),
        ):
            lines.extend(f"  {label + ':':15} {path}" for path in paths)
        lines.extend(f"  {'not scanned:':15} {x.path} ({x.reason})" for x in st.left_out)
        if not (st.added or st.modified or st.deleted):
            lines.append("no local changes")
        return "\n".join(lines)

    _warn_invalid(o, st.invalid)
    o.result(st.to_dict(), text)
    return 0


def _push_text(r: PushResult) -> str:
    if not r.committed and not r.merged:
        if r.left_out:
            return f"nothing committed (v{r.version}): {len(r.left_out)} files left out"
        return f"nothing to push (v{r.version})"
    lines = _notes_text(r.merged)
    lines.append(
        f"pushed v{r.version}: +{r.added} ~{r.modified} -{r.deleted} files; "
        f"uploaded {r.uploaded_blobs} blobs ({human_bytes(r.bytes_sent)}), "
        f"{r.already_present} already on the server"
        + (f", {r.parts_skipped} parts resumed" if r.parts_skipped else "")
        + (f"; {len(r.left_out)} files left out" if r.left_out else "")
    )
    return "\n".join(lines)


def cmd_push(a: argparse.Namespace, s: ClientSettings, o: Output) -> int:
    """Upload and commit local changes."""
    with Project.open(a.project_dir, settings=s) as p:
        r = p.push(jobs=a.jobs, policy=a.policy, message=a.message, progress=o.progress())
    _warn_invalid(o, r.invalid)
    for item in r.left_out:
        o.warn(f"left out {item.path}: {item.reason}; the next push picks it up")
    o.result(r.to_dict(), lambda: _push_text(r))
    return EXIT_LEFT_OUT if r.left_out else 0


def _pull_text(r: PullResult, verb: str) -> str:
    lines = _notes_text(r.merged)
    lines.append(
        f"{verb} v{r.version}: {r.downloaded} downloaded ({human_bytes(r.bytes_received)}), "
        f"{r.copied} copied from local duplicates"
    )
    return "\n".join(lines)


def cmd_pull(a: argparse.Namespace, s: ClientSettings, o: Output) -> int:
    """Bring the folder to the server's head."""
    with Project.open(a.project_dir, settings=s) as p:
        r = p.pull(jobs=a.jobs, policy=a.policy, progress=o.progress())
    _warn_invalid(o, r.invalid)
    o.result(r.to_dict(), lambda: _pull_text(r, "pulled"))
    return 0


def cmd_log(a: argparse.Namespace, s: ClientSettings, o: Output) -> int:
    """Show the history."""
    with Project.open(a.project_dir, settings=s) as p:
        versions = p.log()
    lines = [
        f"v{v.number:<5} {v.created_at:%Y-%m-%d %H:%M:%S} {v.robot:16} "
        f"+{v.files_added} -{v.files_removed} ({v.file_count} files) {v.message}"
        for v in versions
    ]
    o.result([v.model_dump(mode="json") for v in versions], "\n".join(lines))
    return 0


def cmd_rm(a: argparse.Namespace, s: ClientSettings, o: Output) -> int:
    """Delete files from the project (committed at the next push)."""
    with Project.open(a.project_dir, settings=s) as p:
        removed = p.rm(a.paths)
    o.result({"removed": removed}, f"removed {len(removed)} files; run `robosync push` to commit")
    return 0


def cmd_evict(a: argparse.Namespace, s: ClientSettings, o: Output) -> int:
    """Free disk of files already on the server."""
    with Project.open(a.project_dir, settings=s) as p:
        r = p.evict(a.paths or None)
    for path, why in r.kept:
        o.warn(f"kept {path}: {why}")
    o.result(r.to_dict(), f"evicted {len(r.evicted)} files, freed {human_bytes(r.bytes_freed)}")
    # Named files that were refused fail the command; `evict` of everything
    # skipping unpushed files is its normal work.
    return 1 if a.paths and r.kept else 0


def cmd_fetch(a: argparse.Namespace, s: ClientSettings, o: Output) -> int:
    """Download evicted files back."""
    with Project.open(a.project_dir, settings=s) as p:
        r = p.fetch(a.paths or None, jobs=a.jobs, progress=o.progress())
    o.result(r.to_dict(), lambda: _pull_text(r, "fetched at"))
    return 0


def cmd_restore(a: argparse.Namespace, s: ClientSettings, o: Output) -> int:
    """Bring back a file as it was in a version."""
    with Project.open(a.project_dir, settings=s) as p:
        p.restore(a.path, a.version, progress=o.progress())
    o.result(
        {"path": a.path, "version": a.version},
        f"restored {a.path} from v{a.version}; run `robosync push` to commit it",
    )
    return 0


def cmd_agent(a: argparse.Namespace, s: ClientSettings, o: Output) -> int:
    """Run the robot agent in the foreground until SIGTERM (or show its status)."""
    from robosync.client.agent import Agent, AgentOptions

    if a.folders[:1] == ["status"]:
        return _agent_status(a.folders[1:] or [a.project_dir], o)
    options = AgentOptions.from_toml(Path(a.config)) if a.config else AgentOptions()
    given = {
        "folders": [Path(a.project_dir) / f for f in a.folders] if a.folders else None,
        "settle": a.settle,
        "rescan": a.rescan,
        "pull": a.pull,
        "pull_interval": a.pull_interval,
        "window": a.window,
        "only_if": a.only_if,
        "keep_free": a.keep_free,
        "evict_after_push": a.evict_after_push,
        "bwlimit": a.bwlimit,
        "max_backoff": a.max_backoff,
        "jobs": a.jobs,
    }
    options = options.updated({k: v for k, v in given.items() if v is not None}, source="agent")
    if not options.folders:
        options.folders = [Path(a.project_dir)]
    agent = Agent(options, s)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: agent.request_stop())
    logging.getLogger("robosync.agent").setLevel(logging.DEBUG if a.debug else logging.INFO)
    agent.run()
    return 0


def _agent_status(folders: list[str], o: Output) -> int:
    from robosync.client.agentstate import load_state
    from robosync.client.project import find_root

    found = []
    for folder in folders:
        root = find_root(folder)
        st = load_state(root)
        found.append((root, st))
    data = [
        {"folder": str(root), **(st.to_dict() if st else {"state": "never-run", "running": False})}
        for root, st in found
    ]

    def line(root: Path, st: Any) -> str:
        if st is None:
            return f"{root}: no agent has run here; start one with `robosync agent {root}`"
        run = f"agent running (pid {st.pid})" if st.running else "agent not running"
        parts = [
            f"{root}: {st.state} since {st.since}, {run}",
            f"  last sync: {st.last_sync or 'never'}"
            + (f" (v{st.last_version})" if st.last_version is not None else ""),
            f"  pending: {st.pending_files} files, {human_bytes(st.pending_bytes)}; "
            f"rate {human_bytes(st.rate_bytes_per_s)}/s",
        ]
        if st.evicted_files:
            parts.append(f"  evicted: {st.evicted_files} files, {human_bytes(st.evicted_bytes)}")
        if st.last_error:
            parts.append(f"  last error: {st.last_error}")
        return "\n".join(parts)

    o.result(data, lambda: "\n".join(line(r, st) for r, st in found))
    return 0


# --- parser ---------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``robosync``."""

    def global_options(suppress: bool) -> argparse.ArgumentParser:
        # Sub-commands accept the global options too; SUPPRESS keeps their
        # defaults from overwriting a value given before the sub-command.
        def d(value: object) -> object:
            return argparse.SUPPRESS if suppress else value

        g = argparse.ArgumentParser(add_help=False)
        g.add_argument("--json", action="store_true", default=d(False), help="machine output")
        g.add_argument("--debug", action="store_true", default=d(False), help="show tracebacks")
        g.add_argument("-C", dest="project_dir", default=d("."), help="project folder")
        return g

    common = global_options(suppress=True)
    parser = argparse.ArgumentParser(
        prog="robosync",
        description="Sync robot images with a robosync server.",
        parents=[global_options(suppress=False)],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Callable[..., int], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_, parents=[common])
        p.set_defaults(fn=fn)
        return p

    def jobs(p: argparse.ArgumentParser) -> None:
        p.add_argument("--jobs", "-j", type=int, default=DEFAULT_JOBS, help="parallel transfers")

    def bwlimit(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--bwlimit",
            type=_size,
            metavar="RATE",
            help="cap blob transfers at RATE bytes/s, up and down together (e.g. 2M, 500K)",
        )

    def policy(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--policy",
            choices=POLICIES,
            default="keep-both",
            help="what to do when both sides changed a file (default keep-both)",
        )

    p = add("login", cmd_login, "save a token for a server")
    p.add_argument("--server", required=True)
    p.add_argument("--token", required=True)
    add("projects", cmd_projects, "list your projects and those shared with you")
    p = add("init", cmd_init, "create a project; DIR (default .) becomes its folder")
    p.add_argument("name")
    p.add_argument("dir", nargs="?", default=".")
    p.add_argument("--robot", help="this robot's name (default $ROBOSYNC_ROBOT or host name)")
    p = add("clone", cmd_clone, "download a project into a new folder")
    p.add_argument("name", metavar="NAME", help="NAME, or OWNER/NAME for a shared project")
    p.add_argument("dir")
    p.add_argument("--version", type=int, help="version to check out (default head)")
    p.add_argument("--robot", help="this robot's name (default $ROBOSYNC_ROBOT or host name)")
    jobs(p)
    bwlimit(p)
    add("status", cmd_status, "show local changes and whether the server moved on")
    p = add("push", cmd_push, "upload and commit local changes")
    jobs(p)
    policy(p)
    p.add_argument("--message", "-m", default="", help="version message")
    bwlimit(p)
    p = add("pull", cmd_pull, "bring the folder to the server's head")
    jobs(p)
    policy(p)
    bwlimit(p)
    add("log", cmd_log, "show the project's versions")
    p = add("rm", cmd_rm, "delete files from the project (committed by the next push)")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p = add("evict", cmd_evict, "free disk of files the server holds (all if no PATH)")
    p.add_argument("paths", nargs="*", metavar="PATH")
    p = add("fetch", cmd_fetch, "download evicted files back (all if no PATH)")
    p.add_argument("paths", nargs="*", metavar="PATH")
    jobs(p)
    bwlimit(p)
    p = add("restore", cmd_restore, "bring back PATH as it was in a version")
    p.add_argument("path")
    p.add_argument("--version", type=int, required=True)
    add_team_commands(add)
    _add_agent(add("agent", cmd_agent, AGENT_HELP), jobs, bwlimit)
    return parser


AGENT_HELP = (
    "sync project folders by themselves, in the foreground (for systemd): push settled "
    "captures on file-system events, keep going offline; `robosync agent status` shows "
    "how each folder is doing"
)


def _add_agent(
    p: argparse.ArgumentParser,
    jobs: Callable[[argparse.ArgumentParser], None],
    bwlimit: Callable[[argparse.ArgumentParser], None],
) -> None:
    p.add_argument(
        "folders",
        nargs="*",
        metavar="FOLDER",
        help="project folders (default: the current one); `status [FOLDER...]` shows the "
        "agent's state of each folder instead",
    )
    p.add_argument("--config", metavar="FILE", help="TOML file: folders = [...] and any option")
    p.add_argument(
        "--settle", type=float, metavar="S", help="push a file once unchanged for S s (default 2)"
    )
    p.add_argument("--rescan", type=float, metavar="S", help="full rescan every S s (default 300)")
    p.add_argument(
        "--pull",
        action="store_true",
        default=None,
        help="also pull other robots' changes every --pull-interval",
    )
    p.add_argument("--pull-interval", type=float, metavar="S", help="default 600")
    p.add_argument(
        "--window", metavar="HH:MM-HH:MM", help="sync only inside this daily window (local time)"
    )
    p.add_argument(
        "--only-if", metavar="COMMAND", help="sync only while COMMAND exits 0 (a Wi-Fi check)"
    )
    p.add_argument(
        "--keep-free",
        type=_size,
        metavar="SIZE",
        help="evict the oldest committed files while less than SIZE is free (e.g. 2G)",
    )
    p.add_argument(
        "--evict-after-push",
        action="store_true",
        default=None,
        help="evict every file as soon as it is committed",
    )
    p.add_argument(
        "--max-backoff", type=float, metavar="S", help="longest pause between retries (default 300)"
    )
    jobs(p)
    p.set_defaults(jobs=None)
    bwlimit(p)


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


_HINTS: list[tuple[type[RobosyncError], str]] = [
    (Unauthorized, "check the token: run `robosync login --server URL --token TOKEN`"),
    (RateLimited, "the server is busy; run the command again in a minute"),
    (Unavailable, "the server or its storage is down; run the command again later"),
]


def _disk_full(e: BaseException) -> bool:
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    # SQLite says it in words (SQLITE_FULL), for the folder's index.
    return isinstance(e, sqlite3.OperationalError) and "disk is full" in str(e)


def _error_line(e: BaseException) -> str:
    if _disk_full(e):
        where = f" at {e.filename}" if isinstance(e, OSError) and e.filename else ""
        return (
            f"the disk is full{where} ({e}); free some space and run the command again "
            "(no file is left half-written; files already written are kept)"
        )
    if isinstance(e, RobosyncError):
        for cls, hint in _HINTS:
            if isinstance(e, cls) and "robosync " not in e.message:
                return f"{e.message}; {hint}"
        return e.message
    if isinstance(e, httpx.TransportError):
        return f"cannot reach the server ({e}); check the URL and the network, then run again"
    if isinstance(e, OSError):
        return f"{e}; check the path and permissions"
    return f"unexpected {type(e).__name__}: {e}; run again with --debug and report it"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``robosync``; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="robosync: %(levelname)s: %(message)s",
    )
    if not args.debug:
        logging.getLogger("httpx").setLevel(logging.WARNING)
    out = Output(args.json, sys.stdout, sys.stderr)
    try:
        settings = ClientSettings.from_env()
        if getattr(args, "bwlimit", None):
            settings = dataclasses.replace(settings, bwlimit=args.bwlimit)
        return int(args.fn(args, settings, out))
    except KeyboardInterrupt:
        sys.stderr.write("robosync: interrupted; run the command again to resume\n")
        return EXIT_INTERRUPTED
    except Exception as e:
        if args.debug:
            raise
        sys.stderr.write(f"robosync: error: {_error_line(e)}\n")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
