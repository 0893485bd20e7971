/*
 * openssl_limits.c - the OpenSSL behaviours fuzz_retry found, shown with
 * plain OpenSSL (no retls) over a BIO pair, so that fuzz/README.md's claims
 * can be checked against whatever OpenSSL is installed:
 *
 *   build-fuzz/fuzz/openssl_limits
 *
 * Each scenario prints what OpenSSL returned and OpenSSL's error queue.
 * 1-4, 7 and 8 are limitations fuzz_retry's model allows (fatal_ok()); 5 is why
 * retls_conn_renegotiate() refuses after close_notify; 6 is why
 * retls_conn_write() refuses after shutdown() by itself.
 * Not a test: it documents OpenSSL (3.0.19 on Debian 12 at the time of
 * writing), whose behaviour may change; fuzz_retry's fatal_ok() names the
 * same cases.
 */
#include <stdio.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

static unsigned char buf[20000];

static void use_throwaway_cert(SSL_CTX *ctx) {
  EVP_PKEY *k = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, k);
  X509_set_issuer_name(x, X509_get_subject_name(x));
  X509_sign(x, k, EVP_sha256());
  SSL_CTX_use_certificate(ctx, x);
  SSL_CTX_use_PrivateKey(ctx, k);
  X509_free(x);
  EVP_PKEY_free(k);
}

/* A client and a server over a BIO pair of `capacity` bytes each way,
 * handshake done.  The modes retls sets. */
static void make_pair(SSL **c, SSL **s, int version, size_t capacity) {
  SSL_CTX *cc = SSL_CTX_new(TLS_client_method());
  SSL_CTX *sc = SSL_CTX_new(TLS_server_method());
  BIO *cb, *sb;
  size_t n;
  int i;
  use_throwaway_cert(sc);
  SSL_CTX_set_min_proto_version(cc, version);
  SSL_CTX_set_max_proto_version(cc, version);
  SSL_CTX_set_options(sc, SSL_OP_ALLOW_CLIENT_RENEGOTIATION);
  SSL_CTX_set_mode(cc, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_mode(sc, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  *c = SSL_new(cc);
  *s = SSL_new(sc);
  SSL_CTX_free(cc); /* the SSL objects hold references */
  SSL_CTX_free(sc);
  BIO_new_bio_pair(&cb, capacity, &sb, capacity);
  SSL_set_bio(*c, cb, cb);
  SSL_set_bio(*s, sb, sb);
  SSL_set_connect_state(*c);
  SSL_set_accept_state(*s);
  for (i = 0; i < 500; i++) { /* reads also take TLS 1.3 session tickets */
    SSL_do_handshake(*c);
    SSL_do_handshake(*s);
    SSL_read_ex(*c, buf, sizeof(buf), &n);
    SSL_read_ex(*s, buf, sizeof(buf), &n);
  }
  ERR_clear_error();
  printf("  handshake done: %s\n",
         SSL_is_init_finished(*c) && SSL_is_init_finished(*s)
             ? SSL_get_version(*c)
             : "NO");
}

/* retls' memory mode: each end reads from an unbounded memory BIO and
 * writes into a BIO pair of `capacity` bytes whose other half the
 * application (here: move()) drains into the peer's memory BIO.  The
 * contexts as core/src/context.c makes them. */
static BIO *net_out[2]; /* [0] the client's outgoing half, [1] the server's */

static void make_memory_pair(SSL **c, SSL **s, int version, size_t capacity) {
  SSL_CTX *ctx[2];
  SSL **ssl[2];
  int i;
  ctx[0] = SSL_CTX_new(TLS_client_method());
  ctx[1] = SSL_CTX_new(TLS_server_method());
  ssl[0] = c;
  ssl[1] = s;
  use_throwaway_cert(ctx[1]);
  SSL_CTX_set_options(ctx[1], SSL_OP_ALLOW_CLIENT_RENEGOTIATION);
  for (i = 0; i < 2; i++) {
    BIO *in = BIO_new(BIO_s_mem()), *out;
    SSL_CTX_set_min_proto_version(ctx[i], version);
    SSL_CTX_set_max_proto_version(ctx[i], version);
    SSL_CTX_set_options(ctx[i], SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx[i], SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                 SSL_MODE_AUTO_RETRY);
    BIO_set_mem_eof_return(in, -1); /* empty: "retry", not EOF */
    BIO_new_bio_pair(&out, capacity, &net_out[i], capacity);
    *ssl[i] = SSL_new(ctx[i]);
    SSL_CTX_free(ctx[i]);
    SSL_set_bio(*ssl[i], in, out);
  }
  SSL_set_connect_state(*c);
  SSL_set_accept_state(*s);
}

/* Move up to max bytes of the client's (from = 0) or the server's (1)
 * outgoing ciphertext into the peer's memory BIO. */
static size_t move(SSL *to, int from, size_t max) {
  size_t moved = 0;
  int n;
  while (moved < max &&
         (n = BIO_read(net_out[from], buf,
                       (int)(max - moved < sizeof(buf) ? max - moved
                                                       : sizeof(buf)))) > 0) {
    BIO_write(SSL_get_rbio(to), buf, n);
    moved += (size_t)n;
  }
  return moved;
}

/* Handshake over make_memory_pair(), moving everything each turn. */
static void memory_handshake(SSL *c, SSL *s) {
  size_t n;
  int i;
  for (i = 0; i < 500; i++) {
    SSL_do_handshake(c);
    SSL_read_ex(c, buf, sizeof(buf), &n);
    move(s, 0, sizeof(buf));
    SSL_do_handshake(s);
    SSL_read_ex(s, buf, sizeof(buf), &n);
    move(c, 1, sizeof(buf));
  }
  ERR_clear_error();
  printf("  handshake done: %s\n",
         SSL_is_init_finished(c) && SSL_is_init_finished(s)
             ? SSL_get_version(c)
             : "NO");
}

static const char *err_name(int e) {
  switch (e) {
  case SSL_ERROR_NONE: return "ok";
  case SSL_ERROR_SSL: return "SSL_ERROR_SSL";
  case SSL_ERROR_WANT_READ: return "WANT_READ";
  case SSL_ERROR_WANT_WRITE: return "WANT_WRITE";
  case SSL_ERROR_SYSCALL: return "SSL_ERROR_SYSCALL";
  case SSL_ERROR_ZERO_RETURN: return "ZERO_RETURN";
  default: return "other";
  }
}

/* Run one call, print its return value, SSL_get_error() when it is not
 * positive, and OpenSSL's error queue. */
#define SHOW(ssl, what, call)                                               \
  do {                                                                      \
    int r_ = (call);                                                        \
    unsigned long e_;                                                       \
    printf("  %-44s -> %2d %s\n", what, r_,                                \
           r_ > 0 ? "" : err_name(SSL_get_error(ssl, r_)));                 \
    while ((e_ = ERR_get_error()) != 0)                                     \
      printf("      %s\n", ERR_error_string(e_, NULL));                     \
  } while (0)

/* Scenario 7: the calls fuzz_retry made on the input
 * regress-tls12-reneg-both-client-read-unexpected-record, with the client's
 * SSL_renegotiate or without it. */
static void reneg_both_read(int client_asks) {
  SSL *c, *s;
  size_t n;
  int i;
  make_memory_pair(&c, &s, TLS1_2_VERSION, 64);
  memory_handshake(c, s);
  SHOW(c, "client SSL_write 11 bytes", SSL_write_ex(c, buf, 11, &n));
  SHOW(s, "server SSL_write 7 bytes", SSL_write_ex(s, buf, 7, &n));
  SHOW(s, "server SSL_read 2", SSL_read_ex(s, buf, 2, &n));
  SHOW(c, "client SSL_write 6 bytes", SSL_write_ex(c, buf, 6, &n));
  SHOW(s, "server SSL_renegotiate", SSL_renegotiate(s));
  SHOW(s, "server SSL_write 1 byte (HelloRequest first)",
       SSL_write_ex(s, buf, 1, &n));
  SHOW(c, "client SSL_read", SSL_read_ex(c, buf, sizeof(buf), &n));
  if (client_asks)
    SHOW(c, "client SSL_renegotiate (deferred: a write is pending)",
         SSL_renegotiate(c));
  printf("  %-44s -> %zu bytes\n", "server -> client",
         move(c, 1, 64));
  printf("  %-44s -> %zu bytes\n", "client -> server", move(s, 0, 1000));
  SHOW(c, "client SSL_read (the 7 bytes)",
       SSL_read_ex(c, buf, sizeof(buf), &n));
  SHOW(c, "client SSL_read (part of the HelloRequest)",
       SSL_read_ex(c, buf, sizeof(buf), &n));
  SHOW(c, "client SSL_write 6 bytes (the retry)", SSL_write_ex(c, buf, 6, &n));
  printf("  %-44s -> %zu bytes\n", "client -> server", move(s, 0, 1000));
  SHOW(s, "server SSL_write 1 byte (the retry)", SSL_write_ex(s, buf, 1, &n));
  SHOW(s, "server SSL_read (11 bytes)", SSL_read_ex(s, buf, sizeof(buf), &n));
  SHOW(s, "server SSL_read (6 bytes)", SSL_read_ex(s, buf, sizeof(buf), &n));
  printf("  %-44s -> %zu bytes\n", "server -> client", move(c, 1, 1000));
  printf("  %-44s -> %d\n", "client SSL_renegotiate_pending",
         SSL_renegotiate_pending(c));
  for (i = 0; i < 40; i++) { /* until the server's 1 byte or a failure */
    int r = SSL_read_ex(c, buf, sizeof(buf), &n);
    int failed = r != 1 && SSL_get_error(c, r) == SSL_ERROR_SSL;
    SHOW(c, "client SSL_read", r);
    if (failed || r == 1) {
      printf("  %-44s -> %ld\n", "client SSL_total_renegotiations",
             SSL_total_renegotiations(c));
      break;
    }
    printf("  %-44s -> %zu bytes\n", "client -> server", move(s, 0, 1000));
    SHOW(s, "server SSL_read", SSL_read_ex(s, buf, sizeof(buf), &n));
    printf("  %-44s -> %zu bytes\n", "server -> client", move(c, 1, 1000));
  }
  SSL_free(c);
  SSL_free(s);
  BIO_free(net_out[0]);
  BIO_free(net_out[1]);
}

int main(void) {
  SSL *c, *s;
  size_t n;

  puts("1. TLS 1.2: the server's record is half sent when the client's "
       "renegotiation arrives");
  make_pair(&c, &s, TLS1_2_VERSION, 4096);
  SHOW(s, "server SSL_write 10000 bytes", SSL_write_ex(s, buf, 10000, &n));
  SHOW(c, "client SSL_renegotiate", SSL_renegotiate(c));
  SHOW(c, "client SSL_do_handshake (sends ClientHello)", SSL_do_handshake(c));
  SHOW(s, "server SSL_read", SSL_read_ex(s, buf, sizeof(buf), &n));
  SSL_free(c);
  SSL_free(s);

  puts("\n2. TLS 1.2: the client's record is half sent, it has a "
       "renegotiation scheduled, the server's HelloRequest arrives");
  make_pair(&c, &s, TLS1_2_VERSION, 4096);
  SHOW(c, "client SSL_write 10000 bytes", SSL_write_ex(c, buf, 10000, &n));
  SHOW(c, "client SSL_renegotiate", SSL_renegotiate(c));
  SHOW(s, "server SSL_renegotiate", SSL_renegotiate(s));
  SHOW(s, "server SSL_do_handshake (sends HelloRequest)", SSL_do_handshake(s));
  SHOW(c, "client SSL_read", SSL_read_ex(c, buf, sizeof(buf), &n));
  SSL_free(c);
  SSL_free(s);

  puts("\n3. TLS 1.3: the client's record is half sent, key updates "
       "requested on both ends");
  make_pair(&c, &s, TLS1_3_VERSION, 100);
  SHOW(c, "client SSL_key_update(requested)",
       SSL_key_update(c, SSL_KEY_UPDATE_REQUESTED));
  SHOW(c, "client SSL_write 13 bytes (sends KeyUpdate)",
       SSL_write_ex(c, buf, 13, &n));
  SHOW(c, "client SSL_key_update(requested)",
       SSL_key_update(c, SSL_KEY_UPDATE_REQUESTED));
  SHOW(c, "client SSL_write 289 bytes", SSL_write_ex(c, buf, 289, &n));
  SHOW(s, "server SSL_write 1 byte", SSL_write_ex(s, "x", 1, &n));
  SHOW(s, "server SSL_key_update(requested)",
       SSL_key_update(s, SSL_KEY_UPDATE_REQUESTED));
  SHOW(c, "client SSL_read", SSL_read_ex(c, buf, sizeof(buf), &n));
  SHOW(c, "client SSL_read", SSL_read_ex(c, buf, sizeof(buf), &n));
  SHOW(s, "server SSL_read (answers the KeyUpdates)",
       SSL_read_ex(s, buf, sizeof(buf), &n));
  SHOW(s, "server SSL_read", SSL_read_ex(s, buf, sizeof(buf), &n));
  SHOW(c, "client SSL_read", SSL_read_ex(c, buf, sizeof(buf), &n));
  SSL_free(c);
  SSL_free(s);

  puts("\n4. TLS 1.2: the client renegotiates, the server sends data "
       "first; a retried SSL_write meets it");
  make_pair(&c, &s, TLS1_2_VERSION, 65536);
  SHOW(c, "client SSL_renegotiate", SSL_renegotiate(c));
  SHOW(c, "client SSL_write 3 bytes", SSL_write_ex(c, "abc", 3, &n));
  SHOW(s, "server SSL_write 5 bytes", SSL_write_ex(s, "hello", 5, &n));
  SHOW(c, "client SSL_write 3 bytes (the retry)", SSL_write_ex(c, "abc", 3, &n));
  SSL_free(c);
  SSL_free(s);

  puts("\n   ... and after the client read part of the server's record: "
       "no error at all, indistinguishable from EOF");
  make_pair(&c, &s, TLS1_2_VERSION, 65536);
  SHOW(s, "server SSL_write 1000 bytes", SSL_write_ex(s, buf, 1000, &n));
  SHOW(c, "client SSL_renegotiate", SSL_renegotiate(c));
  SHOW(c, "client SSL_read 4 of them", SSL_read_ex(c, buf, 4, &n));
  SHOW(c, "client SSL_write 1 byte", SSL_write_ex(c, "x", 1, &n));
  SSL_free(c);
  SSL_free(s);

  puts("\n   ... and the same with SSL_read first");
  make_pair(&c, &s, TLS1_2_VERSION, 65536);
  SHOW(c, "client SSL_renegotiate", SSL_renegotiate(c));
  SHOW(c, "client SSL_write 3 bytes", SSL_write_ex(c, "abc", 3, &n));
  SHOW(s, "server SSL_write 5 bytes", SSL_write_ex(s, "hello", 5, &n));
  SHOW(c, "client SSL_read (gets the 5 bytes)",
       SSL_read_ex(c, buf, sizeof(buf), &n));
  SHOW(c, "client SSL_write 3 bytes (the retry)", SSL_write_ex(c, "abc", 3, &n));
  SSL_free(c);
  SSL_free(s);

  puts("\n5. TLS 1.2: renegotiation after the peer's close_notify is "
       "accepted and never completes (retls refuses it)");
  make_pair(&c, &s, TLS1_2_VERSION, 65536);
  printf("  %-44s -> %2d (close_notify sent)\n", "server SSL_shutdown",
         SSL_shutdown(s));
  SHOW(c, "client SSL_read (close_notify)", SSL_read_ex(c, buf, 10, &n));
  SHOW(c, "client SSL_renegotiate", SSL_renegotiate(c));
  SHOW(c, "client SSL_write 3 bytes", SSL_write_ex(c, "abc", 3, &n));
  SHOW(s, "server SSL_read (ignores the ClientHello)",
       SSL_read_ex(s, buf, sizeof(buf), &n));
  SHOW(c, "client SSL_write 3 bytes (the retry)", SSL_write_ex(c, "abc", 3, &n));
  SHOW(c, "client SSL_read", SSL_read_ex(c, buf, sizeof(buf), &n));
  SSL_free(c);
  SSL_free(s);

  puts("\n6. TLS 1.2: a renegotiation scheduled before SSL_shutdown starts "
       "after it, clears the shutdown flags, and SSL_write then accepts "
       "bytes behind the close_notify (retls refuses them)");
  make_pair(&c, &s, TLS1_2_VERSION, 65536);
  SHOW(s, "server SSL_renegotiate", SSL_renegotiate(s));
  printf("  %-44s -> %2d (close_notify sent)\n", "server SSL_shutdown",
         SSL_shutdown(s));
  printf("  %-44s -> %d\n", "server SSL_get_shutdown", SSL_get_shutdown(s));
  SHOW(s, "server SSL_read (starts the renegotiation)",
       SSL_read_ex(s, buf, sizeof(buf), &n));
  printf("  %-44s -> %d\n", "server SSL_get_shutdown", SSL_get_shutdown(s));
  SHOW(s, "server SSL_write 5 bytes", SSL_write_ex(s, "later", 5, &n));
  SHOW(c, "client SSL_read", SSL_read_ex(c, buf, sizeof(buf), &n));
  SHOW(c, "client SSL_read", SSL_read_ex(c, buf, sizeof(buf), &n));
  SSL_free(c);
  SSL_free(s);
  puts("\n7. TLS 1.2, retls' memory mode (64-byte outgoing pairs): both ends "
       "ask for a renegotiation; the server's HelloRequest starts the "
       "client's own from inside SSL_read, which then refuses the server's "
       "application data (fuzz input regress-tls12-reneg-both-client-read-"
       "unexpected-record, replayed call by call)");
  reneg_both_read(1);
  puts("\n   ... and the same calls without the client's SSL_renegotiate: "
       "the HelloRequest's renegotiation reads the data");
  reneg_both_read(0);
  puts("\n8. TLS 1.3: the client's close_notify is half sent when the "
       "server's KeyUpdates asking for one arrive (the second needs the "
       "first's answer written)");
  make_pair(&c, &s, TLS1_3_VERSION, 100);
  SHOW(c, "client SSL_write 60 bytes", SSL_write_ex(c, buf, 60, &n));
  SHOW(c, "client SSL_shutdown (close_notify half sent)", SSL_shutdown(c));
  SHOW(s, "server SSL_key_update(requested)",
       SSL_key_update(s, SSL_KEY_UPDATE_REQUESTED));
  SHOW(s, "server SSL_write 1 byte (sends KeyUpdate)",
       SSL_write_ex(s, "x", 1, &n));
  SHOW(s, "server SSL_key_update(requested)",
       SSL_key_update(s, SSL_KEY_UPDATE_REQUESTED));
  SHOW(s, "server SSL_write 1 byte (sends KeyUpdate)",
       SSL_write_ex(s, "y", 1, &n));
  SHOW(c, "client SSL_read (the first KeyUpdate, 1 byte)",
       SSL_read_ex(c, buf, sizeof(buf), &n));
  SHOW(c, "client SSL_read (the second KeyUpdate)",
       SSL_read_ex(c, buf, sizeof(buf), &n));
  SHOW(c, "client SSL_read", SSL_read_ex(c, buf, sizeof(buf), &n));
  SSL_free(c);
  SSL_free(s);
  return 0;
}
