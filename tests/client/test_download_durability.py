"""Downloads flush a whole batch at once, and a crash never gets a torn file committed.

A clone writes its files without one flush each and records them in the index
only after flushing the batch (one ``syncfs``; a large file, as here, is flushed by its
own ``fdatasync`` as it is written where it goes past the page cache, else once all are
written). A client killed before that leaves the written
files ``landing`` in the index; if the machine then lost power, one of them
could be empty or torn. The test kills the real ``robosync clone`` with
SIGKILL half way, truncates a file it had written (what a power loss may
leave), and checks that the next push re-verifies that file and does not
commit it, and that a pull writes it again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from robosync.client.index import DIRNAME
from robosync.client.scan import is_temp_name
from tests.client.conftest import Robot, folder_digests, project_name

pytestmark = pytest.mark.parametrize("backend_env", ["embedded"], indirect=True)

FILES = 24
SIZE = 256 * 1024


def _written(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(
        p for p in root.iterdir() if p.is_file() and p.name != DIRNAME and not is_temp_name(p.name)
    )


def test_torn_file_of_a_killed_clone_is_never_committed(fleet: Callable[[str], Robot]) -> None:
    a, b = fleet("cam-a"), fleet("cam-b")
    name = project_name()
    a.root.mkdir(parents=True)
    for i in range(FILES):
        (a.root / f"img{i:03}.jpg").write_bytes(os.urandom(SIZE))
    a.cli("init", name, str(a.root))
    a.cli("push")

    b.home.mkdir(parents=True, exist_ok=True)
    clone = subprocess.Popen(
        [sys.executable, "-m", "robosync.client.cli", "clone", name, str(b.root)]
        + ["--bwlimit", "1M", "--jobs", "2"],
        cwd=b.home,
        env=b.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while len(_written(b.root)) < 4 and time.monotonic() < deadline:
            assert clone.poll() is None, "the clone ended before it could be killed"
            time.sleep(0.05)
        clone.send_signal(signal.SIGKILL)
    finally:
        clone.wait(timeout=30)
    written = _written(b.root)
    assert 4 <= len(written) < FILES
    torn = written[0]
    with open(torn, "r+b") as f:  # what a power loss may leave of an unflushed file
        f.truncate(SIZE // 3)

    pushed = b.cli("push", "--json", check=False)
    assert pushed.returncode in (0, 3), pushed.stderr
    answer = json.loads(pushed.stdout)
    assert not answer.get("committed"), answer
    left_out = {item["path"] for item in answer.get("left_out", [])}
    assert torn.name in left_out, answer
    versions = json.loads(b.cli("log", "--json").stdout)
    assert max(v["number"] for v in versions) == 1  # still robot A's version

    b.cli("pull")
    on_disk = {p: d for p, d in folder_digests(b.root).items() if not is_temp_name(p)}
    assert on_disk == folder_digests(a.root)
    again = json.loads(b.cli("push", "--json").stdout)
    assert not again.get("committed")
