"""Every example in examples/<lang>/ runs and does what its header says.
The language comes from RETLS_INTEROP_LANG (python or lua); the
non-blocking client is covered by test_interop.py, the demo by
test_demo.py, the probes by test_probe.py."""
import os

import pytest

from conftest import Client, need_env
from servers import HttpsServer, SinkServer, sha256


@pytest.fixture(scope="module")
def client():
    return Client(need_env("RETLS_INTEROP_LANG"))


def ok(p):
    assert p.returncode == 0, (p.stdout + p.stderr).decode(errors="replace")
    return p.stdout.decode(errors="replace")


def test_memory_bio_client_moves_ciphertext_itself(client, pki):
    with SinkServer(pki) as srv:
        p, s = client.run("memory_bio_client", "--size", str(1 << 20),
                          "--cafile", pki.ca, "--servername", "localhost",
                          "127.0.0.1", srv.port)
        srv.join()
    out = ok(p)
    assert srv.error is None, srv.error
    # The server got every byte: its digest is the client's.
    assert srv.received == 1 << 20 and srv.sha256 == s["sha256"]
    assert f"reply: sha256={srv.sha256} bytes={1 << 20}" in out
    # 1 MiB does not fit the 64 KiB memory buffer: the write stopped and
    # flush() finished it, with no mismatch.
    assert int(s["want_write"]) > 0 and s["mismatches"] == "0"
    assert int(s["ciphertext_out"]) > 1 << 20
    assert b"finishing with flush()" in p.stderr


def test_https_get_fetches_a_file(client, pki, tmp_path):
    body = os.urandom(100_000)
    (tmp_path / "blob.bin").write_bytes(body)
    with HttpsServer(pki, str(tmp_path)) as srv:
        argv = ["--cafile", pki.ca, f"https://localhost:{srv.port}/blob.bin"]
        p, _ = client.run("https_get", *argv)
        missing, _ = client.run(
            "https_get", "--cafile", pki.ca,
            f"https://localhost:{srv.port}/nothing-here")
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    assert p.stdout == body
    err = p.stderr.decode()
    assert "< HTTP/1.0 200 OK" in err and "ALPN http/1.1" in err
    assert missing.returncode == 1
    assert b"< HTTP/1.0 404" in missing.stderr


def test_https_get_refuses_an_untrusted_server(client, pki, tmp_path):
    with HttpsServer(pki, str(tmp_path)) as srv:
        p, _ = client.run("https_get", "--cafile", pki.other_ca,
                          f"https://localhost:{srv.port}/")
    assert p.returncode != 0
    assert b"certificate verify failed" in p.stderr, p.stderr


def test_write_during_renegotiation_shows_want_read_only_in_tls12(client):
    p, s = client.run("write_during_renegotiation")
    out = ok(p)
    # TLS 1.2: the write after the HelloRequest waits for the server.
    assert "write(32768) -> WantRead (pending_write = 32768)" in out
    assert s["data_ok"] == "1"  # the server got every byte, in order
    assert int(s["tls12_want_read"]) >= 1  # TLS 1.2: WantRead seen
    assert s["tls13_want_read"] == "0"     # TLS 1.3 KeyUpdate: never
