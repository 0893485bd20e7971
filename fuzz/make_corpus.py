#!/usr/bin/env python3
"""make_corpus.py - write the hand-made seed inputs of fuzz/corpus/.

Each seed is one scenario in the input language of fuzz_retry.c (described
in fuzz/README.md), so the fuzzer starts from inputs that already reach
the interesting states instead of discovering the handshake byte by byte.
The files are committed; rerun this only when the input language changes:

    python3 fuzz/make_corpus.py            # rewrites fuzz/corpus/seed-*
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# configuration byte: bits 0-3, and the handshake kind in bits 4-7
# (0: fast, an external PSK or a resumption; 0x30: fast, TLS 1.3 server
# sends session tickets; 0xF0: full certificate handshake)
TLS13, PARTIAL, SMALLFRAG, MEMORY = 1, 2, 4, 8
TICKETS, FULL = 0x30, 0xF0
# 0xE0 with TLS13: early data (client writes before the handshake are
# write_early); then byte 1 bit 0 = replay off, bit 1 = server accepts
EARLY = 0xE0
NOREPLAY, ACCEPT = 1, 2
# opcodes (bits 0-3 of an operation byte)
(WRITE, RETRY_SAME, RETRY_SHORTER, RETRY_LONGER, RETRY_OTHER, FLUSH, READ,
 HANDSHAKE, RENEGOTIATE, KEY_UPDATE, SHUTDOWN, CLOSE, PUMP, BAD_ARGS,
 READ_ALL, TRANSFER) = range(16)
C, S = 0, 16  # which end (bit 4)


def op(code, end=C, arg=0):
    return bytes([code | end | (arg << 5)])


def write(end, size, cls=3, constant=None):
    """A new write of 1 + size % class_limit bytes (classes 16/512/8K/64K)."""
    if constant is None:
        return op(WRITE, end, cls) + struct.pack(">H", size)
    return op(WRITE, end, cls | 4) + bytes([constant]) + struct.pack(">H", size)


def pump(rounds=8):
    return op(PUMP, C, rounds - 1)


def reads(end, bufshift, times):
    return op(READ, end, bufshift) + bytes([times - 1])


def seed(cfg, capb, *ops):
    return bytes([cfg, capb]) + b"".join(ops)


SEEDS = {
    # Handshake, then a write too big for the pipe: WANT_WRITE, refused
    # retries of every kind, a real retry, small reads, flush.
    "tls12-retry-kinds": seed(
        0, 4,
        pump(8), write(C, 5000),
        op(RETRY_SHORTER, C) + struct.pack(">H", 100),
        op(RETRY_LONGER, C) + bytes([10]),
        op(RETRY_OTHER, C, 0) + bytes([1]),
        op(RETRY_OTHER, C, 1) + bytes([1]),
        reads(S, 5, 8), op(RETRY_SAME, C), reads(S, 7, 16), op(FLUSH, C),
        pump(8), op(FLUSH, C)),
    "tls13-retry-kinds": seed(
        TLS13, 4,
        pump(8), write(S, 5000),
        op(RETRY_OTHER, S, 2) + struct.pack(">H", 2000) + bytes([7]),
        op(RETRY_SHORTER, S) + struct.pack(">H", 0),
        reads(C, 3, 16), op(RETRY_SAME, S), pump(2), op(FLUSH, S),
        write(C, 40000), op(HANDSHAKE, C), op(READ_ALL, S), op(FLUSH, C)),
    # Writes before the handshake: the first write starts it and waits.
    "tls12-write-first": seed(
        0, 10, write(C, 300, cls=1), op(RETRY_SAME, C), op(READ_ALL, S),
        op(RETRY_SAME, C), op(READ_ALL, S), op(FLUSH, C), write(S, 9, cls=0)),
    # TLS 1.2 renegotiation from either end, with writes around it.
    "tls12-renegotiate-client": seed(
        0, 12, pump(8), op(RENEGOTIATE, C), write(C, 3000),
        op(RETRY_SAME, C), reads(S, 7, 4), op(READ_ALL, C), op(FLUSH, C),
        pump(8), write(S, 100, cls=1), op(RENEGOTIATE, C), op(HANDSHAKE, C),
        op(READ_ALL, C), pump(8), op(FLUSH, S)),
    # OpenSSL 3.0 limitation (README.md): the server's record is half sent
    # when the client's renegotiation ClientHello arrives: "bad length".
    "tls12-renegotiate-server-pending": seed(
        0, 12, pump(8), op(RENEGOTIATE, C), write(C, 3000),
        op(RETRY_SAME, C), reads(S, 7, 4), write(S, 2000), op(FLUSH, C),
        pump(4), op(FLUSH, C), op(RENEGOTIATE, C), op(HANDSHAKE, C), pump(8)),
    "tls12-renegotiate-server": seed(
        0, 20, pump(8), write(C, 20000), op(RENEGOTIATE, S), write(S, 100),
        op(READ_ALL, C), op(READ_ALL, S), op(FLUSH, C), op(FLUSH, S),
        pump(8), write(C, 10)),
    # TLS 1.3 key updates, with and without asking the peer, and while a
    # write is pending (refused by OpenSSL, connection stays usable).
    "tls13-key-update": seed(
        TLS13, 6, pump(8), op(KEY_UPDATE, C, 1), write(C, 100, cls=1),
        op(READ_ALL, S), write(S, 3000), op(KEY_UPDATE, S, 0),
        op(READ_ALL, C), op(FLUSH, S), op(KEY_UPDATE, S, 1), pump(4)),
    # Partial-write mode with small records: writes return early.
    "tls12-partial": seed(
        PARTIAL | SMALLFRAG, 8, pump(8), write(C, 6000), reads(S, 4, 3),
        op(FLUSH, C), write(C, 900), op(READ_ALL, S), op(RETRY_SAME, C)),
    "tls13-partial": seed(
        TLS13 | PARTIAL, 30, pump(8), write(S, 30000), op(READ_ALL, C),
        op(FLUSH, S), write(S, 30000), pump(2)),
    # Shutdown: refused with a write pending, then clean close_notify.
    "tls13-shutdown": seed(
        TLS13, 5, pump(8), write(C, 4000), op(SHUTDOWN, C), op(READ_ALL, S),
        op(FLUSH, C), op(SHUTDOWN, C), op(READ_ALL, S), write(S, 50, cls=1),
        op(READ_ALL, C), op(SHUTDOWN, S), op(READ_ALL, C)),
    "tls12-shutdown-then-write": seed(
        0, 40, pump(8), write(S, 10, cls=0), op(SHUTDOWN, S),
        write(S, 10, cls=0), op(READ_ALL, C), write(C, 10, cls=0)),
    # Close with a write pending: refused, then discarded.
    "tls12-close-pending": seed(
        0, 3, pump(8), write(C, 3000), op(CLOSE, C, 0), op(CLOSE, C, 5),
        reads(S, 6, 2), op(CLOSE, C, 7), op(READ_ALL, S), op(CLOSE, C, 7)),
    "tls13-close-after-flush": seed(
        TLS13, 3, pump(8), write(S, 3000), op(CLOSE, S, 0), op(READ_ALL, C),
        op(FLUSH, S), op(READ_ALL, C), op(CLOSE, S, 6), op(READ_ALL, C)),
    # Memory transport: the harness moves ciphertext in small pieces.
    "tls12-memory-trickle": seed(
        MEMORY, 2, pump(8), write(C, 2500),
        op(TRANSFER, C, 0) + struct.pack(">H", 7), reads(S, 2, 4),
        op(TRANSFER, C, 1) + struct.pack(">H", 100), reads(S, 2, 4),
        op(RETRY_SAME, C), op(TRANSFER, C, 3) + struct.pack(">H", 999),
        op(FLUSH, C), pump(2)),
    "tls13-memory-keyupdate": seed(
        TLS13 | MEMORY | SMALLFRAG, 7, pump(8), write(S, 8000),
        op(KEY_UPDATE, C, 1), op(TRANSFER, S, 2) + struct.pack(">H", 300),
        write(C, 20, cls=0), op(READ_ALL, S), op(FLUSH, S), op(READ_ALL, C),
        pump(3)),
    # Invalid arguments, constant-byte writes, zero-length writes.
    "tls12-bad-args": seed(
        0, 16, op(BAD_ARGS, C), pump(8), write(C, 700, constant=0),
        op(RETRY_OTHER, C, 1) + bytes([1]), op(TRANSFER, C), op(BAD_ARGS, C),
        op(READ_ALL, S), write(C, 700, constant=0), op(BAD_ARGS, S)),
    # 0-RTT rejected (the server does not read early data first), replay
    # on: an early write stops, refused other bytes, same bytes resume,
    # flush finishes it, a second early write, then ordinary data after.
    "tls13-early-rejected-replay": seed(
        TLS13 | EARLY, 40,
        write(C, 3000), op(RETRY_OTHER, C, 0) + bytes([1]),
        op(RETRY_SAME, C), op(FLUSH, C), write(C, 200, 1),
        pump(8), write(C, 100, 1), write(S, 50, 1), pump(8)),
    # The same with replay off: the bytes come back from rejected_bytes.
    "tls13-early-rejected-noreplay": seed(
        TLS13 | EARLY, 40 | NOREPLAY,
        write(C, 3000), op(RETRY_SAME, C), op(FLUSH, C),
        pump(8), write(C, 100, 1), pump(8)),
    # Accepted: the server reads early data first; memory transport moved
    # in pieces.
    "tls13-early-accepted-memory": seed(
        TLS13 | MEMORY | EARLY, 8 | ACCEPT,
        write(C, 2000), op(TRANSFER, C, 1) + struct.pack(">H", 100),
        reads(S, 4, 4), op(FLUSH, C), op(TRANSFER, C, 7) + b"\xff\xff",
        reads(S, 7, 8), write(C, 300, 1), pump(8), write(S, 40, 1), pump(8)),
}

# The same scenarios with the other handshake kinds, so the corpus starts
# with some of each (most inputs stay fast: see fuzz/README.md).
for _name, _cfg in (("tls13-retry-kinds", FULL), ("tls12-retry-kinds", FULL),
                    ("tls12-renegotiate-server", FULL),
                    ("tls13-memory-keyupdate", FULL),
                    ("tls13-key-update", TICKETS),
                    ("tls13-shutdown", TICKETS)):
    SEEDS[_name + ("-full" if _cfg == FULL else "-tickets")] = (
        bytes([SEEDS[_name][0] | _cfg]) + SEEDS[_name][1:])


def main():
    out = os.path.join(HERE, "corpus")
    os.makedirs(out, exist_ok=True)
    for name, data in sorted(SEEDS.items()):
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(data)
    print("wrote %d seeds to %s" % (len(SEEDS), out))


if __name__ == "__main__":
    main()
