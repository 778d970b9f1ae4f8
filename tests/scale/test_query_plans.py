"""On PostgreSQL the hot queries touch one ``files`` partition and use indexes.

The statements are the ones the services really send: they are recorded while
a commit, manifests, changes, a download plan and a presence check run against
a partitioned database of 324k ``files`` rows in 640 projects and 100k blobs (filled with COPY,
then VACUUM ANALYZE), and each is then EXPLAINed with its own parameters.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from sqlalchemy import event

from robosync.protocol import CommitHeader
from robosync.server.db import migrate
from robosync.server.db.engine import Database
from robosync.server.services.accounts import Principal
from robosync.server.services.blobs import present_digests
from robosync.server.services.commit_body import CommitDelta
from robosync.server.services.commits import commit
from robosync.server.services.downloads import presign_downloads
from robosync.server.services.manifests import iter_changes, iter_manifest
from robosync.server.store.local import LocalStore
from tests.fixtures.postgres import fresh_database, postgres_reachable
from tests.scale import synthetic

PROJECTS = 640
USERS = 40
BLOBS = 100_000
SPREAD_ROWS = 320_000  # over all projects: each is ~5% of its partition
BIG_ROWS = 4_000  # more rows for project 1 (a 3-page manifest)
PROJECT = 1
OWNER = 1 + PROJECT % USERS


@dataclass
class Recorded:
    """SQL statements an engine sent, with their parameters, while recording."""

    statements: list[tuple[str, Any]] = field(default_factory=list)
    on: bool = True

    def before(self, _conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        """``before_cursor_execute`` listener."""
        if self.on:
            self.statements.append((statement, params))


@pytest.fixture(scope="module")
def filled_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """A migrated, partitioned PostgreSQL database with synthetic rows, analyzed."""
    problem = postgres_reachable()
    if problem is not None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(problem)
        pytest.skip(problem)
    with fresh_database("robosync_plans") as url:
        db = Database(url)
        migrate.upgrade(db.engine)
        with psycopg.connect(synthetic.libpq_url(url)) as conn:
            synthetic.fill_accounts(conn, USERS, PROJECTS)
            synthetic.fill_blobs(conn, 0, BLOBS)
            synthetic.fill_files(conn, 0, SPREAD_ROWS, PROJECTS, BLOBS)
            synthetic.fill_files(conn, SPREAD_ROWS, SPREAD_ROWS + BIG_ROWS, 1, BLOBS)
            synthetic.possess_all(conn, f"synthetic-user-{OWNER}")
            synthetic.vacuum_analyze(conn)
        try:
            yield db
        finally:
            db.dispose()


def _record(db: Database) -> Recorded:
    recorded = Recorded()
    event.listen(db.engine, "before_cursor_execute", recorded.before)
    return recorded


def _live_paths(db: Database, project: int, count: int) -> list[str]:
    with db.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT path FROM files WHERE project_id = %(p)s AND removed_in IS NULL"
            " ORDER BY path LIMIT %(n)s",
            {"p": project, "n": count},
        )
        return [r[0] for r in rows]


def _exercise_services(db: Database, tmp: Any, live: list[str]) -> None:
    """Run the services the API calls for a commit, manifests, changes and downloads."""
    puts = {p: (synthetic.blob(i).digest, synthetic.blob(i).size) for i, p in enumerate(live[:80])}
    puts.update(
        {f"new/{i}.jpg": (synthetic.blob(i).digest, synthetic.blob(i).size) for i in range(20)}
    )
    delta = CommitDelta(
        header=CommitHeader(base_version=2, message="plans"),
        puts=puts,
        deletes=set(live[100:120]),
    )
    answer = commit(db, Principal(OWNER, f"synthetic-user-{OWNER}", "robot"), PROJECT, delta, None)
    assert answer.status == 201, answer.body
    for version in (3, 1):
        assert sum(1 for _ in iter_manifest(db, PROJECT, version)) > 0
    assert sum(1 for _ in iter_changes(db, PROJECT, 2, 3)) > 0
    store = LocalStore(tmp, "http://127.0.0.1:1", b"k" * 32)
    presign_downloads(db, store, PROJECT, [d for d, _ in list(puts.values())[:50]])
    with db.reading() as session:
        present_digests(session, [synthetic.blob(7).digest])


def _plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


def _explain(db: Database, statement: str, params: Any) -> list[dict[str, Any]]:
    with db.engine.connect() as conn:
        raw = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, params).scalar_one()
    doc = raw if isinstance(raw, list) else json.loads(raw)
    return list(_plan_nodes(doc[0]["Plan"]))


def _touches(statement: str, table: str) -> bool:
    words = statement.replace("(", " ").replace(",", " ").split()
    return table in words and not statement.lstrip().upper().startswith("INSERT")


@pytest.fixture(scope="module")
def plans(filled_db: Database, tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, Any]]:
    """(statement, plan nodes) of every files/blobs statement the services sent.

    The last one is the presence check of a single digest.
    """
    live = _live_paths(filled_db, PROJECT, 120)
    recorded = _record(filled_db)
    _exercise_services(filled_db, tmp_path_factory.mktemp("store"), live)
    recorded.on = False
    found = [
        (s, _explain(filled_db, s, p))
        for s, p in recorded.statements
        if _touches(s, "files") or _touches(s, "blobs")
    ]
    assert len(found) >= 8, [s for s, _ in found]
    return found


def _project_partition(db: Database) -> str:
    with db.engine.connect() as conn:
        return str(
            conn.exec_driver_sql(
                "SELECT tableoid::regclass::text FROM files WHERE project_id = %(p)s LIMIT 1",
                {"p": PROJECT},
            ).scalar_one()
        )


def test_project_queries_read_only_the_projects_partition(
    filled_db: Database, plans: list[tuple[str, Any]]
) -> None:
    own = _project_partition(filled_db)
    for statement, nodes in plans:
        if not _touches(statement, "files"):
            continue
        scanned = {
            n["Relation Name"] for n in nodes if n.get("Relation Name", "").startswith("files_")
        }
        assert scanned == {own}, (statement, scanned)


def test_project_queries_use_indexes_not_seq_scans(plans: list[tuple[str, Any]]) -> None:
    for statement, nodes in plans:
        if not _touches(statement, "files"):
            continue
        seq = [n["Relation Name"] for n in nodes if n["Node Type"] == "Seq Scan"]
        assert not [r for r in seq if r.startswith("files")], (statement, seq)
        assert any("Index" in n["Node Type"] for n in nodes), statement


def test_a_blob_lookup_probes_the_digest_index(plans: list[tuple[str, Any]]) -> None:
    # Batches of ~1000 digests hit every partition by nature; whether the planner
    # probes their indexes or reads small partitions in one pass depends on table
    # size (it probes at 1.5M blobs: bench/scale.py). A lookup of one digest must
    # probe the primary key; which partition is decided at run time.
    statement, nodes = plans[-1]
    assert _touches(statement, "blobs"), statement
    scanned = [n for n in nodes if n.get("Relation Name", "").startswith("blobs_")]
    assert scanned, statement
    assert all("Index" in n["Node Type"] and "digest" in n["Index Cond"] for n in scanned), (
        statement,
        scanned,
    )
