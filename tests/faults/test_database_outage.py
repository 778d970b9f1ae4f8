"""PostgreSQL goes away in the middle of a push: 503 with Retry-After, robots wait, nothing lost."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.client.conftest import folder_digests, project_name
from tests.client.proxy import wait_for
from tests.faults.conftest import Lab, Site, start_cli, write_images
from tests.fixtures.private_postgres import PrivatePostgres
from tests.fixtures.server import ServerProcess


@pytest.fixture
def own_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL of this test alone: it is stopped and started again mid-push."""
    pg = PrivatePostgres()
    try:
        yield pg.init()
    finally:
        pg.remove()


def test_database_outage_answers_503_and_the_push_lands_once_it_is_back(
    own_postgres: PrivatePostgres, lab: Lab, site_on: Callable[[ServerProcess], Site]
) -> None:
    server = lab.server({"ROBOSYNC_DATABASE_URL": own_postgres.url}, start=False)
    store = lab.store_proxy(server, rate=1_000_000)  # a push that lasts a few seconds
    server.start()
    site = site_on(server)
    robot = site.robot("r1")
    write_images(robot.root, 40, 100 * 1024)
    name = project_name()
    robot.cli("init", name)
    expected = folder_digests(robot.root)

    push = start_cli(robot, "push", "--jobs", "2")
    assert wait_for(lambda: len(store.puts(accepted=True)) >= 3, timeout=60)
    own_postgres.stop("immediate")
    answers: list[httpx.Response] = []
    probe = threading.Thread(target=lambda: answers.append(_api_call(server, site.token)))
    probe.start()
    probe.join(timeout=60)
    time.sleep(3)  # the outage lasts: the robot's requests meet it and wait
    own_postgres.start()
    out, err = push.communicate(timeout=240)

    (during,) = answers
    assert during.status_code == 503, during.text
    assert during.headers.get("Retry-After", "").isdigit()
    assert during.json()["error"]["code"] == "unavailable"
    robot_waited = [
        line
        for line in server.log_path.read_text().splitlines()
        if '"msg": "POST ' in line and " 503 " in line
    ]
    assert robot_waited, "the push met the outage (a POST answered 503) and retried"
    assert push.returncode == 0, err
    assert out.startswith("pushed v1: +40"), out
    assert site.project_state(name)["live"] == 40
    site.assert_clone_matches(name, expected)


def _api_call(server: ServerProcess, token: str) -> httpx.Response:
    return httpx.get(
        server.url + "/v1/projects", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
