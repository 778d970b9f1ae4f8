"""A command with nothing to send starts fast: it never loads the HTTP stack (nor
``logging``, ``concurrent.futures`` or ``shutil``: no retry, no thread pool, argparse's
help sized without it), and no client command loads pydantic or the server's models.

Import time is most of a no-op ``robosync push`` (``bench/startup.py`` measures it);
here the property behind it is checked: the connections (``http.client`` and ``ssl``,
through ``robosync.client.apihttp`` and ``robosync.client.storeget``) are made with the
first request, ``httpx`` is loaded on first use only (``robosync.client.deferred``: behind
a proxy, or to report a failed connection), and a push with nothing to send uses none of
them. The client reads and writes the API's messages without
pydantic (``robosync.client.wire``). Timing is not asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from robosync.client.deferred import OnFirstUse, defer
from robosync.client.index import ProjectConfig
from tests.fixtures.server import free_port

PROBE = """
import json, sys
at_start = set(sys.modules)  # what the interpreter's own start-up loaded (.pth files)
from robosync.client.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:
    code = e.code
heavy = ("httpx._client", "pydantic", "pydantic_core", "h11", "httpcore",
         "robosync.client.storeget", "http.client", "ssl",
         "robosync.client.transfer", "robosync.client.history",
         "logging", "concurrent.futures", "shutil")
print(json.dumps({"code": code,
                  "loaded": [m for m in heavy if m in sys.modules and m not in at_start],
                  "protocol": "robosync.protocol" in sys.modules,
                  "wire": "robosync.client.wire" in sys.modules}))
"""


def probe(root: Path, *args: str) -> tuple[dict[str, object], str]:
    """Run ``robosync ARGS`` in a fresh interpreter; say which heavy modules it loaded."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROBOSYNC_")}
    env.update(ROBOSYNC_TOKEN="rs_test", ROBOSYNC_CONFIG_DIR=str(root.parent / "cfg"))
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    return json.loads(lines[-1]), "\n".join(lines[:-1])


def test_a_push_with_nothing_to_send_loads_no_http_stack_and_no_models(tmp_path: Path):
    root = tmp_path / "proj"
    (root / ".robosync").mkdir(parents=True)
    # A server that would refuse every connection: a no-op push must not need it.
    ProjectConfig(f"http://127.0.0.1:{free_port()}", 1, "run42", "r1").save(root)
    result, printed = probe(root, "push")
    assert result["code"] == 0 and "nothing to push" in printed
    assert result["loaded"] == [], result
    assert result["protocol"] is False
    assert result["wire"] is False  # the API's messages: not needed without a request


def test_a_push_with_files_to_send_loads_them_on_first_use(tmp_path: Path):
    root = tmp_path / "proj"
    (root / ".robosync").mkdir(parents=True)
    ProjectConfig(f"http://127.0.0.1:{free_port()}", 1, "run42", "r1").save(root)
    (root / "a.png").write_bytes(b"a" * 100)
    result, _ = probe(root, "push")
    # It fails (no server), having loaded what it needed to try: the deferral is not a stub.
    assert result["code"] == 1
    assert "http.client" in result["loaded"], result
    # The answers it would have read are plain dataclasses: no pydantic, no server models.
    assert "pydantic" not in result["loaded"] and "pydantic_core" not in result["loaded"]
    assert result["protocol"] is False
    assert result["wire"] is True


def test_the_package_exports_its_names_without_loading_every_module_first():
    code = (
        "import sys, robosync.client as c\n"
        "before = 'robosync.client.project' in sys.modules\n"
        "from robosync.client import Project, get_file, merge\n"
        "import robosync.client.merge\n"
        "print(before, Project.__name__, get_file.__name__, callable(c.merge))\n"
        "try:\n"
        "    c.no_such_name\n"
        "except AttributeError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "False Project get_file True",
        "module 'robosync.client' has no attribute 'no_such_name'",
    ]


def test_an_object_made_on_first_use_is_made_once_however_many_threads_ask():
    made: list[object] = []

    def make() -> object:
        time.sleep(0.02)  # a window in which a second thread could start making one too
        made.append(object())
        return made[-1]

    lazy = OnFirstUse(make)
    assert lazy.made is None
    with ThreadPoolExecutor(16) as pool:
        got = list(pool.map(lambda _: lazy.get(), range(16)))
    assert len(made) == 1
    assert all(g is made[0] for g in got) and lazy.made is made[0]


def test_a_deferred_module_read_by_many_threads_at_once_is_whole_for_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # Transfer threads that fail together all reach for httpx's error classes at once;
    # a module still being executed must not be seen half made.
    (tmp_path / "slow_to_load.py").write_text("import time\nFIRST = 1\ntime.sleep(0.3)\nLAST = 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    slow = defer("slow_to_load")
    with ThreadPoolExecutor(16) as pool:
        got = list(pool.map(lambda _: (slow.FIRST, slow.LAST), range(16)))
    assert got == [(1, 2)] * 16
    assert sys.modules["slow_to_load"].LAST == 2 and slow.LAST == 2
