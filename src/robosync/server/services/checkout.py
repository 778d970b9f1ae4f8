"""A version must be checkable out: no path is both a file and a folder.

Run inside the commit's transaction after its rows are written, so the live
rows (``removed_in IS NULL``) are exactly the new version. Only paths the
commit adds can create a clash (the previous version passed this check), and
each is probed through the live case-key index ``(project_id, path_key)``:

* an ancestor folder of a new path is a live file: one equality probe per
  distinct ancestor key of the commit;
* a new path is a folder of a live path: one range probe per new path,
  ``key + '/' <= path_key < key + '0'`` (``'0'`` follows ``'/'`` in byte
  order, and both databases compare paths by byte).

Both are batched: one statement per 1000 keys over a ``json_each`` /
``unnest`` list, with a correlated ``LIMIT 1`` probe per key.

Keys are :func:`robosync.paths.case_key`, so ``Cam0`` against ``cam0/x.jpg``
is refused too: the version must also fit a case-insensitive file system.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import ColumnElement, String, collate, func, select, text, type_coerce
from sqlalchemy.orm import Session

from robosync.errors import Unprocessable
from robosync.paths import case_key
from robosync.server.db.models import File
from robosync.server.db.queries import pg_array

BATCH = 1000


def check_no_file_folder_clash(session: Session, project_id: int, new_paths: Sequence[str]) -> None:
    """Raise 422 if a path of ``new_paths`` is a file where a folder is needed, or the reverse."""
    if not new_paths:
        return
    session.flush()
    under_ancestor: dict[str, str] = {}  # ancestor key -> a new path below it
    for path in new_paths:
        key = case_key(path)
        cut = key.rfind("/")
        while cut > 0:
            under_ancestor.setdefault(key[:cut], path)
            cut = key.rfind("/", 0, cut)
    ancestors = sorted(under_ancestor)
    for start in range(0, len(ancestors), BATCH):
        found = _first_live(session, project_id, ancestors[start : start + BATCH], below=False)
        if found is not None:
            key, file = found
            _clash(file, under_ancestor[key])
    by_key = {case_key(p): p for p in new_paths}
    keys = sorted(by_key)
    for start in range(0, len(keys), BATCH):
        found = _first_live(session, project_id, keys[start : start + BATCH], below=True)
        if found is not None:
            key, below = found
            _clash(by_key[key], below)


def _first_live(
    session: Session, project_id: int, keys: list[str], *, below: bool
) -> tuple[str, str] | None:
    """``(key, live path)`` for the first key that is a live path (``below``: a live folder).

    One index probe per key, batched in one statement over a list of keys.
    """
    postgresql = session.get_bind().dialect.name == "postgresql"
    if postgresql:
        listed = func.unnest(pg_array(keys, String())).table_valued("k")
        listed = listed.render_derived(name="keys")
    else:
        listed = func.json_each(json.dumps(keys)).table_valued("value").alias("keys")
    key: ColumnElement[str] = type_coerce(listed.c[0], String)
    low, high = (key.concat("/"), key.concat("0")) if below else (key, key)
    if postgresql:  # the bounds must compare like the column for its index to apply
        low, high = collate(low, "C"), collate(high, "C")
    # A range in both cases (for a key itself, [key, key]): an equality would let the
    # planner skip the sort, so a plan that filters the whole project stays possible.
    upper = File.path_key < high if below else File.path_key <= high
    # Only path_key, in path_key order: inside a commit that just added
    # thousands of rows, PostgreSQL's statistics still say the project is
    # empty, and with File.path selected it probed the (project_id, path)
    # index and filtered every row of the project for each key (34 s for
    # 1,000 keys on 10,000 rows); this shape is an index-only probe.
    found = (
        select(File.path_key)
        .where(
            File.project_id == project_id,
            File.removed_in.is_(None),
            File.path_key >= low,
            upper,
        )
        .order_by(File.path_key)
        .limit(1)
        .scalar_subquery()
    )
    inner = select(key.label("key"), found.label("found")).select_from(listed).subquery()
    if postgresql:
        # After ANALYZE saw the project empty (its rows came later, or in this very
        # commit) the planner expects one row, scans the project by another index and
        # sorts: every key then filters the whole project (4 s per 1000 keys on 10k rows,
        # bench/scale.py). Without sorts the only plan left is the range scan of the live
        # (project_id, path_key) index, which is the right one at any size.
        session.execute(text("SET LOCAL enable_sort = off"))
    try:
        row = session.execute(
            select(inner.c.key, inner.c.found).where(inner.c.found.is_not(None)).limit(1)
        ).first()
    finally:
        if postgresql:
            session.execute(text("RESET enable_sort"))
    if row is None:
        return None
    path = session.scalar(
        select(File.path).where(
            File.project_id == project_id,
            File.removed_in.is_(None),
            File.path_key == row.found,
        )
    )
    return row.key, path or row.found


def _clash(file: str, below: str) -> None:
    raise Unprocessable(
        f"path {file!r} would be a file and also the folder of {below!r} (a check-out "
        "cannot hold both, on a case-insensitive file system either); rename one",
        {"paths": [file, below]},
    )
