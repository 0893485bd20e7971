/*
 * fuzz_retry.c - libFuzzer target for the retry state machine
 * (core/src/write.c) and everything around it that can lose or repeat a
 * byte: reads, flushes, handshakes, renegotiation, key updates, shutdown
 * and close.
 *
 * One input drives one connected pair through at most MAX_OPS operations
 * decoded from the input, then drains it.  A model of what each end was
 * told sits beside the real connections and is checked after every step:
 *
 *   bytes     What an end has read is a prefix of what its peer was told
 *             was written (RETLS_OK: the first *out bytes), followed by at
 *             most a prefix of the peer's pending write (OpenSSL may already
 *             have sent some records of it; the caller was told nothing yet).
 *             When close_notify arrives, and at the end after flushing and
 *             pumping both ends until quiet, it is exactly what the peer was
 *             told: each byte once, in order.
 *   statuses  Each call returns a status its documentation allows in the
 *             model's state: RETRY_MISMATCH only for a write with other
 *             bytes while one is pending, WRITE_PENDING only with a write
 *             pending, CLOSED after a failure or a close, and a fatal status
 *             only where the protocol makes one legitimate (fatal_ok()).
 *   counters  retls_conn_stats() equals the model's own counts.
 *   retry     retls_conn_pending_write() equals the model's pending length;
 *             a refused retry changes nothing.
 *
 * A violation prints the operation log and aborts, which libFuzzer reports
 * as a crash.  ASan/UBSan (RETLS_SANITIZE=ON) and LeakSanitizer catch memory
 * errors and per-input leaks on top.
 *
 * White box: the harness includes core/src/internal.h for one thing the API
 * does not show, whether ciphertext is still waiting in a transport buffer,
 * so that "pump until quiet" knows when it is done.
 *
 * Input layout (see README.md): byte 0 = configuration, byte 1 = capacity,
 * then operations: op byte (bits 0-3 opcode, bit 4 end, bits 5-7 argument)
 * followed by the bytes that operation needs.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <openssl/ssl.h>

#include "retls.h"
#include "internal.h"

#define MAX_OPS 64
#define MAX_WRITE (64 * 1024)
#define MAX_TOTAL (256 * 1024) /* bytes offered to new writes, per input */
#define READ_CHUNK 16384
#define LOG_MAX 16384

/* ---- failure reporting ------------------------------------------------- */

/* The operation log is kept only when it will be shown: with
 * FUZZ_RETRY_VERBOSE, and when a check failed, by running the failed input
 * again with the log on (fail()).  Formatting it for every input that
 * passes was a few percent of the run time. */
static char op_log[LOG_MAX];
static size_t op_log_len;
static int logging, verbose;
static const uint8_t *cur_data; /* the input being run, for fail() */
static size_t cur_size;

static void run_input(const uint8_t *data, size_t size);

static void log_op(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static void log_op(const char *fmt, ...) {
  va_list ap;
  int n;
  if (!logging || op_log_len >= LOG_MAX - 1)
    return;
  va_start(ap, fmt);
  n = vsnprintf(op_log + op_log_len, LOG_MAX - op_log_len, fmt, ap);
  va_end(ap);
  if (n > 0)
    op_log_len += (size_t)n < LOG_MAX - op_log_len ? (size_t)n
                                                    : LOG_MAX - 1 - op_log_len;
}

static void fail(int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
static void fail(int line, const char *cond, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "\n==== fuzz_retry: invariant violated (fuzz_retry.c:%d)\n"
                  "check: %s\n", line, cond);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  if (!logging && cur_data != NULL) {
    /* Run it again, logging: it fails again (and prints its log) or, if
     * the failure depended on something random (signature sizes move the
     * points where small buffers fill up), its log is printed here. */
    fprintf(stderr, "\n(running the input again with the operation log)\n");
    logging = 1;
    run_input(cur_data, cur_size);
    fprintf(stderr, "\n(it passed when run again: the log below is of that "
                    "run)");
  }
  fprintf(stderr, "\n---- operations of this input:\n%s----\n", op_log);
  abort();
}

#define CHECK(cond, ...)                                                     \
  do {                                                                       \
    if (!(cond))                                                             \
      fail(__LINE__, #cond, __VA_ARGS__);                                    \
  } while (0)

/* ---- small helpers ------------------------------------------------------ */

/* Harness code that runs for every byte or every OpenSSL allocation, or
 * only checks the model (a failed check aborts): coverage counters and
 * comparison hooks there would cost time and tell the fuzzer nothing
 * about retls. */
#define NO_COVERAGE __attribute__((no_sanitize("coverage")))

typedef struct {
  unsigned char *data;
  size_t len, cap;
} bytes;

static void bytes_append(bytes *b, const void *p, size_t n) {
  if (n == 0)
    return;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n)
      cap *= 2;
    b->data = realloc(b->data, cap);
    if (b->data == NULL)
      abort();
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

static void bytes_set(bytes *b, const void *p, size_t n) {
  b->len = 0;
  bytes_append(b, p, n);
}

/* The input, consumed front to back; reading past the end gives zeros so
 * every input is valid. */
typedef struct {
  const uint8_t *p;
  size_t n;
} input;

static unsigned in_u8(input *in) {
  if (in->n == 0)
    return 0;
  in->n--;
  return *in->p++;
}

static unsigned in_u16(input *in) {
  unsigned hi = in_u8(in);
  return (hi << 8) | in_u8(in);
}

/* Write contents: a per-write pseudo-random stream, so a byte that is
 * repeated, dropped or reordered shows up at once in the prefix check. */
static uint64_t content_counter;

/* No coverage instrumentation here: a comparison hook per generated byte
 * was a tenth of the run time and tells the fuzzer nothing. */
__attribute__((noinline, no_sanitize("coverage")))
static void fill(unsigned char *buf, size_t len, unsigned kind) {
  uint64_t x = ++content_counter * 0x9E3779B97F4A7C15ull;
  size_t i;
  if (kind != 0) { /* a constant byte: equal patterns stress memcmp */
    memset(buf, (int)kind, len);
    return;
  }
  for (i = 0; i < len; i += 8) { /* xorshift64*, 8 bytes a step */
    uint64_t v;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    v = x * 0x2545F4914F6CDD1Dull;
    if (len - i >= 8)
      memcpy(buf + i, &v, 8); /* a plain store, not a call to ASan's memcpy */
    else
      memcpy(buf + i, &v, len - i);
  }
}

/* ---- contexts: made once per process, reused by every input ------------ */

enum {
  CFG_TLS13 = 1,     /* else TLS 1.2 */
  CFG_PARTIAL = 2,   /* SSL_MODE_ENABLE_PARTIAL_WRITE on both ends */
  CFG_SMALLFRAG = 4, /* max_send_fragment 512: many records per write */
  CFG_MEMORY = 8     /* memory BIOs moved by the harness, not a BIO pair */
};
#define CFG_CTX_MASK 7

static retls_ctx *client_ctx[8], *server_ctx[8];

static void make_contexts(unsigned cfg) {
  const char *v = (cfg & CFG_TLS13) ? "TLSv1.3" : "TLSv1.2";
  retls_ctx *c = NULL, *s = NULL;
  if (client_ctx[cfg] != NULL)
    return;
  if (retls_ctx_new(&c, RETLS_CLIENT) != RETLS_OK ||
      retls_ctx_new(&s, RETLS_SERVER) != RETLS_OK ||
      retls_ctx_set_verify(c, 0) != RETLS_OK ||
      retls_ctx_use_selfsigned(s, "localhost") != RETLS_OK ||
      retls_ctx_set_versions(c, v, v) != RETLS_OK ||
      retls_ctx_set_versions(s, v, v) != RETLS_OK ||
      retls_ctx_set_partial_write(c, (cfg & CFG_PARTIAL) != 0) != RETLS_OK ||
      retls_ctx_set_partial_write(s, (cfg & CFG_PARTIAL) != 0) != RETLS_OK ||
      ((cfg & CFG_SMALLFRAG) &&
       (retls_ctx_set_max_send_fragment(c, 512) != RETLS_OK ||
        retls_ctx_set_max_send_fragment(s, 512) != RETLS_OK))) {
    fprintf(stderr, "fuzz_retry: cannot make contexts: %s / %s\n",
            c ? retls_ctx_last_error(c) : "", s ? retls_ctx_last_error(s) : "");
    abort();
  }
  /* Sessions made here must stay resumable for the whole run. */
  SSL_CTX_set_timeout(s->ssl_ctx, 365L * 24 * 3600);
  /* No server-side session cache: TLS 1.2 resumption uses tickets, and a
   * cache that keeps every cleanly closed session would look like a leak
   * to the heap check (LLVMFuzzerTestOneInput). */
  SSL_CTX_set_session_cache_mode(s->ssl_ctx, SSL_SESS_CACHE_OFF);
  client_ctx[cfg] = c;
  server_ctx[cfg] = s;
}

/* ---- early data (TLS 1.3 0-RTT) ------------------------------------------
 *
 * Byte 0 bits 4-7 = 14 with TLS 1.3 (the "early" kind): the client resumes
 * a ticket made once per process and configuration by a server context
 * that allows early data, and its writes before the handshake are
 * retls_conn_write_early().  Byte 1 bit 0 turns early_data_replay off,
 * bit 1 makes the server start with read_early (it accepts the early
 * data); otherwise the server starts with anything else and rejects it.
 * The server's limit is 16 MiB: OpenSSL 3.0 counts every repeat of a
 * WANT'ed early write again (retls.h), and an input offers 256 KiB at most
 * to new writes.  Anti-replay is off on that server context so one
 * stateless ticket serves every input (with it on, OpenSSL takes early
 * data only from its session cache, which the heap check cannot have). */
#define CFG_EARLY(cfg) (((cfg) & CFG_TLS13) && ((cfg) >> 4) == 14)
#define EARLY_MAX (16u << 20)

static retls_ctx *early_client_ctx[8][2], *early_server_ctx[8];
static SSL_SESSION *early_session[8];
static int early_mode, early_replay, early_accept;

static void make_early(unsigned cfg) {
  retls_ctx *ctx[3] = {NULL, NULL, NULL};
  retls_conn *c = NULL, *s = NULL;
  int i, cs = RETLS_WANT_READ, ss = RETLS_WANT_READ;
  size_t n;
  unsigned char buf[64];
  if (early_server_ctx[cfg] != NULL)
    return;
  for (i = 0; i < 3; i++) {
    retls_role role = i < 2 ? RETLS_CLIENT : RETLS_SERVER;
    if (retls_ctx_new(&ctx[i], role) != RETLS_OK ||
        retls_ctx_set_versions(ctx[i], "TLSv1.3", "TLSv1.3") != RETLS_OK ||
        retls_ctx_set_partial_write(ctx[i], (cfg & CFG_PARTIAL) != 0) !=
            RETLS_OK ||
        ((cfg & CFG_SMALLFRAG) &&
         retls_ctx_set_max_send_fragment(ctx[i], 512) != RETLS_OK) ||
        (i < 2 && (retls_ctx_set_verify(ctx[i], 0) != RETLS_OK ||
                   retls_ctx_set_early_data_replay(ctx[i], i == 0) !=
                       RETLS_OK)) ||
        (i == 2 && (retls_ctx_use_selfsigned(ctx[i], "localhost") !=
                        RETLS_OK ||
                    retls_ctx_set_early_data(ctx[i], EARLY_MAX) !=
                        RETLS_OK))) {
      fprintf(stderr, "fuzz_retry: cannot make early-data contexts: %s\n",
              ctx[i] ? retls_ctx_last_error(ctx[i]) : "");
      abort();
    }
  }
  SSL_CTX_set_timeout(ctx[2]->ssl_ctx, 365L * 24 * 3600);
  SSL_CTX_set_session_cache_mode(ctx[2]->ssl_ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx[2]->ssl_ctx, SSL_OP_NO_ANTI_REPLAY);
  early_client_ctx[cfg][1] = ctx[0]; /* replay on */
  early_client_ctx[cfg][0] = ctx[1]; /* replay off */
  early_server_ctx[cfg] = ctx[2];
  /* One full handshake; the client reads the server's tickets. */
  if (retls_pair_new(&c, &s, ctx[0], ctx[2], 0) != RETLS_OK)
    abort();
  for (i = 0; i < 20 && (cs != RETLS_OK || ss != RETLS_OK); i++) {
    cs = retls_conn_handshake(c);
    ss = retls_conn_handshake(s);
  }
  for (i = 0; i < 4; i++)
    (void)retls_conn_read(&n, c, buf, sizeof(buf));
  /* A copy, for the reason in make_resume_session. */
  early_session[cfg] = SSL_SESSION_dup(SSL_get0_session(c->ssl));
  if (cs != RETLS_OK || ss != RETLS_OK || early_session[cfg] == NULL ||
      SSL_SESSION_get_max_early_data(early_session[cfg]) != EARLY_MAX) {
    fprintf(stderr, "fuzz_retry: cannot make the early-data session: %s\n",
            retls_conn_last_error(c));
    abort();
  }
  SSL_SESSION_set_timeout(early_session[cfg], 365L * 24 * 3600);
  retls_conn_free(c);
  retls_conn_free(s);
}

static void use_early_session(retls_conn *c, unsigned cfg) {
  SSL_SESSION *copy = SSL_SESSION_dup(early_session[cfg]);
  if (copy == NULL || !SSL_set_session(c->ssl, copy))
    abort();
  SSL_SESSION_free(copy);
}

/* ---- fast handshakes ------------------------------------------------------
 *
 * A full handshake (certificate, ECDSA signature and verification, ECDHE)
 * costs milliseconds under ASan, more than everything else an input does.
 * Most inputs therefore use an abbreviated handshake with the same record
 * layer and the same retls code paths (the byte model does not change):
 *
 *   TLS 1.3  an external PSK in psk_ke mode (no (EC)DHE): the client offers
 *            a dummy group only (use_psk_ke), the server P-384, so the server
 *            cannot use the key share and, with SSL_OP_ALLOW_NO_DHE_KEX on
 *            both ends, completes on the PSK alone.  Making the two
 *            NewSessionTickets a server sends after every TLS 1.3
 *            handshake costs as much again, so the server sends them only
 *            when byte 0 bits 4-5 are both set (3 of the 15 fast values).
 *   TLS 1.2  resumption of a session made once per process and
 *            configuration (a ticket from the same server context).
 *
 * Byte 0 bits 4-7 all set (1 input in 16 of random bytes, and every regress
 * input made before this mode existed) keeps the full certificate
 * handshake, tickets included.  A fast input whose connection completes its
 * first handshake must report it resumed (checked at the end), so a
 * misconfiguration cannot fall back to full handshakes silently.
 */
#define CFG_FULL_HANDSHAKE(cfg) (((cfg) >> 4) == 15)
#define CFG_TICKETS(cfg) (((cfg) >> 4 & 3) == 3)

static const unsigned char psk_identity[] = "fuzz_retry psk";
static SSL_SESSION *psk_session;        /* TLS 1.3 external PSK */
static SSL_SESSION *resume_session[8];  /* TLS 1.2, per context config */

static int psk_use_cb(SSL *ssl, const EVP_MD *md, const unsigned char **id,
                      size_t *idlen, SSL_SESSION **sess) {
  (void)ssl;
  *sess = NULL;
  if (md != NULL && md != SSL_CIPHER_get_handshake_digest(
                              SSL_SESSION_get0_cipher(psk_session)))
    return 1; /* after a HelloRetryRequest for another hash: no PSK */
  SSL_SESSION_up_ref(psk_session);
  *sess = psk_session;
  *id = psk_identity;
  *idlen = sizeof(psk_identity) - 1;
  return 1;
}

static int psk_find_cb(SSL *ssl, const unsigned char *id, size_t idlen,
                       SSL_SESSION **sess) {
  (void)ssl;
  *sess = NULL;
  if (idlen == sizeof(psk_identity) - 1 &&
      memcmp(id, psk_identity, idlen) == 0) {
    SSL_SESSION_up_ref(psk_session);
    *sess = psk_session;
  }
  return 1;
}

static void make_psk_session(SSL_CTX *any) {
  static const unsigned char key[32] = "fuzz_retry external PSK, 32 B.";
  SSL *ssl;
  const SSL_CIPHER *cipher;
  if (psk_session != NULL)
    return;
  ssl = SSL_new(any);
  cipher = ssl ? SSL_CIPHER_find(ssl, (const unsigned char *)"\x13\x01")
               : NULL; /* TLS_AES_128_GCM_SHA256, the only suite the
                          fast ends allow (a PSK must match its hash) */
  psk_session = SSL_SESSION_new();
  if (cipher == NULL || psk_session == NULL ||
      !SSL_SESSION_set1_master_key(psk_session, key, sizeof(key)) ||
      !SSL_SESSION_set_cipher(psk_session, cipher) ||
      !SSL_SESSION_set_protocol_version(psk_session, TLS1_3_VERSION)) {
    fprintf(stderr, "fuzz_retry: cannot make the PSK session\n");
    abort();
  }
  SSL_free(ssl);
}

/* One full TLS 1.2 handshake outside any input, to get a session whose
 * ticket the server context accepts from then on. */
static void make_resume_session(unsigned cfg) {
  retls_conn *c = NULL, *s = NULL;
  int i, cs = RETLS_WANT_READ, ss = RETLS_WANT_READ;
  if (resume_session[cfg] != NULL)
    return;
  if (retls_pair_new(&c, &s, client_ctx[cfg], server_ctx[cfg], 0) !=
      RETLS_OK)
    abort();
  /* AES-128-GCM with SHA-256: every resumption of this session derives
   * its keys with the SHA-256 PRF, a little cheaper than the default
   * suite's SHA-384 (the records have the same layout). */
  if (!SSL_set_cipher_list(c->ssl, "ECDHE-ECDSA-AES128-GCM-SHA256"))
    abort();
  for (i = 0; i < 20 && (cs != RETLS_OK || ss != RETLS_OK); i++) {
    cs = retls_conn_handshake(c);
    ss = retls_conn_handshake(s);
  }
  /* A copy: OpenSSL marks the session a connection uses not resumable
   * when the connection is freed without close_notify (ssl_clear_bad_session
   * in SSL_free), as most fuzzed connections are. */
  resume_session[cfg] = SSL_SESSION_dup(SSL_get0_session(c->ssl));
  if (cs != RETLS_OK || ss != RETLS_OK || resume_session[cfg] == NULL) {
    fprintf(stderr, "fuzz_retry: cannot make the TLS 1.2 session: %s\n",
            retls_conn_last_error(c));
    abort();
  }
  SSL_SESSION_set_timeout(resume_session[cfg], 365L * 24 * 3600);
  retls_conn_free(c);
  retls_conn_free(s);
}

/* The key share nobody uses.  OpenSSL 3.0's TLS 1.3 client always sends
 * one, generated for the first group it offers, even when it will finish
 * on a PSK alone; in the fast kinds the server never takes it (no group in
 * common).  Generating it was a tenth of a fast TLS 1.3 input (X25519).
 * So the client offers only "fuzz-unused-share", a group of a provider
 * built into this harness (loaded in LLVMFuzzerInitialize, before any
 * context): its "key generation" returns the same 32 zero bytes every
 * time and allocates nothing.  The ClientHello is otherwise the same, and
 * the server (P-384 only) ignores the share as before.  Group id 0xFEFE is
 * in TLS's private-use range. */
static const unsigned char unused_share[32];
static int unused_key; /* the one "key": nothing to allocate or free */

static void *us_new(void *provctx) {
  (void)provctx;
  return &unused_key;
}
static void us_free(void *key) { (void)key; }
static int us_has(const void *key, int selection) {
  (void)key;
  (void)selection;
  return 1;
}
static void *us_gen_init(void *provctx, int selection,
                         const OSSL_PARAM params[]) {
  (void)provctx;
  (void)selection;
  (void)params;
  return &unused_key;
}
static int us_gen_set_params(void *genctx, const OSSL_PARAM params[]) {
  (void)genctx;
  (void)params;
  return 1; /* the group name libssl passes: there is only one */
}
static const OSSL_PARAM *us_gen_settable_params(void *genctx,
                                                void *provctx) {
  static const OSSL_PARAM settable[] = {
      OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
      OSSL_PARAM_END};
  (void)genctx;
  (void)provctx;
  return settable;
}
static void *us_gen(void *genctx, OSSL_CALLBACK *cb, void *cbarg) {
  (void)genctx;
  (void)cb;
  (void)cbarg;
  return &unused_key;
}
static void us_gen_cleanup(void *genctx) { (void)genctx; }
static int us_get_params(void *key, OSSL_PARAM params[]) {
  OSSL_PARAM *p;
  (void)key;
  if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY)) !=
          NULL &&
      !OSSL_PARAM_set_octet_string(p, unused_share, sizeof(unused_share)))
    return 0;
  if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_BITS)) != NULL &&
      !OSSL_PARAM_set_int(p, 256))
    return 0;
  if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_SECURITY_BITS)) !=
          NULL &&
      !OSSL_PARAM_set_int(p, 128))
    return 0;
  if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_MAX_SIZE)) != NULL &&
      !OSSL_PARAM_set_int(p, 32))
    return 0;
  return 1;
}
static const OSSL_PARAM *us_gettable_params(void *provctx) {
  static const OSSL_PARAM gettable[] = {
      OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, NULL, 0),
      OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, NULL),
      OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, NULL),
      OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, NULL), OSSL_PARAM_END};
  (void)provctx;
  return gettable;
}

static const OSSL_DISPATCH unused_share_keymgmt[] = {
    {OSSL_FUNC_KEYMGMT_NEW, (void (*)(void))us_new},
    {OSSL_FUNC_KEYMGMT_FREE, (void (*)(void))us_free},
    {OSSL_FUNC_KEYMGMT_HAS, (void (*)(void))us_has},
    {OSSL_FUNC_KEYMGMT_GEN_INIT, (void (*)(void))us_gen_init},
    {OSSL_FUNC_KEYMGMT_GEN_SET_PARAMS, (void (*)(void))us_gen_set_params},
    {OSSL_FUNC_KEYMGMT_GEN_SETTABLE_PARAMS,
     (void (*)(void))us_gen_settable_params},
    {OSSL_FUNC_KEYMGMT_GEN, (void (*)(void))us_gen},
    {OSSL_FUNC_KEYMGMT_GEN_CLEANUP, (void (*)(void))us_gen_cleanup},
    {OSSL_FUNC_KEYMGMT_GET_PARAMS, (void (*)(void))us_get_params},
    {OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, (void (*)(void))us_gettable_params},
    {0, NULL}};

static const OSSL_ALGORITHM unused_share_algorithms[] = {
    {"FUZZ-UNUSED-SHARE", "provider=fuzz_retry", unused_share_keymgmt,
     "the fuzzer's unused TLS 1.3 key share"},
    {NULL, NULL, NULL, NULL}};

static const OSSL_ALGORITHM *us_query(void *provctx, int operation_id,
                                      int *no_cache) {
  (void)provctx;
  *no_cache = 0;
  return operation_id == OSSL_OP_KEYMGMT ? unused_share_algorithms : NULL;
}

static int us_capabilities(void *provctx, const char *capability,
                           OSSL_CALLBACK *cb, void *arg) {
  static unsigned int id = 0xFEFE, secbits = 128, is_kem = 0;
  static int min_tls = TLS1_3_VERSION, max_tls = 0, min_dtls = -1,
             max_dtls = -1;
  static char name[] = "fuzz-unused-share", alg[] = "FUZZ-UNUSED-SHARE";
  OSSL_PARAM group[] = {
      OSSL_PARAM_utf8_string(OSSL_CAPABILITY_TLS_GROUP_NAME, name,
                             sizeof(name)),
      OSSL_PARAM_utf8_string(OSSL_CAPABILITY_TLS_GROUP_NAME_INTERNAL, name,
                             sizeof(name)),
      OSSL_PARAM_utf8_string(OSSL_CAPABILITY_TLS_GROUP_ALG, alg,
                             sizeof(alg)),
      OSSL_PARAM_uint(OSSL_CAPABILITY_TLS_GROUP_ID, &id),
      OSSL_PARAM_uint(OSSL_CAPABILITY_TLS_GROUP_SECURITY_BITS, &secbits),
      OSSL_PARAM_uint(OSSL_CAPABILITY_TLS_GROUP_IS_KEM, &is_kem),
      OSSL_PARAM_int(OSSL_CAPABILITY_TLS_GROUP_MIN_TLS, &min_tls),
      OSSL_PARAM_int(OSSL_CAPABILITY_TLS_GROUP_MAX_TLS, &max_tls),
      OSSL_PARAM_int(OSSL_CAPABILITY_TLS_GROUP_MIN_DTLS, &min_dtls),
      OSSL_PARAM_int(OSSL_CAPABILITY_TLS_GROUP_MAX_DTLS, &max_dtls),
      OSSL_PARAM_END};
  (void)provctx;
  if (strcmp(capability, "TLS-GROUP") != 0)
    return 1;
  return cb(group, arg);
}

static const OSSL_DISPATCH unused_share_provider[] = {
    {OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))us_query},
    {OSSL_FUNC_PROVIDER_GET_CAPABILITIES, (void (*)(void))us_capabilities},
    {0, NULL}};

static int unused_share_init(const OSSL_CORE_HANDLE *handle,
                             const OSSL_DISPATCH *in,
                             const OSSL_DISPATCH **out, void **provctx) {
  (void)handle;
  (void)in;
  *out = unused_share_provider;
  *provctx = NULL;
  return 1;
}

/* Before any context: libssl reads the groups when a context is made.
 * Loading a provider explicitly stops OpenSSL from loading its default
 * one by itself, so that is loaded too. */
static void load_unused_share_provider(void) {
  if (!OSSL_PROVIDER_add_builtin(NULL, "fuzz_retry", unused_share_init) ||
      OSSL_PROVIDER_load(NULL, "default") == NULL ||
      OSSL_PROVIDER_load(NULL, "fuzz_retry") == NULL) {
    fprintf(stderr, "fuzz_retry: cannot load the key share provider\n");
    abort();
  }
}

/* TLS 1.3 with a PSK but no (EC)DHE (psk_ke): the client offers only the
 * unused share's group, the server accepts P-384 only, so the server
 * cannot use the key share and, with SSL_OP_ALLOW_NO_DHE_KEX on both ends,
 * completes on the PSK alone (no HelloRetryRequest either: no group in
 * common). */
static void use_psk_ke(retls_conn *c, retls_conn *s) {
  SSL_set_options(c->ssl, SSL_OP_ALLOW_NO_DHE_KEX);
  SSL_set_options(s->ssl, SSL_OP_ALLOW_NO_DHE_KEX);
  if (!SSL_set1_groups_list(c->ssl, "fuzz-unused-share") ||
      !SSL_set1_groups_list(s->ssl, "P-384"))
    abort();
}

static void use_fast_handshake(retls_conn *c, retls_conn *s, unsigned cfg) {
  if (cfg & CFG_TLS13) {
    make_psk_session(c->ctx->ssl_ctx);
    use_psk_ke(c, s);
    SSL_set_psk_use_session_callback(c->ssl, psk_use_cb);
    SSL_set_psk_find_session_callback(s->ssl, psk_find_cb);
    if (!SSL_set_ciphersuites(c->ssl, "TLS_AES_128_GCM_SHA256") ||
        !SSL_set_ciphersuites(s->ssl, "TLS_AES_128_GCM_SHA256") ||
        !SSL_set_num_tickets(s->ssl, CFG_TICKETS(cfg) ? 2 : 0))
      abort();
  } else {
    /* A fresh copy per connection, for the reason in make_resume_session;
     * the connection keeps its own reference. */
    SSL_SESSION *copy;
    make_resume_session(cfg & CFG_CTX_MASK);
    copy = SSL_SESSION_dup(resume_session[cfg & CFG_CTX_MASK]);
    if (copy == NULL || !SSL_set_session(c->ssl, copy))
      abort();
    SSL_SESSION_free(copy);
  }
}

/* ---- OpenSSL's heap ------------------------------------------------------
 *
 * OpenSSL is not instrumented, but under ASan every one of its thousands of
 * allocations per handshake pays for a stack trace and the quarantine: half
 * of the time of an input.  Its heap therefore comes straight from glibc
 * (__libc_malloc is not intercepted), while everything retls allocates
 * itself (the retry copy, connections, contexts) stays on ASan's heap with
 * its redzones, quarantine and leak checking, and OpenSSL's reads of retls
 * memory (the retry copy handed to SSL_write) are still checked by ASan's
 * interceptors.  What ASan would no longer see, a leaked OpenSSL object,
 * the harness counts itself: OpenSSL's live allocations must come back to
 * the same number after every input (check_openssl_heap).
 * FUZZ_RETRY_ASAN_OPENSSL=1 gives OpenSSL ASan's heap again. */
extern void *__libc_malloc(size_t n);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);

static long openssl_live; /* OpenSSL's allocations not yet freed */

/* OpenSSL calls these thousands of times per handshake (NO_COVERAGE). */

NO_COVERAGE
static void *ossl_malloc(size_t n, const char *file, int line) {
  void *p = __libc_malloc(n ? n : 1);
  (void)file;
  (void)line;
  if (p != NULL)
    __atomic_add_fetch(&openssl_live, 1, __ATOMIC_RELAXED);
  return p;
}

NO_COVERAGE
static void ossl_free(void *p, const char *file, int line) {
  (void)file;
  (void)line;
  if (p == NULL)
    return;
  __atomic_sub_fetch(&openssl_live, 1, __ATOMIC_RELAXED);
  __libc_free(p);
}

NO_COVERAGE
static void *ossl_realloc(void *p, size_t n, const char *file, int line) {
  if (p == NULL)
    return ossl_malloc(n, file, line);
  if (n == 0) {
    ossl_free(p, file, line);
    return NULL;
  }
  return __libc_realloc(p, n);
}

/* OpenSSL 3.0 looks up every provider parameter by name (OSSL_PARAM_locate:
 * strcmp against each known key), thousands of times per handshake and
 * several times per record.  Through ASan's strcmp interceptor each call
 * also pays for checking both strings and for libFuzzer's comparison hook
 * (a tenth of the run time), for nothing: those strings are OpenSSL's own
 * constants and heap, which ASan does not track (its heap is glibc's, see
 * above), and OpenSSL's branches are not instrumented for the fuzzer to
 * steer.  ASan's strcmp is a weak symbol, so this one replaces it; calls
 * from the instrumented code of this executable (the harness and retls)
 * still go through the interceptor with every check, calls from the
 * shared libraries (OpenSSL, libc) compare directly. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_ASAN 1
#endif
#endif
#ifdef FUZZ_ASAN
extern char __executable_start[], etext[];
extern int __interceptor_strcmp(const char *a, const char *b);
extern void *__interceptor_memcpy(void *d, const void *s, size_t n);
extern void *__interceptor_memmove(void *d, const void *s, size_t n);
extern void *__interceptor_memset(void *d, int c, size_t n);
extern size_t __interceptor_strlen(const char *s);

/* glibc's own string functions, found once (LLVMFuzzerInitialize); until
 * then every call goes through ASan's interceptors. */
static void *(*libc_memcpy)(void *, const void *, size_t);
static void *(*libc_memmove)(void *, const void *, size_t);
static void *(*libc_memset)(void *, int, size_t);
static size_t (*libc_strlen)(const char *);

#define FROM_EXECUTABLE()                                                   \
  ((const char *)__builtin_return_address(0) >= __executable_start &&       \
   (const char *)__builtin_return_address(0) < etext)

/* OpenSSL's strings here are short parameter names: a byte loop beats a
 * call to glibc's vectorised strcmp (measured). */
__attribute__((no_sanitize("address", "coverage"), noinline))
int strcmp(const char *a, const char *b) {
  const unsigned char *x = (const unsigned char *)a,
                      *y = (const unsigned char *)b;
  if (FROM_EXECUTABLE())
    return __interceptor_strcmp(a, b);
  while (*x != 0 && *x == *y) {
    x++;
    y++;
  }
  return (int)*x - (int)*y;
}

/* The same for OpenSSL's memcpy, memmove, memset and strlen on its own
 * heap: ASan's interceptors check that no byte of the range is poisoned
 * (a walk over its shadow, 5 % of the run time, mostly CRYPTO_zalloc's
 * memset and the record layer's copies), and no byte of glibc's heap ever
 * is: ASan does not track it.  So a call from a shared library whose
 * ranges all lie in glibc's main heap (between the program break at
 * start-up and the current one; ASan never uses brk) goes to glibc
 * directly.  Everything else keeps the interceptor: calls from this
 * executable, and OpenSSL's calls that touch retls or harness memory
 * (SSL_write reading the retry copy, SSL_read filling the caller's
 * buffer: ASan's heap, stack or globals), large allocations glibc maps
 * outside the heap, and all of it with FUZZ_RETRY_ASAN_OPENSSL=1.  An
 * overlapping memcpy goes to the interceptor too, which reports it. */
extern void *__curbrk;
static uintptr_t heap_lo;

__attribute__((no_sanitize("address", "coverage"), always_inline))
static inline int in_glibc_heap(const void *p, size_t n) {
  uintptr_t a = (uintptr_t)p, hi = (uintptr_t)__curbrk;
  return heap_lo != 0 && a >= heap_lo && a <= hi && n <= hi - a;
}

__attribute__((no_sanitize("address", "coverage"), noinline))
void *memcpy(void *d, const void *s, size_t n) {
  if (FROM_EXECUTABLE() || libc_memcpy == NULL || !in_glibc_heap(d, n) ||
      !in_glibc_heap(s, n) ||
      ((const char *)d < (const char *)s + n &&
       (const char *)s < (const char *)d + n))
    return __interceptor_memcpy(d, s, n);
  return libc_memcpy(d, s, n);
}

__attribute__((no_sanitize("address", "coverage"), noinline))
void *memmove(void *d, const void *s, size_t n) {
  if (FROM_EXECUTABLE() || libc_memmove == NULL || !in_glibc_heap(d, n) ||
      !in_glibc_heap(s, n))
    return __interceptor_memmove(d, s, n);
  return libc_memmove(d, s, n);
}

__attribute__((no_sanitize("address", "coverage"), noinline))
void *memset(void *d, int c, size_t n) {
  if (FROM_EXECUTABLE() || libc_memset == NULL || !in_glibc_heap(d, n))
    return __interceptor_memset(d, c, n);
  return libc_memset(d, c, n);
}

__attribute__((no_sanitize("address", "coverage"), noinline))
size_t strlen(const char *s) {
  size_t n;
  if (FROM_EXECUTABLE() || libc_strlen == NULL || !in_glibc_heap(s, 1))
    return __interceptor_strlen(s);
  n = libc_strlen(s);
  if (!in_glibc_heap(s, n + 1))
    return __interceptor_strlen(s);
  return n;
}

static void find_libc_functions(void) {
  /* RTLD_NEXT from this executable: glibc's definitions, IFUNCs resolved */
  libc_memcpy = (void *(*)(void *, const void *, size_t))dlsym(RTLD_NEXT,
                                                               "memcpy");
  libc_memmove = (void *(*)(void *, const void *, size_t))dlsym(RTLD_NEXT,
                                                                "memmove");
  libc_memset = (void *(*)(void *, int, size_t))dlsym(RTLD_NEXT, "memset");
  libc_strlen = (size_t(*)(const char *))dlsym(RTLD_NEXT, "strlen");
  heap_lo = (uintptr_t)sbrk(0);
  if (heap_lo == (uintptr_t)-1)
    heap_lo = 0;
}
#else
static void find_libc_functions(void) {}
#endif

static int stats_on;
static void print_stats(void);

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  const char *asan = getenv("FUZZ_RETRY_ASAN_OPENSSL");
  (void)argc;
  (void)argv;
  verbose = logging = getenv("FUZZ_RETRY_VERBOSE") != NULL;
  find_libc_functions();
  if ((stats_on = getenv("FUZZ_RETRY_STATS") != NULL))
    atexit(print_stats);
  if ((asan == NULL || strcmp(asan, "1") != 0) &&
      !CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free)) {
    fprintf(stderr, "fuzz_retry: OpenSSL allocated before "
                    "CRYPTO_set_mem_functions\n");
    abort();
  }
  load_unused_share_provider();
  return 0;
}

/* ---- the model ---------------------------------------------------------- */

typedef enum { M_OPEN, M_FAILED, M_CLOSED } mstate;

typedef struct end end;
struct end {
  const char *name;
  retls_conn *conn;
  end *peer;
  mstate state;
  int tls13;         /* TLS 1.3 (else 1.2) */
  int partial;       /* partial-write mode */
  int memory;        /* memory transport */

  bytes acked;       /* bytes this end was told were written, in order */
  bytes tail;        /* bytes that may follow acked at the peer: the
                        pending write, or the write that failed */
  int has_pend;      /* tail is the pending write retls holds */
  bytes received;    /* bytes this end has read */
  size_t verified;   /* received[0, verified) already matched the peer's
                        acked bytes; both only grow, so that part never
                        needs checking again (keeps the check linear) */

  int shut_started;  /* shutdown got past its checks: SSL_shutdown ran */
  int shut_done;     /* shutdown returned RETLS_OK */
  int got_zero;      /* read returned RETLS_ZERO_RETURN */
  int eof_signalled; /* memory mode: told this end its input ended */
  int last_read;     /* status of the last read */
  int rekeyed;       /* renegotiate() or key_update(request) returned OK */
  int handshook;     /* seen with its first handshake finished */
  int pend_is_early; /* the pending write came from write_early */
  size_t early_acked;   /* client: early bytes acknowledged (first in acked) */
  size_t early_removed; /* client: rejected early bytes not sent (replay
                           off), taken out of acked */
  int early_settled;    /* client: the early outcome was checked */
  int read_early;       /* server: read_early still to finish first */
  retls_stats want;  /* counters as the model expects them */
};

static end *ends[2]; /* client, server */

static const char *st(int s) { return retls_status_name(s); }

static int is_fatal(int s) {
  return s == RETLS_EOF || s == RETLS_SYSCALL || s == RETLS_SSL ||
         s == RETLS_VERIFY;
}

/* Early mode, client: what retls did on its own.  Handshake, read, write
 * and flush first finish a pending early write and replay rejected early
 * bytes (write.c, retls__early_settle); the model learns it here, from
 * the counters, before any byte is compared.  The stop and retry counters
 * are modelled where the calls are made (retls.h: a write-family call
 * that returns WANT_x counts one want_x; handshake() and read() none, but
 * a repeat of a pending write_early they make is a retry). */
static void early_sync(end *e) {
  retls_stats s;
  if (!early_mode || e != ends[0] || e->conn == NULL)
    return;
  if (retls_conn_stats(&s, e->conn) != RETLS_OK)
    return;
  if (e->has_pend && e->pend_is_early && e->conn->pend_len == 0) {
    size_t done = s.bytes_written - e->want.bytes_written;
    CHECK(done <= e->tail.len && (done == 0 || e->partial ||
                                  done == e->tail.len),
          "client: a settled early write acknowledged %zu of %zu bytes",
          done, e->tail.len);
    if (done > 0) {
      bytes_append(&e->acked, e->tail.data, done);
      e->early_acked += done;
      e->want.writes++;
      e->want.bytes_written += done;
      e->tail.len = 0;
    } /* else it failed: tail stays, as for any failed write */
    e->has_pend = 0;
    e->pend_is_early = 0;
  }
  if (!e->early_settled && e->conn->early == RETLS__EARLY_DONE) {
    int es = retls_conn_early_data_status(e->conn);
    const unsigned char *rb = NULL;
    size_t rlen = 0;
    e->early_settled = 1;
    CHECK(retls_conn_early_data_rejected_bytes(&rb, &rlen, e->conn) ==
              RETLS_OK, "rejected_bytes failed");
    log_op(" [early data %s, %zu bytes]",
           es == RETLS_EARLY_ACCEPTED   ? "accepted"
           : es == RETLS_EARLY_REJECTED ? "rejected"
                                        : "not sent",
           e->early_acked);
    CHECK(!(early_accept && es == RETLS_EARLY_REJECTED && e->early_acked),
          "client: the server read early data first but rejected it");
    CHECK(early_accept || es != RETLS_EARLY_ACCEPTED,
          "client: early data accepted by a server that did not read it");
    if (es == RETLS_EARLY_REJECTED && !early_replay && e->early_acked) {
      CHECK(rlen == e->early_acked &&
                memcmp(rb, e->acked.data, rlen) == 0,
            "client: rejected_bytes gave %zu bytes, not the %zu early "
            "bytes acknowledged", rlen, e->early_acked);
      CHECK(e->peer->received.len == 0,
            "server read %zu bytes of rejected early data",
            e->peer->received.len);
      memmove(e->acked.data, e->acked.data + rlen, e->acked.len - rlen);
      e->acked.len -= rlen;
      e->early_removed = rlen;
    } else {
      CHECK(rlen == 0 && rb == NULL,
            "client: rejected_bytes gave %zu bytes (status %d, replay %d)",
            rlen, es, early_replay);
    }
  }
}

/* Check the received bytes of e against what its peer sent. */
NO_COVERAGE
static void check_prefix(end *e) {
  end *p = e->peer;
  early_sync(p);
  size_t n = e->received.len, a = p->acked.len;
  size_t i, limit = a + p->tail.len;
  CHECK(n <= limit,
        "%s read %zu bytes but %s was told %zu were written (+%zu "
        "pending/failed): bytes sent twice or invented",
        e->name, n, p->name, a, p->tail.len);
  /* Fast path: one memcmp per region, then the byte loop only to name the
   * first difference. */
  i = e->verified;
  if (i < n && i < a) {
    size_t m = (n < a ? n : a) - i;
    if (memcmp(e->received.data + i, p->acked.data + i, m) == 0)
      i += m;
  }
  if (i >= a && i < n &&
      memcmp(e->received.data + i, p->tail.data + (i - a), n - i) == 0)
    i = n;
  for (; i < n; i++) {
    unsigned char want = i < a ? p->acked.data[i] : p->tail.data[i - a];
    CHECK(e->received.data[i] == want,
          "%s read byte %zu = 0x%02x, %s sent 0x%02x there (%s): "
          "bytes lost, repeated or reordered",
          e->name, i, e->received.data[i], p->name, want,
          i < a ? "acknowledged part" : "pending/failed part");
  }
  e->verified = n < a ? n : a;
}

NO_COVERAGE
static void check_exact(end *e, const char *when) {
  end *p = e->peer;
  check_prefix(e);
  CHECK(e->received.len == p->acked.len,
        "%s: %s read %zu bytes, %s was told %zu were written: "
        "acknowledged bytes lost",
        when, e->name, e->received.len, p->name, p->acked.len);
}

NO_COVERAGE
static void check_counters(end *e) {
  retls_stats s;
  const retls_stats *w = &e->want;
  early_sync(e);
  if (e->state == M_OPEN && SSL_is_init_finished(e->conn->ssl))
    e->handshook = 1;
  CHECK(retls_conn_stats(&s, e->conn) == RETLS_OK, "stats of %s", e->name);
#define CMP(field)                                                          \
  CHECK(s.field == w->field, "%s: stats." #field " = %llu, model %llu",     \
        e->name, (unsigned long long)s.field, (unsigned long long)w->field)
  CMP(writes);
  CMP(bytes_written);
  CMP(want_read);
  CMP(want_write);
  CMP(retries);
  CMP(mismatches);
  CMP(bytes_read);
#undef CMP
  CHECK(w->bytes_written == e->acked.len + e->early_removed,
        "%s bytes_written model", e->name);
  CHECK(w->bytes_read == e->received.len, "%s bytes_read model", e->name);
  {
    /* A replay of rejected early data still to go counts too (retls.h). */
    size_t replay = e->conn->early == RETLS__EARLY_REPLAY
                        ? e->conn->early_len - e->conn->early_off
                        : 0;
    CHECK(retls_conn_pending_write(e->conn) ==
              (e->has_pend ? e->tail.len : 0) + replay,
          "%s: pending_write() = %zu, model %zu + replay %zu", e->name,
          retls_conn_pending_write(e->conn), e->has_pend ? e->tail.len : 0,
          replay);
  }
  CHECK(retls_conn_last_error(e->conn) != NULL, "last_error NULL");
}

static void check_all(end *a) {
  check_counters(a);
  check_counters(a->peer);
  check_prefix(a);
  check_prefix(a->peer);
}

/* Is a fatal status from this operation legitimate?  Each case is a
 * protocol fact, not a retls choice: anything else is a finding. */
static int fatal_ok(end *e, const char *op, int s) {
  /* The peer closed: its transport is gone (pair mode: freed with the
   * peer; memory mode: the harness signalled the end of the stream).  That
   * is the documented RETLS_EOF, for reads and writes alike. */
  if ((e->peer->state == M_CLOSED || e->eof_signalled) && s == RETLS_EOF)
    return 1;
  /* OpenSSL 3.0 counts every repeat of a WANT'ed early write against
   * max_early_data (documented in retls.h). */
  if (early_mode && s == RETLS_SSL &&
      strstr(retls_conn_last_error(e->conn), "too much early data") != NULL)
    return 1;
  /* The peer failed: it may have sent a fatal alert. */
  if (e->peer->state == M_FAILED && s == RETLS_SSL)
    return 1;
  /* OpenSSL 3.0 limitation, reproduced without retls (see README.md): an
   * end whose application record is half sent (its write is pending)
   * cannot write handshake messages, and SSL_read sometimes must: a TLS 1.2
   * server answering a renegotiation ClientHello, a TLS 1.2 client with a
   * renegotiation of its own scheduled reading a HelloRequest, a TLS 1.3
   * end answering a KeyUpdate that requests one.  ssl3_write_bytes fails
   * with "bad length" (or "bad write retry"), fatally. */
  /* The same when what is half sent is our close_notify: shutdown()
   * stopped with WANT_* (since commit 7c13955 a shutdown after
   * key_update(request) gets that far instead of failing at once). */
  if (s == RETLS_SSL &&
      (e->has_pend || (e->shut_started && !e->shut_done)) &&
      (e->rekeyed || e->peer->rekeyed) && strcmp(op, "read") == 0 &&
      (strstr(retls_conn_last_error(e->conn), "bad length") != NULL ||
       strstr(retls_conn_last_error(e->conn), "bad write retry") != NULL))
    return 1;
  /* OpenSSL 3.0 limitation, reproduced without retls (see README.md): a
   * TLS 1.2 client in a renegotiation accepts the server's application
   * data only inside SSL_read; if a write, flush or handshake call reads
   * it, that fails with "unexpected record", fatally.  When the client had
   * read part of a record, OpenSSL instead returns SSL_ERROR_SYSCALL with
   * no error at all, which retls cannot tell from the transport closing:
   * RETLS_EOF. */
  if (e == ends[0] && !e->tls13 && (e->rekeyed || e->peer->rekeyed) &&
      strcmp(op, "read") != 0 &&
      ((s == RETLS_SSL && strstr(retls_conn_last_error(e->conn),
                                 "unexpected record") != NULL) ||
       s == RETLS_EOF))
    return 1;
  /* OpenSSL 3.0 limitation, reproduced without retls (openssl_limits
   * scenario 7): in SSL_read too when the client has a renegotiation
   * request of its own waiting (a write or a part of a record pending):
   * its renegotiate() (scenario 7), or an earlier HelloRequest of the
   * server that OpenSSL turned into one (found by the test command's run,
   * regress-tls12-two-hellorequests-client-read-unexpected-record).  The
   * server's next HelloRequest then starts it from the handshake path,
   * which skips OpenSSL's renegotiation count, and with that count at 0
   * SSL_read refuses the server's application data before the
   * ServerHello: "unexpected record", fatally.
   * The same flaw later, with the count above 0, when the client asked
   * too (found by a 100,000-input run of the third round,
   * regress-tls12-reneg-both-stale-request-client-read-unexpected-record):
   * the handshake started from the HelloRequest completes and clears the
   * client's request (SSL_renegotiate_pending() reads 0) but not the flag
   * that schedules one, so a later SSL_read starts a renegotiation (counted)
   * in which the client, not having asked by OpenSSL's own record, waits
   * to read the server's first message instead of sending a ClientHello
   * (in init, state "SSL negotiation finished successfully", nothing
   * pending), and the server's application data then fails it. */
  if (e == ends[0] && !e->tls13 && e->peer->rekeyed &&
      strcmp(op, "read") == 0 && s == RETLS_SSL &&
      (SSL_total_renegotiations(e->conn->ssl) == 0 || e->rekeyed) &&
      strstr(retls_conn_last_error(e->conn), "unexpected record") != NULL)
    return 1;
  return 0;
}

static void on_fatal(end *e, const char *op, int s) {
  log_op(" [%s %s: %s]", e->name, op, retls_conn_last_error(e->conn));
  if (!e->tls13)
    log_op(" [%s: %ld renegotiations counted by OpenSSL]", e->name,
           SSL_total_renegotiations(e->conn->ssl));
  CHECK(fatal_ok(e, op, s), "%s %s: unexpected %s (%s)", e->name, op, st(s),
        retls_conn_last_error(e->conn));
  CHECK(retls_conn_last_error(e->conn)[0] != '\0',
        "%s %s: %s without a detail text", e->name, op, st(s));
  e->state = M_FAILED;
}

/* The common answer of a connection that is no longer open. */
static int gate(end *e, const char *op, int s) {
  if (e->state == M_OPEN)
    return 0;
  CHECK(s == RETLS_CLOSED, "%s %s on a %s connection gave %s, not CLOSED",
        e->name, op, e->state == M_FAILED ? "failed" : "closed", st(s));
  return 1;
}

/* ---- operations ---------------------------------------------------------- */

/* Outcome of an SSL_write attempt of the pending/new bytes in e->tail. */
static void write_outcome(end *e, const char *op, int s, size_t out) {
  size_t len = e->tail.len;
  switch (s) {
  case RETLS_OK:
    CHECK(out >= 1 && out <= len, "%s %s: OK with *out=%zu of %zu", e->name,
          op, out, len);
    CHECK(e->partial || out == len,
          "%s %s: OK with *out=%zu of %zu outside partial-write mode",
          e->name, op, out, len);
    bytes_append(&e->acked, e->tail.data, out);
    if (e->pend_is_early)
      e->early_acked += out;
    e->pend_is_early = 0;
    /* In partial-write mode the rest was never encrypted: OpenSSL returns
     * after the first completed record, so nothing of it may arrive. */
    e->tail.len = 0;
    e->has_pend = 0;
    e->want.writes++;
    e->want.bytes_written += out;
    log_op(" -> OK %zu", out);
    break;
  case RETLS_WANT_READ:
  case RETLS_WANT_WRITE:
    CHECK(out == 0, "%s %s: %s with *out=%zu", e->name, op, st(s), out);
    CHECK(retls_conn_want(e->conn) == s, "%s %s: want() = %s after %s",
          e->name, op, st(retls_conn_want(e->conn)), st(s));
    e->has_pend = 1;
    if (s == RETLS_WANT_READ)
      e->want.want_read++;
    else
      e->want.want_write++;
    log_op(" -> %s", st(s) + 6);
    break;
  case RETLS_ZERO_RETURN:
    /* The write was inside a handshake (a renegotiation) and read the
     * peer's close_notify: it can never complete.  retls drops the copy,
     * never acknowledged, and the connection stays open.  A write reads
     * only inside a handshake, before any record of its own went out, so
     * none of its bytes may arrive. */
    CHECK(e->peer->shut_started, "%s %s: ZERO_RETURN but %s never shut down",
          e->name, op, e->peer->name);
    log_op(" -> ZERO_RETURN");
    check_exact(e, "at close_notify (met by a write)");
    e->has_pend = 0;
    e->tail.len = 0;
    e->got_zero = 1;
    break;
  default:
    CHECK(is_fatal(s), "%s %s: status %d (%s) not allowed", e->name, op, s,
          st(s));
    log_op(" -> %s", st(s) + 6);
    on_fatal(e, op, s);
    e->has_pend = 0; /* retls drops the copy: it was never acknowledged */
    break;
  }
}

/* Rejected early bytes still to be replayed (retls.h: they count as a
 * pending write for shutdown and close). */
static size_t replay_left(end *e) {
  return e->conn->early == RETLS__EARLY_REPLAY
             ? e->conn->early_len - e->conn->early_off
             : 0;
}

/* Early mode: the client's writes go to write_early while early data may
 * still be sent (what retls_conn_write_early itself allows). */
static int early_window(end *e) {
  return early_mode && e == ends[0] && e->state == M_OPEN &&
         !e->shut_started && !SSL_is_init_finished(e->conn->ssl) &&
         !e->conn->early_ended &&
         (SSL_in_before(e->conn->ssl) ||
          e->conn->early == RETLS__EARLY_WRITING);
}

static void do_write(end *e, const unsigned char *buf, size_t len,
                     const char *kind) {
  size_t out = 99;
  int s, early;
  early_sync(e); /* a read or handshake may have settled early data */
  early = early_window(e);
  if (!early && early_mode && e == ends[0] && e->state == M_OPEN &&
      !e->has_pend && len > 0 && e->conn->early_ended &&
      !SSL_is_init_finished(e->conn->ssl)) {
    /* The handshake went on past the early data: write_early must refuse
     * (BAD_ARG, nothing changed) instead of failing the connection. */
    size_t o = 99;
    s = retls_conn_write_early(&o, e->conn, buf, len);
    CHECK(s == RETLS_BAD_ARG && o == 0,
          "client write_early after the handshake went on gave %s (%s)",
          st(s), retls_conn_last_error(e->conn));
    log_op("client write_early %zu -> BAD_ARG (handshake went on); ", len);
  }
  log_op("%s write%s %zu (%s)", e->name, early ? "_early" : "", len, kind);
  s = early ? retls_conn_write_early(&out, e->conn, buf, len)
            : retls_conn_write(&out, e->conn, buf, len);
  CHECK(s == RETLS_OK || out == 0, "write: *out=%zu with %s", out, st(s));
  if (gate(e, "write", s)) {
    log_op(" -> CLOSED\n");
    return;
  }
  if (len == 0) {
    CHECK(s == RETLS_OK && out == 0, "%s write of 0 bytes gave %s, *out=%zu",
          e->name, st(s), out);
    log_op(" -> OK 0 (no-op)\n");
    return;
  }
  if (e->has_pend) {
    /* write_early resumes only an early write; write() resumes either. */
    if (len != e->tail.len || memcmp(buf, e->tail.data, len) != 0 ||
        (early && !e->pend_is_early)) {
      CHECK(s == RETLS_RETRY_MISMATCH,
            "%s write of %zu other bytes while %zu are pending gave %s",
            e->name, len, e->tail.len, st(s));
      CHECK(retls_conn_last_error(e->conn)[0] != '\0', "mismatch detail");
      e->want.mismatches++;
      log_op(" -> RETRY_MISMATCH\n");
      return;
    }
    e->want.retries++;
    write_outcome(e, "write (retry)", s, out);
    log_op("\n");
    return;
  }
  if (e->shut_started) {
    /* Nothing may follow our close_notify; retls refuses before OpenSSL
     * (which can forget its shutdown, see write.c) and stays usable for
     * reading what the peer still sends. */
    CHECK(s == RETLS_SSL &&
              strstr(retls_conn_last_error(e->conn), "shutdown") != NULL,
          "%s write after shutdown gave %s (%s)", e->name, st(s),
          retls_conn_last_error(e->conn));
    log_op(" -> SSL (after shutdown)\n");
    return;
  }
  bytes_set(&e->tail, buf, len);
  e->pend_is_early = early;
  write_outcome(e, early ? "write_early" : "write", s, out);
  log_op("\n");
}

static void do_flush(end *e) {
  size_t out = 99;
  int s;
  size_t replay_before;
  early_sync(e);
  replay_before = e->state == M_OPEN ? replay_left(e) : 0;
  log_op("%s flush", e->name);
  s = retls_conn_flush(&out, e->conn);
  CHECK(s == RETLS_OK || out == 0, "flush: *out=%zu with %s", out, st(s));
  if (gate(e, "flush", s)) {
    log_op(" -> CLOSED\n");
    return;
  }
  if (!e->has_pend && replay_before) {
    /* flush() sends a replay of rejected early data (retls.h). */
    CHECK(out == 0, "%s flush of a replay: *out=%zu", e->name, out);
    if (is_fatal(s))
      on_fatal(e, "flush (replay)", s);
    else
      CHECK(s == RETLS_OK || s == RETLS_WANT_READ || s == RETLS_WANT_WRITE,
            "%s flush of a replay gave %s", e->name, st(s));
    if (s == RETLS_WANT_READ)
      e->want.want_read++;
    else if (s == RETLS_WANT_WRITE)
      e->want.want_write++;
    log_op(" -> %s (replay)\n", st(s) + 6);
    return;
  }
  if (!e->has_pend) {
    CHECK(s == RETLS_OK && out == 0, "%s flush with nothing pending: %s %zu",
          e->name, st(s), out);
    log_op(" -> OK (nothing pending)\n");
    return;
  }
  e->want.retries++;
  write_outcome(e, "flush", s, out);
  log_op("\n");
}

/* handshake() and read() on an open client first finish a pending
 * write_early (write.c, retls__early_settle): a repeat, counted in
 * retries, whatever it returns (its stops are not counted: not a write). */
static void early_repeat(end *e) {
  early_sync(e);
  if (e->state == M_OPEN && e->has_pend && e->pend_is_early)
    e->want.retries++;
}

/* One read of at most len bytes; returns the status. */
static int do_read(end *e, size_t len) {
  static unsigned char buf[READ_CHUNK];
  size_t out = 99;
  int s;
  if (len > sizeof(buf))
    len = sizeof(buf);
  if (e->read_early && e->state == M_OPEN) {
    /* Accepting server: read_early until it reports the end (OK, 0). */
    s = retls_conn_read_early(&out, e->conn, buf, len);
    if (s == RETLS_OK && out == 0) {
      e->read_early = 0;
      s = RETLS_WANT_READ; /* nothing read; the caller may read again */
    }
  } else {
    early_repeat(e);
    s = retls_conn_read(&out, e->conn, buf, len);
  }
  CHECK(s == RETLS_OK || out == 0, "read: *out=%zu with %s", out, st(s));
  e->last_read = s;
  if (gate(e, "read", s))
    return s;
  switch (s) {
  case RETLS_OK:
    CHECK(out >= 1 && out <= len, "%s read: OK with *out=%zu of %zu",
          e->name, out, len);
    bytes_append(&e->received, buf, out);
    e->want.bytes_read += out;
    check_prefix(e);
    break;
  case RETLS_WANT_READ:
  case RETLS_WANT_WRITE:
    break;
  case RETLS_ZERO_RETURN:
    /* close_notify comes after everything the peer sent before shutdown,
     * and nothing can be acknowledged after it. */
    CHECK(e->peer->shut_started, "%s read ZERO_RETURN but %s never shut down",
          e->name, e->peer->name);
    check_exact(e, "at close_notify");
    e->got_zero = 1;
    break;
  default:
    CHECK(is_fatal(s), "%s read: status %d (%s) not allowed", e->name, s,
          st(s));
    on_fatal(e, "read", s);
    break;
  }
  return s;
}

static void do_reads(end *e, size_t len, unsigned times) {
  size_t before = e->received.len;
  int s = RETLS_OK;
  unsigned i;
  for (i = 0; i < times && s == RETLS_OK; i++)
    s = do_read(e, len);
  log_op("%s read x%u buf %zu -> %zu bytes, %s\n", e->name, i, len,
         e->received.len - before, st(s) + 6);
}

static void do_handshake(end *e) {
  int s;
  early_repeat(e);
  s = retls_conn_handshake(e->conn);
  log_op("%s handshake -> %s\n", e->name, st(s) + 6);
  if (gate(e, "handshake", s))
    return;
  if (s == RETLS_OK || s == RETLS_WANT_READ || s == RETLS_WANT_WRITE)
    return;
  if (s == RETLS_ZERO_RETURN) { /* a renegotiation met close_notify */
    CHECK(e->peer->shut_started, "%s handshake: ZERO_RETURN but %s never "
          "shut down", e->name, e->peer->name);
    e->got_zero = 1;
    return;
  }
  CHECK(is_fatal(s), "%s handshake: status %s not allowed", e->name, st(s));
  on_fatal(e, "handshake", s);
}

static int is_tls13(end *e) {
  const char *v = retls_conn_version(e->conn);
  return v != NULL && strcmp(v, "TLSv1.3") == 0;
}

/* Renegotiation (TLS 1.2) or key update (TLS 1.3): scheduling never fails
 * the connection; BAD_ARG names the wrong protocol or a handshake that is
 * not done, SSL is OpenSSL refusing now (e.g. a write still pending in the
 * record layer) and leaves the connection usable. */
static void do_rekey(end *e, int key_update, int request) {
  int established = e->state == M_OPEN && retls_conn_is_established(e->conn);
  int tls13 = established && is_tls13(e);
  int s = key_update ? retls_conn_key_update(e->conn, request)
                     : retls_conn_renegotiate(e->conn);
  log_op("%s %s -> %s\n", e->name,
         key_update ? (request ? "key_update(request)" : "key_update")
                    : "renegotiate",
         st(s) + 6);
  if (gate(e, "rekey", s))
    return;
  if (!established || tls13 != key_update) {
    CHECK(s == RETLS_BAD_ARG, "%s %s on %s gave %s, expected BAD_ARG",
          e->name, key_update ? "key_update" : "renegotiate",
          established ? (tls13 ? "TLS 1.3" : "TLS 1.2") : "no handshake",
          st(s));
    return;
  }
  /* A renegotiation after close_notify (sent or received) could never
   * complete: the peer ignores handshake records by then. */
  if (!key_update && (e->shut_started || e->got_zero)) {
    CHECK(s == RETLS_BAD_ARG, "%s renegotiate after close_notify gave %s",
          e->name, st(s));
    return;
  }
  /* A KeyUpdate cannot follow our own close_notify. */
  if (key_update && e->shut_started) {
    CHECK(s == RETLS_BAD_ARG, "%s key_update after shutdown gave %s",
          e->name, st(s));
    return;
  }
  CHECK(s == RETLS_OK || s == RETLS_SSL, "%s rekey: %s", e->name, st(s));
  if (s == RETLS_OK && (!key_update || request))
    e->rekeyed = 1;
}

static void do_shutdown(end *e) {
  /* White box: OpenSSL knows whether a renegotiation is still to run
   * (requested by either end); shutdown() must refuse then. */
  int reneg_pending, s, in_init, early_first, ku_first, half_done;
  early_sync(e);
  reneg_pending = e->state == M_OPEN && !e->shut_done &&
                  SSL_renegotiate_pending(e->conn->ssl);
  /* shutdown() settles early data first (may stop before close_notify) */
  early_first = e->state == M_OPEN && !e->has_pend &&
                e->conn->early == RETLS__EARLY_WRITING;
  /* ... and sends a KeyUpdate asked for by key_update() first (conn.c),
   * which may stop too: close_notify not sent, writes still allowed. */
  ku_first = e->state == M_OPEN && !e->has_pend && !replay_left(e) &&
             !e->shut_done && !reneg_pending &&
             (SSL_get_key_update_type(e->conn->ssl) != SSL_KEY_UPDATE_NONE ||
              /* its retry after a stop (OpenSSL took the request) */
              (e->conn->shutdown_key_update &&
               !SSL_is_init_finished(e->conn->ssl)) ||
              /* one another call began sending and stopped */
              (!SSL_is_init_finished(e->conn->ssl) &&
               (SSL_get_state(e->conn->ssl) == TLS_ST_CW_KEY_UPDATE ||
                SSL_get_state(e->conn->ssl) == TLS_ST_SW_KEY_UPDATE)));
  /* A 0-RTT server between its Finished and the client's: OpenSSL would
   * take close_notify there (it allows 0.5-RTT writes), and its session
   * ticket would then follow it unread; retls refuses. */
  half_done = e->state == M_OPEN && !SSL_in_init(e->conn->ssl) &&
              !SSL_is_init_finished(e->conn->ssl) &&
              SSL_get_state(e->conn->ssl) != TLS_ST_OK;
  if (e->state == M_OPEN && SSL_is_init_finished(e->conn->ssl))
    e->handshook = 1;
  s = retls_conn_shutdown(e->conn);
  early_sync(e);
  log_op("%s shutdown -> %s\n", e->name, st(s) + 6);
  if (gate(e, "shutdown", s))
    return;
  if (e->has_pend || replay_left(e)) {
    CHECK(s == RETLS_WRITE_PENDING ||
              (early_first && (s == RETLS_WANT_READ || s == RETLS_WANT_WRITE)),
          "%s shutdown with %zu bytes pending gave %s", e->name, e->tail.len,
          st(s));
    return;
  }
  if (e->shut_done) {
    CHECK(s == RETLS_OK, "%s second shutdown gave %s", e->name, st(s));
    return;
  }
  if (half_done && !early_first) {
    CHECK(s == RETLS_BAD_ARG,
          "%s shutdown between the Finished messages of a 0-RTT handshake "
          "gave %s", e->name, st(s));
    return;
  }
  if (reneg_pending) {
    /* It would start after the close_notify and wedge the pair. */
    CHECK(s == RETLS_BAD_ARG,
          "%s shutdown with a renegotiation pending gave %s", e->name, st(s));
    return;
  }
  in_init = !SSL_is_init_finished(e->conn->ssl);
  if ((early_first || ku_first) &&
      (s == RETLS_WANT_READ || s == RETLS_WANT_WRITE) &&
      !(SSL_get_shutdown(e->conn->ssl) & SSL_SENT_SHUTDOWN)) {
    log_op("  (%s first)\n", early_first ? "early data settling"
                                         : "the KeyUpdate going");
    return;
  }
  e->shut_started = 1;
  switch (s) {
  case RETLS_OK:
    e->shut_done = 1;
    break;
  case RETLS_WANT_READ:
  case RETLS_WANT_WRITE:
    break;
  default:
    CHECK(is_fatal(s), "%s shutdown: status %s not allowed", e->name, st(s));
    /* OpenSSL refuses SSL_shutdown during a handshake ("shutdown while in
     * init"), fatally: the handshake cannot be abandoned half way.  Only
     * the first handshake and a TLS 1.2 renegotiation are such a
     * handshake: once a TLS 1.3 end has finished its handshake, "in init"
     * means a KeyUpdate on its way out, which shutdown() sends first
     * (conn.c); allowing it there hid the shutdown-retry bug (README,
     * finding 12). */
    CHECK((in_init && s == RETLS_SSL &&
           (!e->handshook ||
            (!e->tls13 && (e->rekeyed || e->peer->rekeyed)))) ||
              fatal_ok(e, "shutdown", s),
          "%s shutdown: unexpected %s (%s)", e->name, st(s),
          retls_conn_last_error(e->conn));
    e->state = M_FAILED;
    break;
  }
}

static void do_close(end *e, int discard) {
  int s;
  size_t replay;
  early_sync(e);
  replay = e->state == M_CLOSED ? 0 : replay_left(e);
  s = retls_conn_close(e->conn, discard ? RETLS_CLOSE_DISCARD : 0);
  log_op("%s close%s -> %s\n", e->name, discard ? "(discard)" : "",
         st(s) + 6);
  if (e->state == M_CLOSED) {
    CHECK(s == RETLS_OK, "%s closing twice gave %s", e->name, st(s));
    return;
  }
  if ((e->has_pend || replay) && !discard) {
    CHECK(s == RETLS_WRITE_PENDING,
          "%s close with %zu bytes pending gave %s", e->name, e->tail.len,
          st(s));
    /* The way out it names must work: flush cannot on a failed one. */
    CHECK((strstr(retls_conn_last_error(e->conn), "flush()") != NULL) ==
              (e->state == M_OPEN),
          "%s close refused on a %s connection: \"%s\"", e->name,
          e->state == M_OPEN ? "open" : "failed",
          retls_conn_last_error(e->conn));
    return;
  }
  CHECK(s == RETLS_OK, "%s close gave %s", e->name, st(s));
  e->state = M_CLOSED;
  e->has_pend = 0; /* a discarded write may have been partly sent: tail
                      stays as an allowance for the peer */
  CHECK(retls_conn_fileno(e->conn) == -1, "fileno after close");
  if (e->memory && e->peer->state != M_CLOSED && !e->peer->eof_signalled) {
    /* Like a socket: the peer sees the end of the stream once it has read
     * what was already delivered. */
    CHECK(retls_conn_bio_write_eof(e->peer->conn) == RETLS_OK,
          "bio_write_eof on %s", e->peer->name);
    e->peer->eof_signalled = 1;
  }
}

/* Invalid arguments are refused without touching the retry state. */
static void do_bad_args(end *e) {
  unsigned char b[1];
  size_t out = 99;
  int s;
  log_op("%s bad arguments\n", e->name);
  s = retls_conn_write(&out, e->conn, NULL, 5);
  CHECK(out == 0, "bad write *out");
  if (!gate(e, "write(NULL)", s))
    CHECK(s == RETLS_BAD_ARG, "write(NULL, 5) gave %s", st(s));
  s = retls_conn_read(&out, e->conn, b, 0);
  CHECK(out == 0, "bad read *out");
  if (!gate(e, "read(len 0)", s))
    CHECK(s == RETLS_BAD_ARG, "read(buf, 0) gave %s", st(s));
  CHECK(retls_conn_stats(NULL, e->conn) == RETLS_BAD_ARG, "stats(NULL)");
  CHECK(retls_conn_write(&out, NULL, b, 1) == RETLS_BAD_ARG, "write NULL conn");
}

/* ---- moving ciphertext and draining -------------------------------------- */

/* Memory mode: move up to max bytes of e's outgoing ciphertext to its
 * peer.  Returns the bytes moved. */
static size_t transfer(end *e, size_t max) {
  static unsigned char buf[4096];
  size_t moved = 0;
  if (!e->memory || e->state == M_CLOSED || e->peer->state == M_CLOSED)
    return 0;
  while (moved < max) {
    size_t got = 0, put = 0, want = max - moved;
    int s;
    if (want > sizeof(buf))
      want = sizeof(buf);
    s = retls_conn_bio_read(&got, e->conn, buf, want);
    CHECK(s == RETLS_OK, "bio_read gave %s", st(s));
    if (got == 0)
      break;
    s = retls_conn_bio_write(&put, e->peer->conn, buf, got);
    CHECK(s == RETLS_OK && put == got, "bio_write gave %s, %zu of %zu", st(s),
          put, got);
    moved += got;
  }
  return moved;
}

/* Bytes waiting for e to read: in its transport buffer, or decrypted. */
static size_t incoming(end *e) {
  return BIO_ctrl_pending(SSL_get_rbio(e->conn->ssl)) +
         retls_conn_pending_read(e->conn);
}

static void read_until_blocked(end *e) {
  unsigned i;
  int s = RETLS_OK;
  for (i = 0; i < 64 && s == RETLS_OK && e->state == M_OPEN; i++)
    s = do_read(e, READ_CHUNK);
}

/* One round: each end reads until it would block, flushes and finishes a
 * started shutdown, as a careful application does; memory mode moves all
 * ciphertext across (a failed end's too: it may hold an alert).  The order
 * sidesteps the two OpenSSL limitations of fatal_ok() where it can: the
 * client reads before it writes (so a renegotiation meets the server's
 * data in SSL_read), the server writes before it reads (so its record is
 * out before a ClientHello needs an answer). */
static void pump_end(end *e) {
  transfer(e, SIZE_MAX);
  if (e->state != M_OPEN)
    return;
  if (e == ends[0])
    read_until_blocked(e);
  if (e->state == M_OPEN && e->has_pend)
    do_flush(e);
  if (e->state == M_OPEN && e->shut_started && !e->shut_done)
    do_shutdown(e);
  if (e == ends[1])
    read_until_blocked(e);
  transfer(e, SIZE_MAX);
}

static void pump_round(void) {
  pump_end(ends[0]);
  pump_end(ends[1]);
}

/* e must write before it can read on (a handshake message: a ClientHello
 * or HelloRequest of a renegotiation, say; OpenSSL's SSL_read finishes a
 * pending handshake write first), and its writes cannot drain: its peer
 * failed, or read e's close_notify (OpenSSL stops reading input there), or
 * (pair mode) is in the same position with both buffers full.  e's reads
 * then stop with WANT_WRITE for good and what the peer sent before cannot
 * reach e.  Seen with pair buffers smaller than a handshake flight, and
 * with renegotiations that start after shutdown().  Over TCP the kernel
 * keeps draining and its buffers hold a flight; the memory transport
 * moves bytes to a failed or closing peer too. */
static int wedged(end *e) {
  end *p = e->peer;
  if (e->last_read != RETLS_WANT_WRITE)
    return 0;
  if (p->got_zero || p->state != M_OPEN)
    return 1;
  return !e->memory && p->last_read == RETLS_WANT_WRITE && incoming(e) > 0 &&
         incoming(p) > 0;
}

/* e's pending write waits for a TLS 1.2 renegotiation that can never
 * finish: e has read the peer's close_notify, after which the peer ignores
 * handshake records.  Seen: the server asks for a renegotiation
 * (HelloRequest) and shuts down; OpenSSL defers the renegotiation while
 * the client's write is pending and starts it at the client's next write,
 * after the close_notify.  That write waits with WANT_READ for good; it was
 * never acknowledged and none of it was sent (the handshake comes first).
 * Over TCP the server closing its socket would end it with EOF. */
static int phantom_renegotiation(end *e);

static int stuck(end *e) {
  return e->has_pend && !e->tls13 && (e->rekeyed || e->peer->rekeyed) &&
         retls_conn_want(e->conn) == RETLS_WANT_READ &&
         (e->got_zero || phantom_renegotiation(e));
}

/* OpenSSL 3.0, both ends having asked for a TLS 1.2 renegotiation
 * (fatal_ok(), the stale request after a handshake started from a
 * HelloRequest): the client is in a renegotiation that it did not ask for
 * by OpenSSL's own record (SSL_renegotiate_pending() 0 when it began; a
 * renegotiate() after that sets it again but cannot turn the client to
 * writing), waiting to read the server's first message (in init, state
 * still "finished"; a client that asked writes its ClientHello first and
 * is in "write client hello" from then on), which never comes:
 * the server has nothing to answer.  The client's pending write waits with
 * WANT_READ for good (never acknowledged, none of it sent; over TCP until
 * the server closes), and the server's next application data fails it
 * with "unexpected record".  Input:
 * regress-tls12-reneg-both-stale-request-client-write-stuck. */
static int phantom_renegotiation(end *e) {
  return e == ends[0] && !e->tls13 && e->rekeyed && e->peer->rekeyed &&
         e->state == M_OPEN && SSL_in_init(e->conn->ssl) &&
         SSL_get_state(e->conn->ssl) == TLS_ST_OK;
}

/* e shut down, then read the peer's KeyUpdate asking for one, and OpenSSL
 * makes e answer it behind its close_notify, which the peer has read and
 * after which it reads nothing: e's reads wait with WANT_WRITE to send the
 * KeyUpdate (wedged), and the peer's pending write waits for e to read.
 * The peer could not have known (the close_notify was still on its way
 * when it asked).  Over TCP the KeyUpdate fits the kernel's buffer and e
 * reads on; the pair's small buffer holds it back: a limit of the
 * in-process transport (README.md).  Found by a 100,000-input run of the
 * third round on the old harness: regress-tls13-key-update-request-after-
 * peer-shutdown-wedge. */
static int answers_key_update_wedged(end *e) {
  return e->state == M_OPEN && e->tls13 && e->shut_started && wedged(e) &&
         (SSL_get_state(e->conn->ssl) == TLS_ST_SW_KEY_UPDATE ||
          SSL_get_state(e->conn->ssl) == TLS_ST_CW_KEY_UPDATE);
}

/* Nothing can move any more: every live end has read all that reached it
 * and has nothing left to send, or its peer can no longer take it. */
static int quiet(void) {
  int i;
  for (i = 0; i < 2; i++) {
    end *e = ends[i];
    int peer_alive = e->peer->state == M_OPEN;
    early_sync(e);
    if (e->state != M_OPEN)
      continue;
    if (e->last_read == RETLS_OK)
      return 0; /* stopped at the per-round cap: more to read */
    /* Reading needs no peer: what reached e must be read first. */
    if (incoming(e) > 0 && e->last_read != RETLS_ZERO_RETURN && !wedged(e))
      return 0;
    if (!peer_alive || wedged(e) || answers_key_update_wedged(e->peer))
      continue;
    if ((e->has_pend && !stuck(e)) || (e->shut_started && !e->shut_done) ||
        retls_conn_want(e->conn) == RETLS_WANT_WRITE)
      return 0;
    if (e->memory && retls_conn_bio_pending(e->conn) > 0)
      return 0;
  }
  return 1;
}

/* Pump until nothing moves.  The bound is generous (while anything is in
 * flight every round moves at least a buffer's worth); hitting it means the
 * pair stopped making progress, which is a finding too. */
static void pump_until_quiet(size_t capacity) {
  size_t r, max_rounds = 200 + 8 * (MAX_TOTAL + 65536) / capacity;
  for (r = 0; r < max_rounds; r++) {
    pump_round();
    check_all(ends[0]);
    if (quiet())
      return;
  }
  CHECK(0, "the pair did not become quiet after %zu rounds", max_rounds);
}

/* ---- the target ----------------------------------------------------------- */

/* The model's buffers and the write buffer live across inputs: harness
 * memory, which ASan need not allocate and quarantine anew (up to a MiB)
 * for every input. */
static bytes spare[2][3];
static unsigned char *wbuf;

static void end_init(end *e, int i) {
  e->acked = spare[i][0];
  e->tail = spare[i][1];
  e->received = spare[i][2];
  e->acked.len = e->tail.len = e->received.len = 0;
}

static void end_free(end *e, int i) {
  retls_conn_free(e->conn);
  spare[i][0] = e->acked;
  spare[i][1] = e->tail;
  spare[i][2] = e->received;
}

static void run_input(const uint8_t *data, size_t size) {
  input in = {data, size};
  unsigned cfg, capb, nops = 0;
  size_t capacity, budget, r;
  end client, server;
  int s;

  if (size < 2)
    return;
  cfg = in_u8(&in);
  capb = in_u8(&in);
  capacity = 64 + (size_t)capb * capb; /* 64 .. 65089, dense at the low end */
  budget = capacity * 64 < MAX_TOTAL ? capacity * 64 : MAX_TOTAL;
  make_contexts(cfg & CFG_CTX_MASK);
  early_mode = CFG_EARLY(cfg);
  early_replay = !(capb & 1);
  early_accept = (capb & 2) != 0;
  if (early_mode)
    make_early(cfg & CFG_CTX_MASK);

  op_log_len = 0;
  op_log[0] = '\0';
  log_op("config: %s%s%s%s%s%s, capacity %zu, budget %zu\n",
         (cfg & CFG_TLS13) ? "TLS 1.3" : "TLS 1.2",
         CFG_FULL_HANDSHAKE(cfg) ? ", full handshake"
         : CFG_EARLY(cfg)        ? ", resumption (early-data ticket)"
         : !(cfg & CFG_TLS13)    ? ", resumption"
         : CFG_TICKETS(cfg)      ? ", external PSK (psk_ke), tickets"
                                 : ", external PSK (psk_ke), no tickets",
         (cfg & CFG_PARTIAL) ? ", partial writes" : "",
         (cfg & CFG_SMALLFRAG) ? ", 512-byte records" : "",
         (cfg & CFG_MEMORY) ? ", memory transport" : ", pair transport",
         !early_mode     ? ""
         : early_accept  ? ", early data, server accepts"
         : early_replay  ? ", early data, server rejects, replay on"
                         : ", early data, server rejects, replay off",
         capacity, budget);

  memset(&client, 0, sizeof(client));
  memset(&server, 0, sizeof(server));
  client.name = "client";
  server.name = "server";
  client.peer = &server;
  server.peer = &client;
  client.tls13 = server.tls13 = (cfg & CFG_TLS13) != 0;
  client.partial = server.partial = (cfg & CFG_PARTIAL) != 0;
  client.memory = server.memory = (cfg & CFG_MEMORY) != 0;
  client.last_read = server.last_read = RETLS_WANT_READ;
  end_init(&client, 0);
  end_init(&server, 1);
  ends[0] = &client;
  ends[1] = &server;

  {
    retls_ctx *cc = early_mode
                        ? early_client_ctx[cfg & CFG_CTX_MASK][early_replay]
                        : client_ctx[cfg & CFG_CTX_MASK];
    retls_ctx *sc = early_mode ? early_server_ctx[cfg & CFG_CTX_MASK]
                               : server_ctx[cfg & CFG_CTX_MASK];
    if (cfg & CFG_MEMORY) {
      s = retls_conn_new_memory(&client.conn, cc, NULL, capacity);
      CHECK(s == RETLS_OK, "new_memory client: %s", st(s));
      s = retls_conn_new_memory(&server.conn, sc, NULL, capacity);
      CHECK(s == RETLS_OK, "new_memory server: %s", st(s));
    } else {
      s = retls_pair_new(&client.conn, &server.conn, cc, sc, capacity);
      CHECK(s == RETLS_OK, "pair_new: %s", st(s));
    }
  }
  server.read_early = early_mode && early_accept;
  if (early_mode) {
    use_early_session(client.conn, cfg & CFG_CTX_MASK);
    use_psk_ke(client.conn, server.conn); /* ECDHE is the full kind's */
  }
  else if (!CFG_FULL_HANDSHAKE(cfg))
    use_fast_handshake(client.conn, server.conn, cfg);
  if (wbuf == NULL && (wbuf = malloc(MAX_WRITE + 256)) == NULL)
    abort();

  while (in.n > 0 && nops++ < MAX_OPS) {
    unsigned op = in_u8(&in);
    unsigned code = op & 15, arg = op >> 5;
    end *e = (op & 16) ? &server : &client;
    size_t len, k;

    if (e->read_early && e->state == M_OPEN && code != 15) {
      /* An accepting server reads early data before anything else. */
      do_reads(e, (size_t)1 << arg, 1);
      check_all(&client);
      continue;
    }
    switch (code) {
    case 0: /* a new write: size class from arg, contents generated or a
               constant byte */
    new_write: {
      static const size_t classes[4] = {16, 512, 8192, MAX_WRITE};
      unsigned kind = (arg & 4) ? in_u8(&in) : 0;
      len = 1 + in_u16(&in) % classes[arg & 3];
      if (len > budget)
        len = budget;
      budget -= len;
      fill(wbuf, len, kind);
      do_write(e, wbuf, len, kind ? "constant" : "new");
      break;
    }
    case 1: /* retry with the same bytes, from another address */
      if (!e->has_pend)
        goto new_write;
      memcpy(wbuf, e->tail.data, e->tail.len);
      do_write(e, wbuf, e->tail.len, "same bytes");
      break;
    case 2: /* retry with fewer bytes (0: the documented no-op) */
      if (!e->has_pend)
        goto new_write;
      k = in_u16(&in) % e->tail.len;
      memcpy(wbuf, e->tail.data, k);
      do_write(e, wbuf, k, "shorter");
      break;
    case 3: /* retry with more bytes: the pending ones and some after */
      if (!e->has_pend)
        goto new_write;
      k = 1 + in_u8(&in);
      if (e->tail.len + k > MAX_WRITE + 256)
        k = MAX_WRITE + 256 - e->tail.len;
      memcpy(wbuf, e->tail.data, e->tail.len);
      fill(wbuf + e->tail.len, k, 0);
      do_write(e, wbuf, e->tail.len + k, "longer");
      break;
    case 4: /* retry with the same length, one byte different */
      if (!e->has_pend)
        goto new_write;
      memcpy(wbuf, e->tail.data, e->tail.len);
      k = arg < 2 ? (arg ? e->tail.len - 1 : 0) : in_u16(&in) % e->tail.len;
      wbuf[k] ^= (unsigned char)(1 + in_u8(&in) % 255);
      do_write(e, wbuf, e->tail.len, "same length, other bytes");
      break;
    case 5:
      do_flush(e);
      break;
    case 6: /* reads with a small buffer: partial drains */
      do_reads(e, (size_t)1 << arg, 1 + in_u8(&in) % 16);
      break;
    case 7:
      do_handshake(e);
      break;
    case 8:
      do_rekey(e, 0, 0);
      break;
    case 9:
      do_rekey(e, 1, arg & 1);
      break;
    case 10:
      do_shutdown(e);
      break;
    case 11: /* close: rarely for real, often refused with a write pending */
      if (arg >= 6)
        do_close(e, arg == 7);
      else if (e->has_pend || arg == 5)
        do_close(e, 0);
      else
        goto pump;
      break;
    case 12: /* pump 1..7 rounds, or (arg 7) until quiet */
    pump:
      log_op("pump %s\n", arg == 7 ? "until quiet" : "rounds");
      if (arg == 7)
        pump_until_quiet(capacity);
      else
        for (r = 0; r <= arg; r++)
          pump_round();
      break;
    case 13:
      do_bad_args(e);
      break;
    case 14:
      do_reads(e, READ_CHUNK, 64);
      break;
    case 15: /* memory mode: move a few bytes of ciphertext (a partial
                drain of the transport); pair mode: a zero-length write */
      if (e->memory) {
        k = transfer(e, 1 + (in_u16(&in) % ((size_t)256 << arg)));
        log_op("%s transfer -> %zu bytes\n", e->name, k);
      } else {
        do_write(e, wbuf, 0, "empty");
      }
      break;
    }
    check_all(&client);
  }

  /* Drain: flush what is pending, pump until nothing moves. */
  log_op("---- drain\n");
  pump_until_quiet(capacity);

  /* Exactly what was acknowledged arrived, wherever the path stayed
   * intact: the receiver still open, the sender not closed. */
  for (r = 0; r < 2; r++) {
    end *rx = ends[r], *tx = rx->peer;
    if (rx->state != M_OPEN || tx->state == M_CLOSED || wedged(rx))
      continue;
    if (tx->state == M_OPEN) {
      CHECK(!tx->has_pend || stuck(tx),
            "%s still has a pending write after the drain", tx->name);
      check_exact(rx, "after the drain");
    } else {
      CHECK(rx->received.len >= tx->acked.len,
            "after the drain %s read %zu bytes of the %zu %s was told were "
            "written before it failed",
            rx->name, rx->received.len, tx->acked.len, tx->name);
    }
  }
  /* A fast input that completed its first handshake (and no TLS 1.2
   * renegotiation since) must have resumed: otherwise the fast mode fell
   * back to full handshakes and the run is slow without saying so. */
  if (!CFG_FULL_HANDSHAKE(cfg) && client.state == M_OPEN &&
      retls_conn_is_established(client.conn) &&
      (client.tls13 || !(client.rekeyed || server.rekeyed))) {
    EVP_PKEY *dhe = NULL;
    CHECK(SSL_session_reused(client.conn->ssl),
          "fast mode: the handshake was not abbreviated");
    /* ... and, in TLS 1.3, without (EC)DHE (use_psk_ke). */
    CHECK(!client.tls13 || !SSL_get_peer_tmp_key(client.conn->ssl, &dhe),
          "fast mode: the TLS 1.3 handshake used (EC)DHE");
    EVP_PKEY_free(dhe);
  }
  log_op("---- done: client read %zu, server read %zu\n",
         client.received.len, server.received.len);
  if (verbose)
    fputs(op_log, stderr);

  end_free(&client, 0);
  end_free(&server, 1);
}

/* OpenSSL's live allocations after an input, error queue emptied (its
 * entries may hold strings until the next ERR_clear_error). */
static long openssl_heap_after(void) {
  ERR_clear_error();
  return __atomic_load_n(&openssl_live, __ATOMIC_RELAXED);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* FUZZ_RETRY_STATS=1: at exit, the inputs run and their CPU time by
 * handshake kind (README.md, "Speed"), to see where a run spends it. */
static const char *const kind_names[] = {
    "TLS 1.2 resumption", "TLS 1.3 PSK",         "TLS 1.3 PSK, tickets",
    "TLS 1.3 early data", "TLS 1.2 full",        "TLS 1.3 full",
    "(shorter than 2 bytes)"};
#define KINDS (sizeof(kind_names) / sizeof(kind_names[0]))
static unsigned long kind_runs[KINDS], kind_again[KINDS];
static double kind_cpu[KINDS];

static unsigned kind_of(const uint8_t *data, size_t size) {
  unsigned cfg = size >= 2 ? data[0] : 0;
  if (size < 2)
    return 6;
  if (CFG_FULL_HANDSHAKE(cfg))
    return (cfg & CFG_TLS13) ? 5 : 4;
  if (!(cfg & CFG_TLS13))
    return 0;
  return CFG_EARLY(cfg) ? 3 : CFG_TICKETS(cfg) ? 2 : 1;
}

static double cpu_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void print_stats(void) {
  unsigned long n = 0;
  double cpu = 0;
  unsigned k;
  for (k = 0; k < KINDS; k++) {
    n += kind_runs[k];
    cpu += kind_cpu[k];
  }
  fprintf(stderr, "fuzz_retry stats: %lu inputs, %.1f s CPU in the target\n",
          n, cpu);
  for (k = 0; k < KINDS && n > 0; k++)
    if (kind_runs[k] > 0)
      fprintf(stderr, "  %-22s %5.1f %% of inputs, %5.1f %% of the CPU, "
                      "%.3f ms each, %lu run twice (heap check)\n",
              kind_names[k], 100.0 * (double)kind_runs[k] / (double)n,
              100.0 * kind_cpu[k] / cpu, 1e3 * kind_cpu[k] /
              (double)kind_runs[k], kind_again[k]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  long before = openssl_heap_after(), after;
  double t0 = stats_on ? cpu_now() : 0;
  unsigned kind = kind_of(data, size);
  cur_data = data;
  cur_size = size;
  run_input(data, size);
  after = openssl_heap_after();
  if (after > before)
    kind_again[kind]++;
  /* The first use of a configuration allocates for good (contexts,
   * sessions, OpenSSL's caches); a leak grows again when the same input
   * runs once more, as libFuzzer confirms its own leak reports. */
  if (after > before) {
    before = after;
    run_input(data, size);
    after = openssl_heap_after();
    CHECK(after <= before,
          "OpenSSL objects leaked: %ld of OpenSSL's allocations more after "
          "this input, run twice", after - before);
  }
  if (stats_on) {
    kind_runs[kind]++;
    kind_cpu[kind] += cpu_now() - t0;
  }
  return 0;
}
