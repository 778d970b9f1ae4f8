"""``robosync ls``, ``get`` and ``diff`` (issue 11, section 3) against a real server."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from robosync.digest import digest_bytes
from tests.client.clirobot import CliFleet, CliRobot


def _history(fleet: CliFleet) -> tuple[CliRobot, str, bytes]:
    """A project with v1 {cam/a, cam/b, c}, v2 {cam/a changed, c deleted, d added}."""
    r = fleet.robot("r1")
    tag = uuid.uuid4().hex.encode()
    r.write("cam/a.png", tag + b"a1")
    r.write("cam/b.png", tag + b"bb")
    r.write("c.png", tag + b"c")
    name = f"h-{uuid.uuid4().hex[:10]}"
    r.run("init", name)
    r.run("push")
    r.write("cam/a.png", tag + b"a2-longer")
    (r.root / "c.png").unlink()
    r.write("d.png", tag + b"d")
    r.run("push")
    return r, name, tag


def test_ls_lists_any_version_with_sizes_and_digests_under_a_path(cli_fleet: CliFleet):
    r, _, tag = _history(cli_fleet)
    head = r.json("ls")
    assert head["version"] == 2
    assert [(f["path"], f["size"]) for f in head["files"]] == [
        ("cam/a.png", len(tag) + 9),
        ("cam/b.png", len(tag) + 2),
        ("d.png", len(tag) + 1),
    ]
    v1 = r.run("ls", "--version", "1", "--long", "cam", "c.png").stdout.splitlines()
    assert v1[-1].startswith("v1: 3 files, ")
    rows = [line.split() for line in v1[:-1]]
    assert [row[2] for row in rows] == ["c.png", "cam/a.png", "cam/b.png"]
    assert rows[1][:2] == [str(len(tag) + 2), digest_bytes(tag + b"a1").digest]
    in_cam = r.run("ls", "--version", "1", ".", cwd=r.root / "cam").stdout.splitlines()
    assert [line.split()[-1] for line in in_cam[:-1]] == ["cam/a.png", "cam/b.png"]
    missing = r.run("ls", "nope", check=False)
    assert missing.returncode == 1 and "nothing under nope in version 2" in missing.stderr


def test_get_downloads_one_file_of_any_version_without_a_clone(cli_fleet: CliFleet, tmp_path: Path):
    r, name, tag = _history(cli_fleet)
    elsewhere = tmp_path / "nowhere"
    elsewhere.mkdir()
    out = r.json("get", name, "cam/a.png", "--version", "1", "-o", "old-a.png", cwd=elsewhere)
    assert out["version"] == 1 and out["written"] == str(elsewhere / "old-a.png")
    assert (elsewhere / "old-a.png").read_bytes() == tag + b"a1"
    r.run("get", name, "cam/a.png", cwd=elsewhere)  # head, named after the file
    assert (elsewhere / "a.png").read_bytes() == tag + b"a2-longer"
    piped = r.run("get", name, "c.png", "--version", "1", "-o", "-", cwd=elsewhere)
    assert piped.stdout == (tag + b"c").decode()
    assert sorted(p.name for p in elsewhere.iterdir()) == ["a.png", "old-a.png"]
    gone = r.run("get", name, "c.png", cwd=elsewhere, check=False)
    assert gone.returncode == 1 and "c.png is not in version 2" in gone.stderr


def test_diff_between_versions_and_between_head_and_the_folder(cli_fleet: CliFleet):
    r, _, tag = _history(cli_fleet)
    d = r.json("diff", "1", "2")
    assert (d["old"], d["new"]) == ("v1", "v2")
    assert [p for p, _ in d["added"]] == ["d.png"]
    assert [p for p, _ in d["modified"]] == ["cam/a.png"]
    assert [p for p, _ in d["deleted"]] == ["c.png"]
    text = r.run("diff", "1", "2").stdout.splitlines()
    assert text == ["- c.png", "~ cam/a.png", "+ d.png", "v1 -> v2: +1 ~1 -1 files"]
    assert r.run("diff").stdout.strip() == "v2 -> folder: +0 ~0 -0 files"
    r.write("new.png", tag + b"new")
    (r.root / "cam" / "b.png").unlink()
    local = r.json("diff")
    assert [p for p, _ in local["added"]] == ["new.png"]
    assert [p for p, _ in local["deleted"]] == ["cam/b.png"]
    since_v1 = r.json("diff", "1")
    assert [p for p, _ in since_v1["added"]] == ["d.png", "new.png"]
    assert json.loads(r.run("--json", "status").stdout)["added"] == ["new.png"]
