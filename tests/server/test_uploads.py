"""Uploads: dedup, verified completion, tampering, composite checksum, downloads."""

from __future__ import annotations

import os
import uuid

import httpx

from robosync.digest import BLOCK_SIZE, composite_checksum, digest_bytes
from tests.fixtures.server import ServerProcess
from tests.server.robot import Robot, put


def _store_checksum(server: ServerProcess, digest: str) -> str | None:
    """The SHA-256 checksum the blob store itself records for a blob."""
    env = server.env
    key = f"blobs/{digest}"
    if env.get("ROBOSYNC_S3_ENDPOINT"):
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=env["ROBOSYNC_S3_ENDPOINT"],
            aws_access_key_id=env["ROBOSYNC_S3_ACCESS_KEY"],
            aws_secret_access_key=env["ROBOSYNC_S3_SECRET_KEY"],
            region_name=env["ROBOSYNC_S3_REGION"],
        )
        head = s3.head_object(Bucket=env["ROBOSYNC_S3_BUCKET"], Key=key, ChecksumMode="ENABLED")
        return head.get("ChecksumSHA256")
    from robosync.server.app import load_secret
    from robosync.server.store.local import LocalStore

    store = LocalStore(server.data_dir / "blobs", server.url, load_secret(server.data_dir))
    info = store.head(key)
    return info.checksum_sha256 if info else None


def test_multi_block_blob_digest_equals_the_stores_composite_checksum(
    alice: Robot, server: ServerProcess
) -> None:
    data = os.urandom(BLOCK_SIZE + 12345)
    blob = digest_bytes(data)
    (plan,) = alice.plan([blob])
    assert plan["status"] == "upload"
    assert plan["upload_id"]
    assert [(p["number"], p["offset"], p["size"]) for p in plan["parts"]] == [
        (1, 0, BLOCK_SIZE),
        (2, BLOCK_SIZE, 12345),
    ]
    assert alice.complete(plan, alice.put_parts(plan, data))["status"] == "present"
    assert _store_checksum(server, blob.digest) == composite_checksum(blob.digest, 2)
    # It is now deduplicated, and downloads verify.
    assert alice.plan([blob])[0]["status"] == "present"
    project = alice.new_project()
    assert alice.commit(project, 0, [put("big.raw", blob)]).status_code == 201
    r = alice.http.post(f"/v1/projects/{project}/downloads", json={"digests": [blob.digest]})
    assert r.status_code == 200
    link = r.json()["items"][0]
    assert link["size"] == len(data)
    assert digest_bytes(httpx.get(link["url"], timeout=60).content).digest == blob.digest


def test_tampered_part_is_refused_by_the_store_and_the_blob_never_present(
    alice: Robot,
) -> None:
    data = os.urandom(BLOCK_SIZE + 100)
    blob = digest_bytes(data)
    (plan,) = alice.plan([blob])
    part = plan["parts"][1]
    tampered = bytearray(data[part["offset"] : part["offset"] + part["size"]])
    tampered[0] ^= 0xFF
    r = httpx.put(part["url"], content=bytes(tampered), headers=part["headers"], timeout=60)
    assert r.status_code == 400
    first = plan["parts"][0]
    r1 = httpx.put(
        first["url"], content=data[: first["size"]], headers=first["headers"], timeout=60
    )
    assert r1.status_code == 200
    done = alice.complete(plan, [{"number": 1, "etag": r1.headers["etag"]}])
    assert done["status"] == "failed"
    again = alice.complete(
        plan, [{"number": 1, "etag": r1.headers["etag"]}, {"number": 2, "etag": '"forged"'}]
    )
    assert again["status"] == "failed"
    assert alice.plan([blob])[0]["status"] == "upload"
    project = alice.new_project()
    assert alice.commit(project, 0, [put("x.raw", blob)]).status_code == 422


def test_tampered_single_put_is_refused_and_the_blob_never_present(alice: Robot) -> None:
    # Starts with "x" on purpose: tampering by *replacing* the first byte with
    # "x" left 1 random body in 256 untouched, and the store rightly took it.
    data = b"x" + os.urandom(999)
    blob = digest_bytes(data)
    (plan,) = alice.plan([blob])
    assert plan["upload_id"] is None
    (part,) = plan["parts"]
    tampered = bytes([data[0] ^ 0xFF]) + data[1:]
    assert tampered != data
    r = httpx.put(part["url"], content=tampered, headers=part["headers"], timeout=60)
    assert r.status_code == 400
    assert alice.complete(plan, [])["status"] == "failed"
    assert alice.plan([blob])[0]["status"] == "upload"


def test_resumed_upload_marks_parts_the_store_already_holds(alice: Robot) -> None:
    data = os.urandom(BLOCK_SIZE + 10)
    blob = digest_bytes(data)
    (plan,) = alice.plan([blob])
    first = plan["parts"][0]
    r = httpx.put(first["url"], content=data[: first["size"]], headers=first["headers"])
    assert r.status_code == 200
    (resumed,) = alice.plan([blob])
    assert resumed["upload_id"] == plan["upload_id"]
    assert [p["done"] for p in resumed["parts"]] == [True, False]
    assert alice.complete(resumed, alice.put_parts(resumed, data))["status"] == "present"


def test_upload_item_whose_digest_does_not_match_its_blocks_is_400(alice: Robot) -> None:
    blob = digest_bytes(b"hello")
    item = {"digest": "0" * 64, "size": blob.size, "blocks": [blob.blocks[0].sha256_hex]}
    r = alice.http.post("/v1/uploads", json={"items": [item]})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_input"
    item = {"digest": blob.digest, "size": BLOCK_SIZE * 3, "blocks": [blob.blocks[0].sha256_hex]}
    assert alice.http.post("/v1/uploads", json={"items": [item]}).status_code == 400


def test_empty_blob_uploads_and_commits(alice: Robot) -> None:
    blob = alice.upload(b"")
    project = alice.new_project()
    assert alice.commit(project, 0, [put("empty.jpg", blob)]).status_code == 201


def test_download_of_a_digest_outside_the_project_is_404(alice: Robot) -> None:
    mine, other = alice.new_project(), alice.new_project()
    inside = alice.upload(os.urandom(30))
    outside = alice.upload(os.urandom(30))
    assert alice.commit(mine, 0, [put("in.jpg", inside)]).status_code == 201
    assert alice.commit(other, 0, [put("out.jpg", outside)]).status_code == 201
    r = alice.http.post(
        f"/v1/projects/{mine}/downloads", json={"digests": [inside.digest, outside.digest]}
    )
    assert r.status_code == 404
    assert r.json()["error"]["details"]["missing"] == [outside.digest]
    ok = alice.http.post(f"/v1/projects/{mine}/downloads", json={"digests": [inside.digest]})
    assert ok.status_code == 200


def test_download_of_a_file_deleted_in_a_later_version_still_works(alice: Robot) -> None:
    project = alice.new_project()
    blob = alice.upload(os.urandom(30))
    assert alice.commit(project, 0, [put("a.jpg", blob)]).status_code == 201
    assert alice.commit(project, 1, [{"op": "delete", "path": "a.jpg"}]).status_code == 201
    r = alice.http.post(f"/v1/projects/{project}/downloads", json={"digests": [blob.digest]})
    assert r.status_code == 200
    assert httpx.get(r.json()["items"][0]["url"]).content.__len__() == 30


def test_a_plan_carrying_the_push_quota_is_refused_before_anything_is_planned(
    server: ServerProcess, bob: Robot
) -> None:
    user = "quota-" + uuid.uuid4().hex[:8]
    carol = Robot(server.url, server.make_token(user, "r"))
    project = carol.new_project()
    assert server.run_cli("users", "quota", user, "5000").returncode == 0
    blob = digest_bytes(os.urandom(3000))
    items = [{"digest": blob.digest, "size": blob.size, "blocks": [blob.blocks[0].sha256_hex]}]

    def ask(project_id: int, added: int) -> httpx.Response:
        quota = {"project_id": project_id, "added_bytes": added}
        return carol.http.post("/v1/uploads", json={"items": items, "quota": quota})

    try:
        refused = ask(project, 6000)
        assert refused.status_code == 413, refused.text
        error = refused.json()["error"]
        assert (error["code"], error["details"]["quota"], error["details"]["used"]) == (
            "quota_exceeded",
            5000,
            0,
        )
        assert "items" not in refused.json()
        (fits,) = ask(project, 3000).json()["items"]
        assert fits["digest"] == blob.digest and fits["status"] == "upload"
        # Naming a project the caller cannot write is refused as quota-check refuses it.
        assert ask(bob.new_project(), 1).status_code == 404
    finally:
        carol.close()
