"""scripts/cluster runs from an operator's install: the package, without tests/ or pytest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "cluster"

# Runs the script with the test tree and the test extras unimportable.
_WITHOUT_TESTS = """
import importlib.abc, runpy, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"tests", "pytest", "_pytest", "schemathesis"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Absent())
sys.argv = [sys.argv[1], *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_cluster_script_needs_neither_the_tests_nor_pytest(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TESTS, str(SCRIPT), "status", "--dir", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "ModuleNotFoundError" not in out.stderr, out.stderr
    assert "no cluster recorded" in out.stderr, out.stderr
