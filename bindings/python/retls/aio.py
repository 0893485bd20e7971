"""retls.aio: asyncio TLS streams and transports over retls.

    reader, writer = await retls.aio.open_connection("example.org", 443)
    writer.write(b"GET / HTTP/1.0\\r\\nHost: example.org\\r\\n\\r\\n")
    await writer.drain()
    print(await reader.read())

TLS runs as a protocol on the loop's own plain transport (as asyncio's
sslproto does): a memory-mode ``retls.Connection`` encrypts, and its
ciphertext is handed to the socket transport.  So it works on any loop
(asyncio's, uvloop) and on any stream asyncio gave you (``start_tls``).

Exactly once: every ``write()`` is encrypted at once into buffers the
transport owns, so the bytes it accepted reach the peer once and in order
whatever happens to the coroutines around it (a cancelled ``drain()``, a
cancelled task), and the caller may reuse its buffer as soon as
``write()`` returns.  When retls cannot finish a write yet (a TLS 1.2
renegotiation waits for the peer), the connection keeps its own copy of
the pending bytes, later writes queue behind it as copies, and the
transport finishes them when the peer's answer arrives.

The first write of a loop turn goes to the socket transport at once; the
ciphertext of the turn's later writes is handed over together at the end
of that turn (or as soon as 32 KiB are waiting): one send(2) for many
small writes instead of one each.

Resumption and 0-RTT, as in the synchronous API: session= on
open_connection/create_connection/start_tls resumes a retls.Session;
early_data= (open_connection/create_connection) sends TLS 1.3 early data
with the ClientHello, replayed as ordinary data if the server rejects it
(Context early_data_replay); get_extra_info("session"),
("session_reused") and ("early_data_status") tell the rest.  A
start_server context with early_data=N accepts 0-RTT.
"""

from __future__ import annotations

import asyncio
import logging
from typing import (Any, Callable, Dict, Iterable, List, Optional,
                    Tuple, Union)

from . import (ArgumentError, Closed, Connection, Context, Error, Session,
               TimeoutError, WantIO, WantRead, WantWrite, ZeroReturn)

__all__ = ["open_connection", "start_server", "start_tls",
           "create_connection", "TLSTransport"]

logger = logging.getLogger("retls.aio")

_Buffer = Union[bytes, bytearray, memoryview]

# asyncio's own defaults for its TLS transports (asyncio.constants
# FLOW_CONTROL_HIGH_WATER_SSL_WRITE; low = high / 4), and its shutdown
# timeout (SSL_SHUTDOWN_TIMEOUT).
HIGH_WATER = 512 * 1024
SHUTDOWN_TIMEOUT = 30.0

# Ciphertext waiting in the connection is handed to the socket transport at
# the end of the loop turn, or at once when more than this much plaintext
# was written since the last hand-over.
_CORK = 32 * 1024
# SSL_read returns at most one record (16 KiB of plaintext) per call.
_READ_SIZE = 16 * 1024
_WAITING = object()   # _handshake_step: the handshake waits (or failed)

_HANDSHAKE, _OPEN, _CLOSING, _CLOSED = range(4)

# get_extra_info() keys settled by the handshake, with the values of a
# connection that resumed nothing and sent no early data.
_SETTLED: Dict[str, Any] = {"session_reused": False,
                            "early_data_status": "not_sent",
                            "early_data_rejected_bytes": b""}


def _new_conn(ctx: Context, server_hostname: Optional[str],
              session: Optional[Session] = None,
              early_data: Optional[_Buffer] = None) -> Connection:
    """A memory-mode connection whose outgoing buffer grows as needed (as
    ssl.MemoryBIO does): the transport drains it into the socket
    transport, so a write never waits on its size.  With early_data, the
    ClientHello and the early data wait in it until the socket connects
    (and the errors of write_early() are raised before it does)."""
    conn = Connection(ctx, None, server_hostname=server_hostname,
                      session=session, capacity=None)
    if early_data is not None:
        try:
            conn.write_early(early_data)
        except WantIO:
            pass   # the connection keeps a copy; the handshake finishes it
        except BaseException:
            conn.close(discard=True)
            raise
    return conn


class _Plain(asyncio.Protocol):
    """The protocol on the plain (socket) transport: forwards each event to
    the TLS transport (per socket event, never per write)."""

    __slots__ = ("_tls",)

    def __init__(self, tls: "TLSTransport") -> None:
        self._tls = tls

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._tls._on_connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._tls._on_data(data)

    def eof_received(self) -> bool:
        return self._tls._on_eof()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._tls._on_connection_lost(exc)

    def pause_writing(self) -> None:
        pass   # the TLS transport reads the plain buffer's size itself

    def resume_writing(self) -> None:
        self._tls._on_plain_resumed()


class TLSTransport(asyncio.Transport):
    """An asyncio.Transport that runs TLS through a memory-mode
    retls.Connection over a plain transport.

    Write buffer size = the bytes of a write retls could not finish yet
    and the writes queued behind it, plus ciphertext not yet handed to the
    socket (in the connection and in the plain transport's buffer).
    """

    # A server holds one per connection: no per-instance dict.
    __slots__ = (
        "_loop", "_conn", "_c", "_cwrite", "_cread", "_cbio_pending",
        "_protocol", "_waiter", "_handshake", "_handshake_timeout",
        "_server_side", "_state", "_plain", "_exc", "_timer", "_lost",
        "_blocked", "_queue", "_queued", "_unpushed", "_push_scheduled",
        "_plain_size", "_high", "_low", "_app_paused", "_reading_paused",
        "_peer_closed", "_sent_close_notify", "_plain_eof", "_made",
        "_early")

    def __init__(self, loop: asyncio.AbstractEventLoop, conn: Connection,
                 protocol: asyncio.BaseProtocol,
                 waiter: Optional["asyncio.Future[None]"],
                 handshake_timeout: float, server_side: bool) -> None:
        super().__init__()
        self._loop = loop
        self._conn = conn
        # The extension object under the Connection: its methods are the C
        # calls themselves, without a Python frame.
        c: Any = getattr(conn, "_c")
        self._c = c
        # The hot calls, bound once: each is one C call.
        self._cwrite = c.write
        self._cread = c.read
        self._cbio_pending = c.bio_pending
        self._protocol = protocol
        self._waiter = waiter
        self._handshake = waiter         # kept for _wait_handshake()
        self._handshake_timeout = handshake_timeout
        self._server_side = server_side
        self._state = _HANDSHAKE
        self._plain: Any = None          # the socket transport
        self._exc: Optional[BaseException] = None   # why we closed
        self._timer: Optional[asyncio.TimerHandle] = None
        self._lost: "asyncio.Future[None]" = loop.create_future()
        # writes: a queue of copies behind a write retls could not finish
        self._blocked = False
        self._queue: List[bytes] = []    # rare: only behind a renegotiation
        self._queued = 0
        self._unpushed = 0
        self._push_scheduled = False
        self._plain_size = 0             # plain buffer at the last hand-over
        self._high = HIGH_WATER
        self._low = HIGH_WATER // 4
        self._app_paused = False
        # reads
        self._reading_paused = False
        self._peer_closed = False        # close_notify or EOF seen
        self._sent_close_notify = False
        self._plain_eof = False          # no more writes to the socket
        self._made = False               # protocol.connection_made called
        self._extra: Dict[str, Any] = {}
        # A server whose context accepts 0-RTT reads early data first
        # (read_early() must be the connection's first call); it goes to
        # the protocol right after connection_made, before any other data.
        early: int = getattr(conn.context, "_early_data", 0)
        self._early: Optional[List[bytes]] = (
            [] if server_side and early > 0 else None)

    # ---- the plain transport's events -------------------------------------

    def _on_connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._plain = transport
        # The plain transport tells us when its buffer falls to our low
        # water mark, so resume_writing() can follow it.
        transport.set_write_buffer_limits(high=self._low,  # type: ignore
                                          low=self._low)
        self._timer = self._loop.call_later(self._handshake_timeout,
                                            self._on_handshake_timeout)
        self._do_handshake()

    def _on_data(self, data: bytes) -> None:
        try:
            self._c.bio_write(data)
        except Error as exc:
            self._fatal(exc)
            return
        if self._state == _HANDSHAKE:
            self._do_handshake()
        else:
            self._do_read()

    def _on_eof(self) -> bool:
        # Fed into the connection: a close_notify already read makes it a
        # clean end, anything else surfaces as retls.EOFError from read.
        try:
            self._c.bio_write_eof()
        except Error:
            pass
        if self._state == _HANDSHAKE:
            self._do_handshake()
        elif self._state != _CLOSED:
            self._do_read()
        return True   # closing is ours to do

    def _on_connection_lost(self, exc: Optional[BaseException]) -> None:
        self._state = _CLOSED
        self._plain_eof = True
        self._cancel_timer()
        self._queue.clear()
        self._queued = 0
        self._blocked = False
        if self._exc is None:
            self._exc = exc
        exc = self._exc
        try:
            if not self._made:
                if exc is None:
                    exc = ConnectionResetError(
                        "handshake: the connection closed before the TLS "
                        "handshake finished")
                self._log_failure("handshake", exc)
                self._wake(exc)
            else:
                if exc is not None:
                    self._log_failure("connection", exc)
                self._protocol.connection_lost(
                    exc if isinstance(exc, Exception) or exc is None
                    else ConnectionAbortedError(str(exc)))
        finally:
            self._release()
            if not self._lost.done():
                self._lost.set_result(None)

    def _on_plain_resumed(self) -> None:
        if self._plain is not None:
            self._plain_size = self._plain.get_write_buffer_size()
        if self._app_paused:
            self._maybe_resume()

    # ---- handshake ------------------------------------------------------

    def _handshake_step(self, op: Callable[[], Any]) -> Any:
        """op() until it no longer asks to write first: its result, or
        _WAITING when it waits for the peer or failed the handshake."""
        while True:
            try:
                return op()
            except WantWrite:
                self._push()
            except WantRead:
                self._push()
                return _WAITING
            except Exception as exc:
                self._handshake_failed(exc)
                return _WAITING

    def _do_handshake(self) -> None:
        early = self._early
        if early is not None:
            read_early = self._c.read_early
            while True:
                chunk = self._handshake_step(lambda: read_early(_READ_SIZE))
                if chunk is _WAITING:
                    return
                if not chunk:
                    break      # the early data has ended (or there was none)
                early.append(chunk)
        if self._handshake_step(self._c.handshake) is _WAITING:
            return
        self._cancel_timer()
        self._state = _OPEN
        self._made = True
        self._push()
        conn = self._conn
        extra: Dict[str, Any] = {
            "version": conn.version, "cipher": conn.cipher,
            "alpn_protocol": conn.alpn_protocol,
            "peer_certificate": conn.peer_certificate}
        # Settled by the handshake and kept after close; only what differs
        # from _SETTLED's defaults, so that a server's many connections
        # without resumption keep the small dict.
        if conn.session_reused:
            extra["session_reused"] = True
        status = conn.early_data_status
        if status != "not_sent":
            extra["early_data_status"] = status
            if status == "rejected":
                extra["early_data_rejected_bytes"] = \
                    conn.early_data_rejected_bytes
        self._extra = extra
        try:
            self._protocol.connection_made(self)
        except Exception as exc:
            self._fatal(exc)
            self._wake(exc)
            return
        self._wake(None)
        self._early = None
        if early and self._state == _OPEN:
            # The stream's first bytes, exactly once, before the rest.
            self._protocol.data_received(  # type: ignore[attr-defined]
                b"".join(early))
        self._do_read()

    def _handshake_failed(self, exc: BaseException) -> None:
        self._exc = exc
        self._push()       # the alert that tells the peer why
        self._state = _CLOSED
        self._cancel_timer()
        if self._plain is not None:
            self._plain.close()

    def _on_handshake_timeout(self) -> None:
        self._timer = None
        if self._state == _HANDSHAKE:
            self._exc = TimeoutError(
                f"handshake: not finished after {self._handshake_timeout} "
                f"seconds (handshake_timeout); connection aborted")
            self._state = _CLOSED
            if self._plain is not None:
                self._plain.abort()

    def _wake(self, exc: Optional[BaseException]) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(exc)

    async def _wait_handshake(self) -> None:
        """Until the handshake is done.  On failure or cancellation the
        socket is closed before this returns or raises."""
        try:
            assert self._handshake is not None
            await self._handshake
        except BaseException:
            if self._plain is not None and self._state != _CLOSED:
                self._state = _CLOSED
                self._plain.abort()
            if not self._lost.done():
                await asyncio.shield(self._lost)
            raise

    # ---- reading --------------------------------------------------------

    def _do_read(self) -> None:
        if self._state == _CLOSED or (self._reading_paused
                                      and self._state == _OPEN):
            return      # the bytes wait in the connection until resumed
        chunks: List[bytes] = []
        closed = False
        failure: Optional[BaseException] = None
        read = self._cread
        try:
            while True:
                chunks.append(read(_READ_SIZE))
        except WantRead:
            pass
        except WantWrite:
            # Answering the peer (a KeyUpdate, a renegotiation) did not
            # fit into a bounded outgoing buffer: hand it over and go on.
            self._push()
            self._loop.call_soon(self._do_read)
        except ZeroReturn:
            closed = True
        except Exception as exc:
            failure = exc
        if self._blocked and failure is None:
            self._write_queued()
        if self._cbio_pending():
            self._push()
        if self._state == _CLOSING:
            if closed or failure is not None:
                self._peer_closed = True
                if self._blocked:
                    self._fatal(failure or self._stranded())
                elif self._sent_close_notify or failure is not None:
                    self._close_plain()
                else:
                    self._try_shutdown()   # ours now, or the end with a FIN
            elif self._blocked is False and not self._sent_close_notify:
                self._try_shutdown()
            return
        if self._state != _OPEN:
            return
        if chunks:
            self._protocol.data_received(  # type: ignore[attr-defined]
                chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if failure is not None:
            self._fatal(failure)
        elif closed and not self._peer_closed:
            self._peer_closed = True
            if self._blocked:
                self._fatal(self._stranded())
                return
            keep_open = self._protocol.eof_received()  # type: ignore
            if not keep_open and self._state == _OPEN:
                self.close()

    def _stranded(self) -> BaseException:
        # Writes wait for the answer to a renegotiation, and the peer sent
        # its close_notify instead: they can never go out.  Say so now
        # rather than let close() wait SHUTDOWN_TIMEOUT for nothing.
        return Closed(
            f"the peer sent close_notify before answering the "
            f"renegotiation that {self._conn.pending_write + self._queued} "
            f"bytes accepted by write() were waiting for; they were not "
            f"sent")

    # ---- writing --------------------------------------------------------

    def write(self, data: _Buffer) -> None:
        """Encrypt data now; the transport owns it from here on."""
        if self._blocked or self._state != _OPEN:
            self._write_slow(data)
            return
        try:
            n = self._cwrite(data)
        except WantIO:
            self._write_slow(data)
            return
        if n != len(data):
            self._write_slow(data, n)   # a partial_write context
            return
        self._unpushed += n
        if self._unpushed > _CORK:
            self._push()
        elif not self._push_scheduled:
            # The first write of a loop turn goes out at once (a request
            # waits for no one); the turn's later writes go together at
            # its end.
            self._push()
            self._push_scheduled = True
            self._loop.call_soon(self._push)
        if self._unpushed + self._plain_size > self._high:
            self._maybe_pause()

    def writelines(self, list_of_data: Iterable[_Buffer]) -> None:
        self.write(b"".join(list_of_data))

    def _write_slow(self, data: _Buffer, done: int = 0) -> None:
        view = memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        if self._state != _OPEN:
            if self._state == _HANDSHAKE:
                raise Closed("write: the TLS handshake has not finished")
            raise Closed(f"write: the transport is closed"
                         f"{self._why()}; nothing was written")
        if self._blocked:
            if view.nbytes > done:
                chunk = bytes(view[done:])   # a copy: the caller may reuse
                self._queue.append(chunk)
                self._queued += len(chunk)
        else:
            self._write_view(view, done)
        self._schedule_push()
        self._maybe_pause()

    def _write_view(self, view: memoryview, done: int) -> None:
        """Write view[done:] now; what retls cannot finish yet is kept (the
        connection's copy of the pending part, ours of the whole rest)."""
        c = self._c
        total = view.nbytes
        while done < total or c.pending_write():
            try:
                if c.pending_write():
                    if self._conn.want == "write":
                        self._push()
                    n = c.flush()
                else:
                    n = c.write(view[done:])
            except WantWrite:
                self._push()
                continue
            except WantRead:
                # A handshake (renegotiation) must hear from the peer
                # first; the read path finishes the write.
                chunk = bytes(view[done:])
                self._queue.append(chunk)
                self._queued += len(chunk)
                self._blocked = True
                return
            except Exception as exc:
                self._fatal(exc)
                raise
            done += n
            self._unpushed += n

    def _write_queued(self) -> None:
        """Finish the pending write and the queue behind it, in order."""
        c = self._c
        q = self._queue
        while q:
            chunk = q[0]
            try:
                if c.pending_write():
                    if self._conn.want == "write":
                        self._push()
                    n = c.flush()
                else:
                    n = c.write(chunk)
            except WantWrite:
                self._push()
                continue
            except WantRead:
                return
            except Exception as exc:
                self._fatal(exc)
                return
            self._queued -= n
            self._unpushed += n
            if n >= len(chunk):
                del q[0]
            else:
                q[0] = chunk[n:]
        self._blocked = False
        self._schedule_push()
        if self._app_paused:
            self._maybe_resume()
        if self._state == _CLOSING:
            self._try_shutdown()

    def _schedule_push(self) -> None:
        if self._unpushed > _CORK:
            self._push()
        elif not self._push_scheduled:
            self._push_scheduled = True
            self._loop.call_soon(self._push)

    def _push(self) -> None:
        """Hand every byte of ciphertext waiting in the connection to the
        socket transport."""
        self._push_scheduled = False
        self._unpushed = 0
        n = self._cbio_pending()
        if not n:
            return
        plain = self._plain
        if self._plain_eof or plain is None or plain.is_closing():
            self._c.bio_read(n)   # nobody can receive it any more
            return
        if n:
            plain.write(self._c.bio_read(n))
            self._plain_size = plain.get_write_buffer_size()
            if self._app_paused:
                self._maybe_resume()

    # ---- flow control ---------------------------------------------------

    def get_write_buffer_size(self) -> int:
        size: int = self._queued + self._cbio_pending()
        if self._plain is not None and self._state != _CLOSED:
            size += self._plain.get_write_buffer_size()
        return size

    def get_write_buffer_limits(self) -> Tuple[int, int]:
        return (self._low, self._high)

    def set_write_buffer_limits(self, high: Optional[int] = None,
                                low: Optional[int] = None) -> None:
        if high is None:
            high = HIGH_WATER if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) "
                             f"must be >= 0")
        self._high, self._low = high, low
        if self._plain is not None and not self._plain.is_closing():
            self._plain.set_write_buffer_limits(high=low, low=low)
        self._maybe_pause()
        self._maybe_resume()

    def _maybe_pause(self) -> None:
        if self._app_paused or self._state != _OPEN:
            return
        if self.get_write_buffer_size() > self._high:
            self._app_paused = True
            try:
                self._protocol.pause_writing()
            except Exception as exc:
                self._loop.call_exception_handler({
                    "message": "protocol.pause_writing() failed",
                    "exception": exc, "transport": self,
                    "protocol": self._protocol})

    def _maybe_resume(self) -> None:
        if not self._app_paused or self._state == _CLOSED:
            return
        if self.get_write_buffer_size() <= self._low:
            self._app_paused = False
            try:
                self._protocol.resume_writing()
            except Exception as exc:
                self._loop.call_exception_handler({
                    "message": "protocol.resume_writing() failed",
                    "exception": exc, "transport": self,
                    "protocol": self._protocol})

    # ---- reading control --------------------------------------------------

    def is_reading(self) -> bool:
        return not self._reading_paused and self._state in (_HANDSHAKE,
                                                            _OPEN)

    def pause_reading(self) -> None:
        if self._reading_paused or self._state != _OPEN:
            return
        self._reading_paused = True
        self._plain.pause_reading()

    def resume_reading(self) -> None:
        if not self._reading_paused or self._state != _OPEN:
            return
        self._reading_paused = False
        self._plain.resume_reading()
        # Records that arrived before the pause wait in the connection.
        self._loop.call_soon(self._do_read)

    # ---- closing --------------------------------------------------------

    def is_closing(self) -> bool:
        return self._state in (_CLOSING, _CLOSED)

    def close(self) -> None:
        """Flush what write() accepted, send close_notify, close the socket
        once the peer answered (or at once if it already closed); after
        SHUTDOWN_TIMEOUT seconds, abort."""
        if self._state != _OPEN:
            if self._state == _HANDSHAKE:
                self.abort()
            return
        self._state = _CLOSING
        self._timer = self._loop.call_later(SHUTDOWN_TIMEOUT,
                                            self._on_shutdown_timeout)
        if self._reading_paused:
            # The peer's close_notify must be read.
            self._reading_paused = False
            self._plain.resume_reading()
        if not self._blocked:
            self._try_shutdown()

    def _try_shutdown(self) -> None:
        if self._sent_close_notify or self._state != _CLOSING:
            return
        while True:
            try:
                self._c.shutdown()
            except WantWrite:
                self._push()
                continue
            except WantRead:
                break
            except ArgumentError:
                # A renegotiation is still running: OpenSSL cannot send
                # close_notify inside it, so shutdown() is retried from the
                # read path when it has finished.  A peer that has sent
                # its own close_notify will never answer it: end the
                # stream with a FIN instead (what it waits for either way).
                if self._peer_closed:
                    self._close_plain()
                else:
                    self._drive_renegotiation()
                return
            except Error as exc:
                self._exc = self._exc or exc
                self._abort_plain()
                return
            break
        self._sent_close_notify = True
        self._push()
        if self._peer_closed:
            self._finish_close()
        elif self._plain.can_write_eof():
            # Lingering close: the peer sees the end, and we read until its
            # close_notify, so closing never resets a connection with our
            # last bytes still in flight.
            try:
                self._plain.write_eof()
            except OSError:
                # The peer is gone already (shutdown(2) says ENOTCONN):
                # close() must not raise; connection_lost follows.
                self._abort_plain()
            self._plain_eof = True

    def _drive_renegotiation(self) -> None:
        # One asked for (renegotiate()) starts only with the next read,
        # write or handshake, and a closing connection may never write
        # again: start it here.  It needs the peer's answer either way,
        # so the read path takes it from there and shuts down after it.
        try:
            while True:
                try:
                    self._c.handshake()
                    break
                except WantWrite:
                    self._push()
        except WantRead:
            pass
        except Error as exc:
            self._exc = self._exc or exc
            self._abort_plain()
            return
        self._push()

    def _finish_close(self) -> None:
        if self._sent_close_notify or self._state != _CLOSING:
            self._close_plain()

    def _close_plain(self) -> None:
        # The socket transport flushes what it holds, then closes.
        if self._plain is not None and not self._plain.is_closing():
            self._plain.close()

    def _on_shutdown_timeout(self) -> None:
        self._timer = None
        if self._state == _CLOSING:
            self._exc = self._exc or TimeoutError(
                f"close: the peer did not answer close_notify within "
                f"{SHUTDOWN_TIMEOUT} seconds; connection aborted")
            self._abort_plain()

    def abort(self) -> None:
        """Close at once, dropping whatever was not sent yet."""
        if self._state == _CLOSED and (self._plain is None
                                       or self._plain.is_closing()):
            return
        if self._state != _HANDSHAKE:
            self._state = _CLOSED
        self._abort_plain()

    def _abort_plain(self) -> None:
        self._queue.clear()
        self._queued = 0
        if self._plain is not None:
            self._plain.abort()

    def _fatal(self, exc: BaseException) -> None:
        if self._exc is None:
            self._exc = exc
        if self._state != _HANDSHAKE:
            self._state = _CLOSED
        self._abort_plain()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _release(self) -> None:
        self._keep_session()
        try:
            self._conn.close(discard=True)
        except Error:
            pass

    def _keep_session(self) -> Optional[Session]:
        """The client's newest session, also kept for get_extra_info()
        after the connection is gone."""
        try:
            session = self._conn.session
        except Error:           # closed or failed: the last one seen
            return self._extra.get("session")
        if session is not None:
            self._extra["session"] = session
        return self._extra.get("session")

    def _why(self) -> str:
        return f" ({self._exc})" if self._exc is not None else ""

    def _log_failure(self, what: str, exc: BaseException) -> None:
        if self._server_side:
            peer = None
            if self._plain is not None:
                peer = self._plain.get_extra_info("peername")
            logger.info("TLS %s from %s failed: %s: %s", what, peer,
                        type(exc).__name__, exc)

    # ---- the rest of asyncio.Transport -------------------------------------

    def can_write_eof(self) -> bool:
        return False

    def write_eof(self) -> None:
        raise NotImplementedError("TLS has no half-close; close() sends "
                                  "close_notify")

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """"retls" (the retls.Connection), "version", "cipher",
        "alpn_protocol", "peer_certificate" (DER or None); anything else
        ("peername", "sockname", "socket") from the socket transport.

        Sessions and 0-RTT (kept after the connection closed):
        "session": a client's newest resumable retls.Session, for
        session= of a later connection, or None (always None on a
        server).  TLS 1.3 servers send their tickets after the handshake;
        the transport reads them by itself as they arrive (not while
        reading is paused), so the session is there once the server's
        first data has arrived (OpenSSL servers send the tickets before
        it); with a server that sends nothing, poll (bounded) until it is
        not None.  "session_reused" (bool), "early_data_status"
        ("accepted", "rejected" or "not_sent", both sides),
        "early_data_rejected_bytes" (clients whose context has
        early_data_replay=False: the rejected early data, not resent)."""
        conn = self._conn
        if name == "retls":
            return conn
        if name == "session":
            session = (self._keep_session()
                       if self._state in (_OPEN, _CLOSING)
                       else self._extra.get("session"))
            return default if session is None else session
        if name in _SETTLED:
            if not self._made:
                return default
            return self._extra.get(name, _SETTLED[name])
        if name in ("version", "cipher", "alpn_protocol", "peer_certificate"):
            value = self._extra.get(name)
            if self._state in (_OPEN, _CLOSING):
                try:   # live: a renegotiation may have changed it
                    value = getattr(conn, name)
                except Error:
                    pass
            return default if value is None else value
        if self._plain is not None:
            return self._plain.get_extra_info(name, default)
        return default

    def __repr__(self) -> str:
        state = ("handshake", "open", "closing", "closed")[self._state]
        return f"<retls.aio.TLSTransport {state} {self._conn!r}>"


# ---- checking arguments ------------------------------------------------------

_default_ctx: List[Context] = []


def _client_ctx(ctx: Optional[Context]) -> Context:
    if ctx is None:
        # A verifying client context loads the system trust store (tens of
        # milliseconds): made once, shared by every default connection.
        if not _default_ctx:
            _default_ctx.append(Context("client"))
        return _default_ctx[0]
    return _check_ctx(ctx, "client")


def _check_ctx(ctx: Any, role: str) -> Context:
    if not isinstance(ctx, Context):
        raise TypeError(f"ctx must be a retls.Context, not "
                        f"{type(ctx).__name__!r}")
    if ctx.role != role:
        raise ArgumentError(
            f"ctx is a {ctx.role} context, this side needs a {role} one "
            f"(retls.Context({role!r}, ...))")
    return ctx


def _check_timeout(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"handshake_timeout must be a number of seconds, not "
                        f"{type(value).__name__!r}")
    if not value > 0:
        raise ValueError(f"handshake_timeout must be > 0 seconds, not "
                         f"{value!r}")
    return float(value)


def _check_session(session: Any, early_data: Any,
                   server_side: bool = False) -> Optional[_Buffer]:
    """session= and early_data= of a client; returns early_data."""
    if session is not None and not isinstance(session, Session):
        raise TypeError(f"session must be a retls.Session or None, not "
                        f"{type(session).__name__!r} (for bytes use "
                        f"retls.Session.from_bytes())")
    if server_side and session is not None:
        raise ArgumentError(
            "session= is for clients (server_side=False); a server resumes "
            "the sessions its context issued by itself")
    if early_data is None:
        return None
    if isinstance(early_data, str):
        raise TypeError("early_data must be bytes-like (bytes, bytearray, "
                        "memoryview), not 'str'; encode text first, e.g. "
                        "s.encode()")
    try:
        memoryview(early_data).release()
    except TypeError:
        raise TypeError(f"early_data must be bytes-like (bytes, bytearray, "
                        f"memoryview) or None, not "
                        f"{type(early_data).__name__!r}") from None
    if session is None:
        raise ArgumentError(
            "early_data= needs session=: 0-RTT data rides on a resumed TLS "
            "1.3 session whose server allows early data (the "
            "get_extra_info('session') of an earlier connection, with "
            "session.max_early_data > 0); without one, write() it after "
            "the handshake")
    return early_data  # type: ignore[no-any-return]


# ---- the API -----------------------------------------------------------------

async def create_connection(
        protocol_factory: Callable[[], asyncio.BaseProtocol], host: str,
        port: int, *, ctx: Optional[Context] = None,
        server_hostname: Optional[str] = None,
        handshake_timeout: float = 60.0, session: Optional[Session] = None,
        early_data: Optional[_Buffer] = None
) -> Tuple[TLSTransport, asyncio.BaseProtocol]:
    """Connect to host:port and run the TLS handshake; returns (transport,
    protocol) once it is done, like loop.create_connection(ssl=...).
    ctx defaults to a verifying client retls.Context, server_hostname
    (verified, and sent as SNI) to host.  Handshake failures raise the
    same retls exceptions as the synchronous API; a handshake longer than
    handshake_timeout raises retls.TimeoutError (a TimeoutError).

    session: a retls.Session to resume (get_extra_info("session") of an
    earlier connection, or retls.Session.from_bytes()); a server that
    does not know it gives a full handshake (get_extra_info(
    "session_reused") is False).  early_data: bytes sent as TLS 1.3 0-RTT
    data with the ClientHello (Connection.write_early(): needs a session
    with max_early_data > 0, ArgumentError otherwise, raised before
    connecting).  If the server rejects them they are sent again as
    ordinary data right after the handshake, once, before any write()
    (Context early_data_replay; with False they are not resent and
    get_extra_info("early_data_rejected_bytes") hands them back).
    get_extra_info("early_data_status") says "accepted" or "rejected"."""
    loop = asyncio.get_running_loop()
    ctx = _client_ctx(ctx)
    timeout = _check_timeout(handshake_timeout)
    early_data = _check_session(session, early_data)
    conn = _new_conn(ctx, host if server_hostname is None
                     else server_hostname, session, early_data)
    waiter: "asyncio.Future[None]" = loop.create_future()
    protocol = protocol_factory()
    tls = TLSTransport(loop, conn, protocol, waiter, timeout, False)
    try:
        await loop.create_connection(lambda: _Plain(tls), host, port)
    except BaseException:
        tls._release()
        raise
    await tls._wait_handshake()
    return tls, protocol


async def open_connection(
        host: str, port: int, *, ctx: Optional[Context] = None,
        server_hostname: Optional[str] = None,
        handshake_timeout: float = 60.0, limit: int = 2**16,
        session: Optional[Session] = None,
        early_data: Optional[_Buffer] = None
) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """asyncio.open_connection over retls: asyncio's own StreamReader and
    StreamWriter, returned after the handshake.  session= and
    early_data= (0-RTT) as in create_connection(); the writer's
    get_extra_info() gives "session", "session_reused" and
    "early_data_status"."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await create_connection(
        lambda: protocol, host, port, ctx=ctx,
        server_hostname=server_hostname, handshake_timeout=handshake_timeout,
        session=session, early_data=early_data)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer


_ConnectedCb = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]


async def start_server(
        client_connected_cb: _ConnectedCb, host: Any = None,
        port: Optional[int] = None, *, ctx: Context,
        handshake_timeout: float = 60.0, limit: int = 2**16,
        backlog: int = 100) -> asyncio.AbstractServer:
    """asyncio.start_server over retls: client_connected_cb(reader, writer)
    runs for each client once its handshake is done.  A client whose
    handshake fails or times out is closed and logged (logger
    "retls.aio", level INFO); the others go on.

    A context with early_data=N accepts TLS 1.3 0-RTT: the early data is
    the stream's first bytes, delivered once the handshake is done and
    before the rest (get_extra_info("early_data_status") == "accepted";
    the connection's stats["early_bytes"] counts them).  Early data can
    be replayed by an attacker: act on it only if that is harmless."""
    loop = asyncio.get_running_loop()
    _check_ctx(ctx, "server")
    timeout = _check_timeout(handshake_timeout)

    def factory() -> _Plain:
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, client_connected_cb,
                                                loop=loop)
        return _Plain(TLSTransport(loop, _new_conn(ctx, None), protocol,
                                   None, timeout, True))

    return await loop.create_server(factory, host, port, backlog=backlog)


async def start_tls(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        ctx: Context, *, server_hostname: Optional[str] = None,
        server_side: bool = False, handshake_timeout: float = 60.0,
        session: Optional[Session] = None
) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Upgrade a plain stream connection (STARTTLS) and return new streams
    over TLS; the old ones must not be used any more.  Bytes the old
    reader had already received and not handed out (a ClientHello sent
    right behind the STARTTLS line) go to the TLS connection.  session:
    a client resumes it (as in create_connection(); ArgumentError with
    server_side=True)."""
    loop = asyncio.get_running_loop()
    _check_ctx(ctx, "server" if server_side else "client")
    timeout = _check_timeout(handshake_timeout)
    _check_session(session, None, server_side)
    plain = writer.transport
    if plain.is_closing():
        raise Closed("start_tls: the plain connection is closing")
    conn = _new_conn(ctx, None if server_side else server_hostname, session)
    old: Any = reader
    leftover = bytes(old._buffer)
    old._buffer.clear()
    new_reader = asyncio.StreamReader(limit=old._limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(new_reader, loop=loop)
    waiter: "asyncio.Future[None]" = loop.create_future()
    tls = TLSTransport(loop, conn, protocol, waiter, timeout, server_side)
    shim = _Plain(tls)
    plain.set_protocol(shim)
    shim.connection_made(plain)
    if leftover:
        shim.data_received(leftover)
    if isinstance(plain, asyncio.ReadTransport) and not plain.is_reading():
        plain.resume_reading()
    await tls._wait_handshake()
    return new_reader, asyncio.StreamWriter(tls, protocol, new_reader, loop)
