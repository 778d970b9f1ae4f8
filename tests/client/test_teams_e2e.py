"""Teams through the ``robosync`` command: roles, shared dedup, rename, trash, quotas, audit.

Each test makes its own users on one server per backend (with a byte-counting
proxy in front of its blob store).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.client.conftest import ProxiedServer, Robot, folder_digests, project_name, sha
from tests.fixtures.server import ServerProcess, server_command


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


def admin(server: ServerProcess, *args: str, **env: str) -> str:
    """Run ``robosync-server ARGS`` against the server's data (extra env); its stdout."""
    out = subprocess.run(
        [*server_command(), *args],
        env={**server.env, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_delete_goes_to_the_trash_restores_and_gc_keeps_blobs_others_use(
    proxied: ProxiedServer, tmp_path: Path
) -> None:
    alice = new_user(proxied, tmp_path, "alice")
    shared, own = os.urandom(5000), os.urandom(6000)
    doomed, kept = project_name(), project_name()
    a, k = alice.robot("a"), alice.robot("k")
    a.cli("init", doomed)
    pushed(a, {"shared.png": shared, "own.png": own})
    k.cli("init", kept)
    pushed(k, {"shared.png": shared})

    a.cli("delete-project", doomed)
    assert "no project" in a.cli("pull", check=False).stderr
    trash = json.loads(a.cli("trash", "--json").stdout)
    assert [p["name"] for p in trash] == [doomed]
    # Within the trash period gc leaves it alone, and one command brings it back.
    assert "purged 0" in admin(proxied.server, "gc", "--grace", "0s")
    a.cli("undelete", doomed)
    assert json.loads(a.cli("pull", "--json").stdout)["version"] == 1

    a.cli("delete-project", f"{alice.name}/{doomed}")
    report = admin(proxied.server, "gc", "--grace", "0s", ROBOSYNC_TRASH_DAYS="0")
    # This project, and any other test's trashed project on the shared server.
    purged = re.search(r"purged (\d+) project", report)
    assert purged is not None and int(purged.group(1)) >= 1, report
    assert "no project" in a.cli("undelete", doomed, check=False).stderr
    # The blob the purged project shared with another is still there, byte for byte.
    c = alice.robot("c")
    c.cli("clone", kept, ".")
    assert folder_digests(c.root) == {"shared.png": sha(shared)}


def test_a_push_over_the_quota_is_refused_before_any_byte_is_sent(
    proxied: ProxiedServer, tmp_path: Path
) -> None:
    alice, bob = new_user(proxied, tmp_path, "alice"), new_user(proxied, tmp_path, "bob")
    admin(proxied.server, "users", "quota", alice.name, "5000")
    a = alice.robot("a")
    a.cli("init", project_name())
    assert pushed(a, {"one.png": os.urandom(3000)})["committed"]
    a.cli("share", bob.name, "--role", "write")
    proxied.proxy.reset()
    (a.root / "two.png").write_bytes(os.urandom(3000))
    logged = len(proxied.server.log_path.read_bytes())
    refused = a.cli("push", check=False)
    assert refused.returncode == 1
    assert "quota is 5000 bytes and 3000 are used" in refused.stderr
    assert proxied.proxy.puts() == [], "bytes were uploaded before the quota refusal"
    # Refused by the push's first upload plan, which carries the check: no round trip
    # of its own.
    lines = proxied.server.log_path.read_bytes()[logged:].decode().splitlines()
    requests = [json.loads(line) for line in lines if '"robosync.request"' in line]
    asked = [(r["method"], r["route"], r["status"]) for r in requests]
    assert asked == [("POST", "/v1/uploads", 413)], asked
    # A writer's push counts against the owner's quota too.
    b = bob.robot("b")
    b.cli("clone", f"{alice.name}/{_name(a)}", ".")
    (b.root / "big.png").write_bytes(os.urandom(2500))
    assert "quota" in b.cli("push", check=False).stderr
    assert proxied.proxy.puts() == []
    # A push that frees space still goes through.
    (a.root / "two.png").unlink()
    (a.root / "one.png").unlink()
    assert pushed(a, {})["committed"]


def _name(robot: Robot) -> str:
    return str(json.loads((robot.root / ".robosync" / "config.json").read_text())["project_name"])


def test_every_action_leaves_an_audit_row_and_a_log_line(
    proxied: ProxiedServer, tmp_path: Path
) -> None:
    alice, bob = new_user(proxied, tmp_path, "alice"), new_user(proxied, tmp_path, "bob")
    name, new = project_name(), project_name()
    a = alice.robot("a")
    a.cli("init", name)
    pushed(a, {"one.png": os.urandom(1000)})
    a.cli("share", bob.name, "--role", "read")
    a.cli("unshare", bob.name)
    a.cli("rename-project", name, new)
    a.cli("delete-project", new)
    a.cli("undelete", new)
    rows = json.loads(admin(proxied.server, "audit", "--project", f"{alice.name}/{new}", "--json"))
    assert [r["action"] for r in rows] == [
        "commit",
        "share",
        "unshare",
        "rename",
        "delete",
        "restore",
    ]
    assert {(r["user"], r["actor"], r["address"]) for r in rows} == {(alice.name, "r", "127.0.0.1")}
    assert rows[1]["details"]["user"] == bob.name and rows[1]["details"]["role"] == "read"
    assert rows[3]["details"] == {"old": name, "new": new}
    proxied.server.run_cli("revoke-token", bob.name, "--robot", "r")
    tokens = json.loads(admin(proxied.server, "audit", "--since", "1h", "--json"))
    mine = [(r["action"], r["details"]) for r in tokens if r["details"].get("user") == bob.name]
    assert ("token_create", {"user": bob.name, "robot": "r"}) in mine
    assert ("token_revoke", {"user": bob.name, "robot": "r"}) in mine
    logged = [
        json.loads(line)
        for line in proxied.server.log_path.read_text().splitlines()
        if '"robosync.audit"' in line
    ]
    assert any(
        x["audit"]["action"] == "rename" and x["audit"]["details"]["new"] == new for x in logged
    )


def test_admin_lists_and_usage_show_the_fleet(proxied: ProxiedServer, tmp_path: Path) -> None:
    alice = new_user(proxied, tmp_path, "alice")
    data = os.urandom(4000)
    a, b = alice.robot("a"), alice.robot("b")
    a.cli("init", project_name())
    pushed(a, {"x.png": data})
    b.cli("init", project_name())
    pushed(b, {"x.png": data, "y.png": data})
    users = json.loads(admin(proxied.server, "users", "list", "--json"))
    assert {"user": alice.name, "projects": 2, "logical_bytes": 12000, "tokens": 1}.items() <= next(
        u for u in users if u["user"] == alice.name
    ).items()
    (token,) = json.loads(admin(proxied.server, "tokens", "list", "--user", alice.name, "--json"))
    assert token["robot"] == "r" and token["last_push_at"] and token["last_used_at"]
    projects = json.loads(admin(proxied.server, "projects", "list", "--user", alice.name, "--json"))
    assert sorted((p["images"], p["logical_bytes"], p["head_version"]) for p in projects) == [
        (1, 4000, 1),
        (2, 8000, 1),
    ]
    assert all(p["last_push_at"] and p["owner"] == alice.name for p in projects)
    usage = json.loads(admin(proxied.server, "usage", "--json"))
    mine = next(u for u in usage["users"] if u["user"] == alice.name)
    assert (mine["logical_bytes"], mine["stored_bytes"], mine["dedup_ratio"]) == (12000, 4000, 3.0)
    assert usage["total"]["stored_bytes"] >= 4000 and usage["total"]["blobs"] >= 1
    assert "logical_bytes" in admin(proxied.server, "usage")
    metrics = httpx.get(proxied.server.url + "/metrics").text
    assert "robosync_blobs_stored_bytes " in metrics
    assert "robosync_logical_bytes " in metrics
    assert f'robosync_robot_last_push_age_seconds{{robot="r",user="{alice.name}"}}' in metrics
