/* Benchmark of the RESP writer against hiredis's command formatting.
 *
 * For each workload it encodes the same command many times with aredis
 * (into one long-lived aredis_buf, reset to empty before every command, as
 * the connection's output buffer is used) and with hiredis's
 * redisFormatCommand / redisFormatCommandArgv (freeing each result, which is
 * what a hiredis user pays), and prints ns per command and the ratio.
 *
 *   bench_writer [--impl aredis|hiredis|both] [--workload NAME|all]
 *                [--iters N] [--list]
 *
 * bench/callgrind.sh runs it under callgrind to count instructions per
 * command, which is steadier than wall time. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "aredis/resp.h"

/* Every encoded command feeds this, so no compiler can drop the work. */
static volatile unsigned sink;

static char key8[] = "key:0001";
static char val16[] = "value-0123456789";
static char name16[] = "alice-the-great!";
static char val1k[1024];
static char args10[10][17];

static const char *set_argv[3];
static size_t set_lens[3];
static const char *bulk_argv[3];
static size_t bulk_lens[3];
static const char *ten_argv[10];
static size_t ten_lens[10];

static void setup_data(void)
{
    for (size_t i = 0; i < sizeof val1k; i++)
        val1k[i] = (char)('a' + i % 26);
    for (int i = 0; i < 10; i++)
        snprintf(args10[i], sizeof args10[i], "argument-%07d", i);
    set_argv[0] = "SET";
    set_argv[1] = key8;
    set_argv[2] = val16;
    bulk_argv[0] = "SET";
    bulk_argv[1] = key8;
    bulk_argv[2] = val1k;
    set_lens[0] = bulk_lens[0] = 3;
    set_lens[1] = bulk_lens[1] = 8;
    set_lens[2] = 16;
    bulk_lens[2] = sizeof val1k;
    for (int i = 0; i < 10; i++) {
        ten_argv[i] = args10[i];
        ten_lens[i] = 16;
    }
}

/* The score of the mixed workload: a typical non-integral value, which
 * takes the writer's printf path rather than its integer shortcut. */
static double score_of(unsigned long i)
{
    return (double)(i % 1000) + 0.5;
}

/* ------------------------------------------------------------------------
 * aredis
 * ------------------------------------------------------------------------ */

static aredis_buf out;

static void check(int rc)
{
    if (rc != 0) {
        fprintf(stderr, "bench_writer: aredis write failed (%d)\n", rc);
        exit(1);
    }
}

static void consume_aredis(void)
{
    sink += (unsigned char)out.data[out.len - 3];
}

static void a_set_fmt(unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        out.len = 0;
        check(aredis_write_fmt(&out, "SET %s %s", key8, val16));
        consume_aredis();
    }
}

static void a_set_argv(unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        out.len = 0;
        check(aredis_write_argv(&out, 3, set_argv, set_lens));
        consume_aredis();
    }
}

static void a_bulk1k_fmt(unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        out.len = 0;
        check(aredis_write_fmt(&out, "SET %s %b", key8, val1k, sizeof val1k));
        consume_aredis();
    }
}

static void a_bulk1k_argv(unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        out.len = 0;
        check(aredis_write_argv(&out, 3, bulk_argv, bulk_lens));
        consume_aredis();
    }
}

static void a_argv10(unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        out.len = 0;
        check(aredis_write_argv(&out, 10, ten_argv, ten_lens));
        consume_aredis();
    }
}

static void a_mixed_fmt(unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        out.len = 0;
        check(aredis_write_fmt(&out, "HSET user:%d name %s score %f",
                               (int)(i % 100000), name16, score_of(i)));
        consume_aredis();
    }
}

/* A score that needs 16 or 17 significant digits, which no shortcut
 * covers: the writer's slowest path (snprintf and strtod). */
static double long_score_of(unsigned long i)
{
    return (double)(i % 1000 + 1) / 3.0;
}

static void a_double17_fmt(unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        out.len = 0;
        check(aredis_write_fmt(&out, "ZADD %s %f %s", key8, long_score_of(i),
                               name16));
        consume_aredis();
    }
}

/* ------------------------------------------------------------------------
 * hiredis
 * ------------------------------------------------------------------------ */

static void consume_hiredis(char *cmd, int len)
{
    if (len <= 0) {
        fprintf(stderr, "bench_writer: hiredis format failed\n");
        exit(1);
    }
    sink += (unsigned char)cmd[len - 3];
    redisFreeCommand(cmd);
}

static void h_set_fmt(unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        char *cmd;
        int len = redisFormatCommand(&cmd, "SET %s %s", key8, val16);
        consume_hiredis(cmd, len);
    }
}

static void h_set_argv(unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        char *cmd;
        int len = redisFormatCommandArgv(&cmd, 3, set_argv, set_lens);
        consume_hiredis(cmd, len);
    }
}

static void h_bulk1k_fmt(unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        char *cmd;
        int len =
            redisFormatCommand(&cmd, "SET %s %b", key8, val1k, sizeof val1k);
        consume_hiredis(cmd, len);
    }
}

static void h_bulk1k_argv(unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        char *cmd;
        int len = redisFormatCommandArgv(&cmd, 3, bulk_argv, bulk_lens);
        consume_hiredis(cmd, len);
    }
}

static void h_argv10(unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        char *cmd;
        int len = redisFormatCommandArgv(&cmd, 10, ten_argv, ten_lens);
        consume_hiredis(cmd, len);
    }
}

static void h_mixed_fmt(unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        char *cmd;
        int len = redisFormatCommand(&cmd, "HSET user:%d name %s score %f",
                                     (int)(i % 100000), name16, score_of(i));
        consume_hiredis(cmd, len);
    }
}

static void h_double17_fmt(unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        char *cmd;
        int len = redisFormatCommand(&cmd, "ZADD %s %f %s", key8,
                                     long_score_of(i), name16);
        consume_hiredis(cmd, len);
    }
}

/* ------------------------------------------------------------------------
 * Driver
 * ------------------------------------------------------------------------ */

struct workload {
    const char *name;
    const char *what;
    void (*aredis)(unsigned long n);
    void (*hiredis)(unsigned long n);
};

static const struct workload workloads[] = {
    {"set_fmt", "\"SET %s %s\", 8-byte key, 16-byte value", a_set_fmt,
     h_set_fmt},
    {"set_argv", "SET key value as argv", a_set_argv, h_set_argv},
    {"bulk1k_fmt", "\"SET %s %b\", 1 KiB value", a_bulk1k_fmt, h_bulk1k_fmt},
    {"bulk1k_argv", "SET key <1 KiB> as argv", a_bulk1k_argv, h_bulk1k_argv},
    {"argv10", "10 arguments of 16 bytes", a_argv10, h_argv10},
    {"mixed_fmt", "\"HSET user:%d name %s score %f\"", a_mixed_fmt,
     h_mixed_fmt},
    {"double17_fmt", "\"ZADD %s %f %s\", score i/3.0 (17 digits)",
     a_double17_fmt, h_double17_fmt},
};

#define NWORKLOADS (sizeof workloads / sizeof workloads[0])

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double run(void (*fn)(unsigned long), unsigned long iters)
{
    /* A short warm-up so caches, branch predictors and the output buffer
     * are in their steady state before the clock starts. Its length does
     * not depend on --iters, so bench/callgrind.sh's difference of two
     * runs cancels it exactly. */
    fn(1000);
    double t0 = now_ns();
    fn(iters);
    return (now_ns() - t0) / (double)iters;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_writer [--impl aredis|hiredis|both] "
                    "[--workload NAME|all] [--iters N] [--list]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *impl = "both", *which = "all";
    unsigned long iters = 1000000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--list") == 0) {
            for (size_t w = 0; w < NWORKLOADS; w++)
                printf("%s\n", workloads[w].name);
            return 0;
        }
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--impl") == 0) {
            impl = argv[++i];
        } else if (strcmp(argv[i], "--workload") == 0) {
            which = argv[++i];
        } else if (strcmp(argv[i], "--iters") == 0) {
            char *end;
            errno = 0;
            iters = strtoul(argv[++i], &end, 10);
            if (errno != 0 || *end != '\0' || iters == 0)
                usage();
        } else {
            usage();
        }
    }
    int do_a = strcmp(impl, "aredis") == 0 || strcmp(impl, "both") == 0;
    int do_h = strcmp(impl, "hiredis") == 0 || strcmp(impl, "both") == 0;
    if (!do_a && !do_h)
        usage();

    setup_data();
    aredis_buf_init(&out);
    int found = 0;
    printf("%-13s %11s %11s %7s  %s\n", "workload", "aredis_ns", "hiredis_ns",
           "ratio", "command");
    for (size_t w = 0; w < NWORKLOADS; w++) {
        const struct workload *wl = &workloads[w];
        if (strcmp(which, "all") != 0 && strcmp(which, wl->name) != 0)
            continue;
        found = 1;
        double a = do_a ? run(wl->aredis, iters) : 0;
        double h = do_h ? run(wl->hiredis, iters) : 0;
        char as[32] = "-", hs[32] = "-", rs[32] = "-";
        if (do_a)
            snprintf(as, sizeof as, "%.1f", a);
        if (do_h)
            snprintf(hs, sizeof hs, "%.1f", h);
        if (do_a && do_h)
            snprintf(rs, sizeof rs, "%.3f", a / h);
        printf("%-13s %11s %11s %7s  %s\n", wl->name, as, hs, rs, wl->what);
    }
    aredis_buf_cleanup(&out);
    if (!found) {
        fprintf(stderr, "bench_writer: unknown workload '%s' (see --list)\n",
                which);
        return 2;
    }
    /* Printed so the accumulated value is observably used. */
    fflush(stdout);
    fprintf(stderr, "checksum %u\n", sink);
    return 0;
}
