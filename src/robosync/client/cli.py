"""The ``robosync`` command: parsing and printing only; the work is in :mod:`project`."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC
from pathlib import Path
from typing import Any, NoReturn, TextIO

from robosync.client import logs
from robosync.client.api import Api
from robosync.client.cli_teams import add_team_commands
from robosync.client.cmdpaths import to_project_path, to_project_paths
from robosync.client.deferred import history, httpx, wire
from robosync.client.merge import POLICIES, MergeNote
from robosync.client.project import Project, PullResult, PushResult, clone
from robosync.client.quickexit import exit_now
from robosync.client.settings import DEFAULT_JOBS, ClientSettings
from robosync.client.sizes import parse_size
from robosync.errors import InvalidInput, RateLimited, RobosyncError, Unauthorized, Unavailable


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``1 file``, ``2 files``: a number with its noun in the right number."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


# Exit codes (docs/CLIENT.md): 0 done; 1 failed (one line on stderr says why,
# or {"error": …} on stdout with --json); 2 bad usage; 3 a push committed
# everything but some files it left out (each named on stderr with its reason,
# and in --json `left_out`); 130 Ctrl-C.
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LEFT_OUT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


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

    def error(self, e: BaseException, line: str) -> None:
        """The error: ``{"error": {...}}`` on stdout with ``--json``, else one stderr line."""
        if self.as_json:
            body = {
                "error": {
                    "code": error_code(e),
                    "message": line,
                    "details": e.details if isinstance(e, RobosyncError) else {},
                }
            }
            self.out.write(json.dumps(body, default=str) + "\n")
        else:
            self.err.write(f"robosync: error: {line}\n")

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


_SKIPPED_SHOWN = 20


def _warn_skipped(o: Output, skipped: list[tuple[str, str]]) -> None:
    """One report per scan of what it did not sync (invalid names, links, unreadable files)."""
    if not skipped or o.as_json:  # with --json they are in the result's "invalid"
        return
    o.warn(f"{count(len(skipped), 'entry', 'entries')} not synced (rename or replace to sync):")
    for path, reason in sorted(skipped)[:_SKIPPED_SHOWN]:
        o.err.write(f"  {path!r}: {reason}\n")
    if len(skipped) > _SKIPPED_SHOWN:
        o.err.write(f"  … and {len(skipped) - _SKIPPED_SHOWN} more (see --json)\n")


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
        f"logged in to {a.server} ({count(len(projects), 'project')}); token saved in {path}",
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
    header = f"{'PROJECT':40} {'ROLE':5} {'VERSION':>7} {'FILES':>8} {'SIZE':>11}"
    lines = [
        f"{p.owner + '/' + p.name:40} {p.role:5} {'v' + str(p.head_version):>7} {p.file_count:>8} "
        f"{human_bytes(p.total_bytes):>11}"
        for p in projects
    ]
    text = (
        "\n".join([header, *lines]) if lines else "no projects yet; create one with `robosync init`"
    )
    o.result([wire.plain(p) for p in projects], text)
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
            f"cloned {p.config.project_name} v{v}: {count(n, 'file')} into {p.root}",
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
        if st.remote_only:
            lines.append(
                f"{count(len(st.remote_only), 'file')} from other robots not on disk yet: "
                "run `robosync pull`"
            )
        if not (st.added or st.modified or st.deleted):
            lines.append("no local changes")
        return "\n".join(lines)

    _warn_skipped(o, st.invalid)
    o.result(st.to_dict(), text)
    return 0


def _push_text(r: PushResult) -> str:
    if not r.committed and not r.merged:
        if r.left_out:
            return f"nothing committed (v{r.version}): {count(len(r.left_out), 'file')} left out"
        return f"nothing to push (v{r.version})"
    lines = _notes_text(r.merged)
    lines.append(
        f"pushed v{r.version}: +{r.added} ~{r.modified} -{r.deleted} "
        f"{'file' if r.added + r.modified + r.deleted == 1 else 'files'}; "
        f"uploaded {count(r.uploaded_blobs, 'blob')} ({human_bytes(r.bytes_sent)}), "
        f"{r.already_present} already on the server"
        + (f", {count(r.parts_skipped, 'part')} resumed" if r.parts_skipped else "")
        + (f"; {count(len(r.left_out), 'file')} left out" if r.left_out else "")
    )
    if r.not_downloaded:
        lines.append(
            f"{count(r.not_downloaded, 'file')} from other robots "
            f"{'is' if r.not_downloaded == 1 else 'are'} not on disk yet: run `robosync pull`"
        )
    return "\n".join(lines)


def cmd_push(a: argparse.Namespace, s: ClientSettings, o: Output) -> int:
    """Upload and commit local changes."""
    with Project.open(a.project_dir, settings=s) as p:
        r = p.push(jobs=a.jobs, policy=a.policy, message=a.message, progress=o.progress())
    _warn_skipped(o, r.invalid)
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
    _warn_skipped(o, r.invalid)
    o.result(r.to_dict(), lambda: _pull_text(r, "pulled"))
    return 0


def cmd_log(a: argparse.Namespace, s: ClientSettings, o: Output) -> int:
    """Show the history."""
    with Project.open(a.project_dir, settings=s) as p:
        versions = p.log()
    header = f"{'VERSION':7} {'DATE (UTC)':19} {'ROBOT':16} {'CHANGES':17} {'FILES':>8} MESSAGE"
    lines = [header]
    for v in versions:
        added = v.files_added - v.files_modified
        changes = f"+{added} ~{v.files_modified} -{v.files_removed}"
        when = v.created_at.astimezone(UTC)
        lines.append(
            f"{'v' + str(v.number):7} {when:%Y-%m-%d %H:%M:%S} {v.robot:16} {changes:17} "
            f"{v.file_count:>8} {v.message}".rstrip()
        )
    o.result([wire.plain(v) for v in versions], "\n".join(lines))
    return 0


def _here(a: argparse.Namespace) -> Path:
    """The folder command-line paths are relative to (``-C DIR``, else the current one)."""
    return Path(a.project_dir).resolve()


def cmd_rm(a: argparse.Namespace, s: ClientSettings, o: Output) -> int:
    """Delete files from the project (committed at the next push)."""
    with Project.open(a.project_dir, settings=s) as p:
        removed = p.rm(to_project_paths(p.root, a.paths, _here(a)))
    o.result(
        {"removed": removed},
        f"removed {count(len(removed), 'file')}; run `robosync push` to commit",
    )
    return 0


def cmd_evict(a: argparse.Namespace, s: ClientSettings, o: Output) -> int:
    """Free disk of files already on the server."""
    with Project.open(a.project_dir, settings=s) as p:
        r = p.evict(to_project_paths(p.root, a.paths, _here(a)) or None)
    for path, why in r.kept:
        o.warn(f"kept {path}: {why}")
    o.result(
        r.to_dict(), f"evicted {count(len(r.evicted), 'file')}, freed {human_bytes(r.bytes_freed)}"
    )
    # Named files that were refused fail the command; `evict` of everything
    # skipping unpushed files is its normal work.
    return 1 if a.paths and r.kept else 0


def cmd_fetch(a: argparse.Namespace, s: ClientSettings, o: Output) -> int:
    """Download evicted files back."""
    with Project.open(a.project_dir, settings=s) as p:
        paths = to_project_paths(p.root, a.paths, _here(a)) or None
        r = p.fetch(paths, jobs=a.jobs, progress=o.progress())
    o.result(r.to_dict(), lambda: _pull_text(r, "fetched at"))
    return 0


def cmd_restore(a: argparse.Namespace, s: ClientSettings, o: Output) -> int:
    """Bring back a file or folder as it was in a version."""
    with Project.open(a.project_dir, settings=s) as p:
        path = to_project_path(p.root, a.path, _here(a))
        r = p.restore(path, a.version, progress=o.progress())
    n = r.downloaded + r.copied
    o.result(
        {"path": path, "version": a.version, **r.to_dict()},
        f"restored {count(n, 'file')} of {path or 'the project'} from v{a.version}; "
        "run `robosync push` to commit",
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
    logs.logger("robosync.agent").setLevel("DEBUG" if a.debug else "INFO")
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


def cmd_ls(a: argparse.Namespace, s: ClientSettings, o: Output) -> int:
    """List the files of a version."""
    with Project.open(a.project_dir, settings=s) as p:
        paths = to_project_paths(p.root, a.paths, _here(a))
        listing = p.ls(paths, version=a.version)

    def text() -> str:
        lines = []
        for f in listing.files:
            digest = f" {f.digest}" if a.long else ""
            lines.append(f"{f.size:>12}{digest}  {f.path}")
        lines.append(
            f"v{listing.version}: {count(len(listing.files), 'file')}, "
            f"{human_bytes(listing.total_bytes)}"
        )
        return "\n".join(lines)

    o.result(listing.to_dict(), text)
    return 0


def cmd_get(a: argparse.Namespace, s: ClientSettings, o: Output) -> int:
    """Download one file of any version of a project, without a clone."""
    version, entry, written = history.get_file(
        a.project, a.path, a.output, version=a.version, settings=s, progress=o.progress()
    )
    if written is None:  # the bytes went to stdout
        return 0
    o.result(
        {"project": a.project, "version": version, **wire.plain(entry), "written": str(written)},
        f"wrote {written} ({human_bytes(entry.size)}, {entry.path} of v{version}, verified)",
    )
    return 0


def cmd_diff(a: argparse.Namespace, s: ClientSettings, o: Output) -> int:
    """Show what changed between two versions, or a version (default head) and the folder."""
    with Project.open(a.project_dir, settings=s) as p:
        d = p.diff(a.old, a.new, progress=o.progress())

    def text() -> str:
        lines = [
            f"{mark} {path}"
            for mark, items in (("+", d.added), ("~", d.modified), ("-", d.deleted))
            for path, _ in items
        ]
        lines.sort(key=lambda line: line[2:])
        n = len(d.added) + len(d.modified) + len(d.deleted)
        lines.append(
            f"{d.old} -> {d.new}: +{len(d.added)} ~{len(d.modified)} -{len(d.deleted)} "
            f"{'file' if n == 1 else 'files'}"
        )
        return "\n".join(lines)

    o.result(d.to_dict(), text)
    return 0
    return 0


# --- parser ---------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``robosync``."""

    def global_options(suppress: bool) -> _Parser:
        # Sub-commands accept the global options too; SUPPRESS keeps their
        # defaults from overwriting a value given before the sub-command.
        def d(value: object) -> object:
            return argparse.SUPPRESS if suppress else value

        g = _Parser(add_help=False)
        g.add_argument("--json", action="store_true", default=d(False), help="machine output")
        g.add_argument("--debug", action="store_true", default=d(False), help="show tracebacks")
        g.add_argument("-C", dest="project_dir", default=d("."), help="project folder")
        return g

    common = global_options(suppress=True)
    parser = _Parser(
        prog="robosync",
        description="Sync robot images with a robosync server.",
        parents=[global_options(suppress=False)],
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

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
    p = add(
        "rm",
        cmd_rm,
        "delete files or folders from the project (committed by the next push); "
        "paths are relative to the current folder",
    )
    p.add_argument("paths", nargs="+", metavar="PATH")
    p = add("evict", cmd_evict, "free disk of files the server holds (all if no PATH)")
    p.add_argument("paths", nargs="*", metavar="PATH")
    p = add("fetch", cmd_fetch, "download evicted files back (all if no PATH)")
    p.add_argument("paths", nargs="*", metavar="PATH")
    jobs(p)
    bwlimit(p)
    p = add(
        "restore",
        cmd_restore,
        "bring back PATH (a file or a folder) as it was in a version; push commits it",
    )
    p.add_argument("path", metavar="PATH")
    p.add_argument("--version", type=int, required=True)
    add_team_commands(add)
    _add_agent(add("agent", cmd_agent, AGENT_HELP), jobs, bwlimit)
    p = add("ls", cmd_ls, "list the files of a version (default head) with their sizes")
    p.add_argument("paths", nargs="*", metavar="PATH", help="only these files or folders")
    p.add_argument("--version", type=int, help="version to list (default head)")
    p.add_argument("--long", "-l", action="store_true", help="show each file's digest too")
    p = add(
        "get",
        cmd_get,
        "download one file of any version of a project, without a clone (verified)",
    )
    p.add_argument("project", metavar="PROJECT")
    p.add_argument("path", metavar="PATH", help="the file's path in the project")
    p.add_argument("--version", type=int, help="version to read (default head)")
    p.add_argument(
        "-o",
        dest="output",
        metavar="FILE",
        help="where to write it (default: its name here; - for stdout)",
    )
    p = add(
        "diff",
        cmd_diff,
        "what changed: `diff` head vs the folder, `diff A` version A vs the folder, "
        "`diff A B` version A vs version B",
    )
    p.add_argument("old", nargs="?", type=int, metavar="A", help="older version (default head)")
    p.add_argument(
        "new", nargs="?", type=int, metavar="B", help="newer version (default the folder)"
    )
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


class UsageError(InvalidInput):
    """The command line is wrong (unknown option, missing argument)."""

    code = "usage"


class _Formatter(argparse.HelpFormatter):
    """argparse's help layout, sized to the terminal without ``shutil``.

    argparse makes a formatter for every option added (to check its metavar) and
    sizes each with ``shutil``, whose import (with ``bz2`` and ``lzma``) was ~2 ms of
    a push with nothing to send.
    """

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        super().__init__(prog, indent_increment, max_help_position, width or _columns())


def _columns() -> int:
    """The terminal's width as ``shutil.get_terminal_size`` tells it: ``COLUMNS``, else
    standard output's terminal, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _Parser(argparse.ArgumentParser):
    """Raises :class:`UsageError` instead of printing and exiting, so ``--json`` can report it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}; see `{self.prog} --help`")


def error_code(e: BaseException) -> str:
    """The machine-readable code of an error (``--json``)."""
    if _disk_full(e):
        return "disk_full"
    if isinstance(e, RobosyncError):
        return e.code
    if isinstance(e, httpx.TransportError):
        return "unreachable"
    if isinstance(e, OSError):
        return "os_error"
    return "unexpected"


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
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except UsageError as e:
        Output("--json" in argv, sys.stdout, sys.stderr).error(e, e.message)
        if "--json" not in argv:
            sys.stderr.write("robosync: run `robosync --help` for the commands\n")
        return EXIT_USAGE
    logs.to_stderr(args.debug)
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
        out.error(e, _error_line(e))
        return EXIT_FAILED


def run() -> NoReturn:
    """The ``robosync`` program: :func:`main`, then the exit with its code
    (:func:`robosync.client.quickexit.exit_now`: without the interpreter's teardown)."""
    exit_now(main())


if __name__ == "__main__":
    run()
