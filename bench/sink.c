/*
 * sink.c - the TLS sink every socket row of ./run.sh bench writes to.
 *
 *   sink CERT KEY CPU
 *
 * Listens on 127.0.0.1 (an ephemeral port, printed as "port N"), pins
 * itself to core CPU (the clients run on the other one, so the two ends
 * do not fight for a core), and serves each connection in its own thread:
 * SSL_accept, SSL_read until the peer's close_notify, its own close_notify
 * back, close.  For every connection it prints one line
 *   "bytes N ok"             the peer closed cleanly after N bytes, or
 *   "bytes N error REASON"   anything else,
 * so the benchmark can check that every byte of a row arrived.  TLS 1.3
 * with TLS_AES_128_GCM_SHA256 only: every client negotiates the same
 * cipher.  Threads (not one poll loop) keep it simple and let the
 * footprint workload hold 2,000 idle connections open at once.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static SSL_CTX *ctx;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void *serve(void *arg) {
  int fd = (int)(intptr_t)arg;
  unsigned char buf[65536];
  unsigned long long got = 0;
  size_t n;
  const char *why = NULL;
  SSL *ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  if (SSL_accept(ssl) != 1) {
    why = "handshake failed";
  } else {
    for (;;) {
      if (SSL_read_ex(ssl, buf, sizeof(buf), &n) == 1) {
        got += n;
        continue;
      }
      if (SSL_get_error(ssl, 0) == SSL_ERROR_ZERO_RETURN)
        SSL_shutdown(ssl); /* answer close_notify: the client waits for it */
      else
        why = "no close_notify";
      break;
    }
  }
  pthread_mutex_lock(&out_lock);
  if (why)
    printf("bytes %llu error %s\n", got, why);
  else
    printf("bytes %llu ok\n", got);
  fflush(stdout);
  pthread_mutex_unlock(&out_lock);
  SSL_free(ssl);
  close(fd);
  ERR_clear_error();
  return NULL;
}

int main(int argc, char **argv) {
  struct sockaddr_in sa;
  socklen_t salen = sizeof(sa);
  struct rlimit rl;
  pthread_attr_t attr;
  cpu_set_t cpus;
  int lfd, one = 1;
  if (argc != 4) {
    fprintf(stderr, "usage: sink CERT KEY CPU\n");
    return 2;
  }
  CPU_ZERO(&cpus);
  CPU_SET(atoi(argv[3]), &cpus);
  if (sched_setaffinity(0, sizeof(cpus), &cpus) != 0)
    perror("sink: sched_setaffinity (running unpinned)");
  /* 2,000 connections at once need more fds than the usual 1,024. */
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 8192) {
    rl.rlim_cur = rl.rlim_max < 8192 ? rl.rlim_max : 8192;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == NULL ||
      SSL_CTX_use_certificate_chain_file(ctx, argv[1]) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, argv[2], SSL_FILETYPE_PEM) != 1 ||
      !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
      SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256") != 1) {
    ERR_print_errors_fp(stderr);
    return 1;
  }
  /* Read whole records with one read(2) instead of header then body: at
   * 64-byte writes the sink, not the client under test, would otherwise
   * set the pace of every socket row. */
  SSL_CTX_set_read_ahead(ctx, 1);
  lfd = socket(AF_INET, SOCK_STREAM, 0);
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
      listen(lfd, 4096) != 0 ||
      getsockname(lfd, (struct sockaddr *)&sa, &salen) != 0) {
    perror("sink: listen");
    return 1;
  }
  printf("port %d\n", ntohs(sa.sin_port));
  fflush(stdout);
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  for (;;) {
    pthread_t t;
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      perror("sink: accept");
      return 1;
    }
    if (pthread_create(&t, &attr, serve, (void *)(intptr_t)fd) != 0) {
      perror("sink: pthread_create");
      close(fd);
    }
  }
}
