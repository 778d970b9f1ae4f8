"""``robosync`` ends without the interpreter's teardown, and loses nothing by it: its
output arrives whole, its exit code is kept, its log is flushed, and a thread still at
work is waited for (``robosync.client.quickexit``). ``bench/startup.py`` measures what
the teardown cost; here the guarantees around skipping it are checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ENDING = """
import atexit, logging, logging.handlers, sys, threading, time
from pathlib import Path
from robosync.client.quickexit import exit_now
out = Path(sys.argv[1])
atexit.register(lambda: (out / "teardown").write_text("ran"))
log = logging.getLogger("probe")
log.addHandler(logging.handlers.MemoryHandler(1000, target=logging.FileHandler(out / "log")))
log.warning("the last line")
if sys.argv[2] == "busy":
    def finish() -> None:
        time.sleep(0.3)
        (out / "work").write_text("done")
    threading.Thread(target=finish).start()
sys.stdout.write("x" * 200_000)  # more than the buffer holds, and no newline
exit_now(7)
"""


def _end(tmp_path: Path, mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", ENDING, str(tmp_path), mode], capture_output=True, text=True
    )


def test_alone_it_skips_the_teardown_and_loses_no_output_exit_code_or_log_line(
    tmp_path: Path,
):
    r = _end(tmp_path, "alone")
    assert r.returncode == 7, r.stderr
    assert r.stdout == "x" * 200_000
    assert (tmp_path / "log").read_text() == "the last line\n"
    assert not (tmp_path / "teardown").exists()  # the teardown did not run


def test_with_a_thread_still_at_work_it_exits_normally_after_that_thread(tmp_path: Path):
    r = _end(tmp_path, "busy")
    assert r.returncode == 7, r.stderr
    assert r.stdout == "x" * 200_000
    assert (tmp_path / "work").read_text() == "done"
    assert (tmp_path / "teardown").read_text() == "ran"
    assert (tmp_path / "log").read_text() == "the last line\n"


def test_the_program_ends_with_its_answer_and_exit_code_whole(tmp_path: Path):
    r = subprocess.run(
        [sys.executable, "-m", "robosync.client.cli", "push", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1
    assert json.loads(r.stdout)["error"]["code"] == "not_a_project"
