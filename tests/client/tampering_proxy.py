"""An HTTP/1.1 proxy in front of the API that rewrites answers: a server the client must not trust.

Each request is forwarded on its own connection to the target (``Connection:
close``); the whole answer is read, its body de-chunked and handed to
``rewrite(method, path, body)``, and sent back with a fresh
``Content-Length``. A test changes ``rewrite`` at any time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from urllib.parse import urlsplit

from tests.fixtures.loopback_proxy import LoopbackProxy

Rewrite = Callable[[str, str, bytes], bytes]


def _fields(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    out = []
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            out.append((k.strip(), v.strip()))
    return lines[0], out


async def _read_body(r: asyncio.StreamReader, fields: list[tuple[str, str]], eof: bool) -> bytes:
    lower = {k.lower(): v for k, v in fields}
    if "chunked" in lower.get("transfer-encoding", ""):
        body = bytearray()
        while True:
            size = int((await r.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await r.readuntil(b"\r\n") != b"\r\n":
                    pass
                return bytes(body)
            body += await r.readexactly(size)
            await r.readexactly(2)
    if "content-length" in lower:
        return await r.readexactly(int(lower["content-length"]))
    return await r.read() if eof else b""


def _head(start: str, fields: list[tuple[str, str]], body: bytes) -> bytes:
    drop = {"content-length", "transfer-encoding", "connection"}
    kept = [f"{k}: {v}" for k, v in fields if k.lower() not in drop]
    lines = [start, *kept, f"Content-Length: {len(body)}", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class TamperingProxy(LoopbackProxy):
    """Forward to ``target``; answers pass through ``rewrite`` (identity by default)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        super().__init__(target_host, target_port)
        self.rewrite: Rewrite = lambda method, path, body: body

    async def _serve(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        try:
            head = await creader.readuntil(b"\r\n\r\n")
            start, fields = _fields(head)
            body = await _read_body(creader, fields, eof=False)
            sreader, swriter = await asyncio.open_connection(*self.target)
            swriter.write(_head(start, fields, body) + body)
            await swriter.drain()
            answer_head = await sreader.readuntil(b"\r\n\r\n")
            status, answer_fields = _fields(answer_head)
            answer = await _read_body(sreader, answer_fields, eof=True)
            swriter.close()
            method, target = start.split(" ")[:2]
            answer = self.rewrite(method, urlsplit(target).path, answer)
            cwriter.write(_head(status, answer_fields, answer) + answer)
            await cwriter.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            cwriter.close()


def rewrite_ndjson_paths(endpoint: str, paths: dict[str, str]) -> Rewrite:
    """Rewrite ``path`` of lines of answers whose URL path ends with ``endpoint``."""

    def rewrite(method: str, path: str, body: bytes) -> bytes:
        if not path.endswith(endpoint):
            return body
        out = []
        for line in body.splitlines():
            item = json.loads(line)
            if item.get("path") in paths:
                item["path"] = paths[item["path"]]
            out.append(json.dumps(item).encode())
        return b"".join(line + b"\n" for line in out)

    return rewrite
