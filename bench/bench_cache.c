/* Cache benchmark: cached get/set per second against plain GET/SET on the
 * same connection, in the same run.
 *
 *   bench_cache --port P [--host H] [--n N] [--runs R] [--size S]
 *
 * One aredis client on the built-in loop; one cache over it (app prefix,
 * a key with two parameters, so every call pays for the identity hash;
 * values of S bytes (default 100), below the compression threshold) and a
 * herd cache over the same client. The plain commands use the very names
 * the cache computes, so both sides move the same bytes but for the
 * payload header. Each mode runs N operations at two depths: 1 in flight
 * (sequential round trips) and 64 in flight (each completion submits the
 * next). Modes run interleaved, R rounds, and the table gives the median
 * ops/s of each and the ratio cached / plain. Every reply is checked; a
 * mismatch exits non-zero. A program, not a test: nothing here asserts
 * timing. bench/cache.sh starts a throwaway server and runs it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aredis/aredis.h"
#include "bench.h"

#define NKEYS 1000
#define MAXRUNS 32

enum { PLAIN_SET, CACHE_SET, PLAIN_GET, CACHE_GET, HERD_GET, NMODES };
static const char *const mode_names[NMODES] = {"SET", "cache set", "GET",
                                               "cache get", "herd get"};

typedef struct bench {
    aredis_loop *loop;
    aredis_client *c;
    aredis_cache *cache, *herd;
    char ids[NKEYS][128];
    char hids[NKEYS][128];
    char keys[NKEYS][16];
    char *value;
    size_t size;
    int mode;
    long n, submitted, done;
    int failed;
} bench;

static const aredis_cache_param params[] = {{"lang", "en", 0},
                                            {"page", "1", 0}};

static void submit(bench *b);

static void complete(bench *b, int ok)
{
    if (!ok)
        b->failed = 1;
    b->done++;
    if (b->submitted < b->n)
        submit(b);
    if (b->done == b->n)
        aredis_loop_stop(b->loop);
}

static void on_reply(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    bench *b = ud;
    int ok = b->mode == PLAIN_SET
                 ? r->type == AREDIS_REPLY_STATUS
                 : r->type == AREDIS_REPLY_STRING && r->len == b->size + 1;
    complete(b, ok);
}

static void on_cache(aredis_cache *k, const aredis_cache_result *r, void *ud)
{
    (void)k;
    bench *b = ud;
    int ok = b->mode == CACHE_SET
                 ? r->status == 0
                 : r->status == AREDIS_CACHE_HIT && r->len == b->size;
    complete(b, ok);
}

static void submit(bench *b)
{
    long i = b->submitted++ % NKEYS;
    int e = 0;
    switch (b->mode) {
    case PLAIN_SET: {
        /* The same bytes the cache stores: its raw header and the value. */
        const char *argv[] = {"SET", b->ids[i], b->value};
        size_t lens[] = {3, strlen(b->ids[i]), b->size + 1};
        e = aredis_commandv(b->c, on_reply, b, 3, argv, lens);
        break;
    }
    case PLAIN_GET: {
        const char *argv[] = {"GET", b->ids[i]};
        e = aredis_commandv(b->c, on_reply, b, 2, argv, NULL);
        break;
    }
    case CACHE_SET:
        e = aredis_cache_set(b->cache, b->keys[i], params, 2, b->value + 1,
                             b->size, AREDIS_CACHE_NO_TTL, on_cache, b);
        break;
    case CACHE_GET:
        e = aredis_cache_get(b->cache, b->keys[i], params, 2, on_cache, b);
        break;
    default:
        e = aredis_cache_get(b->herd, b->keys[i], params, 2, on_cache, b);
        break;
    }
    if (e != 0) {
        fprintf(stderr, "submit failed: %s\n", aredis_strerror(e));
        exit(1);
    }
}

static double run(bench *b, int mode, long n, int depth)
{
    b->mode = mode;
    b->n = n;
    b->submitted = b->done = 0;
    double t0 = bench_now_s();
    for (int i = 0; i < depth && b->submitted < n; i++)
        submit(b);
    aredis_loop_run(b->loop);
    double dt = bench_now_s() - t0;
    if (b->failed || b->done != n) {
        fprintf(stderr, "mode %s: a reply did not match\n", mode_names[mode]);
        exit(1);
    }
    return (double)n / dt;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void wait_setup(bench *b)
{
    /* Herd entries for the herd reads, fresh for the whole run. */
    b->mode = CACHE_SET;
    b->n = NKEYS;
    b->submitted = b->done = 0;
    for (long i = 0; i < NKEYS; i++) {
        b->submitted++;
        aredis_cache_set(b->herd, b->keys[i], params, 2, b->value + 1, b->size,
                         3600 * 1000, on_cache, b);
    }
    aredis_loop_run(b->loop);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 6379, runs = 5;
    long n = 20000;
    size_t size = 100;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--host") == 0)
            host = argv[i + 1];
        else if (strcmp(argv[i], "--port") == 0)
            port = (int)strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--n") == 0)
            n = strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--runs") == 0)
            runs = (int)strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--size") == 0)
            size = (size_t)strtoul(argv[i + 1], NULL, 10);
    }
    if (runs < 1 || runs > MAXRUNS || n < 1 || size < 1 || size > 100000) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    static bench b;
    b.size = size;
    b.loop = aredis_loop_new();
    aredis_status st;
    b.c = aredis_client_new(b.loop,
                            &(aredis_options){.host = host, .port = port}, &st);
    b.cache = aredis_cache_new(b.c, &(aredis_cache_opts){.app = "bench"}, &st);
    b.herd = aredis_cache_new(
        b.c, &(aredis_cache_opts){.app = "bench-herd", .herd_timeout_ms = 1000},
        &st);
    if (b.c == NULL || b.cache == NULL || b.herd == NULL) {
        fprintf(stderr, "%s\n", st.msg);
        return 1;
    }
    b.value = malloc(size + 1);
    b.value[0] = (char)AREDIS_CACHE_HEADER_BASE;
    memset(b.value + 1, 'v', size);
    for (int i = 0; i < NKEYS; i++) {
        snprintf(b.keys[i], sizeof b.keys[i], "k%d", i);
        aredis_cache_identity(b.cache, b.keys[i], params, 2, b.ids[i],
                              sizeof b.ids[i]);
    }
    wait_setup(&b);
    static const int depths[] = {1, 64};
    static const int order[] = {PLAIN_SET, CACHE_SET, PLAIN_GET, CACHE_GET,
                                HERD_GET};
    double ops[2][NMODES][MAXRUNS];
    for (int r = 0; r < runs; r++)
        for (int d = 0; d < 2; d++)
            for (int m = 0; m < NMODES; m++)
                ops[d][order[m]][r] =
                    run(&b, order[m], depths[d] == 1 ? n : n * 5, depths[d]);
    printf("%zu-byte values, %ld ops per mode at depth 1 and %ld at depth "
           "64, median of %d interleaved runs\n\n",
           size, n, n * 5, runs);
    printf("| in flight | op | plain op/s | cached op/s | cached / plain |\n");
    printf("|---|---|---:|---:|---:|\n");
    for (int d = 0; d < 2; d++) {
        double ps = median(ops[d][PLAIN_SET], runs);
        double cs = median(ops[d][CACHE_SET], runs);
        double pg = median(ops[d][PLAIN_GET], runs);
        double cg = median(ops[d][CACHE_GET], runs);
        double hg = median(ops[d][HERD_GET], runs);
        printf("| %d | set | %.0f | %.0f | %.2f |\n", depths[d], ps, cs,
               cs / ps);
        printf("| %d | get | %.0f | %.0f | %.2f |\n", depths[d], pg, cg,
               cg / pg);
        printf("| %d | herd get | %.0f | %.0f | %.2f |\n", depths[d], pg, hg,
               hg / pg);
    }
    aredis_cache_free(b.cache);
    aredis_cache_free(b.herd);
    aredis_client_free(b.c);
    aredis_loop_free(b.loop);
    free(b.value);
    return 0;
}
