"""The retry contract through the Python module (mirrors tests/c/test_retry.c).

A write that stops on WantWrite is kept by the connection: the caller's
buffer may be mutated, deleted and collected; flush() or a write with the
same bytes finishes it; other bytes raise RetryMismatch and change nothing.
The peer must receive every acknowledged byte once, in order.
"""
import array
import gc

import pytest

import retls

from helpers import drain, flush_through, pattern

CAP = 4096
LEN = 64 * 1024


def blocked_pair(data):
    """A pair whose client has data pending after a WantWrite."""
    client, server = retls.pair(capacity=CAP)
    with pytest.raises(retls.WantWrite) as info:
        client.write(data)
    assert "writable" in str(info.value)
    assert client.pending_write == len(data)
    assert client.want == "write"
    return client, server


def test_want_write_then_same_bytes_resumes():
    data = pattern(LEN, 1)
    client, server = blocked_pair(data)
    got = bytearray()
    for _ in range(1000):
        got += drain(server)
        try:
            n = client.write(data)          # the same bytes: a retry
            break
        except retls.WantWrite:
            continue
    assert n == LEN
    got += drain(server)
    assert got == data
    assert client.pending_write == 0 and client.want is None
    st = client.stats
    assert st["writes"] == 1 and st["bytes_written"] == LEN
    assert st["mismatches"] == 0 and st["retries"] == st["want_write"]


@pytest.mark.parametrize("other,kind", [
    (lambda d: d[:-1], "shorter"),
    (lambda d: d + b"!", "longer"),
    (lambda d: bytes(reversed(d)), "same length, other bytes"),
])
def test_mismatch(other, kind):
    # test_mismatch_shorter / _longer / _same_length_other_bytes in C
    data = pattern(LEN, 2)
    client, server = blocked_pair(data)
    before = drain(server)
    with pytest.raises(retls.RetryMismatch) as info:
        client.write(other(data))
    msg = str(info.value)
    assert kind in msg
    assert f"{LEN} bytes of an earlier write are pending" in msg
    assert "flush()" in msg
    assert isinstance(info.value, ValueError)
    # Nothing sent, nothing lost: the pending write is intact.
    assert client.pending_write == LEN
    assert client.stats["mismatches"] == 1
    got = bytearray(before)
    n, _ = flush_through(client, server, got)
    assert n == LEN
    got += drain(server)
    assert got == data
    # ...and the connection still works afterwards.
    assert client.write(b"next") == 4
    assert drain(server) == b"next"


def test_mismatch_repeated_then_same_bytes():
    data = pattern(LEN, 3)
    client, server = blocked_pair(data)
    for i in range(5):
        with pytest.raises(retls.RetryMismatch):
            client.write(b"x" * (i + 1))
    got = bytearray()
    while True:
        got += drain(server)
        try:
            assert client.write(data) == LEN
            break
        except retls.WantWrite:
            pass
    got += drain(server)
    assert got == data
    assert client.stats["mismatches"] == 5


def test_caller_buffer_freed_after_want():
    data = pattern(LEN, 4)
    buf = bytearray(data)
    client, server = blocked_pair(buf)
    del buf
    gc.collect()
    got = bytearray()
    n, _ = flush_through(client, server, got)
    got += drain(server)
    assert n == LEN and got == data


def test_caller_buffer_reused_after_want():
    data = pattern(LEN, 5)
    buf = bytearray(data)
    client, server = blocked_pair(buf)
    # The buffer is no longer exported: it can grow, shrink and change.
    buf[:] = b"\xee" * LEN
    buf.extend(b"more")
    del buf[10:]
    gc.collect()
    got = bytearray()
    n, _ = flush_through(client, server, got)
    got += drain(server)
    assert n == LEN and got == data


def test_write_with_a_copy_of_the_original_bytes_resumes():
    data = pattern(LEN, 6)
    buf = bytearray(data)
    client, server = blocked_pair(memoryview(buf))
    buf[:] = bytes(LEN)
    got = bytearray()
    while True:
        got += drain(server)
        try:
            client.write(array.array("B", data))   # other object, same bytes
            break
        except retls.WantWrite:
            pass
    got += drain(server)
    assert got == data


def test_flush_with_nothing_pending():
    client, server = retls.pair()
    assert client.flush() == 0
    assert client.write(b"abc") == 3
    assert client.flush() == 0
    assert drain(server) == b"abc"


def test_zero_length_write_is_a_noop():
    client, server = retls.pair(capacity=CAP)
    assert client.write(b"") == 0
    assert client.write(bytearray()) == 0
    data = pattern(LEN, 7)
    with pytest.raises(retls.WantWrite):
        client.write(data)
    # Even with a write pending: no mismatch, no change.
    assert client.write(b"") == 0
    assert client.pending_write == LEN
    assert client.stats["mismatches"] == 0
    got = bytearray()
    flush_through(client, server, got)
    got += drain(server)
    assert got == data


def test_sendall_want_write_carries_bytes_sent():
    ctx = retls.Context(verify=False, partial_write=True)
    client, server = retls.pair(ctx, capacity=40000)   # room for 2 records
    data = pattern(LEN, 8)
    with pytest.raises(retls.WantWrite) as info:
        client.sendall(data)
    sent = info.value.bytes_sent
    # Partial writes acknowledged two whole records before the pipe filled.
    assert sent == 2 * 16384
    assert client.pending_write == LEN - sent
    got = bytearray()
    n, _ = flush_through(client, server, got)
    rest = data[sent + n:]
    while True:
        try:
            client.sendall(rest)
            break
        except retls.WantWrite as e:
            got += drain(server)
            k, _ = flush_through(client, server, got)
            rest = rest[e.bytes_sent + k:]
    got += drain(server)
    assert got == data


def test_sendall_whole_in_one_write_mode():
    client, server = retls.pair(capacity=CAP)
    data = pattern(LEN, 9)
    with pytest.raises(retls.WantWrite) as info:
        client.sendall(data)
    assert info.value.bytes_sent == 0          # nothing acknowledged yet
    got = bytearray()
    n, _ = flush_through(client, server, got)
    assert n == LEN                            # flush covered all the rest
    client.sendall(data[info.value.bytes_sent + n:])   # b"": nothing to do
    got += drain(server)
    assert got == data


def test_sendall_accepts_any_buffer_layout():
    client, server = retls.pair()
    ints = array.array("i", range(1000))
    client.sendall(ints)
    client.sendall(memoryview(ints).cast("B").cast("i", (10, 100)))
    assert drain(server) == ints.tobytes() * 2


def test_partial_write_takes_one_record_per_call():
    ctx = retls.Context(verify=False, partial_write=True)
    client, server = retls.pair(ctx, capacity=1 << 20)
    data = pattern(100000, 10)
    taken = client.write(data)
    assert taken == 16384
    client.sendall(data[taken:])
    assert drain(server) == data
