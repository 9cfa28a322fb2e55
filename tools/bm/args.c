/* The benchmark tools' command line: redis-benchmark's options where it has
 * them (-h -p -s -a -c -n -d -r -P -t -q --csv --dbnum --tls...), plus ours.
 *
 * A hand-written parser rather than getopt_long: every problem is reported
 * as a sentence naming the option and the value, into a buffer (so the
 * tests can check it), and parsing has no global state. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bm.h"

static const char *const test_names[] = {
#define BM_TEST_NAME_(id, name, desc) name,
    BM_TEST_MAP(BM_TEST_NAME_)
#undef BM_TEST_NAME_
};
static const char *const test_descs[] = {
#define BM_TEST_DESC_(id, name, desc) desc,
    BM_TEST_MAP(BM_TEST_DESC_)
#undef BM_TEST_DESC_
};

const char *bm_test_name(bm_test t)
{
    return test_names[t];
}

const char *bm_test_desc(bm_test t)
{
    return test_descs[t];
}

void bm_usage(FILE *f, const char *tool, unsigned caps)
{
    fprintf(f,
            "Usage: %s [options]\n"
            "\n"
            "Where:\n"
            "  -h HOST            server host (default 127.0.0.1)\n"
            "  -p PORT            server port (default 6379)\n"
            "  -s SOCKET          Unix socket (overrides host and port)\n",
            tool);
    if (caps & BM_CAP_URL)
        fprintf(f, "  -u, --url URL      a redis://, rediss://, unix:// URL, "
                   "or any topology\n"
                   "                     the client supports (overrides the "
                   "above)\n");
    fprintf(f, "  -a PASSWORD        password (AUTH)\n"
               "  --user USER        ACL user name (with -a)\n"
               "  --dbnum N          database number (default 0)\n");
    if (caps & BM_CAP_TLS)
        fprintf(f, "  --tls              use TLS\n"
                   "  --cacert FILE      trusted CA certificates (PEM)\n"
                   "  --cacertdir DIR    directory of trusted CA "
                   "certificates\n"
                   "  --cert FILE        client certificate (PEM)\n"
                   "  --key FILE         client private key (PEM)\n"
                   "  --sni NAME         server name for SNI and "
                   "verification\n"
                   "  --insecure         skip certificate verification\n");
    fprintf(f,
            "\n"
            "What:\n"
            "  -c N               connections (default 50)\n"
            "  -P N, -w N         commands in flight per connection "
            "(default 1)\n"
            "  -n N               requests per test (default 100000)\n"
            "  --duration SECS    run each test this long instead of -n\n"
            "  -d BYTES           value size (default 3)\n"
            "  -r N               spread keys over N names (default: one key)\n"
            "  --sequential       with -r, keys in order instead of at "
            "random\n"
            "  --seed N           random key seed (default 1)\n"
            "  --prefix STR       prepend STR to every key name\n"
            "  --ratio S:G        SET:GET proportion of the mixed test "
            "(default 1:10)\n"
            "  -t LIST            tests, comma separated (default: all but "
            "keys):\n");
    for (int t = 0; t < BM_NTESTS; t++)
        fprintf(f, "                       %-6s %s\n", test_names[t],
                test_descs[t]);
    if (caps & BM_CAP_SYNC)
        fprintf(f, "  --sync             the blocking API, one thread per "
                   "connection (-P 1)\n");
    fprintf(f, "\n"
               "Output:\n"
               "  -q                 no progress bar\n"
               "  --csv              CSV on standard output\n"
               "  --json             JSON on standard output\n"
               "  --help             this text\n"
               "\n"
               "A progress bar is drawn on standard error when it is a "
               "terminal.\n");
}

static void defaults(bm_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->host = "127.0.0.1";
    cfg->port = 6379;
    cfg->connections = 50;
    cfg->inflight = 1;
    cfg->requests = 100000;
    cfg->datasize = 3;
    cfg->seed = 1;
    cfg->prefix = "";
    cfg->ratio_set = 1;
    cfg->ratio_get = 10;
    cfg->tests = BM_DEFAULT_TESTS;
    cfg->output = BM_OUT_TEXT;
}

typedef struct parser {
    const char *tool;
    char *err;
    size_t errlen;
} parser;

static int bad(parser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int bad(parser *p, const char *fmt, ...)
{
    size_t n = (size_t)snprintf(p->err, p->errlen, "%s: ", p->tool);
    if (n < p->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err + n, p->errlen - n, fmt, ap);
        va_end(ap);
    }
    n = strlen(p->err);
    if (n < p->errlen)
        snprintf(p->err + n, p->errlen - n, "\nTry '%s --help'.\n", p->tool);
    return 2;
}

/* An integer in [lo, hi], the whole string. */
static int parse_ll(parser *p, const char *opt, const char *s, long long lo,
                    long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || errno != 0)
        return bad(p, "%s wants a whole number, not '%s'", opt, s);
    if (v < lo || v > hi)
        return bad(p, "%s %s is out of range (%lld to %lld)", opt, s, lo, hi);
    *out = v;
    return 0;
}

static int parse_tests(parser *p, const char *s, unsigned *mask)
{
    unsigned m = 0;
    const char *q = s;
    while (*q) {
        size_t len = strcspn(q, ",");
        int found = -1;
        for (int t = 0; t < BM_NTESTS; t++) {
            if (strlen(test_names[t]) == len &&
                strncasecmp(q, test_names[t], len) == 0)
                found = t;
        }
        if (found < 0)
            return bad(p,
                       "-t: unknown test '%.*s' (known: ping, set, get, "
                       "incr, lpush, lpop, hset, mset, mixed, keys)",
                       (int)len, q);
        m |= 1u << found;
        q += len;
        if (*q == ',')
            q++;
    }
    if (m == 0)
        return bad(p, "-t wants at least one test");
    *mask = m;
    return 0;
}

static int parse_ratio(parser *p, const char *s, bm_config *cfg)
{
    char *end;
    errno = 0;
    long a = strtol(s, &end, 10);
    if (end == s || *end != ':' || errno)
        return bad(p, "--ratio wants SET:GET, like 1:10, not '%s'", s);
    const char *g = end + 1;
    long b = strtol(g, &end, 10);
    if (end == g || *end != '\0' || errno)
        return bad(p, "--ratio wants SET:GET, like 1:10, not '%s'", s);
    if (a < 0 || b < 0 || a > 1000000 || b > 1000000 || a + b == 0)
        return bad(p, "--ratio %s: both parts from 0 to 1000000, not both 0",
                   s);
    cfg->ratio_set = (int)a;
    cfg->ratio_get = (int)b;
    return 0;
}

/* Options that take a value: the short and long spellings. */
typedef enum opt_id {
    O_HOST,
    O_PORT,
    O_SOCKET,
    O_URL,
    O_PASSWORD,
    O_USER,
    O_DBNUM,
    O_CACERT,
    O_CACERTDIR,
    O_CERT,
    O_KEY,
    O_SNI,
    O_CONNS,
    O_PIPE,
    O_REQUESTS,
    O_DURATION,
    O_DATASIZE,
    O_KEYSPACE,
    O_SEED,
    O_PREFIX,
    O_RATIO,
    O_TESTS,
    /* flags */
    O_TLS,
    O_INSECURE,
    O_SEQUENTIAL,
    O_SYNC,
    O_QUIET,
    O_CSV,
    O_JSON,
    O_HELP,
} opt_id;

typedef struct opt_def {
    const char *name;
    opt_id id;
    unsigned cap; /* 0, or the BM_CAP_* the driver must have */
} opt_def;

static const opt_def opts[] = {
    {"-h", O_HOST, 0},
    {"--host", O_HOST, 0},
    {"-p", O_PORT, 0},
    {"--port", O_PORT, 0},
    {"-s", O_SOCKET, 0},
    {"--socket", O_SOCKET, 0},
    {"-u", O_URL, BM_CAP_URL},
    {"--url", O_URL, BM_CAP_URL},
    {"-a", O_PASSWORD, 0},
    {"--pass", O_PASSWORD, 0},
    {"--user", O_USER, 0},
    {"--dbnum", O_DBNUM, 0},
    {"--cacert", O_CACERT, BM_CAP_TLS},
    {"--cacertdir", O_CACERTDIR, BM_CAP_TLS},
    {"--cert", O_CERT, BM_CAP_TLS},
    {"--key", O_KEY, BM_CAP_TLS},
    {"--sni", O_SNI, BM_CAP_TLS},
    {"-c", O_CONNS, 0},
    {"--clients", O_CONNS, 0},
    {"-P", O_PIPE, 0},
    {"-w", O_PIPE, 0},
    {"--pipeline", O_PIPE, 0},
    {"-n", O_REQUESTS, 0},
    {"--requests", O_REQUESTS, 0},
    {"--duration", O_DURATION, 0},
    {"-d", O_DATASIZE, 0},
    {"--datasize", O_DATASIZE, 0},
    {"-r", O_KEYSPACE, 0},
    {"--keyspace", O_KEYSPACE, 0},
    {"--seed", O_SEED, 0},
    {"--prefix", O_PREFIX, 0},
    {"--ratio", O_RATIO, 0},
    {"-t", O_TESTS, 0},
    {"--tests", O_TESTS, 0},
    {"--tls", O_TLS, BM_CAP_TLS},
    {"--insecure", O_INSECURE, BM_CAP_TLS},
    {"--sequential", O_SEQUENTIAL, 0},
    {"--sync", O_SYNC, BM_CAP_SYNC},
    {"-q", O_QUIET, 0},
    {"--quiet", O_QUIET, 0},
    {"--csv", O_CSV, 0},
    {"--json", O_JSON, 0},
    {"--help", O_HELP, 0},
};

static int set_value(parser *p, bm_config *cfg, opt_id id, const char *name,
                     const char *v)
{
    long long n = 0;
    int rc = 0;
    switch (id) {
    case O_HOST:
        cfg->host = v;
        break;
    case O_PORT:
        rc = parse_ll(p, name, v, 1, 65535, &n);
        cfg->port = (int)n;
        break;
    case O_SOCKET:
        cfg->socket = v;
        break;
    case O_URL:
        cfg->url = v;
        break;
    case O_PASSWORD:
        cfg->password = v;
        break;
    case O_USER:
        cfg->user = v;
        break;
    case O_DBNUM:
        rc = parse_ll(p, name, v, 0, 1000000, &n);
        cfg->db = (int)n;
        break;
    case O_CACERT:
        cfg->cacert = v;
        break;
    case O_CACERTDIR:
        cfg->cacertdir = v;
        break;
    case O_CERT:
        cfg->cert = v;
        break;
    case O_KEY:
        cfg->key = v;
        break;
    case O_SNI:
        cfg->sni = v;
        break;
    case O_CONNS:
        rc = parse_ll(p, name, v, 1, 10000, &n);
        cfg->connections = (int)n;
        break;
    case O_PIPE:
        rc = parse_ll(p, name, v, 1, 1000000, &n);
        cfg->inflight = (int)n;
        break;
    case O_REQUESTS:
        rc = parse_ll(p, name, v, 1, 1000000000000LL, &n);
        cfg->requests = n;
        break;
    case O_DURATION: {
        char *end;
        errno = 0;
        double d = strtod(v, &end);
        if (v[0] == '\0' || *end != '\0' || errno || !(d > 0) || d > 86400)
            return bad(p,
                       "%s wants seconds, more than 0 and at most 86400, "
                       "not '%s'",
                       name, v);
        cfg->duration_s = d;
        break;
    }
    case O_DATASIZE:
        rc = parse_ll(p, name, v, 0, 512LL << 20, &n);
        cfg->datasize = (size_t)n;
        break;
    case O_KEYSPACE:
        rc = parse_ll(p, name, v, 1, 1000000000000LL, &n);
        cfg->keyspace = n;
        break;
    case O_SEED:
        rc = parse_ll(p, name, v, 0, INT64_MAX, &n);
        cfg->seed = (unsigned long long)n;
        break;
    case O_PREFIX:
        if (strlen(v) > 40)
            return bad(p, "%s is longer than 40 bytes", name);
        cfg->prefix = v;
        break;
    case O_RATIO:
        rc = parse_ratio(p, v, cfg);
        break;
    case O_TESTS:
        rc = parse_tests(p, v, &cfg->tests);
        break;
    default:
        break;
    }
    return rc;
}

static void set_flag(bm_config *cfg, opt_id id)
{
    switch (id) {
    case O_TLS:
        cfg->tls = 1;
        break;
    case O_INSECURE:
        cfg->insecure = 1;
        break;
    case O_SEQUENTIAL:
        cfg->sequential = 1;
        break;
    case O_SYNC:
        cfg->sync = 1;
        break;
    case O_QUIET:
        cfg->quiet = 1;
        break;
    case O_CSV:
        cfg->output = BM_OUT_CSV;
        break;
    case O_JSON:
        cfg->output = BM_OUT_JSON;
        break;
    default:
        break;
    }
}

/* Checks across options, once all are known. */
static int check(parser *p, bm_config *cfg, int csv, int json, int sequential)
{
    if (csv && json)
        return bad(p, "--csv and --json exclude each other");
    if (sequential && cfg->keyspace == 0)
        return bad(p, "--sequential needs a keyspace (-r N)");
    if (cfg->sync && cfg->inflight > 1)
        return bad(p, "--sync sends one command at a time per connection: "
                      "-P must be 1");
    if (cfg->user && !cfg->password)
        return bad(p, "--user needs a password (-a)");
    if (!cfg->tls && (cfg->cacert || cfg->cacertdir || cfg->cert || cfg->key ||
                      cfg->sni || cfg->insecure))
        return bad(p, "TLS options need --tls");
    if ((cfg->cert == NULL) != (cfg->key == NULL))
        return bad(p, "--cert and --key go together");
    return 0;
}

int bm_parse_args(bm_config *cfg, int argc, char **argv, const char *tool,
                  unsigned caps, char *err, size_t errlen)
{
    parser p = {tool, err, errlen};
    int csv = 0, json = 0, sequential = 0;
    defaults(cfg);
    if (errlen)
        err[0] = '\0';
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *inline_v = NULL;
        char name[32];
        /* --name=value */
        const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        if (nlen >= sizeof name)
            return bad(&p, "unknown option '%s'", a);
        memcpy(name, a, nlen);
        name[nlen] = '\0';
        if (eq)
            inline_v = eq + 1;
        const opt_def *d = NULL;
        for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++) {
            if (strcmp(opts[k].name, name) == 0)
                d = &opts[k];
        }
        if (d == NULL) {
            if (a[0] != '-')
                return bad(&p,
                           "unexpected argument '%s' (options start "
                           "with '-')",
                           a);
            return bad(&p, "unknown option '%s'", a);
        }
        if (d->cap && !(caps & d->cap))
            return bad(&p, "%s is not supported by this program", name);
        if (d->id == O_HELP) {
            if (errlen) {
                FILE *f = fmemopen(err, errlen, "w");
                if (f) {
                    bm_usage(f, tool, caps);
                    fclose(f);
                }
            }
            return 1;
        }
        if (d->id >= O_TLS) {
            if (inline_v)
                return bad(&p, "%s takes no value", name);
            set_flag(cfg, d->id);
            csv |= d->id == O_CSV;
            json |= d->id == O_JSON;
            sequential |= d->id == O_SEQUENTIAL;
            continue;
        }
        const char *v = inline_v;
        if (v == NULL) {
            if (i + 1 >= argc)
                return bad(&p, "%s needs a value", name);
            v = argv[++i];
        }
        int rc = set_value(&p, cfg, d->id, name, v);
        if (rc)
            return rc;
    }
    int rc = check(&p, cfg, csv, json, sequential);
    if (rc)
        return rc;
    cfg->progress = !cfg->quiet && isatty(STDERR_FILENO);
    return 0;
}
