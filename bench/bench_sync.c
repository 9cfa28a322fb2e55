/* Blocking-client benchmark: the cost of one call-and-return command.
 *
 *   bench_sync --impl aredis|hiredis --n N [--port P] [--db D]
 *
 * Connects (aredis_sync_connect or redisConnect), warms up with 1,000
 * commands, then runs N sequential `SET key value` (16-byte value) through
 * aredis_sync_command() or redisCommand(), each reply checked and freed.
 * It prints one line of key=value pairs: the wall time per command, and
 * the allocations and bytes allocated per command during the measured part.
 *
 * Allocations are counted at the C library: this program interposes
 * malloc/calloc/realloc/free (glibc's __libc_* underneath), so both
 * libraries are counted the same way, whatever allocator hooks they have.
 * Under a sanitizer (which owns malloc) the counts print as -1.
 *
 * System calls per command come from running it under strace -c -f at two
 * values of N (bench/sync.sh does that); start-up and warm-up cancel out.
 * This is a program, not a test: nothing here asserts anything but the
 * replies. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "aredis/aredis.h"
#include "bench.h"

#define WARMUP 1000

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define COUNTING 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define COUNTING 0
#endif
#endif
#ifndef COUNTING
#define COUNTING 1
#endif

static int counting;
static long n_allocs;
static long long n_bytes;

#if COUNTING
/* glibc's own entry points; interposing the public names routes every
 * allocation of the process (both libraries, libc's) through here. */
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void __libc_free(void *p);

/* Exported, or the shared libraries would not see them (the project
 * builds with hidden visibility). */
#define EXPORT __attribute__((visibility("default")))

EXPORT void *malloc(size_t size)
{
    if (counting) {
        n_allocs++;
        n_bytes += (long long)size;
    }
    return __libc_malloc(size);
}

EXPORT void *calloc(size_t n, size_t size)
{
    if (counting) {
        n_allocs++;
        n_bytes += (long long)(n * size);
    }
    return __libc_calloc(n, size);
}

EXPORT void *realloc(void *p, size_t size)
{
    if (counting) {
        n_allocs++;
        n_bytes += (long long)size;
    }
    return __libc_realloc(p, size);
}

EXPORT void free(void *p)
{
    __libc_free(p);
}
#endif

static const char *impl;
static long n;
static int port = 6379, db = 9;

static void die(const char *what, const char *arg)
{
    fprintf(stderr, "bench_sync: %s: %s%s\n", impl ? impl : "", what, arg);
    exit(1);
}

static const char value[] = "0123456789abcdef";

static void run_aredis(double *wall)
{
    aredis_status st;
    aredis_sync *s = aredis_sync_connect(
        &(aredis_options){.host = "127.0.0.1", .port = port, .db = db}, &st);
    if (s == NULL)
        die("aredis_sync_connect: ", st.msg);
    double t0 = 0;
    for (long i = 0; i < WARMUP + n; i++) {
        if (i == WARMUP) {
            t0 = bench_now_s();
            counting = 1;
        }
        aredis_reply *r = aredis_sync_command(s, "SET bench:sync %s", value);
        if (r == NULL || r->type != AREDIS_REPLY_STATUS)
            die("SET: ", r ? r->str : "out of memory");
        aredis_reply_free(r);
    }
    counting = 0;
    *wall = bench_now_s() - t0;
    aredis_sync_free(s);
}

static void run_hiredis(double *wall)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    if (c == NULL || c->err)
        die("redisConnect: ", c ? c->errstr : "out of memory");
    redisReply *r = redisCommand(c, "SELECT %d", db);
    if (r == NULL)
        die("SELECT: ", c->errstr);
    freeReplyObject(r);
    double t0 = 0;
    for (long i = 0; i < WARMUP + n; i++) {
        if (i == WARMUP) {
            t0 = bench_now_s();
            counting = 1;
        }
        r = redisCommand(c, "SET bench:sync %s", value);
        if (r == NULL || r->type != REDIS_REPLY_STATUS)
            die("SET: ", r ? r->str : c->errstr);
        freeReplyObject(r);
    }
    counting = 0;
    *wall = bench_now_s() - t0;
    redisFree(c);
}

static long parse_long(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0)
        die("bad number ", s);
    return v;
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--impl") == 0)
            impl = argv[i + 1];
        else if (strcmp(argv[i], "--n") == 0)
            n = parse_long(argv[i + 1]);
        else if (strcmp(argv[i], "--port") == 0)
            port = (int)parse_long(argv[i + 1]);
        else if (strcmp(argv[i], "--db") == 0)
            db = (int)parse_long(argv[i + 1]);
        else
            die("unknown option ", argv[i]);
    }
    if (impl == NULL || n <= 0) {
        fprintf(stderr, "usage: bench_sync --impl aredis|hiredis --n N "
                        "[--port P] [--db D]\n");
        return 2;
    }
    double wall = 0;
    if (strcmp(impl, "aredis") == 0)
        run_aredis(&wall);
    else if (strcmp(impl, "hiredis") == 0)
        run_hiredis(&wall);
    else
        die("unknown implementation ", impl);
    double per = COUNTING ? (double)n_allocs / (double)n : -1;
    double bytes = COUNTING ? (double)n_bytes / (double)n : -1;
    printf("impl=%s n=%ld us_per_op=%.3f allocs_per_op=%.3f "
           "bytes_per_op=%.1f\n",
           impl, n, wall * 1e6 / (double)n, per, bytes);
    return 0;
}
