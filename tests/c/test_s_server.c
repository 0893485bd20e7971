/*
 * test_s_server.c - libretls against a real "openssl s_server" on
 * 127.0.0.1, started and stopped by the test.
 *
 * s_server runs with -rev: for every line it receives it sends the line
 * back reversed, so the reply checks exactly which bytes arrived, in which
 * order, each once.  The client connects with retls_connect(), verifies
 * the server against a CA made for the test, then runs a non-blocking
 * poll() loop: a write much larger than the socket buffers stops on
 * WANT_WRITE (s_server stops reading while we do not read its replies), so
 * the loop must read while the write is pending.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>
#include <sys/socket.h>

#define DAY 86400L
#define WAIT_MS 10000 /* bound on any single wait: a hang fails, not hangs */

static harness_cert ca, leaf;
static int have_certs;

static int make_certs(void) {
  if (!have_certs)
    have_certs =
        harness_make_cert(&ca, "ca", "retls test CA", NULL, -DAY, DAY, 1) ==
            0 &&
        harness_make_cert(&leaf, "localhost", "localhost", &ca, -DAY, DAY,
                          0) == 0;
  return have_certs;
}

/* Start s_server -rev with the test certificate plus extra options. */
static int start_server(int *port, const char *extra) {
  char args[1500];
  if (!make_certs())
    return -1;
  snprintf(args, sizeof(args), "-rev -cert %s -key %s %s", leaf.cert,
           leaf.key, extra ? extra : "");
  return harness_start_s_server(port, args);
}

/* A verifying client context that trusts the test CA. */
static retls_ctx *client_ctx(const char *max_version) {
  retls_ctx *cc = NULL;
  if (retls_ctx_new(&cc, RETLS_CLIENT) != RETLS_OK)
    return NULL;
  if (retls_ctx_load_verify(cc, ca.cert, NULL) != RETLS_OK ||
      retls_ctx_set_versions(cc, NULL, max_version) != RETLS_OK) {
    fprintf(stderr, "client_ctx: %s\n", retls_ctx_last_error(cc));
    retls_ctx_free(cc);
    return NULL;
  }
  return cc;
}

/* Wait until the socket can serve what the connection waits for (always
 * also readable: the peer may be talking).  0 when ready, -1 on timeout. */
static int wait_ready(retls_conn *c) {
  struct pollfd p;
  int rc;
  p.fd = retls_conn_fileno(c);
  p.events = POLLIN;
  if (retls_conn_want(c) == RETLS_WANT_WRITE)
    p.events |= POLLOUT;
  do
    rc = poll(&p, 1, WAIT_MS);
  while (rc < 0 && errno == EINTR);
  return rc > 0 ? 0 : -1;
}

static int set_nonblocking(retls_conn *c) {
  int fd = retls_conn_fileno(c);
  return fd >= 0 && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0;
}

/* Non-blocking handshake: RETLS_OK or the failure. */
static int handshake_nb(retls_conn *c) {
  int st;
  while ((st = retls_conn_handshake(c)) == RETLS_WANT_READ ||
         st == RETLS_WANT_WRITE)
    if (wait_ready(c) != 0)
      return RETLS_TIMEOUT;
  return st;
}

/*
 * Write len bytes in ONE write call, then poll: read whatever arrives (the
 * write may be pending meanwhile), flush when the socket allows, until the
 * write is done and expect_in bytes have come back.  RETLS_OK or the
 * failing status.
 */
static int exchange(retls_conn *c, const void *out, size_t len,
                    harness_buf *in, size_t expect_in) {
  size_t n = 0, start = in->len;
  int st = retls_conn_write(&n, c, out, len), done = st == RETLS_OK;
  while (!done || in->len - start < expect_in) {
    int rs;
    if (st != RETLS_OK && st != RETLS_WANT_READ && st != RETLS_WANT_WRITE)
      return st;
    if (wait_ready(c) != 0) {
      fprintf(stderr, "exchange: no progress for %d ms (sent %s, got %zu of "
              "%zu)\n", WAIT_MS, done ? "all" : "part", in->len - start,
              expect_in);
      return RETLS_TIMEOUT;
    }
    rs = harness_drain(c, in);
    if (rs != RETLS_WANT_READ && rs != RETLS_WANT_WRITE)
      return rs;
    if (!done) {
      st = retls_conn_flush(&n, c);
      if (st == RETLS_OK) {
        if (n != len)
          return RETLS_SSL;
        done = 1;
      }
    }
  }
  return in->len - start == expect_in ? RETLS_OK : RETLS_SSL;
}

/* lines of random lowercase text, and what s_server -rev answers. */
static void make_lines(harness_buf *text, harness_buf *reversed, int lines,
                       int width, unsigned seed) {
  unsigned char *raw = malloc((size_t)width);
  char *line = malloc((size_t)width + 1);
  int i, j;
  for (i = 0; i < lines; i++) {
    harness_pattern(raw, (size_t)width, seed + (unsigned)i);
    for (j = 0; j < width; j++)
      line[j] = (char)('a' + raw[j] % 26);
    line[width] = '\n';
    harness_buf_append(text, line, (size_t)width + 1);
    for (j = 0; j < width; j++)
      raw[j] = (unsigned char)line[width - 1 - j];
    harness_buf_append(reversed, raw, (size_t)width);
    harness_buf_append(reversed, "\n", 1);
  }
  free(raw);
  free(line);
}

static void test_s_server_nonblocking_bulk_echo(void) {
  retls_ctx *cc;
  retls_conn *c = NULL;
  harness_buf text = {0}, expect = {0}, got = {0};
  retls_stats st;
  int port, pid, status;

  make_lines(&text, &expect, 8000, 127, 1); /* 1 MiB in one write */
  pid = start_server(&port, NULL);
  CHECK(pid > 0);
  cc = client_ctx(NULL);
  CHECK(cc != NULL);
  status = retls_connect(&c, cc, "127.0.0.1", port, 5000, "localhost");
  if (status != RETLS_OK)
    fprintf(stderr, "connect: %s\n", retls_ctx_last_error(cc));
  retls_ctx_free(cc);
  CHECK(status == RETLS_OK);
  CHECK(set_nonblocking(c));
  /* A small send buffer, so the 1 MiB write is likely (not certain: the
   * server's receive buffer grows on its own) to stop on WANT_WRITE.  Not
   * SO_RCVBUF: shrinking the window of an open connection stalls TCP for
   * seconds (zero-window probes). */
  {
    int small = 16384;
    setsockopt(retls_conn_fileno(c), SOL_SOCKET, SO_SNDBUF, &small,
               sizeof(small));
  }
  status = handshake_nb(c);
  if (status != RETLS_OK)
    harness_s_server_log(port);
  CHECK_STATUS(c, status, RETLS_OK);
  CHECK(retls_conn_verify_result(c) == 0);
  CHECK(strcmp(retls_conn_version(c), "TLSv1.3") == 0);

  status = exchange(c, text.data, text.len, &got, expect.len);
  if (status != RETLS_OK)
    harness_s_server_log(port);
  CHECK_STATUS(c, status, RETLS_OK);
  CHECK(got.len == expect.len && memcmp(got.data, expect.data, got.len) == 0);
  CHECK_STATUS(c, retls_conn_stats(&st, c), RETLS_OK);
  CHECK(st.writes == 1 && st.bytes_written == text.len);
  CHECK(st.bytes_read == expect.len);
  fprintf(stderr, "     1 MiB write: %llu WANT_WRITE, %llu WANT_READ, "
          "%llu retries\n", (unsigned long long)st.want_write,
          (unsigned long long)st.want_read, (unsigned long long)st.retries);

  CHECK_STATUS(c, retls_conn_shutdown(c), RETLS_OK);
  retls_conn_free(c);
  harness_stop(pid);
  harness_buf_free(&text);
  harness_buf_free(&expect);
  harness_buf_free(&got);
}

/*
 * TLS 1.2 renegotiation and TLS 1.3 KeyUpdate(update_requested) in the
 * middle of a conversation with s_server; every line still comes back.
 * (s_server -rev sleeps a second whenever a read of its returns "retry",
 * which a re-key causes once: so one re-key per test.)
 */
static void rekey_case(const char *max_version) {
  retls_ctx *cc;
  retls_conn *c = NULL;
  harness_buf text = {0}, expect = {0}, got = {0};
  retls_stats st;
  char keylog[600];
  int port, pid, status;
  size_t half;

  make_lines(&text, &expect, 2000, 63, 7);
  half = text.len / 2; /* whole lines: all have the same width */
  pid = start_server(&port, "-client_renegotiation");
  CHECK(pid > 0);
  cc = client_ctx(max_version);
  CHECK(cc != NULL);
  /* The key log shows each TLS 1.2 handshake as one CLIENT_RANDOM line:
   * proof that the renegotiation really happened. */
  snprintf(keylog, sizeof(keylog), "%s/keys-%s.log", harness_tmpdir(),
           max_version);
  CHECK_STATUS(NULL, retls_ctx_set_keylog(cc, keylog), RETLS_OK);
  status = retls_connect(&c, cc, "127.0.0.1", port, 5000, "localhost");
  retls_ctx_free(cc);
  CHECK(status == RETLS_OK);
  CHECK(set_nonblocking(c));
  CHECK_STATUS(c, handshake_nb(c), RETLS_OK);
  CHECK(strcmp(retls_conn_version(c), max_version) == 0);

  status = exchange(c, text.data, half, &got, half);
  CHECK_STATUS(c, status, RETLS_OK);
  if (strcmp(max_version, "TLSv1.2") == 0)
    CHECK_STATUS(c, retls_conn_renegotiate(c), RETLS_OK);
  else
    CHECK_STATUS(c, retls_conn_key_update(c, 1), RETLS_OK);
  status = exchange(c, text.data + half, text.len - half, &got,
                    expect.len - half);
  if (status != RETLS_OK)
    harness_s_server_log(port);
  CHECK_STATUS(c, status, RETLS_OK);
  CHECK(got.len == expect.len && memcmp(got.data, expect.data, got.len) == 0);
  CHECK_STATUS(c, retls_conn_stats(&st, c), RETLS_OK);
  CHECK(st.writes == 2 && st.bytes_written == text.len);
  fprintf(stderr, "     %s re-key: %llu WANT_READ, %llu WANT_WRITE\n",
          max_version, (unsigned long long)st.want_read,
          (unsigned long long)st.want_write);
  if (strcmp(max_version, "TLSv1.2") == 0) {
    harness_buf log = {0};
    size_t i, lines = 0;
    CHECK(harness_read_file(keylog, &log) == 0);
    for (i = 0; i + 14 <= log.len; i++)
      if ((i == 0 || log.data[i - 1] == '\n') &&
          memcmp(log.data + i, "CLIENT_RANDOM ", 14) == 0)
        lines++;
    harness_buf_free(&log);
    CHECK(lines == 2);
  }
  CHECK_STATUS(c, retls_conn_shutdown(c), RETLS_OK);
  retls_conn_free(c);
  harness_stop(pid);
  harness_buf_free(&text);
  harness_buf_free(&expect);
  harness_buf_free(&got);
}

static void test_s_server_renegotiation(void) { rekey_case("TLSv1.2"); }
static void test_s_server_key_update(void) { rekey_case("TLSv1.3"); }

/* Blocking use with a timeout: a read with nothing to read gives
 * RETLS_TIMEOUT, and the connection is still fine afterwards. */
static void test_s_server_blocking_timeout(void) {
  retls_ctx *cc;
  retls_conn *c = NULL;
  unsigned char buf[64];
  size_t n, total = 0;
  int port, pid, status, i;

  pid = start_server(&port, NULL);
  CHECK(pid > 0);
  cc = client_ctx(NULL);
  CHECK(cc != NULL);
  status = retls_connect(&c, cc, "127.0.0.1", port, 300, "localhost");
  retls_ctx_free(cc);
  CHECK(status == RETLS_OK);
  CHECK_STATUS(c, retls_conn_handshake(c), RETLS_OK);
  CHECK_STATUS(c, retls_conn_read(&n, c, buf, sizeof(buf)), RETLS_TIMEOUT);
  CHECK(strstr(retls_conn_last_error(c), "timed out after 300 ms") != NULL);
  CHECK_STATUS(c, retls_conn_write(&n, c, "abc\n", 4), RETLS_OK);
  for (i = 0; i < 10 && total < 4; i++) {
    CHECK_STATUS(c, retls_conn_read(&n, c, buf + total, sizeof(buf) - total),
                 RETLS_OK);
    total += n;
  }
  CHECK(total == 4 && memcmp(buf, "cba\n", 4) == 0);
  retls_conn_free(c);
  harness_stop(pid);
}

/* Nothing listening: a clear failure naming the address. */
static void test_connect_refused(void) {
  retls_ctx *cc = harness_ctx(RETLS_CLIENT);
  retls_conn *c = NULL;
  int port, pid;
  CHECK(cc != NULL);
  /* A port that was just free: start and stop a server to learn one. */
  pid = start_server(&port, NULL);
  CHECK(pid > 0);
  harness_stop(pid);
  CHECK(retls_connect(&c, cc, "127.0.0.1", port, 2000, NULL) ==
        RETLS_SYSCALL);
  CHECK(c == NULL);
  CHECK(strstr(retls_ctx_last_error(cc), "Connection refused") != NULL);
  CHECK(strstr(retls_ctx_last_error(cc), "127.0.0.1") != NULL);
  retls_ctx_free(cc);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  RUN(test_s_server_nonblocking_bulk_echo);
  RUN(test_s_server_renegotiation);
  RUN(test_s_server_key_update);
  RUN(test_s_server_blocking_timeout);
  RUN(test_connect_refused);
  return harness_finish();
}
