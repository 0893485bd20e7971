/*
 * test_outbuf.c - a binding's storage for the unbounded outgoing buffer
 * (retls_conn_set_outbuf) and the drain that hands that buffer over
 * without copying (retls_conn_bio_take).  The peer must receive exactly
 * what was written whichever way the ciphertext leaves, every buffer must
 * be given back exactly once, and a buffer handed over must never be
 * written into again.
 */
#include "harness.h"

/* A counting allocator: each buffer remembers its capacity. */
typedef struct {
  size_t cap;
  unsigned char data[];
} tbuf;

static int n_alloc, n_free;

static void *t_alloc(unsigned char **out, size_t cap, void *ud) {
  tbuf *b = malloc(sizeof(*b) + cap);
  (void)ud;
  if (b == NULL)
    return NULL;
  b->cap = cap;
  n_alloc++;
  *out = b->data;
  return b;
}

static void t_free(void *handle, void *ud) {
  (void)ud;
  n_free++;
  free(handle);
}

static const retls_outbuf ops = {t_alloc, t_free, NULL};

/* Feed n bytes of ciphertext to s and append its plaintext to got. */
static int feed(retls_conn *s, const void *ct, size_t n, harness_buf *got) {
  size_t took;
  if (retls_conn_bio_write(&took, s, ct, n) != RETLS_OK || took != n)
    return -1;
  return harness_drain(s, got) == RETLS_WANT_READ ? 0 : -1;
}

static void test_set_outbuf_only_on_an_empty_unbounded_queue(void) {
  retls_conn *c, *s, *bc, *bs, *pc, *ps;
  size_t n;
  CHECK(harness_memory_pair(&c, &s, NULL, NULL, 0) == RETLS_OK);
  CHECK_STATUS(c, retls_conn_write(&n, c, "x", 1), RETLS_OK);
  CHECK_STATUS(c, retls_conn_set_outbuf(c, &ops), RETLS_BAD_ARG);
  CHECK(strstr(retls_conn_last_error(c), "drain them with bio_read") != NULL);
  CHECK(harness_relay(c, s, 0, NULL) == 1 + 22);
  CHECK_STATUS(c, retls_conn_set_outbuf(c, &ops), RETLS_OK);
  CHECK(retls_conn_set_outbuf(c, NULL) == RETLS_BAD_ARG);

  CHECK(harness_memory_pair(&bc, &bs, NULL, NULL, 65536) == RETLS_OK);
  CHECK_STATUS(bc, retls_conn_set_outbuf(bc, &ops), RETLS_BAD_ARG);
  CHECK(strstr(retls_conn_last_error(bc), "capacity 0") != NULL);
  CHECK(harness_pair(&pc, &ps, NULL, NULL, 0) == RETLS_OK);
  CHECK_STATUS(pc, retls_conn_set_outbuf(pc, &ops), RETLS_BAD_ARG);
  retls_conn_free(c);
  retls_conn_free(s);
  retls_conn_free(bc);
  retls_conn_free(bs);
  retls_conn_free(pc);
  retls_conn_free(ps);
}

/*
 * 300 KiB writes: the first buffer grows by doubling (more than a quarter
 * unused: bio_take declines, bio_read copies), the next starts at the size
 * of that drain and is handed over whole.  64-byte writes, a partial
 * bio_read, and a handed-over buffer kept while later writes go on.
 */
static void test_bio_take_hands_over_the_buffer(void) {
  enum { BIG = 300 * 1024 };
  retls_conn *c, *s;
  unsigned char *data = malloc(BIG), *ct = malloc(BIG + 4096), copy[200];
  harness_buf got = {0}, want = {0};
  tbuf *held[3];
  void *h;
  size_t n, len, i, big_ct = BIG + 22 * ((BIG + 16383) / 16384);
  int taken = 0;
  harness_pattern(data, BIG, 9);
  n_alloc = n_free = 0;
  CHECK(harness_memory_pair(&c, &s, NULL, NULL, 0) == RETLS_OK);
  CHECK_STATUS(c, retls_conn_set_outbuf(c, &ops), RETLS_OK);

  /* nothing waiting: nothing handed over */
  CHECK_STATUS(c, retls_conn_bio_take(&h, &len, c), RETLS_OK);
  CHECK(h == NULL && len == 0);

  /* first big write: grown by doubling, so the drain copies */
  CHECK_STATUS(c, retls_conn_write(&n, c, data, BIG), RETLS_OK);
  CHECK(retls_conn_bio_pending(c) == big_ct);
  CHECK_STATUS(c, retls_conn_bio_take(&h, &len, c), RETLS_OK);
  CHECK(h == NULL && len == 0);
  CHECK_STATUS(c, retls_conn_bio_read(&n, c, ct, BIG + 4096), RETLS_OK);
  CHECK(n == big_ct && retls_conn_bio_pending(c) == 0);
  CHECK(feed(s, ct, n, &got) == 0);
  harness_buf_append(&want, data, BIG);
  CHECK(n_alloc > 1 && n_free == n_alloc); /* nothing kept once empty */

  /* the next one starts at that size: handed over whole */
  harness_pattern(data, BIG, 10);
  CHECK_STATUS(c, retls_conn_write(&n, c, data, BIG), RETLS_OK);
  CHECK_STATUS(c, retls_conn_bio_take(&h, &len, c), RETLS_OK);
  CHECK(h != NULL && len == big_ct && ((tbuf *)h)->cap == big_ct);
  CHECK(retls_conn_bio_pending(c) == 0);
  held[taken++] = h;
  harness_buf_append(&want, data, BIG);

  /* small writes go on while the caller holds that buffer */
  CHECK_STATUS(c, retls_conn_write(&n, c, "hello", 5), RETLS_OK);
  CHECK_STATUS(c, retls_conn_write(&n, c, " world", 6), RETLS_OK);
  harness_buf_append(&want, "hello world", 11);
  CHECK_STATUS(c, retls_conn_bio_take(&h, &len, c), RETLS_OK);
  /* a buffer the size of the 300 KiB drain, mostly unused: copied */
  CHECK(h == NULL);
  CHECK(retls_conn_bio_pending(c) == 5 + 6 + 2 * 22);
  /* a partial read: the rest can no longer be handed over */
  CHECK_STATUS(c, retls_conn_bio_read(&n, c, copy, 10), RETLS_OK);
  CHECK(n == 10);
  CHECK_STATUS(c, retls_conn_bio_take(&h, &len, c), RETLS_OK);
  CHECK(h == NULL);
  CHECK_STATUS(c, retls_conn_bio_read(&n, c, copy + 10, sizeof(copy) - 10),
               RETLS_OK);
  CHECK(n == 5 + 6 + 2 * 22 - 10);

  /* the big buffer was not written into: the peer decrypts it now, after
   * the small records were written, and gets the 300 KiB then the rest */
  CHECK(feed(s, held[0]->data, big_ct, &got) == 0);
  CHECK(feed(s, copy, n + 10, &got) == 0);

  /* the next buffer is sized by that drain: the same two writes again
   * fill it, and it is handed over */
  CHECK_STATUS(c, retls_conn_write(&n, c, "HELLO", 5), RETLS_OK);
  CHECK_STATUS(c, retls_conn_write(&n, c, " WORLD", 6), RETLS_OK);
  harness_buf_append(&want, "HELLO WORLD", 11);
  CHECK_STATUS(c, retls_conn_bio_take(&h, &len, c), RETLS_OK);
  CHECK(h != NULL && len == 5 + 6 + 2 * 22 && ((tbuf *)h)->cap == len);
  held[taken++] = h;
  CHECK(feed(s, held[1]->data, len, &got) == 0);

  CHECK(got.len == want.len && memcmp(got.data, want.data, got.len) == 0);

  /* every buffer the queue still owned went back through free, once */
  retls_conn_free(c);
  CHECK(n_free + taken == n_alloc);
  for (i = 0; i < (size_t)taken; i++)
    free(held[i]);
  retls_conn_free(s);
  harness_buf_free(&got);
  harness_buf_free(&want);
  free(data);
  free(ct);
}

/* A queue whose storage fails to allocate fails the write; the
 * connection reports it and nothing half-written reaches the peer. */
static int fail_allocs;
static void *t_alloc_fail(unsigned char **out, size_t cap, void *ud) {
  if (fail_allocs)
    return NULL;
  return t_alloc(out, cap, ud);
}
static const retls_outbuf failing = {t_alloc_fail, t_free, NULL};

static void test_failed_alloc_fails_the_write(void) {
  retls_conn *c, *s;
  size_t n;
  int status;
  n_alloc = n_free = 0;
  CHECK(harness_memory_pair(&c, &s, NULL, NULL, 0) == RETLS_OK);
  CHECK_STATUS(c, retls_conn_set_outbuf(c, &failing), RETLS_OK);
  fail_allocs = 1;
  status = retls_conn_write(&n, c, "lost", 4);
  fail_allocs = 0;
  CHECK(status != RETLS_OK && status != RETLS_WANT_WRITE &&
        status != RETLS_WANT_READ);
  CHECK(n == 0 && retls_conn_bio_pending(c) == 0);
  retls_conn_free(c);
  retls_conn_free(s);
  CHECK(n_free == n_alloc);
}

int main(void) {
  RUN(test_set_outbuf_only_on_an_empty_unbounded_queue);
  RUN(test_bio_take_hands_over_the_buffer);
  RUN(test_failed_alloc_fails_the_write);
  return harness_finish();
}
