"""The blob store interface: S3 (``s3.py``) and the embedded local store (``local.py``).

Keys are ``blobs/<digest>``; derived objects (thumbnails) live outside
``blobs/``, under ``thumbs/<digest>/<px>``. Every URL handed to a robot is presigned and
expires; each PUT URL is bound to the SHA-256 of the block it must carry
(``x-amz-checksum-sha256``), so the store refuses any other body.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class PresignedRequest:
    """A URL plus the headers the client must send with it."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredPart:
    """A part the store already holds for an unfinished multipart upload."""

    number: int
    etag: str
    size: int


@dataclass(frozen=True)
class ObjectInfo:
    """What a HEAD with checksum mode says of an object.

    ``checksum_sha256`` is S3's value: ``base64(sha256(body))`` for a single
    PUT, ``base64(composite)-N`` for a multipart upload, ``None`` if the
    store did not record one.
    """

    size: int
    checksum_sha256: str | None


class BlobStore(Protocol):
    """What the API needs of an object store."""

    def presign_put(self, key: str, checksum_b64: str, size: int) -> PresignedRequest:
        """A single PUT of a one-block object whose body must hash to ``checksum_b64``."""
        ...

    def presign_puts(self, puts: list[tuple[str, str, int]]) -> list[PresignedRequest]:
        """:meth:`presign_put` of each ``(key, checksum_b64, size)``, signed together."""
        ...

    def create_multipart(self, key: str) -> str:
        """Start a multipart upload with SHA-256 checksums; return its upload id."""
        ...

    def presign_part(
        self, key: str, upload_id: str, number: int, checksum_b64: str, size: int
    ) -> PresignedRequest:
        """A PUT of part ``number`` whose body must hash to ``checksum_b64``."""
        ...

    def list_parts(self, key: str, upload_id: str) -> list[StoredPart] | None:
        """Parts already accepted, or ``None`` if the upload no longer exists."""
        ...

    def complete_multipart(
        self, key: str, upload_id: str, parts: list[tuple[int, str, str]]
    ) -> None:
        """Complete with ``(number, etag, checksum_b64)`` per part, in order."""
        ...

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Abort an upload and drop its parts (no error if it is gone)."""
        ...

    def head(self, key: str) -> ObjectInfo | None:
        """Size and SHA-256 checksum of an object, or ``None`` if absent."""
        ...

    def delete(self, key: str) -> None:
        """Delete an object (no error if it is absent)."""
        ...

    def presign_get(
        self, key: str, *, content_type: str | None = None, disposition: str | None = None
    ) -> str:
        """A GET URL for an object, valid for the configured expiry.

        ``content_type`` and ``disposition`` set the answer's ``Content-Type``
        and ``Content-Disposition`` (S3's ``response-content-*`` overrides).
        """
        ...

    def presign_gets(self, keys: list[str]) -> list[str]:
        """A plain GET URL for each of ``keys`` (as :meth:`presign_get` without overrides)."""
        ...

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store a small derived object (a thumbnail) whole."""
        ...

    def get_bytes(self, key: str) -> bytes | None:
        """A small derived object's bytes, or ``None`` if absent."""
        ...

    def local_copy(self, key: str) -> AbstractContextManager[Path]:
        """A file holding the object's bytes while the context lasts (for decoders)."""
        ...

    def check(self) -> None:
        """Raise if the store cannot be reached (for ``/readyz``)."""
        ...
