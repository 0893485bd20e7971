/*
 * test_context.c - the status list, and bad arguments: each gives
 * RETLS_BAD_ARG with a text that names the problem (and never a crash).
 */
#include "harness.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <sys/socket.h>

/* ---- statuses ---------------------------------------------------------- */

static void test_status_names_and_messages(void) {
  static const struct {
    int value;
    const char *name;
  } all[] = {
#define XX(name, value, msg) {value, "RETLS_" #name},
      RETLS_STATUS_MAP(XX)
#undef XX
  };
  size_t i, j, count = sizeof(all) / sizeof(all[0]);
  CHECK(count == 14);
  for (i = 0; i < count; i++) {
    const char *msg = retls_strerror(all[i].value);
    CHECK(strcmp(retls_status_name(all[i].value), all[i].name) == 0);
    CHECK(msg != NULL && strlen(msg) > 5);
    CHECK(strcmp(msg, "unknown status") != 0);
    for (j = 0; j < i; j++) {
      CHECK(all[i].value != all[j].value);
      CHECK(strcmp(msg, retls_strerror(all[j].value)) != 0);
    }
  }
  /* The values the API promises. */
  CHECK(RETLS_OK == 0 && RETLS_WANT_READ == 1 && RETLS_WANT_WRITE == 2);
  CHECK(RETLS_ZERO_RETURN < 0 && RETLS_EOF < 0 && RETLS_SYSCALL < 0 &&
        RETLS_SSL < 0 && RETLS_VERIFY < 0 && RETLS_RETRY_MISMATCH < 0 &&
        RETLS_CLOSED < 0 && RETLS_BAD_ARG < 0 && RETLS_NOMEM < 0 &&
        RETLS_WRITE_PENDING < 0 && RETLS_TIMEOUT < 0);
  CHECK(strcmp(retls_status_name(RETLS_RETRY_MISMATCH),
               "RETLS_RETRY_MISMATCH") == 0);
  CHECK(strstr(retls_strerror(RETLS_RETRY_MISMATCH), "flush") != NULL);
  CHECK(strstr(retls_strerror(RETLS_WRITE_PENDING), "RETLS_CLOSE_DISCARD") !=
        NULL);
  /* Outside the list. */
  CHECK(strcmp(retls_status_name(3), "RETLS_UNKNOWN") == 0);
  CHECK(strcmp(retls_status_name(RETLS__STATUS_END), "RETLS_UNKNOWN") == 0);
  CHECK(strcmp(retls_status_name(-1000), "RETLS_UNKNOWN") == 0);
  CHECK(strcmp(retls_strerror(12345), "unknown status") == 0);
}

static void test_versions_text(void) {
  CHECK(strcmp(retls_version(), RETLS_VERSION) == 0);
  CHECK(strncmp(retls_openssl_version(), "OpenSSL 3.", 10) == 0);
}

/* ---- contexts ---------------------------------------------------------- */

#define CHECK_CTX_BAD(ctx, expr, text)                                     \
  do {                                                                     \
    int st_ = (expr);                                                      \
    if (st_ != RETLS_BAD_ARG ||                                            \
        strstr(retls_ctx_last_error(ctx), text) == NULL) {                 \
      fprintf(stderr, "%s:%d: %s gave %s (\"%s\"), expected BAD_ARG with " \
              "\"%s\"\n", __FILE__, __LINE__, #expr,                       \
              retls_status_name(st_), retls_ctx_last_error(ctx), text);    \
      harness_failures++;                                                  \
      return;                                                              \
    }                                                                      \
  } while (0)

static void test_ctx_bad_arguments(void) {
  retls_ctx *cc = NULL, *sc = NULL, *x = (retls_ctx *)&cc;
  char longname[400], longalpn[300];

  CHECK(retls_ctx_new(NULL, RETLS_CLIENT) == RETLS_BAD_ARG);
  CHECK(retls_ctx_new(&x, (retls_role)7) == RETLS_BAD_ARG);
  CHECK(x == NULL);
  CHECK_STATUS(NULL, retls_ctx_new(&cc, RETLS_CLIENT), RETLS_OK);
  CHECK_STATUS(NULL, retls_ctx_new(&sc, RETLS_SERVER), RETLS_OK);
  CHECK(retls_ctx_role(cc) == RETLS_CLIENT);
  CHECK(retls_ctx_role(sc) == RETLS_SERVER);
  CHECK(strcmp(retls_ctx_last_error(cc), "") == 0);

  CHECK_CTX_BAD(cc, retls_ctx_set_versions(cc, "TLSv9", NULL),
                "unknown TLS version 'TLSv9'");
  CHECK(strstr(retls_ctx_last_error(cc), "TLSv1.3") != NULL); /* the way out */
  CHECK_CTX_BAD(cc, retls_ctx_set_versions(cc, NULL, "SSLv3"), "'SSLv3'");
  CHECK_CTX_BAD(cc, retls_ctx_set_versions(cc, "TLSv1.3", "TLSv1.2"),
                "above maximum");
  CHECK_CTX_BAD(cc, retls_ctx_set_ciphers(cc, "NO-SUCH-CIPHER"),
                "no usable cipher in 'NO-SUCH-CIPHER'");
  CHECK_CTX_BAD(cc, retls_ctx_set_ciphers(cc, NULL), "no usable cipher");
  CHECK_CTX_BAD(cc, retls_ctx_set_ciphersuites(cc, "TLS_NOPE"),
                "'TLS_NOPE'");
  CHECK_CTX_BAD(cc, retls_ctx_set_alpn(cc, "h2,,http/1.1"), "1..255 bytes");
  memset(longalpn, 'a', sizeof(longalpn) - 1);
  longalpn[sizeof(longalpn) - 1] = '\0';
  CHECK_CTX_BAD(cc, retls_ctx_set_alpn(cc, longalpn), "1..255 bytes");
  CHECK_CTX_BAD(cc, retls_ctx_set_keylog(cc, "/nonexistent-dir/keys.log"),
                "cannot open keylog file '/nonexistent-dir/keys.log'");
  CHECK_CTX_BAD(cc, retls_ctx_set_max_send_fragment(cc, 100), "512..16384");
  CHECK_CTX_BAD(cc, retls_ctx_set_max_send_fragment(cc, 16385),
                "512..16384");
  CHECK_CTX_BAD(cc, retls_ctx_load_verify(cc, NULL, NULL),
                "CA file or a CA directory");
  CHECK_CTX_BAD(cc, retls_ctx_load_verify(cc, "/nonexistent.pem", NULL),
                "cannot load CA file '/nonexistent.pem'");
  /* A CA directory is checked at once, not at the first verification. */
  CHECK_CTX_BAD(cc, retls_ctx_load_verify(cc, NULL, "/nonexistent-dir"),
                "cannot use CA directory '/nonexistent-dir': No such file");
  CHECK_CTX_BAD(cc, retls_ctx_load_verify(cc, NULL, __FILE__),
                "not a directory");
  CHECK_CTX_BAD(sc, retls_ctx_use_certificate(sc, NULL, NULL),
                "certificate file is required");
  CHECK_CTX_BAD(sc, retls_ctx_use_certificate(sc, "/nonexistent.pem", NULL),
                "cannot load certificate '/nonexistent.pem'");
  memset(longname, 'a', sizeof(longname) - 1);
  longname[sizeof(longname) - 1] = '\0';
  CHECK_CTX_BAD(sc, retls_ctx_use_selfsigned(sc, longname), "255");

  /* A key that does not belong to the certificate. */
  {
    harness_cert a, b;
    CHECK(harness_make_cert(&a, "a", "localhost", NULL, -60, 3600, 0) == 0);
    CHECK(harness_make_cert(&b, "b", "localhost", NULL, -60, 3600, 0) == 0);
    CHECK_CTX_BAD(sc, retls_ctx_use_certificate(sc, a.cert, b.key),
                  "key values mismatch");
    CHECK(strstr(retls_ctx_last_error(sc), b.key) != NULL);
    CHECK_STATUS(NULL, retls_ctx_use_certificate(sc, a.cert, a.key),
                 RETLS_OK);
  }

  /* A success clears the previous failure text. */
  CHECK_STATUS(NULL, retls_ctx_set_versions(cc, "TLSv1.2", "TLSv1.3"),
               RETLS_OK);
  CHECK(strcmp(retls_ctx_last_error(cc), "") == 0);

  /* NULL contexts. */
  CHECK(retls_ctx_set_verify(NULL, 1) == RETLS_BAD_ARG);
  CHECK(retls_ctx_load_verify(NULL, "x", NULL) == RETLS_BAD_ARG);
  CHECK(retls_ctx_use_certificate(NULL, "x", NULL) == RETLS_BAD_ARG);
  CHECK(retls_ctx_use_selfsigned(NULL, NULL) == RETLS_BAD_ARG);
  CHECK(retls_ctx_set_versions(NULL, NULL, NULL) == RETLS_BAD_ARG);
  CHECK(retls_ctx_set_ciphers(NULL, "ALL") == RETLS_BAD_ARG);
  CHECK(retls_ctx_set_ciphersuites(NULL, "TLS_AES_128_GCM_SHA256") ==
        RETLS_BAD_ARG);
  CHECK(retls_ctx_set_alpn(NULL, "h2") == RETLS_BAD_ARG);
  CHECK(retls_ctx_set_keylog(NULL, NULL) == RETLS_BAD_ARG);
  CHECK(retls_ctx_set_auto_retry(NULL, 1) == RETLS_BAD_ARG);
  CHECK(retls_ctx_set_partial_write(NULL, 1) == RETLS_BAD_ARG);
  CHECK(retls_ctx_set_max_send_fragment(NULL, 1024) == RETLS_BAD_ARG);
  CHECK(retls_ctx_set_renegotiation(NULL, 1) == RETLS_BAD_ARG);

  retls_ctx_free(cc);
  retls_ctx_free(sc);
}

/* ---- connections -------------------------------------------------------- */

static void test_conn_bad_arguments(void) {
  retls_ctx *cc = harness_ctx(RETLS_CLIENT), *sc = harness_ctx(RETLS_SERVER);
  retls_conn *c = NULL, *s = NULL, *m = NULL;
  unsigned char buf[8];
  size_t n;
  int sv[2];

  CHECK(cc && sc);
  /* Creation. */
  CHECK(retls_conn_new_memory(NULL, cc, NULL, 0) == RETLS_BAD_ARG);
  CHECK(retls_conn_new_memory(&m, NULL, NULL, 0) == RETLS_BAD_ARG);
  CHECK_CTX_BAD(cc, retls_conn_new_fd(&c, cc, -1, 0, NULL),
                "not an open file descriptor");
  CHECK(c == NULL);
  CHECK_CTX_BAD(cc, retls_conn_new_fd(&c, cc, 1000, 0, NULL),
                "fd 1000 is not an open file descriptor");
  CHECK_CTX_BAD(sc, retls_conn_new_memory(&m, sc, "example.com", 0),
                "client connections only");
  /* Roles swapped: each context is told what is wrong with it. */
  CHECK_CTX_BAD(sc, retls_pair_new(&c, &s, sc, cc, 0),
                "the first context must be a client context");
  CHECK(strstr(retls_ctx_last_error(cc),
               "the second context must be a server context") != NULL);
  CHECK(c == NULL && s == NULL);
  CHECK(retls_pair_new(NULL, &s, NULL, NULL, 0) == RETLS_BAD_ARG);
  CHECK_CTX_BAD(cc, retls_connect(&c, cc, "127.0.0.1", 0, 1000, NULL),
                "port in 1..65535");
  CHECK_CTX_BAD(cc, retls_connect(&c, cc, NULL, 443, 1000, NULL),
                "need a host");
  CHECK_CTX_BAD(cc, retls_connect(&c, cc, "127.0.0.1", 443, -5, NULL),
                "timeout >= 0");
  CHECK(retls_connect(NULL, cc, "127.0.0.1", 443, 0, NULL) == RETLS_BAD_ARG);

  /* Operations. */
  CHECK_STATUS(NULL, harness_pair(&c, &s, cc, sc, 0), RETLS_OK);
  CHECK_STATUS(c, retls_conn_read(&n, c, NULL, 8), RETLS_BAD_ARG);
  CHECK(strstr(retls_conn_last_error(c), "at least 1 byte") != NULL);
  CHECK_STATUS(c, retls_conn_read(&n, c, buf, 0), RETLS_BAD_ARG);
  CHECK_STATUS(c, retls_conn_bio_write(&n, c, "x", 1), RETLS_BAD_ARG);
  CHECK(strstr(retls_conn_last_error(c), "only for memory-mode") != NULL);
  CHECK_STATUS(c, retls_conn_bio_read(&n, c, buf, 8), RETLS_BAD_ARG);
  CHECK_STATUS(c, retls_conn_bio_write_eof(c), RETLS_BAD_ARG);
  CHECK(retls_conn_peer_certificate(NULL, &n, c) == RETLS_BAD_ARG);
  /* None of that hurt the connection. */
  CHECK_STATUS(c, retls_conn_write(&n, c, "fine", 4), RETLS_OK);
  CHECK_STATUS(s, retls_conn_read(&n, s, buf, sizeof(buf)), RETLS_OK);
  CHECK(n == 4 && memcmp(buf, "fine", 4) == 0);
  retls_conn_free(c);
  retls_conn_free(s);

  CHECK_STATUS(NULL, retls_conn_new_memory(&m, cc, NULL, 0), RETLS_OK);
  CHECK_STATUS(m, retls_conn_bio_read(&n, m, NULL, 8), RETLS_BAD_ARG);
  CHECK_STATUS(m, retls_conn_bio_write(&n, m, NULL, 8), RETLS_BAD_ARG);
  CHECK_STATUS(m, retls_conn_bio_write(&n, m, NULL, 0), RETLS_OK);
  retls_conn_free(m);

  /* An fd the connection does not own stays open after close; one it
   * owns is closed. */
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  CHECK_STATUS(NULL, retls_conn_new_fd(&c, cc, sv[0], 0, NULL), RETLS_OK);
  CHECK(retls_conn_fileno(c) == sv[0]);
  CHECK_STATUS(c, retls_conn_close(c, 0), RETLS_OK);
  CHECK(fcntl(sv[0], F_GETFD) >= 0);
  retls_conn_free(c);
  CHECK_STATUS(NULL, retls_conn_new_fd(&c, cc, sv[0], RETLS_FD_OWN, NULL),
               RETLS_OK);
  retls_conn_free(c);
  CHECK(fcntl(sv[0], F_GETFD) < 0);
  close(sv[1]);

  retls_ctx_free(cc);
  retls_ctx_free(sc);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  RUN(test_status_names_and_messages);
  RUN(test_versions_text);
  RUN(test_ctx_bad_arguments);
  RUN(test_conn_bad_arguments);
  return harness_finish();
}
