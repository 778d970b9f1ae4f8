"""Presigned downloads, only for digests that belong to the project (any version)."""

from __future__ import annotations

import mimetypes
from pathlib import PurePosixPath
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session

from robosync.errors import NotFound
from robosync.protocol import DownloadLink
from robosync.server.db.engine import Database
from robosync.server.db.models import File
from robosync.server.db.queries import chunked, one_of
from robosync.server.services.blobs import blob_key
from robosync.server.services.commits import IN_BATCH
from robosync.server.store.base import BlobStore


def sizes_in_project(session: Session, project_id: int, digests: list[str]) -> dict[str, int]:
    """The size of each of ``digests`` that a file of the project has (in any version)."""
    sizes: dict[str, int] = {}
    for batch in chunked(digests, IN_BATCH):
        rows = session.execute(
            select(File.digest, File.size)
            .distinct()
            .where(File.project_id == project_id, one_of(session, File.digest, batch))
        )
        sizes.update({d: s for d, s in rows})
    return sizes


def presign_downloads(
    db: Database, store: BlobStore, project_id: int, digests: list[str]
) -> list[DownloadLink]:
    """A GET URL per digest; :class:`NotFound` listing digests not in the project."""
    wanted = list(dict.fromkeys(digests))
    with db.reading() as session:
        sizes = sizes_in_project(session, project_id, wanted)
    missing = [d for d in wanted if d not in sizes]
    if missing:
        raise NotFound(
            f"{len(missing)} digest(s) are not part of this project", {"missing": missing}
        )
    urls = store.presign_gets([blob_key(d) for d in wanted])
    return [
        DownloadLink(digest=d, size=sizes[d], url=url) for d, url in zip(wanted, urls, strict=True)
    ]


# Shown inline only for raster images: anything else (HTML, SVG, …) could run
# script in the browser, so it is always a download.
INLINE_TYPES = {"image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp", "image/avif"}


def content_disposition(kind: str, filename: str) -> str:
    """A ``Content-Disposition`` value with an ASCII fallback and the UTF-8 name (RFC 6266)."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename
    )
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def browser_type(path: str) -> str | None:
    """The content type a browser shows inline for this file name, or None."""
    guessed = mimetypes.guess_type(PurePosixPath(path).name)[0]
    return guessed if guessed in INLINE_TYPES else None


def presign_view(store: BlobStore, digest: str, path: str, *, attachment: bool) -> str:
    """A GET URL of a file for a browser: shown inline if it is a raster image, else saved."""
    name = PurePosixPath(path).name
    guessed = browser_type(name)
    image = guessed is not None
    inline = image and not attachment
    return store.presign_get(
        blob_key(digest),
        content_type=guessed or "application/octet-stream",
        disposition=content_disposition("inline" if inline else "attachment", name),
    )
