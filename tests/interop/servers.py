"""servers.py - real TLS servers for the interop tests, started and stopped
on 127.0.0.1 with free ports, every wait bounded.

- make_pki() (tests/common/pki.py, shared with tests/python): a
  throwaway CA, a server certificate for localhost/127.0.0.1 and a client
  certificate, made with the openssl CLI.
- SServer: `openssl s_server`.  Its stdout carries, after a connection
  banner, exactly the bytes the client sent, so payload() gives the bytes
  the server received.  Commands on its stdin ("r" renegotiate, "K" key
  update) can be injected once a given number of payload bytes arrived,
  which makes "renegotiate mid-transfer" deterministic: the client cannot
  have finished while the server has read only part of the data.
- GnutlsServ: `gnutls-serv --echo`, a different TLS implementation.  It
  echoes line by line, so clients send text lines to it.
- SinkServer: a server built from Python's own ssl module in a thread.  It
  reads until the client's close_notify, records the SHA-256 and byte count,
  replies "sha256=<hex> bytes=<n>" and closes cleanly.
- run_client(): run a client program, parse its key=value summary line.
"""
import hashlib
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time

HOST = "127.0.0.1"
START_TIMEOUT = 10.0   # seconds a server may take to start listening
STOP_TIMEOUT = 5.0     # seconds a server may take to exit before SIGKILL


def free_port():
    """A port that was free a moment ago (callers retry on a bind race)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# The PKI is shared with the Python suite (tests/common/pki.py).
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "common"))
from pki import PKI, make_pki  # noqa: E402,F401


class _Process:
    """A server subprocess whose output is collected by a thread."""

    ready_pattern = None  # bytes that show it listens

    def _spawn(self, argv):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.out = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        fd = self.proc.stdout.fileno()
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return
            with self._lock:
                self.out += chunk
            self._on_output()

    def _on_output(self):
        pass

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            with self._lock:
                if self.ready_pattern in self.out:
                    return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.02)
        raise TimeoutError(f"{self.name} did not start listening within "
                           f"{START_TIMEOUT} s: {bytes(self.out[-500:])!r}")

    def start(self):
        for _ in range(5):  # a free port can be taken between probe and bind
            self.port = free_port()
            self._spawn(self.argv())
            if self._wait_ready():
                return self
            self.stop()
        raise RuntimeError(f"{self.name} failed to start: "
                           f"{bytes(self.out[-500:])!r}")

    def wait(self, timeout=30.0):
        """Wait for the server to exit by itself; the output is complete."""
        self.proc.wait(timeout)
        self._reader.join(STOP_TIMEOUT)
        return self.proc.returncode

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
        self._reader.join(STOP_TIMEOUT)
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def output(self):
        with self._lock:
            return bytes(self.out)


# What s_server prints after the handshake, just before the client's data.
_BANNER_END = re.compile(rb"Secure Renegotiation IS (NOT )?supported\n")
# What it prints when the connection ends (-naccept 1), after the data.
_TRAILER = b"DONE\nshutting down SSL\n"
# Lines s_server prints among the data: SSL_do_handshake's result for each
# "r"/"K" command (through stdio, so possibly later), and "Read BLOCK" when
# SSL_read stopped on a post-handshake message (the client's KeyUpdate).
# The payload is random bytes, so these 11..22-byte lines cannot occur in it
# by chance (2^-88).
_COMMAND_ECHO = b"SSL_do_handshake -> 1\n"
_NOISE = (_COMMAND_ECHO, b"Read BLOCK\n")


class SServer(_Process):
    """openssl s_server for one connection (-naccept 1)."""

    name = "openssl s_server"
    ready_pattern = b"ACCEPT\n"

    def __init__(self, pki, *, version="tls1_3", verify_client=False,
                 extra=()):
        self.pki = pki
        self.version = version
        self.verify_client = verify_client
        self.extra = list(extra)
        self.commands = []   # (payload bytes seen, command) still to inject
        self.injected = 0

    def argv(self):
        a = ["openssl", "s_server", "-accept", f"{HOST}:{self.port}",
             "-naccept", "1", "-cert", self.pki.server_cert,
             "-key", self.pki.server_key, f"-{self.version}",
             "-client_renegotiation"]
        if self.verify_client:
            # -Verify: a client certificate is required, and checked.
            a += ["-Verify", "1", "-CAfile", self.pki.ca,
                  "-verify_return_error"]
        return a + self.extra

    def inject_after(self, nbytes, command):
        """Send command (e.g. b"r\\n") once nbytes of payload arrived."""
        self.commands.append((nbytes, command))

    def _on_output(self):
        if not self.commands:
            return
        with self._lock:
            m = _BANNER_END.search(self.out)
            seen = len(self.out) - m.end() if m else -1
        while self.commands and seen >= self.commands[0][0]:
            _, cmd = self.commands.pop(0)
            self.proc.stdin.write(cmd)
            self.proc.stdin.flush()
            self.injected += 1

    def banner(self):
        out = self.output()
        m = _BANNER_END.search(out)
        return out[:m.end()] if m else out

    def payload(self):
        """The bytes the client sent, as s_server wrote them out."""
        out = self.output()
        m = _BANNER_END.search(out)
        assert m, f"no connection banner in s_server output: {out[:500]!r}"
        end = out.rfind(_TRAILER)
        assert end >= m.end(), f"no DONE trailer: {out[-500:]!r}"
        data = out[m.end():end]
        assert out.count(_COMMAND_ECHO) == self.injected, \
            "an injected command left no trace (or failed)"
        for line in _NOISE:
            data = data.replace(line, b"")
        return data

    def stats(self, what):
        """A counter from the statistics s_server prints at exit, e.g.
        stats("server renegotiates")."""
        m = re.search(rb"(\d+) " + re.escape(what.encode()), self.output())
        return int(m.group(1)) if m else None


class GnutlsServ(_Process):
    """gnutls-serv --echo.  It has no option to bind one address: it listens
    on the wildcard address; the tests only ever connect to 127.0.0.1."""

    name = "gnutls-serv"
    ready_pattern = b"listening on IPv4"

    def __init__(self, pki, *, priority=None):
        self.pki = pki
        self.priority = priority

    def argv(self):
        a = ["gnutls-serv", "--echo", "--crlf",  # --crlf: echo bytes as is
             "-p", str(self.port), "--x509certfile", self.pki.server_cert,
             "--x509keyfile", self.pki.server_key,
             "--disable-client-cert"]
        if self.priority:
            a.append(f"--priority={self.priority}")
        return a


class SinkServer:
    """One-connection TLS server from Python's ssl module, in a thread.

    Reads until the client's close_notify, then replies
    b"sha256=<hex> bytes=<n>\\n" and sends its own close_notify."""

    def __init__(self, pki, *, version=None, verify_client=False,
                 timeout=60.0):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(pki.server_cert, pki.server_key)
        if version:
            v = getattr(ssl.TLSVersion, version.replace(".", "_"))
            self.ctx.minimum_version = self.ctx.maximum_version = v
        if verify_client:
            self.ctx.verify_mode = ssl.CERT_REQUIRED
            self.ctx.load_verify_locations(pki.ca)
        self.timeout = timeout
        self.received = 0
        self.sha256 = None
        self.peer_cert = None
        self.clean_close = False
        self.error = None

    def start(self):
        self.listener = socket.create_server((HOST, 0))
        self.listener.settimeout(self.timeout)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self

    def _serve(self):
        try:
            raw, _ = self.listener.accept()
            raw.settimeout(self.timeout)
            with self.ctx.wrap_socket(raw, server_side=True) as tls:
                self.peer_cert = tls.getpeercert()
                h = hashlib.sha256()
                while True:
                    chunk = tls.recv(1 << 16)
                    if not chunk:  # close_notify (ragged EOF would raise)
                        break
                    h.update(chunk)
                    self.received += len(chunk)
                self.sha256 = h.hexdigest()
                tls.sendall(f"sha256={self.sha256} "
                            f"bytes={self.received}\n".encode())
                tls.unwrap()
                self.clean_close = True
        except Exception as e:  # reported by the test through .error
            self.error = e
        finally:
            self.listener.close()

    def join(self, timeout=30.0):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the ssl server did not finish"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.listener.close()
        self.thread.join(STOP_TIMEOUT)


def run_client(argv, *, env=None, timeout=90.0):
    """Run a client to completion; return (CompletedProcess, summary dict)
    where the summary is the last stdout line of key=value pairs."""
    p = subprocess.run(argv, env=env, capture_output=True, timeout=timeout)
    summary = {}
    lines = p.stdout.decode(errors="replace").strip().splitlines()
    if lines:
        for field in lines[-1].split():
            if "=" in field:
                k, v = field.split("=", 1)
                summary[k] = v
    return p, summary


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class HttpsServer:
    """Python's http.server over ssl, serving files from a directory, in a
    thread (HTTP/1.0: it closes after each response, without close_notify,
    as many HTTPS servers do)."""

    def __init__(self, pki, directory):
        import functools
        import http.server

        handler = functools.partial(
            http.server.SimpleHTTPRequestHandler, directory=directory)
        handler.log_message = lambda *a: None  # keep test output clean
        self.httpd = http.server.ThreadingHTTPServer((HOST, 0), handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki.server_cert, pki.server_key)
        ctx.set_alpn_protocols(["http/1.1"])
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket,
                                            server_side=True)
        self.port = self.httpd.server_address[1]

    def __enter__(self):
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(STOP_TIMEOUT)
