/*
 * conn.c - retls_conn lifecycle and every operation but write (write.c):
 * handshake, read, shutdown, close, renegotiation, key update, info.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "internal.h"

static int is_ip_literal(const char *s) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* Name the server: SNI and the name verification checks.  IP addresses
 * are checked against iPAddress SANs and, by RFC 6066, never sent as SNI.
 * Replaces an earlier name (SSL_set1_host replaces, the IP is overwritten,
 * and the SNI of an IP clears the one of an earlier hostname).  1 on
 * success. */
static int apply_server_name(SSL *ssl, const char *server_name) {
  if (is_ip_literal(server_name))
    return SSL_set_tlsext_host_name(ssl, NULL) &&
           SSL_set1_host(ssl, NULL) &&
           X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), server_name);
  return X509_VERIFY_PARAM_set1_ip(SSL_get0_param(ssl), NULL, 0) &&
         SSL_set_tlsext_host_name(ssl, server_name) &&
         SSL_set1_host(ssl, server_name);
}

/* Make a connection in state OPEN with its SSL object but no BIO yet.
 * Creation failures are explained in ctx's last error, as there is no
 * connection to hold them. */
int retls__conn_alloc(retls_conn **out, retls_ctx *ctx,
                      const char *server_name) {
  retls_conn *conn;
  *out = NULL;
  /* A success leaves no stale text behind (the bindings read it after a
   * failure); under the lock, as other threads may be creating
   * connections from ctx too. */
  pthread_mutex_lock(&ctx->lock);
  ctx->detail[0] = '\0';
  pthread_mutex_unlock(&ctx->lock);
  if (server_name != NULL && *server_name == '\0')
    server_name = NULL;
  if (ctx->role == RETLS_CLIENT && ctx->verify && server_name == NULL) {
    retls__ctx_detail(ctx,
                      "certificate verification needs the server's "
                      "hostname: pass server_hostname, or turn "
                      "verification off (verify=False / verify = false) "
                      "for tests");
    return RETLS_BAD_ARG;
  }
  if (ctx->role == RETLS_SERVER && server_name != NULL) {
    retls__ctx_detail(ctx,
                      "server_hostname is for client connections only");
    return RETLS_BAD_ARG;
  }
  if (ctx->role == RETLS_CLIENT && ctx->verify &&
      !__atomic_load_n(&ctx->system_store_loaded, __ATOMIC_ACQUIRE))
    retls__ctx_load_system_store(ctx);
  conn = calloc(1, sizeof(*conn));
  if (conn == NULL)
    return retls__ctx_fail(ctx, RETLS_NOMEM, "cannot create a connection");
  ERR_clear_error();
  conn->ssl = SSL_new(ctx->ssl_ctx);
  if (conn->ssl == NULL) {
    free(conn);
    return retls__ctx_fail(ctx, RETLS_NOMEM, "cannot create a connection");
  }
  conn->fd = -1;
  conn->detail = conn->detail_none;
  /* The new-session callback finds the connection through this. */
  SSL_set_app_data(conn->ssl, conn);
  if (ctx->role == RETLS_CLIENT) {
    SSL_set_connect_state(conn->ssl);
    if (server_name != NULL) {
      if (!apply_server_name(conn->ssl, server_name)) {
        char what[RETLS__DETAIL_MAX];
        SSL_free(conn->ssl);
        free(conn);
        snprintf(what, sizeof(what), "bad server hostname '%s'", server_name);
        return retls__ctx_fail(ctx, RETLS_BAD_ARG, what);
      }
    }
  } else {
    SSL_set_accept_state(conn->ssl);
  }
  retls__ctx_ref(ctx);
  conn->ctx = ctx;
  *out = conn;
  return RETLS_OK;
}

/* A blocking socket with SO_RCVTIMEO/SO_SNDTIMEO (retls_connect with a
 * timeout) reports an expired timeout as EAGAIN, which OpenSSL turns into
 * WANT_*; for a blocking caller that is a timeout.  If the caller has made
 * the socket non-blocking since, WANT_* is just WANT_*. */
int retls_conn_set_server_name(retls_conn *conn, const char *server_name) {
  int status;
  if (conn == NULL)
    return RETLS_BAD_ARG;
  if ((status = retls__check_usable(conn)) != RETLS_OK)
    return status;
  if (retls_ctx_role(conn->ctx) != RETLS_CLIENT)
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "set_server_name: the server name is for client "
                            "connections only");
  if (server_name == NULL || *server_name == '\0')
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "set_server_name: a hostname or IP address "
                            "expected, got an empty name");
  /* Once the ClientHello is out, the SNI cannot change and the peer's
   * certificate may already have been checked against the old name. */
  if (!SSL_in_before(conn->ssl))
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "set_server_name: the handshake has started; "
                            "name the server before it");
  ERR_clear_error();
  if (!apply_server_name(conn->ssl, server_name))
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "set_server_name: bad server hostname '%s'",
                            server_name);
  return RETLS_OK;
}

int retls__conn_status_from_want(retls_conn *conn, int status) {
  if ((status == RETLS_WANT_READ || status == RETLS_WANT_WRITE) &&
      conn->timeout_ms > 0 && conn->fd >= 0 &&
      !(fcntl(conn->fd, F_GETFL) & O_NONBLOCK))
    return retls__conn_fail(conn, RETLS_TIMEOUT,
                            "timed out after %d ms waiting for the socket "
                            "to become %s; the operation may be repeated",
                            conn->timeout_ms,
                            status == RETLS_WANT_READ ? "readable"
                                                      : "writable");
  return status;
}

/* Clear the error queue and errno before every SSL_* I/O call, so one
 * connection's stale error never shows up on another. */
#define IO_BEGIN() \
  do {             \
    retls__err_clear(); \
    errno = 0;     \
  } while (0)

int retls_conn_handshake(retls_conn *conn) {
  int ret, status;
  if (conn == NULL)
    return RETLS_BAD_ARG;
  if ((status = retls__check_usable(conn)) != RETLS_OK)
    return status;
  /* After write_early, the handshake is finished (and rejected early data
   * sent again) by the retry state machine. */
  if (conn->early != RETLS__EARLY_NONE && conn->early != RETLS__EARLY_DONE)
    return retls__early_settle(conn);
  IO_BEGIN();
  ret = SSL_do_handshake(conn->ssl);
  if (ret == 1) {
    conn->want = RETLS_OK;
    conn->detail[0] = '\0';
    retls__conn_release_idle(conn); /* established, nothing to send yet */
    return RETLS_OK;
  }
  status = retls__map_ssl_result(conn, ret, "handshake");
  return retls__conn_status_from_want(conn, status);
}

int retls_conn_read(size_t *out, retls_conn *conn, void *buf, size_t len) {
  size_t got = 0, dummy;
  int ret, status;
  if (out == NULL)
    out = &dummy;
  *out = 0;
  if (conn == NULL)
    return RETLS_BAD_ARG;
  if ((status = retls__check_usable(conn)) != RETLS_OK)
    return status;
  if (buf == NULL || len == 0)
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "read: need a buffer of at least 1 byte");
  /* Rejected early data must reach the peer before we wait for its
   * answer, or both ends would wait for each other. */
  if (conn->early != RETLS__EARLY_NONE && conn->early != RETLS__EARLY_DONE &&
      (status = retls__early_settle(conn)) != RETLS_OK)
    return status;
  IO_BEGIN();
  ret = SSL_read_ex(conn->ssl, buf, len, &got);
  if (ret == 1) {
    conn->want = RETLS_OK;
    conn->detail[0] = '\0';
    conn->stats.bytes_read += got;
    *out = got;
    return RETLS_OK;
  }
  status = retls__map_ssl_result(conn, ret, "read");
  /* All read: the connection waits for its peer, so its record buffers
   * go back (retls__conn_release_idle).  Not for an in-process pair,
   * whose two ends take turns in one loop: there the next read comes at
   * once, and a free + malloc per turn would only cost time. */
  if (status == RETLS_WANT_READ && conn->pend_len == 0 &&
      conn->transport != RETLS__T_PAIR && SSL_is_init_finished(conn->ssl))
    retls__conn_release_idle(conn);
  return retls__conn_status_from_want(conn, status);
}

size_t retls_conn_pending_read(const retls_conn *conn) {
  if (conn == NULL || conn->state != RETLS__OPEN)
    return 0;
  return (size_t)SSL_pending(conn->ssl);
}

int retls_conn_shutdown(retls_conn *conn) {
  int ret, status;
  if (conn == NULL)
    return RETLS_BAD_ARG;
  if ((status = retls__check_usable(conn)) != RETLS_OK)
    return status;
  /* Early data first: OpenSSL would send close_notify under the early
   * keys, before the server said whether it took the early bytes, and a
   * rejected write_early could then be neither replayed nor reported. */
  if (conn->early == RETLS__EARLY_WRITING && conn->pend_len == 0 &&
      (status = retls__early_settle(conn)) != RETLS_OK)
    return status;
  if (retls_conn_pending_write(conn) > 0)
    return retls__conn_fail(conn, RETLS_WRITE_PENDING,
                            "shutdown: %zu bytes of a write are pending; "
                            "flush() them first (close_notify would cut "
                            "them off)",
                            retls_conn_pending_write(conn));
  if (conn->shutdown_sent)
    return RETLS_OK;
  /* A TLS 1.2 renegotiation still to run (asked for by either end) would
   * start after our close_notify: its handshake clears OpenSSL's shutdown
   * state and sends records the peer no longer reads, so both ends can
   * wedge with writes that never drain. */
  if (SSL_renegotiate_pending(conn->ssl))
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "shutdown: a renegotiation is pending; finish "
                            "it first (handshake(), or keep reading and "
                            "writing until it completes)");
  /* A KeyUpdate asked for with key_update() goes out with the next write
   * or handshake; until then OpenSSL counts the connection as "in init"
   * and refuses close_notify ("shutdown while in init").  Send it now:
   * the peer gets the update, then our close_notify.  If that stops with
   * WANT_*, OpenSSL has taken the request (the type reads NONE again) but
   * is still in init until the record is out: the retry finishes it.  The
   * same when another call began sending it and stopped (a read that met
   * a full transport: OpenSSL's state is then "write key update"). */
  if (SSL_get_key_update_type(conn->ssl) != SSL_KEY_UPDATE_NONE ||
      (conn->shutdown_key_update && !SSL_is_init_finished(conn->ssl)) ||
      (!SSL_is_init_finished(conn->ssl) &&
       (SSL_get_state(conn->ssl) == TLS_ST_CW_KEY_UPDATE ||
        SSL_get_state(conn->ssl) == TLS_ST_SW_KEY_UPDATE))) {
    conn->shutdown_key_update = 1;
    IO_BEGIN();
    ret = SSL_do_handshake(conn->ssl);
    if (ret != 1) {
      status = retls__map_ssl_result(conn, ret, "shutdown (sending the "
                                                "KeyUpdate first)");
      return retls__conn_status_from_want(conn, status);
    }
    conn->shutdown_key_update = 0;
  }
  /* A server that took 0-RTT has sent its Finished and waits for the
   * client's: OpenSSL lets it write then (0.5-RTT data) and so takes
   * close_notify too, but its handshake goes on after it, and the session
   * ticket it then sends lands behind the close_notify, where the client
   * no longer reads: both ends wedge.  Refuse until the handshake is done
   * (found by fuzz_retry). */
  if (!SSL_in_init(conn->ssl) && !retls__handshake_done(conn->ssl))
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "shutdown: the handshake is still running "
                            "(the client's 0-RTT phase); read (or "
                            "handshake()) until it completes, then "
                            "shutdown()");
  conn->shutdown_called = 1;
  IO_BEGIN();
  ret = SSL_shutdown(conn->ssl);
  if (ret >= 0) {
    /* 0: ours sent, the peer's not yet seen; 1: both.  Either way our
     * side is done; the peer's close_notify shows up as ZERO_RETURN. */
    conn->shutdown_sent = 1;
    conn->want = RETLS_OK;
    return RETLS_OK;
  }
  status = retls__map_ssl_result(conn, ret, "shutdown");
  return retls__conn_status_from_want(conn, status);
}

int retls_conn_close(retls_conn *conn, int flags) {
  if (conn == NULL)
    return RETLS_BAD_ARG;
  if (conn->state == RETLS__CLOSED)
    return RETLS_OK;
  if (retls_conn_pending_write(conn) > 0 && !(flags & RETLS_CLOSE_DISCARD))
    return retls__conn_fail(conn, RETLS_WRITE_PENDING,
                            "close: %zu bytes of a write are pending and "
                            "were never sent; %s",
                            retls_conn_pending_write(conn),
                            conn->state == RETLS__FAILED
                                ? "the connection failed, so they never "
                                  "can be: close with discard to drop them"
                                : "flush() them, or close with discard to "
                                  "drop them");
  SSL_free(conn->ssl); /* frees its BIOs; fds are BIO_NOCLOSE */
  conn->ssl = NULL;
  BIO_free(conn->net_bio);
  conn->net_bio = NULL;
  conn->outq = NULL;
  if (conn->own_fd && conn->fd >= 0)
    close(conn->fd);
  conn->fd = -1;
  conn->pend_len = 0;
  free(conn->pend_buf);
  conn->pend_buf = NULL;
  conn->pend_cap = 0;
  free(conn->alpn);
  conn->alpn = NULL;
  SSL_SESSION_free(conn->session);
  conn->session = NULL;
  /* early_buf comes from realloc() (write.c): free() it, not
   * OPENSSL_free(), which an application may have pointed elsewhere with
   * CRYPTO_set_mem_functions() (the fuzzer does). */
  if (conn->early_buf != NULL)
    OPENSSL_cleanse(conn->early_buf, conn->early_len);
  free(conn->early_buf);
  conn->early_buf = NULL;
  conn->early_len = 0;
  conn->pend_early = 0;
  OPENSSL_free(conn->peer_der);
  conn->peer_der = NULL;
  conn->peer_der_len = 0;
  OPENSSL_free(conn->chain_der);
  conn->chain_der = NULL;
  conn->chain_der_len = 0;
  retls_ctx_free(conn->ctx);
  conn->ctx = NULL;
  conn->want = RETLS_OK;
  conn->state = RETLS__CLOSED;
  conn->detail[0] = '\0';
  return RETLS_OK;
}

void retls_conn_free(retls_conn *conn) {
  if (conn == NULL)
    return;
  retls_conn_close(conn, RETLS_CLOSE_DISCARD);
  if (conn->detail != conn->detail_none)
    free(conn->detail);
  free(conn);
}

static int check_established(retls_conn *conn, const char *op) {
  int status = retls__check_usable(conn);
  if (status != RETLS_OK)
    return status;
  /* Completed once is enough: a KeyUpdate or renegotiation scheduled but
   * not sent yet also puts OpenSSL "in init", and then it is OpenSSL that
   * refuses (RETLS_SSL, connection usable), not a missing handshake. */
  if (!retls__handshake_done(conn->ssl))
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "%s needs a completed handshake; call "
                            "handshake() first",
                            op);
  return RETLS_OK;
}

int retls_conn_renegotiate(retls_conn *conn) {
  int status;
  if (conn == NULL)
    return RETLS_BAD_ARG;
  if ((status = check_established(conn, "renegotiate")) != RETLS_OK)
    return status;
  if (SSL_version(conn->ssl) >= TLS1_3_VERSION)
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "renegotiation does not exist in TLS 1.3; use "
                            "key_update() instead");
  /* After close_notify either way the peer ignores handshake records, so
   * OpenSSL would accept the request and the next write would wait for an
   * answer that never comes.  retls keeps its own flags: a renegotiation
   * that started meanwhile clears OpenSSL's (SSL_get_shutdown() is 0). */
  if (conn->shutdown_called || conn->peer_closed ||
      SSL_get_shutdown(conn->ssl) != 0)
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "renegotiate after close_notify was %s: the "
                            "peer would never answer",
                            conn->shutdown_called
                                ? "sent (shutdown() was called)"
                                : "received from the peer");
  ERR_clear_error();
  if (SSL_renegotiate(conn->ssl) != 1)
    return retls__conn_soft_fail(conn, RETLS_SSL, "renegotiate refused");
  return RETLS_OK;
}

int retls_conn_key_update(retls_conn *conn, int request_peer) {
  int status;
  if (conn == NULL)
    return RETLS_BAD_ARG;
  if ((status = check_established(conn, "key_update")) != RETLS_OK)
    return status;
  if (SSL_version(conn->ssl) < TLS1_3_VERSION)
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "KeyUpdate exists only in TLS 1.3; use "
                            "renegotiate() on TLS 1.2");
  /* After our close_notify OpenSSL still schedules it, but can never send
   * it; the end then counts as "in init" and its reads stop before the
   * peer's remaining data (fuzz: regress-tls13-key-update-after-shutdown). */
  if (conn->shutdown_called)
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "key_update after shutdown(): close_notify was "
                            "sent, nothing can follow it");
  ERR_clear_error();
  if (SSL_key_update(conn->ssl, request_peer ? SSL_KEY_UPDATE_REQUESTED
                                             : SSL_KEY_UPDATE_NOT_REQUESTED) !=
      1)
    return retls__conn_soft_fail(conn, RETLS_SSL,
                                 "key_update refused for now (what is "
                                 "being sent must go first: flush() or "
                                 "write, then try again)");
  return RETLS_OK;
}

/* ---- information ------------------------------------------------------ */

int retls_conn_stats(retls_stats *out, const retls_conn *conn) {
  if (out == NULL || conn == NULL)
    return RETLS_BAD_ARG;
  *out = conn->stats;
  return RETLS_OK;
}

const char *retls_conn_last_error(const retls_conn *conn) {
  return conn ? conn->detail : "no connection (NULL)";
}

static int has_session(const retls_conn *conn) {
  return conn != NULL && conn->ssl != NULL &&
         retls__handshake_done(conn->ssl);
}

const char *retls_conn_version(const retls_conn *conn) {
  return has_session(conn) ? SSL_get_version(conn->ssl) : NULL;
}

const char *retls_conn_cipher(const retls_conn *conn) {
  return has_session(conn) ? SSL_get_cipher_name(conn->ssl) : NULL;
}

const char *retls_conn_alpn(const retls_conn *conn) {
  /* The cache is an implementation detail: the caller's view is const. */
  retls_conn *c = (retls_conn *)conn;
  const unsigned char *data = NULL;
  unsigned int len = 0;
  char *copy;
  if (!has_session(conn))
    return NULL;
  SSL_get0_alpn_selected(c->ssl, &data, &len);
  if (data == NULL || len == 0)
    return NULL;
  copy = realloc(c->alpn, len + 1);
  if (copy == NULL)
    return NULL;
  memcpy(copy, data, len);
  copy[len] = '\0';
  c->alpn = copy;
  return copy;
}

/* x in DER into *keep (freeing what it held), handed out through out:
 * the connection owns it until the next call that uses the same slot. */
static int keep_der(const unsigned char **out, size_t *out_len,
                    retls_conn *conn, X509 *x, unsigned char **keep,
                    size_t *keep_len) {
  unsigned char *der = NULL;
  int n = i2d_X509(x, &der);
  if (n <= 0) {
    ERR_clear_error();
    return retls__conn_fail(conn, RETLS_NOMEM, "cannot encode certificate");
  }
  OPENSSL_free(*keep);
  *keep = der;
  *keep_len = (size_t)n;
  *out = der;
  *out_len = (size_t)n;
  return RETLS_OK;
}

int retls_conn_peer_certificate(const unsigned char **out, size_t *out_len,
                                retls_conn *conn) {
  X509 *x;
  if (out == NULL || out_len == NULL || conn == NULL)
    return RETLS_BAD_ARG;
  *out = NULL;
  *out_len = 0;
  if (conn->state == RETLS__CLOSED)
    return retls__conn_fail(conn, RETLS_CLOSED,
                            "the connection is closed; open a new one");
  x = SSL_get0_peer_certificate(conn->ssl);
  if (x == NULL)
    return RETLS_OK;
  return keep_der(out, out_len, conn, x, &conn->peer_der,
                  &conn->peer_der_len);
}

long retls_conn_verify_result(const retls_conn *conn) {
  if (conn == NULL || conn->ssl == NULL)
    return X509_V_OK;
  return SSL_get_verify_result(conn->ssl);
}

const char *retls_conn_verify_text(const retls_conn *conn) {
  return X509_verify_cert_error_string(retls_conn_verify_result(conn));
}

int retls_conn_fileno(const retls_conn *conn) {
  if (conn == NULL || conn->state == RETLS__CLOSED)
    return -1;
  return conn->fd;
}

int retls_conn_is_established(const retls_conn *conn) {
  return has_session(conn);
}

/* ---- handshake facts (LuaSec's getfinished, exportkeyingmaterial, ...) -- */

int retls_conn_finished(size_t *out, retls_conn *conn, void *buf, size_t len,
                        int peer) {
  if (out == NULL || conn == NULL || (buf == NULL && len > 0))
    return RETLS_BAD_ARG;
  *out = 0;
  /* A failed connection still knows the messages of its last completed
   * handshake; a closed one has no SSL object any more. */
  if (conn->state == RETLS__CLOSED)
    return retls__check_usable(conn);
  *out = peer ? SSL_get_peer_finished(conn->ssl, buf, len)
              : SSL_get_finished(conn->ssl, buf, len);
  if (*out > len)
    *out = len; /* OpenSSL returns the full size and copies what fits */
  return RETLS_OK;
}

int retls_conn_export_keying_material(void *out, size_t out_len,
                                      retls_conn *conn, const char *label,
                                      size_t label_len, const void *context,
                                      size_t context_len) {
  int status;
  if (out == NULL || conn == NULL || (label == NULL && label_len > 0))
    return RETLS_BAD_ARG;
  if ((status = check_established(conn, "export_keying_material")) !=
      RETLS_OK)
    return status;
  if (out_len == 0 || out_len > (1u << 30))
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "export_keying_material: length must be 1 to "
                            "2^30 bytes, got %zu",
                            out_len);
  ERR_clear_error();
  if (SSL_export_keying_material(conn->ssl, out, out_len,
                                 label != NULL ? label : "", label_len,
                                 context, context_len, context != NULL) != 1) {
    /* In TLS 1.2 the labels of the key schedule itself ("master secret",
     * "key expansion", ...) are refused: the exporter must never hand out
     * the connection's own keys. */
    unsigned long e = ERR_peek_last_error();
    const char *why = e != 0 ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "export_keying_material: OpenSSL refused the "
                            "label '%.*s' (%s)",
                            (int)(label_len > 64 ? 64 : label_len),
                            label != NULL ? label : "",
                            why != NULL ? why : "no reason given");
  }
  return RETLS_OK;
}

int retls_conn_chain_certificate(const unsigned char **out, size_t *out_len,
                                 retls_conn *conn, int local, size_t index) {
  X509 *x = NULL;
  STACK_OF(X509) *chain = NULL;
  if (out == NULL || out_len == NULL || conn == NULL)
    return RETLS_BAD_ARG;
  *out = NULL;
  *out_len = 0;
  if (conn->state == RETLS__CLOSED)
    return retls__check_usable(conn);
  if (local) {
    /* own certificate, then the chain certificates loaded with it
     * (SSL_CTX_use_certificate_chain_file puts them there) */
    if (index == 0) {
      x = SSL_get_certificate(conn->ssl);
    } else if (SSL_get0_chain_certs(conn->ssl, &chain) == 1 &&
               chain != NULL && index - 1 < (size_t)sk_X509_num(chain)) {
      x = sk_X509_value(chain, (int)(index - 1));
    }
  } else {
    /* A client's SSL_get_peer_cert_chain starts with the server's own
     * certificate; a server's leaves the client's out. */
    chain = SSL_get_peer_cert_chain(conn->ssl);
    if (SSL_is_server(conn->ssl)) {
      if (index == 0)
        x = SSL_get0_peer_certificate(conn->ssl);
      else if (chain != NULL && index - 1 < (size_t)sk_X509_num(chain))
        x = sk_X509_value(chain, (int)(index - 1));
    } else if (chain != NULL && index < (size_t)sk_X509_num(chain)) {
      x = sk_X509_value(chain, (int)index);
    }
  }
  if (x == NULL)
    return RETLS_OK;
  return keep_der(out, out_len, conn, x, &conn->chain_der,
                  &conn->chain_der_len);
}

const char *retls_conn_server_name(const retls_conn *conn) {
  if (conn == NULL || conn->ssl == NULL)
    return NULL;
  return SSL_get_servername(conn->ssl, TLSEXT_NAMETYPE_host_name);
}

int retls_conn_cipher_info(int *out, int *out_alg_bits, retls_conn *conn,
                           char *buf, size_t len) {
  const SSL_CIPHER *cipher;
  int status, alg = 0;
  if (out == NULL || out_alg_bits == NULL || conn == NULL || buf == NULL)
    return RETLS_BAD_ARG;
  *out = *out_alg_bits = 0;
  if ((status = check_established(conn, "cipher_info")) != RETLS_OK)
    return status;
  if (len < 128 || len > INT_MAX)
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "cipher_info: the buffer must hold 128 bytes at "
                            "least, got %zu",
                            len);
  cipher = SSL_get_current_cipher(conn->ssl);
  if (cipher == NULL)
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "cipher_info: no cipher negotiated");
  SSL_CIPHER_description(cipher, buf, (int)len);
  *out = SSL_CIPHER_get_bits(cipher, &alg);
  *out_alg_bits = alg;
  return RETLS_OK;
}
