/*
 * transport.c - where ciphertext goes: an fd, a new TCP socket, memory
 * buffers moved by the caller, or an in-process BIO pair.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <openssl/err.h>

#include "internal.h"

#define RETLS__DEFAULT_PAIR_CAPACITY 16384
#define RETLS__DEFAULT_MEMORY_CAPACITY 65536

int retls_conn_new_fd(retls_conn **out, retls_ctx *ctx, int fd, int flags,
                      const char *server_name) {
  retls_conn *conn;
  BIO *bio;
  int status;
  if (out == NULL)
    return RETLS_BAD_ARG;
  *out = NULL;
  if (ctx == NULL)
    return RETLS_BAD_ARG;
  if (fd < 0 || fcntl(fd, F_GETFD) < 0) {
    retls__ctx_detail(ctx, "fd %d is not an open file descriptor",
                      fd);
    return RETLS_BAD_ARG;
  }
  if ((status = retls__conn_alloc(&conn, ctx, server_name)) != RETLS_OK)
    return status;
  /* BIO_NOCLOSE: the connection closes the fd itself, and only if it
   * owns it. */
  bio = BIO_new_socket(fd, BIO_NOCLOSE);
  if (bio == NULL) {
    retls_conn_free(conn);
    return RETLS_NOMEM;
  }
  SSL_set_bio(conn->ssl, bio, bio);
  conn->transport = RETLS__T_FD;
  conn->fd = fd;
  conn->own_fd = (flags & RETLS_FD_OWN) != 0;
  *out = conn;
  return RETLS_OK;
}

/* connect(2) bounded by timeout_ms (0: unbounded).  Returns 0 or an errno
 * value (ETIMEDOUT on expiry). */
static int connect_bounded(int fd, const struct sockaddr *sa, socklen_t len,
                           int timeout_ms) {
  int fl, rc, err = 0;
  socklen_t elen = sizeof(err);
  struct pollfd p;
  if (timeout_ms <= 0)
    return connect(fd, sa, len) == 0 ? 0 : errno;
  fl = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  rc = connect(fd, sa, len);
  if (rc != 0 && errno != EINPROGRESS) {
    err = errno;
  } else if (rc != 0) {
    p.fd = fd;
    p.events = POLLOUT;
    do
      rc = poll(&p, 1, timeout_ms);
    while (rc < 0 && errno == EINTR);
    if (rc == 0)
      err = ETIMEDOUT;
    else if (rc < 0)
      err = errno;
    else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
      err = errno;
  }
  fcntl(fd, F_SETFL, fl);
  return err;
}

int retls_connect(retls_conn **out, retls_ctx *ctx, const char *host,
                  int port, int timeout_ms, const char *server_name) {
  struct addrinfo hints, *res = NULL, *ai;
  char portstr[16];
  int fd = -1, err = 0, gai, status;
  retls_conn *conn;

  if (out == NULL)
    return RETLS_BAD_ARG;
  *out = NULL;
  if (ctx == NULL)
    return RETLS_BAD_ARG;
  if (host == NULL || !*host || port <= 0 || port > 65535 ||
      timeout_ms < 0) {
    retls__ctx_detail(ctx,
                      "connect: need a host, a port in 1..65535 and a "
                      "timeout >= 0 (got host %s, port %d, timeout %d ms)",
                      host ? host : "(null)", port, timeout_ms);
    return RETLS_BAD_ARG;
  }
  if (server_name == NULL)
    server_name = host;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  snprintf(portstr, sizeof(portstr), "%d", port);
  gai = getaddrinfo(host, portstr, &hints, &res);
  if (gai != 0) {
    retls__ctx_detail(ctx, "connect: cannot resolve '%s': %s", host,
                      gai_strerror(gai));
    return RETLS_SYSCALL;
  }
  for (ai = res; ai != NULL; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                ai->ai_protocol);
    if (fd < 0) {
      err = errno;
      continue;
    }
    err = connect_bounded(fd, ai->ai_addr, ai->ai_addrlen, timeout_ms);
    if (err == 0)
      break;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) {
    retls__ctx_detail(ctx, "connect to %s:%d: %s", host, port,
                      strerror(err));
    return err == ETIMEDOUT ? RETLS_TIMEOUT : RETLS_SYSCALL;
  }
  if (timeout_ms > 0) {
    struct timeval tv;
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  }
  status = retls_conn_new_fd(&conn, ctx, fd, RETLS_FD_OWN, server_name);
  if (status != RETLS_OK) {
    close(fd);
    return status;
  }
  conn->timeout_ms = timeout_ms;
  *out = conn;
  return RETLS_OK;
}

/* ---- memory mode ------------------------------------------------------- */

int retls_conn_new_memory(retls_conn **out, retls_ctx *ctx,
                          const char *server_name, size_t capacity) {
  retls_conn *conn;
  BIO *in, *tls_out = NULL, *net_out = NULL;
  int status;
  if (out == NULL)
    return RETLS_BAD_ARG;
  *out = NULL;
  if (ctx == NULL)
    return RETLS_BAD_ARG;
  if (capacity == 0)
    capacity = RETLS__DEFAULT_MEMORY_CAPACITY;
  if ((status = retls__conn_alloc(&conn, ctx, server_name)) != RETLS_OK)
    return status;
  /* Incoming: an unbounded memory BIO that says "retry" when empty (not
   * EOF), so the caller can always feed what it received.  Outgoing: a
   * bounded BIO pair, so a caller that does not drain sees WANT_WRITE
   * instead of unbounded buffering. */
  in = BIO_new(BIO_s_mem());
  if (in == NULL ||
      !BIO_new_bio_pair(&tls_out, capacity, &net_out, capacity)) {
    BIO_free(in);
    retls_conn_free(conn);
    return RETLS_NOMEM;
  }
  BIO_set_mem_eof_return(in, -1);
  SSL_set_bio(conn->ssl, in, tls_out);
  conn->net_bio = net_out;
  conn->transport = RETLS__T_MEMORY;
  *out = conn;
  return RETLS_OK;
}

static int check_memory(retls_conn *conn, const char *op) {
  int status;
  if (conn == NULL)
    return RETLS_BAD_ARG;
  if ((status = retls__check_usable(conn)) != RETLS_OK &&
      conn->state == RETLS__CLOSED)
    return status;
  if (conn->transport != RETLS__T_MEMORY)
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "%s is only for memory-mode connections (made "
                            "without a socket)",
                            op);
  return RETLS_OK;
}

int retls_conn_bio_write(size_t *out, retls_conn *conn, const void *buf,
                         size_t len) {
  size_t dummy;
  int status;
  if (out == NULL)
    out = &dummy;
  *out = 0;
  if ((status = check_memory(conn, "bio_write")) != RETLS_OK)
    return status;
  if (len == 0)
    return RETLS_OK;
  if (buf == NULL)
    return retls__conn_fail(conn, RETLS_BAD_ARG, "bio_write: NULL buffer");
  if (!BIO_write_ex(SSL_get_rbio(conn->ssl), buf, len, out)) {
    ERR_clear_error();
    return retls__conn_fail(conn, RETLS_NOMEM,
                            "bio_write: cannot buffer %zu bytes", len);
  }
  return RETLS_OK;
}

int retls_conn_bio_read(size_t *out, retls_conn *conn, void *buf,
                        size_t len) {
  size_t dummy;
  int status;
  if (out == NULL)
    out = &dummy;
  *out = 0;
  if ((status = check_memory(conn, "bio_read")) != RETLS_OK)
    return status;
  if (buf == NULL || len == 0)
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "bio_read: need a buffer of at least 1 byte");
  if (!BIO_read_ex(conn->net_bio, buf, len, out))
    *out = 0; /* nothing waiting is not an error */
  ERR_clear_error();
  return RETLS_OK;
}

size_t retls_conn_bio_pending(const retls_conn *conn) {
  if (conn == NULL || conn->net_bio == NULL)
    return 0;
  return BIO_ctrl_pending(conn->net_bio);
}

int retls_conn_bio_write_eof(retls_conn *conn) {
  int status;
  if ((status = check_memory(conn, "bio_write_eof")) != RETLS_OK)
    return status;
  /* From now on an empty incoming buffer reads as end of stream. */
  BIO_set_mem_eof_return(SSL_get_rbio(conn->ssl), 0);
  return RETLS_OK;
}

/* ---- in-process pair --------------------------------------------------- */

int retls_pair_new(retls_conn **out_client, retls_conn **out_server,
                   retls_ctx *client_ctx, retls_ctx *server_ctx,
                   size_t capacity) {
  retls_ctx *cctx = client_ctx, *sctx = server_ctx;
  retls_conn *c = NULL, *s = NULL;
  BIO *cb = NULL, *sb = NULL;
  int status;

  if (out_client == NULL || out_server == NULL)
    return RETLS_BAD_ARG;
  *out_client = *out_server = NULL;
  if ((cctx && cctx->role != RETLS_CLIENT) ||
      (sctx && sctx->role != RETLS_SERVER)) {
    if (cctx && cctx->role != RETLS_CLIENT)
      retls__ctx_detail(cctx, "pair: the first context must be a "
                              "client context");
    if (sctx && sctx->role != RETLS_SERVER)
      retls__ctx_detail(sctx, "pair: the second context must be a "
                              "server context");
    return RETLS_BAD_ARG;
  }
  if (capacity == 0)
    capacity = RETLS__DEFAULT_PAIR_CAPACITY;

  /* Defaults make a working pair in one call: a client that does not
   * verify, and a server with a throwaway certificate for "localhost". */
  if (cctx == NULL) {
    if ((status = retls_ctx_new(&cctx, RETLS_CLIENT)) != RETLS_OK)
      goto done;
    retls_ctx_set_verify(cctx, 0);
  }
  if (sctx == NULL) {
    if ((status = retls_ctx_new(&sctx, RETLS_SERVER)) != RETLS_OK ||
        (status = retls_ctx_use_selfsigned(sctx, "localhost")) != RETLS_OK)
      goto done;
  }
  if ((status = retls__conn_alloc(&c, cctx,
                                  cctx->verify ? "localhost" : NULL)) !=
          RETLS_OK ||
      (status = retls__conn_alloc(&s, sctx, NULL)) != RETLS_OK)
    goto done;
  if (!BIO_new_bio_pair(&cb, capacity, &sb, capacity)) {
    status = RETLS_NOMEM;
    goto done;
  }
  SSL_set_bio(c->ssl, cb, cb);
  SSL_set_bio(s->ssl, sb, sb);
  c->transport = s->transport = RETLS__T_PAIR;
  *out_client = c;
  *out_server = s;
  c = s = NULL;
  status = RETLS_OK;
done:
  retls_conn_free(c);
  retls_conn_free(s);
  /* The connections hold their own references. */
  if (cctx != client_ctx)
    retls_ctx_free(cctx);
  if (sctx != server_ctx)
    retls_ctx_free(sctx);
  ERR_clear_error();
  return status;
}
