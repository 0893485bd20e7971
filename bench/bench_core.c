/*
 * bench_core.c - what does the retry state machine cost?
 *
 * Runs the same workload side by side in one process and prints ratios:
 *   raw    OpenSSL SSL_write_ex/SSL_read_ex over a BIO pair, the caller
 *          handling WANT_WRITE itself (repeating with the same buffer) and
 *          following SSL_get_error(3): the error queue is cleared before
 *          each call and SSL_get_error() asked after each failure
 *   retls  retls_conn_write/flush/read over a retls pair of the same size
 * for several write sizes.  Small pair capacities make nearly every write
 * stop on WANT_WRITE, which is the path retls adds work to (a copy and a
 * compare).  Usage: bench_core CERT.pem KEY.pem [MiB per run]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "retls.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "bench_core: %s\n", what);
  ERR_print_errors_fp(stderr);
  exit(1);
}

/* ---- raw OpenSSL --------------------------------------------------------- */

static void raw_pump(SSL *c, SSL *s) {
  int i;
  for (i = 0; i < 100; i++) {
    int a = SSL_do_handshake(c), b = SSL_do_handshake(s);
    if (a == 1 && b == 1)
      return;
  }
  die("raw handshake");
}

static size_t raw_read_all(SSL *s, unsigned char *buf, size_t len) {
  size_t n, got = 0;
  for (;;) {
    ERR_clear_error();
    if (SSL_read_ex(s, buf, len, &n) != 1) {
      if (SSL_get_error(s, 0) != SSL_ERROR_WANT_READ)
        die("raw read");
      return got;
    }
    got += n;
  }
}

static double run_raw(const char *cert, const char *key, size_t cap,
                      size_t wsize, size_t total, const unsigned char *data) {
  SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
  SSL *c, *s;
  BIO *cb, *sb;
  unsigned char rbuf[65536];
  size_t sent = 0, got = 0, n;
  double t0;
  if (SSL_CTX_use_certificate_file(sctx, cert, SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_use_PrivateKey_file(sctx, key, SSL_FILETYPE_PEM) != 1)
    die("raw cert");
  c = SSL_new(cctx);
  s = SSL_new(sctx);
  BIO_new_bio_pair(&cb, cap, &sb, cap);
  SSL_set_bio(c, cb, cb);
  SSL_set_bio(s, sb, sb);
  SSL_set_connect_state(c);
  SSL_set_accept_state(s);
  raw_pump(c, s);
  t0 = now();
  while (sent < total) {
    ERR_clear_error();
    if (SSL_write_ex(c, data, wsize, &n) == 1) {
      sent += n;
    } else if (SSL_get_error(c, 0) != SSL_ERROR_WANT_WRITE) {
      die("raw write");
    }
    got += raw_read_all(s, rbuf, sizeof(rbuf));
  }
  while (got < sent)
    got += raw_read_all(s, rbuf, sizeof(rbuf));
  t0 = now() - t0;
  if (got != sent)
    die("raw lost bytes");
  SSL_free(c);
  SSL_free(s);
  SSL_CTX_free(cctx);
  SSL_CTX_free(sctx);
  return t0;
}

/* ---- retls ---------------------------------------------------------------- */

/* use_flush: after a WANT, finish with retls_conn_flush() (no compare)
 * instead of repeating retls_conn_write() with the same bytes (which
 * compares them with the pending copy to catch a changed buffer). */
static double run_retls(const char *cert, const char *key, size_t cap,
                        size_t wsize, size_t total,
                        const unsigned char *data, int use_flush) {
  retls_ctx *cctx, *sctx;
  retls_conn *c, *s;
  unsigned char rbuf[65536];
  size_t sent = 0, got = 0, n;
  double t0;
  int i, st;
  retls_ctx_new(&cctx, RETLS_CLIENT);
  retls_ctx_set_verify(cctx, 0);
  retls_ctx_new(&sctx, RETLS_SERVER);
  if (retls_ctx_use_certificate(sctx, cert, key) != RETLS_OK)
    die(retls_ctx_last_error(sctx));
  if (retls_pair_new(&c, &s, cctx, sctx, cap) != RETLS_OK)
    die("retls pair");
  for (i = 0; i < 100; i++) {
    int a = retls_conn_handshake(c), b = retls_conn_handshake(s);
    if (a == RETLS_OK && b == RETLS_OK)
      break;
  }
  t0 = now();
  while (sent < total) {
    if (use_flush && retls_conn_pending_write(c) > 0)
      st = retls_conn_flush(&n, c);
    else
      st = retls_conn_write(&n, c, data, wsize);
    if (st == RETLS_OK)
      sent += n;
    else if (st != RETLS_WANT_WRITE)
      die(retls_conn_last_error(c));
    while (retls_conn_read(&n, s, rbuf, sizeof(rbuf)) == RETLS_OK)
      got += n;
  }
  while (got < sent && retls_conn_read(&n, s, rbuf, sizeof(rbuf)) == RETLS_OK)
    got += n;
  t0 = now() - t0;
  if (got != sent)
    die("retls lost bytes");
  retls_conn_free(c);
  retls_conn_free(s);
  retls_ctx_free(cctx);
  retls_ctx_free(sctx);
  return t0;
}

int main(int argc, char **argv) {
  static const size_t caps[] = {4096, 16384, 262144};
  static const size_t sizes[] = {1024, 16384, 262144};
  size_t total, i, j;
  unsigned char *data;
  if (argc < 3) {
    fprintf(stderr, "usage: bench_core CERT.pem KEY.pem [MiB]\n");
    return 2;
  }
  total = (size_t)(argc > 3 ? atoi(argv[3]) : 64) << 20;
  data = malloc(262144);
  for (i = 0; i < 262144; i++)
    data[i] = (unsigned char)(i * 131 + 7);
  printf("%-9s %-8s %9s %12s %8s %12s %8s\n", "capacity", "write",
         "raw MB/s", "retls(write)", "ratio", "retls(flush)", "ratio");
  for (i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
    for (j = 0; j < sizeof(sizes) / sizeof(sizes[0]); j++) {
      /* Interleave and keep the best of three to damp noise. */
      double raw = 1e9, ret = 1e9, fl = 1e9, t;
      int k;
      for (k = 0; k < 3; k++) {
        t = run_raw(argv[1], argv[2], caps[i], sizes[j], total, data);
        raw = t < raw ? t : raw;
        t = run_retls(argv[1], argv[2], caps[i], sizes[j], total, data, 0);
        ret = t < ret ? t : ret;
        t = run_retls(argv[1], argv[2], caps[i], sizes[j], total, data, 1);
        fl = t < fl ? t : fl;
      }
      printf("%-9zu %-8zu %9.0f %12.0f %8.3f %12.0f %8.3f\n", caps[i],
             sizes[j], total / raw / 1e6, total / ret / 1e6, raw / ret,
             total / fl / 1e6, raw / fl);
    }
  printf("ratio = retls throughput / raw OpenSSL throughput (1.0 = no "
         "cost)\n");
  free(data);
  return 0;
}
