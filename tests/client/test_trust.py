"""What the client refuses to act on from the server (pure checks)."""

from __future__ import annotations

import pytest

from robosync.client.trust import UntrustedAnswer, checked_links, path_refusal
from robosync.client.wire import DownloadLink

A, B = "a" * 64, "b" * 64


@pytest.mark.parametrize(
    ("path", "refused"),
    [
        ("cam0/a.png", False),
        ("cam0/.robosync/a.png", False),  # only the top-level .robosync/ is the client's
        ("../a.png", True),
        ("/etc/passwd", True),
        (".robosync/index.sqlite", True),
        ("cam0/.robosync-tmp-x", True),
        ("a\\b.png", True),
        ("cafe\u0301.png", True),
    ],
)
def test_path_refusal(path: str, refused: bool):
    assert (path_refusal(path) is not None) == refused


def test_links_must_answer_exactly_the_digests_asked_with_http_urls():
    ok = [
        DownloadLink(digest=A, size=1, url="https://s3/x"),
        DownloadLink(digest=B, size=1, url="http://s3/y"),
    ]
    assert checked_links([A, B], ok) == ok
    with pytest.raises(UntrustedAnswer, match="not asked for"):
        checked_links([A], ok)
    with pytest.raises(UntrustedAnswer, match="no download link"):
        checked_links([A, B], ok[:1])
    with pytest.raises(UntrustedAnswer, match="not http"):
        checked_links([A], [DownloadLink(digest=A, size=1, url="file:///etc/passwd")])
