"""retls.aio: close() when the peer's reset lands between our close_notify
and our FIN (found by scripts/soak_aio.py).  The timing is made, not the
error: the peer resets its socket from inside the FIN call, just before
the real one runs, so the kernel itself answers shutdown(2) with ENOTCONN
on asyncio's loop (uvloop reports it to the transport instead)."""
import asyncio
import socket
import ssl
import struct
import threading

import pytest

import retls
import retls.aio as aio

from helpers import HOST
from test_aio import cctx, run  # noqa: F401  (run: the two-loop fixture)


class ResetBeforeFin:
    """The socket transport, except that write_eof() first resets the peer
    (RST, no close_notify) and waits until our socket has seen it."""

    def __init__(self, plain, peer, ours):
        self._plain, self._peer, self._ours = plain, peer, ours
        self.fin_calls = 0

    def __getattr__(self, name):
        return getattr(self._plain, name)

    def write_eof(self):
        self.fin_calls += 1
        self._peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                              struct.pack("ii", 1, 0))
        self._peer.close()
        # the RST on loopback: our socket reports the reset (SO_ERROR) or,
        # once read, is no longer connected
        for _ in range(1000):
            if self._ours.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                break
            try:
                self._ours.getpeername()
            except OSError:
                break
            threading.Event().wait(0.001)
        return self._plain.write_eof()


def test_close_after_the_peer_reset_does_not_raise(pki, run):
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(pki.server_cert, pki.server_key)
    listener = socket.create_server((HOST, 0))
    accepted = []

    def serve():
        s, _ = listener.accept()
        s.settimeout(20)
        t = sctx.wrap_socket(s, server_side=True)
        accepted.append((t, t.recv(5)))

    th = threading.Thread(target=serve)
    th.start()

    async def main():
        r, w = await aio.open_connection(
            HOST, listener.getsockname()[1], ctx=cctx(pki),
            server_hostname="localhost")
        w.write(b"hello")
        await w.drain()
        await asyncio.get_running_loop().run_in_executor(None, th.join, 20)
        peer, got = accepted[0]
        assert got == b"hello"
        tls = w.transport
        ours = socket.socket(fileno=socket.dup(
            tls.get_extra_info("socket").fileno()))
        try:
            fake = ResetBeforeFin(tls._plain, peer, ours)
            tls._plain = fake
            w.close()            # close_notify, then the FIN: must not raise
            assert fake.fin_calls == 1
            assert w.is_closing()
            try:
                await asyncio.wait_for(w.wait_closed(), 20)
            except (OSError, retls.Error):
                pass             # the reset, reported to whoever waits
            with pytest.raises(retls.Closed):
                w.write(b"after close")
        finally:
            ours.close()

    try:
        run(main())
    finally:
        listener.close()
        for peer, _ in accepted:
            peer.close()
