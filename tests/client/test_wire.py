"""The client's messages (``robosync.client.wire``) against the server's models
(``robosync.protocol``): same fields, each side reads what the other writes, and an
answer that does not fit is refused, not half-read."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel

from robosync import protocol
from robosync.client import wire
from robosync.client.trust import UntrustedAnswer, checked_answer

D1, D2 = "a" * 64, "b" * 64
MESSAGES = [
    c
    for c in vars(wire).values()
    if isinstance(c, type)
    and dataclasses.is_dataclass(c)
    and c.__module__ == wire.__name__
    and c is not wire.Pattern
]


@pytest.mark.parametrize("cls", MESSAGES, ids=lambda c: c.__name__)
def test_every_message_has_the_fields_of_the_server_model_and_the_same_required_ones(cls):
    model: type[BaseModel] = getattr(protocol, cls.__name__)
    ours = {f.name: f for f in dataclasses.fields(cls)}
    assert set(ours) == set(model.model_fields)
    for name, info in model.model_fields.items():
        mine = ours[name]
        required = dataclasses.MISSING is mine.default is mine.default_factory
        assert required == info.is_required(), name


NOW = datetime(2026, 12, 7, 1, 2, 3, 456789, tzinfo=UTC)
SERVER_ANSWERS = [
    protocol.ProjectList(
        user="ann",
        projects=[
            protocol.ProjectInfo(
                id=3, name="p", owner="ann", role="write", head_version=2, file_count=1,
                total_bytes=5, created_at=NOW, updated_at=NOW, deleted_at=None,
            )
        ],
    ),
    protocol.UploadResponse(
        items=[
            protocol.UploadPlan(digest=D1, status="present"),
            protocol.UploadPlan(
                digest=D2, status="upload", upload_id="u-1",
                parts=[protocol.PresignedPart(number=1, offset=0, size=9, url="http://s/x",
                                              headers={"x-amz-checksum-sha256": "q"}, done=True,
                                              etag='"e"')],
            ),
        ]
    ),
    protocol.CompleteResponse(
        items=[protocol.CompleteResult(digest=D1, status="failed", error="gone", retry=True)]
    ),
    protocol.VersionList(
        versions=[protocol.VersionInfo(number=1, robot="r", message="m", created_at=NOW,
                                       files_added=1, files_removed=0, file_count=1,
                                       total_bytes=5)]
    ),
    protocol.MemberList(members=[protocol.MemberInfo(user="bo", role="read", since=NOW)]),
    protocol.QuotaInfo(quota_bytes=None, used_bytes=7),
    protocol.DownloadResponse(items=[protocol.DownloadLink(digest=D1, size=5, url="http://s/y")]),
    protocol.CommitResult(version=4, files_added=1, files_removed=2, file_count=3, total_bytes=9),
    protocol.ManifestEntry(path="a/b.png", digest=D1, size=5),
]  # fmt: skip


@pytest.mark.parametrize("answer", SERVER_ANSWERS, ids=lambda a: type(a).__name__)
def test_the_client_reads_every_answer_the_server_writes_field_for_field(answer: BaseModel):
    mine = wire.decode(getattr(wire, type(answer).__name__), answer.model_dump_json())
    assert wire.plain(mine) == answer.model_dump(mode="json")


def test_what_the_client_sends_is_what_the_server_models_accept():
    item = wire.CompleteItem(D1, "u-1", [wire.CompletedPart(1, '"e1"'), wire.CompletedPart(2, "e")])
    body = protocol.CompleteRequest.model_validate_json(wire.dumps({"items": [item]}))
    assert body.items[0].model_dump() == dataclasses.asdict(item)
    up = protocol.UploadRequest.model_validate_json(
        wire.dumps({"items": [wire.UploadItem(D2, 10, [D1, D2])]})
    )
    assert (up.items[0].digest, up.items[0].size, up.items[0].blocks) == (D2, 10, [D1, D2])
    assert up.quota is None
    asked = wire.dumps({"items": [wire.UploadItem(D2, 10, [D1])], "quota": wire.PushQuota(7, 10)})
    quota = protocol.UploadRequest.model_validate_json(asked).quota
    assert quota is not None and (quota.project_id, quota.added_bytes) == (7, 10)
    header = protocol.CommitHeader.model_validate_json(wire.dumps(wire.CommitHeader(3, "m", "r")))
    assert (header.base_version, header.message, header.robot) == (3, "m", "r")
    put = protocol.PutOp.model_validate_json(wire.put_line(wire.PutOp("é/x.png", D1, 4)))
    assert (put.op, put.path, put.digest, put.size) == ("put", "é/x.png", D1, 4)
    gone = protocol.DeleteOp.model_validate_json(wire.put_line(wire.DeleteOp("y")))
    assert (gone.op, gone.path) == ("delete", "y")


def test_changes_lines_are_read_by_their_op():
    put = wire.decode_change(protocol.PutOp(path="a", digest=D1, size=1).model_dump_json())
    gone = wire.decode_change(protocol.DeleteOp(path="b").model_dump_json())
    assert put == wire.PutOp("a", D1, 1) and gone == wire.DeleteOp("b")
    with pytest.raises(wire.WireError, match="op"):
        wire.decode_change('{"op": "move", "path": "a"}')


GOOD_ENTRY = {"path": "a.png", "digest": D1, "size": 5}


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"size": "5"}, "size"),  # a number as text
        ({"size": True}, "size"),  # a boolean is not a size
        ({"size": 2**63}, "size"),  # past a 64-bit column
        ({"digest": "A" * 64}, "digest"),  # not lower-case hex
        ({"digest": D1[:-1]}, "digest"),
        ({"path": None}, "path"),
        ({"path": ["a"]}, "path"),
    ],
)
def test_a_field_of_the_wrong_kind_is_refused_naming_it(change: dict[str, object], where: str):
    line = json.dumps({**GOOD_ENTRY, **change})
    # The manifest's fast reader refuses exactly what the general one does, as it does.
    for read in (lambda: wire.decode(wire.ManifestEntry, line), lambda: wire.decode_entry(line)):
        with pytest.raises(wire.WireError) as e:
            read()
        assert e.value.where == f"ManifestEntry.{where}"


def test_the_fast_readers_of_manifest_and_changes_lines_read_what_the_general_one_does():
    line = json.dumps({**GOOD_ENTRY, "later": 1})
    assert wire.decode_entry(line) == wire.decode(wire.ManifestEntry, line)
    assert wire.decode_entry(line) == wire.ManifestEntry("a.png", D1, 5)
    put = json.dumps({"op": "put", **GOOD_ENTRY})
    assert wire.decode_change(put) == wire.decode(wire.PutOp, put) == wire.PutOp("a.png", D1, 5)
    # A negative size is read (the trust boundary refuses it, naming the path).
    assert wire.decode_entry(json.dumps({**GOOD_ENTRY, "size": -1})).size == -1


@pytest.mark.parametrize(
    ("change", "where"),
    [({"size": "5"}, "size"), ({"url": 3}, "url"), ({"digest": "A" * 64}, "digest"), ({}, None)],
)
def test_download_links_are_read_fast_when_they_fit_and_refused_naming_the_field_when_not(
    change: dict[str, object], where: str | None
):
    good = {"digest": D1, "size": 5, "url": "http://store/b", "later": 1}
    answer = json.dumps({"items": [good, {**good, **change}]})
    if where is None:
        link = wire.DownloadLink(D1, 5, "http://store/b")
        assert wire.decode(wire.DownloadResponse, answer) == wire.DownloadResponse([link, link])
        return
    with pytest.raises(wire.WireError) as e:
        wire.decode(wire.DownloadResponse, answer)
    assert e.value.where == f"DownloadResponse.items.1.{where}"


def test_a_missing_field_a_bad_literal_and_non_json_are_refused_as_untrusted_answers():
    with pytest.raises(UntrustedAnswer, match=r"QuotaInfo\.used_bytes: missing"):
        checked_answer(wire.QuotaInfo, b'{"quota_bytes": 1}')
    bad_status = {"items": [{"digest": D1, "status": "maybe"}]}
    with pytest.raises(UntrustedAnswer, match=r"items\.0\.status"):
        checked_answer(wire.UploadResponse, json.dumps(bad_status).encode())
    with pytest.raises(UntrustedAnswer, match="not JSON"):
        checked_answer(wire.CommitResult, b"<html>proxy error</html>")


def test_fields_a_newer_server_adds_are_ignored_and_defaults_fill_old_ones():
    info = wire.decode(wire.QuotaInfo, b'{"quota_bytes": null, "used_bytes": 3, "soon": [1]}')
    assert info == wire.QuotaInfo(None, 3)
    old = wire.decode(wire.CommitResult, b'{"version":1,"files_added":1,"files_removed":0,'
                      b'"file_count":1,"total_bytes":2}')  # fmt: skip
    assert old.files_modified == 0


def test_times_are_written_as_the_server_writes_them_and_read_back_exactly():
    assert (
        wire.plain(NOW)
        == protocol.MemberInfo(user="u", role="read", since=NOW).model_dump(mode="json")["since"]
    )
    member = wire.decode(wire.MemberInfo, json.dumps({"user": "u", "role": "read",
                                                      "since": wire.plain(NOW)}))  # fmt: skip
    assert member.since == NOW


def test_messages_compare_by_class_and_fields_and_show_them():
    one = wire.QuotaInfo(quota_bytes=None, used_bytes=5)
    assert one == wire.QuotaInfo(quota_bytes=None, used_bytes=5)
    assert one != wire.QuotaInfo(quota_bytes=None, used_bytes=6)
    # Another message, even of the same path: never equal.
    assert wire.DeleteOp(path="a.png") != wire.PutOp(path="a.png", digest="0" * 64, size=1)
    assert repr(one) == "QuotaInfo(quota_bytes=None, used_bytes=5)"
    with pytest.raises(TypeError):
        hash(one)  # mutable, as a dataclass with eq
    decoded = wire.decode(wire.QuotaInfo, '{"quota_bytes": 10, "used_bytes": 5}')
    assert decoded == wire.QuotaInfo(10, 5)
