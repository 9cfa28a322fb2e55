/* The benchmark tools' common part: options, workloads, latency histogram
 * and reports, shared by aredis-benchmark and the hiredis program that
 * bench/compare.sh runs beside it, so both do exactly the same work and
 * print the same numbers.
 *
 * Nothing here knows a client library: a driver (aredis async, aredis
 * blocking, hiredis...) asks bm_work_argv() for the next command, times it,
 * and feeds the latency to a bm_hist. */
#ifndef AREDIS_TOOLS_BM_H
#define AREDIS_TOOLS_BM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* X(id, name, description). The tests in the order they run. */
#define BM_TEST_MAP(X)                                         \
    X(PING, "ping", "PING")                                    \
    X(SET, "set", "SET key value")                             \
    X(GET, "get", "GET key")                                   \
    X(INCR, "incr", "INCR counter:key")                        \
    X(LPUSH, "lpush", "LPUSH mylist:key value")                \
    X(LPOP, "lpop", "LPOP mylist:key")                         \
    X(HSET, "hset", "HSET myhash element:key value")           \
    X(MSET, "mset", "MSET of 10 keys")                         \
    X(MIXED, "mixed", "SET and GET in the --ratio proportion") \
    X(KEYS, "keys", "sequential awaited KEYS *, connect included, W = 1")

typedef enum bm_test {
#define BM_TEST_ENUM_(id, name, desc) BM_##id,
    BM_TEST_MAP(BM_TEST_ENUM_)
#undef BM_TEST_ENUM_
        BM_NTESTS
} bm_test;

/* The tests run when -t is not given: all but KEYS, which reads the whole
 * database and is meant for an empty one. */
#define BM_DEFAULT_TESTS (((1u << BM_NTESTS) - 1) & ~(1u << BM_KEYS))

typedef enum bm_output { BM_OUT_TEXT, BM_OUT_CSV, BM_OUT_JSON } bm_output;

typedef struct bm_config {
    /* Where: a URL (any topology the client supports), or host/port, or a
     * Unix socket. */
    const char *url;
    const char *host;
    int port;
    const char *socket;
    const char *user;
    const char *password;
    int db;
    /* TLS (aredis only). */
    int tls;
    const char *cacert;
    const char *cacertdir;
    const char *cert;
    const char *key;
    const char *sni;
    int insecure;

    /* How much. */
    int connections;    /* -c */
    int inflight;       /* -P / -w: commands in flight per connection */
    long long requests; /* -n, per test */
    double duration_s;  /* --duration: > 0 replaces -n */
    size_t datasize;    /* -d */
    long long keyspace; /* -r: 0 means one key */
    int sequential;     /* --sequential keys instead of random */
    unsigned long long seed;
    const char *prefix; /* prepended to every key */
    int ratio_set;      /* --ratio SET:GET for the mixed test */
    int ratio_get;
    unsigned tests; /* bit mask of bm_test */
    int sync;       /* --sync: the blocking facade */

    /* Output. */
    bm_output output;
    int quiet;    /* -q: no progress */
    int progress; /* computed: draw a progress bar */
} bm_config;

/* Parse argv into cfg (which it first fills with the defaults). On a bad
 * argument, writes "PROG: PROBLEM" and the usage hint into err (size
 * errlen) and returns 2; for --help, writes the usage into err and returns
 * 1; returns 0 when cfg is ready. `tool` names the program in messages;
 * `caps` says which optional options the driver supports (BM_CAP_*). */
#define BM_CAP_TLS 1u
#define BM_CAP_SYNC 2u
#define BM_CAP_URL 4u
int bm_parse_args(bm_config *cfg, int argc, char **argv, const char *tool,
                  unsigned caps, char *err, size_t errlen);
/* The usage text. */
void bm_usage(FILE *f, const char *tool, unsigned caps);

const char *bm_test_name(bm_test t);
const char *bm_test_desc(bm_test t);

/* ---- workload ------------------------------------------------------------ */

/* Per-connection command generator: the argv of the next command of a test.
 * The strings point into the generator's own buffers and stay valid until
 * the next call (drivers that keep them longer must copy). */
#define BM_MAX_ARGS 21
typedef struct bm_work {
    const bm_config *cfg;
    bm_test test;
    uint64_t rng;
    unsigned long long seq; /* the next sequential key */
    unsigned long long n;   /* commands generated so far */
    const char *argv[BM_MAX_ARGS];
    size_t argvlen[BM_MAX_ARGS];
    char keys[10][96];
    char *value; /* cfg->datasize bytes of 'x' (shared, read-only) */
} bm_work;

/* value: datasize bytes, shared by every generator. id: the connection's
 * number, to seed its random keys. */
void bm_work_init(bm_work *w, const bm_config *cfg, bm_test t, int id,
                  char *value);
/* Fill w->argv/argvlen with the next command. \return its argc. */
int bm_work_next(bm_work *w);

/* ---- latency histogram ----------------------------------------------------
 * Log-linear: values below 2^BM_SUB_BITS ns are exact; above, each power of
 * two is split into 2^BM_SUB_BITS equal buckets, so every reported value is
 * within 1/2^BM_SUB_BITS (about 1.6%) of the truth. Up to 2^40 ns. */
#define BM_SUB_BITS 6
#define BM_HIST_BUCKETS ((40 - BM_SUB_BITS + 1) << BM_SUB_BITS)
typedef struct bm_hist {
    uint64_t count;
    uint64_t max_ns;
    uint64_t b[BM_HIST_BUCKETS];
} bm_hist;

void bm_hist_add(bm_hist *h, uint64_t ns);
void bm_hist_merge(bm_hist *into, const bm_hist *from);
/* The value at quantile q (0 < q <= 1), in ns: the midpoint of its bucket,
 * capped by the exact maximum. 0 when empty. */
uint64_t bm_hist_quantile(const bm_hist *h, double q);
/* Bucket i's lower bound and width, in ns. */
uint64_t bm_hist_bucket_low(int i);
uint64_t bm_hist_bucket_width(int i);

/* ---- clocks -------------------------------------------------------------- */
uint64_t bm_now_ns(void);
/* User + system CPU time of the process, in seconds. */
double bm_cpu_s(void);

/* ---- results and reports --------------------------------------------------
 */
typedef struct bm_result {
    bm_test test;
    unsigned long long requests; /* completed */
    unsigned long long errors;   /* error replies */
    double seconds;              /* wall time */
    double cpu_s;                /* client CPU time */
    bm_hist *hist;
} bm_result;

typedef struct bm_report {
    const bm_config *cfg;
    const char *tool;
    const char *client; /* "aredis 0.1.0 (async)", "hiredis 0.14.1"... */
    FILE *out;
    int ntests;
} bm_report;

void bm_report_begin(bm_report *r);
void bm_report_test(bm_report *r, const bm_result *res);
void bm_report_end(bm_report *r);

/* Progress: on a terminal only (cfg->progress), at most every 200 ms. */
void bm_progress(const bm_config *cfg, bm_test t, unsigned long long done,
                 uint64_t start_ns);
void bm_progress_clear(const bm_config *cfg);

#endif /* AREDIS_TOOLS_BM_H */
