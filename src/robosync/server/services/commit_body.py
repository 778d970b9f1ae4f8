"""Read a commit's NDJSON body as it streams in, with caps, into a compact delta.

No database work happens here: the body is fully read and validated before a
transaction is opened, so a slow robot never holds a lock.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from pydantic import TypeAdapter, ValidationError

from robosync.errors import InvalidInput, PayloadTooLarge
from robosync.paths import path_problem
from robosync.protocol import Change, CommitHeader, DeleteOp, PutOp

_CHANGE: TypeAdapter[PutOp | DeleteOp] = TypeAdapter(Change)


@dataclass(frozen=True)
class BodyLimits:
    """Caps on a commit body."""

    max_lines: int
    max_line_bytes: int
    max_body_bytes: int


@dataclass
class CommitDelta:
    """A parsed commit: header, puts ``path -> (digest, size)``, deleted paths, body hash."""

    header: CommitHeader
    puts: dict[str, tuple[str, int]] = field(default_factory=dict)
    deletes: set[str] = field(default_factory=set)
    body_sha256: str = ""

    def paths(self) -> list[str]:
        """Every path the commit touches."""
        return [*self.puts, *self.deletes]


class _Parser:
    def __init__(self, limits: BodyLimits) -> None:
        self.limits = limits
        self.delta: CommitDelta | None = None
        self.line_no = 0

    def feed_line(self, raw: bytes) -> None:
        self.line_no += 1
        raw = raw.strip()
        if not raw:
            return
        try:
            obj = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidInput(
                f"line {self.line_no}: not a JSON object ({e})", {"line": self.line_no}
            ) from e
        if self.delta is None:
            self.delta = CommitDelta(header=self._header(obj))
            return
        if len(self.delta.puts) + len(self.delta.deletes) >= self.limits.max_lines:
            raise PayloadTooLarge(
                f"a commit may have at most {self.limits.max_lines} lines; split it",
                {"max_lines": self.limits.max_lines},
            )
        self._change(obj, self.delta)

    def _header(self, obj: object) -> CommitHeader:
        try:
            return CommitHeader.model_validate(obj)
        except ValidationError as e:
            raise InvalidInput(
                f"line {self.line_no}: the first line must be the commit header "
                f"{{base_version, message}} ({_first_error(e)})",
                {"line": self.line_no, "errors": _errors(e)},
            ) from e

    def _change(self, obj: object, delta: CommitDelta) -> None:
        try:
            change = _CHANGE.validate_python(obj)
        except ValidationError as e:
            raise InvalidInput(
                f"line {self.line_no}: not a put or delete line ({_first_error(e)})",
                {"line": self.line_no, "errors": _errors(e)},
            ) from e
        reason = path_problem(change.path)
        if reason is not None:
            raise InvalidInput(
                f"line {self.line_no}: invalid path {change.path!r}: {reason}",
                {"line": self.line_no, "path": change.path, "reason": reason},
            )
        if change.path in delta.puts or change.path in delta.deletes:
            raise InvalidInput(
                f"line {self.line_no}: path {change.path!r} appears twice in the commit",
                {"line": self.line_no, "path": change.path},
            )
        if isinstance(change, PutOp):
            delta.puts[change.path] = (change.digest, change.size)
        else:
            delta.deletes.add(change.path)


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else str(err["msg"])


def _errors(e: ValidationError) -> list[dict[str, object]]:
    return [{"loc": list(err["loc"]), "msg": err["msg"]} for err in e.errors()]


async def read_commit(chunks: AsyncIterator[bytes], limits: BodyLimits) -> CommitDelta:
    """Parse an NDJSON commit body from ``chunks`` line by line, enforcing ``limits``."""
    parser = _Parser(limits)
    hasher = hashlib.sha256()
    pending = b""
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > limits.max_body_bytes:
            raise PayloadTooLarge(
                f"commit body over {limits.max_body_bytes} bytes; split it",
                {"max_body_bytes": limits.max_body_bytes},
            )
        hasher.update(chunk)
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            _check_line_size(line, parser.line_no + 1, limits)
            parser.feed_line(line)
        _check_line_size(pending, parser.line_no + 1, limits)
    parser.feed_line(pending)
    if parser.delta is None:
        raise InvalidInput("empty commit body: the first line must be {base_version, message}")
    parser.delta.body_sha256 = hasher.hexdigest()
    return parser.delta


def _check_line_size(line: bytes, line_no: int, limits: BodyLimits) -> None:
    if len(line) > limits.max_line_bytes:
        raise PayloadTooLarge(
            f"line {line_no}: longer than {limits.max_line_bytes} bytes",
            {"line": line_no, "max_line_bytes": limits.max_line_bytes},
        )
