"""A real Chromium (Debian's, driven by Playwright) for the console tests.

One browser per module; each test gets a fresh context (no shared cookies).
A failing test saves a screenshot of its page next to its temporary folder
(and into ``$ROBOSYNC_TEST_ARTIFACTS`` when set).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"


def _browser_missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} not installed (apt-get install chromium)"
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Remember each phase's outcome on the item, for the screenshot-on-failure fixture."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless."""
    problem = _browser_missing()
    if problem is not None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(problem)
        pytest.skip(problem)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Page]:
    """A page in a fresh browser context; screenshotted if the test fails."""
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        yield page
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            shot = tmp_path / "failure.png"
            try:
                page.screenshot(path=str(shot), full_page=True)
                artifacts = os.environ.get("ROBOSYNC_TEST_ARTIFACTS")
                if artifacts:
                    Path(artifacts).mkdir(parents=True, exist_ok=True)
                    shutil.copy(shot, Path(artifacts) / f"{request.node.name}.png")
                print(f"screenshot of the failing page: {shot}")
            except Exception as e:  # the page may be gone with the failure
                print(f"no screenshot: {e}")
        context.close()
