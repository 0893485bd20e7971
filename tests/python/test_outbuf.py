"""Memory mode's outgoing ciphertext lives in bytes objects that bio_read()
hands out without a copy (retls_conn_set_outbuf / retls_conn_bio_take):
whatever the sizes and the way it is drained, the peer gets exactly what
was written, and a bytes object once returned never changes."""
import hashlib
import os
import subprocess
import sys
import sysconfig

import retls

from helpers import drain, handshake_memory


def memory_pair():
    sctx = retls.Context("server")
    sctx.use_selfsigned("localhost")
    c = retls.Connection(retls.Context("client", verify=False), None)
    s = retls.Connection(sctx, None)
    handshake_memory(c, s)
    drain(c)   # the session tickets
    return c, s


def ct_size(n):
    return n + 22 * -(-n // 16384)


# (size of each write, how the ciphertext is drained after them)
PATTERN = [
    ([64], "all"), ([64], "all"), ([300_000], "all"), ([300_000], "all"),
    ([5, 7], "all"), ([64], "all"), ([16384], "pending"), ([16384], "all"),
    ([1000], "partial"), ([262144], "all"), ([1], "all"),
    ([70_000, 3], "partial"), ([70_003], "all"), ([2, 2, 2], "none"),
    ([16384] * 4, "all"), ([100], "huge"), ([100], "negative"),
]


def test_every_drain_gives_exactly_what_was_written():
    c, s = memory_pair()
    sent, got = hashlib.sha256(), hashlib.sha256()
    kept = []   # (bytes object, its contents as first seen)
    n_sent = n_got = left = 0
    for sizes, how in PATTERN:
        for size in sizes:
            data = os.urandom(size)
            assert c.write(data) == size
            sent.update(data)
            n_sent += size
        waiting = c.bio_pending
        assert waiting == left + sum(ct_size(n) for n in sizes)
        if how == "none":       # left waiting for the next drain
            left = waiting
            continue
        left = 0
        if how == "all":
            chunks = [c.bio_read()]
        elif how == "pending":
            chunks = [c.bio_read(waiting)]
        elif how == "huge":
            chunks = [c.bio_read(2 ** 40)]
        elif how == "negative":
            chunks = [c.bio_read(-1)]
        else:                   # partial: 10 bytes, then the rest
            chunks = [c.bio_read(10), c.bio_read()]
        assert c.bio_pending == 0 and c.bio_read() == b""
        ct = b"".join(chunks)
        assert len(ct) == waiting
        for b in chunks:
            assert type(b) is bytes
            kept.append((b, bytes(bytearray(b))))
            hash(b)
        s.bio_write(ct)
        plain = drain(s)
        got.update(plain)
        n_got += len(plain)
    assert n_got == n_sent
    assert got.hexdigest() == sent.hexdigest()
    # later writes never wrote into a bytes object already handed out
    for b, first in kept:
        assert b == first


def test_drained_bytes_behave_like_bytes():
    c, s = memory_pair()
    for size in (64, 300_000, 300_000):
        c.write(b"\x00" * size)
        b = c.bio_read()
        assert len(b) == ct_size(size)
        assert b[:1] == b"\x17"          # an application_data record
        assert b == bytes(b) and b[-1:] == b[len(b) - 1:]
        assert b.hex()[:2] == "17" and memoryview(b).nbytes == len(b)
        assert {b: 1}[b] == 1
        s.bio_write(b)
        assert drain(s) == b"\x00" * size


def test_under_the_debug_allocator():
    """PYTHONMALLOC=debug checks that every buffer is freed by the
    allocator family that made it and that nothing writes past its end."""
    script = (
        "import os, retls, sys\n"
        "sys.path.insert(0, %r)\n"
        "from test_outbuf import memory_pair\n"
        "from helpers import drain\n"
        "c, s = memory_pair()\n"
        "for size in (64, 300000, 300000, 1, 16384, 16384, 7):\n"
        "    d = os.urandom(size)\n"
        "    c.write(d)\n"
        "    s.bio_write(c.bio_read(10) + c.bio_read() if size == 7\n"
        "                else c.bio_read())\n"
        "    assert drain(s) == d\n"
        "c.write(b'left waiting'); c.close(); s.close()\n"
        "print('ok')\n" % os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONMALLOC="debug")
    r = subprocess.run([sys.executable, "-X", "dev", "-c", script], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "ok"


# The spare (bindings/retls.i): a drained bytes object the caller dropped
# becomes the next buffer of about its size.  CPython builds where it is
# off (3.14+, free-threaded) skip only the reuse count.
SPARE = sys.version_info < (3, 14) and not sysconfig.get_config_var(
    "Py_GIL_DISABLED")


def test_a_dropped_buffer_is_refilled_and_the_peer_gets_every_byte():
    c, s = memory_pair()
    sent, got = hashlib.sha256(), hashlib.sha256()
    ids = []
    for i in range(300):
        data = os.urandom((64, 1024, 1000, 4000, 1024)[i % 5] if i < 150
                          else 1024)
        assert c.write(data) == len(data)
        sent.update(data)
        b = c.bio_read()
        assert len(b) == ct_size(len(data))
        ids.append(id(b))
        s.bio_write(b)
        del b   # dropped: the spare may refill it
        got.update(drain(s))
    assert got.hexdigest() == sent.hexdigest()
    if SPARE:   # the steady 1 KiB half ran on one buffer
        assert len(set(ids[150:])) <= 2, len(set(ids[150:]))


def test_a_held_hashed_or_viewed_buffer_is_never_refilled():
    c, s = memory_pair()
    c.write(b"a" * 1024)
    held = c.bio_read()
    held_copy = bytes(bytearray(held))
    c.write(b"b" * 1024)
    hashed = c.bio_read()
    {hashed: 1}   # caches its hash, then the dict is gone
    c.write(b"c" * 1024)
    viewed = c.bio_read()
    view = memoryview(viewed)
    viewed_copy = bytes(bytearray(viewed))
    s.bio_write(held + hashed + viewed)
    assert drain(s) == b"a" * 1024 + b"b" * 1024 + b"c" * 1024
    del hashed, viewed   # one still hashed, one still viewed
    for x in b"defgh":
        c.write(bytes([x]) * 1024)
        b = c.bio_read()
        # a refilled object must not answer with the old contents' hash
        assert hash(b) == hash(bytes(bytearray(b)))
        s.bio_write(b)
        assert drain(s) == bytes([x]) * 1024
        del b
    assert held == held_copy and view.tobytes() == viewed_copy
