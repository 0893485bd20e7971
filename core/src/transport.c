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

/*
 * The unbounded outgoing direction (capacity 0, the default, as CPython's
 * ssl.MemoryBIO): a byte queue behind a small BIO method of our own.
 * BIO_s_mem would do, but it zero-fills every region it grows into before
 * copying the record over it, and it never gives memory back; the queue
 * copies once, is read by retls_conn_bio_read straight from its buffer,
 * and is freed when the connection goes idle (retls__conn_release_idle).
 */
struct retls__outq {
  unsigned char *buf;
  size_t start; /* first byte not yet taken by bio_read */
  size_t len;   /* bytes waiting */
  size_t cap;
  /* A binding's storage (retls_conn_set_outbuf): buf is the data of
   * handle, an object of the binding's that retls_conn_bio_take hands
   * over whole, so the drain copies nothing.  Without it (C API, Lua),
   * plain malloc and a buffer kept between drains. */
  retls_outbuf ops;
  void *handle;
  size_t fill; /* bytes written since the queue was last empty */
  size_t hint; /* what the last drain took: a new buffer's size */
};

/* A drained buffer up to this size is kept for the next write (a busy
 * writer reuses it); a larger one is given back at once. */
#define RETLS__OUTQ_KEEP (1024 * 1024)

/* Give the buffer back (the queue must be empty or be dropped). */
static void outq_release(struct retls__outq *q) {
  if (q->handle != NULL)
    q->ops.free(q->handle, q->ops.ud);
  else
    free(q->buf);
  q->buf = NULL;
  q->handle = NULL;
  q->cap = 0;
  q->start = 0;
}

/* Room for need waiting bytes at buf + 0 (the waiting ones moved there).
 * With a binding's storage the buffer is replaced rather than realloc'd
 * (its handle is an object of the binding's), and a new buffer starts at
 * the last drain's size: a steady writer allocates once per drain, at
 * the right size, and the drain hands that buffer over whole. */
static int outq_grow(struct retls__outq *q, size_t need) {
  /* Doubling keeps a growing writer at O(1) copies per byte; no minimum,
   * so a handshake's few hundred bytes stay few hundred. */
  size_t cap = q->cap * 2 > need ? q->cap * 2 : need;
  if (q->ops.alloc != NULL) {
    unsigned char *p;
    void *h;
    if (q->cap == 0 && q->hint > cap)
      cap = q->hint;
    if ((h = q->ops.alloc(&p, cap, q->ops.ud)) == NULL)
      return 0;
    if (q->len > 0)
      retls__copy(p, q->buf + q->start, q->len);
    outq_release(q);
    q->buf = p;
    q->handle = h;
  } else {
    unsigned char *p;
    if (q->start > 0) { /* slide the waiting bytes to the front first */
      memmove(q->buf, q->buf + q->start, q->len);
      q->start = 0;
    }
    if ((p = realloc(q->buf, cap)) == NULL)
      return 0;
    q->buf = p;
  }
  q->cap = cap;
  return 1;
}

static int outq_write(BIO *b, const char *data, size_t n, size_t *written) {
  struct retls__outq *q = BIO_get_data(b);
  size_t need = q->len + n;
  if (need < q->len)
    return 0;
  if (q->start + need > q->cap) {
    if (need <= q->cap) { /* slide the waiting bytes to the front */
      memmove(q->buf, q->buf + q->start, q->len);
      q->start = 0;
    } else if (!outq_grow(q, need)) {
      return 0; /* OpenSSL reports a failed transport write */
    }
  }
  /* retls__copy, not memcpy: each 16 KiB record lands 16406 bytes after
   * the last, so its distance to OpenSSL's record buffer moves by 22
   * bytes modulo 4 KiB per record, and a large write's records cross the
   * distances where glibc's rep movsb is 30-40x slower (internal.h). */
  retls__copy(q->buf + q->start + q->len, data, n);
  q->len += n;
  q->fill += n;
  *written = n;
  return 1;
}

static long outq_ctrl(BIO *b, int cmd, long num, void *ptr) {
  struct retls__outq *q = BIO_get_data(b);
  (void)num;
  (void)ptr;
  switch (cmd) {
  case BIO_CTRL_PENDING:
  case BIO_CTRL_WPENDING:
    return (long)q->len;
  case BIO_CTRL_FLUSH:
    return 1;
  default:
    return 0;
  }
}

static int outq_create(BIO *b) {
  struct retls__outq *q = calloc(1, sizeof(*q));
  if (q == NULL)
    return 0;
  BIO_set_data(b, q);
  BIO_set_init(b, 1);
  return 1;
}

static int outq_destroy(BIO *b) {
  struct retls__outq *q = BIO_get_data(b);
  if (q != NULL) {
    outq_release(q);
    free(q);
    BIO_set_data(b, NULL);
  }
  return 1;
}

static BIO_METHOD *outq_method;
static pthread_once_t outq_once = PTHREAD_ONCE_INIT;

static void outq_method_init(void) {
  BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                               "retls outgoing queue");
  if (m != NULL &&
      (!BIO_meth_set_write_ex(m, outq_write) ||
       !BIO_meth_set_ctrl(m, outq_ctrl) ||
       !BIO_meth_set_create(m, outq_create) ||
       !BIO_meth_set_destroy(m, outq_destroy))) {
    BIO_meth_free(m);
    m = NULL;
  }
  outq_method = m;
}

#if defined(__GNUC__)
/* The method lives as long as the library: freed when it is unloaded (a
 * scripting runtime dlclose()s the module at exit), so leak checkers see
 * nothing lost. */
__attribute__((destructor)) static void outq_method_free(void) {
  BIO_meth_free(outq_method);
  outq_method = NULL;
}
#endif

/* The queue ran empty: the next buffer starts at what this drain took.
 * A binding's buffer is not kept (the next write allocates one of the
 * right size, which the drain after it can hand over), nor a large one. */
static void outq_emptied(struct retls__outq *q) {
  q->start = 0;
  q->hint = q->fill < RETLS__OUTQ_KEEP ? q->fill : RETLS__OUTQ_KEEP;
  q->fill = 0;
  if (q->handle != NULL || q->cap > RETLS__OUTQ_KEEP)
    outq_release(q);
}

/* Drop the first len (<= q->len) waiting bytes. */
static void outq_drop(struct retls__outq *q, size_t len) {
  q->start += len;
  q->len -= len;
  if (q->len == 0)
    outq_emptied(q);
}

/* Take up to len waiting bytes from the queue. */
static size_t outq_take(struct retls__outq *q, void *buf, size_t len) {
  if (len > q->len)
    len = q->len;
  if (len == 0)
    return 0; /* nothing waiting (the buffer may not even exist) */
  retls__copy(buf, q->buf + q->start, len);
  outq_drop(q, len);
  return len;
}

/* The connection has nothing in flight and waits for its peer: give back
 * OpenSSL's record buffers (~17 KiB each way, reallocated by the next
 * read or write; SSL_free_buffers keeps them if they hold data) and an
 * empty outgoing queue.  Doing this here rather than with
 * SSL_MODE_RELEASE_BUFFERS keeps the write path free of a malloc/free
 * per record: a busy writer never comes through here. */
void retls__conn_release_idle(retls_conn *conn) {
  struct retls__outq *q = conn->outq;
  if (conn->ssl == NULL)
    return;
  SSL_free_buffers(conn->ssl);
  if (q != NULL && q->len == 0 && q->buf != NULL)
    outq_release(q);
}

int retls_conn_new_memory(retls_conn **out, retls_ctx *ctx,
                          const char *server_name, size_t capacity) {
  retls_conn *conn;
  BIO *in, *tls_out = NULL, *net_out = NULL;
  int status, ok;
  if (out == NULL)
    return RETLS_BAD_ARG;
  *out = NULL;
  if (ctx == NULL)
    return RETLS_BAD_ARG;
  if ((status = retls__conn_alloc(&conn, ctx, server_name)) != RETLS_OK)
    return status;
  /* Incoming: an unbounded memory BIO that says "retry" when empty (not
   * EOF), so the caller can always feed what it received.  Outgoing:
   * unbounded (capacity 0), or a BIO pair of that capacity, so a caller
   * that does not drain sees WANT_WRITE instead of unbounded buffering. */
  in = BIO_new(BIO_s_mem());
  if (capacity == 0) {
    ok = pthread_once(&outq_once, outq_method_init) == 0 &&
         outq_method != NULL && (tls_out = BIO_new(outq_method)) != NULL &&
         BIO_up_ref(tls_out);
    if (ok)
      net_out = tls_out;
  } else {
    ok = BIO_new_bio_pair(&tls_out, capacity, &net_out, capacity);
  }
  if (in == NULL || !ok) {
    BIO_free(in);
    BIO_free(tls_out);
    BIO_free(net_out); /* the queue's second reference, or the pair's half */
    retls_conn_free(conn);
    ERR_clear_error();
    return RETLS_NOMEM;
  }
  BIO_set_mem_eof_return(in, -1);
  SSL_set_bio(conn->ssl, in, tls_out);
  conn->net_bio = net_out; /* the queue: a reference of its own */
  conn->outq = capacity == 0 ? BIO_get_data(net_out) : NULL;
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
  if (conn->outq != NULL)
    *out = outq_take(conn->outq, buf, len);
  else if (!BIO_read_ex(conn->net_bio, buf, len, out)) {
    *out = 0; /* nothing waiting is not an error */
    retls__err_clear(); /* nor anything an empty BIO may have queued */
  }
  conn->bio_taken += *out;
  return RETLS_OK;
}

int retls_conn_bio_peek(const unsigned char **out, size_t *out_len,
                        uint64_t *out_mark, retls_conn *conn) {
  int status;
  if (out == NULL || out_len == NULL || out_mark == NULL)
    return RETLS_BAD_ARG;
  *out = NULL;
  *out_len = 0;
  *out_mark = 0;
  if ((status = check_memory(conn, "bio_peek")) != RETLS_OK)
    return status;
  *out_mark = conn->bio_taken;
  if (conn->outq != NULL) {
    if (conn->outq->len > 0) {
      *out = conn->outq->buf + conn->outq->start;
      *out_len = conn->outq->len;
    }
  } else {
    /* bounded: the BIO pair's ring buffer, up to where it wraps (BIO_ctrl
     * rather than BIO_nread0, which queues an error on a closed pair) */
    char *p = NULL;
    long n = BIO_ctrl(conn->net_bio, BIO_C_NREAD0, 0, &p);
    if (n > 0 && p != NULL) {
      *out = (const unsigned char *)p;
      *out_len = (size_t)n;
    }
  }
  return RETLS_OK;
}

int retls_conn_bio_consume(retls_conn *conn, uint64_t mark, size_t n) {
  int status;
  size_t waiting;
  if ((status = check_memory(conn, "bio_consume")) != RETLS_OK)
    return status;
  /* Someone took bytes since that bio_peek (a drain of this connection
   * ran in between, e.g. from a Lua finalizer): the head is not what the
   * caller saw, and taking n bytes now would drop bytes it never saw. */
  if (mark != conn->bio_taken)
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "bio_consume: bytes were taken since bio_peek "
                            "(a drain ran in between); nothing was taken, "
                            "peek again");
  waiting = conn->outq != NULL ? conn->outq->len
                               : BIO_ctrl_pending(conn->net_bio);
  if (n > waiting)
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "bio_consume: %zu bytes, but %zu are waiting; "
                            "consume at most what bio_peek gave",
                            n, waiting);
  conn->bio_taken += n;
  if (conn->outq != NULL) {
    if (n > 0)
      outq_drop(conn->outq, n);
    return RETLS_OK;
  }
  while (n > 0) { /* the ring may wrap: nread takes the run before it */
    char *p = NULL;
    long got = BIO_ctrl(conn->net_bio, BIO_C_NREAD,
                        n > INT_MAX ? INT_MAX : (long)n, &p);
    if (got <= 0)
      break; /* cannot happen: n <= waiting */
    n -= (size_t)got;
  }
  return RETLS_OK;
}

size_t retls_conn_bio_pending(const retls_conn *conn) {
  if (conn == NULL || conn->net_bio == NULL)
    return 0;
  if (conn->outq != NULL)
    return conn->outq->len;
  return BIO_ctrl_pending(conn->net_bio);
}

int retls_conn_set_outbuf(retls_conn *conn, const retls_outbuf *ops) {
  struct retls__outq *q;
  if (conn == NULL || ops == NULL || ops->alloc == NULL || ops->free == NULL)
    return RETLS_BAD_ARG;
  q = conn->outq;
  if (q == NULL || conn->state == RETLS__CLOSED)
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "set_outbuf: only for an open memory-mode "
                            "connection with an unbounded outgoing buffer "
                            "(capacity 0)");
  /* The buffer in use (if any) came from the other allocator. */
  if (q->len > 0)
    return retls__conn_fail(conn, RETLS_BAD_ARG,
                            "set_outbuf: %zu bytes of ciphertext are waiting; "
                            "drain them with bio_read first",
                            q->len);
  outq_release(q);
  q->ops = *ops;
  return RETLS_OK;
}

int retls_conn_bio_take(void **out, size_t *out_len, retls_conn *conn) {
  struct retls__outq *q;
  int status;
  if (out == NULL || out_len == NULL)
    return RETLS_BAD_ARG;
  *out = NULL;
  *out_len = 0;
  if ((status = check_memory(conn, "bio_take")) != RETLS_OK)
    return status;
  q = conn->outq;
  /* Whole or not at all: the waiting bytes must start the buffer (no
   * partial bio_read before), and the buffer must be mostly used, since
   * the caller's object keeps all of it alive. */
  if (q == NULL || q->handle == NULL || q->len == 0 || q->start != 0 ||
      q->len < q->cap - q->cap / 4)
    return RETLS_OK;
  *out = q->handle;
  *out_len = q->len;
  conn->bio_taken += q->len; /* (bio_peek's mark) */
  q->handle = NULL;
  q->buf = NULL;
  q->cap = 0;
  q->len = 0;
  outq_emptied(q);
  return RETLS_OK;
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

/*
 * The two ends of a pair are two BIOs of our own over one shared struct:
 * each end writes into its own ring buffer of `capacity` bytes and reads
 * from the other end's, like OpenSSL's BIO pair (BIO_s_bio), whose
 * behaviour it keeps: a full ring asks the writer to retry, an empty one
 * the reader, and once one end is freed the other is uninitialised, so
 * OpenSSL reports BIO_R_UNINITIALIZED and an unexpected EOF on it
 * (errors.c turns that into RETLS_EOF).
 *
 * Why not BIO_s_bio: its copies are plain memcpy, and the rings and
 * OpenSSL's record buffers can land 1..31 bytes apart modulo 4 KiB, where
 * glibc's `rep movsb` crawls (internal.h, retls__copy).  In the retry
 * benchmark (a 16 KiB pair, 64 KiB writes) that alone made retls ~25%
 * slower than the raw loop.  These rings copy with retls__copy.  (A filter
 * over BIO_s_bio, copying through its non-copying interface, did the same
 * but cost ~10,000 instructions per 64 KiB write: OpenSSL makes ~60 ctrl
 * calls per write, each forwarded.)
 */
struct retls__ring {
  unsigned char *buf;
  size_t size, off, len; /* len bytes waiting from buf + off, wrapping */
};

struct retls__pair;

struct retls__pair_end { /* the BIO data of end i */
  struct retls__pair *pair;
  int i;
};

struct retls__pair {
  struct retls__ring ring[2]; /* ring[i]: what end i wrote */
  BIO *bio[2];                /* NULL once that end is freed */
  struct retls__pair_end end[2];
};

static int pair_read(BIO *b, char *out, size_t outl, size_t *readbytes) {
  struct retls__pair_end *e = BIO_get_data(b);
  struct retls__ring *r = &e->pair->ring[!e->i];
  size_t n, chunk;
  BIO_clear_retry_flags(b);
  if (outl == 0)
    return 0;
  if (r->len == 0) {
    BIO_set_retry_read(b); /* the other end has not written yet */
    return -1;
  }
  n = outl < r->len ? outl : r->len;
  chunk = r->size - r->off < n ? r->size - r->off : n;
  retls__copy(out, r->buf + r->off, chunk);
  if (chunk < n) /* the rest from the start of the ring */
    retls__copy(out + chunk, r->buf, n - chunk);
  r->len -= n;
  r->off = r->len == 0 ? 0 : (r->off + n) % r->size;
  *readbytes = n;
  return 1;
}

static int pair_write(BIO *b, const char *in, size_t inl, size_t *written) {
  struct retls__pair_end *e = BIO_get_data(b);
  struct retls__ring *r = &e->pair->ring[e->i];
  size_t n, at, chunk;
  BIO_clear_retry_flags(b);
  if (inl == 0)
    return 0;
  if (r->len == r->size) {
    BIO_set_retry_write(b); /* full until the other end reads */
    return -1;
  }
  n = inl < r->size - r->len ? inl : r->size - r->len;
  at = (r->off + r->len) % r->size;
  chunk = r->size - at < n ? r->size - at : n;
  retls__copy(r->buf + at, in, chunk);
  if (chunk < n)
    retls__copy(r->buf, in + chunk, n - chunk);
  r->len += n;
  *written = n;
  return 1;
}

static long pair_ctrl(BIO *b, int cmd, long num, void *ptr) {
  struct retls__pair_end *e = BIO_get_data(b);
  (void)num;
  (void)ptr;
  if (e == NULL)
    return 0;
  switch (cmd) {
  case BIO_CTRL_PENDING: /* readable here */
    return e->pair->bio[!e->i] != NULL ? (long)e->pair->ring[!e->i].len : 0;
  case BIO_CTRL_WPENDING: /* written here, not yet read */
    return (long)e->pair->ring[e->i].len;
  case BIO_CTRL_EOF:
    return e->pair->bio[!e->i] == NULL;
  case BIO_CTRL_FLUSH:
    return 1;
  default:
    return 0;
  }
}

static int pair_destroy(BIO *b) {
  struct retls__pair_end *e = BIO_get_data(b);
  struct retls__pair *p;
  if (e == NULL)
    return 1;
  p = e->pair;
  p->bio[e->i] = NULL;
  BIO_set_data(b, NULL);
  BIO_set_init(b, 0);
  if (p->bio[!e->i] != NULL) {
    BIO_set_init(p->bio[!e->i], 0); /* as BIO_s_bio: the other end is cut */
  } else {
    free(p->ring[0].buf);
    free(p->ring[1].buf);
    free(p);
  }
  return 1;
}

static BIO_METHOD *pair_method;
static pthread_once_t pair_once = PTHREAD_ONCE_INIT;

static void pair_method_init(void) {
  BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                               "retls pair");
  if (m != NULL &&
      (!BIO_meth_set_write_ex(m, pair_write) ||
       !BIO_meth_set_read_ex(m, pair_read) ||
       !BIO_meth_set_ctrl(m, pair_ctrl) ||
       !BIO_meth_set_destroy(m, pair_destroy))) {
    BIO_meth_free(m);
    m = NULL;
  }
  pair_method = m;
}

#if defined(__GNUC__)
__attribute__((destructor)) static void pair_method_free(void) {
  BIO_meth_free(pair_method); /* as outq_method_free above */
  pair_method = NULL;
}
#endif

/* Two connected ends with rings of capacity bytes each; 0 on failure. */
static int pair_bios(BIO **out0, BIO **out1, size_t capacity) {
  struct retls__pair *p;
  int i;
  *out0 = *out1 = NULL;
  if (pthread_once(&pair_once, pair_method_init) != 0 || pair_method == NULL)
    return 0;
  if ((p = calloc(1, sizeof(*p))) == NULL)
    return 0;
  for (i = 0; i < 2; i++) {
    p->ring[i].size = capacity;
    if ((p->ring[i].buf = malloc(capacity)) == NULL ||
        (p->bio[i] = BIO_new(pair_method)) == NULL)
      break;
    p->end[i].pair = p;
    p->end[i].i = i;
    BIO_set_data(p->bio[i], &p->end[i]);
    BIO_set_init(p->bio[i], 1);
  }
  if (i < 2) {
    BIO *e0 = p->bio[0], *e1 = p->bio[1];
    if (e0 == NULL && e1 == NULL) {
      free(p->ring[0].buf);
      free(p->ring[1].buf);
      free(p);
    }
    BIO_free(e0); /* the last one frees p */
    BIO_free(e1);
    return 0;
  }
  *out0 = p->bio[0];
  *out1 = p->bio[1];
  return 1;
}

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
  if (!pair_bios(&cb, &sb, capacity)) {
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
