/* Unit tests for URL and option parsing (transport/config.c): a table of
 * good URLs with every resulting field checked, a table of bad ones with
 * the error code and a piece of the message, members overriding the URL,
 * bad members, and allocation failure at every allocation in turn. No
 * server, no I/O; ASan's leak checker runs on every case. */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aredis/alloc.h"
#include "aredis/error.h"
#include "transport/transport.h"

static void teardown(void)
{
    aredis_set_allocator(NULL);
}

TestSuite(config, .fini = teardown, .timeout = 30);

/* Parse *o into *c, which must succeed. */
static void parse_ok(const aredis_options *o, aredis__config *c)
{
    char err[256];
    int rc = aredis__config_from_options(c, o, err, sizeof err);
    cr_assert_eq(rc, 0, "%s: %s (%s)", o->url ? o->url : "(members)",
                 aredis_err_name(rc), err);
}

/* What a parsed configuration should hold. Strings NULL mean "unset";
 * numbers use the defaults below unless the case says otherwise. */
typedef struct expect {
    const char *host;
    int port;
    const char *path;
    const char *user, *pass;
    int db;
    const char *client_name;
    int protocol;
    int64_t connect_ms, command_ms;
    int keepalive;
    int tls;
    const char *ca_file, *ca_dir, *cert, *key, *sni;
    int insecure;
} expect;

#define DEF_PORT 6379
#define DEF_CONNECT 5000

static void str_eq(const char *what, const char *url, const char *got,
                   const char *exp)
{
    if (exp == NULL) {
        cr_assert_null(got, "%s: %s should be unset, got '%s'", url, what, got);
        return;
    }
    cr_assert_not_null(got, "%s: %s unset, expected '%s'", url, what, exp);
    cr_assert_str_eq(got, exp, "%s: %s is '%s', expected '%s'", url, what, got,
                     exp);
}

static void check_cfg(const char *url, const aredis__config *c, const expect *e)
{
    str_eq("host", url, c->host, e->host);
    str_eq("path", url, c->path, e->path);
    str_eq("username", url, c->username, e->user);
    str_eq("password", url, c->password, e->pass);
    str_eq("client_name", url, c->client_name, e->client_name);
    str_eq("tls_ca_file", url, aredis__config_more_of(c)->tls_ca_file,
           e->ca_file);
    str_eq("tls_ca_dir", url, aredis__config_more_of(c)->tls_ca_dir, e->ca_dir);
    str_eq("tls_cert_file", url, aredis__config_more_of(c)->tls_cert_file,
           e->cert);
    str_eq("tls_key_file", url, aredis__config_more_of(c)->tls_key_file,
           e->key);
    str_eq("tls_sni", url, aredis__config_more_of(c)->tls_sni, e->sni);
    cr_assert_eq(c->port, e->port ? e->port : DEF_PORT, "%s: port %d", url,
                 c->port);
    cr_assert_eq(c->db, e->db, "%s: db %d", url, c->db);
    cr_assert_eq(c->protocol, e->protocol, "%s: protocol %d", url, c->protocol);
    cr_assert_eq(
        c->connect_timeout_ms, e->connect_ms ? e->connect_ms : DEF_CONNECT,
        "%s: connect_timeout_ms %lld", url, (long long)c->connect_timeout_ms);
    cr_assert_eq(c->command_timeout_ms, e->command_ms,
                 "%s: command_timeout_ms %lld", url,
                 (long long)c->command_timeout_ms);
    cr_assert_eq(c->keepalive_idle_s, e->keepalive, "%s: keepalive %d", url,
                 c->keepalive_idle_s);
    cr_assert_eq(c->keepalive_interval_s, 10, "%s", url);
    cr_assert_eq(c->keepalive_count, 3, "%s", url);
    cr_assert_eq(c->nodelay, 1, "%s", url);
    cr_assert_eq(c->tls, e->tls, "%s: tls %d", url, c->tls);
    cr_assert_eq(aredis__config_more_of(c)->tls_insecure, e->insecure,
                 "%s: tls_insecure %d", url,
                 aredis__config_more_of(c)->tls_insecure);
}

static const struct good_url {
    const char *url;
    expect e;
} good_urls[] = {
    {"redis://localhost", {.host = "localhost"}},
    {"redis://", {.host = "127.0.0.1"}},
    {"redis://127.0.0.1:6380", {.host = "127.0.0.1", .port = 6380}},
    {"REDIS://Example.COM:1/", {.host = "Example.COM", .port = 1}},
    {"redis://h:65535/15", {.host = "h", .port = 65535, .db = 15}},
    {"redis://:6390", {.host = "127.0.0.1", .port = 6390}},
    {"redis://[::1]:6380/2", {.host = "::1", .port = 6380, .db = 2}},
    {"redis://[::1]", {.host = "::1"}},
    {"redis://[fe80::1:2]/3", {.host = "fe80::1:2", .db = 3}},
    {"redis://[::ffff:127.0.0.1]:7000",
     {.host = "::ffff:127.0.0.1", .port = 7000}},
    {"redis://user:secret@host",
     {.host = "host", .user = "user", .pass = "secret"}},
    {"redis://:secret@host:7/1",
     {.host = "host", .port = 7, .pass = "secret", .db = 1}},
    {"redis://alice@host", {.host = "host", .user = "alice"}},
    {"redis://alice:@host", {.host = "host", .user = "alice"}},
    {"redis://a%40b:p%3Aw%2Fd%25@host",
     {.host = "host", .user = "a@b", .pass = "p:w/d%"}},
    /* The last '@' ends the user information. */
    {"redis://u:p@ss@host", {.host = "host", .user = "u", .pass = "p@ss"}},
    {"redis://u:p%20w@[::1]:1234/9",
     {.host = "::1", .port = 1234, .user = "u", .pass = "p w", .db = 9}},
    {"redis://host/%31%32", {.host = "host", .db = 12}},
    {"redis://host/0?db=4", {.host = "host", .db = 4}},
    {"redis://host?client_name=my%20app&protocol=3",
     {.host = "host", .client_name = "my app", .protocol = 3}},
    {"redis://host/?protocol=2", {.host = "host", .protocol = 2}},
    {"redis://host?connect_timeout=250ms&command_timeout=2s",
     {.host = "host", .connect_ms = 250, .command_ms = 2000}},
    {"redis://host?connect_timeout=1500&command_timeout=7",
     {.host = "host", .connect_ms = 1500, .command_ms = 7}},
    {"redis://host?connect_timeout=0", {.host = "host", .connect_ms = -1}},
    {"redis://host?command_timeout=0ms", {.host = "host"}},
    {"redis://host?keepalive=60", {.host = "host", .keepalive = 60}},
    {"redis://host?keepalive=0&&db=1&", {.host = "host", .db = 1}},
    {"redis://host?db=1&db=2", {.host = "host", .db = 2}},
    {"rediss://host", {.host = "host", .tls = 1}},
    {"rediss://h:6380/1?tls_ca_file=%2Fetc%2Fca.pem&tls_ca_dir=/etc/ssl"
     "&tls_cert_file=c.pem&tls_key_file=k.pem&tls_sni=redis.example"
     "&tls_insecure=yes",
     {.host = "h",
      .port = 6380,
      .db = 1,
      .tls = 1,
      .ca_file = "/etc/ca.pem",
      .ca_dir = "/etc/ssl",
      .cert = "c.pem",
      .key = "k.pem",
      .sni = "redis.example",
      .insecure = 1}},
    {"rediss://h?tls_insecure=no", {.host = "h", .tls = 1}},
    {"rediss://h?tls_insecure=TRUE", {.host = "h", .tls = 1, .insecure = 1}},
    {"rediss://h?tls_insecure=0", {.host = "h", .tls = 1}},
    {"unix:///tmp/redis.sock", {.path = "/tmp/redis.sock"}},
    {"unix:///tmp/my%20dir/r.sock?db=3&client_name=x",
     {.path = "/tmp/my dir/r.sock", .db = 3, .client_name = "x"}},
    {"unix://u:pw@/run/redis.sock?protocol=3",
     {.path = "/run/redis.sock", .user = "u", .pass = "pw", .protocol = 3}},
    {"UNIX:///s", {.path = "/s"}},
};

Test(config, good_urls)
{
    for (size_t i = 0; i < sizeof good_urls / sizeof *good_urls; i++) {
        const struct good_url *g = &good_urls[i];
        aredis_options o = {.url = g->url};
        aredis__config c;
        char err[256];
        int rc = aredis__config_from_options(&c, &o, err, sizeof err);
        cr_assert_eq(rc, 0, "%s: %s (%s)", g->url, aredis_err_name(rc), err);
        cr_assert_str_eq(err, "", "%s: message on success", g->url);
        check_cfg(g->url, &c, &g->e);
        aredis__config_cleanup(&c);
    }
}

Test(config, defaults_without_url)
{
    aredis_options o = {0};
    aredis__config c;
    char err[128];
    cr_assert_eq(aredis__config_from_options(&c, &o, err, sizeof err), 0);
    expect e = {.host = "127.0.0.1"};
    check_cfg("(no url)", &c, &e);
    cr_assert_eq(c.normalize_resp2, 0);
    aredis__config_cleanup(&c);
    /* A NULL options pointer means all defaults too. */
    cr_assert_eq(aredis__config_from_options(&c, NULL, err, sizeof err), 0);
    check_cfg("(NULL options)", &c, &e);
    aredis__config_cleanup(&c);
    /* Cleanup twice is harmless. */
    aredis__config_cleanup(&c);
}

static const struct bad_url {
    const char *url;
    int code;
    const char *msg;
} bad_urls[] = {
    {"http://host", AREDIS_EURL,
     "bad URL: unknown scheme 'http' (use redis://, rediss://, unix://, "
     "redis+sentinel:// or redis+cluster://)"},
    {"localhost:6379", AREDIS_EURL, "bad URL: no scheme"},
    {"", AREDIS_EURL, "no scheme"},
    {"redis:/host", AREDIS_EURL, "no scheme"},
    {"://host", AREDIS_EURL, "unknown scheme ''"},
    {"redis://host:99999", AREDIS_EURL, "bad URL: port '99999' out of range"},
    {"redis://host:0", AREDIS_EURL, "port '0' out of range"},
    {"redis://host:123456789012345678901234567890", AREDIS_EURL,
     "out of range"},
    {"redis://host:", AREDIS_EURL, "empty port"},
    {"redis://host:abc", AREDIS_EURL, "port 'abc' is not a number"},
    {"redis://host:-1", AREDIS_EURL, "port '-1' is not a number"},
    {"redis://host:+5", AREDIS_EURL, "is not a number"},
    {"redis://host:63 79", AREDIS_EURL, "is not a number"},
    {"redis://host/x", AREDIS_EURL, "bad URL: database 'x' is not a number"},
    {"redis://host/1/2", AREDIS_EURL, "database '1/2' is not a number"},
    {"redis://host/-1", AREDIS_EURL, "database '-1' is not a number"},
    {"redis://host/99999999999", AREDIS_EURL, "database '99999999999' out"},
    {"redis://host?db=y", AREDIS_EURL, "database 'y' is not a number"},
    {"redis://host?foo=1", AREDIS_EURL, "bad URL: unknown option 'foo'"},
    {"redis://host?DB=1", AREDIS_EURL, "unknown option 'DB'"},
    {"redis://host?db", AREDIS_EURL, "option 'db' has no value"},
    {"redis://[::1", AREDIS_EURL, "bad URL: unterminated '[' in host"},
    {"redis://[::1:6379/0", AREDIS_EURL, "unterminated '['"},
    {"redis://[::1]x", AREDIS_EURL, "unexpected 'x' after ']'"},
    {"redis://[]:6379", AREDIS_EURL, "'[]' is not an IPv6 address"},
    {"redis://[localhost]", AREDIS_EURL,
     "'[localhost]' is not an IPv6 address"},
    {"redis://[::1]:", AREDIS_EURL, "empty port"},
    {"redis://[::1]:70000", AREDIS_EURL, "port '70000' out of range"},
    {"redis://::1:6379", AREDIS_EURL, "must be in brackets"},
    {"redis://ho st", AREDIS_EURL, "invalid character ' ' in host"},
    {"redis://ho%41st", AREDIS_EURL, "invalid character '%' in host"},
    {"redis://h\x01st", AREDIS_EURL, "invalid character '?' in host"},
    {"redis://u:p%zz@host", AREDIS_EURL,
     "bad percent-escape in the password (write %XX"},
    {"redis://u%4@host", AREDIS_EURL, "bad percent-escape '%4' in the user"},
    {"redis://u:p%@host", AREDIS_EURL, "bad percent-escape in the password"},
    {"redis://u:p%00@host", AREDIS_EURL, "NUL byte) in the password"},
    {"redis://h?client_name=a%0", AREDIS_EURL, "in the client_name"},
    {"redis://h?client_name=", AREDIS_EURL, "option 'client_name' is empty"},
    {"redis://h?protocol=4", AREDIS_EURL, "protocol '4' must be 2 or 3"},
    {"redis://h?protocol=0", AREDIS_EURL, "must be 2 or 3"},
    {"redis://h?connect_timeout=fast", AREDIS_EURL,
     "connect_timeout 'fast' is not a duration"},
    {"redis://h?connect_timeout=1.5s", AREDIS_EURL, "is not a duration"},
    {"redis://h?connect_timeout=ms", AREDIS_EURL, "is not a duration"},
    {"redis://h?connect_timeout=s", AREDIS_EURL, "is not a duration"},
    {"redis://h?command_timeout=5m", AREDIS_EURL,
     "command_timeout '5m' is not a duration"},
    {"redis://h?command_timeout=-5", AREDIS_EURL, "is not a duration"},
    {"redis://h?command_timeout=9999999s", AREDIS_EURL,
     "command_timeout '9999999s' out of range"},
    {"redis://h?keepalive=x", AREDIS_EURL,
     "keepalive 'x' is not a number of seconds"},
    {"redis://h?keepalive=40000", AREDIS_EURL,
     "keepalive '40000' out of range"},
    {"rediss://h?tls_insecure=maybe", AREDIS_EURL,
     "tls_insecure 'maybe' must be yes or no"},
    {"rediss://h?tls_sni=", AREDIS_EURL, "'tls_sni' is empty"},
    {"rediss://h?tls_key_file=k.pem", AREDIS_EINVAL,
     "key file needs a certificate file"},
    /* A '/' or '?' in a password, unescaped: no piece of it is quoted. */
    {"redis://u:pa/ss@host", AREDIS_EURL, "'@' after the host: a '/' or '?'"},
    {"redis://u:pa?ss@host/0", AREDIS_EURL, "must be written %2F or %3F"},
    {"unix://u:pa/ss@/tmp/r.sock", AREDIS_EURL, "'@' after the host"},
    {"unix://", AREDIS_EURL, "unix:// needs an absolute path"},
    {"unix://relative.sock", AREDIS_EURL, "needs an absolute path"},
    {"unix://?db=1/x", AREDIS_EURL, "needs an absolute path"},
    {"unix://host/tmp/r.sock", AREDIS_EURL, "unix:// takes no host ('host')"},
    {"unix:///tmp/%zz", AREDIS_EURL, "bad percent-escape '%zz' in the path"},
    {"unix:///tmp/r.sock?bogus=1", AREDIS_EURL, "unknown option 'bogus'"},
    {"unix:///tmp/r.sock?db=z", AREDIS_EURL, "database 'z' is not a number"},
    {"unix:///"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     AREDIS_EURL, "unix socket path is too long"},
};

/* Parse b->url into *c (filled with garbage first), which must fail with
 * b->code and a message that holds b->msg. */
static void parse_bad(const struct bad_url *b, aredis__config *c)
{
    aredis_options o = {.url = b->url};
    memset(c, 0xAB, sizeof *c);
    char err[256];
    int rc = aredis__config_from_options(c, &o, err, sizeof err);
    cr_assert_eq(rc, b->code, "%s: got %s (%s), expected %s", b->url,
                 aredis_err_name(rc), err, aredis_err_name(b->code));
    cr_assert(strstr(err, b->msg) != NULL, "%s: message '%s' lacks '%s'",
              b->url, err, b->msg);
}

Test(config, bad_urls)
{
    for (size_t i = 0; i < sizeof bad_urls / sizeof *bad_urls; i++) {
        const struct bad_url *b = &bad_urls[i];
        aredis__config c;
        parse_bad(b, &c);
        /* On failure the config holds nothing to free. */
        cr_assert_null(c.host, "%s", b->url);
        cr_assert_null(c.path, "%s", b->url);
        cr_assert_null(c.username, "%s", b->url);
        cr_assert_null(c.password, "%s", b->url);
        aredis__config_cleanup(&c);
    }
}

Test(config, messages_never_quote_much_of_the_url)
{
    /* The URL may carry a password: a message quotes a short piece. */
    char url[600];
    memcpy(url, "redis://host?", 13);
    memset(url + 13, 'k', 500);
    memcpy(url + 513, "=1", 3);
    aredis_options o = {.url = url};
    aredis__config c;
    char err[256];
    cr_assert_eq(aredis__config_from_options(&c, &o, err, sizeof err),
                 AREDIS_EURL);
    cr_assert(strstr(err, "unknown option 'kkkk") != NULL, "%s", err);
    cr_assert(strstr(err, "...'") != NULL, "%s", err);
    cr_assert_lt(strlen(err), 100, "%s", err);
}

Test(config, messages_never_quote_the_password)
{
    const char *urls[] = {
        "redis://u:SECRETPW%zz@host", "redis://u:SEC/RETPW@host",
        "redis://u:SEC?RETPW@host",   "redis://u:SEC/RE?TPW@host/0",
        "unix://u:SEC/RETPW@/tmp/x",  "redis://u:SECRETPW@host:99999",
        "redis://u:SECRETPW@ho st",   "rediss://u:SECRETPW@h?tls_sni=",
        "redis://u:SEC%RETPW@h",      "http://u:SECRETPW@h",
    };
    for (size_t i = 0; i < sizeof urls / sizeof *urls; i++) {
        aredis_options o = {.url = urls[i]};
        aredis__config c;
        char err[256];
        cr_assert_eq(aredis__config_from_options(&c, &o, err, sizeof err),
                     AREDIS_EURL, "%s", urls[i]);
        cr_assert_null(strstr(err, "SEC"), "%s: %s", urls[i], err);
        cr_assert_null(strstr(err, "RET"), "%s: %s", urls[i], err);
        cr_assert_null(strstr(err, "TPW"), "%s: %s", urls[i], err);
    }
}

Test(config, tiny_or_missing_error_buffer)
{
    aredis_options o = {.url = "http://x"};
    aredis__config c;
    char err[8];
    cr_assert_eq(aredis__config_from_options(&c, &o, err, sizeof err),
                 AREDIS_EURL);
    cr_assert_str_eq(err, "bad ..."); /* cut to fit, and marked so */
    cr_assert_eq(aredis__config_from_options(&c, &o, NULL, 0), AREDIS_EURL);
}

Test(config, members_override_the_url)
{
    aredis_options o = {
        .url = "rediss://u:p@urlhost:1111/5?client_name=a&protocol=2"
               "&connect_timeout=1s&command_timeout=2s&keepalive=9"
               "&tls_ca_file=a&tls_sni=s1",
        .host = "memberhost",
        .port = 2222,
        .username = "mu",
        .password = "mp",
        .db = 7,
        .client_name = "b",
        .protocol = 3,
        .connect_timeout_ms = 333,
        .command_timeout_ms = 444,
        .keepalive_idle_s = 20,
        .keepalive_interval_s = 4,
        .keepalive_count = 6,
        .tcp_nagle = 1,
        .normalize_resp2 = 1,
        .tls = {.ca_file = "ca.pem",
                .ca_dir = "cadir",
                .cert_file = "c.pem",
                .key_file = "k.pem",
                .sni = "s2",
                .insecure_skip_verify = 1},
        .limits = {.max_depth = 9, .max_bulk_len = 99},
    };
    aredis__config c;
    parse_ok(&o, &c);
    cr_assert_str_eq(c.host, "memberhost");
    cr_assert_eq(c.port, 2222);
    cr_assert_str_eq(c.username, "mu");
    cr_assert_str_eq(c.password, "mp");
    cr_assert_eq(c.db, 7);
    cr_assert_str_eq(c.client_name, "b");
    cr_assert_eq(c.protocol, 3);
    cr_assert_eq(c.connect_timeout_ms, 333);
    cr_assert_eq(c.command_timeout_ms, 444);
    cr_assert_eq(c.keepalive_idle_s, 20);
    cr_assert_eq(c.keepalive_interval_s, 4);
    cr_assert_eq(c.keepalive_count, 6);
    cr_assert_eq(c.nodelay, 0);
    cr_assert_eq(c.normalize_resp2, 1);
    cr_assert_eq(c.tls, 1);
    cr_assert_str_eq(aredis__config_more_of(&c)->tls_ca_file, "ca.pem");
    cr_assert_str_eq(aredis__config_more_of(&c)->tls_ca_dir, "cadir");
    cr_assert_str_eq(aredis__config_more_of(&c)->tls_cert_file, "c.pem");
    cr_assert_str_eq(aredis__config_more_of(&c)->tls_key_file, "k.pem");
    cr_assert_str_eq(aredis__config_more_of(&c)->tls_sni, "s2");
    cr_assert_eq(aredis__config_more_of(&c)->tls_insecure, 1);
    cr_assert_eq(c.more->limits.max_depth, 9);
    cr_assert_eq(c.more->limits.max_bulk_len, 99);
    aredis__config_cleanup(&c);
}

Test(config, zero_members_keep_the_url)
{
    aredis_options o = {.url = "redis://h:1/2?keepalive=5&protocol=3"
                               "&connect_timeout=7&command_timeout=8"};
    aredis__config c;
    parse_ok(&o, &c);
    cr_assert_eq(c.port, 1);
    cr_assert_eq(c.db, 2);
    cr_assert_eq(c.keepalive_idle_s, 5);
    cr_assert_eq(c.protocol, 3);
    cr_assert_eq(c.connect_timeout_ms, 7);
    cr_assert_eq(c.command_timeout_ms, 8);
    aredis__config_cleanup(&c);
}

Test(config, members_alone)
{
    aredis_options o = {.host = "::1",
                        .port = 7000,
                        .tls = {.enabled = 1},
                        .connect_timeout_ms = -5};
    aredis__config c;
    parse_ok(&o, &c);
    cr_assert_str_eq(c.host, "::1");
    cr_assert_eq(c.port, 7000);
    cr_assert_eq(c.tls, 1);
    cr_assert_eq(c.connect_timeout_ms, -1, "negative means none");
    aredis__config_cleanup(&c);
}

Test(config, empty_member_strings_count_as_unset)
{
    aredis_options o = {.url = "redis://u:p@h?client_name=n",
                        .username = "",
                        .password = "",
                        .client_name = "",
                        .tls = {.sni = "", .ca_file = ""}};
    aredis__config c;
    parse_ok(&o, &c);
    /* The URL's values stay; nothing empty appears. */
    cr_assert_str_eq(c.username, "u");
    cr_assert_str_eq(c.password, "p");
    cr_assert_str_eq(c.client_name, "n");
    cr_assert_null(aredis__config_more_of(&c)->tls_sni);
    cr_assert_null(aredis__config_more_of(&c)->tls_ca_file);
    aredis__config_cleanup(&c);
}

Test(config, unix_path_wins_over_host)
{
    /* The path member over a redis:// URL, and a host member over a
     * unix:// URL: the socket wins both times. */
    aredis_options o = {.url = "redis://h:1", .path = "/tmp/x.sock"};
    aredis__config c;
    parse_ok(&o, &c);
    cr_assert_str_eq(c.path, "/tmp/x.sock");
    cr_assert_null(c.host);
    aredis__config_cleanup(&c);

    aredis_options o2 = {.url = "unix:///tmp/y.sock", .host = "h"};
    parse_ok(&o2, &c);
    cr_assert_str_eq(c.path, "/tmp/y.sock");
    cr_assert_null(c.host);
    aredis__config_cleanup(&c);
}

static const struct bad_member {
    aredis_options o;
    const char *msg;
} bad_members[] = {
    {{.protocol = 1}, "bad option: protocol must be 0, 2 or 3"},
    {{.protocol = 4}, "protocol must be 0, 2 or 3"},
    {{.port = 65536}, "bad option: port 65536 out of range"},
    {{.port = -1}, "port -1 out of range"},
    {{.db = -1}, "bad option: db -1 is negative"},
    {{.command_timeout_ms = -1}, "command_timeout_ms -1 is negative"},
    {{.keepalive_idle_s = -1}, "keepalive_idle_s -1 out of range"},
    {{.keepalive_idle_s = 40000}, "keepalive_idle_s 40000 out of range"},
    {{.keepalive_interval_s = -2}, "keepalive_interval_s -2 out of range"},
    {{.keepalive_count = 128}, "keepalive_count 128 out of range"},
    {{.host = ""}, "bad option: host is empty"},
    {{.path = ""}, "bad option: empty unix socket path"},
    {{.path = "/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
              "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
     "unix socket path is too long"},
    {{.tls = {.enabled = 1, .key_file = "k.pem"}},
     "key file needs a certificate file"},
    {{.cluster = {.read_from = AREDIS_READ_REPLICA}},
     "cluster options without a cluster"},
    {{.cluster = {.seeds = "a", .read_from = 7}}, "cluster.read_from 7"},
    {{.cluster = {.seeds = "a", .max_redirects = -1}},
     "cluster.max_redirects -1 out of range"},
    {{.cluster = {.seeds = "a", .cross_slot = 3}}, "cluster.cross_slot 3"},
    {{.cluster = {.seeds = "a,,b"}},
     "cluster.seeds: empty cluster seed 2 of 3"},
    {{.cluster = {.seeds = ""}}, "cluster.seeds: no cluster seeds"},
    {{.url = "redis://h", .cluster = {.seeds = "a"}},
     "cluster.seeds with a URL that is not a cluster's"},
    {{.cluster = {.seeds = "a:7000"}, .port = 7001}, "port names one server"},
};

Test(config, bad_members)
{
    for (size_t i = 0; i < sizeof bad_members / sizeof *bad_members; i++) {
        aredis__config c;
        char err[256];
        int rc =
            aredis__config_from_options(&c, &bad_members[i].o, err, sizeof err);
        cr_assert_eq(rc, AREDIS_EINVAL, "case %zu: %s (%s)", i,
                     aredis_err_name(rc), err);
        cr_assert(strstr(err, bad_members[i].msg) != NULL,
                  "case %zu: '%s' lacks '%s'", i, err, bad_members[i].msg);
        cr_assert_null(c.host);
    }
}

Test(config, bad_member_after_good_url_frees_everything)
{
    /* The URL allocated several strings before the member check fails;
     * ASan's leak checker proves they were released. */
    aredis_options o = {.url = "redis://u:p@h/1?client_name=n", .protocol = 9};
    aredis__config c;
    char err[256];
    cr_assert_eq(aredis__config_from_options(&c, &o, err, sizeof err),
                 AREDIS_EINVAL);
    cr_assert_null(c.username);
}

/* ------------------------------------------------------------------------
 * Allocation failure: fail the Nth allocation, for every N until a run
 * succeeds, and check each failure is a clean AREDIS_ENOMEM with nothing
 * left allocated.
 * ------------------------------------------------------------------------ */

static long g_fail_at; /* the allocation number that fails; 0: none */
static long g_count;   /* allocations so far */
static long g_live;    /* blocks not yet freed */

static void *t_malloc(size_t n)
{
    if (++g_count == g_fail_at)
        return NULL;
    void *p = malloc(n);
    if (p != NULL)
        g_live++;
    return p;
}

static void *t_calloc(size_t c, size_t n)
{
    if (++g_count == g_fail_at)
        return NULL;
    void *p = calloc(c, n);
    if (p != NULL)
        g_live++;
    return p;
}

static void *t_realloc(void *old, size_t n)
{
    if (++g_count == g_fail_at)
        return NULL;
    void *p = realloc(old, n);
    if (p != NULL && old == NULL)
        g_live++;
    return p;
}

static void t_free(void *p)
{
    if (p != NULL)
        g_live--;
    free(p);
}

static void oom_sweep(const aredis_options *o)
{
    aredis_allocator a = {t_malloc, t_calloc, t_realloc, t_free};
    cr_assert_eq(aredis_set_allocator(&a), 0);
    int done = 0;
    for (long n = 1; n < 1000 && !done; n++) {
        g_fail_at = n;
        g_count = 0;
        g_live = 0;
        aredis__config c;
        char err[256];
        int rc = aredis__config_from_options(&c, o, err, sizeof err);
        if (rc == 0) {
            cr_assert_lt(g_count, n, "success although allocation %ld failed",
                         n);
            cr_assert_gt(n, 1, "the sweep must fail at least once");
            aredis__config_cleanup(&c);
            done = 1;
        } else {
            cr_assert_eq(rc, AREDIS_ENOMEM, "allocation %ld: %s (%s)", n,
                         aredis_err_name(rc), err);
            cr_assert_str_eq(err, "out of memory");
            cr_assert_null(c.host);
        }
        cr_assert_eq(g_live, 0, "allocation %ld: %ld blocks leaked", n, g_live);
    }
    cr_assert(done, "never succeeded");
    aredis_set_allocator(NULL);
}

Test(config, oom_url_and_members)
{
    aredis_options o = {
        .url = "rediss://us%40r:pa%3Ass@[::1]:6380/3?client_name=c%20n"
               "&tls_ca_file=ca&tls_ca_dir=d&tls_cert_file=c&tls_key_file=k"
               "&tls_sni=s&db=4&protocol=3&connect_timeout=1s",
        .username = "override",
        .client_name = "cn2",
        .tls = {.sni = "sni2"},
    };
    oom_sweep(&o);
}

Test(config, oom_defaults_and_unix)
{
    aredis_options o = {0};
    oom_sweep(&o);
    aredis_options u = {.url = "unix://u:p@/tmp/r%20.sock?db=2"};
    oom_sweep(&u);
    aredis_options m = {.path = "/tmp/s", .host = "h", .password = "p"};
    oom_sweep(&m);
}

/* ---- sentinel URLs and members ------------------------------------------ */

static void sentinel_eq(const aredis__config *c, size_t i, const char *host,
                        int port)
{
    cr_assert_gt(aredis__config_more_of(c)->nsentinels, i,
                 "sentinel %zu missing", i);
    cr_assert_str_eq(aredis__config_more_of(c)->sentinels[i].host, host);
    cr_assert_eq(aredis__config_more_of(c)->sentinels[i].port, port,
                 "sentinel %zu port %d", i,
                 aredis__config_more_of(c)->sentinels[i].port);
}

Test(config, sentinel_url_full)
{
    aredis_options o = {
        .url = "redis+sentinel://du:dp@s1:26380,[::1],10.0.0.3:5/my%2Emaster"
               "?role=replica&db=3&sentinel_username=su"
               "&sentinel_password=s%40p&sentinel_timeout=100ms"};
    aredis__config c;
    parse_ok(&o, &c);
    cr_assert_eq(aredis__config_more_of(&c)->nsentinels, 3);
    sentinel_eq(&c, 0, "s1", 26380);
    sentinel_eq(&c, 1, "::1", 26379);
    sentinel_eq(&c, 2, "10.0.0.3", 5);
    cr_assert_str_eq(aredis__config_more_of(&c)->sentinel_service, "my.master");
    cr_assert_eq(aredis__config_more_of(&c)->sentinel_role,
                 AREDIS_SENTINEL_REPLICA);
    cr_assert_eq(c.db, 3);
    /* The user information is the data servers'; the sentinels have
     * their own. */
    cr_assert_str_eq(c.username, "du");
    cr_assert_str_eq(c.password, "dp");
    cr_assert_str_eq(aredis__config_more_of(&c)->sentinel_username, "su");
    cr_assert_str_eq(aredis__config_more_of(&c)->sentinel_password, "s@p");
    cr_assert_eq(aredis__config_more_of(&c)->sentinel_timeout_ms, 100);
    cr_assert_eq(c.tls, 0);
    cr_assert_eq(aredis__config_more_of(&c)->sentinel_tls, 0);
    aredis__config_cleanup(&c);
}

Test(config, sentinel_url_defaults)
{
    aredis_options o = {.url = "REDIS+SENTINEL://127.0.0.1/mymaster"};
    aredis__config c;
    parse_ok(&o, &c);
    cr_assert_eq(aredis__config_more_of(&c)->nsentinels, 1);
    sentinel_eq(&c, 0, "127.0.0.1", 26379);
    cr_assert_str_eq(aredis__config_more_of(&c)->sentinel_service, "mymaster");
    cr_assert_eq(aredis__config_more_of(&c)->sentinel_role,
                 AREDIS_SENTINEL_MASTER);
    cr_assert_eq(aredis__config_more_of(&c)->sentinel_timeout_ms, 250);
    cr_assert_null(aredis__config_more_of(&c)->sentinel_username);
    cr_assert_null(aredis__config_more_of(&c)->sentinel_password);
    cr_assert_null(c.username);
    aredis__config_cleanup(&c);
}

Test(config, sentinel_failover_wait_and_replica_fallback)
{
    aredis_options o = {.url = "redis+sentinel://h:1/m"};
    aredis__config c;
    parse_ok(&o, &c);
    cr_assert_eq(aredis__config_more_of(&c)->sentinel_failover_wait_ms, 10000,
                 "the default");
    cr_assert_eq(aredis__config_more_of(&c)->sentinel_replica_fallback, 0);
    aredis__config_cleanup(&c);

    o.url = "redis+sentinel://h:1/m?failover_wait=0&replica_fallback=yes";
    parse_ok(&o, &c);
    cr_assert_eq(aredis__config_more_of(&c)->sentinel_failover_wait_ms, 0,
                 "0 in a URL: none");
    cr_assert_eq(aredis__config_more_of(&c)->sentinel_replica_fallback, 1);
    aredis__config_cleanup(&c);

    o.url = "redis+sentinel://h:1/m?failover_wait=3s";
    o.sentinel.failover_wait_ms = AREDIS_NO_WAIT; /* the member wins */
    parse_ok(&o, &c);
    cr_assert_eq(aredis__config_more_of(&c)->sentinel_failover_wait_ms, 0);
    aredis__config_cleanup(&c);

    o.sentinel.failover_wait_ms = 0; /* 0: the URL's */
    parse_ok(&o, &c);
    cr_assert_eq(aredis__config_more_of(&c)->sentinel_failover_wait_ms, 3000);
    aredis__config_cleanup(&c);

    char err[256];
    o.sentinel.failover_wait_ms = -5;
    cr_assert_eq(aredis__config_from_options(&c, &o, err, sizeof err),
                 AREDIS_EINVAL);
    cr_assert(strstr(err, "failover_wait_ms") != NULL, "%s", err);
    o = (aredis_options){.url = "redis://h/0?failover_wait=1s"};
    cr_assert_eq(aredis__config_from_options(&c, &o, err, sizeof err),
                 AREDIS_EURL);
    cr_assert(strstr(err, "redis+sentinel") != NULL, "%s", err);
}

Test(config, sentinel_tls_separately)
{
    aredis_options o = {.url = "rediss+sentinel://h:1,h:2/m"};
    aredis__config c;
    parse_ok(&o, &c);
    cr_assert_eq(c.tls, 1);
    cr_assert_eq(aredis__config_more_of(&c)->sentinel_tls, 1,
                 "rediss+ means TLS to the sentinels too");
    aredis__config_cleanup(&c);

    o.url = "rediss+sentinel://h:1/m?sentinel_tls=no";
    parse_ok(&o, &c);
    cr_assert_eq(c.tls, 1);
    cr_assert_eq(aredis__config_more_of(&c)->sentinel_tls, 0);
    aredis__config_cleanup(&c);

    o.url = "redis+sentinel://h:1/m?sentinel_tls=yes";
    parse_ok(&o, &c);
    cr_assert_eq(c.tls, 0);
    cr_assert_eq(aredis__config_more_of(&c)->sentinel_tls, 1);
    aredis__config_cleanup(&c);
}

Test(config, sentinel_members_override_the_url)
{
    aredis_options o = {
        .url = "redis+sentinel://a:1,b:2/m1?role=replica",
        .sentinel = {.addrs = "c,d:7",
                     .service = "m2",
                     .username = "su",
                     .password = "sp",
                     .timeout_ms = 40},
    };
    aredis__config c;
    parse_ok(&o, &c);
    cr_assert_eq(aredis__config_more_of(&c)->nsentinels, 2);
    sentinel_eq(&c, 0, "c", 26379);
    sentinel_eq(&c, 1, "d", 7);
    cr_assert_str_eq(aredis__config_more_of(&c)->sentinel_service, "m2");
    cr_assert_eq(aredis__config_more_of(&c)->sentinel_role,
                 AREDIS_SENTINEL_REPLICA, "role kept");
    cr_assert_str_eq(aredis__config_more_of(&c)->sentinel_username, "su");
    cr_assert_str_eq(aredis__config_more_of(&c)->sentinel_password, "sp");
    cr_assert_eq(aredis__config_more_of(&c)->sentinel_timeout_ms, 40);
    aredis__config_cleanup(&c);

    aredis_options m = {.sentinel = {.addrs = "[::1]:9",
                                     .service = "x",
                                     .role = AREDIS_SENTINEL_REPLICA}};
    parse_ok(&m, &c);
    sentinel_eq(&c, 0, "::1", 9);
    cr_assert_eq(aredis__config_more_of(&c)->sentinel_role,
                 AREDIS_SENTINEL_REPLICA);
    aredis__config_cleanup(&c);
}

static const struct bad_url bad_sentinel[] = {
    {"redis+sentinel:///m", AREDIS_EURL, "bad URL: no sentinel address"},
    {"redis+sentinel://?role=master", AREDIS_EURL, "no sentinel address"},
    {"redis+sentinel://h1", AREDIS_EURL, "no sentinel service name"},
    {"redis+sentinel://h1/", AREDIS_EURL, "no sentinel service name"},
    {"redis+sentinel://h1,,h2/m", AREDIS_EURL, "empty sentinel address 2 of 3"},
    {"redis+sentinel://h1,/m", AREDIS_EURL, "empty sentinel address"},
    {"redis+sentinel://:5/m", AREDIS_EURL,
     "sentinel address 1 of 1 has no host"},
    {"redis+sentinel://h1:0/m", AREDIS_EURL, "port '0' out of range"},
    {"redis+sentinel://h1:x/m", AREDIS_EURL, "port 'x' is not a number"},
    {"redis+sentinel://h1,h%20/m", AREDIS_EURL, "invalid character '%'"},
    {"redis+sentinel://::1/m", AREDIS_EURL, "must be in brackets"},
    {"redis+sentinel://h/m/2", AREDIS_EURL, "give the database as ?db=N"},
    {"redis+sentinel://h/m%20x", AREDIS_EURL,
     "service name 'm x' has a space or a control character"},
    {"redis+sentinel://h/m%0a", AREDIS_EURL, "control character"},
    {"redis+sentinel://h/m%00", AREDIS_EURL, "NUL byte"},
    {"redis+sentinel://h/m?role=leader", AREDIS_EURL,
     "role 'leader' must be master or replica"},
    {"redis+sentinel://h/m?sentinel_timeout=0", AREDIS_EURL,
     "sentinel_timeout must be above 0"},
    {"redis+sentinel://h/m?sentinel_tls=maybe", AREDIS_EURL,
     "sentinel_tls 'maybe' must be yes or no"},
    {"redis+sentinel://h/m?sentinel_password=", AREDIS_EURL,
     "option 'sentinel_password' is empty"},
    {"redis://h/0?role=replica", AREDIS_EURL,
     "option 'role' is for redis+sentinel:// URLs"},
    {"redis://h/0?sentinel_password=x", AREDIS_EURL,
     "option 'sentinel_password' is for redis+sentinel:// URLs"},
    {"redis+sentinel://u:p/ss@h/m", AREDIS_EURL, "'@' after the host"},
    {"redis+sentinel://h1:1,h2:2,h3:3,h4:4,h5:5,h6:6,h7:7,h8:8,h9:9,h10,"
     "h11,h12,h13,h14,h15,h16,h17,h18,h19,h20,h21,h22,h23,h24,h25,h26,h27,"
     "h28,h29,h30,h31,h32,h33,h34,h35,h36,h37,h38,h39,h40,h41,h42,h43,h44,"
     "h45,h46,h47,h48,h49,h50,h51,h52,h53,h54,h55,h56,h57,h58,h59,h60,h61,"
     "h62,h63,h64,h65/m",
     AREDIS_EURL, "65 sentinel addresses (at most 64)"},
    {"redis+sentinel+x://h/m", AREDIS_EURL, "unknown scheme"},
};

Test(config, bad_sentinel_urls)
{
    for (size_t i = 0; i < sizeof bad_sentinel / sizeof *bad_sentinel; i++) {
        const struct bad_url *b = &bad_sentinel[i];
        aredis__config c;
        parse_bad(b, &c);
        cr_assert_null(aredis__config_more_of(&c)->sentinels, "%s", b->url);
        cr_assert_eq(aredis__config_more_of(&c)->nsentinels, 0, "%s", b->url);
        cr_assert_null(aredis__config_more_of(&c)->sentinel_service, "%s",
                       b->url);
        cr_assert_null(c.host, "%s", b->url);
    }
}

Test(config, sentinel_password_never_quoted)
{
    aredis_options o = {.url =
                            "redis+sentinel://h/m?sentinel_password=se%zzcret"};
    aredis__config c;
    char err[256];
    int rc = aredis__config_from_options(&c, &o, err, sizeof err);
    cr_assert_eq(rc, AREDIS_EURL);
    cr_assert(strstr(err, "percent-escape in the password") != NULL, "%s", err);
    cr_assert(strstr(err, "%zz") == NULL, "'%s' quotes the password", err);
}

static const struct bad_member_s {
    aredis_sentinel_options s;
    const char *url;
    const char *msg;
} bad_sentinel_members[] = {
    {{.addrs = "h"}, NULL, "sentinel addresses without a service name"},
    {{.service = "m"}, NULL, "service name without sentinel addresses"},
    {{.addrs = "h,,i", .service = "m"},
     NULL,
     "bad option: sentinel.addrs: empty sentinel address"},
    {{.addrs = "", .service = "m"},
     NULL,
     "bad option: sentinel.addrs: no sentinel address"},
    {{.addrs = "h:99999", .service = "m"}, NULL, "port '99999' out of range"},
    {{.addrs = "h", .service = ""}, NULL, "no sentinel service name"},
    {{.addrs = "h", .service = "a b"}, NULL, "has a space"},
    {{.addrs = "h", .service = "m", .role = 7}, NULL, "sentinel.role 7"},
    {{.addrs = "h", .service = "m", .timeout_ms = -1},
     NULL,
     "sentinel.timeout_ms -1 is negative"},
    {{.addrs = "h", .service = "m"},
     "unix:///tmp/x.sock",
     "a unix socket path and sentinels exclude each other"},
};

Test(config, bad_sentinel_members)
{
    size_t n = sizeof bad_sentinel_members / sizeof *bad_sentinel_members;
    for (size_t i = 0; i < n; i++) {
        const struct bad_member_s *b = &bad_sentinel_members[i];
        aredis_options o = {.url = b->url, .sentinel = b->s};
        aredis__config c;
        char err[256];
        int rc = aredis__config_from_options(&c, &o, err, sizeof err);
        cr_assert_eq(rc, AREDIS_EINVAL, "case %zu: got %s (%s)", i,
                     aredis_err_name(rc), err);
        cr_assert(strstr(err, b->msg) != NULL,
                  "case %zu: message '%s' lacks '%s'", i, err, b->msg);
        cr_assert_null(aredis__config_more_of(&c)->sentinels, "case %zu", i);
    }
}

Test(config, oom_sentinel)
{
    aredis_options o = {
        .url = "redis+sentinel://u:p@a:1,[::1]:2,c/svc?role=replica"
               "&sentinel_username=su&sentinel_password=sp",
        .sentinel = {.username = "su2", .service = "svc2"},
    };
    oom_sweep(&o);
    aredis_options m = {
        .sentinel = {.addrs = "a,b", .service = "s", .password = "p"}};
    oom_sweep(&m);
}

/* ---- cluster URLs ---------------------------------------------------------
 */

static void check_seeds(const char *url, const aredis__config *c,
                        const char *const *hosts, const int *ports, size_t n)
{
    cr_assert_eq(c->cluster, 1, "%s", url);
    cr_assert_eq(aredis__config_more_of(c)->nseeds, n, "%s: %zu seeds", url,
                 aredis__config_more_of(c)->nseeds);
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_eq(aredis__config_more_of(c)->seeds[i].host, hosts[i],
                         "%s: seed %zu", url, i);
        cr_assert_eq(aredis__config_more_of(c)->seeds[i].port, ports[i],
                     "%s: seed %zu", url, i);
    }
    /* host and port are the first seed's. */
    cr_assert_str_eq(c->host, hosts[0], "%s", url);
    cr_assert_eq(c->port, ports[0], "%s", url);
    cr_assert_null(c->path, "%s", url);
    cr_assert_eq(c->db, 0, "%s", url);
}

Test(config, cluster_urls)
{
    static const struct {
        const char *url;
        int tls;
        size_t n;
        const char *hosts[4];
        int ports[4];
        const char *user, *pass;
        int protocol;
    } good[] = {
        {"redis+cluster://h1:7000,h2:7001",
         0,
         2,
         {"h1", "h2"},
         {7000, 7001},
         NULL,
         NULL,
         0},
        {"redis+cluster://127.0.0.1:7000",
         0,
         1,
         {"127.0.0.1"},
         {7000},
         NULL,
         NULL,
         0},
        {"REDIS+Cluster://node", 0, 1, {"node"}, {6379}, NULL, NULL, 0},
        {"rediss+cluster://u:p%40ss@[::1]:7000,h2,10.0.0.1:7002/0?protocol=3",
         1,
         3,
         {"::1", "h2", "10.0.0.1"},
         {7000, 6379, 7002},
         "u",
         "p@ss",
         3},
        {"redis+cluster://a:1,b:2,c:3,d:4/",
         0,
         4,
         {"a", "b", "c", "d"},
         {1, 2, 3, 4},
         NULL,
         NULL,
         0},
        {"redis+cluster://h:7000?connect_timeout=1s&db=0",
         0,
         1,
         {"h"},
         {7000},
         NULL,
         NULL,
         0},
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        aredis_options o = {.url = good[i].url};
        aredis__config c;
        char err[256];
        int rc = aredis__config_from_options(&c, &o, err, sizeof err);
        cr_assert_eq(rc, 0, "%s: %s", good[i].url, err);
        check_seeds(good[i].url, &c, good[i].hosts, good[i].ports, good[i].n);
        cr_assert_eq(c.tls, good[i].tls, "%s", good[i].url);
        str_eq("username", good[i].url, c.username, good[i].user);
        str_eq("password", good[i].url, c.password, good[i].pass);
        cr_assert_eq(c.protocol, good[i].protocol, "%s", good[i].url);
        aredis__config_cleanup(&c);
        cr_assert_null(aredis__config_more_of(&c)->seeds);
    }
    /* A single-server URL is no cluster. */
    aredis_options o = {.url = "redis://h1:7000"};
    aredis__config c;
    char err[256];
    cr_assert_eq(aredis__config_from_options(&c, &o, err, sizeof err), 0);
    cr_assert_eq(c.cluster, 0);
    cr_assert_eq(aredis__config_more_of(&c)->nseeds, 0);
    cr_assert_null(aredis__config_more_of(&c)->seeds);
    aredis__config_cleanup(&c);
}

Test(config, bad_cluster_urls)
{
    static const struct bad_url bad[] = {
        {"redis+cluster://", AREDIS_EURL, "bad URL: no cluster seeds"},
        {"redis+cluster:///0", AREDIS_EURL, "no cluster seeds"},
        {"redis+cluster://h1,,h2", AREDIS_EURL,
         "bad URL: empty cluster seed 2 of 3"},
        {"redis+cluster://h1,", AREDIS_EURL, "empty cluster seed 2 of 2"},
        {"redis+cluster://,h1", AREDIS_EURL, "empty cluster seed 1 of 2"},
        {"redis+cluster://:7000", AREDIS_EURL,
         "cluster seed 1 of 1 has no host"},
        {"redis+cluster://h1:0", AREDIS_EURL, "port '0' out of range"},
        {"redis+cluster://h1:7000,h2:x", AREDIS_EURL, "port 'x' is not"},
        {"redis+cluster://h1/1", AREDIS_EURL,
         "bad URL: a cluster has only database 0 (got 1)"},
        {"redis+cluster://h1?db=2", AREDIS_EURL, "only database 0"},
        {"redis+cluster://h1:7000,[::1", AREDIS_EURL, "unterminated '['"},
        {"redis+cluster://h1,::1:7000", AREDIS_EURL, "must be in brackets"},
        {"redis+cluster://h 1", AREDIS_EURL, "invalid character ' '"},
        {"redis+cluster://u:pa/ss@h1", AREDIS_EURL, "'@' after the host"},
        {"redis+cluster://h1?bogus=1", AREDIS_EURL, "unknown option 'bogus'"},
        {"redis://h1?read_from=replica", AREDIS_EURL,
         "option 'read_from' is for redis+cluster:// URLs"},
        {"redis+cluster://h1?read_from=slave", AREDIS_EURL,
         "read_from 'slave' must be primary, replica"},
        {"redis+cluster://h1?max_redirects=0", AREDIS_EURL,
         "max_redirects '0' must be 1 to 100"},
        {"redis+cluster://h1?max_redirects=x", AREDIS_EURL,
         "max_redirects 'x' must be"},
        {"redis+cluster://h1?lazy=maybe", AREDIS_EURL, "must be yes or no"},
        {"redis+cluster://h1?cross_slot=x", AREDIS_EURL,
         "cross_slot 'x' must be split or refuse"},
        {"redis+sentinel://s1/m?lazy=yes", AREDIS_EURL,
         "is for redis+cluster:// URLs"},
        {"redis-cluster://h1", AREDIS_EURL,
         "unknown scheme 'redis-cluster' (use redis://, rediss://, unix://, "
         "redis+sentinel:// or redis+cluster://)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        aredis__config c;
        parse_bad(&bad[i], &c);
        cr_assert_null(c.host, "%s", bad[i].url);
        cr_assert_null(aredis__config_more_of(&c)->seeds, "%s", bad[i].url);
        cr_assert_eq(aredis__config_more_of(&c)->nseeds, 0, "%s", bad[i].url);
    }
    /* At most AREDIS__MAX_SEEDS seeds. */
    char url[1024] = "redis+cluster://";
    size_t n = strlen(url);
    for (int i = 0; i <= AREDIS__MAX_SEEDS; i++)
        n +=
            (size_t)snprintf(url + n, sizeof url - n, "%sh%d", i ? "," : "", i);
    aredis_options o = {.url = url};
    aredis__config c;
    char err[256];
    cr_assert_eq(aredis__config_from_options(&c, &o, err, sizeof err),
                 AREDIS_EURL);
    cr_assert(strstr(err, "65 cluster seeds (at most 64)") != NULL, "%s", err);
    url[strrchr(url, ',') - url] = '\0'; /* exactly 64 */
    parse_ok(&o, &c);
    cr_assert_eq(aredis__config_more_of(&c)->nseeds, AREDIS__MAX_SEEDS);
    aredis__config_cleanup(&c);
}

Test(config, cluster_url_and_members)
{
    static const struct {
        aredis_options o;
        const char *msg;
    } bad[] = {
        {{.url = "redis+cluster://h1", .host = "h2"},
         "bad option: host names "
         "one server"},
        {{.url = "redis+cluster://h1", .path = "/tmp/s"}, "path names one"},
        {{.url = "redis+cluster://h1", .port = 7000}, "port names one server"},
        {{.url = "redis+cluster://h1", .db = 3}, "only database 0 (db 3)"},
        {{.url = "redis+cluster://h1",
          .sentinel = {.addrs = "s1:26379", .service = "m"}},
         "a cluster URL and sentinel addresses exclude each other"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        aredis__config c;
        char err[256];
        cr_assert_eq(
            aredis__config_from_options(&c, &bad[i].o, err, sizeof err),
            AREDIS_EINVAL, "case %zu: %s", i, err);
        cr_assert(strstr(err, bad[i].msg) != NULL, "case %zu: '%s'", i, err);
        cr_assert_null(aredis__config_more_of(&c)->seeds);
    }
    /* Members that do not name a server apply as usual. */
    aredis_options o = {.url = "redis+cluster://u@h1:7000,h2:7001",
                        .username = "other",
                        .password = "pw",
                        .command_timeout_ms = 250};
    aredis__config c;
    parse_ok(&o, &c);
    cr_assert_str_eq(c.username, "other");
    cr_assert_str_eq(c.password, "pw");
    cr_assert_eq(c.command_timeout_ms, 250);
    cr_assert_eq(aredis__config_more_of(&c)->nseeds, 2);
    aredis__config_cleanup(&c);
}

Test(config, oom_cluster_url)
{
    aredis_options o = {
        .url = "redis+cluster://u:p@h1:7000,[::1]:7001,h3/0?client_name=x"};
    oom_sweep(&o);
}

/* ---- cluster options -------------------------------------------------------
 */

Test(config, cluster_options_from_url_and_members)
{
    aredis__config c;
    char err[256];
    /* Defaults. */
    aredis_options o = {.url = "redis+cluster://h1:7000"};
    parse_ok(&o, &c);
    cr_assert_eq(aredis__config_more_of(&c)->cluster_read_from,
                 AREDIS_READ_PRIMARY);
    cr_assert_eq(aredis__config_more_of(&c)->cluster_max_redirects, 5);
    cr_assert_eq(aredis__config_more_of(&c)->cluster_refresh_ms, 5000);
    cr_assert_eq(aredis__config_more_of(&c)->cluster_lazy, 0);
    cr_assert_eq(aredis__config_more_of(&c)->cluster_cross_slot,
                 AREDIS_CROSS_SLOT_SPLIT);
    aredis__config_cleanup(&c);

    /* The URL's query. */
    o.url = "redis+cluster://h1:7000?read_from=prefer-replica&max_redirects=9"
            "&refresh_period=2s&lazy=yes&cross_slot=refuse";
    parse_ok(&o, &c);
    cr_assert_eq(aredis__config_more_of(&c)->cluster_read_from,
                 AREDIS_READ_REPLICA);
    cr_assert_eq(aredis__config_more_of(&c)->cluster_max_redirects, 9);
    cr_assert_eq(aredis__config_more_of(&c)->cluster_refresh_ms, 2000);
    cr_assert_eq(aredis__config_more_of(&c)->cluster_lazy, 1);
    cr_assert_eq(aredis__config_more_of(&c)->cluster_cross_slot,
                 AREDIS_CROSS_SLOT_REFUSE);
    aredis__config_cleanup(&c);

    /* refresh_period=0: none. */
    o.url = "redis+cluster://h1?refresh_period=0&read_from=nearest";
    parse_ok(&o, &c);
    cr_assert_eq(aredis__config_more_of(&c)->cluster_refresh_ms, -1);
    cr_assert_eq(aredis__config_more_of(&c)->cluster_read_from,
                 AREDIS_READ_NEAREST);
    aredis__config_cleanup(&c);

    /* Members alone make a cluster client, and override the URL. */
    aredis_options m = {.cluster = {.seeds = "a:7000,[::1]:7001,b",
                                    .read_from = AREDIS_READ_ANY,
                                    .max_redirects = 2,
                                    .refresh_period_ms = -1}};
    cr_assert_eq(aredis__config_from_options(&c, &m, err, sizeof err), 0, "%s",
                 err);
    cr_assert_eq(c.cluster, 1);
    cr_assert_eq(aredis__config_more_of(&c)->nseeds, 3);
    cr_assert_str_eq(aredis__config_more_of(&c)->seeds[1].host, "::1");
    cr_assert_eq(aredis__config_more_of(&c)->seeds[1].port, 7001);
    cr_assert_eq(aredis__config_more_of(&c)->seeds[2].port, 6379);
    cr_assert_str_eq(c.host, "a");
    cr_assert_eq(c.port, 7000);
    cr_assert_eq(aredis__config_more_of(&c)->cluster_read_from,
                 AREDIS_READ_ANY);
    cr_assert_eq(aredis__config_more_of(&c)->cluster_max_redirects, 2);
    cr_assert_eq(aredis__config_more_of(&c)->cluster_refresh_ms, -1);
    aredis__config_cleanup(&c);

    m.url = "redis+cluster://x:1?read_from=replica";
    m.cluster.seeds = NULL;
    cr_assert_eq(aredis__config_from_options(&c, &m, err, sizeof err), 0, "%s",
                 err);
    cr_assert_eq(aredis__config_more_of(&c)->cluster_read_from,
                 AREDIS_READ_ANY);
    cr_assert_str_eq(aredis__config_more_of(&c)->seeds[0].host, "x");
    aredis__config_cleanup(&c);
}
