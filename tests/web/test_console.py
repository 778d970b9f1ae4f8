"""The web console in real Chromium: sign-in, grid, image, history, robots, CSRF, access.

One embedded server for the module, images pushed by the real ``robosync`` CLI.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from robosync.digest import digest_bytes
from tests.fixtures.server import ServerProcess
from tests.web.browser import save_doc_screenshot, sign_in, wait_for_images
from tests.web.people import PASSWORD, ConsoleSession, Person, jpeg, new_person, png16

FIRST = {
    "front/0001.jpg": jpeg(1),
    "front/0002.jpg": jpeg(2),
    "side/0001.jpg": jpeg(3),
    "depth.png": png16(4),
    "notes.txt": b"not an image\n",
    "odd.jpg": b"this is not a jpeg at all",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """An embedded server; sign-in limits low enough to test, per address high enough to run."""
    env = {
        "ROBOSYNC_SIGNIN_RATE_PER_USER": "5/minute",
        "ROBOSYNC_SIGNIN_RATE_PER_ADDRESS": "500/minute",
    }
    proc = ServerProcess(tmp_path_factory.mktemp("console"), env).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def alice(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Person:
    """A person whose robot pushed two versions of project ``yard``."""
    person = new_person(server, tmp_path_factory.mktemp("alice"), "yard", by_cli=True)
    person.push(FIRST, "first light")
    person.push(
        {"front/0003.jpg": jpeg(5), "front/0001.jpg": jpeg(6), "side/0001.jpg": None},
        "second run",
    )
    return person


@pytest.fixture(scope="module")
def yard_id(server: ServerProcess, alice: Person) -> int:
    """The id of alice's project."""
    session = ConsoleSession(server.url, alice.name)
    try:
        return session.project_id("yard")
    finally:
        session.close()


def test_serve_on_an_empty_database_says_how_to_sign_in(server: ServerProcess) -> None:
    assert "set-password admin" in server.log_path.read_text()


def test_wrong_password_is_refused_and_the_right_one_signs_in(
    page: Page, server: ServerProcess, alice: Person
) -> None:
    sign_in(page, server.url, alice.name, "not the password")
    assert page.locator("#signin-error").inner_text() == "wrong user name or password"
    assert page.url.endswith("/signin")
    sign_in(page, server.url, alice.name, PASSWORD)
    page.wait_for_url("**/projects")
    row = page.locator("#projects tbody tr", has_text="yard")
    assert "v2" in row.inner_text()
    assert "cam-1" in row.inner_text()  # last push by that robot
    save_doc_screenshot(page, "projects")


def test_robot_tokens_are_not_browser_credentials(server: ServerProcess, alice: Person) -> None:
    import httpx

    r = httpx.get(
        server.url + "/projects",
        headers={"Authorization": f"Bearer {alice.token}"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/signin")


def test_thumbnails_are_real_images_decoded_by_the_browser(
    page: Page, server: ServerProcess, alice: Person, yard_id: int
) -> None:
    sign_in(page, server.url, alice.name, PASSWORD)
    page.goto(f"{server.url}/p/{yard_id}")
    assert page.locator("#folders li").all_inner_texts() == ["📁 front"]
    names = page.locator("#grid .tile .name").all_inner_texts()
    assert names == ["depth.png", "notes.txt", "odd.jpg"]
    widths = wait_for_images(page)
    assert len(widths) == 3 and all(w > 0 for w in widths), widths
    page.click("#folders a")
    assert page.locator("#grid .tile .name").all_inner_texts() == [
        "0001.jpg",
        "0002.jpg",
        "0003.jpg",
    ]
    widths = wait_for_images(page)
    assert widths and all(w > 0 for w in widths), widths
    save_doc_screenshot(page, "project")
    # The first version still has side/ and the old front/0001.jpg.
    page.select_option("#version-picker", "1")
    page.wait_for_url(re.compile(r".*v=1.*"))
    page.goto(f"{server.url}/p/{yard_id}?v=1")
    assert "📁 side" in page.locator("#folders").inner_text()


def test_thumbnails_of_non_images_are_placeholders_naming_the_type(
    page: Page, server: ServerProcess, alice: Person, yard_id: int
) -> None:
    sign_in(page, server.url, alice.name, PASSWORD)
    page.goto(f"{server.url}/p/{yard_id}")
    wait_for_images(page)
    for name, label in (("notes.txt", "TXT"), ("odd.jpg", "JPG")):
        src = page.locator(f"#grid img[alt='{name}']").get_attribute("src")
        r = page.request.get(server.url + str(src))
        assert r.status == 200 and r.headers["content-type"] == "image/svg+xml"
        assert label in r.text()
    src = page.locator("#grid img[alt='depth.png']").get_attribute("src")
    r = page.request.get(server.url + str(src))
    assert r.headers["content-type"] == "image/webp"
    assert "immutable" in r.headers["cache-control"] and r.headers["etag"]


def test_filter_and_keyset_paging(
    page: Page, server: ServerProcess, alice: Person, yard_id: int
) -> None:
    sign_in(page, server.url, alice.name, PASSWORD)
    page.goto(f"{server.url}/p/{yard_id}")
    page.fill("#filter", "0003")
    page.press("#filter", "Enter")
    page.wait_for_url(re.compile(r".*q=0003.*"))
    assert page.locator("#grid .tile .name").all_inner_texts() == ["0003.jpg"]
    # A page of 60: the project is smaller, so there is no next page.
    assert page.locator("#next-page").count() == 0


def test_image_page_shows_the_pushed_bytes_inline(
    page: Page, server: ServerProcess, alice: Person, yard_id: int
) -> None:
    sign_in(page, server.url, alice.name, PASSWORD)
    page.goto(f"{server.url}/p/{yard_id}?prefix=front/")
    page.click("#grid a[title='front/0002.jpg']")
    page.wait_for_url("**/file?**")
    assert wait_for_images(page)[0] == 640
    fetched = page.evaluate(
        """async () => {
            const r = await fetch(document.getElementById('full').src);
            const bytes = await r.arrayBuffer();
            const hash = await crypto.subtle.digest('SHA-256', bytes);
            return {
                type: r.headers.get('content-type'),
                disposition: r.headers.get('content-disposition'),
                sha: [...new Uint8Array(hash)].map(b => b.toString(16).padStart(2, '0')).join(''),
            };
        }"""
    )
    expected = hashlib.sha256(FIRST["front/0002.jpg"]).hexdigest()
    assert fetched["sha"] == expected
    assert fetched["type"] == "image/jpeg"
    assert fetched["disposition"].startswith('inline; filename="0002.jpg"')
    assert page.locator("#digest").inner_text() == digest_bytes(FIRST["front/0002.jpg"]).digest
    save_doc_screenshot(page, "image")
    with page.expect_download() as download:
        page.click("#download")
    assert Path(download.value.path()).read_bytes() == FIRST["front/0002.jpg"]
    assert download.value.suggested_filename == "0002.jpg"


def test_path_history_lists_the_versions_that_changed_it(
    page: Page, server: ServerProcess, alice: Person, yard_id: int
) -> None:
    sign_in(page, server.url, alice.name, PASSWORD)
    page.goto(f"{server.url}/p/{yard_id}/file?path=front/0001.jpg")
    items = page.locator("#path-history li").all_inner_texts()
    assert [i.split()[0] for i in items] == ["v2", "v1"]
    page.goto(f"{server.url}/p/{yard_id}/file?path=side/0001.jpg&v=1")
    items = page.locator("#path-history li").all_inner_texts()
    assert items[0].startswith("v2") and "deleted" in items[0]


def test_history_diff_shows_the_add_the_modify_and_the_delete(
    page: Page, server: ServerProcess, alice: Person, yard_id: int
) -> None:
    sign_in(page, server.url, alice.name, PASSWORD)
    page.goto(f"{server.url}/p/{yard_id}/history")
    rows = page.locator("#history tbody tr")
    assert rows.nth(0).locator("td").all_inner_texts()[4:] == ["1", "1", "1"]
    assert "second run" in rows.nth(0).inner_text()
    assert rows.nth(1).locator("td").all_inner_texts()[4:] == ["6", "0", "0"]
    page.click("#history a:text('v2')")
    page.wait_for_url(f"**/p/{yard_id}/v/2")
    assert page.locator("#added .tile .name").all_inner_texts() == ["0003.jpg"]
    pair = page.locator("#modified .pair .tile")
    assert pair.count() == 2
    assert [pair.nth(i).get_attribute("title") for i in range(2)] == ["front/0001.jpg"] * 2
    assert page.locator("#deleted .tile").get_attribute("title") == "side/0001.jpg"
    widths = wait_for_images(page)
    assert len(widths) == 4 and all(w > 0 for w in widths)
    # Before and after are different thumbnails (the old and the new bytes).
    before, after = (pair.nth(i).locator("img").get_attribute("src") for i in range(2))
    assert before != after
    save_doc_screenshot(page, "history-diff")


def test_conflict_copies_are_marked(
    page: Page, server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    person = new_person(server, tmp_path_factory.mktemp("carol"), "merge")
    person.push({"a.jpg": jpeg(7), "a.conflict-cam-2-20261130T120000Z.jpg": jpeg(8)})
    sign_in(page, server.url, person.name, PASSWORD)
    session = ConsoleSession(server.url, person.name)
    project = session.project_id("merge")
    session.close()
    page.goto(f"{server.url}/p/{project}")
    marked = page.locator("#grid .tile.conflict .name").all_inner_texts()
    assert marked == ["a.conflict-cam-2-20261130T120000Z.jpg"]


def test_robot_token_made_in_the_console_works_until_revoked(
    page: Page, server: ServerProcess, alice: Person
) -> None:
    sign_in(page, server.url, alice.name, PASSWORD)
    page.goto(server.url + "/robots")
    page.fill("#robot-name", "arm-7")
    page.click("#create-token")
    line = page.locator("#login-line").inner_text()
    assert line.startswith(f"robosync login --server {server.url} --token rs_")
    token = line.split("--token ")[1].strip()
    login = alice.robosync("login", "--server", server.url, "--token", token, token=token)
    assert login.returncode == 0, login.stderr
    assert alice.robosync("projects", token=token).returncode == 0
    page.goto(server.url + "/robots")
    row = page.locator("#tokens tr[data-robot='arm-7']")
    assert "never" not in row.locator("td").nth(3).inner_text()  # last used
    row.locator("button:text('Revoke')").click()
    page.wait_for_url("**/robots")
    assert "revoked" in page.locator("#tokens tr[data-robot='arm-7']").inner_text()
    refused = alice.robosync("projects", token=token)
    assert refused.returncode != 0
    assert "token" in refused.stderr.lower()


def test_post_without_the_csrf_token_is_refused(server: ServerProcess, alice: Person) -> None:
    session = ConsoleSession(server.url, alice.name)
    try:
        for data in ({"robot": "sneaky"}, {"robot": "sneaky", "csrf": "forged"}):
            r = session.http.post("/robots", data=data)
            assert r.status_code == 403, r.text
            assert "security token" in r.text
        assert "sneaky" not in session.http.get("/robots").text
        ok = session.http.post("/robots", data={"robot": "legit", "csrf": session.csrf})
        assert ok.status_code == 200 and "legit" in ok.text
        # Signing in without the form's token is refused too (login CSRF).
        r = session.http.post("/signin", data={"user": alice.name, "password": PASSWORD})
        assert r.status_code == 403, r.text
    finally:
        session.close()


def test_another_users_project_is_404(
    page: Page,
    server: ServerProcess,
    yard_id: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    mallory = new_person(server, tmp_path_factory.mktemp("mallory"))
    sign_in(page, server.url, mallory.name, PASSWORD)
    page.wait_for_url("**/projects")
    for path in (f"/p/{yard_id}", f"/p/{yard_id}/history", f"/p/{yard_id}/v/1"):
        r = page.goto(server.url + path)
        assert r is not None and r.status == 404, path
        assert page.locator(".error-title").inner_text() == f"no project {yard_id}"


def test_sign_out_ends_the_session_on_the_server(
    page: Page, server: ServerProcess, alice: Person
) -> None:
    sign_in(page, server.url, alice.name, PASSWORD)
    page.wait_for_url("**/projects")
    cookies = page.context.cookies()
    session = next(c for c in cookies if c["name"] == "robosync_session")
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    page.click("#signout")
    page.wait_for_url("**/signin")
    page.goto(server.url + "/projects")
    assert "/signin" in page.url
    # The old cookie, replayed, no longer opens anything.
    page.context.add_cookies([session])
    page.goto(server.url + "/projects")
    assert "/signin" in page.url


def test_sign_in_attempts_are_rate_limited_per_user(
    page: Page, server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    victim = new_person(server, tmp_path_factory.mktemp("victim"))
    for _ in range(5):
        sign_in(page, server.url, victim.name, "guess")
        assert page.locator("#signin-error").count() == 1
    sign_in(page, server.url, victim.name, PASSWORD)  # even the right one, now
    assert "too many sign-in attempts" in page.locator(".error-title").inner_text()
    assert "/signin" in page.url
    assert page.locator("text=Try again in").count() == 1


def test_api_docs_load_without_internet(page: Page, server: ServerProcess) -> None:
    outside: list[str] = []

    def only_local(route: object) -> None:
        url = route.request.url  # type: ignore[attr-defined]
        if url.startswith(server.url):
            route.continue_()  # type: ignore[attr-defined]
        else:
            outside.append(url)
            route.abort()  # type: ignore[attr-defined]

    page.route("**/*", only_local)
    page.goto(server.url + "/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "robosync" in page.locator(".swagger-ui .info .title").inner_text()
    assert outside == []
