"""Project path rules shared by client and server."""

from __future__ import annotations

import unicodedata

import pytest

from robosync.paths import InvalidPath, case_key, normalize_path, path_problem, validate_path

VALID = ["a.jpg", "cam0/2026/11/img_0001.png", "ünïcode/名前.jpg", "a b/c-d_e.f", "x" * 1024]

INVALID = [
    ("", "empty"),
    ("/abs.jpg", "absolute"),
    ("C:/x.jpg", "drive"),
    ("a/../b.jpg", ".."),
    ("..", ".."),
    ("a\\b.jpg", "backslash"),
    ("a\x00b.jpg", "control"),
    ("a\nb.jpg", "control"),
    ("a\x7fb.jpg", "control"),
    ("a//b.jpg", "empty"),
    ("a/./b.jpg", "empty"),
    ("dir/", "empty"),
    (".robosync/index.sqlite", "reserved"),
    ("é" * 513, "longer"),
    (unicodedata.normalize("NFD", "café.jpg"), "NFC"),
    (b"\xff\xfe.jpg", "UTF-8"),
]


@pytest.mark.parametrize("path", VALID)
def test_valid_paths_pass(path: str) -> None:
    assert validate_path(path) == path


@pytest.mark.parametrize(("path", "reason"), INVALID)
def test_invalid_paths_are_refused_with_a_reason(path: str | bytes, reason: str) -> None:
    problem = path_problem(path)
    assert problem is not None and reason in problem
    with pytest.raises(InvalidPath) as e:
        validate_path(path)
    assert reason in str(e.value)


def test_nfd_name_from_disk_normalises_to_a_valid_path() -> None:
    nfd = unicodedata.normalize("NFD", "café.jpg")
    assert path_problem(normalize_path(nfd)) is None


def test_case_only_twins_share_a_case_key() -> None:
    assert case_key("Cam/IMG.jpg") == case_key("cam/img.JPG")
    assert case_key("a.jpg") != case_key("b.jpg")
