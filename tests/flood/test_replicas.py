"""Several API replicas: limits shared through Redis, and nginx balancing pushes and clones."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

import httpx

from robosync.errors import RateLimited, error_from_body
from robosync.server.nginx import Nginx, nginx_binary
from tests.client.conftest import folder_digests, project_name
from tests.faults.conftest import Lab, Site, write_images
from tests.fixtures.server import ServerProcess
from tests.limits.availability import service_missing


def replicas(lab: Lab, env: dict[str, str], count: int = 2) -> list[ServerProcess]:
    """``count`` API processes sharing one database, bucket and Redis."""
    return [lab.server(env) for _ in range(count)]


def shared_env(pg_s3_env: dict[str, str], redis_url: str, **extra: str) -> dict[str, str]:
    """The session's PostgreSQL + its bucket, and Redis (keys of this test alone)."""
    return {
        **pg_s3_env,
        "ROBOSYNC_REDIS_URL": redis_url,
        "ROBOSYNC_REDIS_KEY_PREFIX": f"robosync-test-{uuid.uuid4().hex[:12]}",
        **extra,
    }


def test_user_over_the_rate_on_one_replica_is_refused_on_the_other(
    lab: Lab, pg_s3_env: dict[str, str], redis_url: str
) -> None:
    env = shared_env(pg_s3_env, redis_url, ROBOSYNC_RATE_LIMIT="6/minute")
    a, b = replicas(lab, env)
    flooder = a.make_token(f"flooder-{uuid.uuid4().hex[:6]}", "r1")
    other = b.make_token(f"other-{uuid.uuid4().hex[:6]}", "r1")

    def get(server: ServerProcess, token: str) -> httpx.Response:
        return httpx.get(
            server.url + "/v1/projects", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )

    assert [get(a, flooder).status_code for _ in range(6)] == [200] * 6
    refused = get(b, flooder)
    assert refused.status_code == 429
    err = error_from_body(429, refused.json())
    assert isinstance(err, RateLimited) and err.details["limit"] == "requests"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert get(a, flooder).status_code == 429
    assert get(b, other).status_code == 200


def test_push_and_clone_through_nginx_in_front_of_two_replicas(
    lab: Lab,
    pg_s3_env: dict[str, str],
    redis_url: str,
    site_on: Callable[[ServerProcess], Site],
) -> None:
    if nginx_binary() is None:
        service_missing("nginx is not installed (apt-get install nginx-light)")
    a, b = replicas(lab, shared_env(pg_s3_env, redis_url))
    with Nginx([f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"]) as nginx:
        site = site_on(a)
        robot = site.robot("r1", nginx.url)
        write_images(robot.root, 20, 64 * 1024)
        write_images(robot.root, 1, 9 * 1024 * 1024, prefix="big")
        name = project_name()
        robot.cli("init", name)
        assert robot.cli("push").stdout.startswith("pushed v1: +21")
        expected = folder_digests(robot.root)
        clone = site.robot("r2", nginx.url)
        clone.home.mkdir(parents=True)
        clone.cli("clone", name, str(clone.root))
        assert folder_digests(clone.root) == expected
        log = nginx.access_log()
    used = {f"upstream=127.0.0.1:{s.port}" for s in (a, b) if f"127.0.0.1:{s.port}" in log}
    assert len(used) == 2, "nginx sent every request to one replica"
    statuses = {int(s) for s in re.findall(r'"[A-Z]+ /v1/\S* HTTP/1\.[01]" (\d{3}) ', log)}
    assert statuses and max(statuses) < 400, statuses
    site.assert_clone_matches(name, expected)
