"""Secrets: tokens stored only hashed, presigned URLs short-lived, neither in the logs."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import MetaData, create_engine, select

from robosync.digest import digest_bytes
from tests.fixtures.server import ServerProcess
from tests.security.conftest import robot_of, start_server
from tests.server.robot import put

EXPIRY = 2
SIGNATURE_PARAMS = ("X-Robosync-Signature", "X-Amz-Signature", "X-Amz-Credential")


@pytest.fixture(scope="module")
def short_lived(
    backend_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A server of the current backend whose presigned URLs live 2 s; its log is kept."""
    env = {**backend_env, "ROBOSYNC_PRESIGN_EXPIRY_SECONDS": str(EXPIRY)}
    server = start_server(tmp_path_factory.mktemp("short-lived"), env)
    yield server
    server.stop()


def _database_url(server: ServerProcess) -> str:
    url = server.env.get("ROBOSYNC_DATABASE_URL")
    return url or f"sqlite:///{server.data_dir / 'robosync.sqlite'}"


def _every_stored_value(url: str) -> Iterator[str]:
    engine = create_engine(url)
    try:
        meta = MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            for table in meta.sorted_tables:
                for row in conn.execute(select(table)):
                    for value in row:
                        if isinstance(value, bytes):
                            yield value.hex()
                            yield value.decode("latin-1")
                        elif value is not None:
                            yield str(value)
    finally:
        engine.dispose()


def test_tokens_are_stored_only_as_hashes(short_lived: ServerProcess) -> None:
    token = short_lived.make_token("hashed", "r1")
    assert httpx.get(
        short_lived.url + "/v1/projects", headers={"Authorization": f"Bearer {token}"}
    ).is_success
    secret = token.removeprefix("rs_")
    values = list(_every_stored_value(_database_url(short_lived)))
    assert not [v for v in values if secret[:16] in v], "a token is stored in clear"
    # What is stored is the SHA-256, so a stolen database does not hand out tokens.
    assert hashlib.sha256(token.encode()).hexdigest() in values


def _expect_refused(r: httpx.Response) -> None:
    assert r.status_code == 403, (r.status_code, r.text)
    assert "expire" in r.text.lower() or "AccessDenied" in r.text


def test_presigned_urls_past_their_expiry_are_refused(short_lived: ServerProcess) -> None:
    robot = robot_of(short_lived, "expiry")
    stored = robot.upload(b"stored-" + os.urandom(50))
    project = robot.new_project("expiry")
    assert robot.commit(project, 0, [put("a.jpg", stored)]).status_code == 201
    (link,) = robot.http.post(
        f"/v1/projects/{project}/downloads", json={"digests": [stored.digest]}
    ).json()["items"]
    data = os.urandom(70)
    (plan,) = robot.plan([digest_bytes(data)])
    (part,) = plan["parts"]
    assert httpx.get(link["url"]).status_code == 200  # valid while fresh
    time.sleep(EXPIRY + 1.5)
    _expect_refused(httpx.get(link["url"]))
    _expect_refused(httpx.put(part["url"], content=data, headers=part["headers"]))
    assert robot.complete(plan, [])["status"] == "failed"
    # Asking again gives fresh URLs that work.
    (again,) = robot.plan([digest_bytes(data)])
    assert robot.complete(again, robot.put_parts(again, data))["status"] == "present"
    robot.close()


def test_no_token_or_signature_reaches_the_log(short_lived: ServerProcess) -> None:
    robot = robot_of(short_lived, "logged")
    bogus = "rs_" + "n0tAR3alT0k3n" * 3
    data = os.urandom(300)
    blob = robot.upload(data)
    project = robot.new_project("logged")
    assert robot.commit(project, 0, [put("a.jpg", blob)]).status_code == 201
    (link,) = robot.http.post(
        f"/v1/projects/{project}/downloads", json={"digests": [blob.digest]}
    ).json()["items"]
    assert httpx.get(link["url"]).content == data
    fresh = os.urandom(40)
    (plan,) = robot.plan([digest_bytes(fresh)])
    put_url = plan["parts"][0]["url"]
    # Failures log more than successes do: a refused body, a forged signature, a bad token.
    httpx.put(put_url, content=b"x" * 40, headers=plan["parts"][0]["headers"])
    httpx.get(link["url"][:-4] + "0000")
    httpx.get(short_lived.url + "/v1/projects", headers={"Authorization": f"Bearer {bogus}"})
    robot.http.get(f"/v1/projects/{project}", params={"token": robot.token})
    robot.close()

    time.sleep(0.5)  # let the server flush its last lines
    log = short_lived.log_path.read_text(errors="replace")
    if short_lived.first_token:
        # `serve` prints the first user's token once on first start, by design.
        log = log.replace(short_lived.first_token, "<first token>")
    assert "/v1/projects" in log, "the log records requests at all"
    secrets = {"token": robot.token, "bogus token": bogus}
    for url in (link["url"], put_url):
        for name, values in parse_qs(urlsplit(url).query).items():
            if name in SIGNATURE_PARAMS:
                secrets[name] = values[0]
    assert any(name in secrets for name in SIGNATURE_PARAMS), "URLs carry a signature"
    leaked = [name for name, value in secrets.items() if value in log]
    assert not leaked, f"written to the log: {leaked}"
