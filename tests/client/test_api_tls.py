"""The API client loads a trust store only where TLS can happen, and fails closed elsewhere."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from robosync.client.api import tls_trust_for


def test_a_plain_http_server_gets_a_context_that_trusts_no_certificate(
    monkeypatch: pytest.MonkeyPatch,
):
    for var in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)
    context = tls_trust_for("http://robots.example:8000")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.get_ca_certs() == []


def test_https_or_a_proxy_gets_the_trust_store(monkeypatch: pytest.MonkeyPatch):
    assert tls_trust_for("https://robots.example") is True
    monkeypatch.setenv("HTTPS_PROXY", "https://proxy.example:3128")
    assert tls_trust_for("http://robots.example:8000") is True


def test_a_tls_handshake_through_the_empty_context_fails(tmp_path: Path):
    # Any server certificate at all is refused: nothing goes unchecked.
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            server_context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            pass
        finally:
            conn.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        client_context = tls_trust_for("http://localhost")
        assert isinstance(client_context, ssl.SSLContext)
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            pytest.raises(ssl.SSLCertVerificationError),
        ):
            client_context.wrap_socket(raw, server_hostname="localhost")
    finally:
        thread.join(timeout=10)
        listener.close()
