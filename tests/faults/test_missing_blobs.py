"""A blob lost between upload and commit (a GC race): the push uploads it again and commits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from robosync.errors import MissingBlobs
from tests.client.conftest import folder_digests, project_name
from tests.faults.conftest import Lab, Site, write_images
from tests.fixtures.server import ServerProcess


def test_push_uploads_again_what_garbage_collection_took_before_the_commit(
    lab: Lab, site_on: Callable[[ServerProcess], Site]
) -> None:
    server = lab.server({})
    site = site_on(server)
    robot = site.robot("r1")
    write_images(robot.root, 5, 64 * 1024)
    name = project_name()
    project = robot.init(name)
    outcomes: list[str] = []
    real_commit = project.api.commit

    def commit_after_gc(*args: Any, **kwargs: Any) -> Any:
        if not outcomes:
            # The blobs are uploaded but no version references them yet: a
            # garbage collection with no grace period deletes them all.
            gc = server.run_cli("gc", "--grace", "0s")
            assert gc.returncode == 0, gc.stderr
        try:
            answer = real_commit(*args, **kwargs)
        except MissingBlobs:
            outcomes.append("missing")
            raise
        outcomes.append("committed")
        return answer

    project.api.commit = commit_after_gc  # type: ignore[method-assign]
    try:
        result = project.push()
    finally:
        project.close()
    assert outcomes == ["missing", "committed"]
    assert result.committed and result.version == 1
    assert site.project_state(name)["live"] == 5
    site.assert_clone_matches(name, folder_digests(robot.root))
