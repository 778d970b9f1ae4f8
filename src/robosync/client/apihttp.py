"""How the API client's requests travel: kept-alive ``http.client`` connections, or httpx
where an environment proxy applies.

A ``robosync push`` of ten new images is a handful of API requests. Through httpx they
cost its import and a connection pool (~40-75 ms here) plus its per-request work, more
than the server spends answering them. The blob transfers already go over
:class:`~robosync.httpwire.ThreadConnections` (:mod:`robosync.client.storeget`); API
requests now do too, each thread on its own kept-alive connection. A server an
``HTTP(S)_PROXY`` / ``ALL_PROXY`` applies to (and not ``NO_PROXY``) is reached through
httpx, which honours proxies, as before.

Both ways answer with an :class:`Answer` and fail with the httpx transport errors the
retry layer knows (:func:`robosync.client.storeget.transport_error`).
"""

from __future__ import annotations

import contextlib
import http.client
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

from robosync.client.deferred import httpx
from robosync.client.storeget import transport_error, trust_store
from robosync.httpwire import ThreadConnections, split_url

Body = bytes | Callable[[], Iterable[bytes]] | None
_LINE_READ = 64 * 1024


class Headers(Protocol):
    """What is read of an answer's headers."""

    def get(self, name: str, /) -> str | None:
        """The first value of header ``name`` (any case), else ``None``."""


class Answer:
    """One API answer: its status, headers and (small) body."""

    def __init__(self, url: str, status_code: int, headers: Headers, content: bytes) -> None:
        self.url = url
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def host(self) -> str:
        """The host the answer came from (for error messages)."""
        return urlsplit(self.url).hostname or self.url

    @property
    def text(self) -> str:
        """The body as text (bad bytes replaced)."""
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON; ``ValueError`` if it is not."""
        return json.loads(self.content)


class ApiHttp(Protocol):
    """A way of sending API requests."""

    def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        timeout: float | None = None,
    ) -> Answer:
        """Send one request and read its whole answer."""

    def stream(
        self, path: str, params: Mapping[str, Any] | None
    ) -> contextlib.AbstractContextManager[tuple[Answer, Iterator[bytes]]]:
        """GET ``path``: the answer (without body) and its non-empty lines, read as they come.
        An error answer's body is read whole instead (the line iterator is then empty)."""

    def close(self) -> None:
        """Close every connection."""


def query(params: Mapping[str, Any] | None) -> str:
    """``?k=v&...`` of the parameters that are set (booleans as ``true``), or nothing."""
    if not params:
        return ""
    items = [(k, str(v).lower() if isinstance(v, bool) else v) for k, v in params.items()]
    return "?" + urlencode(items)


class StdlibHttp:
    """API requests on per-thread kept-alive ``http.client`` connections."""

    def __init__(
        self, base: str, headers: Mapping[str, str], *, timeout: float, connect_timeout: float
    ) -> None:
        self._origin, prefix = split_url(base)
        self._prefix = prefix.rstrip("/")
        self._base = base.rstrip("/")
        self._headers = dict(headers)
        self._conns = ThreadConnections(
            connect_timeout=connect_timeout, read_timeout=timeout, tls=trust_store
        )
        self._timeout = timeout
        self._connect_timeout = connect_timeout

    def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        timeout: float | None = None,
    ) -> Answer:
        """Send one request and read its whole answer (see :class:`ApiHttp`)."""
        where = path + query(params)
        url = self._base + where
        conn, resp = self._exchange(method, self._prefix + where, url, headers, body, timeout)
        try:
            content = resp.read()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise transport_error(e, url, reading=True, method=method) from e
        self._settle(conn, resp)
        return Answer(url, resp.status, resp.headers, content)

    @contextlib.contextmanager
    def stream(
        self, path: str, params: Mapping[str, Any] | None
    ) -> Iterator[tuple[Answer, Iterator[bytes]]]:
        """GET ``path`` and read its lines as they come (see :class:`ApiHttp`)."""
        where = path + query(params)
        url = self._base + where
        conn, resp = self._exchange("GET", self._prefix + where, url, None, None)
        if resp.status >= 400:
            try:
                content = resp.read()
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                raise transport_error(e, url, reading=True) from e
            self._settle(conn, resp)
            yield Answer(url, resp.status, resp.headers, content), iter(())
            return
        try:
            yield Answer(url, resp.status, resp.headers, b""), _lines(resp, url)
        finally:
            if resp.isclosed():
                self._settle(conn, resp)
            else:
                conn.close()  # not read to its end: the connection cannot carry another

    def close(self) -> None:
        """Close every connection (see :class:`ApiHttp`)."""
        self._conns.close()

    def _exchange(
        self,
        method: str,
        target: str,
        url: str,
        headers: Mapping[str, str] | None,
        body: Body,
        timeout: float | None = None,
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        conn = self._conns.acquire(self._origin)
        if conn is not None:
            try:
                return conn, self._request(conn, method, target, headers, body, timeout)
            except (ConnectionError, http.client.BadStatusLine):
                # Closed by the server while idle: send again on a new connection (a
                # commit carries an idempotency key, so even it is safe to send twice).
                conn.close()
            except (OSError, http.client.HTTPException) as e:  # a timeout, say: not stale
                conn.close()
                raise transport_error(e, url, reading=True, method=method) from e
            except BaseException:
                conn.close()
                raise
        try:
            # A request with its own (short) timeout gets no longer to connect either.
            within = None if timeout is None else min(timeout, self._connect_timeout)
            conn = self._conns.connect(self._origin, within)
        except (OSError, http.client.HTTPException) as e:
            raise transport_error(e, url, reading=False, method=method) from e
        try:
            return conn, self._request(conn, method, target, headers, body, timeout)
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise transport_error(e, url, reading=True, method=method) from e
        except BaseException:
            conn.close()
            raise

    def _request(
        self,
        conn: http.client.HTTPConnection,
        method: str,
        target: str,
        headers: Mapping[str, str] | None,
        body: Body,
        timeout: float | None,
    ) -> http.client.HTTPResponse:
        sent = {**self._headers, **(headers or {})}
        if conn.sock is not None:
            conn.sock.settimeout(timeout if timeout is not None else self._timeout)
        # A body that is made by a call (a commit's generator) goes chunked.
        conn.request(method, target, body=body() if callable(body) else body, headers=sent)
        return conn.getresponse()

    def _settle(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse) -> None:
        if resp.will_close:
            conn.close()
        else:
            self._conns.release(self._origin, conn)


def _lines(resp: http.client.HTTPResponse, url: str) -> Iterator[bytes]:
    """The non-empty lines of a body, read in large pieces."""
    rest = b""
    while True:
        try:
            piece = resp.read1(_LINE_READ)
        except (OSError, http.client.HTTPException) as e:
            raise transport_error(e, url, reading=True) from e
        if not piece:
            break
        lines = (rest + piece).split(b"\n")
        rest = lines.pop()
        yield from (line for line in lines if line.strip())
    if rest.strip():
        yield rest


class HttpxHttp:
    """API requests through httpx (where an environment proxy applies to the server)."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        timeout: float | None = None,
    ) -> Answer:
        """Send one request and read its whole answer (see :class:`ApiHttp`)."""
        content = body() if callable(body) else body
        req = self._client.build_request(
            method,
            path + query(params),
            headers=dict(headers or {}),
            content=content,
            timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
        )
        resp = self._client.send(req)
        return Answer(str(resp.request.url), resp.status_code, resp.headers, resp.content)

    @contextlib.contextmanager
    def stream(
        self, path: str, params: Mapping[str, Any] | None
    ) -> Iterator[tuple[Answer, Iterator[bytes]]]:
        """GET ``path`` and read its lines as they come (see :class:`ApiHttp`)."""
        req = self._client.build_request("GET", path + query(params))
        resp = self._client.send(req, stream=True)
        try:
            url = str(resp.request.url)
            if resp.status_code >= 400:
                yield Answer(url, resp.status_code, resp.headers, resp.read()), iter(())
                return
            lines = (line.encode() for line in resp.iter_lines() if line.strip())
            yield Answer(url, resp.status_code, resp.headers, b""), lines
        finally:
            resp.close()

    def close(self) -> None:
        """Close every connection (see :class:`ApiHttp`)."""
        self._client.close()
