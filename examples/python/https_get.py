#!/usr/bin/env python3
"""https_get.py - an HTTPS GET with the blocking API.

What it shows: the simple blocking path: retls.connect() (TCP connect with
a timeout), do_handshake() with certificate and hostname verification and
ALPN, sendall() of the request, read() until the server closes.  Many HTTP
servers close the TCP connection without a TLS close_notify; that arrives
as retls.EOFError, which is fine once the whole body (Content-Length) is
in, and is reported as a truncation otherwise.

The status line and headers go to stderr, the body to stdout.  Exit status
0 for a 2xx response.

Run (any HTTPS server; this one serves the current directory):
    python3 -c 'import http.server, ssl; s = http.server.HTTPServer(
        ("127.0.0.1", 4443), http.server.SimpleHTTPRequestHandler);
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER);
        c.load_cert_chain("cert.pem", "key.pem");
        s.socket = c.wrap_socket(s.socket, server_side=True);
        s.serve_forever()'
    python3 examples/python/https_get.py --cafile cert.pem \\
        https://localhost:4443/README.md
"""
import argparse
import sys
import urllib.parse

import retls


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("url", help="https://HOST[:PORT]/PATH")
    ap.add_argument("--cafile", help="trust this CA (default: system store)")
    ap.add_argument("--insecure", action="store_true",
                    help="do not verify the server certificate")
    ap.add_argument("--timeout", type=float, default=30.0)
    o = ap.parse_args()

    url = urllib.parse.urlsplit(o.url)
    if url.scheme != "https" or not url.hostname:
        ap.error(f"want an https:// URL, not {o.url!r}")
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")

    ctx = retls.Context("client", verify=not o.insecure, cafile=o.cafile,
                        alpn=["http/1.1"])
    conn = retls.connect(url.hostname, url.port or 443, ctx,
                         timeout=o.timeout)
    with conn:
        conn.do_handshake()
        print(f"* {conn.version} {conn.cipher}, ALPN "
              f"{conn.alpn_protocol or '(none)'}", file=sys.stderr)
        # HTTP/1.0: the server answers without chunked encoding and closes.
        conn.sendall(f"GET {path} HTTP/1.0\r\nHost: {url.netloc}\r\n"
                     f"User-Agent: retls-example\r\n\r\n".encode())
        response = bytearray()
        clean = True
        while True:
            try:
                response += conn.read(65536)
            except retls.ZeroReturn:  # close_notify: the server is done
                break
            except retls.EOFError:    # TCP closed without close_notify
                clean = False
                break
        if clean:
            conn.shutdown()

    head, sep, body = bytes(response).partition(b"\r\n\r\n")
    if not sep:
        sys.exit("error: the response ended inside the headers")
    lines = head.decode("iso-8859-1").split("\r\n")
    headers = {k.strip().lower(): v.strip()
               for k, _, v in (line.partition(":") for line in lines[1:])}
    for line in lines:
        print(f"< {line}", file=sys.stderr)
    length = headers.get("content-length")
    if length is not None and len(body) != int(length):
        sys.exit(f"error: body truncated: {len(body)} of {length} bytes "
                 f"({'close_notify' if clean else 'no close_notify'})")
    sys.stdout.buffer.write(body)
    status = int(lines[0].split()[1])
    return 0 if 200 <= status < 300 else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (retls.Error, OSError) as e:
        sys.exit(f"error: {type(e).__name__}: {e}")
