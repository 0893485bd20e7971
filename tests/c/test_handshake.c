/*
 * test_handshake.c - handshakes (implicit, explicit, by hand in memory
 * mode) and what a context's settings make them negotiate: ALPN, keylog,
 * protocol versions, ciphers, record size.
 */
#include "harness.h"

static retls_ctx *ctx_versions(retls_role role, const char *lo,
                               const char *hi) {
  retls_ctx *ctx = harness_ctx(role);
  if (ctx != NULL && retls_ctx_set_versions(ctx, lo, hi) != RETLS_OK) {
    fprintf(stderr, "set_versions: %s\n", retls_ctx_last_error(ctx));
    retls_ctx_free(ctx);
    ctx = NULL;
  }
  return ctx;
}

/* No handshake() call: the first write starts it (as SSL_write does),
 * stops on WANT_READ for the server's answer, and the flush that finds the
 * handshake done sends the data. */
static void test_implicit_handshake_on_first_write(void) {
  retls_conn *c, *s;
  harness_buf got = {0};
  size_t n = 99;
  int rounds;
  CHECK_STATUS(NULL, retls_pair_new(&c, &s, NULL, NULL, 0), RETLS_OK);
  CHECK(!retls_conn_is_established(c));
  CHECK(retls_conn_version(c) == NULL && retls_conn_cipher(c) == NULL);

  CHECK_STATUS(c, retls_conn_write(&n, c, "first", 5), RETLS_WANT_READ);
  CHECK(n == 0);
  CHECK(retls_conn_pending_write(c) == 5);
  CHECK(retls_conn_want(c) == RETLS_WANT_READ);
  /* The server's first read is its implicit handshake. */
  CHECK_STATUS(c, harness_flush_through(c, s, &got, 0, &rounds, &n),
               RETLS_OK);
  CHECK(n == 5);
  CHECK(rounds == 1);
  CHECK(retls_conn_is_established(c));
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
  CHECK(retls_conn_is_established(s));
  CHECK(got.len == 5 && memcmp(got.data, "first", 5) == 0);
  CHECK(strcmp(retls_conn_version(c), "TLSv1.3") == 0);
  CHECK(strcmp(retls_conn_version(s), "TLSv1.3") == 0);
  CHECK(strcmp(retls_conn_cipher(c), retls_conn_cipher(s)) == 0);
  harness_buf_free(&got);
  retls_conn_free(c);
  retls_conn_free(s);
}

/* The server may speak first too: its first write waits for the client. */
static void test_implicit_handshake_on_server_write(void) {
  retls_conn *c, *s;
  harness_buf got = {0};
  size_t n;
  int i, st;
  CHECK_STATUS(NULL, retls_pair_new(&c, &s, NULL, NULL, 0), RETLS_OK);
  CHECK_STATUS(s, retls_conn_write(&n, s, "banner", 6), RETLS_WANT_READ);
  for (i = 0, st = RETLS_WANT_READ; i < 10 && st != RETLS_OK; i++) {
    int rc = harness_drain(c, &got);
    CHECK(rc == RETLS_WANT_READ || rc == RETLS_OK);
    st = retls_conn_flush(&n, s);
    CHECK(st == RETLS_OK || st == RETLS_WANT_READ);
  }
  CHECK_STATUS(s, st, RETLS_OK);
  CHECK(n == 6);
  CHECK_STATUS(c, harness_drain(c, &got), RETLS_WANT_READ);
  CHECK(got.len == 6 && memcmp(got.data, "banner", 6) == 0);
  harness_buf_free(&got);
  retls_conn_free(c);
  retls_conn_free(s);
}

/* Memory mode driven step by step, as an asyncio-style caller would:
 * each flight is taken out of one connection and fed to the other. */
static void test_memory_mode_handshake_by_hand(void) {
  retls_ctx *cc = harness_ctx(RETLS_CLIENT), *sc = harness_ctx(RETLS_SERVER);
  retls_conn *c, *s;
  unsigned char buf[8192];
  size_t n, taken, flight;
  harness_buf got = {0};

  CHECK(cc && sc);
  CHECK_STATUS(NULL, retls_conn_new_memory(&c, cc, NULL, 0), RETLS_OK);
  CHECK_STATUS(NULL, retls_conn_new_memory(&s, sc, NULL, 0), RETLS_OK);
  retls_ctx_free(cc);
  retls_ctx_free(sc);
  CHECK(retls_conn_fileno(c) == -1);

  /* Nothing to take before anything happened: not an error. */
  CHECK_STATUS(c, retls_conn_bio_read(&n, c, buf, sizeof(buf)), RETLS_OK);
  CHECK(n == 0);

  /* ClientHello */
  CHECK_STATUS(c, retls_conn_handshake(c), RETLS_WANT_READ);
  flight = retls_conn_bio_pending(c);
  CHECK(flight > 0);
  CHECK_STATUS(c, retls_conn_bio_read(&n, c, buf, sizeof(buf)), RETLS_OK);
  CHECK(n == flight && buf[0] == 22); /* a handshake record */
  CHECK(retls_conn_bio_pending(c) == 0);
  CHECK_STATUS(s, retls_conn_bio_write(&taken, s, buf, n), RETLS_OK);
  CHECK(taken == n);

  /* ServerHello ... Finished */
  CHECK_STATUS(s, retls_conn_handshake(s), RETLS_WANT_READ);
  CHECK(retls_conn_bio_pending(s) > 0);
  CHECK_STATUS(s, retls_conn_bio_read(&n, s, buf, sizeof(buf)), RETLS_OK);
  CHECK(n > 0 && retls_conn_bio_pending(s) == 0);
  CHECK_STATUS(c, retls_conn_bio_write(&taken, c, buf, n), RETLS_OK);

  /* Client Finished: the client is done. */
  CHECK_STATUS(c, retls_conn_handshake(c), RETLS_OK);
  CHECK(retls_conn_is_established(c));
  CHECK_STATUS(c, retls_conn_bio_read(&n, c, buf, sizeof(buf)), RETLS_OK);
  CHECK(n > 0);
  CHECK_STATUS(s, retls_conn_bio_write(&taken, s, buf, n), RETLS_OK);
  CHECK_STATUS(s, retls_conn_handshake(s), RETLS_OK);
  CHECK(retls_conn_is_established(s));

  /* Application data both ways. */
  CHECK_STATUS(c, retls_conn_write(&n, c, "ping", 4), RETLS_OK);
  harness_relay(c, s, 0, NULL);
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
  CHECK(got.len == 4 && memcmp(got.data, "ping", 4) == 0);
  CHECK_STATUS(s, retls_conn_write(&n, s, "pong", 4), RETLS_OK);
  harness_relay(s, c, 0, NULL);
  got.len = 0;
  CHECK_STATUS(c, harness_drain(c, &got), RETLS_WANT_READ);
  CHECK(got.len == 4 && memcmp(got.data, "pong", 4) == 0);

  harness_buf_free(&got);
  retls_conn_free(c);
  retls_conn_free(s);
}

/* A memory-mode writer whose outgoing buffer is full stops on WANT_WRITE
 * until the caller takes the ciphertext out. */
static void test_memory_mode_full_buffer_wants_write(void) {
  enum { LEN = 50000 };
  retls_conn *c, *s;
  unsigned char *data = malloc(LEN);
  harness_buf got = {0};
  size_t n;
  int rounds;
  harness_pattern(data, LEN, 51);
  CHECK_STATUS(NULL, harness_memory_pair(&c, &s, NULL, NULL, 1024), RETLS_OK);
  CHECK_STATUS(c, retls_conn_write(&n, c, data, LEN), RETLS_WANT_WRITE);
  CHECK(retls_conn_bio_pending(c) == 1024);
  CHECK_STATUS(c, harness_flush_through(c, s, &got, 1, &rounds, &n), RETLS_OK);
  CHECK(n == LEN && rounds > 40); /* ~50 KiB through a 1 KiB window */
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
  CHECK(got.len == LEN && memcmp(got.data, data, LEN) == 0);
  harness_buf_free(&got);
  free(data);
  retls_conn_free(c);
  retls_conn_free(s);
}

static void alpn_case(const char *client, const char *server,
                      const char *expect) {
  retls_ctx *cc = harness_ctx(RETLS_CLIENT), *sc = harness_ctx(RETLS_SERVER);
  retls_conn *c, *s;
  CHECK(cc && sc);
  if (client)
    CHECK_STATUS(NULL, retls_ctx_set_alpn(cc, client), RETLS_OK);
  if (server)
    CHECK_STATUS(NULL, retls_ctx_set_alpn(sc, server), RETLS_OK);
  /* Only the lenient server continues without an overlap (strict is
   * test_alpn_strict_against_s_client in test_sessions.c). */
  CHECK_STATUS(NULL, retls_ctx_set_alpn_strict(sc, 0), RETLS_OK);
  CHECK_STATUS(NULL, harness_pair(&c, &s, cc, sc, 0), RETLS_OK);
  retls_ctx_free(cc);
  retls_ctx_free(sc);
  if (expect == NULL) {
    CHECK(retls_conn_alpn(c) == NULL);
    CHECK(retls_conn_alpn(s) == NULL);
  } else {
    CHECK(retls_conn_alpn(c) && strcmp(retls_conn_alpn(c), expect) == 0);
    CHECK(retls_conn_alpn(s) && strcmp(retls_conn_alpn(s), expect) == 0);
  }
  retls_conn_free(c);
  retls_conn_free(s);
}

static void test_alpn_negotiated(void) {
  /* The server picks by its own preference among what the client offers. */
  alpn_case("h2,http/1.1", "http/1.1,h2", "http/1.1");
  alpn_case("h2,http/1.1", "h2", "h2");
  /* No overlap, alpn_strict off: no ALPN, not a failed handshake. */
  alpn_case("h2", "spdy/3", NULL);
  /* Only one side configured. */
  alpn_case(NULL, "h2", NULL);
  alpn_case("h2", NULL, NULL);
  /* Cleared again with "". */
  {
    retls_ctx *cc = harness_ctx(RETLS_CLIENT);
    retls_conn *c, *s;
    retls_ctx *sc = harness_ctx(RETLS_SERVER);
    CHECK(cc && sc);
    CHECK_STATUS(NULL, retls_ctx_set_alpn(cc, "h2"), RETLS_OK);
    CHECK_STATUS(NULL, retls_ctx_set_alpn(sc, "h2"), RETLS_OK);
    CHECK_STATUS(NULL, retls_ctx_set_alpn(cc, ""), RETLS_OK);
    CHECK_STATUS(NULL, harness_pair(&c, &s, cc, sc, 0), RETLS_OK);
    CHECK(retls_conn_alpn(c) == NULL && retls_conn_alpn(s) == NULL);
    retls_ctx_free(cc);
    retls_ctx_free(sc);
    retls_conn_free(c);
    retls_conn_free(s);
  }
}

/* Count lines of the keylog that start with label and check the NSS
 * format: "LABEL <64 hex client random> <hex secret>". */
static int keylog_lines(const harness_buf *log, const char *label,
                        char *client_random_out) {
  size_t off = 0, ll = strlen(label);
  int count = 0;
  while (off < log->len) {
    const char *line = (const char *)log->data + off;
    const char *nl = memchr(line, '\n', log->len - off);
    size_t len = nl ? (size_t)(nl - line) : log->len - off;
    if (len > ll && memcmp(line, label, ll) == 0 && line[ll] == ' ') {
      const char *cr = line + ll + 1, *secret = cr + 65;
      size_t i, slen = len - (size_t)(secret - line);
      if (len < ll + 1 + 64 + 1 + 32 || cr[64] != ' ')
        return -1;
      for (i = 0; i < 64; i++)
        if (!strchr("0123456789abcdef", cr[i]))
          return -1;
      for (i = 0; i < slen; i++)
        if (!strchr("0123456789abcdef", secret[i]))
          return -1;
      if (client_random_out != NULL)
        memcpy(client_random_out, cr, 64);
      count++;
    }
    off += len + 1;
  }
  return count;
}

static void test_keylog_nss_format(void) {
  static const char *tls13[] = {
      "CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
      "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0",
      "EXPORTER_SECRET"};
  char path[512], cr0[65] = {0}, cr[65] = {0};
  retls_ctx *cc = harness_ctx(RETLS_CLIENT), *cc12;
  retls_conn *c, *s;
  harness_buf log = {0};
  size_t i, before;

  harness_path(path, sizeof(path), "keys.log");
  CHECK(cc != NULL);
  CHECK_STATUS(NULL, retls_ctx_set_keylog(cc, path), RETLS_OK);
  CHECK_STATUS(NULL, harness_pair(&c, &s, cc, NULL, 0), RETLS_OK);
  CHECK(harness_read_file(path, &log) == 0);
  for (i = 0; i < sizeof(tls13) / sizeof(tls13[0]); i++) {
    CHECK(keylog_lines(&log, tls13[i], i == 0 ? cr0 : cr) == 1);
    /* All secrets of one handshake name the same client random. */
    CHECK(i == 0 || memcmp(cr, cr0, 64) == 0);
  }
  retls_conn_free(c);
  retls_conn_free(s);

  /* Logging stops when asked: another handshake adds nothing. */
  before = log.len;
  CHECK_STATUS(NULL, retls_ctx_set_keylog(cc, NULL), RETLS_OK);
  CHECK_STATUS(NULL, harness_pair(&c, &s, cc, NULL, 0), RETLS_OK);
  log.len = 0;
  CHECK(harness_read_file(path, &log) == 0);
  CHECK(log.len == before);
  retls_conn_free(c);
  retls_conn_free(s);
  retls_ctx_free(cc);

  /* TLS 1.2 logs CLIENT_RANDOM lines, appended to the same file. */
  cc12 = ctx_versions(RETLS_CLIENT, NULL, "TLSv1.2");
  CHECK(cc12 != NULL);
  CHECK_STATUS(NULL, retls_ctx_set_keylog(cc12, path), RETLS_OK);
  CHECK_STATUS(NULL, harness_pair(&c, &s, cc12, NULL, 0), RETLS_OK);
  log.len = 0;
  CHECK(harness_read_file(path, &log) == 0);
  CHECK(log.len > before);
  CHECK(keylog_lines(&log, "CLIENT_RANDOM", NULL) == 1);
  CHECK(keylog_lines(&log, "CLIENT_TRAFFIC_SECRET_0", NULL) == 1);
  retls_ctx_free(cc12);
  retls_conn_free(c);
  retls_conn_free(s);
  harness_buf_free(&log);
}

static void test_versions_take_effect(void) {
  retls_ctx *cc, *sc;
  retls_conn *c, *s;

  /* Default: the best both support. */
  CHECK_STATUS(NULL, harness_pair(&c, &s, NULL, NULL, 0), RETLS_OK);
  CHECK(strcmp(retls_conn_version(c), "TLSv1.3") == 0);
  retls_conn_free(c);
  retls_conn_free(s);

  /* A client capped at 1.2. */
  cc = ctx_versions(RETLS_CLIENT, NULL, "TLSv1.2");
  CHECK(cc != NULL);
  CHECK_STATUS(NULL, harness_pair(&c, &s, cc, NULL, 0), RETLS_OK);
  CHECK(strcmp(retls_conn_version(c), "TLSv1.2") == 0);
  CHECK(strcmp(retls_conn_version(s), "TLSv1.2") == 0);
  retls_conn_free(c);
  retls_conn_free(s);
  retls_ctx_free(cc);

  /* A 1.3-only client against a 1.2-only server: no common version. */
  cc = ctx_versions(RETLS_CLIENT, "TLSv1.3", NULL);
  sc = ctx_versions(RETLS_SERVER, NULL, "TLSv1.2");
  CHECK(cc && sc);
  CHECK_STATUS(NULL, retls_pair_new(&c, &s, cc, sc, 0), RETLS_OK);
  CHECK_STATUS(s, harness_handshake(c, s), RETLS_SSL);
  CHECK(strstr(retls_conn_last_error(s), "unsupported protocol") != NULL);
  /* The client learns why from the server's alert. */
  CHECK_STATUS(c, retls_conn_handshake(c), RETLS_SSL);
  CHECK(strstr(retls_conn_last_error(c), "protocol version") != NULL);
  retls_conn_free(c);
  retls_conn_free(s);
  retls_ctx_free(cc);
  retls_ctx_free(sc);

  /* The default minimum is TLS 1.2: a server that wants 1.1 at most
   * finds no common version. */
  sc = ctx_versions(RETLS_SERVER, "TLSv1", "TLSv1.1");
  CHECK(sc != NULL);
  CHECK_STATUS(NULL, retls_pair_new(&c, &s, NULL, sc, 0), RETLS_OK);
  CHECK_STATUS(s, harness_handshake(c, s), RETLS_SSL);
  CHECK(strstr(retls_conn_last_error(s), "unsupported protocol") != NULL);
  retls_conn_free(c);
  retls_conn_free(s);
  retls_ctx_free(sc);
}

static void test_ciphers_take_effect(void) {
  retls_ctx *cc;
  retls_conn *c, *s;

  /* TLS 1.3 ciphersuites. */
  cc = harness_ctx(RETLS_CLIENT);
  CHECK(cc != NULL);
  CHECK_STATUS(NULL,
               retls_ctx_set_ciphersuites(cc, "TLS_CHACHA20_POLY1305_SHA256"),
               RETLS_OK);
  CHECK_STATUS(NULL, harness_pair(&c, &s, cc, NULL, 0), RETLS_OK);
  CHECK(strcmp(retls_conn_cipher(c), "TLS_CHACHA20_POLY1305_SHA256") == 0);
  CHECK(strcmp(retls_conn_cipher(s), "TLS_CHACHA20_POLY1305_SHA256") == 0);
  retls_conn_free(c);
  retls_conn_free(s);
  retls_ctx_free(cc);

  /* TLS 1.2 cipher list (the default server key is EC P-256). */
  cc = ctx_versions(RETLS_CLIENT, NULL, "TLSv1.2");
  CHECK(cc != NULL);
  CHECK_STATUS(NULL, retls_ctx_set_ciphers(cc, "ECDHE-ECDSA-AES128-GCM-SHA256"),
               RETLS_OK);
  CHECK_STATUS(NULL, harness_pair(&c, &s, cc, NULL, 0), RETLS_OK);
  CHECK(strcmp(retls_conn_cipher(c), "ECDHE-ECDSA-AES128-GCM-SHA256") == 0);
  retls_conn_free(c);
  retls_conn_free(s);

  /* A list the server's key cannot serve: the handshake fails. */
  CHECK_STATUS(NULL, retls_ctx_set_ciphers(cc, "ECDHE-RSA-AES128-GCM-SHA256"),
               RETLS_OK);
  CHECK_STATUS(NULL, retls_pair_new(&c, &s, cc, NULL, 0), RETLS_OK);
  CHECK_STATUS(s, harness_handshake(c, s), RETLS_SSL);
  CHECK(strstr(retls_conn_last_error(s), "no shared cipher") != NULL);
  retls_conn_free(c);
  retls_conn_free(s);
  retls_ctx_free(cc);
}

/* max send fragment splits writes into records of that payload size. */
static void test_max_send_fragment(void) {
  retls_ctx *cc = harness_ctx(RETLS_CLIENT);
  retls_conn *c, *s;
  unsigned char data[2048 + 100];
  harness_buf wire = {0}, got = {0};
  size_t lens[16], n;
  int i, count;
  harness_pattern(data, sizeof(data), 52);
  CHECK(cc != NULL);
  CHECK_STATUS(NULL, retls_ctx_set_max_send_fragment(cc, 512), RETLS_OK);
  CHECK_STATUS(NULL, harness_memory_pair(&c, &s, cc, NULL, 0), RETLS_OK);
  retls_ctx_free(cc);
  CHECK_STATUS(c, retls_conn_write(&n, c, data, sizeof(data)), RETLS_OK);
  harness_relay(c, s, 0, &wire);
  count = harness_tls_records(&wire, lens, 16);
  CHECK(count == 5);
  for (i = 0; i < 4; i++)
    CHECK(lens[i] == 512 + 17);
  CHECK(lens[4] == 100 + 17);
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
  CHECK(got.len == sizeof(data) && memcmp(got.data, data, sizeof(data)) == 0);
  harness_buf_free(&wire);
  harness_buf_free(&got);
  retls_conn_free(c);
  retls_conn_free(s);
}

int main(void) {
  RUN(test_implicit_handshake_on_first_write);
  RUN(test_implicit_handshake_on_server_write);
  RUN(test_memory_mode_handshake_by_hand);
  RUN(test_memory_mode_full_buffer_wants_write);
  RUN(test_alpn_negotiated);
  RUN(test_keylog_nss_format);
  RUN(test_versions_take_effect);
  RUN(test_ciphers_take_effect);
  RUN(test_max_send_fragment);
  return harness_finish();
}
