"""A minimal robot speaking raw HTTP to the API, so the server is tested without the client."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from robosync.digest import BlobDigest, digest_bytes


@dataclass
class Robot:
    """An authenticated HTTP session for one token."""

    base_url: str
    token: str

    def __post_init__(self) -> None:
        self.http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=120,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def new_project(self, prefix: str = "p") -> int:
        """Create a uniquely named project; its id."""
        r = self.http.post("/v1/projects", json={"name": f"{prefix}-{uuid.uuid4().hex[:10]}"})
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    def plan(self, blobs: list[BlobDigest]) -> list[dict[str, Any]]:
        """``POST /v1/uploads`` for ``blobs``; the plan items."""
        items = [
            {"digest": b.digest, "size": b.size, "blocks": [x.sha256_hex for x in b.blocks]}
            for b in blobs
        ]
        r = self.http.post("/v1/uploads", json={"items": items})
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    def put_parts(self, plan: dict[str, Any], data: bytes) -> list[dict[str, Any]]:
        """PUT every part not done yet; the ``{number, etag}`` list for completion."""
        done = []
        for part in plan["parts"]:
            if part["done"]:
                done.append({"number": part["number"], "etag": part["etag"]})
                continue
            body = data[part["offset"] : part["offset"] + part["size"]]
            r = httpx.put(part["url"], content=body, headers=part["headers"], timeout=120)
            assert r.status_code == 200, r.text
            done.append({"number": part["number"], "etag": r.headers["etag"]})
        return done

    def complete(self, plan: dict[str, Any], parts: list[dict[str, Any]]) -> dict[str, Any]:
        """``POST /v1/uploads/complete`` for one plan; its result item."""
        item = {"digest": plan["digest"], "upload_id": plan["upload_id"], "parts": parts}
        if plan["upload_id"] is None:
            item["parts"] = []
        r = self.http.post("/v1/uploads/complete", json={"items": [item]})
        assert r.status_code == 200, r.text
        return dict(r.json()["items"][0])

    def upload(self, data: bytes) -> BlobDigest:
        """Store ``data`` as a present blob (uploading only if needed); its digest."""
        blob = digest_bytes(data)
        (plan,) = self.plan([blob])
        if plan["status"] == "upload":
            result = self.complete(plan, self.put_parts(plan, data))
            assert result["status"] == "present", result
        return blob

    def commit(
        self,
        project: int,
        base: int,
        lines: list[dict[str, Any]],
        key: str | None = None,
        message: str = "",
    ) -> httpx.Response:
        """POST an NDJSON commit; the raw response."""
        body = "".join(
            json.dumps(x) + "\n" for x in [{"base_version": base, "message": message}, *lines]
        )
        headers = {"Content-Type": "application/x-ndjson"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return self.http.post(f"/v1/projects/{project}/commits", content=body, headers=headers)

    def manifest(self, project: int, version: int | None = None) -> dict[str, str]:
        """``path -> digest`` of a version (default head)."""
        params = {} if version is None else {"version": version}
        r = self.http.get(f"/v1/projects/{project}/manifest", params=params)
        assert r.status_code == 200, r.text
        return {e["path"]: e["digest"] for e in map(json.loads, r.text.splitlines())}

    def changes(self, project: int, since: int) -> list[dict[str, Any]]:
        """The change lines from ``since`` to the head."""
        r = self.http.get(f"/v1/projects/{project}/changes", params={"since": since})
        assert r.status_code == 200, r.text
        return [json.loads(line) for line in r.text.splitlines()]


def put(path: str, blob: BlobDigest) -> dict[str, Any]:
    """A put line."""
    return {"op": "put", "path": path, "digest": blob.digest, "size": blob.size}


def delete(path: str) -> dict[str, Any]:
    """A delete line."""
    return {"op": "delete", "path": path}
