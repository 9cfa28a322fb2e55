/* Integration tests of streams against the real standalone server: every
 * stream command through the ordinary command API with the values it
 * returns checked, the reply views of include/aredis/stream.h on RESP2 and
 * RESP3, XREAD ... BLOCK on its exclusive connection, and the
 * consumer-group helper (exactly-once sharing, claiming from a dead
 * consumer, stop and free). Keys are named after the test process, in
 * database 0, so tests sharing the server never meet. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aredis/aredis.h"
#include "aredis/stream.h"
#include "testclient.h"
#include "testenv.h"

static testenv_server srv;

static void setup(void)
{
    testclient_standalone(&srv, NULL, 0, 0);
}

TestSuite(streams, .init = setup, .timeout = 120);

static aredis_client *connect_proto(aredis_loop *loop, int proto)
{
    char url[160];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0?protocol=%d", srv.port,
             proto);
    return testclient_new(loop, url);
}

/* ---- a command and its reply, kept until the end of the test --------------
 */

static aredis_reply *kept[512];
static size_t nkept;

typedef struct slot {
    int done;
    aredis_reply *r;
} slot;

static void keep_cb(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    slot *s = ud;
    cr_assert_eq(s->done, 0, "exactly once");
    s->r = aredis_reply_dup(r);
    s->done = 1;
}

/* Send a command, wait for it, return its reply (freed by release_all()). */
static const aredis_reply *call(aredis_loop *loop, aredis_client *c,
                                const char *fmt, ...)
{
    slot s = {0};
    va_list ap;
    va_start(ap, fmt);
    cr_assert_eq(aredis_vcommand(c, keep_cb, &s, fmt, ap), 0, "%s", fmt);
    va_end(ap);
    cr_assert(testloop_run_until(loop, &s.done, 10000), "no reply to %s", fmt);
    cr_assert_not_null(s.r);
    cr_assert_lt(nkept, sizeof kept / sizeof *kept);
    kept[nkept++] = s.r;
    return s.r;
}

static void release_all(void)
{
    while (nkept > 0)
        aredis_reply_free(kept[--nkept]);
}

static int text_is(const aredis_reply *r, const char *s)
{
    return r != NULL &&
           (r->type == AREDIS_REPLY_STRING || r->type == AREDIS_REPLY_STATUS) &&
           r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

static const char *show(const aredis_reply *r)
{
    static char buf[300];
    if (r == NULL)
        return "(no reply)";
    if (r->type == AREDIS_REPLY_INTEGER)
        snprintf(buf, sizeof buf, "integer %lld", r->integer);
    else if (r->type == AREDIS_REPLY_ARRAY || r->type == AREDIS_REPLY_MAP)
        snprintf(buf, sizeof buf, "%s of %zu", aredis_reply_type_name(r->type),
                 r->len);
    else if (r->str != NULL)
        snprintf(buf, sizeof buf, "%s '%.*s'", aredis_reply_type_name(r->type),
                 (int)r->len, r->str);
    else
        snprintf(buf, sizeof buf, "%s", aredis_reply_type_name(r->type));
    return buf;
}

/* Each evaluates its reply argument once (it is often a call()). */
#define expect_str(r, s)                                                     \
    do {                                                                     \
        const aredis_reply *r_ = (r);                                        \
        cr_assert(text_is(r_, (s)), "expected '%s', got %s", (s), show(r_)); \
    } while (0)
#define expect_int(r, v)                                                  \
    do {                                                                  \
        const aredis_reply *r_ = (r);                                     \
        cr_assert(r_->type == AREDIS_REPLY_INTEGER && r_->integer == (v), \
                  "expected %lld, got %s", (long long)(v), show(r_));     \
    } while (0)
#define expect_err(r, prefix)                                            \
    do {                                                                 \
        const aredis_reply *r_ = (r);                                    \
        cr_assert(r_->type == AREDIS_REPLY_ERROR &&                      \
                      r_->code == AREDIS_ESERVER &&                      \
                      strncmp(r_->str, (prefix), strlen(prefix)) == 0,   \
                  "expected error '%s...', got %s", (prefix), show(r_)); \
    } while (0)
#define expect_nil(r)                                                   \
    do {                                                                \
        const aredis_reply *r_ = (r);                                   \
        cr_assert(r_->type == AREDIS_REPLY_NIL, "expected nil, got %s", \
                  show(r_));                                            \
    } while (0)

/* A field of XINFO's answers: a map in RESP3, a flat key/value array in
 * RESP2. */
static const aredis_reply *info(const aredis_reply *r, const char *key)
{
    if (r->type == AREDIS_REPLY_MAP)
        return aredis_reply_map_get(r, key, strlen(key));
    if (r->type == AREDIS_REPLY_ARRAY)
        for (size_t i = 0; i + 1 < r->len; i += 2)
            if (text_is(&r->element[i], key))
                return &r->element[i + 1];
    return NULL;
}

static long long info_int(const aredis_reply *r, const char *key)
{
    const aredis_reply *v = info(r, key);
    cr_assert_not_null(v, "no '%s' in %s", key, show(r));
    cr_assert_eq(v->type, AREDIS_REPLY_INTEGER, "'%s' is %s", key, show(v));
    return v->integer;
}

/* The id and one field of an entry view, checked. */
static void expect_entry(const aredis_stream_entry *e, const char *id,
                         const char *field, const char *value)
{
    cr_assert_eq(e->idlen, strlen(id));
    cr_assert(memcmp(e->id, id, e->idlen) == 0, "id %.*s, expected %s",
              (int)e->idlen, e->id, id);
    if (field != NULL) {
        const aredis_reply *v =
            aredis_stream_entry_field(e, field, strlen(field));
        cr_assert_not_null(v, "%s has no field %s", id, field);
        expect_str(v, value);
    }
}

static void entry_at(const aredis_reply *entries, size_t i,
                     aredis_stream_entry *e)
{
    cr_assert_eq(aredis_stream_entry_at(entries, i, e), 0, "entry %zu of %s", i,
                 show(entries));
}

/* The ids of an entry list, "a,b,c". */
static const char *ids_of(const aredis_reply *entries)
{
    static char buf[1024];
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < entries->len; i++) {
        aredis_stream_entry e;
        entry_at(entries, i, &e);
        used += (size_t)snprintf(buf + used, sizeof buf - used, "%s%.*s",
                                 i ? "," : "", (int)e.idlen, e.id);
    }
    return buf;
}

static void key_for(char *buf, size_t n, const char *what, int proto)
{
    char tag[64];
    snprintf(tag, sizeof tag, "%s%d", what, proto);
    testenv_key(buf, n, tag);
}

/* ---- ids
 * ------------------------------------------------------------------------ */

Test(streams, id_parse)
{
    uint64_t ms = 9, seq = 9;
    cr_assert_eq(aredis_stream_id_parse("1526919030474-55", 16, &ms, &seq), 0);
    cr_assert_eq(ms, 1526919030474ull);
    cr_assert_eq(seq, 55);
    cr_assert_eq(aredis_stream_id_parse("42", 2, &ms, &seq), 0);
    cr_assert_eq(ms, 42);
    cr_assert_eq(seq, 0);
    const char *max = "18446744073709551615-18446744073709551615";
    cr_assert_eq(aredis_stream_id_parse(max, strlen(max), &ms, &seq), 0);
    cr_assert_eq(ms, UINT64_MAX);
    cr_assert_eq(seq, UINT64_MAX);
    static const char *const bad[] = {
        "",     "-",   "1-",    "-1",
        "a-1",  "1-a", "1-2-3", "18446744073709551616-0",
        "1 -2", "1-2 "};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_eq(aredis_stream_id_parse(bad[i], strlen(bad[i]), NULL, NULL),
                     AREDIS_EINVAL, "'%s'", bad[i]);
    /* Only len bytes count. */
    cr_assert_eq(aredis_stream_id_parse("7-8xyz", 3, &ms, &seq), 0);
    cr_assert_eq(seq, 8);
}

/* ---- XADD
 * ------------------------------------------------------------------------ */

static void xadd_checks(int proto)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = connect_proto(loop, proto);
    char s[64], t[64], u[64], none[64];
    key_for(s, sizeof s, "xadd", proto);
    key_for(t, sizeof t, "xaddapprox", proto);
    key_for(u, sizeof u, "xaddminid", proto);
    key_for(none, sizeof none, "xaddnone", proto);

    /* Explicit ids, a sequence chosen by the server, and '*'. */
    expect_str(call(loop, c, "XADD %s 1-1 a 1", s), "1-1");
    expect_str(call(loop, c, "XADD %s 1-2 b 2", s), "1-2");
    expect_str(call(loop, c, "XADD %s 1-* c 3", s), "1-3");
    expect_err(call(loop, c, "XADD %s 1-1 x 1", s),
               "ERR The ID specified in XADD is equal or smaller");
    expect_err(call(loop, c, "XADD %s 0-0 x 1", s), "ERR The ID specified");
    const aredis_reply *id = call(loop, c, "XADD %s * d 4", s);
    cr_assert_eq(id->type, AREDIS_REPLY_STRING, "%s", show(id));
    uint64_t ms = 0, seq = 0;
    cr_assert_eq(aredis_stream_id_parse(id->str, id->len, &ms, &seq), 0);
    const aredis_reply *tm = call(loop, c, "TIME");
    unsigned long long server_ms =
        strtoull(tm->element[0].str, NULL, 10) * 1000;
    cr_assert(ms + 60000 > server_ms && ms < server_ms + 60000,
              "'*' id %llu near the server's clock %llu",
              (unsigned long long)ms, server_ms);
    expect_int(call(loop, c, "XLEN %s", s), 4);

    /* MAXLEN, exact: only the newest two stay. */
    const aredis_reply *last = call(loop, c, "XADD %s MAXLEN 2 * e 5", s);
    expect_int(call(loop, c, "XLEN %s", s), 2);
    const aredis_reply *rest = call(loop, c, "XRANGE %s - +", s);
    cr_assert_eq(rest->len, 2);
    aredis_stream_entry e;
    entry_at(rest, 0, &e);
    expect_entry(&e, id->str, "d", "4");
    entry_at(rest, 1, &e);
    expect_entry(&e, last->str, "e", "5");

    /* MAXLEN ~: whole nodes (100 entries by default) go, so at least the
     * asked length stays, and far fewer than the 1001 there were. */
    slot done[1000];
    memset(done, 0, sizeof done);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(
            aredis_command(c, keep_cb, &done[i], "XADD %s * i %d", t, i), 0);
    cr_assert(testloop_run_until(loop, &done[999].done, 10000));
    for (int i = 0; i < 1000; i++) {
        cr_assert_eq(done[i].r->type, AREDIS_REPLY_STRING);
        aredis_reply_free(done[i].r);
    }
    call(loop, c, "XADD %s MAXLEN ~ 100 * i last", t);
    const aredis_reply *len = call(loop, c, "XLEN %s", t);
    cr_assert(len->integer >= 100 && len->integer <= 200, "%lld", len->integer);
    /* LIMIT bounds the work of one approximate trim: 0 entries here. */
    long long before = len->integer;
    call(loop, c, "XADD %s MAXLEN ~ 1 LIMIT 1 * i limited", t);
    expect_int(call(loop, c, "XLEN %s", t), before + 1);

    /* MINID: entries below the id go. */
    for (int i = 1; i <= 10; i++)
        call(loop, c, "XADD %s %d-0 n %d", u, i, i);
    expect_str(call(loop, c, "XADD %s MINID 5 11-0 n 11", u), "11-0");
    expect_int(call(loop, c, "XLEN %s", u), 7);
    const aredis_reply *first = call(loop, c, "XRANGE %s - + COUNT 1", u);
    entry_at(first, 0, &e);
    expect_entry(&e, "5-0", "n", "5");
    /* MINID ~ leaves a partly trimmable node alone. */
    call(loop, c, "XADD %s MINID ~ 8 12-0 n 12", u);
    expect_int(call(loop, c, "XLEN %s", u), 8);

    /* NOMKSTREAM: no stream is created for it. */
    expect_nil(call(loop, c, "XADD %s NOMKSTREAM * f v", none));
    expect_int(call(loop, c, "EXISTS %s", none), 0);
    expect_str(call(loop, c, "XADD %s NOMKSTREAM 13-0 n 13", u), "13-0");

    call(loop, c, "DEL %s %s %s", s, t, u);
    release_all();
    cr_assert_eq(aredis_client_pending(c), 0);
    aredis_client_free(c);
    testloop_free(loop);
}

Test(streams, xadd_ids_trimming_and_nomkstream)
{
    xadd_checks(2);
    xadd_checks(3);
}

/* ---- XRANGE, XREVRANGE, XLEN
 * ----------------------------------------------------- */

static void range_checks(int proto)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = connect_proto(loop, proto);
    char s[64], none[64];
    key_for(s, sizeof s, "range", proto);
    key_for(none, sizeof none, "rangenone", proto);
    for (int i = 1; i <= 5; i++)
        call(loop, c, "XADD %s %d-0 n %d sq %d", s, i, i, i * i);
    expect_int(call(loop, c, "XLEN %s", s), 5);
    expect_int(call(loop, c, "XLEN %s", none), 0);

    const aredis_reply *all = call(loop, c, "XRANGE %s - +", s);
    cr_assert_eq(all->type, AREDIS_REPLY_ARRAY);
    cr_assert_str_eq(ids_of(all), "1-0,2-0,3-0,4-0,5-0");
    for (size_t i = 0; i < 5; i++) {
        aredis_stream_entry e;
        entry_at(all, i, &e);
        char n[8], sq[8];
        snprintf(n, sizeof n, "%zu", i + 1);
        snprintf(sq, sizeof sq, "%zu", (i + 1) * (i + 1));
        cr_assert_eq(e.nfields, 2);
        cr_assert_eq(e.id_only, 0);
        expect_str(&e.fields[0], "n");
        expect_str(&e.fields[1], n);
        expect_entry(&e, e.id, "sq", sq);
        cr_assert_null(aredis_stream_entry_field(&e, "nope", 4));
    }
    cr_assert_str_eq(ids_of(call(loop, c, "XRANGE %s 2 4", s)), "2-0,3-0,4-0");
    cr_assert_str_eq(ids_of(call(loop, c, "XRANGE %s (2-0 + COUNT 2", s)),
                     "3-0,4-0");
    cr_assert_str_eq(ids_of(call(loop, c, "XREVRANGE %s + - COUNT 2", s)),
                     "5-0,4-0");
    cr_assert_str_eq(ids_of(call(loop, c, "XREVRANGE %s 4 (2-0", s)),
                     "4-0,3-0");
    const aredis_reply *empty = call(loop, c, "XRANGE %s - +", none);
    cr_assert_eq(empty->type, AREDIS_REPLY_ARRAY);
    cr_assert_eq(empty->len, 0);
    aredis_stream_entry e;
    cr_assert_eq(aredis_stream_entry_at(empty, 0, &e), AREDIS_EINVAL);

    call(loop, c, "DEL %s", s);
    release_all();
    aredis_client_free(c);
    testloop_free(loop);
}

Test(streams, xrange_xrevrange_xlen)
{
    range_checks(2);
    range_checks(3);
}

/* ---- XREAD
 * ----------------------------------------------------------------------- */

typedef struct timed {
    slot s;
    long long at;
} timed;

static void timed_cb(aredis_client *c, const aredis_reply *r, void *ud)
{
    timed *t = ud;
    t->at = testenv_now_ms();
    keep_cb(c, r, &t->s);
}

static void xread_checks(int proto)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = connect_proto(loop, proto);
    char s1[64], s2[64];
    key_for(s1, sizeof s1, "read1", proto);
    key_for(s2, sizeof s2, "read2", proto);
    call(loop, c, "XADD %s 1-0 a 1", s1);
    call(loop, c, "XADD %s 2-0 a 2", s1);
    call(loop, c, "XADD %s 7-0 b 7", s2);

    /* RESP3 answers a map stream -> entries, RESP2 an array of pairs: the
     * view reads both. */
    const aredis_reply *r =
        call(loop, c, "XREAD COUNT 10 STREAMS %s %s 0 0", s1, s2);
    cr_assert_eq(r->type, proto == 3 ? AREDIS_REPLY_MAP : AREDIS_REPLY_ARRAY,
                 "%s", show(r));
    cr_assert_eq(aredis_stream_read_count(r), 2);
    aredis_stream_read sr;
    cr_assert_eq(aredis_stream_read_at(r, 0, &sr), 0);
    cr_assert_eq(sr.namelen, strlen(s1));
    cr_assert(memcmp(sr.name, s1, sr.namelen) == 0);
    cr_assert_eq(sr.nentries, 2);
    cr_assert_str_eq(ids_of(sr.entries), "1-0,2-0");
    aredis_stream_entry e;
    entry_at(sr.entries, 1, &e);
    expect_entry(&e, "2-0", "a", "2");
    cr_assert_eq(aredis_stream_read_at(r, 1, &sr), 0);
    cr_assert(memcmp(sr.name, s2, sr.namelen) == 0);
    cr_assert_str_eq(ids_of(sr.entries), "7-0");
    cr_assert_eq(aredis_stream_read_at(r, 2, &sr), AREDIS_EINVAL);

    /* After the last id: COUNT and the start id apply per stream. */
    r = call(loop, c, "XREAD COUNT 1 STREAMS %s %s 1-0 0", s1, s2);
    cr_assert_eq(aredis_stream_read_count(r), 2);
    cr_assert_eq(aredis_stream_read_at(r, 0, &sr), 0);
    cr_assert_str_eq(ids_of(sr.entries), "2-0");

    /* Nothing new: nil, which the view counts as no stream. */
    r = call(loop, c, "XREAD STREAMS %s 2-0", s1);
    expect_nil(r);
    cr_assert_eq(aredis_stream_read_count(r), 0);
    long long t0 = testenv_now_ms();
    r = call(loop, c, "XREAD BLOCK 100 STREAMS %s $", s1);
    expect_nil(r);
    cr_assert_geq(testenv_now_ms() - t0, 90, "BLOCK 100 waited");

    /* XREAD BLOCK waits on an exclusive connection: a PING on the same
     * client is answered at once, and an XADD sent after it wakes it. */
    timed xread = {0}, ping = {0};
    t0 = testenv_now_ms();
    /* After 2-0 rather than '$': the XADD below cannot be missed however
     * long the exclusive connection takes to open. */
    cr_assert_eq(aredis_command(c, timed_cb, &xread,
                                "XREAD BLOCK 10000 STREAMS %s 2-0", s1),
                 0);
    cr_assert_eq(aredis_command(c, timed_cb, &ping, "PING"), 0);
    cr_assert(testloop_run_until(loop, &ping.s.done, 5000));
    expect_str(ping.s.r, "PONG");
    cr_assert_lt(ping.at - t0, 1000, "PING was not stalled by XREAD BLOCK");
    cr_assert_eq(xread.s.done, 0, "XREAD still blocked");
    /* Still waiting a while later: it is blocked, not slow. */
    for (int i = 0; i < 20; i++)
        testloop_run_once(loop, 10);
    cr_assert_eq(xread.s.done, 0);
    const aredis_reply *added = call(loop, c, "XADD %s * woke up", s1);
    cr_assert(testloop_run_until(loop, &xread.s.done, 5000));
    cr_assert_lt(xread.at - t0, 9000, "woken by the XADD, not the timeout");
    cr_assert_eq(aredis_stream_read_count(xread.s.r), 1, "%s", show(xread.s.r));
    cr_assert_eq(aredis_stream_read_at(xread.s.r, 0, &sr), 0);
    cr_assert_eq(sr.nentries, 1);
    entry_at(sr.entries, 0, &e);
    expect_entry(&e, added->str, "woke", "up");
    aredis_reply_free(xread.s.r);
    aredis_reply_free(ping.s.r);

    call(loop, c, "DEL %s %s", s1, s2);
    release_all();
    cr_assert_eq(aredis_client_pending(c), 0);
    aredis_client_free(c);
    testloop_free(loop);
}

Test(streams, xread_and_xread_block_on_its_own_connection)
{
    xread_checks(2);
    xread_checks(3);
}

/* ---- XGROUP
 * ---------------------------------------------------------------------- */

static const aredis_reply *group_info(aredis_loop *loop, aredis_client *c,
                                      const char *s, const char *g)
{
    const aredis_reply *groups = call(loop, c, "XINFO GROUPS %s", s);
    cr_assert_eq(groups->type, AREDIS_REPLY_ARRAY, "%s", show(groups));
    for (size_t i = 0; i < groups->len; i++)
        if (text_is(info(&groups->element[i], "name"), g))
            return &groups->element[i];
    cr_assert_fail("no group %s", g);
    return NULL;
}

static void xgroup_checks(int proto)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = connect_proto(loop, proto);
    char s[64];
    key_for(s, sizeof s, "group", proto);
    expect_err(call(loop, c, "XGROUP CREATE %s g $", s),
               "ERR The XGROUP subcommand requires the key to exist");
    expect_str(call(loop, c, "XGROUP CREATE %s g $ MKSTREAM", s), "OK");
    expect_int(call(loop, c, "XLEN %s", s), 0);
    expect_err(call(loop, c, "XGROUP CREATE %s g $", s), "BUSYGROUP");
    expect_int(call(loop, c, "XGROUP CREATECONSUMER %s g c1", s), 1);
    expect_int(call(loop, c, "XGROUP CREATECONSUMER %s g c1", s), 0);
    expect_err(call(loop, c, "XGROUP CREATECONSUMER %s nogroup c1", s),
               "NOGROUP");

    for (int i = 1; i <= 3; i++)
        call(loop, c, "XADD %s %d-0 n %d", s, i, i);
    /* The group was created at $ (nothing then): all three are new. */
    const aredis_reply *r =
        call(loop, c, "XREADGROUP GROUP g c1 STREAMS %s >", s);
    aredis_stream_read sr;
    cr_assert_eq(aredis_stream_read_at(r, 0, &sr), 0);
    cr_assert_str_eq(ids_of(sr.entries), "1-0,2-0,3-0");
    const aredis_reply *gi = group_info(loop, c, s, "g");
    cr_assert_eq(info_int(gi, "consumers"), 1);
    cr_assert_eq(info_int(gi, "pending"), 3);
    expect_str(info(gi, "last-delivered-id"), "3-0");

    /* SETID moves the group's last-delivered id; ENTRIESREAD its counter. */
    expect_str(call(loop, c, "XGROUP SETID %s g 1-0 ENTRIESREAD 1", s), "OK");
    gi = group_info(loop, c, s, "g");
    expect_str(info(gi, "last-delivered-id"), "1-0");
    cr_assert_eq(info_int(gi, "entries-read"), 1);
    cr_assert_eq(info_int(gi, "lag"), 2);
    r = call(loop, c, "XREADGROUP GROUP g c2 STREAMS %s >", s);
    cr_assert_eq(aredis_stream_read_at(r, 0, &sr), 0);
    cr_assert_str_eq(ids_of(sr.entries), "2-0,3-0", "delivered again to c2");

    /* DELCONSUMER answers the number of entries the consumer had pending:
     * c1 still has 1-0 (2-0 and 3-0 moved to c2). */
    expect_int(call(loop, c, "XGROUP DELCONSUMER %s g c1", s), 1);
    expect_int(call(loop, c, "XGROUP DELCONSUMER %s g c1", s), 0);
    gi = group_info(loop, c, s, "g");
    cr_assert_eq(info_int(gi, "consumers"), 1);
    cr_assert_eq(info_int(gi, "pending"), 2);

    expect_int(call(loop, c, "XGROUP DESTROY %s g", s), 1);
    expect_int(call(loop, c, "XGROUP DESTROY %s g", s), 0);
    r = call(loop, c, "XINFO GROUPS %s", s);
    cr_assert_eq(r->len, 0);
    expect_err(call(loop, c, "XREADGROUP GROUP g c2 STREAMS %s >", s),
               "NOGROUP");

    call(loop, c, "DEL %s", s);
    release_all();
    aredis_client_free(c);
    testloop_free(loop);
}

Test(streams, xgroup_create_destroy_setid_createconsumer_delconsumer)
{
    xgroup_checks(2);
    xgroup_checks(3);
}

/* ---- XREADGROUP, XACK, XPENDING
 * ---------------------------------------------------- */

static void pending_checks(int proto)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = connect_proto(loop, proto);
    char s[64];
    key_for(s, sizeof s, "pending", proto);
    for (int i = 1; i <= 5; i++)
        call(loop, c, "XADD %s %d-0 n %d", s, i, i);
    expect_str(call(loop, c, "XGROUP CREATE %s g 0", s), "OK");
    aredis_stream_read sr;
    const aredis_reply *r =
        call(loop, c, "XREADGROUP GROUP g alice COUNT 3 STREAMS %s >", s);
    cr_assert_eq(aredis_stream_read_count(r), 1);
    cr_assert_eq(aredis_stream_read_at(r, 0, &sr), 0);
    cr_assert_str_eq(ids_of(sr.entries), "1-0,2-0,3-0");
    aredis_stream_entry e;
    entry_at(sr.entries, 2, &e);
    expect_entry(&e, "3-0", "n", "3");
    r = call(loop, c, "XREADGROUP GROUP g bob STREAMS %s >", s);
    cr_assert_eq(aredis_stream_read_at(r, 0, &sr), 0);
    cr_assert_str_eq(ids_of(sr.entries), "4-0,5-0");
    expect_nil(call(loop, c, "XREADGROUP GROUP g bob STREAMS %s >", s));

    /* Summary: count, smallest and greatest id, per-consumer counts. */
    r = call(loop, c, "XPENDING %s g", s);
    cr_assert_eq(r->type, AREDIS_REPLY_ARRAY);
    cr_assert_eq(r->len, 4);
    expect_int(&r->element[0], 5);
    expect_str(&r->element[1], "1-0");
    expect_str(&r->element[2], "5-0");
    const aredis_reply *who = &r->element[3];
    cr_assert_eq(who->len, 2);
    expect_str(&who->element[0].element[0], "alice");
    expect_str(&who->element[0].element[1], "3");
    expect_str(&who->element[1].element[0], "bob");
    expect_str(&who->element[1].element[1], "2");

    /* Extended form. */
    r = call(loop, c, "XPENDING %s g - + 10", s);
    cr_assert_eq(r->len, 5);
    aredis_stream_pending p;
    cr_assert_eq(aredis_stream_pending_at(r, 0, &p), 0);
    cr_assert_eq(p.idlen, 3);
    cr_assert(memcmp(p.id, "1-0", 3) == 0);
    cr_assert(p.consumerlen == 5 && memcmp(p.consumer, "alice", 5) == 0);
    cr_assert_eq(p.deliveries, 1);
    cr_assert(p.idle_ms >= 0 && p.idle_ms < 60000, "%lld", p.idle_ms);
    cr_assert_eq(aredis_stream_pending_at(r, 4, &p), 0);
    cr_assert(p.consumerlen == 3 && memcmp(p.consumer, "bob", 3) == 0);
    cr_assert_eq(aredis_stream_pending_at(r, 5, &p), AREDIS_EINVAL);
    r = call(loop, c, "XPENDING %s g - + 10 bob", s);
    cr_assert_eq(r->len, 2);
    r = call(loop, c, "XPENDING %s g IDLE 3600000 - + 10", s);
    cr_assert_eq(r->len, 0, "nothing idle for an hour");

    /* XACK counts what it removed; an unknown id is ignored. */
    expect_int(call(loop, c, "XACK %s g 1-0 2-0 9-0", s), 2);
    expect_int(call(loop, c, "XACK %s g 1-0", s), 0);
    expect_int(&call(loop, c, "XPENDING %s g", s)->element[0], 3);

    /* History (id 0 instead of >): alice's own pending entries. */
    r = call(loop, c, "XREADGROUP GROUP g alice STREAMS %s 0", s);
    cr_assert_eq(aredis_stream_read_at(r, 0, &sr), 0);
    cr_assert_str_eq(ids_of(sr.entries), "3-0");
    /* A pending entry deleted from the stream shows as [id, nil]. */
    expect_int(call(loop, c, "XDEL %s 3-0", s), 1);
    r = call(loop, c, "XREADGROUP GROUP g alice STREAMS %s 0", s);
    cr_assert_eq(aredis_stream_read_at(r, 0, &sr), 0);
    cr_assert_eq(sr.nentries, 1);
    entry_at(sr.entries, 0, &e);
    cr_assert_eq(e.id_only, 1, "deleted entry");
    cr_assert_eq(e.nfields, 0);
    expect_entry(&e, "3-0", NULL, NULL);

    call(loop, c, "DEL %s", s);
    release_all();
    aredis_client_free(c);
    testloop_free(loop);
}

Test(streams, xreadgroup_xack_xpending)
{
    pending_checks(2);
    pending_checks(3);
}

/* ---- XCLAIM, XAUTOCLAIM
 * ---------------------------------------------------------------- */

static void claim_checks(int proto)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = connect_proto(loop, proto);
    char s[64];
    key_for(s, sizeof s, "claim", proto);
    for (int i = 1; i <= 6; i++)
        call(loop, c, "XADD %s %d-0 n %d", s, i, i);
    call(loop, c, "XGROUP CREATE %s g 0", s);
    call(loop, c, "XREADGROUP GROUP g alice COUNT 6 STREAMS %s >", s);

    /* XCLAIM with min-idle 0 takes them now, entries and all. */
    const aredis_reply *r = call(loop, c, "XCLAIM %s g bob 0 1-0 2-0", s);
    cr_assert_str_eq(ids_of(r), "1-0,2-0");
    aredis_stream_entry e;
    entry_at(r, 1, &e);
    expect_entry(&e, "2-0", "n", "2");
    r = call(loop, c, "XPENDING %s g - + 10 bob", s);
    cr_assert_eq(r->len, 2);
    aredis_stream_pending p;
    cr_assert_eq(aredis_stream_pending_at(r, 0, &p), 0);
    cr_assert_eq(p.deliveries, 2, "a claim counts as a delivery");
    /* JUSTID: ids only, and no delivery counted. */
    r = call(loop, c, "XCLAIM %s g bob 0 3-0 JUSTID", s);
    cr_assert_eq(r->len, 1);
    entry_at(r, 0, &e);
    cr_assert_eq(e.id_only, 1);
    expect_entry(&e, "3-0", NULL, NULL);
    r = call(loop, c, "XPENDING %s g - + 10 bob", s);
    cr_assert_eq(aredis_stream_pending_at(r, 2, &p), 0);
    cr_assert_eq(p.deliveries, 1);
    /* Not idle long enough: nothing. */
    r = call(loop, c, "XCLAIM %s g carol 3600000 4-0", s);
    cr_assert_eq(r->len, 0);

    /* XAUTOCLAIM walks the pending list with a cursor. */
    r = call(loop, c, "XAUTOCLAIM %s g carol 0 0-0 COUNT 2", s);
    aredis_stream_autoclaim ac;
    cr_assert_eq(aredis_stream_autoclaim_parse(r, &ac), 0, "%s", show(r));
    cr_assert_eq(ac.nentries, 2);
    cr_assert_str_eq(ids_of(ac.entries), "1-0,2-0");
    cr_assert(ac.next_idlen == 3 && memcmp(ac.next_id, "3-0", 3) == 0, "%.*s",
              (int)ac.next_idlen, ac.next_id);
    cr_assert_eq(ac.ndeleted, 0);
    cr_assert_not_null(ac.deleted, "Redis 7 sends the deleted ids");
    r = call(loop, c, "XAUTOCLAIM %s g carol 0 3-0 COUNT 10", s);
    cr_assert_eq(aredis_stream_autoclaim_parse(r, &ac), 0);
    cr_assert_str_eq(ids_of(ac.entries), "3-0,4-0,5-0,6-0");
    cr_assert(ac.next_idlen == 3 && memcmp(ac.next_id, "0-0", 3) == 0);
    r = call(loop, c, "XPENDING %s g - + 10 carol", s);
    cr_assert_eq(r->len, 6, "carol has them all");

    /* An entry deleted while pending: reported and dropped from the PEL. */
    expect_int(call(loop, c, "XDEL %s 5-0", s), 1);
    r = call(loop, c, "XAUTOCLAIM %s g dave 0 0-0 COUNT 10 JUSTID", s);
    cr_assert_eq(aredis_stream_autoclaim_parse(r, &ac), 0);
    cr_assert_str_eq(ids_of(ac.entries), "1-0,2-0,3-0,4-0,6-0");
    cr_assert_eq(ac.ndeleted, 1);
    expect_str(&ac.deleted->element[0], "5-0");
    expect_int(&call(loop, c, "XPENDING %s g", s)->element[0], 5);

    cr_assert_eq(aredis_stream_autoclaim_parse(call(loop, c, "PING"), &ac),
                 AREDIS_EPROTO);
    call(loop, c, "DEL %s", s);
    release_all();
    aredis_client_free(c);
    testloop_free(loop);
}

Test(streams, xclaim_and_xautoclaim)
{
    claim_checks(2);
    claim_checks(3);
}

/* ---- XTRIM, XDEL
 * ------------------------------------------------------------------------ */

static void trim_checks(int proto)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = connect_proto(loop, proto);
    char s[64];
    key_for(s, sizeof s, "trim", proto);
    for (int i = 1; i <= 10; i++)
        call(loop, c, "XADD %s %d-0 n %d", s, i, i);
    expect_int(call(loop, c, "XTRIM %s MAXLEN 8", s), 2);
    expect_int(call(loop, c, "XTRIM %s MINID 5", s), 2);
    expect_int(call(loop, c, "XLEN %s", s), 6);
    /* Approximate trimming removes whole nodes only: none here. */
    expect_int(call(loop, c, "XTRIM %s MAXLEN ~ 1", s), 0);
    expect_int(call(loop, c, "XTRIM %s MINID = 6", s), 1);
    expect_int(call(loop, c, "XDEL %s 6-0 7-0 99-0", s), 2);
    expect_int(call(loop, c, "XDEL %s 7-0", s), 0);
    expect_int(call(loop, c, "XLEN %s", s), 3);
    cr_assert_str_eq(ids_of(call(loop, c, "XRANGE %s - +", s)), "8-0,9-0,10-0");
    /* XINFO keeps what deletion and trimming did. */
    const aredis_reply *in = call(loop, c, "XINFO STREAM %s", s);
    expect_str(info(in, "max-deleted-entry-id"), "7-0");
    cr_assert_eq(info_int(in, "entries-added"), 10);
    call(loop, c, "DEL %s", s);
    release_all();
    aredis_client_free(c);
    testloop_free(loop);
}

Test(streams, xtrim_and_xdel)
{
    trim_checks(2);
    trim_checks(3);
}

/* ---- XINFO
 * -------------------------------------------------------------------------------
 */

static void xinfo_checks(int proto)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = connect_proto(loop, proto);
    char s[64];
    key_for(s, sizeof s, "info", proto);
    call(loop, c, "XADD %s 1-0 a 1", s);
    call(loop, c, "XADD %s 2-0 b 2", s);
    call(loop, c, "XADD %s 3-0 c 3", s);
    call(loop, c, "XGROUP CREATE %s g 0", s);
    call(loop, c, "XREADGROUP GROUP g alice COUNT 2 STREAMS %s >", s);

    const aredis_reply *in = call(loop, c, "XINFO STREAM %s", s);
    cr_assert_eq(in->type, proto == 3 ? AREDIS_REPLY_MAP : AREDIS_REPLY_ARRAY);
    cr_assert_eq(info_int(in, "length"), 3);
    cr_assert_eq(info_int(in, "groups"), 1);
    cr_assert_eq(info_int(in, "entries-added"), 3);
    expect_str(info(in, "last-generated-id"), "3-0");
    aredis_stream_entry e;
    cr_assert_eq(aredis_stream_entry_parse(info(in, "first-entry"), &e), 0);
    expect_entry(&e, "1-0", "a", "1");
    cr_assert_eq(aredis_stream_entry_parse(info(in, "last-entry"), &e), 0);
    expect_entry(&e, "3-0", "c", "3");

    const aredis_reply *full = call(loop, c, "XINFO STREAM %s FULL", s);
    cr_assert_eq(info_int(full, "length"), 3);
    const aredis_reply *entries = info(full, "entries");
    cr_assert_not_null(entries);
    cr_assert_str_eq(ids_of(entries), "1-0,2-0,3-0");
    const aredis_reply *groups = info(full, "groups");
    cr_assert_eq(groups->len, 1);
    cr_assert_eq(info_int(&groups->element[0], "pel-count"), 2);

    const aredis_reply *gi = group_info(loop, c, s, "g");
    cr_assert_eq(info_int(gi, "consumers"), 1);
    cr_assert_eq(info_int(gi, "pending"), 2);
    expect_str(info(gi, "last-delivered-id"), "2-0");
    cr_assert_eq(info_int(gi, "entries-read"), 2);
    cr_assert_eq(info_int(gi, "lag"), 1);

    const aredis_reply *cs = call(loop, c, "XINFO CONSUMERS %s g", s);
    cr_assert_eq(cs->type, AREDIS_REPLY_ARRAY);
    cr_assert_eq(cs->len, 1);
    expect_str(info(&cs->element[0], "name"), "alice");
    cr_assert_eq(info_int(&cs->element[0], "pending"), 2);
    cr_assert_geq(info_int(&cs->element[0], "idle"), 0);

    expect_err(call(loop, c, "XINFO CONSUMERS %s nogroup", s), "NOGROUP");
    call(loop, c, "DEL %s", s);
    expect_err(call(loop, c, "XINFO STREAM %s", s), "ERR no such key");
    release_all();
    aredis_client_free(c);
    testloop_free(loop);
}

Test(streams, xinfo_stream_groups_consumers)
{
    xinfo_checks(2);
    xinfo_checks(3);
}

/* ---- the views on malformed input
 * ------------------------------------------------------------ */

Test(streams, views_refuse_what_is_not_a_stream_reply)
{
    aredis_reply str = {.type = AREDIS_REPLY_STRING, .str = "1-0", .len = 3};
    aredis_reply integer = {.type = AREDIS_REPLY_INTEGER, .integer = 5};
    aredis_reply pair[2] = {str, integer};
    aredis_reply bad_entry = {.type = AREDIS_REPLY_ARRAY, .len = 2};
    bad_entry.element = pair;
    aredis_stream_entry e;
    cr_assert_eq(aredis_stream_entry_parse(&str, &e), 0, "JUSTID form");
    cr_assert_eq(e.id_only, 1);
    cr_assert_eq(aredis_stream_entry_parse(&integer, &e), AREDIS_EPROTO);
    cr_assert_eq(aredis_stream_entry_parse(&bad_entry, &e), AREDIS_EPROTO);
    cr_assert_eq(aredis_stream_entry_parse(NULL, &e), AREDIS_EINVAL);
    aredis_reply odd_fields[3] = {str, str, str};
    aredis_reply fields = {.type = AREDIS_REPLY_ARRAY, .len = 3};
    fields.element = odd_fields;
    aredis_reply odd_pair[2] = {str, fields};
    aredis_reply odd = {.type = AREDIS_REPLY_ARRAY, .len = 2};
    odd.element = odd_pair;
    cr_assert_eq(aredis_stream_entry_parse(&odd, &e), AREDIS_EPROTO);
    cr_assert_eq(aredis_stream_read_count(&integer), 0);
    aredis_stream_read sr;
    aredis_reply streams = {.type = AREDIS_REPLY_ARRAY, .len = 2};
    streams.element = pair;
    cr_assert_eq(aredis_stream_read_at(&streams, 0, &sr), AREDIS_EPROTO);
    cr_assert_eq(aredis_stream_read_at(&streams, 2, &sr), AREDIS_EINVAL);
    aredis_stream_pending p;
    cr_assert_eq(aredis_stream_pending_at(&streams, 0, &p), AREDIS_EPROTO);
}

/* ---- the consumer-group helper
 * ---------------------------------------------------------------- */

#define SHARE_N 1000

typedef struct tally {
    int counts[SHARE_N]; /* deliveries per entry index */
    int claimed_flags;   /* deliveries flagged AREDIS_STREAM_CLAIMED */
    int per_consumer[2];
    int total;
    int reject;     /* answer AREDIS_STREAM_REJECT */
    int stopped[2]; /* the stop completed: no callback may follow */
    int stop_calls[2];
    int errors;
    char last_error[256];
    long long first_claim_at;
    int stop_inside_at; /* > 0: stop from the callback at this delivery */
    int free_inside_at; /* > 0: free from the callback at this delivery */
    aredis_stream_consumer *sc[2];
} tally;

static int which(tally *t, aredis_stream_consumer *sc)
{
    return sc == t->sc[1];
}

static void on_stopped(aredis_stream_consumer *sc, void *ud)
{
    tally *t = ud;
    int w = which(t, sc);
    t->stop_calls[w]++;
    t->stopped[w] = 1;
}

static int on_entry(aredis_stream_consumer *sc, const aredis_stream_entry *e,
                    unsigned flags, void *ud)
{
    tally *t = ud;
    int w = which(t, sc);
    cr_assert_eq(t->stopped[w], 0, "no entry after the stop completed");
    const aredis_reply *v = aredis_stream_entry_field(e, "i", 1);
    cr_assert_not_null(v);
    long i = strtol(v->str, NULL, 10);
    cr_assert(i >= 0 && i < SHARE_N);
    t->counts[i]++;
    t->per_consumer[w]++;
    t->total++;
    if (flags & AREDIS_STREAM_CLAIMED) {
        if (t->claimed_flags++ == 0)
            t->first_claim_at = testenv_now_ms();
    }
    if (t->stop_inside_at > 0 && t->total == t->stop_inside_at)
        cr_assert_eq(aredis_stream_consumer_stop(sc, on_stopped, t), 0);
    if (t->free_inside_at > 0 && t->total == t->free_inside_at) {
        aredis_stream_consumer_free(sc);
        t->sc[w] = NULL;
        t->stopped[w] = 1; /* nothing may follow a free either */
    }
    return t->reject ? AREDIS_STREAM_REJECT : AREDIS_STREAM_ACCEPT;
}

static void on_error(aredis_stream_consumer *sc, const aredis_reply *err,
                     void *ud)
{
    (void)sc;
    tally *t = ud;
    t->errors++;
    snprintf(t->last_error, sizeof t->last_error, "%s: %.*s",
             aredis_err_name(err->code), (int)err->len, err->str);
}

static int run_until_count(aredis_loop *loop, const int *v, int want,
                           int timeout_ms)
{
    for (int waited = 0; *v < want && waited < timeout_ms; waited += 5)
        testloop_run_once(loop, 5);
    return *v >= want;
}

static aredis_stream_consumer *consumer(aredis_client *c, aredis_loop *loop,
                                        const char *s, const char *name,
                                        tally *t, aredis_stream_consumer_opts o)
{
    o.stream = s;
    o.group = "workers";
    o.consumer = name;
    o.on_entry = on_entry;
    o.on_error = on_error;
    o.ud = t;
    aredis_status st;
    aredis_stream_consumer *sc = aredis_stream_consumer_new(c, loop, &o, &st);
    cr_assert_not_null(sc, "%s", st.msg);
    return sc;
}

static void stop_and_wait(aredis_loop *loop, tally *t, int w)
{
    long long t0 = testenv_now_ms();
    cr_assert_eq(aredis_stream_consumer_stop(t->sc[w], on_stopped, t), 0);
    cr_assert_eq(t->stop_calls[w], 0, "never inside the call");
    cr_assert_eq(aredis_stream_consumer_stop(t->sc[w], on_stopped, t),
                 AREDIS_ESTATE, "already stopping");
    cr_assert(testloop_run_until(loop, &t->stopped[w], 5000),
              "stop never completed");
    cr_assert_lt(testenv_now_ms() - t0, 3000, "a stop takes about block_ms");
}

static void share_checks(int proto)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c1 = connect_proto(loop, proto);
    aredis_client *c2 = connect_proto(loop, proto);
    char s[64];
    key_for(s, sizeof s, "share", proto);
    tally *t = calloc(1, sizeof *t);
    aredis_stream_consumer_opts o = {.count = 10,
                                     .block_ms = 200,
                                     .create_group = 1,
                                     .create_id = "0",
                                     .claim_min_idle_ms = 60000};
    t->sc[0] = consumer(c1, loop, s, "one", t, o);
    t->sc[1] = consumer(c2, loop, s, "two", t, o);

    /* Half the entries before the consumers start, half while they run
     * (blocked reads woken by new entries). */
    slot added[SHARE_N];
    memset(added, 0, sizeof added);
    for (int i = 0; i < SHARE_N / 2; i++)
        aredis_command(c1, keep_cb, &added[i], "XADD %s * i %d", s, i);
    cr_assert(testloop_run_until(loop, &added[SHARE_N / 2 - 1].done, 10000));
    cr_assert_eq(aredis_stream_consumer_start(t->sc[0]), 0);
    cr_assert_eq(aredis_stream_consumer_start(t->sc[1]), 0);
    cr_assert_eq(aredis_stream_consumer_start(t->sc[1]), AREDIS_ESTATE);
    cr_assert_eq(t->total, 0, "nothing inside start");
    run_until_count(loop, &t->total, 100, 10000);
    for (int i = SHARE_N / 2; i < SHARE_N; i++)
        aredis_command(c1, keep_cb, &added[i], "XADD %s * i %d", s, i);
    cr_assert(run_until_count(loop, &t->total, SHARE_N, 30000), "%d of %d",
              t->total, SHARE_N);
    for (int i = 0; i < SHARE_N; i++) {
        cr_assert(added[i].done && added[i].r->type == AREDIS_REPLY_STRING);
        aredis_reply_free(added[i].r);
    }

    /* Wait for the acknowledgements, then stop both. */
    aredis_stream_consumer_stats st[2];
    for (int waited = 0; waited < 10000; waited += 5) {
        aredis_stream_consumer_stats_get(t->sc[0], &st[0]);
        aredis_stream_consumer_stats_get(t->sc[1], &st[1]);
        if (st[0].acked + st[1].acked >= SHARE_N)
            break;
        testloop_run_once(loop, 5);
    }
    stop_and_wait(loop, t, 0);
    stop_and_wait(loop, t, 1);
    for (int i = 0; i < 20; i++)
        testloop_run_once(loop, 5); /* nothing more may arrive */
    cr_assert_eq(t->stop_calls[0], 1);
    cr_assert_eq(t->stop_calls[1], 1);

    for (int i = 0; i < SHARE_N; i++)
        cr_assert_eq(t->counts[i], 1, "entry %d processed %d times", i,
                     t->counts[i]);
    cr_assert_eq(t->total, SHARE_N);
    cr_assert_gt(t->per_consumer[0], 0, "both consumers took a share");
    cr_assert_gt(t->per_consumer[1], 0, "both consumers took a share");
    aredis_stream_consumer_stats_get(t->sc[0], &st[0]);
    aredis_stream_consumer_stats_get(t->sc[1], &st[1]);
    cr_assert_eq(st[0].delivered + st[1].delivered, SHARE_N);
    cr_assert_eq(st[0].accepted + st[1].accepted, SHARE_N);
    cr_assert_eq(st[0].acked + st[1].acked, SHARE_N);
    cr_assert_eq(st[0].claimed + st[1].claimed, 0);
    cr_assert_eq(t->errors, 0, "%s", t->last_error);

    const aredis_reply *p = call(loop, c1, "XPENDING %s workers", s);
    expect_int(&p->element[0], 0);
    const aredis_reply *gi = group_info(loop, c1, s, "workers");
    cr_assert_eq(info_int(gi, "pending"), 0);
    cr_assert_eq(info_int(gi, "entries-read"), SHARE_N);
    cr_assert_eq(info_int(gi, "consumers"), 2);

    aredis_stream_consumer_free(t->sc[0]);
    aredis_stream_consumer_free(t->sc[1]);
    call(loop, c1, "DEL %s", s);
    release_all();
    cr_assert_eq(aredis_client_pending(c1), 0);
    cr_assert_eq(aredis_client_pending(c2), 0);
    aredis_client_free(c1);
    aredis_client_free(c2);
    testloop_free(loop);
    free(t);
}

Test(streams, consumer_two_consumers_share_1000_entries_exactly_once)
{
    share_checks(2);
    share_checks(3);
}

static void dead_consumer_checks(int proto)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = connect_proto(loop, proto);
    char s[64];
    key_for(s, sizeof s, "dead", proto);
    tally *t = calloc(1, sizeof *t);
    for (int i = 0; i < 20; i++)
        call(loop, c, "XADD %s * i %d", s, i);

    /* "one" takes everything and dies before acknowledging any of it. */
    t->reject = 1;
    t->sc[0] = consumer(
        c, loop, s, "one", t,
        (aredis_stream_consumer_opts){
            .count = 50, .block_ms = 200, .create_group = 1, .create_id = "0"});
    cr_assert_eq(aredis_stream_consumer_start(t->sc[0]), 0);
    cr_assert(run_until_count(loop, &t->total, 20, 5000));
    long long died_at = testenv_now_ms();
    stop_and_wait(loop, t, 0);
    aredis_stream_consumer_free(t->sc[0]);
    t->sc[0] = NULL;
    const aredis_reply *pend = call(loop, c, "XPENDING %s workers - + 100", s);
    cr_assert_eq(pend->len, 20, "left pending by the dead consumer");
    aredis_stream_pending p;
    cr_assert_eq(aredis_stream_pending_at(pend, 0, &p), 0);
    cr_assert(p.consumerlen == 3 && memcmp(p.consumer, "one", 3) == 0);

    /* "two" claims them once they have been idle 300 ms. */
    t->reject = 0;
    t->total = 0;
    memset(t->counts, 0, sizeof t->counts);
    t->sc[1] = consumer(c, loop, s, "two", t,
                        (aredis_stream_consumer_opts){.count = 10,
                                                      .block_ms = 200,
                                                      .claim_min_idle_ms = 300,
                                                      .claim_interval_ms = 50,
                                                      .claim_count = 7});
    cr_assert_eq(aredis_stream_consumer_start(t->sc[1]), 0);
    cr_assert(run_until_count(loop, &t->total, 20, 5000), "claimed %d",
              t->total);
    cr_assert_geq(t->first_claim_at - died_at, 250,
                  "claimed only after the idle limit (%lld ms)",
                  t->first_claim_at - died_at);
    cr_assert_eq(t->claimed_flags, 20, "all flagged as claimed");
    for (int i = 0; i < 20; i++)
        cr_assert_eq(t->counts[i], 1, "entry %d claimed %d times", i,
                     t->counts[i]);
    aredis_stream_consumer_stats st;
    for (int waited = 0; waited < 5000; waited += 5) {
        aredis_stream_consumer_stats_get(t->sc[1], &st);
        if (st.acked >= 20)
            break;
        testloop_run_once(loop, 5);
    }
    cr_assert_eq(st.claimed, 20);
    cr_assert_eq(st.acked, 20);
    stop_and_wait(loop, t, 1);
    expect_int(&call(loop, c, "XPENDING %s workers", s)->element[0], 0);
    cr_assert_eq(t->errors, 0, "%s", t->last_error);
    aredis_stream_consumer_free(t->sc[1]);

    call(loop, c, "DEL %s", s);
    release_all();
    cr_assert_eq(aredis_client_pending(c), 0);
    aredis_client_free(c);
    testloop_free(loop);
    free(t);
}

Test(streams, consumer_claims_entries_of_a_dead_consumer)
{
    dead_consumer_checks(2);
    dead_consumer_checks(3);
}

Test(streams, consumer_stop_restart_and_free)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = connect_proto(loop, 3);
    char s[64];
    key_for(s, sizeof s, "lifecycle", 3);
    tally *t = calloc(1, sizeof *t);
    aredis_stream_consumer_opts o = {
        .count = 5, .block_ms = 300, .create_group = 1};
    aredis_status st;
    cr_assert_null(aredis_stream_consumer_new(
        c, loop, &(aredis_stream_consumer_opts){.stream = s}, &st));
    cr_assert_eq(st.code, AREDIS_EINVAL);
    t->sc[0] = consumer(c, loop, s, "one", t, o);
    cr_assert_eq(aredis_stream_consumer_stop(t->sc[0], on_stopped, t),
                 AREDIS_ESTATE, "not running");

    /* Stop while the read blocks: completes after the read returns. */
    cr_assert_eq(aredis_stream_consumer_start(t->sc[0]), 0);
    for (int i = 0; i < 30; i++)
        testloop_run_once(loop, 5);
    stop_and_wait(loop, t, 0);
    cr_assert_eq(t->stop_calls[0], 1);

    /* Started again, it picks up entries added meanwhile ("$" was the
     * group's start, when it was created at the first start). */
    t->stopped[0] = 0;
    call(loop, c, "XADD %s * i 1", s);
    cr_assert_eq(aredis_stream_consumer_start(t->sc[0]), 0);
    cr_assert(run_until_count(loop, &t->total, 1, 5000));
    cr_assert_eq(t->counts[1], 1);

    /* Stop from inside the callback: the rest of the batch is still
     * delivered and acknowledged, then the stop completes. */
    t->stop_inside_at = 3;
    /* One script adds the four entries, so that the blocked read is
     * served once, with all of them, after it. */
    call(loop, c, "EVAL %s 1 %s",
         "for i = 2, 5 do redis.call('XADD', KEYS[1], '*', 'i', i) end", s);
    cr_assert(testloop_run_until(loop, &t->stopped[0], 5000));
    cr_assert_eq(t->stop_calls[0], 2);
    cr_assert_eq(t->total, 5, "all of the batch, %d", t->total);
    expect_int(&call(loop, c, "XPENDING %s workers", s)->element[0], 0);

    /* Free while the read blocks: no callback afterwards, nothing leaks. */
    t->stopped[0] = 0;
    t->stop_inside_at = 0;
    cr_assert_eq(aredis_stream_consumer_start(t->sc[0]), 0);
    for (int i = 0; i < 30; i++)
        testloop_run_once(loop, 5);
    aredis_stream_consumer_free(t->sc[0]);
    t->sc[0] = NULL;
    t->stopped[0] = 1;
    call(loop, c, "XADD %s * i 6", s);
    for (int i = 0; i < 100 && aredis_client_pending(c) > 0; i++)
        testloop_run_once(loop, 10);
    cr_assert_eq(aredis_client_pending(c), 0,
                 "the freed consumer's read ended");
    cr_assert_eq(t->counts[6], 0);
    cr_assert_eq(t->stop_calls[0], 2);

    /* Free from inside the callback. */
    t->stopped[0] = 0;
    t->sc[0] = consumer(c, loop, s, "two", t, o);
    t->free_inside_at = t->total + 1;
    cr_assert_eq(aredis_stream_consumer_start(t->sc[0]), 0);
    call(loop, c, "XADD %s * i 7", s);
    call(loop, c, "XADD %s * i 8", s);
    cr_assert(run_until_count(loop, &t->total, t->free_inside_at, 5000));
    for (int i = 0; i < 100 && aredis_client_pending(c) > 0; i++)
        testloop_run_once(loop, 10);
    cr_assert_null(t->sc[0]);
    cr_assert_eq(t->errors, 0, "%s", t->last_error);

    call(loop, c, "DEL %s", s);
    release_all();
    aredis_client_free(c);
    testloop_free(loop);
    free(t);
}

Test(streams, consumer_recovers_from_a_missing_group)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = connect_proto(loop, 2);
    char s[64];
    key_for(s, sizeof s, "nogroup", 2);
    tally *t = calloc(1, sizeof *t);
    t->sc[0] = consumer(
        c, loop, s, "one", t,
        (aredis_stream_consumer_opts){.block_ms = 200, .retry_ms = 50});
    cr_assert_eq(aredis_stream_consumer_start(t->sc[0]), 0);
    cr_assert(run_until_count(loop, &t->errors, 2, 5000), "retried");
    cr_assert(strstr(t->last_error, "NOGROUP") != NULL, "%s", t->last_error);
    call(loop, c, "XGROUP CREATE %s workers $ MKSTREAM", s);
    for (int i = 0; i < 30; i++)
        testloop_run_once(loop, 5);
    call(loop, c, "XADD %s * i 3", s);
    cr_assert(run_until_count(loop, &t->total, 1, 5000));
    cr_assert_eq(t->counts[3], 1);
    stop_and_wait(loop, t, 0);
    aredis_stream_consumer_free(t->sc[0]);
    call(loop, c, "DEL %s", s);
    release_all();
    aredis_client_free(c);
    testloop_free(loop);
    free(t);
}

Test(streams, consumer_outlived_by_nothing_when_the_client_goes_first)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = connect_proto(loop, 3);
    char s[64];
    key_for(s, sizeof s, "clientgone", 3);
    tally *t = calloc(1, sizeof *t);
    t->sc[0] = consumer(
        c, loop, s, "one", t,
        (aredis_stream_consumer_opts){
            .block_ms = 5000, .create_group = 1, .claim_min_idle_ms = 100});
    cr_assert_eq(aredis_stream_consumer_start(t->sc[0]), 0);
    for (int i = 0; i < 40; i++)
        testloop_run_once(loop, 5);
    /* The client goes while the read blocks: the consumer is told, sends
     * nothing more, and can still be stopped and freed. */
    aredis_client_free(c);
    cr_assert(run_until_count(loop, &t->errors, 1, 5000));
    cr_assert(strstr(t->last_error, "AREDIS_ECANCELED") != NULL, "%s",
              t->last_error);
    for (int i = 0; i < 60; i++)
        testloop_run_once(loop, 5); /* past a claim interval */
    cr_assert_eq(aredis_stream_consumer_stop(t->sc[0], on_stopped, t), 0);
    cr_assert(testloop_run_until(loop, &t->stopped[0], 2000));
    cr_assert_eq(aredis_stream_consumer_start(t->sc[0]), AREDIS_ESTATE);
    aredis_stream_consumer_free(t->sc[0]);
    testloop_free(loop);
    free(t);

    /* Clean up the stream with a client of its own. */
    loop = testloop_new();
    c = connect_proto(loop, 3);
    call(loop, c, "DEL %s", s);
    release_all();
    aredis_client_free(c);
    testloop_free(loop);
}
