"""Blob stores: the interface and its two implementations."""

from robosync.server.store.base import BlobStore, ObjectInfo, PresignedRequest, StoredPart
from robosync.server.store.local import LocalStore
from robosync.server.store.s3 import S3Store

__all__ = ["BlobStore", "LocalStore", "ObjectInfo", "PresignedRequest", "S3Store", "StoredPart"]
