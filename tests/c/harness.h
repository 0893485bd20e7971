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

int harness_finish(void);

#endif
