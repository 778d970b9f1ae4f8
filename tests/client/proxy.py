"""A counting HTTP/1.1 proxy: forwards bytes to a target and records every exchange.

Placed in front of the blob store (the embedded server's store routes, or
SeaweedFS's S3 port), it tells a test exactly which requests the store
received, how many body bytes each carried, and what the store answered, so
"no block received twice" and "only new bytes uploaded" are measured where
the bytes arrive, not claimed by the client. ``rate`` (bytes/s) throttles
request bodies so a test can interrupt a transfer half way.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from tests.fixtures.loopback_proxy import LoopbackProxy


@dataclass
class Exchange:
    """One request through the proxy and the status answered (``None``: no answer)."""

    method: str
    target: str
    body_bytes: int
    complete: bool
    status: int | None = None

    @property
    def path(self) -> str:
        """Path without the query."""
        return urlsplit(self.target).path

    @property
    def part_key(self) -> tuple[str, str]:
        """What identifies the block a PUT carries: path plus S3's part number and upload id."""
        q = parse_qs(urlsplit(self.target).query)
        return (self.path, f"{q.get('partNumber', [''])[0]}:{q.get('uploadId', [''])[0]}")


def _headers(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            fields[k.strip().lower()] = v.strip()
    return lines[0], fields


class CountingProxy(LoopbackProxy):
    """Run with ``start()``; point clients at ``.url``; read ``.exchanges``."""

    def __init__(self, target_host: str, target_port: int, rate: float | None = None) -> None:
        super().__init__(target_host, target_port)
        self.rate = rate
        self.exchanges: list[Exchange] = []
        self.lock = threading.Lock()

    def puts(self, accepted: bool | None = None) -> list[Exchange]:
        """PUT exchanges (only those answered 2xx if ``accepted``)."""
        with self.lock:
            out = [e for e in self.exchanges if e.method == "PUT"]
        if accepted:
            out = [e for e in out if e.status is not None and 200 <= e.status < 300]
        return out

    def reset(self) -> None:
        """Forget recorded exchanges."""
        with self.lock:
            self.exchanges.clear()

    async def _serve(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        try:
            sreader, swriter = await asyncio.open_connection(*self.target)
        except OSError:
            cwriter.close()
            return
        queue: asyncio.Queue[Exchange] = asyncio.Queue()
        up = asyncio.create_task(self._requests(creader, swriter, queue))
        down = asyncio.create_task(self._responses(sreader, cwriter, queue))
        await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
        if up.done() and not down.done():
            # The client went away (maybe killed): let the store finish and
            # answer what it already received, so its decision is recorded.
            with contextlib.suppress(OSError, RuntimeError):
                swriter.write_eof()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(down), 30)
        for t in (up, down):
            t.cancel()
        for w in (cwriter, swriter):
            w.close()

    async def _requests(
        self, r: asyncio.StreamReader, w: asyncio.StreamWriter, queue: asyncio.Queue[Exchange]
    ) -> None:
        while True:
            try:
                head = await r.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            start, fields = _headers(head)
            method, target = start.split(" ")[:2]
            ex = Exchange(method, target, 0, False)
            with self.lock:
                self.exchanges.append(ex)
            await queue.put(ex)
            w.write(head)
            try:
                await self._body(r, w, fields, ex, throttle=True)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            ex.complete = True
            await w.drain()

    async def _responses(
        self, r: asyncio.StreamReader, w: asyncio.StreamWriter, queue: asyncio.Queue[Exchange]
    ) -> None:
        while True:
            try:
                head = await r.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            start, fields = _headers(head)
            status = int(start.split(" ")[1])
            if status < 200:
                w.write(head)
                continue
            ex = await queue.get()
            # Recorded before the body: the store has decided even if the
            # client is killed before the answer reaches it.
            ex.status = status
            w.write(head)
            no_body = ex.method == "HEAD" or status in (204, 304)
            try:
                if not no_body:
                    await self._body(r, w, fields, None, throttle=False, until_eof=True)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            await w.drain()

    async def _body(
        self,
        r: asyncio.StreamReader,
        w: asyncio.StreamWriter,
        fields: dict[str, str],
        ex: Exchange | None,
        *,
        throttle: bool,
        until_eof: bool = False,
    ) -> None:
        async def copy(n: int) -> None:
            while n:
                chunk = await r.readexactly(min(n, 65536))
                n -= len(chunk)
                if ex is not None:
                    ex.body_bytes += len(chunk)
                w.write(chunk)
                await w.drain()
                if throttle and self.rate:
                    await asyncio.sleep(len(chunk) / self.rate)

        if "chunked" in fields.get("transfer-encoding", ""):
            while True:
                line = await r.readuntil(b"\r\n")
                w.write(line)
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    while (trailer := await r.readuntil(b"\r\n")) != b"\r\n":
                        w.write(trailer)
                    w.write(b"\r\n")
                    return
                await copy(size)
                w.write(await r.readexactly(2))
        elif "content-length" in fields:
            await copy(int(fields["content-length"]))
        elif until_eof:
            while chunk := await r.read(65536):
                w.write(chunk)
                await w.drain()


def wait_for(predicate, timeout: float = 30.0, every: float = 0.02) -> bool:  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until true or ``timeout``; whether it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False
