/*
 * test_fd.c - the retry contract over real non-blocking sockets (a Unix
 * socketpair: fixed kernel buffers, so a 4 MiB write is sure to stop on
 * WANT_WRITE while the peer does not read).
 */
#include "harness.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>
#include <sys/socket.h>

#define LEN ((size_t)4 << 20)

/* A connected, handshaken client/server over a non-blocking socketpair;
 * the connections own the fds. */
static int socket_pair(retls_conn **c, retls_conn **s) {
  retls_ctx *cc = harness_ctx(RETLS_CLIENT), *sc = harness_ctx(RETLS_SERVER);
  int sv[2], i, rc = RETLS_WANT_READ, rs = RETLS_WANT_READ;
  *c = *s = NULL;
  if (cc == NULL || sc == NULL ||
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
    return RETLS_SYSCALL;
  if (retls_conn_new_fd(c, cc, sv[0], RETLS_FD_OWN, NULL) != RETLS_OK ||
      retls_conn_new_fd(s, sc, sv[1], RETLS_FD_OWN, NULL) != RETLS_OK)
    rc = RETLS_SSL;
  retls_ctx_free(cc);
  retls_ctx_free(sc);
  for (i = 0; i < 100 && rc >= 0 && rs >= 0 &&
              (rc != RETLS_OK || rs != RETLS_OK);
       i++) {
    rc = retls_conn_handshake(*c);
    rs = retls_conn_handshake(*s);
  }
  return rc != RETLS_OK ? rc : rs;
}

static void test_socket_want_write_flush_and_mismatch(void) {
  retls_conn *c, *s;
  unsigned char *data = malloc(LEN);
  harness_buf got = {0};
  retls_stats st;
  size_t n = 99;
  int status, rounds = 0;

  harness_pattern(data, LEN, 81);
  CHECK_STATUS(NULL, socket_pair(&c, &s), RETLS_OK);
  CHECK(retls_conn_fileno(c) >= 0);
  CHECK_STATUS(c, retls_conn_write(&n, c, data, LEN), RETLS_WANT_WRITE);
  CHECK(n == 0 && retls_conn_pending_write(c) == LEN);
  CHECK(retls_conn_want(c) == RETLS_WANT_WRITE);
  CHECK_STATUS(c, retls_conn_write(&n, c, data, LEN - 1),
               RETLS_RETRY_MISMATCH);

  /* Alternate: the server reads what arrived, the client flushes when
   * poll() says writable. */
  do {
    struct pollfd p;
    CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
    p.fd = retls_conn_fileno(c);
    p.events = POLLOUT;
    CHECK(poll(&p, 1, 5000) == 1);
    status = retls_conn_flush(&n, c);
    rounds++;
    CHECK(status == RETLS_OK || status == RETLS_WANT_WRITE);
  } while (status != RETLS_OK && rounds < 100000);
  CHECK(n == LEN);
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
  CHECK(got.len == LEN && memcmp(got.data, data, LEN) == 0);
  CHECK_STATUS(c, retls_conn_stats(&st, c), RETLS_OK);
  CHECK(st.writes == 1 && st.mismatches == 1 &&
        st.retries == (uint64_t)rounds);
  harness_buf_free(&got);
  free(data);
  retls_conn_free(c);
  retls_conn_free(s);
}

/* Both ends write 4 MiB at once over sockets; each reads while its own
 * write is pending, or neither finishes. */
static void test_socket_both_directions_full(void) {
  retls_conn *c, *s;
  unsigned char *to_s = malloc(LEN), *to_c = malloc(LEN);
  harness_buf got_c = {0}, got_s = {0};
  size_t n;
  int rounds;

  harness_pattern(to_s, LEN, 82);
  harness_pattern(to_c, LEN, 83);
  CHECK_STATUS(NULL, socket_pair(&c, &s), RETLS_OK);
  CHECK_STATUS(c, retls_conn_write(&n, c, to_s, LEN), RETLS_WANT_WRITE);
  CHECK_STATUS(s, retls_conn_write(&n, s, to_c, LEN), RETLS_WANT_WRITE);
  for (rounds = 0; rounds < 100000; rounds++) {
    struct pollfd p[2];
    int st;
    if (!retls_conn_pending_write(c) && !retls_conn_pending_write(s) &&
        got_c.len == LEN && got_s.len == LEN)
      break;
    p[0].fd = retls_conn_fileno(c);
    p[1].fd = retls_conn_fileno(s);
    p[0].events = p[1].events = POLLIN;
    if (retls_conn_pending_write(c))
      p[0].events |= POLLOUT;
    if (retls_conn_pending_write(s))
      p[1].events |= POLLOUT;
    CHECK(poll(p, 2, 5000) > 0);
    CHECK_STATUS(c, harness_drain(c, &got_c), RETLS_WANT_READ);
    CHECK_STATUS(s, harness_drain(s, &got_s), RETLS_WANT_READ);
    if (retls_conn_pending_write(c)) {
      st = retls_conn_flush(&n, c);
      CHECK(st == RETLS_OK || st == RETLS_WANT_WRITE);
    }
    if (retls_conn_pending_write(s)) {
      st = retls_conn_flush(&n, s);
      CHECK(st == RETLS_OK || st == RETLS_WANT_WRITE);
    }
  }
  CHECK(got_s.len == LEN && memcmp(got_s.data, to_s, LEN) == 0);
  CHECK(got_c.len == LEN && memcmp(got_c.data, to_c, LEN) == 0);
  harness_buf_free(&got_c);
  harness_buf_free(&got_s);
  free(to_s);
  free(to_c);
  retls_conn_free(c);
  retls_conn_free(s);
}

/* A vanished peer while writing: RETLS_SYSCALL (EPIPE), not a signal. */
static void test_write_to_closed_socket(void) {
  retls_conn *c, *s;
  unsigned char *data = malloc(LEN);
  size_t n;
  int st, i;
  harness_pattern(data, LEN, 84);
  CHECK_STATUS(NULL, socket_pair(&c, &s), RETLS_OK);
  retls_conn_free(s);
  st = retls_conn_write(&n, c, data, LEN);
  for (i = 0; i < 10 && st == RETLS_WANT_WRITE; i++)
    st = retls_conn_flush(&n, c);
  CHECK_STATUS(c, st, RETLS_SYSCALL);
  CHECK(strstr(retls_conn_last_error(c), "Broken pipe") != NULL ||
        strstr(retls_conn_last_error(c), "reset") != NULL);
  /* The unsent bytes were never acknowledged: nothing is pending now. */
  CHECK(retls_conn_pending_write(c) == 0);
  CHECK_STATUS(c, retls_conn_close(c, 0), RETLS_OK);
  free(data);
  retls_conn_free(c);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  RUN(test_socket_want_write_flush_and_mismatch);
  RUN(test_socket_both_directions_full);
  RUN(test_write_to_closed_socket);
  return harness_finish();
}
