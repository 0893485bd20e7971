/*
 * test_lifecycle.c - object states: open, failed, closed.  Every call
 * after close says RETLS_CLOSED, close never drops a pending write
 * silently, free is forgiving, contexts outlive their connections, and one
 * connection's OpenSSL error never leaks into another's call.
 */
#include "harness.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

/* Every operation on a closed connection: RETLS_CLOSED, with a text. */
static void expect_all_closed(retls_conn *c) {
  unsigned char buf[8];
  const unsigned char *der = (const unsigned char *)"x";
  size_t n = 99, der_len = 99;
  CHECK_STATUS(c, retls_conn_handshake(c), RETLS_CLOSED);
  CHECK(strstr(retls_conn_last_error(c), "closed") != NULL);
  CHECK_STATUS(c, retls_conn_write(&n, c, "x", 1), RETLS_CLOSED);
  CHECK(n == 0);
  CHECK_STATUS(c, retls_conn_write(&n, c, "x", 0), RETLS_CLOSED);
  CHECK_STATUS(c, retls_conn_flush(&n, c), RETLS_CLOSED);
  CHECK_STATUS(c, retls_conn_read(&n, c, buf, sizeof(buf)), RETLS_CLOSED);
  CHECK(n == 0);
  CHECK_STATUS(c, retls_conn_shutdown(c), RETLS_CLOSED);
  CHECK_STATUS(c, retls_conn_renegotiate(c), RETLS_CLOSED);
  CHECK_STATUS(c, retls_conn_key_update(c, 1), RETLS_CLOSED);
  CHECK_STATUS(c, retls_conn_peer_certificate(&der, &der_len, c),
               RETLS_CLOSED);
  CHECK(der == NULL && der_len == 0);
  CHECK_STATUS(c, retls_conn_bio_write(&n, c, "x", 1), RETLS_CLOSED);
  CHECK_STATUS(c, retls_conn_bio_read(&n, c, buf, sizeof(buf)),
               RETLS_CLOSED);
  CHECK_STATUS(c, retls_conn_bio_write_eof(c), RETLS_CLOSED);
  /* Queries answer "nothing" rather than failing. */
  CHECK(retls_conn_version(c) == NULL);
  CHECK(retls_conn_cipher(c) == NULL);
  CHECK(retls_conn_alpn(c) == NULL);
  CHECK(retls_conn_fileno(c) == -1);
  CHECK(!retls_conn_is_established(c));
  CHECK(retls_conn_pending_write(c) == 0);
  CHECK(retls_conn_pending_read(c) == 0);
  CHECK(retls_conn_bio_pending(c) == 0);
  CHECK(retls_conn_want(c) == RETLS_OK);
  CHECK(retls_conn_verify_result(c) == 0);
  /* Closing again is fine. */
  CHECK_STATUS(c, retls_conn_close(c, 0), RETLS_OK);
  CHECK_STATUS(c, retls_conn_close(c, RETLS_CLOSE_DISCARD), RETLS_OK);
}

static void test_every_call_after_close(void) {
  retls_conn *c, *s, *m;
  retls_ctx *cc = harness_ctx(RETLS_CLIENT);
  CHECK_STATUS(NULL, harness_pair(&c, &s, NULL, NULL, 0), RETLS_OK);
  CHECK_STATUS(c, retls_conn_close(c, 0), RETLS_OK);
  expect_all_closed(c);
  /* The server end is untouched by its peer's close until it does I/O. */
  CHECK(retls_conn_is_established(s));
  retls_conn_free(c);
  retls_conn_free(s);

  /* Memory mode too (the bio_* calls). */
  CHECK(cc != NULL);
  CHECK_STATUS(NULL, retls_conn_new_memory(&m, cc, NULL, 0), RETLS_OK);
  retls_ctx_free(cc);
  CHECK_STATUS(m, retls_conn_close(m, 0), RETLS_OK);
  expect_all_closed(m);
  retls_conn_free(m);
}

static void test_free_null_and_close_null(void) {
  retls_conn_free(NULL);
  retls_ctx_free(NULL);
  CHECK(retls_conn_close(NULL, 0) == RETLS_BAD_ARG);
  CHECK(retls_conn_handshake(NULL) == RETLS_BAD_ARG);
  CHECK(retls_conn_write(NULL, NULL, "x", 1) == RETLS_BAD_ARG);
  CHECK(retls_conn_flush(NULL, NULL) == RETLS_BAD_ARG);
  CHECK(retls_conn_read(NULL, NULL, NULL, 0) == RETLS_BAD_ARG);
  CHECK(retls_conn_shutdown(NULL) == RETLS_BAD_ARG);
  CHECK(retls_conn_renegotiate(NULL) == RETLS_BAD_ARG);
  CHECK(retls_conn_key_update(NULL, 0) == RETLS_BAD_ARG);
  CHECK(retls_conn_pending_write(NULL) == 0);
  CHECK(retls_conn_want(NULL) == RETLS_OK);
  CHECK(retls_conn_last_error(NULL) != NULL);
  CHECK(retls_ctx_last_error(NULL) != NULL);
  CHECK(retls_conn_version(NULL) == NULL);
  CHECK(retls_conn_fileno(NULL) == -1);
}

static void test_close_with_pending_write(void) {
  enum { LEN = 65536 };
  retls_conn *c, *s;
  unsigned char *data = malloc(LEN);
  harness_buf got = {0};
  size_t n;
  harness_pattern(data, LEN, 71);
  CHECK_STATUS(NULL, harness_pair(&c, &s, NULL, NULL, 4096), RETLS_OK);
  CHECK_STATUS(c, retls_conn_write(&n, c, data, LEN), RETLS_WANT_WRITE);

  /* Refused: the bytes were never sent, the caller must decide. */
  CHECK_STATUS(c, retls_conn_close(c, 0), RETLS_WRITE_PENDING);
  CHECK(strstr(retls_conn_last_error(c), "65536 bytes") != NULL);
  CHECK(strstr(retls_conn_last_error(c), "discard") != NULL);
  /* ... and the connection stays open and whole. */
  CHECK(retls_conn_pending_write(c) == LEN);
  CHECK_STATUS(c, harness_flush_through(c, s, &got, 0, NULL, &n), RETLS_OK);
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
  CHECK(got.len == LEN && memcmp(got.data, data, LEN) == 0);
  CHECK_STATUS(c, retls_conn_close(c, 0), RETLS_OK);
  expect_all_closed(c);
  retls_conn_free(c);
  retls_conn_free(s);

  /* With RETLS_CLOSE_DISCARD the caller says "drop it". */
  CHECK_STATUS(NULL, harness_pair(&c, &s, NULL, NULL, 4096), RETLS_OK);
  CHECK_STATUS(c, retls_conn_write(&n, c, data, LEN), RETLS_WANT_WRITE);
  CHECK_STATUS(c, retls_conn_close(c, RETLS_CLOSE_DISCARD), RETLS_OK);
  CHECK(retls_conn_pending_write(c) == 0);
  expect_all_closed(c);
  retls_conn_free(c);
  retls_conn_free(s);

  /* free() always discards (it cannot report). */
  CHECK_STATUS(NULL, harness_pair(&c, &s, NULL, NULL, 4096), RETLS_OK);
  CHECK_STATUS(c, retls_conn_write(&n, c, data, LEN), RETLS_WANT_WRITE);
  retls_conn_free(c);
  retls_conn_free(s);
  harness_buf_free(&got);
  free(data);
}

/* A fatal error moves the connection to FAILED: every later I/O call says
 * RETLS_CLOSED and keeps the original reason; close works. */
static void test_failed_connection_keeps_its_reason(void) {
  retls_conn *c, *s;
  retls_ctx *cc = NULL;
  unsigned char buf[8];
  size_t n;
  CHECK_STATUS(NULL, retls_ctx_new(&cc, RETLS_CLIENT), RETLS_OK);
  CHECK_STATUS(NULL, retls_pair_new(&c, &s, cc, NULL, 0), RETLS_OK);
  retls_ctx_free(cc);
  CHECK_STATUS(c, harness_handshake(c, s), RETLS_VERIFY);
  CHECK_STATUS(c, retls_conn_read(&n, c, buf, sizeof(buf)), RETLS_CLOSED);
  CHECK(strstr(retls_conn_last_error(c), "connection failed earlier") != NULL);
  CHECK(strstr(retls_conn_last_error(c), "self-signed") != NULL);
  CHECK_STATUS(c, retls_conn_handshake(c), RETLS_CLOSED);
  /* Not repeated twice over. */
  CHECK(strstr(strstr(retls_conn_last_error(c), "failed earlier") + 1,
               "failed earlier") == NULL);
  CHECK_STATUS(c, retls_conn_close(c, 0), RETLS_OK);
  expect_all_closed(c);
  retls_conn_free(c);
  retls_conn_free(s);
}

/* Connections hold a reference on their context. */
static void test_context_outlives_caller_reference(void) {
  retls_ctx *cc = harness_ctx(RETLS_CLIENT), *sc = harness_ctx(RETLS_SERVER);
  retls_conn *c1, *s1, *c2, *s2;
  harness_buf got = {0};
  size_t n;
  CHECK(cc && sc);
  CHECK_STATUS(NULL, retls_pair_new(&c1, &s1, cc, sc, 0), RETLS_OK);
  CHECK_STATUS(NULL, retls_pair_new(&c2, &s2, cc, sc, 0), RETLS_OK);
  retls_ctx_free(cc);
  retls_ctx_free(sc);
  CHECK_STATUS(c1, harness_handshake(c1, s1), RETLS_OK);
  retls_conn_free(c1);
  retls_conn_free(s1);
  /* The second pair still has a working context. */
  CHECK_STATUS(c2, harness_handshake(c2, s2), RETLS_OK);
  CHECK_STATUS(c2, retls_conn_write(&n, c2, "still here", 10), RETLS_OK);
  CHECK_STATUS(s2, harness_drain(s2, &got), RETLS_WANT_READ);
  CHECK(got.len == 10 && memcmp(got.data, "still here", 10) == 0);
  harness_buf_free(&got);
  retls_conn_free(c2);
  retls_conn_free(s2);
}

/*
 * The error queue is per thread, not per connection: a stale entry (left
 * by another connection or by the application's own OpenSSL use) would
 * make SSL_get_error() report SSL_ERROR_SSL for a harmless WANT_READ.
 * libretls clears the queue before every I/O call.
 */
static void test_stale_error_queue_does_not_leak(void) {
  retls_conn *c, *s;
  unsigned char buf[8];
  size_t n;
  CHECK_STATUS(NULL, harness_pair(&c, &s, NULL, NULL, 4096), RETLS_OK);

  ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH);
  CHECK_STATUS(s, retls_conn_read(&n, s, buf, sizeof(buf)), RETLS_WANT_READ);
  CHECK(strcmp(retls_conn_last_error(s), "") == 0);

  ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH);
  CHECK_STATUS(c, retls_conn_write(&n, c, "ok", 2), RETLS_OK);
  ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH);
  CHECK_STATUS(c, retls_conn_flush(&n, c), RETLS_OK);
  ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH);
  CHECK_STATUS(c, retls_conn_handshake(c), RETLS_OK);
  ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH);
  CHECK_STATUS(s, retls_conn_read(&n, s, buf, sizeof(buf)), RETLS_OK);
  CHECK(n == 2 && memcmp(buf, "ok", 2) == 0);
  /* The retryable outcomes are where a stale entry would do harm. */
  {
    enum { LEN = 65536 };
    unsigned char *big = malloc(LEN);
    harness_buf got = {0};
    harness_pattern(big, LEN, 72);
    ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH);
    CHECK_STATUS(c, retls_conn_write(&n, c, big, LEN), RETLS_WANT_WRITE);
    ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH);
    CHECK_STATUS(c, retls_conn_flush(&n, c), RETLS_WANT_WRITE);
    ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH);
    CHECK_STATUS(c, retls_conn_shutdown(c), RETLS_WRITE_PENDING);
    CHECK_STATUS(c, harness_flush_through(c, s, &got, 0, NULL, &n),
                 RETLS_OK);
    CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
    CHECK(got.len == LEN && memcmp(got.data, big, LEN) == 0);
    harness_buf_free(&got);
    free(big);
  }
  ERR_clear_error();

  /* A failing connection leaves nothing behind for the next call. */
  {
    retls_ctx *vc = NULL;
    retls_conn *vcc, *vs;
    CHECK_STATUS(NULL, retls_ctx_new(&vc, RETLS_CLIENT), RETLS_OK);
    CHECK_STATUS(NULL, retls_pair_new(&vcc, &vs, vc, NULL, 0), RETLS_OK);
    retls_ctx_free(vc);
    CHECK_STATUS(vcc, harness_handshake(vcc, vs), RETLS_VERIFY);
    CHECK(ERR_peek_error() == 0);
    retls_conn_free(vcc);
    retls_conn_free(vs);
  }
  CHECK_STATUS(s, retls_conn_read(&n, s, buf, sizeof(buf)), RETLS_WANT_READ);
  retls_conn_free(c);
  retls_conn_free(s);
}

/* Information before the handshake: nothing yet, never a crash. */
static void test_info_before_handshake(void) {
  retls_conn *c, *s;
  const unsigned char *der;
  size_t der_len;
  CHECK_STATUS(NULL, retls_pair_new(&c, &s, NULL, NULL, 0), RETLS_OK);
  CHECK(retls_conn_version(c) == NULL);
  CHECK(retls_conn_cipher(c) == NULL);
  CHECK(retls_conn_alpn(c) == NULL);
  CHECK(!retls_conn_is_established(c));
  CHECK(retls_conn_fileno(c) == -1);
  CHECK(retls_conn_pending_read(c) == 0);
  CHECK_STATUS(c, retls_conn_peer_certificate(&der, &der_len, c), RETLS_OK);
  CHECK(der == NULL && der_len == 0);
  CHECK(strcmp(retls_conn_last_error(c), "") == 0);
  retls_conn_free(c);
  retls_conn_free(s);
}

int main(void) {
  RUN(test_every_call_after_close);
  RUN(test_free_null_and_close_null);
  RUN(test_close_with_pending_write);
  RUN(test_failed_connection_keeps_its_reason);
  RUN(test_context_outlives_caller_reference);
  RUN(test_stale_error_queue_does_not_leak);
  RUN(test_info_before_handshake);
  return harness_finish();
}
