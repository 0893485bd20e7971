#!/usr/bin/env python3
"""digest_server.py - retls in the server role: a TLS server that reads
until the client's close_notify and replies with the SHA-256 of everything
it received, so a client can check that the server got exactly what it
sent.

What it shows: a blocking retls server (Context("server"), a certificate,
Connection over an accepted socket, read() until ZeroReturn, write after the
client's close_notify, shutdown()).  The demo (examples/demo.py) runs it as
the server for its Python and Lua clients.

It prints "listening on 127.0.0.1:PORT" once ready (PORT 0 picks a free
one), then one line per connection:
    served: bytes=N sha256=HEX version=TLSv1.3 ...
and replies to the client with the line "sha256=HEX bytes=N".

Run:
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \\
        -keyout key.pem -out cert.pem -days 1 -subj /CN=localhost \\
        -addext subjectAltName=DNS:localhost,IP:127.0.0.1
    python3 examples/python/digest_server.py --cert cert.pem --key key.pem
    python3 examples/python/nonblocking_client.py --cafile cert.pem \\
        --servername localhost 127.0.0.1 PORT
"""
import argparse
import hashlib
import socket
import sys

import retls


def serve_one(ctx: retls.Context, sock: socket.socket) -> None:
    """One client: handshake, read to close_notify, reply, close."""
    sock.setblocking(True)  # a blocking retls connection on this socket
    with retls.Connection(ctx, sock) as conn:
        conn.do_handshake()
        digest, received = hashlib.sha256(), 0
        while True:
            try:
                chunk = conn.read(1 << 16)
            except retls.ZeroReturn:  # the client's close_notify: all read
                break
            digest.update(chunk)
            received += len(chunk)
        # TLS lets the server still write after the client's close_notify.
        conn.sendall(f"sha256={digest.hexdigest()} bytes={received}\n"
                     .encode())
        conn.shutdown()
        print(f"served: bytes={received} sha256={digest.hexdigest()} "
              f"version={conn.version} cipher={conn.cipher}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cert", required=True, help="certificate (PEM)")
    ap.add_argument("--key", required=True, help="private key (PEM)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0: a free port")
    ap.add_argument("--count", type=int, default=0,
                    help="serve this many connections, then exit (0: forever)")
    ap.add_argument("--tls-version", choices=["TLSv1.2", "TLSv1.3"])
    ap.add_argument("--timeout", type=float, default=60.0,
                    help="give up when no client comes for this long")
    o = ap.parse_args()

    ctx = retls.Context("server", certfile=o.cert, keyfile=o.key,
                        min_version=o.tls_version or "TLSv1.2",
                        max_version=o.tls_version)
    with socket.create_server((o.host, o.port)) as listener:
        listener.settimeout(o.timeout)
        print("listening on %s:%d" % listener.getsockname()[:2], flush=True)
        served = 0
        while o.count == 0 or served < o.count:
            sock, _ = listener.accept()
            with sock:
                try:
                    serve_one(ctx, sock)
                except retls.Error as e:  # one bad client is not fatal
                    print(f"failed: {type(e).__name__}: {e}", flush=True)
            served += 1


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
    except (retls.Error, OSError) as e:
        sys.exit(f"error: {type(e).__name__}: {e}")
