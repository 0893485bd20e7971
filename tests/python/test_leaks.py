"""No reference or memory leaks on the paths a busy non-blocking writer
takes over and over: write -> WantWrite -> retry (by flush() or by the same
bytes), with RetryMismatch and reads in between.

Measured, not eyeballed: Python allocations (tracemalloc), the number of
live objects (gc), the refcount of the caller's buffer, and the process
RSS (which also sees C-level malloc in the wrapper and OpenSSL).  A leak of
one small object per cycle would show as megabytes over 100,000 cycles;
the bounds below leave room for allocator noise only.
"""
import gc
import sys
import tracemalloc

import retls

CYCLES = 100_000
CAP = 1024
DATA = bytearray(b"retls" * 300)        # 1500 bytes: one record > CAP


def _asan_allocated():
    """ASan's count of live malloc'd bytes, when the ASan runtime is loaded
    (the sanitizer build preloads it), else None."""
    import ctypes
    try:
        f = ctypes.CDLL(None).__sanitizer_get_current_allocated_bytes
    except AttributeError:
        return None
    f.restype = ctypes.c_size_t
    return f


_ASAN_ALLOCATED = _asan_allocated()


def rss_bytes():
    """Memory the process holds.  Under ASan, RSS also counts the
    quarantine of freed blocks (hundreds of MB by design), so the
    sanitizer's own count of live heap bytes stands in for it: a stricter
    measure of the same thing."""
    if _ASAN_ALLOCATED is not None:
        return _ASAN_ALLOCATED()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def one_cycle(client, server, i):
    try:
        client.write(DATA)
        raise AssertionError("expected WantWrite")
    except retls.WantWrite:
        pass
    if i % 10 == 0:
        try:
            client.write(b"other bytes")
            raise AssertionError("expected RetryMismatch")
        except retls.RetryMismatch:
            pass
    try:
        server.read(4096)               # only part of the record arrived
        raise AssertionError("expected WantRead")
    except retls.WantRead:
        pass
    if i % 2:
        n = client.flush()
    else:
        n = client.write(DATA)          # the retry by same bytes
    assert n == len(DATA)
    assert server.read(4096) == DATA


def run(client, server, start, count):
    for i in range(start, start + count):
        one_cycle(client, server, i)


def test_write_want_retry_cycles_do_not_leak():
    client, server = retls.pair(capacity=CAP)
    run(client, server, 0, 5_000)       # warm up caches and free lists
    gc.collect()
    refs = sys.getrefcount(DATA)
    objects = len(gc.get_objects())
    rss = rss_bytes()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        run(client, server, 5_000, CYCLES)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert grown < 64 * 1024, after.compare_to(before, "lineno")[:5]
    assert len(gc.get_objects()) - objects < 100
    assert sys.getrefcount(DATA) == refs
    DATA.extend(b"!")                   # not exported any more: resizable
    del DATA[-1:]
    assert rss_bytes() - rss < 4 * 1024 * 1024
    st = client.stats
    assert st["want_write"] == CYCLES + 5_000
    assert st["mismatches"] == (CYCLES + 5_000) // 10
    assert st["retries"] == CYCLES + 5_000
    assert st["bytes_written"] == (CYCLES + 5_000) * len(DATA)


def test_connections_dropped_with_a_pending_write_are_freed():
    def churn(n):
        for i in range(n):
            # Every 10th pair is established and stops on WantWrite; the
            # others stop on WantRead inside the implicit handshake.  Both
            # keep a copy of the pending bytes.
            client, server = retls.pair(capacity=CAP, handshake=i % 10 == 0)
            try:
                client.write(DATA)
            except retls.WantIO:
                pass
            assert client.pending_write == len(DATA)
            del client, server          # the destructor drops the copy
    churn(200)
    gc.collect()
    rss = rss_bytes()
    objects = len(gc.get_objects())
    churn(3000)
    gc.collect()
    assert len(gc.get_objects()) - objects < 100
    assert rss_bytes() - rss < 4 * 1024 * 1024


def test_context_outlives_its_connections():
    # At the C level: the connections hold their own context reference, so
    # the script's context object may be collected first.
    from retls import _core
    sctx = _core.ctx_new(_core.SERVER)
    sctx.use_selfsigned("localhost")
    client, server = retls.pair(handshake=False)
    c, s = _core.pair_new(None, sctx, 0)
    del sctx
    gc.collect()
    for _ in range(10):
        for end in (c, s):
            try:
                end.handshake()
            except retls.WantRead:
                pass
    assert c.write(b"alive") == 5
    assert s.read(10) == b"alive"
    # And in the Python layer the Connection keeps its Context.
    ctx = retls.Context(verify=False)
    conn = retls.Connection(ctx, None)
    del ctx
    gc.collect()
    assert isinstance(conn.context, retls.Context)
