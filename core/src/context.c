/*
 * context.c - retls_ctx: an SSL_CTX plus the settings libretls adds.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "internal.h"

/* The keylog callback reaches the retls_ctx through the SSL_CTX app data. */
static void keylog_cb(const SSL *ssl, const char *line) {
  retls_ctx *ctx = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
  if (ctx == NULL || ctx->keylog == NULL)
    return;
  /* stdio locks the FILE, so connections on other threads cannot
   * interleave half lines; flush so a crash loses nothing. */
  fprintf(ctx->keylog, "%s\n", line);
  fflush(ctx->keylog);
}

static int alpn_select_cb(SSL *ssl, const unsigned char **out,
                          unsigned char *outlen, const unsigned char *in,
                          unsigned int inlen, void *arg) {
  retls_ctx *ctx = arg;
  unsigned char *sel = NULL;
  (void)ssl;
  if (ctx->alpn == NULL)
    return SSL_TLSEXT_ERR_NOACK;
  /* Server preference order.  No overlap: RFC 7301 section 3.2 requires
   * the fatal no_application_protocol alert (OpenSSL sends it for
   * ALERT_FATAL); with alpn_strict off we continue without ALPN, as
   * CPython and many servers do. */
  if (SSL_select_next_proto(&sel, outlen, ctx->alpn,
                            (unsigned int)ctx->alpn_len, in,
                            inlen) != OPENSSL_NPN_NEGOTIATED)
    return ctx->alpn_strict ? SSL_TLSEXT_ERR_ALERT_FATAL
                            : SSL_TLSEXT_ERR_NOACK;
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

int retls_ctx_new(retls_ctx **out, retls_role role) {
  retls_ctx *ctx;
  if (out == NULL)
    return RETLS_BAD_ARG;
  *out = NULL;
  if (role != RETLS_CLIENT && role != RETLS_SERVER)
    return RETLS_BAD_ARG;
  ctx = calloc(1, sizeof(*ctx));
  if (ctx == NULL)
    return RETLS_NOMEM;
  ERR_clear_error();
  ctx->ssl_ctx = SSL_CTX_new(role == RETLS_CLIENT ? TLS_client_method()
                                                  : TLS_server_method());
  if (ctx->ssl_ctx == NULL) {
    free(ctx);
    ERR_clear_error();
    return RETLS_SSL;
  }
  ctx->role = role;
  ctx->refs = 1;
  pthread_mutex_init(&ctx->lock, NULL);
  SSL_CTX_set_app_data(ctx->ssl_ctx, ctx);

  /* Secure defaults: TLS 1.2+, no compression, secure renegotiation only
   * (legacy renegotiation options are simply never set). */
  SSL_CTX_set_min_proto_version(ctx->ssl_ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx->ssl_ctx, SSL_OP_NO_COMPRESSION);
  /* The retry copy lives at another address than the caller's buffer. */
  SSL_CTX_set_mode(ctx->ssl_ctx,
                   SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_AUTO_RETRY);
  if (role == RETLS_CLIENT) {
    ctx->verify = 1;
    SSL_CTX_set_verify(ctx->ssl_ctx, SSL_VERIFY_PEER, NULL);
    /* TLS 1.3 tickets arrive after the handshake; OpenSSL only reports
     * them through the new-session callback, and only in client cache
     * mode.  The context keeps no cache of its own: each connection
     * holds its newest session (retls_conn_session). */
    SSL_CTX_set_session_cache_mode(ctx->ssl_ctx,
                                   SSL_SESS_CACHE_CLIENT |
                                       SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx->ssl_ctx, retls__session_new_cb);
    ctx->early_replay = 1;
  } else {
    SSL_CTX_set_options(ctx->ssl_ctx, SSL_OP_ALLOW_CLIENT_RENEGOTIATION);
    SSL_CTX_set_alpn_select_cb(ctx->ssl_ctx, alpn_select_cb, ctx);
    ctx->alpn_strict = 1;
    /* Without DH parameters a TLS 1.2 client that offers only DHE suites
     * gets "no shared cipher"; OpenSSL picks parameters matching the
     * certificate's strength. */
    SSL_CTX_set_dh_auto(ctx->ssl_ctx, 1);
  }
  ERR_clear_error();
  *out = ctx;
  return RETLS_OK;
}

void retls__ctx_ref(retls_ctx *ctx) {
  __atomic_add_fetch(&ctx->refs, 1, __ATOMIC_RELAXED);
}

/* OpenSSL computes a certificate's extension cache (key identifiers, CA
 * flags) on its first use in a verification, behind an unlocked check of
 * a "done" flag (ossl_x509v3_cache_extensions): two handshakes verifying
 * against the same CA at once race on it.  Harmless on x86, a data race
 * all the same, which ThreadSanitizer reports in the caller's program.
 * Computing the caches of the trusted certificates while they are loaded,
 * before other threads can see them, leaves nothing to race on. */
static void warm_trust_store(retls_ctx *ctx) {
  X509_STORE *store = SSL_CTX_get_cert_store(ctx->ssl_ctx);
  STACK_OF(X509_OBJECT) *objs;
  int i;
  if (store == NULL || !X509_STORE_lock(store))
    return;
  objs = X509_STORE_get0_objects(store);
  for (i = 0; i < sk_X509_OBJECT_num(objs); i++) {
    X509 *x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
    if (x != NULL)
      X509_check_purpose(x, -1, 0);
  }
  X509_STORE_unlock(store);
  ERR_clear_error();
}

void retls__ctx_load_system_store(retls_ctx *ctx) {
  /* Connections may be created from several threads on one context. */
  pthread_mutex_lock(&ctx->lock);
  if (!ctx->system_store_loaded) {
    SSL_CTX_set_default_verify_paths(ctx->ssl_ctx);
    ERR_clear_error(); /* a missing system bundle is not fatal here */
    warm_trust_store(ctx);
    __atomic_store_n(&ctx->system_store_loaded, 1, __ATOMIC_RELEASE);
  }
  pthread_mutex_unlock(&ctx->lock);
}

void retls_ctx_free(retls_ctx *ctx) {
  if (ctx == NULL)
    return;
  if (__atomic_sub_fetch(&ctx->refs, 1, __ATOMIC_ACQ_REL) != 0)
    return;
  SSL_CTX_free(ctx->ssl_ctx);
  pthread_mutex_destroy(&ctx->lock);
  if (ctx->keylog != NULL)
    fclose(ctx->keylog);
  free(ctx->alpn);
  free(ctx);
}

retls_role retls_ctx_role(const retls_ctx *ctx) {
  return ctx ? ctx->role : RETLS_CLIENT;
}

const char *retls_ctx_last_error(const retls_ctx *ctx) {
  return ctx ? ctx->detail : "no context (NULL)";
}

#define CHECK_CTX(ctx)       \
  do {                       \
    if ((ctx) == NULL)       \
      return RETLS_BAD_ARG;  \
    (ctx)->detail[0] = '\0'; \
    ERR_clear_error();       \
  } while (0)

int retls_ctx_set_verify(retls_ctx *ctx, int on) {
  int mode = SSL_VERIFY_NONE;
  CHECK_CTX(ctx);
  if (on)
    mode = ctx->role == RETLS_CLIENT
               ? SSL_VERIFY_PEER
               : SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  ctx->verify = on != 0;
  SSL_CTX_set_verify(ctx->ssl_ctx, mode, NULL);
  return RETLS_OK;
}

int retls_ctx_load_verify(retls_ctx *ctx, const char *cafile,
                          const char *capath) {
  CHECK_CTX(ctx);
  if ((cafile == NULL || !*cafile) && (capath == NULL || !*capath)) {
    retls__set_detail(ctx->detail, "give a CA file or a CA directory");
    return RETLS_BAD_ARG;
  }
  if (cafile != NULL && *cafile &&
      !SSL_CTX_load_verify_file(ctx->ssl_ctx, cafile)) {
    char what[RETLS__DETAIL_MAX];
    snprintf(what, sizeof(what), "cannot load CA file '%s'", cafile);
    return retls__ctx_fail(ctx, RETLS_BAD_ARG, what);
  }
  if (capath != NULL && *capath) {
    /* OpenSSL only looks into the directory when it verifies a chain, so
     * a mistyped path would surface as "unable to get local issuer
     * certificate" much later. */
    struct stat st;
    const char *why = NULL;
    if (stat(capath, &st) != 0)
      why = strerror(errno);
    else if (!S_ISDIR(st.st_mode))
      why = "not a directory";
    if (why != NULL) {
      char what[RETLS__DETAIL_MAX];
      snprintf(what, sizeof(what), "cannot use CA directory '%s': %s", capath,
               why);
      return retls__ctx_fail(ctx, RETLS_BAD_ARG, what);
    }
  }
  if (capath != NULL && *capath &&
      !SSL_CTX_load_verify_dir(ctx->ssl_ctx, capath)) {
    char what[RETLS__DETAIL_MAX];
    snprintf(what, sizeof(what), "cannot use CA directory '%s'", capath);
    return retls__ctx_fail(ctx, RETLS_BAD_ARG, what);
  }
  warm_trust_store(ctx);
  return RETLS_OK;
}

int retls_ctx_use_certificate(retls_ctx *ctx, const char *certfile,
                              const char *keyfile) {
  char what[RETLS__DETAIL_MAX];
  CHECK_CTX(ctx);
  if (certfile == NULL || !*certfile) {
    retls__set_detail(ctx->detail, "a certificate file is required");
    return RETLS_BAD_ARG;
  }
  if (keyfile == NULL || !*keyfile)
    keyfile = certfile;
  if (SSL_CTX_use_certificate_chain_file(ctx->ssl_ctx, certfile) != 1) {
    snprintf(what, sizeof(what), "cannot load certificate '%s'", certfile);
    return retls__ctx_fail(ctx, RETLS_BAD_ARG, what);
  }
  if (SSL_CTX_use_PrivateKey_file(ctx->ssl_ctx, keyfile, SSL_FILETYPE_PEM) !=
      1) {
    snprintf(what, sizeof(what), "cannot load private key '%s'", keyfile);
    return retls__ctx_fail(ctx, RETLS_BAD_ARG, what);
  }
  if (SSL_CTX_check_private_key(ctx->ssl_ctx) != 1) {
    snprintf(what, sizeof(what),
             "private key '%s' does not match certificate '%s'", keyfile,
             certfile);
    return retls__ctx_fail(ctx, RETLS_BAD_ARG, what);
  }
  return RETLS_OK;
}

int retls_ctx_use_selfsigned(retls_ctx *ctx, const char *common_name) {
  EVP_PKEY *pkey = NULL;
  X509 *x = NULL;
  X509_NAME *name;
  X509_EXTENSION *ext = NULL;
  char san[300];
  int rc = RETLS_NOMEM;

  CHECK_CTX(ctx);
  if (common_name == NULL || !*common_name)
    common_name = "localhost";
  if (strlen(common_name) > 255) {
    retls__set_detail(ctx->detail, "common name longer than 255 bytes");
    return RETLS_BAD_ARG;
  }
  pkey = EVP_EC_gen("P-256");
  x = X509_new();
  if (pkey == NULL || x == NULL)
    goto done;
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(uintptr_t)x & 0x7fffffff);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, pkey);
  name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             (const unsigned char *)common_name, -1, -1, 0);
  X509_set_issuer_name(x, name);
  /* Hostname checks look at subjectAltName, not the CN. */
  snprintf(san, sizeof(san), "DNS:%s", common_name);
  ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
  if (ext == NULL || !X509_add_ext(x, ext, -1) ||
      !X509_sign(x, pkey, EVP_sha256())) {
    rc = retls__ctx_fail(ctx, RETLS_SSL, "cannot make a certificate");
    goto done;
  }
  if (SSL_CTX_use_certificate(ctx->ssl_ctx, x) != 1 ||
      SSL_CTX_use_PrivateKey(ctx->ssl_ctx, pkey) != 1) {
    rc = retls__ctx_fail(ctx, RETLS_SSL, "cannot use the certificate");
    goto done;
  }
  rc = RETLS_OK;
done:
  X509_EXTENSION_free(ext);
  X509_free(x);
  EVP_PKEY_free(pkey);
  ERR_clear_error();
  return rc;
}

static int parse_version(int *out, const char *s) {
  static const struct {
    const char *name;
    int version;
  } table[] = {{"TLSv1", TLS1_VERSION},
               {"TLSv1.0", TLS1_VERSION},
               {"TLSv1.1", TLS1_1_VERSION},
               {"TLSv1.2", TLS1_2_VERSION},
               {"TLSv1.3", TLS1_3_VERSION}};
  size_t i;
  if (s == NULL || !*s) {
    *out = 0; /* OpenSSL's own limit */
    return 1;
  }
  for (i = 0; i < sizeof(table) / sizeof(table[0]); i++)
    if (strcmp(s, table[i].name) == 0) {
      *out = table[i].version;
      return 1;
    }
  return 0;
}

int retls_ctx_set_versions(retls_ctx *ctx, const char *min_version,
                           const char *max_version) {
  int lo, hi;
  CHECK_CTX(ctx);
  if (!parse_version(&lo, min_version) || !parse_version(&hi, max_version)) {
    retls__set_detail(ctx->detail,
                      "unknown TLS version '%s'; use TLSv1, TLSv1.1, "
                      "TLSv1.2 or TLSv1.3",
                      parse_version(&lo, min_version) ? max_version
                                                      : min_version);
    return RETLS_BAD_ARG;
  }
  if (lo && hi && lo > hi) {
    retls__set_detail(ctx->detail,
                      "minimum version %s is above maximum version %s",
                      min_version, max_version);
    return RETLS_BAD_ARG;
  }
  if (!SSL_CTX_set_min_proto_version(ctx->ssl_ctx, lo) ||
      !SSL_CTX_set_max_proto_version(ctx->ssl_ctx, hi))
    return retls__ctx_fail(ctx, RETLS_BAD_ARG, "cannot set TLS versions");
  return RETLS_OK;
}

int retls_ctx_set_ciphers(retls_ctx *ctx, const char *list) {
  char what[RETLS__DETAIL_MAX];
  CHECK_CTX(ctx);
  if (list == NULL || SSL_CTX_set_cipher_list(ctx->ssl_ctx, list) != 1) {
    snprintf(what, sizeof(what),
             "no usable cipher in '%s' (see 'openssl ciphers')",
             list ? list : "(null)");
    return retls__ctx_fail(ctx, RETLS_BAD_ARG, what);
  }
  return RETLS_OK;
}

int retls_ctx_set_ciphersuites(retls_ctx *ctx, const char *list) {
  char what[RETLS__DETAIL_MAX];
  CHECK_CTX(ctx);
  if (list == NULL || SSL_CTX_set_ciphersuites(ctx->ssl_ctx, list) != 1) {
    snprintf(what, sizeof(what),
             "bad TLS 1.3 ciphersuites '%s' (e.g. TLS_AES_128_GCM_SHA256)",
             list ? list : "(null)");
    return retls__ctx_fail(ctx, RETLS_BAD_ARG, what);
  }
  return RETLS_OK;
}

int retls_ctx_set_alpn(retls_ctx *ctx, const char *protocols) {
  unsigned char *wire;
  size_t n = 0, start = 0, i, len;
  CHECK_CTX(ctx);
  if (protocols == NULL || !*protocols) {
    free(ctx->alpn);
    ctx->alpn = NULL;
    ctx->alpn_len = 0;
    if (ctx->role == RETLS_CLIENT)
      SSL_CTX_set_alpn_protos(ctx->ssl_ctx, NULL, 0);
    return RETLS_OK;
  }
  len = strlen(protocols);
  wire = malloc(len + 1);
  if (wire == NULL)
    return RETLS_NOMEM;
  /* "h2,http/1.1" -> "\x02h2\x08http/1.1" */
  for (i = 0; i <= len; i++) {
    if (protocols[i] == ',' || protocols[i] == '\0') {
      size_t plen = i - start;
      if (plen == 0 || plen > 255) {
        free(wire);
        retls__set_detail(ctx->detail,
                          "ALPN protocol names must be 1..255 bytes, "
                          "separated by commas: '%s'",
                          protocols);
        return RETLS_BAD_ARG;
      }
      wire[n++] = (unsigned char)plen;
      memcpy(wire + n, protocols + start, plen);
      n += plen;
      start = i + 1;
    }
  }
  if (ctx->role == RETLS_CLIENT &&
      SSL_CTX_set_alpn_protos(ctx->ssl_ctx, wire, (unsigned int)n) != 0) {
    free(wire);
    return retls__ctx_fail(ctx, RETLS_NOMEM, "cannot set ALPN");
  }
  free(ctx->alpn);
  ctx->alpn = wire;
  ctx->alpn_len = n;
  return RETLS_OK;
}

int retls_ctx_set_keylog(retls_ctx *ctx, const char *path) {
  FILE *f = NULL;
  CHECK_CTX(ctx);
  if (path != NULL && *path) {
    f = fopen(path, "a");
    if (f == NULL) {
      retls__set_detail(ctx->detail, "cannot open keylog file '%s': %s",
                        path, strerror(errno));
      return RETLS_BAD_ARG;
    }
  }
  if (ctx->keylog != NULL)
    fclose(ctx->keylog);
  ctx->keylog = f;
  SSL_CTX_set_keylog_callback(ctx->ssl_ctx, f ? keylog_cb : NULL);
  return RETLS_OK;
}

int retls_ctx_set_auto_retry(retls_ctx *ctx, int on) {
  CHECK_CTX(ctx);
  if (on)
    SSL_CTX_set_mode(ctx->ssl_ctx, SSL_MODE_AUTO_RETRY);
  else
    SSL_CTX_clear_mode(ctx->ssl_ctx, SSL_MODE_AUTO_RETRY);
  return RETLS_OK;
}

int retls_ctx_set_partial_write(retls_ctx *ctx, int on) {
  CHECK_CTX(ctx);
  if (on)
    SSL_CTX_set_mode(ctx->ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
  else
    SSL_CTX_clear_mode(ctx->ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
  return RETLS_OK;
}

int retls_ctx_set_max_send_fragment(retls_ctx *ctx, size_t size) {
  CHECK_CTX(ctx);
  if (size < 512 || size > 16384) {
    retls__set_detail(ctx->detail,
                      "max send fragment %zu out of range 512..16384", size);
    return RETLS_BAD_ARG;
  }
  SSL_CTX_set_max_send_fragment(ctx->ssl_ctx, (long)size);
  return RETLS_OK;
}

int retls_ctx_set_renegotiation(retls_ctx *ctx, int on) {
  CHECK_CTX(ctx);
  if (on) {
    SSL_CTX_clear_options(ctx->ssl_ctx, SSL_OP_NO_RENEGOTIATION);
    if (ctx->role == RETLS_SERVER)
      SSL_CTX_set_options(ctx->ssl_ctx, SSL_OP_ALLOW_CLIENT_RENEGOTIATION);
  } else {
    SSL_CTX_set_options(ctx->ssl_ctx, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_clear_options(ctx->ssl_ctx, SSL_OP_ALLOW_CLIENT_RENEGOTIATION);
  }
  return RETLS_OK;
}

/* Options that only mean something for one role refuse the other, so a
 * misplaced option is found at once rather than silently ignored. */
static int role_only(retls_ctx *ctx, retls_role role, const char *what) {
  if (ctx->role == role)
    return RETLS_OK;
  retls__set_detail(ctx->detail, "%s is a %s option; this is a %s context",
                    what, role == RETLS_SERVER ? "server" : "client",
                    ctx->role == RETLS_SERVER ? "server" : "client");
  return RETLS_BAD_ARG;
}

int retls_ctx_set_early_data(retls_ctx *ctx, size_t max_bytes) {
  int status;
  CHECK_CTX(ctx);
  if ((status = role_only(ctx, RETLS_SERVER, "early_data")) != RETLS_OK)
    return status;
  if (max_bytes > 0xffffffffu) {
    retls__set_detail(ctx->detail,
                      "early_data %zu is above the 2^32-1 bytes TLS 1.3 "
                      "allows", max_bytes);
    return RETLS_BAD_ARG;
  }
  /* max_early_data goes into the tickets (what clients may send);
   * recv_max_early_data bounds what this server reads, and also what it
   * skips when it rejects early data: below OpenSSL's default of one
   * record a client with an older ticket would fail the handshake with
   * "too much early data" instead of being rejected. */
  if (!SSL_CTX_set_max_early_data(ctx->ssl_ctx, (uint32_t)max_bytes) ||
      !SSL_CTX_set_recv_max_early_data(
          ctx->ssl_ctx, (uint32_t)(max_bytes > 16384 ? max_bytes : 16384)))
    return retls__ctx_fail(ctx, RETLS_SSL, "cannot set early data");
  return RETLS_OK;
}

int retls_ctx_set_early_data_replay(retls_ctx *ctx, int on) {
  int status;
  CHECK_CTX(ctx);
  if ((status = role_only(ctx, RETLS_CLIENT, "early_data_replay")) !=
      RETLS_OK)
    return status;
  ctx->early_replay = on != 0;
  return RETLS_OK;
}

int retls_ctx_set_tickets(retls_ctx *ctx, size_t count) {
  int status;
  CHECK_CTX(ctx);
  if ((status = role_only(ctx, RETLS_SERVER, "tickets")) != RETLS_OK)
    return status;
  if (count > 100) {
    retls__set_detail(ctx->detail, "tickets %zu out of range 0..100",
                      count);
    return RETLS_BAD_ARG;
  }
  SSL_CTX_set_num_tickets(ctx->ssl_ctx, count);
  if (count == 0)
    SSL_CTX_set_options(ctx->ssl_ctx, SSL_OP_NO_TICKET);
  else
    SSL_CTX_clear_options(ctx->ssl_ctx, SSL_OP_NO_TICKET);
  return RETLS_OK;
}

int retls_ctx_set_alpn_strict(retls_ctx *ctx, int on) {
  int status;
  CHECK_CTX(ctx);
  if ((status = role_only(ctx, RETLS_SERVER, "alpn_strict")) != RETLS_OK)
    return status;
  ctx->alpn_strict = on != 0;
  return RETLS_OK;
}
