"""Faults on the wire: a peer that vanishes in the middle of a write
(closed socket, RST), garbage and truncated records, a server that does
not speak TLS, the fd closed under the connection, a handshake that never
completes, and certificates that are expired, self-signed or for another
host.

Each gives the documented exception with a message that says what
happened, the process does not crash, and nothing is written after the
failure: every later call raises Closed, and the bytes the peer received
are checked record by record.  (Mirrored by tests/lua/faults_spec.lua and
tests/c/test_faults.c where cheap.)"""
import socket
import struct
import subprocess
import threading

import pytest

import retls

from helpers import HOST, records

DEADLINE = 10.0


def record_types(wire):
    """Content types of the TLS records in wire; a torn last record (the
    peer reset the connection) is ignored."""
    types, i = [], 0
    while i + 5 <= len(wire):
        n = int.from_bytes(wire[i + 3:i + 5], "big")
        if i + 5 + n > len(wire):
            break
        types.append(wire[i])
        i += 5 + n
    return types


def hello_then_at_most_an_alert(wire):
    """The client's bytes on a failed handshake: its ClientHello, then at
    most one plaintext alert, nothing else."""
    types = record_types(wire)
    assert types in ([22], [22, 21]), types


def assert_nothing_more(conn, reason):
    """Every call on a failed connection raises Closed with the original
    reason; nothing is sent (the caller checks the wire)."""
    for op in (lambda: conn.write(b"secret"), conn.flush, conn.read,
               conn.do_handshake, conn.shutdown,
               lambda: conn.sendall(b"secret")):
        with pytest.raises(retls.Closed) as info:
            op()
        assert "connection failed earlier" in str(info.value)
        assert reason in str(info.value)


class RawServer:
    """A TCP server on 127.0.0.1 that is not TLS: it accepts one
    connection, reads the client's first flight, answers with reply (or
    nothing), optionally half-closes, then records everything else the
    client sends until the client closes."""

    def __init__(self, reply=b"", shutdown_write=False):
        self.listener = socket.create_server((HOST, 0))
        self.listener.settimeout(DEADLINE)
        self.port = self.listener.getsockname()[1]
        self.reply, self.shutdown_write = reply, shutdown_write
        self.received = bytearray()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            s, _ = self.listener.accept()
        except OSError:
            return
        with s:
            s.settimeout(DEADLINE)
            try:
                self.received += s.recv(65536)
                if self.reply:
                    s.sendall(self.reply)
                if self.shutdown_write:
                    s.shutdown(socket.SHUT_WR)
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    self.received += chunk
            except OSError:         # the client reset: what came is kept
                pass

    def finish(self):
        """Wait until the client has closed; return what it sent."""
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive()
        self.listener.close()
        return bytes(self.received)


def client_of(server, **kw):
    return retls.connect(HOST, server.port, retls.Context(verify=False, **kw),
                         timeout=DEADLINE)


# ---- a server that is not TLS -------------------------------------------------------

@pytest.mark.parametrize("reply", [
    pytest.param(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", id="http"),
    pytest.param(bytes(range(256)) * 2, id="garbage"),
])
def test_non_tls_server(reply):
    srv = RawServer(reply)
    conn = client_of(srv)
    with pytest.raises(retls.SSLError) as info:
        conn.do_handshake()
    assert type(info.value) is retls.SSLError
    assert str(info.value) == (
        "handshake: wrong version number (the peer sent bytes that are not "
        "TLS: is it a plain-text service, or the wrong port?)")
    assert_nothing_more(conn, "wrong version number")
    conn.close()
    hello_then_at_most_an_alert(srv.finish())


def test_truncated_record_during_handshake():
    # A record header promising 100 bytes, 50 of them, then FIN.
    srv = RawServer(b"\x16\x03\x03\x00\x64" + b"\x02" * 50, shutdown_write=True)
    conn = client_of(srv)
    with pytest.raises(retls.EOFError) as info:
        conn.do_handshake()
    assert str(info.value) == ("handshake: the peer closed the transport "
                               "without close_notify: unexpected eof while "
                               "reading")
    assert_nothing_more(conn, "unexpected eof")
    conn.close()
    hello_then_at_most_an_alert(srv.finish())


def test_garbage_record_after_the_handshake(sockpair):
    # A well-formed record header with bytes that no key decrypts.
    p = sockpair()
    assert p.client.write(b"before") == 6
    assert p.server.read() == b"before"
    p.b.sendall(b"\x17\x03\x03\x00\x20" + bytes(32))
    with pytest.raises(retls.SSLError) as info:
        p.client.read()
    assert type(info.value) is retls.SSLError
    assert str(info.value) == "read: decryption failed or bad record mac"
    assert_nothing_more(p.client, "bad record mac")
    p.client.close()
    p.a.close()
    # After its alert (encrypted in TLS 1.3: one application_data record),
    # the client sent nothing.
    wire = b""
    while True:
        chunk = p.b.recv(65536)
        if not chunk:
            break
        wire += chunk
    assert records(wire) == [19]            # alert(2) + type(1) + tag(16)


def test_truncated_record_after_the_handshake():
    # Memory mode: half a record, then the end of the stream.
    client, server = (retls.Connection(retls.Context(verify=False), None),
                      retls.Connection(_server_ctx(), None))
    retls._handshake_pair(client, server)
    assert server.write(b"x" * 1000) == 1000
    record = server.bio_read()
    client.bio_write(record[:len(record) // 2])
    with pytest.raises(retls.WantRead):
        client.read()                       # not delivered in part
    client.bio_write_eof()
    with pytest.raises(retls.EOFError, match="unexpected eof while reading"):
        client.read()
    alert = client.bio_read()               # its alert, if any
    assert alert == b"" or records(alert) == [19]
    assert_nothing_more(client, "unexpected eof")
    assert client.bio_read() == b""


def _server_ctx():
    ctx = retls.Context("server")
    ctx.use_selfsigned("localhost")
    return ctx


# ---- the peer vanishes ---------------------------------------------------------------

class TLSPeer:
    """A retls server on a real TCP socket that completes the handshake,
    reads how_much bytes, then vanishes: close() (rst=False; the kernel
    still answers with RST since unread data is queued) or an explicit
    RST (SO_LINGER 0)."""

    def __init__(self, rst, how_much=5):
        self.listener = socket.create_server((HOST, 0))
        self.listener.settimeout(DEADLINE)
        self.port = self.listener.getsockname()[1]
        self.rst, self.how_much = rst, how_much
        self.got = b""
        self.vanished = threading.Event()
        self.go = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        s, _ = self.listener.accept()
        conn = retls.Connection(_server_ctx(), s)
        conn.do_handshake()
        while len(self.got) < self.how_much:
            self.got += conn.read()
        self.go.wait(DEADLINE)
        if self.rst:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
        conn.close(discard=True)
        s.close()
        self.listener.close()
        self.vanished.set()


@pytest.mark.parametrize("rst,seen_by", [
    pytest.param(False, "flush", id="closed-flush"),
    pytest.param(True, "flush", id="rst-flush"),
    pytest.param(True, "read", id="rst-read"),
])
def test_peer_vanishes_mid_write(rst, seen_by):
    peer = TLSPeer(rst)
    conn = retls.connect(HOST, peer.port, retls.Context(verify=False),
                         timeout=DEADLINE)
    assert conn.write(b"hello") == 5
    # Fill the socket until a write stops half-way: it is pending.
    sock = socket.socket(fileno=conn.fileno())
    try:
        sock.setblocking(False)
        with pytest.raises(retls.WantWrite):
            for _ in range(10000):
                conn.write(b"x" * 65536)
    finally:
        sock.detach()                       # the connection owns the fd
    assert conn.pending_write == 65536
    peer.go.set()
    assert peer.vanished.wait(DEADLINE)
    peer.thread.join(DEADLINE)
    assert peer.got == b"hello"
    # The pending write cannot be finished: the peer is gone.  (Closed
    # or reset, the kernel answers the unread data with RST.)
    with pytest.raises(retls.Error) as info:
        getattr(conn, seen_by)()
    assert type(info.value) is retls.Error
    op = "write" if seen_by == "flush" else "read"
    assert str(info.value) == f"{op}: Connection reset by peer"
    assert_nothing_more(conn, "Connection reset by peer")
    if seen_by == "flush":
        # The failed write dropped its copy: those bytes were never
        # acknowledged, and now never can be.
        assert conn.pending_write == 0
        conn.close()
    else:
        # A read failed: the write's bytes are still reported, and close()
        # does not drop them silently.
        assert conn.pending_write == 65536
        with pytest.raises(retls.WritePending,
                           match="65536 bytes .* the connection failed, so "
                                 "they never can be: close with discard"):
            conn.close()
        conn.close(discard=True)


def test_peer_closed_before_the_write(sockpair):
    p = sockpair()
    p.server.close()
    p.b.close()
    with pytest.raises(retls.Error) as info:
        p.client.write(b"x" * 100)
    assert type(info.value) is retls.Error
    assert str(info.value) == "write: Broken pipe"
    assert_nothing_more(p.client, "Broken pipe")


def test_fd_closed_under_the_connection(sockpair):
    # TLS 1.2: no session tickets left unread in the client's socket, so
    # closing it sends the peer a plain end of stream.
    p = sockpair(retls.Context(verify=False, max_version="TLSv1.2"))
    p.a.close()                       # the caller closes the socket it gave
    with pytest.raises(retls.Error) as info:
        p.client.write(b"x")
    assert type(info.value) is retls.Error
    assert str(info.value) == "write: Bad file descriptor"
    assert_nothing_more(p.client, "Bad file descriptor")
    # The peer received nothing after the handshake: end of stream.
    p.b.settimeout(DEADLINE)
    assert p.b.recv(100) == b""


# ---- a handshake that never completes ------------------------------------------------

def test_handshake_timeout():
    srv = RawServer()                       # reads the ClientHello, silent
    conn = retls.connect(HOST, srv.port, retls.Context(verify=False),
                         timeout=0.3)
    with pytest.raises(retls.TimeoutError) as info:
        conn.do_handshake()
    assert isinstance(info.value, TimeoutError)
    assert str(info.value) == (
        "timed out after 300 ms waiting for the socket to become readable; "
        "the operation may be repeated")
    # A timeout is not a failure: the handshake may be continued, and
    # times out again; a write runs the same handshake first and keeps
    # its bytes pending, unsent.
    with pytest.raises(retls.TimeoutError):
        conn.write(b"secret")
    assert conn.pending_write == 6
    conn.close(discard=True)
    assert record_types(srv.finish()) == [22]     # only the ClientHello


# ---- certificates ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def bad_certs(tmp_path_factory, pki):
    """An expired server certificate from the test CA, and a self-signed
    one, both for localhost."""
    d = tmp_path_factory.mktemp("badcerts")

    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, timeout=60,
                       capture_output=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run("req", *ec, "-keyout", "expired.key", "-out", "expired.csr",
        "-subj", "/CN=localhost")
    (d / "san.ext").write_text("subjectAltName=DNS:localhost\n")
    # -days -1: notAfter is a day ago.
    run("x509", "-req", "-in", "expired.csr", "-CA", pki.ca, "-CAkey",
        pki.ca.replace(".pem", ".key"), "-CAcreateserial", "-days", "-1",
        "-extfile", "san.ext", "-out", "expired.pem")
    run("req", "-x509", *ec, "-keyout", "self.key", "-out", "self.pem",
        "-days", "1", "-subj", "/CN=localhost",
        "-addext", "subjectAltName=DNS:localhost")
    return {"expired": (str(d / "expired.pem"), str(d / "expired.key")),
            "self-signed": (str(d / "self.pem"), str(d / "self.key")),
            "wrong-host": (pki.server_cert, pki.server_key)}


class TLSServer:
    """A retls server with certfile/keyfile on 127.0.0.1 for one client;
    records how its handshake ended and the raw bytes that arrived after
    that."""

    def __init__(self, certfile, keyfile):
        self.ctx = retls.Context("server", certfile=certfile, keyfile=keyfile)
        self.listener = socket.create_server((HOST, 0))
        self.listener.settimeout(DEADLINE)
        self.port = self.listener.getsockname()[1]
        self.error, self.after = None, b""
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        s, _ = self.listener.accept()
        with s:
            s.setblocking(True)
            conn = retls.Connection(self.ctx, s)
            try:
                conn.do_handshake()
                conn.read()
            except retls.Error as e:
                self.error = e
            conn.close(discard=True)
            s.settimeout(DEADLINE)
            while True:                     # what the client sent later
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    break     # the client closed with our bytes unread
                if not chunk:
                    break
                self.after += chunk

    def finish(self):
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive()
        self.listener.close()


@pytest.mark.parametrize("case,hostname,reason,alert", [
    pytest.param("expired", "localhost", "certificate has expired",
                 "sslv3 alert certificate expired", id="expired"),
    pytest.param("self-signed", "localhost", "self-signed certificate",
                 "tlsv1 alert unknown ca", id="self-signed"),
    pytest.param("wrong-host", "example.com",
                 "hostname mismatch", "sslv3 alert bad certificate",
                 id="wrong-host"),
])
def test_bad_certificate(bad_certs, pki, case, hostname, reason, alert):
    srv = TLSServer(*bad_certs[case])
    conn = retls.connect(HOST, srv.port, retls.Context(cafile=pki.ca),
                         server_hostname=hostname, timeout=DEADLINE)
    with pytest.raises(retls.VerifyError) as info:
        conn.write(b"secret")               # the handshake runs first
    assert str(info.value) == ("write: certificate verify failed: " +
                               reason + ": certificate verify failed")
    assert_nothing_more(conn, reason)
    conn.close()
    srv.finish()
    # The server learnt why from the alert, and nothing came after it.
    assert type(srv.error) is retls.SSLError
    assert alert in str(srv.error)
    assert srv.after == b""
