"""Helpers for the Python suite (fixtures are in conftest.py).

The suite imports the retls package from PYTHONPATH (CTest points it at
<build>/bindings/python).  Everything network-related stays on 127.0.0.1,
every wait is bounded, and every server started here is stopped here.
"""
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time

import retls

HOST = "127.0.0.1"


# ---- moving bytes ------------------------------------------------------------

def drain(conn, limit=1 << 20):
    """Everything readable from conn right now (until WantRead)."""
    out = bytearray()
    while True:
        try:
            out += conn.read(limit)
        except retls.WantRead:
            return bytes(out)


def relay(a, b):
    """Memory mode: move the ciphertext a has for b.  Returns the bytes."""
    data = a.bio_read()
    if data:
        b.bio_write(data)
    return data


def handshake_memory(a, b, rounds=20):
    """Drive two memory connections through the handshake by hand."""
    done = [False, False]
    for _ in range(rounds):
        for i, (me, peer) in enumerate(((a, b), (b, a))):
            if not done[i]:
                try:
                    me.do_handshake()
                    done[i] = True
                except retls.WantRead:
                    pass
            relay(me, peer)
        if all(done):
            return
    raise AssertionError("memory handshake did not finish")


def flush_through(writer, reader, got, memory=False, rounds=100000):
    """flush() writer until its pending write is done, draining reader into
    got (a bytearray) between attempts; memory=True also relays the
    ciphertext both ways (two memory-mode connections).  Every round moves
    bytes, so the bound only turns a hang into a failure.  Returns (bytes
    the final flush acknowledged, number of flush calls)."""
    for i in range(1, rounds + 1):
        if memory:
            relay(writer, reader)
        got += drain(reader)
        if memory:
            relay(reader, writer)
        try:
            n = writer.flush()
        except retls.WantIO:
            continue
        if memory:
            relay(writer, reader)
        return n, i
    raise AssertionError("flush made no progress")


def records(wire):
    """Payload lengths of the TLS records in a ciphertext byte string."""
    lens, i = [], 0
    while i + 5 <= len(wire):
        n = int.from_bytes(wire[i + 3:i + 5], "big")
        lens.append(n)
        i += 5 + n
    assert i == len(wire), "torn record"
    return lens


def pattern(n, seed=0):
    """n deterministic pseudo-random bytes, different per seed."""
    return random.Random(seed).randbytes(n)


def client_ctx(**kw):
    kw.setdefault("verify", False)
    return retls.Context("client", **kw)


def server_ctx(**kw):
    ctx = retls.Context("server", **kw)
    if "certfile" not in kw:
        ctx.use_selfsigned("localhost")
    return ctx


# ---- certificates ------------------------------------------------------------

# The PKI is shared with the interop suite (tests/common/pki.py).
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "common"))
from pki import PKI, make_pki  # noqa: E402,F401


# ---- real servers -------------------------------------------------------------

def tool_env():
    """The environment for external programs the tests start (gnutls):
    without the ASan runtime that the sanitizer build preloads into Python
    (cmake/sanitizer_runtime.cmake).  They are not what is tested, and
    gnutls-cli does not exit under it."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    return env


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# s_server's stdout: informational lines, then after this banner exactly the
# bytes the client sent, then a trailer when the connection ends.  Commands
# on its stdin make it print SSL_do_handshake's result among the data, and
# a client KeyUpdate "Read BLOCK"; the payloads are random bytes, so these
# lines cannot occur in them by chance.
_BANNER_END = re.compile(rb"Secure Renegotiation IS (NOT )?supported\n")
_TRAILER = b"DONE\nshutting down SSL\n"
_NOISE = (b"SSL_do_handshake -> 1\n", b"Read BLOCK\n")


class SServer:
    """`openssl s_server -naccept 1` on 127.0.0.1: it exits after one
    connection, and payload() gives the bytes the client sent.  Commands
    ("r" renegotiate, "K" KeyUpdate requesting one back...) go to its
    stdin through send_command()."""

    def __init__(self, pki, args=()):
        self.pki, self.args = pki, list(args)

    def start(self, timeout=10.0):
        for _ in range(5):  # the port can be taken between probe and bind
            self.port = free_port()
            self.proc = subprocess.Popen(
                ["openssl", "s_server", "-naccept", "1",
                 "-accept", f"{HOST}:{self.port}",
                 "-cert", self.pki.server_cert, "-key", self.pki.server_key,
                 *self.args],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT)
            self.out = bytearray()
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                if b"ACCEPT\n" in self.out:
                    return self
                time.sleep(0.02)
            self.stop()
        raise RuntimeError(f"openssl s_server did not start: "
                           f"{bytes(self.out[-300:])!r}")

    def _read(self):
        while True:
            chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
            if not chunk:
                return
            self.out += chunk

    def payload(self):
        out = bytes(self.out)
        m = _BANNER_END.search(out)
        if m is None:
            return b""
        body = out[m.end():]
        end = body.find(_TRAILER)
        if end >= 0:
            body = body[:end]
        for noise in _NOISE:
            body = body.replace(noise, b"")
        return body

    def wait_payload(self, n, timeout=30.0):
        """Wait (bounded) until n payload bytes arrived; return them."""
        deadline = time.monotonic() + timeout
        while len(self.payload()) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.payload()[:n]

    def finish(self, timeout=30.0):
        """Wait for the server to end (after the client closed); return the
        whole payload."""
        self.proc.wait(timeout)
        self._reader.join(timeout)
        assert _TRAILER in self.out, bytes(self.out[-300:])
        return self.payload()

    def send_command(self, cmd):
        self.proc.stdin.write(cmd)
        self.proc.stdin.flush()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass


class SocketPair:
    """A connected TLS pair over a real AF_UNIX socketpair, both ends
    blocking, handshake done (the server side in a thread)."""

    def __init__(self, cctx=None, sctx=None):
        self.a, self.b = socket.socketpair()
        self.client = retls.Connection(cctx or client_ctx(), self.a)
        self.server = retls.Connection(sctx or server_ctx(), self.b)
        t = threading.Thread(target=self.server.do_handshake)
        t.start()
        self.client.do_handshake()
        t.join(10)
        assert not t.is_alive()

    def close(self):
        for c in (self.client, self.server):
            c.close(discard=True)
        self.a.close()
        self.b.close()
