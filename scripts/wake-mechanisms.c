/* The cost of a wake-up by mechanism, between two processes both asleep on
 * every message: what an async end (asleep in epoll) pays against a blocking
 * one (asleep on a futex), with nothing of ipcraft or tokio in the way.
 *
 *   cc -O2 -o /tmp/wake scripts/wake-mechanisms.c && /tmp/wake
 *
 * The mechanisms take turns in blocks of 500 round trips, 20 blocks each,
 * so a host that changes speed mid-run (these VMs do) weighs on all alike;
 * it prints each one's median round trip (two wake-ups).
 *
 * futex:   FUTEX_WAKE / FUTEX_WAIT on a shared word (the channel's blocking
 *          sleep).
 * dgram:   send(2) one byte on a Unix datagram socket / epoll_wait + read:
 *          the async doorbell's first rings.
 * eventfd: write(2) to an eventfd / epoll_wait + read: the async doorbell
 *          once the ringer holds its eventfd.
 * pipe:    write(2) one byte to a pipe / epoll_wait + read.
 * nested:  the eventfd inside an epoll descriptor that is itself watched by
 *          the waiting epoll (what a doorbell's `watch` descriptor costs). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { FUTEX, DGRAM, EVENTFD, PIPE, NESTED, MODES };
static const char *names[MODES] = {"futex", "dgram", "eventfd", "pipe", "nested"};
enum { BLOCKS = 20, PER_BLOCK = 500 };

/* Per mechanism and direction (0: parent to child, 1: back): the
 * descriptor the waiter reads and the one the waker writes. */
static int fds[MODES][2][2];
static _Atomic uint32_t *words;

static uint64_t now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int by_value(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void wake(int mode, int dir) {
  if (mode == FUTEX) {
    atomic_store(&words[dir], 1);
    syscall(SYS_futex, &words[dir], FUTEX_WAKE, 1, 0, 0, 0);
  } else if (mode == EVENTFD || mode == NESTED) {
    uint64_t one = 1;
    if (write(fds[mode][dir][1], &one, 8) != 8) exit(1);
  } else if (mode == DGRAM) {
    if (send(fds[mode][dir][1], "x", 1, MSG_DONTWAIT) != 1) exit(1);
  } else if (write(fds[mode][dir][1], "x", 1) != 1) {
    exit(1);
  }
}

static void sleep_until_woken(int mode, int dir, int ep) {
  if (mode == FUTEX) {
    while (!atomic_load(&words[dir])) syscall(SYS_futex, &words[dir], FUTEX_WAIT, 0, 0, 0, 0);
    atomic_store(&words[dir], 0);
    return;
  }
  char buf[8];
  /* Edge-triggered: read first, sleep only when there was nothing. */
  while (read(fds[mode][dir][0], buf, sizeof buf) <= 0) {
    struct epoll_event ev;
    epoll_wait(ep, &ev, 1, -1);
  }
}

int main(void) {
  words = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (words == MAP_FAILED) return 1;
  for (int d = 0; d < 2; d++) {
    int sv[2], p[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv) || pipe2(p, O_NONBLOCK)) return 1;
    fds[DGRAM][d][0] = sv[0], fds[DGRAM][d][1] = sv[1];
    fds[PIPE][d][0] = p[0], fds[PIPE][d][1] = p[1];
    fds[EVENTFD][d][0] = fds[EVENTFD][d][1] = eventfd(0, EFD_NONBLOCK);
    fds[NESTED][d][0] = fds[NESTED][d][1] = eventfd(0, EFD_NONBLOCK);
  }
  uint64_t *rt[MODES];
  for (int m = 0; m < MODES; m++) rt[m] = malloc(sizeof(uint64_t) * BLOCKS * PER_BLOCK);
  pid_t child = fork();
  if (child < 0) return 1;
  int me = child == 0 ? 0 : 1; /* the direction this process waits on */
  int ep[MODES];
  for (int m = 1; m < MODES; m++) {
    ep[m] = epoll_create1(0);
    struct epoll_event edge = {.events = EPOLLIN | EPOLLET};
    if (m == NESTED) {
      int inner = epoll_create1(0);
      struct epoll_event level = {.events = EPOLLIN};
      epoll_ctl(inner, EPOLL_CTL_ADD, fds[m][me][0], &level);
      epoll_ctl(ep[m], EPOLL_CTL_ADD, inner, &edge);
    } else {
      epoll_ctl(ep[m], EPOLL_CTL_ADD, fds[m][me][0], &edge);
    }
  }
  for (int b = 0; b < BLOCKS; b++)
    for (int m = 0; m < MODES; m++)
      for (int i = 0; i < PER_BLOCK; i++) {
        if (child == 0) {
          sleep_until_woken(m, 0, ep[m]);
          wake(m, 1);
        } else {
          uint64_t t = now();
          wake(m, 0);
          sleep_until_woken(m, 1, ep[m]);
          rt[m][b * PER_BLOCK + i] = now() - t;
        }
      }
  if (child == 0) return 0;
  waitpid(child, 0, 0);
  for (int m = 0; m < MODES; m++) {
    qsort(rt[m], BLOCKS * PER_BLOCK, sizeof(uint64_t), by_value);
    printf("%-8s median round trip %.1f us\n", names[m], rt[m][BLOCKS * PER_BLOCK / 2] / 1e3);
  }
  return 0;
}
