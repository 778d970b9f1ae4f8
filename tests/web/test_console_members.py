"""The console's members page in real Chromium: an admin shares and unshares; others cannot.

One embedded server for the module; the same rules as the API's (access.authorize).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.fixtures.server import ServerProcess
from tests.web.browser import save_doc_screenshot, sign_in
from tests.web.people import PASSWORD, ConsoleSession, Person, jpeg, new_person


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """An embedded server of its own."""
    proc = ServerProcess(tmp_path_factory.mktemp("members")).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the people's robots keep their folders."""
    return tmp_path_factory.mktemp("people")


@pytest.fixture(scope="module")
def alice(server: ServerProcess, home: Path) -> Person:
    """The owner of project ``plant``, with one image pushed."""
    person = new_person(server, home, "plant")
    person.push({"cam/0001.jpg": jpeg(7)}, "first")
    return person


def test_admin_shares_in_the_browser_and_the_member_sees_exactly_their_role(
    page: Page, server: ServerProcess, alice: Person, home: Path
) -> None:
    bob = new_person(server, home)
    owner = ConsoleSession(server.url, alice.name)
    member = ConsoleSession(server.url, bob.name)
    try:
        project = owner.project_id("plant")
        assert member.http.get(f"/p/{project}/members").status_code == 404

        sign_in(page, server.url, alice.name, PASSWORD)
        page.goto(f"{server.url}/p/{project}/members")
        assert page.text_content("#my-role") == "admin"
        page.fill("#share-user", bob.name)
        page.select_option("#share-role", "write")
        with page.expect_navigation():
            page.click("#share")
        row = page.locator(f'#members tr[data-user="{bob.name}"]')
        assert row.locator(".role").text_content() == "write"
        save_doc_screenshot(page, "members")

        listing = member.http.get("/projects").text
        assert f'href="/p/{project}">plant<' in listing
        mine = member.http.get(f"/p/{project}/members")
        assert mine.status_code == 200 and 'id="share-form"' not in mine.text
        refused = member.http.post(
            f"/p/{project}/members", data={"user": bob.name, "role": "admin", "csrf": member.csrf}
        )
        assert refused.status_code == 403
        assert "you have write access" in refused.text

        page.fill("#share-user", "nobody-" + bob.name)
        with page.expect_navigation():
            page.click("#share")
        assert "no user named" in (page.text_content("#members-error") or "")

        with page.expect_navigation():
            row.locator("button").click()
        assert page.locator(f'#members tr[data-user="{bob.name}"]').count() == 0
        assert member.http.get(f"/p/{project}").status_code == 404
    finally:
        owner.close()
        member.close()
