"""A TCP proxy that cuts connections in the middle of a PUT, like a flaky robot link.

The first ``cuts`` PUT requests are dropped (both sockets reset) once ``after``
bytes of them have been forwarded; everything else passes untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from tests.fixtures.loopback_proxy import LoopbackProxy


class CuttingProxy(LoopbackProxy):
    """Run with ``start()``; point clients at ``.url``; ``.cut`` counts the cuts made."""

    def __init__(self, target_host: str, target_port: int, *, after: int, cuts: int) -> None:
        super().__init__(target_host, target_port)
        self.after = after
        self.cuts_left = cuts
        self.cut = 0
        self._lock = threading.Lock()

    def _take_cut(self) -> bool:
        with self._lock:
            if self.cuts_left <= 0:
                return False
            self.cuts_left -= 1
            self.cut += 1
            return True

    async def _serve(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        try:
            sreader, swriter = await asyncio.open_connection(*self.target)
        except OSError:
            cwriter.close()
            return
        up = asyncio.create_task(self._upstream(creader, swriter))
        down = asyncio.create_task(self._pump(sreader, cwriter))
        await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
        for task in (up, down):
            task.cancel()
        for w in (cwriter, swriter):
            # abort(): a reset, not a polite close, as when a link drops.
            w.transport.abort()

    async def _upstream(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        sent_of_put: int | None = None
        while chunk := await r.read(65536):
            start = chunk.find(b"PUT /")
            if start >= 0:
                sent_of_put = -start
            if sent_of_put is not None:
                if sent_of_put + len(chunk) >= self.after and self._take_cut():
                    w.write(chunk[: max(0, self.after - sent_of_put)])
                    with contextlib.suppress(ConnectionError):
                        await w.drain()
                    return
                sent_of_put += len(chunk)
            w.write(chunk)
            await w.drain()

    @staticmethod
    async def _pump(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while chunk := await r.read(65536):
            w.write(chunk)
            await w.drain()
