/*
 * test_write_modes.c - partial-write mode, one very large write, and the
 * size_t path above INT_MAX.
 */
#include "harness.h"

#include <limits.h>
#include <sys/mman.h>

#define RECORD 16384 /* largest TLS record payload */

static retls_ctx *partial_client(void) {
  retls_ctx *cc = harness_ctx(RETLS_CLIENT);
  if (cc != NULL && retls_ctx_set_partial_write(cc, 1) != RETLS_OK) {
    retls_ctx_free(cc);
    cc = NULL;
  }
  return cc;
}

/*
 * With SSL_MODE_ENABLE_PARTIAL_WRITE a write returns as soon as one record
 * is out, reporting exactly the bytes taken, even when the pipe could take
 * more; the caller continues from there.
 */
static void test_partial_write_takes_one_record_per_call(void) {
  enum { LEN = 4 * RECORD + 100 };
  retls_ctx *cc = partial_client();
  retls_conn *c, *s;
  unsigned char *data = malloc(LEN);
  harness_buf got = {0};
  retls_stats st;
  size_t n = 0, off = 0;
  int calls = 0;

  harness_pattern(data, LEN, 10);
  CHECK(cc != NULL);
  CHECK_STATUS(NULL, harness_pair(&c, &s, cc, NULL, 1 << 20), RETLS_OK);
  retls_ctx_free(cc);
  while (off < LEN && calls < 10) {
    CHECK_STATUS(c, retls_conn_write(&n, c, data + off, LEN - off), RETLS_OK);
    CHECK(n == (LEN - off < RECORD ? LEN - off : RECORD));
    off += n;
    calls++;
  }
  CHECK(calls == 5);
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
  CHECK(got.len == LEN && memcmp(got.data, data, LEN) == 0);
  CHECK_STATUS(c, retls_conn_stats(&st, c), RETLS_OK);
  CHECK(st.writes == 5 && st.bytes_written == LEN);
  harness_buf_free(&got);
  free(data);
  retls_conn_free(c);
  retls_conn_free(s);
}

/*
 * Partial writes meet WANT_WRITE: a 20000-byte pipe holds one full record
 * (16384 + 22 bytes of TLS 1.3 overhead) but not two.  Whatever each
 * write or flush reports as taken, the sum is the whole message and the
 * receiver has each byte once.
 */
static void test_partial_write_with_want_write(void) {
  enum { LEN = 65536 };
  retls_ctx *cc = partial_client();
  retls_conn *c, *s;
  unsigned char *data = malloc(LEN);
  harness_buf got = {0};
  retls_stats st;
  size_t n = 0, off = 0;
  int status, i;

  harness_pattern(data, LEN, 11);
  CHECK(cc != NULL);
  CHECK_STATUS(NULL, harness_pair(&c, &s, cc, NULL, 20000), RETLS_OK);
  retls_ctx_free(cc);

  CHECK_STATUS(c, retls_conn_write(&n, c, data, LEN), RETLS_OK);
  CHECK(n == RECORD);
  off = n;
  /* The next record does not fit: the rest is pending, nothing taken. */
  CHECK_STATUS(c, retls_conn_write(&n, c, data + off, LEN - off),
               RETLS_WANT_WRITE);
  CHECK(n == 0);
  CHECK(retls_conn_pending_write(c) == LEN - off);

  /* The usual loop: flush what is pending, else write the rest. */
  for (i = 0; off < LEN && i < 1000; i++) {
    CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
    status = retls_conn_pending_write(c)
                 ? retls_conn_flush(&n, c)
                 : retls_conn_write(&n, c, data + off, LEN - off);
    CHECK(status == RETLS_OK || status == RETLS_WANT_WRITE);
    if (status == RETLS_OK) {
      CHECK(n > 0 && n <= LEN - off && n % RECORD == 0);
      off += n;
    } else {
      CHECK(n == 0);
    }
  }
  CHECK(off == LEN);
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
  CHECK(got.len == LEN && memcmp(got.data, data, LEN) == 0);
  CHECK_STATUS(c, retls_conn_stats(&st, c), RETLS_OK);
  CHECK(st.bytes_written == LEN);
  harness_buf_free(&got);
  free(data);
  retls_conn_free(c);
  retls_conn_free(s);
}

/* Without partial writes, 64 MiB go in one call: one WANT_WRITE, flushes,
 * and the receiver gets exactly those bytes.  Shows the pending copy and
 * the retry loop at scale. */
static void test_64mib_in_one_write(void) {
  const size_t len = (size_t)64 << 20;
  retls_conn *c, *s;
  unsigned char *data = malloc(len);
  harness_buf got = {0};
  retls_stats st;
  size_t n;
  int rounds;

  CHECK(data != NULL);
  harness_pattern(data, len, 12);
  CHECK_STATUS(NULL, harness_pair(&c, &s, NULL, NULL, 256 * 1024), RETLS_OK);
  CHECK_STATUS(c, retls_conn_write(&n, c, data, len), RETLS_WANT_WRITE);
  CHECK(retls_conn_pending_write(c) == len);
  CHECK_STATUS(c, harness_flush_through(c, s, &got, 0, &rounds, &n),
               RETLS_OK);
  CHECK(n == len);
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
  CHECK(got.len == len && memcmp(got.data, data, len) == 0);
  CHECK_STATUS(c, retls_conn_stats(&st, c), RETLS_OK);
  CHECK(st.writes == 1 && st.bytes_written == len);
  CHECK(st.retries == (uint64_t)rounds && st.want_write == (uint64_t)rounds);
  harness_buf_free(&got);
  free(data);
  retls_conn_free(c);
  retls_conn_free(s);
}

/*
 * A write longer than INT_MAX must reach SSL_write_ex whole: SSL_write()
 * takes an int and would fail (INT_MAX + 1 turns negative) or send a
 * truncated length (2^32 + 100 turns into 100).  In partial-write mode
 * OpenSSL takes just the first record, so this needs no gigabytes of RAM:
 * the buffer is a reserved-but-untouched mapping of zero pages.
 */
static void big_len_case(size_t len) {
  retls_ctx *cc = partial_client();
  retls_conn *c, *s;
  harness_buf got = {0};
  unsigned char zero[RECORD];
  size_t n = 0;
  void *map;

  CHECK(cc != NULL);
  map = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
             -1, 0);
  CHECK(map != MAP_FAILED);
  CHECK_STATUS(NULL, harness_pair(&c, &s, cc, NULL, 20000), RETLS_OK);
  retls_ctx_free(cc);
  CHECK_STATUS(c, retls_conn_write(&n, c, map, len), RETLS_OK);
  CHECK(n == RECORD);
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
  memset(zero, 0, sizeof(zero));
  CHECK(got.len == RECORD && memcmp(got.data, zero, RECORD) == 0);
  harness_buf_free(&got);
  munmap(map, len);
  retls_conn_free(c);
  retls_conn_free(s);
}

static void test_write_above_int_max(void) {
  big_len_case((size_t)INT_MAX + 1);
}

static void test_write_above_4gib(void) {
  big_len_case(((size_t)1 << 32) + 100);
}

/*
 * Memory mode is unbounded by default (capacity 0), as ssl.MemoryBIO: a
 * 300 KiB write succeeds at once and leaves all of its ciphertext (one
 * 22-byte overhead per 16 KiB record) waiting for bio_read, which the
 * peer decrypts to the same bytes.  A capacity keeps the backpressure.
 */
static void test_memory_mode_is_unbounded_by_default(void) {
  enum { SIZE = 300 * 1024 };
  retls_conn *c, *s, *bc, *bs;
  unsigned char *data = malloc(SIZE);
  harness_buf got = {0};
  size_t n, i, ct;
  for (i = 0; i < SIZE; i++)
    data[i] = (unsigned char)(i * 7 + 3);
  CHECK(harness_memory_pair(&c, &s, NULL, NULL, 0) == RETLS_OK);
  CHECK_STATUS(c, retls_conn_write(&n, c, data, SIZE), RETLS_OK);
  CHECK(n == SIZE && retls_conn_pending_write(c) == 0);
  ct = retls_conn_bio_pending(c);
  CHECK(ct == SIZE + 22 * ((SIZE + RECORD - 1) / RECORD));
  CHECK(harness_relay(c, s, 0, NULL) == ct);
  CHECK(retls_conn_bio_pending(c) == 0);
  CHECK(harness_drain(s, &got) == RETLS_WANT_READ);
  CHECK(got.len == SIZE && memcmp(got.data, data, SIZE) == 0);
  /* the queue works again after it was drained and given back */
  CHECK_STATUS(c, retls_conn_write(&n, c, "again", 5), RETLS_OK);
  CHECK(retls_conn_bio_pending(c) == 5 + 22);

  CHECK(harness_memory_pair(&bc, &bs, NULL, NULL, 65536) == RETLS_OK);
  CHECK_STATUS(bc, retls_conn_write(&n, bc, data, SIZE), RETLS_WANT_WRITE);
  CHECK(retls_conn_pending_write(bc) == SIZE);
  CHECK(retls_conn_bio_pending(bc) <= 65536);
  retls_conn_free(c);
  retls_conn_free(s);
  retls_conn_close(bc, RETLS_CLOSE_DISCARD);
  retls_conn_free(bc);
  retls_conn_free(bs);
  harness_buf_free(&got);
  free(data);
}

int main(void) {
  RUN(test_partial_write_takes_one_record_per_call);
  RUN(test_partial_write_with_want_write);
  RUN(test_64mib_in_one_write);
  RUN(test_write_above_int_max);
  RUN(test_write_above_4gib);
  RUN(test_memory_mode_is_unbounded_by_default);
  return harness_finish();
}
