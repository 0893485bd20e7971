/*
 * errors.c - the status list and the one place where OpenSSL results become
 * retls statuses.
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "internal.h"

const char *retls_status_name(int status) {
  switch (status) {
#define RETLS__NAME(name, value, msg) \
  case RETLS_##name:                  \
    return "RETLS_" #name;
    RETLS_STATUS_MAP(RETLS__NAME)
#undef RETLS__NAME
  default:
    return "RETLS_UNKNOWN";
  }
}

const char *retls_strerror(int status) {
  switch (status) {
#define RETLS__MSG(name, value, msg) \
  case RETLS_##name:                 \
    return msg;
    RETLS_STATUS_MAP(RETLS__MSG)
#undef RETLS__MSG
  default:
    return "unknown status";
  }
}

const char *retls_version(void) { return RETLS_VERSION; }

const char *retls_openssl_version(void) {
  return OpenSSL_version(OPENSSL_VERSION);
}

int retls__set_detail(char *detail, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, RETLS__DETAIL_MAX, fmt, ap);
  va_end(ap);
  return 0;
}

char *retls__conn_text(retls_conn *conn) {
  if (conn->detail == conn->detail_none) {
    char *t = malloc(RETLS__DETAIL_MAX);
    if (t == NULL)
      return NULL;
    t[0] = '\0';
    conn->detail = t;
  }
  return conn->detail;
}

int retls__conn_fail(retls_conn *conn, int status, const char *fmt, ...) {
  char *t = retls__conn_text(conn);
  va_list ap;
  if (t == NULL)
    return status;
  va_start(ap, fmt);
  vsnprintf(t, RETLS__DETAIL_MAX, fmt, ap);
  va_end(ap);
  return status;
}

/* retls__conn_fail for the mapping below, which goes on after it. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void conn_printf(retls_conn *conn, const char *fmt, ...) {
  char *t = retls__conn_text(conn);
  va_list ap;
  if (t == NULL)
    return;
  va_start(ap, fmt);
  vsnprintf(t, RETLS__DETAIL_MAX, fmt, ap);
  va_end(ap);
}

/* Append OpenSSL's queued reasons ("error:0A000086:...") to a detail text,
 * then empty the queue so nothing leaks into the next call. */
static void append_err_queue(char *detail, size_t size) {
  unsigned long e;
  size_t used;
  if (detail == NULL) { /* no text buffer: still empty the queue */
    ERR_clear_error();
    return;
  }
  used = strlen(detail);
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    const char *reason = ERR_reason_error_string(e);
    /* The bare reason ("certificate verify failed") reads better than
     * the full "error:0A000086:SSL routines::..." form. */
    if (reason != NULL)
      snprintf(buf, sizeof(buf), "%s", reason);
    else
      ERR_error_string_n(e, buf, sizeof(buf));
    if (used + 3 < size) {
      int n = snprintf(detail + used, size - used, "%s%s",
                       used ? ": " : "", buf);
      if (n > 0)
        used += (size_t)n < size - used ? (size_t)n : size - used - 1;
    }
  }
}

/* A context's text is shared by every thread that creates connections
 * from it (retls.h, THREADS): writes to it take the context's lock. */
int retls__ctx_fail(retls_ctx *ctx, int status, const char *what) {
  pthread_mutex_lock(&ctx->lock);
  snprintf(ctx->detail, sizeof(ctx->detail), "%s", what);
  append_err_queue(ctx->detail, sizeof(ctx->detail));
  pthread_mutex_unlock(&ctx->lock);
  return status;
}

int retls__ctx_detail(retls_ctx *ctx, const char *fmt, ...) {
  va_list ap;
  pthread_mutex_lock(&ctx->lock);
  va_start(ap, fmt);
  vsnprintf(ctx->detail, sizeof(ctx->detail), fmt, ap);
  va_end(ap);
  pthread_mutex_unlock(&ctx->lock);
  return 0;
}

int retls__check_usable(retls_conn *conn) {
  if (conn->state == RETLS__CLOSED)
    return retls__conn_fail(conn, RETLS_CLOSED,
                            "the connection is closed; open a new one");
  if (conn->state == RETLS__FAILED) {
    /* Keep the original failure text: it is what the caller needs. */
    char *t = retls__conn_text(conn);
    if (t != NULL && strstr(t, "connection failed earlier") == NULL) {
      char old[RETLS__DETAIL_MAX - 64];
      memcpy(old, t, sizeof(old) - 1);
      old[sizeof(old) - 1] = '\0';
      conn_printf(conn, "connection failed earlier (%s); close it", old);
    }
    return RETLS_CLOSED;
  }
  return RETLS_OK;
}

/*
 * Map the result of an SSL_* I/O call.  Must be called straight after the
 * call (SSL_get_error reads the thread's error queue and errno).  Fatal
 * statuses move the connection to FAILED: OpenSSL forbids further I/O (and
 * even SSL_shutdown) after SSL_ERROR_SSL / SSL_ERROR_SYSCALL.
 */
int retls__map_ssl_result(retls_conn *conn, int ret, const char *op) {
  int err = SSL_get_error(conn->ssl, ret);
  int saved_errno = errno;
  int status;
  const char *hint = NULL;
  char *text;

  conn->detail[0] = '\0';
  switch (err) {
  case SSL_ERROR_NONE:
    conn->want = RETLS_OK;
    return RETLS_OK;
  case SSL_ERROR_WANT_READ:
  case SSL_ERROR_WANT_ACCEPT:
    conn->want = RETLS_WANT_READ;
    return RETLS_WANT_READ;
  case SSL_ERROR_WANT_WRITE:
  case SSL_ERROR_WANT_CONNECT:
    conn->want = RETLS_WANT_WRITE;
    return RETLS_WANT_WRITE;
  case SSL_ERROR_ZERO_RETURN:
    conn->want = RETLS_OK;
    conn->peer_closed = 1;
    conn_printf(conn, "%s: the peer sent close_notify", op);
    return RETLS_ZERO_RETURN;
  case SSL_ERROR_SYSCALL:
    if (ERR_peek_error() == 0 && saved_errno == 0) {
      status = RETLS_EOF;
      conn_printf(conn,
                  "%s: the peer closed the transport without close_notify",
                  op);
    } else if (ERR_peek_error() == 0) {
      status = RETLS_SYSCALL;
      conn_printf(conn, "%s: %s", op, strerror(saved_errno));
    } else {
      status = RETLS_SYSCALL;
      conn_printf(conn, "%s", op);
    }
    break;
  case SSL_ERROR_SSL: {
    unsigned long e = ERR_peek_error();
    unsigned long last = ERR_peek_last_error();
    long vr = SSL_get_verify_result(conn->ssl);
    /* The BIO may queue its own error before OpenSSL's "unexpected eof"
     * (a BIO pair whose other half was freed says "uninitialized"), so
     * look at the last entry too. */
    if ((ERR_GET_LIB(e) == ERR_LIB_SSL &&
         ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) ||
        (ERR_GET_LIB(last) == ERR_LIB_SSL &&
         ERR_GET_REASON(last) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
      status = RETLS_EOF;
      conn_printf(conn,
                  "%s: the peer closed the transport without close_notify",
                  op);
    } else if (conn->transport == RETLS__T_PAIR &&
               ERR_GET_LIB(e) == ERR_LIB_BIO &&
               ERR_GET_REASON(e) == BIO_R_UNINITIALIZED) {
      /* Freeing one end of a BIO pair (closing the peer connection)
       * leaves this half "uninitialized": for the caller that is the
       * transport closing without close_notify, not a protocol error. */
      status = RETLS_EOF;
      conn_printf(conn,
                  "%s: the other end of the pair was closed without "
                  "close_notify",
                  op);
      ERR_clear_error();
    } else if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
               ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED &&
               vr != X509_V_OK) {
      status = RETLS_VERIFY;
      conn_printf(conn, "%s: certificate verify failed: %s", op,
                  X509_verify_cert_error_string(vr));
    } else {
      status = RETLS_SSL;
      conn_printf(conn, "%s", op);
      /* OpenSSL's words for "these bytes are not a TLS record" do not
       * say what usually happened. */
      if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
          (ERR_GET_REASON(e) == SSL_R_WRONG_VERSION_NUMBER ||
           ERR_GET_REASON(e) == SSL_R_PACKET_LENGTH_TOO_LONG))
        hint = " (the peer sent bytes that are not TLS: is it a plain-text "
               "service, or the wrong port?)";
    }
    break;
  }
  default:
    /* WANT_X509_LOOKUP, WANT_ASYNC(_JOB), WANT_CLIENT_HELLO_CB,
     * WANT_RETRY_VERIFY: only reachable with callbacks libretls never
     * installs. */
    status = RETLS_SSL;
    conn_printf(conn, "%s: unexpected SSL_get_error() value %d", op, err);
    break;
  }
  text = retls__conn_text(conn);
  append_err_queue(text, RETLS__DETAIL_MAX);
  if (hint != NULL && text != NULL) {
    size_t used = strlen(text);
    snprintf(text + used, RETLS__DETAIL_MAX - used, "%s", hint);
  }
  conn->want = RETLS_OK;
  conn->state = RETLS__FAILED;
  return status;
}

/* A failed call that is not I/O (SSL_renegotiate, SSL_key_update): report
 * OpenSSL's reason, but the connection stays usable. */
int retls__conn_soft_fail(retls_conn *conn, int status, const char *what) {
  conn_printf(conn, "%s", what);
  append_err_queue(retls__conn_text(conn), RETLS__DETAIL_MAX);
  return status;
}
