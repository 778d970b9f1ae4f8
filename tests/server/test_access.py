"""Auth: every project route hides other users' projects; errors keep the JSON shape."""

from __future__ import annotations

import os

import httpx

from tests.fixtures.server import ServerProcess
from tests.server.robot import Robot, put


def test_cross_user_access_is_404_on_every_project_route(alice: Robot, bob: Robot) -> None:
    project = alice.new_project()
    blob = alice.upload(os.urandom(20))
    assert alice.commit(project, 0, [put("a.jpg", blob)]).status_code == 201
    body = '{"base_version":1}\n'
    calls = [
        bob.http.get(f"/v1/projects/{project}"),
        bob.http.get(f"/v1/projects/{project}/versions"),
        bob.http.get(f"/v1/projects/{project}/manifest"),
        bob.http.get(f"/v1/projects/{project}/changes", params={"since": 0}),
        bob.http.post(f"/v1/projects/{project}/downloads", json={"digests": [blob.digest]}),
        bob.http.post(f"/v1/projects/{project}/commits", content=body),
    ]
    for r in calls:
        assert r.status_code == 404, (r.request.url, r.text)
        assert r.json()["error"]["code"] == "not_found"
    assert project not in [p["id"] for p in bob.http.get("/v1/projects").json()["projects"]]
    assert alice.http.get(f"/v1/projects/{project}").json()["head_version"] == 1


def test_requests_without_a_valid_token_are_401(server: ServerProcess) -> None:
    for headers in ({}, {"Authorization": "Bearer rs_not-a-token"}, {"Authorization": "Basic x"}):
        r = httpx.get(server.url + "/v1/projects", headers=headers)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthorized"


def test_revoked_token_is_401(server: ServerProcess) -> None:
    token = server.make_token("carol", "doomed")
    assert httpx.get(server.url + "/v1/projects", headers=_auth(token)).status_code == 200
    out = server.run_cli("revoke-token", "carol", "--robot", "doomed")
    assert out.returncode == 0, out.stderr
    assert httpx.get(server.url + "/v1/projects", headers=_auth(token)).status_code == 401


def test_project_names_are_unique_per_user_and_listed_by_name(alice: Robot, bob: Robot) -> None:
    assert alice.http.post("/v1/projects", json={"name": "shared-name"}).status_code in (201, 409)
    assert alice.http.post("/v1/projects", json={"name": "shared-name"}).status_code == 409
    assert bob.http.post("/v1/projects", json={"name": "shared-name"}).status_code in (201, 409)
    found = alice.http.get("/v1/projects", params={"name": "shared-name"}).json()["projects"]
    assert [p["name"] for p in found] == ["shared-name"]


def test_health_docs_and_unknown_routes(server: ServerProcess) -> None:
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(server.url + "/readyz").status_code == 200
    schema = httpx.get(server.url + "/openapi.json").json()
    assert "/v1/projects/{project_id}/commits" in schema["paths"]
    r = httpx.get(server.url + "/v1/nothing-here")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


def test_malformed_json_body_is_400_in_the_error_shape(alice: Robot) -> None:
    r = alice.http.post("/v1/projects", json={"name": "../bad"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_input"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
