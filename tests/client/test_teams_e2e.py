"""Teams through the ``robosync`` command: roles, shared dedup, rename, trash, quotas, audit.

Each test makes its own users on one server per backend (with a byte-counting
proxy in front of its blob store).
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.client.conftest import ProxiedServer, Robot, folder_digests, project_name, sha
from tests.fixtures.server import ServerProcess


@dataclass
class User:
    """A user of the server and a way to make robots (folders) of theirs."""

    name: str
    token: str
    server: ServerProcess
    home: Path

    def robot(self, label: str) -> Robot:
        """A robot of this user with its own folder."""
        return Robot(f"{self.name}-{label}", self.server.url, self.token, self.home / label)


def new_user(proxied: ProxiedServer, tmp_path: Path, role: str) -> User:
    """A fresh user with one token."""
    name = f"{role}-{uuid.uuid4().hex[:6]}"
    token = proxied.server.make_token(name, "r")
    return User(name, token, proxied.server, tmp_path / name)


def pushed(robot: Robot, files: dict[str, bytes], *args: str) -> dict[str, object]:
    """Write ``files`` into the robot's folder and push; the push's JSON result."""
    for rel, data in files.items():
        (robot.root / rel).write_bytes(data)
    return dict(json.loads(robot.cli("push", "--json", *args).stdout))


def test_reader_clones_but_cannot_push_writer_pushes_admin_shares(
    proxied: ProxiedServer, tmp_path: Path
) -> None:
    alice, bob, carol, dave = (
        new_user(proxied, tmp_path, r) for r in ("alice", "bob", "carol", "dave")
    )
    name = project_name()
    a = alice.robot("a")
    a.cli("init", name)
    pushed(a, {"one.png": os.urandom(3000)})
    assert (
        "no project" in bob.robot("b").cli("clone", f"{alice.name}/{name}", "x", check=False).stderr
    )
    a.cli("share", bob.name, "--role", "read")
    a.cli("share", carol.name, "--role", "write")
    a.cli("share", dave.name, "--role", "admin")

    reader = bob.robot("b")
    reader.cli("clone", f"{alice.name}/{name}", ".")
    assert folder_digests(reader.root) == folder_digests(a.root)
    listed = json.loads(reader.cli("projects", "--json").stdout)
    assert [(p["owner"], p["name"], p["role"]) for p in listed] == [(alice.name, name, "read")]
    (reader.root / "two.png").write_bytes(os.urandom(100))
    refused = reader.cli("push", check=False)
    assert refused.returncode == 1
    assert f"you have read access to project {alice.name}/{name}" in refused.stderr
    assert "--role write" in refused.stderr

    writer = carol.robot("c")
    writer.cli("clone", f"{alice.name}/{name}", ".")
    three = os.urandom(2000)
    assert pushed(writer, {"three.png": three})["committed"]
    a.cli("pull")
    assert sha((a.root / "three.png").read_bytes()) == sha(three)
    assert (
        "you have write access"
        in writer.cli("share", bob.name, "--role", "admin", check=False).stderr
    )

    admin = dave.robot("d")
    admin.cli("share", bob.name, "--role", "write", "--project", f"{alice.name}/{name}")
    assert pushed(reader, {})["committed"]  # bob's pending two.png goes in now
    members = json.loads(a.cli("members", "--json").stdout)
    assert [(m["user"], m["role"], m["owner"]) for m in members] == [
        (alice.name, "admin", True),
        (bob.name, "write", False),
        (carol.name, "write", False),
        (dave.name, "admin", False),
    ]
    admin.cli("unshare", carol.name, "--project", f"{alice.name}/{name}")
    gone = writer.cli("pull", check=False)
    assert gone.returncode == 1 and "no project" in gone.stderr


def test_a_colleagues_duplicate_costs_no_upload_a_strangers_does(
    proxied: ProxiedServer, tmp_path: Path
) -> None:
    alice, bob, eve = (new_user(proxied, tmp_path, r) for r in ("alice", "bob", "eve"))
    data = os.urandom(300_000)
    a = alice.robot("a")
    a.cli("init", project_name())
    pushed(a, {"scan.png": data})
    a.cli("share", bob.name, "--role", "read")

    b = bob.robot("b")
    b.cli("init", project_name())
    proxied.proxy.reset()
    result = pushed(b, {"copy.png": data})
    assert result["committed"] and result["already_present"] == 1
    assert result["bytes_sent"] == 0
    assert proxied.proxy.puts() == [], "bytes went to the store for a colleague's duplicate"

    e = eve.robot("e")
    e.cli("init", project_name())
    proxied.proxy.reset()
    result = pushed(e, {"copy.png": data})
    assert result["committed"] and result["bytes_sent"] == len(data)
    assert sum(x.body_bytes for x in proxied.proxy.puts(accepted=True)) == len(data)


def test_a_live_clone_keeps_working_after_a_rename(proxied: ProxiedServer, tmp_path: Path) -> None:
    alice = new_user(proxied, tmp_path, "alice")
    name, new = project_name(), project_name()
    a, b = alice.robot("a"), alice.robot("b")
    a.cli("init", name)
    pushed(a, {"one.png": os.urandom(1000)})
    b.cli("clone", name, ".")
    a.cli("rename-project", name, new)
    two = os.urandom(1500)
    assert pushed(b, {"two.png": two})["committed"]
    a.cli("pull")
    assert sha((a.root / "two.png").read_bytes()) == sha(two)
    assert f"project {new}," in a.cli("status").stdout
    listed = json.loads(a.cli("projects", "--json").stdout)
    assert [p["name"] for p in listed] == [new]
