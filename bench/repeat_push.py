"""Whether a push costs the server more when it already holds earlier pushes.

A server that has taken a week of pushes holds their finished upload sessions,
blobs and possessions; a push must not cost more because of them. This starts
one SeaweedFS and one server (SQLite) per installation, then pushes ``--pushes``
fresh projects of ``--files`` random images each into every server in turn, and
prints per push the wall time and the CPU seconds of the client, the API process
and the store.

``--also BIN_DIR`` adds the server of another installation (e.g. an earlier
commit in a venv made with ``--system-site-packages`` and ``pip install --no-deps
-e <checkout>``); the client is the one on ``PATH``, or that of ``--client BIN_DIR``
(the same for every server)::

    python bench/repeat_push.py --pushes 6 --files 10000 --also /tmp/base/.venv/bin
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import bench_store, compile_like_pip, robot_env, timed_child, tree_cpu  # noqa: E402
from tests.fixtures.server import ServerProcess  # noqa: E402


def main() -> None:
    """Push fresh projects into each server in turn and print one line per push."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pushes", type=int, default=6)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--size", type=int, default=32 * 1024, help="bytes per image")
    ap.add_argument("--also", type=Path, action="append", default=[], metavar="BIN_DIR")
    ap.add_argument("--client", type=Path, metavar="BIN_DIR", help="the robosync to push with")
    a = ap.parse_args()
    compile_like_pip(a.client)
    robosync = str(a.client.resolve() / "robosync") if a.client else "robosync"
    installs = {"this checkout": "robosync-server"} | {
        str(d): str(d.resolve() / "robosync-server") for d in a.also
    }
    work = Path(tempfile.mkdtemp(prefix="robosync-repeat-push-"))
    (work / "weed").mkdir()
    servers: dict[str, ServerProcess] = {}
    try:
        with bench_store(work / "weed") as s3:
            assert s3.pid is not None
            for i, (name, exe) in enumerate(installs.items()):
                env = s3.server_env()
                servers[name] = ServerProcess(work / f"server{i}", env, [exe]).start()
            envs = {
                name: robot_env(srv, work / f"cfg-{i}")
                for i, (name, srv) in enumerate(servers.items())
            }
            print("| push | server | wall s | client CPU s | API CPU s | store CPU s |")
            print("|---|---|---|---|---|---|")
            for k in range(a.pushes):
                for name, srv in servers.items():
                    env = envs[name]
                    project = work / f"p{k}"
                    project.mkdir()
                    for n in range(a.files):
                        (project / f"img{n:05}.jpg").write_bytes(os.urandom(a.size))
                    init = [robosync, "init", f"p{k}", str(project)]
                    subprocess.run(init, env=env, check=True, capture_output=True)
                    api, store = tree_cpu(srv.pid), tree_cpu(s3.pid)
                    wall, client = timed_child([robosync, "push"], project, env)
                    api, store = tree_cpu(srv.pid) - api, tree_cpu(s3.pid) - store
                    cells = [f"{x:.2f}" for x in (wall, client, api, store)]
                    print(f"| {k + 1} | {name} | " + " | ".join(cells) + " |", flush=True)
                    shutil.rmtree(project)
    finally:
        for srv in servers.values():
            srv.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
