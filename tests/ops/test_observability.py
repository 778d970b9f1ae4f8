"""``/metrics`` counts what operators watch; logs are JSON lines tied to a request id."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from robosync.server.store.local import SIGNATURE_PARAM
from tests.ops.conftest import OpsServer
from tests.server.robot import put

# A low request rate so that a 429 is reached quickly.
SERVER_ENV = {"ROBOSYNC_RATE_LIMIT": "40/minute", "ROBOSYNC_LOG_FORMAT": "json"}


@pytest.fixture(scope="module", params=["embedded"])
def ops_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One embedded server: what is measured here does not depend on the backend."""
    from tests.ops.conftest import _serve

    yield from _serve(dict(SERVER_ENV), tmp_path_factory)


def _samples(server: OpsServer) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    r = httpx.get(server.proc.url + "/metrics", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _log_records(server: OpsServer) -> list[dict[str, Any]]:
    records = []
    for line in server.proc.log_path.read_text().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    return records


def test_metrics_count_commits_conflicts_uploads_and_429s(ops_server: OpsServer) -> None:
    robot = ops_server.robot()
    project = robot.new_project()
    data = uuid.uuid4().hex.encode() * 100
    blob = robot.upload(data)
    assert robot.commit(project, 0, [put("a.jpg", blob)]).status_code == 201
    assert robot.commit(project, 0, [put("b.jpg", blob)]).status_code == 409
    for _ in range(60):
        if robot.http.get("/v1/projects").status_code == 429:
            break
    else:
        pytest.fail("the request rate limit never answered 429")

    samples = _samples(ops_server)  # no token needed, and not rate limited
    assert _value(samples, "robosync_commits_total") >= 1
    assert _value(samples, "robosync_commit_conflicts_total") >= 1
    assert _value(samples, "robosync_committed_bytes_total") >= len(data)
    assert _value(samples, "robosync_uploads_total", event="presigned") >= 1
    assert _value(samples, "robosync_uploads_total", event="completed") >= 1
    assert _value(samples, "robosync_rate_limited_total", limit="requests") >= 1
    route = "/v1/projects/{project_id}/commits"
    for status in ("201", "409"):
        count = _value(
            samples,
            "robosync_http_request_duration_seconds_count",
            method="POST",
            route=route,
            status=status,
        )
        assert count >= 1, f"no latency sample for POST {route} {status}"
    raw_paths = [
        labels for name, labels in samples if ("route", f"/v1/projects/{project}") in labels
    ]
    assert not raw_paths, "requests must be labelled by route template, not raw path"
    robot.close()


def test_log_lines_are_json_with_the_request_id_of_the_response(ops_server: OpsServer) -> None:
    time.sleep(1.5)  # let the rate limit of the previous test ease
    token = ops_server.proc.make_token("logger", "log-robot")
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(60):
        given = httpx.get(
            ops_server.proc.url + "/v1/projects",
            headers={**headers, "X-Request-ID": "ops-test-" + uuid.uuid4().hex[:6]},
            timeout=10,
        )
        if given.status_code == 200:
            break
        time.sleep(1)
    assert given.status_code == 200, given.text
    request_id = given.headers["X-Request-ID"]
    assert request_id.startswith("ops-test-")
    generated = httpx.get(ops_server.proc.url + "/healthz", timeout=10).headers["X-Request-ID"]
    assert generated and generated != request_id

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        mine = [r for r in _log_records(ops_server) if r.get("request_id") == request_id]
        if mine:
            break
        time.sleep(0.2)
    (line,) = mine
    assert line["route"] == "/v1/projects" and line["status"] == 200 and line["method"] == "GET"
    assert isinstance(line["user_id"], int) and line["duration_ms"] >= 0
    assert {"ts", "level", "logger", "msg"} <= line.keys()

    text = ops_server.proc.log_path.read_text()
    assert token not in text, "a bearer token was logged"
    assert SIGNATURE_PARAM not in text and "X-Amz-Signature" not in text, "a signature was logged"
