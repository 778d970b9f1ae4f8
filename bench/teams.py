"""Teams benchmarks, printed as tables.

1. What an access decision costs: latency of ``GET /v1/projects/{id}`` and
   of a small manifest, asked by the owner (decided from the project row) and
   by a reader (one more lookup in ``members``), min / median / max over
   ``--requests`` calls each.
2. Dedup that follows access: the same ``--images`` images pushed into a
   project of their own by a colleague (a reader of the project holding them)
   and by a stranger; bytes sent to the store and push wall time.

Runs against a real ``robosync-server`` (embedded backend). Run::

    python bench/teams.py [--requests 300] [--images 20] [--image-kib 1024]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.server import ServerProcess  # noqa: E402
from tests.server.robot import Robot, put  # noqa: E402

from robosync.client import ClientSettings, Project  # noqa: E402


def _timed(call: object, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        r = call()  # type: ignore[operator]
        out.append((time.perf_counter() - start) * 1000)
        assert r.status_code == 200, r.text
    return out


def _row(label: str, ms: list[float]) -> str:
    return f"{label:38} {min(ms):8.2f} {statistics.median(ms):8.2f} {max(ms):8.2f}"


def access_cost(server: ServerProcess, n: int) -> None:
    """Owner vs reader latency on two read routes."""
    owner = Robot(server.url, server.make_token("owner", "r"))
    reader_name = "reader"
    reader = Robot(server.url, server.make_token(reader_name, "r"))
    project = owner.new_project()
    blob = owner.upload(os.urandom(1000))
    assert owner.commit(project, 0, [put("a.png", blob)]).status_code == 201
    shared = owner.http.put(f"/v1/projects/{project}/members/{reader_name}", json={"role": "read"})
    assert shared.status_code == 200
    print(f"\n1. access decision, {n} requests each (ms)")
    print(f"{'route / caller':38} {'min':>8} {'median':>8} {'max':>8}")
    for template in ("/v1/projects/{id}", "/v1/projects/{id}/manifest"):
        route = template.replace("{id}", str(project))
        for label, robot in (("owner", owner), ("reader", reader)):
            _timed(lambda r=robot, u=route: r.http.get(u), 20)  # warm up
            ms = _timed(lambda r=robot, u=route: r.http.get(u), n)
            print(_row(f"{template} {label}", ms))


def shared_dedup(server: ServerProcess, images: int, kib: int, home: Path) -> None:
    """Bytes a colleague and a stranger send for the same images."""
    tokens = {u: server.make_token(u, "r") for u in ("alice", "colleague", "stranger")}

    def settings(user: str) -> ClientSettings:
        return ClientSettings(
            config_dir=home / user, server=server.url, token=tokens[user], robot=user
        )

    data = {f"img{i}.png": os.urandom(kib * 1024) for i in range(images)}

    def push(user: str) -> tuple[int, float]:
        root = home / f"{user}-{uuid.uuid4().hex[:6]}"
        root.mkdir()
        with Project.init(f"p-{uuid.uuid4().hex[:8]}", root, settings=settings(user)) as p:
            for rel, b in data.items():
                p.save_image(rel, b)
            start = time.perf_counter()
            result = p.push()
            return result.bytes_sent, time.perf_counter() - start

    push("alice")
    alice = Robot(server.url, tokens["alice"])
    (first,) = alice.http.get("/v1/projects").json()["projects"]
    r = alice.http.put(f"/v1/projects/{first['id']}/members/colleague", json={"role": "read"})
    assert r.status_code == 200
    print(f"\n2. the same {images} images of {kib} KiB pushed by")
    print(f"{'pusher':12} {'bytes sent':>14} {'push s':>8}")
    for user in ("colleague", "stranger"):
        sent, seconds = push(user)
        print(f"{user:12} {sent:14d} {seconds:8.2f}")


def main() -> None:
    """Run both benchmarks on a fresh embedded server."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--image-kib", type=int, default=1024)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp) / "server", {"ROBOSYNC_RATE_LIMIT": ""}).start()
        try:
            access_cost(server, args.requests)
            shared_dedup(server, args.images, args.image_kib, Path(tmp))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
