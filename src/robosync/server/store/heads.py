"""HEADs of stored objects over kept-alive ``http.client`` connections, one set per thread.

A completion proves each new blob with one HEAD, so a push of many small
images makes as many HEADs as PUTs. Through urllib3's pool manager (pool
lookup by URL, its own request and response objects) and ``http.client``'s
``email``-based header parser, a HEAD cost the API process more CPU than the
rest of the blob's completion (``py-spy --gil``, docs/PERFORMANCE.md). Here a
HEAD is one request on a connection the calling thread already holds, and its
dozen header lines are split, not parsed as mail.
"""

from __future__ import annotations

import http.client
import ssl
import threading
import weakref
from urllib.parse import urlsplit

from robosync.httpwire import AnswerHeaders, Origin, connect, default_port, still_open


class StoreHeads:
    """Send HEAD requests; each thread reuses its own idle connections (no lock to queue on)."""

    def __init__(self, *, connect_timeout: float = 5.0, read_timeout: float = 30.0) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._local = threading.local()
        self._every: weakref.WeakSet[http.client.HTTPConnection] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._ssl: ssl.SSLContext | None = None

    def head(self, url: str, headers: dict[str, str]) -> tuple[int, AnswerHeaders]:
        """HEAD ``url`` with ``headers``: the status and the answer's headers.

        Transport failures raise ``OSError`` or ``http.client.HTTPException``. A
        kept-alive connection the store closed while idle is replaced once, silently
        (a HEAD changes nothing, so sending it again is safe).
        """
        parts = urlsplit(url)
        scheme = parts.scheme
        origin = (scheme, parts.hostname or "", parts.port or default_port(scheme))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        idle = self._idle(origin)
        while idle:
            conn = idle.pop()
            if not still_open(conn):
                conn.close()
                continue
            try:
                return self._exchange(conn, idle, target, headers)
            except (OSError, http.client.HTTPException):
                conn.close()
                break
        conn = self._connect(origin)
        try:
            return self._exchange(conn, idle, target, headers)
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        """Close every connection (idle ones of all threads)."""
        with self._lock:
            every = list(self._every)
            self._every.clear()
        for conn in every:
            conn.close()

    def _idle(self, origin: Origin) -> list[http.client.HTTPConnection]:
        pools: dict[Origin, list[http.client.HTTPConnection]] | None = getattr(
            self._local, "idle", None
        )
        if pools is None:
            pools = self._local.idle = {}
        return pools.setdefault(origin, [])

    def _exchange(
        self,
        conn: http.client.HTTPConnection,
        idle: list[http.client.HTTPConnection],
        target: str,
        headers: dict[str, str],
    ) -> tuple[int, AnswerHeaders]:
        conn.request("HEAD", target, headers=headers)
        resp = conn.getresponse()
        resp.read()  # an answer to HEAD has no body; this marks the exchange done
        if resp.will_close:
            conn.close()
        else:
            idle.append(conn)
        answer = resp.headers
        assert isinstance(answer, AnswerHeaders)
        return resp.status, answer

    def _connect(self, origin: Origin) -> http.client.HTTPConnection:
        return connect(
            origin,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            tls=self._tls,
            track=self._track,
        )

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    def _track(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._every.add(conn)
