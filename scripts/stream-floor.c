/* The floor of a one-way stream of 64 KiB messages between two processes on
 * two CPUs, beside one core's memcpy, measured in the same run: what SPEC's
 * "chan stream 64 KiB >= 1.5 x tput memcpy" asks of this host.
 *
 *   cc -O2 -o /tmp/stream-floor scripts/stream-floor.c && /tmp/stream-floor
 *
 * The modes take turns in rounds (7 by default: `/tmp/stream-floor ROUNDS`),
 * so a host that changes speed mid-run weighs on all alike; it prints each
 * one's median in GB/s and its ratio to `memcpy`.
 *
 * memcpy:      one core copies 64 KiB chunks from a 64 MiB source to one
 *              buffer, as bench-baseline's `tput memcpy` does.
 * memcpy-dram: the same from a 1 GiB source, which no L3 holds: the copy
 *              from memory the SPEC target was set against.
 * ring-K:      a bare ring of K KiB in shared memory; a forked writer on CPU
 *              1 copies each message in (memcpy, its number in the first 8
 *              bytes) and publishes its position; the reader on CPU 0 reads
 *              every byte in place (16-byte loads, XOR), checks the number,
 *              and publishes its position. Nothing else: no framing, no
 *              liveness, no checks of what the peer wrote. Every byte
 *              crosses between the CPUs once, as in any stream.
 * ring-8192-nt: ring-8192 with the writer's copy in non-temporal stores.
 *
 * A wait spins 4096 times, then yields (two spinning processes and the shell
 * may share two CPUs). A reader that sees a wrong number exits 1. */
#define _GNU_SOURCE
#include <emmintrin.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { CHUNK = 64 << 10 };
static const size_t TOTAL = (size_t)1 << 30; /* bytes per measurement */

struct ctl {
    _Alignas(128) _Atomic uint64_t tail; /* bytes the writer published */
    _Alignas(128) _Atomic uint64_t head; /* bytes the reader is done with */
};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *m) {
    perror(m);
    exit(1);
}

static void pin(int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    if (sched_setaffinity(0, sizeof s, &s) != 0) die("sched_setaffinity");
}

static void relax(unsigned *spins) {
    if (++*spins < 4096) {
        _mm_pause();
    } else {
        sched_yield();
    }
}

static void *map(size_t len, int shared) {
    void *p = mmap(0, len, PROT_READ | PROT_WRITE, (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS | MAP_POPULATE,
                   -1, 0);
    if (p == MAP_FAILED) die("mmap");
    return p;
}

/* Bytes per second of one core's copies from a `src_len`-byte source. */
static double copy_rate(const char *src, size_t src_len, char *buf) {
    uint64_t t0 = now_ns();
    for (size_t done = 0, off = 0; done < TOTAL; done += CHUNK) {
        memcpy(buf, src + off, CHUNK);
        __asm__ volatile("" : : "r"(buf) : "memory");
        off += CHUNK;
        if (off + CHUNK > src_len) off = 0;
    }
    return TOTAL * 1e9 / (double)(now_ns() - t0);
}

static void copy_nt(char *d, const char *s, size_t n) {
    for (size_t i = 0; i < n; i += 64) {
        __m128i a = _mm_load_si128((const __m128i *)(s + i)), b = _mm_load_si128((const __m128i *)(s + i + 16));
        __m128i c = _mm_load_si128((const __m128i *)(s + i + 32)), e = _mm_load_si128((const __m128i *)(s + i + 48));
        _mm_stream_si128((__m128i *)(d + i), a);
        _mm_stream_si128((__m128i *)(d + i + 16), b);
        _mm_stream_si128((__m128i *)(d + i + 32), c);
        _mm_stream_si128((__m128i *)(d + i + 48), e);
    }
    _mm_sfence();
}

/* XOR of every 16 bytes of `p`, folded to 64 bits. */
static uint64_t fold(const char *p, size_t n) {
    __m128i a = _mm_setzero_si128(), b = a, c = a, d = a;
    for (size_t i = 0; i < n; i += 64) {
        a = _mm_xor_si128(a, _mm_load_si128((const __m128i *)(p + i)));
        b = _mm_xor_si128(b, _mm_load_si128((const __m128i *)(p + i + 16)));
        c = _mm_xor_si128(c, _mm_load_si128((const __m128i *)(p + i + 32)));
        d = _mm_xor_si128(d, _mm_load_si128((const __m128i *)(p + i + 48)));
    }
    a = _mm_xor_si128(_mm_xor_si128(a, b), _mm_xor_si128(c, d));
    uint64_t w[2];
    _mm_storeu_si128((__m128i *)w, a);
    return w[0] ^ w[1];
}

/* Bytes per second of a bare ring of `ring` bytes (see the top). */
static double ring_rate(size_t ring, int nt, const char *msg, uint64_t msg_fold) {
    struct ctl *c = map(sizeof *c, 1);
    char *r = map(ring, 1);
    uint64_t n = TOTAL / CHUNK, warmup = 16;
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        pin(1);
        char *src = map(CHUNK, 0);
        memcpy(src, msg, CHUNK);
        for (uint64_t i = 0; i < n + warmup; i++) {
            uint64_t t = i * CHUNK;
            unsigned spins = 0;
            while (t + CHUNK - atomic_load_explicit(&c->head, memory_order_acquire) > ring) relax(&spins);
            memcpy(src, &i, sizeof i);
            if (nt) {
                copy_nt(r + t % ring, src, CHUNK);
            } else {
                memcpy(r + t % ring, src, CHUNK);
            }
            atomic_store_explicit(&c->tail, t + CHUNK, memory_order_release);
        }
        _exit(0);
    }
    pin(0);
    uint64_t t0 = 0;
    for (uint64_t i = 0; i < n + warmup; i++) {
        uint64_t h = i * CHUNK;
        unsigned spins = 0;
        while (atomic_load_explicit(&c->tail, memory_order_acquire) < h + CHUNK) relax(&spins);
        if (i == warmup) t0 = now_ns();
        /* The message is the pattern with its number over the first 8 bytes. */
        uint64_t first;
        memcpy(&first, msg, sizeof first);
        if (fold(r + h % ring, CHUNK) != (msg_fold ^ first ^ i)) {
            fprintf(stderr, "stream-floor: message %llu arrived wrong\n", (unsigned long long)i);
            exit(1);
        }
        atomic_store_explicit(&c->head, h + CHUNK, memory_order_release);
    }
    double rate = (double)(n * CHUNK) * 1e9 / (double)(now_ns() - t0);
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) die("writer");
    munmap(r, ring);
    munmap(c, sizeof *c);
    return rate;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 7;
    if (rounds < 1 || rounds > 100) {
        fprintf(stderr, "usage: stream-floor [ROUNDS 1-100]\n");
        return 2;
    }
    static const char *names[] = {"memcpy", "memcpy-dram", "ring-256", "ring-1024", "ring-8192", "ring-32768",
                                  "ring-8192-nt"};
    static const size_t rings[] = {0, 0, 256 << 10, 1 << 20, 8 << 20, 32 << 20, 8 << 20};
    enum { MODES = sizeof names / sizeof *names };
    size_t small = (size_t)64 << 20, big = (size_t)1 << 30;
    char *src = map(big, 0), *buf = map(CHUNK, 0), *msg = map(CHUNK, 0);
    memset(src, 'y', big);
    for (size_t i = 0; i < CHUNK; i++) msg[i] = (char)(i * 7 + 1);
    uint64_t msg_fold = fold(msg, CHUNK);
    double got[MODES][100];
    pin(0);
    for (int r = 0; r < rounds; r++) {
        for (int m = 0; m < MODES; m++) {
            if (m == 0) got[m][r] = copy_rate(src, small, buf);
            else if (m == 1) got[m][r] = copy_rate(src, big, buf);
            else got[m][r] = ring_rate(rings[m], m == MODES - 1, msg, msg_fold);
        }
    }
    double median[MODES];
    for (int m = 0; m < MODES; m++) {
        qsort(got[m], (size_t)rounds, sizeof got[m][0], cmp);
        median[m] = got[m][rounds / 2];
    }
    printf("%-14s %8s %10s  (%d rounds, 1 GiB of 64 KiB messages each)\n", "mode", "GB/s", "/ memcpy", rounds);
    for (int m = 0; m < MODES; m++) {
        printf("%-14s %8.2f %10.2f   [%.2f-%.2f]\n", names[m], median[m] / 1e9, median[m] / median[0],
               got[m][0] / 1e9, got[m][rounds - 1] / 1e9);
    }
    return 0;
}
