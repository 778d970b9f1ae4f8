"""The hand-written SigV4 signer gives botocore's signatures, to the character."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

import boto3
import pytest
from botocore.config import Config

from robosync.server.store.s3 import uri_path
from robosync.server.store.sigv4 import Credentials, SigV4Signer

NOW = datetime(2026, 11, 30, 23, 12, 46, tzinfo=UTC)
CREDS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")


def _botocore_url(monkeypatch: pytest.MonkeyPatch, op: str, params: dict) -> str:
    import botocore.auth

    class FrozenDatetime(datetime):
        @classmethod
        def utcnow(cls) -> datetime:  # type: ignore[override]
            return NOW.replace(tzinfo=None)

        @classmethod
        def now(cls, tz=None) -> datetime:  # type: ignore[override]
            return NOW if tz else NOW.replace(tzinfo=None)

    monkeypatch.setattr(botocore.auth.datetime, "datetime", FrozenDatetime)
    session = boto3.session.Session(
        aws_access_key_id=CREDS.access_key,
        aws_secret_access_key=CREDS.secret_key,
        region_name="eu-west-3",
    )
    client = session.client(
        "s3",
        endpoint_url="http://127.0.0.1:8333",
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
        ),
    )
    return client.generate_presigned_url(op, Params={"Bucket": "bkt", **params}, ExpiresIn=900)


@pytest.mark.parametrize(
    ("op", "params", "method", "query", "headers"),
    [
        (
            "put_object",
            {"Key": "blobs/ab12", "ChecksumSHA256": "q83vEjRWeJA=", "ContentLength": 5},
            "PUT",
            [],
            {"x-amz-checksum-sha256": "q83vEjRWeJA=", "content-length": "5"},
        ),
        (
            "upload_part",
            {
                "Key": "blobs/ab12",
                "UploadId": "x/y+z=",
                "PartNumber": 2,
                "ChecksumSHA256": "q83vEjRWeJA=",
                "ContentLength": 8388608,
            },
            "PUT",
            [("partNumber", "2"), ("uploadId", "x/y+z=")],
            {"x-amz-checksum-sha256": "q83vEjRWeJA=", "content-length": "8388608"},
        ),
        ("get_object", {"Key": "thumbs/ab 12/256.webp"}, "GET", [], {}),
    ],
)
def test_presigned_url_matches_botocore(
    monkeypatch: pytest.MonkeyPatch, op: str, params: dict, method: str, query: list, headers: dict
) -> None:
    expected = urlsplit(_botocore_url(monkeypatch, op, params))
    path = "/bkt/" + params["Key"]
    ours = SigV4Signer("eu-west-3").presign(
        CREDS, method, "127.0.0.1:8333", path, query, headers, 900, now=NOW
    )
    assert uri_path(path) == expected.path
    assert dict(parse_qsl(ours)) == dict(parse_qsl(expected.query))


def test_signing_key_is_recomputed_for_a_new_day() -> None:
    signer = SigV4Signer("us-east-1")
    a = signer.presign(CREDS, "GET", "h", "/b/k", [], {}, 60, now=NOW)
    b = signer.presign(CREDS, "GET", "h", "/b/k", [], {}, 60, now=NOW.replace(day=29))
    again = signer.presign(CREDS, "GET", "h", "/b/k", [], {}, 60, now=NOW)
    assert a == again
    assert dict(parse_qsl(a))["X-Amz-Signature"] != dict(parse_qsl(b))["X-Amz-Signature"]


def test_urls_signed_together_are_the_urls_signed_one_by_one() -> None:
    signer = SigV4Signer("eu-west-3")
    paths = ["/bkt/blobs/ab12", "/bkt/thumbs/ab 12/256.webp", "/bkt/blobs/cd34"]
    together = signer.presign_many(CREDS, "GET", "h:1", paths, [], {}, 900, now=NOW)
    assert together == [signer.presign(CREDS, "GET", "h:1", p, [], {}, 900, now=NOW) for p in paths]
    assert len(set(together)) == 3


def test_puts_signed_together_are_the_puts_signed_one_by_one() -> None:
    signer = SigV4Signer("eu-west-3")
    puts = [
        ("/bkt/blobs/ab12", {"x-amz-checksum-sha256": "q83vEjRWeJA=", "content-length": "5"}),
        ("/bkt/blobs/cd34", {"x-amz-checksum-sha256": "3q2+7w==", "content-length": "32768"}),
        ("/bkt/proofs/ef 56", {"x-amz-checksum-sha256": "AAAA", "content-length": "1"}),
    ]
    together = signer.presign_each(CREDS, "PUT", "h:1", puts, [], 900, now=NOW)
    one_by_one = [signer.presign(CREDS, "PUT", "h:1", p, [], h, 900, now=NOW) for p, h in puts]
    assert together == one_by_one
    assert len(set(together)) == 3


def test_puts_signed_together_must_sign_the_same_headers() -> None:
    signer = SigV4Signer("eu-west-3")
    puts = [
        ("/bkt/blobs/ab12", {"x-amz-checksum-sha256": "q83vEjRWeJA=", "content-length": "5"}),
        ("/bkt/blobs/cd34", {"content-length": "5"}),
    ]
    with pytest.raises(ValueError, match="same header names"):
        signer.presign_each(CREDS, "PUT", "h:1", puts, [], 900, now=NOW)
