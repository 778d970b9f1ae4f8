"""The agent's pure parts: sizes, time windows, back-off, config files, the state file."""

from __future__ import annotations

import random
import time
from datetime import datetime
from pathlib import Path

import pytest

from robosync.client.agent import AgentOptions, FolderSync
from robosync.client.agentstate import AgentState, load_state, save_state, state_path
from robosync.client.schedule import Backoff, SyncWindow, check_passes
from robosync.client.sizes import parse_size
from robosync.errors import InvalidInput


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4096", 4096),
        ("500K", 500 * 1024),
        ("2M", 2 * 1024**2),
        ("2MiB", 2 * 1024**2),
        ("1.5g", int(1.5 * 1024**3)),
        ("3 MB", 3 * 1024**2),
    ],
)
def test_sizes_read_as_people_type_them(text: str, size: int):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "2X", "-1M", "M"])
def test_bad_sizes_say_the_accepted_forms(text: str):
    with pytest.raises(ValueError, match="e.g. 4096, 500K, 2M"):
        parse_size(text)


@pytest.mark.parametrize(
    ("window", "hhmm", "inside"),
    [
        ("22:00-06:00", "23:30", True),
        ("22:00-06:00", "03:00", True),
        ("22:00-06:00", "06:00", False),
        ("22:00-06:00", "12:00", False),
        ("09:00-17:30", "17:29", True),
        ("09:00-17:30", "08:59", False),
        ("00:00-00:00", "13:00", True),
    ],
)
def test_window_spans_midnight(window: str, hhmm: str, inside: bool):
    h, m = map(int, hhmm.split(":"))
    assert SyncWindow.parse(window).contains(datetime(2026, 1, 1, h, m)) is inside


@pytest.mark.parametrize("text", ["22-06", "25:00-06:00", "22:00"])
def test_bad_window_is_refused(text: str):
    with pytest.raises(InvalidInput, match="22:00-06:00|hours go to 23"):
        SyncWindow.parse(text)


def test_only_if_follows_the_exit_code():
    assert check_passes("true") and not check_passes("exit 3")


def test_backoff_doubles_with_jitter_up_to_the_cap():
    b = Backoff(base=2, cap=300, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(12)]
    assert 1 <= delays[0] <= 2 and 2 <= delays[1] <= 4
    assert all(150 <= d <= 300 for d in delays[-3:])
    b.reset()
    assert b.next_delay() <= 2


def test_config_file_options_and_relative_folders(tmp_path: Path):
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        'folders = ["run42", "/data/run43"]\nbwlimit = "2M"\nkeep_free = "1G"\n'
        'window = "22:00-06:00"\npull = true\nsettle = 5\n'
    )
    o = AgentOptions.from_toml(cfg)
    assert o.folders == [tmp_path / "run42", Path("/data/run43")]
    assert o.bwlimit == 2 * 1024**2 and o.keep_free == 1024**3 and o.pull and o.settle == 5.0
    assert str(o.window) == "22:00-06:00"


def test_config_file_with_an_unknown_option_names_the_known_ones(tmp_path: Path):
    cfg = tmp_path / "agent.toml"
    cfg.write_text("bandwidth = 3\n")
    with pytest.raises(InvalidInput, match="unknown option bandwidth; known: .*bwlimit"):
        AgentOptions.from_toml(cfg)


def test_state_file_is_replaced_whole(tmp_path: Path):
    (tmp_path / ".robosync").mkdir()
    save_state(tmp_path, AgentState(folder=str(tmp_path), state="offline", pending_files=3))
    save_state(tmp_path, AgentState(folder=str(tmp_path), state="online", pending_files=0))
    st = load_state(tmp_path)
    assert st is not None and st.state == "online" and st.pending_files == 0
    assert [p.name for p in state_path(tmp_path).parent.iterdir()] == ["agent.json"]


def test_a_rescan_interval_under_a_second_is_refused():
    with pytest.raises(InvalidInput, match="rescan: must be at least 1"):
        AgentOptions().updated({"rescan": 0})


def test_a_push_that_left_out_young_captures_is_not_due_again_at_once(tmp_path: Path):
    folder = FolderSync(tmp_path, AgentOptions(settle=0.5))
    now = time.monotonic()
    folder.next_rescan = now + 300
    folder.dirty_since = now - 10  # a burst going on for 10 s: its batch is overdue
    folder.last_change = now
    assert folder.push_due(now)
    folder.take_changes()
    folder.still_pending(now)  # committed the settled part, left out the youngest
    assert not folder.push_due(time.monotonic()), "push after push under continuous capture"
    assert folder.push_due(time.monotonic() + 0.5 + 0.01)  # once those could have settled
