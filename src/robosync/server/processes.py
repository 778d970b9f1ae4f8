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
_LOWEST_PORT = 10000
_EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


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


def _pair_range() -> tuple[int, int]:
    # Below the kernel's ephemeral range, so that no outgoing connection can
    # take a port of a store that is stopped for a while and started again.
    try:
        ephemeral_low = int(_EPHEMERAL_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768
    top = ephemeral_low - GRPC_OFFSET
    if top - _LOWEST_PORT < 1000:
        return (20000, 55000)
    return (_LOWEST_PORT, top)


def free_port_pairs(count: int) -> list[int]:
    """``count`` distinct ports ``p`` with ``p`` and ``p + 10000`` both free on loopback.

    They are chosen below the ephemeral range (where the kernel has room), so a
    process may stop and start again on the same ports without an outgoing
    connection having taken one meanwhile.
    """
    chosen: list[int] = []
    rng = secrets.SystemRandom()
    low, high = _pair_range()
    for _ in range(10_000):
        p = rng.randrange(low, high)
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
