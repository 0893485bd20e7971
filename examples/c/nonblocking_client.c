/*
 * nonblocking_client.c - a non-blocking poll() loop over libretls.
 *
 * What it shows: the write path of a non-blocking TLS client written against
 * the C core (core/include/retls.h).  It pushes a large buffer in fixed-size
 * writes through a deliberately small socket send buffer, so writes stop
 * with RETLS_WANT_WRITE all the time, and it keeps reading whatever the
 * server sends meanwhile (an echo, or a renegotiation / KeyUpdate, which can
 * make a write stop with RETLS_WANT_READ).  After a WANT the loop waits with
 * poll() for what the connection asked for and then calls
 * retls_conn_flush(): the connection kept its own copy of the pending
 * bytes, so the loop never has to present the same buffer again.
 *
 * When all is sent it says goodbye (close_notify), reads until the
 * server's close_notify and prints one summary line, key=value, including
 * the SHA-256 of what it sent and of what it received back, so a script can
 * compare them with what the server saw.
 *
 * Build: `cmake --build build` makes build/examples/c/nonblocking_client
 * (the target is in tests/interop/CMakeLists.txt, whose tests run it).
 * Run against any TLS server, e.g.
 *   openssl s_server -accept 127.0.0.1:4433 -cert cert.pem -key key.pem -quiet
 *   build/examples/c/nonblocking_client --insecure --size 16M 127.0.0.1 4433
 *
 * Options: --size N[K|M] (default 16M), --write-size N[K|M] (default 256K),
 * --sndbuf N[K|M] (default 32K; 0 keeps the system default),
 * --tls-version TLSv1.2|TLSv1.3, --cafile F, --servername NAME,
 * --cert F --key F (client certificate), --insecure (no verification),
 * --timeout SECONDS (default 30; bounds every wait), --text (send lines of
 * random hex digits instead of raw bytes, for line-based echo servers such
 * as gnutls-serv --echo).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "retls.h"

typedef struct {
  const char *host, *port, *cafile, *servername, *cert, *key, *version;
  size_t size, write_size, sndbuf;
  int insecure, text, timeout_s;
} options;

static void usage(const char *prog) {
  fprintf(stderr,
          "usage: %s [--size N] [--write-size N] [--sndbuf N] "
          "[--tls-version V] [--cafile F | --insecure] [--servername NAME] "
          "[--cert F --key F] [--timeout S] [--text] HOST PORT\n",
          prog);
  exit(2);
}

/* "16M", "256K", "1000" -> bytes; exits with a clear message on junk. */
static size_t parse_size(const char *opt, const char *s) {
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (end == s)
    goto bad;
  if (*end == 'K' || *end == 'k')
    v <<= 10, end++;
  else if (*end == 'M' || *end == 'm')
    v <<= 20, end++;
  if (*end != '\0')
    goto bad;
  return (size_t)v;
bad:
  fprintf(stderr, "error: %s wants a size like 1000, 256K or 16M, not '%s'\n",
          opt, s);
  exit(2);
}

static void parse_args(options *o, int argc, char **argv) {
  int i, pos = 0;
  memset(o, 0, sizeof *o);
  o->size = 16u << 20;
  o->write_size = 256u << 10;
  o->sndbuf = 32u << 10;
  o->timeout_s = 30;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
#define ARG() (i + 1 < argc ? argv[++i] : (usage(argv[0]), ""))
    if (strcmp(a, "--size") == 0)
      o->size = parse_size(a, ARG());
    else if (strcmp(a, "--write-size") == 0)
      o->write_size = parse_size(a, ARG());
    else if (strcmp(a, "--sndbuf") == 0)
      o->sndbuf = parse_size(a, ARG());
    else if (strcmp(a, "--tls-version") == 0)
      o->version = ARG();
    else if (strcmp(a, "--cafile") == 0)
      o->cafile = ARG();
    else if (strcmp(a, "--servername") == 0)
      o->servername = ARG();
    else if (strcmp(a, "--cert") == 0)
      o->cert = ARG();
    else if (strcmp(a, "--key") == 0)
      o->key = ARG();
    else if (strcmp(a, "--timeout") == 0)
      o->timeout_s = atoi(ARG());
    else if (strcmp(a, "--insecure") == 0)
      o->insecure = 1;
    else if (strcmp(a, "--text") == 0)
      o->text = 1;
    else if (a[0] == '-')
      usage(argv[0]);
    else if (pos == 0)
      o->host = a, pos++;
    else if (pos == 1)
      o->port = a, pos++;
    else
      usage(argv[0]);
#undef ARG
  }
  if (pos != 2 || o->write_size == 0 || o->timeout_s <= 0)
    usage(argv[0]);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, int status, retls_conn *conn) {
  fprintf(stderr, "error: %s: %s (%s)\n", what, retls_status_name(status),
          conn ? retls_conn_last_error(conn) : retls_strerror(status));
  exit(1);
}

/* Plain TCP connect (blocking), with the small send buffer set first:
 * SO_SNDBUF must be set before connect() to shape the TCP window. */
static int tcp_connect(const options *o) {
  struct addrinfo hints, *res, *ai;
  int fd = -1, rc;
  memset(&hints, 0, sizeof hints);
  hints.ai_socktype = SOCK_STREAM;
  if ((rc = getaddrinfo(o->host, o->port, &hints, &res)) != 0) {
    fprintf(stderr, "error: cannot resolve %s: %s\n", o->host,
            gai_strerror(rc));
    exit(1);
  }
  for (ai = res; ai != NULL; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0)
      continue;
    if (o->sndbuf > 0) {
      int v = (int)o->sndbuf;
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
      break;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) {
    fprintf(stderr, "error: cannot connect to %s:%s: %s\n", o->host, o->port,
            strerror(errno));
    exit(1);
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

/* Wait until fd is ready for what the connection asked for.  We always
 * want to read too (the server may echo or renegotiate at any time). */
static int wait_ready(int fd, int want, int timeout_s) {
  struct pollfd p = {fd, POLLIN, 0};
  if (want == RETLS_WANT_WRITE)
    p.events |= POLLOUT;
  int n = poll(&p, 1, timeout_s * 1000);
  if (n == 0) {
    fprintf(stderr, "error: timeout: nothing happened for %d s\n", timeout_s);
    exit(1);
  }
  return n < 0 ? 0 : p.revents;
}

/* Read everything that is readable now; hash it.  Returns the status that
 * stopped it: WANT_READ (drained), ZERO_RETURN (peer said goodbye), or a
 * failure. */
static int drain(retls_conn *conn, EVP_MD_CTX *rx_hash, size_t *rx_bytes) {
  unsigned char buf[16384];
  size_t n;
  int st;
  while ((st = retls_conn_read(&n, conn, buf, sizeof buf)) == RETLS_OK) {
    EVP_DigestUpdate(rx_hash, buf, n);
    *rx_bytes += n;
  }
  return st;
}

static void hex(char *out, const unsigned char *md, unsigned len) {
  for (unsigned i = 0; i < len; i++)
    sprintf(out + 2 * i, "%02x", md[i]);
}

int main(int argc, char **argv) {
  options o;
  retls_ctx *ctx;
  retls_conn *conn;
  retls_stats stats;
  unsigned char *data, md[EVP_MAX_MD_SIZE];
  unsigned md_len;
  char tx_hex[2 * EVP_MAX_MD_SIZE + 1], rx_hex[2 * EVP_MAX_MD_SIZE + 1];
  size_t off = 0, n, rx_bytes = 0;
  int fd, st, want = RETLS_OK, peer_closed = 0;
  double t0, elapsed;
  EVP_MD_CTX *rx_hash = EVP_MD_CTX_new();

  parse_args(&o, argc, argv);
  signal(SIGPIPE, SIG_IGN); /* a vanished peer becomes RETLS_SYSCALL */

  if ((data = malloc(o.size ? o.size : 1)) == NULL ||
      RAND_bytes(data, (int)o.size) != 1) {
    fprintf(stderr, "error: cannot make %zu random bytes\n", o.size);
    return 1;
  }
  if (o.text) /* 128 hex digits and a newline per line, newline at the end */
    for (n = 0; n < o.size; n++)
      data[n] = (n % 129 == 128 || n == o.size - 1)
                    ? '\n'
                    : "0123456789abcdef"[data[n] & 15];
  EVP_Digest(data, o.size, md, &md_len, EVP_sha256(), NULL);
  hex(tx_hex, md, md_len);
  EVP_DigestInit_ex(rx_hash, EVP_sha256(), NULL);

  if ((st = retls_ctx_new(&ctx, RETLS_CLIENT)) != RETLS_OK)
    die("context", st, NULL);
#define CFG(call)                                                           \
  do {                                                                      \
    if ((st = (call)) != RETLS_OK) {                                        \
      fprintf(stderr, "error: %s: %s\n", #call, retls_ctx_last_error(ctx)); \
      return 1;                                                             \
    }                                                                       \
  } while (0)
  if (o.insecure)
    CFG(retls_ctx_set_verify(ctx, 0));
  if (o.cafile)
    CFG(retls_ctx_load_verify(ctx, o.cafile, NULL));
  if (o.cert)
    CFG(retls_ctx_use_certificate(ctx, o.cert, o.key));
  if (o.version)
    CFG(retls_ctx_set_versions(ctx, o.version, o.version));
#undef CFG

  fd = tcp_connect(&o);
  if ((st = retls_conn_new_fd(&conn, ctx, fd, 0,
                              o.servername ? o.servername : o.host)) != RETLS_OK)
    die("connection", st, NULL);

  /* The handshake, non-blocking: the same wait-then-repeat pattern. */
  while ((st = retls_conn_handshake(conn)) != RETLS_OK) {
    if (st != RETLS_WANT_READ && st != RETLS_WANT_WRITE)
      die("handshake", st, conn);
    wait_ready(fd, st, o.timeout_s);
  }
  fprintf(stderr, "connected: %s %s\n", retls_conn_version(conn),
          retls_conn_cipher(conn));

  /* The write loop.  Invariant: when retls_conn_pending_write() > 0 the
   * connection holds a write that stopped; we only ever flush() it, never
   * present new bytes, until it is done. */
  t0 = now();
  while (off < o.size || retls_conn_pending_write(conn) > 0) {
    if (want != RETLS_OK) {
      int rev = wait_ready(fd, want, o.timeout_s);
      if (rev & (POLLIN | POLLHUP | POLLERR)) {
        st = drain(conn, rx_hash, &rx_bytes);
        if (st != RETLS_WANT_READ && st != RETLS_WANT_WRITE)
          die("read during write", st, conn);
      }
    }
    if (retls_conn_pending_write(conn) > 0) {
      st = retls_conn_flush(&n, conn);
    } else {
      size_t len = o.size - off < o.write_size ? o.size - off : o.write_size;
      st = retls_conn_write(&n, conn, data + off, len);
    }
    if (st == RETLS_OK) {
      off += n;
      want = RETLS_OK;
      /* Between writes, take what the server sent so an echoing server
       * never blocks on us. */
      st = drain(conn, rx_hash, &rx_bytes);
      if (st != RETLS_WANT_READ && st != RETLS_WANT_WRITE)
        die("read between writes", st, conn);
    } else if (st == RETLS_WANT_READ || st == RETLS_WANT_WRITE) {
      want = st; /* the bytes are the connection's now; wait and flush */
    } else {
      die("write", st, conn);
    }
  }
  elapsed = now() - t0;

  /* Goodbye: send close_notify, then read until the server's. */
  while ((st = retls_conn_shutdown(conn)) != RETLS_OK) {
    if (st != RETLS_WANT_READ && st != RETLS_WANT_WRITE)
      die("shutdown", st, conn);
    wait_ready(fd, st, o.timeout_s);
  }
  while (!peer_closed) {
    st = drain(conn, rx_hash, &rx_bytes);
    if (st == RETLS_ZERO_RETURN)
      peer_closed = 1;
    else if (st == RETLS_WANT_READ || st == RETLS_WANT_WRITE)
      wait_ready(fd, st, o.timeout_s);
    else
      die("waiting for the server's close_notify", st, conn);
  }

  EVP_DigestFinal_ex(rx_hash, md, &md_len);
  hex(rx_hex, md, md_len);
  retls_conn_stats(&stats, conn);
  printf("sent=%zu sha256=%s received=%zu received_sha256=%s "
         "writes=%llu want_write=%llu want_read=%llu retries=%llu "
         "mismatches=%llu seconds=%.3f mbps=%.1f version=%s clean_close=1\n",
         off, tx_hex, rx_bytes, rx_hex, (unsigned long long)stats.writes,
         (unsigned long long)stats.want_write,
         (unsigned long long)stats.want_read,
         (unsigned long long)stats.retries,
         (unsigned long long)stats.mismatches, elapsed,
         elapsed > 0 ? off / elapsed / 1e6 : 0.0, retls_conn_version(conn));

  retls_conn_free(conn);
  retls_ctx_free(ctx);
  close(fd);
  EVP_MD_CTX_free(rx_hash);
  free(data);
  return 0;
}
