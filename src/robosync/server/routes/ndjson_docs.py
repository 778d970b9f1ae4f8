"""OpenAPI descriptions of the NDJSON bodies, which FastAPI cannot derive itself.

As in OpenAPI 3.2 for sequential media types, the ``schema`` of an
``application/x-ndjson`` body describes the whole stream read as an array,
one item per line. The line models are flat, so their schemas are inlined.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from robosync.protocol import NDJSON, CommitHeader, DeleteOp, ManifestEntry, PutOp


def _line(model: type[BaseModel], required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema["required"] = sorted({*schema.get("required", ()), *required})
    return schema


def _change_line() -> dict[str, Any]:
    # The server requires "op" although the models default it.
    return {"oneOf": [_line(PutOp, ("op",)), _line(DeleteOp, ("op",))]}


def manifest_response() -> dict[int | str, dict[str, Any]]:
    """The 200 answer of ``GET …/manifest``: ManifestEntry lines."""
    stream = {"type": "array", "items": _line(ManifestEntry)}
    return {
        200: {"description": "one ManifestEntry per line", "content": {NDJSON: {"schema": stream}}}
    }


def changes_response() -> dict[int | str, dict[str, Any]]:
    """The 200 answer of ``GET …/changes``: put and delete lines."""
    stream = {"type": "array", "items": _change_line()}
    return {
        200: {"description": "one put or delete per line", "content": {NDJSON: {"schema": stream}}}
    }


def commit_request() -> dict[str, Any]:
    """``openapi_extra`` of the commit route: header line, then put/delete lines."""
    stream = {
        "type": "array",
        "minItems": 1,
        "prefixItems": [_line(CommitHeader)],
        "items": _change_line(),
    }
    example = (
        '{"base_version":0,"message":"first"}\n'
        '{"op":"put","path":"a.jpg","digest":"<64 hex>","size":3}\n'
        '{"op":"delete","path":"old.jpg"}\n'
    )
    return {
        "requestBody": {
            "required": True,
            "content": {NDJSON: {"schema": stream, "example": example}},
        }
    }
