/*
 * aio_sink.c - the receiving end of bench_aio.py: a TLS server in C that
 * accepts connections one after another, reads each until close_notify
 * (or EOF), answers with its own close_notify and prints the byte count.
 * Being C, it is never the bottleneck of the Python clients it measures,
 * and it is the same peer for retls.aio and asyncio's TLS.
 *
 *   aio_sink CERT KEY PORTFILE [TLS13SUITES]
 *   (binds 127.0.0.1:0, writes the port to PORTFILE)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

int main(int argc, char **argv) {
  static char buf[1 << 16];
  struct sockaddr_in sa;
  socklen_t len = sizeof(sa);
  SSL_CTX *ctx;
  FILE *f;
  int ls, one = 1;

  if (argc != 4 && argc != 5) {
    fprintf(stderr, "usage: aio_sink CERT KEY PORTFILE [TLS13SUITES]\n");
    return 2;
  }
  ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == NULL || SSL_CTX_use_certificate_chain_file(ctx, argv[1]) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, argv[2], SSL_FILETYPE_PEM) != 1 ||
      (argc == 5 && SSL_CTX_set_ciphersuites(ctx, argv[4]) != 1)) {
    ERR_print_errors_fp(stderr);
    return 1;
  }
  ls = socket(AF_INET, SOCK_STREAM, 0);
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(ls, 16) != 0 ||
      getsockname(ls, (struct sockaddr *)&sa, &len) != 0) {
    perror("aio_sink: bind");
    return 1;
  }
  f = fopen(argv[3], "w");
  fprintf(f, "%d\n", ntohs(sa.sin_port));
  fclose(f);
  for (;;) {
    int fd = accept(ls, NULL, NULL);
    unsigned long long total = 0;
    SSL *ssl;
    if (fd < 0)
      continue;
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) == 1) {
      int n;
      while ((n = SSL_read(ssl, buf, sizeof(buf))) > 0)
        total += (unsigned long long)n;
      if (SSL_get_error(ssl, n) == SSL_ERROR_ZERO_RETURN)
        SSL_shutdown(ssl);
    }
    printf("%llu\n", total);
    fflush(stdout);
    SSL_free(ssl);
    close(fd);
  }
}
