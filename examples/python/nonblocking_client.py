#!/usr/bin/env python3
"""nonblocking_client.py - a non-blocking `selectors` loop over retls.

What it shows: the write path of a non-blocking TLS client.  It pushes a
large buffer in fixed-size writes through a deliberately small socket send
buffer, so writes stop with retls.WantWrite all the time, and it keeps
reading whatever the server sends meanwhile (an echo, a renegotiation or a
KeyUpdate; a renegotiation can make a write stop with retls.WantRead).
After a Want* the loop waits with selectors for what the connection asked
for, then calls conn.flush(): the connection kept its own copy of the
pending bytes, so the loop never has to present the same buffer again (and
cannot get it wrong).

When all is sent it says goodbye (close_notify), reads until the server's
close_notify and prints one summary line, key=value, with the SHA-256 of
what it sent and of what it received back.

Run (after `./run.sh demo` or a cmake build; PYTHONPATH must find retls):
    openssl s_server -accept 127.0.0.1:4433 -cert cert.pem -key key.pem
    python3 examples/python/nonblocking_client.py --insecure 127.0.0.1 4433

Options: --size (16M), --write-size (256K), --sndbuf (32K, 0 = system
default), --tls-version, --cafile, --servername, --cert/--key, --insecure,
--timeout SECONDS (30, bounds every wait), --text (lines of random hex
digits, for line-based echo servers such as gnutls-serv --echo).
This is the same program as examples/c/nonblocking_client.c and
examples/lua/nonblocking_client.lua.
"""
import argparse
import hashlib
import os
import selectors
import socket
import sys
import time

import retls


def size(text: str) -> int:
    """'16M', '256K', '1000' -> bytes."""
    units = {"K": 1 << 10, "M": 1 << 20}
    mult = units.get(text[-1:].upper(), 1)
    try:
        return int(text[:-1] if mult > 1 else text) * mult
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"want a size like 1000, 256K or 16M, not {text!r}") from None


def make_data(n: int, text: bool) -> bytearray:
    data = bytearray(os.urandom(n))
    if text:  # 128 hex digits and a newline per line, newline at the end
        data = bytearray(data.translate(bytes(b"0123456789abcdef"[b & 15]
                                              for b in range(256))))
        data[128::129] = b"\n" * len(range(128, n, 129))
        if n:
            data[-1:] = b"\n"
    return data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--size", type=size, default=16 << 20)
    ap.add_argument("--write-size", type=size, default=256 << 10)
    ap.add_argument("--sndbuf", type=size, default=32 << 10)
    ap.add_argument("--tls-version", choices=["TLSv1.2", "TLSv1.3"])
    ap.add_argument("--cafile")
    ap.add_argument("--servername")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--insecure", action="store_true")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--text", action="store_true")
    o = ap.parse_args()

    data = make_data(o.size, o.text)
    tx_sha = hashlib.sha256(data).hexdigest()
    rx_hash, rx_bytes = hashlib.sha256(), 0

    ctx = retls.Context("client", verify=not o.insecure, cafile=o.cafile,
                        certfile=o.cert, keyfile=o.key,
                        min_version=o.tls_version or "TLSv1.2",
                        max_version=o.tls_version)

    # SO_SNDBUF must be set before connect() to shape the TCP window.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if o.sndbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, o.sndbuf)
    sock.settimeout(o.timeout)
    sock.connect((o.host, o.port))
    sock.setblocking(False)
    conn = retls.Connection(ctx, sock,
                            server_hostname=o.servername or o.host)

    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)

    def wait(want: str | None) -> int:
        """Wait until the socket is ready for what the connection asked
        for; we always want to read too (echo, renegotiation)."""
        events = selectors.EVENT_READ
        if want == "write":
            events |= selectors.EVENT_WRITE
        sel.modify(sock, events)
        ready = sel.select(o.timeout)
        if not ready:
            raise TimeoutError(f"nothing happened for {o.timeout} s")
        return ready[0][1]

    def drain() -> bool:
        """Read what is readable now.  False once the server said goodbye."""
        nonlocal rx_bytes
        while True:
            try:
                chunk = conn.read(65536)
            except retls.WantIO:
                return True
            except retls.ZeroReturn:
                return False
            rx_hash.update(chunk)
            rx_bytes += len(chunk)

    # The handshake, non-blocking: the same wait-then-repeat pattern.
    while True:
        try:
            conn.do_handshake()
            break
        except retls.WantRead:
            wait("read")
        except retls.WantWrite:
            wait("write")
    print(f"connected: {conn.version} {conn.cipher}", file=sys.stderr)

    # The write loop.  While conn.pending_write > 0 the connection holds a
    # write that stopped; we only flush() it, never present new bytes.
    view = memoryview(data)
    off, want = 0, None
    t0 = time.monotonic()
    while off < len(data) or conn.pending_write:
        if want and wait(want) & selectors.EVENT_READ:
            if not drain():
                raise retls.Error("the server closed during the transfer")
        try:
            if conn.pending_write:
                off += conn.flush()
            else:
                off += conn.write(view[off:off + o.write_size])
            want = None
            drain()  # take what the server sent so an echo never blocks us
        except retls.WantWrite:
            want = "write"  # the bytes are the connection's now
        except retls.WantRead:
            want = "read"
    elapsed = time.monotonic() - t0

    # Goodbye: send close_notify, then read until the server's.
    while True:
        try:
            conn.shutdown()
            break
        except retls.WantRead:
            wait("read")
        except retls.WantWrite:
            wait("write")
    while drain():
        wait("read")

    st = conn.stats
    print(f"sent={off} sha256={tx_sha} received={rx_bytes} "
          f"received_sha256={rx_hash.hexdigest()} writes={st['writes']} "
          f"want_write={st['want_write']} want_read={st['want_read']} "
          f"retries={st['retries']} mismatches={st['mismatches']} "
          f"seconds={elapsed:.3f} mbps={off / max(elapsed, 1e-9) / 1e6:.1f} "
          f"version={conn.version} clean_close=1")
    conn.close()
    sock.close()


if __name__ == "__main__":
    try:
        main()
    except (retls.Error, OSError) as e:  # one line, not a traceback
        sys.exit(f"error: {type(e).__name__}: {e}")
