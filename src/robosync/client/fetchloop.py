"""Many small GETs or PUTs from one thread, over kept-alive plain-http connections waited
on together.

Why: with one thread per connection, each system call of a small image's download
(send, receive, create, write, rename, close) or upload (open, read, send, receive) hands
the GIL to another thread, a futex wake and a context switch each; a clone of 10,000
images of 32 KiB spent more CPU on that than on its bytes. One thread that waits on every
connection at once (``selectors``) makes the same requests without it
(bench/download.py, bench/push_cpu.py).

Only the plain case is handled here: an ``http`` URL without user info, answered 200
with a ``Content-Length`` (of the expected size, for a GET) and no other framing.
Anything else (an error status, a connection that breaks or falls silent, an answer of
another shape) is handed back to the caller, who sends it again the usual way, with its
retries and error reports.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

# Room for the answer's head on top of the body (SeaweedFS and S3 send under 1 KiB).
HEAD_ROOM = 4096
HEAD_LIMIT = 64 * 1024


@dataclass(eq=False)
class _Connection:
    """One kept-alive connection and the GET it is waiting on, if any."""

    sock: socket.socket
    reused: bool = False  # it answered before: a close before any byte is not a failure
    index: int = -1
    size: int | None = 0  # of the answer's body; None: any, up to HEAD_LIMIT (a PUT's)
    buf: bytearray | None = None
    got: int = 0
    body_at: int = -1  # where the body starts in ``buf``, once the head is read
    deadline: float = 0.0


class FetchLoop:
    """Plain-http GETs of small bodies, or PUTs of them, up to ``connections`` at once,
    from the calling thread. Connections are kept between calls (one thread at a time)."""

    def __init__(
        self, connections: int, *, timeout: float = 120.0, connect_timeout: float = 10.0
    ) -> None:
        self.connections = max(1, connections)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    def fetch(
        self,
        requests: Sequence[tuple[str, int]],
        on_body: Callable[[int, memoryview], None],
        between: Callable[[], None],
    ) -> list[int]:
        """GET each ``(url, size)``; ``on_body(i, body)`` for every plain answer of
        ``size`` bytes (``body`` is valid during the call only). ``between`` runs
        between waits (a stop check: what it raises ends the fetch).

        Returns the indexes of the requests not answered that way, for the caller to
        fetch again with its usual path (which reports or retries what went wrong).
        """

        def request(i: int, target: str, netloc: str) -> bytes:
            return (
                f"GET {target} HTTP/1.1\r\nHost: {netloc}\r\nAccept-Encoding: identity\r\n\r\n"
            ).encode("latin-1")

        urls = [url for url, _ in requests]
        return self._run(urls, request, lambda i: requests[i][1], on_body, between)

    def put(
        self,
        requests: Sequence[tuple[str, dict[str, str]]],
        body: Callable[[int], bytes | None],
        on_done: Callable[[int], None],
        between: Callable[[], None],
    ) -> list[int]:
        """PUT ``body(i)`` to each ``(url, headers)``; ``on_done(i)`` for every plain 200.

        ``body(i)`` is called just before the request is sent; ``None`` means the caller
        has dealt with request ``i`` (e.g. its file changed) and it is not sent.
        ``between`` is as for :meth:`fetch`. Returns the indexes of the requests not
        answered that way (headers this loop will not write among them), for the
        caller to send again with its usual path.
        """
        refused = {i for i, (_, headers) in enumerate(requests) if not _plain_headers(headers)}

        def request(i: int, target: str, netloc: str) -> bytes | None:
            data = body(i)
            if data is None:
                return None
            lines = "".join(
                f"{name}: {value}\r\n"
                for name, value in requests[i][1].items()
                if name.lower() != "content-length"
            )
            head = (
                f"PUT {target} HTTP/1.1\r\nHost: {netloc}\r\n{lines}"
                f"Content-Length: {len(data)}\r\n\r\n"
            )
            return head.encode("latin-1") + data

        # An empty URL is handed back untried.
        urls = [url if i not in refused else "" for i, (url, _) in enumerate(requests)]
        answered = self._run(urls, request, lambda i: None, lambda i, _: on_done(i), between)
        return sorted(set(answered) | refused)

    def _run(
        self,
        urls: Sequence[str],
        request_of: Callable[[int, str, str], bytes | None],
        size_of: Callable[[int], int | None],
        on_answer: Callable[[int, memoryview], None],
        between: Callable[[], None],
    ) -> list[int]:
        left: list[int] = []
        by_origin: dict[tuple[str, int, str], list[tuple[int, str]]] = {}
        for i, url in enumerate(urls):
            parts = urlsplit(url)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            if (
                parts.scheme != "http"
                or "@" in parts.netloc
                or not parts.hostname
                or not _plain_text(target)
            ):
                left.append(i)
                continue
            origin = (parts.hostname, parts.port or 80, parts.netloc)
            by_origin.setdefault(origin, []).append((i, target))
        for (host, port, netloc), todo in by_origin.items():
            left += self._fetch_origin(
                (host, port), netloc, todo, request_of, size_of, on_answer, between
            )
        return sorted(left)

    def close(self) -> None:
        """Close every kept connection."""
        for conns in self._idle.values():
            for conn in conns:
                conn.sock.close()
        self._idle.clear()

    def _fetch_origin(
        self,
        origin: tuple[str, int],
        netloc: str,
        todo: list[tuple[int, str]],
        request_of: Callable[[int, str, str], bytes | None],
        size_of: Callable[[int], int | None],
        on_answer: Callable[[int, memoryview], None],
        between: Callable[[], None],
    ) -> list[int]:
        failed: list[int] = []
        queue = deque(i for i, _ in todo)
        targets = dict(todo)
        idle = self._idle.setdefault(origin, [])
        busy: set[_Connection] = set()
        with selectors.DefaultSelector() as sel:

            def send(conn: _Connection, i: int) -> bool:
                """Send request ``i`` on ``conn``; False if the caller withdrew it."""
                request = request_of(i, targets[i], netloc)
                if request is None:
                    return False
                size = size_of(i)
                conn.index, conn.size, conn.got, conn.body_at = i, size, 0, -1
                conn.buf = bytearray((size or 0) + HEAD_ROOM)
                conn.deadline = time.monotonic() + self.timeout
                sent = conn.sock.send(request)
                if sent < len(request):
                    # A body larger than the free send buffer: the rest is sent waiting
                    # (the store reads a whole request before it answers).
                    conn.sock.settimeout(self.timeout)
                    try:
                        conn.sock.sendall(memoryview(request)[sent:])
                    finally:
                        conn.sock.setblocking(False)
                sel.register(conn.sock, selectors.EVENT_READ, conn)
                busy.add(conn)
                return True

            def assign(conn: _Connection | None) -> None:
                """Give ``conn`` the next request, or keep it idle if there is none."""
                while conn is not None and queue:
                    i = queue.popleft()
                    try:
                        if send(conn, i):
                            return
                        continue
                    except OSError:
                        conn.sock.close()
                        if not conn.reused:  # a new connection that cannot send: stop here
                            failed.append(i)
                            failed.extend(queue)
                            queue.clear()
                            return
                        queue.appendleft(i)  # closed by the store while idle: a new one
                        conn = self._connect_or_fail(origin, queue, failed)
                if conn is not None:
                    idle.append(conn)

            def finished(conn: _Connection, outcome: str) -> None:
                sel.unregister(conn.sock)
                busy.discard(conn)
                if outcome == "done":
                    assert conn.buf is not None
                    i, body = conn.index, memoryview(conn.buf)[conn.body_at :]
                    conn.reused, conn.buf = True, None
                    assign(conn)  # the store works on the next while this one is written
                    on_answer(i, body)
                    return
                conn.sock.close()
                if outcome == "closed early" and conn.reused and not conn.got:
                    queue.appendleft(conn.index)  # closed by the store while idle
                else:
                    failed.append(conn.index)
                assign(self._connect_or_fail(origin, queue, failed))

            try:
                while queue and len(busy) < self.connections:
                    assign(idle.pop() if idle else self._connect_or_fail(origin, queue, failed))
                while busy:
                    between()
                    wait = min(c.deadline for c in busy) - time.monotonic()
                    for key, _ in sel.select(max(0.0, min(wait, 1.0))):
                        outcome = self._receive(key.data)
                        if outcome is not None:
                            finished(key.data, outcome)
                    now = time.monotonic()
                    for conn in [c for c in busy if c.deadline <= now]:
                        finished(conn, "silent")
            except BaseException:
                for conn in busy:
                    conn.sock.close()
                raise
        return failed

    def _connect_or_fail(
        self, origin: tuple[str, int], queue: deque[int], failed: list[int]
    ) -> _Connection | None:
        """A new connection if requests are left; if none can be made, they all fail
        over to the caller."""
        if not queue:
            return None
        try:
            sock = socket.create_connection(origin, timeout=self.connect_timeout)
        except OSError:
            failed.extend(queue)
            queue.clear()
            return None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        return _Connection(sock)

    def _receive(self, conn: _Connection) -> str | None:
        """Read what ``conn`` has: ``None`` while its answer is incomplete, else
        ``done`` (a plain answer, whole), ``closed early`` or ``refused``."""
        buf = conn.buf
        assert buf is not None
        try:
            n = conn.sock.recv_into(memoryview(buf)[conn.got :])
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            n = 0
        if not n:
            return "refused" if conn.got else "closed early"
        conn.got += n
        conn.deadline = time.monotonic() + self.timeout
        if conn.body_at < 0:
            end = buf.find(b"\r\n\r\n", 0, conn.got)
            if end < 0:
                return "refused" if conn.got >= min(HEAD_LIMIT, len(buf)) else None
            length = _plain_length(bytes(buf[:end]))
            if length is None:
                return "refused"
            if conn.size is not None and length != conn.size:  # a GET's: the size asked for
                return "refused"
            if conn.size is None and length > HEAD_LIMIT:  # a PUT's answer is small
                return "refused"
            conn.body_at = end + 4
            need = conn.body_at + length
            if conn.got > need:  # more than the body: not an answer this loop reads
                return "refused"
            if need > len(buf):
                buf.extend(bytes(need - len(buf)))
            else:
                del buf[need:]
        return "done" if conn.got == len(buf) else None


def _plain_length(head: bytes) -> int | None:
    """The ``Content-Length`` of an answer whose head is ``200``, kept alive, without any
    other framing of the body; ``None`` for any other answer."""
    lines = head.split(b"\r\n")
    status = lines[0].split(None, 2)
    if len(status) < 2 or status[0] != b"HTTP/1.1" or status[1] != b"200":
        return None
    length = None
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            return None
        name = name.strip().lower()
        if name == b"content-length":
            if length is not None:
                return None
            length = value.strip()
        elif name == b"transfer-encoding" or (
            name == b"connection" and value.strip().lower() == b"close"
        ):
            return None
    return int(length) if length is not None and length.isdigit() else None


def _plain_text(value: str, spaces: bool = False) -> bool:
    """Whether ``value`` can go into a request line (or, with ``spaces``, a header's
    value) as it is: printable ASCII, no line breaks. What the server sends is not
    trusted to be either. (String methods: a loop over the characters cost the one
    thread 18 µs per URL.)"""
    return value.isascii() and value.isprintable() and (spaces or " " not in value)


def _plain_headers(headers: dict[str, str]) -> bool:
    """Whether every header's name and value can be written as they are."""
    return all(
        name and _plain_text(name) and ":" not in name and _plain_text(value, spaces=True)
        for name, value in headers.items()
    )
