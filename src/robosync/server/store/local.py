"""The embedded blob store: files on local disk behind HMAC-signed, expiring URLs.

It behaves like S3 as far as robosync depends on it: a PUT URL is bound to
the method, the object (or upload part), the SHA-256 the body must have
(``x-amz-checksum-sha256``), the body size (``Content-Length``) and an
expiry; a wrong body is refused with 400 and never becomes visible, a wrong
or expired signature with 403. After completion of a multipart upload,
:meth:`LocalStore.head` answers the same composite checksum S3 does.

Layout under ``root``::

    blobs/<digest>            objects
    blobs/proof-<token>       staging objects of proof-of-possession uploads (key proofs/<token>)
    meta/<digest>.json        {"size", "checksum_sha256"} of each object
    meta/proof-<token>.json   the same of each staging object
    uploads/<id>/upload.json  {"key", "created"} of an unfinished multipart upload
    uploads/<id>/<n>          part n, and <n>.json its {"etag", "size", "checksum_sha256"}
    thumbs/<digest>/<px>      derived objects (thumbnails), key thumbs/<digest>/<px>

Every file appears by rename from a temporary file in the same folder, after
fsync, so a crash never leaves a torn object, part or sidecar.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from robosync.errors import Forbidden, IntegrityError, InvalidInput, NotFound, Unavailable
from robosync.server.store.base import ObjectInfo, PresignedRequest, StoredPart

CHECKSUM_HEADER = "x-amz-checksum-sha256"
EXPIRES_PARAM = "X-Robosync-Expires"
SIGNATURE_PARAM = "X-Robosync-Signature"
OBJECT_ROUTE = "/v1/store"
PART_ROUTE = "/v1/store-uploads"

KEY_RE = re.compile(r"^blobs/([0-9a-f]{64})$")
PROOF_KEY_RE = re.compile(r"^proofs/([0-9a-f]{32})$")
UPLOAD_ID_RE = re.compile(r"^[0-9a-f]{32}$")
DERIVED_KEY_RE = re.compile(r"^thumbs/[0-9a-f]{64}/[0-9]{1,5}$")
CONTENT_TYPE_PARAM = "response-content-type"
DISPOSITION_PARAM = "response-content-disposition"
MAX_PART_NUMBER = 10000
_COPY_CHUNK = 1024 * 1024


def _digest_of_key(key: str) -> str:
    """The file name of a key's object: the digest, or ``proof-<token>`` of a staging key."""
    m = KEY_RE.match(key)
    if m:
        return m.group(1)
    m = PROOF_KEY_RE.match(key)
    if m:
        return f"proof-{m.group(1)}"
    raise InvalidInput(
        "object key must be blobs/<64 lowercase hex> or proofs/<32 lowercase hex>",
        {"key": key[:200]},
    )


def _check_derived_key(key: str) -> None:
    if not DERIVED_KEY_RE.match(key):
        raise InvalidInput("derived object key must be thumbs/<digest>/<px>", {"key": key[:200]})


def get_resource(key: str, content_type: str, disposition: str) -> str:
    """The name a GET signature is bound to: the key and the answer headers it sets."""
    if not content_type and not disposition:
        return key
    return f"{key}\n{content_type}\n{disposition}"


def _check_upload_id(upload_id: str) -> None:
    if not UPLOAD_ID_RE.match(upload_id):
        raise InvalidInput("malformed upload id", {"upload_id": upload_id[:100]})


def _check_part_number(number: int) -> None:
    if not 1 <= number <= MAX_PART_NUMBER:
        raise InvalidInput(f"part number must be 1..{MAX_PART_NUMBER}", {"number": number})


def part_resource(upload_id: str, number: int) -> str:
    """The name a part's signature is bound to."""
    return f"uploads/{upload_id}/{number}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, value: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(value, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):
        return None
    return value if isinstance(value, dict) else None


@dataclass(frozen=True)
class _Target:
    """Where a verified PUT body lands and what it must be."""

    final: Path
    checksum_b64: str
    size: int
    upload_dir: Path | None  # set for a multipart part
    number: int = 0


class BodyWriter:
    """Receives one PUT body: temp file next to the target, hashed as it is written.

    Call :meth:`write` with the chunks, then :meth:`commit` (verify, fsync,
    rename) or :meth:`discard`. Blocking: call it from a worker thread.
    """

    def __init__(self, store: LocalStore, target: _Target) -> None:
        self._store = store
        self._target = target
        self._hash = hashlib.sha256()
        self.received = 0
        fd, name = tempfile.mkstemp(prefix=".tmp-", dir=target.final.parent)
        self._tmp = Path(name)
        self._file = os.fdopen(fd, "wb")
        self._published = False

    def write(self, data: bytes) -> None:
        """Append ``data``; refuse the body as soon as it grows past the signed size."""
        self.received += len(data)
        if self.received > self._target.size:
            raise InvalidInput(f"body is larger than the signed {self._target.size} bytes")
        self._hash.update(data)
        self._file.write(data)

    def commit(self) -> str:
        """Verify size and checksum, make the body visible atomically, return its ETag."""
        t = self._target
        if self.received != t.size:
            raise InvalidInput(f"body has {self.received} bytes, signed for {t.size}")
        raw = self._hash.digest()
        if not hmac.compare_digest(base64.b64encode(raw).decode("ascii"), t.checksum_b64):
            raise IntegrityError("body does not match its x-amz-checksum-sha256 (BadDigest)")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        etag = f'"{raw.hex()}"'
        if t.upload_dir is None:
            self._store._publish_object(self._tmp, t.final, t.size, t.checksum_b64)
        else:
            self._store._publish_part(self._tmp, t, etag)
        self._published = True
        return etag

    def discard(self) -> None:
        """Drop the temporary file (after an error or a disconnect)."""
        if not self._file.closed:
            self._file.close()
        if not self._published:
            self._tmp.unlink(missing_ok=True)


class LocalStore:
    """A :class:`~robosync.server.store.base.BlobStore` on a local folder.

    Its URLs point at the API process itself (``base_url``), which serves them
    with :func:`robosync.server.routes.local_store.local_store_router`.
    """

    def __init__(self, root: Path, base_url: str, secret: bytes, expiry_seconds: int = 900) -> None:
        if not secret:
            raise ValueError("the local store needs a non-empty signing secret")
        self.root = Path(root).resolve()
        self.base_url = base_url.rstrip("/")
        self._secret = secret
        self.expiry_seconds = expiry_seconds
        self.blobs_dir = self.root / "blobs"
        self.meta_dir = self.root / "meta"
        self.uploads_dir = self.root / "uploads"
        for d in (self.blobs_dir, self.meta_dir, self.uploads_dir):
            d.mkdir(parents=True, exist_ok=True)

    # --- signatures -------------------------------------------------------------

    def sign(self, method: str, resource: str, checksum_b64: str, size: str, expires: int) -> str:
        """HMAC-SHA256 over everything a URL grants, as hex."""
        message = "\n".join((method.upper(), resource, checksum_b64, size, str(expires)))
        return hmac.new(self._secret, message.encode("utf-8"), hashlib.sha256).hexdigest()

    def verify(
        self,
        method: str,
        resource: str,
        checksum_b64: str,
        size: str,
        expires: str,
        signature: str,
    ) -> None:
        """Raise :class:`Forbidden` unless ``signature`` grants this request now."""
        try:
            when = int(expires)
        except ValueError:
            raise Forbidden("malformed expiry") from None
        expected = self.sign(method, resource, checksum_b64, size, when)
        if not hmac.compare_digest(expected, signature):
            raise Forbidden("signature does not match (SignatureDoesNotMatch)")
        if time.time() > when:
            raise Forbidden("the presigned URL has expired")

    def _signed_url(
        self,
        path: str,
        method: str,
        resource: str,
        checksum: str,
        size: str,
        extra: dict[str, str] | None = None,
    ) -> str:
        expires = int(time.time()) + self.expiry_seconds
        query = urlencode(
            {
                **(extra or {}),
                EXPIRES_PARAM: expires,
                SIGNATURE_PARAM: self.sign(method, resource, checksum, size, expires),
            }
        )
        return f"{self.base_url}{path}?{query}"

    # --- BlobStore ----------------------------------------------------------------

    def presign_put(self, key: str, checksum_b64: str, size: int) -> PresignedRequest:
        """A single PUT of a one-block object whose body must hash to ``checksum_b64``."""
        _digest_of_key(key)
        url = self._signed_url(f"{OBJECT_ROUTE}/{key}", "PUT", key, checksum_b64, str(size))
        return PresignedRequest(url, {CHECKSUM_HEADER: checksum_b64})

    def presign_puts(self, puts: list[tuple[str, str, int]]) -> list[PresignedRequest]:
        """:meth:`presign_put` of each ``(key, checksum_b64, size)``."""
        return [self.presign_put(key, checksum, size) for key, checksum, size in puts]

    def create_multipart(self, key: str) -> str:
        """Start a multipart upload; return its upload id."""
        _digest_of_key(key)
        upload_id = secrets.token_hex(16)
        d = self.uploads_dir / upload_id
        d.mkdir()
        _write_json_atomic(d / "upload.json", {"key": key, "created": time.time()})
        return upload_id

    def presign_part(
        self, key: str, upload_id: str, number: int, checksum_b64: str, size: int
    ) -> PresignedRequest:
        """A PUT of part ``number`` whose body must hash to ``checksum_b64``."""
        _digest_of_key(key)
        _check_upload_id(upload_id)
        _check_part_number(number)
        resource = part_resource(upload_id, number)
        url = self._signed_url(
            f"{PART_ROUTE}/{upload_id}/{number}", "PUT", resource, checksum_b64, str(size)
        )
        return PresignedRequest(url, {CHECKSUM_HEADER: checksum_b64})

    def _upload_dir(self, key: str, upload_id: str) -> Path | None:
        _check_upload_id(upload_id)
        d = self.uploads_dir / upload_id
        info = _read_json(d / "upload.json")
        if info is None or info.get("key") != key:
            return None
        return d

    def _parts(self, d: Path) -> dict[int, dict[str, Any]]:
        parts: dict[int, dict[str, Any]] = {}
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            return parts
        for name in names:
            stem, _, ext = name.partition(".")
            if ext == "json" and stem.isdigit():
                info = _read_json(d / name)
                if info is not None and (d / stem).is_file():
                    parts[int(stem)] = info
        return parts

    def list_parts(self, key: str, upload_id: str) -> list[StoredPart] | None:
        """Parts already accepted, or ``None`` if the upload no longer exists."""
        _digest_of_key(key)
        d = self._upload_dir(key, upload_id)
        if d is None:
            return None
        parts = self._parts(d)
        return [
            StoredPart(number=n, etag=str(p["etag"]), size=int(p["size"]))
            for n, p in sorted(parts.items())
        ]

    def complete_multipart(
        self, key: str, upload_id: str, parts: list[tuple[int, str, str]]
    ) -> None:
        """Complete with ``(number, etag, checksum_b64)`` per part, in order.

        Concatenates the parts into the object (re-hashing them on the way, so
        a part damaged on disk is caught) and records the composite checksum.
        """
        _digest_of_key(key)
        d = self._upload_dir(key, upload_id)
        if d is None:
            raise NotFound("no such multipart upload (NoSuchUpload)", {"upload_id": upload_id})
        stored = self._parts(d)
        self._check_completion(parts, stored)
        final = self.blobs_dir / _digest_of_key(key)
        fd, name = tempfile.mkstemp(prefix=".tmp-", dir=self.blobs_dir)
        tmp = Path(name)
        try:
            size = 0
            with os.fdopen(fd, "wb") as out:
                for number, _, checksum in parts:
                    size += self._copy_verified(d / str(number), checksum, out)
                out.flush()
                os.fsync(out.fileno())
            composite = hashlib.sha256(b"".join(base64.b64decode(c) for _, _, c in parts))
            checksum = f"{base64.b64encode(composite.digest()).decode('ascii')}-{len(parts)}"
            self._publish_object(tmp, final, size, checksum)
        except FileNotFoundError:
            # Another completion or an abort removed the parts meanwhile.
            tmp.unlink(missing_ok=True)
            raise NotFound("no such multipart upload (NoSuchUpload)") from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        shutil.rmtree(d, ignore_errors=True)

    @staticmethod
    def _check_completion(
        parts: list[tuple[int, str, str]], stored: dict[int, dict[str, Any]]
    ) -> None:
        if not parts:
            raise InvalidInput("a multipart upload needs at least one part")
        numbers = [n for n, _, _ in parts]
        if numbers != sorted(set(numbers)):
            raise IntegrityError("parts must be in ascending order (InvalidPartOrder)")
        for number, etag, checksum in parts:
            info = stored.get(number)
            if info is None or info.get("etag") != etag:
                raise IntegrityError(f"part {number} is missing or its ETag differs (InvalidPart)")
            if info.get("checksum_sha256") != checksum:
                raise IntegrityError(f"part {number} has another checksum (InvalidPart)")

    @staticmethod
    def _copy_verified(part: Path, checksum_b64: str, out: Any) -> int:
        h = hashlib.sha256()
        size = 0
        with open(part, "rb") as f:
            while chunk := f.read(_COPY_CHUNK):
                h.update(chunk)
                out.write(chunk)
                size += len(chunk)
        if base64.b64encode(h.digest()).decode("ascii") != checksum_b64:
            raise IntegrityError(f"stored part {part.name} is damaged")
        return size

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Abort an upload and drop its parts (no error if it is gone)."""
        _digest_of_key(key)
        d = self._upload_dir(key, upload_id)
        if d is not None:
            shutil.rmtree(d, ignore_errors=True)

    def head(self, key: str) -> ObjectInfo | None:
        """Size and SHA-256 checksum of an object, or ``None`` if absent."""
        digest = _digest_of_key(key)
        try:
            size = (self.blobs_dir / digest).stat().st_size
        except FileNotFoundError:
            return None
        meta = _read_json(self.meta_dir / f"{digest}.json") or {}
        checksum = meta.get("checksum_sha256") if meta.get("size") == size else None
        return ObjectInfo(size=size, checksum_sha256=checksum)

    def delete(self, key: str) -> None:
        """Delete an object (no error if it is absent)."""
        if DERIVED_KEY_RE.match(key):
            (self.root / key).unlink(missing_ok=True)
            return
        digest = _digest_of_key(key)
        (self.blobs_dir / digest).unlink(missing_ok=True)
        (self.meta_dir / f"{digest}.json").unlink(missing_ok=True)

    def presign_get(
        self, key: str, *, content_type: str | None = None, disposition: str | None = None
    ) -> str:
        """A GET URL for an object, valid for the configured expiry."""
        _digest_of_key(key)
        extra = {}
        if content_type:
            extra[CONTENT_TYPE_PARAM] = content_type
        if disposition:
            extra[DISPOSITION_PARAM] = disposition
        resource = get_resource(key, content_type or "", disposition or "")
        return self._signed_url(f"{OBJECT_ROUTE}/{key}", "GET", resource, "", "", extra)

    def presign_gets(self, keys: list[str]) -> list[str]:
        """A plain GET URL for each of ``keys``."""
        return [self.presign_get(key) for key in keys]

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store a small derived object whole (atomically, by rename)."""
        _check_derived_key(key)
        final = self.root / key
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=final.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get_bytes(self, key: str) -> bytes | None:
        """A small derived object's bytes, or ``None`` if absent."""
        _check_derived_key(key)
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError:
            return None

    @contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        """The object's own file: nothing is copied on a local store."""
        path = self.object_path(key)
        if not path.is_file():
            raise NotFound("no such object (NoSuchKey)", {"key": key})
        yield path

    def check(self) -> None:
        """Raise :class:`Unavailable` if the store folder is not writable."""
        for d in (self.blobs_dir, self.meta_dir, self.uploads_dir):
            if not (d.is_dir() and os.access(d, os.W_OK | os.X_OK)):
                raise Unavailable(f"local blob store folder {d} is missing or not writable")

    # --- used by the HTTP routes ----------------------------------------------------

    def object_path(self, key: str) -> Path:
        """The file of an object (which may not exist)."""
        return self.blobs_dir / _digest_of_key(key)

    def open_object_put(self, key: str, checksum_b64: str, size: int) -> BodyWriter:
        """A writer for the body of a single PUT (signature already verified)."""
        final = self.blobs_dir / _digest_of_key(key)
        return BodyWriter(self, _Target(final, checksum_b64, size, None))

    def open_part_put(
        self, upload_id: str, number: int, checksum_b64: str, size: int
    ) -> BodyWriter:
        """A writer for the body of a part PUT (signature already verified)."""
        _check_upload_id(upload_id)
        _check_part_number(number)
        d = self.uploads_dir / upload_id
        if not (d / "upload.json").is_file():
            raise NotFound("no such multipart upload (NoSuchUpload)", {"upload_id": upload_id})
        return BodyWriter(self, _Target(d / str(number), checksum_b64, size, d, number))

    def _publish_object(self, tmp: Path, final: Path, size: int, checksum: str) -> None:
        # The sidecar goes first: whenever the object is visible, so is its checksum.
        _write_json_atomic(
            self.meta_dir / f"{final.name}.json", {"size": size, "checksum_sha256": checksum}
        )
        os.replace(tmp, final)
        _fsync_dir(final.parent)

    def _publish_part(self, tmp: Path, t: _Target, etag: str) -> None:
        assert t.upload_dir is not None
        try:
            os.replace(tmp, t.final)
            _write_json_atomic(
                t.upload_dir / f"{t.number}.json",
                {"etag": etag, "size": t.size, "checksum_sha256": t.checksum_b64},
            )
        except FileNotFoundError:
            # The upload was aborted (its folder removed) while the body streamed in.
            tmp.unlink(missing_ok=True)
            raise NotFound("no such multipart upload (NoSuchUpload)") from None
