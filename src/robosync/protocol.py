"""Request and response models of the HTTP API (``/v1``), as the server declares them.

JSON bodies are these pydantic models. Three bodies are NDJSON (one JSON
object per line, ``application/x-ndjson``) so that they stream with flat
memory:

* ``POST /v1/projects/{id}/commits`` request: first line :class:`CommitHeader`,
  then :class:`PutOp` / :class:`DeleteOp` lines. 201 :class:`CommitResult`;
  409 error ``conflict`` with ``details.head_version``; 422 error
  ``missing_blobs`` with ``details.missing`` (digests). Header
  ``Idempotency-Key`` makes a retry answer what the first attempt answered.
* ``GET /v1/projects/{id}/manifest?version=N``: :class:`ManifestEntry` lines;
  response header ``X-Robosync-Version`` is the version served.
* ``GET /v1/projects/{id}/changes?since=M``: :class:`PutOp` / :class:`DeleteOp`
  lines taking version M to the head; header ``X-Robosync-Version`` is the head.

The client reads and writes the same messages as plain dataclasses
(:mod:`robosync.client.wire`), without pydantic.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from robosync.apiwire import API_PREFIX as API_PREFIX
from robosync.apiwire import DIGEST_PATTERN
from robosync.apiwire import IDEMPOTENCY_HEADER as IDEMPOTENCY_HEADER
from robosync.apiwire import MAX_INT as MAX_INT
from robosync.apiwire import NDJSON as NDJSON
from robosync.apiwire import VERSION_HEADER as VERSION_HEADER

PROJECT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
# A robot name: any printable text (no control characters).
ROBOT_PATTERN = r"^[^\x00-\x1f\x7f]+$"
Digest = Annotated[str, Field(pattern=DIGEST_PATTERN, description="content address, hex")]
# Opaque tokens the object store hands out (upload ids, ETags): printable ASCII only.
StoreToken = Annotated[str, Field(min_length=1, max_length=1024, pattern=r"^[\x20-\x7e]+$")]
Size = Annotated[int, Field(ge=0, le=MAX_INT, description="bytes")]
BlockHash = Annotated[str, Field(pattern=DIGEST_PATTERN, description="SHA-256 of a block, hex")]


# --- projects -----------------------------------------------------------------


class ProjectCreate(BaseModel):
    """``POST /v1/projects`` body."""

    name: str = Field(min_length=1, max_length=200, pattern=PROJECT_NAME_PATTERN)


Role = Literal["read", "write", "admin"]


class ProjectInfo(BaseModel):
    """A project as the API shows it to one caller (``role`` is the caller's)."""

    id: int
    name: str
    owner: str = Field(default="", description="name of the user who owns the project")
    role: Role = Field(default="admin", description="the caller's role (the owner is admin)")
    head_version: int
    file_count: int
    total_bytes: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = Field(
        default=None, description="set while the project is in the trash"
    )


class ProjectRename(BaseModel):
    """``PATCH /v1/projects/{id}`` body."""

    name: str = Field(min_length=1, max_length=200, pattern=PROJECT_NAME_PATTERN)


class MemberInfo(BaseModel):
    """One member of a project; the owner is listed first, as an admin."""

    user: str
    role: Role
    owner: bool = False
    since: datetime


class MemberList(BaseModel):
    """``GET /v1/projects/{id}/members`` answer."""

    members: list[MemberInfo]


class ShareRequest(BaseModel):
    """``PUT /v1/projects/{id}/members/{user}`` body."""

    role: Role


class QuotaCheck(BaseModel):
    """``POST /v1/projects/{id}/quota-check`` body: how many logical bytes a push adds."""

    added_bytes: int = Field(ge=0, le=MAX_INT)


class QuotaInfo(BaseModel):
    """The project owner's quota and use, in logical bytes (``quota_bytes`` None: no quota)."""

    quota_bytes: int | None
    used_bytes: int


class ProjectList(BaseModel):
    """``GET /v1/projects`` answer (optionally filtered by ``?name=``, ``?owner=``)."""

    projects: list[ProjectInfo]
    user: str = Field(default="", description="the caller's user name")


class VersionInfo(BaseModel):
    """One entry of a project's history; version 0 is the empty project."""

    number: int
    robot: str
    message: str
    created_at: datetime
    files_added: int
    files_removed: int
    file_count: int
    total_bytes: int
    # Of ``files_added``, the paths whose content changed (0 from older servers).
    files_modified: int = 0


class VersionList(BaseModel):
    """``GET /v1/projects/{id}/versions`` answer, newest first."""

    versions: list[VersionInfo]


# --- uploads ------------------------------------------------------------------


class UploadItem(BaseModel):
    """One blob the client wants stored: its digest, size and block hashes."""

    digest: Digest
    size: Size
    blocks: list[BlockHash] = Field(min_length=1)


class PushQuota(BaseModel):
    """A push's quota check, asked with its first upload plan: ``added_bytes`` into
    ``project_id``, which the caller must be able to write."""

    project_id: int = Field(ge=1, le=MAX_INT)
    added_bytes: int = Field(ge=0, le=MAX_INT)


class UploadRequest(BaseModel):
    """``POST /v1/uploads`` body: the dedup check and get_presigned_upload in one.

    ``quota``: refuse (413 ``quota_exceeded``, nothing planned) if the push does not fit
    the project owner's quota, as ``quota-check`` would, without a round trip of its own.
    """

    items: list[UploadItem] = Field(min_length=1, max_length=1000)
    quota: PushQuota | None = None


class PresignedPart(BaseModel):
    """One block to PUT: send ``size`` bytes from ``offset`` with ``headers`` to ``url``.

    ``done`` parts were already accepted by the store (a resumed upload): skip
    them and report their ``etag`` on completion.
    """

    number: int
    offset: int
    size: int
    url: str
    headers: dict[str, str]
    done: bool = False
    etag: str | None = None


class UploadPlan(BaseModel):
    """What to do for one item: nothing (``present``) or PUT its parts."""

    digest: Digest
    status: Literal["present", "upload"]
    upload_id: str | None = None  # None for a single PUT (one block)
    parts: list[PresignedPart] = Field(default_factory=list)


class UploadResponse(BaseModel):
    """``POST /v1/uploads`` answer, in the order of the request's items."""

    items: list[UploadPlan]


class CompletedPart(BaseModel):
    """A part the client PUT, with the ETag the store answered."""

    number: int = Field(ge=1, le=10000)
    etag: StoreToken


class CompleteItem(BaseModel):
    """Finish one upload: the parts of a multipart upload, or none for a single PUT."""

    digest: Digest
    upload_id: StoreToken | None = None
    parts: list[CompletedPart] = Field(default_factory=list, max_length=10000)


class CompleteRequest(BaseModel):
    """``POST /v1/uploads/complete`` body."""

    items: list[CompleteItem] = Field(min_length=1, max_length=1000)


class CompleteResult(BaseModel):
    """``present`` once the store proved size and digest; else ``failed`` and why.

    ``retry``: this upload raced another one (another user stored the same blob
    first, or garbage collection took it); asking ``POST /v1/uploads`` again
    and uploading what it asks for will succeed.
    """

    digest: Digest
    status: Literal["present", "failed"]
    error: str | None = None
    retry: bool = False


class CompleteResponse(BaseModel):
    """``POST /v1/uploads/complete`` answer."""

    items: list[CompleteResult]


# --- downloads ----------------------------------------------------------------


class DownloadRequest(BaseModel):
    """``POST /v1/projects/{id}/downloads`` body."""

    digests: list[Digest] = Field(min_length=1, max_length=1000)


class DownloadLink(BaseModel):
    """A presigned GET for one digest of the project."""

    digest: Digest
    size: int
    url: str


class DownloadResponse(BaseModel):
    """``POST /v1/projects/{id}/downloads`` answer."""

    items: list[DownloadLink]


# --- commits, manifests, changes (NDJSON lines) --------------------------------


class CommitHeader(BaseModel):
    """First line of a commit body."""

    base_version: int = Field(ge=0, le=MAX_INT - 1)
    # No NUL: PostgreSQL text cannot hold it.
    message: str = Field(default="", max_length=4096, pattern=r"^[^\x00]*$")
    # The robot's own name (ROBOSYNC_ROBOT, or the folder's); the version records
    # it instead of the token's robot, so two clones under one token differ.
    robot: str | None = Field(default=None, min_length=1, max_length=200, pattern=ROBOT_PATTERN)


class PutOp(BaseModel):
    """Set ``path`` to the blob ``digest``."""

    op: Literal["put"] = "put"
    path: str
    digest: Digest
    size: Size


class DeleteOp(BaseModel):
    """Remove ``path``."""

    op: Literal["delete"] = "delete"
    path: str


Change = Annotated[PutOp | DeleteOp, Field(discriminator="op")]


class CommitResult(BaseModel):
    """201 answer of a commit."""

    version: int
    files_added: int
    files_removed: int
    file_count: int
    total_bytes: int
    files_modified: int = 0


class ManifestEntry(BaseModel):
    """One line of a manifest."""

    path: str
    digest: Digest
    size: int


# --- errors -------------------------------------------------------------------


class ErrorDetail(BaseModel):
    """The ``error`` object of every error answer."""

    code: str
    message: str
    details: dict[str, object] = Field(default_factory=dict)


class ErrorBody(BaseModel):
    """Every error answer: ``{"error": {...}}``."""

    error: ErrorDetail
