"""bench_python.py - retls against CPython's own ssl module, side by side.

Each workload runs the same bytes through retls and through ssl in one
process, interleaved, best of --rounds, and prints the throughput ratio
(retls / ssl; above 1.0 retls is faster).  The receiving end is the same
for both runs: a thread with CPython's ssl server, so only the client
write path differs.

Workloads:
  blocking   sendall() of --size bytes in --write-size chunks over a
             loopback TCP socket (GIL released around the blocking call).
  nonblock   the same through a non-blocking socket with a small send
             buffer: WantWrite is raised constantly and the writer waits
             with selectors, then retries (ssl: the same buffer again;
             retls: flush()).
  memory     memory BIOs: the writer encrypts --write-size chunks and the
             ciphertext is pumped by hand into a CPython SSLObject reader
             (no sockets, no threads: the pure per-call cost).

Target (checked here, printed as PASS/FAIL; never asserted in a test):
retls is at least 0.95x CPython ssl in every workload.

Run: PYTHONPATH=build/bindings/python python3 bench/bench_python.py
"""

import argparse
import os
import selectors
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

import retls

TARGET = 0.95


def make_cert(tmp):
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj",
         "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", key, "-out", cert],
        check=True, capture_output=True)
    return cert, key


class SinkServer:
    """A CPython ssl server that reads everything and counts it."""

    def __init__(self, cert, key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.port = self.lsock.getsockname()[1]

    def serve_one(self, expect):
        done = threading.Event()
        result = {}

        def run():
            s, _ = self.lsock.accept()
            with self.ctx.wrap_socket(s, server_side=True) as t:
                got = 0
                while got < expect:
                    chunk = t.recv(1 << 20)
                    if not chunk:
                        break
                    got += len(chunk)
                result["got"] = got
                t.sendall(b"k")   # tell the writer everything arrived
            done.set()

        th = threading.Thread(target=run, daemon=True)
        th.start()
        return th, result


def client_ssl_ctx(cafile):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.load_verify_locations(cafile)
    return c


class Client:
    """One TLS client over a fresh loopback connection to server, made by
    CPython's ssl or by retls, with the calls the workloads need."""

    def __init__(self, impl, server, cafile, sndbuf=None):
        sock = socket.create_connection(("127.0.0.1", server.port))
        if sndbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        if impl == "ssl":
            # wrap_socket() detaches the plain socket: use the SSLSocket
            self.conn = self.sock = client_ssl_ctx(cafile).wrap_socket(
                sock, server_hostname="localhost")
            self.recv = self.conn.recv
            self.wants = (ssl.SSLWantWriteError, ssl.SSLWantReadError)
        else:
            self.sock = sock
            self.conn = retls.Connection(retls.Context(cafile=cafile), sock,
                                         server_hostname="localhost")
            self.conn.do_handshake()
            self.recv = self.conn.read
            self.wants = (retls.WantWrite, retls.WantRead)

    def close(self):
        self.conn.close()
        self.sock.close()


def run_blocking(impl, server, cafile, payload, total):
    th, result = server.serve_one(total)
    client = Client(impl, server, cafile)
    send = client.conn.sendall
    t0 = time.perf_counter()
    sent = 0
    while sent < total:
        send(payload)
        sent += len(payload)
    client.recv(1)
    elapsed = time.perf_counter() - t0
    th.join()
    client.close()
    assert result["got"] == total, result
    return elapsed


def run_nonblocking(impl, server, cafile, payload, total, sndbuf):
    th, result = server.serve_one(total)
    client = Client(impl, server, cafile, sndbuf)
    conn, sock = client.conn, client.sock
    sock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_WRITE)
    t0 = time.perf_counter()
    sent = 0
    while sent < total:
        try:
            # ssl: repeat the same call with the same buffer (its contract);
            # retls: the same call would work too, flush() skips the compare.
            if impl == "retls" and conn.pending_write:
                sent += conn.flush()
            else:
                sent += conn.write(payload)
        except client.wants:
            sel.select(5)
    sel.unregister(sock)
    sock.setblocking(True)
    client.recv(1)
    elapsed = time.perf_counter() - t0
    th.join()
    client.close()
    assert result["got"] == total, result
    return elapsed


def run_memory(impl, server_ctx, cafile, payload, total):
    # The reader is always a CPython SSLObject over MemoryBIOs.
    rin, rout = ssl.MemoryBIO(), ssl.MemoryBIO()
    reader = server_ctx.wrap_bio(rin, rout, server_side=True)
    if impl == "ssl":
        win, wout = ssl.MemoryBIO(), ssl.MemoryBIO()
        w = client_ssl_ctx(cafile).wrap_bio(win, wout,
                                            server_hostname="localhost")
        to_peer, from_peer = wout.read, win.write
    else:
        w = retls.Connection(retls.Context(cafile=cafile), None,
                             server_hostname="localhost", capacity=1 << 20)
        to_peer, from_peer = w.bio_read, w.bio_write
    for _ in range(20):   # handshake by hand
        for side in (w, reader):
            try:
                side.do_handshake()
            except (ssl.SSLWantReadError, retls.WantRead):
                pass
        rin.write(to_peer())
        from_peer(rout.read())
    got = 0
    t0 = time.perf_counter()
    sent = 0
    while sent < total:
        sent += w.write(payload)
        rin.write(to_peer())
        try:
            while True:
                got += len(reader.read(1 << 20))
        except ssl.SSLWantReadError:
            pass
    elapsed = time.perf_counter() - t0
    assert got == total, (got, total)
    return elapsed


def parse_size(text):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.upper().rstrip("IB")
    if text and text[-1] in mult:
        return int(float(text[:-1]) * mult[text[-1]])
    return int(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="64M")
    ap.add_argument("--write-size", default="16K,256K")
    ap.add_argument("--sndbuf", default="64K")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    total = parse_size(args.size)
    sizes = [parse_size(s) for s in args.write_size.split(",")]
    sndbuf = parse_size(args.sndbuf)

    with tempfile.TemporaryDirectory() as tmp:
        cert, key = make_cert(tmp)
        server = SinkServer(cert, key)
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sctx.load_cert_chain(cert, key)
        print(f"retls {retls.__version__} / {retls.OPENSSL_VERSION}; "
              f"CPython {sys.version.split()[0]} ssl / {ssl.OPENSSL_VERSION}")
        print(f"{total >> 20} MiB per run, best of {args.rounds}\n")
        print(f"{'workload':10} {'write':>7} {'ssl MB/s':>9} "
              f"{'retls MB/s':>10} {'ratio':>6}")
        ok = True
        for wsize in sizes:
            payload = os.urandom(wsize)
            n = max(1, total // wsize)
            amount = n * wsize
            runs = {
                "blocking": lambda impl: run_blocking(
                    impl, server, cert, payload, amount),
                "nonblock": lambda impl: run_nonblocking(
                    impl, server, cert, payload, amount, sndbuf),
                "memory": lambda impl: run_memory(
                    impl, sctx, cert, payload, amount),
            }
            for name, fn in runs.items():
                best = {"ssl": float("inf"), "retls": float("inf")}
                for _ in range(args.rounds):
                    for impl in ("ssl", "retls"):
                        best[impl] = min(best[impl], fn(impl))
                mb = {k: amount / v / 1e6 for k, v in best.items()}
                ratio = mb["retls"] / mb["ssl"]
                ok &= ratio >= TARGET
                print(f"{name:10} {wsize >> 10:>6}K {mb['ssl']:9.0f} "
                      f"{mb['retls']:10.0f} {ratio:6.2f}")
        print(f"\ntarget: retls >= {TARGET}x ssl in every workload: "
              f"{'PASS' if ok else 'FAIL'}")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
