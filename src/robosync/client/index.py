"""The local index of a project folder: ``.robosync/index.sqlite`` and ``config.json``.

``files``: every path this folder knows, with ``size, mtime_ns, inode`` (so an
unchanged file is never re-hashed), its digest and block hashes, and a state:

* ``local``: the file is on disk;
* ``evicted``: the user freed its disk (``evict``); it is on the server;
* ``remote``: it came from another robot through a merge and was not
  downloaded yet; ``pull`` and ``fetch`` bring it;
* ``landing``: a download is writing it and has not yet flushed it to disk;
  its digest is the one expected. A crash (power loss) can leave such a file
  empty or torn, so a scan hashes it again: the expected content becomes
  ``local``; anything else is never committed and the next pull writes the
  file again.

A ``local`` row whose digest is ``UNHASHED`` is a file on disk of unknown
content (left out of a push while it changed or could not be read): a local
change equal to no digest, hashed by the next scan.

``base``: the manifest of the version this folder last synced (``meta``
holds its number). The local changes are ``files`` against ``base``; a path in
``evicted``/``remote`` state is not a deletion.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from robosync.client.merge import Change, Entry
from robosync.values import FrozenValue, Value

DIRNAME = ".robosync"
INDEX_FILE = "index.sqlite"
# Parameters of one ``IN (...)`` query (SQLite allows 32,766 since 3.32).
_IN_BATCH = 500
CONFIG_FILE = "config.json"

LOCAL, EVICTED, REMOTE, LANDING = "local", "evicted", "remote", "landing"
# The digest of a file on disk whose content is not known (left out while it
# was changing or unreadable): equal to no digest, never sent to the server.
UNHASHED = ""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    digest TEXT NOT NULL,
    blocks BLOB,
    state TEXT NOT NULL DEFAULT 'local'
);
CREATE INDEX IF NOT EXISTS files_digest ON files (digest);
CREATE TABLE IF NOT EXISTS base (
    path TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True, eq=False, repr=False)
class ProjectConfig(FrozenValue):
    """Which server and project a folder belongs to, and the robot's name."""

    server: str
    project_id: int
    project_name: str
    robot: str

    def save(self, root: Path) -> None:
        """Write ``.robosync/config.json`` atomically."""
        target = root / DIRNAME / CONFIG_FILE
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, target)

    @classmethod
    def load(cls, root: Path) -> ProjectConfig:
        """Read ``.robosync/config.json``."""
        data = json.loads((root / DIRNAME / CONFIG_FILE).read_text(encoding="utf-8"))
        return cls(
            server=str(data["server"]),
            project_id=int(data["project_id"]),
            project_name=str(data["project_name"]),
            robot=str(data["robot"]),
        )


@dataclass(frozen=True, eq=False, repr=False)
class FileRow(FrozenValue):
    """One row of ``files``."""

    path: str
    size: int
    mtime_ns: int
    inode: int
    digest: str
    blocks: bytes | None
    state: str

    @property
    def entry(self) -> Entry:
        """The content of this path."""
        return Entry(self.digest, self.size)

    def block_hashes(self) -> list[str]:
        """The block SHA-256s as hex (empty if unknown)."""
        raw = self.blocks or b""
        return [raw[i : i + 32].hex() for i in range(0, len(raw), 32)]


@dataclass(eq=False, repr=False)
class LocalDelta(Value):
    """Local changes against the base; ``evicted``/``remote`` paths are not deletions."""

    added: dict[str, Entry]
    modified: dict[str, Entry]
    deleted: list[str]

    def changes(self) -> dict[str, Change]:
        """All changes as path → entry (``None`` for a deletion)."""
        out: dict[str, Change] = {**self.added, **self.modified}
        out.update({p: None for p in self.deleted})
        return out

    def __bool__(self) -> bool:
        return bool(self.added or self.modified or self.deleted)


class Index:
    """The SQLite index of one project folder (one connection, one thread)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / DIRNAME).mkdir(exist_ok=True)
        # A Project may be handed between threads (one at a time; the folder lock
        # serialises commands), so the connection is not bound to its creator.
        self.db = sqlite3.connect(
            root / DIRNAME / INDEX_FILE, isolation_level=None, check_same_thread=False
        )
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the block in one transaction."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # --- meta -------------------------------------------------------------

    def _meta(self, key: str, default: str) -> str:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else default

    def _set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    @property
    def base_version(self) -> int:
        """The version the base manifest is."""
        return int(self._meta("base_version", "0"))

    @base_version.setter
    def base_version(self, value: int) -> None:
        self._set_meta("base_version", str(value))

    # --- files ------------------------------------------------------------

    def file_rows(self) -> Iterator[FileRow]:
        """Every row of ``files``."""
        for r in self.db.execute("SELECT * FROM files"):
            yield FileRow(*r)

    def file(self, path: str) -> FileRow | None:
        """The row of ``path``, if any."""
        r = self.db.execute("SELECT * FROM files WHERE path = ?", (path,)).fetchone()
        return FileRow(*r) if r else None

    def files_with_digest(self, digest: str) -> list[FileRow]:
        """Local files that hold ``digest`` (candidates to copy instead of download)."""
        rows = self.db.execute(
            "SELECT * FROM files WHERE digest = ? AND state = ?", (digest, LOCAL)
        ).fetchall()
        return [FileRow(*r) for r in rows]

    def digests_held(self, digests: Iterable[str]) -> set[str]:
        """Those of ``digests`` that some local file holds (a handful of queries, where one
        :meth:`files_with_digest` each cost a clone of 10,000 files a quarter second)."""
        held: set[str] = set()
        wanted = list(digests)
        for i in range(0, len(wanted), _IN_BATCH):
            batch = wanted[i : i + _IN_BATCH]
            marks = ",".join("?" * len(batch))
            held.update(
                r[0]
                for r in self.db.execute(
                    f"SELECT DISTINCT digest FROM files WHERE state = ? AND digest IN ({marks})",
                    (LOCAL, *batch),
                )
            )
        return held

    def put_files(self, rows: Iterable[FileRow]) -> None:
        """Insert or replace rows."""
        self.db.executemany(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)",
            ((r.path, r.size, r.mtime_ns, r.inode, r.digest, r.blocks, r.state) for r in rows),
        )

    def remove_files(self, paths: Iterable[str]) -> None:
        """Forget these paths."""
        self.db.executemany("DELETE FROM files WHERE path = ?", ((p,) for p in paths))

    def mark_unhashed(self, paths: Iterable[str]) -> None:
        """Record these files on disk as of unknown content: hashed by the next scan.

        A file left out of a push (changing, unreadable) must not keep a
        digest of bytes it may no longer have: with its base digest a pull
        would take it for the unchanged base version and overwrite it, with
        no row a pull would write a remote file over it. An unhashed row is
        a local change no digest equals, so a merge keeps both.
        """
        # A landing row is re-verified anyway, against the digest it must have;
        # as an unhashed local row, a torn file could be committed.
        self.db.executemany(
            "INSERT INTO files (path, size, mtime_ns, inode, digest, blocks, state) "
            "VALUES (?, 0, -1, 0, ?, NULL, ?) ON CONFLICT (path) DO UPDATE SET "
            "mtime_ns = -1, digest = excluded.digest, blocks = NULL, state = excluded.state "
            "WHERE files.state != ?",
            ((p, UNHASHED, LOCAL, LANDING) for p in paths),
        )

    def mark_landing(self, entries: Iterable[tuple[str, Entry]]) -> None:
        """Record files a download is about to write, with the content expected of each."""
        self.put_files(FileRow(p, e.size, -1, 0, e.digest, None, LANDING) for p, e in entries)

    def set_remote_only(self, path: str, entry: Entry, state: str) -> None:
        """Record ``path`` as known but not on disk (``evicted`` or ``remote``)."""
        self.set_remote_only_many([(path, entry)], state)

    def set_remote_only_many(self, entries: Iterable[tuple[str, Entry]], state: str) -> None:
        """:meth:`set_remote_only` of many paths in one statement."""
        self.put_files(FileRow(p, e.size, 0, 0, e.digest, None, state) for p, e in entries)

    def paths_in_state(self, state: str) -> list[FileRow]:
        """Rows in ``state``, by path."""
        rows = self.db.execute(
            "SELECT * FROM files WHERE state = ? ORDER BY path", (state,)
        ).fetchall()
        return [FileRow(*r) for r in rows]

    def count_in_state(self, state: str) -> int:
        """How many rows are in ``state``."""
        row = self.db.execute("SELECT count(*) FROM files WHERE state = ?", (state,)).fetchone()
        return int(row[0])

    # --- base -------------------------------------------------------------

    def base_entry(self, path: str) -> Entry | None:
        """The base manifest's entry of ``path``."""
        r = self.db.execute("SELECT digest, size FROM base WHERE path = ?", (path,)).fetchone()
        return Entry(r[0], r[1]) if r else None

    def base_entries(self, paths: Iterable[str]) -> dict[str, Entry]:
        """Base entries of those of ``paths`` that are in the base."""
        out: dict[str, Entry] = {}
        for p in paths:
            e = self.base_entry(p)
            if e is not None:
                out[p] = e
        return out

    def base_manifest(self) -> dict[str, Entry]:
        """The whole base manifest, path → entry."""
        rows = self.db.execute("SELECT path, digest, size FROM base")
        return {p: Entry(d, s) for p, d, s in rows}

    def base_count(self) -> int:
        """Number of files in the base manifest."""
        return int(self.db.execute("SELECT COUNT(*) FROM base").fetchone()[0])

    def has_base_digest(self, digest: str) -> bool:
        """Whether some path of the base holds ``digest`` (so the server has the blob)."""
        q = "SELECT 1 FROM base WHERE digest = ? LIMIT 1"
        return self.db.execute(q, (digest,)).fetchone() is not None

    def is_committed(self, row: FileRow) -> bool:
        """Whether ``row``'s content is what the base holds for that same path."""
        return self.base_entry(row.path) == row.entry

    def clear_base(self) -> None:
        """Empty the base manifest."""
        self.db.execute("DELETE FROM base")

    def apply_to_base(self, changes: Iterable[tuple[str, Change]]) -> None:
        """Apply puts (entry) and deletes (``None``) to the base manifest."""
        last = dict(changes)  # a path changed twice ends as its last change says
        self.db.executemany(
            "DELETE FROM base WHERE path = ?", ((p,) for p, c in last.items() if c is None)
        )
        self.db.executemany(
            "INSERT OR REPLACE INTO base (path, digest, size) VALUES (?, ?, ?)",
            ((p, c.digest, c.size) for p, c in last.items() if c is not None),
        )

    # --- delta ------------------------------------------------------------

    def local_delta(self) -> LocalDelta:
        """Changes of ``files`` against ``base`` (run after a scan)."""
        added = {
            p: Entry(d, s)
            for p, d, s in self.db.execute(
                "SELECT f.path, f.digest, f.size FROM files f LEFT JOIN base b ON b.path = f.path "
                "WHERE b.path IS NULL ORDER BY f.path"
            )
        }
        modified = {
            p: Entry(d, s)
            for p, d, s in self.db.execute(
                "SELECT f.path, f.digest, f.size FROM files f JOIN base b ON b.path = f.path "
                "WHERE f.digest != b.digest ORDER BY f.path"
            )
        }
        deleted = [
            p
            for (p,) in self.db.execute(
                "SELECT b.path FROM base b LEFT JOIN files f ON f.path = b.path "
                "WHERE f.path IS NULL ORDER BY b.path"
            )
        ]
        return LocalDelta(added, modified, deleted)
