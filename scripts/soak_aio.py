#!/usr/bin/env python3
"""scripts/soak_aio.py - retls.aio under sustained load with injected faults.

Not a unit test: a run for a chosen duration, whose report goes into the
README ("## Reliability").  The sibling of scripts/soak.py (the
synchronous non-blocking API on a selectors loop) for the asyncio layer.

    python3 scripts/soak_aio.py --duration 600            # the README's run
    python3 scripts/soak_aio.py --duration 30 --connections 200 --loop uvloop
    SOAK_DEBUG=1 python3 scripts/soak_aio.py ...   # both ends' state on a failure

One process, one event loop (asyncio's or uvloop), CONNECTIONS concurrent
retls.aio client streams (open_connection; TLS 1.2 and 1.3) to a
retls.aio server (start_server) on 127.0.0.1 in the same loop.  Each
client sends 4 bytes naming itself, then a stream of random bytes in
writer.write() calls of 1 B to 1 MiB (log-uniform), and after each write
either awaits drain(), cancels a drain() in flight, lets wait_for(drain(),
t) time out, or writes on without draining; now and then it starts a
KeyUpdate or a renegotiation itself (get_extra_info("retls")).  Each
server end plays one peer behaviour: normal, slow reader (small reads,
pauses: backpressure through pause_reading and the socket), RST
mid-stream, garbage on the wire, an early close_notify, renegotiation
(TLS 1.2) or KeyUpdate (TLS 1.3) at random points; some clients abort
their own transport mid-stream.

Checked, with the run failing on any violation:
  - bytes: the server compares every chunk it reads with the client's
    stream at that offset (each byte once, in order, nothing invented);
    at the client's close_notify it has read exactly the bytes write()
    accepted, cancelled drains and timeouts included; after a fault, at
    most those;
  - exceptions: every failure is one the fault explains (retls.SSLError
    for garbage; ConnectionResetError, retls.Error, retls.EOFError or
    retls.Closed for an RST or an abort; nothing at all otherwise);
  - liveness: every connection ends within --drain seconds;
  - resources: open file descriptors come back to the baseline, RSS to
    within a margin of the baseline taken after the first wave, and no
    task is left.
"""
import argparse
import asyncio
import collections
import gc
import math
import os
import random
import socket
import struct
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
try:
    import retls
    import retls.aio
except ImportError:  # run from a checkout: the module built by ./run.sh
    sys.path.insert(0, os.path.join(ROOT, "build", "bindings", "python"))
    import retls
    import retls.aio

# The stream, the peer behaviours and the resource checks of soak.py.
from soak import (BEHAVIOURS, MAX_WRITE, STREAM_LEN, Violation,  # noqa: E402
                  open_fds, rss_kib)

CLIENT_ABORT = 0.04      # share of clients that abort their own transport
CLIENT_REKEY = 0.002     # chance per write that the client rekeys itself
# A connection that loses its peer: what its own end may see: retls.Error
# (an OSError), asyncio's ConnectionResetError, or the loop's own OSError
# (uvloop reports ENOTCONN from shutdown(2) when the peer is gone).
LOST = (OSError,)
# (who, fault) -> exceptions the fault explains at that end.
ALLOWED = {
    ("client", "rst"): LOST,
    ("client", "garbage"): LOST,   # the SSLError, or the reset after it
    ("server", "garbage"): LOST,   # the client's alert or reset
    ("server", "client abort"): LOST,
    # The server's close_notify arrives while a write of ours waits for
    # the answer to a renegotiation we asked for: it never comes, and the
    # transport fails with retls.Closed naming it (drain() may report the
    # lost connection as asyncio's ConnectionResetError).
    ("client", "close_notify"): LOST,
    # close() gives up after retls.aio.SHUTDOWN_TIMEOUT (30 s, as asyncio's
    # TLS does) and says so; a slow reader on a loaded machine can take
    # longer to read what the kernel still holds.
    ("client", "slow"): (retls.TimeoutError,),
    # ... and its server end then sees the abort that follows.
    ("server", "slow, the client's close timed out"): LOST,
}


class Client:
    """What the server end needs to know of its client."""

    def __init__(self, cid, rng):
        self.id = cid
        self.version = rng.choice(("TLSv1.2", "TLSv1.3"))
        self.offset = rng.randrange(STREAM_LEN)
        self.total = min(int(rng.expovariate(1 / (1 << 20))), 8 << 20)
        self.abort_at = (rng.randrange(max(1, self.total))
                         if rng.random() < CLIENT_ABORT else None)
        self.acked = 0        # bytes write() accepted
        self.closing = False  # close() called: acked is final
        self.close_started = None
        self.fault = None     # the server end's behaviour
        self.aborted = False
        # The registry keeps it until both ends are done with it.
        self.client_done = False
        self.server_closed_at = None
        self.rekeys = []      # what the client asked for, in order
        self.server_writer = None
        self.client_writer = None
        self.server_phase = None
        self.server_done = False


class Soak:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        base = random.Random(args.seed + 1).randbytes(STREAM_LEN)
        self.stream = base + base[:MAX_WRITE]
        self.view = memoryview(self.stream)
        self.server_ctx = retls.Context("server")
        self.server_ctx.use_selfsigned("localhost")
        self.client_ctx = {
            "TLSv1.2": retls.Context("client", verify=False,
                                     max_version="TLSv1.2"),
            "TLSv1.3": retls.Context("client", verify=False,
                                     min_version="TLSv1.3"),
        }
        self.clients = {}
        self.next_id = 0
        self.stats = collections.Counter()
        self.faults = collections.Counter()
        self.errors = collections.Counter()
        self.violation = None

    def fail(self, text):
        if self.violation is None:
            self.violation = text

    def write_size(self):
        return max(1, int(math.exp(self.rng.uniform(0, math.log(MAX_WRITE)))))

    def chunk(self, c, at, size):
        start = (c.offset + at) % STREAM_LEN
        return bytes(self.view[start:start + size])

    def error(self, side, fault, exc):
        """Record exc; a violation unless fault explains it."""
        name = type(exc).__name__
        self.errors[f"{side} {name}: {str(exc)[:60]}"] += 1
        if not isinstance(exc, ALLOWED.get((side, fault), ())):
            where = "".join(traceback.format_exception(exc)[-4:])
            if self.violation is not None:   # not the first: still show it
                print(f"also: {side} ({fault}): {name}: {exc}\n{where}",
                      file=sys.stderr)
            raise Violation(f"{side} ({fault}): unexpected {name}: {exc}\n"
                            f"{where}")

    # -- the client ------------------------------------------------------

    async def client(self, c):
        rng = self.rng
        reader, writer = await retls.aio.open_connection(
            "127.0.0.1", self.port, ctx=self.client_ctx[c.version],
            server_hostname="localhost")
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF,
                        rng.choice((4096, 16384, 65536, 262144)))
        conn = writer.get_extra_info("retls")
        c.client_writer = writer
        fault = None
        try:
            writer.write(struct.pack("!I", c.id))
            while c.acked < c.total:
                if reader.at_eof():
                    # The server's close_notify: it reads no more.
                    self.stats["client stopped (server closed)"] += 1
                    break
                if c.abort_at is not None and c.acked >= c.abort_at:
                    fault = "client abort"
                    self.faults["client abort"] += 1
                    c.aborted = True
                    writer.transport.abort()
                    return
                size = min(c.total - c.acked, self.write_size())
                writer.write(self.chunk(c, c.acked, size))
                c.acked += size   # accepted: it must arrive, once
                self.stats["writes"] += 1
                if rng.random() < self.args.client_rekey:
                    self.client_rekey(conn, c)
                await self.drain(writer)
            # A careful close: everything handed to the kernel first (the
            # transport's own buffer empty), then close_notify.
            writer.transport.set_write_buffer_limits(high=0)
            await writer.drain()
            c.closing = True
            c.close_started = time.monotonic()
            writer.close()
            if os.environ.get("SOAK_DEBUG"):
                try:
                    await asyncio.wait_for(asyncio.shield(
                        writer.wait_closed()), 20)
                except asyncio.TimeoutError:
                    print("STUCK CLOSE\n" + self.dump(c), file=sys.stderr)
            await writer.wait_closed()
            self.stats["client closed"] += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - judged by error()
            c.closing = True
            if os.environ.get("SOAK_DEBUG"):
                exc.add_note(self.dump(c))
            if os.environ.get("SOAK_DEBUG"):
                exc.add_note(f"client transport exc: "
                             f"{writer.transport._exc!r}")
            if c.server_closed_at is not None:
                sw = c.server_writer
                exc.add_note(f"server transport exc: {sw.transport._exc!r}"
                             if sw is not None else "no server writer")
                exc.add_note(f"client {c.id}: {time.monotonic() - c.server_closed_at:.3f} s after the server's close(); reader at EOF: {reader.at_eof()}")
            self.error("client", c.fault or fault, exc)
            writer.transport.abort()
        finally:
            if not writer.transport.is_closing():
                writer.transport.abort()

    def dump(self, c):
        """Both ends' transport state (SOAK_DEBUG=1, for a failure)."""
        out = [f"client {c.id} {c.version} rekeys {c.rekeys} acked "
               f"{c.acked}/{c.total} closing {c.closing}"]
        for name, w in (("client", c.client_writer),
                        ("server", c.server_writer)):
            if w is None:
                continue
            t, conn = w.transport, w.get_extra_info("retls")
            try:
                st = conn.stats
                pend, bio = conn.pending_write, conn.bio_pending
            except Exception as e:  # noqa: BLE001
                st = pend = bio = repr(e)
            out.append(
                f"{name}: state {t._state} sent_cn {t._sent_close_notify} "
                f"peer_closed {t._peer_closed} blocked {t._blocked} queued "
                f"{t._queued} paused(app {t._app_paused}, reading "
                f"{t._reading_paused}) plain size "
                f"{t._plain.get_write_buffer_size() if t._plain else None} "
                f"plain reading "
                f"{t._plain.is_reading() if t._plain else None} pending "
                f"{pend} bio {bio} stats {st}")
        out.append(f"server phase {c.server_phase}")
        import fcntl, termios
        for name, w in (("client", c.client_writer),
                        ("server", c.server_writer)):
            try:
                sk = w.get_extra_info("socket")
                buf = fcntl.ioctl(sk.fileno(), termios.FIONREAD, b"\0" * 4)
                outq = fcntl.ioctl(sk.fileno(), termios.TIOCOUTQ, b"\0" * 4)
                plain = w.transport._plain
                out.append(f"{name} socket: unread {struct.unpack('i', buf)[0]}"
                           f" unsent {struct.unpack('i', outq)[0]} plain "
                           f"eof {getattr(plain, '_eof', None)} closing "
                           f"{plain.is_closing() if plain else None} "
                           f"plain buf {plain.get_write_buffer_size() if plain else None}")
            except Exception as e:  # noqa: BLE001
                out.append(f"{name} socket: {e!r}")
        return "\n".join(out)

    def client_rekey(self, conn, c):
        try:
            if c.version == "TLSv1.2":
                conn.renegotiate()
                c.rekeys.append(("reneg", c.acked))
                self.faults["client renegotiation"] += 1
            else:
                req = self.rng.random() < 0.5
                conn.key_update(request_peer=req)
                c.rekeys.append(("ku-req" if req else "ku", c.acked))
                self.faults["client key_update"] += 1
        except (retls.SSLError, retls.ArgumentError):
            self.stats["client rekey refused"] += 1  # one still running

    async def drain(self, writer):
        """One of four ways to go on after a write."""
        r = self.rng.random()
        if r < 0.55:
            await writer.drain()
        elif r < 0.7:  # a drain cancelled in flight: nothing may be lost
            task = asyncio.ensure_future(writer.drain())
            await asyncio.sleep(0)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                self.stats["drain cancelled"] += 1
        elif r < 0.8:  # wait_for timing out
            try:
                await asyncio.wait_for(writer.drain(),
                                       self.rng.random() * 0.002)
            except asyncio.TimeoutError:
                self.stats["drain timed out"] += 1
        else:
            self.stats["no drain"] += 1
            if writer.transport.get_write_buffer_size() > 8 << 20:
                await writer.drain()   # bound what one client queues

    # -- the server end ----------------------------------------------------

    async def serve(self, reader, writer):
        try:
            await self._serve(reader, writer)
        except Violation as v:
            self.fail(str(v))
            writer.transport.abort()
        except asyncio.CancelledError:
            writer.transport.abort()
            raise

    def server_end(self, c):
        c.server_done = True
        if c.client_done:
            self.clients.pop(c.id, None)

    async def _serve(self, reader, writer):
        rng = self.rng
        sock = writer.get_extra_info("socket")
        # (No SO_RCVBUF here: shrunk after the handshake, below loopback's
        # 64 KiB MSS, it stalls TCP on the persist timer for tens of
        # seconds, longer than close()'s 30 s; slow readers give the
        # backpressure instead.)
        names, weights = zip(*[b for b in BEHAVIOURS
                               if b[0] in self.args.behaviours])
        behaviour = rng.choices(names, weights)[0]
        try:
            (cid,) = struct.unpack("!I", await reader.readexactly(4))
        except (asyncio.IncompleteReadError, *LOST) as exc:
            self.stats["server: client gone before its id"] += 1
            writer.transport.abort()
            return
        c = self.clients.get(cid)
        if c is None:
            raise Violation(f"connection from unknown client {cid}")
        try:
            await self._stream(reader, writer, sock, c, behaviour)
        finally:
            self.server_end(c)

    async def _stream(self, reader, writer, sock, c, behaviour):
        rng = self.rng
        c.fault = behaviour
        c.server_writer = writer
        c.server_phase = "reading"
        self.stats["behaviour " + behaviour] += 1
        at = rng.randrange(max(1, c.total))
        rekeys = 0
        received = 0
        who = f"server of client {c.id} ({behaviour})"
        try:
            while True:
                slow = behaviour == "slow"
                data = await reader.read(rng.randrange(1, 65536) if slow
                                         else 1 << 18)
                if not data:   # the client's close_notify
                    c.server_phase = "read the end"
                    if not c.closing:
                        raise Violation(f"{who}: end of stream before the "
                                        "client closed")
                    if received != c.acked:
                        raise Violation(f"{who}: close_notify after "
                                        f"{received} bytes, the client's "
                                        f"write() accepted {c.acked}")
                    self.stats["bytes_verified"] += received
                    self.stats["clean"] += 1
                    break
                start = (c.offset + received) % STREAM_LEN
                if self.view[start:start + len(data)] != data:
                    raise Violation(f"{who}: bytes at offset {received} "
                                    "differ from the stream: lost, "
                                    "repeated or invented")
                received += len(data)
                if received > c.acked:
                    raise Violation(f"{who}: read {received} bytes, the "
                                    f"client's write() accepted {c.acked}")
                if slow and rng.random() < 0.25:
                    # A pause now and then: with 1,000 connections in one
                    # loop every pause is far longer than asked for.
                    await asyncio.sleep(rng.random() * 0.005)
                if received < at:
                    continue
                if behaviour == "rst":
                    self.faults["rst"] += 1
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    self.stats["faulted"] += 1
                    return
                if behaviour == "garbage":
                    self.faults["garbage"] += 1
                    try:   # straight onto the socket, between records
                        os.write(sock.fileno(),
                                 rng.randbytes(rng.randrange(1, 64)))
                    except OSError:
                        pass
                    at = float("inf")
                elif behaviour == "close_notify":
                    # The server is done listening: the rest of the
                    # client's stream is discarded by TLS, unread.
                    self.faults["close_notify"] += 1
                    c.server_closed_at = time.monotonic()
                    writer.close()
                    await writer.wait_closed()
                    self.stats["faulted"] += 1
                    return
                elif behaviour == "rekey":
                    self.server_rekey(writer, c)
                    rekeys += 1
                    at = (received + rng.randrange(1, 1 << 20)
                          if rekeys < 4 else float("inf"))
        except Violation:
            raise
        except Exception as exc:  # noqa: BLE001 - judged by error()
            fault = "client abort" if c.aborted else behaviour
            if (behaviour == "slow" and c.close_started is not None
                    and time.monotonic() - c.close_started
                    >= retls.aio.SHUTDOWN_TIMEOUT):
                fault = "slow, the client's close timed out"
            self.error("server", fault, exc)
            self.stats["faulted"] += 1
            writer.transport.abort()
            return
        c.server_phase = "closing"
        writer.close()
        try:
            await writer.wait_closed()
            c.server_phase = "closed"
        except LOST:
            pass  # the client may be gone once its close_notify was read

    def server_rekey(self, writer, c):
        conn = writer.get_extra_info("retls")
        try:
            if c.version == "TLSv1.2":
                conn.renegotiate()
                self.faults["renegotiation"] += 1
            else:
                request = self.rng.random() < 0.5
                conn.key_update(request_peer=request)
                self.faults["key_update" +
                            (" (request_peer)" if request else "")] += 1
        except (retls.SSLError, retls.ArgumentError):
            # retls.h: refused while one is still running, or once the
            # client's close_notify arrived; the connection stays usable.
            self.stats["rekey refused"] += 1

    # -- the run -----------------------------------------------------------

    async def one(self, c):
        task = asyncio.ensure_future(self.client(c))
        try:
            await asyncio.wait_for(asyncio.shield(task), self.args.drain)
        except asyncio.TimeoutError:
            self.fail(f"client {c.id} ({c.fault}) did not finish within "
                      f"{self.args.drain} s: {c.acked} of {c.total} bytes "
                      "accepted" + ("\n" + self.dump(c)
                                    if os.environ.get("SOAK_DEBUG") else ""))
            task.cancel()
        except Violation as v:
            self.fail(str(v))
        except Exception as exc:  # noqa: BLE001 - before the server saw it
            self.fail(f"client {c.id}: {type(exc).__name__}: {exc}")
        finally:
            c.client_done = True
            if c.server_done:
                self.clients.pop(c.id, None)

    async def run(self):
        a = self.args
        server = await retls.aio.start_server(
            self.serve, "127.0.0.1", 0, ctx=self.server_ctx, backlog=4096)
        self.port = server.sockets[0].getsockname()[1]
        # One connection first: the loop opens descriptors of its own on
        # first use (uvloop), which are not the connections' to give back.
        warm = Client(self.next_id, random.Random(0))
        warm.total, warm.abort_at = 1, None
        self.next_id += 1
        self.clients[warm.id] = warm
        await self.one(warm)
        await asyncio.sleep(0.2)   # its sockets' last callbacks
        base_fds = open_fds()
        t0 = time.monotonic()
        deadline = t0 + a.duration
        tasks = set()
        rss_base = None
        last = t0
        while self.violation is None:
            now = time.monotonic()
            while now < deadline and len(tasks) < a.connections:
                c = Client(self.next_id, self.rng)
                self.next_id += 1
                self.clients[c.id] = c
                t = asyncio.ensure_future(self.one(c))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
            if rss_base is None and self.next_id > 2 * a.connections:
                gc.collect()
                rss_base = rss_kib()
            if now >= deadline and not tasks:
                break
            await asyncio.sleep(0.05)
            if a.progress and now - last > 30:
                last = now
                print(f"[{now - t0:6.0f}s] active {len(tasks)}, started "
                      f"{self.next_id}, verified "
                      f"{self.stats['bytes_verified'] / 2**20:.0f} MiB, "
                      f"rss {rss_kib() // 1024} MiB", flush=True)
        for t in list(tasks):
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        server.close()
        await server.wait_closed()
        # Server handlers still closing: give them a moment, then count.
        for _ in range(100):
            if len(asyncio.all_tasks()) <= 1:
                break
            await asyncio.sleep(0.05)
        left = len(asyncio.all_tasks()) - 1
        elapsed = time.monotonic() - t0
        gc.collect()
        return (elapsed, base_fds, open_fds(), rss_base or rss_kib(),
                rss_kib(), left)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=60,
                    help="seconds to keep opening connections (default 60)")
    ap.add_argument("--connections", type=int, default=1000,
                    help="concurrent connections (default 1000)")
    ap.add_argument("--drain", type=float, default=300,
                    help="seconds one connection may take at most")
    ap.add_argument("--loop", choices=("asyncio", "uvloop"),
                    default="asyncio")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--client-rekey", type=float, default=CLIENT_REKEY,
                    help="chance per write that a client rekeys itself")
    ap.add_argument("--behaviours", default=",".join(b for b, _ in BEHAVIOURS),
                    help="the server behaviours to play (comma-separated; "
                    "default all)")
    ap.add_argument("--progress", action="store_true",
                    help="a line every 30 s")
    args = ap.parse_args()
    args.behaviours = args.behaviours.split(",")
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * args.connections + 64
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, need), hard))
    if args.loop == "uvloop":
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    soak = Soak(args)
    elapsed, fd0, fd1, rss0, rss1, left = asyncio.run(soak.run())
    s = soak.stats
    print(f"retls.aio soak: {retls.__version__}, {retls.OPENSSL_VERSION}, "
          f"Python {sys.version.split()[0]}, {args.loop} loop, seed "
          f"{args.seed}")
    print(f"{args.duration:.0f} s of new connections, {elapsed:.0f} s with "
          f"the drain; {args.connections} concurrent connections (TLS 1.2 "
          "and 1.3, retls.aio streams, one process)")
    print(f"connections handled: {s['clean'] + s['faulted']} "
          f"({s['clean']} clean, {s['faulted']} ended by an injected fault)")
    print(f"bytes verified: {s['bytes_verified']} "
          f"({s['bytes_verified'] / 2**30:.2f} GiB, each byte checked once "
          "and in order at the server)")
    print(f"writes {s['writes']}: drain awaited, cancelled "
          f"{s['drain cancelled']}, timed out {s['drain timed out']}, "
          f"skipped {s['no drain']}")
    print("peer behaviours: " + ", ".join(
        f"{k[10:]} {v}" for k, v in sorted(s.items())
        if k.startswith("behaviour ")))
    print("faults injected: " + ", ".join(
        f"{k} {v}" for k, v in sorted(soak.faults.items())))
    print("errors by type:")
    for k, v in sorted(soak.errors.items(), key=lambda kv: -kv[1]):
        print(f"  {v:6d}  {k}")
    print(f"file descriptors: {fd0} before, {fd1} after; tasks left: {left}")
    print(f"RSS: {rss0 // 1024} MiB after the first wave, {rss1 // 1024} "
          "MiB at the end")
    failed = soak.violation
    if failed is None and fd1 > fd0:
        failed = f"file descriptors leaked: {fd0} -> {fd1}"
    if failed is None and left:
        failed = f"{left} tasks left running"
    if failed is None and rss1 > rss0 + max(64 * 1024, rss0 // 4):
        failed = f"RSS grew: {rss0} KiB -> {rss1} KiB"
    if failed:
        print(f"FAILED: {failed}")
        return 1
    print("OK: no violation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
