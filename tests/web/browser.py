"""What a person does in the browser, shared by the console tests."""

from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import Page


def sign_in(page: Page, base_url: str, user: str, password: str) -> None:
    """Fill the sign-in form and submit it."""
    page.goto(base_url + "/signin")
    page.fill("input[name=user]", user)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("button[type=submit]")


def wait_for_images(page: Page) -> list[int]:
    """Wait until every image of the page finished loading; their natural widths."""
    page.wait_for_function("() => [...document.images].every(i => i.complete)")
    widths: list[int] = page.evaluate("() => [...document.images].map(i => i.naturalWidth)")
    return widths


def save_doc_screenshot(page: Page, name: str) -> None:
    """With ``$ROBOSYNC_SCREENSHOT_DIR`` set, save this page there (for docs/CONSOLE.md)."""
    folder = os.environ.get("ROBOSYNC_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))
