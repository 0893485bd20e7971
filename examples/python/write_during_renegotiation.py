#!/usr/bin/env python3
"""write_during_renegotiation.py - a client keeps writing while the server
renegotiates (TLS 1.2) or sends a KeyUpdate (TLS 1.3).

What it shows, step by step, over an in-process retls.pair (so every step
happens in a fixed order and the output is the same on every run):

TLS 1.2: the server calls renegotiate() and sends a HelloRequest.  The
  client's next read() sees it and answers with a ClientHello.  The
  client's next write() then raises WantRead: OpenSSL cannot send
  application data until the server's half of the new handshake arrived,
  although the transport is perfectly writable.  A loop that only waits for
  writability after a write would hang here; the right reaction is to wait
  for readability and flush().

TLS 1.3: the server calls key_update(request_peer=True).  The client's
  read() takes the KeyUpdate, and its next write() succeeds at once, sending
  the client's own KeyUpdate ahead of the data.  With OpenSSL 3.0 a KeyUpdate
  never makes a write wait for the peer: WantRead during write does not
  happen in TLS 1.3 (the interop suite sees the same against openssl
  s_server).

At the end the server must have received every byte exactly once, in
order; exit status 0 only if so.

Run:  python3 examples/python/write_during_renegotiation.py
"""
import os
import sys

import retls

CHUNK = 32 << 10


def say(who: str, what: str) -> None:
    print(f"  {who:7} {what}")


def drain(conn: retls.Connection) -> bytes:
    """Everything readable now (b"" if nothing)."""
    got = bytearray()
    while True:
        try:
            got += conn.read(65536)
        except retls.WantRead:
            return bytes(got)


def run(version: str) -> tuple[bool, int]:
    print(f"{version}:")
    client_ctx = retls.Context("client", verify=False,
                               min_version=version, max_version=version)
    client, server = retls.pair(client_ctx, capacity=1 << 20)
    say("", f"handshake done: {client.version}")
    sent, received = bytearray(), bytearray()

    def client_write(data: bytes) -> None:
        try:
            client.write(data)
            say("client", f"write({len(data)}) -> ok")
        except retls.WantRead:
            say("client", f"write({len(data)}) -> WantRead "
                          f"(pending_write = {client.pending_write})")
        sent.extend(data)  # taken now or pending in the connection

    client_write(os.urandom(CHUNK))
    received += drain(server)

    if version == "TLSv1.2":
        server.renegotiate()
        what = "renegotiate(): HelloRequest"
    else:
        server.key_update(request_peer=True)
        what = "key_update(request_peer=True): KeyUpdate"
    try:
        server.do_handshake()
        say("server", f"{what} sent")
    except retls.WantRead:
        say("server", f"{what} sent; waits for the client (WantRead)")

    try:
        data = client.read(65536)
        say("client", f"read() -> {len(data)} bytes")
    except retls.WantRead:
        say("client", "read() took the server's message -> WantRead "
                      "(no application data)")

    client_write(os.urandom(CHUNK))
    # Both ends take turns until the client's pending write is done.
    for _ in range(20):
        if not client.pending_write:
            break
        received += drain(server)
        say("server", "read() -> processed the client's handshake messages")
        try:
            n = client.flush()
            say("client", f"flush() -> ok, {n} bytes")
        except retls.WantRead:
            say("client", "flush() -> WantRead again (waits for the server)")
    client_write(os.urandom(CHUNK))
    received += drain(server)

    st = client.stats
    ok = bytes(received) == bytes(sent)
    say("result", f"server received {len(received):,} of {len(sent):,} bytes,"
                  f" {'identical' if ok else 'DIFFERENT'}; client stats: "
                  f"want_read={st['want_read']} want_write={st['want_write']}"
                  f" retries={st['retries']} mismatches={st['mismatches']}")
    return ok, st["want_read"]


def main() -> int:
    ok12, wr12 = run("TLSv1.2")
    ok13, wr13 = run("TLSv1.3")
    print(f"summary: tls12_want_read={wr12} tls13_want_read={wr13} "
          f"data_ok={int(ok12 and ok13)}")
    return 0 if ok12 and ok13 else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except retls.Error as e:
        sys.exit(f"error: {type(e).__name__}: {e}")
