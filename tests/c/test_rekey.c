/*
 * test_rekey.c - writes that meet a TLS 1.2 renegotiation or a TLS 1.3
 * KeyUpdate.
 *
 * Renegotiation: after retls_conn_renegotiate() the client's next write
 * sends a ClientHello and stops on WANT_READ until the server has
 * answered; the bytes are kept and sent once the new handshake is done.
 *
 * KeyUpdate, as OpenSSL 3.0 really behaves (established by these tests):
 *   - Sending a KeyUpdate never waits for the peer, so it never makes a
 *     write stop on WANT_READ; it can make one stop on WANT_WRITE when
 *     the transport has no room for the KeyUpdate record.
 *   - A KeyUpdate with update_requested is processed by the receiver's
 *     read, which only marks an answer as due; the answer (the receiver's
 *     own KeyUpdate) goes out at the start of its next write, or after a
 *     write that was pending when the request arrived has completed.
 * The TLS 1.3 tests run in memory mode and split the ciphertext into
 * records: with AES-GCM a KeyUpdate record has a 22-byte payload and a
 * 1-byte application record an 18-byte one.
 */
#include "harness.h"

#define KEY_UPDATE_RECORD 22 /* 4 header + 1 + content type + 16 tag */
#define ONE_BYTE_RECORD 18   /* 1 + content type + 16 tag */
#define CLOSE_NOTIFY_RECORD 19 /* 2-byte alert + content type + 16 tag */

static retls_ctx *client_max(const char *version) {
  retls_ctx *cc = harness_ctx(RETLS_CLIENT);
  if (cc != NULL &&
      retls_ctx_set_versions(cc, NULL, version) != RETLS_OK) {
    retls_ctx_free(cc);
    cc = NULL;
  }
  return cc;
}

/* Relay from -> to, capturing the ciphertext, and return the record
 * payload lengths in lens (count returned, -1 on a torn stream). */
static int relay_records(retls_conn *from, retls_conn *to, size_t *lens,
                         int max) {
  harness_buf wire = {0};
  int n;
  harness_relay(from, to, 0, &wire);
  n = harness_tls_records(&wire, lens, max);
  harness_buf_free(&wire);
  return n;
}

/* ---- TLS 1.2 renegotiation -------------------------------------------- */

static void test_renegotiation_makes_write_want_read(void) {
  retls_ctx *cc = client_max("TLSv1.2");
  retls_conn *c, *s;
  harness_buf got = {0};
  retls_stats st;
  size_t n = 99;
  int rounds;

  CHECK(cc != NULL);
  CHECK_STATUS(NULL, harness_pair(&c, &s, cc, NULL, 0), RETLS_OK);
  retls_ctx_free(cc);
  CHECK(strcmp(retls_conn_version(c), "TLSv1.2") == 0);

  CHECK_STATUS(c, retls_conn_renegotiate(c), RETLS_OK);
  CHECK_STATUS(c, retls_conn_write(&n, c, "hello", 5), RETLS_WANT_READ);
  CHECK(n == 0);
  CHECK(retls_conn_pending_write(c) == 5);
  CHECK(retls_conn_want(c) == RETLS_WANT_READ);
  /* Other bytes while it waits are refused, and the text says what the
   * pending write waits for. */
  CHECK_STATUS(c, retls_conn_write(&n, c, "HELLO", 5), RETLS_RETRY_MISMATCH);
  CHECK(strstr(retls_conn_last_error(c), "readable") != NULL);

  CHECK_STATUS(c, harness_flush_through(c, s, &got, 0, &rounds, &n),
               RETLS_OK);
  CHECK(n == 5);
  CHECK(rounds == 2); /* server hello flight, then server Finished */
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
  CHECK(got.len == 5 && memcmp(got.data, "hello", 5) == 0);
  CHECK_STATUS(c, retls_conn_stats(&st, c), RETLS_OK);
  CHECK(st.want_read == 2 && st.want_write == 0 && st.mismatches == 1);

  /* The renegotiated session carries data both ways. */
  CHECK_STATUS(s, retls_conn_write(&n, s, "back", 4), RETLS_OK);
  got.len = 0;
  CHECK_STATUS(c, harness_drain(c, &got), RETLS_WANT_READ);
  CHECK(got.len == 4 && memcmp(got.data, "back", 4) == 0);
  harness_buf_free(&got);
  retls_conn_free(c);
  retls_conn_free(s);
}

/* A renegotiation can also be driven by handshake() before any write.
 * The server only learns of it by reading: its own handshake() has
 * nothing to do. */
static void test_renegotiation_by_handshake(void) {
  retls_ctx *cc = client_max("TLSv1.2");
  retls_conn *c, *s;
  harness_buf got = {0};
  size_t n;
  int st, i;
  CHECK(cc != NULL);
  CHECK_STATUS(NULL, harness_pair(&c, &s, cc, NULL, 0), RETLS_OK);
  retls_ctx_free(cc);
  CHECK_STATUS(c, retls_conn_renegotiate(c), RETLS_OK);
  CHECK_STATUS(c, retls_conn_handshake(c), RETLS_WANT_READ);
  CHECK_STATUS(s, retls_conn_handshake(s), RETLS_OK);
  for (i = 0, st = RETLS_WANT_READ; i < 10 && st == RETLS_WANT_READ; i++) {
    CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
    st = retls_conn_handshake(c);
  }
  CHECK_STATUS(c, st, RETLS_OK);
  CHECK(i == 2);
  CHECK(got.len == 0);
  CHECK_STATUS(c, retls_conn_write(&n, c, "after", 5), RETLS_OK);
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
  CHECK(got.len == 5 && memcmp(got.data, "after", 5) == 0);
  harness_buf_free(&got);
  retls_conn_free(c);
  retls_conn_free(s);
}

/* A server that refuses renegotiation fails the client's write loudly;
 * the pending bytes were never acknowledged. */
static void test_renegotiation_refused(void) {
  retls_ctx *cc = client_max("TLSv1.2"), *sc = harness_ctx(RETLS_SERVER);
  retls_conn *c, *s;
  harness_buf got = {0};
  size_t n;
  int st, i;
  CHECK(cc != NULL && sc != NULL);
  CHECK_STATUS(NULL, retls_ctx_set_renegotiation(sc, 0), RETLS_OK);
  CHECK_STATUS(NULL, harness_pair(&c, &s, cc, sc, 0), RETLS_OK);
  retls_ctx_free(cc);
  retls_ctx_free(sc);
  CHECK_STATUS(c, retls_conn_renegotiate(c), RETLS_OK);
  st = retls_conn_write(&n, c, "hello", 5);
  for (i = 0; i < 10 && st == RETLS_WANT_READ; i++) {
    harness_drain(s, &got);
    st = retls_conn_flush(&n, c);
  }
  CHECK_STATUS(c, st, RETLS_SSL);
  CHECK(strstr(retls_conn_last_error(c), "no renegotiation") != NULL);
  CHECK(got.len == 0);
  harness_buf_free(&got);
  retls_conn_free(c);
  retls_conn_free(s);
}

/*
 * A limit of OpenSSL 3.0, pinned down so it is never silent: when the
 * client renegotiates while the SERVER has a write pending mid-record, the
 * server's read must answer with handshake records, which OpenSSL cannot
 * interleave with the unfinished application record; it fails the
 * connection ("bad length").  libretls reports that as RETLS_SSL and the
 * pending bytes as never sent (close refuses to drop them silently).
 */
static void test_peer_renegotiation_while_write_pending(void) {
  enum { LEN = 65536 };
  retls_ctx *cc = client_max("TLSv1.2");
  retls_conn *c, *s;
  unsigned char *data = malloc(LEN);
  harness_buf got = {0};
  size_t n;
  harness_pattern(data, LEN, 43);
  CHECK(cc != NULL);
  CHECK_STATUS(NULL, harness_pair(&c, &s, cc, NULL, 4096), RETLS_OK);
  retls_ctx_free(cc);
  CHECK_STATUS(s, retls_conn_write(&n, s, data, LEN), RETLS_WANT_WRITE);
  CHECK_STATUS(c, retls_conn_renegotiate(c), RETLS_OK);
  CHECK_STATUS(c, retls_conn_write(&n, c, "hello", 5), RETLS_WANT_READ);
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_SSL);
  CHECK(strstr(retls_conn_last_error(s), "bad length") != NULL);
  CHECK(got.len == 0);
  CHECK(retls_conn_pending_write(s) == LEN);
  CHECK_STATUS(s, retls_conn_flush(&n, s), RETLS_CLOSED);
  CHECK_STATUS(s, retls_conn_close(s, 0), RETLS_WRITE_PENDING);
  CHECK_STATUS(s, retls_conn_close(s, RETLS_CLOSE_DISCARD), RETLS_OK);
  harness_buf_free(&got);
  free(data);
  retls_conn_free(c);
  retls_conn_free(s);
}

static void test_renegotiate_needs_tls12_and_a_handshake(void) {
  retls_conn *c, *s;
  CHECK_STATUS(NULL, retls_pair_new(&c, &s, NULL, NULL, 0), RETLS_OK);
  CHECK_STATUS(c, retls_conn_renegotiate(c), RETLS_BAD_ARG);
  CHECK(strstr(retls_conn_last_error(c), "handshake") != NULL);
  CHECK_STATUS(c, retls_conn_key_update(c, 1), RETLS_BAD_ARG);
  CHECK_STATUS(c, harness_handshake(c, s), RETLS_OK);
  CHECK(strcmp(retls_conn_version(c), "TLSv1.3") == 0);
  CHECK_STATUS(c, retls_conn_renegotiate(c), RETLS_BAD_ARG);
  CHECK(strstr(retls_conn_last_error(c), "key_update") != NULL);
  retls_conn_free(c);
  retls_conn_free(s);

  {
    retls_ctx *cc = client_max("TLSv1.2");
    CHECK(cc != NULL);
    CHECK_STATUS(NULL, harness_pair(&c, &s, cc, NULL, 0), RETLS_OK);
    retls_ctx_free(cc);
    CHECK_STATUS(c, retls_conn_key_update(c, 1), RETLS_BAD_ARG);
    CHECK(strstr(retls_conn_last_error(c), "renegotiate") != NULL);
    retls_conn_free(c);
    retls_conn_free(s);
  }
}

/* ---- TLS 1.3 KeyUpdate ------------------------------------------------ */

/* update_requested: the peer answers with its own KeyUpdate on its next
 * write, once; without the request it does not. */
static void key_update_answer_case(int request) {
  retls_conn *c, *s;
  harness_buf got = {0};
  size_t lens[8], n;
  retls_stats st;

  CHECK_STATUS(NULL, harness_memory_pair(&c, &s, NULL, NULL, 0), RETLS_OK);
  CHECK_STATUS(s, retls_conn_key_update(s, request), RETLS_OK);
  CHECK_STATUS(s, retls_conn_write(&n, s, "x", 1), RETLS_OK);
  CHECK(relay_records(s, c, lens, 8) == 2);
  CHECK(lens[0] == KEY_UPDATE_RECORD && lens[1] == ONE_BYTE_RECORD);
  CHECK_STATUS(c, harness_drain(c, &got), RETLS_WANT_READ);
  CHECK(got.len == 1 && got.data[0] == 'x');

  CHECK_STATUS(c, retls_conn_write(&n, c, "y", 1), RETLS_OK);
  if (request) {
    CHECK(relay_records(c, s, lens, 8) == 2);
    CHECK(lens[0] == KEY_UPDATE_RECORD && lens[1] == ONE_BYTE_RECORD);
  } else {
    CHECK(relay_records(c, s, lens, 8) == 1);
    CHECK(lens[0] == ONE_BYTE_RECORD);
  }
  /* Answered once only. */
  CHECK_STATUS(c, retls_conn_write(&n, c, "z", 1), RETLS_OK);
  CHECK(relay_records(c, s, lens, 8) == 1);
  CHECK(lens[0] == ONE_BYTE_RECORD);

  /* Both sides decrypt under the new keys. */
  got.len = 0;
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
  CHECK(got.len == 2 && memcmp(got.data, "yz", 2) == 0);
  CHECK_STATUS(s, retls_conn_write(&n, s, "w", 1), RETLS_OK);
  CHECK(relay_records(s, c, lens, 8) == 1);
  got.len = 0;
  CHECK_STATUS(c, harness_drain(c, &got), RETLS_WANT_READ);
  CHECK(got.len == 1 && got.data[0] == 'w');

  CHECK_STATUS(c, retls_conn_stats(&st, c), RETLS_OK);
  CHECK(st.want_read == 0 && st.want_write == 0);
  CHECK_STATUS(s, retls_conn_stats(&st, s), RETLS_OK);
  CHECK(st.want_read == 0 && st.want_write == 0);
  harness_buf_free(&got);
  retls_conn_free(c);
  retls_conn_free(s);
}

static void test_key_update_requested_is_answered(void) {
  key_update_answer_case(1);
}

static void test_key_update_not_requested_is_not_answered(void) {
  key_update_answer_case(0);
}

/*
 * The case the retry contract worries about: the client's write is blocked
 * on WANT_WRITE when the server's KeyUpdate(update_requested) arrives.  The
 * client reads it (with its write pending), then finishes the write: no
 * step returns WANT_READ, the pending write's records go out unchanged,
 * and the answer follows with the client's next write.
 */
static void test_key_update_requested_while_write_pending(void) {
  enum { LEN = 4 * 16384 };
  retls_conn *c, *s;
  unsigned char *data = malloc(LEN);
  harness_buf got = {0}, wire = {0};
  size_t lens[16], n;
  retls_stats st;
  int i, records, rounds = 0;

  harness_pattern(data, LEN, 41);
  CHECK_STATUS(NULL, harness_memory_pair(&c, &s, NULL, NULL, 4096), RETLS_OK);
  CHECK_STATUS(c, retls_conn_write(&n, c, data, LEN), RETLS_WANT_WRITE);

  CHECK_STATUS(s, retls_conn_key_update(s, 1), RETLS_OK);
  CHECK_STATUS(s, retls_conn_write(&n, s, "x", 1), RETLS_OK);
  CHECK(relay_records(s, c, lens, 16) == 2);
  CHECK(lens[0] == KEY_UPDATE_RECORD);
  CHECK_STATUS(c, harness_drain(c, &got), RETLS_WANT_READ);
  CHECK(got.len == 1 && got.data[0] == 'x');
  CHECK(retls_conn_pending_write(c) == LEN);

  /* Finish the write by hand, capturing everything the client sends. */
  got.len = 0;
  for (;;) {
    int status;
    harness_relay(c, s, 0, &wire);
    CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
    status = retls_conn_flush(&n, c);
    rounds++;
    CHECK(status == RETLS_OK || status == RETLS_WANT_WRITE);
    if (status == RETLS_OK || rounds > 1000)
      break;
  }
  CHECK(n == LEN);
  harness_relay(c, s, 0, &wire);
  /* Only the four full application records: the answer is not wedged
   * into the pending write. */
  records = harness_tls_records(&wire, lens, 16);
  CHECK(records == 4);
  for (i = 0; i < records; i++)
    CHECK(lens[i] == 16384 + 17);

  CHECK_STATUS(c, retls_conn_write(&n, c, "y", 1), RETLS_OK);
  CHECK(relay_records(c, s, lens, 16) == 2);
  CHECK(lens[0] == KEY_UPDATE_RECORD && lens[1] == ONE_BYTE_RECORD);
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
  CHECK(got.len == LEN + 1);
  CHECK(memcmp(got.data, data, LEN) == 0 && got.data[LEN] == 'y');

  CHECK_STATUS(c, retls_conn_stats(&st, c), RETLS_OK);
  CHECK(st.want_read == 0);
  CHECK(st.want_write == (uint64_t)rounds); /* first write + rounds-1 */
  harness_buf_free(&got);
  harness_buf_free(&wire);
  free(data);
  retls_conn_free(c);
  retls_conn_free(s);
}

/*
 * Sending a KeyUpdate when the transport is full: the write stops on
 * WANT_WRITE (never WANT_READ) before any of its own bytes are taken, and
 * the flush sends the KeyUpdate, then the data.
 */
static void test_key_update_send_blocked_wants_write(void) {
  enum { CAP = 4096, FILL = CAP - 22 }; /* one record fills the pipe */
  retls_conn *c, *s;
  unsigned char *fill = malloc(FILL);
  harness_buf got = {0};
  size_t lens[8], n;
  retls_stats st;

  harness_pattern(fill, FILL, 42);
  CHECK_STATUS(NULL, harness_memory_pair(&c, &s, NULL, NULL, CAP), RETLS_OK);
  CHECK_STATUS(c, retls_conn_write(&n, c, fill, FILL), RETLS_OK);
  CHECK(retls_conn_bio_pending(c) == CAP);

  CHECK_STATUS(c, retls_conn_key_update(c, 1), RETLS_OK);
  CHECK_STATUS(c, retls_conn_write(&n, c, "z", 1), RETLS_WANT_WRITE);
  CHECK(retls_conn_want(c) == RETLS_WANT_WRITE);
  CHECK(retls_conn_pending_write(c) == 1);
  CHECK(relay_records(c, s, lens, 8) == 1 && lens[0] == FILL + 17);
  CHECK_STATUS(c, retls_conn_flush(&n, c), RETLS_OK);
  CHECK(n == 1);
  CHECK(relay_records(c, s, lens, 8) == 2);
  CHECK(lens[0] == KEY_UPDATE_RECORD && lens[1] == ONE_BYTE_RECORD);
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
  CHECK(got.len == FILL + 1 && memcmp(got.data, fill, FILL) == 0 &&
        got.data[FILL] == 'z');
  /* The server answers the request with its next write. */
  CHECK_STATUS(s, retls_conn_write(&n, s, "a", 1), RETLS_OK);
  CHECK(relay_records(s, c, lens, 8) == 2);
  CHECK(lens[0] == KEY_UPDATE_RECORD && lens[1] == ONE_BYTE_RECORD);
  got.len = 0;
  CHECK_STATUS(c, harness_drain(c, &got), RETLS_WANT_READ);
  CHECK(got.len == 1 && got.data[0] == 'a');
  CHECK_STATUS(c, retls_conn_stats(&st, c), RETLS_OK);
  CHECK(st.want_read == 0 && st.want_write == 1 && st.retries == 1);
  harness_buf_free(&got);
  free(fill);
  retls_conn_free(c);
  retls_conn_free(s);
}

/* handshake() sends a scheduled KeyUpdate without any data. */
static void test_key_update_sent_by_handshake(void) {
  retls_conn *c, *s;
  size_t lens[4], n;
  harness_buf got = {0};
  CHECK_STATUS(NULL, harness_memory_pair(&c, &s, NULL, NULL, 0), RETLS_OK);
  CHECK_STATUS(c, retls_conn_key_update(c, 0), RETLS_OK);
  CHECK_STATUS(c, retls_conn_handshake(c), RETLS_OK);
  CHECK(relay_records(c, s, lens, 4) == 1 && lens[0] == KEY_UPDATE_RECORD);
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
  CHECK(got.len == 0);
  CHECK_STATUS(c, retls_conn_write(&n, c, "k", 1), RETLS_OK);
  harness_relay(c, s, 0, NULL);
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
  CHECK(got.len == 1 && got.data[0] == 'k');
  harness_buf_free(&got);
  retls_conn_free(c);
  retls_conn_free(s);
}

/* shutdown() right after key_update(): the scheduled KeyUpdate goes out
 * first, then close_notify (OpenSSL alone refuses: "shutdown while in
 * init"; found by scripts/soak_aio.py). */
static void test_shutdown_sends_a_scheduled_key_update(void) {
  retls_conn *c, *s;
  size_t lens[4];
  harness_buf got = {0};
  CHECK_STATUS(NULL, harness_memory_pair(&c, &s, NULL, NULL, 0), RETLS_OK);
  CHECK_STATUS(c, retls_conn_key_update(c, 1), RETLS_OK);
  CHECK_STATUS(c, retls_conn_shutdown(c), RETLS_OK);
  CHECK(relay_records(c, s, lens, 4) == 2);
  CHECK(lens[0] == KEY_UPDATE_RECORD && lens[1] == CLOSE_NOTIFY_RECORD);
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_ZERO_RETURN);
  CHECK(got.len == 0);
  harness_buf_free(&got);
  retls_conn_free(c);
  retls_conn_free(s);
}

/* shutdown() that stops while sending the scheduled KeyUpdate (no room
 * for its record): OpenSSL has taken the request but stays in init until
 * the record is out, and the retry must finish it, then send close_notify.
 * It used to go to SSL_shutdown and fail the connection ("shutdown while
 * in init"). */
static void test_shutdown_retry_finishes_the_key_update(void) {
  enum { CAP = 4096, FILL = CAP - 22 }; /* one record fills the pipe */
  retls_conn *c, *s;
  unsigned char *fill = malloc(FILL);
  harness_buf got = {0};
  size_t lens[8], n = 99;

  harness_pattern(fill, FILL, 43);
  CHECK_STATUS(NULL, harness_memory_pair(&c, &s, NULL, NULL, CAP), RETLS_OK);
  CHECK_STATUS(c, retls_conn_write(&n, c, fill, FILL), RETLS_OK);
  CHECK(retls_conn_bio_pending(c) == CAP);
  CHECK_STATUS(c, retls_conn_key_update(c, 1), RETLS_OK);
  CHECK_STATUS(c, retls_conn_shutdown(c), RETLS_WANT_WRITE);
  CHECK(relay_records(c, s, lens, 8) == 1 && lens[0] == FILL + 17);
  CHECK_STATUS(c, retls_conn_shutdown(c), RETLS_OK);
  CHECK(relay_records(c, s, lens, 8) == 2);
  CHECK(lens[0] == KEY_UPDATE_RECORD && lens[1] == CLOSE_NOTIFY_RECORD);
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_ZERO_RETURN);
  CHECK(got.len == FILL && memcmp(got.data, fill, FILL) == 0);
  harness_buf_free(&got);
  free(fill);
  retls_conn_free(c);
  retls_conn_free(s);
}

/* key_update() while the last one is scheduled but not sent: OpenSSL is
 * back "in init" until it is, so it refuses (RETLS_SSL, saying what to do)
 * but the connection stays established and usable; it used to say the
 * handshake was not done (RETLS_BAD_ARG), while is_established, version
 * and cipher said it was (fuzz: regress-tls13-key-update-while-one-is-
 * scheduled). */
static void test_key_update_while_one_is_scheduled(void) {
  retls_conn *c, *s;
  size_t lens[4], n;
  harness_buf got = {0};
  CHECK_STATUS(NULL, harness_memory_pair(&c, &s, NULL, NULL, 0), RETLS_OK);
  CHECK_STATUS(c, retls_conn_key_update(c, 0), RETLS_OK);
  CHECK(retls_conn_is_established(c));
  CHECK(strcmp(retls_conn_version(c), "TLSv1.3") == 0);
  CHECK_STATUS(c, retls_conn_key_update(c, 1), RETLS_SSL);
  CHECK(strstr(retls_conn_last_error(c), "flush() or write") != NULL);
  CHECK_STATUS(c, retls_conn_write(&n, c, "k", 1), RETLS_OK);
  CHECK(relay_records(c, s, lens, 4) == 2 && lens[0] == KEY_UPDATE_RECORD &&
        lens[1] == ONE_BYTE_RECORD);
  CHECK_STATUS(c, retls_conn_key_update(c, 1), RETLS_OK); /* sent: again */
  CHECK_STATUS(c, retls_conn_write(&n, c, "l", 1), RETLS_OK);
  harness_relay(c, s, 0, NULL);
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_WANT_READ);
  CHECK(got.len == 2 && memcmp(got.data, "kl", 2) == 0);
  harness_buf_free(&got);
  retls_conn_free(c);
  retls_conn_free(s);
}

/* The same when a read began sending the KeyUpdate and stopped with
 * WANT_WRITE (found by fuzz_retry, regress-tls13-shutdown-after-read-began-
 * key-update): shutdown() must finish it, not fail the connection with
 * "shutdown while in init". */
static void test_shutdown_finishes_a_key_update_a_read_began(void) {
  enum { CAP = 4096, FILL = CAP - 22 }; /* one record fills the pipe */
  retls_conn *c, *s;
  unsigned char *fill = malloc(FILL), buf[64];
  harness_buf got = {0};
  size_t lens[8], n = 99;

  harness_pattern(fill, FILL, 44);
  CHECK_STATUS(NULL, harness_memory_pair(&c, &s, NULL, NULL, CAP), RETLS_OK);
  CHECK_STATUS(c, retls_conn_write(&n, c, fill, FILL), RETLS_OK);
  CHECK(retls_conn_bio_pending(c) == CAP);
  CHECK_STATUS(c, retls_conn_key_update(c, 1), RETLS_OK);
  CHECK_STATUS(c, retls_conn_read(&n, c, buf, sizeof(buf)), RETLS_WANT_WRITE);
  CHECK_STATUS(c, retls_conn_shutdown(c), RETLS_WANT_WRITE);
  CHECK(relay_records(c, s, lens, 8) == 1 && lens[0] == FILL + 17);
  CHECK_STATUS(c, retls_conn_shutdown(c), RETLS_OK);
  CHECK(relay_records(c, s, lens, 8) == 2);
  CHECK(lens[0] == KEY_UPDATE_RECORD && lens[1] == CLOSE_NOTIFY_RECORD);
  CHECK_STATUS(s, harness_drain(s, &got), RETLS_ZERO_RETURN);
  CHECK(got.len == FILL && memcmp(got.data, fill, FILL) == 0);
  harness_buf_free(&got);
  free(fill);
  retls_conn_free(c);
  retls_conn_free(s);
}

int main(void) {
  RUN(test_renegotiation_makes_write_want_read);
  RUN(test_renegotiation_by_handshake);
  RUN(test_renegotiation_refused);
  RUN(test_peer_renegotiation_while_write_pending);
  RUN(test_renegotiate_needs_tls12_and_a_handshake);
  RUN(test_key_update_requested_is_answered);
  RUN(test_key_update_not_requested_is_not_answered);
  RUN(test_key_update_requested_while_write_pending);
  RUN(test_key_update_send_blocked_wants_write);
  RUN(test_key_update_sent_by_handshake);
  RUN(test_shutdown_sends_a_scheduled_key_update);
  RUN(test_shutdown_retry_finishes_the_key_update);
  RUN(test_key_update_while_one_is_scheduled);
  RUN(test_shutdown_finishes_a_key_update_a_read_began);
  return harness_finish();
}
