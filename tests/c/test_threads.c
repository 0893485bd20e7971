/*
 * test_threads.c - many threads creating, using and freeing connections
 * from shared contexts, as retls.h allows ("a retls_ctx may be shared by
 * many connections and threads once configured").
 *
 * What is shared, and so what ThreadSanitizer (./run.sh test builds this
 * with -DRETLS_SANITIZE=thread) watches here:
 *   - the contexts' reference count: every connection takes one; at the
 *     end the main thread drops its references while the workers free
 *     their last connections, so whichever thread frees last frees the
 *     context;
 *   - the lazy trust store: the verifying client context makes no
 *     connection before the threads start, so several of them race to load
 *     the system store on their first connection;
 *   - the key log: both contexts append to one file from every thread.
 *
 * Without TSan the test still checks what it can see: every byte arrives
 * once and in order at the other end, every handshake verified the server,
 * and the key log holds only whole lines, exactly as many as handshakes
 * were made.
 */
#include "harness.h"

#include <pthread.h>
#include <unistd.h>
#include <sys/socket.h>

#define WORKERS 8
#define ROUNDS 6   /* connections per worker and kind */
#define CAPACITY 4096 /* small pair buffers: writes stop with WANT_WRITE */

static retls_ctx *server_ctx, *verify_ctx, *plain_ctx;
static pthread_barrier_t start_barrier, last_barrier;
static int failures; /* atomic */
static int handshakes; /* atomic: TLS 1.3 handshakes completed (2 ends) */

/* CHECK for threads: count, say where, give up on this connection. */
#define T_CHECK(cond, conn)                                                 \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "%s:%d: CHECK failed: %s (%s)\n", __FILE__, __LINE__, \
              #cond, (conn) ? retls_conn_last_error(conn) : "");           \
      __atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);                  \
      return -1;                                                           \
    }                                                                      \
  } while (0)

/* ---- pairs: both ends in one thread, non-blocking ----------------------- */

/* Write len bytes of pattern seed from a to b with key updates around,
 * the pending write finished by flush; b must read exactly them. */
static int pair_transfer(retls_conn *a, retls_conn *b, size_t len,
                         unsigned seed) {
  unsigned char *data = malloc(len), buf[2048];
  harness_buf got = {0};
  size_t out = 0, n;
  int st, rounds = 0;
  T_CHECK(data != NULL, NULL);
  harness_pattern(data, len, seed);
  st = retls_conn_key_update(a, 1);
  T_CHECK(st == RETLS_OK, a);
  st = retls_conn_write(&out, a, data, len);
  while (st == RETLS_WANT_WRITE || st == RETLS_WANT_READ) {
    /* The reader drains, then the writer retries from retls's copy. */
    while ((st = retls_conn_read(&n, b, buf, sizeof(buf))) == RETLS_OK)
      harness_buf_append(&got, buf, n);
    T_CHECK(st == RETLS_WANT_READ, b);
    st = retls_conn_flush(&out, a);
    T_CHECK(++rounds < 100000, a);
  }
  T_CHECK(st == RETLS_OK && out == len, a);
  while ((st = retls_conn_read(&n, b, buf, sizeof(buf))) == RETLS_OK)
    harness_buf_append(&got, buf, n);
  /* The writer reads too: the peer's answer to the key update. */
  while ((st = retls_conn_read(&n, a, buf, sizeof(buf))) == RETLS_OK)
    ;
  T_CHECK(got.len == len && memcmp(got.data, data, len) == 0, b);
  harness_buf_free(&got);
  free(data);
  return 0;
}

static int pair_round(unsigned seed, retls_conn **keep_c,
                      retls_conn **keep_s) {
  retls_conn *c = NULL, *s = NULL;
  int st = retls_pair_new(&c, &s, plain_ctx, server_ctx, CAPACITY);
  T_CHECK(st == RETLS_OK, NULL);
  st = harness_handshake(c, s);
  T_CHECK(st == RETLS_OK, c);
  __atomic_add_fetch(&handshakes, 1, __ATOMIC_RELAXED);
  if (pair_transfer(c, s, 20000 + seed % 5000, seed) != 0 ||
      pair_transfer(s, c, 30000 + seed % 7000, seed + 1) != 0)
    return -1;
  if (keep_c != NULL) { /* freed after the main thread dropped its refs */
    *keep_c = c;
    *keep_s = s;
    return 0;
  }
  retls_conn_free(c);
  retls_conn_free(s);
  return 0;
}

/* ---- sockets: each end in its own thread, blocking ---------------------- */

typedef struct {
  int fd;
  unsigned seed;
  size_t len;
  int ok;
} server_job;

/* Read until close_notify; everything must be the client's pattern. */
static int read_all(retls_conn *conn, harness_buf *got) {
  unsigned char buf[8192];
  size_t n;
  int st;
  while ((st = retls_conn_read(&n, conn, buf, sizeof(buf))) == RETLS_OK)
    harness_buf_append(got, buf, n);
  return st;
}

static int serve(server_job *job) {
  retls_conn *s = NULL;
  harness_buf got = {0};
  unsigned char *want = malloc(job->len);
  size_t out = 0;
  int st = retls_conn_new_fd(&s, server_ctx, job->fd, RETLS_FD_OWN, NULL);
  T_CHECK(st == RETLS_OK && want != NULL, NULL);
  st = retls_conn_handshake(s);
  T_CHECK(st == RETLS_OK, s);
  st = read_all(s, &got);
  T_CHECK(st == RETLS_ZERO_RETURN, s);
  harness_pattern(want, job->len, job->seed);
  T_CHECK(got.len == job->len && memcmp(got.data, want, job->len) == 0, s);
  /* Answer with the same bytes, then close_notify. */
  st = retls_conn_write(&out, s, got.data, got.len);
  T_CHECK(st == RETLS_OK && out == got.len, s);
  st = retls_conn_shutdown(s);
  T_CHECK(st == RETLS_OK, s);
  retls_conn_free(s);
  harness_buf_free(&got);
  free(want);
  return 0;
}

static void *server_thread(void *arg) {
  server_job *job = arg;
  job->ok = serve(job) == 0;
  return NULL;
}

static int socket_round(unsigned seed) {
  int fds[2], st;
  pthread_t th;
  server_job job;
  retls_conn *c = NULL;
  harness_buf got = {0};
  unsigned char *data;
  size_t out = 0;
  T_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0, NULL);
  job.fd = fds[1];
  job.seed = seed;
  job.len = 50000 + seed % 10000;
  job.ok = 0;
  T_CHECK(pthread_create(&th, NULL, server_thread, &job) == 0, NULL);
  data = malloc(job.len);
  harness_pattern(data, job.len, seed);
  /* The verifying context: its first connections race to load the
   * system trust store (the test CA was loaded before the threads). */
  st = retls_conn_new_fd(&c, verify_ctx, fds[0], RETLS_FD_OWN, "localhost");
  if (st == RETLS_OK)
    st = retls_conn_handshake(c);
  if (st == RETLS_OK) {
    __atomic_add_fetch(&handshakes, 1, __ATOMIC_RELAXED);
    if (retls_conn_verify_result(c) != 0)
      st = RETLS_VERIFY;
  }
  if (st == RETLS_OK)
    st = retls_conn_write(&out, c, data, job.len);
  if (st == RETLS_OK)
    st = retls_conn_shutdown(c);
  if (st == RETLS_OK)
    st = read_all(c, &got);
  if (c == NULL)
    close(fds[0]);
  pthread_join(th, NULL);
  T_CHECK(st == RETLS_ZERO_RETURN, c);
  T_CHECK(job.ok, NULL);
  T_CHECK(got.len == job.len && memcmp(got.data, data, job.len) == 0, c);
  retls_conn_free(c);
  harness_buf_free(&got);
  free(data);
  return 0;
}

/* ---- workers ------------------------------------------------------------- */

static void *worker(void *arg) {
  unsigned id = (unsigned)(size_t)arg, r;
  retls_conn *last_c = NULL, *last_s = NULL, *last_v = NULL;
  int fds[2];
  /* All at once: the first verifying connections race for the store. */
  pthread_barrier_wait(&start_barrier);
  for (r = 0; r < ROUNDS; r++) {
    unsigned seed = id * 1000 + r;
    if ((id + r) % 2 == 0)
      socket_round(seed);
    else
      pair_round(seed, NULL, NULL);
  }
  /* One more pair, and a verifying connection that never handshakes,
   * kept open across the barrier: a reference to each context. */
  pair_round(id * 1000 + 999, &last_c, &last_s);
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0) {
    if (retls_conn_new_fd(&last_v, verify_ctx, fds[0], RETLS_FD_OWN,
                          "localhost") != RETLS_OK) {
      __atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
      close(fds[0]);
    }
    close(fds[1]);
  }
  pthread_barrier_wait(&last_barrier); /* main drops its references */
  pthread_barrier_wait(&last_barrier);
  retls_conn_free(last_c);
  retls_conn_free(last_s);
  retls_conn_free(last_v);
  return NULL;
}

/* ---- the key log ---------------------------------------------------------- */

/* Whole lines only: "LABEL <64 hex client random> <64 or 96 hex secret>",
 * ten per TLS 1.3 handshake (five secrets, logged by each end), plus
 * those of key updates. */
static void check_keylog(const char *path, int expected_lines) {
  harness_buf log = {0};
  size_t i = 0;
  int lines = 0;
  CHECK(harness_read_file(path, &log) == 0);
  while (i < log.len) {
    char line[512], label[64], random[80], secret[200];
    size_t j = i;
    while (j < log.len && log.data[j] != '\n')
      j++;
    CHECK(j < log.len);            /* the last line is complete too */
    CHECK(j - i < sizeof(line));
    memcpy(line, log.data + i, j - i);
    line[j - i] = '\0';
    CHECK(sscanf(line, "%63s %79s %199s", label, random, secret) == 3);
    CHECK(strlen(random) == 64 && strspn(random, "0123456789abcdef") == 64);
    CHECK((strlen(secret) == 64 || strlen(secret) == 96) &&
          strspn(secret, "0123456789abcdef") == strlen(secret));
    CHECK(strstr(label, "SECRET") != NULL);
    /* Key updates log *_TRAFFIC_SECRET_N lines in some OpenSSL 3.0
     * releases: whole lines too, but not counted. */
    if (strstr(label, "_SECRET_N") == NULL)
      lines++;
    i = j + 1;
  }
  if (lines != expected_lines)
    fprintf(stderr, "key log: %d lines, expected %d\n", lines,
            expected_lines);
  CHECK(lines == expected_lines);
  harness_buf_free(&log);
}

static void test_shared_contexts_many_threads(void) {
  harness_cert ca, leaf;
  pthread_t th[WORKERS];
  char keylog[512];
  size_t i;
  CHECK(harness_make_cert(&ca, "ca", "retls test CA", NULL, -60, 3600, 1) ==
        0);
  CHECK(harness_make_cert(&leaf, "leaf", "localhost", &ca, -60, 3600, 0) ==
        0);
  harness_path(keylog, sizeof(keylog), "keylog.txt");

  /* Configured once, before any connection, as retls.h asks. */
  CHECK(retls_ctx_new(&server_ctx, RETLS_SERVER) == RETLS_OK);
  CHECK(retls_ctx_use_certificate(server_ctx, leaf.cert, leaf.key) ==
        RETLS_OK);
  CHECK(retls_ctx_set_keylog(server_ctx, keylog) == RETLS_OK);
  CHECK(retls_ctx_new(&verify_ctx, RETLS_CLIENT) == RETLS_OK);
  CHECK(retls_ctx_load_verify(verify_ctx, ca.cert, NULL) == RETLS_OK);
  CHECK(retls_ctx_set_keylog(verify_ctx, keylog) == RETLS_OK);
  plain_ctx = harness_ctx(RETLS_CLIENT);
  CHECK(plain_ctx != NULL);
  CHECK(retls_ctx_set_keylog(plain_ctx, keylog) == RETLS_OK);
  CHECK(pthread_barrier_init(&start_barrier, NULL, WORKERS) == 0);
  CHECK(pthread_barrier_init(&last_barrier, NULL, WORKERS + 1) == 0);

  for (i = 0; i < WORKERS; i++)
    CHECK(pthread_create(&th[i], NULL, worker, (void *)i) == 0);
  pthread_barrier_wait(&last_barrier);
  /* Every worker holds a connection of each context still: dropping the
   * caller's references now leaves the last free to one of them. */
  retls_ctx_free(server_ctx);
  retls_ctx_free(verify_ctx);
  retls_ctx_free(plain_ctx);
  pthread_barrier_wait(&last_barrier);
  for (i = 0; i < WORKERS; i++)
    pthread_join(th[i], NULL);
  pthread_barrier_destroy(&start_barrier);
  pthread_barrier_destroy(&last_barrier);

  CHECK(__atomic_load_n(&failures, __ATOMIC_RELAXED) == 0);
  /* Every worker: ROUNDS handshakes plus the kept pair. */
  CHECK(handshakes == WORKERS * (ROUNDS + 1));
  /* The contexts are gone, their key log files closed and flushed. */
  check_keylog(keylog, handshakes * 10);
}

int main(void) {
  RUN(test_shared_contexts_many_threads);
  return harness_finish();
}
