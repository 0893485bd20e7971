/*
 * test_duplex.c - both ends write more than the pipe holds at the same
 * time.  Neither write can finish until the other end reads, so each end
 * must be able to read while its own write is pending; otherwise both
 * deadlock.
 */
#include "harness.h"

#define CAP 4096
#define LEN (256 * 1024)

static void both_directions_full(const char *max_version) {
  retls_ctx *cc = harness_ctx(RETLS_CLIENT);
  retls_conn *c, *s;
  unsigned char *to_s = malloc(LEN), *to_c = malloc(LEN);
  harness_buf got_c = {0}, got_s = {0};
  retls_stats st;
  size_t n;
  int rounds, rc, rs;

  CHECK(cc != NULL);
  CHECK_STATUS(NULL, retls_ctx_set_versions(cc, NULL, max_version), RETLS_OK);
  harness_pattern(to_s, LEN, 21);
  harness_pattern(to_c, LEN, 22);
  CHECK_STATUS(NULL, harness_pair(&c, &s, cc, NULL, CAP), RETLS_OK);
  retls_ctx_free(cc);

  CHECK_STATUS(c, retls_conn_write(&n, c, to_s, LEN), RETLS_WANT_WRITE);
  CHECK_STATUS(s, retls_conn_write(&n, s, to_c, LEN), RETLS_WANT_WRITE);

  /* Flushing alone cannot make progress: both pipes are full. */
  CHECK_STATUS(c, retls_conn_flush(&n, c), RETLS_WANT_WRITE);
  CHECK_STATUS(s, retls_conn_flush(&n, s), RETLS_WANT_WRITE);

  /* Each round: read what arrived (while our own write is pending), then
   * flush.  Bounded, so a deadlock fails instead of hanging. */
  for (rounds = 0; rounds < 10000; rounds++) {
    rc = harness_drain(c, &got_c);
    rs = harness_drain(s, &got_s);
    CHECK_STATUS(c, rc, RETLS_WANT_READ);
    CHECK_STATUS(s, rs, RETLS_WANT_READ);
    if (retls_conn_pending_write(c)) {
      rc = retls_conn_flush(&n, c);
      CHECK(rc == RETLS_OK || rc == RETLS_WANT_WRITE);
      CHECK(rc != RETLS_OK || n == LEN);
    }
    if (retls_conn_pending_write(s)) {
      rs = retls_conn_flush(&n, s);
      CHECK(rs == RETLS_OK || rs == RETLS_WANT_WRITE);
      CHECK(rs != RETLS_OK || n == LEN);
    }
    if (!retls_conn_pending_write(c) && !retls_conn_pending_write(s) &&
        got_c.len == LEN && got_s.len == LEN)
      break;
  }
  CHECK(rounds < 10000);
  CHECK(got_s.len == LEN && memcmp(got_s.data, to_s, LEN) == 0);
  CHECK(got_c.len == LEN && memcmp(got_c.data, to_c, LEN) == 0);
  CHECK_STATUS(c, retls_conn_stats(&st, c), RETLS_OK);
  CHECK(st.bytes_written == LEN && st.bytes_read == LEN && st.writes == 1);
  CHECK_STATUS(s, retls_conn_stats(&st, s), RETLS_OK);
  CHECK(st.bytes_written == LEN && st.bytes_read == LEN && st.writes == 1);

  harness_buf_free(&got_c);
  harness_buf_free(&got_s);
  free(to_s);
  free(to_c);
  retls_conn_free(c);
  retls_conn_free(s);
}

static void test_both_directions_full_tls13(void) {
  both_directions_full("TLSv1.3");
}

static void test_both_directions_full_tls12(void) {
  both_directions_full("TLSv1.2");
}

int main(void) {
  RUN(test_both_directions_full_tls13);
  RUN(test_both_directions_full_tls12);
  return harness_finish();
}
