/*
 * harness.h - a tiny test harness for the C suite: CHECK macros that print
 * the connection's last error, and helpers that drive a retls pair.
 */
#ifndef RETLS_TEST_HARNESS_H
#define RETLS_TEST_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "retls.h"

extern int harness_failures;

#define CHECK(cond)                                                       \
  do {                                                                    \
    if (!(cond)) {                                                        \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__,    \
              #cond);                                                     \
      harness_failures++;                                                 \
      return;                                                             \
    }                                                                     \
  } while (0)

/* Expect a status; on failure show both names and the detail text. */
#define CHECK_STATUS(conn, expr, want)                                    \
  do {                                                                    \
    int got_ = (expr);                                                    \
    if (got_ != (want)) {                                                 \
      fprintf(stderr, "%s:%d: %s gave %s, expected %s (%s)\n", __FILE__,  \
              __LINE__, #expr, retls_status_name(got_),                   \
              retls_status_name(want),                                    \
              (conn) ? retls_conn_last_error(conn) : "");                 \
      harness_failures++;                                                 \
      return;                                                             \
    }                                                                     \
  } while (0)

#define RUN(test)                                                         \
  do {                                                                    \
    int before_ = harness_failures;                                       \
    test();                                                               \
    fprintf(stderr, "%s %s\n", harness_failures == before_ ? "ok  " : "FAIL", \
            #test);                                                       \
  } while (0)

/* A growable byte buffer for what a peer received. */
typedef struct {
  unsigned char *data;
  size_t len, cap;
} harness_buf;

void harness_buf_append(harness_buf *b, const void *p, size_t n);
void harness_buf_free(harness_buf *b);

/* Fill buf with a deterministic pattern that differs per seed. */
void harness_pattern(unsigned char *buf, size_t len, unsigned seed);

/* Drive both ends of a pair until the handshake is done (RETLS_OK) or one
 * end fails (its status). */
int harness_handshake(retls_conn *a, retls_conn *b);

/* Read everything readable now from conn into out; returns the final
 * status (RETLS_WANT_READ when drained). */
int harness_drain(retls_conn *conn, harness_buf *out);

/* Start "openssl s_server" with extra args on a free 127.0.0.1 port;
 * returns its pid and the port, or -1.  harness_stop kills it. */
int harness_start_s_server(int *out_port, const char *extra_args);
void harness_stop(int pid);

/* Print the output of the s_server on port (for failure diagnosis). */
void harness_s_server_log(int port);

int harness_finish(void);

/* ---- pairs ---------------------------------------------------------------
 * Make a pair (NULL contexts: the library's defaults) and complete its
 * handshake; returns RETLS_OK or the failing status. */
int harness_pair(retls_conn **out_client, retls_conn **out_server,
                 retls_ctx *client_ctx, retls_ctx *server_ctx,
                 size_t capacity);

/* A context with a role, verification off for clients, and for servers a
 * throwaway certificate for "localhost".  NULL on failure. */
retls_ctx *harness_ctx(retls_role role);

/* Finish w's pending write by alternating "reader drains" and
 * retls_conn_flush(w) until the flush says RETLS_OK (returned) or fails.
 * Works for pairs and, with memory != 0, for memory-mode connections
 * (ciphertext relayed w -> r and r -> w each round).  *out_rounds (may be
 * NULL) = flush calls made; *out_taken (may be NULL) = bytes the final
 * flush acknowledged. */
int harness_flush_through(retls_conn *w, retls_conn *r, harness_buf *got,
                          int memory, int *out_rounds, size_t *out_taken);

/* ---- memory mode ---------------------------------------------------------
 * Move up to limit bytes (0: all) of ciphertext from from's outgoing
 * buffer into to's incoming one, as a network would.  Returns the bytes
 * moved.  With a non-NULL log, the moved bytes are also appended there. */
size_t harness_relay(retls_conn *from, retls_conn *to, size_t limit,
                     harness_buf *log);

/* Drive a memory-mode client and server through the handshake by hand
 * with harness_relay; RETLS_OK or the failing status. */
int harness_memory_handshake(retls_conn *client, retls_conn *server);

/* Two memory-mode connections (NULL contexts: harness_ctx defaults; the
 * client's outgoing buffer holds capacity bytes, 0: default), handshake
 * done and everything the server sent after it (TLS 1.3 session tickets)
 * consumed by the client, so later ciphertext is only what a test causes. */
int harness_memory_pair(retls_conn **out_client, retls_conn **out_server,
                        retls_ctx *client_ctx, retls_ctx *server_ctx,
                        size_t capacity);

/* Split a captured TLS byte stream into records: writes the payload
 * length of each into lens (up to max) and returns the number of
 * records, or -1 when the stream does not end on a record boundary. */
int harness_tls_records(const harness_buf *stream, size_t *lens, int max);

/* ---- files and certificates (harness_pki.c) ------------------------------
 * A per-process temporary directory, removed by harness_finish(). */
const char *harness_tmpdir(void);
void harness_cleanup_tmpdir(void); /* harness_finish() calls it */

/* tmpdir/name in out (size PATH_MAX-ish, 512 is plenty). */
void harness_path(char *out, size_t size, const char *name);

/* Read a whole file; 0 or -1. */
int harness_read_file(const char *path, harness_buf *out);

/* Certificate files made at test time (no fixtures to expire). */
typedef struct {
  char cert[512]; /* PEM certificate */
  char key[512];  /* PEM private key */
} harness_cert;

/*
 * Make a certificate for cn (also its DNS subjectAltName) with an EC P-256
 * key, valid from now + not_before_s to now + not_after_s (seconds, may be
 * negative), issued by issuer (NULL: self-signed), a CA when is_ca.
 * Files go to tmpdir/name.crt and tmpdir/name.key.  0 or -1.
 */
int harness_make_cert(harness_cert *out, const char *name, const char *cn,
                      const harness_cert *issuer, long not_before_s,
                      long not_after_s, int is_ca);

/* Write the concatenation of files a and b to path (a chain file). */
int harness_concat(const char *path, const char *a, const char *b);

#endif
