"""People of the console tests: a user with a password, robots pushing real images, a
signed-in HTTP session (for checks that need no browser)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from PIL import Image, ImageDraw

from robosync.server.db.engine import Database
from robosync.server.services import accounts, web_sessions
from tests.fixtures.server import ServerProcess, server_command

PASSWORD = "correct horse battery"
_CSRF_INPUT = re.compile(r'name="csrf" value="([^"]+)"')


def picture(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A colourful picture (gradient and a disc) that differs with ``seed``."""
    w, h = size
    red = Image.linear_gradient("L").resize(size)
    green = Image.linear_gradient("L").rotate(90).resize(size)
    blue = Image.new("L", size, (seed * 53) % 256)
    im = Image.merge("RGB", (red, green, blue))
    x, y, r = (seed * 97) % w, (seed * 61) % h, 40 + (seed * 13) % 80
    ImageDraw.Draw(im).ellipse((x - r, y - r, x + r, y + r), fill=((seed * 71) % 256, 40, 200))
    return im


def jpeg(seed: int, size: tuple[int, int] = (640, 480)) -> bytes:
    """A real JPEG whose pixels depend on ``seed``."""
    out = io.BytesIO()
    picture(seed, size).save(out, "JPEG", quality=85)
    return out.getvalue()


def png16(seed: int, size: tuple[int, int] = (320, 240)) -> bytes:
    """A real 16-bit greyscale PNG."""
    im = Image.frombytes("I;16", size, _noise(seed, size[0] * size[1] * 2))
    out = io.BytesIO()
    im.save(out, "PNG")
    return out.getvalue()


def _noise(seed: int, n: int) -> bytes:
    # Smooth gradients with a seeded offset: compressible, yet distinct per seed.
    return bytes((i * 7 + seed * 31 + (i // 997)) % 256 for i in range(n))


def set_password(server: ServerProcess, user: str, password: str = PASSWORD) -> None:
    """``robosync-server set-password USER`` with the password on stdin."""
    out = subprocess.run(
        [*server_command(), "set-password", user],
        env=server.env,
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr


@dataclass
class Person:
    """A user of the console with one robot whose folder holds a project."""

    server: ServerProcess
    name: str
    token: str
    home: Path
    robot: str = "cam-1"

    @property
    def folder(self) -> Path:
        """The robot's project folder."""
        return self.home / "project"

    def env(self) -> dict[str, str]:
        """Environment of the ``robosync`` command on this person's robot."""
        return {
            **os.environ,
            "ROBOSYNC_CONFIG_DIR": str(self.home / "config"),
            "ROBOSYNC_SERVER": self.server.url,
            "ROBOSYNC_TOKEN": self.token,
            "ROBOSYNC_ROBOT": self.robot,
        }

    def robosync(self, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``robosync ARGS`` in the project folder (optionally with another token)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        env = self.env()
        if token is not None:
            env["ROBOSYNC_TOKEN"] = token
        return subprocess.run(
            [sys.executable, "-m", "robosync.client.cli", *args],
            cwd=self.folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )

    def push(self, files: dict[str, bytes | None], message: str = "") -> None:
        """Write (or, for None, delete) files in the folder and ``robosync push``."""
        for path, data in files.items():
            target = self.folder / path
            if data is None:
                target.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        out = self.robosync("push", "-m", message)
        assert out.returncode == 0, out.stdout + out.stderr


def _database(server: ServerProcess) -> Database:
    url = (
        server.env.get("ROBOSYNC_DATABASE_URL")
        or f"sqlite:///{server.data_dir.resolve()}/robosync.sqlite"
    )
    return Database(url)


def new_person(
    server: ServerProcess, home: Path, project: str | None = None, *, by_cli: bool = False
) -> Person:
    """A fresh user with a password and a robot token; with ``project``, its folder is inited.

    The user is made in the server's database directly (the CLI's start-up
    costs seconds on a busy machine), or ``by_cli`` with ``robosync-server``.
    """
    name = f"u-{uuid.uuid4().hex[:8]}"
    if by_cli:
        token = server.make_token(name, "cam-1")
        set_password(server, name)
    else:
        db = _database(server)
        try:
            with db.writing() as session:
                user = accounts.create_user(session, name)
                token = accounts.create_token(session, user, "cam-1")
                web_sessions.set_password(session, name, PASSWORD)
        finally:
            db.dispose()
    person = Person(server, name, token, home / name)
    if project is not None:
        out = person.robosync("init", project, ".")
        assert out.returncode == 0, out.stdout + out.stderr
    return person


class ConsoleSession:
    """A signed-in console session over plain HTTP (cookie and CSRF token)."""

    def __init__(self, base_url: str, user: str, password: str = PASSWORD) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=60)
        form = self.http.get("/signin")
        r = self.http.post(
            "/signin",
            data={"user": user, "password": password, "csrf": self.csrf_of(form.text)},
        )
        assert r.status_code == 303, r.text
        self.csrf = self.csrf_of(self.http.get("/projects").text)

    @staticmethod
    def csrf_of(html: str) -> str:
        """The CSRF token of the first form of a page."""
        found = _CSRF_INPUT.search(html)
        assert found, "no csrf field on the page"
        return found.group(1)

    def project_id(self, name: str) -> int:
        """The id of the person's project called ``name`` (from the projects page)."""
        found = re.search(
            r'href="/p/(\d+)">' + re.escape(name) + "<", self.http.get("/projects").text
        )
        assert found, f"project {name} not listed"
        return int(found.group(1))

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()
