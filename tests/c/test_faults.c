/*
 * test_faults.c - faults on the wire (mirrors tests/python/test_faults.py
 * where it is cheap in C): a peer that is not TLS, garbage and truncated
 * records, the fd closed under the connection, a peer that resets the
 * connection while a write is pending, a handshake that never completes.
 * Each gives its status and a detail text that says what happened, and
 * nothing is sent after the failure: every later call is RETLS_CLOSED and
 * the peer's bytes are checked.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <unistd.h>
#include <sys/socket.h>

#define HAS(conn, text) (strstr(retls_conn_last_error(conn), (text)) != NULL)

/* Every I/O call on a failed connection: RETLS_CLOSED, keeping reason. */
static int refuses_everything(retls_conn *c, const char *reason) {
  size_t n;
  unsigned char buf[16];
  int st[5], i;
  st[0] = retls_conn_write(&n, c, "secret", 6);
  st[1] = retls_conn_flush(&n, c);
  st[2] = retls_conn_read(&n, c, buf, sizeof(buf));
  st[3] = retls_conn_handshake(c);
  st[4] = retls_conn_shutdown(c);
  for (i = 0; i < 5; i++)
    if (st[i] != RETLS_CLOSED)
      return 0;
  return HAS(c, "connection failed earlier") && HAS(c, reason);
}

/* Content types of the whole records in a byte stream (at most max). */
static int record_types(const unsigned char *p, size_t len, int *types,
                        int max) {
  size_t i = 0;
  int k = 0;
  while (i + 5 <= len && k < max) {
    size_t n = ((size_t)p[i + 3] << 8) | p[i + 4];
    if (i + 5 + n > len)
      break;
    types[k++] = p[i];
    i += 5 + n;
  }
  return k;
}

/* Read a socket until end of stream (or reset) into out. */
static void read_to_end(int fd, harness_buf *out) {
  unsigned char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0)
    harness_buf_append(out, buf, (size_t)n);
}

/* A client over one end of a socketpair; the test plays the peer on *peer
 * (blocking).  The connection owns its fd. */
static retls_conn *client_on_socketpair(int *peer) {
  retls_ctx *cc = harness_ctx(RETLS_CLIENT);
  retls_conn *c = NULL;
  int sv[2];
  if (cc == NULL || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
    return NULL;
  if (retls_conn_new_fd(&c, cc, sv[0], RETLS_FD_OWN, NULL) != RETLS_OK) {
    close(sv[0]);
    close(sv[1]);
    c = NULL;
  }
  retls_ctx_free(cc);
  *peer = sv[1];
  return c;
}

/* The peer answers the ClientHello with plain HTTP. */
static void test_non_tls_peer(void) {
  static const char http[] = "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
  harness_buf got = {0};
  int peer, types[8], k;
  retls_conn *c = client_on_socketpair(&peer);
  CHECK(c != NULL);
  CHECK(write(peer, http, sizeof(http) - 1) == (ssize_t)(sizeof(http) - 1));
  CHECK_STATUS(c, retls_conn_handshake(c), RETLS_SSL);
  CHECK(strcmp(retls_conn_last_error(c),
               "handshake: wrong version number (the peer sent bytes that "
               "are not TLS: is it a plain-text service, or the wrong "
               "port?)") == 0);
  CHECK(refuses_everything(c, "wrong version number"));
  retls_conn_free(c);
  read_to_end(peer, &got);
  close(peer);
  /* The ClientHello, at most an alert, nothing else. */
  k = record_types(got.data, got.len, types, 8);
  CHECK(k >= 1 && types[0] == 22);
  CHECK(k == 1 || (k == 2 && types[1] == 21));
  harness_buf_free(&got);
}

/* Memory mode: a record cut in half, then the end of the stream. */
static void test_truncated_record(void) {
  retls_conn *c, *s;
  harness_buf wire = {0};
  unsigned char buf[2048], big[1000];
  size_t n;
  CHECK_STATUS(NULL, harness_memory_pair(&c, &s, NULL, NULL, 0), RETLS_OK);
  memset(big, 'x', sizeof(big));
  CHECK_STATUS(s, retls_conn_write(&n, s, big, sizeof(big)), RETLS_OK);
  CHECK_STATUS(s, retls_conn_bio_read(&n, s, buf, sizeof(buf)), RETLS_OK);
  CHECK_STATUS(c, retls_conn_bio_write(NULL, c, buf, n / 2), RETLS_OK);
  /* Not delivered in part. */
  CHECK_STATUS(c, retls_conn_read(&n, c, buf, sizeof(buf)), RETLS_WANT_READ);
  CHECK_STATUS(c, retls_conn_bio_write_eof(c), RETLS_OK);
  CHECK_STATUS(c, retls_conn_read(&n, c, buf, sizeof(buf)), RETLS_EOF);
  CHECK(HAS(c, "unexpected eof while reading"));
  harness_relay(c, s, 0, &wire); /* its alert, if any */
  CHECK(refuses_everything(c, "unexpected eof"));
  CHECK(retls_conn_bio_pending(c) == 0); /* nothing more for the peer */
  harness_buf_free(&wire);
  retls_conn_free(c);
  retls_conn_free(s);
}

/* Memory mode: a well-formed record that no key decrypts. */
static void test_garbage_record_after_handshake(void) {
  static const unsigned char junk[5 + 32] = {0x17, 0x03, 0x03, 0x00, 0x20};
  retls_conn *c, *s;
  unsigned char buf[64];
  size_t n;
  CHECK_STATUS(NULL, harness_memory_pair(&c, &s, NULL, NULL, 0), RETLS_OK);
  CHECK_STATUS(c, retls_conn_bio_write(NULL, c, junk, sizeof(junk)),
               RETLS_OK);
  CHECK_STATUS(c, retls_conn_read(&n, c, buf, sizeof(buf)), RETLS_SSL);
  CHECK(strcmp(retls_conn_last_error(c),
               "read: decryption failed or bad record mac") == 0);
  /* Its alert (one encrypted record), then nothing. */
  CHECK_STATUS(c, retls_conn_bio_read(&n, c, buf, sizeof(buf)), RETLS_OK);
  CHECK(n == 5 + 19 && buf[0] == 0x17);
  CHECK(refuses_everything(c, "bad record mac"));
  CHECK(retls_conn_bio_pending(c) == 0);
  retls_conn_free(c);
  retls_conn_free(s);
}

/* The caller closes the fd it gave: EBADF, then nothing more. */
static void test_fd_closed_under_the_connection(void) {
  retls_ctx *cc = harness_ctx(RETLS_CLIENT);
  retls_conn *c = NULL;
  size_t n;
  int sv[2];
  CHECK(cc != NULL);
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  CHECK_STATUS(NULL, retls_conn_new_fd(&c, cc, sv[0], 0, NULL), RETLS_OK);
  close(sv[0]);
  CHECK_STATUS(c, retls_conn_write(&n, c, "x", 1), RETLS_SYSCALL);
  CHECK(strcmp(retls_conn_last_error(c), "handshake: Bad file descriptor") ==
            0 ||
        strcmp(retls_conn_last_error(c), "write: Bad file descriptor") == 0);
  CHECK(refuses_everything(c, "Bad file descriptor"));
  retls_conn_free(c);
  retls_ctx_free(cc);
  close(sv[1]);
}

/* A TCP listener on 127.0.0.1; its port in *port. */
static int listener(int *port) {
  struct sockaddr_in a;
  socklen_t len = sizeof(a);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
      listen(fd, 4) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
    if (fd >= 0)
      close(fd);
    return -1;
  }
  *port = ntohs(a.sin_port);
  return fd;
}

/* The peer resets the connection (SO_LINGER 0) while a write is pending. */
static void test_peer_reset_mid_write(void) {
  static unsigned char big[65536];
  retls_ctx *cc = harness_ctx(RETLS_CLIENT), *sc = harness_ctx(RETLS_SERVER);
  retls_conn *c = NULL, *s = NULL;
  struct linger lg = {1, 0};
  size_t n;
  int lfd, port, sfd, i, st = RETLS_OK, rc = RETLS_WANT_READ,
                          rs = RETLS_WANT_READ;
  CHECK(cc && sc);
  CHECK((lfd = listener(&port)) >= 0);
  CHECK_STATUS(NULL, retls_connect(&c, cc, "127.0.0.1", port, 10000, NULL),
               RETLS_OK);
  CHECK((sfd = accept(lfd, NULL, NULL)) >= 0);
  close(lfd);
  CHECK(fcntl(sfd, F_SETFL, O_NONBLOCK) == 0);
  CHECK(fcntl(retls_conn_fileno(c), F_SETFL, O_NONBLOCK) == 0);
  CHECK_STATUS(NULL, retls_conn_new_fd(&s, sc, sfd, 0, NULL), RETLS_OK);
  for (i = 0; i < 200 && (rc != RETLS_OK || rs != RETLS_OK); i++) {
    if (rc != RETLS_OK)
      rc = retls_conn_handshake(c);
    if (rs != RETLS_OK)
      rs = retls_conn_handshake(s);
    CHECK(rc >= 0 && rs >= 0);
  }
  CHECK(rc == RETLS_OK && rs == RETLS_OK);
  /* Fill the socket until a write stops half-way. */
  for (i = 0; i < 10000 && st == RETLS_OK; i++)
    st = retls_conn_write(&n, c, big, sizeof(big));
  CHECK_STATUS(c, st, RETLS_WANT_WRITE);
  CHECK(retls_conn_pending_write(c) == sizeof(big));
  CHECK(setsockopt(sfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) == 0);
  retls_conn_free(s);
  close(sfd); /* RST */
  CHECK_STATUS(c, retls_conn_flush(&n, c), RETLS_SYSCALL);
  CHECK(strcmp(retls_conn_last_error(c), "write: Connection reset by peer") ==
        0);
  CHECK(refuses_everything(c, "Connection reset by peer"));
  CHECK(retls_conn_pending_write(c) == 0); /* never acknowledged, dropped */
  CHECK_STATUS(c, retls_conn_close(c, 0), RETLS_OK);
  retls_conn_free(c);
  retls_ctx_free(cc);
  retls_ctx_free(sc);
}

/* A server that accepts (the kernel does, from the backlog) and never
 * answers: the handshake times out, and only the ClientHello was sent. */
static void test_handshake_timeout(void) {
  retls_ctx *cc = harness_ctx(RETLS_CLIENT);
  retls_conn *c = NULL;
  harness_buf got = {0};
  struct timeval tv = {10, 0};
  size_t n;
  int lfd, port, sfd, types[4];
  CHECK(cc != NULL);
  CHECK((lfd = listener(&port)) >= 0);
  CHECK_STATUS(NULL, retls_connect(&c, cc, "127.0.0.1", port, 300, NULL),
               RETLS_OK);
  CHECK_STATUS(c, retls_conn_handshake(c), RETLS_TIMEOUT);
  CHECK(strcmp(retls_conn_last_error(c),
               "timed out after 300 ms waiting for the socket to become "
               "readable; the operation may be repeated") == 0);
  /* Not a failure: a write continues the handshake, times out again, and
   * keeps its bytes pending. */
  CHECK_STATUS(c, retls_conn_write(&n, c, "secret", 6), RETLS_TIMEOUT);
  CHECK(retls_conn_pending_write(c) == 6);
  CHECK_STATUS(c, retls_conn_close(c, 0), RETLS_WRITE_PENDING);
  CHECK_STATUS(c, retls_conn_close(c, RETLS_CLOSE_DISCARD), RETLS_OK);
  CHECK((sfd = accept(lfd, NULL, NULL)) >= 0);
  CHECK(setsockopt(sfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0);
  read_to_end(sfd, &got);
  CHECK(record_types(got.data, got.len, types, 4) == 1 && types[0] == 22);
  close(sfd);
  close(lfd);
  harness_buf_free(&got);
  retls_conn_free(c);
  retls_ctx_free(cc);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  RUN(test_non_tls_peer);
  RUN(test_truncated_record);
  RUN(test_garbage_record_after_handshake);
  RUN(test_fd_closed_under_the_connection);
  RUN(test_peer_reset_mid_write);
  RUN(test_handshake_timeout);
  return harness_finish();
}
