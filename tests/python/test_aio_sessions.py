"""retls.aio: resumption and TLS 1.3 0-RTT (session=, early_data=,
get_extra_info("session" / "session_reused" / "early_data_status")), on
asyncio's loop and on uvloop (every test runs on both).

Real peers on 127.0.0.1: a retls.aio server (start_server, its context
with or without early_data) and `openssl s_server` (-rev, -early_data).
Each case compares the exact bytes the server's application received
(the retls.aio server's handler records them; s_server -quiet prints
them), and the early-data outcome on both ends.  Mirrors
test_sessions.py and test_early_data.py for the synchronous API.
"""
import asyncio
import logging
import socket

import pytest

import retls
import retls.aio as aio

from helpers import HOST
from test_aio import cctx, run, sctx  # noqa: F401  (run: the two-loop fixture)
from session_servers import MultiSServer

EARLY = b"GET /early HTTP/1.0\r\n" + bytes(range(256))   # every byte value
LATE = b"late\n"


class EchoServer:
    """A retls.aio server that echoes each connection until the client's
    close_notify and records, per connection: every byte its reader
    returned, early_data_status, session_reused and the connection's
    early_bytes counter."""

    def __init__(self, ctx, **kw):
        self.ctx, self.kw = ctx, kw
        self.results = asyncio.Queue()

    async def handler(self, reader, writer):
        got = bytearray()
        try:
            while d := await reader.read(1 << 16):
                got += d
                writer.write(d)
                await writer.drain()
            self.results.put_nowait({
                "data": bytes(got),
                "early_data_status": writer.get_extra_info(
                    "early_data_status"),
                "session_reused": writer.get_extra_info("session_reused"),
                "session": writer.get_extra_info("session"),
                "early_bytes":
                    writer.get_extra_info("retls").stats["early_bytes"]})
        except Exception as exc:
            self.results.put_nowait(exc)
        finally:
            writer.close()

    async def __aenter__(self):
        self.srv = await aio.start_server(self.handler, HOST, 0, ctx=self.ctx,
                                          **self.kw)
        self.port = self.srv.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.srv.close()
        await self.srv.wait_closed()

    async def result(self):
        return await asyncio.wait_for(self.results.get(), 20)


async def echo_round(port, ctx, data=b"ping\n", **kw):
    """One connection: early data (kw early_data) and data out, the echo
    of both back (which brings the TLS 1.3 tickets before it), clean
    close.  Returns the writer (get_extra_info works after the close)."""
    r, w = await aio.open_connection(HOST, port, ctx=ctx,
                                     server_hostname="localhost", **kw)
    w.write(data)
    await w.drain()
    expect = bytes(kw.get("early_data") or b"") + data
    if w.get_extra_info("early_data_rejected_bytes"):
        expect = data                   # replay off: not resent
    assert await r.readexactly(len(expect)) == expect
    w.close()
    await w.wait_closed()
    return w


async def first_session(server, ctx):
    w = await echo_round(server.port, ctx)
    assert w.get_extra_info("session_reused") is False
    assert w.get_extra_info("early_data_status") == "not_sent"
    first = await server.result()
    assert first["data"] == b"ping\n" and first["session_reused"] is False
    session = w.get_extra_info("session")       # after the close: kept
    assert isinstance(session, retls.Session) and session.is_resumable
    return session


# ---- resumption ----------------------------------------------------------------

@pytest.mark.parametrize("version,tickets",
                         [("TLSv1.3", 2), ("TLSv1.2", 2), ("TLSv1.2", 0)],
                         ids=["tls13-ticket", "tls12-ticket",
                              "tls12-session-id"])
@pytest.mark.parametrize("early", [0, 16384],
                         ids=["server", "server-with-early-data"])
def test_resume_retls_aio_server(pki, run, version, tickets, early):
    """Also against a server that reads 0-RTT (read_early first) from a
    client that sends none, TLS 1.2 clients included."""
    ctx = cctx(pki, max_version=version)

    async def main():
        async with EchoServer(sctx(pki, tickets=tickets,
                                   early_data=early)) as srv:
            session = await first_session(srv, ctx)
            assert (session.ticket_lifetime > 0) == (tickets > 0)
            # through bytes, as a client keeps it between runs
            back = retls.Session.from_bytes(session.to_bytes())
            w = await echo_round(srv.port, ctx, b"again\n", session=back)
            assert w.get_extra_info("session_reused") is True
            assert w.get_extra_info("version") == version
            assert w.get_extra_info("early_data_status") == "not_sent"
            second = await srv.result()
            assert second["data"] == b"again\n"
            assert second["session_reused"] is True
            assert second["session"] is None            # servers have none
            # the newest session resumes too
            newest = w.get_extra_info("session")
            assert isinstance(newest, retls.Session)
            w = await echo_round(srv.port, ctx, b"third\n", session=newest)
            assert w.get_extra_info("session_reused") is True
            assert (await srv.result())["data"] == b"third\n"
    run(main())


def test_unknown_session_gives_a_full_handshake(pki, run):
    """A session from another server context (other ticket keys): a full
    handshake, every byte once."""
    ctx = cctx(pki)

    async def main():
        async with EchoServer(sctx(pki)) as one:
            session = await first_session(one, ctx)
        async with EchoServer(sctx(pki)) as other:
            w = await echo_round(other.port, ctx, session=session)
            assert w.get_extra_info("session_reused") is False
            got = await other.result()
            assert (got["data"], got["session_reused"]) == (b"ping\n", False)
    run(main())


@pytest.mark.parametrize("version", ["TLSv1.3", "TLSv1.2"])
def test_resume_s_server(pki, run, version):
    """openssl s_server -rev answers each line reversed; that answer
    brings the TLS 1.3 tickets."""
    srv = MultiSServer(pki, ["-rev"]).start()
    ctx = cctx(pki, max_version=version)

    async def rev_round(session=None):
        r, w = await aio.open_connection(HOST, srv.port, ctx=ctx,
                                         server_hostname="localhost",
                                         session=session)
        w.write(b"olleh\n")
        assert await r.readexactly(6) == b"hello\n"
        w.close()
        await w.wait_closed()
        return w.get_extra_info("session_reused"), w.get_extra_info("session")

    async def main():
        reused, first = await rev_round()
        assert reused is False and first.is_resumable
        reused, second = await rev_round(first)
        assert reused is True and second is not None
    try:
        run(main())
    finally:
        srv.stop()


def test_resume_through_start_tls(pki, run):
    """STARTTLS: the client's start_tls(session=...) resumes."""
    server_ctx = sctx(pki)
    server_saw = []

    async def server(reader, writer):
        assert await reader.readline() == b"STARTTLS\r\n"
        writer.write(b"220 go ahead\r\n")
        r, w = await aio.start_tls(reader, writer, server_ctx,
                                   server_side=True)
        line = await r.readline()
        server_saw.append((line, w.get_extra_info("session_reused")))
        w.write(line)
        await w.drain()
        await r.read()                       # until close_notify
        w.close()

    async def upgrade(port, session):
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(b"STARTTLS\r\n")
        assert await reader.readline() == b"220 go ahead\r\n"
        r, w = await aio.start_tls(reader, writer, cctx(pki),
                                   server_hostname="localhost",
                                   session=session)
        w.write(b"line\n")
        assert await r.readline() == b"line\n"   # the tickets came first
        w.close()
        await w.wait_closed()
        return w

    async def main():
        srv = await asyncio.start_server(server, HOST, 0)
        async with srv:
            port = srv.sockets[0].getsockname()[1]
            w = await upgrade(port, None)
            assert w.get_extra_info("session_reused") is False
            w = await upgrade(port, w.get_extra_info("session"))
            assert w.get_extra_info("session_reused") is True
    run(main())
    assert server_saw == [(b"line\n", False), (b"line\n", True)]


# ---- 0-RTT against a retls.aio server ----------------------------------------

@pytest.mark.parametrize("data", [EARLY, bytearray(EARLY), memoryview(EARLY)],
                         ids=["bytes", "bytearray", "memoryview"])
def test_early_data_accepted(pki, run, data):
    """The server's reader returns the early bytes exactly once, first,
    followed by the ordinary data; both ends say "accepted"."""
    ctx = cctx(pki)

    async def main():
        async with EchoServer(sctx(pki, early_data=16384)) as srv:
            session = await first_session(srv, ctx)
            assert session.max_early_data == 16384
            w = await echo_round(srv.port, ctx, LATE, session=session,
                                 early_data=data)
            assert w.get_extra_info("session_reused") is True
            assert w.get_extra_info("early_data_status") == "accepted"
            stats = w.get_extra_info("retls").stats
            assert stats["early_bytes"] == len(EARLY)
            assert stats["early_replayed"] == 0
            got = await srv.result()
            assert got["data"] == EARLY + LATE
            assert got["early_data_status"] == "accepted"
            assert got["early_bytes"] == len(EARLY)
            assert got["session_reused"] is True
    run(main())


@pytest.mark.parametrize("case", [
    "stale-ticket", "server-without-early-data", "other-server-context",
    "replay-off"])
def test_early_data_rejected(pki, run, case):
    """Rejected early data reaches the server's application exactly once,
    as ordinary data before the later writes (replayed by retls), or not
    at all with early_data_replay=False (handed back instead)."""
    replay = case != "replay-off"
    ctx = cctx(pki, early_data_replay=replay)

    async def main():
        async with EchoServer(sctx(pki, early_data=16384)) as srv:
            session = await first_session(srv, ctx)
            if case in ("stale-ticket", "replay-off"):
                # OpenSSL's anti-replay: a ticket carries early data once
                w = await echo_round(srv.port, ctx, session=session,
                                     early_data=b"once\n")
                assert w.get_extra_info("early_data_status") == "accepted"
                assert (await srv.result())["data"] == b"once\nping\n"
                return await second(srv, session)
        # a server that does not know the ticket: a full handshake
        async with EchoServer(sctx(pki) if case == "server-without-early-data"
                              else sctx(pki, early_data=16384)) as other:
            return await second(other, session)

    async def second(srv, session):
        w = await echo_round(srv.port, ctx, LATE, session=session,
                             early_data=EARLY)
        assert w.get_extra_info("early_data_status") == "rejected"
        stats = w.get_extra_info("retls").stats
        assert stats["early_bytes"] == len(EARLY)
        got = await srv.result()
        assert got["early_data_status"] == "rejected"
        assert got["early_bytes"] == 0
        if replay:
            assert got["data"] == EARLY + LATE
            assert stats["early_replayed"] == len(EARLY)
            assert w.get_extra_info("early_data_rejected_bytes") == b""
        else:
            assert got["data"] == LATE
            assert stats["early_replayed"] == 0
            assert w.get_extra_info("early_data_rejected_bytes") == EARLY
    run(main())


# ---- 0-RTT against openssl s_server -early_data --------------------------------

async def wait_until(pred, what, timeout=20.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("uses,status", [(1, "accepted"), (2, "rejected")],
                         ids=["accepted", "stale-ticket-rejected"])
def test_early_data_s_server(pki, run, uses, status):
    """s_server -quiet prints exactly what its application read, early
    data included.  It sends nothing, so the first connection waits
    (bounded) for the tickets to arrive; s_server drops data that comes
    together with close_notify, so each connection waits until its bytes
    were printed before closing."""
    srv = MultiSServer(pki, ["-early_data", "-num_tickets", "1"]).start()
    ctx = cctx(pki)

    async def one(expect, **kw):
        r, w = await aio.open_connection(HOST, srv.port, ctx=ctx,
                                         server_hostname="localhost", **kw)
        w.write(LATE if kw else b"first\n")
        await w.drain()
        await wait_until(lambda: len(srv.out) >= len(expect),
                         "s_server's output")
        if not kw:
            await wait_until(lambda: w.get_extra_info("session") is not None,
                             "the session ticket")
        w.close()
        await w.wait_closed()
        assert bytes(srv.out) == expect
        return w

    async def main():
        w = await one(b"first\n")
        session = w.get_extra_info("session")
        assert session.max_early_data > 0
        out = b"first\n"
        for _ in range(uses):
            out += EARLY + LATE
            w = await one(out, session=session, early_data=EARLY)
        assert w.get_extra_info("early_data_status") == status
        assert w.get_extra_info("retls").stats["early_replayed"] == (
            len(EARLY) if status == "rejected" else 0)
    try:
        run(main())
    finally:
        srv.stop()


# ---- bad input -------------------------------------------------------------------

def test_bad_session_and_early_data_arguments(pki, run):
    """Wrong types and combinations are refused before any socket is
    opened (port 1: a connection attempt would be refused instead)."""
    ctx = cctx(pki)
    lsock = socket.create_server((HOST, 0))    # for start_tls's streams
    srv_port = lsock.getsockname()[1]

    async def main():
        async with EchoServer(sctx(pki)) as srv:
            no_early = await first_session(srv, ctx)   # max_early_data 0
        async with EchoServer(sctx(pki, early_data=64)) as srv:
            small = await first_session(srv, ctx)
        blob = no_early.to_bytes()
        for open_ in (aio.open_connection, aio.create_connection):
            args = (HOST, 1) if open_ is aio.open_connection else (
                asyncio.Protocol, HOST, 1)

            def call(*args, **kw):
                return open_(*args, server_hostname="localhost", **kw)
            with pytest.raises(TypeError, match=r"Session\.from_bytes"):
                await call(*args, ctx=ctx, session=blob)
            with pytest.raises(TypeError, match="retls.Session or None"):
                await call(*args, ctx=ctx, session="session")
            with pytest.raises(TypeError, match="encode"):
                await call(*args, ctx=ctx, session=small, early_data="GET")
            with pytest.raises(TypeError, match="bytes-like"):
                await call(*args, ctx=ctx, session=small, early_data=42)
            with pytest.raises(retls.ArgumentError, match="needs session="):
                await call(*args, ctx=ctx, early_data=b"GET")
            # the synchronous write_early()'s refusals, unchanged
            with pytest.raises(retls.ArgumentError, match="allows none"):
                await call(*args, ctx=ctx, session=no_early,
                           early_data=b"GET")
            with pytest.raises(retls.SSLError, match="too much early data"):
                await call(*args, ctx=ctx, session=small,
                           early_data=bytes(65))
        reader, writer = await asyncio.open_connection(HOST, srv_port)
        try:
            with pytest.raises(retls.ArgumentError, match="for clients"):
                await aio.start_tls(reader, writer, sctx(pki),
                                    server_side=True, session=small)
            with pytest.raises(TypeError, match="retls.Session or None"):
                await aio.start_tls(reader, writer, ctx, session=blob)
            assert not writer.is_closing()       # nothing was touched
        finally:
            writer.close()
            await writer.wait_closed()

    try:
        run(main())
    finally:
        lsock.close()



def test_early_data_server_survives_misbehaving_clients(pki, run, caplog):
    """A server reading 0-RTT (read_early first): garbage, half a hello
    and a silent client (both time out), and one that sends its
    ClientHello with early data and vanishes after the server's answer,
    are each closed and logged; the
    vanished client's early data reaches no handler; a good 0-RTT client
    is served meanwhile."""
    caplog.set_level(logging.INFO, logger="retls.aio")
    ctx = cctx(pki)

    async def raw(port, payload=b""):
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(payload)
        await reader.read()                  # until the server closes
        writer.close()

    async def vanish(port, session):
        conn = retls.Connection(ctx, None, server_hostname="localhost",
                                session=session)
        conn.write_early(b"never delivered")
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(conn.bio_read())
        assert await reader.read(1)          # the server's flight
        writer.transport.abort()

    async def good(port, session):
        return await echo_round(port, ctx, LATE, session=session,
                                early_data=EARLY)

    async def main():
        async with EchoServer(sctx(pki, early_data=1024),
                              handshake_timeout=1.5) as srv:
            one = await first_session(srv, ctx)
            two = await first_session(srv, ctx)
            results = await asyncio.gather(
                raw(srv.port, b"GET / HTTP/1.0\r\n\r\n" * 10),  # garbage
                raw(srv.port, b"\x16\x03\x01\x02\x00\x01"),    # half a hello
                raw(srv.port),                                   # silent too
                vanish(srv.port, one),
                good(srv.port, two))
            w = results[-1]
            assert w.get_extra_info("early_data_status") == "accepted"
            got = await srv.result()
            assert (got["data"], got["early_data_status"]) == (
                EARLY + LATE, "accepted")
            assert srv.results.empty()         # nothing from the others
    run(main())
    text = caplog.text
    assert "SSLError: read_early: http request" in text          # garbage
    assert text.count("TimeoutError: handshake: not finished") == 2  # silent
    assert "EOFError" in text                                    # vanished
