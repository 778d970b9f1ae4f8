"""Two pushes from one folder at once: the second refuses clearly, the first is not harmed."""

from __future__ import annotations

from collections.abc import Callable

from tests.client.conftest import folder_digests, project_name
from tests.client.proxy import wait_for
from tests.faults.conftest import Lab, Site, start_cli, write_images
from tests.fixtures.server import ServerProcess


def test_second_push_from_the_same_folder_refuses_and_the_first_completes(
    lab: Lab, site_on: Callable[[ServerProcess], Site]
) -> None:
    server = lab.server({}, start=False)
    store = lab.store_proxy(server, rate=1_000_000)
    server.start()
    site = site_on(server)
    robot = site.robot("r1")
    write_images(robot.root, 8, 256 * 1024)
    name = project_name()
    robot.cli("init", name)

    first = start_cli(robot, "push", "--jobs", "2")
    assert wait_for(lambda: len(store.puts()) > 0 or first.poll() is not None, timeout=60)
    assert first.poll() is None, "the first push finished too soon"
    second = robot.cli("push", check=False)
    out, err = first.communicate(timeout=120)

    assert second.returncode == 1
    assert second.stderr.strip().splitlines() == [
        f"robosync: error: another robosync command is running in {robot.root}; "
        "wait for it to finish and run this again"
    ]
    assert first.returncode == 0, err
    assert out.startswith("pushed v1: +8")
    assert site.project_state(name) == {"head": 1, "versions": 1, "live": 8, "file_count": 8}
    assert "nothing to push" in robot.cli("push").stdout
    site.assert_clone_matches(name, folder_digests(robot.root))
