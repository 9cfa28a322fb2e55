/* Options and URLs into a resolved configuration (transport layer).
 *
 * Parses redis://, rediss://, unix://, redis+sentinel:// (rediss+...)
 * and redis+cluster:// (rediss+...: a list of seeds) URLs, applies the
 * explicit option
 * members on top and fills in the defaults, producing an aredis__config
 * whose strings are all owned. Pure string work: no I/O, no name lookups
 * (a host stays a string until resolve.c sees it), no global state.
 *
 * The URL is untrusted input (it may come from an environment variable or
 * a config file): every length is bounded, every number range-checked, and
 * error messages quote at most a short, sanitised piece of it, never the
 * whole URL, which may carry a password. */
#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "aredis/error.h"
#include "transport/transport.h"
#include "util/alloc.h"
#include "util/msg.h"

#define CFG_DEFAULT_HOST "127.0.0.1"
#define CFG_DEFAULT_PORT 6379
#define CFG_DEFAULT_CONNECT_TIMEOUT_MS 5000
#define CFG_DEFAULT_KEEPALIVE_INTERVAL_S 10
#define CFG_DEFAULT_KEEPALIVE_COUNT 3
/* Durations above ~24.8 days are surely mistakes (a unit typed twice). */
#define CFG_MAX_TIMEOUT_MS INT32_MAX
/* Linux refuses TCP_KEEPIDLE/KEEPINTVL above 32767 s and KEEPCNT above
 * 127, so such values are rejected here instead of at connect time. */
#define CFG_MAX_KEEPALIVE_S 32767
#define CFG_MAX_KEEPALIVE_COUNT 127
/* A DNS name is at most 253 characters (RFC 1035 section 2.3.4). */
#define CFG_MAX_HOST 253
/* How much of a bad piece of input a message quotes. */
#define CFG_QUOTE_MAX 40
/* Sentinels: the default port, how many a list may name, and how long one
 * may take to answer during discovery. */
#define CFG_SENTINEL_PORT 26379
#define CFG_MAX_SENTINELS 64
#define CFG_DEFAULT_SENTINEL_TIMEOUT_MS 250
#define CFG_DEFAULT_FAILOVER_WAIT_MS 10000
#define CFG_DEFAULT_CLUSTER_REDIRECTS 5
#define CFG_DEFAULT_CLUSTER_REFRESH_MS 5000
#define CFG_MAX_CLUSTER_REDIRECTS 100

/* A piece of the URL, not NUL-terminated: nothing is copied until a field
 * is stored. */
typedef struct span {
    const char *p;
    size_t n;
} span;

typedef struct parser {
    aredis__config *cfg;
    char *err;
    size_t errlen;
} parser;

/* ------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------ */

/* Write the message and give code. A macro, so that the code stays a
 * visible constant to static analysis, which does not follow variadic
 * calls. */
#define fail(ps, code, ...) \
    (aredis__msgf((ps)->err, (ps)->errlen, __VA_ARGS__), (code))

static int fail_nomem(parser *ps)
{
    return fail(ps, AREDIS_ENOMEM, "out of memory");
}

/* Copy s into out for quoting in a message: printable ASCII only (a URL
 * may hold anything, and messages end up in logs), at most CFG_QUOTE_MAX
 * bytes, "..." when cut. */
static const char *quote(span s, char out[CFG_QUOTE_MAX + 4])
{
    size_t n = s.n > CFG_QUOTE_MAX ? CFG_QUOTE_MAX : s.n;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.p[i];
        out[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (n < s.n) {
        memcpy(out + n, "...", 4);
    } else {
        out[n] = '\0';
    }
    return out;
}

static span span_of(const char *s)
{
    return (span){s, strlen(s)};
}

static int span_eq(span s, const char *lit)
{
    size_t n = strlen(lit);
    return s.n == n && memcmp(s.p, lit, n) == 0;
}

/* Case-insensitive, for schemes (RFC 3986 section 3.1) and yes/no. */
static int span_eq_ci(span s, const char *lit)
{
    size_t n = strlen(lit);
    if (s.n != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s.p[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != lit[i])
            return 0;
    }
    return 1;
}

static const char *span_find(span s, char c)
{
    return s.n ? memchr(s.p, c, s.n) : NULL;
}

/* ------------------------------------------------------------------------
 * Values
 * ------------------------------------------------------------------------ */

/* Replace an owned string. */
static void set_str(char **dst, char *val)
{
    aredis__free(*dst);
    *dst = val;
}

/* Copy a string given by a member, replacing the URL's value. */
static int dup_member(parser *ps, char **dst, const char *val)
{
    char *p = aredis__strndup(val, strlen(val));
    if (p == NULL)
        return fail_nomem(ps);
    set_str(dst, p);
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode s into a new string. `what` names the field in messages.
 * A decoded NUL byte is refused: every consumer of these strings (the
 * server's AUTH, the file system, OpenSSL) would silently cut it short. */
static int decode(parser *ps, span s, const char *what, char **out)
{
    char q[CFG_QUOTE_MAX + 4];
    char *d = aredis__malloc(s.n + 1);
    if (d == NULL)
        return fail_nomem(ps);
    size_t j = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] != '%') {
            d[j++] = s.p[i];
            continue;
        }
        int hi = -1, lo = -1;
        if (s.n - i >= 3) {
            hi = hexval(s.p[i + 1]);
            lo = hexval(s.p[i + 2]);
        }
        if (hi < 0 || lo < 0) {
            span bad = {s.p + i, s.n - i < 3 ? s.n - i : 3};
            aredis__free(d);
            /* Not even three characters of a password (the servers' or
             * the sentinels') go into a message. */
            if (strstr(what, "password") != NULL)
                return fail(ps, AREDIS_EURL,
                            "bad URL: bad percent-escape in the password "
                            "(write %%XX with two hex digits)");
            return fail(ps, AREDIS_EURL,
                        "bad URL: bad percent-escape '%s' in the %s",
                        quote(bad, q), what);
        }
        if (hi == 0 && lo == 0) {
            aredis__free(d);
            return fail(ps, AREDIS_EURL,
                        "bad URL: '%%00' (a NUL byte) in the %s", what);
        }
        d[j++] = (char)(hi * 16 + lo);
        i += 2;
    }
    d[j] = '\0';
    *out = d;
    return 0;
}

/* Parse an unsigned decimal number of at most max. 0 on success, -1 when s
 * is not a number (empty, a sign, anything but digits), -2 above max. */
static int parse_uint(span s, long long max, long long *out)
{
    if (s.n == 0)
        return -1;
    long long v = 0;
    int over = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return -1;
        int d = s.p[i] - '0';
        if (over || v > (max - d) / 10)
            over = 1; /* keep scanning: "99999x" is not a number at all */
        else
            v = v * 10 + d;
    }
    if (over)
        return -2;
    *out = v;
    return 0;
}

/* A duration: digits with an optional unit, "250", "250ms" or "2s". */
static int parse_duration(parser *ps, const char *key, const char *val,
                          int64_t *out)
{
    char q[CFG_QUOTE_MAX + 4];
    span s = span_of(val);
    long long mult = 1;
    if (s.n > 2 && span_eq((span){s.p + s.n - 2, 2}, "ms")) {
        s.n -= 2;
    } else if (s.n > 1 && s.p[s.n - 1] == 's') {
        s.n -= 1;
        mult = 1000;
    }
    long long v = 0;
    int rc = parse_uint(s, CFG_MAX_TIMEOUT_MS / mult, &v);
    if (rc == -1)
        return fail(ps, AREDIS_EURL,
                    "bad URL: %s '%s' is not a duration (use e.g. 250ms, 2s "
                    "or a number of milliseconds)",
                    key, quote(span_of(val), q));
    if (rc == -2)
        return fail(ps, AREDIS_EURL,
                    "bad URL: %s '%s' out of range (at most %d ms)", key,
                    quote(span_of(val), q), CFG_MAX_TIMEOUT_MS);
    *out = v * mult;
    return 0;
}

static int parse_db(parser *ps, const char *val)
{
    char q[CFG_QUOTE_MAX + 4];
    long long v = 0;
    int rc = parse_uint(span_of(val), INT_MAX, &v);
    if (rc == -1)
        return fail(ps, AREDIS_EURL, "bad URL: database '%s' is not a number",
                    quote(span_of(val), q));
    if (rc == -2)
        return fail(ps, AREDIS_EURL, "bad URL: database '%s' out of range",
                    quote(span_of(val), q));
    ps->cfg->db = (int)v;
    return 0;
}

/* ------------------------------------------------------------------------
 * Query options
 * ------------------------------------------------------------------------ */

/* Each handler gets the decoded value, owned: it stores it or frees it. */
typedef int (*opt_fn)(parser *ps, const char *key, char *val);

static int opt_db(parser *ps, const char *key, char *val)
{
    (void)key;
    int rc = parse_db(ps, val);
    aredis__free(val);
    return rc;
}

static int opt_protocol(parser *ps, const char *key, char *val)
{
    char q[CFG_QUOTE_MAX + 4];
    int rc = 0;
    if (strcmp(val, "2") == 0 || strcmp(val, "3") == 0)
        ps->cfg->protocol = (uint8_t)(val[0] - '0');
    else
        rc = fail(ps, AREDIS_EURL, "bad URL: %s '%s' must be 2 or 3", key,
                  quote(span_of(val), q));
    aredis__free(val);
    return rc;
}

static int opt_connect_timeout(parser *ps, const char *key, char *val)
{
    int64_t ms = 0;
    int rc = parse_duration(ps, key, val, &ms);
    aredis__free(val);
    if (rc == 0) /* In a URL, 0 means "no deadline", as for commands. */
        ps->cfg->connect_timeout_ms = ms == 0 ? -1 : ms;
    return rc;
}

static int opt_command_timeout(parser *ps, const char *key, char *val)
{
    int64_t ms = 0;
    int rc = parse_duration(ps, key, val, &ms);
    aredis__free(val);
    if (rc == 0)
        ps->cfg->command_timeout_ms = ms;
    return rc;
}

static int opt_keepalive(parser *ps, const char *key, char *val)
{
    char q[CFG_QUOTE_MAX + 4];
    long long v = 0;
    int rc = parse_uint(span_of(val), CFG_MAX_KEEPALIVE_S, &v);
    if (rc == -1)
        rc =
            fail(ps, AREDIS_EURL, "bad URL: %s '%s' is not a number of seconds",
                 key, quote(span_of(val), q));
    else if (rc == -2)
        rc = fail(ps, AREDIS_EURL, "bad URL: %s '%s' out of range (0-%d s)",
                  key, quote(span_of(val), q), CFG_MAX_KEEPALIVE_S);
    else
        ps->cfg->keepalive_idle_s = (int)v;
    aredis__free(val);
    return rc;
}

/* yes/true/1 or no/false/0 into *out; frees val. */
static int parse_yesno(parser *ps, const char *key, char *val, int *out)
{
    char q[CFG_QUOTE_MAX + 4];
    span s = span_of(val);
    int rc = 0;
    if (span_eq_ci(s, "yes") || span_eq_ci(s, "true") || span_eq(s, "1"))
        *out = 1;
    else if (span_eq_ci(s, "no") || span_eq_ci(s, "false") || span_eq(s, "0"))
        *out = 0;
    else
        rc = fail(ps, AREDIS_EURL, "bad URL: %s '%s' must be yes or no", key,
                  quote(s, q));
    aredis__free(val);
    return rc;
}

static int opt_tls_insecure(parser *ps, const char *key, char *val)
{
    return parse_yesno(ps, key, val, &ps->cfg->more->tls_insecure);
}

/* Options that only a sentinel URL takes. */
static int sentinel_only(parser *ps, const char *key)
{
    if (ps->cfg->more->nsentinels > 0)
        return 0;
    return fail(ps, AREDIS_EURL,
                "bad URL: option '%s' is for redis+sentinel:// URLs", key);
}

static int opt_role(parser *ps, const char *key, char *val)
{
    char q[CFG_QUOTE_MAX + 4];
    int rc = sentinel_only(ps, key);
    if (rc == 0 && strcmp(val, "master") == 0)
        ps->cfg->more->sentinel_role = AREDIS_SENTINEL_MASTER;
    else if (rc == 0 && strcmp(val, "replica") == 0)
        ps->cfg->more->sentinel_role = AREDIS_SENTINEL_REPLICA;
    else if (rc == 0)
        rc = fail(ps, AREDIS_EURL, "bad URL: %s '%s' must be master or replica",
                  key, quote(span_of(val), q));
    aredis__free(val);
    return rc;
}

static int opt_sentinel_tls(parser *ps, const char *key, char *val)
{
    int rc = sentinel_only(ps, key), on = 0;
    if (rc != 0) {
        aredis__free(val);
        return rc;
    }
    if ((rc = parse_yesno(ps, key, val, &on)) == 0)
        ps->cfg->more->sentinel_tls = on ? 1 : -1; /* 0 stays "follow tls" */
    return rc;
}

static int opt_sentinel_timeout(parser *ps, const char *key, char *val)
{
    int64_t ms = 0;
    int rc = sentinel_only(ps, key);
    if (rc == 0)
        rc = parse_duration(ps, key, val, &ms);
    aredis__free(val);
    if (rc == 0 && ms == 0)
        rc = fail(ps, AREDIS_EURL,
                  "bad URL: %s must be above 0 (a sentinel that never "
                  "answers would stop discovery)",
                  key);
    if (rc == 0)
        ps->cfg->more->sentinel_timeout_ms = ms;
    return rc;
}

/* Options that only a cluster URL takes. */
static int cluster_only(parser *ps, const char *key)
{
    if (ps->cfg->cluster)
        return 0;
    return fail(ps, AREDIS_EURL,
                "bad URL: option '%s' is for redis+cluster:// URLs", key);
}

/* A read_from name, or -1. */
static int read_from_of(const char *v)
{
    if (strcmp(v, "primary") == 0 || strcmp(v, "master") == 0)
        return AREDIS_READ_PRIMARY;
    if (strcmp(v, "replica") == 0 || strcmp(v, "prefer-replica") == 0)
        return AREDIS_READ_REPLICA;
    if (strcmp(v, "any") == 0)
        return AREDIS_READ_ANY;
    if (strcmp(v, "nearest") == 0)
        return AREDIS_READ_NEAREST;
    return -1;
}

static int opt_read_from(parser *ps, const char *key, char *val)
{
    char q[CFG_QUOTE_MAX + 4];
    int rc = cluster_only(ps, key), v = read_from_of(val);
    if (rc == 0 && v < 0)
        rc = fail(ps, AREDIS_EURL,
                  "bad URL: %s '%s' must be primary, replica, "
                  "prefer-replica, any or nearest",
                  key, quote(span_of(val), q));
    if (rc == 0)
        ps->cfg->more->cluster_read_from = v;
    aredis__free(val);
    return rc;
}

static int opt_max_redirects(parser *ps, const char *key, char *val)
{
    char q[CFG_QUOTE_MAX + 4];
    long long v = 0;
    int rc = cluster_only(ps, key);
    if (rc == 0 &&
        (parse_uint(span_of(val), CFG_MAX_CLUSTER_REDIRECTS, &v) != 0 ||
         v == 0))
        rc = fail(ps, AREDIS_EURL, "bad URL: %s '%s' must be 1 to %d", key,
                  quote(span_of(val), q), CFG_MAX_CLUSTER_REDIRECTS);
    if (rc == 0)
        ps->cfg->more->cluster_max_redirects = (int)v;
    aredis__free(val);
    return rc;
}

static int opt_refresh_period(parser *ps, const char *key, char *val)
{
    int64_t ms = 0;
    int rc = cluster_only(ps, key);
    if (rc == 0)
        rc = parse_duration(ps, key, val, &ms);
    aredis__free(val);
    if (rc == 0) /* 0 in a URL: no periodic refresh */
        ps->cfg->more->cluster_refresh_ms = ms == 0 ? -1 : ms;
    return rc;
}

static int opt_lazy(parser *ps, const char *key, char *val)
{
    int rc = cluster_only(ps, key);
    if (rc != 0) {
        aredis__free(val);
        return rc;
    }
    return parse_yesno(ps, key, val, &ps->cfg->more->cluster_lazy);
}

static int opt_cross_slot(parser *ps, const char *key, char *val)
{
    char q[CFG_QUOTE_MAX + 4];
    int rc = cluster_only(ps, key);
    if (rc == 0 && strcmp(val, "split") == 0)
        ps->cfg->more->cluster_cross_slot = AREDIS_CROSS_SLOT_SPLIT;
    else if (rc == 0 && strcmp(val, "refuse") == 0)
        ps->cfg->more->cluster_cross_slot = AREDIS_CROSS_SLOT_REFUSE;
    else if (rc == 0)
        rc = fail(ps, AREDIS_EURL, "bad URL: %s '%s' must be split or refuse",
                  key, quote(span_of(val), q));
    aredis__free(val);
    return rc;
}

static int opt_failover_wait(parser *ps, const char *key, char *val)
{
    int64_t ms = 0;
    int rc = sentinel_only(ps, key);
    if (rc == 0)
        rc = parse_duration(ps, key, val, &ms);
    aredis__free(val);
    if (rc == 0) /* 0 in a URL means none; the member's 0 is the default */
        ps->cfg->more->sentinel_failover_wait_ms = ms > 0 ? ms : AREDIS_NO_WAIT;
    return rc;
}

static int opt_replica_fallback(parser *ps, const char *key, char *val)
{
    int rc = sentinel_only(ps, key);
    if (rc != 0) {
        aredis__free(val);
        return rc;
    }
    return parse_yesno(ps, key, val, &ps->cfg->more->sentinel_replica_fallback);
}

/* String options: where each one is stored. */
static char **str_slot(aredis__config *cfg, const char *key)
{
    if (strcmp(key, "sentinel_username") == 0)
        return &cfg->more->sentinel_username;
    if (strcmp(key, "sentinel_password") == 0)
        return &cfg->more->sentinel_password;
    if (strcmp(key, "client_name") == 0)
        return &cfg->client_name;
    if (strcmp(key, "tls_ca_file") == 0)
        return &cfg->more->tls_ca_file;
    if (strcmp(key, "tls_ca_dir") == 0)
        return &cfg->more->tls_ca_dir;
    if (strcmp(key, "tls_cert_file") == 0)
        return &cfg->more->tls_cert_file;
    if (strcmp(key, "tls_key_file") == 0)
        return &cfg->more->tls_key_file;
    return &cfg->more->tls_sni;
}

static int opt_string(parser *ps, const char *key, char *val)
{
    if (strncmp(key, "sentinel_", 9) == 0 && sentinel_only(ps, key) != 0) {
        aredis__free(val);
        return AREDIS_EURL;
    }
    if (val[0] == '\0') {
        aredis__free(val);
        return fail(ps, AREDIS_EURL, "bad URL: option '%s' is empty", key);
    }
    set_str(str_slot(ps->cfg, key), val);
    return 0;
}

static const struct url_option {
    const char *name;
    opt_fn fn;
} url_options[] = {
    {"db", opt_db},
    {"client_name", opt_string},
    {"protocol", opt_protocol},
    {"connect_timeout", opt_connect_timeout},
    {"command_timeout", opt_command_timeout},
    {"keepalive", opt_keepalive},
    {"tls_ca_file", opt_string},
    {"tls_ca_dir", opt_string},
    {"tls_cert_file", opt_string},
    {"tls_key_file", opt_string},
    {"tls_sni", opt_string},
    {"tls_insecure", opt_tls_insecure},
    {"role", opt_role},
    {"sentinel_username", opt_string},
    {"sentinel_password", opt_string},
    {"sentinel_tls", opt_sentinel_tls},
    {"sentinel_timeout", opt_sentinel_timeout},
    {"failover_wait", opt_failover_wait},
    {"replica_fallback", opt_replica_fallback},
    {"read_from", opt_read_from},
    {"max_redirects", opt_max_redirects},
    {"refresh_period", opt_refresh_period},
    {"lazy", opt_lazy},
    {"cross_slot", opt_cross_slot},
};

static int parse_option(parser *ps, span item)
{
    char q[CFG_QUOTE_MAX + 4];
    const char *eq = span_find(item, '=');
    span key = {item.p, eq ? (size_t)(eq - item.p) : item.n};
    const struct url_option *opt = NULL;
    for (size_t i = 0; i < sizeof url_options / sizeof url_options[0]; i++) {
        if (span_eq(key, url_options[i].name)) {
            opt = &url_options[i];
            break;
        }
    }
    if (opt == NULL)
        return fail(ps, AREDIS_EURL, "bad URL: unknown option '%s'",
                    quote(key, q));
    if (eq == NULL)
        return fail(ps, AREDIS_EURL,
                    "bad URL: option '%s' has no value (write %s=...)",
                    opt->name, opt->name);
    span raw = {eq + 1, item.n - key.n - 1};
    char *val = NULL;
    int rc = decode(ps, raw, opt->name, &val);
    if (rc != 0)
        return rc;
    return opt->fn(ps, opt->name, val);
}

/* name=value pairs separated by '&'; empty pairs ("a=1&&b=2") are
 * harmless and skipped. A later value replaces an earlier one. */
static int parse_query(parser *ps, span q)
{
    while (q.n > 0) {
        const char *amp = span_find(q, '&');
        size_t n = amp ? (size_t)(amp - q.p) : q.n;
        if (n > 0) {
            int rc = parse_option(ps, (span){q.p, n});
            if (rc != 0)
                return rc;
        }
        q.p += n;
        q.n -= n;
        if (q.n > 0) {
            q.p++;
            q.n--;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * URL parts
 * ------------------------------------------------------------------------ */

/* user[:password]; an empty user or password counts as none. */
static int parse_userinfo(parser *ps, span ui)
{
    aredis__config *cfg = ps->cfg;
    const char *colon = span_find(ui, ':');
    span user = {ui.p, colon ? (size_t)(colon - ui.p) : ui.n};
    int rc;
    if (user.n > 0) {
        char *u = NULL;
        if ((rc = decode(ps, user, "user name", &u)) != 0)
            return rc;
        set_str(&cfg->username, u);
    }
    if (colon != NULL && ui.n - user.n - 1 > 0) {
        span pass = {colon + 1, ui.n - user.n - 1};
        char *p = NULL;
        if ((rc = decode(ps, pass, "password", &p)) != 0)
            return rc;
        set_str(&cfg->password, p);
    }
    return 0;
}

static int parse_port(parser *ps, span s)
{
    char q[CFG_QUOTE_MAX + 4];
    long long v = 0;
    if (s.n == 0)
        return fail(ps, AREDIS_EURL, "bad URL: empty port after ':'");
    int rc = parse_uint(s, 65535, &v);
    if (rc == -1)
        return fail(ps, AREDIS_EURL, "bad URL: port '%s' is not a number",
                    quote(s, q));
    if (rc == -2 || v == 0)
        return fail(ps, AREDIS_EURL, "bad URL: port '%s' out of range",
                    quote(s, q));
    ps->cfg->port = (int)v;
    return 0;
}

static int is_host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

/* "[v6]" with an optional ":port" after it. */
static int parse_bracketed(parser *ps, span hp)
{
    char q[CFG_QUOTE_MAX + 4];
    char lit[INET6_ADDRSTRLEN + 1];
    struct in6_addr a6;
    const char *close = span_find(hp, ']');
    if (close == NULL)
        return fail(ps, AREDIS_EURL, "bad URL: unterminated '[' in host");
    span inner = {hp.p + 1, (size_t)(close - hp.p - 1)};
    if (inner.n == 0 || inner.n >= sizeof lit)
        return fail(ps, AREDIS_EURL, "bad URL: '[%s]' is not an IPv6 address",
                    quote(inner, q));
    memcpy(lit, inner.p, inner.n);
    lit[inner.n] = '\0';
    if (inet_pton(AF_INET6, lit, &a6) != 1)
        return fail(ps, AREDIS_EURL, "bad URL: '[%s]' is not an IPv6 address",
                    quote(inner, q));
    span after = {close + 1, hp.n - inner.n - 2};
    if (after.n > 0 && after.p[0] != ':') {
        char c[2] = {after.p[0], '\0'};
        return fail(ps, AREDIS_EURL,
                    "bad URL: unexpected '%s' after ']' in host",
                    quote(span_of(c), q));
    }
    if (after.n > 0) {
        int rc = parse_port(ps, (span){after.p + 1, after.n - 1});
        if (rc != 0)
            return rc;
    }
    char *h = aredis__strndup(lit, inner.n);
    if (h == NULL)
        return fail_nomem(ps);
    set_str(&ps->cfg->host, h);
    return 0;
}

/* host[:port] or [v6][:port]; an empty host keeps the default. */
static int parse_hostport(parser *ps, span hp)
{
    char q[CFG_QUOTE_MAX + 4];
    if (hp.n > 0 && hp.p[0] == '[')
        return parse_bracketed(ps, hp);
    const char *colon = span_find(hp, ':');
    span host = {hp.p, colon ? (size_t)(colon - hp.p) : hp.n};
    if (colon != NULL &&
        span_find((span){colon + 1, hp.n - host.n - 1}, ':') != NULL)
        return fail(ps, AREDIS_EURL,
                    "bad URL: IPv6 address '%s' must be in brackets, as in "
                    "redis://[::1]:6379",
                    quote(hp, q));
    for (size_t i = 0; i < host.n; i++) {
        if (!is_host_char(host.p[i])) {
            char c[2] = {host.p[i], '\0'};
            char q2[CFG_QUOTE_MAX + 4];
            return fail(ps, AREDIS_EURL,
                        "bad URL: invalid character '%s' in host '%s'",
                        quote(span_of(c), q2), quote(host, q));
        }
    }
    if (host.n > CFG_MAX_HOST)
        return fail(ps, AREDIS_EURL,
                    "bad URL: host name is too long (%zu "
                    "bytes, at most %d)",
                    host.n, CFG_MAX_HOST);
    if (colon != NULL) {
        int rc = parse_port(ps, (span){colon + 1, hp.n - host.n - 1});
        if (rc != 0)
            return rc;
    }
    if (host.n > 0) {
        char *h = aredis__strndup(host.p, host.n);
        if (h == NULL)
            return fail_nomem(ps);
        set_str(&ps->cfg->host, h);
    }
    return 0;
}

static int check_unix_path(parser *ps, int code, const char *path)
{
    size_t n = path != NULL ? strlen(path) : 0;
    const char *pre = code == AREDIS_EURL ? "bad URL" : "bad option";
    if (n == 0)
        return fail(ps, code, "%s: empty unix socket path", pre);
    if (n >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return fail(ps, code,
                    "%s: unix socket path is too long (%zu bytes, at most "
                    "%zu)",
                    pre, n, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
    return 0;
}

/* An '@' where no user information can be (in the database, in an option
 * name) means a '/' or '?' inside a password cut the URL short. The pieces
 * would be part of the password, so the message quotes none of them. */
static int misplaced_at(parser *ps, span s)
{
    const char *eq = span_find(s, '=');
    span head = {s.p, eq ? (size_t)(eq - s.p) : s.n};
    if (span_find(head, '@') == NULL)
        return 0;
    return fail(ps, AREDIS_EURL,
                "bad URL: '@' after the host: a '/' or '?' in the user name "
                "or password must be written %%2F or %%3F");
}

/* Split rest into its authority and what follows it (the path and query,
 * in *tail): the authority ends at the first '/' or '?' (RFC 3986 section
 * 3.2), and user information, parsed here, at its last '@', so an
 * unescaped '@' in a password still works. *auth is what follows the
 * user information. */
static int split_authority(parser *ps, span rest, span *auth, span *tail)
{
    size_t end = 0;
    while (end < rest.n && rest.p[end] != '/' && rest.p[end] != '?')
        end++;
    *auth = (span){rest.p, end};
    *tail = (span){rest.p + end, rest.n - end};
    const char *at = NULL;
    for (size_t i = auth->n; i > 0; i--) {
        if (auth->p[i - 1] == '@') {
            at = auth->p + i - 1;
            break;
        }
    }
    if (at == NULL)
        return misplaced_at(ps, *tail);
    int rc = parse_userinfo(ps, (span){auth->p, (size_t)(at - auth->p)});
    if (rc != 0)
        return rc;
    auth->n -= (size_t)(at + 1 - auth->p);
    auth->p = at + 1;
    return 0;
}

/* redis://[user[:password]@]host[:port][/db][?query]. */
static int parse_tcp_url(parser *ps, span rest)
{
    span auth, tail;
    int rc = split_authority(ps, rest, &auth, &tail);
    if (rc != 0)
        return rc;
    if ((rc = parse_hostport(ps, auth)) != 0)
        return rc;

    const char *qm = span_find(tail, '?');
    span path = {tail.p, qm ? (size_t)(qm - tail.p) : tail.n};
    if (path.n > 1) { /* "/2"; a lone "/" is no database */
        char *db = NULL;
        if ((rc = decode(ps, (span){path.p + 1, path.n - 1}, "database",
                         &db)) != 0)
            return rc;
        rc = parse_db(ps, db);
        aredis__free(db);
        if (rc != 0)
            return rc;
    }
    if (qm != NULL)
        rc = parse_query(ps, (span){qm + 1, tail.n - path.n - 1});
    return rc;
}

/* What a list of addresses ("h1[:p1],h2[:p2],...", [v6] in brackets) is
 * for: its words in messages, an example, the default port, the most. */
typedef struct endpoint_list {
    const char *one, *many, *example;
    int port, max;
} endpoint_list;

static const endpoint_list seed_list = {
    "cluster seed", "cluster seeds", "redis+cluster://host1:port1,host2:port2",
    CFG_DEFAULT_PORT, AREDIS__MAX_SEEDS};
static const endpoint_list sentinel_list = {
    "sentinel address", "sentinel addresses",
    "redis+sentinel://host:port,host:port/service", CFG_SENTINEL_PORT,
    CFG_MAX_SENTINELS};

/* Parse list into *eps / *neps, replacing (and freeing) an earlier list.
 * Every item needs a host; cfg->host and cfg->port are left as they
 * were. */
static int parse_endpoints(parser *ps, span list, const endpoint_list *k,
                           aredis__endpoint **eps, size_t *neps)
{
    aredis__config *cfg = ps->cfg;
    if (list.n == 0)
        return fail(ps, AREDIS_EURL, "bad URL: no %s (write %s)", k->many,
                    k->example);
    size_t n = 1;
    for (size_t i = 0; i < list.n; i++)
        n += list.p[i] == ',';
    if (n > (size_t)k->max)
        return fail(ps, AREDIS_EURL, "bad URL: %zu %s (at most %d)", n, k->many,
                    k->max);
    aredis__endpoint *e = aredis__calloc(n, sizeof *e);
    if (e == NULL)
        return fail_nomem(ps);
    for (size_t i = 0; i < *neps; i++) /* an earlier list */
        aredis__free((*eps)[i].host);
    aredis__free(*eps);
    *eps = e;
    *neps = 0;

    /* parse_hostport() fills cfg->host and cfg->port: start each item
     * from no host and the default port, then move them into the list. */
    char *saved_host = cfg->host;
    int saved_port = cfg->port, rc = 0;
    while (rc == 0 && *neps < n) {
        const char *comma = span_find(list, ',');
        span item = {list.p, comma ? (size_t)(comma - list.p) : list.n};
        cfg->host = NULL;
        cfg->port = k->port;
        if (item.n == 0)
            rc =
                fail(ps, AREDIS_EURL, "bad URL: empty %s %zu of %zu (write %s)",
                     k->one, *neps + 1, n, k->example);
        else
            rc = parse_hostport(ps, item);
        if (rc == 0 && cfg->host == NULL)
            rc = fail(ps, AREDIS_EURL, "bad URL: %s %zu of %zu has no host",
                      k->one, *neps + 1, n);
        if (rc == 0) {
            e[*neps].host = cfg->host;
            e[*neps].port = cfg->port;
            (*neps)++;
        } else {
            aredis__free(cfg->host);
        }
        list.p += item.n + (comma != NULL);
        list.n -= item.n + (comma != NULL);
    }
    cfg->host = saved_host;
    cfg->port = saved_port;
    return rc;
}

/* "seed,seed,..." into cfg->more->seeds (replacing an earlier list); the
 * first seed becomes the configuration's host and port. */
static int parse_seed_list(parser *ps, span seeds)
{
    aredis__config *cfg = ps->cfg;
    int rc = parse_endpoints(ps, seeds, &seed_list, &cfg->more->seeds,
                             &cfg->more->nseeds);
    if (rc != 0)
        return rc;
    char *h = aredis__strndup(cfg->more->seeds[0].host,
                              strlen(cfg->more->seeds[0].host));
    if (h == NULL)
        return fail_nomem(ps);
    set_str(&cfg->host, h);
    cfg->port = cfg->more->seeds[0].port;
    cfg->cluster = 1;
    return 0;
}

/* redis+cluster://[user[:password]@]seed[,seed...][/0][?query]: the
 * authority is a comma-separated seed list; the rest is as for redis://.
 * A cluster has database 0 only. */
static int parse_cluster_url(parser *ps, span rest)
{
    aredis__config *cfg = ps->cfg;
    size_t end = 0;
    while (end < rest.n && rest.p[end] != '/' && rest.p[end] != '?')
        end++;
    const char *at = NULL;
    for (size_t i = end; i > 0; i--) {
        if (rest.p[i - 1] == '@') {
            at = rest.p + i - 1;
            break;
        }
    }
    /* The user information and everything after the seeds parse as in a
     * redis:// URL with an empty host. */
    span head = {rest.p, at != NULL ? (size_t)(at + 1 - rest.p) : 0};
    span seeds = {head.p + head.n, end - head.n};
    char *pre = aredis__malloc(head.n + (rest.n - end) + 1);
    if (pre == NULL)
        return fail_nomem(ps);
    memcpy(pre, head.p, head.n);
    memcpy(pre + head.n, rest.p + end, rest.n - end);
    cfg->cluster = 1; /* before the query: its cluster options check it */
    int rc = parse_tcp_url(ps, (span){pre, head.n + rest.n - end});
    aredis__free(pre);
    if (rc != 0)
        return rc;
    if (cfg->db != 0)
        return fail(ps, AREDIS_EURL,
                    "bad URL: a cluster has only database 0 (got %d)", cfg->db);
    return parse_seed_list(ps, seeds);
}

/* unix://[user[:password]@]/absolute/path[?query]. */
static int parse_unix_url(parser *ps, span rest)
{
    char q[CFG_QUOTE_MAX + 4];
    const char *slash = span_find(rest, '/');
    const char *qm = span_find(rest, '?');
    if (slash == NULL || (qm != NULL && qm < slash))
        return fail(ps, AREDIS_EURL,
                    "bad URL: unix:// needs an absolute path, as in "
                    "unix:///path/to/redis.sock");
    span auth = {rest.p, (size_t)(slash - rest.p)};
    int rc;
    if (auth.n > 0) {
        if (auth.p[auth.n - 1] != '@' && (rc = misplaced_at(ps, rest)) != 0)
            return rc;
        if (auth.p[auth.n - 1] != '@')
            return fail(ps, AREDIS_EURL,
                        "bad URL: unix:// takes no host ('%s'); write "
                        "unix:///path/to/redis.sock",
                        quote(auth, q));
        if ((rc = parse_userinfo(ps, (span){auth.p, auth.n - 1})) != 0)
            return rc;
    }
    span path = {slash, qm ? (size_t)(qm - slash) : rest.n - auth.n};
    char *p = NULL;
    if ((rc = decode(ps, path, "path", &p)) != 0)
        return rc;
    set_str(&ps->cfg->path, p);
    if ((rc = check_unix_path(ps, AREDIS_EURL, p)) != 0)
        return rc;
    if (qm != NULL)
        rc = parse_query(ps, (span){qm + 1, rest.n - auth.n - path.n - 1});
    return rc;
}

/* "h1[:p1],h2[:p2],..." into cfg->more->sentinels (port 26379 by default). */
static int parse_sentinel_list(parser *ps, span list)
{
    return parse_endpoints(ps, list, &sentinel_list, &ps->cfg->more->sentinels,
                           &ps->cfg->more->nsentinels);
}

/* The service name: printable, no spaces (it goes into a command and
 * into messages), not empty. */
static int parse_service(parser *ps, int code, const char *name)
{
    char q[CFG_QUOTE_MAX + 4];
    const char *pre = code == AREDIS_EURL ? "bad URL" : "bad option";
    size_t n = strlen(name);
    if (n == 0)
        return fail(ps, code,
                    "%s: no sentinel service name (the name the sentinels "
                    "monitor, as in redis+sentinel://host:26379/mymaster)",
                    pre);
    if (n > CFG_MAX_HOST)
        return fail(ps, code, "%s: sentinel service name is too long", pre);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= 0x20 || c >= 0x7f)
            return fail(ps, code,
                        "%s: sentinel service name '%s' has a space or a "
                        "control character",
                        pre, quote(span_of(name), q));
    }
    char *d = aredis__strndup(name, n);
    if (d == NULL)
        return fail_nomem(ps);
    set_str(&ps->cfg->more->sentinel_service, d);
    return 0;
}

/* redis+sentinel://[user[:password]@]s1[:p1],s2[:p2]/service[?query]: the
 * user information is the data servers'; the sentinels' own credentials
 * are query options. */
static int parse_sentinel_url(parser *ps, span rest)
{
    span auth, tail;
    int rc = split_authority(ps, rest, &auth, &tail);
    if (rc != 0)
        return rc;
    if ((rc = parse_sentinel_list(ps, auth)) != 0)
        return rc;

    const char *qm = span_find(tail, '?');
    span path = {tail.p, qm ? (size_t)(qm - tail.p) : tail.n};
    span name = path.n > 0 ? (span){path.p + 1, path.n - 1} : path;
    if (span_find(name, '/') != NULL)
        return fail(ps, AREDIS_EURL,
                    "bad URL: a sentinel URL's path is the service name "
                    "alone; give the database as ?db=N");
    char *svc = NULL;
    if ((rc = decode(ps, name, "service name", &svc)) != 0 || svc == NULL)
        return rc != 0 ? rc : fail_nomem(ps);
    rc = parse_service(ps, AREDIS_EURL, svc);
    aredis__free(svc);
    if (rc == 0 && qm != NULL)
        rc = parse_query(ps, (span){qm + 1, tail.n - path.n - 1});
    return rc;
}

static int parse_url(parser *ps, const char *url)
{
    char q[CFG_QUOTE_MAX + 4];
    const char *sep = strstr(url, "://");
    if (sep == NULL)
        return fail(ps, AREDIS_EURL,
                    "bad URL: no scheme (use redis://, rediss://, unix://, "
                    "redis+sentinel:// or redis+cluster://)");
    span scheme = {url, (size_t)(sep - url)};
    span rest = span_of(sep + 3);
    if (span_eq_ci(scheme, "redis"))
        return parse_tcp_url(ps, rest);
    if (span_eq_ci(scheme, "rediss")) {
        ps->cfg->tls = 1;
        return parse_tcp_url(ps, rest);
    }
    if (span_eq_ci(scheme, "unix"))
        return parse_unix_url(ps, rest);
    if (span_eq_ci(scheme, "redis+cluster"))
        return parse_cluster_url(ps, rest);
    if (span_eq_ci(scheme, "rediss+cluster")) {
        ps->cfg->tls = 1;
        return parse_cluster_url(ps, rest);
    }
    if (span_eq_ci(scheme, "redis+sentinel"))
        return parse_sentinel_url(ps, rest);
    if (span_eq_ci(scheme, "rediss+sentinel")) {
        ps->cfg->tls = 1;
        return parse_sentinel_url(ps, rest);
    }
    return fail(ps, AREDIS_EURL,
                "bad URL: unknown scheme '%s' (use redis://, rediss://, "
                "unix://, redis+sentinel:// or redis+cluster://)",
                quote(scheme, q));
}

/* ------------------------------------------------------------------------
 * Members and defaults
 * ------------------------------------------------------------------------ */

static int apply_strings(parser *ps, const aredis_options *o)
{
    aredis__config *cfg = ps->cfg;
    const struct {
        char **dst;
        const char *val;
    } strs[] = {
        {&cfg->username, o->username},
        {&cfg->password, o->password},
        {&cfg->client_name, o->client_name},
        {&cfg->more->tls_ca_file, o->tls.ca_file},
        {&cfg->more->tls_ca_dir, o->tls.ca_dir},
        {&cfg->more->tls_cert_file, o->tls.cert_file},
        {&cfg->more->tls_key_file, o->tls.key_file},
        {&cfg->more->tls_sni, o->tls.sni},
    };
    /* An empty string counts as not given, as in a URL: an empty password
     * or SNI name would only make a confusing failure later. */
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        if (strs[i].val != NULL && strs[i].val[0] != '\0') {
            int rc = dup_member(ps, strs[i].dst, strs[i].val);
            if (rc != 0)
                return rc;
        }
    }
    if (cfg->cluster && (o->host != NULL || o->path != NULL))
        return fail(ps, AREDIS_EINVAL,
                    "bad option: %s names one server, but the URL is a "
                    "cluster's: list the seeds in the URL",
                    o->host != NULL ? "host" : "path");
    if (o->host != NULL) {
        if (o->host[0] == '\0')
            return fail(ps, AREDIS_EINVAL, "bad option: host is empty");
        if (strlen(o->host) > CFG_MAX_HOST)
            return fail(ps, AREDIS_EINVAL,
                        "bad option: host is too long (at most %d bytes)",
                        CFG_MAX_HOST);
        int rc = dup_member(ps, &cfg->host, o->host);
        if (rc != 0)
            return rc;
    }
    if (o->path != NULL) {
        int rc = check_unix_path(ps, AREDIS_EINVAL, o->path);
        if (rc == 0)
            rc = dup_member(ps, &cfg->path, o->path);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* The sentinel members, over what the URL said. */
static int apply_sentinel(parser *ps, const aredis_options *o)
{
    const aredis_sentinel_options *so = &o->sentinel;
    aredis__config *cfg = ps->cfg;
    int rc = 0;
    if (so->addrs != NULL) {
        /* Its messages speak of a URL: parsed with a buffer of its own,
         * then said again as an option's. */
        char msg[256] = "";
        parser own = {cfg, msg, sizeof msg};
        rc = parse_sentinel_list(&own, span_of(so->addrs));
        if (rc == AREDIS_ENOMEM)
            return fail_nomem(ps);
        if (rc != 0)
            return fail(ps, AREDIS_EINVAL, "bad option: sentinel.addrs: %s",
                        strncmp(msg, "bad URL: ", 9) == 0 ? msg + 9 : msg);
    }
    if (so->service != NULL &&
        (rc = parse_service(ps, AREDIS_EINVAL, so->service)) != 0)
        return rc;
    if (so->role != AREDIS_SENTINEL_MASTER &&
        so->role != AREDIS_SENTINEL_REPLICA)
        return fail(ps, AREDIS_EINVAL,
                    "bad option: sentinel.role %d (use AREDIS_SENTINEL_MASTER "
                    "or AREDIS_SENTINEL_REPLICA)",
                    so->role);
    if (so->role != AREDIS_SENTINEL_MASTER)
        cfg->more->sentinel_role = so->role;
    if (so->timeout_ms < 0)
        return fail(ps, AREDIS_EINVAL,
                    "bad option: sentinel.timeout_ms %lld is negative",
                    (long long)so->timeout_ms);
    if (so->timeout_ms > 0)
        cfg->more->sentinel_timeout_ms = so->timeout_ms;
    if (so->tls != 0)
        cfg->more->sentinel_tls = so->tls > 0 ? 1 : -1;
    if (so->failover_wait_ms < AREDIS_NO_WAIT)
        return fail(ps, AREDIS_EINVAL,
                    "bad option: sentinel.failover_wait_ms %lld (use a "
                    "duration, 0 for the default or AREDIS_NO_WAIT)",
                    (long long)so->failover_wait_ms);
    if (so->failover_wait_ms != 0)
        cfg->more->sentinel_failover_wait_ms = so->failover_wait_ms;
    if (so->replica_fallback)
        cfg->more->sentinel_replica_fallback = 1;
    if (so->username != NULL && so->username[0] != '\0' &&
        (rc = dup_member(ps, &cfg->more->sentinel_username, so->username)) != 0)
        return rc;
    if (so->password != NULL && so->password[0] != '\0' &&
        (rc = dup_member(ps, &cfg->more->sentinel_password, so->password)) != 0)
        return rc;
    return 0;
}

/* The cluster members, over what the URL said. */
static int apply_cluster(parser *ps, const aredis_options *o)
{
    const aredis_cluster_options *co = &o->cluster;
    aredis__config *cfg = ps->cfg;
    if (co->seeds != NULL) {
        if (cfg->more->nsentinels > 0 || (o->url != NULL && !cfg->cluster))
            return fail(ps, AREDIS_EINVAL,
                        "bad option: cluster.seeds with a URL that is not a "
                        "cluster's");
        char msg[256] = "";
        parser own = {cfg, msg, sizeof msg};
        int rc = parse_seed_list(&own, span_of(co->seeds));
        if (rc == AREDIS_ENOMEM)
            return fail_nomem(ps);
        if (rc != 0)
            return fail(ps, AREDIS_EINVAL, "bad option: cluster.seeds: %s",
                        strncmp(msg, "bad URL: ", 9) == 0 ? msg + 9 : msg);
    }
    int given = co->read_from != 0 || co->max_redirects != 0 ||
                co->refresh_period_ms != 0 || co->lazy != 0 ||
                co->cross_slot != 0;
    if (given && !cfg->cluster)
        return fail(ps, AREDIS_EINVAL,
                    "bad option: cluster options without a cluster "
                    "(cluster.seeds or a redis+cluster:// URL)");
    if (co->read_from < AREDIS_READ_PRIMARY ||
        co->read_from > AREDIS_READ_NEAREST)
        return fail(
            ps, AREDIS_EINVAL,
            "bad option: cluster.read_from %d (use AREDIS_READ_PRIMARY, "
            "_REPLICA, _ANY or _NEAREST)",
            co->read_from);
    if (co->max_redirects < 0 || co->max_redirects > CFG_MAX_CLUSTER_REDIRECTS)
        return fail(ps, AREDIS_EINVAL,
                    "bad option: cluster.max_redirects %d out of range (1-%d)",
                    co->max_redirects, CFG_MAX_CLUSTER_REDIRECTS);
    if (co->cross_slot != AREDIS_CROSS_SLOT_SPLIT &&
        co->cross_slot != AREDIS_CROSS_SLOT_REFUSE)
        return fail(ps, AREDIS_EINVAL,
                    "bad option: cluster.cross_slot %d (use "
                    "AREDIS_CROSS_SLOT_SPLIT or AREDIS_CROSS_SLOT_REFUSE)",
                    co->cross_slot);
    if (co->read_from)
        cfg->more->cluster_read_from = co->read_from;
    if (co->max_redirects)
        cfg->more->cluster_max_redirects = co->max_redirects;
    if (co->refresh_period_ms)
        cfg->more->cluster_refresh_ms =
            co->refresh_period_ms < 0 ? -1 : co->refresh_period_ms;
    if (co->lazy)
        cfg->more->cluster_lazy = 1;
    if (co->cross_slot)
        cfg->more->cluster_cross_slot = co->cross_slot;
    if (cfg->more->cluster_max_redirects == 0)
        cfg->more->cluster_max_redirects = CFG_DEFAULT_CLUSTER_REDIRECTS;
    if (cfg->more->cluster_refresh_ms == 0)
        cfg->more->cluster_refresh_ms = CFG_DEFAULT_CLUSTER_REFRESH_MS;
    return 0;
}

/* Keepalive members: 0 keeps the URL's value or the default. */
static int apply_keepalive(parser *ps, const aredis_options *o)
{
    aredis__config *cfg = ps->cfg;
    if (o->keepalive_idle_s < 0 || o->keepalive_idle_s > CFG_MAX_KEEPALIVE_S)
        return fail(ps, AREDIS_EINVAL,
                    "bad option: keepalive_idle_s %d out of range (0-%d)",
                    o->keepalive_idle_s, CFG_MAX_KEEPALIVE_S);
    if (o->keepalive_interval_s < 0 ||
        o->keepalive_interval_s > CFG_MAX_KEEPALIVE_S)
        return fail(ps, AREDIS_EINVAL,
                    "bad option: keepalive_interval_s %d out of range (0-%d)",
                    o->keepalive_interval_s, CFG_MAX_KEEPALIVE_S);
    if (o->keepalive_count < 0 || o->keepalive_count > CFG_MAX_KEEPALIVE_COUNT)
        return fail(ps, AREDIS_EINVAL,
                    "bad option: keepalive_count %d out of range (0-%d)",
                    o->keepalive_count, CFG_MAX_KEEPALIVE_COUNT);
    if (o->keepalive_idle_s)
        cfg->keepalive_idle_s = o->keepalive_idle_s;
    if (o->keepalive_interval_s)
        cfg->keepalive_interval_s = o->keepalive_interval_s;
    if (o->keepalive_count)
        cfg->keepalive_count = o->keepalive_count;
    return 0;
}

/* Numeric members: 0 means "not given" and keeps the URL's value. */
static int apply_numbers(parser *ps, const aredis_options *o)
{
    aredis__config *cfg = ps->cfg;
    if (o->port < 0 || o->port > 65535)
        return fail(ps, AREDIS_EINVAL,
                    "bad option: port %d out of range (1-65535)", o->port);
    if (o->db < 0)
        return fail(ps, AREDIS_EINVAL, "bad option: db %d is negative", o->db);
    if (o->protocol != 0 && o->protocol != 2 && o->protocol != 3)
        return fail(ps, AREDIS_EINVAL,
                    "bad option: protocol must be 0, 2 or 3 (got %d)",
                    o->protocol);
    if (o->command_timeout_ms < 0)
        return fail(ps, AREDIS_EINVAL,
                    "bad option: command_timeout_ms %lld is negative (0 "
                    "means no deadline)",
                    (long long)o->command_timeout_ms);
    if (cfg->cluster && o->port)
        return fail(ps, AREDIS_EINVAL,
                    "bad option: port names one server, but the client is a "
                    "cluster's: list the seeds (URL or cluster.seeds)");
    if (cfg->cluster && o->db)
        return fail(ps, AREDIS_EINVAL,
                    "bad option: a cluster has only database 0 (db %d)", o->db);
    if (o->port)
        cfg->port = o->port;
    if (o->db)
        cfg->db = o->db;
    if (o->protocol)
        cfg->protocol = (uint8_t)o->protocol;
    if (o->connect_timeout_ms)
        cfg->connect_timeout_ms =
            o->connect_timeout_ms < 0 ? -1 : o->connect_timeout_ms;
    if (o->command_timeout_ms)
        cfg->command_timeout_ms = o->command_timeout_ms;
    if (o->tcp_nagle)
        cfg->nodelay = 0;
    if (o->normalize_resp2)
        cfg->normalize_resp2 = 1;
    if (o->tls.enabled)
        cfg->tls = 1;
    if (o->tls.insecure_skip_verify)
        cfg->more->tls_insecure = 1;
    cfg->more->limits = o->limits;
    return apply_keepalive(ps, o);
}

/* What only makes sense once URL and members are merged. */
static int finish(parser *ps)
{
    aredis__config *cfg = ps->cfg;
    if (cfg->cluster && cfg->more->nsentinels > 0)
        return fail(ps, AREDIS_EINVAL,
                    "bad option: a cluster URL and sentinel addresses "
                    "exclude each other");
    if (cfg->more->nsentinels > 0) {
        if (cfg->more->sentinel_service == NULL)
            return fail(ps, AREDIS_EINVAL,
                        "bad option: sentinel addresses without a service "
                        "name (sentinel.service)");
        if (cfg->path != NULL)
            return fail(ps, AREDIS_EINVAL,
                        "bad option: a unix socket path and sentinels "
                        "exclude each other");
        cfg->more->sentinel_tls = cfg->more->sentinel_tls == 0
                                      ? cfg->tls
                                      : cfg->more->sentinel_tls > 0;
        if (cfg->more->sentinel_timeout_ms == 0)
            cfg->more->sentinel_timeout_ms = CFG_DEFAULT_SENTINEL_TIMEOUT_MS;
        if (cfg->more->sentinel_failover_wait_ms == 0)
            cfg->more->sentinel_failover_wait_ms = CFG_DEFAULT_FAILOVER_WAIT_MS;
        else if (cfg->more->sentinel_failover_wait_ms == AREDIS_NO_WAIT)
            cfg->more->sentinel_failover_wait_ms = 0;
    } else if (cfg->more->sentinel_service != NULL) {
        return fail(ps, AREDIS_EINVAL,
                    "bad option: a sentinel service name without sentinel "
                    "addresses (sentinel.addrs)");
    }
    if (cfg->path != NULL) {
        /* A unix socket takes precedence over host and port. */
        set_str(&cfg->host, NULL);
    } else if (cfg->host == NULL) {
        cfg->host =
            aredis__strndup(CFG_DEFAULT_HOST, sizeof CFG_DEFAULT_HOST - 1);
        if (cfg->host == NULL)
            return fail_nomem(ps);
    }
    if (cfg->more->tls_key_file != NULL && cfg->more->tls_cert_file == NULL)
        return fail(ps, AREDIS_EINVAL,
                    "bad option: a TLS key file needs a certificate file "
                    "(tls_cert_file)");
#ifndef AREDIS_HAVE_TLS
    if (cfg->tls || cfg->more->sentinel_tls)
        return fail(ps, AREDIS_ENOTSUP,
                    "TLS was asked for, but this aredis was built without "
                    "TLS support (AREDIS_WITH_TLS=OFF)");
#endif
    return 0;
}

/* Free what cfg->more holds, and cfg->more itself unless it is the
 * parser's own (aredis__config_from_options). */
static void free_more_in(aredis__config *cfg, const aredis__config_more *own)
{
    aredis__config_more *m = cfg->more;
    if (m == NULL)
        return;
    char *strs[] = {m->tls_ca_file,       m->tls_ca_dir,
                    m->tls_cert_file,     m->tls_key_file,
                    m->tls_sni,           m->sentinel_service,
                    m->sentinel_username, m->sentinel_password};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        aredis__free(strs[i]);
    for (size_t i = 0; i < m->nseeds; i++)
        aredis__free(m->seeds[i].host);
    aredis__free(m->seeds);
    for (size_t i = 0; i < m->nsentinels; i++)
        aredis__free(m->sentinels[i].host);
    aredis__free(m->sentinels);
    if (m != own)
        aredis__free(m);
    cfg->more = NULL;
}

static void free_more(aredis__config *cfg)
{
    free_more_in(cfg, NULL);
}

/* Whether a client reads anything of more: TLS, cluster, sentinel, or
 * reply limits of its own. */
static int more_used(const aredis__config *cfg)
{
    static const aredis_reader_limits defaults;
    return cfg->tls || cfg->cluster || cfg->more->nsentinels > 0 ||
           memcmp(&cfg->more->limits, &defaults, sizeof defaults) != 0;
}

int aredis__config_from_options(aredis__config *cfg, const aredis_options *o,
                                char *err, size_t errlen)
{
    static const aredis_options none;
    parser ps = {cfg, err, errlen};
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (o == NULL)
        o = &none;

    memset(cfg, 0, sizeof *cfg);
    /* Parsed into as any option, here; copied to the heap at the end only
     * when the client reads it (more_used): a plain client's creation
     * allocates no block it frees at once. */
    aredis__config_more more;
    memset(&more, 0, sizeof more);
    cfg->more = &more;
    cfg->port = CFG_DEFAULT_PORT;
    cfg->connect_timeout_ms = CFG_DEFAULT_CONNECT_TIMEOUT_MS;
    cfg->keepalive_interval_s = CFG_DEFAULT_KEEPALIVE_INTERVAL_S;
    cfg->keepalive_count = CFG_DEFAULT_KEEPALIVE_COUNT;
    cfg->nodelay = 1;

    int rc = 0;
    if (o->url != NULL)
        rc = parse_url(&ps, o->url);
    if (rc == 0)
        rc = apply_strings(&ps, o);
    if (rc == 0)
        rc = apply_cluster(&ps, o);
    if (rc == 0)
        rc = apply_numbers(&ps, o);
    if (rc == 0)
        rc = apply_sentinel(&ps, o);
    if (rc == 0)
        rc = finish(&ps);
    if (rc == 0 && more_used(cfg)) {
        aredis__config_more *m = aredis__malloc(sizeof *m);
        if (m != NULL) {
            *m = more;
            cfg->more = m;
        } else {
            rc = fail(&ps, AREDIS_ENOMEM, "out of memory");
        }
    }
    /* Not copied (not used, or no memory): its strings go with it. */
    if (cfg->more == &more)
        free_more_in(cfg, &more);
    if (rc != 0)
        aredis__config_cleanup(cfg);
    return rc;
}

void aredis__config_cleanup(aredis__config *cfg)
{
    char **strs[] = {&cfg->host, &cfg->path, &cfg->username, &cfg->password,
                     &cfg->client_name};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        aredis__free(*strs[i]);
    free_more(cfg);
    memset(cfg, 0, sizeof *cfg);
}
