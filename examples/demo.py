#!/usr/bin/env python3
"""demo.py - retls in one run: `./run.sh demo` (extra flags pass through).

What it shows, all on 127.0.0.1 with a throwaway certificate made by the
openssl command in a temporary directory:

 1. A non-blocking Python client pushes 64 MiB of random data in 256 KiB
    writes through a deliberately small socket send buffer to a retls
    server (examples/python/digest_server.py, retls in the server role).
    Nearly every write stops with WantWrite; the loop waits with selectors
    and calls flush(), never re-presenting the buffer.  The server hashes
    what it received and replies with its SHA-256, which must equal the
    client's.
 2. The same run from the Lua client (examples/lua/nonblocking_client.lua)
    against the same kind of server.
 3. One deliberate wrong retry: after WantWrite the client presents other
    bytes of the same length (what raw OpenSSL would silently corrupt); retls
    raises RetryMismatch without sending anything, then flush() finishes the
    original write and the peer gets exactly the original bytes.

Exit status 0 only when every check passed.

Flags: --size (64M), --write-size (256K), --sndbuf (64K),
--tls-version TLSv1.2|TLSv1.3 (default: negotiate), --build-dir (build).
Run directly (after a cmake build into build/):  python3 examples/demo.py
"""
import argparse
import hashlib
import os
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable, TypeVar

T = TypeVar("T")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    mult = units.get(text[-1:].upper(), 1)
    try:
        return int(text[:-1] if mult > 1 else text) * mult
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"want a size like 1000, 256K or 64M, not {text!r}") from None


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="retls demo: non-blocking writes through a small send "
                    "buffer, checked end to end")
    ap.add_argument("--size", type=size, default=64 << 20,
                    help="bytes each client sends (default 64M)")
    ap.add_argument("--write-size", type=size, default=256 << 10,
                    help="bytes per write() call (default 256K)")
    ap.add_argument("--sndbuf", type=size, default=64 << 10,
                    help="client SO_SNDBUF (default 64K; the kernel doubles it)")
    ap.add_argument("--tls-version", choices=["TLSv1.2", "TLSv1.3"],
                    help="pin the protocol version (default: negotiate)")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"),
                    help="cmake build directory with the modules (default build)")
    o = ap.parse_args()
    if o.size < 1 or o.write_size < 1:
        ap.error("--size and --write-size must be at least 1 byte")
    return o


O = parse_args()
PYMOD = os.path.join(O.build_dir, "bindings", "python")  # retls package
sys.path.insert(0, PYMOD)
try:
    import retls
except ImportError as e:
    sys.exit(f"error: cannot import retls ({e}); build it first: "
             f"./run.sh demo does, or cmake -S . -B build && cmake --build build")

TTY = sys.stdout.isatty()
FAILURES: list[str] = []


def check(ok: bool, what: str) -> bool:
    print(f"  {'check':18} {what}: {'OK' if ok else 'FAILED'}")
    if not ok:
        FAILURES.append(what)
    return ok


def row(name: str, value: str) -> None:
    print(f"  {name:18} {value}")


def mib(n: float) -> str:
    return f"{n / (1 << 20):.1f} MiB"


# ---- the certificate and the server ----------------------------------------

def make_certificate(d: str) -> tuple[str, str]:
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
         "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30)
    return cert, key


class Server:
    """examples/python/digest_server.py in a subprocess (its own process,
    so client and server each get a core)."""

    def __init__(self, cert: str, key: str, count: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "python", "digest_server.py"),
             "--cert", cert, "--key", key, "--count", str(count),
             "--timeout", "60"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=dict(os.environ, PYTHONPATH=PYMOD))
        self.lines: list[str] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        first = self.next_line(10)
        if not first.startswith("listening on "):
            raise RuntimeError(f"digest_server did not start: {first!r}")
        self.port = int(first.rsplit(":", 1)[1])

    def _read(self) -> None:
        assert self.proc.stdout is not None  # stdout=PIPE
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.strip())
                self.cond.notify_all()
        with self.cond:
            self.lines.append("")  # EOF
            self.cond.notify_all()

    def next_line(self, timeout: float) -> str:
        with self.cond:
            if not self.cond.wait_for(lambda: self.lines, timeout):
                raise TimeoutError("the server said nothing for "
                                   f"{timeout} s")
            return self.lines.pop(0)

    def served(self) -> dict[str, str]:
        """Parse the server's line about the connection that just ended."""
        line = self.next_line(30)
        if not line.startswith("served: "):
            raise RuntimeError(f"server: {line}")
        return dict(f.split("=", 1) for f in line.split()[1:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


# ---- 1. the Python client --------------------------------------------------

class Progress:
    """A live line (bytes, MB/s) on a terminal; a few plain lines when the
    output is a file, so a captured run stays readable."""

    def __init__(self, total: int) -> None:
        self.total, self.t0 = total, time.monotonic()
        self.last, self.next_mark = 0.0, 0.25

    def update(self, done: int, force: bool = False) -> None:
        now = time.monotonic()
        secs = max(now - self.t0, 1e-9)
        line = (f"  {'progress':18} {mib(done):>10} of {mib(self.total)}"
                f"  {done / secs / 1e6:7.1f} MB/s")
        if TTY:
            if force or now - self.last > 0.1:
                print("\r" + line, end="", flush=True)
                self.last = now
        elif done >= self.next_mark * self.total and done < self.total:
            print(line, flush=True)
            while self.next_mark * self.total <= done:
                self.next_mark += 0.25

    def done(self, total: int) -> None:
        if TTY:
            self.update(total, force=True)
            print()


def python_client(port: int, cafile: str) -> dict[str, Any]:
    """Push O.size bytes through a non-blocking socket; return a report."""
    data = os.urandom(O.size)
    sent_sha = hashlib.sha256(data).hexdigest()
    ctx = retls.Context("client", cafile=cafile,
                        min_version=O.tls_version or "TLSv1.2",
                        max_version=O.tls_version)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, O.sndbuf)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    conn = retls.Connection(ctx, sock, server_hostname="localhost")
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)

    def wait(want: str) -> None:
        sel.modify(sock, selectors.EVENT_WRITE if want == "write"
                   else selectors.EVENT_READ)
        if not sel.select(30):
            raise TimeoutError("the socket was not ready for 30 s")

    def call(op: Callable[[], T]) -> T:
        """op() until it stops asking to wait."""
        while True:
            try:
                return op()
            except retls.WantRead:
                wait("read")
            except retls.WantWrite:
                wait("write")

    call(conn.do_handshake)
    row("handshake", f"{conn.version} {conn.cipher}, server certificate "
                     f"verified for localhost")
    progress = Progress(O.size)
    view, off = memoryview(data), 0
    t0 = time.monotonic()
    while off < O.size:
        try:
            off += conn.write(view[off:off + O.write_size])
        except retls.WantIO as e:
            # The connection copied the pending bytes: wait, then flush()
            # them; the loop never presents this slice again.
            wait("read" if isinstance(e, retls.WantRead) else "write")
            off += call(conn.flush)
        progress.update(off)
    elapsed = time.monotonic() - t0
    progress.done(off)
    call(conn.shutdown)
    reply = b""
    while True:  # the server's digest line, then its close_notify
        try:
            reply += call(lambda: conn.read(4096))
        except retls.ZeroReturn:
            break
    stats = conn.stats
    conn.close()
    sock.close()
    return dict(sent=off, seconds=elapsed, sha256=sent_sha,
                reply=reply.decode(errors="replace").strip(), **stats)


# ---- 2. the Lua client -----------------------------------------------------

def lua_client(port: int, cafile: str) -> dict[str, Any]:
    lua = shutil.which("lua5.4")
    so = os.path.join(O.build_dir, "lua", "retls_core.so")
    if lua is None or not os.path.exists(so):
        raise RuntimeError(
            f"the Lua module is not built ({so}) or lua5.4 is missing: "
            f"./run.sh demo builds it (cmake -DBUILD_LUA=ON, the default)")
    env = dict(os.environ,
               LUA_PATH=os.path.join(ROOT, "bindings", "lua", "?.lua") + ";;",
               LUA_CPATH=os.path.join(O.build_dir, "lua", "?.so") + ";;")
    argv = [lua, os.path.join(HERE, "lua", "nonblocking_client.lua"),
            "--size", str(O.size), "--write-size", str(O.write_size),
            "--sndbuf", str(O.sndbuf), "--cafile", cafile,
            "--servername", "localhost", "--progress"]
    if O.tls_version:
        argv += ["--tls-version", O.tls_version]
    argv += ["127.0.0.1", str(port)]
    row("command", "lua5.4 examples/lua/nonblocking_client.lua "
        + " ".join(argv[2:]).replace(cafile, "cert.pem"))
    # The Lua client draws its own progress line on stderr (passed through).
    p = subprocess.run(argv, env=env, stdout=subprocess.PIPE, timeout=120,
                       stderr=None if TTY else subprocess.DEVNULL)
    out = p.stdout.decode(errors="replace").strip().splitlines()
    if p.returncode != 0 or not out:
        raise RuntimeError(f"the Lua client failed (exit {p.returncode})")
    r: dict[str, Any] = dict(f.split("=", 1) for f in out[-1].split()
                             if "=" in f)
    for k in ("sent", "writes", "want_write", "want_read", "retries",
              "mismatches", "received"):
        r[k] = int(r[k])
    r["seconds"] = float(r["seconds"])
    return r


def report(r: dict[str, Any], served: dict[str, str]) -> None:
    row("bytes sent", f"{r['sent']:,} ({mib(r['sent'])})")
    row("time", f"{r['seconds']:.2f} s")
    row("throughput", f"{r['sent'] / max(r['seconds'], 1e-9) / 1e6:.1f} MB/s")
    row("writes", f"{r['writes']:,} completed")
    row("WantWrite", f"{r['want_write']:,}")
    row("WantRead", f"{r['want_read']:,}")
    row("retries", f"{r['retries']:,} (each one a flush() of the pending write)")
    row("mismatches", f"{r['mismatches']}")
    row("sha256 sent", r["sha256"])
    row("sha256 at server", f"{served['sha256']} ({int(served['bytes']):,} bytes)")
    check(r["sent"] == O.size, "every byte acknowledged to the client")
    check(r["mismatches"] == 0, "no retry mismatches")
    check(served["sha256"] == r["sha256"] and int(served["bytes"]) == O.size,
          "server received exactly what was sent (SHA-256 on both sides)")


# ---- 3. the retry contract -------------------------------------------------

def wrong_retry() -> None:
    capacity = 16 << 10
    client, server = retls.pair(capacity=capacity)
    first = os.urandom(64 << 10)
    try:
        client.write(first)
        check(False, "write bigger than the pair buffer stops")
        return
    except retls.WantWrite:
        row("write(64 KiB)", f"WantWrite (the {capacity // 1024} KiB buffer "
                             f"to the peer is full); pending_write = "
                             f"{client.pending_write:,}")
    wrong = bytes(b ^ 0xFF for b in first[:16]) + first[16:]  # same length
    try:
        client.write(wrong)
        check(False, "a retry with other bytes is refused")
    except retls.RetryMismatch as e:
        row("write(other bytes)", f"RetryMismatch: {e}")
    received, flushes = bytearray(), 0
    while True:
        try:
            while True:
                received += server.read(65536)
        except retls.WantRead:
            pass
        if not client.pending_write:
            break
        flushes += 1
        try:
            client.flush()
        except retls.WantWrite:
            continue
    try:  # what the last flush sent
        while True:
            received += server.read(65536)
    except retls.WantRead:
        pass
    row("flush()", f"{flushes} calls, each after the peer read what it could;"
                   f" pending_write = {client.pending_write}")
    row("peer received", f"{len(received):,} bytes")
    check(bytes(received) == first,
          "peer received the original bytes exactly once, none of the wrong")
    check(client.stats["mismatches"] == 1, "stats counted the one mismatch")


# ---- main ------------------------------------------------------------------

def main() -> int:
    print(f"retls {retls.__version__} demo  ({retls.OPENSSL_VERSION}, "
          f"Python {sys.version.split()[0]})")
    with tempfile.TemporaryDirectory(prefix="retls-demo-") as d:
        cert, key = make_certificate(d)
        row("certificate", "throwaway EC P-256 for localhost, made by the "
                           "openssl command in a temporary directory")
        server = Server(cert, key, count=2)
        try:
            row("server", f"retls, server role (examples/python/"
                          f"digest_server.py) on 127.0.0.1:{server.port}")
            print(f"\n[1/3] Python client: {mib(O.size)} in "
                  f"{O.write_size // 1024} KiB writes, SO_SNDBUF "
                  f"{O.sndbuf // 1024} KiB, non-blocking (selectors)")
            r = python_client(server.port, cert)
            served = server.served()
            report(r, served)
            check(r["reply"] == f"sha256={served['sha256']} bytes={served['bytes']}",
                  "the server's reply over TLS carries the same digest")

            print(f"\n[2/3] Lua client: the same run from Lua, against the "
                  f"same kind of server")
            try:
                r = lua_client(server.port, cert)
                served = server.served()
                report(r, served)
                reply = f"sha256={served['sha256']} bytes={served['bytes']}\n"
                check(r["received_sha256"] ==
                      hashlib.sha256(reply.encode()).hexdigest(),
                      "the server's reply reached the Lua client intact")
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                print(f"  error: {e}")
                FAILURES.append("Lua client run")
        finally:
            server.stop()

    print("\n[3/3] the retry contract: one deliberate wrong retry")
    wrong_retry()

    if FAILURES:
        print(f"\n{len(FAILURES)} check(s) FAILED: " + "; ".join(FAILURES))
        return 1
    print("\nall checks passed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (retls.Error, OSError, RuntimeError) as e:
        sys.exit(f"error: {type(e).__name__}: {e}")
