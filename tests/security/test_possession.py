"""Proof of possession: a blob is "present" for a user only once that user proved the bytes.

Storage stays deduplicated (one object per digest); a user who does not hold
a stored blob yet uploads it to a staging key, where the store itself checks
every byte, and only then may commit and download it.
"""

from __future__ import annotations

import os

import httpx
import pytest

from robosync.digest import BLOCK_SIZE, digest_bytes
from tests.fixtures.server import ServerProcess
from tests.security.conftest import robot_of
from tests.server.robot import Robot, put


def _download(robot: Robot, project: int, digest: str) -> bytes:
    r = robot.http.post(f"/v1/projects/{project}/downloads", json={"digests": [digest]})
    assert r.status_code == 200, r.text
    return httpx.get(r.json()["items"][0]["url"], timeout=120).content


@pytest.mark.parametrize("size", [5000, BLOCK_SIZE + 777], ids=["one-block", "multipart"])
def test_another_user_with_the_bytes_proves_them_then_commits_and_downloads(
    owner: Robot, intruder: Robot, size: int
) -> None:
    data = os.urandom(size)
    blob = owner.upload(data)
    (plan,) = intruder.plan([blob])
    assert plan["status"] == "upload"
    assert all(f"blobs/{blob.digest}" not in p["url"] for p in plan["parts"])
    assert intruder.complete(plan, intruder.put_parts(plan, data))["status"] == "present"
    # Proven once: from now on deduplicated for this user too.
    assert intruder.plan([blob])[0]["status"] == "present"
    mine = intruder.new_project("proved")
    assert intruder.commit(mine, 0, [put("same.jpg", blob)]).status_code == 201
    assert _download(intruder, mine, blob.digest) == data
    # The owner's copy is the same single object, untouched.
    theirs = owner.new_project("orig")
    assert owner.commit(theirs, 0, [put("orig.jpg", blob)]).status_code == 201
    assert _download(owner, theirs, blob.digest) == data


def test_completing_a_proof_without_putting_the_bytes_proves_nothing(
    owner: Robot, intruder: Robot
) -> None:
    blob = owner.upload(os.urandom(300))
    (plan,) = intruder.plan([blob])
    assert plan["status"] == "upload"
    done = intruder.complete(plan, [])
    assert done["status"] == "failed"
    assert intruder.plan([blob])[0]["status"] == "upload"
    own = intruder.new_project("bluff")
    assert intruder.commit(own, 0, [put("x.jpg", blob)]).status_code == 422


def test_a_proof_with_other_bytes_is_refused_by_the_store(owner: Robot, intruder: Robot) -> None:
    data = os.urandom(400)
    blob = owner.upload(data)
    (plan,) = intruder.plan([blob])
    part = plan["parts"][0]
    r = httpx.put(part["url"], content=os.urandom(400), headers=part["headers"], timeout=60)
    assert r.status_code == 400
    assert intruder.complete(plan, [])["status"] == "failed"
    assert intruder.plan([blob])[0]["status"] == "upload"


def test_a_stored_blob_is_never_present_for_a_user_who_did_not_prove_it(
    owner: Robot, intruder: Robot
) -> None:
    stored = owner.upload(os.urandom(123))
    unknown = digest_bytes(os.urandom(123))
    a, b = intruder.plan([stored, unknown])
    # Both must be uploaded; nothing in the answer is "present".
    assert (a["status"], b["status"]) == ("upload", "upload")
    assert a["upload_id"] is None and b["upload_id"] is None
    assert len(a["parts"]) == len(b["parts"]) == 1


def test_same_user_dedup_across_projects_and_robots_uploads_nothing(
    server: ServerProcess, owner: Robot
) -> None:
    data = os.urandom(2000)
    blob = owner.upload(data)
    first = owner.new_project("one")
    assert owner.commit(first, 0, [put("a.jpg", blob)]).status_code == 201
    # Another robot of the same user: present at once, commits without uploading.
    other = Robot(server.url, owner.token)
    try:
        assert other.plan([blob])[0]["status"] == "present"
        second = other.new_project("two")
        assert other.commit(second, 0, [put("b/a.jpg", blob)]).status_code == 201
        assert _download(other, second, blob.digest) == data
    finally:
        other.close()


def test_a_single_put_racing_another_users_upload_is_not_credited(
    server: ServerProcess, owner: Robot
) -> None:
    racer = robot_of(server, "racer-" + os.urandom(3).hex())
    try:
        data = os.urandom(700)
        blob = digest_bytes(data)
        (theirs,) = racer.plan([blob])  # not stored yet: an upload to the blob's key
        assert theirs["status"] == "upload"
        owner.upload(data)  # the owner stores the same bytes meanwhile
        # The racer never PUT anything: the object under the key is the owner's.
        done = racer.complete(theirs, [])
        assert done["status"] == "failed"
        own = racer.new_project("race")
        assert racer.commit(own, 0, [put("r.jpg", blob)]).status_code == 422
        # With the bytes, the racer proves them and goes on.
        assert racer.upload(data) == blob
        assert racer.commit(own, 0, [put("r.jpg", blob)]).status_code == 201
    finally:
        racer.close()


def test_a_multipart_completion_never_credits_an_object_another_user_stored(
    server: ServerProcess, owner: Robot
) -> None:
    racer = robot_of(server, "racer-" + os.urandom(3).hex())
    try:
        data = os.urandom(BLOCK_SIZE + 5)
        blob = digest_bytes(data)
        (theirs,) = racer.plan([blob])
        assert theirs["upload_id"]
        owner.upload(data)
        fake = [{"number": p["number"], "etag": '"0"'} for p in theirs["parts"]]
        assert racer.complete(theirs, fake)["status"] == "failed"
        own = racer.new_project("race")
        assert racer.commit(own, 0, [put("r.raw", blob)]).status_code == 422
    finally:
        racer.close()
