/* Pipeline benchmark: batches of SETs through aredis pipelines against
 * hiredis async on libevent issuing the same commands, against a real
 * redis-server over loopback.
 *
 *   bench_pipeline --impl IMPL --tx 0|1 [--batches 10000] [--size 100]
 *                  [--host H] [--port P] [--db D] [--count 0|1]
 *
 * One batch is `size` SETs of 16-byte values on keys pipe:0..size-1; with
 * --tx 1 it is wrapped in MULTI ... EXEC. Batches run one after the other:
 * the completion of one sends the next. IMPL is
 *   aredis           aredis_pipeline_execute() on the built-in loop;
 *   aredis-libevent  the same on libevent through the header-only adapter;
 *   hiredis          redisAsyncCommandArgv() on libevent, MULTI and EXEC
 *                    written by hand, the last reply sending the next batch.
 * The connection is made (and answers PING) before the measured part; wall
 * time and getrusage(RUSAGE_SELF) user+sys CPU are taken around it. Every
 * reply is checked (OK, QUEUED, an EXEC array of OKs); any mismatch exits
 * non-zero. One line of key=value pairs per run; bench/pipeline.sh runs
 * the matrix and prints the table. A program, not a test.
 *
 * --count 1 (aredis only) counts, through the allocator hooks
 * (aredis/alloc.h), the library's allocations and bytes allocated per SET
 * in the steady state: every batch but the first two, which warm the
 * pipeline (the second batch, started from the first one's callback, fills
 * the pipeline's other reply set), the connection and the client up.
 * bench/pipeline.sh's cost table adds instructions per SET from two runs under
 * callgrind. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "aredis/adapters/libevent.h"
#include "aredis/aredis.h"
#include "bench.h"

#define VLEN 16
#define MAX_SIZE 100000

typedef struct config {
    const char *impl;
    const char *host;
    int port, db, tx, count;
    long batches, size;
} config;

static config cfg = {NULL, "127.0.0.1", 6379, 9, 0, 0, 10000, 100};

/* --count: the library's allocations and bytes since the counting began. */
static int counting;
static long n_allocs, n_bytes;

static void *count_malloc(size_t n)
{
    n_allocs += counting;
    n_bytes += counting ? (long)n : 0;
    return malloc(n);
}

static void *count_calloc(size_t n, size_t size)
{
    n_allocs += counting;
    n_bytes += counting ? (long)(n * size) : 0;
    return calloc(n, size);
}

static void *count_realloc(void *p, size_t n)
{
    n_allocs += counting;
    n_bytes += counting ? (long)n : 0;
    return realloc(p, n);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)))
__attribute__((noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench_pipeline %s tx=%d: ", cfg.impl ? cfg.impl : "",
            cfg.tx);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* The commands of one batch, built once. */
static char (*keys)[24];
static size_t keylen[MAX_SIZE];
static char value[VLEN + 1];

static void build_batch(void)
{
    keys = malloc((size_t)cfg.size * sizeof *keys);
    if (keys == NULL)
        die("out of memory");
    for (long i = 0; i < cfg.size; i++)
        keylen[i] = (size_t)snprintf(keys[i], sizeof keys[i], "pipe:%ld", i);
    memset(value, 'v', VLEN);
}

static int is_ok(int type, const char *s, size_t len)
{
    return type == REDIS_REPLY_STATUS && len == 2 && memcmp(s, "OK", 2) == 0;
}

/* Measurement. */
static double t0, c0;
static long batches_done;

static void start_clock(void)
{
    t0 = bench_now_s();
    c0 = bench_cpu_s();
}

static void report(void)
{
    double wall = bench_now_s() - t0, cpu = bench_cpu_s() - c0;
    double ops = (double)cfg.batches * (double)cfg.size;
    /* Counted from the third batch on. */
    double counted = (double)(cfg.batches - 2) * (double)cfg.size;
    printf("impl=%s tx=%d batches=%ld size=%ld ops=%.0f wall_s=%.4f "
           "ops_s=%.0f cpu_s=%.4f cpu_s_per_M=%.4f",
           cfg.impl, cfg.tx, cfg.batches, cfg.size, ops, wall, ops / wall, cpu,
           cpu / ops * 1e6);
    if (cfg.count)
        printf(" allocs_per_op=%.4f bytes_per_op=%.2f",
               counted > 0 ? (double)n_allocs / counted : -1.0,
               counted > 0 ? (double)n_bytes / counted : -1.0);
    printf("\n");
}

/* ------------------------------------------------------------------------
 * aredis
 * ------------------------------------------------------------------------ */

static aredis_pipeline *pipe_a;

static void a_batch(void);

static void a_done(aredis_pipeline *p, const aredis_reply *r, void *ud)
{
    (void)ud;
    if (r->type != AREDIS_REPLY_ARRAY || r->len != (size_t)cfg.size)
        die("batch %ld: %s", batches_done,
            r->type == AREDIS_REPLY_ERROR ? r->str : "not an array");
    for (size_t i = 0; i < r->len; i++)
        if (r->element[i].type != AREDIS_REPLY_STATUS ||
            strcmp(r->element[i].str, "OK") != 0)
            die("batch %ld: reply %zu is not OK", batches_done, i);
    if (++batches_done == cfg.batches) {
        counting = 0;
        report();
        aredis_client *c = aredis_pipeline_client(p);
        aredis_pipeline_free(p);
        aredis_client_free(c);
        return;
    }
    counting = cfg.count && batches_done >= 2;
    a_batch();
}

static void a_batch(void)
{
    for (long i = 0; i < cfg.size; i++) {
        const char *argv[3] = {"SET", keys[i], value};
        size_t argvlen[3] = {3, keylen[i], VLEN};
        if (aredis_pipeline_commandv(pipe_a, 3, argv, argvlen) != 0)
            die("aredis_pipeline_commandv failed");
    }
    int e = aredis_pipeline_execute(pipe_a, a_done, NULL);
    if (e != 0)
        die("aredis_pipeline_execute: %s", aredis_strerror(e));
}

static void a_ready(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)ud;
    if (r->type == AREDIS_REPLY_ERROR)
        die("connect: %s", r->str);
    pipe_a = aredis_pipeline_new(c, cfg.tx);
    if (pipe_a == NULL)
        die("aredis_pipeline_new failed");
    start_clock();
    a_batch();
}

static void run_aredis(aredis_loop *loop, struct event_base *base)
{
    char url[160];
    snprintf(url, sizeof url, "redis://%s:%d/%d", cfg.host, cfg.port, cfg.db);
    aredis_status st;
    aredis_client *c =
        aredis_client_new(loop, &(aredis_options){.url = url}, &st);
    if (c == NULL)
        die("%s", st.msg);
    aredis_command(c, a_ready, NULL, "PING");
    if (base != NULL)
        event_base_dispatch(base);
    else
        aredis_loop_run(loop);
    aredis_loop_free(loop);
}

/* ------------------------------------------------------------------------
 * hiredis async on libevent
 * ------------------------------------------------------------------------ */

static long replies_left;

static void h_batch(redisAsyncContext *ac);

static void h_reply(redisAsyncContext *ac, void *rv, void *priv)
{
    redisReply *r = rv;
    long kind = (long)(intptr_t)priv; /* 0 SET, 1 MULTI, 2 EXEC */
    if (r == NULL)
        die("hiredis: %s", ac->errstr);
    if (kind == 2) {
        if (r->type != REDIS_REPLY_ARRAY || r->elements != (size_t)cfg.size)
            die("batch %ld: EXEC did not answer an array", batches_done);
        for (size_t i = 0; i < r->elements; i++)
            if (!is_ok(r->element[i]->type, r->element[i]->str,
                       r->element[i]->len))
                die("batch %ld: EXEC element %zu is not OK", batches_done, i);
    } else if (cfg.tx && kind == 0) {
        if (r->type != REDIS_REPLY_STATUS || strcmp(r->str, "QUEUED") != 0)
            die("batch %ld: not QUEUED", batches_done);
    } else if (!is_ok(r->type, r->str, r->len)) {
        die("batch %ld: not OK", batches_done);
    }
    if (--replies_left != 0)
        return;
    if (++batches_done == cfg.batches) {
        report();
        redisAsyncDisconnect(ac);
        return;
    }
    h_batch(ac);
}

static void h_batch(redisAsyncContext *ac)
{
    replies_left = cfg.size + (cfg.tx ? 2 : 0);
    if (cfg.tx && redisAsyncCommand(ac, h_reply, (void *)(intptr_t)1,
                                    "MULTI") != REDIS_OK)
        die("redisAsyncCommand MULTI failed");
    for (long i = 0; i < cfg.size; i++) {
        const char *argv[3] = {"SET", keys[i], value};
        size_t argvlen[3] = {3, keylen[i], VLEN};
        if (redisAsyncCommandArgv(ac, h_reply, (void *)(intptr_t)0, 3, argv,
                                  argvlen) != REDIS_OK)
            die("redisAsyncCommandArgv failed");
    }
    if (cfg.tx &&
        redisAsyncCommand(ac, h_reply, (void *)(intptr_t)2, "EXEC") != REDIS_OK)
        die("redisAsyncCommand EXEC failed");
}

static void h_ready(redisAsyncContext *ac, void *rv, void *priv)
{
    (void)priv;
    redisReply *r = rv;
    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        die("hiredis SELECT: %s", r ? r->str : ac->errstr);
    start_clock();
    h_batch(ac);
}

static void run_hiredis(void)
{
    struct event_base *base = event_base_new();
    redisAsyncContext *ac = redisAsyncConnect(cfg.host, cfg.port);
    if (ac == NULL || ac->err)
        die("redisAsyncConnect: %s", ac ? ac->errstr : "out of memory");
    redisLibeventAttach(ac, base);
    redisAsyncCommand(ac, h_ready, NULL, "SELECT %d", cfg.db);
    event_base_dispatch(base);
    event_base_free(base);
}

/* ------------------------------------------------------------------------ */

static long num(const char *s, const char *what)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0)
        die("bad %s: %s", what, s);
    return v;
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--impl") == 0)
            cfg.impl = v;
        else if (strcmp(k, "--tx") == 0)
            cfg.tx = num(v, "--tx") != 0;
        else if (strcmp(k, "--batches") == 0)
            cfg.batches = num(v, "--batches");
        else if (strcmp(k, "--size") == 0)
            cfg.size = num(v, "--size");
        else if (strcmp(k, "--host") == 0)
            cfg.host = v;
        else if (strcmp(k, "--port") == 0)
            cfg.port = (int)num(v, "--port");
        else if (strcmp(k, "--db") == 0)
            cfg.db = (int)num(v, "--db");
        else if (strcmp(k, "--count") == 0)
            cfg.count = num(v, "--count") != 0;
        else
            die("unknown option %s", k);
    }
    if (cfg.impl == NULL || cfg.batches < 1 || cfg.size < 1 ||
        cfg.size > MAX_SIZE)
        die("usage: bench_pipeline --impl aredis|aredis-libevent|hiredis "
            "--tx 0|1 [--batches N] [--size N] [--host H] [--port P] "
            "[--db D] [--count 0|1]");
    if (cfg.count) {
        if (strncmp(cfg.impl, "aredis", 6) != 0)
            die("--count counts aredis's allocations only");
        aredis_allocator a = {count_malloc, count_calloc, count_realloc, free};
        if (aredis_set_allocator(&a) != 0)
            die("aredis_set_allocator failed");
    }
    build_batch();
    if (strcmp(cfg.impl, "aredis") == 0) {
        run_aredis(aredis_loop_new(), NULL);
    } else if (strcmp(cfg.impl, "aredis-libevent") == 0) {
        struct event_base *base = event_base_new();
        run_aredis(aredis_loop_event(base), base);
        event_base_free(base);
    } else if (strcmp(cfg.impl, "hiredis") == 0) {
        run_hiredis();
    } else {
        die("unknown --impl %s", cfg.impl);
    }
    if (batches_done != cfg.batches)
        die("stopped after %ld batches", batches_done);
    free(keys);
    return 0;
}
