"""Blob stores: the interface and its two implementations.

``S3Store`` is imported on first use: boto3 costs a command that uses the
local store (or no store) a noticeable part of its start-up.
"""

from typing import Any

from robosync.server.store.base import BlobStore, ObjectInfo, PresignedRequest, StoredPart
from robosync.server.store.local import LocalStore

__all__ = ["BlobStore", "LocalStore", "ObjectInfo", "PresignedRequest", "S3Store", "StoredPart"]


def __getattr__(name: str) -> Any:
    if name == "S3Store":
        from robosync.server.store.s3 import S3Store

        return S3Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
