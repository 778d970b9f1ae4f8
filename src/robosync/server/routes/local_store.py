"""HTTP routes of the embedded blob store: the targets of its presigned URLs.

No bearer token here: the HMAC signature in the URL is the authorisation.
Bodies stream to disk in 1 MiB writes on a worker thread, never held whole
in memory. These routes are left out of the OpenAPI schema.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from robosync.errors import InvalidInput, NotFound, RobosyncError
from robosync.server.store.local import (
    CHECKSUM_HEADER,
    CONTENT_TYPE_PARAM,
    DISPOSITION_PARAM,
    EXPIRES_PARAM,
    OBJECT_ROUTE,
    PART_ROUTE,
    SIGNATURE_PARAM,
    BodyWriter,
    LocalStore,
    get_resource,
    part_resource,
)

_WRITE_CHUNK = 1024 * 1024


class RedactSignatures(logging.Filter):
    """Drop the query string of signed store URLs from uvicorn's access log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the logged path in place; never drops a record."""
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path = args[2]
            if SIGNATURE_PARAM in path:
                record.args = (*args[:2], path.split("?", 1)[0] + "?<signed>", *args[3:])
        return True


def _install_log_redaction() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactSignatures) for f in access.filters):
        access.addFilter(RedactSignatures())


def _error(e: RobosyncError) -> JSONResponse:
    return JSONResponse(e.to_body(), status_code=e.status)


def _refuse_encoded_path(request: Request) -> None:
    # Starlette matches on the percent-decoded path, so "%2F" would pass as
    # "/"; keys and upload ids never need percent-encoding, so refuse it.
    raw = request.scope.get("raw_path") or b""
    if b"%" in raw or b".." in raw:
        raise InvalidInput("encoded or relative characters are not allowed in store paths")


def _signature_params(request: Request) -> tuple[str, str]:
    q = request.query_params
    return q.get(EXPIRES_PARAM, ""), q.get(SIGNATURE_PARAM, "")


async def _receive_body(request: Request, writer: BodyWriter) -> str:
    """Stream the request body into ``writer`` and commit it; return the ETag."""
    buffer = bytearray()
    try:
        async for chunk in request.stream():
            buffer += chunk
            if len(buffer) >= _WRITE_CHUNK:
                data, buffer = bytes(buffer), bytearray()
                await run_in_threadpool(writer.write, data)
        if buffer:
            await run_in_threadpool(writer.write, bytes(buffer))
        return await run_in_threadpool(writer.commit)
    except ClientDisconnect:
        raise InvalidInput("the client disconnected before the body was complete") from None
    finally:
        await run_in_threadpool(writer.discard)


def _verified_put(store: LocalStore, request: Request, resource: str) -> tuple[str, int]:
    """Check the signature of a PUT; return the checksum and size it is bound to."""
    checksum = request.headers.get(CHECKSUM_HEADER, "")
    length = request.headers.get("content-length", "")
    store.verify("PUT", resource, checksum, length, *_signature_params(request))
    if not length.isdigit():
        raise InvalidInput("Content-Length is required")
    return checksum, int(length)


def local_store_router(store: LocalStore) -> APIRouter:
    """Routes serving ``store``'s presigned PUT and GET URLs."""
    _install_log_redaction()
    router = APIRouter(include_in_schema=False)

    @router.put(OBJECT_ROUTE + "/{key:path}")
    async def put_object(key: str, request: Request) -> Response:
        try:
            _refuse_encoded_path(request)
            store.object_path(key)  # a malformed key is refused before any signature work
            checksum, size = _verified_put(store, request, key)
            writer = await run_in_threadpool(store.open_object_put, key, checksum, size)
            etag = await _receive_body(request, writer)
        except RobosyncError as e:
            return _error(e)
        return Response(status_code=200, headers={"ETag": etag, CHECKSUM_HEADER: checksum})

    @router.put(PART_ROUTE + "/{upload_id}/{number}")
    async def put_part(upload_id: str, number: str, request: Request) -> Response:
        try:
            _refuse_encoded_path(request)
            if not number.isdigit():
                raise InvalidInput("part number must be an integer")
            resource = part_resource(upload_id, int(number))
            checksum, size = _verified_put(store, request, resource)
            writer = await run_in_threadpool(
                store.open_part_put, upload_id, int(number), checksum, size
            )
            etag = await _receive_body(request, writer)
        except RobosyncError as e:
            return _error(e)
        return Response(status_code=200, headers={"ETag": etag, CHECKSUM_HEADER: checksum})

    @router.get(OBJECT_ROUTE + "/{key:path}", response_model=None)
    async def get_object(key: str, request: Request) -> Any:
        try:
            _refuse_encoded_path(request)
            path = store.object_path(key)
            content_type = request.query_params.get(CONTENT_TYPE_PARAM, "")
            disposition = request.query_params.get(DISPOSITION_PARAM, "")
            resource = get_resource(key, content_type, disposition)
            store.verify("GET", resource, "", "", *_signature_params(request))
            if not path.is_file():
                raise NotFound("no such object (NoSuchKey)")
        except RobosyncError as e:
            return _error(e)
        headers = {"X-Content-Type-Options": "nosniff"}
        if disposition:
            headers["Content-Disposition"] = disposition
        return FileResponse(
            path, media_type=content_type or "application/octet-stream", headers=headers
        )

    return router
