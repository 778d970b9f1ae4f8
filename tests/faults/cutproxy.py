"""A TCP proxy that cuts connections in the middle of a PUT, like a flaky robot link.

The first ``cuts`` PUT requests are dropped (both sockets reset) once ``after``
bytes of them have been forwarded; everything else passes untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class CuttingProxy:
    """Run with ``start()``; point clients at ``.url``; ``.cut`` counts the cuts made."""

    def __init__(self, target_host: str, target_port: int, *, after: int, cuts: int) -> None:
        self.target = (target_host, target_port)
        self.after = after
        self.cuts_left = cuts
        self.cut = 0
        self.port = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        """Where clients connect."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> CuttingProxy:
        """Listen on a free loopback port."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        """Stop listening and the loop."""

        async def close() -> None:
            if self._server:
                self._server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

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
