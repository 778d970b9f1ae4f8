"""The API's CPU for download links: presigning URLs one by one against together.

A clone asks for a link per blob (10,000 for 10,000 small images); the URLs of one
answer differ only by their path, so the date, the canonical query and the headers'
part of the signature are made once (``SigV4Signer.presign_many``).

    python bench/presign.py [--count 10000] [--runs 5]

Prints min / median / max milliseconds per ``--count`` URLs for each way, measured
alternately in one process.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
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
    one_by_one: list[float] = []
    together: list[float] = []
    for _ in range(a.runs):
        t = time.perf_counter()
        for path in paths:
            signer.presign(creds, "GET", host, path, [], {}, 3600)
        one_by_one.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        signer.presign_many(creds, "GET", host, paths, [], {}, 3600)
        together.append((time.perf_counter() - t) * 1000)
    print(f"ms per {a.count} presigned GET URLs, min / median / max of {a.runs}")
    print(f"one by one {spread(one_by_one, 1)}")
    print(f"together   {spread(together, 1)}")


if __name__ == "__main__":
    main()
