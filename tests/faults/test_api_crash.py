"""The API process dies (kill -9) or restarts while robots push: nothing half-done, nothing lost."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

from tests.client.conftest import folder_digests, project_name
from tests.client.proxy import CountingProxy, Exchange, wait_for
from tests.faults.conftest import Lab, Site, start_cli, write_images
from tests.fixtures.server import ServerProcess

# Big enough that the server needs a noticeable time to apply the commit, so
# the kill lands while it works; only DISTINCT blobs, to keep the upload short.
COMMIT_LINES = 20_000
DISTINCT = 40


def write_many_paths(root: Path, count: int, distinct: int) -> None:
    """``count`` small files spread over folders, with only ``distinct`` different contents."""
    bodies = [f"frame-{i}-".encode() * 40 for i in range(distinct)]
    for i in range(count):
        folder = root / f"cam{i // 1000:02d}"
        if i % 1000 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:06d}.png").write_bytes(bodies[i % distinct])


def commit_exchange(proxy: CountingProxy) -> Exchange | None:
    """The commit request the proxy saw, once its whole body reached the server."""
    with proxy.lock:
        for ex in proxy.exchanges:
            if ex.method == "POST" and ex.path.endswith("/commits") and ex.complete:
                return ex
    return None


def test_kill_9_during_a_large_commit_leaves_the_version_whole_or_absent(
    fresh_env: dict[str, str],
    lab: Lab,
    site_on: Callable[[ServerProcess], Site],
) -> None:
    server = lab.server(fresh_env)
    proxy = lab.proxy("127.0.0.1", server.port)
    if True:
        site = site_on(server)
        robot = site.robot("r1", proxy.url)
        write_many_paths(robot.root, COMMIT_LINES, DISTINCT)
        name = project_name()
        robot.cli("init", name)
        push = start_cli(robot, "push")
        try:
            assert wait_for(lambda: commit_exchange(proxy) is not None, timeout=180), (
                "the push never sent its commit"
            )
            time.sleep(random.uniform(0, 0.2))
            server.kill()
            ex = commit_exchange(proxy)
            assert ex is not None and ex.status is None, "the commit was answered before the kill"
        finally:
            push.kill()
            push.wait()

        state = site.project_state(name)
        nothing = {"head": 0, "versions": 0, "live": 0, "file_count": 0}
        whole = {"head": 1, "versions": 1, "live": COMMIT_LINES, "file_count": COMMIT_LINES}
        assert state in (nothing, whole)

        server.start()
        robot.cli("push")
        assert site.project_state(name) == whole
        assert "nothing to push" in robot.cli("push").stdout
        site.assert_clone_matches(name, folder_digests(robot.root))


def test_push_completes_across_an_api_restart(
    fresh_env: dict[str, str],
    lab: Lab,
    site_on: Callable[[ServerProcess], Site],
) -> None:
    server = lab.server(fresh_env, start=False)
    # Throttled blob traffic keeps the push busy long enough to restart under it.
    store = lab.store_proxy(server, rate=3_000_000)
    server.start()
    site = site_on(server)
    robot = site.robot("r1")
    write_images(robot.root, 40, 256 * 1024)
    name = project_name()
    robot.cli("init", name)
    push = start_cli(robot, "push", "--jobs", "4")
    assert wait_for(lambda: len(store.puts()) >= 4 or push.poll() is not None, timeout=60)
    assert push.poll() is None, "the push finished before the restart"
    server.restart()
    out, err = push.communicate(timeout=120)
    assert push.returncode == 0, err
    assert out.startswith("pushed v1: +40")
    assert site.project_state(name)["head"] == 1
    site.assert_clone_matches(name, folder_digests(robot.root))
