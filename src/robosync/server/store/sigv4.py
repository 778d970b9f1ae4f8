"""AWS Signature Version 4 for S3: presigned URLs and signed request headers.

botocore spends about a millisecond of CPU on every presigned URL and every
HEAD (endpoint rule sets, event hooks, retry bookkeeping); an upload plan
presigns one URL per block and a completion HEADs every blob, so for small
files that was most of the API's CPU. Signing itself is four HMACs and one
SHA-256 once the day's signing key is cached: microseconds.

Only what robosync asks of S3 is covered: UNSIGNED-PAYLOAD requests whose
query parameters and extra headers are given by the caller.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


@dataclass(frozen=True)
class Credentials:
    """An access key pair, with the session token of temporary credentials."""

    access_key: str
    secret_key: str
    token: str | None = None


def uri_encode(value: str, safe: str = "-_.~") -> str:
    """Percent-encode as SigV4 asks: every byte but unreserved characters (and ``safe``)."""
    return quote(value, safe=safe)


def canonical_query(params: list[tuple[str, str]]) -> str:
    """The query string, encoded and sorted by name then value, as SigV4 signs it."""
    encoded = sorted((uri_encode(k), uri_encode(v)) for k, v in params)
    return "&".join(f"{k}={v}" for k, v in encoded)


class SigV4Signer:
    """Signs S3 requests for one region with a per-day cached signing key."""

    def __init__(self, region: str, service: str = "s3") -> None:
        self.region = region
        self.service = service
        self._key_cache: tuple[str, str, bytes] | None = None  # (secret, date, key)

    def _signing_key(self, secret: str, date: str) -> bytes:
        cached = self._key_cache
        if cached is not None and cached[0] == secret and cached[1] == date:
            return cached[2]
        key = _hmac(("AWS4" + secret).encode(), date)
        for part in (self.region, self.service, "aws4_request"):
            key = _hmac(key, part)
        self._key_cache = (secret, date, key)
        return key

    def _scope(self, date: str) -> str:
        return f"{date}/{self.region}/{self.service}/aws4_request"

    def _signature(
        self,
        creds: Credentials,
        amz_date: str,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        payload_hash: str,
    ) -> tuple[str, str]:
        """(signed header names, hex signature) of one canonical request."""
        signed, (signature,) = self._signatures(
            creds, amz_date, method, [(path, headers)], query, payload_hash
        )
        return signed, signature

    def _signatures(
        self,
        creds: Credentials,
        amz_date: str,
        method: str,
        requests: list[tuple[str, dict[str, str]]],
        query: str,
        payload_hash: str,
    ) -> tuple[str, list[str]]:
        """(signed header names, hex signature of each ``(path, headers)``) of canonical
        requests alike but for their paths and their headers' values (same names)."""
        names = sorted(requests[0][1])
        signed = ";".join(names)
        tail = f"\n{signed}\n{payload_hash}"
        head = f"{ALGORITHM}\n{amz_date}\n{self._scope(amz_date[:8])}\n"
        key = self._signing_key(creds.secret_key, amz_date[:8])
        signatures = []
        rest = ""
        last: dict[str, str] | None = None
        for path, headers in requests:
            if headers is not last:  # requests sharing one dict share this part
                canonical = "".join(f"{n}:{' '.join(headers[n].split())}\n" for n in names)
                rest = f"\n{query}\n{canonical}{tail}"
                last = headers
            request = f"{method}\n{uri_encode(path, safe='/-_.~')}{rest}"
            to_sign = head + hashlib.sha256(request.encode()).hexdigest()
            signatures.append(hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest())
        return signed, signatures

    def presign(
        self,
        creds: Credentials,
        method: str,
        host: str,
        path: str,
        params: list[tuple[str, str]],
        headers: dict[str, str],
        expires: int,
        now: datetime | None = None,
    ) -> str:
        """The query string of a presigned URL; ``headers`` must be sent with it as given."""
        return self.presign_many(creds, method, host, [path], params, headers, expires, now)[0]

    def presign_many(
        self,
        creds: Credentials,
        method: str,
        host: str,
        paths: list[str],
        params: list[tuple[str, str]],
        headers: dict[str, str],
        expires: int,
        now: datetime | None = None,
    ) -> list[str]:
        """The query string of a presigned URL for each of ``paths``, alike but for the
        path: the date, the query and the headers' part are made once, not per URL."""
        shared = _with_host(host, headers)
        return self._presign_all(creds, method, [(p, shared) for p in paths], params, expires, now)

    def presign_each(
        self,
        creds: Credentials,
        method: str,
        host: str,
        requests: list[tuple[str, dict[str, str]]],
        params: list[tuple[str, str]],
        expires: int,
        now: datetime | None = None,
    ) -> list[str]:
        """The query string of a presigned URL for each ``(path, headers)``: the headers
        of every request have the same names (their values may differ), so the date and
        the query, which names them, are made once."""
        lowered = [(path, _with_host(host, headers)) for path, headers in requests]
        names = sorted(lowered[0][1]) if lowered else []
        if any(sorted(headers) != names for _, headers in lowered):
            raise ValueError("presign_each: every request must sign the same header names")
        return self._presign_all(creds, method, lowered, params, expires, now)

    def _presign_all(
        self,
        creds: Credentials,
        method: str,
        requests: list[tuple[str, dict[str, str]]],
        params: list[tuple[str, str]],
        expires: int,
        now: datetime | None,
    ) -> list[str]:
        if not requests:
            return []
        amz_date = _amz_date(now)
        auth = [
            ("X-Amz-Algorithm", ALGORITHM),
            ("X-Amz-Credential", f"{creds.access_key}/{self._scope(amz_date[:8])}"),
            ("X-Amz-Date", amz_date),
            ("X-Amz-Expires", str(expires)),
            ("X-Amz-SignedHeaders", ";".join(sorted(requests[0][1]))),
        ]
        if creds.token:
            auth.append(("X-Amz-Security-Token", creds.token))
        query = canonical_query([*params, *auth])
        _, signatures = self._signatures(creds, amz_date, method, requests, query, UNSIGNED_PAYLOAD)
        return [f"{query}&X-Amz-Signature={signature}" for signature in signatures]

    def sign_headers(
        self,
        creds: Credentials,
        method: str,
        host: str,
        path: str,
        params: list[tuple[str, str]],
        headers: dict[str, str],
        now: datetime | None = None,
    ) -> dict[str, str]:
        """The headers (``headers`` plus the signature's own) of a signed request."""
        amz_date = _amz_date(now)
        all_headers = {k.lower(): v for k, v in headers.items()}
        all_headers.update(
            {"host": host, "x-amz-date": amz_date, "x-amz-content-sha256": UNSIGNED_PAYLOAD}
        )
        if creds.token:
            all_headers["x-amz-security-token"] = creds.token
        signed, signature = self._signature(
            creds, amz_date, method, path, canonical_query(params), all_headers, UNSIGNED_PAYLOAD
        )
        all_headers["authorization"] = (
            f"{ALGORITHM} Credential={creds.access_key}/{self._scope(amz_date[:8])}, "
            f"SignedHeaders={signed}, Signature={signature}"
        )
        del all_headers["host"]  # the HTTP client sends it from the URL
        return all_headers


def _with_host(host: str, headers: dict[str, str]) -> dict[str, str]:
    """The headers a presigned request signs: ``host`` and ``headers``, names lowered."""
    return {"host": host, **{k.lower(): v for k, v in headers.items()}}


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _amz_date(now: datetime | None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
