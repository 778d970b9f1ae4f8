"""Starting and stopping the processes of a robosync deployment on one machine.

What ``scripts/cluster`` (and the tests, which import it from here) need to
run real ``robosync-server``, SeaweedFS and nginx processes: free loopback
ports, where the executables are, stopping a process politely, reading its log.
Only the standard library: an operator needs no test dependency.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

# SeaweedFS's gRPC listens on every HTTP port + 10000, so both must be free.
GRPC_OFFSET = 10000
_PORT_RANGE = (20000, 55000)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pairs(count: int) -> list[int]:
    """``count`` distinct ports ``p`` with ``p`` and ``p + 10000`` both free on loopback."""
    chosen: list[int] = []
    rng = secrets.SystemRandom()
    for _ in range(10_000):
        p = rng.randrange(*_PORT_RANGE)
        taken = {q for c in chosen for q in (c, c + GRPC_OFFSET)}
        if p in taken or p + GRPC_OFFSET in taken:
            continue
        if _port_free(p) and _port_free(p + GRPC_OFFSET):
            chosen.append(p)
            if len(chosen) == count:
                return chosen
    raise RuntimeError("no free port pairs found")


def server_command() -> list[str]:
    """How to run ``robosync-server`` (the installed script, else this interpreter)."""
    exe = shutil.which("robosync-server")
    return [exe] if exe else [sys.executable, "-m", "robosync.server.cli"]


def weed_binary() -> str | None:
    """Path of the SeaweedFS ``weed`` executable, or ``None`` if it is not installed."""
    return shutil.which("weed")


def nginx_binary() -> str | None:
    """Path of the nginx executable (also in /usr/sbin, often not on a user's PATH)."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def stop_process(proc: subprocess.Popen[bytes] | None, grace_seconds: float) -> None:
    """SIGTERM ``proc`` (one this test started), SIGKILL it after ``grace_seconds``."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def log_tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of a log file ('' if it cannot be read)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
