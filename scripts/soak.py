#!/usr/bin/env python3
"""scripts/soak.py - retls under sustained load with injected faults.

Not a unit test: a run for a chosen duration, whose report goes into the
README ("## Reliability").

    python3 scripts/soak.py --duration 600            # the README's run
    python3 scripts/soak.py --duration 30 --connections 200

One process, one selectors loop, CONNECTIONS concurrent non-blocking client
connections (TLS 1.2 and 1.3) to a retls server on 127.0.0.1 in the same
loop.  Each client writes a stream of random bytes in writes of 1 B to
1 MiB (log-uniform), and at every WantRead/WantWrite picks a way to go on:
flush(), or write() again with the same bytes from a fresh buffer (the old
one dropped), after waiting for the socket or straight away.  Each server
end plays one peer behaviour: normal, slow reader, RST mid-stream, garbage
on the wire, early close_notify, renegotiation (TLS 1.2) or KeyUpdate
(TLS 1.3) at random points.

Checked, with the run failing on any violation:
  - bytes: the server compares every chunk it reads with the client's
    stream at that offset (each byte once, in order, nothing invented);
    on a clean end it has read exactly what the client was told was
    written; after a fault, at most the acknowledged bytes plus the
    pending write;
  - exceptions: every failure is a retls exception the fault explains
    (EOFError or Error for an RST, SSLError for garbage, SSLError "bad
    length" for a requested KeyUpdate meeting a half-sent record, as
    retls.h documents); connections without a fault must end cleanly;
  - liveness: when the duration is over, every connection finishes;
  - resources: open file descriptors come back to the baseline, and RSS
    to within a margin of the baseline taken after the first wave.
"""
import argparse
import collections
import ctypes
import errno
import gc
import heapq
import math
import os
import random
import selectors
import socket
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
try:
    import retls
except ImportError:  # run from a checkout: the module built by ./run.sh
    sys.path.insert(0, os.path.join(ROOT, "build", "bindings", "python"))
    import retls

STREAM_LEN = 1 << 24  # the byte stream every client writes from (16 MiB)
MAX_WRITE = 1 << 20
BEHAVIOURS = [("normal", 30), ("slow", 20), ("rst", 8), ("garbage", 6),
              ("close_notify", 8), ("rekey", 28)]
# An exception a fault explains: (behaviour, side) -> allowed classes.
ALLOWED = {
    ("rst", "client"): (retls.EOFError, retls.Error),
    ("garbage", "client"): (retls.SSLError,),
    ("garbage", "server"): (retls.SSLError, retls.EOFError, retls.Error),
}


def rss_kib():
    """Resident set size once glibc has returned its free memory to the
    system (malloc_trim): what is still in use, not the high-water mark
    of the allocator's arenas."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def open_fds():
    return len(os.listdir("/proc/self/fd"))


class Violation(Exception):
    """A broken promise: the run fails."""


class Soak:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        # Periodic: byte i is byte i % STREAM_LEN, so a slice of up to
        # MAX_WRITE from any offset below STREAM_LEN needs no wrapping.
        base = random.Random(args.seed + 1).randbytes(STREAM_LEN)
        self.stream = base + base[:MAX_WRITE]
        self.view = memoryview(self.stream)
        self.sel = selectors.DefaultSelector()
        self.timers = []  # heap of (when, seq, callback)
        self.seq = 0
        self.server_ctx = retls.Context("server")
        self.server_ctx.use_selfsigned("localhost")
        self.client_ctx = {
            "TLSv1.2": retls.Context("client", verify=False,
                                     max_version="TLSv1.2"),
            "TLSv1.3": retls.Context("client", verify=False,
                                     min_version="TLSv1.3"),
        }
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4096)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.sel.register(self.listener, selectors.EVENT_READ, self.accept)
        self.clients = {}  # client local port -> Client
        self.active = 0   # client ends open
        self.servers = 0  # server ends open
        self.next_id = 0
        self.stats = collections.Counter()
        self.faults = collections.Counter()
        self.errors = collections.Counter()
        self.violations = []

    # -- plumbing --------------------------------------------------------

    def later(self, delay, cb):
        self.seq += 1
        heapq.heappush(self.timers, (time.monotonic() + delay, self.seq, cb))

    def write_size(self):
        # log-uniform 1 B .. 1 MiB
        return max(1, int(math.exp(self.rng.uniform(0, math.log(MAX_WRITE)))))

    def expect(self, offset, chunk, who):
        """chunk must be the stream at offset (the server's check)."""
        start = offset % STREAM_LEN
        if self.view[start:start + len(chunk)] != chunk:
            raise Violation(f"{who}: bytes at offset {offset} differ from "
                            "the stream: lost, repeated or invented")

    def error(self, side, behaviour, exc, pending, after_end=False):
        """Record an exception; a violation unless the fault explains it.
        after_end: the client had sent its close_notify and the server had
        read it after every acknowledged byte."""
        name = type(exc).__name__
        text = str(exc)
        key = f"{side} {name}: {text[:60]}"
        self.errors[key] += 1
        allowed = ALLOWED.get((behaviour, side), ())
        if isinstance(exc, allowed):
            return
        # The server closes its socket once it read the close_notify; an
        # answer the client still sends to a key update or a renegotiation
        # request reaches a closed socket, whose RST the client then reads.
        if (after_end and behaviour == "rekey"
                and isinstance(exc, (retls.EOFError, retls.Error))
                and not isinstance(exc, retls.SSLError)):
            return
        # retls.h: a requested KeyUpdate (or renegotiation) reaching an end
        # whose record is half written fails the read with "bad length".
        if (behaviour == "rekey" and isinstance(exc, retls.SSLError)
                and ("bad length" in text or "bad write retry" in text)
                and pending):
            return
        raise Violation(f"{side} ({behaviour}): unexpected {name}: {text}")

    # -- connections -----------------------------------------------------

    def start_client(self):
        c = Client(self, self.next_id)
        self.next_id += 1
        self.active += 1
        self.clients[c.port] = c

    def accept(self, _mask):
        for _ in range(64):
            try:
                sock, addr = self.listener.accept()
            except BlockingIOError:
                return
            client = self.clients.get(addr[1])
            if client is None:  # cannot happen: same process
                raise Violation(f"connection from unknown port {addr[1]}")
            Server(self, sock, client)

    def run(self):
        a = self.args
        base_fds = open_fds()
        t0 = time.monotonic()
        deadline = t0 + a.duration
        rss_base = None
        last_report = t0
        while True:
            now = time.monotonic()
            launching = now < deadline
            while launching and self.active < a.connections:
                self.start_client()
            if rss_base is None and self.stats["clean"] + self.stats[
                    "faulted"] >= a.connections:
                gc.collect()
                rss_base = rss_kib()
            if not launching and self.active == 0 and self.servers == 0:
                break
            if now > deadline + a.drain:
                raise Violation(f"{self.active} client and {self.servers} "
                                "server ends did not finish within "
                                f"{a.drain} s after the end")
            timeout = 0.05
            if self.timers:
                timeout = max(0.0, min(timeout, self.timers[0][0] - now))
            for key, mask in self.sel.select(timeout):
                key.data(mask)
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                heapq.heappop(self.timers)[2]()
            if a.progress and now - last_report > 30:
                last_report = now
                print(f"[{now - t0:6.0f}s] active {self.active}, "
                      f"done {self.stats['clean'] + self.stats['faulted']}, "
                      f"verified {self.stats['bytes_verified'] / 2**20:.0f} "
                      f"MiB, rss {rss_kib() // 1024} MiB", flush=True)
        elapsed = time.monotonic() - t0
        self.clients.clear()
        gc.collect()
        end_fds = open_fds()
        self.sel.unregister(self.listener)
        self.listener.close()
        self.sel.close()
        rss_end = rss_kib()
        return elapsed, base_fds, end_fds, rss_base or rss_end, rss_end


class Client:
    """One client connection: writes total bytes of the stream, then
    shutdown, then reads until the server's close_notify (or EOF)."""

    def __init__(self, soak, cid):
        self.soak = soak
        rng = soak.rng
        self.id = cid
        self.version = rng.choice(("TLSv1.2", "TLSv1.3"))
        self.offset = rng.randrange(STREAM_LEN)
        # mean 1 MiB, at most 8 MiB
        self.total = min(int(rng.expovariate(1 / (1 << 20))), 8 << 20)
        self.acked = 0
        self.pending = 0      # length of the pending write, 0 if none
        self.phase = "write"  # write -> shutdown -> drain -> done
        self.server = None
        self.fault = None     # behaviour of the server end
        self.peer_closed = False
        self.sock = socket.socket()
        self.sock.setblocking(False)
        # Small random socket buffers: writes stop at random points.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF,
                             rng.choice((4096, 16384, 65536, 262144)))
        err = self.sock.connect_ex(("127.0.0.1", soak.port))
        if err not in (0, errno.EINPROGRESS):
            raise Violation(f"connect: {os.strerror(err)}")
        self.port = self.sock.getsockname()[1]
        self.conn = retls.Connection(soak.client_ctx[self.version], self.sock)
        self.events = 0
        self.watch(selectors.EVENT_READ | selectors.EVENT_WRITE)

    def watch(self, events):
        events |= selectors.EVENT_READ  # always notice the server
        if events != self.events:
            if self.events:
                self.soak.sel.modify(self.sock, events, self.ready)
            else:
                self.soak.sel.register(self.sock, events, self.ready)
            self.events = events

    def ready(self, mask):
        try:
            self.step(mask)
        except retls.Error as e:
            self.fail(e)

    def step(self, mask):
        soak = self.soak
        if mask & selectors.EVENT_READ:
            # Read first: handshake messages of a renegotiation or key
            # update must be processed before the write can go on.
            self.read_some()
            if self.phase == "done":
                return
        for _ in range(8):  # a few writes per wakeup, then yield
            if self.phase == "write":
                if not self.write_step():
                    return
            elif self.phase == "shutdown":
                try:
                    self.conn.shutdown()
                except retls.WantIO as e:
                    self.wait(e)
                    return
                except retls.ArgumentError:
                    # retls.h: refused while a renegotiation is pending
                    # (the server asked for one): finish it first.
                    soak.stats["shutdown refused (renegotiation)"] += 1
                    try:
                        self.conn.do_handshake()
                    except retls.WantIO as e:
                        self.wait(e)
                        return
                    continue
                self.phase = "drain"
                self.watch(selectors.EVENT_READ)
                return
            else:
                return
        soak.later(0, lambda: self.ready(0))

    def write_step(self):
        """One write or retry; False when it has to wait."""
        soak = self.soak
        rng = soak.rng
        try:
            if self.pending:
                if rng.random() < 0.5:
                    n = self.conn.flush()
                else:  # the same bytes from a fresh buffer
                    n = self.conn.write(self.chunk(self.acked, self.pending))
                soak.stats["retries"] += 1
                self.pending = 0
            else:
                left = self.total - self.acked
                if left <= 0 or self.peer_closed:
                    self.phase = "shutdown"
                    return True
                size = min(left, soak.write_size())
                n = self.conn.write(self.chunk(self.acked, size))
                soak.stats["writes"] += 1
            self.acked += n
            return True
        except retls.WantIO as e:
            if not self.pending:
                self.pending = self.conn.pending_write
            soak.stats["want_" + ("read" if isinstance(e, retls.WantRead)
                                  else "write")] += 1
            # Retry straight away now and then: WantIO again, or progress.
            if rng.random() < 0.1:
                soak.later(rng.random() * 0.002, lambda: self.ready(0))
            self.wait(e)
            return False

    def chunk(self, at, size):
        start = (self.offset + at) % STREAM_LEN
        return bytes(self.soak.view[start:start + size])

    def wait(self, e):
        self.watch(selectors.EVENT_WRITE if isinstance(e, retls.WantWrite)
                   else selectors.EVENT_READ)

    def read_some(self):
        for _ in range(16):
            try:
                data = self.conn.read(65536)
            except retls.WantIO:
                return
            except retls.ZeroReturn:
                # The server's close_notify: finish our side.
                self.peer_closed = True
                if self.phase == "drain":
                    self.finish()
                elif self.phase == "write" and not self.pending:
                    self.phase = "shutdown"
                return
            except retls.EOFError:
                if self.phase == "drain":
                    self.finish()  # the server closed after close_notify
                    return
                raise
            if data:
                raise Violation(f"client {self.id}: the server sent "
                                f"{len(data)} bytes of data")

    def finish(self):
        """Clean end: both close_notifies exchanged (or ours sent and the
        server gone after reading it)."""
        self.phase = "done"
        self.close()
        self.soak.end(self, None)

    def fail(self, exc):
        sv = self.server
        after_end = self.phase == "drain" and sv is not None and sv.verified
        try:
            self.soak.error("client", self.fault or "none", exc, self.pending,
                            after_end)
        except Violation as v:
            raise Violation(
                f"{v} [client {self.id}: {self.phase}, {self.acked} bytes "
                f"acknowledged, {self.pending} pending; server: "
                + (f"{sv.received} read, closed {sv.closed}, verified "
                   f"{sv.verified}" if sv else "gone") + "]") from None
        if after_end:  # every byte arrived: a clean end for the data
            self.finish()
            return
        self.phase = "done"
        self.close()
        self.soak.end(self, exc)

    def close(self):
        if self.events:
            self.soak.sel.unregister(self.sock)
            self.events = 0
        self.conn.close(discard=True)
        self.sock.close()


class Server:
    """The server end of one client: reads and checks the stream, and
    plays one peer behaviour."""

    def __init__(self, soak, sock, client):
        self.soak = soak
        self.sock = sock
        self.client = client
        rng = soak.rng
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                        rng.choice((4096, 16384, 65536, 262144)))
        self.conn = retls.Connection(soak.server_ctx, sock)
        names, weights = zip(*BEHAVIOURS)
        self.behaviour = rng.choices(names, weights)[0]
        client.fault = self.behaviour
        client.server = self
        soak.servers += 1
        self.received = 0
        self.verified = False  # read the close_notify after exactly the
        self.closed = False    # bytes the client was told were written
        self.lingering = False
        self.paused = False
        # Where the fault strikes: somewhere in the client's stream.
        self.at = rng.randrange(max(1, client.total))
        self.rekeys = 0
        soak.sel.register(sock, selectors.EVENT_READ, self.ready)

    def ready(self, _mask):
        if self.closed or self.paused:
            return
        if self.lingering:
            self.linger()
            return
        try:
            self.step()
        except retls.Error as e:
            self.soak.error("server", self.behaviour, e, 0)
            self.close()

    def step(self):
        soak, rng = self.soak, self.soak.rng
        slow = self.behaviour == "slow"
        for _ in range(4 if not slow else 1):
            try:
                data = self.conn.read(rng.randrange(1, 65536) if slow
                                      else 262144)
            except retls.WantIO:
                return
            except retls.ZeroReturn:
                self.clean_end()
                return
            soak.expect(self.client.offset + self.received, data,
                        f"server of client {self.client.id}")
            self.received += len(data)
            c = self.client
            if self.received > c.acked + c.pending:
                raise Violation(f"client {c.id}: server read {self.received}"
                                f" bytes, client acknowledged {c.acked} "
                                f"(+{c.pending} pending)")
            if self.received >= self.at and self.inject():
                return
            if slow:  # stop reading for up to 10 ms
                self.paused = True
                soak.sel.unregister(self.sock)
                soak.later(rng.random() * 0.01, self.resume)
                return

    def resume(self):
        if not self.closed:
            self.paused = False
            self.soak.sel.register(self.sock, selectors.EVENT_READ,
                                   self.ready)
            self.ready(0)

    def inject(self):
        """The behaviour's fault, once the stream reached its point; True
        when this end is gone."""
        soak, rng, b = self.soak, self.soak.rng, self.behaviour
        if b == "rst":
            soak.faults["rst"] += 1
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 struct.pack("ii", 1, 0))
            self.close()
            return True
        if b == "garbage":
            soak.faults["garbage"] += 1
            try:
                self.sock.send(rng.randbytes(rng.randrange(1, 64)))
            except OSError:
                pass
            self.at = float("inf")
            return False
        if b == "close_notify":
            soak.faults["close_notify"] += 1
            try:
                self.conn.shutdown()
            except retls.WantIO:
                pass  # finished by later reads
            self.at = float("inf")  # keep reading what the client sends
            return False
        if b == "rekey":
            self.rekeys += 1
            try:
                if self.conn.version == "TLSv1.2":
                    self.conn.renegotiate()
                    soak.faults["renegotiation"] += 1
                else:
                    request = rng.random() < 0.5
                    self.conn.key_update(request_peer=request)
                    soak.faults["key_update" +
                                (" (request_peer)" if request else "")] += 1
            except retls.SSLError:
                # retls.h: OpenSSL refusing now (a renegotiation still
                # running); the connection stays usable.
                soak.stats["rekey refused"] += 1
            # Again later in the stream, up to 4 times.
            self.at = (self.received + rng.randrange(1, 1 << 20)
                       if self.rekeys < 4 else float("inf"))
            return False
        return False

    def clean_end(self):
        c = self.client
        if self.received != c.acked:
            raise Violation(f"client {c.id} ({self.behaviour}): close_notify"
                            f" after {self.received} bytes, client "
                            f"acknowledged {c.acked}")
        self.soak.stats["bytes_verified"] += self.received
        self.verified = True
        if self.behaviour != "close_notify":
            try:
                self.conn.shutdown()
            except retls.WantIO:
                pass
            except retls.ArgumentError:
                # retls.h: refused while a renegotiation is pending (it
                # would wedge both ends).  The client, past its own
                # close_notify, will not answer it: end the stream with a
                # FIN instead, and read to the end so that closing sends
                # no RST over unread bytes.
                self.soak.stats["shutdown refused (renegotiation)"] += 1
                self.lingering = True
                self.sock.shutdown(socket.SHUT_WR)
                return
        self.close()

    def linger(self):
        try:
            while self.sock.recv(65536):
                pass
        except BlockingIOError:
            return
        except OSError:
            pass
        self.close()

    def close(self):
        if not self.closed:
            self.closed = True
            self.soak.servers -= 1
            if not self.paused:
                self.soak.sel.unregister(self.sock)
            self.conn.close(discard=True)
            self.sock.close()
            if self.client.phase == "done" and self.client.server is None:
                self.soak.server_done(self, self.client)


def end(self, client, exc):
    """A client connection ended: cleanly (exc None) or by exc, which
    error() already found explained by its server's behaviour."""
    self.active -= 1
    self.clients.pop(client.port, None)
    server = client.server
    self.stats["behaviour " + (client.fault or "none")] += 1
    if exc is not None:
        self.stats["faulted"] += 1
        if server is not None:
            server.close()
    elif server is None or server.closed:
        self.server_done(server, client)
    # else: the server end is still reading; server_done() when it closes
    client.server = None


def server_done(self, server, client):
    """Both ends of a connection whose client ended cleanly are done: the
    server must have read the close_notify after exactly the acknowledged
    bytes (clean_end checked the count), unless its own fault cut the
    stream first."""
    if server is not None and server.verified:
        self.stats["clean"] += 1
    elif server is not None and server.behaviour in ("rst", "garbage"):
        self.stats["faulted"] += 1
    else:
        raise Violation(f"client {client.id} ({client.fault}): ended cleanly"
                        " but the server end closed without its close_notify"
                        f" ({server.received if server else 0} of "
                        f"{client.acked} bytes read)")


Soak.end = end
Soak.server_done = server_done


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=60,
                    help="seconds to keep opening connections (default 60)")
    ap.add_argument("--connections", type=int, default=1000,
                    help="concurrent connections (default 1000)")
    ap.add_argument("--drain", type=float, default=300,
                    help="seconds allowed to finish after the duration")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--progress", action="store_true",
                    help="a line every 30 s")
    args = ap.parse_args()
    soft, hard = __import__("resource").getrlimit(
        __import__("resource").RLIMIT_NOFILE)
    need = 2 * args.connections + 64
    if soft < need:
        __import__("resource").setrlimit(
            __import__("resource").RLIMIT_NOFILE, (min(hard, need), hard))
    soak = Soak(args)
    failed = None
    try:
        elapsed, fd0, fd1, rss0, rss1 = soak.run()
    except Violation as v:
        failed = str(v)
        elapsed, fd0, fd1, rss0, rss1 = 0, 0, 0, 0, 0
    s = soak.stats
    print(f"retls soak: {retls.__version__}, {retls.OPENSSL_VERSION}, "
          f"Python {sys.version.split()[0]}, seed {args.seed}")
    print(f"{args.duration:.0f} s of new connections, {elapsed:.0f} s with "
          f"the drain; {args.connections} concurrent connections (TLS 1.2 "
          "and 1.3, non-blocking, one process)")
    print(f"connections handled: {s['clean'] + s['faulted']} "
          f"({s['clean']} clean, {s['faulted']} ended by an injected fault)")
    print(f"bytes verified: {s['bytes_verified']} "
          f"({s['bytes_verified'] / 2**30:.2f} GiB, each byte checked once "
          "and in order at the server)")
    print(f"writes {s['writes']}, WantRead {s['want_read']}, WantWrite "
          f"{s['want_write']}, retries {s['retries']}")
    print("peer behaviours: " + ", ".join(
        f"{k[10:]} {v}" for k, v in sorted(s.items())
        if k.startswith("behaviour ")))
    print("faults injected: " + ", ".join(
        f"{k} {v}" for k, v in sorted(soak.faults.items())))
    print("errors by type:")
    for k, v in sorted(soak.errors.items(), key=lambda kv: -kv[1]):
        print(f"  {v:6d}  {k}")
    print(f"file descriptors: {fd0} before, {fd1} after")
    print(f"RSS: {rss0 // 1024} MiB after the first wave, {rss1 // 1024} "
          "MiB at the end")
    if failed is None and fd1 != fd0:
        failed = f"file descriptors leaked: {fd0} -> {fd1}"
    if failed is None and rss1 > rss0 + max(64 * 1024, rss0 // 4):
        failed = f"RSS grew: {rss0} KiB -> {rss1} KiB"
    if failed:
        print(f"FAILED: {failed}")
        return 1
    print("OK: no violation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
