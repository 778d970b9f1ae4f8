"""The robot's disk fills up during a pull: a clear error, no torn file, a later pull completes."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from robosync.client.scan import TEMP_PREFIX
from tests.client.conftest import folder_digests, project_name
from tests.faults.conftest import Lab, Site, write_images
from tests.fixtures.server import ServerProcess
from tests.limits.availability import service_missing


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (we run as root in the test machines); unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        service_missing(f"cannot mount a small tmpfs to fill (needs root): {made.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_during_pull_leaves_no_torn_file_and_the_next_pull_completes(
    lab: Lab, site_on: Callable[[ServerProcess], Site], small_disk: Path
) -> None:
    site = site_on(lab.server({}))
    writer = site.robot("writer")
    write_images(writer.root, 12, 400 * 1024)
    name = project_name()
    writer.cli("init", name)
    writer.cli("push")
    expected = folder_digests(writer.root)

    robot = site.robot("small")
    robot.home.mkdir(parents=True)
    failed = robot.cli("clone", name, str(small_disk), check=False)
    assert failed.returncode == 1
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and "the disk is full" in lines[0], failed.stderr
    assert "free some space and run the command again" in lines[0]
    assert not [p for p in small_disk.rglob("*") if p.name.startswith(TEMP_PREFIX)]
    got = folder_digests(small_disk)
    assert 0 < len(got) < len(expected)
    assert all(expected[p] == got[p] for p in got), "a file on disk is not what was pushed"

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    robot.cli("-C", str(small_disk), "pull")
    assert folder_digests(small_disk) == expected
    site.assert_clone_matches(name, expected)
