"""What the agent says about each folder: ``.robosync/agent.json``, written atomically.

The agent rewrites it on every state change and every few seconds while it
transfers; ``robosync agent status`` reads it, with no server needed. A
reader never sees a half-written file (temp file, then rename).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from robosync.client.index import DIRNAME

STATE_FILE = "agent.json"

STARTING = "starting"
ONLINE = "online"
OFFLINE = "offline"
WAITING = "waiting"  # outside the window, or the --only-if check fails
ERROR = "error"  # the server answered, but refused (token, project, ...)
STOPPED = "stopped"


def utc_now() -> str:
    """The time now, ISO 8601 in UTC."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class AgentState:
    """The agent's view of one folder."""

    folder: str
    state: str = STARTING
    since: str = ""  # when ``state`` began
    pid: int = 0
    server: str = ""
    last_sync: str | None = None  # last successful push (or pull)
    last_version: int | None = None
    pending_files: int = 0
    pending_bytes: int = 0
    rate_bytes_per_s: float = 0.0
    last_error: str | None = None
    evicted_files: int = 0
    evicted_bytes: int = 0
    updated_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, with whether the agent process is alive."""
        return {**asdict(self), "running": self.running}

    @property
    def running(self) -> bool:
        """Whether the agent that wrote this is still alive."""
        if self.state == STOPPED or self.pid <= 0:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def state_path(root: Path) -> Path:
    """Where the agent state of the project folder ``root`` lives."""
    return root / DIRNAME / STATE_FILE


def save_state(root: Path, state: AgentState) -> None:
    """Write ``state`` atomically (temp file in ``.robosync/``, then rename)."""
    state.updated_at = utc_now()
    target = state_path(root)
    fd, tmp = tempfile.mkstemp(prefix=".agent-", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(asdict(state), f, indent=2)
            f.write("\n")
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_state(root: Path) -> AgentState | None:
    """The last state the agent wrote for ``root``, or ``None`` if no agent ever ran there."""
    try:
        data = json.loads(state_path(root).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    known = {f.name for f in fields(AgentState)}
    return AgentState(**{k: v for k, v in data.items() if k in known})
