"""Thumbnails: derived images made lazily, on a bounded worker pool, kept in the blob store.

One thumbnail per (digest, size), stored under ``thumbs/<digest>/<px>``
outside ``blobs/`` (garbage collection deletes it with its blob). It is made
on first view by a pool of ``workers`` threads, never on the event loop;
concurrent requests for the same thumbnail wait for the one being made.

Decoding reads no more than needed: Pillow's draft mode (the default, chosen
by bench/console.py) scales JPEG in the decoder; pyvips shrinks JPEG and WebP
on load and streams PNG and TIFF. Either way an image of more than
:data:`MAX_PIXELS` pixels is refused before it is decoded (a decompression
bomb), and a file that does not decode becomes a placeholder naming its type,
never an error.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from robosync.errors import RobosyncError
from robosync.server.services.blobs import THUMB_PX, blob_key, thumb_key
from robosync.server.store.base import BlobStore

log = logging.getLogger(__name__)

# 20,000 x 12,500: larger than any camera frame we design for (100 MB files).
MAX_PIXELS = 250_000_000
WEBP_QUALITY = 75
DECODABLE = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp"}
WEBP = "image/webp"
SVG = "image/svg+xml"


class NotAnImage(Exception):
    """The bytes do not decode as an image we thumbnail, or it is too large to."""


def media_type(data: bytes) -> str:
    """The content type of a stored thumbnail: WebP, or an SVG placeholder."""
    return WEBP if data[:4] == b"RIFF" else SVG


def placeholder(name: str) -> bytes:
    """An SVG tile naming the file's type (its extension)."""
    label = PurePosixPath(name).suffix.lstrip(".").upper()[:8] or "FILE"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{THUMB_PX}" height="{THUMB_PX}" '
        f'viewBox="0 0 256 256"><rect width="256" height="256" fill="#e8eaed"/>'
        f'<text x="128" y="140" font-family="sans-serif" font-size="40" fill="#5f6368" '
        f'text-anchor="middle">{html.escape(label)}</text></svg>'
    ).encode()


def is_decodable_name(name: str) -> bool:
    """Whether the file's extension is one of the image types we thumbnail."""
    return PurePosixPath(name).suffix.lower() in DECODABLE


def render_pyvips(path: Path, px: int = THUMB_PX) -> bytes:
    """A WebP thumbnail with libvips: shrink-on-load, sequential access, no cache."""
    import pyvips

    try:
        header = pyvips.Image.new_from_file(str(path), access="sequential")
        if header.width * header.height > MAX_PIXELS:
            raise NotAnImage(f"{header.width}x{header.height} is over {MAX_PIXELS} pixels")
        thumb = pyvips.Image.thumbnail(str(path), px, height=px, size="down")
        if thumb.format != "uchar":  # 16-bit PNG/TIFF, float TIFF
            thumb = thumb.colourspace("srgb").cast("uchar")
        return bytes(thumb.webpsave_buffer(Q=WEBP_QUALITY))
    except pyvips.Error as e:
        raise NotAnImage(str(e).splitlines()[0]) from e


def render_pillow(path: Path, px: int = THUMB_PX) -> bytes:
    """A WebP thumbnail with Pillow: draft mode (JPEG scaled while decoding)."""
    import io

    from PIL import Image, UnidentifiedImageError

    # Our own cap replaces Pillow's default bomb limit (which refuses past ~179 MP).
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise NotAnImage(f"{im.width}x{im.height} is over {MAX_PIXELS} pixels")
            im.draft("RGB", (px, px))
            im.thumbnail((px, px))
            small: Image.Image = im
            if small.mode.startswith("I"):  # 16/32-bit greyscale
                small = small.point(lambda v: v / 256).convert("L")
            elif small.mode not in ("RGB", "RGBA", "L", "LA"):
                small = small.convert("RGBA" if "A" in small.getbands() else "RGB")
            out = io.BytesIO()
            small.save(out, "WEBP", quality=WEBP_QUALITY)
            return out.getvalue()
    except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise NotAnImage(str(e)) from e


RENDERERS: dict[str, Callable[[Path, int], bytes]] = {
    "pyvips": render_pyvips,
    "pillow": render_pillow,
}


def configure_pyvips() -> None:
    """No operation cache: each thumbnail is made once and then kept in the store."""
    import pyvips

    pyvips.cache_set_max(0)
    pyvips.cache_set_max_mem(0)


class ThumbnailMaker:
    """Gets thumbnails from the store, making missing ones on a bounded thread pool."""

    def __init__(self, store: BlobStore, workers: int = 2, library: str = "pillow") -> None:
        if library not in RENDERERS:
            raise ValueError(f"unknown thumbnail library {library!r}: use one of {list(RENDERERS)}")
        self._store = store
        self._render = RENDERERS[library]
        if library == "pyvips":
            configure_pyvips()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="thumbs")
        self._making: dict[str, asyncio.Future[bytes]] = {}

    async def thumbnail(self, digest: str, name: str) -> bytes:
        """The thumbnail of blob ``digest`` (file ``name``): stored, or made now."""
        key = thumb_key(digest)
        stored = await asyncio.to_thread(self._store.get_bytes, key)
        if stored is not None:
            return stored
        pending = self._making.get(key)
        if pending is None:
            loop = asyncio.get_running_loop()
            pending = asyncio.ensure_future(
                loop.run_in_executor(self._pool, self._make_and_store, digest, name)
            )
            self._making[key] = pending
            pending.add_done_callback(lambda _f: self._making.pop(key, None))
        return await asyncio.shield(pending)

    def _make_and_store(self, digest: str, name: str) -> bytes:
        data = self._make(digest, name)
        self._store.put_bytes(thumb_key(digest), data)
        return data

    def _make(self, digest: str, name: str) -> bytes:
        if not is_decodable_name(name):
            return placeholder(name)
        try:
            with self._store.local_copy(blob_key(digest)) as path:
                return self._render(path, THUMB_PX)
        except NotAnImage as e:
            log.info("no thumbnail for %s (%s): %s", digest, name, e)
            return placeholder(name)
        except RobosyncError:
            raise  # the store failed: retry on a later view, cache nothing

    def close(self) -> None:
        """Stop the worker threads (after the running ones finish)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
