"""retls: TLS writes that keep OpenSSL's retry contract for you.

A write that stops with WantRead/WantWrite is kept by the connection (it
copies the pending bytes), so the caller may drop, mutate or re-slice its
buffer: ``flush()`` finishes the pending write, ``write()`` with the same
bytes resumes it, and ``write()`` with other bytes raises RetryMismatch
without sending anything.

    >>> import retls
    >>> client, server = retls.pair()
    >>> client.write(b"hello")          # the handshake runs implicitly
    ...

The C core is libretls (core/), wrapped by SWIG from bindings/retls.i into
``retls._core``; this module is the idiomatic layer over it.
"""

import builtins as _builtins
import math as _math
import os as _os

from . import _core

__all__ = [
    "Context", "Connection", "Session", "connect", "pair",
    "Error", "WantIO", "WantRead", "WantWrite", "RetryMismatch",
    "ZeroReturn", "SSLError", "VerifyError", "Closed", "WritePending",
    "ArgumentError", "OPENSSL_VERSION",
]

__version__ = _core.version()
OPENSSL_VERSION = _core.openssl_version()


# ---- exceptions -------------------------------------------------------------

class Error(OSError):
    """Base of every retls error.  str(e) is the connection's detail text:
    OpenSSL's reason, the verification result, or retls' own explanation."""


class WantIO(Error):
    """The operation must be repeated once the transport is ready (or, in
    memory mode, once ciphertext was moved).  A pending write is kept by
    the connection: flush() finishes it."""


class WantRead(WantIO):
    """Repeat when the socket is readable (memory mode: after bio_write)."""


class WantWrite(WantIO):
    """Repeat when the socket is writable (memory mode: after bio_read).
    Raised out of sendall(), it carries ``bytes_sent``: the bytes of that
    call acknowledged before the one that is now pending."""
    bytes_sent = 0


class RetryMismatch(Error, ValueError):
    """A write presented other bytes than the pending one.  Nothing was
    sent; flush() finishes the pending write, then write the new data."""


class ZeroReturn(Error):
    """The peer closed the TLS connection cleanly (close_notify)."""


class EOFError(Error, _builtins.EOFError):
    """The peer closed the transport without a close_notify."""


class SSLError(Error):
    """TLS protocol failure, with OpenSSL's reason."""


class VerifyError(SSLError):
    """Certificate verification failed (chain or hostname); the message
    holds OpenSSL's verify result text."""


class Closed(Error):
    """The connection is closed, or failed earlier and can only be closed."""


class WritePending(Error):
    """shutdown()/close() refused: a write is still pending.  flush() it
    first, or close(discard=True) to drop it."""


class TimeoutError(Error, _builtins.TimeoutError):
    """A blocking operation exceeded connect()'s timeout; a write keeps its
    pending bytes and may be repeated."""


class ArgumentError(Error, ValueError):
    """The call does not fit the connection's state or configuration
    (e.g. key_update() on TLS 1.2); the message names the way out."""


# THE table: every status the core can return, to the class raised for it.
# The C wrapper raises from this table (registered below); nothing else in
# the bindings maps statuses.
_EXCEPTIONS = {
    _core.WANT_READ: WantRead,
    _core.WANT_WRITE: WantWrite,
    _core.ZERO_RETURN: ZeroReturn,
    _core.EOF: EOFError,
    _core.SYSCALL: Error,
    _core.SSL: SSLError,
    _core.VERIFY: VerifyError,
    _core.RETRY_MISMATCH: RetryMismatch,
    _core.CLOSED: Closed,
    _core.BAD_ARG: ArgumentError,
    _core.NOMEM: MemoryError,
    _core.WRITE_PENDING: WritePending,
    _core.TIMEOUT: TimeoutError,
}
for _status, _cls in _EXCEPTIONS.items():
    _core.set_exception(_status, _cls)
del _status, _cls
# write() and bio_read() of _core.Conn become hand-written C methods
# (bindings/retls.i, "the hot path").
_core.install_fast_methods()


def _path(value, name):
    if value is None:
        return None
    try:
        value = _os.fspath(value)
    except TypeError:
        raise TypeError(f"{name} must be a path (str or os.PathLike), "
                        f"not {type(value).__name__!r}") from None
    return _text(value, name)


def _text(value, name):
    """Strings go to C as NUL-terminated: refuse what C would truncate."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str or None, "
                        f"not {type(value).__name__!r}")
    if "\0" in value:
        raise ValueError(f"{name} must not contain NUL characters")
    return value


# ---- contexts ---------------------------------------------------------------

class Context:
    """TLS settings shared by many connections (an SSL_CTX).

    role is "client" or "server".  verify: clients check the server's
    certificate and hostname (default True); servers require a client
    certificate (default False: None means "the role's default").
    alpn is a sequence of protocol names in preference order.  keylog is
    a path that receives the TLS secrets in NSS key log format.
    partial_write lets write() return after fewer bytes than given.
    renegotiation=False refuses TLS 1.2 renegotiation from the peer.

    Sessions and 0-RTT: early_data=max_bytes lets a server accept TLS 1.3
    early data (read with Connection.read_early(); off by default).
    early_data_replay (clients, default True) sends early data the server
    rejected again as ordinary data right after the handshake; with False
    it is left in Connection.early_data_rejected_bytes.  tickets=N sets the
    session tickets a server issues (0: none, resumption by session ID).
    alpn_strict (servers, default True) ends a handshake whose client
    offers none of the server's ALPN protocols with RFC 7301's
    no_application_protocol alert; False continues without ALPN.
    """

    def __init__(self, role="client", *, verify=None, cafile=None,
                 capath=None, certfile=None, keyfile=None,
                 min_version="TLSv1.2", max_version=None, ciphers=None,
                 ciphersuites=None, alpn=None, keylog=None,
                 partial_write=False, auto_retry=True, renegotiation=True,
                 early_data=None, early_data_replay=None, tickets=None,
                 alpn_strict=None):
        if role not in ("client", "server"):
            raise ValueError(f"role must be 'client' or 'server', not {role!r}")
        self.role = role
        self._c = c = _core.ctx_new(_core.CLIENT if role == "client"
                                    else _core.SERVER)
        if verify is not None:
            c.set_verify(bool(verify))
        cafile, capath = _path(cafile, "cafile"), _path(capath, "capath")
        if cafile is not None or capath is not None:
            c.load_verify(cafile, capath)
        certfile, keyfile = _path(certfile, "certfile"), _path(keyfile, "keyfile")
        if certfile is not None:
            c.use_certificate(certfile, keyfile)
        elif keyfile is not None:
            raise ValueError("keyfile needs a certfile")
        c.set_versions(_text(min_version, "min_version"),
                       _text(max_version, "max_version"))
        if ciphers is not None:
            c.set_ciphers(_text(ciphers, "ciphers"))
        if ciphersuites is not None:
            c.set_ciphersuites(_text(ciphersuites, "ciphersuites"))
        if alpn is not None:
            c.set_alpn(_alpn_list(alpn))
        if keylog is not None:
            c.set_keylog(_path(keylog, "keylog"))
        c.set_partial_write(bool(partial_write))
        c.set_auto_retry(bool(auto_retry))
        c.set_renegotiation(bool(renegotiation))
        # None means "the role's default"; a value for the other role's
        # option raises ArgumentError naming it.
        if early_data is not None:
            c.set_early_data(_count(early_data, "early_data", 2**32 - 1))
        # retls.aio servers start with read_early() when this is > 0.
        self._early_data = early_data or 0
        if early_data_replay is not None:
            c.set_early_data_replay(bool(early_data_replay))
        if tickets is not None:
            c.set_tickets(_count(tickets, "tickets", 100))
        if alpn_strict is not None:
            c.set_alpn_strict(bool(alpn_strict))

    def use_selfsigned(self, common_name="localhost"):
        """Use a throwaway self-signed certificate (tests and demos)."""
        self._c.use_selfsigned(_text(common_name, "common_name"))

    def __repr__(self):
        return f"<retls.Context {self.role}>"


def _count(value, name, most):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__!r}")
    if not 0 <= value <= most:
        raise ValueError(f"{name} must be in 0..{most}, not {value}")
    return value


# ---- sessions ---------------------------------------------------------------

class Session:
    """A resumable TLS session (TLS 1.3 ticket, TLS 1.2 session ID or
    ticket), from ``conn.session``.  Immutable.  ``to_bytes()`` gives a
    portable form (it holds the session's secret: store it like a key);
    ``Session.from_bytes()`` rebuilds it, in this process or another."""

    __slots__ = ("_s",)

    def __init__(self):
        raise TypeError("sessions come from conn.session or "
                        "Session.from_bytes()")

    @classmethod
    def _wrap(cls, s):
        self = object.__new__(cls)
        self._s = s
        return self

    @classmethod
    def from_bytes(cls, data):
        """Rebuild a session from to_bytes() output.  ArgumentError for
        garbage or truncated bytes; TypeError for non-bytes."""
        if isinstance(data, str):
            raise TypeError("session bytes must be bytes-like, not str "
                            "(read the file in binary mode)")
        return cls._wrap(_core.session_from_bytes(data))

    def to_bytes(self):
        """The portable form (DER of OpenSSL's SSL_SESSION)."""
        return self._s.to_bytes()

    @property
    def is_resumable(self):
        """True when it can be offered for resumption."""
        return bool(self._s.is_resumable())

    @property
    def ticket_lifetime(self):
        """Seconds the server said its ticket is valid (0: none given)."""
        return self._s.ticket_lifetime()

    @property
    def max_early_data(self):
        """Early-data bytes the server accepts with it (0: no 0-RTT)."""
        return self._s.max_early_data()

    def __eq__(self, other):
        return isinstance(other, Session) and other.to_bytes() == self.to_bytes()

    def __hash__(self):
        return hash(self.to_bytes())

    def __repr__(self):
        return (f"<retls.Session resumable={self.is_resumable} "
                f"ticket_lifetime={self.ticket_lifetime}>")


def _session_arg(session):
    if session is None:
        return None
    if not isinstance(session, Session):
        raise TypeError(f"session must be a retls.Session or None, not "
                        f"{type(session).__name__!r} (for bytes use "
                        f"retls.Session.from_bytes())")
    return session._s


_EARLY_NAMES = {_core.EARLY_NOT_SENT: "not_sent",
                _core.EARLY_REJECTED: "rejected",
                _core.EARLY_ACCEPTED: "accepted"}


def _alpn_list(alpn):
    if isinstance(alpn, (str, bytes)):
        raise TypeError("alpn must be a sequence of protocol names, e.g. "
                        "['h2', 'http/1.1'], not a single string")
    try:
        names = list(alpn)
    except TypeError:
        raise TypeError(f"alpn must be a sequence of protocol names, e.g. "
                        f"['h2', 'http/1.1'], not {type(alpn).__name__!r}"
                        ) from None
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"alpn protocol names must be str, not "
                            f"{type(name).__name__!r}")
        if not name or "," in name or len(name.encode()) > 255:
            raise ValueError(f"bad alpn protocol name {name!r}: need 1..255 "
                             f"bytes without ','")
    return ",".join(names)


def _ctx_arg(ctx, name):
    if ctx is None:
        return None
    if not isinstance(ctx, Context):
        raise TypeError(f"{name} must be a retls.Context or None, not "
                        f"{type(ctx).__name__!r}")
    return ctx._c


# ---- connections ------------------------------------------------------------

_WANT_NAMES = {_core.WANT_READ: "read", _core.WANT_WRITE: "write"}

# The most read() asks of the core in one call.  The core allocates the
# whole size up front, and SSL_read returns one record (at most 16 KiB) per
# call anyway, so read(2**40) must not mean a terabyte-sized allocation.
_READ_MAX = 1 << 16


class Connection:
    """One TLS connection.

    sock is a connected socket object, an int fd, or None for memory mode
    (move ciphertext with bio_write()/bio_read()).  Memory mode is
    unbounded by default, like ssl.MemoryBIO: every write succeeds and its
    ciphertext waits for bio_read().  capacity=N bounds the outgoing
    ciphertext buffer instead: a write that does not fit raises WantWrite
    until bio_read() made room.  The connection never closes a
    socket it did not open; it keeps the socket object (and the context)
    alive as long as it needs them.
    """

    def __init__(self, ctx, sock=None, *, server_hostname=None,
                 session=None, capacity=None):
        cctx = _ctx_arg(ctx, "ctx")
        if cctx is None:
            raise TypeError("ctx must be a retls.Context")
        _text(server_hostname, "server_hostname")
        sess = _session_arg(session)
        if sock is None:
            c = _core.conn_new_memory(
                cctx, server_hostname,
                0 if capacity is None else _capacity(capacity))
        else:
            c = _core.conn_new_fd(cctx, _fileno_of(sock), 0, server_hostname)
        if sess is not None:
            c.set_session(sess)
        self._setup(c, ctx, sock, memory=sock is None)
        self._memory = sock is None

    @classmethod
    def _wrap(cls, c, ctx, sock):
        self = cls.__new__(cls)
        self._setup(c, ctx, sock)
        self._memory = False
        return self

    def _setup(self, c, ctx, sock, memory=False):
        self._c = c
        self.context = ctx       # keeps the context alive
        self._sock = sock        # keeps the socket object (and its fd) alive
        # The hot calls go straight to the C methods: no Python frame per
        # call.  The methods below stay for help() and for subclasses that
        # override them (then nothing is bound).  read() keeps its frame for
        # its default size.
        cls = type(self)
        if cls.write is Connection.write:
            self.write = c.write
        if cls.flush is Connection.flush:
            self.flush = c.flush
        # bio_read only in memory mode: elsewhere it only raises, and the
        # bound method would cost every socket connection 72 bytes.
        if memory and cls.bio_read is Connection.bio_read:
            self.bio_read = c.bio_read

    # -- the write path: straight into C ----------------------------------

    def write(self, data):
        """Write a bytes-like object; returns the bytes taken (all of them
        unless the context has partial_write).

        The retry contract: when the transport is not ready the write
        raises WantRead/WantWrite and the connection keeps a copy of the
        pending bytes, so your buffer may be dropped or changed.  Wait for
        the socket (memory mode: move ciphertext), then call flush(), or
        write() again with the same bytes.  A write with other bytes while
        one is pending raises RetryMismatch and sends nothing.
        """
        return self._c.write(data)

    def flush(self):
        """Finish the pending write; returns its bytes now acknowledged
        (0 when nothing was pending)."""
        return self._c.flush()

    @property
    def pending_write(self):
        """Bytes of a pending write (0 if none)."""
        return self._c.pending_write()

    @property
    def want(self):
        """What the last operation waits for: "read", "write" or None."""
        return _WANT_NAMES.get(self._c.want())

    def sendall(self, data):
        """Write all of data.  A WantRead/WantWrite raised out of it carries
        e.bytes_sent, the bytes acknowledged before the pending part
        data[e.bytes_sent:]: after the wait, flush() and then sendall()
        whatever flush() did not cover."""
        view = memoryview(data)
        try:
            if view.format != "B" or view.ndim != 1:
                view = view.cast("B")
            total = view.nbytes
            sent = 0
            while sent < total:
                try:
                    sent += self._c.write(view[sent:] if sent else view)
                except WantIO as e:
                    e.bytes_sent = sent
                    raise
        finally:
            view.release()

    def read(self, n=16384):
        """Read up to n decrypted bytes (at least 1).  ZeroReturn when the
        peer closed cleanly."""
        if type(n) is int and n > _READ_MAX:
            n = _READ_MAX
        return self._c.read(n)

    @property
    def pending_read(self):
        """Decrypted bytes readable without I/O."""
        return self._c.pending_read()

    def do_handshake(self):
        """Run or continue the handshake (optional: write/read do it)."""
        self._c.handshake()

    def shutdown(self):
        """Send close_notify (the peer's is not awaited: read until
        ZeroReturn for that).  WritePending while a write is pending."""
        self._c.shutdown()

    def close(self, *, discard=False):
        """Free the TLS state; no close_notify (see shutdown()).  With a
        write pending it raises WritePending unless discard=True.  The
        socket given to the constructor is not closed.  Closing twice is
        fine; every later operation raises Closed."""
        self._c.close(_core.CLOSE_DISCARD if discard else 0)
        self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        # Leaving on an exception may leave a write pending that nobody
        # will flush; raising WritePending then would hide the real error.
        self.close(discard=exc_type is not None)

    def renegotiate(self):
        """Schedule a TLS 1.2 renegotiation (runs at the next I/O)."""
        self._c.renegotiate()

    def key_update(self, request_peer=False):
        """Schedule a TLS 1.3 KeyUpdate, sent with the next write."""
        self._c.key_update(bool(request_peer))

    # -- sessions and 0-RTT -------------------------------------------------

    @property
    def session(self):
        """The newest resumable session (clients), or None.  In TLS 1.3 the
        server sends its tickets after the handshake: they arrive with the
        first read."""
        s = self._c.session()
        return None if s is None else Session._wrap(s)

    @property
    def session_reused(self):
        """True when the handshake resumed a session."""
        return bool(self._c.session_reused())

    def write_early(self, data):
        """Send data as TLS 1.3 0-RTT early data before the handshake
        (clients with a session whose server allows it; ArgumentError
        otherwise, and after the handshake).  Same contract as write():
        WantRead/WantWrite keep a copy, flush() finishes it, other bytes
        raise RetryMismatch.  If the server rejects the early data it is
        sent again after the handshake (Context early_data_replay)."""
        return self._c.write_early(data)

    @property
    def early_data_status(self):
        """"accepted", "rejected" or "not_sent" once the handshake is
        done; None before."""
        return _EARLY_NAMES.get(self._c.early_data_status())

    @property
    def early_data_rejected_bytes(self):
        """With early_data_replay=False: the early bytes the server
        rejected, which were not sent again (b"" if none)."""
        return self._c.early_data_rejected_bytes() or b""

    def read_early(self, n=16384):
        """Servers (Context early_data=...): read early data.  Call it
        first, until it returns b"" (the early data has ended or there was
        none); then read() the rest."""
        if type(n) is int and n > _READ_MAX:
            n = _READ_MAX
        if type(n) is int and n < 1:
            raise ValueError(f"n must be >= 1, not {n}")
        return self._c.read_early(n)

    # -- memory mode -------------------------------------------------------

    def bio_write(self, data):
        """Memory mode: feed ciphertext received from the peer."""
        return self._c.bio_write(data)

    def bio_read(self, n=-1):
        """Memory mode: take up to n bytes of ciphertext for the peer (all
        that is waiting when n is omitted or negative, in one bytes
        object); b"" when nothing is waiting.  Never allocates more than is
        waiting, whatever n says."""
        return self._c.bio_read(n)

    @property
    def bio_pending(self):
        """Memory mode: ciphertext bytes waiting for bio_read()."""
        return self._c.bio_pending()

    def bio_write_eof(self):
        """Memory mode: the peer's byte stream has ended."""
        self._c.bio_write_eof()

    # -- information --------------------------------------------------------

    @property
    def version(self):
        """"TLSv1.3" etc., None before the handshake."""
        return self._c.version()

    @property
    def cipher(self):
        return self._c.cipher()

    @property
    def alpn_protocol(self):
        """The ALPN protocol agreed, or None."""
        return self._c.alpn()

    @property
    def peer_certificate(self):
        """The peer's certificate in DER, or None."""
        return self._c.peer_certificate()

    # -- channel binding, key export, chains (pyOpenSSL's get_finished,
    # get_peer_finished, export_keying_material, get_peer_cert_chain) ------

    @property
    def finished(self):
        """The last Finished message this end sent (b"" before the
        handshake): the peer's peer_finished.  In TLS 1.2 the client's
        first one is the tls-unique channel binding."""
        return self._c.finished(64, 0)

    @property
    def peer_finished(self):
        """The last Finished message received from the peer (b"" before
        the handshake)."""
        return self._c.finished(64, 1)

    def export_keying_material(self, label, length, context=None):
        """length bytes from the TLS exporter (RFC 5705; RFC 8446 7.5),
        the same on both ends for the same label, length and context.
        context=None is "no context", which TLS 1.2 tells apart from b"".
        ArgumentError before the handshake and for the labels TLS 1.2
        reserves ("master secret", "key expansion", ...)."""
        _text(label, "label")
        if label is None:
            raise TypeError("label must be a str, not None")
        if isinstance(length, bool) or not isinstance(length, int):
            raise TypeError(f"length must be an int, not "
                            f"{type(length).__name__!r}")
        if not 1 <= length <= 1 << 30:
            raise ValueError(f"length must be in 1..{1 << 30}, not {length}")
        if isinstance(context, str):
            raise TypeError("context must be bytes-like or None, not 'str' "
                            "(encode it first)")
        return self._c.export_keying_material(
            length, label, b"" if context is None else context,
            context is not None)

    def _chain(self, local):
        chain = []
        while True:
            der = self._c.chain_certificate(local, len(chain))
            if der is None:
                return chain
            chain.append(der)

    @property
    def peer_chain(self):
        """The peer's certificates in DER, its own first, then the chain it
        sent (on both ends; [] before the handshake or when it sent none)."""
        return self._chain(0)

    @property
    def local_chain(self):
        """This end's certificates in DER, its own first ([] without one)."""
        return self._chain(1)

    @property
    def server_name(self):
        """The SNI host name: on a server the one the client sent, on a
        client the one it sends (None for an IP address, or none)."""
        return self._c.server_name()

    @property
    def stats(self):
        s = self._c.stats()
        return {
            "writes": s.writes, "bytes_written": s.bytes_written,
            "want_read": s.want_read, "want_write": s.want_write,
            "retries": s.retries, "mismatches": s.mismatches,
            "bytes_read": s.bytes_read,
            "early_bytes": s.early_bytes, "early_replayed": s.early_replayed,
        }

    @property
    def established(self):
        """True once the handshake has completed."""
        return bool(self._c.is_established())

    def fileno(self):
        """The socket's fd; -1 in memory/pair mode and after close()."""
        return self._c.fileno()

    def __repr__(self):
        try:
            return (f"<retls.Connection {self._c.version() or 'no session'} "
                    f"fd={self._c.fileno()}>")
        except ArgumentError:   # refused: another thread is blocked in it
            return "<retls.Connection (in a call in another thread)>"


def _capacity(capacity):
    if isinstance(capacity, bool) or not isinstance(capacity, int):
        raise TypeError(f"capacity must be an int, not "
                        f"{type(capacity).__name__!r}")
    if capacity < 1:
        raise ValueError(f"capacity must be >= 1 byte, not {capacity}")
    if capacity > _MAX_SIZE:
        raise OverflowError(f"capacity must be at most {_MAX_SIZE} bytes, "
                            f"not {capacity}")
    return capacity


_MAX_SIZE = 2**63 - 1   # size_t is wider; Python sizes stop here


def _fileno_of(sock):
    if isinstance(sock, bool) or not isinstance(sock, int):
        fileno = getattr(sock, "fileno", None)
        if fileno is None:
            raise TypeError(f"sock must be a socket object, an int fd or None,"
                            f" not {type(sock).__name__!r}")
        timeout = sock.gettimeout() if hasattr(sock, "gettimeout") else None
        if timeout not in (None, 0.0):
            # A Python socket timeout puts the fd in non-blocking mode, and
            # retls works on the fd: the timeout would surface as WantRead/
            # WantWrite at random.  Ask for an explicit choice instead.
            raise ValueError(
                f"the socket has a timeout ({timeout} s), which retls cannot "
                f"honour on the raw fd; use sock.setblocking(True), or "
                f"sock.setblocking(False) with select, or retls.connect(..., "
                f"timeout=...)")
        sock = fileno()
    if sock < 0:
        raise ValueError(f"sock is closed (fd {sock})")
    if sock > 2**31 - 1:
        raise ValueError(f"fd {sock} is out of range for a file descriptor")
    return sock


def connect(host, port, ctx=None, *, server_hostname=None, timeout=None,
            session=None):
    """Open a TCP connection to host:port and wrap it (handshake not done
    yet).  ctx defaults to a verifying client Context; server_hostname
    defaults to host.  timeout (seconds) bounds the connect and every later
    blocking read/write (TimeoutError).  session resumes a retls.Session.
    The connection owns the socket."""
    sess = _session_arg(session)
    if ctx is None:
        ctx = Context("client")
    cctx = _ctx_arg(ctx, "ctx")
    if not isinstance(host, str):
        raise TypeError(f"host must be a str, not {type(host).__name__!r}")
    _text(host, "host")
    _text(server_hostname, "server_hostname")
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"port must be an int, not {type(port).__name__!r}")
    if not 1 <= port <= 65535:
        raise ArgumentError(f"connect: need a port in 1..65535, not {port}")
    if timeout is None:
        timeout_ms = 0
    elif isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds or None, not "
                        f"{type(timeout).__name__!r}")
    elif timeout > 0:
        timeout_ms = min(max(1, _math.ceil(timeout * 1000)), 2**31 - 1)
    else:
        raise ValueError(f"timeout must be > 0 seconds or None, not {timeout!r}")
    c = _core.connect(cctx, host, port, timeout_ms, server_hostname)
    if sess is not None:
        c.set_session(sess)
    return Connection._wrap(c, ctx, None)


def pair(client_ctx=None, server_ctx=None, *, capacity=16384,
         handshake=True, session=None):
    """Two connected ends over an in-process BIO pair, (client, server).
    capacity bounds the buffer in each direction: a write that does not fit
    raises WantWrite until the other end reads.  Without contexts: a client
    that does not verify and a server with a throwaway certificate.  The
    handshake is done before returning unless handshake=False (then call
    do_handshake() on both ends in turn until both succeed).  session: the
    client resumes it."""
    sess = _session_arg(session)
    cc, sc = _ctx_arg(client_ctx, "client_ctx"), _ctx_arg(server_ctx, "server_ctx")
    capacity = _capacity(capacity)
    if cc is None or sc is None:
        dc, ds = _pair_defaults()
        cc = dc if cc is None else cc
        sc = ds if sc is None else sc
    client, server = _core.pair_new(cc, sc, capacity)
    if sess is not None:
        client.set_session(sess)
    ends = (Connection._wrap(client, client_ctx, None),
            Connection._wrap(server, server_ctx, None))
    if handshake:
        _handshake_pair(*ends)
    return ends


_PAIR_DEFAULTS = []


def _pair_defaults():
    """The contexts pair() uses when given none, made once per process:
    a client context costs tens of milliseconds (OpenSSL loads the system
    trust store), and a throwaway certificate a key generation."""
    if not _PAIR_DEFAULTS:
        client = _core.ctx_new(_core.CLIENT)
        client.set_verify(False)
        server = _core.ctx_new(_core.SERVER)
        server.use_selfsigned("localhost")
        _PAIR_DEFAULTS[:] = [client, server]
    return _PAIR_DEFAULTS


def _handshake_pair(a, b):
    """Drive the handshake of two ends that only talk to each other (a
    pair, or two memory connections whose ciphertext is moved here) until
    both are done.  Raises the first real failure."""
    done = [False, False]
    for _ in range(1000):
        for i, (me, peer) in enumerate(((a, b), (b, a))):
            if not done[i]:
                try:
                    me.do_handshake()
                    done[i] = True
                except WantIO:
                    pass
            if me._memory:
                data = me.bio_read()
                if data:
                    peer.bio_write(data)
        if all(done):
            return
    raise Error("handshake made no progress after 1000 rounds")
