"""Array parameters sent as one text literal reach PostgreSQL exactly as the Python list.

Every batched lookup of a commit (paths, digests, ids) goes through
``robosync.server.db.queries.pg_array``; a path that came back different would
make a commit miss a live row or close the wrong one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import BigInteger, String, create_engine, select
from sqlalchemy.engine import Engine

from robosync.server.db.queries import pg_array

# PostgreSQL text holds neither NUL nor lone surrogates; project paths never contain them.
CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
TEXTS = st.lists(st.text(CHARS, max_size=40), max_size=30)
AWKWARD = ['a"b', "back\\slash", "trailing\\", "{braces}", "com,ma", "NULL", "", " sp ", "ü/ß"]


@pytest.fixture(scope="module")
def engine(pg_url: str) -> Iterator[Engine]:
    eng = create_engine(pg_url)
    yield eng
    eng.dispose()


def round_trip(engine: Engine, values: list, element) -> list:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return list(conn.scalar(select(pg_array(values, element))))


def test_awkward_strings_and_big_integers_come_back_unchanged(engine: Engine) -> None:
    assert round_trip(engine, AWKWARD, String()) == AWKWARD
    assert round_trip(engine, [1, 2**40, 7], BigInteger()) == [1, 2**40, 7]
    assert round_trip(engine, [], String()) == []


@settings(max_examples=150, deadline=None)
@given(values=TEXTS)
def test_any_strings_come_back_unchanged(engine: Engine, values: list[str]) -> None:
    assert round_trip(engine, values, String()) == values


def test_the_array_reaches_the_planner_as_a_constant(engine: Engine) -> None:
    # A constant array is what lets PostgreSQL hash a 1000-value `= ANY` and plan index
    # probes; a cast of a typed parameter stayed an expression (and a commit took seconds).
    stmt = select(pg_array(["a", "b"], String(64)))
    compiled = stmt.compile(dialect=engine.dialect)
    with engine.connect() as conn:
        plan = conn.exec_driver_sql("EXPLAIN VERBOSE " + str(compiled), compiled.params).all()
    output = " ".join(row[0] for row in plan)
    assert "'{a,b}'" in output and "cstring" not in output, output
