"""Typed HTTP client of the robosync API (``/v1``), every call through :class:`Retrying`.

Manifests, changes and commit bodies are NDJSON and stream: a manifest is
consumed line by line, a commit body is generated line by line. Every
manifest and changes line is checked (:mod:`robosync.client.trust`) as it is
read: the server is not trusted with the folder.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from robosync import __version__, apiwire
from robosync.client.bandwidth import BandwidthLimiter
from robosync.client.deferred import OnFirstUse, httpx, wire
from robosync.client.retry import Retrying
from robosync.client.settings import check_server_url
from robosync.client.trust import checked_answer, checked_changes, checked_entries, parsed_lines
from robosync.errors import RobosyncError, error_from_body

if TYPE_CHECKING:
    import ssl

    from robosync.client.apihttp import Answer, ApiHttp

_BODY_CHUNK = 64 * 1024
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")


def tls_trust_for(server: str) -> ssl.SSLContext | bool:
    """What the API client's httpx path (behind a proxy, or a given transport) verifies TLS
    with: the trust store, or nothing to trust at all.

    Making a client with the trust store took ~15 ms more (``status``: 0.165 -> 0.151 s,
    bench/startup.py). A plain ``http://`` server reached without a proxy never needs it,
    and gets a context that trusts no certificate: a TLS connection made through it anyway
    fails, it is never left unchecked. (Without a proxy the API goes over
    :class:`~robosync.client.apihttp.StdlibHttp`, which makes a TLS context only for
    ``https``.)
    """
    proxied = any(os.environ.get(v) or os.environ.get(v.upper()) for v in _PROXY_VARIABLES)
    if urlsplit(server).scheme == "https" or proxied:
        return True
    import ssl  # loaded by httpx already, which only a command that talks to the server loads

    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def error_of(resp: Answer | httpx.Response) -> RobosyncError:
    """The error an HTTP answer stands for, with ``http_status`` and ``retry_after`` details."""
    host = getattr(resp, "host", None) or resp.request.url.host  # type: ignore[union-attr]
    try:
        body: Any = resp.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    err = error_from_body(resp.status_code, body)
    if body is None:
        text = resp.text[:200].strip() if resp.content else ""
        err = RobosyncError(f"{host} answered HTTP {resp.status_code} {text}")
    err.details["http_status"] = resp.status_code
    ra = resp.headers.get("Retry-After")
    if ra is not None and "retry_after" not in err.details:
        with suppress(ValueError):
            err.details["retry_after"] = float(ra)
    return err


class Api:
    """A session with one server for one token."""

    def __init__(
        self,
        server: str,
        token: str,
        *,
        retrying: Retrying | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        limiter: BandwidthLimiter | None = None,
    ) -> None:
        self.server = check_server_url(server.rstrip("/"))
        # The cap the transfers of this session go through (blob bodies, up and down).
        self.limiter = limiter
        self.retrying = retrying or Retrying()
        # Until the server answers once, a refused connection fails fast
        # (see Retrying.call's first_contact).
        self.reached = False
        self._token = token
        self._timeout = timeout
        self._transport = transport
        self._http = OnFirstUse(self._new_http)

    @property
    def http(self) -> ApiHttp:
        """How requests travel (:mod:`robosync.client.apihttp`), made on first use: a command
        that needs no server (a no-op push) never pays for it."""
        return self._http.get()

    def _new_http(self) -> ApiHttp:
        # Imported here: http.client and ssl are not needed by a command without requests.
        from robosync.client.apihttp import HttpxHttp, StdlibHttp
        from robosync.client.storeget import direct_route

        headers = {
            "Authorization": f"Bearer {self._token}",
            "User-Agent": f"robosync/{__version__}",
        }
        base = self.server + apiwire.API_PREFIX
        if self._transport is None and direct_route(base):
            return StdlibHttp(base, headers, timeout=self._timeout, connect_timeout=10.0)
        client = httpx.Client(
            base_url=base,
            headers=headers,
            timeout=httpx.Timeout(self._timeout, connect=10.0),
            transport=self._transport,
            verify=tls_trust_for(self.server),
        )
        return HttpxHttp(client)

    def close(self) -> None:
        """Close the connections (if any were made)."""
        if (http := self._http.made) is not None:
            http.close()

    # --- plumbing ---------------------------------------------------------

    def _send_once(
        self,
        method: str,
        url: str,
        *,
        body: object | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        content: Callable[[], Iterable[bytes]] | None = None,
    ) -> Answer:
        if body is not None:
            headers = {"Content-Type": "application/json", **(headers or {})}
        resp = self.http.send(
            method,
            url,
            params=params,
            headers=headers,
            body=wire.dumps(body) if body is not None else content,
        )
        self.reached = True
        if resp.status_code >= 400:
            raise error_of(resp)
        return resp

    def _call(
        self, method: str, url: str, what: str, *, retrying: Retrying | None = None, **kw: Any
    ) -> Answer:
        return (retrying or self.retrying).call(
            lambda: self._send_once(method, url, **kw), what, first_contact=not self.reached
        )

    @contextmanager
    def _stream(
        self, url: str, params: dict[str, Any], what: str
    ) -> Iterator[tuple[int, Iterator[bytes]]]:
        def open_() -> tuple[ExitStack, Answer, Iterator[bytes]]:
            with ExitStack() as stack:
                resp, lines = stack.enter_context(self.http.stream(url, params))
                self.reached = True
                if resp.status_code >= 400:
                    raise error_of(resp)
                return stack.pop_all(), resp, lines

        stack, resp, lines = self.retrying.call(open_, what, first_contact=not self.reached)
        with stack:
            yield int(resp.headers.get(apiwire.VERSION_HEADER) or "0"), lines

    # --- projects ---------------------------------------------------------

    def create_project(self, name: str) -> wire.ProjectInfo:
        """Create a project owned by the token's user."""
        resp = self._call("POST", "/projects", "create project", body={"name": name})
        return checked_answer(wire.ProjectInfo, resp.content)

    def list_projects(self, name: str | None = None) -> list[wire.ProjectInfo]:
        """The projects the user may read (only those called ``name`` if given)."""
        found = self.project_list(name)
        return [p for p in found.projects if name is None or p.name == name]

    def project_list(
        self, name: str | None = None, owner: str | None = None, *, trash: bool = False
    ) -> wire.ProjectList:
        """Projects the user may read, own first, and the user's name.

        ``name``/``owner`` filter; ``trash``: the deleted projects the user
        administers instead.
        """
        params: dict[str, Any] = {"name": name, "owner": owner, "trash": trash or None}
        params = {k: v for k, v in params.items() if v}
        resp = self._call("GET", "/projects", "list projects", params=params or None)
        return checked_answer(wire.ProjectList, resp.content)

    def rename_project(self, project_id: int, name: str) -> wire.ProjectInfo:
        """Rename a project (admins); clones follow its id."""
        body = {"name": name}
        resp = self._call("PATCH", f"/projects/{project_id}", "rename project", body=body)
        return checked_answer(wire.ProjectInfo, resp.content)

    def delete_project(self, project_id: int) -> wire.ProjectInfo:
        """Move a project into the trash (admins)."""
        resp = self._call("DELETE", f"/projects/{project_id}", "delete project")
        return checked_answer(wire.ProjectInfo, resp.content)

    def restore_project(self, project_id: int) -> wire.ProjectInfo:
        """Take a project out of the trash (admins)."""
        resp = self._call("POST", f"/projects/{project_id}/restore", "restore project")
        return checked_answer(wire.ProjectInfo, resp.content)

    def members(self, project_id: int) -> list[wire.MemberInfo]:
        """The owner and members of a project, with their roles."""
        resp = self._call("GET", f"/projects/{project_id}/members", "list members")
        return checked_answer(wire.MemberList, resp.content).members

    def share(self, project_id: int, user: str, role: str) -> wire.MemberInfo:
        """Give ``user`` ``role`` (read, write or admin) in a project."""
        body = {"role": role}
        url = f"/projects/{project_id}/members/{quote(user, safe='')}"
        resp = self._call("PUT", url, "share project", body=body)
        return checked_answer(wire.MemberInfo, resp.content)

    def unshare(self, project_id: int, user: str) -> None:
        """Remove ``user`` from a project."""
        url = f"/projects/{project_id}/members/{quote(user, safe='')}"
        self._call("DELETE", url, "unshare project")

    def project(self, project_id: int) -> wire.ProjectInfo:
        """Info of one project."""
        resp = self._call("GET", f"/projects/{project_id}", "get project")
        return checked_answer(wire.ProjectInfo, resp.content)

    def project_once(self, project_id: int, timeout: float) -> wire.ProjectInfo:
        """Info of one project in one attempt of at most ``timeout`` seconds (no retries)."""
        resp = self.http.send("GET", f"/projects/{project_id}", timeout=timeout)
        self.reached = True
        if resp.status_code >= 400:
            raise error_of(resp)
        return checked_answer(wire.ProjectInfo, resp.content)

    def versions(self, project_id: int) -> wire.VersionList:
        """History of a project, newest first."""
        resp = self._call("GET", f"/projects/{project_id}/versions", "get versions")
        return checked_answer(wire.VersionList, resp.content)

    @contextmanager
    def manifest(
        self, project_id: int, version: int | None = None
    ) -> Iterator[tuple[int, Iterator[wire.ManifestEntry]]]:
        """``(version, entries)`` of a project version (head if ``None``), streamed and checked."""
        params = {"version": version} if version is not None else {}
        with self._stream(f"/projects/{project_id}/manifest", params, "get manifest") as (v, it):
            entries = (wire.decode_entry(line) for line in it)
            yield v, checked_entries(parsed_lines(entries, "manifest"))

    @contextmanager
    def changes(self, project_id: int, since: int) -> Iterator[tuple[int, Iterator[wire.Change]]]:
        """``(head, ops)`` taking version ``since`` to the head, streamed and checked."""
        params = {"since": since}
        with self._stream(f"/projects/{project_id}/changes", params, "get changes") as (v, it):
            ops = (wire.decode_change(line) for line in it)
            yield v, checked_changes(parsed_lines(ops, "changes"))

    # --- blobs ------------------------------------------------------------

    def plan_uploads(
        self,
        items: list[wire.UploadItem],
        *,
        early: bool = False,
        quota: wire.PushQuota | None = None,
    ) -> wire.UploadResponse:
        """Dedup check and presigned part URLs for up to 1000 blobs.

        ``early``: asked ahead of need, so a refusal for too many uploads in flight
        is raised at once (:class:`~robosync.errors.RateLimited`) instead of waited out.
        ``quota``: refused (:class:`~robosync.errors.QuotaExceeded`) before anything is
        planned if the push does not fit the project owner's quota.
        """
        impatient = dataclasses.replace(self.retrying, rate_limited_wait=0.0) if early else None
        body: dict[str, object] = {"items": items}
        if quota is not None:
            body["quota"] = quota
        resp = self._call("POST", "/uploads", "plan uploads", retrying=impatient, body=body)
        return checked_answer(wire.UploadResponse, resp.content)

    def complete_uploads(self, items: list[wire.CompleteItem]) -> wire.CompleteResponse:
        """Complete up to 1000 uploads; the server proves each digest."""
        body = {"items": items}
        resp = self._call("POST", "/uploads/complete", "complete uploads", body=body)
        return checked_answer(wire.CompleteResponse, resp.content)

    def download_links(self, project_id: int, digests: list[str]) -> wire.DownloadResponse:
        """Presigned GET URLs for up to 1000 digests of a project."""
        body = {"digests": digests}
        resp = self._call("POST", f"/projects/{project_id}/downloads", "get downloads", body=body)
        return checked_answer(wire.DownloadResponse, resp.content)

    # --- commits ----------------------------------------------------------

    def commit(
        self,
        project_id: int,
        base_version: int,
        ops: Callable[[], Iterable[wire.PutOp | wire.DeleteOp]],
        *,
        message: str,
        idempotency_key: str,
        robot: str | None = None,
    ) -> wire.CommitResult:
        """Commit ``ops`` on ``base_version``; raises ConflictError if the head moved.

        ``ops`` is called once per attempt, so a retried commit regenerates its
        body; the same ``idempotency_key`` makes the server answer a retry with
        the first attempt's result.
        """
        header = wire.CommitHeader(base_version=base_version, message=message, robot=robot)

        def body() -> Iterator[bytes]:
            buf = [wire.dumps(header), b"\n"]
            size = 0
            for op in ops():
                line = wire.put_line(op)
                buf.append(line)
                size += len(line)
                if size >= _BODY_CHUNK:
                    yield b"".join(buf)
                    buf, size = [], 0
            yield b"".join(buf)

        resp = self._call(
            "POST",
            f"/projects/{project_id}/commits",
            "commit",
            headers={"Content-Type": apiwire.NDJSON, apiwire.IDEMPOTENCY_HEADER: idempotency_key},
            content=body,
        )
        return checked_answer(wire.CommitResult, resp.content)
