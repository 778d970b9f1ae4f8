"""Measure ``POST /v1/uploads/complete`` for many small blobs, embedded and on PostgreSQL + S3.

Starts real ``robosync-server serve`` processes (SQLite + local store, and
PostgreSQL + SeaweedFS), uploads ``--blobs`` fresh blobs of ``--size`` bytes
with raw HTTP (plan in batches of 1000, PUTs 16 at a time), then completes
them in batches of ``--batch`` (what the client sends) one after another and
prints min / median / max of the per-blob completion time over the batches,
and the total completion time.

    python bench/upload_complete.py --blobs 2000 --size 2048
    PYTHONPATH=/path/to/other/checkout/src python bench/upload_complete.py  # another version
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fixtures.postgres import fresh_database  # noqa: E402
from tests.fixtures.seaweedfs import SeaweedFS  # noqa: E402
from tests.fixtures.server import ServerProcess  # noqa: E402
from tests.server.robot import Robot  # noqa: E402

from robosync.digest import BlobDigest, digest_bytes  # noqa: E402

NO_LIMITS = {"ROBOSYNC_RATE_LIMIT": "", "ROBOSYNC_MAX_INFLIGHT_UPLOADS": "0"}


def _upload_parts(robot: Robot, blobs: list[tuple[bytes, BlobDigest]]) -> list[dict[str, Any]]:
    """Plan and PUT every blob; the completion items."""
    items: list[dict[str, Any]] = []
    with ThreadPoolExecutor(16) as pool:
        for i in range(0, len(blobs), 1000):
            chunk = blobs[i : i + 1000]
            plans = robot.plan([b for _, b in chunk])
            for plan in plans:
                assert plan["status"] == "upload", plan
            futures = [
                pool.submit(robot.put_parts, plan, data)
                for (data, _), plan in zip(chunk, plans, strict=True)
            ]
            for plan, fut in zip(plans, futures, strict=True):
                parts = fut.result()
                items.append(
                    {
                        "digest": plan["digest"],
                        "upload_id": plan["upload_id"],
                        "parts": parts if plan["upload_id"] else [],
                    }
                )
    return items


def measure(server: ServerProcess, blobs: int, size: int, batch: int) -> tuple[list[float], float]:
    """Per-blob ms of each completion batch, and the total completion seconds."""
    robot = Robot(server.url, server.make_token("bench", "r-" + os.urandom(3).hex()))
    try:
        data = [os.urandom(size) for _ in range(blobs)]
        items = _upload_parts(robot, [(d, digest_bytes(d)) for d in data])
        per_blob: list[float] = []
        total = time.perf_counter()
        for i in range(0, len(items), batch):
            chunk = items[i : i + batch]
            start = time.perf_counter()
            r = robot.http.post("/v1/uploads/complete", json={"items": chunk})
            elapsed = time.perf_counter() - start
            assert r.status_code == 200, r.text
            assert all(x["status"] == "present" for x in r.json()["items"]), r.text[:500]
            per_blob.append(elapsed * 1000 / len(chunk))
        return per_blob, time.perf_counter() - total
    finally:
        robot.close()


def _row(name: str, per_blob: list[float], total: float) -> str:
    return (
        f"| {name} | {min(per_blob):.2f} | {statistics.median(per_blob):.2f} "
        f"| {max(per_blob):.2f} | {total:.1f} s |"
    )


def main() -> None:
    """Run the measurement on both backends and print a table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blobs", type=int, default=2000)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--backend", choices=["embedded", "pg-s3", "both"], default="both")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="robosync-bench-") as tmp:
        if args.backend in ("embedded", "both"):
            server = ServerProcess(Path(tmp) / "embedded", NO_LIMITS).start()
            try:
                rows.append(_row("embedded", *measure(server, args.blobs, args.size, args.batch)))
                print(rows[-1], file=sys.stderr, flush=True)
            finally:
                server.stop()
        if args.backend in ("pg-s3", "both"):
            (Path(tmp) / "weed").mkdir()
            with SeaweedFS(Path(tmp) / "weed") as s3, fresh_database("robosync_bench") as url:
                env = {
                    **NO_LIMITS,
                    "ROBOSYNC_DATABASE_URL": url,
                    **s3.server_env(),
                }
                server = ServerProcess(Path(tmp) / "pg-s3", env).start()
                try:
                    rows.append(_row("pg-s3", *measure(server, args.blobs, args.size, args.batch)))
                finally:
                    server.stop()
    print(f"{args.blobs} blobs x {args.size} B, completed {args.batch} per request")
    print("| backend | min ms/blob | median ms/blob | max ms/blob | total completion |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
