"""Tenant isolation on every route: another user's token never reads, writes or learns.

The routes are enumerated from the application itself, so a route added
later fails ``test_every_route_is_covered_by_the_isolation_table`` until it
is given a probe (or an exemption with a reason) below.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from robosync.digest import digest_bytes
from robosync.server.app import create_app
from robosync.server.settings import Settings
from tests.fixtures.server import ServerProcess
from tests.security.conftest import robot_of
from tests.server.robot import Robot, put
from tests.web.people import ConsoleSession, new_person

NO_SUCH_PROJECT = 2**63 - 1000  # a valid id no project has

# A call an intruder makes on a project id; the answer must not depend on whose it is.
Probe = Callable[[Robot, int, dict[str, Any]], httpx.Response]

PROJECT_PROBES: dict[tuple[str, str], Probe] = {
    ("GET", "/v1/projects/{project_id}"): lambda r, p, _: r.http.get(f"/v1/projects/{p}"),
    ("GET", "/v1/projects/{project_id}/versions"): lambda r, p, _: r.http.get(
        f"/v1/projects/{p}/versions"
    ),
    ("GET", "/v1/projects/{project_id}/manifest"): lambda r, p, _: r.http.get(
        f"/v1/projects/{p}/manifest", params={"version": 1}
    ),
    ("GET", "/v1/projects/{project_id}/changes"): lambda r, p, _: r.http.get(
        f"/v1/projects/{p}/changes", params={"since": 0}
    ),
    ("POST", "/v1/projects/{project_id}/downloads"): lambda r, p, c: r.http.post(
        f"/v1/projects/{p}/downloads", json={"digests": [c["digest"]]}
    ),
    ("GET", "/v1/projects/{project_id}/members"): lambda r, p, _: r.http.get(
        f"/v1/projects/{p}/members"
    ),
    ("POST", "/v1/projects/{project_id}/commits"): lambda r, p, c: r.commit(
        p, 1, [{"op": "delete", "path": "a.jpg"}], key="intruder-key"
    ),
    ("POST", "/v1/projects/{project_id}/quota-check"): lambda r, p, _: r.http.post(
        f"/v1/projects/{p}/quota-check", json={"added_bytes": 10}
    ),
    ("PATCH", "/v1/projects/{project_id}"): lambda r, p, _: r.http.patch(
        f"/v1/projects/{p}", json={"name": f"renamed-{p}"}
    ),
    ("DELETE", "/v1/projects/{project_id}"): lambda r, p, _: r.http.delete(f"/v1/projects/{p}"),
    ("POST", "/v1/projects/{project_id}/restore"): lambda r, p, _: r.http.post(
        f"/v1/projects/{p}/restore"
    ),
    ("PUT", "/v1/projects/{project_id}/members/{user}"): lambda r, p, c: r.http.put(
        f"/v1/projects/{p}/members/{c['bystander']}", json={"role": "write"}
    ),
    ("DELETE", "/v1/projects/{project_id}/members/{user}"): lambda r, p, c: r.http.delete(
        f"/v1/projects/{p}/members/{c['bystander']}"
    ),
}

# The role each project route needs; a member with less gets 403, a stranger 404.
NEEDED_ROLE = {
    ("GET", "/v1/projects/{project_id}"): "read",
    ("GET", "/v1/projects/{project_id}/versions"): "read",
    ("GET", "/v1/projects/{project_id}/manifest"): "read",
    ("GET", "/v1/projects/{project_id}/changes"): "read",
    ("POST", "/v1/projects/{project_id}/downloads"): "read",
    ("GET", "/v1/projects/{project_id}/members"): "read",
    ("POST", "/v1/projects/{project_id}/commits"): "write",
    ("POST", "/v1/projects/{project_id}/quota-check"): "write",
    ("PATCH", "/v1/projects/{project_id}"): "admin",
    ("DELETE", "/v1/projects/{project_id}"): "admin",
    ("POST", "/v1/projects/{project_id}/restore"): "admin",
    ("PUT", "/v1/projects/{project_id}/members/{user}"): "admin",
    ("DELETE", "/v1/projects/{project_id}/members/{user}"): "admin",
}
# Routes that act on a project in the trash: the probe's project is deleted first.
ON_TRASH = {("POST", "/v1/projects/{project_id}/restore")}
ROLES = ["read", "write", "admin"]

# Routes without a project id: each has its own test below, named here.
USER_ROUTES = {
    ("GET", "/v1/projects"): "test_project_list_and_names_are_per_user",
    ("POST", "/v1/projects"): "test_project_list_and_names_are_per_user",
    ("POST", "/v1/uploads"): "test_dedup_never_answers_present_for_another_users_blob",
    ("POST", "/v1/uploads/complete"): "test_another_users_upload_cannot_be_completed",
}

# The web console's project pages, probed with a signed-in session of the intruder.
ConsoleProbe = Callable[[ConsoleSession, int, dict[str, Any]], httpx.Response]

CONSOLE_PROBES: dict[tuple[str, str], ConsoleProbe] = {
    ("GET", "/p/{project_id}"): lambda s, p, _: s.http.get(f"/p/{p}"),
    ("GET", "/p/{project_id}/file"): lambda s, p, _: s.http.get(
        f"/p/{p}/file", params={"path": "a.jpg"}
    ),
    ("GET", "/p/{project_id}/raw"): lambda s, p, _: s.http.get(
        f"/p/{p}/raw", params={"path": "a.jpg"}
    ),
    ("GET", "/p/{project_id}/thumb/{digest}"): lambda s, p, c: s.http.get(
        f"/p/{p}/thumb/{c['digest']}", params={"name": "a.jpg"}
    ),
    ("GET", "/p/{project_id}/history"): lambda s, p, _: s.http.get(f"/p/{p}/history"),
    ("GET", "/p/{project_id}/v/{number}"): lambda s, p, _: s.http.get(f"/p/{p}/v/1"),
    ("GET", "/p/{project_id}/members"): lambda s, p, _: s.http.get(f"/p/{p}/members"),
    ("POST", "/p/{project_id}/members"): lambda s, p, c: s.http.post(
        f"/p/{p}/members", data={"user": c["bystander"], "role": "admin", "csrf": s.csrf}
    ),
    ("POST", "/p/{project_id}/members/remove"): lambda s, p, c: s.http.post(
        f"/p/{p}/members/remove", data={"user": c["bystander"], "csrf": s.csrf}
    ),
}

CONSOLE_USER_ROUTES = {
    ("GET", "/projects"): "test_console_lists_only_the_persons_projects",
    ("GET", "/robots"): "test_console_robots_are_per_user",
    ("POST", "/robots"): "test_console_robots_are_per_user",
    ("POST", "/robots/revoke"): "test_console_robots_are_per_user",
}

# Routes that hold no tenant data or are authorised otherwise.
EXEMPT = {
    ("GET", "/"): "redirects to /projects",
    ("GET", "/signin"): "the sign-in form",
    ("POST", "/signin"): "checks a password (tests/web/test_console.py)",
    ("POST", "/signout"): "ends the caller's own session",
    ("GET", "/healthz"): "liveness, no data",
    ("GET", "/readyz"): "readiness, no data",
    ("GET", "/metrics"): "operator scrape endpoint: aggregate counters, no per-project data",
    ("GET", "/openapi.json"): "the public schema",
    ("GET", "/docs"): "the public schema",
    ("GET", "/docs/oauth2-redirect"): "the public schema",
    ("GET", "/redoc"): "the public schema",
    # Signed-URL routes of the local store: the signature binds method, key,
    # checksum, size and expiry (test_store_urls.py); URLs come only from the
    # routes above, which check the project.
    ("PUT", "/v1/store/{key:path}"): "HMAC-signed URL",
    ("GET", "/v1/store/{key:path}"): "HMAC-signed URL",
    ("PUT", "/v1/store-uploads/{upload_id}/{number}"): "HMAC-signed URL",
}


def _walk(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for route in routes:
        if hasattr(route, "original_router"):  # FastAPI's included router
            inner = prefix + getattr(route.include_context, "prefix", "")
            yield from _walk(route.original_router.routes, inner)
        elif hasattr(route, "routes") and not hasattr(route, "methods"):
            yield from _walk(route.routes, prefix + getattr(route, "path", ""))
        else:
            for method in sorted(getattr(route, "methods", None) or ()):
                if method != "HEAD":
                    yield method, prefix + route.path


def app_routes(tmp_path: Path) -> set[tuple[str, str]]:
    """Every (method, path) the embedded application serves (a superset of the S3 one's)."""
    app = create_app(Settings(data_dir=tmp_path))
    return set(_walk(list(app.routes)))


def test_every_route_is_covered_by_the_isolation_table(tmp_path: Path) -> None:
    routes = app_routes(tmp_path)
    assert ("POST", "/v1/projects/{project_id}/commits") in routes  # the walk works
    covered = (
        set(PROJECT_PROBES)
        | set(USER_ROUTES)
        | set(CONSOLE_PROBES)
        | set(CONSOLE_USER_ROUTES)
        | set(EXEMPT)
    )
    missing = routes - covered
    assert not missing, f"routes without a tenant-isolation probe: {sorted(missing)}"
    assert set(NEEDED_ROLE) == set(PROJECT_PROBES), "every project route names the role it needs"


@pytest.fixture(scope="module")
def victim_project(owner: Robot, bystander: Robot) -> dict[str, Any]:
    """A project of the owner with one committed file, shared read-only with a bystander."""
    return _project_of(owner, bystander)


def _project_of(owner: Robot, bystander: Robot) -> dict[str, Any]:
    project = owner.new_project("victim")
    blob = owner.upload(os.urandom(64))
    assert owner.commit(project, 0, [put("a.jpg", blob)]).status_code == 201
    name = user_name(bystander)
    r = owner.http.put(f"/v1/projects/{project}/members/{name}", json={"role": "read"})
    assert r.status_code == 200, r.text
    return {"id": project, "digest": blob.digest, "bystander": name}


def user_name(robot: Robot) -> str:
    """The user a robot's token belongs to."""
    return str(robot.http.get("/v1/projects").json()["user"])


@pytest.fixture(scope="module")
def bystander(server: ServerProcess) -> Iterator[Robot]:
    """A reader of every probed project: the target of share/unshare probes."""
    robot = robot_of(server, "bystander-" + uuid.uuid4().hex[:6])
    yield robot
    robot.close()


@pytest.fixture(scope="module")
def members(server: ServerProcess) -> Iterator[dict[str, Robot]]:
    """One robot per role, of users the owner shares each probed project with."""
    robots = {role: robot_of(server, f"{role}er-" + uuid.uuid4().hex[:6]) for role in ROLES}
    yield robots
    for robot in robots.values():
        robot.close()


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", sorted(PROJECT_PROBES), ids=lambda r: f"{r[0]} {r[1]}")
def test_each_role_may_do_exactly_what_it_allows_on_every_route(
    owner: Robot,
    bystander: Robot,
    members: dict[str, Robot],
    route: tuple[str, str],
    role: str,
) -> None:
    project = _project_of(owner, bystander)
    member = members[role]
    r = owner.http.put(
        f"/v1/projects/{project['id']}/members/{user_name(member)}", json={"role": role}
    )
    assert r.status_code == 200, r.text
    if route in ON_TRASH:
        assert owner.http.delete(f"/v1/projects/{project['id']}").status_code == 200
    answer = PROJECT_PROBES[route](member, project["id"], project)
    needed = NEEDED_ROLE[route]
    if ROLES.index(role) >= ROLES.index(needed):
        assert answer.status_code < 300, (role, route, answer.text)
        return
    assert answer.status_code == 403, (role, route, answer.text)
    error = answer.json()["error"]
    assert error["code"] == "forbidden"
    assert error["details"] == {"project": project["id"], "role": role, "needed": needed}
    assert f"you have {role} access" in error["message"]
    assert f"--role {needed}" in error["message"]
    # Refused means untouched.
    info = owner.http.get(f"/v1/projects/{project['id']}")
    if route not in ON_TRASH:
        assert info.json()["head_version"] == 1
        assert owner.manifest(project["id"]) == {"a.jpg": project["digest"]}


def _shape(r: httpx.Response, project_id: int) -> str:
    return json.dumps(r.json()).replace(str(project_id), "<id>")


@pytest.mark.parametrize("route", sorted(PROJECT_PROBES), ids=lambda r: f"{r[0]} {r[1]}")
def test_another_users_project_answers_exactly_like_a_missing_one(
    owner: Robot, intruder: Robot, victim_project: dict[str, Any], route: tuple[str, str]
) -> None:
    probe = PROJECT_PROBES[route]
    theirs = probe(intruder, victim_project["id"], victim_project)
    missing = probe(intruder, NO_SUCH_PROJECT, victim_project)
    assert theirs.status_code == missing.status_code == 404, theirs.text
    assert theirs.json()["error"]["code"] == "not_found"
    assert _shape(theirs, victim_project["id"]) == _shape(missing, NO_SUCH_PROJECT)
    assert theirs.headers.get("x-robosync-version") is None
    # Nothing changed for the owner.
    info = owner.http.get(f"/v1/projects/{victim_project['id']}").json()
    assert info["head_version"] == 1
    assert owner.manifest(victim_project["id"]) == {"a.jpg": victim_project["digest"]}


def test_project_list_and_names_are_per_user(
    owner: Robot, intruder: Robot, victim_project: dict[str, Any]
) -> None:
    name = owner.http.get(f"/v1/projects/{victim_project['id']}").json()["name"]
    listed = intruder.http.get("/v1/projects").json()["projects"]
    assert victim_project["id"] not in [p["id"] for p in listed]
    assert intruder.http.get("/v1/projects", params={"name": name}).json()["projects"] == []
    # The same name is free for the intruder: taking it reveals nothing and touches nothing.
    created = intruder.http.post("/v1/projects", json={"name": name})
    assert created.status_code == 201, created.text
    assert created.json()["id"] != victim_project["id"]
    assert (
        owner.http.get("/v1/projects", params={"name": name}).json()["projects"][0]["id"]
        == victim_project["id"]
    )


def test_dedup_never_answers_present_for_another_users_blob(
    owner: Robot, intruder: Robot, victim_project: dict[str, Any]
) -> None:
    data = os.urandom(80)
    blob = owner.upload(data)
    assert owner.commit(victim_project["id"], 1, [put("b.jpg", blob)]).status_code in (201, 409)
    assert owner.plan([blob])[0]["status"] == "present"  # dedup for the owner
    # The intruder must prove the bytes: an upload, and never to the blob's own key.
    (plan,) = intruder.plan([blob])
    assert plan["status"] == "upload"
    assert f"blobs/{blob.digest}" not in plan["parts"][0]["url"]
    # No URL for the blob through a project of its own,
    own = intruder.new_project("own")
    r = intruder.http.post(f"/v1/projects/{own}/downloads", json={"digests": [blob.digest]})
    assert r.status_code == 404
    assert r.json()["error"]["details"]["missing"] == [blob.digest]
    # nor through the owner's.
    r = intruder.http.post(
        f"/v1/projects/{victim_project['id']}/downloads", json={"digests": [blob.digest]}
    )
    assert r.status_code == 404


def test_another_users_upload_cannot_be_completed(owner: Robot, intruder: Robot) -> None:
    data = os.urandom(100)
    blob = digest_bytes(data)
    (plan,) = owner.plan([blob])
    assert plan["status"] == "upload"
    parts = owner.put_parts(plan, data)
    stolen = intruder.complete(plan, parts)
    assert stolen["status"] == "failed"
    assert "no upload in progress" in stolen["error"]
    assert owner.complete(plan, parts)["status"] == "present"


def test_knowing_a_digest_is_not_enough_to_read_the_blob(owner: Robot, intruder: Robot) -> None:
    blob = owner.upload(os.urandom(90))
    own = intruder.new_project("claim")
    claimed = intruder.commit(own, 0, [put("stolen.jpg", blob)])
    assert claimed.status_code == 422, "a digest the intruder never uploaded was accepted"
    # Answered exactly like a blob nobody stored: nothing says the digest exists.
    unknown = digest_bytes(os.urandom(90))
    never = intruder.commit(own, 0, [put("stolen.jpg", unknown)])
    assert never.status_code == 422
    assert claimed.json()["error"]["details"]["missing"] == [blob.digest]
    assert claimed.text.replace(blob.digest, "<d>") == never.text.replace(unknown.digest, "<d>")
    r = intruder.http.post(f"/v1/projects/{own}/downloads", json={"digests": [blob.digest]})
    assert r.status_code == 404


@pytest.fixture(scope="module")
def console_intruder(
    server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ConsoleSession]:
    """A signed-in console session of another user."""
    person = new_person(server, tmp_path_factory.mktemp("console-intruder"))
    session = ConsoleSession(server.url, person.name)
    yield session
    session.close()


def _page_shape(r: httpx.Response, project_id: int) -> str:
    return r.text.replace(f"no project {project_id}<", "no project <id><")


@pytest.mark.parametrize("route", sorted(CONSOLE_PROBES), ids=lambda r: f"{r[0]} {r[1]}")
def test_console_shows_another_users_project_exactly_like_a_missing_one(
    console_intruder: ConsoleSession, victim_project: dict[str, Any], route: tuple[str, str]
) -> None:
    probe = CONSOLE_PROBES[route]
    theirs = probe(console_intruder, victim_project["id"], victim_project)
    missing = probe(console_intruder, NO_SUCH_PROJECT, victim_project)
    assert theirs.status_code == missing.status_code == 404, theirs.text
    assert _page_shape(theirs, victim_project["id"]) == _page_shape(missing, NO_SUCH_PROJECT)
    assert "location" not in theirs.headers  # no presigned URL, no redirect


def test_console_lists_only_the_persons_projects(
    console_intruder: ConsoleSession, victim_project: dict[str, Any]
) -> None:
    page = console_intruder.http.get("/projects")
    assert page.status_code == 200
    assert f'href="/p/{victim_project["id"]}"' not in page.text


def test_console_robots_are_per_user(
    owner: Robot, console_intruder: ConsoleSession, victim_project: dict[str, Any]
) -> None:
    versions = owner.http.get(f"/v1/projects/{victim_project['id']}/versions").json()
    robot = versions["versions"][0]["robot"]
    assert robot not in console_intruder.http.get("/robots").text
    r = console_intruder.http.post(
        "/robots/revoke", data={"robot": robot, "csrf": console_intruder.csrf}
    )
    assert r.status_code == 404
    assert owner.http.get("/v1/projects").status_code == 200  # the owner's token still works
