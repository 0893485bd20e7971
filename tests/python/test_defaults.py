"""Secure defaults, each pinned by what a peer can observe (mirrored by
tests/c/test_defaults.c and tests/lua/defaults_spec.lua):

- clients verify the server's certificate and its hostname by default;
- the minimum protocol is TLS 1.2, both ways (a TLS 1.1 peer that works
  with a lowered minimum is refused with the default one);
- no compression is offered or accepted;
- only secure renegotiation (RFC 5746): a server without it is refused,
  and a client without it cannot renegotiate (gnutls, whose priority
  string can switch RFC 5746 off, plays the legacy peer);
- a peer's renegotiation request is honoured transparently, and refused
  with renegotiation=False;
- error messages carry no key material, and no key log is written unless
  the context asks for one (SSLKEYLOGFILE is not read).
"""
import re
import socket
import subprocess
import threading
import time

import pytest

import retls

from helpers import HOST, drain, free_port, handshake_memory, tool_env

DEADLINE = 10.0
SECLEVEL0 = "DEFAULT@SECLEVEL=0"   # OpenSSL 3 allows TLS < 1.2 only here


def server_ctx(**kw):
    ctx = retls.Context("server", **kw)
    ctx.use_selfsigned("localhost")
    return ctx


# ---- verification ---------------------------------------------------------------

def test_client_verifies_by_default():
    client = retls.Connection(retls.Context(), None, server_hostname="localhost")
    with pytest.raises(retls.VerifyError, match="self-signed certificate"):
        handshake_memory(client, retls.Connection(server_ctx(), None))
    # ...so a verifying client must be told which name to check.
    with pytest.raises(retls.ArgumentError, match="pass server_hostname"):
        retls.Connection(retls.Context(), None)


def test_hostname_checked_by_default(pki):
    sctx = retls.Context("server", certfile=pki.server_cert,
                         keyfile=pki.server_key)
    good = retls.Connection(retls.Context(cafile=pki.ca), None,
                            server_hostname="localhost")
    handshake_memory(good, retls.Connection(sctx, None))   # the control
    bad = retls.Connection(retls.Context(cafile=pki.ca), None,
                           server_hostname="example.com")
    with pytest.raises(retls.VerifyError, match="hostname mismatch"):
        handshake_memory(bad, retls.Connection(sctx, None))


# ---- minimum TLS 1.2 ---------------------------------------------------------------

def test_client_refuses_a_tls11_server(s_server):
    srv = s_server("-tls1_1", "-cipher", SECLEVEL0)
    # The control: with the minimum lowered, this server speaks TLS 1.1.
    low = retls.connect(HOST, srv.port, retls.Context(
        verify=False, min_version="TLSv1", ciphers=SECLEVEL0), timeout=DEADLINE)
    low.do_handshake()
    assert low.version == "TLSv1.1"
    low.close()
    srv.stop()
    # The default minimum refuses it, even with the cipher security level
    # lowered too: the version alone decides.
    for kw in ({}, {"ciphers": SECLEVEL0}):
        srv = s_server("-tls1_1", "-cipher", SECLEVEL0)
        conn = retls.connect(HOST, srv.port, retls.Context(verify=False, **kw),
                             timeout=DEADLINE)
        with pytest.raises(retls.SSLError,
                           match="^handshake: tlsv1 alert protocol version$"):
            conn.do_handshake()
        conn.close()
        srv.stop()


def test_server_refuses_a_tls11_client():
    def tls11_client():
        return retls.Context(verify=False, min_version="TLSv1",
                             max_version="TLSv1.1", ciphers=SECLEVEL0)
    # The control: a server with the minimum lowered accepts it.
    c, s = retls.pair(tls11_client(),
                      server_ctx(min_version="TLSv1", ciphers=SECLEVEL0))
    assert c.version == s.version == "TLSv1.1"
    for kw in ({}, {"ciphers": SECLEVEL0}):
        with pytest.raises(retls.SSLError,
                           match="^handshake: unsupported protocol$"):
            retls.pair(tls11_client(), server_ctx(**kw))


# ---- compression ----------------------------------------------------------------------

def client_hello(ctx):
    conn = retls.Connection(ctx, None)
    with pytest.raises(retls.WantRead):
        conn.do_handshake()
    return conn.bio_read()


def hello_compression(hello):
    """(offset, methods) of the compression_methods of a ClientHello (or
    the chosen method of a ServerHello) in one record."""
    assert hello[0] == 22 and hello[5] in (1, 2)
    i = 5 + 4 + 2 + 32                      # headers, version, random
    i += 1 + hello[i]                       # session id
    if hello[5] == 2:                       # ServerHello: cipher, method
        return i + 2, hello[i + 2:i + 3]
    i += 2 + int.from_bytes(hello[i:i + 2], "big")   # cipher suites
    return i, hello[i + 1:i + 1 + hello[i]]


def test_no_compression_offered_or_accepted():
    hello = client_hello(retls.Context(verify=False, max_version="TLSv1.2"))
    at, methods = hello_compression(hello)
    assert methods == b"\x00"               # null only
    # A TLS 1.2 server offered DEFLATE (1) first picks null anyway.
    deflate = bytearray(hello[:at] + b"\x02\x01\x00" + hello[at + 2:])
    deflate[3:5] = (len(deflate) - 5).to_bytes(2, "big")
    deflate[6:9] = (len(deflate) - 9).to_bytes(3, "big")
    server = retls.Connection(server_ctx(max_version="TLSv1.2"), None)
    server.bio_write(bytes(deflate))
    with pytest.raises(retls.WantRead):
        server.do_handshake()
    _, chosen = hello_compression(server.bio_read())
    assert chosen == b"\x00"


# ---- secure renegotiation only ---------------------------------------------------------

LEGACY = "NORMAL:-VERS-ALL:+VERS-TLS1.2:%DISABLE_SAFE_RENEGOTIATION"
SAFE = "NORMAL:-VERS-ALL:+VERS-TLS1.2"


class GnutlsServer:
    """gnutls-serv --echo on 127.0.0.1 with a priority string; stopped by
    stop() (the with block)."""

    def __init__(self, pki, priority):
        for _ in range(5):      # the port can be taken between probe and bind
            self.port = free_port()
            self.proc = subprocess.Popen(
                ["gnutls-serv", "--echo", "--port", str(self.port),
                 "--x509certfile", pki.server_cert,
                 "--x509keyfile", pki.server_key, "--priority", priority],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, env=tool_env())
            deadline = time.monotonic() + DEADLINE
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    socket.create_connection((HOST, self.port), 1).close()
                    return
                except OSError:
                    time.sleep(0.05)
            self.stop()
        raise RuntimeError("gnutls-serv did not start")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(DEADLINE)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def test_client_refuses_a_server_without_secure_renegotiation(pki):
    with GnutlsServer(pki, SAFE) as srv:            # the control
        conn = retls.connect(HOST, srv.port, retls.Context(cafile=pki.ca),
                             server_hostname="localhost", timeout=DEADLINE)
        conn.sendall(b"ping\n")
        assert conn.read() == b"ping\n"
        conn.close()
    with GnutlsServer(pki, LEGACY) as srv:
        conn = retls.connect(HOST, srv.port, retls.Context(cafile=pki.ca),
                             server_hostname="localhost", timeout=DEADLINE)
        with pytest.raises(
                retls.SSLError,
                match="^handshake: unsafe legacy renegotiation disabled$"):
            conn.do_handshake()
        conn.close()


def gnutls_client_renegotiates(sctx, priority):
    """gnutls-cli connects to a retls server, renegotiates at once
    (--rehandshake), then sends a line.  Returns gnutls-cli's output and
    what the server read (bytes, or the exception that ended it)."""
    listener = socket.create_server((HOST, 0))
    listener.settimeout(DEADLINE)
    port = listener.getsockname()[1]
    result = {}

    def serve():
        s, _ = listener.accept()
        with s:
            s.setblocking(True)
            conn = retls.Connection(sctx, s)
            got = b""
            try:
                while not got.endswith(b"\n"):
                    got += conn.read()
                result["got"] = got
            except retls.Error as e:
                result["got"] = e
            conn.close(discard=True)
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        proc = subprocess.run(
            ["gnutls-cli", "--insecure", "--rehandshake", "--priority",
             priority, "-p", str(port), HOST],
            input=b"hello\n", capture_output=True, timeout=30,
            env=tool_env())
    finally:
        t.join(DEADLINE)
        listener.close()
    return ((proc.stdout + proc.stderr).decode(errors="replace"),
            result.get("got"))


def test_server_honours_a_safe_renegotiation_by_default():
    out, got = gnutls_client_renegotiates(server_ctx(), SAFE)
    assert "safe renegotiation" in out          # RFC 5746 negotiated
    assert "ReHandshake was completed" in out
    assert got == b"hello\n"


def test_server_refuses_a_legacy_renegotiation():
    out, got = gnutls_client_renegotiates(server_ctx(), LEGACY)
    assert "No renegotiation is allowed" in out
    assert "ReHandshake has failed" in out
    assert isinstance(got, retls.SSLError)        # gnutls then gives up


def test_server_with_renegotiation_off_refuses_a_safe_one():
    out, got = gnutls_client_renegotiates(
        server_ctx(renegotiation=False), SAFE)
    assert "No renegotiation is allowed" in out
    assert "ReHandshake has failed" in out


# ---- a peer's renegotiation request ------------------------------------------------------

def server_renegotiates(client_ctx):
    """A TLS 1.2 pair; the server asks the client to renegotiate
    (HelloRequest) and writes.  Returns client, server and what each end
    read or raised over a few rounds."""
    client, server = retls.pair(client_ctx,
                                server_ctx(max_version="TLSv1.2"))
    server.renegotiate()
    assert server.write(b"hi") == 2
    seen = {"client": [], "server": []}
    failed = set()
    for _ in range(5):
        for name, conn in (("client", client), ("server", server)):
            if name in failed:
                continue
            try:
                seen[name].append(conn.read())
            except retls.WantRead:
                pass
            except retls.Error as e:
                seen[name].append(e)
                failed.add(name)
    return client, server, seen


def client_randoms(path):
    return [line.split()[1] for line in path.read_text().splitlines()
            if line.startswith("CLIENT_RANDOM ")]


def test_client_honours_a_server_renegotiation_by_default(tmp_path):
    log = tmp_path / "keys.log"
    client, server, seen = server_renegotiates(
        retls.Context(verify=False, keylog=log))
    assert seen == {"client": [b"hi"], "server": []}
    # A second full handshake happened: a second client random.
    assert len(set(client_randoms(log))) == 2
    assert client.write(b"after") == 5 and drain(server) == b"after"


def test_client_with_renegotiation_off_refuses(tmp_path):
    log = tmp_path / "keys.log"
    client, server, seen = server_renegotiates(
        retls.Context(verify=False, keylog=log, renegotiation=False))
    assert seen["client"][0] == b"hi"
    assert [str(e) for e in seen["server"]] == ["read: no renegotiation"]
    assert [str(e) for e in seen["client"][1:]] == [
        "read: sslv3 alert handshake failure"]
    assert len(client_randoms(log)) == 1


# ---- key material ----------------------------------------------------------------------

def test_errors_never_carry_key_material(tmp_path, pki):
    # A TLS 1.3 handshake fails on verification after the handshake
    # secrets were derived and logged.
    log = tmp_path / "keys.log"
    sctx = retls.Context("server", certfile=pki.server_cert,
                         keyfile=pki.server_key)
    client = retls.Connection(retls.Context(cafile=pki.other_ca, keylog=log),
                              None, server_hostname="localhost")
    server = retls.Connection(sctx, None)
    with pytest.raises(retls.VerifyError) as info:
        handshake_memory(client, server)
    texts = [str(info.value)]
    for op in (lambda: client.write(b"x"), server.do_handshake,
               server.do_handshake):
        try:
            op()
        except retls.Error as e:
            texts.append(str(e))
    secrets = set()
    for line in log.read_text().splitlines():
        label, random, secret = line.split()
        assert label.endswith("_SECRET")
        secrets.update((random, secret))
    assert len(secrets) >= 2       # the client random and a secret
    for text in texts:
        for secret in secrets:
            assert secret not in text and secret[:16] not in text
        assert not re.search(r"[0-9a-fA-F]{32}", text), text


def test_no_key_log_unless_asked(tmp_path, monkeypatch):
    # CPython's ssl honours SSLKEYLOGFILE; retls never does.
    path = tmp_path / "env-keys.log"
    monkeypatch.setenv("SSLKEYLOGFILE", str(path))
    client, server = retls.pair(retls.Context(verify=False),
                                server_ctx())
    assert client.write(b"x") == 1 and drain(server) == b"x"
    assert not path.exists()
    # The option alone writes one.
    asked = tmp_path / "asked.log"
    retls.pair(retls.Context(verify=False, keylog=asked), server_ctx())
    assert asked.read_text().count("\n") == 5     # the TLS 1.3 secrets
    assert not path.exists()
