/*
 * internal.h - struct layouts and retls__ helpers shared by core/src.
 * Never installed.
 */
#ifndef RETLS_INTERNAL_H
#define RETLS_INTERNAL_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "retls.h"

#define RETLS__DETAIL_MAX 512

struct retls_ctx {
  SSL_CTX *ssl_ctx;
  retls_role role;
  int refs;             /* atomic: caller's reference + one per connection */
  int verify;
  /* The system trust store is parsed on the first verifying connection,
   * not in retls_ctx_new: parsing it costs ~80 ms, and many contexts
   * (servers, test clients with verify off) never need it. */
  int system_store_loaded;
  pthread_mutex_t lock;
  unsigned char *alpn;  /* wire format: length-prefixed protocols */
  size_t alpn_len;
  FILE *keylog;
  int alpn_strict;      /* servers: no_application_protocol on no overlap */
  int early_replay;     /* clients: resend rejected early data */
  char detail[RETLS__DETAIL_MAX];
};

struct retls_session {
  SSL_SESSION *sess;
  int refs;             /* atomic */
  unsigned char *der;   /* i2d_SSL_SESSION, made once: sessions are
                           immutable, so to_bytes needs no lock */
  size_t der_len;
};

/* Where the early data of a connection stands (write.c). */
typedef enum {
  RETLS__EARLY_NONE = 0, /* no write_early yet (or a server) */
  RETLS__EARLY_WRITING,  /* early bytes taken, handshake not finished */
  RETLS__EARLY_REPLAY,   /* rejected: early_buf must go out as data */
  RETLS__EARLY_DONE      /* settled: accepted, replayed or reported */
} retls__early;

/* Explicit object states, checked at the top of each operation. */
typedef enum {
  RETLS__OPEN = 0,  /* usable (handshake may still be due) */
  RETLS__FAILED,    /* a fatal TLS/transport error happened: only close */
  RETLS__CLOSED     /* closed: every operation returns RETLS_CLOSED */
} retls__state;

typedef enum {
  RETLS__T_FD = 0,
  RETLS__T_MEMORY,
  RETLS__T_PAIR
} retls__transport;

struct retls_conn {
  SSL *ssl;
  retls_ctx *ctx;
  retls__state state;
  retls__transport transport;
  int fd;
  int own_fd;
  int timeout_ms;       /* > 0: WANT on a blocking fd means timed out */
  BIO *net_bio;         /* memory mode: where bio_read takes ciphertext
                           from (the caller's half of the BIO pair, or
                           the unbounded queue itself) */
  struct retls__outq *outq; /* unbounded memory mode: net_bio's queue */
  uint64_t bio_taken;   /* memory mode: bytes bio_read/bio_consume took
                           (bio_peek's mark: a consume after a take in
                           between is refused, see retls_conn_bio_consume) */

  /* The retry state (see write.c): a private copy of a write that stopped
   * on WANT_*, repeated until OpenSSL takes it. */
  unsigned char *pend_buf; /* the allocation (pend_cap bytes) */
  size_t pend_off;      /* the copy starts at pend_buf + pend_off */
  size_t pend_len;
  size_t pend_cap;

  int want;             /* RETLS_WANT_* of the last op, or RETLS_OK */
  int shutdown_sent;    /* our close_notify is fully written */
  int shutdown_called;  /* SSL_shutdown ran: nothing may be written after
                           it (OpenSSL forgets, see write.c) */
  int shutdown_key_update; /* shutdown() stopped sending a scheduled
                              KeyUpdate: its retry finishes it */
  int peer_closed;      /* the peer's close_notify was read (OpenSSL
                           forgets that too, see retls_conn_renegotiate) */
  /* Early data (write.c).  pend_early: the pending copy is early data
   * (repeated with SSL_write_early_data).  early_buf keeps every early
   * byte acknowledged, for the replay after a rejection. */
  int pend_early;
  retls__early early;
  unsigned char *early_buf;
  size_t early_len;
  size_t early_off;     /* replay: bytes of early_buf already sent */
  int early_rejected;   /* the server rejected our early data */
  int early_ended;      /* client: the handshake went on past the early
                           data (OpenSSL refuses more, fatally) */
  int early_read_started; /* server: read_early ran first */
  int early_read_done;  /* server: read_early reported the end */
  SSL_SESSION *session; /* client: newest session from the new-session
                           callback (our reference) */
  retls_stats stats;
  char *alpn;           /* NUL-terminated copy of the negotiated ALPN */
  unsigned char *peer_der;
  size_t peer_der_len;
  unsigned char *chain_der; /* retls_conn_chain_certificate's output */
  size_t chain_der_len;
  /* The text of the last failure: detail_none ("") until the first
   * message, then a RETLS__DETAIL_MAX buffer of its own (retls__conn_text).
   * Most connections never fail, and an inline buffer was 512 of the
   * ~19 KiB an idle connection holds (issue 9). */
  char *detail;
  char detail_none[1];
};

/* errors.c */
int retls__set_detail(char *detail, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
int retls__conn_fail(retls_conn *conn, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
int retls__ctx_fail(retls_ctx *ctx, int status, const char *what);
/* Set ctx's text under its lock: for connection creation, which may run
 * on many threads at once (configuration calls may not). */
int retls__ctx_detail(retls_ctx *ctx, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
int retls__map_ssl_result(retls_conn *conn, int ret, const char *op);
int retls__check_usable(retls_conn *conn);
int retls__conn_soft_fail(retls_conn *conn, int status, const char *what);
/* conn's own text buffer (RETLS__DETAIL_MAX bytes), made at its first
 * message; NULL when there is no memory for it (the status still says what
 * happened, and retls_conn_last_error gives ""). */
char *retls__conn_text(retls_conn *conn);

/* context.c */
void retls__ctx_ref(retls_ctx *ctx);
void retls__ctx_load_system_store(retls_ctx *ctx);

/* conn.c */
int retls__conn_alloc(retls_conn **out, retls_ctx *ctx,
                      const char *server_name);
int retls__conn_status_from_want(retls_conn *conn, int status);

/* transport.c */
void retls__conn_release_idle(retls_conn *conn);

/* write.c */
void retls__pending_clear(retls_conn *conn);
int retls__early_settle(retls_conn *conn);

/* session.c */
int retls__session_new_cb(SSL *ssl, SSL_SESSION *sess);

/* The handshake has completed (for the facts of the session: version,
 * cipher, resumption, early data).  A fatal error puts OpenSSL's state
 * machine back "in init" (OpenSSL 3 treats a bare EOF that way too)
 * without touching its handshake state, which stays TLS_ST_OK: a
 * connection that failed after its handshake still answers what was
 * negotiated. */
static inline int retls__handshake_done(const SSL *ssl) {
  return SSL_is_init_finished(ssl) || SSL_get_state(ssl) == TLS_ST_OK;
}

/* Empty this thread's OpenSSL error queue before an SSL_* I/O call, so a
 * stale error never decides SSL_get_error()'s answer.  The queue is empty
 * nearly always, and ERR_clear_error() resets all 16 of its slots anyway:
 * in OpenSSL 3.0 that is ~800 instructions, more than the bookkeeping of a
 * 64-byte SSL_write itself (callgrind, issue 9).  ERR_peek_error() sees
 * exactly what SSL_get_error() would see, for a tenth of that. */
static inline void retls__err_clear(void) {
  if (ERR_peek_error() != 0)
    ERR_clear_error();
}

/* memcpy for the large copies retls makes itself (the pending copy, the
 * pair's ciphertext), avoiding one slow case.  glibc copies blocks above
 * its rep_movsb_threshold (2112 bytes on CPUs with fast short rep movsb,
 * such as AMD Zen 3) with `rep movsb`, and on Zen 3 that instruction runs
 * 30-40x slower when the destination starts 1..31 bytes after the source
 * modulo 4 KiB (2x at 32..63): its loads alias the stores it just made.
 * Measured on the bench machine: 16 KiB in 10-14 us instead of 0.4 us.
 * Which distance a copy gets is an accident of where malloc put two
 * buffers, and in the retry benchmark it cost retls ~25% against the raw
 * loop (issue 9).  Below the threshold glibc uses its vector loop, which
 * copies at any distance at full speed, so at those distances the copy
 * goes in 2 KiB pieces; every other copy is one plain memcpy. */
#define RETLS__COPY_PIECE 2048
static inline void retls__copy(void *dst, const void *src, size_t n) {
  unsigned char *d = dst;
  const unsigned char *s = src;
  size_t piece = n;
  if ((((uintptr_t)d - (uintptr_t)s) & 4095) - 1 < 63) /* 1..63 */
    piece = RETLS__COPY_PIECE;
  while (n > 0) {
    size_t k = n < piece ? n : piece;
#if defined(__GNUC__)
    /* Hide k's bound from the compiler: knowing k <= 2048 it inlines the
     * copy as `rep movsq`, which has the same slow case. */
    __asm__("" : "+r"(k));
#endif
    memcpy(d, s, k);
    d += k;
    s += k;
    n -= k;
  }
}

#endif /* RETLS_INTERNAL_H */
