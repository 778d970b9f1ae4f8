"""A push asks for the next batch's plan while the current batch is still being sent,
and never waits out the server's cap on uploads in flight because of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from robosync.client.transfer import BATCH
from tests.client.conftest import Robot, folder_digests, project_name
from tests.fixtures.server import ServerProcess

# One full batch in flight plus the next one's early ask is over the cap; one full batch
# plus a last short one is not.
CAP = BATCH + 100


@pytest.fixture(scope="module")
def capped_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """An embedded server with a cap on uploads in flight just above one batch."""
    env = {"ROBOSYNC_MAX_INFLIGHT_UPLOADS": str(CAP)}
    proc = ServerProcess(tmp_path_factory.mktemp("capped"), env).start()
    yield proc
    proc.stop()


def refusals(server: ServerProcess) -> float:
    """How many plans the server refused for too many uploads in flight."""
    text = httpx.get(server.url + "/metrics", timeout=10).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "robosync_rate_limited_total" and s.labels.get("limit") == "inflight_uploads"
    )


def test_early_plans_over_the_cap_fall_back_without_waiting_it_out(
    capped_server: ServerProcess, tmp_path: Path
) -> None:
    token = capped_server.make_token("planner", "r1")
    robot = Robot("r1", capped_server.url, token, tmp_path / "r1")
    with robot.init(project_name()) as p:
        for i in range(2 * BATCH + 100):  # three batches: 1000, 1000, 100
            p.save_image(f"cam/{i:04d}.png", f"image {i}".encode())
        result = p.push()
        name = p.config.project_name
    assert result.uploaded_blobs == 2 * BATCH + 100
    # The second batch's early ask is refused (the first is in flight) and planned again
    # once the first is completed; the third's early ask fits. A plain plan refused in
    # turn (planned before the completions ended) would be retried: more refusals.
    assert refusals(capped_server) == 1
    clone = Robot("r2", capped_server.url, token, tmp_path / "r2")
    clone.clone(name).close()
    assert folder_digests(clone.root) == folder_digests(robot.root)
