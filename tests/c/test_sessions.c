/*
 * test_sessions.c - sessions and resumption (mirrors
 * tests/python/test_sessions.py): TLS 1.3 tickets, TLS 1.2 session IDs and
 * tickets, against a retls server (pairs) and "openssl s_server"; sessions
 * through their bytes; the bad-input cases.  Plus the two server handshake
 * fixes of the same issue: strict ALPN and automatic DH parameters, each
 * checked with "openssl s_client".
 */
#include "harness.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#define DAY 86400L

/* Read on the client (feeding the server nothing) until the session that
 * TLS 1.3 sends after the handshake has arrived, then return it. */
static retls_session *session_after_read(retls_conn *c, retls_conn *s) {
  unsigned char buf[64];
  size_t n;
  retls_session *sess = NULL;
  /* The server writes a byte so the tickets before it are processed. */
  if (retls_conn_write(&n, s, "x", 1) != RETLS_OK ||
      retls_conn_read(&n, c, buf, sizeof(buf)) != RETLS_OK || n != 1)
    return NULL;
  if (retls_conn_session(&sess, c) != RETLS_OK)
    return NULL;
  return sess;
}

/* A round trip both ways: the bytes arrive intact. */
static int exchange(retls_conn *c, retls_conn *s) {
  unsigned char buf[64];
  size_t n;
  if (retls_conn_write(&n, c, "ping", 4) != RETLS_OK ||
      retls_conn_read(&n, s, buf, sizeof(buf)) != RETLS_OK || n != 4 ||
      memcmp(buf, "ping", 4) != 0)
    return -1;
  return 0;
}

static void resume_pair(const char *version, size_t tickets) {
  retls_ctx *cc = harness_ctx(RETLS_CLIENT), *sc = harness_ctx(RETLS_SERVER);
  retls_conn *c = NULL, *s = NULL;
  retls_session *sess, *back = NULL;
  const unsigned char *der;
  size_t der_len;
  CHECK(cc && sc);
  CHECK_STATUS(NULL, retls_ctx_set_versions(cc, NULL, version), RETLS_OK);
  CHECK_STATUS(NULL, retls_ctx_set_tickets(sc, tickets), RETLS_OK);
  CHECK_STATUS(NULL, harness_pair(&c, &s, cc, sc, 0), RETLS_OK);
  CHECK(!retls_conn_session_reused(c));
  sess = session_after_read(c, s);
  CHECK(sess != NULL);
  CHECK(retls_session_is_resumable(sess));
  if (tickets > 0)
    CHECK(retls_session_ticket_lifetime(sess) > 0);
  /* Through the portable bytes, as another process would. */
  CHECK_STATUS(NULL, retls_session_to_bytes(&der, &der_len, sess), RETLS_OK);
  CHECK_STATUS(NULL, retls_session_from_bytes(&back, der, der_len), RETLS_OK);
  retls_session_free(sess);
  /* A connection that ends without close_notify takes its session out of
   * the server's cache (OpenSSL's rule): end this one properly. */
  CHECK_STATUS(c, retls_conn_shutdown(c), RETLS_OK);
  CHECK_STATUS(s, retls_conn_shutdown(s), RETLS_OK);
  retls_conn_free(c);
  retls_conn_free(s);

  CHECK_STATUS(NULL, retls_pair_new(&c, &s, cc, sc, 0), RETLS_OK);
  CHECK_STATUS(c, retls_conn_set_session(c, back), RETLS_OK);
  retls_session_free(back); /* the connection holds its own reference */
  CHECK_STATUS(c, harness_handshake(c, s), RETLS_OK);
  CHECK(retls_conn_session_reused(c));
  CHECK(retls_conn_session_reused(s));
  CHECK(strcmp(retls_conn_version(c), version) == 0);
  CHECK(exchange(c, s) == 0);
  retls_conn_free(c);
  retls_conn_free(s);
  retls_ctx_free(cc);
  retls_ctx_free(sc);
}

static void test_resume_tls13_ticket_retls_server(void) {
  resume_pair("TLSv1.3", 2);
}
static void test_resume_tls12_ticket_retls_server(void) {
  resume_pair("TLSv1.2", 2);
}
static void test_resume_tls12_session_id_retls_server(void) {
  resume_pair("TLSv1.2", 0);
}

/* ---- against openssl s_server ------------------------------------------ */

static harness_cert ca, leaf;
static int have_certs;

static int make_certs(void) {
  if (!have_certs)
    have_certs =
        harness_make_cert(&ca, "ca", "retls test CA", NULL, -DAY, DAY, 1) ==
            0 &&
        harness_make_cert(&leaf, "localhost", "localhost", &ca, -DAY, DAY,
                          0) == 0;
  return have_certs;
}

/* One blocking connection to s_server -rev: a line out, its reversal
 * back (which also brings the TLS 1.3 tickets), then the session. */
static int s_server_round(retls_session **out, int *reused, int port,
                          const char *version, retls_session *offer) {
  retls_ctx *cc = NULL;
  retls_conn *c = NULL;
  char buf[64];
  size_t n, got = 0;
  int rc = -1;
  *out = NULL;
  if (retls_ctx_new(&cc, RETLS_CLIENT) != RETLS_OK ||
      retls_ctx_load_verify(cc, ca.cert, NULL) != RETLS_OK ||
      retls_ctx_set_versions(cc, NULL, version) != RETLS_OK ||
      retls_connect(&c, cc, "127.0.0.1", port, 10000, "localhost") !=
          RETLS_OK)
    goto done;
  if (offer != NULL && retls_conn_set_session(c, offer) != RETLS_OK)
    goto done;
  if (retls_conn_write(&n, c, "olleh\n", 6) != RETLS_OK)
    goto done;
  while (got < 6) {
    if (retls_conn_read(&n, c, buf + got, sizeof(buf) - got) != RETLS_OK)
      goto done;
    got += n;
  }
  if (got != 6 || memcmp(buf, "hello\n", 6) != 0)
    goto done;
  *reused = retls_conn_session_reused(c);
  if (retls_conn_session(out, c) != RETLS_OK || *out == NULL)
    goto done;
  /* close_notify, or s_server drops a session ID from its cache. */
  if (retls_conn_shutdown(c) != RETLS_OK)
    goto done;
  rc = 0;
done:
  if (rc != 0 && c != NULL)
    fprintf(stderr, "s_server_round: %s\n", retls_conn_last_error(c));
  retls_conn_free(c);
  retls_ctx_free(cc);
  return rc;
}

static void resume_s_server(const char *version, const char *extra) {
  char args[1500];
  int port, pid, reused = -1;
  retls_session *first = NULL, *second = NULL;
  CHECK(make_certs());
  snprintf(args, sizeof(args), "-rev -cert %s -key %s %s", leaf.cert,
           leaf.key, extra);
  pid = harness_start_s_server(&port, args);
  CHECK(pid > 0);
  if (s_server_round(&first, &reused, port, version, NULL) != 0 ||
      reused != 0 ||
      s_server_round(&second, &reused, port, version, first) != 0 ||
      reused != 1) {
    harness_s_server_log(port);
    harness_stop(pid);
    retls_session_free(first);
    retls_session_free(second);
    CHECK(!"resumption against s_server");
  }
  harness_stop(pid);
  retls_session_free(first);
  retls_session_free(second);
}

static void test_resume_tls13_ticket_s_server(void) {
  resume_s_server("TLSv1.3", "");
}
static void test_resume_tls12_ticket_s_server(void) {
  resume_s_server("TLSv1.2", "");
}
static void test_resume_tls12_session_id_s_server(void) {
  resume_s_server("TLSv1.2", "-no_ticket");
}

/* ---- bad input --------------------------------------------------------- */

static void test_session_from_garbage_and_truncated_bytes(void) {
  retls_ctx *cc = harness_ctx(RETLS_CLIENT), *sc = harness_ctx(RETLS_SERVER);
  retls_conn *c = NULL, *s = NULL;
  retls_session *sess, *back = (retls_session *)1;
  const unsigned char *der;
  unsigned char *longer;
  size_t der_len;
  CHECK(cc && sc);
  CHECK_STATUS(NULL, retls_session_from_bytes(&back, "garbage", 7),
               RETLS_BAD_ARG);
  CHECK(back == NULL);
  CHECK(strstr(retls_session_last_error(), "not a TLS session") != NULL);
  CHECK_STATUS(NULL, retls_session_from_bytes(&back, "", 0), RETLS_BAD_ARG);
  CHECK_STATUS(NULL, harness_pair(&c, &s, cc, sc, 0), RETLS_OK);
  sess = session_after_read(c, s);
  CHECK(sess != NULL);
  retls_session_to_bytes(&der, &der_len, sess);
  CHECK_STATUS(NULL, retls_session_from_bytes(&back, der, der_len / 2),
               RETLS_BAD_ARG);
  CHECK(back == NULL);
  longer = malloc(der_len + 1);
  memcpy(longer, der, der_len);
  longer[der_len] = 0;
  CHECK_STATUS(NULL, retls_session_from_bytes(&back, longer, der_len + 1),
               RETLS_BAD_ARG);
  CHECK(strstr(retls_session_last_error(), "trailing") != NULL);
  free(longer);
  /* References: the last free releases it. */
  CHECK(retls_session_ref(sess) == sess);
  retls_session_free(sess);
  CHECK(retls_session_is_resumable(sess));
  retls_session_free(sess);
  retls_session_free(NULL);
  retls_conn_free(c);
  retls_conn_free(s);
  retls_ctx_free(cc);
  retls_ctx_free(sc);
}

/* A memory-mode client for a given server name, handshake done and the
 * tickets read; its session back in *out. */
static int session_for_name(retls_session **out, retls_ctx *cc,
                            retls_ctx *sc, const char *name) {
  retls_conn *c = NULL, *s = NULL;
  int rc = -1;
  *out = NULL;
  if (retls_conn_new_memory(&c, cc, name, 0) == RETLS_OK &&
      retls_conn_new_memory(&s, sc, NULL, 0) == RETLS_OK &&
      harness_memory_handshake(c, s) == RETLS_OK) {
    size_t n;
    unsigned char b[8];
    if (retls_conn_write(&n, s, "x", 1) == RETLS_OK) {
      harness_relay(s, c, 0, NULL);
      if (retls_conn_read(&n, c, b, sizeof(b)) == RETLS_OK &&
          retls_conn_session(out, c) == RETLS_OK && *out != NULL)
        rc = 0;
    }
  }
  retls_conn_free(c);
  retls_conn_free(s);
  return rc;
}

static void test_session_from_another_server_or_version(void) {
  retls_ctx *cc = harness_ctx(RETLS_CLIENT), *sc = harness_ctx(RETLS_SERVER);
  retls_ctx *cc12 = harness_ctx(RETLS_CLIENT), *cc13 = harness_ctx(RETLS_CLIENT);
  retls_conn *c = NULL, *s = NULL;
  retls_session *alpha = NULL, *tls12 = NULL;
  CHECK(cc && sc && cc12 && cc13);
  CHECK(session_for_name(&alpha, cc, sc, "alpha.test") == 0);
  /* Another server name: refused, and the connection still works. */
  CHECK_STATUS(NULL, retls_conn_new_memory(&c, cc, "beta.test", 0), RETLS_OK);
  CHECK_STATUS(NULL, retls_conn_new_memory(&s, sc, NULL, 0), RETLS_OK);
  CHECK_STATUS(c, retls_conn_set_session(c, alpha), RETLS_BAD_ARG);
  CHECK(strstr(retls_conn_last_error(c), "'alpha.test'") != NULL);
  CHECK_STATUS(c, harness_memory_handshake(c, s), RETLS_OK);
  CHECK(!retls_conn_session_reused(c));
  /* After the handshake: refused too. */
  CHECK_STATUS(c, retls_conn_set_session(c, alpha), RETLS_BAD_ARG);
  retls_conn_free(c);
  retls_conn_free(s);
  /* A server connection has no use for a session. */
  CHECK_STATUS(NULL, retls_conn_new_memory(&s, sc, NULL, 0), RETLS_OK);
  CHECK_STATUS(s, retls_conn_set_session(s, alpha), RETLS_BAD_ARG);
  retls_conn_free(s);
  /* Another protocol version than the context allows. */
  CHECK_STATUS(NULL, retls_ctx_set_versions(cc12, NULL, "TLSv1.2"), RETLS_OK);
  CHECK_STATUS(NULL, retls_ctx_set_versions(cc13, "TLSv1.3", NULL), RETLS_OK);
  CHECK(session_for_name(&tls12, cc12, sc, "alpha.test") == 0);
  CHECK_STATUS(NULL, retls_conn_new_memory(&c, cc13, "alpha.test", 0),
               RETLS_OK);
  CHECK_STATUS(c, retls_conn_set_session(c, tls12), RETLS_BAD_ARG);
  CHECK(strstr(retls_conn_last_error(c), "TLSv1.2") != NULL);
  retls_conn_free(c);
  retls_session_free(alpha);
  retls_session_free(tls12);
  retls_ctx_free(cc);
  retls_ctx_free(cc12);
  retls_ctx_free(cc13);
  retls_ctx_free(sc);
}

static void test_session_options_by_role(void) {
  retls_ctx *cc = harness_ctx(RETLS_CLIENT), *sc = harness_ctx(RETLS_SERVER);
  CHECK(cc && sc);
  CHECK_STATUS(NULL, retls_ctx_set_tickets(cc, 1), RETLS_BAD_ARG);
  CHECK(strstr(retls_ctx_last_error(cc), "server option") != NULL);
  CHECK_STATUS(NULL, retls_ctx_set_tickets(sc, 101), RETLS_BAD_ARG);
  CHECK_STATUS(NULL, retls_ctx_set_early_data(cc, 100), RETLS_BAD_ARG);
  CHECK_STATUS(NULL, retls_ctx_set_early_data_replay(sc, 1), RETLS_BAD_ARG);
  CHECK_STATUS(NULL, retls_ctx_set_alpn_strict(cc, 1), RETLS_BAD_ARG);
  retls_ctx_free(cc);
  retls_ctx_free(sc);
}

/* ---- the handshake fixes, checked with openssl s_client ---------------- */

/* Serve one connection on a retls server (blocking accept) while
 * "openssl s_client <args>" connects; *out_status is the server's
 * handshake status and out gets s_client's output. */
static int serve_s_client(int *out_status, harness_buf *out, retls_ctx *sc,
                          const char *args) {
  struct sockaddr_in sa;
  socklen_t len = sizeof(sa);
  int lfd, fd, pid, pipefd[2], rc = -1;
  retls_conn *s = NULL;
  char cmd[1024], buf[4096];
  ssize_t n;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  lfd = socket(AF_INET, SOCK_STREAM, 0);
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
      listen(lfd, 1) != 0 ||
      getsockname(lfd, (struct sockaddr *)&sa, &len) != 0 || pipe(pipefd))
    return -1;
  snprintf(cmd, sizeof(cmd),
           "exec timeout 20 openssl s_client -ign_eof -connect 127.0.0.1:%d %s "
           "</dev/null 2>&1",
           ntohs(sa.sin_port), args);
  pid = fork();
  if (pid == 0) {
    dup2(pipefd[1], 1);
    close(pipefd[0]);
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  close(pipefd[1]);
  {
    struct pollfd p = {lfd, POLLIN, 0};
    if (poll(&p, 1, 15000) != 1)
      goto done;
  }
  fd = accept(lfd, NULL, NULL);
  if (fd < 0 || retls_conn_new_fd(&s, sc, fd, RETLS_FD_OWN, NULL) != RETLS_OK)
    goto done;
  *out_status = retls_conn_handshake(s);
  if (*out_status == RETLS_OK) {
    size_t w;
    retls_conn_write(&w, s, "served\n", 7);
    retls_conn_shutdown(s);
  }
  retls_conn_free(s);
  rc = 0;
done:
  while ((n = read(pipefd[0], buf, sizeof(buf))) > 0)
    harness_buf_append(out, buf, (size_t)n);
  harness_buf_append(out, "", 1);
  close(pipefd[0]);
  close(lfd);
  waitpid(pid, NULL, 0);
  return rc;
}

static void test_alpn_strict_against_s_client(void) {
  retls_ctx *sc = harness_ctx(RETLS_SERVER);
  harness_buf out = {0};
  int status = 0;
  CHECK(sc);
  CHECK_STATUS(NULL, retls_ctx_set_alpn(sc, "h2"), RETLS_OK);
  /* Default for servers: the RFC 7301 alert. */
  CHECK(serve_s_client(&status, &out, sc, "-alpn spdy/1") == 0);
  CHECK(status == RETLS_SSL);
  CHECK(strstr((char *)out.data, "no application protocol") != NULL);
  harness_buf_free(&out);
  /* A client that offers nothing is served either way. */
  CHECK(serve_s_client(&status, &out, sc, "") == 0);
  CHECK_STATUS(NULL, status, RETLS_OK);
  CHECK(strstr((char *)out.data, "served") != NULL);
  harness_buf_free(&out);
  /* Off: continue without ALPN. */
  CHECK_STATUS(NULL, retls_ctx_set_alpn_strict(sc, 0), RETLS_OK);
  CHECK(serve_s_client(&status, &out, sc, "-alpn spdy/1") == 0);
  CHECK_STATUS(NULL, status, RETLS_OK);
  CHECK(strstr((char *)out.data, "No ALPN negotiated") != NULL);
  CHECK(strstr((char *)out.data, "served") != NULL);
  harness_buf_free(&out);
  /* An overlap is agreed as before. */
  CHECK_STATUS(NULL, retls_ctx_set_alpn_strict(sc, 1), RETLS_OK);
  CHECK(serve_s_client(&status, &out, sc, "-alpn spdy/1,h2") == 0);
  CHECK_STATUS(NULL, status, RETLS_OK);
  CHECK(strstr((char *)out.data, "ALPN protocol: h2") != NULL);
  harness_buf_free(&out);
  retls_ctx_free(sc);
}

static void test_dhe_only_client(void) {
  retls_ctx *sc = NULL;
  harness_buf out = {0};
  char cert[512], key[512], cmd[1400];
  int status = 0;
  /* DHE-RSA needs an RSA certificate. */
  harness_path(cert, sizeof(cert), "rsa.crt");
  harness_path(key, sizeof(key), "rsa.key");
  snprintf(cmd, sizeof(cmd),
           "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "
           "/CN=localhost -keyout %s -out %s >/dev/null 2>&1",
           key, cert);
  CHECK(system(cmd) == 0);
  CHECK_STATUS(NULL, retls_ctx_new(&sc, RETLS_SERVER), RETLS_OK);
  CHECK_STATUS(NULL, retls_ctx_use_certificate(sc, cert, key), RETLS_OK);
  CHECK(serve_s_client(&status, &out, sc,
                       "-tls1_2 -cipher DHE-RSA-AES128-GCM-SHA256") == 0);
  CHECK_STATUS(NULL, status, RETLS_OK);
  CHECK(strstr((char *)out.data, "DHE-RSA-AES128-GCM-SHA256") != NULL);
  CHECK(strstr((char *)out.data, "served") != NULL);
  harness_buf_free(&out);
  retls_ctx_free(sc);
}

int main(void) {
  RUN(test_resume_tls13_ticket_retls_server);
  RUN(test_resume_tls12_ticket_retls_server);
  RUN(test_resume_tls12_session_id_retls_server);
  RUN(test_resume_tls13_ticket_s_server);
  RUN(test_resume_tls12_ticket_s_server);
  RUN(test_resume_tls12_session_id_s_server);
  RUN(test_session_from_garbage_and_truncated_bytes);
  RUN(test_session_from_another_server_or_version);
  RUN(test_session_options_by_role);
  RUN(test_alpn_strict_against_s_client);
  RUN(test_dhe_only_client);
  return harness_finish();
}
