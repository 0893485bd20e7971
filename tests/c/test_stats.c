/*
 * test_stats.c - every counter exact after a scripted sequence.
 *
 * TLS 1.2 so that a renegotiation can make a write stop on WANT_READ.  The
 * pipe holds 20000 bytes: a 100-byte record plus the first full record of
 * a 30000-byte write fit, the second record does not, so that write stops
 * exactly once on WANT_WRITE, and one flush after the reader drained
 * finishes it.
 */
#include "harness.h"

static void test_counters_after_script(void) {
  retls_ctx *cc = harness_ctx(RETLS_CLIENT);
  retls_conn *c, *s;
  unsigned char a[100], b[30000], b2[30001], cbuf[10], reply[500], buf[600];
  harness_buf got = {0};
  retls_stats st;
  size_t n, total;
  int i;

  harness_pattern(a, sizeof(a), 31);
  harness_pattern(b, sizeof(b), 32);
  harness_pattern(cbuf, sizeof(cbuf), 33);
  harness_pattern(reply, sizeof(reply), 34);
  memcpy(b2, b, sizeof(b));
  b2[sizeof(b)] = 0;
  CHECK(cc != NULL);
  CHECK_STATUS(NULL, retls_ctx_set_versions(cc, NULL, "TLSv1.2"), RETLS_OK);
  CHECK_STATUS(NULL, harness_pair(&c, &s, cc, NULL, 20000), RETLS_OK);
  retls_ctx_free(cc);

  /* Fresh connection: all zero (the handshake is not a write). */
  CHECK_STATUS(c, retls_conn_stats(&st, c), RETLS_OK);
  CHECK(st.writes == 0 && st.bytes_written == 0 && st.want_read == 0 &&
        st.want_write == 0 && st.retries == 0 && st.mismatches == 0 &&
        st.bytes_read == 0);

  CHECK_STATUS(c, retls_conn_write(&n, c, a, sizeof(a)), RETLS_OK);   /* w1 */
  CHECK_STATUS(c, retls_conn_write(&n, c, b, sizeof(b)),              /* ww1 */
               RETLS_WANT_WRITE);
  CHECK_STATUS(c, retls_conn_write(&n, c, b, sizeof(b) - 1),          /* m1 */
               RETLS_RETRY_MISMATCH);
  CHECK_STATUS(c, retls_conn_write(&n, c, b2, sizeof(b2)),            /* m2 */
               RETLS_RETRY_MISMATCH);
  b2[0] ^= 1;
  CHECK_STATUS(c, retls_conn_write(&n, c, b2, sizeof(b)),             /* m3 */
               RETLS_RETRY_MISMATCH);
  CHECK_STATUS(c, retls_conn_write(&n, c, b, sizeof(b)),        /* r1, ww2 */
               RETLS_WANT_WRITE);
  CHECK_STATUS(c, retls_conn_write(&n, c, b, 0), RETLS_OK);  /* no-op */
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
  CHECK_STATUS(c, retls_conn_flush(&n, c), RETLS_OK);          /* r2, w2 */
  CHECK(n == sizeof(b));
  CHECK_STATUS(c, retls_conn_flush(&n, c), RETLS_OK); /* nothing pending */

  /* Renegotiation: the next write stops on WANT_READ until the server
   * has answered, twice (its hello flight, then its Finished). */
  CHECK_STATUS(c, retls_conn_renegotiate(c), RETLS_OK);
  CHECK_STATUS(c, retls_conn_write(&n, c, cbuf, sizeof(cbuf)),        /* wr1 */
               RETLS_WANT_READ);
  CHECK(retls_conn_want(c) == RETLS_WANT_READ);
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
  CHECK_STATUS(c, retls_conn_flush(&n, c), RETLS_WANT_READ);    /* r3, wr2 */
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
  CHECK_STATUS(c, retls_conn_flush(&n, c), RETLS_OK);           /* r4, w3 */
  CHECK(n == sizeof(cbuf));
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);

  /* The server answers; the client reads it in pieces. */
  CHECK_STATUS(s, retls_conn_write(&n, s, reply, sizeof(reply)), RETLS_OK);
  total = 0;
  for (i = 0; i < 10 && total < sizeof(reply); i++) {
    CHECK_STATUS(c, retls_conn_read(&n, c, buf, 128), RETLS_OK);
    CHECK(n > 0 && n <= 128);
    CHECK(memcmp(buf, reply + total, n) == 0);
    total += n;
  }
  CHECK(total == sizeof(reply));
  CHECK_STATUS(c, retls_conn_read(&n, c, buf, sizeof(buf)), RETLS_WANT_READ);

  CHECK(got.len == sizeof(a) + sizeof(b) + sizeof(cbuf));
  CHECK(memcmp(got.data, a, sizeof(a)) == 0);
  CHECK(memcmp(got.data + sizeof(a), b, sizeof(b)) == 0);
  CHECK(memcmp(got.data + sizeof(a) + sizeof(b), cbuf, sizeof(cbuf)) == 0);

  CHECK_STATUS(c, retls_conn_stats(&st, c), RETLS_OK);
  CHECK(st.writes == 3);
  CHECK(st.bytes_written == sizeof(a) + sizeof(b) + sizeof(cbuf));
  CHECK(st.want_write == 2);
  CHECK(st.want_read == 2);
  CHECK(st.retries == 4);
  CHECK(st.mismatches == 3);
  CHECK(st.bytes_read == sizeof(reply));

  CHECK_STATUS(s, retls_conn_stats(&st, s), RETLS_OK);
  CHECK(st.writes == 1 && st.bytes_written == sizeof(reply));
  CHECK(st.want_read == 0 && st.want_write == 0);
  CHECK(st.retries == 0 && st.mismatches == 0);
  CHECK(st.bytes_read == sizeof(a) + sizeof(b) + sizeof(cbuf));

  /* Counters survive close, for post-mortem reporting. */
  CHECK_STATUS(c, retls_conn_close(c, 0), RETLS_OK);
  CHECK_STATUS(c, retls_conn_stats(&st, c), RETLS_OK);
  CHECK(st.writes == 3 && st.mismatches == 3);

  harness_buf_free(&got);
  retls_conn_free(c);
  retls_conn_free(s);
}

static void test_stats_bad_args(void) {
  retls_stats st;
  retls_conn *c, *s;
  CHECK(retls_conn_stats(&st, NULL) == RETLS_BAD_ARG);
  CHECK_STATUS(NULL, harness_pair(&c, &s, NULL, NULL, 0), RETLS_OK);
  CHECK(retls_conn_stats(NULL, c) == RETLS_BAD_ARG);
  retls_conn_free(c);
  retls_conn_free(s);
}

int main(void) {
  RUN(test_counters_after_script);
  RUN(test_stats_bad_args);
  return harness_finish();
}
