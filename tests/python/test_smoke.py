"""The module loads, a pair moves bytes, the fixed API names exist."""
import os
import re

import retls



def test_pair_moves_bytes():
    client, server = retls.pair()
    assert client.write(b"hello") == 5
    assert server.read() == b"hello"
    assert server.write(bytearray(b"back")) == 4
    assert client.read(100) == b"back"
    assert client.version == server.version == "TLSv1.3"
    assert client.cipher == server.cipher and client.cipher
    assert client.established and server.established


def test_versions():
    # the one version: RETLS_VERSION in the C header
    header = os.path.join(os.path.dirname(__file__), "..", "..", "core",
                          "include", "retls.h")
    with open(header) as f:
        version = re.search(r'#define RETLS_VERSION "(\d+\.\d+\.\d+)"',
                            f.read()).group(1)
    assert retls.__version__ == version
    assert retls.OPENSSL_VERSION.startswith("OpenSSL 3.")


def test_pair_without_handshake_needs_both_ends():
    client, server = retls.pair(handshake=False)
    assert client.version is None and not client.established
    try:
        client.do_handshake()
    except retls.WantRead:
        pass
    else:
        raise AssertionError("a client alone cannot finish the handshake")
    assert client.want == "read"
    for _ in range(10):
        for end in (server, client):
            try:
                end.do_handshake()
            except retls.WantRead:
                pass
        if client.established and server.established:
            break
    assert client.version == "TLSv1.3"
    assert client.want is None


def test_context_manager_closes():
    client, server = retls.pair()
    with client as c:
        assert c is client
        c.write(b"x")
        assert server.read() == b"x"
    try:
        client.write(b"y")
    except retls.Closed as e:
        assert "closed" in str(e)
    else:
        raise AssertionError("write after the with block must raise")


def test_information():
    client, server = retls.pair()
    assert client.fileno() == -1          # no socket in a pair
    assert client.alpn_protocol is None
    assert client.peer_certificate[:1] == b"\x30"   # DER SEQUENCE
    assert server.peer_certificate is None          # no client certificate
    assert client.pending_write == 0 and client.want is None
    assert client.pending_read == 0
    assert re.match(r"<retls.Connection TLSv1.3 fd=-1>", repr(client))
    assert set(client.stats) == {"writes", "bytes_written", "want_read",
                                 "want_write", "retries", "mismatches",
                                 "bytes_read", "early_bytes", "early_replayed"}


def test_exception_hierarchy():
    assert issubclass(retls.Error, OSError)
    for cls in (retls.WantRead, retls.WantWrite):
        assert issubclass(cls, retls.WantIO)
    assert issubclass(retls.WantIO, retls.Error)
    assert issubclass(retls.RetryMismatch, retls.Error)
    assert issubclass(retls.RetryMismatch, ValueError)
    assert issubclass(retls.VerifyError, retls.SSLError)
    assert issubclass(retls.EOFError, EOFError)
    assert issubclass(retls.TimeoutError, TimeoutError)
    for cls in (retls.ZeroReturn, retls.EOFError, retls.SSLError,
                retls.Closed, retls.WritePending, retls.TimeoutError,
                retls.ArgumentError):
        assert issubclass(cls, retls.Error)
