"""Presigned downloads, only for digests that belong to the project (any version)."""

from __future__ import annotations

from sqlalchemy import select

from robosync.errors import NotFound
from robosync.protocol import DownloadLink
from robosync.server.db.engine import Database
from robosync.server.db.models import File
from robosync.server.db.queries import one_of
from robosync.server.services.blobs import blob_key
from robosync.server.services.commits import IN_BATCH, chunked
from robosync.server.store.base import BlobStore


def presign_downloads(
    db: Database, store: BlobStore, project_id: int, digests: list[str]
) -> list[DownloadLink]:
    """A GET URL per digest; :class:`NotFound` listing digests not in the project."""
    wanted = list(dict.fromkeys(digests))
    sizes: dict[str, int] = {}
    with db.reading() as session:
        for batch in chunked(wanted, IN_BATCH):
            rows = session.execute(
                select(File.digest, File.size)
                .distinct()
                .where(File.project_id == project_id, one_of(session, File.digest, batch))
            )
            sizes.update({d: s for d, s in rows})
    missing = [d for d in wanted if d not in sizes]
    if missing:
        raise NotFound(
            f"{len(missing)} digest(s) are not part of this project", {"missing": missing}
        )
    return [
        DownloadLink(digest=d, size=sizes[d], url=store.presign_get(blob_key(d))) for d in wanted
    ]
