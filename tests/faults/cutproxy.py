"""A TCP proxy that cuts connections in the middle of a transfer, like a flaky robot link.

The first ``cuts`` PUT requests are dropped (both sockets reset) once ``after``
bytes of them have been forwarded; with ``answer_cuts``, as many connections are
dropped once ``after`` bytes of the store's answers on them have come back (in the
middle of a downloaded body); everything else passes untouched.
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
        self.answer_cuts_left = 0
        self.cut = 0
        self._lock = threading.Lock()

    def _take_cut(self, of_answer: bool = False) -> bool:
        with self._lock:
            if (self.answer_cuts_left if of_answer else self.cuts_left) <= 0:
                return False
            if of_answer:
                self.answer_cuts_left -= 1
            else:
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
        down = asyncio.create_task(self._downstream(sreader, cwriter))
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

    async def _downstream(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        answered = 0
        while chunk := await r.read(65536):
            if answered + len(chunk) >= self.after and self._take_cut(of_answer=True):
                w.write(chunk[: max(0, self.after - answered)])
                with contextlib.suppress(ConnectionError):
                    await w.drain()
                return
            answered += len(chunk)
            w.write(chunk)
            await w.drain()
