"""retls.aio: asyncio TLS streams and transports, on asyncio's loop and on
uvloop (every test runs on both).

Real peers on 127.0.0.1: `openssl s_server`, asyncio's own TLS server
(asyncio.start_server(ssl=...)) and a retls.aio server.  Exactly-once is
checked with SHA-256 (or the exact bytes) at the peer; every wait is
bounded by the runner's deadline.
"""
import asyncio
import hashlib
import logging
import os
import random
import resource
import socket
import ssl

import pytest
import uvloop

import retls
import retls.aio as aio

from helpers import HOST, pattern

DEADLINE = 60.0
MiB = 1 << 20


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request):
    """run(coroutine): on a fresh loop of the parametrized kind, bounded."""
    factory = (uvloop.new_event_loop if request.param == "uvloop"
               else asyncio.new_event_loop)

    def runner(coro):
        with asyncio.Runner(loop_factory=factory) as r:
            return r.run(asyncio.wait_for(coro, DEADLINE))
    return runner


def cctx(pki, **kw):
    return retls.Context("client", cafile=pki.ca, **kw)


def sctx(pki, **kw):
    return retls.Context("server", certfile=pki.server_cert,
                         keyfile=pki.server_key, **kw)


def chunks(data, seed=0, most=64 * 1024):
    """data cut in random sizes (1 byte .. most)."""
    rnd, i = random.Random(seed), 0
    while i < len(data):
        n = rnd.randint(1, most)
        yield data[i:i + n]
        i += n


def sha(data):
    return hashlib.sha256(data).hexdigest()


async def read_all(reader, n=None):
    """Everything until EOF (or n bytes), as a SHA-256 digest and a length."""
    h, total = hashlib.sha256(), 0
    while n is None or total < n:
        d = await reader.read(1 << 16)
        if not d:
            break
        h.update(d)
        total += len(d)
    return h.hexdigest(), total


async def echo_handler(reader, writer):
    try:
        while True:
            d = await reader.read(1 << 16)
            if not d:
                break
            writer.write(d)
            await writer.drain()
    except (ConnectionError, retls.Error):
        pass           # a client that went away: the tests check their end
    finally:
        writer.close()


async def retls_echo_server(pki, backlog=100, **kw):
    srv = await aio.start_server(echo_handler, HOST, 0, ctx=sctx(pki, **kw),
                                 backlog=backlog)
    return srv, srv.sockets[0].getsockname()[1]


def port_of(srv):
    return srv.sockets[0].getsockname()[1]


async def exchange(reader, writer, data, seed=1):
    """Send data in random chunks while reading the echo concurrently;
    returns the echo's digest and length."""
    async def send():
        for c in chunks(data, seed):
            writer.write(c)
            await writer.drain()
    sender = asyncio.ensure_future(send())
    echoed = await read_all(reader, len(data))
    await sender
    return echoed


# ---- 16 MiB each way, SHA-256 at both ends -----------------------------------

def test_16mib_each_way_retls_server(pki, run):
    data = pattern(16 * MiB, 1)

    async def main():
        srv, port = await retls_echo_server(pki)
        async with srv:
            r, w = await aio.open_connection(HOST, port, ctx=cctx(pki),
                                             server_hostname="localhost")
            assert await exchange(r, w, data) == (sha(data), len(data))
            w.close()
            await w.wait_closed()
            st = w.get_extra_info("retls").stats
            assert st["bytes_written"] == len(data) == st["bytes_read"]
            assert st["mismatches"] == 0
    run(main())


def test_16mib_each_way_asyncio_tls_server(pki, run):
    """A retls.aio client against asyncio's own TLS server, and an asyncio
    TLS client against a retls.aio server."""
    data = pattern(16 * MiB, 2)
    ssl_server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ssl_server.load_cert_chain(pki.server_cert, pki.server_key)
    ssl_client = ssl.create_default_context(cafile=pki.ca)

    async def main():
        srv = await asyncio.start_server(echo_handler, HOST, 0, ssl=ssl_server)
        async with srv:
            r, w = await aio.open_connection(HOST, port_of(srv), ctx=cctx(pki),
                                             server_hostname="localhost")
            assert await exchange(r, w, data) == (sha(data), len(data))
            w.close()
            await w.wait_closed()
        srv, port = await retls_echo_server(pki)
        async with srv:
            r, w = await asyncio.open_connection(HOST, port, ssl=ssl_client,
                                                 server_hostname="localhost")
            assert await exchange(r, w, data, 3) == (sha(data), len(data))
            w.close()
            await w.wait_closed()
    run(main())


def test_16mib_each_way_s_server(pki, s_server, run):
    """To s_server (its stdout shows what arrived) and from it (what we
    write to its stdin it sends; digits only, so no line is a command)."""
    up = pattern(16 * MiB, 4)
    down = bytes(random.Random(5).choices(b"0123456789", k=16 * MiB))
    srv = s_server("-tls1_3")

    async def main():
        r, w = await aio.open_connection(HOST, srv.port, ctx=cctx(pki),
                                         server_hostname="localhost")
        assert w.get_extra_info("version") == "TLSv1.3"
        feeder = asyncio.get_running_loop().run_in_executor(
            None, srv.send_command, down)

        async def send():
            for c in chunks(up, 6):
                w.write(c)
                await w.drain()
        sender = asyncio.ensure_future(send())
        got = await read_all(r, len(down))
        await sender
        await feeder
        w.close()
        await w.wait_closed()
        return got
    assert run(main()) == (sha(down), len(down))
    assert sha(srv.finish()) == sha(up)


# ---- exactly once: cancellation, renegotiation, KeyUpdate, mutation ---------

class DigestServer:
    """A retls.aio server that reads each connection until EOF and records
    (sha256, length) of what arrived; gate (an asyncio.Event) holds its
    reading back until set."""

    def __init__(self, pki, gate=None, **ctx_kw):
        self.pki, self.gate, self.ctx_kw = pki, gate, ctx_kw
        self.results = asyncio.Queue()

    async def handler(self, reader, writer):
        if self.gate is not None:
            await self.gate.wait()
        try:
            got = await read_all(reader)
        except Exception as exc:   # noqa: BLE001 - reported to the test
            got = exc
        await self.results.put(got)
        writer.close()

    async def __aenter__(self):
        self.srv = await aio.start_server(self.handler, HOST, 0,
                                          ctx=sctx(self.pki, **self.ctx_kw))
        self.port = port_of(self.srv)
        return self

    async def __aexit__(self, *exc):
        self.srv.close()
        await self.srv.wait_closed()

    async def result(self):
        return await asyncio.wait_for(self.results.get(), DEADLINE)


async def cancel_soon(aw, turns):
    """Start aw as a task and cancel it after `turns` loop turns."""
    task = asyncio.ensure_future(aw)
    for _ in range(turns):
        await asyncio.sleep(0)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except asyncio.TimeoutError:
        pass


@pytest.mark.parametrize("how", ["drain-cancelled", "wait_for-timeout",
                                 "task-cancelled"])
def test_accepted_bytes_survive_cancellation(pki, run, how):
    data = pattern(8 * MiB, 7)
    pieces = list(chunks(data, 8, most=256 * 1024))
    rnd = random.Random(9)

    async def main():
        async with DigestServer(pki) as srv:
            r, w = await aio.open_connection(HOST, srv.port, ctx=cctx(pki),
                                             server_hostname="localhost")
            accepted = []
            if how == "task-cancelled":
                todo = list(pieces)

                async def writer_task():
                    while todo:
                        w.write(todo[0])
                        accepted.append(todo.pop(0))
                        await w.drain()
                while todo:
                    await cancel_soon(writer_task(), rnd.randint(0, 5))
            else:
                for p in pieces:
                    w.write(p)
                    accepted.append(p)
                    if how == "drain-cancelled":
                        await cancel_soon(w.drain(), rnd.randint(0, 3))
                    else:
                        try:
                            await asyncio.wait_for(w.drain(), 0.0005)
                        except asyncio.TimeoutError:
                            pass
            w.close()
            await w.wait_closed()
            sent = b"".join(accepted)
            assert sent == data
            assert await srv.result() == (sha(sent), len(sent))
    run(main())


def test_cancelled_inside_a_pending_write_renegotiation(pki, run):
    """TLS 1.2: renegotiate() makes the next write wait (WantRead) for the
    server's answer: the SSL_write is pending inside retls.  drain() tasks
    cancelled then, and writes queued behind it, all arrive once."""
    data = pattern(4 * MiB, 10)
    pieces = list(chunks(data, 11, most=128 * 1024))

    async def main():
        async with DigestServer(pki) as srv:
            r, w = await aio.open_connection(
                HOST, srv.port, ctx=cctx(pki, max_version="TLSv1.2"),
                server_hostname="localhost")
            conn = w.get_extra_info("retls")
            assert conn.version == "TLSv1.2"
            seen_pending = 0
            for i, p in enumerate(pieces):
                if i % 7 == 3:
                    conn.renegotiate()
                w.write(p)
                if conn.pending_write:
                    seen_pending += 1
                    # the transport counts the pending bytes
                    assert w.transport.get_write_buffer_size() >= len(p)
                    w.write(b"")                  # a no-op, even now
                await cancel_soon(w.drain(), i % 3)
            assert seen_pending >= 3
            w.close()
            await w.wait_closed()
            assert conn.stats["want_read"] >= 3     # one per renegotiation at least
            assert conn.stats["mismatches"] == 0
            assert await srv.result() == (sha(data), len(data))
    run(main())


@pytest.mark.parametrize("event", ["s_server-renegotiates", "s_server-key-update",
                                   "client-key-update"])
def test_rekeying_mid_write_against_s_server(pki, s_server, run, event):
    """The peer renegotiates (TLS 1.2) or sends KeyUpdates asking for one
    back (TLS 1.3) while the client writes and cancels drains, or the
    client sends KeyUpdates itself: s_server gets every byte once."""
    version = "-tls1_2" if event == "s_server-renegotiates" else "-tls1_3"
    srv = s_server(version)
    data = pattern(6 * MiB, 12)
    pieces = list(chunks(data, 13, most=128 * 1024))
    rnd = random.Random(14)

    async def main():
        r, w = await aio.open_connection(HOST, srv.port, ctx=cctx(pki),
                                         server_hostname="localhost")
        conn = w.get_extra_info("retls")
        loop = asyncio.get_running_loop()
        for i, p in enumerate(pieces):
            if i % 10 == 5:
                if event == "client-key-update":
                    conn.key_update(True)
                else:
                    await loop.run_in_executor(
                        None, srv.send_command,
                        b"r\n" if event == "s_server-renegotiates" else b"K\n")
            w.write(p)
            await cancel_soon(w.drain(), rnd.randint(0, 4))
        await w.drain()
        w.close()
        await w.wait_closed()
        return conn.stats
    st = run(main())
    assert sha(srv.finish()) == sha(data)
    assert st["mismatches"] == 0 and st["bytes_written"] == len(data)


def test_buffer_mutated_after_write(pki, run):
    """write() copies or encrypts at once: a bytearray changed right after
    write() returns - also while the peer is not reading, and while a
    write is pending in a renegotiation - changes nothing that is sent."""
    async def main():
        gate = asyncio.Event()
        async with DigestServer(pki, gate, max_version="TLSv1.2") as srv:
            r, w = await aio.open_connection(HOST, srv.port, ctx=cctx(pki),
                                             server_hostname="localhost")
            conn = w.get_extra_info("retls")
            expect = bytearray()
            buf = bytearray(256 * 1024)
            for i in range(24):                   # 6 MiB: backed up
                buf[:] = pattern(len(buf), 100 + i)
                if i == 5:
                    conn.renegotiate()
                w.write(buf)
                expect += buf
                if i == 5:
                    assert conn.pending_write == len(buf)
                buf[:] = b"\xff" * len(buf)          # after write() returned
                view = memoryview(buf)[:1000]
                w.write(view)                         # a memoryview too
                expect += view
                view[:] = b"\0" * 1000
                view.release()
            assert w.transport.get_write_buffer_size() > 4 * MiB
            gate.set()
            w.close()
            await w.wait_closed()
            assert await srv.result() == (sha(bytes(expect)), len(expect))
    run(main())


# ---- backpressure ------------------------------------------------------------

class Recorder(asyncio.Protocol):
    """Records the protocol events in order, and the bytes received."""

    def __init__(self):
        self.events, self.data = [], bytearray()
        self.lost = asyncio.get_running_loop().create_future()
        self.resumed = asyncio.Event()

    def connection_made(self, transport):
        self.events.append("made")

    def data_received(self, data):
        if self.events[-1] != "data":
            self.events.append("data")
        self.data += data

    def eof_received(self):
        self.events.append("eof")

    def pause_writing(self):
        self.events.append("pause")

    def resume_writing(self):
        self.events.append("resume")
        self.resumed.set()

    def connection_lost(self, exc):
        self.events.append("lost")
        self.lost.set_result(exc)


def test_backpressure_peer_stops_reading(pki, run):
    """The peer does not read: pause_writing() once the buffer passes the
    high-water mark (the buffer then holds at most that plus one write),
    drain() blocks, and both resume when the peer reads."""
    async def main():
        gate = asyncio.Event()
        async with DigestServer(pki, gate) as srv:
            tr, proto = await aio.create_connection(
                Recorder, HOST, srv.port, ctx=cctx(pki),
                server_hostname="localhost")
            low, high = tr.get_write_buffer_limits()
            assert (low, high) == (128 * 1024, 512 * 1024)
            piece = pattern(64 * 1024, 15)
            sent = 0
            while "pause" not in proto.events:
                tr.write(piece)
                sent += len(piece)
                assert sent < 64 * MiB, "never paused"
                await asyncio.sleep(0)
            # bounded: what is buffered is the high-water mark plus at most
            # one write (and its TLS overhead)
            assert high < tr.get_write_buffer_size() <= high + 2 * len(piece)
            for _ in range(50):                  # nothing drains it
                await asyncio.sleep(0)
            assert proto.events == ["made", "pause"]
            gate.set()
            await asyncio.wait_for(proto.resumed.wait(), DEADLINE)
            assert tr.get_write_buffer_size() <= low
            tr.close()
            assert await proto.lost is None
            assert proto.events == ["made", "pause", "resume", "lost"]
            assert await srv.result() == (sha(piece * (sent // len(piece))),
                                          sent)
    run(main())


def test_drain_blocks_until_the_peer_reads(pki, run):
    async def main():
        gate = asyncio.Event()
        async with DigestServer(pki, gate) as srv:
            r, w = await aio.open_connection(HOST, srv.port, ctx=cctx(pki),
                                             server_hostname="localhost")
            data = pattern(8 * MiB, 16)
            w.write(data)
            drain = asyncio.ensure_future(w.drain())
            done, _ = await asyncio.wait({drain}, timeout=0.3)
            assert not done                      # blocked: nobody reads
            gate.set()
            await drain
            w.close()
            await w.wait_closed()
            assert await srv.result() == (sha(data), len(data))
    run(main())


# ---- STARTTLS ----------------------------------------------------------------

@pytest.mark.parametrize("eager", [False, True], ids=["wait-for-ok", "eager"])
def test_starttls_upgrade(pki, run, eager):
    """A plain asyncio connection upgraded on both sides with
    retls.aio.start_tls.  eager: the client starts TLS right behind its
    STARTTLS line without waiting for an answer, so its ClientHello sits
    in the server's reader buffer behind the line, and start_tls must take
    it from there."""
    data = pattern(2 * MiB, 17)

    async def server(reader, writer):
        if eager:
            # the line and the ClientHello both arrive before we read
            while len(getattr(reader, "_buffer")) <= len(b"STARTTLS\r\n"):
                await asyncio.sleep(0.01)
        assert await reader.readline() == b"STARTTLS\r\n"
        if not eager:
            writer.write(b"220 go ahead\r\n")
        r, w = await aio.start_tls(reader, writer, sctx(pki),
                                   server_side=True)
        assert w.get_extra_info("version") in ("TLSv1.2", "TLSv1.3")
        await echo_handler(r, w)

    async def main():
        srv = await asyncio.start_server(server, HOST, 0)
        async with srv:
            reader, writer = await asyncio.open_connection(HOST, port_of(srv))
            writer.write(b"STARTTLS\r\n")
            if not eager:
                assert await reader.readline() == b"220 go ahead\r\n"
            r, w = await aio.start_tls(reader, writer, cctx(pki),
                                       server_hostname="localhost")
            assert await exchange(r, w, data) == (sha(data), len(data))
            w.close()
            await w.wait_closed()
    run(main())


# ---- many connections ----------------------------------------------------------

def test_1000_concurrent_connections(pki, run):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))

    async def one(port, ctx, i):
        r, w = await aio.open_connection(HOST, port, ctx=ctx,
                                         server_hostname="localhost")
        msg = pattern(1000 + i, i)
        w.write(msg)
        got = await r.readexactly(len(msg))
        w.close()
        await w.wait_closed()
        return got == msg

    async def main():
        # a backlog for all of them: no SYN waits for a retransmission
        srv, port = await retls_echo_server(pki, backlog=1024)
        ctx = cctx(pki)
        async with srv:
            ok = await asyncio.gather(*(one(port, ctx, i)
                                        for i in range(1000)))
        assert ok.count(True) == 1000
    try:
        run(main())
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# ---- handshake timeout, misbehaving clients ------------------------------------

def test_handshake_timeout_leaves_nothing_behind(pki, run):
    """A server that accepts and never answers: TimeoutError (retls's,
    also the builtin), the socket closed (the server sees the end), and
    no task left over."""
    async def main():
        ended = asyncio.Event()

        async def silent(reader, writer):
            await reader.read()           # the ClientHello, then the end
            ended.set()
            writer.close()
        srv = await asyncio.start_server(silent, HOST, 0)
        async with srv:
            before = asyncio.all_tasks()
            with pytest.raises(retls.TimeoutError) as err:
                await aio.open_connection(HOST, port_of(srv), ctx=cctx(pki),
                                          server_hostname="localhost",
                                          handshake_timeout=0.2)
            assert isinstance(err.value, TimeoutError)
            assert "handshake_timeout" in str(err.value)
            await asyncio.wait_for(ended.wait(), DEADLINE)
            left = asyncio.all_tasks() - before
            assert all("silent" in repr(t) for t in left), left
    run(main())


def test_server_survives_misbehaving_clients(pki, run, caplog):
    """Garbage, a truncated record, a reset and a slowloris handshake each
    get closed (and logged); a well-behaved client is served meanwhile and
    afterwards.  (The handshake timeout leaves a loaded machine's real
    handshakes time to finish.)"""
    caplog.set_level(logging.INFO, logger="retls.aio")

    async def raw(port, payload=b"", reset=False, read=True):
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(payload)
        if reset:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                            b"\1\0\0\0\0\0\0\0")
            writer.transport.abort()
            return b""
        got = await reader.read() if read else b""
        writer.close()
        return got

    async def truncated(port):
        # a real handshake (retls in memory mode over a plain stream), then
        # half a record and the end of the stream
        reader, writer = await asyncio.open_connection(HOST, port)
        conn = retls.Connection(cctx(pki), None, server_hostname="localhost")
        while True:
            try:
                conn.do_handshake()
                break
            except retls.WantRead:
                writer.write(conn.bio_read())
                conn.bio_write(await reader.read(1 << 16))
        writer.write(conn.bio_read())
        conn.write(b"x" * 1000)
        record = conn.bio_read()
        writer.write(record[:len(record) // 2])
        writer.write_eof()
        await reader.read()                  # the server closes
        writer.close()
        return b""

    async def good(port):
        r, w = await aio.open_connection(HOST, port, ctx=cctx(pki),
                                         server_hostname="localhost")
        msg = pattern(100_000, 18)
        got = await exchange(r, w, msg)
        w.close()
        await w.wait_closed()
        return got == (sha(msg), len(msg))

    async def main():
        srv = await aio.start_server(echo_handler, HOST, 0, ctx=sctx(pki),
                                     handshake_timeout=1.5)
        port = port_of(srv)
        async with srv:
            results = await asyncio.gather(
                raw(port, b"GET / HTTP/1.0\r\n\r\n" * 10),   # garbage
                raw(port, b"\x16\x03\x01\x02\x00\x01"),     # half a hello
                raw(port, pattern(5000, 19), reset=True),    # RST
                raw(port),                                   # slowloris
                truncated(port),
                good(port))
            assert results[-1] is True
            assert await good(port) is True
            assert results[3] == b""          # slowloris: closed on us
    run(main())
    text = caplog.text
    assert "SSLError: handshake: http request" in text          # garbage
    assert "SSLError: handshake: wrong version number" in text  # half a hello
    assert "TimeoutError: handshake: not finished" in text      # slowloris
    assert "TLS connection from" in text and "EOFError" in text  # truncated


# ---- errors with their exact types ---------------------------------------------

@pytest.mark.parametrize("case", ["unknown-ca", "wrong-host", "version",
                                  "default-ctx"])
def test_handshake_errors_are_retls_exceptions(pki, run, case):
    async def main():
        server_kw = {"min_version": "TLSv1.3"} if case == "version" else {}
        srv = await aio.start_server(echo_handler, HOST, 0,
                                     ctx=sctx(pki, **server_kw))
        async with srv:
            ctx = {"unknown-ca": retls.Context("client", cafile=pki.other_ca),
                   "wrong-host": cctx(pki),
                   "version": cctx(pki, max_version="TLSv1.2"),
                   # ctx=None: a verifying client context (system CAs,
                   # which do not know the test CA)
                   "default-ctx": None}[case]
            name = "wrong.example" if case == "wrong-host" else "localhost"
            before = asyncio.all_tasks()
            with pytest.raises(retls.Error) as err:
                await aio.open_connection(HOST, port_of(srv), ctx=ctx,
                                          server_hostname=name)
            assert asyncio.all_tasks() - before == set()
            return err.value
    exc = run(main())
    expected = retls.SSLError if case == "version" else retls.VerifyError
    assert type(exc) is expected, repr(exc)
    if case == "wrong-host":
        assert "hostname" in str(exc)


def test_peer_vanishing_without_close_notify_is_eoferror(pki, s_server, run):
    srv = s_server("-tls1_3")

    async def main():
        r, w = await aio.open_connection(HOST, srv.port, ctx=cctx(pki),
                                         server_hostname="localhost")
        await asyncio.get_running_loop().run_in_executor(
            None, srv.send_command, b"last words\n")
        assert await r.readexactly(11) == b"last words\n"
        srv.proc.kill()                     # TCP ends, no close_notify
        with pytest.raises(retls.EOFError) as err:
            await r.read()
        assert isinstance(err.value, EOFError)
        assert "close_notify" in str(err.value)
        with pytest.raises(retls.EOFError):
            await w.wait_closed()
    run(main())


def test_peer_close_notify_is_eof(pki, run):
    async def server(reader, writer):
        writer.write(b"bye")
        writer.close()                      # close_notify after the bytes

    async def main():
        srv = await aio.start_server(server, HOST, 0, ctx=sctx(pki))
        async with srv:
            tr, proto = await aio.create_connection(
                Recorder, HOST, port_of(srv), ctx=cctx(pki),
                server_hostname="localhost")
            assert await proto.lost is None
            assert bytes(proto.data) == b"bye"
            assert proto.events == ["made", "data", "eof", "lost"]
            r, w = await aio.open_connection(HOST, port_of(srv), ctx=cctx(pki),
                                             server_hostname="localhost")
            assert await r.read() == b"bye"
            assert r.at_eof() and await r.read() == b""
            w.close()
            await w.wait_closed()
    run(main())


def test_close_while_our_renegotiation_is_unanswered(pki, run):
    """TLS 1.2, found by scripts/soak_aio.py: the server asks for a
    renegotiation, the client sends its last bytes and close_notify before
    reading the request.  OpenSSL cannot send the server's close_notify
    inside the renegotiation, and the client, closing, will never answer
    it: both ends used to wait SHUTDOWN_TIMEOUT (30 s) and fail with
    retls.TimeoutError.  Now the server ends with a FIN at once, and both
    close cleanly with every byte delivered."""
    got = bytearray()
    done = []

    async def server(reader, writer):
        got.extend(await reader.readexactly(1))
        writer.get_extra_info("retls").renegotiate()
        while data := await reader.read(100):
            got.extend(data)
        writer.close()
        await writer.wait_closed()       # no TimeoutError
        done.append(True)

    async def main():
        srv = await aio.start_server(server, HOST, 0,
                                     ctx=sctx(pki, max_version="TLSv1.2"))
        async with srv:
            r, w = await aio.open_connection(
                HOST, port_of(srv), ctx=cctx(pki, max_version="TLSv1.2"),
                server_hostname="localhost")
            w.write(b"a")
            await w.drain()
            # The server's HelloRequest goes out with its next read: the
            # next bytes from us.  We close in the same turn as we write
            # them, so our close_notify is on its way before it arrives.
            await asyncio.sleep(0.1)
            w.write(b"b")
            w.close()
            await asyncio.wait_for(w.wait_closed(), 20)
            while not done:
                await asyncio.sleep(0.01)   # run()'s DEADLINE bounds it
        assert bytes(got) == b"ab"
    run(main())


@pytest.mark.parametrize("rekey", ["renegotiate", "key_update"])
def test_close_right_after_asking_for_a_rekey(pki, run, rekey):
    """Found by scripts/soak_aio.py: renegotiate() (TLS 1.2) or
    key_update() (TLS 1.3) and then close() with no write in between.
    The rekey only starts with the next read, write or handshake: close()
    used to wait 30 s (renegotiation: shutdown refused while pending) or
    fail with SSLError "shutdown while in init" (KeyUpdate).  Now close()
    sends it, then close_notify; every byte arrives."""
    version = "TLSv1.2" if rekey == "renegotiate" else "TLSv1.3"
    got = bytearray()
    done = []

    async def server(reader, writer):
        while data := await reader.read(1 << 16):
            got.extend(data)
        writer.close()
        await writer.wait_closed()
        done.append(True)

    async def main():
        srv = await aio.start_server(server, HOST, 0, ctx=sctx(pki))
        async with srv:
            r, w = await aio.open_connection(
                HOST, port_of(srv),
                ctx=cctx(pki, min_version=version, max_version=version),
                server_hostname="localhost")
            conn = w.get_extra_info("retls")
            w.write(b"before")
            await w.drain()
            getattr(conn, rekey)()
            w.close()
            await asyncio.wait_for(w.wait_closed(), 20)
            while not done:
                await asyncio.sleep(0.01)   # run()'s DEADLINE bounds it
        assert bytes(got) == b"before"
    run(main())


def test_writes_stranded_by_peer_close_notify_fail_at_once(pki, run):
    """TLS 1.2: our write waits (pending inside retls) for the answer to a
    renegotiation we started, and the peer sends close_notify instead of
    answering.  Those bytes can never go out: the writer learns it at once
    (retls.Closed naming the renegotiation), not from a 30 s close
    timeout, and nothing else was sent."""
    import select
    import threading

    lsock = socket.create_server((HOST, 0))
    port = lsock.getsockname()[1]
    seen = {}

    def server():
        # The synchronous API in a thread: it sends close_notify without
        # ever reading the client's renegotiation ClientHello.
        s, _ = lsock.accept()
        with s:
            s.setblocking(True)
            conn = retls.Connection(sctx(pki, max_version="TLSv1.2"), s)
            conn.do_handshake()
            seen["first"] = conn.read(100)
            # The ClientHello of the renegotiation is waiting, unread.
            select.select([s], [], [], 20)
            conn.shutdown()                 # our close_notify first
            s.shutdown(socket.SHUT_WR)
            rest = b""
            while True:                     # what else arrives (raw)
                d = s.recv(65536)
                if not d:
                    break
                rest += d
            seen["raw_after"] = len(rest)
            conn.close(discard=True)

    t = threading.Thread(target=server)
    t.start()

    async def main():
        r, w = await aio.open_connection(
            HOST, port, ctx=cctx(pki, max_version="TLSv1.2"),
            server_hostname="localhost")
        conn = w.get_extra_info("retls")
        w.write(b"first")
        await w.drain()
        await asyncio.sleep(0.1)            # the server has read it
        conn.renegotiate()
        w.write(b"stranded")                # waits for the ServerHello
        assert conn.pending_write == len(b"stranded")
        with pytest.raises(retls.Closed, match="renegotiation"):
            await asyncio.wait_for(r.read(), 20)
        assert w.transport.is_closing()
        with pytest.raises(retls.Closed):
            w.write(b"more")
    try:
        run(main())
    finally:
        t.join(30)
        lsock.close()
    assert seen["first"] == b"first"


def test_close_flushes_and_abort_drops(pki, run):
    async def main():
        async with DigestServer(pki) as srv:
            data = pattern(4 * MiB, 20)
            r, w = await aio.open_connection(HOST, srv.port, ctx=cctx(pki),
                                             server_hostname="localhost")
            w.write(data)                    # no drain: close() flushes
            w.close()
            assert w.is_closing()
            with pytest.raises(retls.Closed):
                w.write(b"after close")
            await w.wait_closed()
            assert await srv.result() == (sha(data), len(data))
            # abort: the bytes not sent yet are dropped and no close_notify
            # goes out: the server's reader fails (EOF without close_notify,
            # or a reset, as the unread session tickets make the kernel
            # answer with RST)
            r, w = await aio.open_connection(HOST, srv.port, ctx=cctx(pki),
                                             server_hostname="localhost")
            w.write(data)
            w.transport.abort()
            await w.wait_closed()
            assert isinstance(await srv.result(),
                              (retls.EOFError, ConnectionResetError))
    run(main())


def test_bad_arguments(pki, run):
    async def main():
        with pytest.raises(TypeError, match="retls.Context"):
            await aio.open_connection(HOST, 1, ctx=ssl.create_default_context())
        with pytest.raises(retls.ArgumentError, match="server context"):
            await aio.open_connection(HOST, 1, ctx=sctx(pki))
        with pytest.raises(retls.ArgumentError, match="client context"):
            await aio.start_server(echo_handler, HOST, 0, ctx=cctx(pki))
        with pytest.raises(ValueError, match="handshake_timeout"):
            await aio.open_connection(HOST, 1, ctx=cctx(pki),
                                      handshake_timeout=0)
        with pytest.raises(TypeError, match="handshake_timeout"):
            await aio.open_connection(HOST, 1, ctx=cctx(pki),
                                      handshake_timeout="5")
    run(main())


# ---- the transport's API -------------------------------------------------------

def test_transport_api_and_extra_info(pki, run):
    async def main():
        srv, port = await retls_echo_server(pki, alpn=["h2", "http/1.1"])
        async with srv:
            tr, proto = await aio.create_connection(
                Recorder, HOST, port, ctx=cctx(pki, alpn=["http/1.1"]),
                server_hostname="localhost")
            assert isinstance(tr, asyncio.Transport)
            assert isinstance(tr.get_extra_info("retls"), retls.Connection)
            assert tr.get_extra_info("version") == "TLSv1.3"
            assert tr.get_extra_info("cipher")
            assert tr.get_extra_info("alpn_protocol") == "http/1.1"
            der = tr.get_extra_info("peer_certificate")
            with open(pki.server_cert) as f:
                pem = f.read()
            assert der == ssl.PEM_cert_to_DER_cert(pem)
            assert tr.get_extra_info("peername")[1] == port
            assert tr.get_extra_info("sockname")[0] == HOST
            assert tr.get_extra_info("socket") is not None
            assert tr.get_extra_info("nonsense", 42) == 42
            assert tr.can_write_eof() is False
            with pytest.raises(NotImplementedError):
                tr.write_eof()
            tr.set_write_buffer_limits(high=1000)
            assert tr.get_write_buffer_limits() == (250, 1000)
            with pytest.raises(ValueError):
                tr.set_write_buffer_limits(high=10, low=20)
            assert tr.is_reading()
            tr.pause_reading()
            assert not tr.is_reading()
            tr.write(b"ping")
            tr.writelines([b"-", bytearray(b"pong")])
            for _ in range(20):
                await asyncio.sleep(0.01)
            assert proto.data == b""          # paused: nothing delivered
            tr.resume_reading()
            while len(proto.data) < 9:
                await asyncio.sleep(0.01)
            assert bytes(proto.data) == b"ping-pong"
            tr.close()
            assert tr.is_closing()
            assert await proto.lost is None
            assert tr.get_extra_info("version") == "TLSv1.3"   # kept
    run(main())


def test_half_close_after_peer_close_notify(pki, run):
    """A peer that sends close_notify first and keeps reading (a blocking
    retls server in a thread): a protocol whose eof_received() returns
    True may still write, and close() then ends the connection cleanly."""
    import threading
    lsock = socket.create_server((HOST, 0))
    port = lsock.getsockname()[1]
    got = {}

    def peer():
        sock, _ = lsock.accept()
        with sock, retls.Connection(sctx(pki), sock) as conn:
            conn.do_handshake()
            conn.shutdown()                       # our close_notify first
            data = bytearray()
            try:
                while True:
                    data += conn.read()
            except retls.ZeroReturn:
                got["data"] = bytes(data)

    class HalfClose(Recorder):
        def eof_received(self):
            super().eof_received()
            self.transport.write(b"after your close_notify")
            self.transport.close()
            return True

        def connection_made(self, transport):
            super().connection_made(transport)
            self.transport = transport

    async def main():
        thread = threading.Thread(target=peer)
        thread.start()
        tr, proto = await aio.create_connection(
            HalfClose, HOST, port, ctx=cctx(pki), server_hostname="localhost")
        assert await proto.lost is None
        await asyncio.get_running_loop().run_in_executor(None, thread.join,
                                                         DEADLINE)
        assert proto.events == ["made", "eof", "lost"]
    try:
        run(main())
    finally:
        lsock.close()
    assert got["data"] == b"after your close_notify"


def test_reading_pauses_at_the_stream_readers_limit(pki, run):
    """A server floods a client whose StreamReader has a small limit and
    who does not read: the reader pauses the TLS transport (the bytes
    wait in the kernel and the connection, not in Python), and every byte
    arrives once reading resumes."""
    data = pattern(8 * MiB, 21)

    async def flood(reader, writer):
        writer.write(data)
        await writer.drain()
        writer.close()

    async def main():
        srv = await aio.start_server(flood, HOST, 0, ctx=sctx(pki))
        async with srv:
            r, w = await aio.open_connection(HOST, port_of(srv), ctx=cctx(pki),
                                             server_hostname="localhost",
                                             limit=4096)
            while w.transport.is_reading():
                await asyncio.sleep(0.01)
            for _ in range(20):                  # stays paused
                await asyncio.sleep(0.01)
            assert not w.transport.is_reading()
            # what Python holds: at most the limit's pause threshold plus
            # one delivery (one read from the socket, decrypted)
            assert len(getattr(r, "_buffer")) <= 2 * 4096 + 512 * 1024
            assert await read_all(r) == (sha(data), len(data))
            w.close()
            await w.wait_closed()
    run(main())
