"""Every bad input gets a clear exception naming the problem; nothing
crashes.  Also: which buffers write() accepts, writing after close, and
writing to a connection whose peer has closed."""
import array
import mmap
import os
import socket

import pytest

import retls

from helpers import drain


# ---- buffers -------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda b: b,
    bytearray,
    memoryview,
    lambda b: memoryview(bytearray(b"??" + b + b"??"))[2:-2],  # contiguous slice
    lambda b: array.array("B", b),
    lambda b: array.array("H", b),     # 2-byte items: written as raw bytes
])
def test_write_accepts_contiguous_buffers(make):
    client, server = retls.pair()
    data = b"0123456789abcdef"
    obj = make(data)
    assert client.write(obj) == len(data)
    assert drain(server) == data


def test_write_accepts_mmap():
    client, server = retls.pair()
    with mmap.mmap(-1, 4096) as m:
        m[:5] = b"mmap!"
        assert client.write(m) == 4096
    assert drain(server) == b"mmap!" + bytes(4091)


@pytest.mark.parametrize("bad,needle", [
    ("text", "not 'str'; encode text first"),
    (None, "not 'NoneType'"),
    (42, "not 'int'"),
    ([1, 2, 3], "not 'list'"),
    (memoryview(b"abcdef")[::2], "not contiguous"),
])
def test_write_rejects_non_buffers_with_type_error(bad, needle):
    client, server = retls.pair()
    for method in (client.write, client.sendall):
        with pytest.raises(TypeError) as info:
            method(bad)
        if method is client.write:
            assert needle in str(info.value)
    # The connection is untouched by the refusals.
    assert client.stats["writes"] == 0
    assert client.write(b"ok") == 2
    assert drain(server) == b"ok"


def test_bio_write_rejects_text():
    ctx = retls.Context(verify=False)
    conn = retls.Connection(ctx, None)
    with pytest.raises(TypeError, match="encode text first"):
        conn.bio_write("text")


# ---- closed connections and peers -------------------------------------------------

def test_write_after_close():
    client, server = retls.pair()
    client.close()
    for op in (lambda: client.write(b"x"), client.flush, client.read,
               client.do_handshake, client.shutdown, client.renegotiate,
               lambda: client.sendall(b"x")):
        with pytest.raises(retls.Closed,
                           match="the connection is closed; open a new one"):
            op()
    client.close()                      # closing twice is fine
    assert client.fileno() == -1 and client.version is None


def test_close_refuses_to_drop_a_pending_write():
    client, server = retls.pair(capacity=1024)
    with pytest.raises(retls.WantWrite):
        client.write(b"x" * 5000)
    with pytest.raises(retls.WritePending, match="flush\\(\\) them first"):
        client.shutdown()
    with pytest.raises(retls.WritePending, match="5000 bytes .* pending"):
        client.close()
    assert client.pending_write == 5000          # still open, still pending
    client.close(discard=True)
    with pytest.raises(retls.Closed):
        client.flush()


def test_with_block_left_by_exception_discards():
    client, server = retls.pair(capacity=1024)
    with pytest.raises(retls.WantWrite):
        with client:
            client.write(b"x" * 5000)
    with pytest.raises(retls.Closed):
        client.write(b"x")


def test_peer_closed_cleanly(sockpair):
    p = sockpair()
    p.server.shutdown()                 # close_notify
    p.server.close()
    p.b.close()
    with pytest.raises(retls.ZeroReturn, match="close_notify"):
        p.client.read()
    # Once the close_notify was seen, a write failing on the gone socket
    # is reported as what it is: the peer closed cleanly.
    with pytest.raises(retls.ZeroReturn, match="write: the peer sent "
                                               "close_notify"):
        p.client.write(b"x")
    with pytest.raises(retls.ZeroReturn):     # and stays so
        p.client.write(b"x")


def test_write_to_a_peer_that_is_gone(sockpair):
    p = sockpair()
    p.server.shutdown()
    p.server.close()
    p.b.close()
    # The close_notify was never read: the write meets the dead socket.
    with pytest.raises(retls.Error, match="write: Broken pipe") as info:
        p.client.write(b"x")
    assert type(info.value) is retls.Error
    with pytest.raises(retls.Closed, match="failed earlier.*Broken pipe"):
        p.client.write(b"x")


def test_peer_vanished_without_close_notify(sockpair):
    p = sockpair()
    p.server.close()
    p.b.close()
    with pytest.raises(retls.EOFError, match="without close_notify"):
        p.client.read()


def test_pair_peer_closed():
    client, server = retls.pair()
    server.close()
    with pytest.raises(retls.EOFError, match="closed without close_notify"):
        client.write(b"x")


# ---- contexts ----------------------------------------------------------------------

@pytest.mark.parametrize("kw,exc,needle", [
    (dict(role="peer"), ValueError, "role must be 'client' or 'server'"),
    (dict(min_version="TLSv9"), retls.ArgumentError, "unknown TLS version"),
    (dict(max_version=1.3), TypeError, "max_version must be a str"),
    (dict(ciphers="NOPE"), retls.ArgumentError, "no usable cipher"),
    (dict(ciphersuites="NOPE"), retls.ArgumentError, "TLS 1.3 ciphersuites"),
    (dict(alpn="h2"), TypeError, "not a single string"),
    (dict(alpn=[""]), ValueError, "bad alpn protocol name"),
    (dict(alpn=["a,b"]), ValueError, "without ','"),
    (dict(alpn=[b"h2"]), TypeError, "must be str"),
    (dict(cafile="/nonexistent/ca.pem"), retls.Error, "cannot load CA file"),
    (dict(cafile=3), TypeError, "cafile must be a path"),
    (dict(certfile="/nonexistent/c.pem"), retls.Error,
     "cannot load certificate"),
    (dict(keyfile="/x.key"), ValueError, "keyfile needs a certfile"),
    (dict(keylog="/nonexistent/dir/k.log"), retls.Error,
     "cannot open keylog file"),
    (dict(ciphers="A\0B"), ValueError, "NUL"),
])
def test_context_bad_arguments(kw, exc, needle):
    role = kw.pop("role", "client")
    with pytest.raises(exc, match=needle):
        retls.Context(role, **kw)


def test_key_not_matching_certificate(pki):
    with pytest.raises(retls.Error, match="key"):
        retls.Context("server", certfile=pki.server_cert,
                      keyfile=pki.client_key)


# ---- connections -------------------------------------------------------------------

def test_connection_bad_arguments(tmp_path):
    ctx = retls.Context()
    with pytest.raises(TypeError, match="ctx must be a retls.Context"):
        retls.Connection(None)
    with pytest.raises(TypeError, match="ctx must be a retls.Context"):
        retls.Connection("ctx")
    with pytest.raises(retls.ArgumentError, match="pass server_hostname"):
        retls.Connection(ctx, None)
    with pytest.raises(TypeError, match="server_hostname must be a str"):
        retls.Connection(ctx, None, server_hostname=b"x")
    with pytest.raises(ValueError, match="NUL"):
        retls.Connection(ctx, None, server_hostname="a\0b")
    with pytest.raises(TypeError, match="sock must be a socket object"):
        retls.Connection(ctx, "sock", server_hostname="x")
    with pytest.raises(TypeError, match="sock must be a socket object"):
        retls.Connection(ctx, True, server_hostname="x")
    with pytest.raises(ValueError, match="closed"):
        retls.Connection(ctx, -1, server_hostname="x")
    fd = os.open(tmp_path, os.O_RDONLY)
    os.close(fd)
    with pytest.raises(retls.ArgumentError,
                       match=f"fd {fd} is not an open file descriptor"):
        retls.Connection(ctx, fd, server_hostname="x")
    with socket.socket() as s:
        s.settimeout(3)
        with pytest.raises(ValueError, match="setblocking"):
            retls.Connection(ctx, s, server_hostname="x")
    s = socket.socket()
    s.close()
    with pytest.raises(ValueError, match="closed"):
        retls.Connection(ctx, s, server_hostname="x")
    with pytest.raises(retls.ArgumentError, match="client connections only"):
        retls.Connection(retls.Context("server"), None, server_hostname="x")


def test_method_bad_arguments():
    client, server = retls.pair()
    with pytest.raises(TypeError, match="size must be an int, not 'str'"):
        client.read("x")
    with pytest.raises(TypeError, match="size must be an int, not 'float'"):
        client.read(1.5)
    with pytest.raises(ValueError, match="size must be >= 0"):
        client.read(-1)
    with pytest.raises(retls.ArgumentError, match="at least 1 byte"):
        client.read(0)
    with pytest.raises(OverflowError):
        client.read(2 ** 70)
    with pytest.raises(retls.ArgumentError, match="only for memory-mode"):
        client.bio_write(b"x")
    with pytest.raises(retls.ArgumentError, match="only for memory-mode"):
        client.bio_read(5)
    with pytest.raises(retls.ArgumentError, match="does not exist in TLS 1.3"):
        client.renegotiate()
    # ...and after all that the connection works.
    assert client.write(b"fine") == 4
    assert drain(server) == b"fine"


@pytest.mark.parametrize("args,kw,exc,needle", [
    ((), dict(capacity=0), ValueError, "capacity must be >= 1"),
    ((), dict(capacity="big"), TypeError, "capacity must be an int"),
    ((), dict(capacity=True), TypeError, "capacity must be an int"),
    (("ctx",), {}, TypeError, "client_ctx must be a retls.Context"),
    ((retls.Context("server"),), {}, retls.ArgumentError,
     "first context must be a client context"),
    ((None, retls.Context("client")), {}, retls.ArgumentError,
     "second context must be a server context"),
])
def test_pair_bad_arguments(args, kw, exc, needle):
    with pytest.raises(exc, match=needle):
        retls.pair(*args, **kw)


@pytest.mark.parametrize("args,kw,exc,needle", [
    (("127.0.0.1", 0), {}, retls.ArgumentError, "port in 1..65535"),
    (("127.0.0.1", 70000), {}, retls.ArgumentError, "port in 1..65535"),
    (("127.0.0.1", "443"), {}, TypeError, "port must be an int"),
    ((b"127.0.0.1", 443), {}, TypeError, "host must be a str"),
    (("127.0.0.1", 443), dict(timeout=0), ValueError, "timeout must be > 0"),
    (("127.0.0.1", 443), dict(timeout=-1), ValueError, "timeout must be > 0"),
    (("127.0.0.1", 443, "ctx"), {}, TypeError, "ctx must be a retls.Context"),
    (("no-such-host.invalid", 443), {}, retls.Error, "cannot resolve"),
])
def test_connect_bad_arguments(args, kw, exc, needle):
    with pytest.raises(exc, match=needle):
        retls.connect(*args, **kw)


def test_connect_refused():
    with socket.socket() as s:          # a port that nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(retls.Error, match="Connection refused"):
        retls.connect("127.0.0.1", port, timeout=5)
