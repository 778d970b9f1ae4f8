"""One command per folder: a second one refuses clearly, a dead one never blocks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from robosync.client.lock import ProjectLocked, folder_lock


def test_second_lock_in_another_process_refuses(tmp_path: Path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path;"
            "from robosync.client.lock import folder_lock\n"
            f"with folder_lock(Path({str(tmp_path)!r})):\n"
            "    print('locked', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with (
            pytest.raises(ProjectLocked, match="another robosync command is running"),
            folder_lock(tmp_path),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()
    with folder_lock(tmp_path):  # released by the kernel when the holder died
        pass


def test_lock_is_free_again_after_the_block(tmp_path: Path):
    with folder_lock(tmp_path):
        pass
    with folder_lock(tmp_path):
        pass
