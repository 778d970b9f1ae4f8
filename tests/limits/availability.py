"""What a test does when a service it needs is missing."""

from __future__ import annotations

import os

import pytest


def service_missing(reason: str) -> None:
    """Fail in CI (a missing service there is a broken setup), skip elsewhere."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(reason)
    pytest.skip(reason)
