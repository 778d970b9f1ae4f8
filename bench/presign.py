"""The API's CPU for presigned URLs: one by one against together, for GETs and PUTs.

A clone asks for a link per blob (10,000 for 10,000 small images); the URLs of one
answer differ only by their path, so the date, the canonical query and the headers'
part of the signature are made once (``SigV4Signer.presign_many``). An upload plan
asks for a PUT per small blob; those differ also by the values of their signed
headers (checksum, length), so only the date and the query are shared
(``SigV4Signer.presign_each``).

    python bench/presign.py [--count 10000] [--runs 5]

Prints min / median / max milliseconds per ``--count`` URLs for each way, measured
alternately in one process.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import spread  # noqa: E402

from robosync.server.store.sigv4 import Credentials, SigV4Signer  # noqa: E402


def main() -> None:
    """Time both ways ``--runs`` times and print their spreads."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    signer, creds = SigV4Signer("us-east-1"), Credentials("AKID", os.urandom(20).hex())
    paths = [f"/bucket/blobs/{os.urandom(32).hex()}" for _ in range(a.count)]
    host = "127.0.0.1:8333"
    puts = [
        (path, {"x-amz-checksum-sha256": os.urandom(32).hex()[:44], "content-length": "32768"})
        for path in paths
    ]
    times: dict[str, list[float]] = {}

    def timed(name: str, work: Callable[[], object]) -> None:
        t = time.perf_counter()
        work()
        times.setdefault(name, []).append((time.perf_counter() - t) * 1000)

    for _ in range(a.runs):
        timed(
            "GET one by one",
            lambda: [signer.presign(creds, "GET", host, p, [], {}, 3600) for p in paths],
        )
        timed("GET together", lambda: signer.presign_many(creds, "GET", host, paths, [], {}, 3600))
        timed(
            "PUT one by one",
            lambda: [signer.presign(creds, "PUT", host, p, [], h, 3600) for p, h in puts],
        )
        timed("PUT together", lambda: signer.presign_each(creds, "PUT", host, puts, [], 3600))
    print(f"ms per {a.count} presigned URLs, min / median / max of {a.runs}")
    for name, runs in times.items():
        print(f"{name:15} {spread(runs, 1)}")


if __name__ == "__main__":
    main()
