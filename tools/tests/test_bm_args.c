/* The benchmark tools' common part without a server: the option parser
 * (good and bad command lines), the workloads' commands and the latency
 * histogram's accuracy. */
#include <criterion/criterion.h>
#include <string.h>

#include "bm/bm.h"

#define ALL_CAPS (BM_CAP_TLS | BM_CAP_SYNC | BM_CAP_URL)

static char err[8192];

/* Parse a NULL-terminated list of arguments. */
static int parse(bm_config *cfg, unsigned caps, const char *first, ...)
{
    static char prog[] = "aredis-benchmark";
    char *argv[64];
    int argc = 0;
    argv[argc++] = prog;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    return bm_parse_args(cfg, argc, argv, "aredis-benchmark", caps, err,
                         sizeof err);
}

Test(args, defaults)
{
    bm_config c;
    cr_assert_eq(parse(&c, ALL_CAPS, NULL), 0);
    cr_assert_str_eq(c.host, "127.0.0.1");
    cr_assert_eq(c.port, 6379);
    cr_assert_eq(c.connections, 50);
    cr_assert_eq(c.inflight, 1);
    cr_assert_eq(c.requests, 100000);
    cr_assert_eq(c.datasize, 3);
    cr_assert_eq(c.keyspace, 0);
    cr_assert_eq(c.tests, BM_DEFAULT_TESTS);
    cr_assert(!(c.tests & (1u << BM_KEYS)), "keys is not a default test");
    cr_assert_eq(c.output, BM_OUT_TEXT);
    cr_assert_eq(c.sync, 0);
}

Test(args, every_value_lands)
{
    bm_config c;
    cr_assert_eq(parse(&c, ALL_CAPS, "-h", "::1", "-p", "7000", "-c", "4", "-P",
                       "16", "-n", "1000", "-d", "64", "-r", "100",
                       "--sequential", "-t", "set,GET,keys", "--csv", "--dbnum",
                       "3", "--prefix", "bm:", "--ratio", "2:5", "--seed", "42",
                       "-q", NULL),
                 0, "%s", err);
    cr_assert_str_eq(c.host, "::1");
    cr_assert_eq(c.port, 7000);
    cr_assert_eq(c.connections, 4);
    cr_assert_eq(c.inflight, 16);
    cr_assert_eq(c.requests, 1000);
    cr_assert_eq(c.datasize, 64);
    cr_assert_eq(c.keyspace, 100);
    cr_assert_eq(c.sequential, 1);
    cr_assert_eq(c.tests, (1u << BM_SET) | (1u << BM_GET) | (1u << BM_KEYS));
    cr_assert_eq(c.output, BM_OUT_CSV);
    cr_assert_eq(c.db, 3);
    cr_assert_str_eq(c.prefix, "bm:");
    cr_assert_eq(c.ratio_set, 2);
    cr_assert_eq(c.ratio_get, 5);
    cr_assert_eq(c.seed, 42);
    cr_assert_eq(c.quiet, 1);
    cr_assert_eq(c.progress, 0, "no progress bar when quiet");
}

Test(args, spellings)
{
    bm_config c;
    cr_assert_eq(parse(&c, ALL_CAPS, "-w", "8", NULL), 0);
    cr_assert_eq(c.inflight, 8);
    cr_assert_eq(parse(&c, ALL_CAPS, "--pipeline=9", "--requests=5", NULL), 0);
    cr_assert_eq(c.inflight, 9);
    cr_assert_eq(c.requests, 5);
    cr_assert_eq(parse(&c, ALL_CAPS, "--duration", "1.5", "--json", NULL), 0);
    cr_assert_float_eq(c.duration_s, 1.5, 1e-9);
    cr_assert_eq(c.output, BM_OUT_JSON);
    cr_assert_eq(parse(&c, ALL_CAPS, "--url", "redis://h:1/2", "--sync", NULL),
                 0);
    cr_assert_str_eq(c.url, "redis://h:1/2");
    cr_assert_eq(c.sync, 1);
    cr_assert_eq(parse(&c, ALL_CAPS, "--tls", "--cacert", "ca.pem", "--cert",
                       "c.pem", "--key", "k.pem", "--sni", "name", NULL),
                 0, "%s", err);
    cr_assert_eq(c.tls, 1);
    cr_assert_str_eq(c.cacert, "ca.pem");
    cr_assert_str_eq(c.sni, "name");
}

Test(args, help)
{
    bm_config c;
    cr_assert_eq(parse(&c, ALL_CAPS, "--help", NULL), 1);
    cr_assert(strstr(err, "Usage: aredis-benchmark"), "%s", err);
    cr_assert(strstr(err, "--sync"), "the usage names --sync");
    cr_assert_eq(parse(&c, 0, "--help", NULL), 1);
    cr_assert(!strstr(err, "--sync"), "no --sync without the capability");
}

/* Each bad command line: status 2, and a message naming the problem. */
static void expect_bad(const char *want, unsigned caps, const char *a,
                       const char *b, const char *c2)
{
    bm_config c;
    int rc = parse(&c, caps, a, b, c2, NULL);
    cr_assert_eq(rc, 2, "'%s %s %s' was accepted", a, b ? b : "", c2 ? c2 : "");
    cr_assert(strstr(err, want), "wanted '%s' in: %s", want, err);
    cr_assert(strstr(err, "aredis-benchmark: "), "%s", err);
    cr_assert(strstr(err, "--help"), "the message points at --help");
}

Test(args, bad_lines)
{
    expect_bad("-c 0 is out of range", ALL_CAPS, "-c", "0", NULL);
    expect_bad("-p 70000 is out of range", ALL_CAPS, "-p", "70000", NULL);
    expect_bad("-n wants a whole number, not 'abc'", ALL_CAPS, "-n", "abc",
               NULL);
    expect_bad("-n wants a whole number, not '12x'", ALL_CAPS, "-n", "12x",
               NULL);
    expect_bad("-P wants a whole number", ALL_CAPS, "-P", "", NULL);
    expect_bad("unknown test 'foo'", ALL_CAPS, "-t", "set,foo", NULL);
    expect_bad("-t wants at least one test", ALL_CAPS, "-t", "", NULL);
    expect_bad("unknown option '--bogus'", ALL_CAPS, "--bogus", NULL, NULL);
    expect_bad("unexpected argument 'stray'", ALL_CAPS, "stray", NULL, NULL);
    expect_bad("-p needs a value", ALL_CAPS, "-p", NULL, NULL);
    expect_bad("--csv and --json exclude each other", ALL_CAPS, "--csv",
               "--json", NULL);
    expect_bad("-P must be 1", ALL_CAPS, "--sync", "-P", "4");
    expect_bad("--sequential needs a keyspace", ALL_CAPS, "--sequential", NULL,
               NULL);
    expect_bad("--ratio wants SET:GET", ALL_CAPS, "--ratio", "1-2", NULL);
    expect_bad("not both 0", ALL_CAPS, "--ratio", "0:0", NULL);
    expect_bad("--duration wants seconds", ALL_CAPS, "--duration", "0", NULL);
    expect_bad("TLS options need --tls", ALL_CAPS, "--cacert", "x", NULL);
    expect_bad("--cert and --key go together", ALL_CAPS, "--tls", "--cert",
               "c.pem");
    expect_bad("--user needs a password", ALL_CAPS, "--user", "u", NULL);
    expect_bad("--sync takes no value", ALL_CAPS, "--sync=1", NULL, NULL);
    expect_bad("--url is not supported", 0, "--url", "redis://x", NULL);
    expect_bad("--tls is not supported", 0, "--tls", NULL, NULL);
}

/* ---- workloads ------------------------------------------------------- */

static char value[] = "vvvv";

static bm_config work_cfg(void)
{
    bm_config c;
    cr_assert_eq(parse(&c, ALL_CAPS, "-d", "4", "--prefix", "p:", NULL), 0);
    return c;
}

static int argv_is(const bm_work *w, int i, const char *s)
{
    return w->argvlen[i] == strlen(s) &&
           memcmp(w->argv[i], s, w->argvlen[i]) == 0;
}

Test(work, commands)
{
    bm_config c = work_cfg();
    bm_work w;
    bm_work_init(&w, &c, BM_SET, 0, value);
    cr_assert_eq(bm_work_next(&w), 3);
    cr_assert(argv_is(&w, 0, "SET"));
    cr_assert(argv_is(&w, 1, "p:key:000000000000"));
    cr_assert(argv_is(&w, 2, "vvvv"));
    bm_work_init(&w, &c, BM_MSET, 0, value);
    cr_assert_eq(bm_work_next(&w), 21);
    cr_assert(argv_is(&w, 0, "MSET"));
    cr_assert(argv_is(&w, 19, "p:key:000000000000"));
    cr_assert(argv_is(&w, 20, "vvvv"));
    bm_work_init(&w, &c, BM_HSET, 0, value);
    cr_assert_eq(bm_work_next(&w), 4);
    cr_assert(argv_is(&w, 1, "p:myhash"));
    cr_assert(argv_is(&w, 2, "p:element:000000000000"));
    bm_work_init(&w, &c, BM_KEYS, 0, value);
    cr_assert_eq(bm_work_next(&w), 2);
    cr_assert(argv_is(&w, 1, "*"));
}

Test(work, mixed_ratio)
{
    bm_config c = work_cfg();
    c.ratio_set = 1;
    c.ratio_get = 3;
    bm_work w;
    bm_work_init(&w, &c, BM_MIXED, 0, value);
    const char *want[] = {"SET", "GET", "GET", "GET", "SET", "GET"};
    for (int i = 0; i < 6; i++) {
        bm_work_next(&w);
        cr_assert(argv_is(&w, 0, want[i]), "command %d", i);
    }
}

Test(work, keyspace)
{
    bm_config c = work_cfg();
    c.keyspace = 3;
    c.sequential = 1;
    bm_work w;
    bm_work_init(&w, &c, BM_GET, 0, value);
    /* Sequential keys cycle through the space (from wherever the shared
     * counter is). */
    bm_work_next(&w);
    char first[96];
    snprintf(first, sizeof first, "%s", w.argv[1]);
    bm_work_next(&w);
    bm_work_next(&w);
    cr_assert(strcmp(w.argv[1], first) != 0);
    bm_work_next(&w);
    cr_assert_str_eq(w.argv[1], first);
    /* Random keys stay in the space, and vary. */
    c.sequential = 0;
    c.keyspace = 1000;
    bm_work_init(&w, &c, BM_GET, 7, value);
    int seen_other = 0;
    for (int i = 0; i < 200; i++) {
        bm_work_next(&w);
        long long k = strtoll(w.argv[1] + strlen("p:key:"), NULL, 10);
        cr_assert(k >= 0 && k < 1000, "key %lld", k);
        seen_other |= strcmp(w.argv[1], first) != 0;
    }
    cr_assert(seen_other);
}

/* ---- histogram ------------------------------------------------------- */

Test(hist, quantiles_within_the_bucket_error)
{
    static bm_hist h, a, b;
    memset(&h, 0, sizeof h);
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    for (uint64_t v = 1; v <= 100000; v++) {
        bm_hist_add(&h, v * 100); /* 100 ns .. 10 ms */
        bm_hist_add(v % 2 ? &a : &b, v * 100);
    }
    cr_assert_eq(h.count, 100000);
    cr_assert_eq(h.max_ns, 10000000);
    double qs[] = {0.5, 0.9, 0.99, 0.999};
    for (int i = 0; i < 4; i++) {
        double want = qs[i] * 1e7;
        double got = (double)bm_hist_quantile(&h, qs[i]);
        cr_assert(got > want * (1 - 1.0 / 64) && got < want * (1 + 1.0 / 64),
                  "q %g: %g, want %g", qs[i], got, want);
    }
    cr_assert_eq(bm_hist_quantile(&h, 1.0), 10000000);
    bm_hist_merge(&a, &b);
    cr_assert_eq(a.count, h.count);
    cr_assert_eq(bm_hist_quantile(&a, 0.99), bm_hist_quantile(&h, 0.99));
    /* Small values are exact. */
    static bm_hist s;
    memset(&s, 0, sizeof s);
    bm_hist_add(&s, 7);
    cr_assert_eq(bm_hist_quantile(&s, 0.5), 7);
    /* Buckets tile the line: each starts where the previous ends. */
    for (int i = 1; i < BM_HIST_BUCKETS; i++)
        cr_assert_eq(bm_hist_bucket_low(i),
                     bm_hist_bucket_low(i - 1) + bm_hist_bucket_width(i - 1));
}
