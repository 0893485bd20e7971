/*
 * session.c - retls_session: resumable TLS sessions as portable bytes, and
 * the connection calls that give and take them.  The early-data write path
 * is in write.c with the rest of the retry state machine; read_early and
 * the early-data status are here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "internal.h"

/* from_bytes has no object to keep its failure text on. */
static __thread char session_detail[RETLS__DETAIL_MAX];

const char *retls_session_last_error(void) { return session_detail; }

/* Wrap sess (taking over the caller's reference). */
static int session_wrap(retls_session **out, SSL_SESSION *sess) {
  retls_session *s;
  unsigned char *p;
  int n;
  *out = NULL;
  s = calloc(1, sizeof(*s));
  n = i2d_SSL_SESSION(sess, NULL);
  if (s == NULL || n <= 0 || (s->der = malloc((size_t)n)) == NULL) {
    free(s);
    SSL_SESSION_free(sess);
    ERR_clear_error();
    return RETLS_NOMEM;
  }
  p = s->der;
  s->der_len = (size_t)i2d_SSL_SESSION(sess, &p);
  s->sess = sess;
  s->refs = 1;
  *out = s;
  return RETLS_OK;
}

int retls_session_from_bytes(retls_session **out, const void *buf,
                             size_t len) {
  const unsigned char *p = buf;
  SSL_SESSION *sess;
  if (out == NULL)
    return RETLS_BAD_ARG;
  *out = NULL;
  session_detail[0] = '\0';
  if (buf == NULL || len == 0 || len > 1024 * 1024) {
    retls__set_detail(session_detail,
                      "session bytes: got %zu bytes; pass what "
                      "Session.to_bytes() / session:to_bytes() returned",
                      buf == NULL ? (size_t)0 : len);
    return RETLS_BAD_ARG;
  }
  ERR_clear_error();
  sess = d2i_SSL_SESSION(NULL, &p, (long)len);
  ERR_clear_error();
  if (sess == NULL) {
    retls__set_detail(session_detail,
                      "session bytes (%zu) are not a TLS session: garbage "
                      "or truncated; pass the unchanged output of "
                      "to_bytes(), or connect without a session",
                      len);
    return RETLS_BAD_ARG;
  }
  if ((size_t)(p - (const unsigned char *)buf) != len) {
    SSL_SESSION_free(sess);
    retls__set_detail(session_detail,
                      "session bytes: %zu trailing bytes after the "
                      "session; pass the unchanged output of to_bytes()",
                      len - (size_t)(p - (const unsigned char *)buf));
    return RETLS_BAD_ARG;
  }
  return session_wrap(out, sess);
}

int retls_session_to_bytes(const unsigned char **out, size_t *out_len,
                           const retls_session *session) {
  if (out == NULL || out_len == NULL || session == NULL)
    return RETLS_BAD_ARG;
  *out = session->der;
  *out_len = session->der_len;
  return RETLS_OK;
}

retls_session *retls_session_ref(retls_session *session) {
  if (session != NULL)
    __atomic_add_fetch(&session->refs, 1, __ATOMIC_RELAXED);
  return session;
}

void retls_session_free(retls_session *session) {
  if (session == NULL)
    return;
  if (__atomic_sub_fetch(&session->refs, 1, __ATOMIC_ACQ_REL) != 0)
    return;
  SSL_SESSION_free(session->sess);
  free(session->der);
  free(session);
}

int retls_session_is_resumable(const retls_session *session) {
  return session != NULL && SSL_SESSION_is_resumable(session->sess);
}

unsigned long retls_session_ticket_lifetime(const retls_session *session) {
  return session ? SSL_SESSION_get_ticket_lifetime_hint(session->sess) : 0;
}

size_t retls_session_max_early_data(const retls_session *session) {
  return session ? SSL_SESSION_get_max_early_data(session->sess) : 0;
}

/* SSL_CTX_sess_set_new_cb (clients, context.c): OpenSSL hands over every
 * new session, TLS 1.3 tickets included, which arrive after the handshake.
 * The connection keeps the newest; returning 1 keeps the reference. */
int retls__session_new_cb(SSL *ssl, SSL_SESSION *sess) {
  retls_conn *conn = SSL_get_app_data(ssl);
  if (conn == NULL)
    return 0;
  SSL_SESSION_free(conn->session);
  conn->session = sess;
  return 1;
}

int retls_conn_session(retls_session **out, retls_conn *conn) {
  SSL_SESSION *sess;
  const char *name;
  int status;
  if (out == NULL || conn == NULL)
    return RETLS_BAD_ARG;
  *out = NULL;
  if ((status = retls__check_usable(conn)) != RETLS_OK)
    return status;
  if (conn->ctx->role != RETLS_CLIENT)
    return RETLS_OK;
  sess = conn->session;
  if (sess == NULL || !SSL_SESSION_is_resumable(sess)) {
    /* A resumed TLS 1.2 session is not "new": the callback stays quiet,
     * and the session in use is the one to offer next time. */
    sess = SSL_get_session(conn->ssl);
    if (sess == NULL || !SSL_is_init_finished(conn->ssl) ||
        !SSL_SESSION_is_resumable(sess))
      return RETLS_OK;
  }
  /* A copy, not a reference: OpenSSL marks a connection's session
   * unresumable when the connection ends without close_notify, and the
   * caller's session must not change under it. */
  sess = SSL_SESSION_dup(sess);
  if (sess == NULL) {
    ERR_clear_error();
    return RETLS_NOMEM;
  }
  /* OpenSSL records the server name only in server-side sessions; the
   * copy carries the name this client asked for (it is serialized), so
   * retls_conn_set_session can refuse a session meant for another
   * server. */
  name = SSL_get_servername(conn->ssl, TLSEXT_NAMETYPE_host_name);
  if (name != NULL && SSL_SESSION_get0_hostname(sess) == NULL &&
      !SSL_SESSION_set1_hostname(sess, name)) {
    SSL_SESSION_free(sess);
    ERR_clear_error();
    return RETLS_NOMEM;
  }
  return session_wrap(out, sess);
}

static int version_allowed(SSL *ssl, int version) {
  int lo = (int)SSL_get_min_proto_version(ssl);
  int hi = (int)SSL_get_max_proto_version(ssl);
  return (lo == 0 || version >= lo) && (hi == 0 || version <= hi);
}

int retls_conn_set_session(retls_conn *conn, retls_session *session) {
  SSL_SESSION *copy;
  const char *host, *want;
  int status, version;
  if (conn == NULL)
    return RETLS_BAD_ARG;
  if ((status = retls__check_usable(conn)) != RETLS_OK)
    return status;
  if (session == NULL)
    return retls__conn_fail(conn, RETLS_BAD_ARG, "set_session: no session");
  if (conn->ctx->role != RETLS_CLIENT)
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "set_session: sessions are resumed by clients; "
                            "a server resumes whatever its clients offer");
  if (!SSL_in_before(conn->ssl))
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "set_session: the handshake has started; give "
                            "the session to a new connection");
  if (!SSL_SESSION_is_resumable(session->sess))
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "set_session: this session cannot be resumed "
                            "(no session ID or ticket); take the session "
                            "after the first read of a TLS 1.3 connection");
  /* OpenSSL would quietly run a full handshake in both cases below; a
   * session meant for another server is a caller's mistake worth naming. */
  host = SSL_SESSION_get0_hostname(session->sess);
  want = SSL_get_servername(conn->ssl, TLSEXT_NAMETYPE_host_name);
  if (host != NULL && want != NULL && strcasecmp(host, want) != 0)
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "set_session: the session is from server '%s', "
                            "this connection is for '%s'; use a session "
                            "from the same server or none",
                            host, want);
  version = SSL_SESSION_get_protocol_version(session->sess);
  if (!version_allowed(conn->ssl, version))
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "set_session: the session is %s, which this "
                            "context's min/max versions exclude; connect "
                            "without the session",
                            version == TLS1_3_VERSION   ? "TLSv1.3"
                            : version == TLS1_2_VERSION ? "TLSv1.2"
                                                        : "an old version");
  /* The connection gets its own copy, for the same reason as in
   * retls_conn_session: the caller's session stays as it is. */
  ERR_clear_error();
  copy = SSL_SESSION_dup(session->sess);
  if (copy == NULL || SSL_set_session(conn->ssl, copy) != 1) {
    SSL_SESSION_free(copy);
    return retls__conn_soft_fail(conn, RETLS_SSL, "set_session refused");
  }
  SSL_SESSION_free(copy);
  return RETLS_OK;
}

int retls_conn_session_reused(const retls_conn *conn) {
  return conn != NULL && conn->ssl != NULL &&
         retls__handshake_done(conn->ssl) && SSL_session_reused(conn->ssl);
}

int retls_conn_early_data_status(const retls_conn *conn) {
  if (conn == NULL || conn->ssl == NULL)
    return RETLS_EARLY_NOT_SENT;
  /* Settled by a completed handshake (write.c), which a later failure
   * does not undo (retls__handshake_done). */
  if (conn->early_rejected)
    return RETLS_EARLY_REJECTED;
  if (!retls__handshake_done(conn->ssl))
    return RETLS_EARLY_PENDING;
  switch (SSL_get_early_data_status(conn->ssl)) {
  case SSL_EARLY_DATA_ACCEPTED:
    return RETLS_EARLY_ACCEPTED;
  case SSL_EARLY_DATA_REJECTED:
    return RETLS_EARLY_REJECTED;
  default:
    return RETLS_EARLY_NOT_SENT;
  }
}

int retls_conn_early_data_rejected_bytes(const unsigned char **out,
                                         size_t *out_len, retls_conn *conn) {
  if (out == NULL || out_len == NULL || conn == NULL)
    return RETLS_BAD_ARG;
  *out = NULL;
  *out_len = 0;
  /* Only with replay off does the copy outlive the handshake. */
  if (conn->early_rejected && !conn->ctx->early_replay &&
      conn->early_len > 0) {
    *out = conn->early_buf;
    *out_len = conn->early_len;
  }
  return RETLS_OK;
}

int retls_conn_read_early(size_t *out, retls_conn *conn, void *buf,
                          size_t len) {
  size_t got = 0, dummy;
  int ret, status;
  if (out == NULL)
    out = &dummy;
  *out = 0;
  if (conn == NULL)
    return RETLS_BAD_ARG;
  if ((status = retls__check_usable(conn)) != RETLS_OK)
    return status;
  if (conn->ctx->role != RETLS_SERVER)
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "read_early is for servers; a client sends "
                            "early data with write_early()");
  if (buf == NULL || len == 0)
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "read_early: need a buffer of at least 1 byte");
  /* Once the early data has ended there is none to read: the documented
   * end, not an error (OpenSSL would call it one). */
  if (conn->early_read_done || SSL_is_init_finished(conn->ssl))
    return RETLS_OK;
  if (!conn->early_read_started && !SSL_in_before(conn->ssl))
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "read_early must be the first operation on a "
                            "server connection; the handshake started "
                            "without it (so any early data is refused and "
                            "sent again by the client): use read()");
  conn->early_read_started = 1;
  ERR_clear_error();
  errno = 0;
  ret = SSL_read_early_data(conn->ssl, buf, len, &got);
  switch (ret) {
  case SSL_READ_EARLY_DATA_SUCCESS:
    conn->want = RETLS_OK;
    conn->detail[0] = '\0';
    conn->stats.early_bytes += got;
    conn->stats.bytes_read += got;
    *out = got;
    return RETLS_OK;
  case SSL_READ_EARLY_DATA_FINISH:
    conn->want = RETLS_OK;
    conn->detail[0] = '\0';
    conn->early_read_done = 1;
    return RETLS_OK;
  default:
    status = retls__map_ssl_result(conn, 0, "read_early");
    return retls__conn_status_from_want(conn, status);
  }
}
