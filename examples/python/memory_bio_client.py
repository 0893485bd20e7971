#!/usr/bin/env python3
"""memory_bio_client.py - a memory-BIO client: the script moves the
ciphertext itself.

What it shows: retls.Connection(ctx, None) has no socket.  TLS records the
connection produces are taken with conn.bio_read() and sent by the script;
bytes the script receives are fed in with conn.bio_write().  WantWrite
means "the outgoing buffer is full: move it", WantRead means "feed me the
peer's bytes".  The same loop works over anything that carries bytes (a
plain socket here; a pipe, an asyncio transport, a test harness...).

It sends --size bytes of random data (default 1M: more than the 64 KiB
outgoing buffer it asks for with --capacity, so the write stops with
WantWrite and is finished with flush(); without a capacity, retls' default,
memory mode is unbounded like ssl.MemoryBIO), says goodbye with close_notify, prints the server's reply and the
SHA-256 of what it sent.  Against examples/python/digest_server.py the
reply is that server's SHA-256 of what it received.

Run:
    python3 examples/python/digest_server.py --cert cert.pem --key key.pem
    python3 examples/python/memory_bio_client.py --cafile cert.pem \\
        --servername localhost 127.0.0.1 PORT
"""
import argparse
import hashlib
import os
import socket
import sys
from typing import Callable, TypeVar

import retls

T = TypeVar("T")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--size", type=int, default=1 << 20)
    ap.add_argument("--cafile")
    ap.add_argument("--servername")
    ap.add_argument("--insecure", action="store_true")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--capacity", type=int, default=65536,
                    help="bound the outgoing buffer (0: unbounded)")
    o = ap.parse_args()

    ctx = retls.Context("client", verify=not o.insecure, cafile=o.cafile)
    conn = retls.Connection(ctx, None, server_hostname=o.servername or o.host,
                            capacity=o.capacity or None)
    sock = socket.create_connection((o.host, o.port), timeout=o.timeout)
    moved = {"out": 0, "in": 0}

    def send_records() -> None:
        """Move every TLS record the connection produced to the server."""
        while True:
            records = conn.bio_read()
            if not records:
                return
            sock.sendall(records)
            moved["out"] += len(records)

    def receive_records() -> None:
        """Feed the server's next bytes into the connection."""
        data = sock.recv(65536)
        if not data:
            conn.bio_write_eof()  # the next read reports how it ended
            return
        conn.bio_write(data)
        moved["in"] += len(data)

    def drive(op: Callable[[], T]) -> T:
        """Run op() until it completes, moving ciphertext as it asks."""
        while True:
            try:
                result = op()
                send_records()  # e.g. the records a write just produced
                return result
            except retls.WantWrite:
                send_records()      # outgoing buffer full: empty it
            except retls.WantRead:
                send_records()      # our flight first (ClientHello...)
                receive_records()   # then the server's answer

    drive(conn.do_handshake)
    print(f"handshake: {conn.version} {conn.cipher}", file=sys.stderr)

    data = os.urandom(o.size)
    try:
        conn.write(data)
        send_records()
    except retls.WantIO:
        # The connection kept the bytes; finish them with flush() while
        # moving records out.  We never present `data` again.
        print(f"write({len(data)}) stopped: WantWrite, pending_write = "
              f"{conn.pending_write}; finishing with flush()",
              file=sys.stderr)
        drive(conn.flush)
    drive(conn.shutdown)

    reply = b""
    while True:
        try:
            reply += drive(lambda: conn.read(65536))
        except retls.ZeroReturn:
            break
    st = conn.stats
    print(f"reply: {reply.decode(errors='replace').strip()}")
    print(f"sent={len(data)} sha256={hashlib.sha256(data).hexdigest()} "
          f"ciphertext_out={moved['out']} ciphertext_in={moved['in']} "
          f"want_write={st['want_write']} want_read={st['want_read']} "
          f"retries={st['retries']} mismatches={st['mismatches']}")
    sock.close()


if __name__ == "__main__":
    try:
        main()
    except (retls.Error, OSError) as e:
        sys.exit(f"error: {type(e).__name__}: {e}")
