"""The client's trust boundary: what the server sends is checked before the folder is touched.

A server may be compromised, buggy or impersonated, and a metadata row may be
corrupted, so every manifest line, changes line and download answer is
untrusted input. A path must pass the shared path rules
(:func:`robosync.paths.path_problem`: relative, no ``..``, no backslash or
control character, NFC, not inside ``.robosync/``, at most 1024 bytes) and
must not name one of the client's own temp files (``.robosync-tmp-*``, which
a scan ignores, so such a file would look deleted). A bad path fails the
whole command before anything is written or deleted, with one line naming it.

A download answer may only carry digests that were asked for, with an
``http(s)`` URL. Digests and sizes are never believed: every byte received is
verified against the digest and size of the project's entry
(:mod:`robosync.client.transfer`), and a file the bytes do not prove is not
written. Writes and deletes never go through a symlink
(:mod:`robosync.client.confined`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from robosync.client.deferred import wire
from robosync.client.scan import is_temp_name
from robosync.errors import RobosyncError
from robosync.paths import path_problem

T = TypeVar("T")


class UntrustedAnswer(RobosyncError):
    """The server sent something the client refuses to act on."""

    status = 502
    code = "bad_server_answer"


def _refuse(what: str, detail: str, details: dict[str, object]) -> UntrustedAnswer:
    return UntrustedAnswer(
        f"the server sent {what} ({detail}); nothing was written or deleted; "
        "report it to the server's operator",
        details,
    )


def path_refusal(path: str) -> str | None:
    """Why the client will not act on a server-sent ``path``; ``None`` if it may."""
    problem = path_problem(path)
    if problem is not None:
        return problem
    if any(is_temp_name(name) for name in path.split("/")):
        return "a robosync temp file name"
    return None


def checked_path(path: str, source: str) -> str:
    """``path`` if the client may act on it, else raise :class:`UntrustedAnswer` naming it."""
    reason = path_refusal(path)
    if reason is not None:
        raise _refuse(f"an invalid path {path!r} in {source}", reason, {"path": path})
    return path


def checked_entries(entries: Iterable[wire.ManifestEntry]) -> Iterator[wire.ManifestEntry]:
    """Manifest entries, each path and size checked."""
    for e in entries:
        checked_path(e.path, "a manifest")
        if e.size < 0:
            raise _refuse(f"a negative size for {e.path!r} in a manifest", str(e.size), {})
        yield e


def checked_changes(
    ops: Iterable[wire.PutOp | wire.DeleteOp],
) -> Iterator[wire.PutOp | wire.DeleteOp]:
    """Changes lines (puts and deletes alike), each path checked."""
    for op in ops:
        checked_path(op.path, f"a {op.op} in the changes")
        yield op


def parsed_lines(lines: Iterable[T], what: str) -> Iterator[T]:
    """Re-raise a line that does not fit its message as one :class:`UntrustedAnswer`."""
    it = iter(lines)
    while True:
        try:
            item = next(it)
        except StopIteration:
            return
        except wire.WireError as e:
            raise _refuse(f"a malformed {what} line", str(e), {}) from e
        yield item


def checked_answer(cls: type[T], data: bytes) -> T:
    """The JSON answer ``data`` as message ``cls``, else :class:`UntrustedAnswer` saying why."""
    try:
        return wire.decode(cls, data)
    except wire.WireError as e:
        raise _refuse(f"a malformed {cls.__name__} answer", str(e), {}) from e


def checked_links(
    asked: Iterable[str], links: Iterable[wire.DownloadLink]
) -> list[wire.DownloadLink]:
    """Download links: one per digest asked for, none other, each with an http(s) URL."""
    wanted = set(asked)
    out: list[wire.DownloadLink] = []
    for link in links:
        if link.digest not in wanted:
            raise _refuse(
                "a download link for a digest it was not asked for",
                link.digest,
                {"digest": link.digest},
            )
        wanted.discard(link.digest)
        # The scheme is what precedes the first colon (a cheaper read than urlsplit's,
        # which also forgives leading blanks: this check does not).
        scheme = link.url.partition(":")[0].lower()
        if scheme not in ("http", "https"):
            raise _refuse(
                f"a download link that is not http(s) for {link.digest}",
                scheme if ":" in link.url and scheme else "no scheme",
                {"digest": link.digest},
            )
        out.append(link)
    if wanted:
        first = sorted(wanted)[0]
        raise _refuse(
            f"no download link for {len(wanted)} digest(s) it was asked for",
            f"first {first}",
            {"missing": sorted(wanted)},
        )
    return out
