/*
 * bench_c.c - the C rows of ./run.sh bench (bench/run_bench.py drives it).
 * Each command prints ONE JSON line on stdout.
 *
 *   bench_c mem   raw|retls SIZE SECONDS CERT KEY
 *       An in-process client and server over memory BIOs, untimed
 *       handshake, then for about SECONDS: write SIZE bytes on the client,
 *       drain all of its outgoing ciphertext and discard it.
 *       -> {"writes":N,"seconds":S,"ct_one_write":BYTES}
 *       raw:   SSL_write_ex + BIO_read over BIO_s_mem (what CPython's
 *              SSLObject + MemoryBIO does underneath): the practical limit
 *       retls: retls_conn_write + retls_conn_bio_read (memory mode)
 *   bench_c sock  raw|retls SIZE TOTAL HOST PORT
 *       Blocking client to the sink (bench/sink.c): TOTAL bytes in SIZE
 *       writes, close_notify, wait for the sink's close.
 *       -> {"writes":N,"seconds":S}
 *   bench_c retry raw|retls|rawcopy SECONDS CERT KEY
 *       A pair with 16 KiB buffers; every 64 KiB write stops on WANT_WRITE
 *       several times and is finished after the peer read what fits.
 *       raw:   the hand-written loop (repeat SSL_write_ex with the same
 *              buffer, SSL_get_error after each failure)
 *       retls: retls_conn_write, then retls_conn_flush after each drain
 *       rawcopy: a diagnostic: raw, repeating from a copy (run_retry)
 *       -> {"writes":N,"seconds":S,"wants":W}
 *   bench_c cycles N CERT KEY
 *       RSS over N write/retry cycles on a retls pair (1 KiB buffers, 2 KiB
 *       writes: each one stops on WANT_WRITE, is drained and flushed).
 *       -> {"cycles":N,"rss_kib":[at 0, 10%, 50%, 100%]}
 *   bench_c footprint N CERT KEY
 *       RSS growth per established retls memory-mode connection over N
 *       handshaken client+server pairs.  -> {"conns":2N,"kib_per_conn":K}
 */
#define _GNU_SOURCE
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "retls.h"

#define SUITE "TLS_AES_128_GCM_SHA256"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* CPU time of this process: the memory and retry workloads are pure CPU
 * in one thread, and counting CPU time instead of wall time keeps other
 * processes that preempt this one (a loaded machine) out of the numbers. */
static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "bench_c: %s\n", what);
  ERR_print_errors_fp(stderr);
  exit(1);
}

static long rss_kib(void) {
  long pages = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f == NULL || fscanf(f, "%ld %ld", &pages, &resident) != 2)
    die("cannot read /proc/self/statm");
  fclose(f);
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static unsigned char *payload(size_t n) {
  unsigned char *p = malloc(n ? n : 1);
  size_t i;
  for (i = 0; i < n; i++)
    p[i] = (unsigned char)(i * 131 + 7);
  return p;
}

static void check_suite(const char *name) {
  if (name == NULL || strcmp(name, SUITE) != 0) {
    fprintf(stderr, "bench_c: negotiated %s, not %s\n",
            name ? name : "(none)", SUITE);
    exit(1);
  }
}

/* ---- raw OpenSSL over memory BIOs ---------------------------------------- */

static SSL_CTX *raw_ctx(int server, const char *cert, const char *key) {
  SSL_CTX *c = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (c == NULL || !SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION) ||
      SSL_CTX_set_ciphersuites(c, SUITE) != 1)
    die("raw ctx");
  if (server && (SSL_CTX_use_certificate_chain_file(c, cert) != 1 ||
                 SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1))
    die("raw cert");
  return c;
}

static void move_bytes(BIO *from, BIO *to) {
  char buf[16384];
  int n;
  while ((n = BIO_read(from, buf, sizeof(buf))) > 0)
    BIO_write(to, buf, n);
}

static void run_mem_raw(size_t size, double seconds, const char *cert,
                        const char *key) {
  SSL_CTX *cctx = raw_ctx(0, cert, key), *sctx = raw_ctx(1, cert, key);
  SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
  BIO *c_in = BIO_new(BIO_s_mem()), *c_out = BIO_new(BIO_s_mem());
  BIO *s_in = BIO_new(BIO_s_mem()), *s_out = BIO_new(BIO_s_mem());
  unsigned char *data = payload(size), sinkbuf[65536];
  unsigned long long writes = 0;
  size_t n, ct = 0;
  double t0, t, c0, cpu;
  int i, r;
  BIO_set_mem_eof_return(c_in, -1);
  BIO_set_mem_eof_return(s_in, -1);
  SSL_set_bio(c, c_in, c_out);
  SSL_set_bio(s, s_in, s_out);
  SSL_set_connect_state(c);
  SSL_set_accept_state(s);
  for (i = 0; i < 100; i++) {
    int a = SSL_do_handshake(c), b = SSL_do_handshake(s);
    move_bytes(c_out, s_in);
    move_bytes(s_out, c_in);
    if (a == 1 && b == 1)
      break;
  }
  check_suite(SSL_get_cipher_name(c));
  t0 = now();
  c0 = cpu_now();
  do {
    for (i = 0; i < 64; i++) {
      if (SSL_write_ex(c, data, size, &n) != 1 || n != size)
        die("raw write");
      while ((r = BIO_read(c_out, sinkbuf, sizeof(sinkbuf))) > 0)
        ;
    }
    writes += 64;
    cpu = cpu_now() - c0;
  } while (cpu < seconds);
  t = now() - t0;
  if (SSL_write_ex(c, data, size, &n) != 1)
    die("raw write");
  while ((r = BIO_read(c_out, sinkbuf, sizeof(sinkbuf))) > 0)
    ct += (size_t)r;
  printf("{\"writes\":%llu,\"seconds\":%.6f,\"cpu_seconds\":%.6f,"
         "\"ct_one_write\":%zu}\n",
         writes, t, cpu, ct);
  SSL_free(c);
  SSL_free(s);
  SSL_CTX_free(cctx);
  SSL_CTX_free(sctx);
  free(data);
}

/* ---- retls memory mode --------------------------------------------------- */

static retls_ctx *retls_ctx_for(retls_role role, const char *cert,
                                const char *key) {
  retls_ctx *c;
  if (retls_ctx_new(&c, role) != RETLS_OK)
    die("retls ctx");
  if (retls_ctx_set_versions(c, "TLSv1.3", NULL) != RETLS_OK ||
      retls_ctx_set_ciphersuites(c, SUITE) != RETLS_OK)
    die(retls_ctx_last_error(c));
  if (role == RETLS_CLIENT)
    retls_ctx_set_verify(c, 0);
  else if (retls_ctx_use_certificate(c, cert, key) != RETLS_OK)
    die(retls_ctx_last_error(c));
  return c;
}

static void relay(retls_conn *from, retls_conn *to) {
  unsigned char buf[16384];
  size_t n;
  while (retls_conn_bio_read(&n, from, buf, sizeof(buf)) == RETLS_OK && n > 0)
    if (retls_conn_bio_write(NULL, to, buf, n) != RETLS_OK)
      die("relay");
}

/* A handshaken client+server pair of memory-mode connections. */
static void retls_mem_pair(retls_conn **c, retls_conn **s, retls_ctx *cctx,
                           retls_ctx *sctx) {
  int i;
  if (retls_conn_new_memory(c, cctx, NULL, 0) != RETLS_OK ||
      retls_conn_new_memory(s, sctx, NULL, 0) != RETLS_OK)
    die("retls memory connection");
  for (i = 0; i < 100; i++) {
    int a = retls_conn_handshake(*c), b = retls_conn_handshake(*s);
    relay(*c, *s);
    relay(*s, *c);
    if (a == RETLS_OK && b == RETLS_OK)
      return;
  }
  die("retls handshake");
}

static void run_mem_retls(size_t size, double seconds, const char *cert,
                          const char *key) {
  retls_ctx *cctx = retls_ctx_for(RETLS_CLIENT, cert, key);
  retls_ctx *sctx = retls_ctx_for(RETLS_SERVER, cert, key);
  retls_conn *c, *s;
  unsigned char *data = payload(size), sinkbuf[65536];
  unsigned long long writes = 0;
  size_t n, ct = 0;
  double t0, t, c0, cpu;
  int i;
  retls_mem_pair(&c, &s, cctx, sctx);
  check_suite(retls_conn_cipher(c));
  t0 = now();
  c0 = cpu_now();
  do {
    for (i = 0; i < 64; i++) {
      if (retls_conn_write(&n, c, data, size) != RETLS_OK || n != size)
        die(retls_conn_last_error(c));
      while (retls_conn_bio_read(&n, c, sinkbuf, sizeof(sinkbuf)) ==
                 RETLS_OK &&
             n > 0)
        ;
    }
    writes += 64;
    cpu = cpu_now() - c0;
  } while (cpu < seconds);
  t = now() - t0;
  if (retls_conn_write(&n, c, data, size) != RETLS_OK)
    die(retls_conn_last_error(c));
  while (retls_conn_bio_read(&n, c, sinkbuf, sizeof(sinkbuf)) == RETLS_OK &&
         n > 0)
    ct += n;
  printf("{\"writes\":%llu,\"seconds\":%.6f,\"cpu_seconds\":%.6f,"
         "\"ct_one_write\":%zu}\n",
         writes, t, cpu, ct);
  retls_conn_free(c);
  retls_conn_free(s);
  retls_ctx_free(cctx);
  retls_ctx_free(sctx);
  free(data);
}

/* ---- sockets ------------------------------------------------------------- */

static int tcp_connect(const char *host, const char *port) {
  struct addrinfo hints, *res;
  int fd;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(host, port, &hints, &res) != 0)
    die("resolve");
  fd = socket(res->ai_family, res->ai_socktype, 0);
  if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0)
    die("connect");
  freeaddrinfo(res);
  return fd; /* as the OS makes it (Nagle on), like every other row */
}

/* After close_notify, wait until the sink closed: then every byte was read. */
static void wait_eof(int fd) {
  char buf[4096];
  while (recv(fd, buf, sizeof(buf), 0) > 0)
    ;
}

static void run_sock(int use_retls, size_t size, unsigned long long total,
                     const char *host, const char *port) {
  unsigned char *data = payload(size);
  unsigned long long writes = 0, sent = 0;
  int fd = tcp_connect(host, port);
  size_t n;
  double t0, t, c0 = 0;
  if (!use_retls) {
    SSL_CTX *cctx = raw_ctx(0, NULL, NULL);
    SSL *c = SSL_new(cctx);
    SSL_set_fd(c, fd);
    if (SSL_connect(c) != 1)
      die("raw connect");
    check_suite(SSL_get_cipher_name(c));
    t0 = now();
    c0 = cpu_now();
    while (sent < total) {
      if (SSL_write_ex(c, data, size, &n) != 1)
        die("raw socket write");
      sent += n;
      writes++;
    }
    SSL_shutdown(c);
    wait_eof(fd);
    t = now() - t0;
    SSL_free(c);
    SSL_CTX_free(cctx);
  } else {
    retls_ctx *cctx = retls_ctx_for(RETLS_CLIENT, NULL, NULL);
    retls_conn *c;
    if (retls_conn_new_fd(&c, cctx, fd, 0, NULL) != RETLS_OK ||
        retls_conn_handshake(c) != RETLS_OK)
      die("retls connect");
    check_suite(retls_conn_cipher(c));
    t0 = now();
    c0 = cpu_now();
    while (sent < total) {
      if (retls_conn_write(&n, c, data, size) != RETLS_OK)
        die(retls_conn_last_error(c));
      sent += n;
      writes++;
    }
    retls_conn_shutdown(c);
    wait_eof(fd);
    t = now() - t0;
    retls_conn_free(c);
    retls_ctx_free(cctx);
  }
  c0 = cpu_now() - c0;
  close(fd);
  printf("{\"writes\":%llu,\"seconds\":%.6f,\"cpu_seconds\":%.6f}\n", writes,
         t, c0);
  free(data);
}

static void pair_handshake(retls_conn *c, retls_conn *s) {
  int i;
  for (i = 0; i < 100; i++) {
    int a = retls_conn_handshake(c), b = retls_conn_handshake(s);
    if (a == RETLS_OK && b == RETLS_OK)
      return;
  }
  die("retls pair handshake");
}

/* ---- the retry workload -------------------------------------------------- */

#define RETRY_CAP 16384
#define RETRY_SIZE 65536

static size_t raw_drain(SSL *s, unsigned char *buf, size_t len) {
  size_t n, got = 0;
  while (SSL_read_ex(s, buf, len, &n) == 1)
    got += n;
  return got;
}

/* rawcopy (a diagnostic, not a row of the table): the raw loop, except
 * that at a write's first WANT it copies the 64 KiB aside, as retls must,
 * and repeats from the copy (placed at the data's offset within a 4 KiB
 * page, as retls places its own).  retls vs rawcopy is retls' overhead
 * without the copy; rawcopy vs raw is what the copy itself costs. */
static void run_retry(int use_retls, int rawcopy, double seconds,
                      const char *cert, const char *key) {
  unsigned char *data = payload(RETRY_SIZE), rbuf[65536];
  unsigned long long writes = 0, wants = 0, got = 0;
  size_t n;
  double t0, t = 0, c0;
  int i;
  if (!use_retls) {
    SSL_CTX *cctx = raw_ctx(0, cert, key), *sctx = raw_ctx(1, cert, key);
    SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
    BIO *cb, *sb;
    BIO_new_bio_pair(&cb, RETRY_CAP, &sb, RETRY_CAP);
    SSL_set_bio(c, cb, cb);
    SSL_set_bio(s, sb, sb);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    for (i = 0; i < 100; i++) {
      int a = SSL_do_handshake(c), b = SSL_do_handshake(s);
      if (a == 1 && b == 1)
        break;
    }
    check_suite(SSL_get_cipher_name(c));
    ERR_clear_error();
    t0 = now();
    c0 = cpu_now();
    if (rawcopy) {
      unsigned char *mem = malloc(RETRY_SIZE + 4095), *copy;
      SSL_set_mode(c, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
      copy = mem + (((uintptr_t)data - (uintptr_t)mem) & 4095);
      do {
        for (i = 0; i < 16; i++) {
          const unsigned char *from = data;
          for (;;) {
            int ret;
            ERR_clear_error();
            ret = SSL_write_ex(c, from, RETRY_SIZE, &n);
            if (ret == 1)
              break;
            if (SSL_get_error(c, ret) != SSL_ERROR_WANT_WRITE)
              die("rawcopy retry write");
            if (from == data) {
              memcpy(copy, data, RETRY_SIZE);
              from = copy;
            }
            wants++;
            got += raw_drain(s, rbuf, sizeof(rbuf));
          }
          got += raw_drain(s, rbuf, sizeof(rbuf));
        }
        writes += 16;
        t = cpu_now() - c0;
      } while (t < seconds);
      free(mem);
    } else do {
      for (i = 0; i < 16; i++) {
        for (;;) {
          int ret;
          ERR_clear_error();
          ret = SSL_write_ex(c, data, RETRY_SIZE, &n);
          if (ret == 1)
            break;
          if (SSL_get_error(c, ret) != SSL_ERROR_WANT_WRITE)
            die("raw retry write");
          wants++;
          got += raw_drain(s, rbuf, sizeof(rbuf));
        }
        got += raw_drain(s, rbuf, sizeof(rbuf));
      }
      writes += 16;
      t = cpu_now() - c0;
    } while (t < seconds);
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
  } else {
    retls_ctx *cctx = retls_ctx_for(RETLS_CLIENT, cert, key);
    retls_ctx *sctx = retls_ctx_for(RETLS_SERVER, cert, key);
    retls_conn *c, *s;
    if (retls_pair_new(&c, &s, cctx, sctx, RETRY_CAP) != RETLS_OK)
      die("retls pair");
    pair_handshake(c, s);
    check_suite(retls_conn_cipher(c));
    t0 = now();
    c0 = cpu_now();
    do {
      for (i = 0; i < 16; i++) {
        int st = retls_conn_write(&n, c, data, RETRY_SIZE);
        while (st == RETLS_WANT_WRITE) {
          wants++;
          while (retls_conn_read(&n, s, rbuf, sizeof(rbuf)) == RETLS_OK)
            got += n;
          st = retls_conn_flush(&n, c);
        }
        if (st != RETLS_OK)
          die(retls_conn_last_error(c));
        while (retls_conn_read(&n, s, rbuf, sizeof(rbuf)) == RETLS_OK)
          got += n;
      }
      writes += 16;
      t = cpu_now() - c0;
    } while (t < seconds);
    retls_conn_free(c);
    retls_conn_free(s);
    retls_ctx_free(cctx);
    retls_ctx_free(sctx);
  }
  if (got != writes * RETRY_SIZE)
    die("the retry workload lost bytes");
  printf("{\"writes\":%llu,\"seconds\":%.6f,\"cpu_seconds\":%.6f,"
         "\"wants\":%llu}\n",
         writes, now() - t0, t, wants);
  free(data);
}

/* ---- RSS over write/retry cycles ---------------------------------------- */

static void run_cycles(unsigned long long cycles, const char *cert,
                       const char *key) {
  retls_ctx *cctx = retls_ctx_for(RETLS_CLIENT, cert, key);
  retls_ctx *sctx = retls_ctx_for(RETLS_SERVER, cert, key);
  retls_conn *c, *s;
  unsigned char *data = payload(2048), rbuf[4096];
  unsigned long long k, wants = 0;
  long marks[4];
  size_t n;
  int i, m = 0;
  if (retls_pair_new(&c, &s, cctx, sctx, 1024) != RETLS_OK)
    die("retls pair");
  pair_handshake(c, s);
  marks[m++] = rss_kib();
  for (k = 1; k <= cycles; k++) {
    int st = retls_conn_write(&n, c, data, 2048);
    while (st == RETLS_WANT_WRITE) {
      wants++;
      while (retls_conn_read(&n, s, rbuf, sizeof(rbuf)) == RETLS_OK)
        ;
      st = retls_conn_flush(&n, c);
    }
    if (st != RETLS_OK)
      die(retls_conn_last_error(c));
    while (retls_conn_read(&n, s, rbuf, sizeof(rbuf)) == RETLS_OK)
      ;
    if (k == cycles / 10 || k == cycles / 2 || k == cycles)
      marks[m++] = rss_kib();
  }
  if (wants < cycles)
    die("cycles: writes did not stop on WANT_WRITE");
  printf("{\"cycles\":%llu,\"wants\":%llu,\"rss_kib\":[%ld,%ld,%ld,%ld]}\n",
         cycles, wants, marks[0], marks[1], marks[2], marks[3]);
  retls_conn_free(c);
  retls_conn_free(s);
  retls_ctx_free(cctx);
  retls_ctx_free(sctx);
  free(data);
}

static void run_footprint(int pairs, const char *cert, const char *key) {
  retls_ctx *cctx = retls_ctx_for(RETLS_CLIENT, cert, key);
  retls_ctx *sctx = retls_ctx_for(RETLS_SERVER, cert, key);
  retls_conn **conns = calloc(2 * (size_t)pairs, sizeof(*conns));
  retls_conn *warm_c, *warm_s;
  long before, after;
  int i;
  /* One pair first, so one-time allocations are not counted. */
  retls_mem_pair(&warm_c, &warm_s, cctx, sctx);
  before = rss_kib();
  for (i = 0; i < pairs; i++)
    retls_mem_pair(&conns[2 * i], &conns[2 * i + 1], cctx, sctx);
  after = rss_kib();
  printf("{\"conns\":%d,\"kib_per_conn\":%.2f}\n", 2 * pairs,
         (double)(after - before) / (2.0 * pairs));
  for (i = 0; i < 2 * pairs; i++)
    retls_conn_free(conns[i]);
  retls_conn_free(warm_c);
  retls_conn_free(warm_s);
  retls_ctx_free(cctx);
  retls_ctx_free(sctx);
  free(conns);
}

int main(int argc, char **argv) {
  const char *cmd = argc > 1 ? argv[1] : "";
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (strcmp(cmd, "mem") == 0 && argc == 7) {
    size_t size = strtoull(argv[3], NULL, 10);
    if (strcmp(argv[2], "raw") == 0)
      run_mem_raw(size, atof(argv[4]), argv[5], argv[6]);
    else
      run_mem_retls(size, atof(argv[4]), argv[5], argv[6]);
  } else if (strcmp(cmd, "sock") == 0 && argc == 7) {
    run_sock(strcmp(argv[2], "retls") == 0, strtoull(argv[3], NULL, 10),
             strtoull(argv[4], NULL, 10), argv[5], argv[6]);
  } else if (strcmp(cmd, "retry") == 0 && argc == 6) {
    run_retry(strcmp(argv[2], "retls") == 0, strcmp(argv[2], "rawcopy") == 0,
              atof(argv[3]), argv[4], argv[5]);
  } else if (strcmp(cmd, "cycles") == 0 && argc == 5) {
    run_cycles(strtoull(argv[2], NULL, 10), argv[3], argv[4]);
  } else if (strcmp(cmd, "footprint") == 0 && argc == 5) {
    run_footprint(atoi(argv[2]), argv[3], argv[4]);
  } else {
    fprintf(stderr,
            "usage: bench_c mem raw|retls SIZE SECONDS CERT KEY\n"
            "       bench_c sock raw|retls SIZE TOTAL HOST PORT\n"
            "       bench_c retry raw|retls|rawcopy SECONDS CERT KEY\n"
            "       bench_c cycles N CERT KEY\n"
            "       bench_c footprint PAIRS CERT KEY\n");
    return 2;
  }
  return 0;
}
