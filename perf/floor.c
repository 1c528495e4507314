/*
 * floor: the least a proxy's client side can cost, for perf/equal_cpu.py.
 *
 * A server with no backends: it reads what a client sent and answers each
 * request with "+OK\r\n". It counts requests by their leading '*' (the
 * benchmark's keys and values hold none) and does nothing else, so under
 * the same CPU quota as the proxies its CPU per request is the kernel's
 * work for the client sockets (receive, reply, wake-ups, sleeps) plus
 * almost no user time. Every proxy pays at least that; what a proxy costs
 * beyond it is its own: parsing, routing and its backend traffic.
 *
 * One thread, epoll, one read and one write per readable socket, as the
 * cheapest of the peers (predixy) does it.
 *
 * Usage: floor PORT   (listens on 127.0.0.1:PORT until killed)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define IN_BYTES 65536
#define REPLY "+OK\r\n"
#define REPLY_LEN 5

/* A read of IN_BYTES holds at most IN_BYTES requests (each has a '*'). */
static char replies[IN_BYTES * REPLY_LEN];
static char in[IN_BYTES];

static int listen_on(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
      bind(fd, (struct sockaddr *)&addr, sizeof addr) || listen(fd, 1024)) {
    perror("floor: listen");
    exit(1);
  }
  return fd;
}

static void accept_all(int ep, int listener) {
  int fd, one = 1;
  while ((fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev)) close(fd);
  }
}

/* Writes all of `len` bytes; the replies to one read fit in the socket's
 * send buffer, so the loop only guards against a short write. */
static int send_all(int fd, const char *p, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno != EAGAIN && errno != EINTR) return -1;
    if (n > 0) p += n, len -= (size_t)n;
  }
  return 0;
}

static void serve(int fd) {
  ssize_t got = read(fd, in, sizeof in);
  if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
    close(fd); /* closing removes it from the epoll set */
    return;
  }
  size_t requests = 0;
  for (const char *p = in; got > 0 && (p = memchr(p, '*', (size_t)(in + got - p))); p++) requests++;
  if (requests > 0 && send_all(fd, replies, requests * REPLY_LEN)) close(fd);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: floor PORT\n");
    return 2;
  }
  int listener = listen_on(atoi(argv[1]));
  for (size_t i = 0; i < sizeof replies; i += REPLY_LEN) memcpy(replies + i, REPLY, REPLY_LEN);
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = listener}, ready[256];
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev)) {
    perror("floor: epoll");
    return 1;
  }
  for (;;) {
    int n = epoll_wait(ep, ready, 256, -1);
    for (int i = 0; i < n; i++) {
      if (ready[i].data.fd == listener)
        accept_all(ep, listener);
      else
        serve(ready[i].data.fd);
    }
  }
}
