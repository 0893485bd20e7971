/*
 * test_pair.c - the in-process pair's own ring buffers and the copy
 * helper they use (core/src/transport.c, core/src/internal.h): every byte
 * arrives once and in order whatever the ring size and wrap-around, in
 * both directions, and retls__copy copies exactly at every distance
 * between source and destination, including the 1..63 bytes modulo 4 KiB
 * where it switches to pieces.
 */
#include "harness.h"

#include "../../core/src/internal.h"

/* retls__copy against memcpy's contract: the n bytes land, nothing
 * around them changes, for distances on both sides of the piecewise
 * range and sizes around the piece size. */
static void test_copy_at_every_distance(void) {
  static const size_t sizes[] = {1, 63, 2047, 2048, 2049, 4096 + 7,
                                 16384 + 5, 65536 + 3};
  size_t region = 3 * 65536, si;
  unsigned char *src = malloc(region), *dst = malloc(region + 8192);
  unsigned char *base;
  int d;
  CHECK(src != NULL && dst != NULL);
  harness_pattern(src, region, 7);
  /* base: dst rounded to a page, so base + k has page offset k */
  base = dst + (4096 - ((uintptr_t)dst & 4095)) % 4096;
  for (d = -70; d <= 140; d++) {
    for (si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
      size_t n = sizes[si];
      const unsigned char *from = src + 100;
      /* to - from == d (mod 4096), with a page before to for guards */
      size_t off = (size_t)((((uintptr_t)from + (uintptr_t)(long)d) -
                             (uintptr_t)base) & 4095) + 4096;
      unsigned char *to = base + off;
      memset(base, 0xA5, off + n + 16);
      retls__copy(to, from, n);
      if (memcmp(to, from, n) != 0 || to[-1] != 0xA5 || to[n] != 0xA5 ||
          ((((uintptr_t)to - (uintptr_t)from) & 4095) !=
           ((uintptr_t)(long)d & 4095))) {
        fprintf(stderr, "retls__copy: distance %d, %zu bytes\n", d, n);
        CHECK(0);
      }
    }
  }
  free(src);
  free(dst);
}

/* One read of at most one record: unlike a drain, it can leave the next
 * record's bytes in the ring, so that the writer's next bytes wrap. */
static int read_once(retls_conn *r, harness_buf *got) {
  unsigned char buf[16384];
  size_t n = 0;
  int st = retls_conn_read(&n, r, buf, sizeof(buf));
  if (st == RETLS_OK)
    harness_buf_append(got, buf, n);
  return st == RETLS_WANT_READ ? RETLS_OK : st;
}

/* Write total bytes from one end to the other: write, and on WANT_WRITE
 * let the reader read once and flush; returns what arrived. */
static int send_all(retls_conn *w, retls_conn *r, const unsigned char *data,
                    size_t total, size_t chunk, harness_buf *got) {
  size_t done = 0, n;
  int st;
  while (done < total) {
    size_t len = total - done < chunk ? total - done : chunk;
    int rounds = 0;
    st = retls_conn_write(&n, w, data + done, len);
    while (st == RETLS_WANT_WRITE || st == RETLS_WANT_READ) {
      if (++rounds > 1000000)
        return RETLS_TIMEOUT;
      if ((st = read_once(r, got)) != RETLS_OK)
        return st;
      st = retls_conn_flush(&n, w);
    }
    if (st != RETLS_OK)
      return st;
    done += n;
  }
  st = harness_drain(r, got);
  return st == RETLS_WANT_READ ? RETLS_OK : st;
}

/* Ring sizes smaller than a record, exactly one full record (16,406
 * bytes with header and tag), one byte less and more, and one that divides
 * nothing: the rings wrap at ever other offsets, and both directions carry
 * exact bytes. */
static void test_odd_capacities_both_directions(void) {
  static const size_t caps[] = {512, 4095, 16383, 16406, 16407, 20000};
  size_t total = 150000, ci;
  unsigned char *up = malloc(total), *down = malloc(total);
  CHECK(up != NULL && down != NULL);
  harness_pattern(up, total, 1);
  harness_pattern(down, total, 2);
  for (ci = 0; ci < sizeof(caps) / sizeof(caps[0]); ci++) {
    retls_conn *c, *s;
    harness_buf at_s = {0}, at_c = {0};
    CHECK_STATUS(NULL, harness_pair(&c, &s, NULL, NULL, caps[ci]), RETLS_OK);
    CHECK_STATUS(c, send_all(c, s, up, total, 65536, &at_s), RETLS_OK);
    CHECK_STATUS(s, send_all(s, c, down, total, 10007, &at_c), RETLS_OK);
    /* and once more the first way, after the rings moved on */
    CHECK_STATUS(c, send_all(c, s, up, 333, 333, &at_s), RETLS_OK);
    if (at_s.len != total + 333 || memcmp(at_s.data, up, total) != 0 ||
        memcmp(at_s.data + total, up, 333) != 0 || at_c.len != total ||
        memcmp(at_c.data, down, total) != 0) {
      fprintf(stderr, "capacity %zu: server got %zu, client got %zu\n",
              caps[ci], at_s.len, at_c.len);
      CHECK(0);
    }
    harness_buf_free(&at_s);
    harness_buf_free(&at_c);
    retls_conn_free(c);
    retls_conn_free(s);
  }
  free(up);
  free(down);
}

int main(void) {
  RUN(test_copy_at_every_distance);
  RUN(test_odd_capacities_both_directions);
  return harness_finish();
}
