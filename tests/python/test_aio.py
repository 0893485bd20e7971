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
    finally:
        writer.close()


async def retls_echo_server(pki, **kw):
    srv = await aio.start_server(echo_handler, HOST, 0, ctx=sctx(pki, **kw))
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
