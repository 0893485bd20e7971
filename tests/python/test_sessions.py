"""Sessions and resumption (mirrors tests/c/test_sessions.c): TLS 1.3
tickets, TLS 1.2 session IDs and tickets against a retls server, openssl
s_server and CPython's ssl server; a session serialized in one process and
resumed in another; bad input with its exact exception types.  Plus the two
server handshake fixes of the same issue, checked with openssl s_client:
strict ALPN and automatic DH parameters."""
import os
import socket
import ssl
import subprocess
import sys
import threading

import pytest

import retls
from helpers import HOST, client_ctx, drain, server_ctx
from session_servers import MultiSServer, PySSLServer

VERSIONS = [("TLSv1.3", 2), ("TLSv1.2", 2), ("TLSv1.2", 0)]
IDS = ["tls13-ticket", "tls12-ticket", "tls12-session-id"]


def session_after_read(client, server):
    """TLS 1.3 sends tickets after the handshake: a byte from the server
    brings them to the client."""
    server.write(b"x")
    assert client.read() == b"x"
    return client.session


def close_both(client, server):
    # A connection that ends without close_notify takes its session out of
    # the server's cache (OpenSSL's rule).
    client.shutdown()
    server.shutdown()
    client.close()
    server.close()


@pytest.mark.parametrize("version,tickets", VERSIONS, ids=IDS)
def test_resume_retls_server(version, tickets):
    cctx = client_ctx(max_version=version)
    sctx = server_ctx(tickets=tickets)
    client, server = retls.pair(cctx, sctx)
    assert client.session_reused is False
    session = session_after_read(client, server)
    assert isinstance(session, retls.Session)
    assert session.is_resumable
    assert (session.ticket_lifetime > 0) == (tickets > 0)
    blob = session.to_bytes()
    close_both(client, server)

    back = retls.Session.from_bytes(blob)
    assert back == session and back.to_bytes() == blob
    client, server = retls.pair(cctx, sctx, session=back)
    assert client.session_reused and server.session_reused
    assert client.version == version
    client.write(b"ping")
    assert drain(server) == b"ping"


def rev_round(port, cafile, version, session=None):
    """One connection: a line out, its reversal back (bringing the TLS 1.3
    tickets with it); returns (session_reused, newest session)."""
    ctx = retls.Context(cafile=cafile, max_version=version)
    with retls.connect(HOST, port, ctx, server_hostname="localhost",
                       timeout=10, session=session) as conn:
        conn.write(b"olleh\n")
        got = b""
        while len(got) < 6:
            got += conn.read()
        assert got == b"hello\n"
        reused, newest = conn.session_reused, conn.session
        conn.shutdown()
    return reused, newest


@pytest.fixture
def servers():
    started = []
    yield started
    for srv in started:
        srv.stop()


@pytest.mark.parametrize("version,tickets", VERSIONS, ids=IDS)
def test_resume_s_server(pki, servers, version, tickets):
    srv = MultiSServer(pki, ["-rev"] + ([] if tickets else ["-no_ticket"]))
    servers.append(srv.start())
    reused, first = rev_round(srv.port, pki.ca, version)
    assert reused is False and first.is_resumable
    reused, second = rev_round(srv.port, pki.ca, version, first)
    assert reused is True


@pytest.mark.parametrize("version,tickets", VERSIONS, ids=IDS)
def test_resume_cpython_ssl_server(pki, servers, version, tickets):
    srv = PySSLServer(pki, getattr(ssl.TLSVersion, version.replace(
        "TLSv1.", "TLSv1_")), tickets=bool(tickets))
    servers.append(srv)
    reused, first = rev_round(srv.port, pki.ca, version)
    reused2, _ = rev_round(srv.port, pki.ca, version, first)
    srv.stop()
    assert srv.errors == []
    assert (reused, reused2) == (False, True)
    assert srv.reused == [False, True]


RESUME_CHILD = r"""
import sys
import retls
blob = open(sys.argv[1], "rb").read()
ctx = retls.Context(cafile=sys.argv[3])
conn = retls.connect("127.0.0.1", int(sys.argv[2]), ctx,
                     server_hostname="localhost", timeout=10,
                     session=retls.Session.from_bytes(blob))
conn.write(b"dlihc\n")
got = b""
while len(got) < 6:
    got += conn.read()
conn.shutdown()
print(got.decode().strip(), conn.session_reused)
"""


def test_session_resumed_in_another_process(pki, servers, tmp_path):
    srv = MultiSServer(pki, ["-rev"])
    servers.append(srv.start())
    _, session = rev_round(srv.port, pki.ca, "TLSv1.3")
    path = tmp_path / "session.bin"
    path.write_bytes(session.to_bytes())
    out = subprocess.run(
        [sys.executable, "-c", RESUME_CHILD, str(path), str(srv.port),
         pki.ca], capture_output=True, timeout=60, check=True)
    assert out.stdout.decode().split() == ["child", "True"]


# ---- bad input ---------------------------------------------------------------

def a_session(name="localhost", **kw):
    cctx, sctx = client_ctx(**kw), server_ctx()
    client = retls.Connection(cctx, server_hostname=name)
    server = retls.Connection(sctx)
    retls._handshake_pair(client, server)
    server.write(b"x")
    client.bio_write(server.bio_read())
    assert client.read() == b"x"
    return client.session


@pytest.mark.parametrize("blob", [b"garbage", b"", b"\x30\x82\x01"])
def test_session_from_garbage_bytes(blob):
    with pytest.raises(retls.ArgumentError, match="session bytes"):
        retls.Session.from_bytes(blob)


def test_session_from_truncated_or_extended_bytes():
    blob = a_session().to_bytes()
    with pytest.raises(retls.ArgumentError, match="not a TLS session"):
        retls.Session.from_bytes(blob[:len(blob) // 2])
    with pytest.raises(retls.ArgumentError, match="trailing"):
        retls.Session.from_bytes(blob + b"\0")


def test_session_wrong_types():
    with pytest.raises(TypeError, match="binary mode"):
        retls.Session.from_bytes("text")
    with pytest.raises(TypeError, match="bytes-like"):
        retls.Session.from_bytes(5)
    with pytest.raises(TypeError, match="Session.from_bytes"):
        retls.pair(session=b"blob")
    with pytest.raises(TypeError):
        retls.Session()


def test_session_from_another_server():
    alpha = a_session("alpha.test")
    cctx, sctx = client_ctx(), server_ctx()
    with pytest.raises(retls.ArgumentError, match="'alpha.test'"):
        retls.Connection(cctx, server_hostname="beta.test", session=alpha)
    # The same name on an unrelated server: it cannot resume, so a full
    # handshake runs and the connection works.
    client = retls.Connection(cctx, server_hostname="alpha.test",
                              session=alpha)
    server = retls.Connection(sctx)
    retls._handshake_pair(client, server)
    assert client.session_reused is False
    client.write(b"fine")
    server.bio_write(client.bio_read())
    assert server.read() == b"fine"


def test_session_of_another_protocol_version():
    tls12 = a_session(max_version="TLSv1.2")
    with pytest.raises(retls.ArgumentError, match="TLSv1.2"):
        retls.Connection(client_ctx(min_version="TLSv1.3"),
                         server_hostname="localhost", session=tls12)


def test_session_on_server_or_after_handshake():
    session = a_session()
    with pytest.raises(retls.ArgumentError, match="resumed by clients"):
        retls.Connection(server_ctx(), session=session)
    client, server = retls.pair()
    assert client.session_reused is False
    with pytest.raises(retls.ArgumentError, match="handshake has started"):
        client._c.set_session(session._s)
    client.write(b"still usable")
    assert drain(server) == b"still usable"
    assert server.session is None   # servers hold none to resume


@pytest.mark.parametrize("kw,role", [
    ({"tickets": 1}, "client"), ({"alpn_strict": True}, "client"),
    ({"early_data": 10}, "client"), ({"early_data_replay": True}, "server")])
def test_session_options_by_role(kw, role):
    with pytest.raises(retls.ArgumentError, match="option"):
        retls.Context(role, **kw)


def test_session_option_values():
    with pytest.raises(ValueError, match="0..100"):
        retls.Context("server", tickets=101)
    with pytest.raises(TypeError):
        retls.Context("server", tickets="2")
    with pytest.raises(ValueError, match="early_data"):
        retls.Context("server", early_data=-1)
    with pytest.raises(TypeError, match="early_data"):
        retls.Context("server", early_data=1.5)


# ---- the handshake fixes, with openssl s_client -------------------------------

def serve_s_client(sctx, args):
    """Serve one openssl s_client connection on a retls server; returns
    (the server's handshake exception or None, s_client's output)."""
    lsock = socket.socket()
    lsock.bind((HOST, 0))
    lsock.listen(1)
    lsock.settimeout(15)
    port = lsock.getsockname()[1]
    proc = subprocess.Popen(
        ["openssl", "s_client", "-ign_eof", "-connect", f"{HOST}:{port}",
         *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    err = None
    try:
        raw, _ = lsock.accept()
        with raw, retls.Connection(sctx, raw) as conn:
            try:
                conn.do_handshake()
                conn.write(b"served\n")
                conn.shutdown()
            except retls.Error as e:
                err = e
        out, _ = proc.communicate(timeout=20)
    finally:
        lsock.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return err, out.decode(errors="replace")


def test_alpn_strict_against_s_client():
    sctx = server_ctx(alpn=["h2"])
    err, out = serve_s_client(sctx, ["-alpn", "spdy/1"])
    assert isinstance(err, retls.SSLError)
    assert "no application protocol" in str(err)
    assert "no application protocol" in out
    err, out = serve_s_client(sctx, [])          # no ALPN offered: served
    assert err is None and "served" in out
    err, out = serve_s_client(sctx, ["-alpn", "spdy/1,h2"])
    assert err is None and "ALPN protocol: h2" in out


def test_alpn_lenient_against_s_client():
    sctx = server_ctx(alpn=["h2"], alpn_strict=False)
    err, out = serve_s_client(sctx, ["-alpn", "spdy/1"])
    assert err is None
    assert "No ALPN negotiated" in out and "served" in out


def test_dhe_only_client(tmp_path):
    cert, key = str(tmp_path / "rsa.pem"), str(tmp_path / "rsa.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=60)
    sctx = retls.Context("server", certfile=cert, keyfile=key)
    err, out = serve_s_client(
        sctx, ["-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256"])
    assert err is None, err
    assert "DHE-RSA-AES128-GCM-SHA256" in out and "served" in out
