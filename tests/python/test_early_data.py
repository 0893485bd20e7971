"""TLS 1.3 0-RTT early data (mirrors tests/c/test_early_data.c): accepted
and rejected (server without early data, server not reading early, stale
ticket), replay on and off, WANT during write_early with a mismatch attempt
in between, against a retls server and openssl s_server -early_data; bad
input with exact exception types.  Every case compares the exact bytes the
server's application received."""
import os
import time

import pytest

import retls
from helpers import (HOST, client_ctx, drain, handshake_memory, pattern,
                     server_ctx)
from session_servers import MultiSServer

EARLY = b"GET /early\n" + b"more\n"


def first_session(cctx, sctx):
    client, server = retls.pair(cctx, sctx)
    server.write(b"x")
    assert client.read() == b"x"
    session = client.session
    client.shutdown()
    server.shutdown()
    return session


def serve(client, server, read_early=True, rounds=200):
    """The server reads early data (when read_early) until its end, then
    everything else; the client's handshake is driven in between.
    Returns (early bytes, other bytes)."""
    early, rest = bytearray(), bytearray()
    done = not read_early
    for _ in range(rounds):
        if not done:
            try:
                chunk = server.read_early()
                if chunk == b"":
                    done = True
                early += chunk
            except retls.WantIO:
                pass
        else:
            rest += drain(server)
        try:
            client.do_handshake()
            if done and client.pending_write == 0:
                rest += drain(server)
                return bytes(early), bytes(rest)
        except retls.WantIO:
            pass
    raise AssertionError("no progress")


@pytest.mark.parametrize("case", [
    "accepted", "server-without-early-data", "server-not-reading-early",
    "stale-ticket", "replay-off"])
def test_early_data(case):
    replay = case != "replay-off"
    cctx = client_ctx(early_data_replay=replay)
    sctx = server_ctx(early_data=16384)
    session = first_session(cctx, sctx)
    assert session.max_early_data == 16384
    if case in ("stale-ticket", "replay-off"):
        # Used once already: OpenSSL's anti-replay refuses its early data
        # (and the server no longer resumes it).
        c, s = retls.pair(cctx, sctx, session=session)
        assert c.session_reused
    if case == "server-without-early-data":
        sctx = server_ctx(early_data=0)
    client, server = retls.pair(cctx, sctx, handshake=False,
                                session=session)
    assert client.write_early(b"GET /early\n") == 11
    assert client.write_early(b"more\n") == 5
    assert client.early_data_status is None      # handshake not done
    early, rest = serve(client, server,
                        read_early=case != "server-not-reading-early")
    client.write(b"after\n")
    rest += drain(server)
    stats = client.stats
    assert stats["early_bytes"] == len(EARLY)
    if case == "accepted":
        assert client.early_data_status == server.early_data_status \
            == "accepted"
        assert (early, rest) == (EARLY, b"after\n")
        assert stats["early_replayed"] == 0
    elif replay:
        assert client.early_data_status == "rejected"
        # Every byte once, in order, as ordinary data.
        assert (early, rest) == (b"", EARLY + b"after\n")
        assert stats["early_replayed"] == len(EARLY)
        assert client.early_data_rejected_bytes == b""
    else:
        assert client.early_data_status == "rejected"
        assert (early, rest) == (b"", b"after\n")
        assert stats["early_replayed"] == 0
        assert client.early_data_rejected_bytes == EARLY


def test_early_data_want_and_mismatch():
    """WANT during write_early over a small pair, a mismatch attempt in
    between, then flush(): nothing sent twice, nothing lost.  (OpenSSL 3.0
    counts every repeat of an early write again against max_early_data,
    hence a server allowing far more than is sent.)"""
    cctx = client_ctx()
    sctx = server_ctx(early_data=1 << 20)
    session = first_session(cctx, sctx)
    client, server = retls.pair(cctx, sctx, capacity=4096, handshake=False,
                                session=session)
    data = bytearray(pattern(20000, 1))
    with pytest.raises(retls.WantWrite):
        client.write_early(data)
    assert client.pending_write == 20000
    other = bytes(data[:-1]) + bytes([data[-1] ^ 1])
    with pytest.raises(retls.RetryMismatch, match="write_early"):
        client.write_early(other)
    with pytest.raises(retls.RetryMismatch):
        client.write(b"x")
    expected = bytes(data)
    data[:] = bytes(len(data))     # the caller's buffer changes: no matter
    early, flushed, done = bytearray(), None, False
    for _ in range(1000):
        if done and flushed is not None:
            break
        try:
            chunk = server.read_early()
            done = chunk == b""
            early += chunk
        except retls.WantIO:
            pass
        if flushed is None:
            try:
                flushed = client.flush()
            except retls.WantIO:
                pass
        else:
            try:
                client.do_handshake()
            except retls.WantIO:
                pass
    assert flushed == 20000
    retls._handshake_pair(client, server)
    assert bytes(early) == expected
    assert drain(server) == b""
    assert client.early_data_status == "accepted"
    stats = client.stats
    assert stats["early_bytes"] == 20000 and stats["mismatches"] == 2
    assert stats["retries"] >= 1


# ---- against openssl s_server -early_data ----------------------------------

def s_server_round(srv, cafile, expect_out, session=None, early=None,
                   data=b"first\n"):
    ctx = retls.Context(cafile=cafile)
    with retls.connect(HOST, srv.port, ctx, server_hostname="localhost",
                       timeout=10, session=session) as conn:
        if early is not None:
            conn.write_early(early)
        conn.write(data)
        # s_server drops data arriving together with close_notify: wait
        # (bounded) until its application has read everything.
        assert srv.wait_output(len(expect_out)) == expect_out
        status = conn.early_data_status
        newest = None
        if session is None:
            # The tickets: s_server answers nothing, so read until they
            # are here (a non-blocking read loop, bounded).
            os.set_blocking(conn.fileno(), False)
            for _ in range(500):
                try:
                    conn.read()
                except retls.WantRead:
                    pass
                newest = conn.session
                if newest is not None:
                    break
                time.sleep(0.01)
        conn.shutdown()
    return status, newest


@pytest.fixture
def servers():
    started = []
    yield started
    for srv in started:
        srv.stop()


@pytest.mark.parametrize("uses,status", [(1, "accepted"), (2, "rejected")],
                         ids=["accepted", "stale-ticket-rejected"])
def test_early_data_s_server(pki, servers, uses, status):
    srv = MultiSServer(pki, ["-early_data"])
    servers.append(srv.start())
    _, session = s_server_round(srv, pki.ca, b"first\n")
    assert session is not None and session.max_early_data > 0
    out = b"first\n"
    for _ in range(uses):
        out += b"early\nlate\n"
        got, _ = s_server_round(srv, pki.ca, out, session, b"early\n",
                                b"late\n")
    assert got == status


# ---- bad input --------------------------------------------------------------

def test_write_early_without_session():
    client, server = retls.pair(handshake=False)
    with pytest.raises(retls.ArgumentError, match="has none"):
        client.write_early(b"a")
    retls._handshake_pair(client, server)        # still usable
    with pytest.raises(retls.ArgumentError, match=r"use write\(\)"):
        client.write_early(b"a")
    client.write(b"ok")
    assert drain(server) == b"ok"


def test_write_early_session_without_early_data():
    cctx, sctx = client_ctx(), server_ctx()
    session = first_session(cctx, sctx)
    assert session.max_early_data == 0
    client, server = retls.pair(cctx, sctx, handshake=False, session=session)
    with pytest.raises(retls.ArgumentError, match="allows none"):
        client.write_early(b"a")
    retls._handshake_pair(client, server)
    assert client.session_reused
    assert client.early_data_status == "not_sent"


def test_early_data_wrong_ends_and_types():
    client, server = retls.pair(handshake=False)
    with pytest.raises(retls.ArgumentError, match="for clients"):
        server.write_early(b"a")
    with pytest.raises(retls.ArgumentError, match="for servers"):
        client.read_early()
    with pytest.raises(TypeError, match="encode"):
        client.write_early("text")
    with pytest.raises(ValueError):
        server.read_early(0)


def test_read_early_after_handshake_started():
    client, server = retls.pair(server_ctx=server_ctx(early_data=1024),
                                handshake=False)
    with pytest.raises(retls.WantRead):
        client.do_handshake()
    with pytest.raises(retls.WantRead):
        server.do_handshake()
    with pytest.raises(retls.ArgumentError, match="first operation"):
        server.read_early()
    retls._handshake_pair(client, server)
    assert server.read_early() == b""            # the end, not an error


def memory_session(cctx, sctx, name):
    """A resumable session with early data from a memory-mode client whose
    server_hostname is name, and the server end."""
    client = retls.Connection(cctx, None, server_hostname=name)
    server = retls.Connection(sctx, None)
    handshake_memory(client, server)
    server.write(b"x")
    client.bio_write(server.bio_read())
    assert client.read() == b"x"
    return client.session


@pytest.mark.parametrize("second", [None, "127.0.0.1", "other.example"])
def test_write_early_needs_the_sessions_server_name(second):
    """OpenSSL refuses early data whose session was made for another
    server name ("inconsistent early data sni", fatal); retls says so
    first, nothing sent, and the connection still resumes without it."""
    cctx = client_ctx(verify=False)
    sctx = server_ctx(early_data=1024)
    session = memory_session(cctx, sctx, "localhost")
    assert session.max_early_data == 1024
    if second == "other.example":   # set_session already refuses it
        with pytest.raises(retls.ArgumentError, match="from server"):
            retls.Connection(cctx, None, server_hostname=second,
                             session=session)
        return
    client = retls.Connection(cctx, None, server_hostname=second,
                              session=session)
    server = retls.Connection(sctx, None)
    with pytest.raises(retls.ArgumentError,
                       match="from server 'localhost'.*server_hostname"):
        client.write_early(b"early")
    assert client.bio_pending == 0   # nothing went out
    handshake_memory(client, server)
    client.write(b"after")
    server.bio_write(client.bio_read())
    assert drain(server) == b"after"
    assert client.early_data_status == "not_sent"
    # the same name: accepted
    client = retls.Connection(cctx, None, server_hostname="localhost",
                              session=client.session or session)
    assert client.write_early(b"early") == 5


def test_shutdown_refused_in_the_0rtt_phase():
    """A server that took 0-RTT, before the client's Finished: close_notify
    there would be followed by the session ticket, which the client no
    longer reads (mirrors test_shutdown_refused_in_the_0rtt_phase in C)."""
    cctx, sctx = client_ctx(), server_ctx(early_data=1024)
    session = first_session(cctx, sctx)
    client, server = retls.pair(cctx, sctx, handshake=False, session=session)
    assert client.write_early(b"early") == 5
    got = b""
    for _ in range(10):
        try:
            got += server.read_early()
        except retls.WantRead:
            pass
        if len(got) == 5:
            break
    assert got == b"early" and not server.established
    with pytest.raises(retls.ArgumentError, match="0-RTT"):
        server.shutdown()
    client.do_handshake()
    assert server.read_early() == b""      # the end of the early data
    server.do_handshake()
    server.write(b"late")
    server.shutdown()
    late = b""
    with pytest.raises(retls.ZeroReturn):   # everything, then close_notify
        for _ in range(10):
            late += client.read()
    assert late == b"late"
    assert client.early_data_status == "accepted"
