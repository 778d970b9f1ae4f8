"""Plain ``http.client`` pieces shared by the client's blob transfers and the server's HEADs.

Both talk to an object store over kept-alive stdlib connections, where the
per-request cost of a general HTTP library (and of ``http.client``'s own
``email``-based header parser) is a large part of a small request's cost.
Standard library only: the robot client imports it.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import select
import socket
import ssl
import struct
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

# (scheme, host, port) of a server: connections are kept per origin.
Origin = tuple[str, str, int]
# An idle connection put back longer ago than this is checked before it is reused.
RECHECK_IDLE_AFTER = 1.0
# Where a socket's SO_RCVTIMEO / SO_SNDTIMEO take a ``struct timeval`` of two longs and
# fail a timed-out call with EAGAIN (Linux; Windows, for one, takes milliseconds).
KERNEL_TIMEOUTS = sys.platform == "linux"


class AnswerHeaders:
    """The header lines of an answer: what ``http.client`` asks of its ``HTTPMessage``."""

    def __init__(self, lines: list[bytes]) -> None:
        self._items: list[tuple[str, str]] = []
        for raw in lines:
            line = raw.decode("iso-8859-1")
            if line[:1] in (" ", "\t") and self._items:  # a folded continuation line
                name, value = self._items[-1]
                self._items[-1] = (name, f"{value} {line.strip()}")
                continue
            name, sep, value = line.partition(":")
            if sep:
                self._items.append((name.strip(), value.strip()))
        self._first: dict[str, str] = {}
        for name, value in self._items:
            self._first.setdefault(name.lower(), value)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (any case), else ``default``."""
        return self._first.get(name.lower(), default)

    def items(self) -> list[tuple[str, str]]:
        """``(name, value)`` of every header, in order."""
        return list(self._items)


class FastResponse(http.client.HTTPResponse):
    """An ``HTTPResponse`` that parses its header lines itself.

    ``http.client`` hands them to the ``email`` package's parser, which cost ~70 µs
    of a store answer's dozen plain lines here, against ~20 µs for a split (one
    small-file download or upload is one answer). The rest is ``begin`` as it is
    in the standard library.
    """

    def begin(self) -> None:
        """Read the status line and headers; set the body's framing."""
        if self.headers is not None:
            return
        while True:
            version, status, reason = self._read_status()
            if status != http.client.CONTINUE:
                break
            http.client._read_headers(self.fp)
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        headers = AnswerHeaders(http.client._read_headers(self.fp))
        self.headers = self.msg = headers
        self.chunked = (headers.get("transfer-encoding") or "").lower() == "chunked"
        self.chunk_left = None
        self.will_close = self._check_close()
        self.length = None
        length = headers.get("content-length")
        if length and not self.chunked:
            with contextlib.suppress(ValueError):
                declared = int(length)
                self.length = declared if declared >= 0 else None
        if status in (204, 304) or 100 <= status < 200 or self._method == "HEAD":
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True


class BlockingSocketReader(io.RawIOBase):
    """Reads of a blocking socket whose receive timeout the kernel keeps (``SO_RCVTIMEO``).

    A socket with a Python-level timeout polls before every send and receive: three
    extra system calls, each a hand-over of the GIL, per small-file download. A
    blocking one needs none; when the kernel's timeout passes, ``recv`` fails with
    ``EAGAIN``, raised here as the ``TimeoutError`` a Python timeout would have been
    (``socket.SocketIO`` would answer ``None``, "no data yet"). ``file`` is the
    socket's own file, which keeps the socket open until this reader is closed.
    """

    def __init__(self, sock: socket.socket, file: io.RawIOBase) -> None:
        super().__init__()
        self._recv_into = sock.recv_into
        self._file = file

    def readable(self) -> bool:
        """A reader: always."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Receive up to ``len(buffer)`` bytes (0 once the peer has closed)."""
        try:
            return self._recv_into(buffer)
        except BlockingIOError as e:
            raise TimeoutError("timed out") from e

    def close(self) -> None:
        """Close the reader and the socket file it holds."""
        self._file.close()
        super().close()


class BlockingSocketResponse(FastResponse):
    """A :class:`FastResponse` read through :class:`BlockingSocketReader` with a 64 KiB
    buffer, so the head and a small body come in one ``recv``."""

    def __init__(
        self,
        sock: socket.socket,
        debuglevel: int = 0,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(sock, debuglevel, method, url)
        self.fp = io.BufferedReader(BlockingSocketReader(sock, self.fp.detach()), 64 * 1024)


def set_kernel_timeouts(sock: socket.socket, seconds: float) -> None:
    """Make ``sock`` blocking, with send and receive timeouts the kernel keeps."""
    sock.settimeout(None)
    whole = int(seconds)
    timeval = struct.pack("ll", whole, int((seconds - whole) * 1e6))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)


def still_open(conn: http.client.HTTPConnection) -> bool:
    """Whether an idle kept-alive connection may carry the next request."""
    # An idle keep-alive socket that is readable has been closed by the peer
    # (or sent garbage): either way it must not carry the next request.
    sock = conn.sock
    if sock is None:
        return False
    try:
        if hasattr(select, "poll"):  # no FD_SETSIZE limit, unlike select()
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return not poller.poll(0)
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def default_port(scheme: str) -> int:
    """The port of ``scheme`` (``http`` or ``https``) when a URL names none."""
    return 443 if scheme == "https" else 80


def split_url(url: str) -> tuple[Origin, str]:
    """The origin a URL's connection is kept for, and the request target (path and query)."""
    parts = urlsplit(url)
    scheme = parts.scheme
    origin = (scheme, parts.hostname or "", parts.port or default_port(scheme))
    return origin, (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


class ThreadConnections:
    """Kept-alive connections, each thread reusing its own idle ones by origin.

    Taking one needs no lock: with 16 transfer threads a shared pool's lock was where
    they queued (py-spy). Every connection is also listed (weakly) for :meth:`close`.
    Answers are read with :class:`FastResponse`.
    """

    def __init__(
        self,
        *,
        connect_timeout: float,
        read_timeout: float,
        tls: Callable[[], ssl.SSLContext],
        kernel_timeouts: bool = False,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        # Plain-http connections made blocking, their timeouts kept by the kernel (see
        # BlockingSocketReader; on Linux); TLS ones keep Python's timeouts.
        self.kernel_timeouts = kernel_timeouts
        self._new_tls = tls
        self._tls: ssl.SSLContext | None = None
        self._local = threading.local()
        self._every: weakref.WeakSet[http.client.HTTPConnection] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._closed = False

    def acquire(self, origin: Origin) -> http.client.HTTPConnection | None:
        """One of this thread's idle connections to ``origin`` that is still open, if any."""
        conns = self._idle().get(origin, [])
        while conns:
            conn, released = conns.pop()
            # One put back a moment ago is taken as it is (a poll per request is a system
            # call, and the GIL handed over, per small file); should the peer have closed
            # it even so, every caller sends the request again on a new one.
            if time.monotonic() - released < RECHECK_IDLE_AFTER or still_open(conn):
                return conn
            conn.close()
        return None

    def release(self, origin: Origin, conn: http.client.HTTPConnection) -> None:
        """Keep ``conn`` for this thread's next request to ``origin`` (or close it, once closed)."""
        if self._closed:
            conn.close()
        else:
            self._idle().setdefault(origin, []).append((conn, time.monotonic()))

    def connect(self, origin: Origin, timeout: float | None = None) -> http.client.HTTPConnection:
        """A new connection to ``origin`` within ``timeout`` seconds (else the connect
        timeout); failures raise ``OSError`` or ``HTTPException``."""
        scheme, host, port = origin
        conn: http.client.HTTPConnection
        within = self.connect_timeout if timeout is None else timeout
        if scheme == "https":
            if self._tls is None:
                self._tls = self._new_tls()
            conn = http.client.HTTPSConnection(host, port, timeout=within, context=self._tls)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=within)
        conn.response_class = FastResponse
        with self._lock:
            self._every.add(conn)
        try:
            conn.connect()
        except BaseException:
            conn.close()
            raise
        assert conn.sock is not None
        # A request's header and body leave in separate sends; with Nagle's algorithm
        # the body of a small PUT could wait for the ACK of the header (urllib3 and
        # the peers' clients turn it off too).
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.kernel_timeouts and scheme == "http" and KERNEL_TIMEOUTS:
            set_kernel_timeouts(conn.sock, self.read_timeout)
            conn.response_class = BlockingSocketResponse
        else:
            conn.sock.settimeout(self.read_timeout)
        return conn

    def close(self) -> None:
        """Close every connection (idle ones of all threads); none is kept after this."""
        with self._lock:
            self._closed = True
            every = list(self._every)
            self._every.clear()
        for conn in every:
            conn.close()

    def _idle(self) -> dict[Origin, list[tuple[http.client.HTTPConnection, float]]]:
        """This thread's idle connections by origin, each with when it was put back."""
        idle: dict[Origin, list[tuple[http.client.HTTPConnection, float]]] | None = getattr(
            self._local, "idle", None
        )
        if idle is None:
            idle = self._local.idle = {}
        return idle
