/* Smoke: a default pair handshakes and moves bytes both ways. */
#include "harness.h"

static void test_pair_moves_bytes(void) {
  retls_conn *c, *s;
  harness_buf got = {0};
  size_t n;
  CHECK_STATUS(NULL, retls_pair_new(&c, &s, NULL, NULL, 0), RETLS_OK);
  CHECK_STATUS(c, harness_handshake(c, s), RETLS_OK);
  CHECK_STATUS(c, retls_conn_write(&n, c, "hello", 5), RETLS_OK);
  CHECK(n == 5);
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
  CHECK(got.len == 5 && memcmp(got.data, "hello", 5) == 0);
  printf("%s %s\n", retls_conn_version(c), retls_conn_cipher(c));
  harness_buf_free(&got);
  retls_conn_free(c);
  retls_conn_free(s);
}

int main(void) {
  RUN(test_pair_moves_bytes);
  return harness_finish();
}
