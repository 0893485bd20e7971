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
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "internal.h"

/* Keep the copy's allocation between writes (a busy non-blocking writer
 * hits WANT_WRITE constantly), unless it grew unusually large. */
#define RETLS__PEND_KEEP (256 * 1024)

void retls__pending_clear(retls_conn *conn) {
  conn->pend_len = 0;
  if (conn->pend_cap > RETLS__PEND_KEEP) {
    free(conn->pend_buf);
    conn->pend_buf = NULL;
    conn->pend_cap = 0;
  }
}

/* One SSL_write_ex call; counters and status mapping in one place. */
static int ssl_write_once(size_t *out, retls_conn *conn, const void *buf,
                          size_t len) {
  size_t written = 0;
  int ret, status;

  ERR_clear_error();
  errno = 0;
  ret = SSL_write_ex(conn->ssl, buf, len, &written);
  if (ret == 1) {
    conn->want = RETLS_OK;
    conn->detail[0] = '\0';
    conn->stats.writes++;
    conn->stats.bytes_written += written;
    *out = written;
    return RETLS_OK;
  }
  status = retls__map_ssl_result(conn, ret, "write");
  if (status == RETLS_WANT_READ)
    conn->stats.want_read++;
  else if (status == RETLS_WANT_WRITE)
    conn->stats.want_write++;
  return retls__conn_status_from_want(conn, status);
}

static int is_retryable(int status) {
  return status == RETLS_WANT_READ || status == RETLS_WANT_WRITE ||
         status == RETLS_TIMEOUT;
}

/* Repeat the pending write from the connection's copy. */
static int retry_pending(size_t *out, retls_conn *conn) {
  int status;
  conn->stats.retries++;
  status = ssl_write_once(out, conn, conn->pend_buf, conn->pend_len);
  if (!is_retryable(status))
    retls__pending_clear(conn); /* done, or failed for good */
  return status;
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
    if (len == conn->pend_len && memcmp(buf, conn->pend_buf, len) == 0)
      return retry_pending(out, conn);
    conn->stats.mismatches++;
    return retls__conn_fail(
        conn, RETLS_RETRY_MISMATCH,
        "retry presented %zu bytes (%s) but %zu bytes of an earlier write "
        "are pending (waiting for the transport to become %s); nothing was "
        "sent. Call flush() to finish the pending write, then write the "
        "new data",
        len,
        len < conn->pend_len   ? "shorter"
        : len > conn->pend_len ? "longer"
                               : "same length, other bytes",
        conn->pend_len,
        conn->want == RETLS_WANT_READ ? "readable" : "writable");
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

  status = ssl_write_once(out, conn, buf, len);
  if (is_retryable(status)) {
    /* Take the copy now, while the caller's bytes are still the ones
     * OpenSSL saw. */
    if (conn->pend_cap < len) {
      unsigned char *p = realloc(conn->pend_buf, len);
      if (p == NULL) {
        /* Without a copy we cannot keep the promise; the connection
         * cannot be repeated safely either, so it fails. */
        conn->state = RETLS__FAILED;
        return retls__conn_fail(conn, RETLS_NOMEM,
                                "write: cannot copy %zu pending bytes", len);
      }
      conn->pend_buf = p;
      conn->pend_cap = len;
    }
    memcpy(conn->pend_buf, buf, len);
    conn->pend_len = len;
  }
  return status;
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
    return RETLS_OK;
  return retry_pending(out, conn);
}

size_t retls_conn_pending_write(const retls_conn *conn) {
  return conn ? conn->pend_len : 0;
}

int retls_conn_want(const retls_conn *conn) {
  return conn ? conn->want : RETLS_OK;
}
