/*
 * test_shutdown.c - how connections end: close_notify (RETLS_ZERO_RETURN
 * at the peer), a transport that just stops (RETLS_EOF), and shutdown with
 * a write pending or a full transport.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <sys/socket.h>

static void test_clean_shutdown_gives_zero_return(void) {
  retls_conn *c, *s;
  harness_buf got = {0};
  unsigned char buf[16];
  size_t n;
  CHECK_STATUS(NULL, harness_pair(&c, &s, NULL, NULL, 0), RETLS_OK);
  CHECK_STATUS(c, retls_conn_write(&n, c, "bye", 3), RETLS_OK);
  CHECK_STATUS(c, retls_conn_shutdown(c), RETLS_OK);
  CHECK_STATUS(c, retls_conn_shutdown(c), RETLS_OK); /* idempotent */
  /* Data sent before close_notify arrives first. */
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_ZERO_RETURN);
  CHECK(got.len == 3 && memcmp(got.data, "bye", 3) == 0);
  CHECK(strstr(retls_conn_last_error(s), "close_notify") != NULL);
  /* ZERO_RETURN is not a failure of the connection: it can answer. */
  CHECK_STATUS(s, retls_conn_read(&n, s, buf, sizeof(buf)),
               RETLS_ZERO_RETURN);
  CHECK_STATUS(s, retls_conn_shutdown(s), RETLS_OK);
  CHECK_STATUS(c, retls_conn_read(&n, c, buf, sizeof(buf)),
               RETLS_ZERO_RETURN);
  CHECK(n == 0);
  CHECK_STATUS(c, retls_conn_close(c, 0), RETLS_OK);
  CHECK_STATUS(s, retls_conn_close(s, 0), RETLS_OK);
  harness_buf_free(&got);
  retls_conn_free(c);
  retls_conn_free(s);
}

/* After our own close_notify, writing is a protocol error, reported. */
static void test_write_after_shutdown_fails(void) {
  retls_conn *c, *s;
  size_t n = 99;
  CHECK_STATUS(NULL, harness_pair(&c, &s, NULL, NULL, 0), RETLS_OK);
  CHECK_STATUS(c, retls_conn_shutdown(c), RETLS_OK);
  CHECK_STATUS(c, retls_conn_write(&n, c, "late", 4), RETLS_SSL);
  CHECK(n == 0);
  CHECK(strstr(retls_conn_last_error(c), "shutdown") != NULL);
  retls_conn_free(c);
  retls_conn_free(s);
}

/* The peer vanishes without close_notify: RETLS_EOF, not ZERO_RETURN, so
 * a truncation attack is never mistaken for a clean end.  (Freeing one end
 * of a pair also frees the bytes it wrote that the other end has not read
 * yet, unlike a socket; so the server reads first here.) */
static void test_unexpected_eof_pair(void) {
  retls_conn *c, *s;
  harness_buf got = {0};
  size_t n;
  CHECK_STATUS(NULL, harness_pair(&c, &s, NULL, NULL, 0), RETLS_OK);
  CHECK_STATUS(c, retls_conn_write(&n, c, "partial", 7), RETLS_OK);
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
  CHECK(got.len == 7 && memcmp(got.data, "partial", 7) == 0);
  retls_conn_free(c); /* frees its half of the BIO pair */
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_EOF);
  CHECK(got.len == 7);
  CHECK(strstr(retls_conn_last_error(s), "without close_notify") != NULL);
  /* EOF is final. */
  CHECK_STATUS(s, retls_conn_write(&n, s, "x", 1), RETLS_CLOSED);
  harness_buf_free(&got);
  retls_conn_free(s);
}

/* Close without shutdown: the peer also sees EOF. */
static void test_close_without_shutdown_is_eof_for_peer(void) {
  retls_conn *c, *s;
  unsigned char buf[16];
  size_t n;
  CHECK_STATUS(NULL, harness_pair(&c, &s, NULL, NULL, 0), RETLS_OK);
  CHECK_STATUS(c, retls_conn_close(c, 0), RETLS_OK);
  CHECK_STATUS(s, retls_conn_read(&n, s, buf, sizeof(buf)), RETLS_EOF);
  retls_conn_free(c);
  retls_conn_free(s);
}

static void test_unexpected_eof_memory(void) {
  retls_conn *c, *s;
  unsigned char buf[16];
  size_t n;
  CHECK_STATUS(NULL, harness_memory_pair(&c, &s, NULL, NULL, 0), RETLS_OK);
  CHECK_STATUS(s, retls_conn_read(&n, s, buf, sizeof(buf)), RETLS_WANT_READ);
  CHECK_STATUS(s, retls_conn_bio_write_eof(s), RETLS_OK);
  CHECK_STATUS(s, retls_conn_read(&n, s, buf, sizeof(buf)), RETLS_EOF);
  CHECK(strstr(retls_conn_last_error(s), "without close_notify") != NULL);
  retls_conn_free(c);
  retls_conn_free(s);
}

/* Memory mode: close_notify fed in, then EOF, is still a clean end. */
static void test_clean_shutdown_memory(void) {
  retls_conn *c, *s;
  unsigned char buf[16];
  size_t n;
  CHECK_STATUS(NULL, harness_memory_pair(&c, &s, NULL, NULL, 0), RETLS_OK);
  CHECK_STATUS(c, retls_conn_shutdown(c), RETLS_OK);
  CHECK(harness_relay(c, s, 0, NULL) > 0);
  CHECK_STATUS(s, retls_conn_bio_write_eof(s), RETLS_OK);
  CHECK_STATUS(s, retls_conn_read(&n, s, buf, sizeof(buf)),
               RETLS_ZERO_RETURN);
  retls_conn_free(c);
  retls_conn_free(s);
}

/* Sockets: the peer's fd closed without close_notify. */
static void test_unexpected_eof_socket(void) {
  retls_ctx *cc = harness_ctx(RETLS_CLIENT), *sc = harness_ctx(RETLS_SERVER);
  retls_conn *c, *s;
  unsigned char buf[16];
  int sv[2], i, rc = RETLS_WANT_READ, rs = RETLS_WANT_READ;
  size_t n;
  CHECK(cc && sc);
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  CHECK(fcntl(sv[0], F_SETFL, O_NONBLOCK) == 0);
  CHECK(fcntl(sv[1], F_SETFL, O_NONBLOCK) == 0);
  CHECK_STATUS(NULL, retls_conn_new_fd(&c, cc, sv[0], RETLS_FD_OWN, NULL),
               RETLS_OK);
  CHECK_STATUS(NULL, retls_conn_new_fd(&s, sc, sv[1], RETLS_FD_OWN, NULL),
               RETLS_OK);
  retls_ctx_free(cc);
  retls_ctx_free(sc);
  for (i = 0; i < 100 && (rc != RETLS_OK || rs != RETLS_OK); i++) {
    rc = retls_conn_handshake(c);
    rs = retls_conn_handshake(s);
    CHECK(rc >= 0 && rs >= 0);
  }
  CHECK(rc == RETLS_OK && rs == RETLS_OK);
  CHECK_STATUS(c, retls_conn_write(&n, c, "abc", 3), RETLS_OK);
  /* Take the server's session tickets first: closing a Unix socket with
   * unread data makes the peer see ECONNRESET (RETLS_SYSCALL), not EOF. */
  CHECK_STATUS(c, retls_conn_read(&n, c, buf, sizeof(buf)), RETLS_WANT_READ);
  retls_conn_free(c); /* owns sv[0]: closes it, no close_notify */
  CHECK_STATUS(s, retls_conn_read(&n, s, buf, sizeof(buf)), RETLS_OK);
  CHECK(n == 3 && memcmp(buf, "abc", 3) == 0);
  CHECK_STATUS(s, retls_conn_read(&n, s, buf, sizeof(buf)), RETLS_EOF);
  retls_conn_free(s);
}

static void test_shutdown_with_pending_write(void) {
  enum { LEN = 65536 };
  retls_conn *c, *s;
  unsigned char *data = malloc(LEN);
  harness_buf got = {0};
  size_t n;
  harness_pattern(data, LEN, 61);
  CHECK_STATUS(NULL, harness_pair(&c, &s, NULL, NULL, 4096), RETLS_OK);
  CHECK_STATUS(c, retls_conn_write(&n, c, data, LEN), RETLS_WANT_WRITE);
  /* close_notify now would cut the pending bytes off. */
  CHECK_STATUS(c, retls_conn_shutdown(c), RETLS_WRITE_PENDING);
  CHECK(strstr(retls_conn_last_error(c), "65536 bytes") != NULL);
  CHECK(retls_conn_pending_write(c) == LEN);
  CHECK_STATUS(c, harness_flush_through(c, s, &got, 0, NULL, &n), RETLS_OK);
  CHECK_STATUS(c, retls_conn_shutdown(c), RETLS_OK);
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_ZERO_RETURN);
  CHECK(got.len == LEN && memcmp(got.data, data, LEN) == 0);
  harness_buf_free(&got);
  free(data);
  retls_conn_free(c);
  retls_conn_free(s);
}

/* No room for the close_notify: shutdown stops on WANT_WRITE and is
 * simply called again once the transport drained. */
static void test_shutdown_on_full_transport_wants_write(void) {
  enum { CAP = 4096, FILL = CAP - 22 }; /* one TLS 1.3 record fills it */
  retls_conn *c, *s;
  unsigned char *fill = malloc(FILL);
  harness_buf got = {0};
  size_t n;
  harness_pattern(fill, FILL, 62);
  CHECK_STATUS(NULL, harness_memory_pair(&c, &s, NULL, NULL, CAP), RETLS_OK);
  CHECK_STATUS(c, retls_conn_write(&n, c, fill, FILL), RETLS_OK);
  CHECK(retls_conn_bio_pending(c) == CAP);
  CHECK_STATUS(c, retls_conn_shutdown(c), RETLS_WANT_WRITE);
  CHECK(retls_conn_want(c) == RETLS_WANT_WRITE);
  harness_relay(c, s, 0, NULL);
  CHECK_STATUS(c, retls_conn_shutdown(c), RETLS_OK);
  harness_relay(c, s, 0, NULL);
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_ZERO_RETURN);
  CHECK(got.len == FILL && memcmp(got.data, fill, FILL) == 0);
  harness_buf_free(&got);
  free(fill);
  retls_conn_free(c);
  retls_conn_free(s);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  RUN(test_clean_shutdown_gives_zero_return);
  RUN(test_write_after_shutdown_fails);
  RUN(test_unexpected_eof_pair);
  RUN(test_close_without_shutdown_is_eof_for_peer);
  RUN(test_unexpected_eof_memory);
  RUN(test_clean_shutdown_memory);
  RUN(test_unexpected_eof_socket);
  RUN(test_shutdown_with_pending_write);
  RUN(test_shutdown_on_full_transport_wants_write);
  return harness_finish();
}
