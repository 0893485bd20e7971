/*
 * write.c - the retry state machine.  Everything libretls promises about
 * writes is in this file.
 *
 * The rule (SSL_write(3)): a write that stopped with WANT_READ/WANT_WRITE
 * must be repeated with the same arguments.  OpenSSL has already encrypted
 * part of the buffer into records and remembers how many bytes it consumed;
 * on the repeat it only looks at the bytes after that point.  So a shorter
 * repeat fails ("bad length"; fatal from OpenSSL 3.2), and an equal-length
 * repeat with other bytes sends the OLD encrypted bytes for the consumed
 * part: silent corruption.  Scripting runtimes cannot be trusted to keep a
 * buffer alive and unchanged, so the connection keeps its own copy.
 *
 * States of conn (pend_len == 0 means IDLE):
 *
 *   IDLE    write(b)        -> SSL_write_ex(b)
 *                               done           -> IDLE, report bytes taken
 *                               WANT_*         -> PENDING, copy b
 *   PENDING write(same b)   -> SSL_write_ex(copy)    (a retry)
 *           flush()         -> SSL_write_ex(copy)    (a retry)
 *                               done           -> IDLE, report bytes taken
 *                               WANT_*         -> PENDING
 *   PENDING write(other b)  -> RETLS_RETRY_MISMATCH; OpenSSL is not called,
 *                              nothing is sent, the copy stays
 *   any     fatal error     -> FAILED (the copy is dropped: its bytes were
 *                              never acknowledged to the caller)
 *
 * Repeating from the copy means the address differs from the first call,
 * which is why every context sets SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER.
 *
 * EARLY DATA (TLS 1.3 0-RTT, clients).  SSL_write_early_data(3) has the
 * same rule, and worse: after a WANT in its flush stage it ignores the
 * bytes it is given and reports the new length as written.  So
 * write_early() is the same machine with one flag, pend_early, saying
 * which OpenSSL call repeats the copy:
 *
 *   IDLE    write_early(b)  -> SSL_write_early_data(b)  (state above)
 *   PENDING write_early(same b), write(same b), flush()
 *                           -> SSL_write_early_data(copy)
 *
 * Every early byte acknowledged is also kept in early_buf, because the
 * server may reject early data, and then those bytes never reached the
 * application on the other end.  conn->early then settles it
 * (retls__early_settle, run first by handshake, read, write and flush):
 *
 *   WRITING  the pending early write, if any, is finished first (OpenSSL
 *            forbids anything else in between), then SSL_do_handshake
 *              accepted / not sent     -> DONE (early_buf dropped)
 *              rejected, replay on     -> REPLAY
 *              rejected, replay off    -> DONE (early_buf kept for
 *                                         early_data_rejected_bytes)
 *   REPLAY   SSL_write_ex(early_buf), repeated from early_buf after WANT,
 *            before any byte of a later write  -> DONE
 *
 * A write(b) that finds the handshake or the replay unfinished keeps a
 * copy of b like any write that stopped on WANT, so its contract is
 * unchanged: flush() or the same bytes later, other bytes mismatch.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "internal.h"

/* Keep the copy's allocation between writes (a busy non-blocking writer
 * hits WANT_WRITE constantly), unless it grew unusually large. */
#define RETLS__PEND_KEEP (256 * 1024)

/* The copy sits at the same offset within a 4 KiB page as the caller's
 * buffer (the allocation has a page to spare for that).  OpenSSL copies
 * the plaintext of each record from the buffer it is given into its
 * record buffer, and glibc's memcpy is 30-40x slower at some distances
 * between the two modulo 4 KiB (internal.h, retls__copy).  At the
 * caller's page offset every copy from the retry copy has the distance
 * the first call's had, as in a loop that retries from the caller's
 * buffer: where malloc happened to put the copy cannot make a retry
 * slower (and keep_copy's own memcpy runs at distance 0, the fast case). */
#define RETLS__PAGE 4096

static unsigned char *pend_data(const retls_conn *conn) {
  return conn->pend_buf + conn->pend_off;
}

void retls__pending_clear(retls_conn *conn) {
  conn->pend_len = 0;
  conn->pend_off = 0;
  conn->pend_early = 0;
  if (conn->pend_cap > RETLS__PEND_KEEP + RETLS__PAGE - 1) {
    free(conn->pend_buf);
    conn->pend_buf = NULL;
    conn->pend_cap = 0;
  }
}

/* The two ends of every SSL_write*: counters and status mapping in one
 * place, for ordinary writes, early data and the replay of early data. */
static int write_took(size_t *out, retls_conn *conn, size_t written) {
  conn->want = RETLS_OK;
  conn->detail[0] = '\0';
  conn->stats.writes++;
  conn->stats.bytes_written += written;
  *out = written;
  return RETLS_OK;
}

static int write_stopped(retls_conn *conn, int ret, const char *op) {
  int status = retls__map_ssl_result(conn, ret, op);
  return retls__conn_status_from_want(conn, status);
}

/* One SSL_write_ex call. */
static int ssl_write_once(size_t *out, retls_conn *conn, const void *buf,
                          size_t len) {
  size_t written = 0;
  int ret;

  retls__err_clear();
  errno = 0;
  ret = SSL_write_ex(conn->ssl, buf, len, &written);
  if (ret == 1)
    return write_took(out, conn, written);
  return write_stopped(conn, ret, "write");
}

static int is_retryable(int status) {
  return status == RETLS_WANT_READ || status == RETLS_WANT_WRITE ||
         status == RETLS_TIMEOUT;
}

/* The one place stops are counted (retls_stats): a write, write_early or
 * flush call that returns WANT_READ/WANT_WRITE counts one want_read/
 * want_write, whichever stage stopped it: the write itself, the handshake
 * that settles early data, or the replay of rejected early data.  (TIMEOUT
 * is a WANT on a blocking socket and counts as its WANT, which conn->want
 * keeps.)  handshake() and read(), which settle early data on the way,
 * count none: they are not writes. */
static int write_returns(retls_conn *conn, int status) {
  if (is_retryable(status)) {
    if (conn->want == RETLS_WANT_READ)
      conn->stats.want_read++;
    else if (conn->want == RETLS_WANT_WRITE)
      conn->stats.want_write++;
  }
  return status;
}

/* One SSL_write_early_data call; on success the bytes are also appended
 * to early_buf, the copy a rejection replays. */
static int ssl_write_early_once(size_t *out, retls_conn *conn,
                                const void *buf, size_t len) {
  size_t written = 0;
  int ret;

  retls__err_clear();
  errno = 0;
  ret = SSL_write_early_data(conn->ssl, buf, len, &written);
  if (ret == 1) {
    unsigned char *p = realloc(conn->early_buf, conn->early_len + written);
    if (p == NULL) {
      /* The bytes are on their way, but a rejection could not be
       * repaired: refuse to go on rather than lose them silently. */
      conn->state = RETLS__FAILED;
      return retls__conn_fail(conn, RETLS_NOMEM,
                              "write_early: cannot keep a copy of %zu early "
                              "bytes for a possible replay",
                              written);
    }
    memcpy(p + conn->early_len, buf, written);
    conn->early_buf = p;
    conn->early_len += written;
    conn->stats.early_bytes += written;
    return write_took(out, conn, written);
  }
  return write_stopped(conn, ret, "write_early");
}

static void early_drop(retls_conn *conn) {
  /* early_buf comes from realloc() (write.c): free() it, not
   * OPENSSL_free(), which an application may have pointed elsewhere with
   * CRYPTO_set_mem_functions() (the fuzzer does). */
  if (conn->early_buf != NULL)
    OPENSSL_cleanse(conn->early_buf, conn->early_len);
  free(conn->early_buf);
  conn->early_buf = NULL;
  conn->early_len = 0;
  conn->early_off = 0;
}

static int retry_pending(size_t *out, retls_conn *conn);

int retls__early_settle(retls_conn *conn) {
  size_t n;
  int ret, status;

  if (conn->early == RETLS__EARLY_WRITING) {
    if (conn->pend_early && (status = retry_pending(&n, conn)) != RETLS_OK)
      return status;
    /* From here OpenSSL may read the server's answer and send
     * EndOfEarlyData, after which SSL_write_early_data fails the
     * connection: write_early must refuse from now on. */
    conn->early_ended = 1;
    retls__err_clear();
    errno = 0;
    ret = SSL_do_handshake(conn->ssl);
    if (ret != 1) {
      status = retls__map_ssl_result(conn, ret, "handshake");
      return retls__conn_status_from_want(conn, status);
    }
    conn->want = RETLS_OK;
    conn->detail[0] = '\0';
    if (SSL_get_early_data_status(conn->ssl) == SSL_EARLY_DATA_REJECTED) {
      conn->early_rejected = 1;
      conn->early = conn->ctx->early_replay && conn->early_len > 0
                        ? RETLS__EARLY_REPLAY
                        : RETLS__EARLY_DONE;
    } else {
      conn->early = RETLS__EARLY_DONE;
      early_drop(conn);
    }
  }
  /* The replay is an ordinary write of early_buf; after WANT it repeats
   * with the same arguments because early_buf and early_off only change
   * when OpenSSL took bytes (partial-write mode may take them in parts). */
  while (conn->early == RETLS__EARLY_REPLAY) {
    size_t written = 0;
    retls__err_clear();
    errno = 0;
    ret = SSL_write_ex(conn->ssl, conn->early_buf + conn->early_off,
                       conn->early_len - conn->early_off, &written);
    if (ret != 1)
      return write_stopped(conn, ret, "write (early data replay)");
    conn->want = RETLS_OK;
    conn->early_off += written;
    conn->stats.early_replayed += written;
    if (conn->early_off == conn->early_len) {
      conn->early = RETLS__EARLY_DONE;
      early_drop(conn);
    }
  }
  return RETLS_OK;
}

static int early_unsettled(const retls_conn *conn) {
  return conn->early == RETLS__EARLY_WRITING ||
         conn->early == RETLS__EARLY_REPLAY;
}

/* Repeat the pending write from the connection's copy. */
static int retry_pending(size_t *out, retls_conn *conn) {
  int status;
  conn->stats.retries++;
  if (conn->pend_early) {
    status = ssl_write_early_once(out, conn, pend_data(conn), conn->pend_len);
  } else if (early_unsettled(conn) &&
             (status = retls__early_settle(conn)) != RETLS_OK) {
    /* The handshake or the replay must go first; the copy waits. */
  } else {
    status = ssl_write_once(out, conn, pend_data(conn), conn->pend_len);
  }
  if (!is_retryable(status))
    retls__pending_clear(conn); /* done, or failed for good */
  return status;
}

/* Keep the caller's bytes after a WANT: the core of the contract. */
static int keep_copy(retls_conn *conn, const void *buf, size_t len,
                     int early) {
  size_t need = len + RETLS__PAGE - 1;
  if (need < len || conn->pend_cap < need) {
    /* Nothing is pending, so the old bytes need not move: free and
     * allocate instead of realloc. */
    free(conn->pend_buf);
    conn->pend_buf = need < len ? NULL : malloc(need);
    conn->pend_cap = conn->pend_buf != NULL ? need : 0;
    if (conn->pend_buf == NULL) {
      /* Without a copy we cannot keep the promise; the connection
       * cannot be repeated safely either, so it fails. */
      conn->state = RETLS__FAILED;
      return retls__conn_fail(conn, RETLS_NOMEM,
                              "write: cannot copy %zu pending bytes", len);
    }
  }
  conn->pend_off =
      ((uintptr_t)buf - (uintptr_t)conn->pend_buf) & (RETLS__PAGE - 1);
  retls__copy(pend_data(conn), buf, len);
  conn->pend_len = len;
  conn->pend_early = early;
  return RETLS_OK;
}

static int mismatch(retls_conn *conn, size_t len) {
  conn->stats.mismatches++;
  return retls__conn_fail(
      conn, RETLS_RETRY_MISMATCH,
      "retry presented %zu bytes (%s) but %zu bytes of an earlier %s are "
      "pending (waiting for the transport to become %s); nothing was "
      "sent. Call flush() to finish the pending write, then write the "
      "new data",
      len,
      len < conn->pend_len   ? "shorter"
      : len > conn->pend_len ? "longer"
                             : "same length, other bytes",
      conn->pend_len, conn->pend_early ? "write_early" : "write",
      conn->want == RETLS_WANT_READ ? "readable" : "writable");
}

int retls_conn_write(size_t *out, retls_conn *conn, const void *buf,
                     size_t len) {
  size_t dummy;
  int status;

  if (out == NULL)
    out = &dummy;
  *out = 0;
  if (conn == NULL)
    return RETLS_BAD_ARG;
  if ((status = retls__check_usable(conn)) != RETLS_OK)
    return status;
  if (len == 0)
    return RETLS_OK; /* documented no-op: SSL_write with 0 is undefined-ish
                        across versions, and there is nothing to send */
  if (buf == NULL)
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "write: NULL buffer with length %zu", len);

  if (conn->pend_len > 0) {
    if (len == conn->pend_len && memcmp(buf, pend_data(conn), len) == 0)
      return write_returns(conn, retry_pending(out, conn));
    return mismatch(conn, len);
  }

  /* Nothing may follow our close_notify: the peer stops reading there.
   * OpenSSL refuses such writes itself ("protocol is shutdown") until a
   * renegotiation scheduled before shutdown() starts afterwards: its
   * handshake clears OpenSSL's shutdown flags, and SSL_write would then
   * accept bytes the peer can never read.  So the check is ours. */
  if (conn->shutdown_called)
    return retls__conn_fail(conn, RETLS_SSL,
                            "write after shutdown(): close_notify was sent, "
                            "and the peer stops reading there; nothing was "
                            "written");

  /* After write_early: the handshake, then a replay of rejected early
   * data, come before these bytes. */
  if (early_unsettled(conn))
    status = retls__early_settle(conn);
  else
    status = RETLS_OK;
  if (status == RETLS_OK)
    status = ssl_write_once(out, conn, buf, len);
  /* Take the copy now, while the caller's bytes are still the ones
   * OpenSSL saw. */
  if (is_retryable(status)) {
    int kept = keep_copy(conn, buf, len, 0);
    if (kept != RETLS_OK)
      return kept;
  }
  return write_returns(conn, status);
}

int retls_conn_write_early(size_t *out, retls_conn *conn, const void *buf,
                           size_t len) {
  size_t dummy;
  SSL_SESSION *sess;
  const char *host, *name;
  int status;

  if (out == NULL)
    out = &dummy;
  *out = 0;
  if (conn == NULL)
    return RETLS_BAD_ARG;
  if ((status = retls__check_usable(conn)) != RETLS_OK)
    return status;
  if (len == 0)
    return RETLS_OK; /* the no-op of write(): same retry contract, so a
                        0-byte call neither resumes nor mismatches */
  if (buf == NULL)
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "write_early: NULL buffer with length %zu", len);
  if (conn->pend_len > 0) {
    if (conn->pend_early && len == conn->pend_len &&
        memcmp(buf, pend_data(conn), len) == 0)
      return write_returns(conn, retry_pending(out, conn));
    return mismatch(conn, len);
  }
  if (conn->ctx->role != RETLS_CLIENT)
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "write_early is for clients; a server reads "
                            "early data with read_early()");
  if (SSL_is_init_finished(conn->ssl) || conn->early_ended ||
      (conn->early != RETLS__EARLY_WRITING && !SSL_in_before(conn->ssl)))
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "write_early after the handshake %s: early "
                            "data only goes before it; use write()",
                            SSL_is_init_finished(conn->ssl) ? "completed"
                                                            : "started");
  sess = SSL_get_session(conn->ssl);
  if (sess == NULL || !SSL_SESSION_is_resumable(sess) ||
      SSL_SESSION_get_protocol_version(sess) != TLS1_3_VERSION ||
      SSL_SESSION_get_max_early_data(sess) == 0)
    return retls__conn_fail(
        conn, RETLS_BAD_ARG,
        "write_early needs a resumable TLS 1.3 session from a server that "
        "allows early data (%s); connect with such a session, or use "
        "write() after the handshake",
        sess == NULL || !SSL_SESSION_is_resumable(sess)
            ? "this connection has none"
            : SSL_SESSION_get_protocol_version(sess) != TLS1_3_VERSION
                ? "this session is not TLS 1.3"
                : "this session's server allows none");
  /* OpenSSL fails the connection ("inconsistent early data sni") when the
   * ClientHello's server name is not the session's, e.g. a session from
   * "localhost" on a connection to 127.0.0.1 (an address sends no name).
   * Its comparison is exact, so this one is too. */
  host = SSL_SESSION_get0_hostname(sess);
  name = SSL_get_servername(conn->ssl, TLSEXT_NAMETYPE_host_name);
  if (host != NULL && (name == NULL || strcmp(host, name) != 0))
    return retls__conn_fail(
        conn, RETLS_BAD_ARG,
        "write_early: the session is from server '%s' and this connection "
        "sends %s%s%s; early data needs the same name: connect with "
        "server_hostname '%s', or send after the handshake with write()",
        host, name != NULL ? "'" : "no server name",
        name != NULL ? name : "", name != NULL ? "'" : "", host);
  if (len == 0)
    return RETLS_OK;
  conn->early = RETLS__EARLY_WRITING;
  status = ssl_write_early_once(out, conn, buf, len);
  if (is_retryable(status)) {
    int kept = keep_copy(conn, buf, len, 1);
    if (kept != RETLS_OK)
      return kept;
  }
  return write_returns(conn, status);
}

int retls_conn_flush(size_t *out, retls_conn *conn) {
  size_t dummy;
  int status;

  if (out == NULL)
    out = &dummy;
  *out = 0;
  if (conn == NULL)
    return RETLS_BAD_ARG;
  if ((status = retls__check_usable(conn)) != RETLS_OK)
    return status;
  if (conn->pend_len == 0)
    return conn->early == RETLS__EARLY_REPLAY
               ? write_returns(conn, retls__early_settle(conn))
               : RETLS_OK;
  return write_returns(conn, retry_pending(out, conn));
}

size_t retls_conn_pending_write(const retls_conn *conn) {
  if (conn == NULL)
    return 0;
  /* A replay still to go counts: close() must not drop it silently. */
  return conn->pend_len + (conn->early == RETLS__EARLY_REPLAY
                               ? conn->early_len - conn->early_off
                               : 0);
}

int retls_conn_want(const retls_conn *conn) {
  return conn ? conn->want : RETLS_OK;
}
