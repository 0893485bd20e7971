/*
 * test_retry.c - the retry contract itself (core/src/write.c): a write that
 * stops on WANT_WRITE is resumed with the same bytes or by flush(), other
 * bytes are refused with RETLS_RETRY_MISMATCH without touching OpenSSL,
 * and the receiver gets every acknowledged byte exactly once, in order.
 */
#include "harness.h"

#define BIG 65536
#define CAP 4096

/* A pair with a small buffer, handshake done. */
static int small_pair(retls_conn **c, retls_conn **s) {
  return harness_pair(c, s, NULL, NULL, CAP);
}

/* Memory mode, where the ciphertext on the wire can be counted. */
static int small_memory(retls_conn **c, retls_conn **s) {
  return harness_memory_pair(c, s, NULL, NULL, CAP);
}

static void test_want_write_then_same_bytes_resumes(void) {
  retls_conn *c, *s;
  unsigned char *data = malloc(BIG), *again = malloc(BIG);
  harness_buf got = {0};
  retls_stats st;
  size_t n = 99;
  int status, rounds = 0;

  harness_pattern(data, BIG, 1);
  /* The retry presents the same bytes from another address, as a
   * runtime that moved the string would. */
  memcpy(again, data, BIG);
  CHECK_STATUS(NULL, small_pair(&c, &s), RETLS_OK);

  CHECK_STATUS(c, retls_conn_write(&n, c, data, BIG), RETLS_WANT_WRITE);
  CHECK(n == 0);
  CHECK(retls_conn_pending_write(c) == BIG);
  CHECK(retls_conn_want(c) == RETLS_WANT_WRITE);

  do {
    CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
    status = retls_conn_write(&n, c, again, BIG);
    rounds++;
    CHECK(status == RETLS_OK || status == RETLS_WANT_WRITE);
    CHECK(status == RETLS_OK || n == 0);
  } while (status == RETLS_WANT_WRITE && rounds < 1000);
  CHECK_STATUS(c, status, RETLS_OK);
  CHECK(n == BIG);
  CHECK(rounds > 1); /* 64 KiB through a 4 KiB pipe stops more than once */
  CHECK(retls_conn_pending_write(c) == 0);
  CHECK(retls_conn_want(c) == RETLS_OK);

  CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
  CHECK(got.len == BIG);
  CHECK(memcmp(got.data, data, BIG) == 0);

  CHECK_STATUS(c, retls_conn_stats(&st, c), RETLS_OK);
  CHECK(st.writes == 1 && st.bytes_written == BIG);
  CHECK(st.retries == (uint64_t)rounds);
  CHECK(st.want_write == (uint64_t)rounds); /* first call + rounds-1 */
  CHECK(st.mismatches == 0 && st.want_read == 0);

  harness_buf_free(&got);
  free(data);
  free(again);
  retls_conn_free(c);
  retls_conn_free(s);
}

enum mismatch_kind { SHORTER, LONGER, SAME_LENGTH };

/*
 * One mismatch case in memory mode, where the ciphertext on the wire can
 * be counted: after a write of BIG bytes stops, the wire is drained, then a
 * retry with other bytes must produce no ciphertext at all.
 */
static void mismatch_case(enum mismatch_kind kind) {
  retls_conn *c, *s;
  unsigned char head[100], tail[50], *data = malloc(BIG),
                                      *other = malloc(BIG + 1);
  size_t other_len = BIG, n = 99, before;
  harness_buf got = {0}, expect = {0};
  retls_stats st;

  harness_pattern(head, sizeof(head), 2);
  harness_pattern(tail, sizeof(tail), 3);
  harness_pattern(data, BIG, 4);
  memcpy(other, data, BIG);
  switch (kind) {
  case SHORTER:
    other_len = BIG - 1;
    break;
  case LONGER:
    other[BIG] = 'x';
    other_len = BIG + 1;
    break;
  case SAME_LENGTH:
    /* The first byte: OpenSSL already encrypted it, so passing this
     * through would silently send the old byte. */
    other[0] ^= 0xff;
    break;
  }

  CHECK_STATUS(NULL, small_memory(&c, &s), RETLS_OK);
  CHECK_STATUS(c, retls_conn_write(&n, c, head, sizeof(head)), RETLS_OK);
  CHECK(n == sizeof(head));
  harness_buf_append(&expect, head, sizeof(head));

  CHECK_STATUS(c, retls_conn_write(&n, c, data, BIG), RETLS_WANT_WRITE);
  /* Make room: everything the client emitted so far reaches the server. */
  harness_relay(c, s, 0, NULL);
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
  before = got.len;
  CHECK(retls_conn_bio_pending(c) == 0);

  CHECK_STATUS(c, retls_conn_write(&n, c, other, other_len),
               RETLS_RETRY_MISMATCH);
  CHECK(n == 0);
  CHECK(retls_conn_bio_pending(c) == 0); /* OpenSSL was not called */
  CHECK(retls_conn_pending_write(c) == BIG);
  CHECK(retls_conn_want(c) == RETLS_WANT_WRITE);
  CHECK(strstr(retls_conn_last_error(c), "65536 bytes") != NULL);
  CHECK(strstr(retls_conn_last_error(c), "flush()") != NULL);
  CHECK(strstr(retls_conn_last_error(c),
               kind == SHORTER  ? "shorter"
               : kind == LONGER ? "longer"
                                : "same length, other bytes") != NULL);
  CHECK_STATUS(c, retls_conn_stats(&st, c), RETLS_OK);
  CHECK(st.mismatches == 1);
  CHECK(st.writes == 1 && st.bytes_written == sizeof(head));
  /* A mismatch is not fatal: the connection goes on. */
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
  CHECK(got.len == before);

  CHECK_STATUS(c, harness_flush_through(c, s, &got, 1, NULL, &n), RETLS_OK);
  CHECK(n == BIG);
  harness_buf_append(&expect, data, BIG);
  CHECK(retls_conn_pending_write(c) == 0);

  /* The refused bytes were not queued anywhere: the next write is next. */
  CHECK_STATUS(c, retls_conn_write(&n, c, tail, sizeof(tail)), RETLS_OK);
  harness_buf_append(&expect, tail, sizeof(tail));
  harness_relay(c, s, 0, NULL);
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
  CHECK(got.len == expect.len);
  CHECK(memcmp(got.data, expect.data, expect.len) == 0);

  CHECK_STATUS(c, retls_conn_stats(&st, c), RETLS_OK);
  CHECK(st.mismatches == 1);
  CHECK(st.bytes_written == expect.len);

  harness_buf_free(&got);
  harness_buf_free(&expect);
  free(data);
  free(other);
  retls_conn_free(c);
  retls_conn_free(s);
}

static void test_mismatch_shorter(void) { mismatch_case(SHORTER); }
static void test_mismatch_longer(void) { mismatch_case(LONGER); }
static void test_mismatch_same_length_other_bytes(void) {
  mismatch_case(SAME_LENGTH);
}

/* Repeated mismatches keep refusing and counting; none of them breaks the
 * pending write. */
static void test_mismatch_repeated_then_same_bytes(void) {
  retls_conn *c, *s;
  unsigned char *data = malloc(BIG);
  harness_buf got = {0};
  retls_stats st;
  size_t n;
  int i, status, rounds = 0;

  harness_pattern(data, BIG, 5);
  CHECK_STATUS(NULL, small_pair(&c, &s), RETLS_OK);
  CHECK_STATUS(c, retls_conn_write(&n, c, data, BIG), RETLS_WANT_WRITE);
  for (i = 0; i < 3; i++)
    CHECK_STATUS(c, retls_conn_write(&n, c, data + 1, BIG - 1),
                 RETLS_RETRY_MISMATCH);
  do {
    CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
    status = retls_conn_write(&n, c, data, BIG);
    rounds++;
  } while (status == RETLS_WANT_WRITE && rounds < 1000);
  CHECK_STATUS(c, status, RETLS_OK);
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
  CHECK(got.len == BIG && memcmp(got.data, data, BIG) == 0);
  CHECK_STATUS(c, retls_conn_stats(&st, c), RETLS_OK);
  CHECK(st.mismatches == 3 && st.retries == (uint64_t)rounds);
  harness_buf_free(&got);
  free(data);
  retls_conn_free(c);
  retls_conn_free(s);
}

/* The caller's buffer is scribbled over and freed after WANT_WRITE; the
 * flush still sends the original bytes (and ASan proves nothing reads the
 * freed buffer). */
static void test_caller_buffer_freed_after_want(void) {
  retls_conn *c, *s;
  unsigned char *data = malloc(BIG), *expect = malloc(BIG);
  harness_buf got = {0};
  size_t n;
  int rounds;

  harness_pattern(data, BIG, 6);
  memcpy(expect, data, BIG);
  CHECK_STATUS(NULL, small_pair(&c, &s), RETLS_OK);
  CHECK_STATUS(c, retls_conn_write(&n, c, data, BIG), RETLS_WANT_WRITE);
  memset(data, 0xEE, BIG);
  free(data);
  CHECK_STATUS(c, harness_flush_through(c, s, &got, 0, &rounds, &n),
               RETLS_OK);
  CHECK(n == BIG);
  CHECK(rounds > 1);
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
  CHECK(got.len == BIG && memcmp(got.data, expect, BIG) == 0);
  harness_buf_free(&got);
  free(expect);
  retls_conn_free(c);
  retls_conn_free(s);
}

/* Same, but the buffer is reused for the next message: the classic
 * "buffer recycled by the event loop" bug. */
static void test_caller_buffer_reused_after_want(void) {
  retls_conn *c, *s;
  unsigned char *buf = malloc(BIG), *first = malloc(BIG);
  harness_buf got = {0};
  size_t n;

  harness_pattern(buf, BIG, 7);
  memcpy(first, buf, BIG);
  CHECK_STATUS(NULL, small_pair(&c, &s), RETLS_OK);
  CHECK_STATUS(c, retls_conn_write(&n, c, buf, BIG), RETLS_WANT_WRITE);
  harness_pattern(buf, BIG, 8); /* the next message, same buffer */
  /* Writing the next message before the first is done is refused ... */
  CHECK_STATUS(c, retls_conn_write(&n, c, buf, BIG), RETLS_RETRY_MISMATCH);
  /* ... flush finishes the first, then the second goes through. */
  CHECK_STATUS(c, harness_flush_through(c, s, &got, 0, NULL, &n), RETLS_OK);
  CHECK(n == BIG);
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
  CHECK(got.len == BIG && memcmp(got.data, first, BIG) == 0);
  got.len = 0;
  if (retls_conn_write(&n, c, buf, BIG) == RETLS_WANT_WRITE)
    CHECK_STATUS(c, harness_flush_through(c, s, &got, 0, NULL, &n),
                 RETLS_OK);
  CHECK(n == BIG);
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
  CHECK(got.len == BIG && memcmp(got.data, buf, BIG) == 0);
  harness_buf_free(&got);
  free(buf);
  free(first);
  retls_conn_free(c);
  retls_conn_free(s);
}

static void test_flush_with_nothing_pending(void) {
  retls_conn *c, *s;
  retls_stats st;
  size_t n = 99;
  CHECK_STATUS(NULL, small_pair(&c, &s), RETLS_OK);
  CHECK_STATUS(c, retls_conn_flush(&n, c), RETLS_OK);
  CHECK(n == 0);
  CHECK_STATUS(c, retls_conn_write(&n, c, "abc", 3), RETLS_OK);
  n = 99;
  CHECK_STATUS(c, retls_conn_flush(&n, c), RETLS_OK);
  CHECK(n == 0);
  CHECK_STATUS(c, retls_conn_flush(NULL, c), RETLS_OK); /* out optional */
  CHECK(retls_conn_pending_write(c) == 0);
  CHECK(retls_conn_want(c) == RETLS_OK);
  CHECK_STATUS(c, retls_conn_stats(&st, c), RETLS_OK);
  CHECK(st.writes == 1 && st.retries == 0 && st.bytes_written == 3);
  retls_conn_free(c);
  retls_conn_free(s);
}

static void test_zero_length_write_is_a_noop(void) {
  retls_conn *c, *s;
  retls_stats before, after;
  unsigned char *data = malloc(BIG);
  size_t n = 99;
  harness_pattern(data, BIG, 9);
  CHECK_STATUS(NULL, small_pair(&c, &s), RETLS_OK);
  CHECK_STATUS(c, retls_conn_stats(&before, c), RETLS_OK);
  CHECK_STATUS(c, retls_conn_write(&n, c, "x", 0), RETLS_OK);
  CHECK(n == 0);
  CHECK_STATUS(c, retls_conn_write(&n, c, NULL, 0), RETLS_OK);
  CHECK_STATUS(c, retls_conn_stats(&after, c), RETLS_OK);
  CHECK(memcmp(&before, &after, sizeof(before)) == 0);

  /* With a write pending it is neither a retry nor a mismatch. */
  CHECK_STATUS(c, retls_conn_write(&n, c, data, BIG), RETLS_WANT_WRITE);
  CHECK_STATUS(c, retls_conn_stats(&before, c), RETLS_OK);
  n = 99;
  CHECK_STATUS(c, retls_conn_write(&n, c, data, 0), RETLS_OK);
  CHECK(n == 0);
  CHECK_STATUS(c, retls_conn_stats(&after, c), RETLS_OK);
  CHECK(memcmp(&before, &after, sizeof(before)) == 0);
  CHECK(retls_conn_pending_write(c) == BIG);
  CHECK(retls_conn_want(c) == RETLS_WANT_WRITE);
  free(data);
  retls_conn_free(c);
  retls_conn_free(s);
}

/* A NULL buffer with a length is a caller bug, reported, never a crash. */
static void test_null_buffer_with_length(void) {
  retls_conn *c, *s;
  size_t n = 99;
  CHECK_STATUS(NULL, small_pair(&c, &s), RETLS_OK);
  CHECK_STATUS(c, retls_conn_write(&n, c, NULL, 5), RETLS_BAD_ARG);
  CHECK(n == 0);
  CHECK(strstr(retls_conn_last_error(c), "NULL buffer") != NULL);
  /* Still usable. */
  CHECK_STATUS(c, retls_conn_write(&n, c, "ok", 2), RETLS_OK);
  retls_conn_free(c);
  retls_conn_free(s);
}

int main(void) {
  RUN(test_want_write_then_same_bytes_resumes);
  RUN(test_mismatch_shorter);
  RUN(test_mismatch_longer);
  RUN(test_mismatch_same_length_other_bytes);
  RUN(test_mismatch_repeated_then_same_bytes);
  RUN(test_caller_buffer_freed_after_want);
  RUN(test_caller_buffer_reused_after_want);
  RUN(test_flush_with_nothing_pending);
  RUN(test_zero_length_write_is_a_noop);
  RUN(test_null_buffer_with_length);
  return harness_finish();
}
