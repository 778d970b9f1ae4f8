"""A 100k-entry manifest streams from the server with flat memory."""

from __future__ import annotations

import json

import pytest

from tests.fixtures.server import ServerProcess
from tests.server.robot import Robot

ENTRIES = 100_000
# Holding the 100k rows (long paths) in a list would cost the server well over
# 60 MiB; streaming in 2000-row batches costs a few.
MAX_GROWTH_KIB = 25 * 1024


@pytest.mark.slow
def test_manifest_of_100k_entries_streams_with_bounded_memory(
    alice: Robot, server: ServerProcess
) -> None:
    project = alice.new_project("big")
    blob = alice.upload(b"one image shared by every path")
    prefix = "camera-front-left/2026/11/25/session-0001/" + "x" * 120
    lines = [
        {"op": "put", "path": f"{prefix}/img-{i:06d}.jpg", "digest": blob.digest, "size": blob.size}
        for i in range(ENTRIES)
    ]
    for start, base in ((0, 0), (ENTRIES // 2, 1)):
        r = alice.commit(project, base, lines[start : start + ENTRIES // 2])
        assert r.status_code == 201, r.text
    # The commits themselves spooled their bodies; measure the stream alone.
    server.restart()
    alice.http.close()
    alice.__post_init__()
    warm = alice.http.get(f"/v1/projects/{project}/manifest", params={"version": 0})
    assert warm.status_code == 200
    before = server.vm_kib("VmHWM")
    count = 0
    last = ""
    with alice.http.stream("GET", f"/v1/projects/{project}/manifest") as r:
        assert r.status_code == 200
        assert r.headers["x-robosync-version"] == "2"
        for line in r.iter_lines():
            if line:
                path = json.loads(line)["path"]
                assert path > last
                last = path
                count += 1
    growth = server.vm_kib("VmHWM") - before
    print(f"server peak memory growth while streaming {ENTRIES} entries: {growth} KiB")
    assert count == ENTRIES
    assert growth < MAX_GROWTH_KIB, f"server peak memory grew by {growth} KiB"
