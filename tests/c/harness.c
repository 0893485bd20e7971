/* harness.c - see harness.h. */
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

int harness_failures = 0;

void harness_buf_append(harness_buf *b, const void *p, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
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

void harness_buf_free(harness_buf *b) {
  free(b->data);
  memset(b, 0, sizeof(*b));
}

void harness_pattern(unsigned char *buf, size_t len, unsigned seed) {
  unsigned x = seed * 2654435761u + 1;
  size_t i;
  for (i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    buf[i] = (unsigned char)x;
  }
}

int harness_handshake(retls_conn *a, retls_conn *b) {
  int i;
  for (i = 0; i < 1000; i++) {
    int ra = retls_conn_handshake(a);
    int rb = retls_conn_handshake(b);
    if (ra == RETLS_OK && rb == RETLS_OK)
      return RETLS_OK;
    if (ra < 0)
      return ra;
    if (rb < 0)
      return rb;
  }
  return RETLS_TIMEOUT;
}

int harness_drain(retls_conn *conn, harness_buf *out) {
  unsigned char buf[16384];
  for (;;) {
    size_t n = 0;
    int st = retls_conn_read(&n, conn, buf, sizeof(buf));
    if (st != RETLS_OK)
      return st;
    harness_buf_append(out, buf, n);
  }
}

static int free_port(void) {
  struct sockaddr_in sa;
  socklen_t len = sizeof(sa);
  int port, fd = socket(AF_INET, SOCK_STREAM, 0);
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
    close(fd);
    return -1;
  }
  port = ntohs(sa.sin_port);
  close(fd);
  return port;
}

static int port_open(int port) {
  struct sockaddr_in sa;
  int ok, fd = socket(AF_INET, SOCK_STREAM, 0);
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons((unsigned short)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
  close(fd);
  return ok;
}

int harness_start_s_server(int *out_port, const char *extra_args) {
  char cmd[2048];
  int port = free_port(), pid, i;
  if (port < 0)
    return -1;
  snprintf(cmd, sizeof(cmd),
           "exec timeout 60 openssl s_server -quiet -accept 127.0.0.1:%d %s",
           port, extra_args ? extra_args : "");
  pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  for (i = 0; i < 100 && !port_open(port); i++)
    usleep(50000);
  if (i == 100) {
    harness_stop(pid);
    return -1;
  }
  *out_port = port;
  return pid;
}

void harness_stop(int pid) {
  if (pid > 0) {
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
  }
}

int harness_finish(void) {
  if (harness_failures)
    fprintf(stderr, "%d check(s) failed\n", harness_failures);
  return harness_failures ? 1 : 0;
}
