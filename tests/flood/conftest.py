"""Fixtures of the flood and replica tests: Redis, and servers of the test's own."""

from __future__ import annotations

from tests.faults.conftest import Lab, fresh_env, lab, site_on  # noqa: F401  (fixtures)
