/*
 * test_defaults.c - the secure defaults of a fresh context, each pinned by
 * what a peer can observe (mirrors tests/python/test_defaults.py; the
 * legacy-renegotiation peers need gnutls and are tested from Python and
 * Lua only):
 *
 *   clients verify the certificate and the hostname;
 *   TLS 1.2 minimum both ways (a TLS 1.1 peer that works with a lowered
 *   minimum is refused with the default one);
 *   only null compression is offered or accepted;
 *   a peer's renegotiation request is honoured, and refused when the
 *   context turns renegotiation off;
 *   no key material in error texts, no key log unless asked (the
 *   SSLKEYLOGFILE variable is not read).
 */
#include "harness.h"

#include <unistd.h>

#define SECLEVEL0 "DEFAULT@SECLEVEL=0" /* OpenSSL 3: TLS < 1.2 only here */

static retls_ctx *ctx_with(retls_role role, const char *min, const char *max,
                           const char *ciphers) {
  retls_ctx *ctx = harness_ctx(role);
  if (ctx == NULL)
    return NULL;
  if ((min || max) && retls_ctx_set_versions(ctx, min, max) != RETLS_OK)
    goto fail;
  if (ciphers && retls_ctx_set_ciphers(ctx, ciphers) != RETLS_OK)
    goto fail;
  return ctx;
fail:
  fprintf(stderr, "ctx_with: %s\n", retls_ctx_last_error(ctx));
  retls_ctx_free(ctx);
  return NULL;
}

static void test_client_verifies_by_default(void) {
  retls_ctx *cc = NULL, *sc = harness_ctx(RETLS_SERVER);
  retls_conn *c = NULL, *s = NULL;
  CHECK(sc != NULL);
  CHECK_STATUS(NULL, retls_ctx_new(&cc, RETLS_CLIENT), RETLS_OK);
  /* A verifying client must be told which name to check... */
  CHECK(retls_conn_new_memory(&c, cc, NULL, 0) == RETLS_BAD_ARG);
  CHECK(strstr(retls_ctx_last_error(cc), "pass server_hostname") != NULL);
  /* ...and refuses a certificate nobody vouches for. */
  CHECK_STATUS(NULL, retls_conn_new_memory(&c, cc, "localhost", 0), RETLS_OK);
  CHECK_STATUS(NULL, retls_conn_new_memory(&s, sc, NULL, 0), RETLS_OK);
  CHECK_STATUS(c, harness_memory_handshake(c, s), RETLS_VERIFY);
  CHECK(strstr(retls_conn_last_error(c), "self-signed certificate") != NULL);
  retls_conn_free(c);
  retls_conn_free(s);
  retls_ctx_free(cc);
  retls_ctx_free(sc);
}

static void test_hostname_checked_by_default(void) {
  harness_cert ca, leaf;
  retls_ctx *cc = NULL, *sc = NULL;
  retls_conn *c, *s;
  const char *names[2] = {"localhost", "example.com"};
  int i;
  CHECK(harness_make_cert(&ca, "dca", "defaults CA", NULL, -60, 3600, 1) ==
        0);
  CHECK(harness_make_cert(&leaf, "dleaf", "localhost", &ca, -60, 3600, 0) ==
        0);
  CHECK_STATUS(NULL, retls_ctx_new(&cc, RETLS_CLIENT), RETLS_OK);
  CHECK_STATUS(NULL, retls_ctx_load_verify(cc, ca.cert, NULL), RETLS_OK);
  CHECK_STATUS(NULL, retls_ctx_new(&sc, RETLS_SERVER), RETLS_OK);
  CHECK_STATUS(NULL, retls_ctx_use_certificate(sc, leaf.cert, leaf.key),
               RETLS_OK);
  for (i = 0; i < 2; i++) {
    CHECK_STATUS(NULL, retls_conn_new_memory(&c, cc, names[i], 0), RETLS_OK);
    CHECK_STATUS(NULL, retls_conn_new_memory(&s, sc, NULL, 0), RETLS_OK);
    /* localhost is the control; example.com must fail on the name. */
    CHECK_STATUS(c, harness_memory_handshake(c, s),
                 i == 0 ? RETLS_OK : RETLS_VERIFY);
    CHECK(i == 0 || strstr(retls_conn_last_error(c), "hostname mismatch"));
    retls_conn_free(c);
    retls_conn_free(s);
  }
  retls_ctx_free(cc);
  retls_ctx_free(sc);
}

/* A TLS 1.1 peer at security level 0: accepted only with the minimum
 * lowered, whichever side has the default. */
static void test_minimum_is_tls12_both_ways(void) {
  retls_ctx *old_c = ctx_with(RETLS_CLIENT, "TLSv1", "TLSv1.1", SECLEVEL0);
  retls_ctx *old_s = ctx_with(RETLS_SERVER, "TLSv1", "TLSv1.1", SECLEVEL0);
  retls_ctx *low_c = ctx_with(RETLS_CLIENT, "TLSv1", NULL, SECLEVEL0);
  retls_ctx *low_s = ctx_with(RETLS_SERVER, "TLSv1", NULL, SECLEVEL0);
  retls_ctx *def_c = ctx_with(RETLS_CLIENT, NULL, NULL, SECLEVEL0);
  retls_ctx *def_s = ctx_with(RETLS_SERVER, NULL, NULL, SECLEVEL0);
  retls_conn *c, *s;
  CHECK(old_c && old_s && low_c && low_s && def_c && def_s);
  /* The controls: TLS 1.1 works here once the minimum is lowered. */
  CHECK_STATUS(NULL, harness_pair(&c, &s, old_c, low_s, 0), RETLS_OK);
  CHECK(strcmp(retls_conn_version(c), "TLSv1.1") == 0);
  retls_conn_free(c);
  retls_conn_free(s);
  CHECK_STATUS(NULL, harness_pair(&c, &s, low_c, old_s, 0), RETLS_OK);
  CHECK(strcmp(retls_conn_version(c), "TLSv1.1") == 0);
  retls_conn_free(c);
  retls_conn_free(s);
  /* A default server refuses the TLS 1.1 client... */
  CHECK_STATUS(NULL, retls_pair_new(&c, &s, old_c, def_s, 0), RETLS_OK);
  CHECK_STATUS(s, harness_handshake(c, s), RETLS_SSL);
  CHECK(strcmp(retls_conn_last_error(s), "handshake: unsupported protocol") ==
        0);
  retls_conn_free(c);
  retls_conn_free(s);
  /* ...and a default client the TLS 1.1 server. */
  CHECK_STATUS(NULL, retls_pair_new(&c, &s, def_c, old_s, 0), RETLS_OK);
  CHECK(harness_handshake(c, s) == RETLS_SSL); /* the server gave up */
  CHECK_STATUS(c, retls_conn_handshake(c), RETLS_SSL); /* its alert */
  CHECK(strcmp(retls_conn_last_error(c),
               "handshake: tlsv1 alert protocol version") == 0);
  retls_conn_free(c);
  retls_conn_free(s);
  retls_ctx_free(old_c);
  retls_ctx_free(old_s);
  retls_ctx_free(low_c);
  retls_ctx_free(low_s);
  retls_ctx_free(def_c);
  retls_ctx_free(def_s);
}

/* Offset of the compression methods in a ClientHello record, or of the
 * chosen method in a ServerHello record. */
static size_t compression_at(const unsigned char *h) {
  size_t i = 5 + 4 + 2 + 32;
  i += 1 + h[i];   /* session id */
  if (h[5] == 2)   /* ServerHello: cipher suite, then the method */
    return i + 2;
  return i + 2 + (((size_t)h[i] << 8) | h[i + 1]);
}

static void test_no_compression(void) {
  retls_ctx *cc = ctx_with(RETLS_CLIENT, NULL, "TLSv1.2", NULL);
  retls_ctx *sc = ctx_with(RETLS_SERVER, NULL, "TLSv1.2", NULL);
  retls_conn *c, *s;
  unsigned char hello[2048], deflate[2049], out[4096];
  size_t n, at, len;
  CHECK(cc && sc);
  CHECK_STATUS(NULL, retls_conn_new_memory(&c, cc, NULL, 0), RETLS_OK);
  CHECK_STATUS(c, retls_conn_handshake(c), RETLS_WANT_READ);
  CHECK_STATUS(c, retls_conn_bio_read(&n, c, hello, sizeof(hello)), RETLS_OK);
  CHECK(n > 60 && hello[0] == 22 && hello[5] == 1);
  at = compression_at(hello);
  CHECK(hello[at] == 1 && hello[at + 1] == 0); /* null only */
  /* Offer DEFLATE (1) first: a TLS 1.2 server still picks null. */
  memcpy(deflate, hello, at);
  deflate[at] = 2;
  deflate[at + 1] = 1;
  deflate[at + 2] = 0;
  memcpy(deflate + at + 3, hello + at + 2, n - at - 2);
  len = n + 1;
  deflate[3] = (unsigned char)((len - 5) >> 8);
  deflate[4] = (unsigned char)(len - 5);
  deflate[6] = 0;
  deflate[7] = (unsigned char)((len - 9) >> 8);
  deflate[8] = (unsigned char)(len - 9);
  CHECK_STATUS(NULL, retls_conn_new_memory(&s, sc, NULL, 0), RETLS_OK);
  CHECK_STATUS(s, retls_conn_bio_write(NULL, s, deflate, len), RETLS_OK);
  CHECK_STATUS(s, retls_conn_handshake(s), RETLS_WANT_READ);
  CHECK_STATUS(s, retls_conn_bio_read(&n, s, out, sizeof(out)), RETLS_OK);
  CHECK(n > 60 && out[0] == 22 && out[5] == 2);
  CHECK(out[compression_at(out)] == 0);
  retls_conn_free(c);
  retls_conn_free(s);
  retls_ctx_free(cc);
  retls_ctx_free(sc);
}

/* Lines of a key log that start with "CLIENT_RANDOM ". */
static int client_randoms(const char *path) {
  harness_buf log = {0};
  int k = 0;
  size_t i;
  if (harness_read_file(path, &log) != 0)
    return -1;
  for (i = 0; i + 14 <= log.len; i++)
    if ((i == 0 || log.data[i - 1] == '\n') &&
        memcmp(log.data + i, "CLIENT_RANDOM ", 14) == 0)
      k++;
  harness_buf_free(&log);
  return k;
}

/* The server asks for a renegotiation (HelloRequest) and writes; the
 * client reads.  on: the client's renegotiation setting. */
static void server_asks_renegotiation(int on) {
  retls_ctx *cc = ctx_with(RETLS_CLIENT, NULL, NULL, NULL);
  retls_ctx *sc = ctx_with(RETLS_SERVER, NULL, "TLSv1.2", NULL);
  retls_conn *c, *s;
  char path[512];
  unsigned char buf[64];
  size_t n;
  int i, rc = RETLS_WANT_READ, rs = RETLS_WANT_READ;
  CHECK(cc && sc);
  harness_path(path, sizeof(path), on ? "reneg-on.log" : "reneg-off.log");
  CHECK_STATUS(NULL, retls_ctx_set_keylog(cc, path), RETLS_OK);
  CHECK_STATUS(NULL, retls_ctx_set_renegotiation(cc, on), RETLS_OK);
  CHECK_STATUS(NULL, harness_pair(&c, &s, cc, sc, 0), RETLS_OK);
  CHECK_STATUS(s, retls_conn_renegotiate(s), RETLS_OK);
  CHECK_STATUS(s, retls_conn_write(&n, s, "hi", 2), RETLS_OK);
  CHECK_STATUS(c, retls_conn_read(&n, c, buf, sizeof(buf)), RETLS_OK);
  CHECK(n == 2 && memcmp(buf, "hi", 2) == 0);
  for (i = 0; i < 5; i++) {
    if (rc == RETLS_WANT_READ)
      rc = retls_conn_read(&n, c, buf, sizeof(buf));
    if (rs == RETLS_WANT_READ)
      rs = retls_conn_read(&n, s, buf, sizeof(buf));
  }
  if (on) {
    /* Honoured transparently: nothing failed, and a second handshake
     * (a second client random) happened. */
    CHECK(rc == RETLS_WANT_READ && rs == RETLS_WANT_READ);
    CHECK(client_randoms(path) == 2);
    CHECK_STATUS(c, retls_conn_write(&n, c, "after", 5), RETLS_OK);
    CHECK_STATUS(s, retls_conn_read(&n, s, buf, sizeof(buf)), RETLS_OK);
    CHECK(n == 5 && memcmp(buf, "after", 5) == 0);
  } else {
    CHECK_STATUS(s, rs, RETLS_SSL);
    CHECK(strcmp(retls_conn_last_error(s), "read: no renegotiation") == 0);
    CHECK_STATUS(c, rc, RETLS_SSL);
    CHECK(strcmp(retls_conn_last_error(c),
                 "read: sslv3 alert handshake failure") == 0);
    CHECK(client_randoms(path) == 1);
  }
  retls_conn_free(c);
  retls_conn_free(s);
  retls_ctx_free(cc);
  retls_ctx_free(sc);
}

static void test_peer_renegotiation_honoured_by_default(void) {
  server_asks_renegotiation(1);
}

static void test_peer_renegotiation_refused_when_off(void) {
  server_asks_renegotiation(0);
}

/* A hex run of at least 32 characters: what a secret or a random prints
 * as; no error text should contain one. */
static int has_hex_run(const char *s) {
  int run = 0;
  for (; *s; s++) {
    run = ((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') ||
           (*s >= 'A' && *s <= 'F'))
              ? run + 1
              : 0;
    if (run >= 32)
      return 1;
  }
  return 0;
}

static void test_errors_carry_no_key_material(void) {
  harness_cert ca, other, leaf;
  retls_ctx *cc = NULL, *sc = NULL;
  retls_conn *c, *s;
  harness_buf log = {0};
  char path[512], field[200];
  size_t n;
  const char *p;
  int fields = 0;
  CHECK(harness_make_cert(&ca, "kca", "key CA", NULL, -60, 3600, 1) == 0);
  CHECK(harness_make_cert(&other, "kother", "other CA", NULL, -60, 3600, 1) ==
        0);
  CHECK(harness_make_cert(&leaf, "kleaf", "localhost", &ca, -60, 3600, 0) ==
        0);
  harness_path(path, sizeof(path), "fail-keys.log");
  CHECK_STATUS(NULL, retls_ctx_new(&cc, RETLS_CLIENT), RETLS_OK);
  CHECK_STATUS(NULL, retls_ctx_load_verify(cc, other.cert, NULL), RETLS_OK);
  CHECK_STATUS(NULL, retls_ctx_set_keylog(cc, path), RETLS_OK);
  CHECK_STATUS(NULL, retls_ctx_new(&sc, RETLS_SERVER), RETLS_OK);
  CHECK_STATUS(NULL, retls_ctx_use_certificate(sc, leaf.cert, leaf.key),
               RETLS_OK);
  CHECK_STATUS(NULL, retls_conn_new_memory(&c, cc, "localhost", 0), RETLS_OK);
  CHECK_STATUS(NULL, retls_conn_new_memory(&s, sc, NULL, 0), RETLS_OK);
  CHECK_STATUS(c, harness_memory_handshake(c, s), RETLS_VERIFY);
  CHECK(!has_hex_run(retls_conn_last_error(c)));
  CHECK_STATUS(c, retls_conn_write(&n, c, "x", 1), RETLS_CLOSED);
  CHECK(!has_hex_run(retls_conn_last_error(c)));
  harness_relay(c, s, 0, NULL);
  CHECK(retls_conn_handshake(s) < 0);
  CHECK(!has_hex_run(retls_conn_last_error(s)));
  /* The log has the secrets; no error text has any of its fields. */
  CHECK(harness_read_file(path, &log) == 0 && log.len > 0);
  harness_buf_append(&log, "", 1);
  for (p = (const char *)log.data; *p; p += n + (p[n] != '\0')) {
    n = strcspn(p, " \n");
    if (n >= 32 && n < sizeof(field)) {
      memcpy(field, p, n);
      field[n] = '\0';
      fields++;
      CHECK(strstr(retls_conn_last_error(c), field) == NULL);
      CHECK(strstr(retls_conn_last_error(s), field) == NULL);
    }
  }
  CHECK(fields >= 2); /* a client random and a secret at least */
  harness_buf_free(&log);
  retls_conn_free(c);
  retls_conn_free(s);
  retls_ctx_free(cc);
  retls_ctx_free(sc);
}

static void test_no_key_log_unless_asked(void) {
  retls_conn *c, *s;
  char path[512];
  size_t n;
  harness_path(path, sizeof(path), "env-keys.log");
  CHECK(setenv("SSLKEYLOGFILE", path, 1) == 0);
  CHECK_STATUS(NULL, harness_pair(&c, &s, NULL, NULL, 0), RETLS_OK);
  CHECK_STATUS(c, retls_conn_write(&n, c, "x", 1), RETLS_OK);
  CHECK(access(path, F_OK) != 0); /* nothing written */
  unsetenv("SSLKEYLOGFILE");
  retls_conn_free(c);
  retls_conn_free(s);
}

int main(void) {
  RUN(test_client_verifies_by_default);
  RUN(test_hostname_checked_by_default);
  RUN(test_minimum_is_tls12_both_ways);
  RUN(test_no_compression);
  RUN(test_peer_renegotiation_honoured_by_default);
  RUN(test_peer_renegotiation_refused_when_off);
  RUN(test_errors_carry_no_key_material);
  RUN(test_no_key_log_unless_asked);
  return harness_finish();
}
