"""``ROBOSYNC_METRICS_TOKEN``: /metrics answers only the operator's scraper."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.server import ServerProcess

METRICS_TOKEN = "scrape-" + secrets.token_hex(16)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """An embedded server whose /metrics needs METRICS_TOKEN."""
    data: Path = tmp_path_factory.mktemp("metrics-token")
    proc = ServerProcess(data, {"ROBOSYNC_METRICS_TOKEN": METRICS_TOKEN}).start()
    try:
        yield proc
    finally:
        proc.stop()


def test_metrics_need_the_metrics_token(guarded: ServerProcess) -> None:
    url = guarded.url + "/metrics"
    robot_token = guarded.make_token("ops", "arm-1")
    for refused in (None, "Bearer wrong", f"Bearer {robot_token}", METRICS_TOKEN):
        headers = {} if refused is None else {"Authorization": refused}
        r = httpx.get(url, headers=headers, timeout=10)
        assert r.status_code == 401, (refused, r.text)
        assert "robosync_" not in r.text
    ok = httpx.get(url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10)
    assert ok.status_code == 200
    assert "robosync_http_request_duration_seconds" in ok.text
    # The API itself is unchanged: robots use their own tokens.
    api = httpx.get(
        guarded.url + "/v1/projects", headers={"Authorization": f"Bearer {robot_token}"}
    )
    assert api.status_code == 200
