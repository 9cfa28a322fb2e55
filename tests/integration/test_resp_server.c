/* Integration tests of the protocol layer against a real redis-server.
 *
 * Commands are encoded with the writer (aredis_write_fmt/argv), sent over a
 * plain blocking loopback socket (tests/support/testenv.c) and parsed with
 * the reader; every assertion is on the exact reply type and value the
 * real server sends. RESP2 first, then RESP3 after HELLO 3, including every
 * type `DEBUG PROTOCOL <type>` produces (the fixture starts the server with
 * --enable-debug-command local) and server pushes (client tracking,
 * pub/sub). The server comes from the redis_standalone CTest fixture; keys
 * carry the test process's pid, so tests may run in parallel. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aredis/error.h"
#include "aredis/reply.h"
#include "aredis/resp.h"
#include "testenv.h"

static testenv_server g_srv;
static testenv_conn g_conn = {.fd = -1, .reader = NULL, .timeout_ms = 0};
static const aredis_reply *g_reply;

/* ------------------------------------------------------------------------
 * Helpers. They fail the test (Criterion asserts) rather than return.
 * ------------------------------------------------------------------------ */

static void load_server(void)
{
    cr_assert_eq(testenv_server_load(&g_srv, NULL), 0, "%s", testenv_errstr());
}

static void connect_to(testenv_conn *c)
{
    cr_assert_eq(testenv_connect(c, &g_srv), 0, "%s", testenv_errstr());
}

static const aredis_reply *checked(int rc)
{
    cr_assert_eq(rc, 0, "command failed: %s", testenv_errstr());
    cr_assert_not_null(g_reply);
    return g_reply;
}

/* Send a printf-like command on connection c and return its reply
 * (borrowed from c's reader until the next call on c). */
#define CMD(c, ...) checked(testenv_command((c), &g_reply, __VA_ARGS__))

/* Read one more reply (a push, or the second half of a pair) from c. */
static const aredis_reply *next_reply(testenv_conn *c)
{
    return checked(testenv_read_reply(c, &g_reply));
}

static void expect_type(const aredis_reply *r, int type)
{
    cr_assert_not_null(r);
    int is_err = r->type == AREDIS_REPLY_ERROR;
    cr_assert_eq(r->type, type, "expected a %s reply, got %s%s%.*s",
                 aredis_reply_type_name(type), aredis_reply_type_name(r->type),
                 is_err ? ": " : "", is_err ? (int)r->len : 0,
                 is_err ? r->str : "");
}

static void expect_str(const aredis_reply *r, int type, const char *s,
                       size_t len)
{
    expect_type(r, type);
    cr_assert_eq(r->len, len, "expected %zu bytes, got %zu", len, r->len);
    cr_assert_not_null(r->str);
    cr_assert(memcmp(r->str, s, len) == 0, "expected \"%.*s\", got \"%.*s\"",
              (int)len, s, (int)r->len, r->str);
    cr_assert_eq(r->str[len], '\0', "string replies are NUL-terminated");
}

#define EXPECT_CSTR(r, type, s) expect_str((r), (type), (s), strlen(s))

static void expect_int(const aredis_reply *r, long long v)
{
    expect_type(r, AREDIS_REPLY_INTEGER);
    cr_assert_eq(r->integer, v, "expected %lld, got %lld", v, r->integer);
}

static void expect_bool(const aredis_reply *r, int v)
{
    expect_type(r, AREDIS_REPLY_BOOL);
    cr_assert_eq(r->integer, v, "expected %s, got %lld", v ? "true" : "false",
                 r->integer);
}

static void expect_aggregate(const aredis_reply *r, int type, size_t len)
{
    expect_type(r, type);
    cr_assert_eq(r->len, len, "expected %zu elements, got %zu", len, r->len);
    if (len > 0)
        cr_assert_not_null(r->element);
}

static void hello3(testenv_conn *c)
{
    const aredis_reply *r = CMD(c, "HELLO 3");
    expect_type(r, AREDIS_REPLY_MAP);
    const aredis_reply *proto = aredis_reply_map_get(r, "proto", 5);
    cr_assert_not_null(proto, "HELLO 3 reply has no 'proto' entry");
    expect_int(proto, 3);
}

static void resp2_init(void)
{
    load_server();
    connect_to(&g_conn);
}

static void resp3_init(void)
{
    resp2_init();
    hello3(&g_conn);
}

static void conn_fini(void)
{
    testenv_close(&g_conn);
}

/* A small deterministic PRNG (xorshift64*), seeded per test run; the seed
 * is printed on failure so a run can be repeated. */
static uint64_t g_rng;

static uint64_t rnd(void)
{
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return g_rng * 2685821657736338717ULL;
}

static uint64_t seed_rng(void)
{
    const char *env = getenv("AREDIS_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0)
                        : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    g_rng = seed ? seed : 1;
    return seed;
}

TestSuite(resp2, .init = resp2_init, .fini = conn_fini, .timeout = 60);
TestSuite(resp3, .init = resp3_init, .fini = conn_fini, .timeout = 60);

/* ------------------------------------------------------------------------
 * RESP2
 * ------------------------------------------------------------------------ */

Test(resp2, ping_is_status_pong)
{
    EXPECT_CSTR(CMD(&g_conn, "PING"), AREDIS_REPLY_STATUS, "PONG");
}

Test(resp2, set_get_binary_value)
{
    char key[96];
    static const char val[] = "bin\0ary\r\nval\r\nue\0";
    size_t vlen = sizeof val - 1;
    testenv_key(key, sizeof key, "binary");

    EXPECT_CSTR(CMD(&g_conn, "SET %s %b", key, val, vlen), AREDIS_REPLY_STATUS,
                "OK");
    expect_str(CMD(&g_conn, "GET %s", key), AREDIS_REPLY_STRING, val, vlen);
    expect_int(CMD(&g_conn, "STRLEN %s", key), (long long)vlen);
    expect_int(CMD(&g_conn, "DEL %s", key), 1);
}

Test(resp2, incr_is_integer)
{
    char key[96];
    testenv_key(key, sizeof key, "counter");
    CMD(&g_conn, "DEL %s", key);
    expect_int(CMD(&g_conn, "INCR %s", key), 1);
    expect_int(CMD(&g_conn, "INCRBY %s %lld", key, 41LL), 42);
    expect_int(CMD(&g_conn, "DECRBY %s %d", key, 100), -58);
    CMD(&g_conn, "DEL %s", key);
}

Test(resp2, get_missing_is_nil)
{
    char key[96];
    testenv_key(key, sizeof key, "missing");
    CMD(&g_conn, "DEL %s", key);
    expect_type(CMD(&g_conn, "GET %s", key), AREDIS_REPLY_NIL);
}

Test(resp2, unknown_command_is_server_error)
{
    const aredis_reply *r = CMD(&g_conn, "NOSUCHCOMMAND %s", "arg");
    expect_type(r, AREDIS_REPLY_ERROR);
    cr_assert_eq(r->code, AREDIS_ESERVER, "code %d (%s)", r->code,
                 aredis_err_name(r->code));
    const char *want = "ERR unknown command";
    cr_assert(r->len >= strlen(want) &&
                  strncmp(r->str, want, strlen(want)) == 0,
              "got \"%.*s\"", (int)r->len, r->str);
    /* The connection stays usable after an error reply. */
    EXPECT_CSTR(CMD(&g_conn, "PING"), AREDIS_REPLY_STATUS, "PONG");
}

Test(resp2, wrong_type_error)
{
    char key[96];
    testenv_key(key, sizeof key, "notanumber");
    CMD(&g_conn, "SET %s %s", key, "abc");
    const aredis_reply *r = CMD(&g_conn, "INCR %s", key);
    expect_type(r, AREDIS_REPLY_ERROR);
    cr_assert_eq(r->code, AREDIS_ESERVER);
    cr_assert(strncmp(r->str, "ERR ", 4) == 0, "got \"%s\"", r->str);
    CMD(&g_conn, "DEL %s", key);
}

/* Check reply i of the pipeline below. */
static void check_pipelined(const aredis_reply *r, int i, uint64_t seed)
{
    char want[32];
    cr_assert_not_null(r);
    switch (i % 4) {
    case 0:
        snprintf(want, sizeof want, "%d", i);
        cr_assert_eq(r->type, AREDIS_REPLY_STRING, "reply %d (seed %llu)", i,
                     (unsigned long long)seed);
        cr_assert_str_eq(r->str, want, "reply %d (seed %llu)", i,
                         (unsigned long long)seed);
        break;
    case 1:
        cr_assert_eq(r->type, AREDIS_REPLY_INTEGER, "reply %d", i);
        cr_assert_eq(r->integer, i / 4 + 1, "reply %d (seed %llu)", i,
                     (unsigned long long)seed);
        break;
    case 2:
        cr_assert_eq(r->type, AREDIS_REPLY_STATUS, "reply %d", i);
        cr_assert_str_eq(r->str, "PONG");
        break;
    default:
        cr_assert_eq(r->type, AREDIS_REPLY_NIL, "reply %d (seed %llu)", i,
                     (unsigned long long)seed);
        break;
    }
}

Test(resp2, pipeline_of_1000_fed_in_random_chunks)
{
    enum { N = 1000 };
    char ctr[96], missing[96];
    testenv_key(ctr, sizeof ctr, "pipeline:counter");
    testenv_key(missing, sizeof missing, "pipeline:missing");
    CMD(&g_conn, "DEL %s %s", ctr, missing);

    /* 1000 commands of four kinds in one buffer, sent in one write. */
    aredis_buf b;
    aredis_buf_init(&b);
    for (int i = 0; i < N; i++) {
        int rc;
        switch (i % 4) {
        case 0:
            rc = aredis_write_fmt(&b, "ECHO %d", i);
            break;
        case 1:
            rc = aredis_write_fmt(&b, "INCR %s", ctr);
            break;
        case 2: {
            const char *argv[] = {"PING"};
            rc = aredis_write_argv(&b, 1, argv, NULL);
            break;
        }
        default:
            rc = aredis_write_fmt(&b, "GET %s", missing);
            break;
        }
        cr_assert_eq(rc, 0, "encoding command %d: %s", i, aredis_err_name(rc));
    }
    cr_assert_eq(testenv_send(&g_conn, b.data, b.len), 0, "%s",
                 testenv_errstr());
    aredis_buf_cleanup(&b);

    /* Receive raw bytes and feed them to a fresh reader in random chunk
     * sizes, from single bytes to whole reads, collecting replies as they
     * complete. */
    uint64_t seed = seed_rng();
    aredis_reader *rd = aredis_reader_new(NULL);
    cr_assert_not_null(rd);
    static char buf[65536];
    int got = 0;
    while (got < N) {
        size_t n = 0;
        cr_assert_eq(testenv_recv(&g_conn, buf, sizeof buf, &n), 0,
                     "after %d replies: %s", got, testenv_errstr());
        size_t off = 0;
        while (off < n) {
            size_t chunk;
            switch (rnd() % 4) {
            case 0:
                chunk = 1;
                break;
            case 1:
                chunk = 1 + rnd() % 16;
                break;
            case 2:
                chunk = 1 + rnd() % 512;
                break;
            default:
                chunk = n - off;
                break;
            }
            if (chunk > n - off)
                chunk = n - off;
            cr_assert_eq(aredis_reader_feed(rd, buf + off, chunk), 0);
            off += chunk;
            const aredis_reply *r;
            int rc;
            while ((rc = aredis_reader_get_reply(rd, &r)) == 1) {
                cr_assert_lt(got, N, "more replies than commands");
                check_pipelined(r, got++, seed);
            }
            cr_assert_eq(rc, 0, "reader: %s (seed %llu)",
                         aredis_reader_errstr(rd), (unsigned long long)seed);
        }
    }
    cr_assert_eq(aredis_reader_buffered(rd), 0, "bytes left over");
    aredis_reader_free(rd);
    CMD(&g_conn, "DEL %s", ctr);
}

Test(resp2, one_mib_value_round_trip)
{
    enum { SIZE = 1 << 20 };
    char key[96];
    testenv_key(key, sizeof key, "big");
    char *val = malloc(SIZE);
    cr_assert_not_null(val);
    /* Every byte value, \0 \r \n included, in a pattern that does not
     * repeat every 256 bytes. */
    for (size_t i = 0; i < SIZE; i++)
        val[i] = (char)(unsigned char)((i * 31u + (i >> 9)) & 0xffu);

    const char *argv[] = {"SET", key, val};
    size_t argvlen[] = {3, strlen(key), SIZE};
    const aredis_reply *r;
    cr_assert_eq(testenv_commandv(&g_conn, &r, 3, argv, argvlen), 0, "%s",
                 testenv_errstr());
    EXPECT_CSTR(r, AREDIS_REPLY_STATUS, "OK");
    expect_int(CMD(&g_conn, "STRLEN %s", key), SIZE);
    r = CMD(&g_conn, "GET %s", key);
    expect_type(r, AREDIS_REPLY_STRING);
    cr_assert_eq(r->len, (size_t)SIZE);
    cr_assert(memcmp(r->str, val, SIZE) == 0, "1 MiB value differs");
    free(val);
    expect_int(CMD(&g_conn, "DEL %s", key), 1);
}

Test(resp2, hgetall_is_flat_array)
{
    char key[96];
    testenv_key(key, sizeof key, "hash2");
    CMD(&g_conn, "DEL %s", key);
    expect_int(CMD(&g_conn, "HSET %s f1 v1", key), 1);
    const aredis_reply *r = CMD(&g_conn, "HGETALL %s", key);
    expect_aggregate(r, AREDIS_REPLY_ARRAY, 2);
    EXPECT_CSTR(&r->element[0], AREDIS_REPLY_STRING, "f1");
    EXPECT_CSTR(&r->element[1], AREDIS_REPLY_STRING, "v1");
    CMD(&g_conn, "DEL %s", key);
}

Test(resp2, debug_protocol_types_degrade)
{
    /* Without HELLO 3 the server encodes RESP3 types in RESP2 terms. */
    EXPECT_CSTR(CMD(&g_conn, "DEBUG PROTOCOL double"), AREDIS_REPLY_STRING,
                "3.141");
    expect_int(CMD(&g_conn, "DEBUG PROTOCOL true"), 1);
    expect_type(CMD(&g_conn, "DEBUG PROTOCOL null"), AREDIS_REPLY_NIL);
    expect_aggregate(CMD(&g_conn, "DEBUG PROTOCOL map"), AREDIS_REPLY_ARRAY, 6);
}

Test(resp2, unix_socket)
{
    testenv_conn u;
    cr_assert_eq(testenv_connect_unix(&u, &g_srv), 0, "%s", testenv_errstr());
    EXPECT_CSTR(CMD(&u, "ECHO %s", "over a unix socket"), AREDIS_REPLY_STRING,
                "over a unix socket");
    testenv_close(&u);
}

/* ------------------------------------------------------------------------
 * RESP3 (the suite's init sends HELLO 3)
 * ------------------------------------------------------------------------ */

Test(resp3, hello_reply_is_map)
{
    const aredis_reply *r = CMD(&g_conn, "HELLO 3");
    expect_type(r, AREDIS_REPLY_MAP);
    cr_assert_eq(r->len % 2, 0, "a map has key/value pairs");
    EXPECT_CSTR(aredis_reply_map_get(r, "server", 6), AREDIS_REPLY_STRING,
                "redis");
    expect_type(aredis_reply_map_get(r, "version", 7), AREDIS_REPLY_STRING);
    expect_type(aredis_reply_map_get(r, "modules", 7), AREDIS_REPLY_ARRAY);
    cr_assert_null(aredis_reply_map_get(r, "no-such-key", 11));
}

Test(resp3, string)
{
    EXPECT_CSTR(CMD(&g_conn, "DEBUG PROTOCOL string"), AREDIS_REPLY_STRING,
                "Hello World");
}

Test(resp3, integer)
{
    expect_int(CMD(&g_conn, "DEBUG PROTOCOL integer"), 12345);
}

Test(resp3, double_)
{
    const aredis_reply *r = CMD(&g_conn, "DEBUG PROTOCOL double");
    expect_type(r, AREDIS_REPLY_DOUBLE);
    cr_assert(fabs(r->dval - 3.141) < 1e-9, "got %.17g", r->dval);
    cr_assert_not_null(r->str);
    cr_assert(r->len >= 5 && strncmp(r->str, "3.141", 5) == 0, "text \"%.*s\"",
              (int)r->len, r->str);
}

Test(resp3, bignum)
{
    EXPECT_CSTR(CMD(&g_conn, "DEBUG PROTOCOL bignum"), AREDIS_REPLY_BIGNUM,
                "1234567999999999999999999999999999999");
}

Test(resp3, null)
{
    expect_type(CMD(&g_conn, "DEBUG PROTOCOL null"), AREDIS_REPLY_NIL);
}

Test(resp3, get_missing_is_null)
{
    char key[96];
    testenv_key(key, sizeof key, "missing3");
    CMD(&g_conn, "DEL %s", key);
    expect_type(CMD(&g_conn, "GET %s", key), AREDIS_REPLY_NIL);
}

Test(resp3, array)
{
    const aredis_reply *r = CMD(&g_conn, "DEBUG PROTOCOL array");
    expect_aggregate(r, AREDIS_REPLY_ARRAY, 3);
    for (size_t i = 0; i < 3; i++)
        expect_int(&r->element[i], (long long)i);
}

Test(resp3, set)
{
    const aredis_reply *r = CMD(&g_conn, "DEBUG PROTOCOL set");
    expect_aggregate(r, AREDIS_REPLY_SET, 3);
    for (size_t i = 0; i < 3; i++)
        expect_int(&r->element[i], (long long)i);
}

Test(resp3, map)
{
    /* %3 {0: false, 1: true, 2: false}: len counts keys and values. */
    const aredis_reply *r = CMD(&g_conn, "DEBUG PROTOCOL map");
    expect_aggregate(r, AREDIS_REPLY_MAP, 6);
    for (size_t i = 0; i < 3; i++) {
        expect_int(&r->element[2 * i], (long long)i);
        expect_bool(&r->element[2 * i + 1], i == 1);
    }
}

Test(resp3, attribute_is_attached_to_the_reply)
{
    const aredis_reply *r = CMD(&g_conn, "DEBUG PROTOCOL attrib");
    EXPECT_CSTR(r, AREDIS_REPLY_STRING,
                "Some real reply following the attribute");
    cr_assert_not_null(r->attrs, "the attribute was not attached");
    const aredis_reply *a = r->attrs;
    expect_aggregate(a, AREDIS_REPLY_ATTR, 2);
    EXPECT_CSTR(&a->element[0], AREDIS_REPLY_STRING, "key-popularity");
    const aredis_reply *v = aredis_reply_map_get(a, "key-popularity", 14);
    cr_assert_not_null(v, "map_get finds the attribute's value");
    expect_aggregate(v, AREDIS_REPLY_ARRAY, 2);
    EXPECT_CSTR(&v->element[0], AREDIS_REPLY_STRING, "key:123");
    expect_int(&v->element[1], 90);
    /* The next reply carries no stale attributes. */
    const aredis_reply *p = CMD(&g_conn, "PING");
    EXPECT_CSTR(p, AREDIS_REPLY_STATUS, "PONG");
    cr_assert_null(p->attrs);
}

Test(resp3, push_then_reply)
{
    /* DEBUG PROTOCOL push sends a push, then an ordinary reply. */
    const aredis_reply *r = CMD(&g_conn, "DEBUG PROTOCOL push");
    expect_aggregate(r, AREDIS_REPLY_PUSH, 2);
    EXPECT_CSTR(&r->element[0], AREDIS_REPLY_STRING, "server-cpu-usage");
    expect_int(&r->element[1], 42);
    EXPECT_CSTR(next_reply(&g_conn), AREDIS_REPLY_STRING,
                "Some real reply following the push reply");
}

Test(resp3, true_and_false)
{
    expect_bool(CMD(&g_conn, "DEBUG PROTOCOL true"), 1);
    expect_bool(CMD(&g_conn, "DEBUG PROTOCOL false"), 0);
}

Test(resp3, verbatim)
{
    const aredis_reply *r = CMD(&g_conn, "DEBUG PROTOCOL verbatim");
    EXPECT_CSTR(r, AREDIS_REPLY_VERB, "This is a verbatim\nstring");
    cr_assert_str_eq(r->vformat, "txt");
}

Test(resp3, hgetall_is_map)
{
    char key[96];
    testenv_key(key, sizeof key, "hash3");
    CMD(&g_conn, "DEL %s", key);
    expect_int(CMD(&g_conn, "HSET %s f1 v1 f2 %b", key, "v\0 2", (size_t)4), 2);
    const aredis_reply *r = CMD(&g_conn, "HGETALL %s", key);
    expect_aggregate(r, AREDIS_REPLY_MAP, 4);
    EXPECT_CSTR(aredis_reply_map_get(r, "f1", 2), AREDIS_REPLY_STRING, "v1");
    expect_str(aredis_reply_map_get(r, "f2", 2), AREDIS_REPLY_STRING, "v\0 2",
               4);
    CMD(&g_conn, "DEL %s", key);
}

Test(resp3, config_get_is_map)
{
    const aredis_reply *r = CMD(&g_conn, "CONFIG GET %s", "appendonly");
    expect_aggregate(r, AREDIS_REPLY_MAP, 2);
    EXPECT_CSTR(aredis_reply_map_get(r, "appendonly", 10), AREDIS_REPLY_STRING,
                "no");
}

Test(resp3, client_tracking_invalidation_push)
{
    char key[96];
    testenv_key(key, sizeof key, "tracked");
    testenv_conn other;
    connect_to(&other);

    EXPECT_CSTR(CMD(&g_conn, "CLIENT TRACKING ON"), AREDIS_REPLY_STATUS, "OK");
    EXPECT_CSTR(CMD(&other, "SET %s v1", key), AREDIS_REPLY_STATUS, "OK");
    EXPECT_CSTR(CMD(&g_conn, "GET %s", key), AREDIS_REPLY_STRING, "v1");
    /* Another client changes the key: the server pushes an invalidation
     * to us (RESP3 push, "invalidate" + the keys). */
    EXPECT_CSTR(CMD(&other, "SET %s v2", key), AREDIS_REPLY_STATUS, "OK");
    const aredis_reply *p = next_reply(&g_conn);
    expect_aggregate(p, AREDIS_REPLY_PUSH, 2);
    EXPECT_CSTR(&p->element[0], AREDIS_REPLY_STRING, "invalidate");
    expect_aggregate(&p->element[1], AREDIS_REPLY_ARRAY, 1);
    EXPECT_CSTR(&p->element[1].element[0], AREDIS_REPLY_STRING, key);

    CMD(&other, "DEL %s", key);
    testenv_close(&other);
}

Test(resp3, subscribe_and_message_are_pushes)
{
    char chan[96];
    testenv_key(chan, sizeof chan, "channel");
    testenv_conn other;
    connect_to(&other);

    const aredis_reply *r = CMD(&g_conn, "SUBSCRIBE %s", chan);
    expect_aggregate(r, AREDIS_REPLY_PUSH, 3);
    EXPECT_CSTR(&r->element[0], AREDIS_REPLY_STRING, "subscribe");
    EXPECT_CSTR(&r->element[1], AREDIS_REPLY_STRING, chan);
    expect_int(&r->element[2], 1);

    expect_int(CMD(&other, "PUBLISH %s %s", chan, "hello"), 1);
    r = next_reply(&g_conn);
    expect_aggregate(r, AREDIS_REPLY_PUSH, 3);
    EXPECT_CSTR(&r->element[0], AREDIS_REPLY_STRING, "message");
    EXPECT_CSTR(&r->element[1], AREDIS_REPLY_STRING, chan);
    EXPECT_CSTR(&r->element[2], AREDIS_REPLY_STRING, "hello");

    /* RESP3 allows ordinary commands on a subscribed connection. */
    EXPECT_CSTR(CMD(&g_conn, "PING"), AREDIS_REPLY_STATUS, "PONG");
    testenv_close(&other);
}
