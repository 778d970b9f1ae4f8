"""Schemathesis hooks (loaded via ``SCHEMATHESIS_HOOKS``): NDJSON in and out.

The OpenAPI schema describes an ``application/x-ndjson`` body as an array, one
item per line (OpenAPI 3.2's reading of sequential media types); these hooks
turn a generated array into lines and a streamed answer back into an array.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis

NDJSON = "application/x-ndjson"


@schemathesis.serializer(NDJSON)
def ndjson_body(ctx: Any, value: Any) -> bytes:
    """One JSON value per line; anything that is not an array is sent as one line."""
    items = value if isinstance(value, list) else [value]
    return "".join(json.dumps(item) + "\n" for item in items).encode("utf-8")


@schemathesis.deserializer(NDJSON)
def ndjson_answer(ctx: Any, response: Any) -> list[Any]:
    """The array of the JSON values of a streamed answer's lines."""
    text = response.content.decode("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]
