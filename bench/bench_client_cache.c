/* Client-side caching benchmark (bench/client_cache.sh runs it).
 *
 *   bench_client_cache --port P [--n 1000000] [--runs 3] [--reps 200]
 *                      [--keys 1000000] [--protocol 3]
 *
 * C1: n GETs of a 32-byte hot key through the cache (hits) against n plain
 *     GETs on the same client, pipelined in batches of 10000, and n hits on
 *     a 100 KB value; hits/s and the ratio.
 * C3: a writer in a separate process SETs the hot key `reps` times; the
 *     cached client keeps reading it and times, from the writer's SET being
 *     sent to the cached read returning the new value (p50, p99); then
 *     `reps` rounds of write, acknowledgement, aredis_ccache_sync(), read:
 *     how many reads were stale.
 * C5: `keys` distinct keys read through a 10000-entry cache: peak RSS
 *     before and after, entries, evictions, hit ratio of a second pass
 *     over the last 10000.
 * Each figure is printed per run. Loopback only. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "aredis/aredis.h"
#include "bench.h"

static int port = 6379, protocol = 3;
static long n = 1000000, runs = 3, reps = 200, keys = 1000000;

static long rss_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t fl = strlen(field);
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, field, fl) == 0)
            v = atol(line + fl + 1);
    if (f != NULL)
        fclose(f);
    return v;
}

typedef struct ctx {
    aredis_loop *loop;
    aredis_client *c;
    aredis_ccache *cc;
    long done;
    char last[64];
    int synced;
} ctx;

static void on_count(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    ctx *x = ud;
    x->done++;
    if (r->type == AREDIS_REPLY_STRING && r->len < sizeof x->last) {
        memcpy(x->last, r->str, r->len);
        x->last[r->len] = '\0';
    }
}

static void on_sync(aredis_ccache *cc, int status, void *ud)
{
    (void)cc;
    (void)status;
    ((ctx *)ud)->synced = 1;
}

static void run_until(ctx *x, long want)
{
    while (x->done < want)
        aredis_loop_run_once(x->loop, 100);
}

static void wait_active(ctx *x)
{
    while (aredis_ccache_get_state(x->cc) != AREDIS_CCACHE_ACTIVE)
        aredis_loop_run_once(x->loop, 10);
}

static void ccsync(ctx *x)
{
    x->synced = 0;
    aredis_ccache_sync(x->cc, on_sync, x);
    while (!x->synced)
        aredis_loop_run_once(x->loop, 100);
}

/* n GETs of key, cached or plain, in batches; returns per second. */
static double gets(ctx *x, const char *key, int cached)
{
    const char *argv[] = {"GET", key};
    x->done = 0;
    double t0 = bench_now_s();
    for (long sent = 0; sent < n;) {
        for (long i = 0; i < 10000 && sent < n; i++, sent++) {
            if (cached)
                aredis_ccache_commandv(x->cc, on_count, x, 2, argv, NULL);
            else
                aredis_commandv(x->c, on_count, x, 2, argv, NULL);
        }
        run_until(x, sent);
    }
    return (double)n / (bench_now_s() - t0);
}

static void c1(ctx *x)
{
    char value[32 + 1];
    memset(value, 'v', 32);
    value[32] = '\0';
    aredis_command(x->c, on_count, x, "SET bench:cc:hot %s", value);
    char *big = malloc(100 * 1024 + 1);
    memset(big, 'b', 100 * 1024);
    big[100 * 1024] = '\0';
    aredis_command(x->c, on_count, x, "SET bench:cc:big %s", big);
    free(big);
    x->done = 0;
    run_until(x, 2);
    ccsync(x);
    /* C1 measures hits: one read of each key first, so the timed batches
     * do not start with misses (10,000 queued GETs of the 100 KB value
     * would all go to the server before its first reply is stored). */
    const char *warm_hot[] = {"GET", "bench:cc:hot"};
    const char *warm_big[] = {"GET", "bench:cc:big"};
    x->done = 0;
    aredis_ccache_commandv(x->cc, on_count, x, 2, warm_hot, NULL);
    aredis_ccache_commandv(x->cc, on_count, x, 2, warm_big, NULL);
    run_until(x, 2);
    for (long r = 0; r < runs; r++) {
        double plain = gets(x, "bench:cc:hot", 0);
        double hot = gets(x, "bench:cc:hot", 1);
        double hbig = gets(x, "bench:cc:big", 1);
        printf("C1 run %ld: plain GET %.0f/s, cached 32 B %.0f hits/s "
               "(x%.1f), cached 100 KB %.0f hits/s\n",
               r + 1, plain, hot, hot / plain, hbig);
        fflush(stdout);
    }
}

/* Shared with the writer process. */
typedef struct shm {
    volatile long go;    /* the round the writer is to write */
    volatile long acked; /* the last round written and acknowledged */
    volatile double t0;  /* when that round's SET was sent */
    volatile int quit;
} shm;

static void writer(shm *m)
{
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
    aredis_sync *w = aredis_sync_connect(&(aredis_options){.url = url}, NULL);
    if (w == NULL)
        _exit(1);
    long done = 0;
    while (!m->quit) {
        if (m->go == done) {
            usleep(50);
            continue;
        }
        done = m->go;
        m->t0 = bench_now_s();
        aredis_reply_free(aredis_sync_command(w, "SET bench:cc:inv %ld", done));
        m->acked = done;
    }
    aredis_sync_free(w);
    _exit(0);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void c3(ctx *x)
{
    shm *m = mmap(NULL, sizeof *m, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    memset((void *)m, 0, sizeof *m);
    pid_t pid = fork();
    if (pid == 0)
        writer(m);
    const char *argv[] = {"GET", "bench:cc:inv"};
    double *lat = calloc((size_t)reps, sizeof *lat);
    long round = 0;
    for (long r = 0; r < runs; r++) {
        for (long i = 0; i < reps; i++) {
            /* Cache the current value, then let the writer go. */
            x->done = 0;
            aredis_ccache_commandv(x->cc, on_count, x, 2, argv, NULL);
            run_until(x, 1);
            round++;
            char want[32];
            snprintf(want, sizeof want, "%ld", round);
            m->go = round;
            for (;;) {
                x->done = 0;
                aredis_ccache_commandv(x->cc, on_count, x, 2, argv, NULL);
                run_until(x, 1);
                if (strcmp(x->last, want) == 0)
                    break;
            }
            lat[i] = (bench_now_s() - m->t0) * 1e3;
            while (m->acked != round)
                usleep(10);
        }
        qsort(lat, (size_t)reps, sizeof *lat, cmp_double);
        /* Write, acknowledgement, sync, read: stale reads. */
        int stale = 0;
        for (long i = 0; i < reps; i++) {
            x->done = 0;
            aredis_ccache_commandv(x->cc, on_count, x, 2, argv, NULL);
            run_until(x, 1); /* cached */
            round++;
            m->go = round;
            while (m->acked != round)
                usleep(10);
            ccsync(x);
            x->done = 0;
            aredis_ccache_commandv(x->cc, on_count, x, 2, argv, NULL);
            run_until(x, 1);
            stale += atol(x->last) != round;
        }
        printf("C3 run %ld (%s): invalidation to new value p50 %.3f ms, p99 "
               "%.3f ms, max %.3f ms over %ld; after sync %d/%ld stale\n",
               r + 1, protocol == 2 ? "RESP2 REDIRECT" : "RESP3", lat[reps / 2],
               lat[reps * 99 / 100], lat[reps - 1], reps, stale, reps);
        fflush(stdout);
    }
    m->quit = 1;
    waitpid(pid, NULL, 0);
    free(lat);
    munmap((void *)m, sizeof *m);
}

static void c5(ctx *x)
{
    long before = rss_kb("VmRSS:");
    char key[48];
    x->done = 0;
    long sent = 0;
    for (long i = 0; i < keys; i++) {
        snprintf(key, sizeof key, "bench:cc:d:%ld", i);
        const char *argv[] = {"GET", key};
        aredis_ccache_commandv(x->cc, on_count, x, 2, argv, NULL);
        if (++sent % 10000 == 0)
            run_until(x, sent);
    }
    run_until(x, sent);
    aredis_ccache_stats st0;
    aredis_ccache_get_stats(x->cc, &st0);
    for (long i = keys - 10000; i < keys; i++) {
        snprintf(key, sizeof key, "bench:cc:d:%ld", i);
        const char *argv[] = {"GET", key};
        aredis_ccache_commandv(x->cc, on_count, x, 2, argv, NULL);
        sent++;
    }
    run_until(x, sent);
    aredis_ccache_stats st;
    aredis_ccache_get_stats(x->cc, &st);
    printf("C5: %ld distinct keys through %zu-entry cache: RSS %ld -> %ld "
           "KiB (peak %ld), entries %zu, bytes %zu, evictions %llu; second "
           "pass over the last 10000: hit ratio %.2f\n",
           keys, (size_t)10000, before, rss_kb("VmRSS:"), rss_kb("VmHWM:"),
           st.entries, st.bytes, (unsigned long long)st.evictions,
           (double)(st.hits - st0.hits) / 10000.0);
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        long v = atol(argv[i + 1]);
        if (strcmp(argv[i], "--port") == 0)
            port = (int)v;
        else if (strcmp(argv[i], "--n") == 0)
            n = v;
        else if (strcmp(argv[i], "--runs") == 0)
            runs = v;
        else if (strcmp(argv[i], "--reps") == 0)
            reps = v;
        else if (strcmp(argv[i], "--keys") == 0)
            keys = v;
        else if (strcmp(argv[i], "--protocol") == 0)
            protocol = (int)v;
    }
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
    ctx x = {0};
    x.loop = aredis_loop_new();
    x.c = aredis_client_new(
        x.loop, &(aredis_options){.url = url, .protocol = protocol}, NULL);
    x.cc = aredis_ccache_new(x.c, &(aredis_ccache_opts){.max_entries = 10000},
                             NULL);
    if (x.c == NULL || x.cc == NULL)
        return 1;
    wait_active(&x);
    if (n > 0)
        c1(&x);
    if (reps > 0)
        c3(&x);
    if (keys > 0)
        c5(&x);
    aredis_ccache_free(x.cc);
    aredis_client_free(x.c);
    aredis_loop_free(x.loop);
    return 0;
}
