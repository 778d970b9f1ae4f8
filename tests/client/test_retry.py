"""The retry wrapper: transient errors retried with jittered backoff, others raised at once."""

from __future__ import annotations

import httpx
import pytest

from robosync.client.retry import Retrying
from robosync.errors import InvalidInput, RateLimited, RobosyncError, Unavailable


def flaky(errors):
    calls = []

    def fn():
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return "ok"

    return fn, calls


def test_transient_errors_are_retried_until_success():
    slept: list[float] = []
    err503 = RobosyncError("busy", {"http_status": 503})
    fn, calls = flaky([httpx.ConnectError("down"), err503])
    assert Retrying(sleep=slept.append).call(fn) == "ok"
    assert len(calls) == 3 and len(slept) == 2


def test_retry_after_is_honoured():
    slept: list[float] = []
    fn, _ = flaky([RateLimited("slow down", {"http_status": 429, "retry_after": 7})])
    Retrying(sleep=slept.append).call(fn)
    assert len(slept) == 1 and 7.0 <= slept[0] <= 7.0 * 1.25


def test_permanent_errors_are_not_retried():
    fn, calls = flaky([InvalidInput("bad path", {"http_status": 400})])
    with pytest.raises(InvalidInput):
        Retrying(sleep=lambda s: None).call(fn)
    assert len(calls) == 1


def test_attempts_are_bounded():
    fn, calls = flaky([httpx.ReadError("x") for _ in range(10)])
    with pytest.raises(httpx.ReadError):
        Retrying(attempts=4, sleep=lambda s: None).call(fn)
    assert len(calls) == 4


def test_backoff_is_jittered_and_capped():
    r = Retrying(base_delay=1.0, max_delay=5.0)
    delays = [r.delay(attempt, None) for attempt in range(1, 12) for _ in range(20)]
    assert all(0 <= d <= 5.0 for d in delays)
    assert max(r.delay(1, None) for _ in range(50)) <= 1.0
    assert len({r.delay(3, None) for _ in range(20)}) > 1


def test_retries_span_a_server_restart():
    # Seven attempts must not all be spent within the seconds a restart takes.
    slept: list[float] = []
    fn, _ = flaky([httpx.ConnectError("down") for _ in range(10)])
    with pytest.raises(httpx.ConnectError):
        Retrying(sleep=slept.append).call(fn)
    assert sum(slept) >= 15


def test_rate_limited_answers_do_not_use_up_the_attempts():
    slept: list[float] = []
    refusals = [RateLimited("busy", {"http_status": 429, "retry_after": 2}) for _ in range(20)]
    fn, calls = flaky(refusals)
    assert Retrying(attempts=3, sleep=slept.append).call(fn) == "ok"
    assert len(calls) == 21


def test_waiting_on_rate_limits_is_bounded_in_time():
    slept: list[float] = []
    fn, _ = flaky([RateLimited("busy", {"http_status": 429, "retry_after": 10}) for _ in range(99)])
    with pytest.raises(RateLimited):
        Retrying(rate_limited_wait=60, sleep=slept.append).call(fn)
    assert 40 <= sum(slept) <= 60


def test_a_server_never_reached_gets_a_short_budget_and_is_named(caplog):
    slept: list[float] = []
    err = httpx.ConnectError("refused", request=httpx.Request("GET", "http://h:1/v1/projects"))
    fn, calls = flaky([err] * 10)
    with caplog.at_level("WARNING", logger="robosync.client"), pytest.raises(Unavailable) as e:
        Retrying(sleep=slept.append).call(fn, first_contact=True)
    assert len(calls) == 5 and len(slept) == 4 and sum(slept) <= 5
    assert "server at http://h:1 unreachable" in e.value.message
    assert [r.getMessage() for r in caplog.records][
        0
    ] == "server at http://h:1 unreachable, retry 2/5"


def test_a_server_that_answered_before_keeps_the_long_budget():
    slept: list[float] = []
    fn, calls = flaky([httpx.ConnectError("refused")] * 10)
    with pytest.raises(httpx.ConnectError):
        Retrying(sleep=slept.append).call(fn)
    assert len(calls) == 7
