/* Reader benchmark: aredis's RESP reader against hiredis's redisReader.
 *
 * Both readers are fed the same pre-encoded buffer once per iteration and
 * asked for the reply; hiredis's reply object is freed each time because
 * that is what its users pay, aredis's is borrowed and needs no free. It
 * prints ns per reply for both and the ratio. For instruction counts run it
 * under callgrind with bench/callgrind.sh (docs/guide/benchmarks.md).
 *
 *   bench_reader [--impl aredis|hiredis|both] [--workload NAME|all]
 *                [--iters N] [--list]
 *
 * This is a program, not a test: nothing here asserts timing. */
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aredis/resp.h"

typedef struct workload {
    const char *name;
    const char *desc;
    char *resp3; /* what aredis is fed */
    size_t resp3_len;
    char *resp2; /* what hiredis is fed (0.14 predates RESP3) */
    size_t resp2_len;
} workload;

static char *dup_bytes(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p == NULL) {
        perror("malloc");
        exit(1);
    }
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* Append printf output to a growing heap string. */
static void cat(char **s, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void cat(char **s, size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = realloc(*s, *len + (size_t)n + 1);
    if (p == NULL) {
        perror("realloc");
        exit(1);
    }
    va_start(ap, fmt);
    vsnprintf(p + *len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    *s = p;
    *len += (size_t)n;
}

static void same(workload *w, const char *bytes)
{
    w->resp3_len = w->resp2_len = strlen(bytes);
    w->resp3 = dup_bytes(bytes, w->resp3_len);
    w->resp2 = dup_bytes(bytes, w->resp2_len);
}

static int make_workloads(workload *ws)
{
    int n = 0;
    ws[n] = (workload){"ok", "+OK", 0, 0, 0, 0};
    same(&ws[n++], "+OK\r\n");
    ws[n] = (workload){"int", ":12345", 0, 0, 0, 0};
    same(&ws[n++], ":12345\r\n");
    ws[n] = (workload){"bulk16", "16-byte bulk", 0, 0, 0, 0};
    same(&ws[n++], "$16\r\n0123456789abcdef\r\n");

    char *s = NULL;
    size_t len = 0;
    cat(&s, &len, "$1024\r\n");
    for (int i = 0; i < 1024; i++)
        cat(&s, &len, "%c", 'a' + i % 26);
    cat(&s, &len, "\r\n");
    ws[n] = (workload){"bulk1k", "1 KiB bulk", 0, 0, 0, 0};
    same(&ws[n++], s);
    free(s);

    s = NULL;
    len = 0;
    cat(&s, &len, "*100\r\n");
    for (int i = 0; i < 100; i++)
        cat(&s, &len, "$16\r\nvalue-%010d\r\n", i);
    ws[n] = (workload){"array100", "array of 100 16-byte bulks", 0, 0, 0, 0};
    same(&ws[n++], s);
    free(s);

    /* A nested map: 8 fields, each a map of 4 integer fields and an array
     * of 3 bulks (like a small CLIENT INFO or XINFO reply). hiredis 0.14
     * has no RESP3, so it is fed the RESP2 shape: flat arrays. */
    char *m3 = NULL, *m2 = NULL;
    size_t l3 = 0, l2 = 0;
    cat(&m3, &l3, "%%8\r\n");
    cat(&m2, &l2, "*16\r\n");
    for (int i = 0; i < 8; i++) {
        cat(&m3, &l3, "$7\r\nfield-%d\r\n%%5\r\n", i);
        cat(&m2, &l2, "$7\r\nfield-%d\r\n*10\r\n", i);
        for (int j = 0; j < 4; j++) {
            cat(&m3, &l3, "$3\r\nk-%d\r\n:%d\r\n", j, i * 100 + j);
            cat(&m2, &l2, "$3\r\nk-%d\r\n:%d\r\n", j, i * 100 + j);
        }
        cat(&m3, &l3, "$4\r\nlist\r\n*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n");
        cat(&m2, &l2, "$4\r\nlist\r\n*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n");
    }
    ws[n] = (workload){
        "nested_map", "map of 8 maps (RESP2: arrays)", m3, l3, m2, l2};
    n++;
    return n;
}

static volatile uint64_t sink;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double run_aredis(const workload *w, long iters)
{
    aredis_reader *rd = aredis_reader_new(NULL);
    if (rd == NULL)
        exit(1);
    uint64_t acc = 0, t0 = now_ns();
    for (long i = 0; i < iters; i++) {
        const aredis_reply *r;
        if (aredis_reader_feed(rd, w->resp3, w->resp3_len) != 0 ||
            aredis_reader_get_reply(rd, &r) != 1) {
            fprintf(stderr, "aredis: %s\n", aredis_reader_errstr(rd));
            exit(1);
        }
        acc += (uint64_t)r->type + r->len;
    }
    uint64_t t1 = now_ns();
    sink += acc;
    aredis_reader_free(rd);
    return (double)(t1 - t0) / (double)iters;
}

static double run_hiredis(const workload *w, long iters)
{
    redisReader *rd = redisReaderCreate();
    if (rd == NULL)
        exit(1);
    uint64_t acc = 0, t0 = now_ns();
    for (long i = 0; i < iters; i++) {
        void *reply;
        if (redisReaderFeed(rd, w->resp2, w->resp2_len) != REDIS_OK ||
            redisReaderGetReply(rd, &reply) != REDIS_OK || reply == NULL) {
            fprintf(stderr, "hiredis: %s\n", rd->errstr);
            exit(1);
        }
        redisReply *r = reply;
        acc += (uint64_t)r->type + r->len + r->elements;
        freeReplyObject(reply);
    }
    uint64_t t1 = now_ns();
    sink += acc;
    redisReaderFree(rd);
    return (double)(t1 - t0) / (double)iters;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_reader [--impl aredis|hiredis|both] "
                    "[--workload NAME|all] [--iters N] [--list]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *impl = "both", *only = "all";
    long iters = 1000000;
    int list = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--impl") == 0 && i + 1 < argc)
            impl = argv[++i];
        else if (strcmp(argv[i], "--workload") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc)
            iters = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--list") == 0)
            list = 1;
        else
            usage();
    }
    int do_a = strcmp(impl, "both") == 0 || strcmp(impl, "aredis") == 0;
    int do_h = strcmp(impl, "both") == 0 || strcmp(impl, "hiredis") == 0;
    if ((!do_a && !do_h) || iters <= 0)
        usage();

    workload ws[16];
    int n = make_workloads(ws);
    if (list) {
        for (int i = 0; i < n; i++)
            printf("%s\n", ws[i].name);
        return 0;
    }
    printf("%-12s %-32s %12s %12s %8s\n", "workload", "reply", "aredis ns",
           "hiredis ns", "ratio");
    int matched = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(only, "all") != 0 && strcmp(only, ws[i].name) != 0)
            continue;
        matched = 1;
        long it = iters;
        double a = do_a ? run_aredis(&ws[i], it) : 0;
        double h = do_h ? run_hiredis(&ws[i], it) : 0;
        printf("%-12s %-32s %12.1f %12.1f %8.3f\n", ws[i].name, ws[i].desc, a,
               h, do_a && do_h ? a / h : 0.0);
    }
    for (int i = 0; i < n; i++) {
        free(ws[i].resp3);
        free(ws[i].resp2);
    }
    if (!matched) {
        fprintf(stderr, "unknown workload %s\n", only);
        return 2;
    }
    return 0;
}
