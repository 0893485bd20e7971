/*
 * retls.h - the TLS write path that keeps OpenSSL's retry contract for you.
 *
 * The only public header of libretls.  It wraps OpenSSL 3 SSL_CTX / SSL
 * objects behind two opaque types, retls_ctx and retls_conn.
 *
 * WHY THIS LIBRARY EXISTS
 * -----------------------
 * SSL_write(3) may stop with SSL_ERROR_WANT_READ or SSL_ERROR_WANT_WRITE on
 * a non-blocking socket or a buffering BIO, and then "it must be repeated
 * with the same arguments".  OpenSSL has already encrypted (and partly sent)
 * some of those bytes and remembers how far it got, so:
 *
 *   - a retry with FEWER bytes fails with "bad length" (fatally from 3.2);
 *   - a retry with the SAME LENGTH but other bytes is accepted, and the
 *     bytes OpenSSL already encrypted from the first call are sent: the new
 *     bytes are silently ignored for that part;
 *   - a retry from another address fails ("bad write retry") unless
 *     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER is set.
 *
 * Scripting runtimes break the rule by accident: strings move or are
 * collected, callers re-slice data[n:], threads mutate buffers.  libretls
 * therefore owns the retry state: when a write stops on WANT_*, the
 * connection copies the pending bytes into a buffer it owns and from then on
 * repeats SSL_write from that copy.  A later write with identical bytes
 * resumes it; a write with different bytes returns RETLS_RETRY_MISMATCH
 * without calling OpenSSL (nothing sent, nothing lost), and
 * retls_conn_flush() finishes the pending write without the caller
 * re-supplying it.  The state machine lives in core/src/write.c.
 *
 * CONVENTIONS
 * -----------
 * - Every fallible call returns an int holding a retls_status.  RETLS_OK is
 *   0, the two retryable statuses are positive, failures are negative.
 * - Output parameters come first and are named out.
 * - Each connection keeps the text of its last failure
 *   (retls_conn_last_error(), never NULL); the status alone is enough to
 *   detect an error, the text is for humans.
 * - retls_*_free(NULL) is a no-op.
 *
 * THREADS
 * -------
 * A retls_conn must be used from one thread at a time (callers serialise).
 * A retls_ctx may be shared by many connections and threads once configured;
 * configure it before creating connections from it.  Reference counting of
 * contexts is atomic.  A failed connection creation explains itself in the
 * context's last error, one text per context: read it right after the
 * failure, and expect another thread's failure on the same context to
 * replace it (tests/c/test_threads.c runs all this under ThreadSanitizer).
 *
 * SIGPIPE
 * -------
 * On fd transports OpenSSL writes with write(2); a write to a socket whose
 * peer has gone raises SIGPIPE.  Python ignores SIGPIPE by default, the Lua
 * module ignores it when loaded (as LuaSocket does); C programs should do
 * the same, then a vanished peer shows up as RETLS_SYSCALL.
 */
#ifndef RETLS_H
#define RETLS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RETLS_VERSION "0.1.0"

/*
 * The status list.  XX(NAME, value, message) generates the enum,
 * retls_status_name() and retls_strerror(), so names and messages cannot
 * drift apart.  Every value SSL_get_error() can yield maps to one of these:
 *
 *   SSL_ERROR_NONE                -> RETLS_OK
 *   SSL_ERROR_WANT_READ, _ACCEPT  -> RETLS_WANT_READ
 *   SSL_ERROR_WANT_WRITE, _CONNECT-> RETLS_WANT_WRITE
 *   SSL_ERROR_ZERO_RETURN         -> RETLS_ZERO_RETURN
 *   SSL_ERROR_SYSCALL             -> RETLS_EOF (no errno) or RETLS_SYSCALL
 *   SSL_ERROR_SSL                 -> RETLS_VERIFY (certificate checks),
 *                                    RETLS_EOF (unexpected EOF) or RETLS_SSL
 *   SSL_ERROR_WANT_X509_LOOKUP, _ASYNC, _ASYNC_JOB, _CLIENT_HELLO_CB,
 *   _RETRY_VERIFY                 -> RETLS_SSL (libretls installs no callback
 *                                    that suspends, so these mean a bug)
 */
#define RETLS_STATUS_MAP(XX)                                                  \
  XX(OK, 0, "success")                                                        \
  XX(WANT_READ, 1, "the operation must be repeated when the transport is "    \
     "readable (or after the peer's data was fed in)")                       \
  XX(WANT_WRITE, 2, "the operation must be repeated when the transport is "   \
     "writable (or after outgoing data was drained)")                        \
  XX(ZERO_RETURN, -1, "the peer closed the TLS connection cleanly "           \
     "(close_notify)")                                                        \
  XX(EOF, -2, "the transport was closed without a TLS close_notify "          \
     "(unexpected EOF)")                                                      \
  XX(SYSCALL, -3, "transport I/O error")                                      \
  XX(SSL, -4, "TLS protocol error")                                           \
  XX(VERIFY, -5, "certificate verification failed")                           \
  XX(RETRY_MISMATCH, -6, "the retry presented other bytes than the pending "  \
     "write; call flush() to finish the pending write first")                 \
  XX(CLOSED, -7, "the connection is closed")                                  \
  XX(BAD_ARG, -8, "bad argument")                                             \
  XX(NOMEM, -9, "out of memory")                                              \
  XX(WRITE_PENDING, -10, "a write is still pending; flush() it first, or "    \
     "close with RETLS_CLOSE_DISCARD to drop it")                             \
  XX(TIMEOUT, -11, "the operation timed out")

typedef enum {
#define RETLS__ENUM(name, value, msg) RETLS_##name = value,
  RETLS_STATUS_MAP(RETLS__ENUM)
#undef RETLS__ENUM
  RETLS__STATUS_END = -12
} retls_status;

/** Symbolic name of a status ("RETLS_WANT_WRITE"); "RETLS_UNKNOWN" for
 *  values outside the list.  Never NULL, static storage. */
const char *retls_status_name(int status);

/** One-line human description of a status.  Never NULL, static storage. */
const char *retls_strerror(int status);

/** RETLS_VERSION of the library actually linked. */
const char *retls_version(void);

/** OpenSSL's version text ("OpenSSL 3.0.19 27 Jan 2026"). */
const char *retls_openssl_version(void);

/* ------------------------------------------------------------------------ */
/* Contexts                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct retls_ctx retls_ctx;
typedef struct retls_conn retls_conn;

typedef enum { RETLS_CLIENT = 0, RETLS_SERVER = 1 } retls_role;

/**
 * Create a context.
 *
 * Defaults: minimum TLS 1.2, no compression, only secure renegotiation
 * (RFC 5746), SSL_MODE_AUTO_RETRY on, partial writes off.  Clients verify
 * the server certificate against the system trust store and check the
 * hostname given to the connection (which is also sent as SNI).  Servers
 * do not ask for client certificates unless retls_ctx_set_verify(ctx, 1),
 * choose automatic DH parameters (so TLS 1.2 clients offering only DHE
 * suites are served), reject clients whose ALPN offer has nothing in
 * common with theirs (retls_ctx_set_alpn_strict) and issue session
 * tickets.  Clients keep the newest session the server gives them
 * (retls_conn_session()).
 *
 * @param[out] out   the new context; the caller owns one reference and
 *                   releases it with retls_ctx_free()
 * @param role       RETLS_CLIENT or RETLS_SERVER
 * @return RETLS_OK, RETLS_BAD_ARG, RETLS_NOMEM or RETLS_SSL
 */
int retls_ctx_new(retls_ctx **out, retls_role role);

/** Drop the caller's reference.  Connections hold their own reference, so
 *  a context outlives every connection made from it.  NULL is a no-op. */
void retls_ctx_free(retls_ctx *ctx);

/** The role given to retls_ctx_new(). */
retls_role retls_ctx_role(const retls_ctx *ctx);

/** Text of the last configuration failure on this context; "" if none.
 *  Never NULL; valid until the next call on the context. */
const char *retls_ctx_last_error(const retls_ctx *ctx);

/** Turn peer verification on or off.  Clients: server certificate and
 *  hostname.  Servers: require a client certificate. */
int retls_ctx_set_verify(retls_ctx *ctx, int on);

/** Trust the CAs in a PEM file and/or a hashed directory (either may be
 *  NULL, not both).  Replaces nothing: adds to the trust store. */
int retls_ctx_load_verify(retls_ctx *ctx, const char *cafile,
                          const char *capath);

/** Use a certificate (PEM; the file may hold the chain after the leaf) and
 *  its private key (PEM; NULL means the key is in certfile). */
int retls_ctx_use_certificate(retls_ctx *ctx, const char *certfile,
                              const char *keyfile);

/** Generate a throwaway self-signed certificate (EC P-256, valid one day)
 *  for common_name (NULL: "localhost") and use it.  For tests and demos. */
int retls_ctx_use_selfsigned(retls_ctx *ctx, const char *common_name);

/** Protocol bounds: "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3", or NULL/""
 *  for OpenSSL's limit.  The default minimum is TLSv1.2. */
int retls_ctx_set_versions(retls_ctx *ctx, const char *min_version,
                           const char *max_version);

/** TLS 1.2-and-below cipher list (OpenSSL syntax). */
int retls_ctx_set_ciphers(retls_ctx *ctx, const char *list);

/** TLS 1.3 ciphersuites (OpenSSL syntax, e.g. "TLS_AES_128_GCM_SHA256"). */
int retls_ctx_set_ciphersuites(retls_ctx *ctx, const char *list);

/** ALPN protocols as a comma-separated list in preference order
 *  ("h2,http/1.1").  Clients offer them; servers pick the first of their
 *  own list that the client offered.  NULL or "" clears. */
int retls_ctx_set_alpn(retls_ctx *ctx, const char *protocols);

/** Append TLS secrets to path in the NSS key log format (for Wireshark).
 *  NULL stops logging.  Only ever done when asked. */
int retls_ctx_set_keylog(retls_ctx *ctx, const char *path);

/** SSL_MODE_AUTO_RETRY (default on): blocking reads retry transparently
 *  after non-application records. */
int retls_ctx_set_auto_retry(retls_ctx *ctx, int on);

/** SSL_MODE_ENABLE_PARTIAL_WRITE (default off): write may return having
 *  taken fewer bytes than given (each completed record counts). */
int retls_ctx_set_partial_write(retls_ctx *ctx, int on);

/** Largest TLS record payload to send (512..16384). */
int retls_ctx_set_max_send_fragment(retls_ctx *ctx, size_t size);

/**
 * Servers: accept TLS 1.3 0-RTT early data of up to max_bytes per
 * connection (0, the default, refuses it).  Early data is only accepted by
 * a connection whose first operation is retls_conn_read_early(); the
 * tickets issued from then on allow early data.  OpenSSL's anti-replay
 * protection stays on: a ticket is good for early data once.
 * RETLS_BAD_ARG on a client context (clients send early data with
 * retls_conn_write_early() when their session allows it).
 */
int retls_ctx_set_early_data(retls_ctx *ctx, size_t max_bytes);

/**
 * Clients: what happens to early data the server rejects (default on).
 * On: after the handshake the rejected bytes are sent again as ordinary
 * application data, exactly once, before any later write (counted in
 * retls_stats.early_replayed).  Off: they are not sent;
 * retls_conn_early_data_rejected_bytes() hands them back so the caller
 * decides.  RETLS_BAD_ARG on a server context.
 */
int retls_ctx_set_early_data_replay(retls_ctx *ctx, int on);

/**
 * Servers: TLS 1.3 session tickets sent after each full handshake
 * (OpenSSL's default 2).  0 turns tickets off, in TLS 1.2 too (resumption
 * then uses session IDs from the server's cache).  RETLS_BAD_ARG on a
 * client context or above 100.
 */
int retls_ctx_set_tickets(retls_ctx *ctx, size_t count);

/**
 * Servers: when ALPN protocols are configured and the client offers ALPN
 * but none of them, end the handshake with the fatal no_application_protocol
 * alert as RFC 7301 section 3.2 requires (on by default).  Off: continue
 * without ALPN, as CPython's ssl does.  A client that offers no ALPN at all
 * is accepted either way.  RETLS_BAD_ARG on a client context.
 */
int retls_ctx_set_alpn_strict(retls_ctx *ctx, int on);

/** Honour renegotiation requests from the peer (default on, secure
 *  renegotiation only).  Off sets SSL_OP_NO_RENEGOTIATION.  On a server it
 *  also allows client-initiated renegotiation. */
int retls_ctx_set_renegotiation(retls_ctx *ctx, int on);

/* ------------------------------------------------------------------------ */
/* Connections and their transports                                         */
/* ------------------------------------------------------------------------ */

/** Flags for retls_conn_new_fd(). */
#define RETLS_FD_OWN 1 /* close(2) the fd when the connection is closed */

/**
 * Wrap an existing connected socket, blocking or non-blocking.  The
 * connection never closes fd unless RETLS_FD_OWN is given.
 *
 * @param[out] out         the connection; free with retls_conn_free()
 * @param ctx              context (a reference is taken)
 * @param fd               a connected stream socket
 * @param flags            0 or RETLS_FD_OWN
 * @param server_name      clients: hostname to verify and send as SNI (an
 *                         IP address is verified, not sent); NULL allowed
 *                         only when verification is off.  Servers: NULL.
 */
int retls_conn_new_fd(retls_conn **out, retls_ctx *ctx, int fd, int flags,
                      const char *server_name);

/**
 * Connect a new TCP socket to host:port (blocking) and wrap it; the
 * connection owns the socket.  timeout_ms > 0 bounds the connect and every
 * later blocking read or write (they then fail with RETLS_TIMEOUT, a write
 * keeping its pending bytes); 0 means no timeout.  The handshake is not
 * done yet.  server_name NULL means host.
 */
int retls_connect(retls_conn **out, retls_ctx *ctx, const char *host,
                  int port, int timeout_ms, const char *server_name);

/**
 * Name the server of a client connection before its handshake starts:
 * the SNI sent and the name (or IP address) the certificate is verified
 * against, replacing the server_name given at creation.  RETLS_BAD_ARG on
 * a server connection, for an empty name, or once the handshake started.
 * (LuaSec's conn:sni(name) is called between wrap and handshake.)
 */
int retls_conn_set_server_name(retls_conn *conn, const char *server_name);

/**
 * Memory mode: no socket.  The caller moves ciphertext itself with
 * retls_conn_bio_write() (bytes from the peer) and retls_conn_bio_read()
 * (bytes for the peer), as CPython's SSLObject does.
 *
 * capacity 0 means unbounded, like ssl.MemoryBIO: every write succeeds
 * (a 300 KiB write leaves all its ciphertext waiting for
 * retls_conn_bio_read) and the outgoing buffer grows as needed; it is
 * given back when the connection goes idle (see below).  capacity N > 0
 * bounds the outgoing buffer to N bytes (allocated at once): when it is
 * full, writes stop with RETLS_WANT_WRITE until the caller drains it.
 *
 * Idle memory: after a completed handshake (every transport), and when a
 * read finds nothing more to read on an established connection with no
 * write pending (socket and memory mode), OpenSSL's record buffers (about
 * 17 KiB each way) and an empty unbounded outgoing buffer are freed; the
 * next read or write allocates them again.  A writer that keeps writing
 * keeps its buffers.
 */
int retls_conn_new_memory(retls_conn **out, retls_ctx *ctx,
                          const char *server_name, size_t capacity);

/** Feed ciphertext received from the peer.  *out = bytes taken. */
int retls_conn_bio_write(size_t *out, retls_conn *conn, const void *buf,
                         size_t len);

/** Take up to len bytes of ciphertext for the peer.  *out = bytes given
 *  (0 when nothing is waiting; that is not an error). */
int retls_conn_bio_read(size_t *out, retls_conn *conn, void *buf,
                        size_t len);

/**
 * Memory mode, without a copy: *out points at the first byte of
 * ciphertext waiting for the peer and *out_len says how many follow it
 * contiguously (*out NULL and *out_len 0 when none).  Unbounded mode
 * (capacity 0) gives everything waiting; bounded mode gives the run up to
 * where its ring buffer wraps, which may be less than
 * retls_conn_bio_pending().  Nothing is taken: retls_conn_bio_consume()
 * does that once the caller has used the bytes (a binding copies them
 * straight into its language's string, saving the copy through a buffer
 * of its own).  The bytes belong to the connection and stay valid until
 * the next call on it; do not write to them.
 * @param[out] out       first waiting byte, or NULL
 * @param[out] out_len   bytes readable at *out
 * @param[out] out_mark  what retls_conn_bio_consume() checks: if bytes are
 *                       taken between the two calls (a drain re-entered
 *                       from a finalizer or a callback), consume refuses
 *                       instead of taking bytes the caller never saw
 * @return RETLS_OK, or RETLS_BAD_ARG (NULL argument, not memory mode)
 */
int retls_conn_bio_peek(const unsigned char **out, size_t *out_len,
                        uint64_t *out_mark, retls_conn *conn);

/** Take n bytes of waiting ciphertext without copying them, after
 *  retls_conn_bio_peek() gave mark (n at most the *out_len it gave).
 *  RETLS_BAD_ARG, taking nothing: more than is waiting, or bytes were
 *  taken since that peek (the head is no longer what the caller saw:
 *  drop what it made of them and peek again). */
int retls_conn_bio_consume(retls_conn *conn, uint64_t mark, size_t n);

/** Bytes of ciphertext waiting in the outgoing buffer (memory mode). */
size_t retls_conn_bio_pending(const retls_conn *conn);

/**
 * Storage for the unbounded outgoing buffer of a memory-mode connection,
 * given by a binding, so that the buffer can BE the object its drain
 * returns (retls_conn_bio_take): the ciphertext is then copied once, from
 * OpenSSL into that object, instead of twice.
 *
 * alloc: make a buffer with room for cap bytes (cap >= 1); set *out to its
 *        first byte and return a handle for it, or NULL when out of memory
 *        (the write that needed the room then fails, as on a failed
 *        malloc).
 * free:  give back a buffer the connection still owns.
 * ud:    passed to both.
 * Both are only called from inside calls on this connection (write, read,
 * handshake, shutdown, bio_read, bio_take, close, free), on the thread
 * making that call.
 */
typedef struct retls_outbuf {
  void *(*alloc)(unsigned char **out, size_t cap, void *ud);
  void (*free)(void *handle, void *ud);
  void *ud;
} retls_outbuf;

/**
 * Use ops (copied) for conn's outgoing buffer from now on.  RETLS_BAD_ARG
 * unless conn is an open memory-mode connection made with capacity 0 and
 * no ciphertext is waiting.  Without it the buffer is malloc()ed and kept
 * between drains; with it, a drained buffer is never kept (the next write
 * allocates one the size of the last drain).
 */
int retls_conn_set_outbuf(retls_conn *conn, const retls_outbuf *ops);

/**
 * Take ALL waiting ciphertext without copying it: *out = the handle of the
 * buffer (from the retls_outbuf alloc) whose first *out_len bytes are
 * exactly the waiting ciphertext.  The caller owns the handle from now on
 * (the connection forgets it; it never calls free on it).  *out is NULL,
 * *out_len 0 and the status RETLS_OK when that cannot be done without a
 * copy: nothing waiting, no retls_conn_set_outbuf, part of the buffer
 * already read by retls_conn_bio_read, or more than a quarter of it unused
 * (the caller's object would keep that alive); then use
 * retls_conn_bio_read.
 */
int retls_conn_bio_take(void **out, size_t *out_len, retls_conn *conn);

/** Tell the connection the peer's byte stream has ended (memory mode). */
int retls_conn_bio_write_eof(retls_conn *conn);

/**
 * An in-process connected pair over an OpenSSL BIO pair: ciphertext written
 * by one end is read by the other.  capacity (0: 16384) is the buffer in
 * each direction; a write larger than what fits stops with
 * RETLS_WANT_WRITE until the other end reads, which makes WANT states
 * deterministic for tests.  client_ctx/server_ctx may be NULL: then a client
 * context without verification, or a server context with a throwaway
 * self-signed certificate, is made.
 */
int retls_pair_new(retls_conn **out_client, retls_conn **out_server,
                   retls_ctx *client_ctx, retls_ctx *server_ctx,
                   size_t capacity);

/* ------------------------------------------------------------------------ */
/* Operations                                                               */
/* ------------------------------------------------------------------------ */

/** Run (or continue) the handshake.  Optional: the first write or read does
 *  it implicitly, as SSL_write(3) does.  Also drives a renegotiation or key
 *  update scheduled with retls_conn_renegotiate()/retls_conn_key_update(). */
int retls_conn_handshake(retls_conn *conn);

/**
 * Write len bytes.
 *
 * Returns RETLS_OK with *out = bytes taken (len, or fewer in partial-write
 * mode).  On RETLS_WANT_READ / RETLS_WANT_WRITE the connection has copied
 * the bytes (*out = 0): repeat the call with identical bytes, or call
 * retls_conn_flush(), once the transport is ready.  Other bytes give
 * RETLS_RETRY_MISMATCH and change nothing.  len == 0 is a no-op that never
 * touches OpenSSL (RETLS_OK, *out = 0), even with a write pending.
 * Writes above INT_MAX go through SSL_write_ex.
 *
 * After retls_conn_shutdown() a write returns RETLS_SSL and sends nothing
 * (the connection stays readable): OpenSSL would accept bytes placed
 * behind the close_notify, which the peer can never read.  After
 * RETLS_WANT_READ from a write during a TLS 1.2 renegotiation, read (or
 * wait for readability) before retrying: a client that only retries the
 * write while the server's data arrives fails with "unexpected record".
 */
int retls_conn_write(size_t *out, retls_conn *conn, const void *buf,
                     size_t len);

/** Finish the pending write from the connection's own copy.  *out = bytes
 *  of it now acknowledged; RETLS_OK with *out = 0 when nothing is pending. */
int retls_conn_flush(size_t *out, retls_conn *conn);

/** Bytes of a pending write (0 if none). */
size_t retls_conn_pending_write(const retls_conn *conn);

/** What the last operation waits for: RETLS_WANT_READ, RETLS_WANT_WRITE,
 *  or RETLS_OK when it did not stop. */
int retls_conn_want(const retls_conn *conn);

/**
 * Read up to len decrypted bytes.  *out > 0 on RETLS_OK.  Works while a
 * write is pending (both ends of a full pipe must be able to read).
 *
 * OpenSSL 3 limit: if what arrives needs an answer (the peer's TLS 1.2
 * renegotiation, or a TLS 1.3 KeyUpdate with update_requested) while this
 * end has a record half-written (a write's, or shutdown()'s close_notify
 * after WANT_*), OpenSSL cannot send the answer and the
 * read fails with RETLS_SSL ("bad length"); nothing is lost silently (the
 * pending bytes are still reported by close).  Around renegotiations and
 * requested key updates, flush pending writes before reading.  When both
 * ends of a TLS 1.2 connection ask for a renegotiation, the client's read
 * can fail with RETLS_SSL ("unexpected record") on the server's data sent
 * before its ServerHello: let one end ask, not both.
 */
int retls_conn_read(size_t *out, retls_conn *conn, void *buf, size_t len);

/** Decrypted bytes buffered and readable without I/O (SSL_pending). */
size_t retls_conn_pending_read(const retls_conn *conn);

/**
 * Send close_notify.  RETLS_OK once it is sent (the peer's close_notify is
 * not awaited; read until RETLS_ZERO_RETURN for that).  May return
 * WANT_READ/WANT_WRITE on non-blocking transports: call again.  With a
 * write pending it returns RETLS_WRITE_PENDING: flush it first.  While a
 * TLS 1.2 renegotiation is pending it returns RETLS_BAD_ARG (finish the
 * handshake first): OpenSSL would otherwise wedge both ends.  So does a
 * server that took 0-RTT data before the client's Finished has arrived
 * (read or handshake until the handshake completes).
 */
int retls_conn_shutdown(retls_conn *conn);

/** Flags for retls_conn_close(). */
#define RETLS_CLOSE_DISCARD 1 /* drop a pending write instead of refusing */

/**
 * Close the connection: free the TLS state and close the fd if owned.  No
 * close_notify is sent (use retls_conn_shutdown() first for that).  With a
 * write pending and no RETLS_CLOSE_DISCARD it returns RETLS_WRITE_PENDING
 * and stays open, so bytes are never dropped silently.  Closing twice is
 * RETLS_OK.  Every later operation returns RETLS_CLOSED.
 */
int retls_conn_close(retls_conn *conn, int flags);

/** Close (discarding any pending write) and free.  NULL is a no-op. */
void retls_conn_free(retls_conn *conn);

/** Schedule a TLS 1.2 renegotiation; it runs at the next handshake, write
 *  or read.  RETLS_BAD_ARG on TLS 1.3 (use retls_conn_key_update()), and
 *  after a close_notify was sent or received (the next write would wait
 *  forever for a handshake the peer will never answer). */
int retls_conn_renegotiate(retls_conn *conn);

/** Schedule a TLS 1.3 KeyUpdate, asking the peer to update its keys too
 *  when request_peer is non-zero; sent with the next write or handshake.
 *  RETLS_BAD_ARG below TLS 1.3, and after retls_conn_shutdown() (nothing
 *  can follow close_notify). */
int retls_conn_key_update(retls_conn *conn, int request_peer);

/* ------------------------------------------------------------------------ */
/* Sessions, resumption and 0-RTT early data (core/src/session.c, write.c)  */
/* ------------------------------------------------------------------------ */

/*
 * A retls_session is an immutable, reference-counted TLS session (an
 * SSL_SESSION) that a client can resume: TLS 1.3 tickets, TLS 1.2 session
 * IDs and tickets.  Its bytes (DER, i2d_SSL_SESSION) are portable across
 * processes, so a script can resume in its next run.  They hold the
 * session's master secret: store them like a key.
 */
typedef struct retls_session retls_session;

/**
 * The newest resumable session of a client connection.  In TLS 1.3 the
 * server sends its tickets after the handshake, so they arrive with the
 * first read; before that, and on servers, *out is NULL (RETLS_OK).
 *
 * @param[out] out  a new reference the caller frees with
 *                  retls_session_free(), or NULL when there is none yet
 */
int retls_conn_session(retls_session **out, retls_conn *conn);

/**
 * Resume session on this client connection: call before the handshake.
 * RETLS_BAD_ARG (nothing changed, the connection stays usable) when the
 * connection is a server's or its handshake has started, the session is
 * not resumable, was made for another server name than this connection's,
 * or for a protocol version the context does not allow.  A server that
 * does not know the session simply runs a full handshake
 * (retls_conn_session_reused() says 0).  The connection takes its own
 * reference.
 */
int retls_conn_set_session(retls_conn *conn, retls_session *session);

/** Non-zero when the completed handshake resumed a session. */
int retls_conn_session_reused(const retls_conn *conn);

/**
 * Rebuild a session from retls_session_to_bytes() output.  Garbage,
 * truncated or trailing bytes give RETLS_BAD_ARG, with the reason in
 * retls_session_last_error() (there is no object to hold it).
 *
 * @param[out] out  the session; free with retls_session_free()
 */
int retls_session_from_bytes(retls_session **out, const void *buf,
                             size_t len);

/** Why the last retls_session_from_bytes() on this thread failed; "" if
 *  it did not.  Never NULL. */
const char *retls_session_last_error(void);

/** The session's portable bytes.  *out points into the session and is
 *  valid as long as the session. */
int retls_session_to_bytes(const unsigned char **out, size_t *out_len,
                           const retls_session *session);

/** Take another reference; returns session. */
retls_session *retls_session_ref(retls_session *session);

/** Drop a reference; the last one frees the session.  NULL is a no-op. */
void retls_session_free(retls_session *session);

/** Non-zero when the session can be offered for resumption (it has an ID
 *  or a ticket and was not marked unusable). */
int retls_session_is_resumable(const retls_session *session);

/** Seconds the server said its ticket stays valid (0: none given). */
unsigned long retls_session_ticket_lifetime(const retls_session *session);

/** Most early-data bytes the server accepts with this session (0: none). */
size_t retls_session_max_early_data(const retls_session *session);

/**
 * Clients: send len bytes as TLS 1.3 0-RTT early data, before the
 * handshake completes.  Needs a session set with retls_conn_set_session()
 * whose server allows early data (retls_session_max_early_data() > 0),
 * otherwise, or once the handshake has completed, RETLS_BAD_ARG (nothing
 * sent; use retls_conn_write()).
 *
 * The retry contract is the one of retls_conn_write(), in the same state
 * machine (write.c): on RETLS_WANT_* the bytes are copied; the same bytes
 * or retls_conn_flush() resume them, other bytes give
 * RETLS_RETRY_MISMATCH; 0 bytes is a no-op (RETLS_OK, *out = 0), as
 * for write().  The handshake then completes with the next
 * handshake, write, read or flush.  If the server rejects the early data,
 * it is sent again as ordinary data right after the handshake, exactly
 * once and before any later write (retls_ctx_set_early_data_replay() to
 * turn that off); until it has gone, retls_conn_pending_write() counts it
 * and the operation that completed the handshake may return RETLS_WANT_*.
 *
 * OpenSSL 3.0 limit: every repeat of an early write that stopped on WANT
 * is counted again against the session's max_early_data, so many repeats
 * of a large write can fail with RETLS_SSL ("too much early data") though
 * fewer bytes went out.  Keep early data well below the server's limit on
 * transports that stop often.
 */
int retls_conn_write_early(size_t *out, retls_conn *conn, const void *buf,
                           size_t len);

/** Early-data outcomes (retls_conn_early_data_status()). */
typedef enum {
  RETLS_EARLY_NOT_SENT = 0, /* no early data was sent / received */
  RETLS_EARLY_REJECTED = 1, /* the server refused it */
  RETLS_EARLY_ACCEPTED = 2, /* the server took it */
  RETLS_EARLY_PENDING = 3   /* handshake not completed yet */
} retls_early_status;

/** The early-data outcome, from either end, once the handshake is done
 *  (the outcome stays the same if the connection fails later). */
int retls_conn_early_data_status(const retls_conn *conn);

/**
 * With replay off: the early bytes the server rejected, which retls did not
 * send again.  *out points into the connection (valid until close);
 * RETLS_OK with *out = NULL, *out_len = 0 when nothing was rejected.
 */
int retls_conn_early_data_rejected_bytes(const unsigned char **out,
                                         size_t *out_len, retls_conn *conn);

/**
 * Servers: read early data (retls_ctx_set_early_data() must allow it).
 * Call it before anything else on the connection (a server that starts
 * with handshake() or read() refuses early data; the client then sends it
 * again), until it gives RETLS_OK with *out = 0: the early data has ended
 * or there was none; later calls give the same.  Then read the rest with
 * retls_conn_read(), which also completes the handshake.  RETLS_BAD_ARG on
 * clients, and after the handshake started without read_early.
 */
int retls_conn_read_early(size_t *out, retls_conn *conn, void *buf,
                          size_t len);

/* ------------------------------------------------------------------------ */
/* Information                                                              */
/* ------------------------------------------------------------------------ */

/** Per-connection counters.  want_read / want_write: each write,
 *  write_early or flush call that returned RETLS_WANT_READ /
 *  RETLS_WANT_WRITE (or RETLS_TIMEOUT waiting for the socket to become
 *  readable / writable) counts one, whatever stopped it: the write, the
 *  handshake that settles early data, or the replay of rejected early
 *  data.  handshake() and read() count none, also when they settle early
 *  data.  retries counts repeats of a pending write: by a write with the
 *  same bytes, by flush, or by the handshake() or read() that must first
 *  finish a pending write_early.  mismatches counts refused retries. */
typedef struct {
  uint64_t writes;        /* writes that completed, each counted once by
                             the call that completed it */
  uint64_t bytes_written; /* plaintext bytes acknowledged to callers */
  uint64_t want_read;
  uint64_t want_write;
  uint64_t retries;
  uint64_t mismatches;
  uint64_t bytes_read;    /* plaintext bytes returned by read */
  /* Added at the end, so code built against the older layout still reads
   * the fields above where they were. */
  uint64_t early_bytes;    /* bytes taken by write_early (client) or
                              returned by read_early (server) */
  uint64_t early_replayed; /* rejected early bytes sent again as ordinary
                              data after the handshake */
} retls_stats;

/** Copy the counters. */
int retls_conn_stats(retls_stats *out, const retls_conn *conn);

/** Detail of the last failure on this connection: OpenSSL's reason, the
 *  verify result text, or libretls' own explanation.  "" when none.
 *  Never NULL; valid until the next call on the connection. */
const char *retls_conn_last_error(const retls_conn *conn);

/** "TLSv1.3" etc., or NULL before the handshake / after close. */
const char *retls_conn_version(const retls_conn *conn);

/** Negotiated cipher name, or NULL. */
const char *retls_conn_cipher(const retls_conn *conn);

/** Negotiated ALPN protocol, or NULL when none was agreed. */
const char *retls_conn_alpn(const retls_conn *conn);

/** The peer's certificate in DER.  *out points into the connection (valid
 *  until close); RETLS_OK with *out = NULL, *out_len = 0 when there is none. */
int retls_conn_peer_certificate(const unsigned char **out, size_t *out_len,
                                retls_conn *conn);

/** X509_V_OK (0) or the verify error code of the peer's chain. */
long retls_conn_verify_result(const retls_conn *conn);

/** Text of retls_conn_verify_result() ("ok", "certificate has expired"). */
const char *retls_conn_verify_text(const retls_conn *conn);

/** The socket fd, or -1 in memory and pair mode or after close. */
int retls_conn_fileno(const retls_conn *conn);

/** Non-zero once the handshake has completed. */
int retls_conn_is_established(const retls_conn *conn);

/* ------------------------------------------------------------------------ */
/* Handshake facts for channel binding and inspection (LuaSec's methods)    */
/* ------------------------------------------------------------------------ */

/** Longest Finished message (EVP_MAX_MD_SIZE): a buffer of this size always
 *  holds retls_conn_finished()'s output. */
#define RETLS_FINISHED_MAX 64

/**
 * The last Finished message this end sent (peer == 0) or received from
 * the peer (peer != 0), for channel binding (tls-unique in TLS 1.2): one
 * end's sent message is the other end's received one.
 *
 * @param[out] out  bytes copied to buf (at most len; RETLS_FINISHED_MAX
 *                  always suffices); 0 when none was exchanged yet
 * @return RETLS_OK, RETLS_CLOSED after close, RETLS_BAD_ARG for NULLs
 */
int retls_conn_finished(size_t *out, retls_conn *conn, void *buf, size_t len,
                        int peer);

/**
 * Keying material from the TLS exporter (RFC 5705, RFC 8446 section 7.5),
 * the same on both ends for the same label, length and context.  context
 * NULL means "no context", which TLS 1.2 tells apart from an empty one.
 *
 * @param[out] out  out_len bytes of keying material (1 .. 2^30)
 * @return RETLS_OK; RETLS_BAD_ARG before the handshake completed, for a
 *         label OpenSSL refuses (TLS 1.2's reserved ones) and for NULLs;
 *         RETLS_CLOSED after close.  Nothing is exchanged with the peer.
 */
int retls_conn_export_keying_material(void *out, size_t out_len,
                                      retls_conn *conn, const char *label,
                                      size_t label_len, const void *context,
                                      size_t context_len);

/**
 * The certificate at position index of a chain, in DER: the peer's
 * (local == 0) or this end's own (local != 0).  Index 0 is the end's own
 * certificate, then the chain certificates it sent, on both roles (OpenSSL
 * leaves the peer's own certificate out of a server's view of the chain;
 * this does not).  *out points into the connection and stays valid until
 * the next retls_conn_chain_certificate() call on it or close.
 *
 * @return RETLS_OK, with *out = NULL and *out_len = 0 past the end (or
 *         when the end sent none); RETLS_CLOSED after close.
 */
int retls_conn_chain_certificate(const unsigned char **out, size_t *out_len,
                                 retls_conn *conn, int local, size_t index);

/** The SNI host name: on servers the one the client sent, on clients the
 *  one sent (none for an IP address).  NULL when there is none or after
 *  close; valid until close. */
const char *retls_conn_server_name(const retls_conn *conn);

/**
 * The negotiated cipher: OpenSSL's description line (SSL_CIPHER_description:
 * name, version, Kx=, Au=, Enc=, Mac=) into buf, its secret bits into
 * *out and the algorithm's bits into *out_alg_bits.
 *
 * @return RETLS_OK; RETLS_BAD_ARG before the handshake completed or with
 *         len < 128 (OpenSSL's minimum); RETLS_CLOSED after close.
 */
int retls_conn_cipher_info(int *out, int *out_alg_bits, retls_conn *conn,
                           char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* RETLS_H */
