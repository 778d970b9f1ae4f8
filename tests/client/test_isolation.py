"""A robot installs only the client: importing it must not pull in server dependencies,
nor pydantic (a server dependency now: the client reads messages without it)."""

from __future__ import annotations

import subprocess
import sys


def test_client_imports_nothing_of_the_server():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        blocked = name.split('.')[0] == 'pydantic'\n"
        "        if blocked or name.startswith(('robosync.server', 'robosync.protocol')):\n"
        "            raise ImportError('client imported ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import robosync.client, robosync.client.cli, robosync.client.agent\n"
        "from robosync.client import wire\n"
        'line = \'{"path": "a", "digest": "\' + \'0\' * 64 + \'", "size": 1}\'\n'
        "assert wire.decode(wire.ManifestEntry, line).path == 'a'\n"
        "bad = [m for m in ('fastapi', 'sqlalchemy', 'boto3', 'botocore', 'uvicorn') "
        "if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
