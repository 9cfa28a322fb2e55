/* Unit tests for the extras' command queue (extras/cmdbuf.c): what is
 * queued in printf or vector form decodes back to the same arguments,
 * binary safe; EVALSHA/WATCH lists get their count; the checks of what a
 * transaction may hold come from the command table the client routes by;
 * errors leave the queue unchanged.
 * No server, no I/O. */
#include <criterion/criterion.h>

#include <stdarg.h>
#include <string.h>

#include "aredis/error.h"
#include "extras/cmdbuf.h"

static aredis__cmdbuf q;

static void setup(void)
{
    aredis__cmdbuf_init(&q);
}

static void teardown(void)
{
    aredis__cmdbuf_cleanup(&q);
}

static int fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int e = aredis__cmdbuf_vfmt(&q, f, ap);
    va_end(ap);
    return e;
}

static void expect(size_t i, int argc, const char *const *want,
                   const size_t *wantlen)
{
    int n;
    const char *const *argv;
    const size_t *argvlen;
    cr_assert_eq(aredis__cmdbuf_decode(&q, i, &n, &argv, &argvlen), 0);
    cr_assert_eq(n, argc, "command %zu", i);
    for (int k = 0; k < argc; k++) {
        size_t l = wantlen ? wantlen[k] : strlen(want[k]);
        cr_assert_eq(argvlen[k], l, "command %zu arg %d", i, k);
        cr_assert(memcmp(argv[k], want[k], l) == 0, "command %zu arg %d", i, k);
    }
}

TestSuite(cmdbuf, .init = setup, .fini = teardown);

Test(cmdbuf, round_trips)
{
    cr_assert_eq(fmt("SET %s %b", "key", "v\0w", (size_t)3), 0);
    const char *argv[] = {"RPUSH", "list", "", "x"};
    cr_assert_eq(aredis__cmdbuf_argv(&q, 4, argv, NULL), 0);
    cr_assert_eq(fmt("INCRBY %s %lld", "n", -12345678901LL), 0);
    cr_assert_eq(q.n, 3);
    const char *w0[] = {"SET", "key", "v\0w"};
    size_t l0[] = {3, 3, 3};
    expect(0, 3, w0, l0);
    expect(1, 4, argv, NULL);
    const char *w2[] = {"INCRBY", "n", "-12345678901"};
    expect(2, 3, w2, NULL);
    size_t len;
    const char *name = aredis__cmdbuf_name(&q, 1, &len);
    cr_assert_eq(len, 5);
    cr_assert(memcmp(name, "RPUSH", 5) == 0);
    aredis__cmdbuf_clear(&q);
    cr_assert_eq(q.n, 0);
    cr_assert_eq(fmt("PING"), 0);
    const char *w3[] = {"PING"};
    expect(0, 1, w3, NULL);
}

Test(cmdbuf, many_commands_and_wide_ones)
{
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(fmt("SET k:%d %d", i, i), 0);
    const char *args[40];
    for (int i = 0; i < 40; i++)
        args[i] = "a";
    args[0] = "MSET";
    cr_assert_eq(aredis__cmdbuf_argv(&q, 40, args, NULL), 0);
    const char *w[] = {"SET", "k:999", "999"};
    expect(999, 3, w, NULL);
    expect(1000, 40, args, NULL);
}

Test(cmdbuf, lists_with_and_without_a_count)
{
    const char *head[] = {"EVALSHA", "0123"};
    const char *keys[] = {"k1", "k\0"};
    size_t keylens[] = {2, 2};
    const char *args[] = {"a1"};
    cr_assert_eq(
        aredis__cmdbuf_lists(&q, 2, head, 1, 2, keys, keylens, 1, args, NULL),
        0);
    const char *w[] = {"EVALSHA", "0123", "2", "k1", "k\0", "a1"};
    size_t wl[] = {7, 4, 1, 2, 2, 2};
    expect(0, 6, w, wl);
    const char *watch[] = {"WATCH"};
    cr_assert_eq(
        aredis__cmdbuf_lists(&q, 1, watch, 0, 1, keys, NULL, 0, NULL, NULL), 0);
    const char *w1[] = {"WATCH", "k1"};
    expect(1, 2, w1, NULL);
    cr_assert_eq(
        aredis__cmdbuf_lists(&q, 2, head, 1, 0, NULL, NULL, 0, NULL, NULL), 0);
    const char *w2[] = {"EVALSHA", "0123", "0"};
    expect(2, 3, w2, NULL);
    /* Counts of several digits. */
    const char *many[12];
    for (int i = 0; i < 12; i++)
        many[i] = "k";
    cr_assert_eq(
        aredis__cmdbuf_lists(&q, 2, head, 1, 12, many, NULL, 0, NULL, NULL), 0);
    int n;
    const char *const *argv;
    const size_t *argvlen;
    cr_assert_eq(aredis__cmdbuf_decode(&q, 3, &n, &argv, &argvlen), 0);
    cr_assert_eq(n, 15);
    cr_assert_eq(argvlen[2], 2);
    cr_assert(memcmp(argv[2], "12", 2) == 0);
}

Test(cmdbuf, errors_leave_the_queue_unchanged)
{
    cr_assert_eq(fmt("PING"), 0);
    cr_assert_eq(fmt("GET %q", "x"), AREDIS_EFORMAT);
    cr_assert_eq(fmt(""), AREDIS_EFORMAT);
    cr_assert_eq(fmt(NULL), AREDIS_EFORMAT);
    cr_assert_eq(aredis__cmdbuf_argv(&q, 0, NULL, NULL), AREDIS_EINVAL);
    const char *head[] = {"EVALSHA", "x"};
    const char *bad[] = {NULL};
    cr_assert_eq(
        aredis__cmdbuf_lists(&q, 2, head, 1, 1, bad, NULL, 0, NULL, NULL),
        AREDIS_EINVAL);
    cr_assert_eq(
        aredis__cmdbuf_lists(&q, 2, head, 1, -1, NULL, NULL, 0, NULL, NULL),
        AREDIS_EINVAL);
    cr_assert_eq(
        aredis__cmdbuf_lists(&q, 2, head, 1, 1, NULL, NULL, 0, NULL, NULL),
        AREDIS_EINVAL);
    cr_assert_eq(q.n, 1);
    const char *w[] = {"PING"};
    expect(0, 1, w, NULL);
}

Test(cmdbuf, commands_refused_in_a_transaction_are_recognised)
{
    const char *cases[][2] = {
        {"BLPOP k 0", "1"},
        {"brpop k 0", "1"},
        {"BLMOVE a b LEFT RIGHT 0", "1"},
        {"BZPOPMIN z 1", "1"},
        {"WAIT 1 0", "1"},
        {"WAITAOF 0 1 0", "1"},
        {"XREAD COUNT 1 BLOCK 0 STREAMS s $", "1"},
        {"XREADGROUP GROUP g c BLOCK 10 STREAMS s >", "1"},
        {"XREAD COUNT 1 STREAMS block 0", "0"}, /* a stream named block */
        {"LPOP k", "0"},
        {"GET blpop", "0"},
        {"MULTI", "1"},
        {"exec", "1"},
        {"DISCARD", "1"},
        {"WATCH k", "1"},
        {"SAVE", "1"},
        {"UNWATCH", "0"},
        {"XREAD COUNT 1 STREAMS s $", "0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        aredis__cmdbuf_clear(&q);
        cr_assert_eq(fmt(cases[i][0]), 0);
        cr_assert_eq(aredis__cmdbuf_no_multi(&q, 0), cases[i][1][0] - '0', "%s",
                     cases[i][0]);
    }
}

Test(cmdbuf, client_refusals_are_recognised)
{
    const char *cases[][2] = {
        {"SELECT 1", "1"},      {"select 2", "1"},     {"SUBSCRIBE a", "1"},
        {"PSUBSCRIBE a*", "1"}, {"SSUBSCRIBE s", "1"}, {"UNSUBSCRIBE", "1"},
        {"PUNSUBSCRIBE", "1"},  {"SUNSUBSCRIBE", "1"}, {"PUBLISH a b", "0"},
        {"GET select", "0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        aredis__cmdbuf_clear(&q);
        cr_assert_eq(fmt(cases[i][0]), 0);
        cr_assert_eq(aredis__cmdbuf_is_refused(&q, 0), cases[i][1][0] - '0',
                     "%s", cases[i][0]);
    }
}
