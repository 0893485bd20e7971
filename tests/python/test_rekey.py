"""Writes that meet a TLS 1.2 renegotiation or a TLS 1.3 KeyUpdate
(mirrors tests/c/test_rekey.c).

Renegotiation: after renegotiate() the client's next write sends a
ClientHello and raises WantRead until the server has answered; the bytes
are kept and go out once the new handshake is done.

KeyUpdate, as OpenSSL 3.0 really behaves (pinned down here and in C):
sending one never waits for the peer, so it never makes a write raise
WantRead; it makes a write raise WantWrite when the transport has no room
for the KeyUpdate record.  A KeyUpdate with update_requested is answered
with the receiver's next write.  The TLS 1.3 cases run in memory mode and
count records: with AES-GCM a KeyUpdate record has a 22-byte payload and a
1-byte application record an 18-byte one.
"""
import pytest

import retls

from helpers import drain, flush_through, pattern, records, relay
from helpers import handshake_memory

KEY_UPDATE_RECORD = 22
ONE_BYTE_RECORD = 18


def tls12_pair(server_ctx=None):
    return retls.pair(retls.Context(verify=False, max_version="TLSv1.2"),
                      server_ctx)


def memory_pair(capacity=65536):
    sctx = retls.Context("server")
    sctx.use_selfsigned()
    c = retls.Connection(retls.Context(verify=False), None, capacity=capacity)
    s = retls.Connection(sctx, None, capacity=capacity)
    handshake_memory(c, s)
    relay(s, c)                    # session tickets
    drain(c)
    return c, s


# ---- TLS 1.2 renegotiation ---------------------------------------------------

def test_renegotiation_makes_write_want_read():
    client, server = tls12_pair()
    assert client.version == "TLSv1.2"
    client.renegotiate()
    with pytest.raises(retls.WantRead):
        client.write(b"hello")
    assert client.pending_write == 5 and client.want == "read"
    # Other bytes while it waits are refused, and say what it waits for.
    with pytest.raises(retls.RetryMismatch, match="readable"):
        client.write(b"HELLO")
    got = bytearray()
    n, rounds = flush_through(client, server, got)
    assert n == 5
    assert rounds == 2        # server hello flight, then server Finished
    got += drain(server)
    assert got == b"hello"
    st = client.stats
    assert (st["want_read"], st["want_write"], st["mismatches"]) == (2, 0, 1)
    # The renegotiated session carries data both ways.
    assert server.write(b"back") == 4
    assert drain(client) == b"back"


def test_renegotiation_by_handshake():
    client, server = tls12_pair()
    client.renegotiate()
    with pytest.raises(retls.WantRead):
        client.do_handshake()
    server.do_handshake()     # nothing to do: it learns by reading
    for rounds in range(1, 11):
        assert drain(server) == b""
        try:
            client.do_handshake()
            break
        except retls.WantRead:
            pass
    assert rounds == 2
    assert client.write(b"after") == 5
    assert drain(server) == b"after"


def test_renegotiation_refused():
    sctx = retls.Context("server", renegotiation=False)
    sctx.use_selfsigned()
    client, server = tls12_pair(sctx)
    client.renegotiate()
    with pytest.raises(retls.SSLError, match="no renegotiation"):
        for _ in range(10):
            try:
                client.write(b"hello")
            except retls.WantRead:
                assert drain(server) == b""
    assert client.pending_write == 0      # never acknowledged, dropped


def test_renegotiate_needs_tls12_and_a_handshake():
    client, server = retls.pair(handshake=False)
    with pytest.raises(retls.ArgumentError, match="handshake"):
        client.renegotiate()
    with pytest.raises(retls.ArgumentError):
        client.key_update(True)
    client, server = retls.pair()
    assert client.version == "TLSv1.3"
    with pytest.raises(retls.ArgumentError, match="key_update"):
        client.renegotiate()
    client, server = tls12_pair()
    with pytest.raises(retls.ArgumentError, match="renegotiate"):
        client.key_update(True)


def test_renegotiation_scheduled_while_a_write_is_pending():
    # OpenSSL finishes the pending write under the old keys first; the
    # renegotiation starts with the next write, which raises WantRead.
    client, server = retls.pair(
        retls.Context(verify=False, max_version="TLSv1.2"), capacity=4096)
    data = pattern(256 * 1024, 11)
    with pytest.raises(retls.WantWrite):
        client.write(data)
    got = bytearray(drain(server))
    client.renegotiate()
    n, _ = flush_through(client, server, got)
    assert n == len(data)
    assert client.stats["want_read"] == 0
    with pytest.raises(retls.WantRead):
        client.write(b"tail")
    n, rounds = flush_through(client, server, got)
    assert (n, rounds) == (4, 2)
    got += drain(server)
    assert got == data + b"tail"
    assert client.stats["want_read"] == 2


# ---- TLS 1.3 KeyUpdate ---------------------------------------------------------

@pytest.mark.parametrize("request_peer", [True, False],
                         ids=["requested_is_answered",
                              "not_requested_is_not_answered"])
def test_key_update(request_peer):
    client, server = memory_pair()
    server.key_update(request_peer)
    assert server.write(b"x") == 1           # never WantRead
    assert records(relay(server, client)) == [KEY_UPDATE_RECORD,
                                              ONE_BYTE_RECORD]
    assert drain(client) == b"x"

    assert client.write(b"y") == 1
    if request_peer:
        assert records(relay(client, server)) == [KEY_UPDATE_RECORD,
                                                  ONE_BYTE_RECORD]
    else:
        assert records(relay(client, server)) == [ONE_BYTE_RECORD]
    assert client.write(b"z") == 1           # answered once only
    assert records(relay(client, server)) == [ONE_BYTE_RECORD]
    assert drain(server) == b"yz"            # new keys both ways
    server.write(b"w")
    relay(server, client)
    assert drain(client) == b"w"
    for end in (client, server):
        assert end.stats["want_read"] == 0 and end.stats["want_write"] == 0


def test_key_update_requested_while_write_pending():
    length = 4 * 16384
    data = pattern(length, 41)
    client, server = memory_pair(capacity=4096)
    with pytest.raises(retls.WantWrite):
        client.write(data)
    server.key_update(True)
    server.write(b"x")
    lens = records(relay(server, client))
    assert lens[0] == KEY_UPDATE_RECORD
    assert drain(client) == b"x"             # read while the write pends
    assert client.pending_write == length

    wire = bytearray()
    got = bytearray()
    rounds = 0
    while True:
        wire += relay(client, server)
        got += drain(server)
        rounds += 1
        try:
            n = client.flush()               # never WantRead
            break
        except retls.WantWrite:
            assert rounds < 1000
    assert n == length
    wire += relay(client, server)
    # Only the four application records: the answer is not wedged in.
    assert records(wire) == [16384 + 17] * 4
    assert client.write(b"y") == 1
    assert records(relay(client, server)) == [KEY_UPDATE_RECORD,
                                              ONE_BYTE_RECORD]
    got += drain(server)
    assert got == data + b"y"
    st = client.stats
    assert st["want_read"] == 0 and st["want_write"] == rounds


def test_key_update_send_blocked_wants_write():
    cap = 4096
    fill = pattern(cap - 22, 42)             # one record fills the pipe
    client, server = memory_pair(capacity=cap)
    assert client.write(fill) == len(fill)
    assert client.bio_pending == cap
    client.key_update(True)
    with pytest.raises(retls.WantWrite):
        client.write(b"z")
    assert client.want == "write" and client.pending_write == 1
    assert records(relay(client, server)) == [len(fill) + 17]
    assert client.flush() == 1
    assert records(relay(client, server)) == [KEY_UPDATE_RECORD,
                                              ONE_BYTE_RECORD]
    assert drain(server) == fill + b"z"
    server.write(b"a")                       # the server answers
    assert records(relay(server, client)) == [KEY_UPDATE_RECORD,
                                              ONE_BYTE_RECORD]
    assert drain(client) == b"a"
    st = client.stats
    assert (st["want_read"], st["want_write"], st["retries"]) == (0, 1, 1)


def test_key_update_sent_by_handshake():
    client, server = memory_pair()
    client.key_update(False)
    client.do_handshake()
    assert records(relay(client, server)) == [KEY_UPDATE_RECORD]
    assert drain(server) == b""
    client.write(b"k")
    relay(client, server)
    assert drain(server) == b"k"
