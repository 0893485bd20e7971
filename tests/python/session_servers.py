"""Servers for test_sessions.py and test_early_data.py that outlive one
connection (resumption needs a second one): openssl s_server in its plain
mode, and CPython's ssl server in a thread.  127.0.0.1 only, every wait
bounded, stopped by the tests' fixtures."""
import os
import socket
import ssl
import subprocess
import threading
import time

from helpers import HOST, free_port


class MultiSServer:
    """`openssl s_server -quiet` for many connections.  Its stdin stays
    open (its plain mode ends a connection at stdin EOF); its stdout is
    exactly the bytes its application read (early data included), its
    stderr goes elsewhere."""

    def __init__(self, pki, args=()):
        self.pki, self.args = pki, list(args)
        self.out = bytearray()

    def start(self, timeout=10.0):
        for _ in range(5):
            self.port = free_port()
            self.proc = subprocess.Popen(
                ["openssl", "s_server", "-quiet",
                 "-accept", f"{HOST}:{self.port}",
                 "-cert", self.pki.server_cert, "-key", self.pki.server_key,
                 *self.args],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL)
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                if _listening(self.port):
                    return self
                time.sleep(0.02)
            self.stop()
        raise RuntimeError("openssl s_server did not start")

    def _read(self):
        while True:
            chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
            if not chunk:
                return
            self.out += chunk

    def wait_output(self, n, timeout=20.0):
        """Wait (bounded) until n bytes were read by s_server; return all.
        (s_server drops data that arrives together with close_notify, so
        clients wait for this before they close.)"""
        deadline = time.monotonic() + timeout
        while len(self.out) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return bytes(self.out)

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
            if f:
                f.close()


def _listening(port):
    """Is 127.0.0.1:port in LISTEN state?  Read from /proc, because a
    probe connection would be a client to s_server."""
    want = f"0100007F:{port:04X} 00000000:0000 0A"
    with open("/proc/net/tcp") as f:
        return any(want in line for line in f)


class PySSLServer:
    """CPython's ssl server in a thread: for each of `connections`
    connections it reads one line and answers it reversed, recording
    whether the session was reused; then the thread ends."""

    def __init__(self, pki, max_version=None, tickets=True, connections=2):
        self.connections = connections
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(pki.server_cert, pki.server_key)
        if max_version is not None:
            self.ctx.maximum_version = max_version
        if not tickets:   # TLS 1.2 resumes by session ID then
            self.ctx.options |= ssl.OP_NO_TICKET
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        self.sock.listen(5)
        self.sock.settimeout(20)
        self.port = self.sock.getsockname()[1]
        self.reused = []
        self.errors = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        for _ in range(self.connections):
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            try:
                raw.settimeout(20)
                with self.ctx.wrap_socket(raw, server_side=True) as s:
                    line = b""
                    while not line.endswith(b"\n"):
                        chunk = s.recv(1024)
                        if not chunk:
                            break
                        line += chunk
                    self.reused.append(s.session_reused)
                    s.sendall(line[:-1][::-1] + b"\n")
                    try:
                        s.unwrap()
                    except (ssl.SSLError, OSError):
                        pass
            except (ssl.SSLError, OSError) as e:
                self.errors.append(e)

    def stop(self):
        self.sock.close()
        self._thread.join(5)
