"""Bad input gets a 4xx whose message names the problem, on both backends."""

from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Iterator

import pytest

from robosync.digest import BLOCK_SIZE
from tests.fixtures.server import ServerProcess
from tests.security.conftest import robot_of, start_server
from tests.server.robot import Robot, put
from tests.web.people import ConsoleSession, new_person

HEADER = b'{"base_version":0}\n'
DIGEST = "ab" * 32


def _error(r: object, status: int) -> dict[str, object]:
    assert r.status_code == status, r.text  # type: ignore[attr-defined]
    err: dict[str, object] = r.json()["error"]  # type: ignore[attr-defined]
    return err


MALFORMED_NDJSON = [
    ("not-json", b'{"base_version":0\n', 1, "not a JSON object"),
    ("invalid-utf8", b'{"base_version":0,"message":"\xff"}\n', 1, "not a JSON object"),
    ("header-not-object", b"[0]\n", 1, "commit header"),
    ("line-not-object", HEADER + b'"delete a.jpg"\n', 2, "not a put or delete line"),
    ("missing-header", b'{"op":"delete","path":"a.jpg"}\n', 1, "base_version"),
    ("unknown-op", HEADER + b'{"op":"rename","path":"a.jpg"}\n', 2, "rename"),
    ("put-without-digest", HEADER + b'{"op":"put","path":"a.jpg","size":1}\n', 2, "digest"),
    ("negative-base", b'{"base_version":-1}\n', 1, "base_version"),
    ("huge-base", b'{"base_version":%d}\n' % 2**63, 1, "base_version"),
    ("nul-in-message", b'{"base_version":0,"message":"a\\u0000b"}\n', 1, "message"),
]


@pytest.mark.parametrize(
    ("body", "line", "named"),
    [m[1:] for m in MALFORMED_NDJSON],
    ids=[m[0] for m in MALFORMED_NDJSON],
)
def test_malformed_commit_ndjson_is_400_naming_the_line_and_problem(
    owner: Robot, body: bytes, line: int, named: str
) -> None:
    project = owner.new_project("ndjson")
    r = owner.http.post(f"/v1/projects/{project}/commits", content=body)
    err = _error(r, 400)
    assert err["code"] == "invalid_input"
    assert err["details"]["line"] == line  # type: ignore[index]
    assert named in str(err["message"])
    assert owner.http.get(f"/v1/projects/{project}").json()["head_version"] == 0


def test_empty_commit_body_is_400_asking_for_the_header(owner: Robot) -> None:
    project = owner.new_project("ndjson")
    err = _error(owner.http.post(f"/v1/projects/{project}/commits", content=b"\n\n"), 400)
    assert "base_version" in str(err["message"])


BAD_DIGESTS = {
    "uppercase": DIGEST.upper(),
    "short": DIGEST[:63],
    "non-hex": "g" + DIGEST[1:],
    "prefixed": "sha256:" + DIGEST[7:],
}


@pytest.mark.parametrize("bad", BAD_DIGESTS.values(), ids=BAD_DIGESTS.keys())
def test_malformed_digest_is_400_naming_the_field_everywhere(owner: Robot, bad: str) -> None:
    project = owner.new_project("digests")
    item = {"digest": bad, "size": 1, "blocks": [DIGEST]}
    err = _error(owner.http.post("/v1/uploads", json={"items": [item]}), 400)
    assert "items.0.digest" in str(err["message"])
    item = {"digest": DIGEST, "size": 1, "blocks": [bad]}
    err = _error(owner.http.post("/v1/uploads", json={"items": [item]}), 400)
    assert "items.0.blocks.0" in str(err["message"])
    done = {"digest": bad, "upload_id": None, "parts": []}
    err = _error(owner.http.post("/v1/uploads/complete", json={"items": [done]}), 400)
    assert "items.0.digest" in str(err["message"])
    r = owner.http.post(f"/v1/projects/{project}/downloads", json={"digests": [bad]})
    assert "digests.0" in str(_error(r, 400)["message"])
    line = json.dumps({"op": "put", "path": "a.jpg", "digest": bad, "size": 1}).encode()
    r = owner.http.post(f"/v1/projects/{project}/commits", content=HEADER + line + b"\n")
    err = _error(r, 400)
    assert "put.digest" in str(err["message"])
    assert err["details"]["line"] == 2  # type: ignore[index]


def test_upload_whose_size_does_not_fit_its_blocks_is_400_saying_so(owner: Robot) -> None:
    item = {"digest": DIGEST, "size": BLOCK_SIZE + 1, "blocks": [DIGEST]}
    err = _error(owner.http.post("/v1/uploads", json={"items": [item]}), 400)
    assert "make 2 block(s), not 1" in str(err["message"])
    item = {"digest": DIGEST, "size": 10, "blocks": [DIGEST, DIGEST]}
    err = _error(owner.http.post("/v1/uploads", json={"items": [item]}), 400)
    assert "make 1 block(s), not 2" in str(err["message"])


def test_commit_with_a_size_other_than_the_blobs_is_400_naming_the_path(owner: Robot) -> None:
    project = owner.new_project("sizes")
    blob = owner.upload(os.urandom(100))
    wrong = {"op": "put", "path": "cam/a.jpg", "digest": blob.digest, "size": 101}
    err = _error(owner.commit(project, 0, [wrong]), 400)
    assert err["details"]["path"] == "cam/a.jpg"  # type: ignore[index]
    assert "size 101" in str(err["message"]) and "100 bytes" in str(err["message"])
    assert owner.commit(project, 0, [put("cam/a.jpg", blob)]).status_code == 201


def test_nfd_path_is_refused_naming_it_and_its_nfc_twin_is_stored(owner: Robot) -> None:
    project = owner.new_project("unicode")
    blob = owner.upload(os.urandom(30))
    nfc = unicodedata.normalize("NFC", "cam/café.jpg")
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfc != nfd
    err = _error(owner.commit(project, 0, [put(nfd, blob)]), 400)
    assert err["details"]["path"] == nfd  # type: ignore[index]
    assert "NFC" in str(err["message"])
    assert owner.commit(project, 0, [put(nfc, blob)]).status_code == 201
    # The twin can never join it later, either.
    err = _error(owner.commit(project, 1, [put(nfd, blob)]), 400)
    assert err["details"]["path"] == nfd  # type: ignore[index]
    assert owner.manifest(project) == {nfc: blob.digest}


def test_case_only_twins_added_in_one_commit_are_422_naming_both(owner: Robot) -> None:
    project = owner.new_project("case")
    blob = owner.upload(os.urandom(30))
    err = _error(owner.commit(project, 0, [put("IMG.jpg", blob), put("img.JPG", blob)]), 422)
    assert sorted(err["details"]["paths"]) == ["IMG.jpg", "img.JPG"]  # type: ignore[index]
    assert "IMG.jpg" in str(err["message"]) and "img.JPG" in str(err["message"])


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Robot]:
    """A robot on an embedded server with tiny commit caps."""
    env = {
        "ROBOSYNC_MAX_BODY_BYTES": "4096",
        "ROBOSYNC_MAX_LINE_BYTES": "256",
        "ROBOSYNC_MAX_COMMIT_LINES": "100",
    }
    server: ServerProcess = start_server(tmp_path_factory.mktemp("capped"), env)
    robot = robot_of(server, "capped")
    yield robot
    robot.close()
    server.stop()


def _deletes(count: int, width: int = 20) -> bytes:
    return b"".join(b'{"op":"delete","path":"%s"}\n' % (b"%0*d" % (width, i)) for i in range(count))


def test_commit_body_over_the_cap_is_413_naming_the_cap(capped: Robot) -> None:
    project = capped.new_project("caps")
    body = HEADER + _deletes(99)  # under the line caps, over 4 KiB in all
    assert len(body) > 4096
    err = _error(capped.http.post(f"/v1/projects/{project}/commits", content=body), 413)
    assert err["code"] == "too_large"
    assert err["details"]["max_body_bytes"] == 4096  # type: ignore[index]
    assert "4096 bytes" in str(err["message"])


def test_commit_line_over_the_cap_is_413_naming_the_line(capped: Robot) -> None:
    project = capped.new_project("caps")
    body = HEADER + _deletes(1) + _deletes(1, width=300)
    err = _error(capped.http.post(f"/v1/projects/{project}/commits", content=body), 413)
    assert err["details"]["line"] == 3  # type: ignore[index]
    assert "line 3" in str(err["message"]) and "256 bytes" in str(err["message"])


def test_commit_with_more_lines_than_the_cap_is_413_saying_split_it(capped: Robot) -> None:
    project = capped.new_project("caps")
    r = capped.http.post(f"/v1/projects/{project}/commits", content=HEADER + _deletes(101, 3))
    err = _error(r, 413)
    assert "at most 100 lines" in str(err["message"])
    ok = capped.http.post(f"/v1/projects/{project}/commits", content=HEADER + _deletes(100, 3))
    assert ok.status_code == 201, ok.text


OUT_OF_RANGE = [
    ("project-id-over-int64", "/v1/projects/9223372036854775808", "project_id"),
    ("project-id-zero", "/v1/projects/0", "project_id"),
    ("name-with-nul", "/v1/projects?name=a%00b", "name"),
]


@pytest.mark.parametrize(
    ("url", "named"), [o[1:] for o in OUT_OF_RANGE], ids=[o[0] for o in OUT_OF_RANGE]
)
def test_values_the_database_cannot_hold_are_400_not_500(
    owner: Robot, url: str, named: str
) -> None:
    assert named in str(_error(owner.http.get(url), 400)["message"])


def test_store_tokens_with_control_characters_are_400(owner: Robot) -> None:
    item = {"digest": DIGEST, "upload_id": "x\x00y", "parts": []}
    err = _error(owner.http.post("/v1/uploads/complete", json={"items": [item]}), 400)
    assert "upload_id" in str(err["message"])
    item = {"digest": DIGEST, "upload_id": "abc", "parts": [{"number": 1, "etag": "\x00"}]}
    err = _error(owner.http.post("/v1/uploads/complete", json={"items": [item]}), 400)
    assert "etag" in str(err["message"])


@pytest.fixture(scope="module")
def console_owner(
    server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ConsoleSession, int]]:
    """A signed-in console session and the id of its (empty) project."""
    person = new_person(server, tmp_path_factory.mktemp("console-bad-input"), "bad-input")
    session = ConsoleSession(server.url, person.name)
    yield session, session.project_id("bad-input")
    session.close()


CONSOLE_BAD = [
    ("project-id-zero", "/p/0"),
    ("project-id-over-int64", "/p/9223372036854775808"),
    ("negative-version", "/p/{id}?v=-1"),
    ("version-past-head", "/p/{id}?v=99999"),
    ("nul-in-filter", "/p/{id}?q=a%00b"),
    ("nul-in-prefix", "/p/{id}?prefix=a%00b/"),
    ("nul-in-path", "/p/{id}/file?path=a%00b"),
    ("missing-path", "/p/{id}/file"),
    ("raw-nul-in-path", "/p/{id}/raw?path=a%00b"),
    ("malformed-digest", "/p/{id}/thumb/not-a-digest"),
    ("history-before-zero", "/p/{id}/history?before=0"),
    ("version-zero-diff", "/p/{id}/v/0"),
]


@pytest.mark.parametrize("url", [c[1] for c in CONSOLE_BAD], ids=[c[0] for c in CONSOLE_BAD])
def test_console_bad_input_is_a_400_page_not_a_500(
    console_owner: tuple[ConsoleSession, int], url: str
) -> None:
    session, project = console_owner
    r = session.http.get(url.format(id=project))
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("text/html")


def test_console_sign_in_with_a_nul_in_the_name_is_400(server: ServerProcess) -> None:
    import httpx

    form = httpx.get(server.url + "/signin")
    csrf = ConsoleSession.csrf_of(form.text)
    r = httpx.post(
        server.url + "/signin",
        data={"user": "a\x00b", "password": "x" * 10, "csrf": csrf},
        cookies=form.cookies,
    )
    assert r.status_code == 400, r.text
