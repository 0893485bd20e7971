/*
 * harness_pki.c - a temporary directory and certificates made at test
 * time, so the suite has no fixtures that expire and can make the expired
 * and wrong-host certificates the verification tests need.
 */
#include "harness.h"

#include <ftw.h>
#include <stdint.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

static char tmpdir[256];

const char *harness_tmpdir(void) {
  if (tmpdir[0] == '\0') {
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof(tmpdir), "%s/retls-ctest-XXXXXX",
             base && *base ? base : "/tmp");
    if (mkdtemp(tmpdir) == NULL) {
      perror("harness_tmpdir: mkdtemp");
      abort();
    }
  }
  return tmpdir;
}

void harness_path(char *out, size_t size, const char *name) {
  snprintf(out, size, "%s/%s", harness_tmpdir(), name);
}

static int remove_entry(const char *path, const struct stat *sb, int flag,
                        struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

void harness_cleanup_tmpdir(void) {
  if (tmpdir[0] != '\0')
    nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  tmpdir[0] = '\0';
}

int harness_read_file(const char *path, harness_buf *out) {
  unsigned char buf[4096];
  size_t n;
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return -1;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
    harness_buf_append(out, buf, n);
  fclose(f);
  return 0;
}

int harness_concat(const char *path, const char *a, const char *b) {
  harness_buf buf = {0};
  FILE *f;
  int ok;
  if (harness_read_file(a, &buf) != 0 || harness_read_file(b, &buf) != 0) {
    harness_buf_free(&buf);
    return -1;
  }
  f = fopen(path, "wb");
  ok = f != NULL && fwrite(buf.data, 1, buf.len, f) == buf.len;
  if (f != NULL && fclose(f) != 0)
    ok = 0;
  harness_buf_free(&buf);
  return ok ? 0 : -1;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value) {
  X509V3_CTX v3;
  X509_EXTENSION *ext;
  int ok;
  X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
  ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
  if (ext == NULL)
    return 0;
  ok = X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  return ok;
}

static int write_pem(const char *path, X509 *x, EVP_PKEY *key) {
  FILE *f = fopen(path, "wb");
  int ok;
  if (f == NULL)
    return 0;
  ok = x ? PEM_write_X509(f, x) : PEM_write_PrivateKey(f, key, NULL, NULL, 0,
                                                       NULL, NULL);
  if (fclose(f) != 0)
    ok = 0;
  return ok;
}

static X509 *load_cert(const char *path) {
  FILE *f = fopen(path, "rb");
  X509 *x;
  if (f == NULL)
    return NULL;
  x = PEM_read_X509(f, NULL, NULL, NULL);
  fclose(f);
  return x;
}

static EVP_PKEY *load_key(const char *path) {
  FILE *f = fopen(path, "rb");
  EVP_PKEY *k;
  if (f == NULL)
    return NULL;
  k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
  fclose(f);
  return k;
}

int harness_make_cert(harness_cert *out, const char *name, const char *cn,
                      const harness_cert *issuer, long not_before_s,
                      long not_after_s, int is_ca) {
  static long serial = 1;
  EVP_PKEY *key = EVP_EC_gen("P-256"), *signer_key = NULL;
  X509 *x = X509_new(), *signer = NULL;
  char file[300], san[300];
  int ok = 0;

  snprintf(file, sizeof(file), "%s.crt", name);
  harness_path(out->cert, sizeof(out->cert), file);
  snprintf(file, sizeof(file), "%s.key", name);
  harness_path(out->key, sizeof(out->key), file);
  if (key == NULL || x == NULL)
    goto done;
  if (issuer != NULL) {
    signer = load_cert(issuer->cert);
    signer_key = load_key(issuer->key);
    if (signer == NULL || signer_key == NULL)
      goto done;
  }
  X509_set_version(x, 2);
  /* Unique serials: the verifier must never confuse two test certs. */
  ASN1_INTEGER_set(X509_get_serialNumber(x),
                   (long)(getpid() & 0xffff) * 1000 + serial++);
  X509_gmtime_adj(X509_getm_notBefore(x), not_before_s);
  X509_gmtime_adj(X509_getm_notAfter(x), not_after_s);
  X509_set_pubkey(x, key);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                             (const unsigned char *)cn, -1, -1, 0);
  X509_set_issuer_name(x, signer ? X509_get_subject_name(signer)
                                 : X509_get_subject_name(x));
  snprintf(san, sizeof(san), "DNS:%s", cn);
  if (!add_ext(x, signer ? signer : x, NID_subject_key_identifier, "hash") ||
      !add_ext(x, signer ? signer : x, NID_authority_key_identifier,
               "keyid:always") ||
      !add_ext(x, NULL, NID_basic_constraints,
               is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE") ||
      !add_ext(x, NULL, NID_key_usage,
               is_ca ? "critical,keyCertSign,cRLSign"
                     : "critical,digitalSignature") ||
      (!is_ca && !add_ext(x, NULL, NID_subject_alt_name, san)) ||
      !X509_sign(x, signer_key ? signer_key : key, EVP_sha256()))
    goto done;
  ok = write_pem(out->cert, x, NULL) && write_pem(out->key, NULL, key);
done:
  if (!ok) {
    fprintf(stderr, "harness_make_cert %s: failed\n", name);
    ERR_print_errors_fp(stderr);
  }
  X509_free(x);
  X509_free(signer);
  EVP_PKEY_free(key);
  EVP_PKEY_free(signer_key);
  return ok ? 0 : -1;
}
