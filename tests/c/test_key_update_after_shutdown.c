/*
 * test_key_update_after_shutdown.c - key_update() after our shutdown() is
 * refused (RETLS_BAD_ARG) and changes nothing: OpenSSL would schedule a
 * KeyUpdate it can never send after close_notify, and the end's reads
 * then stopped before the peer's data (found by the fuzzer:
 * fuzz/corpus/regress-tls13-key-update-after-shutdown).
 */
#include "harness.h"

static void test_key_update_after_shutdown_is_refused(void) {
  retls_conn *c = NULL, *s = NULL;
  harness_buf got = {0};
  size_t n;
  int i;
  CHECK_STATUS(NULL, harness_pair(&c, &s, NULL, NULL, 0), RETLS_OK);
  CHECK(strcmp(retls_conn_version(c), "TLSv1.3") == 0);
  CHECK_STATUS(s, retls_conn_shutdown(s), RETLS_OK);
  CHECK_STATUS(s, retls_conn_key_update(s, 0), RETLS_BAD_ARG);
  CHECK(strstr(retls_conn_last_error(s), "after shutdown") != NULL);
  CHECK_STATUS(s, retls_conn_key_update(s, 1), RETLS_BAD_ARG);
  /* The server still reads everything the client sends after the
   * server's close_notify (TLS 1.3 half-close). */
  for (i = 0; i < 10; i++) {
    CHECK_STATUS(c, retls_conn_write(&n, c, "half-closed\n", 12), RETLS_OK);
    CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
  }
  CHECK(got.len == 120 && memcmp(got.data, "half-closed\n", 12) == 0);
  harness_buf_free(&got);
  retls_conn_free(c);
  retls_conn_free(s);
}

int main(void) {
  RUN(test_key_update_after_shutdown_is_refused);
  return harness_finish();
}
