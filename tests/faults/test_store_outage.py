"""The object store stops in the middle of a push: one clear line, and a re-run resumes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.client.conftest import folder_digests, project_name
from tests.client.proxy import wait_for
from tests.faults.conftest import Lab, Site, start_cli, write_images
from tests.fixtures.seaweedfs import SeaweedFS
from tests.fixtures.server import ServerProcess


@pytest.fixture
def own_seaweedfs(tmp_path: Path, seaweedfs: SeaweedFS) -> Iterator[SeaweedFS]:
    """A SeaweedFS of this test alone (the session's one must keep running)."""
    (tmp_path / "weed").mkdir()
    store = SeaweedFS(tmp_path / "weed").start()
    yield store
    store.stop()


# ~100 s: the failing push spends ~30-45 s in retries, SeaweedFS ~20 s coming back.
@pytest.mark.slow
def test_store_outage_fails_clearly_and_a_rerun_sends_only_what_is_missing(
    own_seaweedfs: SeaweedFS,
    pg_url: str,
    lab: Lab,
    site_on: Callable[[ServerProcess], Site],
) -> None:
    server = lab.server(
        {"ROBOSYNC_DATABASE_URL": pg_url, **own_seaweedfs.server_env()}, start=False
    )
    store = lab.store_proxy(server, rate=2_000_000)
    server.start()
    site = site_on(server)
    robot = site.robot("r1")
    write_images(robot.root, 30, 200 * 1024)
    write_images(robot.root, 1, 9 * 1024 * 1024, prefix="big")
    name = project_name()
    robot.cli("init", name)

    push = start_cli(robot, "push", "--jobs", "4")
    assert wait_for(lambda: len(store.puts(accepted=True)) >= 6, timeout=60)
    own_seaweedfs.stop()
    _, err = push.communicate(timeout=180)
    assert push.returncode == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("robosync: error: "), err
    assert "object store" in lines[0] and "run `robosync push` again" in lines[0], lines[0]
    stored = {e.part_key for e in store.puts(accepted=True)}

    own_seaweedfs.start()
    store.reset()
    store.rate = None
    out = robot.cli("push")
    assert out.stdout.startswith("pushed v1: +31"), out.stdout
    resent = {e.part_key for e in store.puts()} & stored
    assert site.project_state(name)["live"] == 31
    site.assert_clone_matches(name, folder_digests(robot.root))
    # Parts of a multipart upload are resumed from the store's own list, and
    # single PUTs the store took but nobody completed are found by a HEAD.
    assert not resent, f"sent again after the outage: {sorted(resent)}"
