"""GET and PUT of presigned blob URLs on kept-alive stdlib ``http.client`` connections.

Why not httpx for these bodies: httpcore reads 64 KiB at a time, h11 copies
every piece into and out of its receive buffer, and httpx joins the pieces
into chunks, so each byte is copied three or four times by Python objects.
``http.client``'s ``readinto`` lets the kernel copy the bytes once, into a
buffer the caller reuses. Measured on a 150 x 8 MiB clone against SeaweedFS
(docs/PERFORMANCE.md): the client's user CPU fell from ~2.2 s to ~0.8 s.

PUTs of small blobs go the same way: with 16 threads, httpx's connection pool
serialises every request and response on one lock, and a profile of a push of
2,000 small files spent most of the client's samples waiting on it. A PUT's body
may name spans of an open file (:class:`FileSpan`) instead of bytes: on a plain
blocking socket the kernel sends them from the page cache (``sendfile``), without
reading them into Python objects first.

Failures are raised as the ``httpx`` transport errors the rest of the client
already retries (:mod:`robosync.client.retry`), with the request attached.
A URL an environment proxy applies to (``HTTP(S)_PROXY``, ``ALL_PROXY``,
``NO_PROXY``) is not handled here: :func:`direct_route` says so and the caller
uses httpx, which honours proxies.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import ssl
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple
from urllib.parse import urlsplit

from robosync.client.deferred import httpx
from robosync.client.leftout import SHRANK, FileTrouble, file_trouble
from robosync.httpwire import Origin, ThreadConnections, split_url


def direct_route(url: str) -> bool:
    """Whether ``url`` is reached without a proxy, so :class:`StoreGetter` may fetch it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    if not any(value and name[-6:].lower() == "_proxy" for name, value in os.environ.items()):
        return True  # no proxy named at all, as on most robots: urllib.request not loaded
    import urllib.request

    proxies = urllib.request.getproxies_environment()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return True
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    return bool(bypass(parts.netloc, proxies))


class FileSpan(NamedTuple):
    """``size`` bytes of the open file ``fd`` from ``offset``: a piece of a PUT's body. One that
    must go through Python (TLS) is read whole, so the push sends pieces of 1 MiB."""

    fd: int
    offset: int
    size: int


class StoreBody:
    """The answer to one GET: ``status``, ``headers`` and a ``readinto`` that fails loudly."""

    def __init__(self, url: str, resp: http.client.HTTPResponse) -> None:
        self.url = url
        self.status = resp.status
        self.headers = resp.getheaders()
        self._resp = resp

    def readinto(self, buffer: memoryview) -> int:
        """Read up to ``len(buffer)`` body bytes into ``buffer``; 0 at the end of the body."""
        try:
            n = self._resp.readinto(buffer)
        except (OSError, http.client.HTTPException) as e:
            raise transport_error(e, self.url, reading=True) from e
        # http.client answers 0 when the peer closes early instead of raising;
        # a truncated body must be a transient transport error, not short data.
        if n == 0 and len(buffer) and self._resp.length:
            raise httpx.RemoteProtocolError(
                f"connection closed with {self._resp.length} body bytes missing",
                request=httpx.Request("GET", self.url),
            )
        return n

    def to_httpx(self) -> httpx.Response:
        """The whole answer as an ``httpx.Response`` (for error bodies, which are small)."""
        try:
            content = self._resp.read(1024 * 1024)
        except (OSError, http.client.HTTPException) as e:
            raise transport_error(e, self.url, reading=True) from e
        return _as_httpx("GET", self.url, self.status, self.headers, content)


class StoreAnswer:
    """The whole (small) answer to a PUT: ``status``, its headers, ``content``."""

    def __init__(self, url: str, resp: http.client.HTTPResponse, content: bytes) -> None:
        self.url = url
        self.status = resp.status
        self._resp = resp
        self.content = content

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), else ``None``."""
        return self._resp.headers.get(name)

    def to_httpx(self) -> httpx.Response:
        """This answer as an ``httpx.Response`` (made only for errors: it costs more than
        the rest of a small upload's client work)."""
        return _as_httpx("PUT", self.url, self.status, self._resp.getheaders(), self.content)


def _as_httpx(
    method: str, url: str, status: int, headers: list[tuple[str, str]], content: bytes
) -> httpx.Response:
    return httpx.Response(
        status, headers=headers, content=content, request=httpx.Request(method, url)
    )


def trust_store() -> ssl.SSLContext:
    """The TLS context ``https`` connections verify with (``SSL_CERT_FILE`` / ``SSL_CERT_DIR``
    where set, else certifi's), as httpx makes it. A function, so that httpx is loaded
    only when a TLS connection is made: naming ``httpx.create_ssl_context`` loads it."""
    return httpx.create_ssl_context()


class StoreGetter:
    """Keep-alive connections to object stores, kept per calling thread
    (:class:`~robosync.httpwire.ThreadConnections`)."""

    def __init__(self, *, timeout: float = 120.0, connect_timeout: float = 10.0) -> None:
        self._conns = ThreadConnections(
            connect_timeout=connect_timeout,
            read_timeout=timeout,
            tls=trust_store,
            kernel_timeouts=True,
        )

    @contextlib.contextmanager
    def get(self, url: str) -> Iterator[StoreBody]:
        """GET ``url``; the connection goes back to the pool if the body was read to its end."""
        origin, target = split_url(url)
        conn, resp = self._send(origin, target, url)
        reusable = False
        try:
            body = StoreBody(url, resp)
            yield body
            reusable = resp.isclosed() and not resp.will_close
        finally:
            if reusable:
                self._release(origin, conn)
            else:
                conn.close()

    def put(
        self, url: str, headers: dict[str, str], body: Callable[[], Iterable[bytes | FileSpan]]
    ) -> StoreAnswer:
        """PUT the bytes and file spans ``body()`` yields; the store's (small) answer.

        ``body`` is called again if a kept-alive connection turns out to be
        closed before the store answered, so it must start from the beginning.
        A span whose file ends early or cannot be read raises :class:`FileTrouble`.
        """
        origin, target = split_url(url)
        conn = self._acquire(origin)
        resp = None
        if conn is not None:
            try:
                resp = _put(conn, target, headers, body())
            except (OSError, http.client.HTTPException):
                conn.close()  # closed by the store while idle: send again on a new one
            except BaseException:
                conn.close()
                raise
        try:
            if resp is None:
                conn = self._connect(origin, url, "PUT")
                resp = _put(conn, target, headers, body())
            content = resp.read()
        except (OSError, http.client.HTTPException) as e:
            if conn is not None:
                conn.close()
            raise transport_error(e, url, reading=True, method="PUT") from e
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        assert conn is not None
        if resp.will_close:
            conn.close()
        else:
            self._release(origin, conn)
        return StoreAnswer(url, resp, content)

    def close(self) -> None:
        """Close every connection; the getter keeps none after this."""
        self._conns.close()

    def _send(
        self, origin: Origin, target: str, url: str
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        conn = self._acquire(origin)
        if conn is not None:
            # A kept-alive connection the store closed meanwhile fails at once;
            # a GET is safe to send again on a new one.
            try:
                return conn, _request(conn, target)
            except (OSError, http.client.HTTPException):
                conn.close()
        conn = self._connect(origin, url)
        try:
            return conn, _request(conn, target)
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise transport_error(e, url, reading=True) from e

    def _acquire(self, origin: Origin) -> http.client.HTTPConnection | None:
        return self._conns.acquire(origin)

    def _release(self, origin: Origin, conn: http.client.HTTPConnection) -> None:
        self._conns.release(origin, conn)

    def _connect(self, origin: Origin, url: str, method: str = "GET") -> http.client.HTTPConnection:
        try:
            return self._conns.connect(origin)
        except (OSError, http.client.HTTPException) as e:
            raise transport_error(e, url, reading=False, method=method) from e


def _request(conn: http.client.HTTPConnection, target: str) -> http.client.HTTPResponse:
    conn.request("GET", target, headers={"Accept-Encoding": "identity"})
    return conn.getresponse()


def _put(
    conn: http.client.HTTPConnection,
    target: str,
    headers: dict[str, str],
    body: Iterable[bytes | FileSpan],
) -> http.client.HTTPResponse:
    conn.putrequest("PUT", target)
    for name, value in headers.items():
        conn.putheader(name, value)
    conn.endheaders()
    for piece in body:
        if isinstance(piece, FileSpan):
            _send_span(conn, piece)
        else:
            conn.send(piece)
    return conn.getresponse()


def _send_span(conn: http.client.HTTPConnection, span: FileSpan) -> None:
    """Send ``span`` on ``conn``: by ``sendfile`` on a blocking plain socket (its timeouts
    kept by the kernel), else read and sent. The file's failures raise FileTrouble, the
    socket's OSError."""
    sock = conn.sock
    offset, end = span.offset, span.offset + span.size
    if sock is None or sock.gettimeout() is not None or isinstance(sock, ssl.SSLSocket):
        # TLS must encrypt the bytes, and a socket with a Python timeout is
        # non-blocking underneath: both take them through Python.
        with file_trouble("uploaded"):
            chunk = os.pread(span.fd, span.size, span.offset)
        if len(chunk) != span.size:
            raise FileTrouble(SHRANK)
        conn.send(chunk)
        return
    while offset < end:
        try:
            sent = os.sendfile(sock.fileno(), span.fd, offset, end - offset)
        except BlockingIOError as e:  # SO_SNDTIMEO passed: the store stopped reading
            raise TimeoutError("timed out") from e
        except OSError:
            # sendfile fails alike for the file and the socket: a file that cannot be
            # read is that file's trouble (left out of the push), not a broken connection.
            with file_trouble("uploaded"):
                os.pread(span.fd, 1, offset)
            raise
        if not sent:
            raise FileTrouble(SHRANK)
        offset += sent


def transport_error(
    e: BaseException, url: str, *, reading: bool, method: str = "GET"
) -> httpx.TransportError:
    """``e`` (a socket or ``http.client`` failure of ``method url``) as the httpx transport
    error the retry layer knows: a timeout, a refused connection or a broken answer."""
    request = httpx.Request(method, url)
    message = str(e) or type(e).__name__
    # A blocking socket's kernel send timeout fails a send with EAGAIN.
    if isinstance(e, socket.timeout | TimeoutError | BlockingIOError):
        return (httpx.ReadTimeout if reading else httpx.ConnectTimeout)(message, request=request)
    if isinstance(e, http.client.HTTPException):
        return httpx.RemoteProtocolError(message, request=request)
    return (httpx.ReadError if reading else httpx.ConnectError)(message, request=request)
