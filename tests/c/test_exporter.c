/*
 * test_exporter.c - the handshake facts LuaSec's methods expose
 * (getfinished / getpeerfinished, exportkeyingmaterial, getpeerchain /
 * getlocalchain, getsniname, info): retls_conn_finished,
 * retls_conn_export_keying_material, retls_conn_chain_certificate,
 * retls_conn_server_name, retls_conn_cipher_info.  Both ends of a pair
 * must agree on what they share (Finished messages cross over, exported
 * keys are equal), in TLS 1.2 and 1.3.
 */
#include "harness.h"

#include <openssl/pem.h>
#include <openssl/x509.h>

#define DAY 86400L

/* A pair at one TLS version, handshake done; the server uses the chain
 * file chain (NULL: harness defaults, a self-signed certificate). */
static int versioned_pair(retls_conn **c, retls_conn **s, const char *version,
                          const char *chain_cert, const char *chain_key) {
  retls_ctx *cc = harness_ctx(RETLS_CLIENT), *sc = NULL;
  int st = RETLS_NOMEM;
  if (chain_cert != NULL) {
    if (retls_ctx_new(&sc, RETLS_SERVER) == RETLS_OK &&
        retls_ctx_use_certificate(sc, chain_cert, chain_key) != RETLS_OK) {
      fprintf(stderr, "use_certificate: %s\n", retls_ctx_last_error(sc));
      retls_ctx_free(sc);
      sc = NULL;
    }
  } else {
    sc = harness_ctx(RETLS_SERVER);
  }
  if (cc != NULL && sc != NULL &&
      retls_ctx_set_versions(cc, version, version) == RETLS_OK &&
      retls_ctx_set_versions(sc, version, version) == RETLS_OK)
    st = harness_pair(c, s, cc, sc, 0);
  retls_ctx_free(cc);
  retls_ctx_free(sc);
  return st;
}

static void check_finished_cross(const char *version, size_t want_len) {
  retls_conn *c, *s;
  unsigned char a[RETLS_FINISHED_MAX], b[RETLS_FINISHED_MAX];
  size_t na, nb;
  CHECK_STATUS(NULL, versioned_pair(&c, &s, version, NULL, NULL), RETLS_OK);
  CHECK(strcmp(retls_conn_version(c), version) == 0);
  /* what the client sent is what the server received, and back */
  CHECK_STATUS(c, retls_conn_finished(&na, c, a, sizeof(a), 0), RETLS_OK);
  CHECK_STATUS(s, retls_conn_finished(&nb, s, b, sizeof(b), 1), RETLS_OK);
  CHECK(na == want_len && nb == na && memcmp(a, b, na) == 0);
  CHECK_STATUS(s, retls_conn_finished(&na, s, a, sizeof(a), 0), RETLS_OK);
  CHECK_STATUS(c, retls_conn_finished(&nb, c, b, sizeof(b), 1), RETLS_OK);
  CHECK(na == want_len && nb == na && memcmp(a, b, na) == 0);
  /* the two directions differ */
  CHECK_STATUS(c, retls_conn_finished(&nb, c, b, sizeof(b), 0), RETLS_OK);
  CHECK(memcmp(a, b, na) != 0);
  /* a short buffer gets what fits */
  CHECK_STATUS(c, retls_conn_finished(&nb, c, b, 5, 0), RETLS_OK);
  CHECK(nb == 5);
  retls_conn_close(c, 0);
  CHECK_STATUS(c, retls_conn_finished(&na, c, a, sizeof(a), 0), RETLS_CLOSED);
  CHECK(na == 0);
  retls_conn_free(c);
  retls_conn_free(s);
}

static void test_finished_messages_cross_over_tls13(void) {
  /* TLS_AES_256_GCM_SHA384: a SHA-384 HMAC */
  check_finished_cross("TLSv1.3", 48);
}

static void test_finished_messages_cross_over_tls12(void) {
  check_finished_cross("TLSv1.2", 12); /* verify_data is 12 bytes */
}

static void test_finished_before_handshake_is_empty(void) {
  retls_conn *c, *s;
  unsigned char a[RETLS_FINISHED_MAX];
  size_t n = 99;
  CHECK_STATUS(NULL, retls_pair_new(&c, &s, NULL, NULL, 0), RETLS_OK);
  CHECK_STATUS(c, retls_conn_finished(&n, c, a, sizeof(a), 1), RETLS_OK);
  CHECK(n == 0);
  retls_conn_free(c);
  retls_conn_free(s);
}

static void check_export(const char *version) {
  retls_conn *c, *s;
  unsigned char a[64], b[64], d[64];
  CHECK_STATUS(NULL, versioned_pair(&c, &s, version, NULL, NULL), RETLS_OK);
  CHECK_STATUS(c, retls_conn_export_keying_material(a, 64, c, "EXPERIMENTAL-retls",
                                                    18, "ctx", 3),
               RETLS_OK);
  CHECK_STATUS(s, retls_conn_export_keying_material(b, 64, s, "EXPERIMENTAL-retls",
                                                    18, "ctx", 3),
               RETLS_OK);
  CHECK(memcmp(a, b, 64) == 0);
  /* another context, another label: other keys */
  CHECK_STATUS(s, retls_conn_export_keying_material(d, 64, s, "EXPERIMENTAL-retls",
                                                    18, "ctX", 3),
               RETLS_OK);
  CHECK(memcmp(a, d, 64) != 0);
  CHECK_STATUS(s, retls_conn_export_keying_material(d, 64, s, "EXPERIMENTAL-other",
                                                    18, "ctx", 3),
               RETLS_OK);
  CHECK(memcmp(a, d, 64) != 0);
  /* no context: equal on both ends too */
  CHECK_STATUS(c, retls_conn_export_keying_material(a, 32, c, "EXPERIMENTAL-retls",
                                                    18, NULL, 0),
               RETLS_OK);
  CHECK_STATUS(s, retls_conn_export_keying_material(b, 32, s, "EXPERIMENTAL-retls",
                                                    18, NULL, 0),
               RETLS_OK);
  CHECK(memcmp(a, b, 32) == 0);
  /* length 0 and a closed connection are refused */
  CHECK_STATUS(c, retls_conn_export_keying_material(a, 0, c, "x", 1, NULL, 0),
               RETLS_BAD_ARG);
  CHECK(strstr(retls_conn_last_error(c), "length") != NULL);
  retls_conn_close(c, 0);
  CHECK_STATUS(c, retls_conn_export_keying_material(a, 32, c, "x", 1, NULL, 0),
               RETLS_CLOSED);
  retls_conn_free(c);
  retls_conn_free(s);
}

static void test_export_equal_on_both_ends_tls13(void) {
  check_export("TLSv1.3");
}

static void test_export_equal_on_both_ends_tls12(void) {
  check_export("TLSv1.2");
}

static void test_export_tls12_refuses_key_schedule_labels(void) {
  retls_conn *c, *s;
  unsigned char a[32];
  CHECK_STATUS(NULL, versioned_pair(&c, &s, "TLSv1.2", NULL, NULL), RETLS_OK);
  CHECK_STATUS(c, retls_conn_export_keying_material(a, 32, c, "master secret",
                                                    13, NULL, 0),
               RETLS_BAD_ARG);
  CHECK(strstr(retls_conn_last_error(c), "master secret") != NULL);
  /* the connection is unharmed */
  CHECK_STATUS(c, retls_conn_export_keying_material(a, 32, c, "EXPERIMENTAL-x",
                                                    14, NULL, 0),
               RETLS_OK);
  retls_conn_free(c);
  retls_conn_free(s);
}

static void test_export_before_handshake_refused(void) {
  retls_conn *c, *s;
  unsigned char a[32];
  CHECK_STATUS(NULL, retls_pair_new(&c, &s, NULL, NULL, 0), RETLS_OK);
  CHECK_STATUS(c, retls_conn_export_keying_material(a, 32, c, "x", 1, NULL, 0),
               RETLS_BAD_ARG);
  CHECK(strstr(retls_conn_last_error(c), "handshake") != NULL);
  retls_conn_free(c);
  retls_conn_free(s);
}

/* DER of the first certificate in a PEM file. */
static int der_of(const char *path, unsigned char **out) {
  FILE *f = fopen(path, "rb");
  X509 *x;
  int n;
  *out = NULL;
  if (f == NULL)
    return -1;
  x = PEM_read_X509(f, NULL, NULL, NULL);
  fclose(f);
  if (x == NULL)
    return -1;
  n = i2d_X509(x, out);
  X509_free(x);
  return n;
}

static int same_der(const unsigned char *der, size_t len, const char *path) {
  unsigned char *want;
  int n = der_of(path, &want);
  int same = n > 0 && (size_t)n == len && memcmp(der, want, len) == 0;
  OPENSSL_free(want);
  return same;
}

static void test_chains_in_order_on_both_ends(void) {
  harness_cert ca, leaf;
  char chain[512];
  retls_conn *c, *s;
  const unsigned char *der;
  size_t len;
  CHECK(harness_make_cert(&ca, "ca", "retls test CA", NULL, -DAY, DAY, 1) == 0);
  CHECK(harness_make_cert(&leaf, "leaf", "localhost", &ca, -DAY, DAY, 0) == 0);
  harness_path(chain, sizeof(chain), "chain.pem");
  CHECK(harness_concat(chain, leaf.cert, ca.cert) == 0);
  CHECK_STATUS(NULL, versioned_pair(&c, &s, "TLSv1.3", chain, leaf.key),
               RETLS_OK);
  /* the client sees the server's certificate, then the CA it sent */
  CHECK_STATUS(c, retls_conn_chain_certificate(&der, &len, c, 0, 0), RETLS_OK);
  CHECK(der != NULL && same_der(der, len, leaf.cert));
  CHECK_STATUS(c, retls_conn_chain_certificate(&der, &len, c, 0, 1), RETLS_OK);
  CHECK(der != NULL && same_der(der, len, ca.cert));
  CHECK_STATUS(c, retls_conn_chain_certificate(&der, &len, c, 0, 2), RETLS_OK);
  CHECK(der == NULL && len == 0);
  /* the server's own chain is the same, from its side */
  CHECK_STATUS(s, retls_conn_chain_certificate(&der, &len, s, 1, 0), RETLS_OK);
  CHECK(der != NULL && same_der(der, len, leaf.cert));
  CHECK_STATUS(s, retls_conn_chain_certificate(&der, &len, s, 1, 1), RETLS_OK);
  CHECK(der != NULL && same_der(der, len, ca.cert));
  CHECK_STATUS(s, retls_conn_chain_certificate(&der, &len, s, 1, 2), RETLS_OK);
  CHECK(der == NULL);
  /* no client certificate: both views of it are empty */
  CHECK_STATUS(s, retls_conn_chain_certificate(&der, &len, s, 0, 0), RETLS_OK);
  CHECK(der == NULL);
  CHECK_STATUS(c, retls_conn_chain_certificate(&der, &len, c, 1, 0), RETLS_OK);
  CHECK(der == NULL);
  retls_conn_close(c, 0);
  CHECK_STATUS(c, retls_conn_chain_certificate(&der, &len, c, 0, 0),
               RETLS_CLOSED);
  retls_conn_free(c);
  retls_conn_free(s);
}

static void test_server_name_seen_by_both_ends(void) {
  retls_conn *c, *s;
  CHECK_STATUS(NULL, retls_pair_new(&c, &s, NULL, NULL, 0), RETLS_OK);
  CHECK(retls_conn_server_name(s) == NULL);
  CHECK_STATUS(c, retls_conn_set_server_name(c, "localhost"), RETLS_OK);
  CHECK_STATUS(c, harness_handshake(c, s), RETLS_OK);
  CHECK(retls_conn_server_name(c) != NULL &&
        strcmp(retls_conn_server_name(c), "localhost") == 0);
  CHECK(retls_conn_server_name(s) != NULL &&
        strcmp(retls_conn_server_name(s), "localhost") == 0);
  retls_conn_close(s, 0);
  CHECK(retls_conn_server_name(s) == NULL);
  retls_conn_free(c);
  retls_conn_free(s);
  /* an IP address is never sent as SNI (RFC 6066) */
  CHECK_STATUS(NULL, retls_pair_new(&c, &s, NULL, NULL, 0), RETLS_OK);
  CHECK_STATUS(c, retls_conn_set_server_name(c, "127.0.0.1"), RETLS_OK);
  CHECK_STATUS(c, harness_handshake(c, s), RETLS_OK);
  CHECK(retls_conn_server_name(c) == NULL && retls_conn_server_name(s) == NULL);
  retls_conn_free(c);
  retls_conn_free(s);
}

static void test_cipher_info(void) {
  retls_conn *c, *s;
  char desc[256];
  int bits = 0, alg = 0;
  CHECK_STATUS(NULL, versioned_pair(&c, &s, "TLSv1.3", NULL, NULL), RETLS_OK);
  CHECK_STATUS(c, retls_conn_cipher_info(&bits, &alg, c, desc, sizeof(desc)),
               RETLS_OK);
  CHECK(strncmp(desc, retls_conn_cipher(c), strlen(retls_conn_cipher(c))) ==
        0);
  CHECK(strstr(desc, "TLSv1.3") != NULL && strstr(desc, "Enc=") != NULL);
  CHECK(bits == 256 && alg == 256); /* TLS_AES_256_GCM_SHA384 */
  CHECK_STATUS(c, retls_conn_cipher_info(&bits, &alg, c, desc, 64),
               RETLS_BAD_ARG);
  retls_conn_free(c);
  retls_conn_free(s);
  CHECK_STATUS(NULL, retls_pair_new(&c, &s, NULL, NULL, 0), RETLS_OK);
  CHECK_STATUS(c, retls_conn_cipher_info(&bits, &alg, c, desc, sizeof(desc)),
               RETLS_BAD_ARG);
  retls_conn_free(c);
  retls_conn_free(s);
}

int main(void) {
  RUN(test_finished_messages_cross_over_tls13);
  RUN(test_finished_messages_cross_over_tls12);
  RUN(test_finished_before_handshake_is_empty);
  RUN(test_export_equal_on_both_ends_tls13);
  RUN(test_export_equal_on_both_ends_tls12);
  RUN(test_export_tls12_refuses_key_schedule_labels);
  RUN(test_export_before_handshake_refused);
  RUN(test_chains_in_order_on_both_ends);
  RUN(test_server_name_seen_by_both_ends);
  RUN(test_cipher_info);
  return harness_finish();
}
