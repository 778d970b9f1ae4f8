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

from robosync.httpwire import AnswerHeaders, Origin, ThreadConnections, split_url


class StoreHeads:
    """Send HEAD requests; each thread reuses its own idle connections (no lock to queue on)."""

    def __init__(self, *, connect_timeout: float = 5.0, read_timeout: float = 30.0) -> None:
        self._conns = ThreadConnections(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            tls=ssl.create_default_context,
        )

    def head(self, url: str, headers: dict[str, str]) -> tuple[int, AnswerHeaders]:
        """HEAD ``url`` with ``headers``: the status and the answer's headers.

        Transport failures raise ``OSError`` or ``http.client.HTTPException``. A
        kept-alive connection the store closed while idle is replaced once, silently
        (a HEAD changes nothing, so sending it again is safe).
        """
        origin, target = split_url(url)
        conn = self._conns.acquire(origin)
        if conn is not None:
            try:
                return self._exchange(conn, origin, target, headers)
            except (OSError, http.client.HTTPException):
                conn.close()
        conn = self._conns.connect(origin)
        try:
            return self._exchange(conn, origin, target, headers)
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        """Close every connection (idle ones of all threads)."""
        self._conns.close()

    def _exchange(
        self, conn: http.client.HTTPConnection, origin: Origin, target: str, headers: dict[str, str]
    ) -> tuple[int, AnswerHeaders]:
        conn.request("HEAD", target, headers=headers)
        resp = conn.getresponse()
        resp.read()  # an answer to HEAD has no body; this marks the exchange done
        if resp.will_close:
            conn.close()
        else:
            self._conns.release(origin, conn)
        answer = resp.headers
        assert isinstance(answer, AnswerHeaders)
        return resp.status, answer
