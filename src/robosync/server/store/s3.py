"""The S3 blob store (SeaweedFS, MinIO, Ceph RGW, AWS S3) through boto3.

Every PUT URL is presigned with ``x-amz-checksum-sha256`` and
``Content-Length`` among its signed headers, so the store itself refuses a
body of another size (403, signature) or another content (400, BadDigest).
Multipart uploads use the COMPOSITE SHA-256 checksum, whose value after
completion is ``base64(digest)-N`` (see ``robosync.digest``).
"""

from __future__ import annotations

import http.client
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from robosync.errors import IntegrityError, InvalidInput, NotFound, RobosyncError, Unavailable
from robosync.server.store.base import ObjectInfo, PresignedRequest, StoredPart
from robosync.server.store.heads import StoreHeads
from robosync.server.store.sigv4 import Credentials, SigV4Signer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CHECKSUM_HEADER = "x-amz-checksum-sha256"

_NOT_FOUND_CODES = {"404", "NoSuchKey", "NotFound", "NoSuchUpload", "NoSuchBucket"}
_INTEGRITY_CODES = {"BadDigest", "InvalidDigest", "InvalidPart", "InvalidPartOrder"}


def _error_code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def store_error(e: Exception, what: str) -> RobosyncError:
    """Translate a boto3 failure into the robosync error the API should answer."""
    if isinstance(e, ClientError):
        code = _error_code(e)
        status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        details = {"s3_code": code}
        if code in _NOT_FOUND_CODES:
            return NotFound(f"{what}: not found in the object store ({code})", details)
        if code in _INTEGRITY_CODES:
            return IntegrityError(f"{what}: the object store refused the parts ({code})", details)
        if 400 <= status < 500:
            return InvalidInput(f"{what}: the object store refused the request ({code})", details)
    return Unavailable(f"{what}: object store unavailable ({type(e).__name__})")


def uri_path(path: str) -> str:
    """A request path percent-encoded as S3 expects (``/`` kept)."""
    return quote(path, safe="/-_.~")


def _client_config(addressing_style: str, attempts: int = 3, read_timeout: int = 30) -> Config:
    # "when_required": boto3 must not add its own CRC checksum headers, which
    # would collide with the SHA-256 each presigned part is bound to.
    return Config(
        signature_version="s3v4",
        s3=cast(Any, {"addressing_style": addressing_style}),
        retries={"max_attempts": attempts, "mode": "standard"},
        connect_timeout=5,
        read_timeout=read_timeout,
        max_pool_connections=64,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


class _BucketAddress:
    """Where a key of one bucket lives: host and path, by the addressing style."""

    def __init__(self, endpoint: str, bucket: str, addressing_style: str) -> None:
        parts = urlsplit(endpoint)
        self.scheme = parts.scheme or "https"
        base_path = parts.path.rstrip("/")
        if addressing_style == "virtual":
            self.host = f"{bucket}.{parts.netloc}"
            self.prefix = f"{base_path}/"
        else:
            self.host = parts.netloc
            self.prefix = f"{base_path}/{bucket}/"

    def path(self, key: str) -> str:
        """The (unencoded) request path of ``key``."""
        return self.prefix + key

    def url(self, encoded_path: str, query: str) -> str:
        """A full URL from an already encoded path and query."""
        return f"{self.scheme}://{self.host}{encoded_path}" + (f"?{query}" if query else "")


# A HEAD is retried this many times on a connection error or a 5xx answer.
_HEAD_ATTEMPTS = 3


class S3Store:
    """A :class:`~robosync.server.store.base.BlobStore` on one S3 bucket."""

    def __init__(
        self,
        endpoint: str | None,
        bucket: str,
        access_key: str | None,
        secret_key: str | None,
        region: str,
        addressing_style: str = "path",
        expiry_seconds: int = 900,
        public_endpoint: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.expiry_seconds = expiry_seconds
        config = _client_config(addressing_style)
        session = boto3.session.Session(
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=region,
        )
        self._region = region
        self._session = session
        endpoint = endpoint or f"https://s3.{region}.amazonaws.com"
        self._signer = SigV4Signer(region)
        self._api_address = _BucketAddress(endpoint, bucket, addressing_style)
        # SigV4 signs the host, so URLs for robots are signed against the
        # address robots use, which may differ from the API's own route.
        self._public_address = _BucketAddress(public_endpoint or endpoint, bucket, addressing_style)
        # HEADs of a completion batch run in a thread pool, each thread on its own
        # kept-alive connections (not httpx: its pool serialises all threads on one lock).
        self._heads = StoreHeads(connect_timeout=5, read_timeout=30)
        self._s3: S3Client = session.client("s3", endpoint_url=endpoint, config=config)
        # Readiness probes must answer fast: one attempt, short timeouts.
        self._probe: S3Client = session.client(
            "s3",
            endpoint_url=endpoint,
            config=_client_config(addressing_style, attempts=1, read_timeout=5).merge(
                Config(connect_timeout=2)
            ),
        )

    def _credentials(self) -> Credentials:
        creds = self._session.get_credentials()
        if creds is None:
            raise Unavailable("no S3 credentials configured (ROBOSYNC_S3_ACCESS_KEY)")
        frozen = creds.get_frozen_credentials()
        if not frozen.access_key or not frozen.secret_key:
            raise Unavailable("S3 credentials are incomplete (ROBOSYNC_S3_SECRET_KEY)")
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token)

    def _presign(
        self,
        method: str,
        key: str,
        params: list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> str:
        address = self._public_address
        path = address.path(key)
        query = self._signer.presign(
            self._credentials(),
            method,
            address.host,
            path,
            params or [],
            headers or {},
            self.expiry_seconds,
        )
        return address.url(uri_path(path), query)

    def presign_put(self, key: str, checksum_b64: str, size: int) -> PresignedRequest:
        """A single PUT of a one-block object whose body must hash to ``checksum_b64``."""
        headers = {CHECKSUM_HEADER: checksum_b64, "content-length": str(size)}
        url = self._presign("PUT", key, headers=headers)
        return PresignedRequest(url, {CHECKSUM_HEADER: checksum_b64})

    def presign_puts(self, puts: list[tuple[str, str, int]]) -> list[PresignedRequest]:
        """:meth:`presign_put` of each ``(key, checksum_b64, size)``, signed together (one
        date, one query: only the paths and the headers' values differ)."""
        address = self._public_address
        paths = [address.path(key) for key, _, _ in puts]
        headers = [
            {CHECKSUM_HEADER: checksum, "content-length": str(size)} for _, checksum, size in puts
        ]
        queries = self._signer.presign_each(
            self._credentials(),
            "PUT",
            address.host,
            list(zip(paths, headers, strict=True)),
            [],
            self.expiry_seconds,
        )
        return [
            PresignedRequest(address.url(uri_path(path), query), {CHECKSUM_HEADER: checksum})
            for path, query, (_, checksum, _) in zip(paths, queries, puts, strict=True)
        ]

    def create_multipart(self, key: str) -> str:
        """Start a multipart upload with COMPOSITE SHA-256 checksums; return its upload id."""
        try:
            r = self._s3.create_multipart_upload(
                Bucket=self.bucket, Key=key, ChecksumAlgorithm="SHA256", ChecksumType="COMPOSITE"
            )
        except (ClientError, BotoCoreError) as e:
            raise store_error(e, f"create upload of {key}") from e
        return r["UploadId"]

    def presign_part(
        self, key: str, upload_id: str, number: int, checksum_b64: str, size: int
    ) -> PresignedRequest:
        """A PUT of part ``number`` whose body must hash to ``checksum_b64``."""
        url = self._presign(
            "PUT",
            key,
            params=[("partNumber", str(number)), ("uploadId", upload_id)],
            headers={CHECKSUM_HEADER: checksum_b64, "content-length": str(size)},
        )
        return PresignedRequest(url, {CHECKSUM_HEADER: checksum_b64})

    def list_parts(self, key: str, upload_id: str) -> list[StoredPart] | None:
        """Parts already accepted, or ``None`` if the upload no longer exists."""
        parts: list[StoredPart] = []
        marker = 0
        while True:
            try:
                r = self._s3.list_parts(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker
                )
            except ClientError as e:
                if _error_code(e) in ("NoSuchUpload", "404", "NotFound"):
                    return None
                raise store_error(e, f"list parts of {key}") from e
            except BotoCoreError as e:
                raise store_error(e, f"list parts of {key}") from e
            parts.extend(
                StoredPart(number=p["PartNumber"], etag=p["ETag"], size=p["Size"])
                for p in r.get("Parts", [])
            )
            if not r.get("IsTruncated"):
                return parts
            marker = int(r.get("NextPartNumberMarker", 0))

    def complete_multipart(
        self, key: str, upload_id: str, parts: list[tuple[int, str, str]]
    ) -> None:
        """Complete with ``(number, etag, checksum_b64)`` per part, in order."""
        try:
            self._s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [
                        {"PartNumber": n, "ETag": etag, "ChecksumSHA256": checksum}
                        for n, etag, checksum in parts
                    ]
                },
            )
        except (ClientError, BotoCoreError) as e:
            raise store_error(e, f"complete upload of {key}") from e

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Abort an upload and drop its parts (no error if it is gone)."""
        try:
            self._s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as e:
            if _error_code(e) not in ("NoSuchUpload", "404", "NotFound"):
                raise store_error(e, f"abort upload of {key}") from e
        except BotoCoreError as e:
            raise store_error(e, f"abort upload of {key}") from e

    def head(self, key: str) -> ObjectInfo | None:
        """Size and SHA-256 checksum of an object, or ``None`` if absent."""
        address = self._api_address
        path = address.path(key)
        url = address.url(uri_path(path), "")
        for attempt in range(1, _HEAD_ATTEMPTS + 1):
            headers = self._signer.sign_headers(
                self._credentials(),
                "HEAD",
                address.host,
                path,
                [],
                {"x-amz-checksum-mode": "ENABLED"},
            )
            try:
                status, answer = self._heads.head(url, headers)
            except (OSError, http.client.HTTPException) as e:
                if attempt == _HEAD_ATTEMPTS:
                    raise Unavailable(
                        f"head {key}: object store unavailable ({type(e).__name__})"
                    ) from e
                continue
            if status == 404:
                return None
            if status < 300:
                length = answer.get("content-length")
                if length is None or not length.isdigit():
                    raise Unavailable(f"head {key}: the object store named no size")
                return ObjectInfo(size=int(length), checksum_sha256=answer.get(CHECKSUM_HEADER))
            if status < 500 or attempt == _HEAD_ATTEMPTS:
                break
        details = {"s3_status": status}
        if 400 <= status < 500:
            raise InvalidInput(f"head {key}: the object store refused ({status})", details)
        raise Unavailable(f"head {key}: object store unavailable ({status})")

    def delete(self, key: str) -> None:
        """Delete an object (no error if it is absent)."""
        try:
            self._s3.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as e:
            raise store_error(e, f"delete {key}") from e

    def presign_get(
        self, key: str, *, content_type: str | None = None, disposition: str | None = None
    ) -> str:
        """A GET URL for an object, valid for the configured expiry."""
        params = []
        if content_type:
            params.append(("response-content-type", content_type))
        if disposition:
            params.append(("response-content-disposition", disposition))
        return self._presign("GET", key, params=params)

    def presign_gets(self, keys: list[str]) -> list[str]:
        """A plain GET URL for each of ``keys``, signed together (one date, one query)."""
        address = self._public_address
        paths = [address.path(key) for key in keys]
        queries = self._signer.presign_many(
            self._credentials(), "GET", address.host, paths, [], {}, self.expiry_seconds
        )
        return [address.url(uri_path(p), q) for p, q in zip(paths, queries, strict=True)]

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store a small derived object whole."""
        try:
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=data)
        except (ClientError, BotoCoreError) as e:
            raise store_error(e, f"put {key}") from e

    def get_bytes(self, key: str) -> bytes | None:
        """A small derived object's bytes, or ``None`` if absent."""
        try:
            r = self._s3.get_object(Bucket=self.bucket, Key=key)
            return r["Body"].read()
        except ClientError as e:
            if _error_code(e) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise store_error(e, f"get {key}") from e
        except BotoCoreError as e:
            raise store_error(e, f"get {key}") from e

    @contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        """Download the object to a temporary file, removed when the context ends."""
        fd, name = tempfile.mkstemp(prefix="robosync-get-")
        os.close(fd)
        try:
            try:
                self._s3.download_file(self.bucket, key, name)
            except (ClientError, BotoCoreError) as e:
                raise store_error(e, f"get {key}") from e
            yield Path(name)
        finally:
            os.unlink(name)

    def check(self) -> None:
        """Raise :class:`Unavailable` if the bucket cannot be reached."""
        try:
            self._probe.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as e:
            raise Unavailable(f"object store bucket {self.bucket!r} unreachable: {e}") from e

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist yet."""
        try:
            self._s3.head_bucket(Bucket=self.bucket)
            return
        except ClientError as e:
            if _error_code(e) not in ("404", "NoSuchBucket", "NotFound"):
                raise store_error(e, f"bucket {self.bucket}") from e
        except BotoCoreError as e:
            raise store_error(e, f"bucket {self.bucket}") from e
        try:
            if self._region and self._region != "us-east-1":
                self._s3.create_bucket(
                    Bucket=self.bucket,
                    CreateBucketConfiguration={"LocationConstraint": self._region},  # type: ignore[typeddict-item]
                )
            else:
                self._s3.create_bucket(Bucket=self.bucket)
        except ClientError as e:
            if _error_code(e) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise store_error(e, f"create bucket {self.bucket}") from e
        except BotoCoreError as e:
            raise store_error(e, f"create bucket {self.bucket}") from e
