"""Interop: a client (C, Python or Lua, chosen by RETLS_INTEROP_LANG) does a
handshake, a 16 MiB non-blocking write and a clean shutdown against real
servers: openssl s_server (TLS 1.2 with a renegotiation mid-transfer, TLS
1.3 with KeyUpdates mid-transfer, and requiring a client certificate),
gnutls-serv, and Python's own ssl module.  The client is
examples/<lang>/nonblocking_client; it prints the SHA-256 of what it sent,
and the test compares it with what the server received."""
import os

import pytest

from conftest import Client, need_env
from servers import GnutlsServ, SServer, SinkServer, sha256

SIZE = 16 << 20
MID = 1 << 20  # inject server commands after this many payload bytes


@pytest.fixture(scope="module")
def client():
    return Client(need_env("RETLS_INTEROP_LANG"))


def run(client, port, *args):
    p, s = client.run("nonblocking_client", "--size", "16M",
                      "--sndbuf", "32K", "--timeout", "30", *args,
                      "127.0.0.1", port)
    assert p.returncode == 0, (p.stdout + p.stderr).decode(errors="replace")
    assert int(s["sent"]) == SIZE
    assert s["mismatches"] == "0"
    assert s["clean_close"] == "1"
    return s


def verified(pki):
    return ["--cafile", pki.ca, "--servername", "localhost"]


def test_s_server_tls12_renegotiates_mid_transfer(client, pki):
    with SServer(pki, version="tls1_2") as srv:
        srv.inject_after(MID, b"r\n")  # the server starts a renegotiation
        s = run(client, srv.port, *verified(pki), "--tls-version", "TLSv1.2")
        srv.wait()
        data = srv.payload()
    assert s["version"] == "TLSv1.2"
    assert len(data) == SIZE and sha256(data) == s["sha256"]
    assert srv.injected == 1
    # The client answered: the server counted a renegotiation handshake.
    assert srv.stats("server renegotiates") >= 1


def test_s_server_tls13_key_updates_mid_transfer(client, pki):
    with SServer(pki, version="tls1_3") as srv:
        # "K": a KeyUpdate that asks the client to update its keys too.
        srv.inject_after(MID, b"K\n")
        srv.inject_after(4 * MID, b"K\n")
        s = run(client, srv.port, *verified(pki), "--tls-version", "TLSv1.3")
        srv.wait()
        data = srv.payload()
    assert s["version"] == "TLSv1.3"
    assert len(data) == SIZE and sha256(data) == s["sha256"]
    assert srv.injected == 2
    # What OpenSSL 3.0 really does: the client reads the KeyUpdate, and
    # sends its own with its next write; SSL_write never has to wait for the
    # peer, so no write stopped with WANT_READ (unlike renegotiation).
    assert s["want_read"] == "0"


def test_s_server_requires_a_client_certificate(client, pki):
    with SServer(pki, version="tls1_3", verify_client=True) as srv:
        s = run(client, srv.port, *verified(pki),
                "--cert", pki.client_cert, "--key", pki.client_key)
        srv.wait()
        data = srv.payload()
    assert len(data) == SIZE and sha256(data) == s["sha256"]
    assert b"CN = retls-test-client" in srv.banner()


def test_s_server_rejects_a_client_without_certificate(client, pki):
    with SServer(pki, version="tls1_3", verify_client=True) as srv:
        p, _ = client.run("nonblocking_client", "--size", "1M",
                          "--timeout", "30", *verified(pki),
                          "127.0.0.1", srv.port)
    assert p.returncode != 0
    err = p.stderr.decode(errors="replace")
    assert "certificate required" in err, err


@pytest.mark.parametrize("version", ["TLSv1.2", "TLSv1.3"])
def test_gnutls_serv_echoes_every_byte(client, pki, version):
    with GnutlsServ(pki) as srv:
        s = run(client, srv.port, *verified(pki), "--tls-version", version,
                "--text")
    assert s["version"] == version
    # gnutls-serv echoed every line: what came back is what was sent.
    assert int(s["received"]) == SIZE
    assert s["received_sha256"] == s["sha256"]


@pytest.mark.parametrize("version", ["TLSv1.2", "TLSv1.3"])
def test_python_ssl_server_receives_every_byte(client, pki, version):
    with SinkServer(pki, version=version) as srv:
        s = run(client, srv.port, *verified(pki), "--tls-version", version)
        srv.join()
    assert srv.error is None, srv.error
    assert srv.received == SIZE and srv.sha256 == s["sha256"]
    assert srv.clean_close
    reply = f"sha256={srv.sha256} bytes={SIZE}\n".encode()
    assert s["received_sha256"] == sha256(reply)
