/* harness.c - see harness.h. */
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

int harness_failures = 0;



void harness_buf_append(harness_buf *b, const void *p, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n)
      cap *= 2;
    b->data = realloc(b->data, cap);
    if (b->data == NULL)
      abort();
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

void harness_buf_free(harness_buf *b) {
  free(b->data);
  memset(b, 0, sizeof(*b));
}

void harness_pattern(unsigned char *buf, size_t len, unsigned seed) {
  unsigned x = seed * 2654435761u + 1;
  size_t i;
  for (i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    buf[i] = (unsigned char)x;
  }
}

int harness_handshake(retls_conn *a, retls_conn *b) {
  int i;
  for (i = 0; i < 1000; i++) {
    int ra = retls_conn_handshake(a);
    int rb = retls_conn_handshake(b);
    if (ra == RETLS_OK && rb == RETLS_OK)
      return RETLS_OK;
    if (ra < 0)
      return ra;
    if (rb < 0)
      return rb;
  }
  return RETLS_TIMEOUT;
}

int harness_drain(retls_conn *conn, harness_buf *out) {
  unsigned char buf[16384];
  for (;;) {
    size_t n = 0;
    int st = retls_conn_read(&n, conn, buf, sizeof(buf));
    if (st != RETLS_OK)
      return st;
    harness_buf_append(out, buf, n);
  }
}

static int free_port(void) {
  struct sockaddr_in sa;
  socklen_t len = sizeof(sa);
  int port, fd = socket(AF_INET, SOCK_STREAM, 0);
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
    close(fd);
    return -1;
  }
  port = ntohs(sa.sin_port);
  close(fd);
  return port;
}

static int port_open(int port) {
  struct sockaddr_in sa;
  int ok, fd = socket(AF_INET, SOCK_STREAM, 0);
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons((unsigned short)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
  close(fd);
  return ok;
}

int harness_start_s_server(int *out_port, const char *extra_args) {
  char cmd[2048];
  int port = free_port(), pid, i;
  if (port < 0)
    return -1;
  /* Its chatter goes to a log in the temp dir (harness_s_server_log);
   * timeout(1) ends it even if the test dies before harness_stop. */
  snprintf(cmd, sizeof(cmd),
           "exec timeout 60 openssl s_server -quiet -accept 127.0.0.1:%d %s "
           "</dev/null >%s/s_server-%d.log 2>&1",
           port, extra_args ? extra_args : "", harness_tmpdir(), port);
  pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  for (i = 0; i < 100 && !port_open(port); i++)
    usleep(50000);
  if (i == 100) {
    harness_stop(pid);
    return -1;
  }
  *out_port = port;
  return pid;
}

void harness_s_server_log(int port) {
  char path[512], name[64];
  harness_buf log = {0};
  snprintf(name, sizeof(name), "s_server-%d.log", port);
  harness_path(path, sizeof(path), name);
  if (harness_read_file(path, &log) == 0 && log.len > 0)
    fprintf(stderr, "---- %s ----\n%.*s\n----\n", name, (int)log.len,
            (const char *)log.data);
  harness_buf_free(&log);
}

void harness_stop(int pid) {
  if (pid > 0) {
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
  }
}

retls_ctx *harness_ctx(retls_role role) {
  retls_ctx *ctx = NULL;
  if (retls_ctx_new(&ctx, role) != RETLS_OK)
    return NULL;
  if ((role == RETLS_CLIENT && retls_ctx_set_verify(ctx, 0) != RETLS_OK) ||
      (role == RETLS_SERVER &&
       retls_ctx_use_selfsigned(ctx, "localhost") != RETLS_OK)) {
    fprintf(stderr, "harness_ctx: %s\n", retls_ctx_last_error(ctx));
    retls_ctx_free(ctx);
    return NULL;
  }
  return ctx;
}

int harness_pair(retls_conn **out_client, retls_conn **out_server,
                 retls_ctx *client_ctx, retls_ctx *server_ctx,
                 size_t capacity) {
  int st = retls_pair_new(out_client, out_server, client_ctx, server_ctx,
                          capacity);
  if (st != RETLS_OK) {
    fprintf(stderr, "harness_pair: %s (%s / %s)\n", retls_status_name(st),
            client_ctx ? retls_ctx_last_error(client_ctx) : "",
            server_ctx ? retls_ctx_last_error(server_ctx) : "");
    return st;
  }
  st = harness_handshake(*out_client, *out_server);
  if (st != RETLS_OK) {
    fprintf(stderr, "harness_pair: handshake %s (client: %s; server: %s)\n",
            retls_status_name(st), retls_conn_last_error(*out_client),
            retls_conn_last_error(*out_server));
    retls_conn_free(*out_client);
    retls_conn_free(*out_server);
    *out_client = *out_server = NULL;
  }
  return st;
}

int harness_flush_through(retls_conn *w, retls_conn *r, harness_buf *got,
                          int memory, int *out_rounds, size_t *out_taken) {
  int rounds = 0, st = RETLS_WANT_WRITE;
  size_t taken = 0;
  /* Each round moves at least one byte, so this bound is never reached by
   * a working connection: it turns a hang into a failure. */
  while (rounds < 100000) {
    int rs;
    if (memory)
      harness_relay(w, r, 0, NULL);
    rs = harness_drain(r, got);
    if (rs < 0) {
      fprintf(stderr, "harness_flush_through: reader %s: %s\n",
              retls_status_name(rs), retls_conn_last_error(r));
      st = rs;
      break;
    }
    if (memory)
      harness_relay(r, w, 0, NULL);
    st = retls_conn_flush(&taken, w);
    rounds++;
    if (st != RETLS_WANT_READ && st != RETLS_WANT_WRITE)
      break;
  }
  if (memory)
    harness_relay(w, r, 0, NULL);
  if (out_rounds != NULL)
    *out_rounds = rounds;
  if (out_taken != NULL)
    *out_taken = taken;
  return st;
}

size_t harness_relay(retls_conn *from, retls_conn *to, size_t limit,
                     harness_buf *log) {
  unsigned char buf[4096];
  size_t moved = 0;
  while (limit == 0 || moved < limit) {
    size_t want = sizeof(buf), got = 0, taken = 0;
    if (limit != 0 && limit - moved < want)
      want = limit - moved;
    if (retls_conn_bio_read(&got, from, buf, want) != RETLS_OK || got == 0)
      break;
    if (log != NULL)
      harness_buf_append(log, buf, got);
    /* The incoming side is an unbounded memory BIO: it takes it all. */
    if (retls_conn_bio_write(&taken, to, buf, got) != RETLS_OK ||
        taken != got) {
      fprintf(stderr, "harness_relay: bio_write took %zu of %zu: %s\n",
              taken, got, retls_conn_last_error(to));
      abort();
    }
    moved += got;
  }
  return moved;
}

int harness_memory_handshake(retls_conn *client, retls_conn *server) {
  int i;
  for (i = 0; i < 100; i++) {
    int rc = retls_conn_handshake(client);
    int rs;
    harness_relay(client, server, 0, NULL);
    rs = retls_conn_handshake(server);
    harness_relay(server, client, 0, NULL);
    if (rc < 0)
      return rc;
    if (rs < 0)
      return rs;
    if (rc == RETLS_OK && rs == RETLS_OK)
      return RETLS_OK;
  }
  return RETLS_TIMEOUT;
}

int harness_memory_pair(retls_conn **out_client, retls_conn **out_server,
                        retls_ctx *client_ctx, retls_ctx *server_ctx,
                        size_t capacity) {
  retls_ctx *cc = client_ctx ? client_ctx : harness_ctx(RETLS_CLIENT);
  retls_ctx *sc = server_ctx ? server_ctx : harness_ctx(RETLS_SERVER);
  harness_buf junk = {0};
  int st = RETLS_NOMEM;
  *out_client = *out_server = NULL;
  if (cc != NULL && sc != NULL &&
      (st = retls_conn_new_memory(out_client, cc, NULL, capacity)) ==
          RETLS_OK &&
      (st = retls_conn_new_memory(out_server, sc, NULL, 0)) == RETLS_OK &&
      (st = harness_memory_handshake(*out_client, *out_server)) == RETLS_OK) {
    st = harness_drain(*out_client, &junk);
    if (st == RETLS_WANT_READ)
      st = RETLS_OK;
  }
  if (st != RETLS_OK) {
    fprintf(stderr, "harness_memory_pair: %s (%s / %s)\n",
            retls_status_name(st),
            *out_client ? retls_conn_last_error(*out_client) : "",
            *out_server ? retls_conn_last_error(*out_server) : "");
    retls_conn_free(*out_client);
    retls_conn_free(*out_server);
    *out_client = *out_server = NULL;
  }
  if (cc != client_ctx)
    retls_ctx_free(cc);
  if (sc != server_ctx)
    retls_ctx_free(sc);
  harness_buf_free(&junk);
  return st;
}

int harness_tls_records(const harness_buf *stream, size_t *lens, int max) {
  size_t off = 0;
  int n = 0;
  while (off < stream->len) {
    size_t len;
    if (stream->len - off < 5)
      return -1;
    len = ((size_t)stream->data[off + 3] << 8) | stream->data[off + 4];
    if (stream->len - off - 5 < len)
      return -1;
    if (n < max)
      lens[n] = len;
    n++;
    off += 5 + len;
  }
  return n;
}

int harness_finish(void) {
  harness_cleanup_tmpdir();
  if (harness_failures)
    fprintf(stderr, "%d check(s) failed\n", harness_failures);
  return harness_failures ? 1 : 0;
}
