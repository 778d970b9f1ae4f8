"""Client configuration in one place: environment, and credentials saved by ``login``.

Credentials live in ``<config dir>/credentials.json`` (mode 0600), keyed by
server URL, with the server of the last login as the default. The config dir
is ``$ROBOSYNC_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/robosync``, else
``~/.config/robosync``. ``ROBOSYNC_SERVER`` and ``ROBOSYNC_TOKEN`` override
the saved ones (several robots on one machine, CI); ``ROBOSYNC_ROBOT`` names
the robot, over the name a folder saved at init/clone (default: the host name);
``ROBOSYNC_BWLIMIT`` caps the bandwidth
of blob transfers (``2M``: bytes per second, see ``--bwlimit``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robosync.client.sizes import parse_size
from robosync.errors import InvalidInput, Unauthorized
from robosync.values import FrozenValue

# Blob transfers at once (``--jobs``), unless a command is told otherwise.
DEFAULT_JOBS = 16


def normalize_server(url: str) -> str:
    """A server URL without trailing slash (the key credentials are stored under)."""
    return url.strip().rstrip("/")


def check_server_url(url: str) -> str:
    """``url`` if it starts with ``http://`` or ``https://``, else a clear error at once."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest:
        raise InvalidInput(
            f"server URL {url!r} has no http:// or https:// scheme; "
            f"use for example http://{rest if sep else url}",
            {"server": url},
        )
    return url


@dataclass(frozen=True, eq=False, repr=False)
class ClientSettings(FrozenValue):
    """Everything the client reads from its environment, read once."""

    config_dir: Path
    server: str | None = None
    token: str | None = None
    robot: str | None = None
    bwlimit: int | None = None  # bytes per second over every blob transfer of the process

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ClientSettings:
        """Settings from ``env`` (default: the process environment)."""
        env = os.environ if env is None else env
        if env.get("ROBOSYNC_CONFIG_DIR"):
            config_dir = Path(env["ROBOSYNC_CONFIG_DIR"])
        elif env.get("XDG_CONFIG_HOME"):
            config_dir = Path(env["XDG_CONFIG_HOME"]) / "robosync"
        else:
            config_dir = Path.home() / ".config" / "robosync"
        return cls(
            config_dir=config_dir,
            server=normalize_server(env["ROBOSYNC_SERVER"]) if env.get("ROBOSYNC_SERVER") else None,
            token=env.get("ROBOSYNC_TOKEN") or None,
            robot=env.get("ROBOSYNC_ROBOT") or None,
            bwlimit=_bwlimit(env.get("ROBOSYNC_BWLIMIT")),
        )

    @property
    def credentials_file(self) -> Path:
        """Where ``login`` saves tokens."""
        return self.config_dir / "credentials.json"

    def _credentials(self) -> dict[str, Any]:
        try:
            data = json.loads(self.credentials_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"servers": {}}
        return data if isinstance(data, dict) else {"servers": {}}

    def save_login(self, server: str, token: str) -> Path:
        """Store ``token`` for ``server`` (and make it the default server), mode 0600."""
        server = normalize_server(server)
        data = self._credentials()
        data.setdefault("servers", {})[server] = {"token": token}
        data["default_server"] = server
        self.config_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.credentials_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.credentials_file)
        return self.credentials_file

    def server_url(self, explicit: str | None = None) -> str:
        """The server to talk to: explicit, else ``ROBOSYNC_SERVER``, else the last login."""
        server = explicit or self.server or self._credentials().get("default_server")
        if not server:
            raise Unauthorized(
                "no server configured; run `robosync login --server URL --token TOKEN` "
                "or set ROBOSYNC_SERVER and ROBOSYNC_TOKEN"
            )
        return normalize_server(str(server))

    def token_for(self, server: str, explicit: str | None = None) -> str:
        """The token for ``server``: explicit, else ``ROBOSYNC_TOKEN``, else the saved one."""
        token = explicit or self.token
        if token:
            return token
        saved = self._credentials().get("servers", {}).get(normalize_server(server), {})
        if isinstance(saved, dict) and saved.get("token"):
            return str(saved["token"])
        raise Unauthorized(
            f"no token for {server}; run `robosync login --server {server} --token TOKEN` "
            "or set ROBOSYNC_TOKEN"
        )

    def robot_name(self, explicit: str | None = None) -> str:
        """The name a new folder saves: explicit (``--robot``), else ``ROBOSYNC_ROBOT``, else host.

        The one rule for the robot name: ``ROBOSYNC_ROBOT`` when set, else the
        name saved in the folder (``.robosync/config.json``) by ``init``/``clone``
        from this function. It names conflict copies and is recorded in each
        version the robot commits (``log``); two clones on one host differ by
        ``--robot`` at clone time or by their own ``ROBOSYNC_ROBOT``.
        """
        return explicit or self.robot or _hostname() or "robot"


def _bwlimit(text: str | None) -> int | None:
    if not text:
        return None
    try:
        return parse_size(text) or None
    except ValueError as e:
        raise InvalidInput(f"ROBOSYNC_BWLIMIT: {e}") from None


def _hostname() -> str:
    # os.uname() is what socket.gethostname() reads on POSIX, without loading socket.
    if hasattr(os, "uname"):
        return os.uname().nodename
    import socket

    return socket.gethostname()
