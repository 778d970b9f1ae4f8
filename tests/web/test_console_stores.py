"""The console's store paths on both setups (embedded; PostgreSQL + SeaweedFS):
thumbnails made, stored and decoded; full images by presigned GET; access."""

from __future__ import annotations

import hashlib

import pytest
from playwright.sync_api import Page

from tests.fixtures.server import ServerProcess
from tests.web.browser import sign_in, wait_for_images
from tests.web.people import PASSWORD, ConsoleSession, Person, jpeg, new_person, png16

IMAGES = {"cam/a.jpg": jpeg(11, (1600, 1200)), "cam/b.png": png16(12)}


@pytest.fixture(scope="module")
def pusher(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Person:
    """A person whose robot pushed a JPEG and a 16-bit PNG to project ``dock``."""
    person = new_person(server, tmp_path_factory.mktemp("pusher"), "dock")
    person.push(IMAGES)
    return person


def test_thumbnails_are_made_stored_and_decoded(
    page: Page, server: ServerProcess, pusher: Person
) -> None:
    session = ConsoleSession(server.url, pusher.name)
    project = session.project_id("dock")
    session.close()
    sign_in(page, server.url, pusher.name, PASSWORD)
    page.goto(f"{server.url}/p/{project}?prefix=cam/")
    widths = wait_for_images(page)
    assert len(widths) == 2 and all(0 < w <= 256 for w in widths), widths
    # The second view is served from the store with validators, not made again.
    src = page.locator("#grid img[alt='a.jpg']").get_attribute("src")
    first = page.request.get(server.url + str(src))
    assert first.status == 200 and first.headers["content-type"] == "image/webp"
    again = page.request.get(
        server.url + str(src), headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status == 304


def test_full_image_is_the_pushed_bytes_by_presigned_get(
    page: Page, server: ServerProcess, pusher: Person
) -> None:
    session = ConsoleSession(server.url, pusher.name)
    project = session.project_id("dock")
    raw = session.http.get(f"/p/{project}/raw", params={"path": "cam/a.jpg"})
    session.close()
    assert raw.status_code == 303
    url = raw.headers["location"]
    assert "/v1/store/" in url or "X-Amz-Signature" in url  # the store, not the API
    sign_in(page, server.url, pusher.name, PASSWORD)
    page.goto(f"{server.url}/p/{project}/file?path=cam/a.jpg")
    assert wait_for_images(page) == [1600]
    got = page.request.get(str(page.locator("#full").evaluate("img => img.currentSrc")))
    assert hashlib.sha256(got.body()).hexdigest() == hashlib.sha256(IMAGES["cam/a.jpg"]).hexdigest()
    assert got.headers["content-type"] == "image/jpeg"
    assert got.headers["content-disposition"].startswith('inline; filename="a.jpg"')


def test_another_users_thumbnail_and_image_are_404(
    server: ServerProcess, pusher: Person, tmp_path_factory: pytest.TempPathFactory
) -> None:
    owner = ConsoleSession(server.url, pusher.name)
    project = owner.project_id("dock")
    thumb = owner.http.get(f"/p/{project}?prefix=cam/").text.split("/thumb/")[1][:64]
    owner.close()
    other = new_person(server, tmp_path_factory.mktemp("other"), "own")
    other.push({"x.jpg": IMAGES["cam/a.jpg"]})  # the same bytes, in a project of its own
    intruder = ConsoleSession(server.url, other.name)
    try:
        for path in (f"/p/{project}/thumb/{thumb}", f"/p/{project}/raw?path=cam/a.jpg"):
            r = intruder.http.get(path)
            assert r.status_code == 404, path
            assert "location" not in r.headers
    finally:
        intruder.close()
