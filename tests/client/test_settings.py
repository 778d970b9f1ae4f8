"""Credentials: saved per server with mode 0600; environment overrides them."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from robosync.client.settings import ClientSettings
from robosync.errors import Unauthorized


def test_login_saves_token_per_server_private(tmp_path: Path):
    s = ClientSettings.from_env({"ROBOSYNC_CONFIG_DIR": str(tmp_path)})
    s.save_login("http://a.example/", "tok-a")
    s.save_login("http://b.example", "tok-b")
    mode = stat.S_IMODE(s.credentials_file.stat().st_mode)
    assert mode == 0o600
    assert s.token_for("http://a.example") == "tok-a"
    assert s.server_url() == "http://b.example"


def test_environment_overrides_saved_credentials(tmp_path: Path):
    ClientSettings.from_env({"ROBOSYNC_CONFIG_DIR": str(tmp_path)}).save_login("http://a", "x")
    s = ClientSettings.from_env(
        {"ROBOSYNC_CONFIG_DIR": str(tmp_path), "ROBOSYNC_SERVER": "http://b", "ROBOSYNC_TOKEN": "y"}
    )
    assert s.server_url() == "http://b"
    assert s.token_for("http://a") == "y"


def test_missing_token_says_how_to_log_in(tmp_path: Path):
    s = ClientSettings.from_env({"ROBOSYNC_CONFIG_DIR": str(tmp_path)})
    with pytest.raises(Unauthorized, match="robosync login"):
        s.token_for("http://a")


def test_xdg_config_home_is_used(tmp_path: Path):
    s = ClientSettings.from_env({"XDG_CONFIG_HOME": str(tmp_path)})
    assert s.config_dir == tmp_path / "robosync"
