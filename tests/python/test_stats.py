"""Every counter exact after a scripted sequence (mirrors
tests/c/test_stats.c).

TLS 1.2 so that a renegotiation can make a write stop on WantRead.  The
pipe holds 20000 bytes: a 100-byte record plus the first full record of a
30000-byte write fit, the second record does not, so that write stops
exactly once on WantWrite, and one flush after the reader drained
finishes it.
"""
import pytest

import retls

from helpers import drain, pattern


def test_counters_after_script():
    a, b, cbuf, reply = (pattern(100, 31), pattern(30000, 32),
                         pattern(10, 33), pattern(500, 34))
    client, server = retls.pair(
        retls.Context(verify=False, max_version="TLSv1.2"), capacity=20000)
    # Fresh connection: all zero (the handshake is not a write).
    assert set(client.stats.values()) == {0}

    assert client.write(a) == 100                           # w1
    with pytest.raises(retls.WantWrite):
        client.write(b)                                     # ww1
    for other in (b[:-1], b + b"\0", bytes([b[0] ^ 1]) + b[1:]):
        with pytest.raises(retls.RetryMismatch):
            client.write(other)                             # m1..m3
    with pytest.raises(retls.WantWrite):
        client.write(b)                                     # r1, ww2
    assert client.write(b"") == 0                           # no-op
    got = bytearray(drain(server))
    assert client.flush() == len(b)                         # r2, w2
    assert client.flush() == 0                              # nothing pending

    # Renegotiation: the next write stops on WantRead until the server has
    # answered, twice (its hello flight, then its Finished).
    client.renegotiate()
    with pytest.raises(retls.WantRead):
        client.write(cbuf)                                  # wr1
    assert client.want == "read"
    got += drain(server)
    with pytest.raises(retls.WantRead):
        client.flush()                                      # r3, wr2
    got += drain(server)
    assert client.flush() == len(cbuf)                      # r4, w3
    got += drain(server)

    # The server answers; the client reads it in pieces.
    assert server.write(reply) == 500
    answer = bytearray()
    while len(answer) < 500:
        piece = client.read(128)
        assert 0 < len(piece) <= 128
        answer += piece
    assert answer == reply
    with pytest.raises(retls.WantRead):
        client.read()
    assert got == a + b + cbuf

    assert client.stats == {
        "writes": 3, "bytes_written": 100 + 30000 + 10,
        "want_write": 2, "want_read": 2, "retries": 4, "mismatches": 3,
        "bytes_read": 500, "early_bytes": 0, "early_replayed": 0}
    assert server.stats == {
        "writes": 1, "bytes_written": 500, "want_write": 0, "want_read": 0,
        "retries": 0, "mismatches": 0, "bytes_read": 100 + 30000 + 10,
        "early_bytes": 0, "early_replayed": 0}

    # Counters survive close, for post-mortem reporting.
    client.close()
    assert client.stats["writes"] == 3 and client.stats["mismatches"] == 3
