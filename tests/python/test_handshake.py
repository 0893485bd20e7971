"""Handshakes: memory-BIO mode driven by hand, ALPN, the key log, version
and cipher settings (verification: test_verify.py)."""
import random
import re

import pytest

import retls

from helpers import drain, handshake_memory, relay


def memory_pair(cctx, sctx, server_hostname=None):
    return (retls.Connection(cctx, None, server_hostname=server_hostname),
            retls.Connection(sctx, None))


def test_memory_bio_handshake_by_hand(pki):
    cctx = retls.Context(cafile=pki.ca)
    sctx = retls.Context("server", certfile=pki.server_cert,
                         keyfile=pki.server_key)
    client, server = memory_pair(cctx, sctx, "localhost")
    assert client.fileno() == -1

    # Flight by flight, as a caller moving the bytes itself would.
    with pytest.raises(retls.WantRead):
        client.do_handshake()                       # ClientHello
    hello = client.bio_read()
    assert hello[:1] == b"\x16"                     # a handshake record
    assert client.bio_read() == b""                 # nothing more waiting
    assert server.bio_write(hello) == len(hello)
    with pytest.raises(retls.WantRead):
        server.do_handshake()                       # ServerHello..Finished
    assert server.want == "read" and not server.established
    assert relay(server, client)
    client.do_handshake()                           # client Finished
    assert client.established
    assert relay(client, server)
    server.do_handshake()
    assert server.established
    assert client.version == server.version == "TLSv1.3"
    assert client.want is None

    assert client.write(b"over memory") == 11
    relay(client, server)
    assert drain(server) == b"over memory"
    server.write(b"and back")
    relay(server, client)
    assert drain(client) == b"and back"


def test_memory_bio_read_sizes_and_eof():
    sctx = retls.Context("server")
    sctx.use_selfsigned()
    client, server = memory_pair(retls.Context(verify=False), sctx)
    with pytest.raises(retls.WantRead):
        client.do_handshake()
    pending = client.bio_pending
    first = client.bio_read(10)
    assert len(first) == 10 and client.bio_pending == pending - 10
    server.bio_write(first + client.bio_read())
    handshake_memory(client, server)
    server.bio_write_eof()
    with pytest.raises(retls.EOFError):
        server.read()


def test_memory_mode_is_unbounded_by_default():
    # like ssl.MemoryBIO: a 300 KiB write succeeds at once and leaves all
    # of its ciphertext (22 bytes per 16 KiB record more) for bio_read()
    cctx = retls.Context(verify=False)
    sctx = retls.Context("server")
    sctx.use_selfsigned()
    client, server = memory_pair(cctx, sctx)
    handshake_memory(client, server)
    relay(server, client)                    # session tickets
    drain(client)
    data = random.randbytes(300 * 1024)
    assert client.write(data) == len(data)
    assert client.pending_write == 0
    size = len(data) + 22 * -(-len(data) // 16384)
    assert client.bio_pending == size
    ciphertext = client.bio_read()           # everything, in one object
    assert len(ciphertext) == size and client.bio_pending == 0
    assert client.bio_read() == b""
    server.bio_write(ciphertext)
    assert drain(server) == data


def test_memory_write_stops_when_outgoing_buffer_is_full():
    cctx = retls.Context(verify=False)
    sctx = retls.Context("server")
    sctx.use_selfsigned()
    client = retls.Connection(cctx, None, capacity=65536)
    server = retls.Connection(sctx, None)
    handshake_memory(client, server)
    data = bytes(200_000)                    # > capacity
    with pytest.raises(retls.WantWrite):
        client.write(data)
    got = bytearray()
    while client.pending_write:
        relay(client, server)
        got += drain(server)
        try:
            client.flush()
        except retls.WantWrite:
            pass
    relay(client, server)
    got += drain(server)
    assert got == data


@pytest.mark.parametrize("offer,accept,agreed", [
    (["h2", "http/1.1"], ["http/1.1", "h2"], "http/1.1"),   # server's order
    (["h2", "http/1.1"], ["h2"], "h2"),
    (["spdy/1"], ["h2"], None),                             # no overlap
    (None, ["h2"], None),                                   # not offered
])
def test_alpn(offer, accept, agreed):
    # alpn_strict=False: the lenient server continues without an overlap
    # (the strict default is tested against s_client in test_sessions.py).
    sctx = retls.Context("server", alpn=accept, alpn_strict=False)
    sctx.use_selfsigned()
    client, server = retls.pair(retls.Context(verify=False, alpn=offer), sctx)
    assert client.alpn_protocol == server.alpn_protocol == agreed


@pytest.mark.parametrize("version,labels", [
    ("TLSv1.3", {"CLIENT_HANDSHAKE_TRAFFIC_SECRET",
                 "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                 "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0",
                 "EXPORTER_SECRET"}),
    ("TLSv1.2", {"CLIENT_RANDOM"}),
])
def test_keylog_nss_format(tmp_path, version, labels):
    path = tmp_path / "keys.log"
    cctx = retls.Context(verify=False, keylog=path, max_version=version)
    client, server = retls.pair(cctx)
    assert client.version == version
    lines = path.read_text().splitlines()
    assert lines
    line_re = re.compile(r"^([A-Z_0-9]+) ([0-9a-f]{64}) ([0-9a-f]{64,96})$")
    seen = set()
    randoms = set()
    for line in lines:
        m = line_re.match(line)
        assert m, f"not NSS key log format: {line!r}"
        seen.add(m.group(1))
        randoms.add(m.group(2))
    assert seen == labels
    assert len(randoms) == 1       # one connection: one client random
    # Only the context that asked writes a key log.
    assert path.stat().st_size == len("\n".join(lines)) + 1


def test_version_bounds():
    sctx = retls.Context("server", min_version="TLSv1.3")
    sctx.use_selfsigned()
    client = retls.Connection(retls.Context(verify=False,
                                            max_version="TLSv1.2"), None)
    server = retls.Connection(sctx, None)
    with pytest.raises(retls.SSLError, match="unsupported protocol"):
        handshake_memory(client, server)
    c12, _ = retls.pair(retls.Context(verify=False, max_version="TLSv1.2"))
    assert c12.version == "TLSv1.2"


def test_ciphers_and_ciphersuites():
    cctx = retls.Context(verify=False, ciphersuites="TLS_CHACHA20_POLY1305_SHA256")
    client, _ = retls.pair(cctx)
    assert client.cipher == "TLS_CHACHA20_POLY1305_SHA256"
    cctx = retls.Context(verify=False, max_version="TLSv1.2",
                         ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
    client, _ = retls.pair(cctx)
    assert client.cipher == "ECDHE-ECDSA-AES128-GCM-SHA256"
