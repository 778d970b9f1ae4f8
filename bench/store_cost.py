"""The store's own CPU per request: PUT with a signed checksum or without, HEAD, GET two ways.

What a small-file upload costs the store bounds how fast any tool can upload many
small files through it: robosync PUTs each blob with ``x-amz-checksum-sha256``
signed into the URL, then the server HEADs it as the proof; the peers PUT only.
This starts a SeaweedFS, sends ``--requests`` of each kind as presigned URLs over
kept-alive ``http.client`` connections (``--threads`` at a time, so the client
side costs as little as it can), and prints the store's CPU milliseconds per
request (``/proc/PID/stat``) as min / median / max over ``--repeat`` rounds::

    python bench/store_cost.py --requests 2000 --size 32768 --repeat 3

``bench/store_profile.py`` says where in the store that CPU goes.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import spread  # noqa: E402
from bench.push_cpu import process_cpu  # noqa: E402
from tests.fixtures.seaweedfs import SeaweedFS  # noqa: E402

from robosync.server.store.sigv4 import Credentials, SigV4Signer  # noqa: E402


class Prober:
    """Presigned requests to one bucket, each thread on its own kept-alive connection."""

    def __init__(self, s3: SeaweedFS, size: int, count: int) -> None:
        self.bucket = s3.new_bucket()
        where = urlsplit(s3.endpoint)
        self.host, self.port = where.hostname or "", where.port or 80
        self.netloc = where.netloc
        self.creds = Credentials(s3.access_key, s3.secret_key, None)
        self.signer = SigV4Signer(s3.region)
        self.bodies = [os.urandom(size) for _ in range(count)]
        self._local = threading.local()

    def _send(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
        in_headers: bool = False,
    ) -> None:
        """Send one request signed in its query (presigned), or in its headers."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(self.host, self.port)
        signed = {k: v for k, v in headers.items() if k != "Content-Length"}
        if in_headers:
            headers = self.signer.sign_headers(self.creds, method, self.netloc, path, [], signed)
            conn.request(method, path, body=body, headers=headers)
        else:
            query = self.signer.presign(self.creds, method, self.netloc, path, [], signed, 3600)
            conn.request(method, f"{path}?{query}", body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{method} {path}: {resp.status}")

    def put_checked(self, i: int) -> None:
        """A PUT whose body must hash to the signed ``x-amz-checksum-sha256``."""
        body = self.bodies[i]
        checksum = base64.b64encode(hashlib.sha256(body).digest()).decode()
        headers = {"x-amz-checksum-sha256": checksum, "Content-Length": str(len(body))}
        self._send("PUT", f"/{self.bucket}/blobs/{i:07}", body, headers)

    def put_plain(self, i: int) -> None:
        """A PUT with no checksum (what the peer tools send)."""
        body = self.bodies[i]
        self._send("PUT", f"/{self.bucket}/plain/{i:07}", body, {"Content-Length": str(len(body))})

    def head(self, i: int) -> None:
        """A HEAD of a blob the checked PUT stored (the server's proof at completion)."""
        self._send("HEAD", f"/{self.bucket}/blobs/{i:07}", None, {})

    def get_presigned(self, i: int) -> None:
        """A GET of a stored blob by a presigned URL (what a robot's clone sends)."""
        self._send("GET", f"/{self.bucket}/blobs/{i:07}", None, {})

    def get_signed(self, i: int) -> None:
        """A GET of a stored blob signed in its headers (what the peer tools send)."""
        self._send("GET", f"/{self.bucket}/blobs/{i:07}", None, {}, in_headers=True)


def store_ms_per_request(pid: int, fn: Callable[[int], None], count: int, threads: int) -> float:
    """Run ``fn`` on ``range(count)``: the store's CPU milliseconds per call."""
    before = process_cpu(pid)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(fn, range(count)))
    return (process_cpu(pid) - before) * 1000 / count


def main() -> None:
    """Measure each kind of request in rounds and print one table row per kind."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000, help="requests of each kind per round")
    ap.add_argument("--size", type=int, default=32 * 1024, help="bytes per PUT")
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    results: dict[str, list[float]] = {}
    with SeaweedFS() as s3:
        assert s3.pid is not None
        for _ in range(a.repeat):
            probe = Prober(s3, a.size, a.requests)
            for name, fn in (
                ("PUT, signed checksum", probe.put_checked),
                ("PUT, no checksum", probe.put_plain),
                ("HEAD", probe.head),
                ("GET, presigned", probe.get_presigned),
                ("GET, signed in headers", probe.get_signed),
            ):
                ms = store_ms_per_request(s3.pid, fn, a.requests, a.threads)
                results.setdefault(name, []).append(ms)
                print(f"{name}: {ms:.2f} ms", file=sys.stderr)
    print(f"\n{a.requests} requests of {a.size} bytes per round, {a.repeat} rounds\n")
    print("| request | store CPU ms per request (min / median / max) |")
    print("|---|---|")
    for name, runs in results.items():
        print(f"| {name} | {spread(runs)} |")


if __name__ == "__main__":
    main()
