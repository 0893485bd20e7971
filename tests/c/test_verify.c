/*
 * test_verify.c - certificate verification: RETLS_VERIFY with the verify
 * result's text in the detail, hostname and IP checks, expiry, chains,
 * client certificates.  Certificates are made at test time (harness_pki.c).
 */
#include "harness.h"

#include <openssl/pem.h>
#include <openssl/x509.h>

#define DAY 86400L

static harness_cert ca;   /* the test CA the clients trust */
static int have_ca;

static int make_ca(void) {
  if (!have_ca)
    have_ca = harness_make_cert(&ca, "ca", "retls test CA", NULL, -DAY,
                                30 * DAY, 1) == 0;
  return have_ca;
}

static retls_ctx *server_with(const harness_cert *cert) {
  retls_ctx *sc = NULL;
  if (retls_ctx_new(&sc, RETLS_SERVER) != RETLS_OK)
    return NULL;
  if (retls_ctx_use_certificate(sc, cert->cert, cert->key) != RETLS_OK) {
    fprintf(stderr, "use_certificate: %s\n", retls_ctx_last_error(sc));
    retls_ctx_free(sc);
    return NULL;
  }
  return sc;
}

/* A verifying client (the default) that trusts the test CA. */
static retls_ctx *client_trusting_ca(void) {
  retls_ctx *cc = NULL;
  if (!make_ca() || retls_ctx_new(&cc, RETLS_CLIENT) != RETLS_OK)
    return NULL;
  if (retls_ctx_load_verify(cc, ca.cert, NULL) != RETLS_OK) {
    fprintf(stderr, "load_verify: %s\n", retls_ctx_last_error(cc));
    retls_ctx_free(cc);
    return NULL;
  }
  return cc;
}

/* Handshake a pair (the pair's client checks the name "localhost") and
 * expect the client to fail verification with verify error code. */
static void expect_verify_failure(retls_ctx *cc, retls_ctx *sc, long code) {
  retls_conn *c, *s;
  const char *text = X509_verify_cert_error_string(code);
  size_t n;
  CHECK(cc && sc);
  CHECK_STATUS(NULL, retls_pair_new(&c, &s, cc, sc, 0), RETLS_OK);
  CHECK_STATUS(c, harness_handshake(c, s), RETLS_VERIFY);
  CHECK(strstr(retls_conn_last_error(c), "certificate verify failed") !=
        NULL);
  CHECK(strstr(retls_conn_last_error(c), text) != NULL);
  CHECK(retls_conn_verify_result(c) == code);
  CHECK(strcmp(retls_conn_verify_text(c), text) == 0);
  CHECK(!retls_conn_is_established(c));
  /* The failure is final, and its text survives. */
  CHECK_STATUS(c, retls_conn_write(&n, c, "x", 1), RETLS_CLOSED);
  CHECK(strstr(retls_conn_last_error(c), text) != NULL);
  /* The server was told by an alert (harness_handshake drove it into
   * that failure already). */
  CHECK_STATUS(s, retls_conn_handshake(s), RETLS_CLOSED);
  CHECK(strstr(retls_conn_last_error(s), "alert") != NULL);
  retls_conn_free(c);
  retls_conn_free(s);
}

static void test_self_signed_rejected(void) {
  retls_ctx *cc = NULL, *sc = harness_ctx(RETLS_SERVER);
  CHECK_STATUS(NULL, retls_ctx_new(&cc, RETLS_CLIENT), RETLS_OK);
  /* Verification is on by default for clients. */
  expect_verify_failure(cc, sc, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT);
  retls_ctx_free(cc);
  retls_ctx_free(sc);
}

static void test_trusted_chain_accepted(void) {
  harness_cert leaf;
  retls_ctx *cc = client_trusting_ca(), *sc;
  retls_conn *c, *s;
  const unsigned char *der;
  size_t der_len;
  X509 *x;
  FILE *f;
  unsigned char *want = NULL;
  int want_len;

  CHECK(harness_make_cert(&leaf, "leaf", "localhost", &ca, -DAY, DAY, 0) ==
        0);
  sc = server_with(&leaf);
  CHECK(cc && sc);
  CHECK_STATUS(NULL, harness_pair(&c, &s, cc, sc, 0), RETLS_OK);
  CHECK(retls_conn_verify_result(c) == X509_V_OK);
  CHECK(strcmp(retls_conn_verify_text(c), "ok") == 0);

  /* The peer certificate is exactly the server's. */
  CHECK_STATUS(c, retls_conn_peer_certificate(&der, &der_len, c), RETLS_OK);
  f = fopen(leaf.cert, "rb");
  CHECK(f != NULL);
  x = PEM_read_X509(f, NULL, NULL, NULL);
  fclose(f);
  CHECK(x != NULL);
  want_len = i2d_X509(x, &want);
  X509_free(x);
  CHECK(want_len > 0 && (size_t)want_len == der_len &&
        memcmp(der, want, der_len) == 0);
  OPENSSL_free(want);
  /* The server asked for no client certificate. */
  CHECK_STATUS(s, retls_conn_peer_certificate(&der, &der_len, s), RETLS_OK);
  CHECK(der == NULL && der_len == 0);

  retls_conn_free(c);
  retls_conn_free(s);
  retls_ctx_free(cc);
  retls_ctx_free(sc);
}

static void test_hostname_mismatch(void) {
  harness_cert other;
  retls_ctx *cc = client_trusting_ca(), *sc;
  CHECK(harness_make_cert(&other, "other", "other.example", &ca, -DAY, DAY,
                          0) == 0);
  sc = server_with(&other);
  expect_verify_failure(cc, sc, X509_V_ERR_HOSTNAME_MISMATCH);
  retls_ctx_free(cc);
  retls_ctx_free(sc);
}

/* An IP address as server name is checked against IP SANs (the test
 * certificates have only a DNS name). */
static void test_ip_address_mismatch(void) {
  harness_cert leaf;
  retls_ctx *cc = client_trusting_ca(), *sc;
  retls_conn *c, *s;
  CHECK(harness_make_cert(&leaf, "leaf-ip", "localhost", &ca, -DAY, DAY, 0) ==
        0);
  sc = server_with(&leaf);
  CHECK(cc && sc);
  CHECK_STATUS(NULL, retls_conn_new_memory(&c, cc, "127.0.0.1", 0), RETLS_OK);
  CHECK_STATUS(NULL, retls_conn_new_memory(&s, sc, NULL, 0), RETLS_OK);
  CHECK_STATUS(c, harness_memory_handshake(c, s), RETLS_VERIFY);
  CHECK(strstr(retls_conn_last_error(c),
               X509_verify_cert_error_string(X509_V_ERR_IP_ADDRESS_MISMATCH)) !=
        NULL);
  retls_conn_free(c);
  retls_conn_free(s);
  retls_ctx_free(cc);
  retls_ctx_free(sc);
}

/* retls_conn_set_server_name replaces the name given at creation (the
 * check and SNI), before the handshake only; an IP replaces a hostname
 * and the other way round. */
static void test_set_server_name(void) {
  harness_cert leaf;
  retls_ctx *cc = client_trusting_ca(), *sc;
  retls_conn *c, *s;
  CHECK(harness_make_cert(&leaf, "leaf-rename", "localhost", &ca, -DAY, DAY,
                          0) == 0);
  sc = server_with(&leaf);
  CHECK(cc && sc);

  /* made for the IP (which the certificate lacks), renamed: verifies */
  CHECK_STATUS(NULL, retls_conn_new_memory(&c, cc, "127.0.0.1", 0), RETLS_OK);
  CHECK_STATUS(NULL, retls_conn_new_memory(&s, sc, NULL, 0), RETLS_OK);
  CHECK_STATUS(c, retls_conn_set_server_name(c, "localhost"), RETLS_OK);
  CHECK_STATUS(c, harness_memory_handshake(c, s), RETLS_OK);
  CHECK(retls_conn_verify_result(c) == X509_V_OK);
  /* too late now */
  CHECK_STATUS(c, retls_conn_set_server_name(c, "other.example"),
               RETLS_BAD_ARG);
  CHECK(strstr(retls_conn_last_error(c), "handshake has started") != NULL);
  /* servers have no server name to set */
  CHECK_STATUS(s, retls_conn_set_server_name(s, "localhost"), RETLS_BAD_ARG);
  CHECK(strstr(retls_conn_last_error(s), "client connections only") != NULL);
  retls_conn_free(c);
  retls_conn_free(s);

  /* made for the right hostname, renamed to the IP: the hostname is gone */
  CHECK_STATUS(NULL, retls_conn_new_memory(&c, cc, "localhost", 0), RETLS_OK);
  CHECK_STATUS(NULL, retls_conn_new_memory(&s, sc, NULL, 0), RETLS_OK);
  CHECK_STATUS(c, retls_conn_set_server_name(c, ""), RETLS_BAD_ARG);
  CHECK_STATUS(c, retls_conn_set_server_name(c, "127.0.0.1"), RETLS_OK);
  CHECK_STATUS(c, harness_memory_handshake(c, s), RETLS_VERIFY);
  CHECK(strstr(retls_conn_last_error(c),
               X509_verify_cert_error_string(X509_V_ERR_IP_ADDRESS_MISMATCH)) !=
        NULL);
  retls_conn_free(c);
  retls_conn_free(s);
  CHECK_STATUS(NULL, retls_conn_set_server_name(NULL, "x"), RETLS_BAD_ARG);
  retls_ctx_free(cc);
  retls_ctx_free(sc);
}

static void test_expired_certificate(void) {
  harness_cert old;
  retls_ctx *cc = client_trusting_ca(), *sc;
  CHECK(harness_make_cert(&old, "expired", "localhost", &ca, -10 * DAY, -DAY,
                          0) == 0);
  sc = server_with(&old);
  expect_verify_failure(cc, sc, X509_V_ERR_CERT_HAS_EXPIRED);
  CHECK(strcmp(X509_verify_cert_error_string(X509_V_ERR_CERT_HAS_EXPIRED),
               "certificate has expired") == 0);
  retls_ctx_free(cc);
  retls_ctx_free(sc);
}

static void test_not_yet_valid_certificate(void) {
  harness_cert early;
  retls_ctx *cc = client_trusting_ca(), *sc;
  CHECK(harness_make_cert(&early, "future", "localhost", &ca, DAY, 10 * DAY,
                          0) == 0);
  sc = server_with(&early);
  expect_verify_failure(cc, sc, X509_V_ERR_CERT_NOT_YET_VALID);
  retls_ctx_free(cc);
  retls_ctx_free(sc);
}

static void test_unknown_issuer(void) {
  harness_cert other_ca, leaf;
  retls_ctx *cc = client_trusting_ca(), *sc;
  CHECK(harness_make_cert(&other_ca, "other-ca", "untrusted CA", NULL, -DAY,
                          DAY, 1) == 0);
  CHECK(harness_make_cert(&leaf, "untrusted-leaf", "localhost", &other_ca,
                          -DAY, DAY, 0) == 0);
  sc = server_with(&leaf);
  expect_verify_failure(cc, sc,
                        X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
  retls_ctx_free(cc);
  retls_ctx_free(sc);
}

/* A server certificate file may carry the chain after the leaf: the
 * client, trusting only the root, needs the intermediate from it. */
static void test_chain_file_with_intermediate(void) {
  harness_cert inter, leaf, chain;
  retls_ctx *cc = client_trusting_ca(), *sc;
  retls_conn *c, *s;
  CHECK(harness_make_cert(&inter, "inter", "retls intermediate", &ca, -DAY,
                          DAY, 1) == 0);
  CHECK(harness_make_cert(&leaf, "leaf-inter", "localhost", &inter, -DAY, DAY,
                          0) == 0);
  chain = leaf;
  harness_path(chain.cert, sizeof(chain.cert), "chain.pem");
  CHECK(harness_concat(chain.cert, leaf.cert, inter.cert) == 0);

  sc = server_with(&chain);
  CHECK(cc && sc);
  CHECK_STATUS(NULL, harness_pair(&c, &s, cc, sc, 0), RETLS_OK);
  CHECK(retls_conn_verify_result(c) == X509_V_OK);
  retls_conn_free(c);
  retls_conn_free(s);
  retls_ctx_free(sc);

  /* The leaf alone is not enough. */
  sc = server_with(&leaf);
  expect_verify_failure(cc, sc,
                        X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
  retls_ctx_free(cc);
  retls_ctx_free(sc);
}

/* Verification off: anything goes, and the result is still reported. */
static void test_verification_off_accepts_and_reports(void) {
  retls_conn *c, *s;
  CHECK_STATUS(NULL, harness_pair(&c, &s, NULL, NULL, 0), RETLS_OK);
  CHECK(retls_conn_verify_result(c) == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT);
  retls_conn_free(c);
  retls_conn_free(s);
}

/* A verifying client needs a name to check. */
static void test_verifying_client_needs_a_server_name(void) {
  retls_ctx *cc = NULL;
  retls_conn *c = (retls_conn *)&cc; /* must be reset to NULL */
  CHECK_STATUS(NULL, retls_ctx_new(&cc, RETLS_CLIENT), RETLS_OK);
  CHECK_STATUS(NULL, retls_conn_new_memory(&c, cc, NULL, 0), RETLS_BAD_ARG);
  CHECK(c == NULL);
  CHECK(strstr(retls_ctx_last_error(cc), "hostname") != NULL);
  CHECK_STATUS(NULL, retls_conn_new_memory(&c, cc, "", 0), RETLS_BAD_ARG);
  retls_ctx_free(cc);
}

/* Servers may require client certificates. */
static void test_client_certificate_required(void) {
  harness_cert client_cert, server_cert;
  retls_ctx *cc, *sc;
  retls_conn *c, *s;
  const unsigned char *der;
  size_t der_len;

  CHECK(make_ca());
  CHECK(harness_make_cert(&server_cert, "srv", "localhost", &ca, -DAY, DAY,
                          0) == 0);
  CHECK(harness_make_cert(&client_cert, "cli", "client", &ca, -DAY, DAY, 0) ==
        0);
  sc = server_with(&server_cert);
  CHECK(sc != NULL);
  CHECK_STATUS(NULL, retls_ctx_set_verify(sc, 1), RETLS_OK);
  CHECK_STATUS(NULL, retls_ctx_load_verify(sc, ca.cert, NULL), RETLS_OK);

  /* Without a certificate: the server refuses. */
  cc = client_trusting_ca();
  CHECK(cc != NULL);
  CHECK_STATUS(NULL, retls_pair_new(&c, &s, cc, sc, 0), RETLS_OK);
  /* In TLS 1.3 the client finishes first; the server then refuses. */
  CHECK_STATUS(s, harness_handshake(c, s), RETLS_SSL);
  CHECK(strstr(retls_conn_last_error(s), "peer did not return a certificate") !=
        NULL);
  /* The client learns it from the alert on its next read. */
  {
    unsigned char buf[16];
    size_t n;
    CHECK_STATUS(c, retls_conn_read(&n, c, buf, sizeof(buf)), RETLS_SSL);
    CHECK(strstr(retls_conn_last_error(c), "certificate required") != NULL);
  }
  retls_conn_free(c);
  retls_conn_free(s);

  /* With one: accepted, and the server sees it. */
  CHECK_STATUS(NULL,
               retls_ctx_use_certificate(cc, client_cert.cert, client_cert.key),
               RETLS_OK);
  CHECK_STATUS(NULL, harness_pair(&c, &s, cc, sc, 0), RETLS_OK);
  CHECK_STATUS(s, retls_conn_peer_certificate(&der, &der_len, s), RETLS_OK);
  CHECK(der != NULL && der_len > 0);
  CHECK(retls_conn_verify_result(s) == X509_V_OK);
  retls_conn_free(c);
  retls_conn_free(s);
  retls_ctx_free(cc);
  retls_ctx_free(sc);
}

int main(void) {
  RUN(test_self_signed_rejected);
  RUN(test_trusted_chain_accepted);
  RUN(test_hostname_mismatch);
  RUN(test_ip_address_mismatch);
  RUN(test_set_server_name);
  RUN(test_expired_certificate);
  RUN(test_not_yet_valid_certificate);
  RUN(test_unknown_issuer);
  RUN(test_chain_file_with_intermediate);
  RUN(test_verification_off_accepts_and_reports);
  RUN(test_verifying_client_needs_a_server_name);
  RUN(test_client_certificate_required);
  return harness_finish();
}
