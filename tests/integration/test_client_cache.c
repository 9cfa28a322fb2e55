/* Integration tests of server-assisted client-side caching
 * (include/aredis/client_cache.h) against real servers: hits and misses,
 * invalidation by another client, and the staleness cases (C2): replies
 * held back by the fault proxy while another client writes, CLIENT KILL of
 * the cached connection, FLUSHALL, a tracking table of 10 keys, each with
 * 0 stale reads over 100 keys; RESP2 REDIRECT mode and the loss of its
 * connection (C4); bounded memory over many distinct keys (C5); BCAST and
 * OPTIN; exactly-once completion with the client or the cache freed while
 * reads are in flight.
 *
 * Each test has a private server (they FLUSHALL, CLIENT KILL and
 * reconfigure it); the writer is a blocking client of its own. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aredis/aredis.h"
#include "faults.h"
#include "testenv.h"
#include "testloop.h"

TestSuite(ccache, .timeout = 120);

typedef struct env {
    testenv_server s;
    aredis_loop *loop;
    aredis_client *c;
    aredis_ccache *cc;
    aredis_sync *w; /* the writer: another client */
    faults_proxy proxy;
    int proxied;
} env;

static int active(const void *arg)
{
    return aredis_ccache_get_state(arg) == AREDIS_CCACHE_ACTIVE;
}

static void wait_active(env *e)
{
    cr_assert(faults_run_until(e->loop, active, e->cc, 10000),
              "the cache never became active (state %d)",
              aredis_ccache_get_state(e->cc));
}

static void env_open(env *e, const char *tag, int protocol,
                     const aredis_ccache_opts *o, int proxied)
{
    memset(e, 0, sizeof *e);
    cr_assert_eq(testenv_private_start(&e->s, tag, NULL), 0, "%s",
                 testenv_errstr());
    int port = e->s.port;
    if (proxied) {
        cr_assert_eq(faults_proxy_start(&e->proxy, e->s.port), 0, "%s",
                     testenv_errstr());
        port = e->proxy.port;
        e->proxied = 1;
    }
    char url[128];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
    e->loop = testloop_new();
    e->c = aredis_client_new(
        e->loop, &(aredis_options){.url = url, .protocol = protocol}, NULL);
    cr_assert_not_null(e->c);
    aredis_status st;
    e->cc = aredis_ccache_new(e->c, o, &st);
    cr_assert_not_null(e->cc, "%s", st.msg);
    char wurl[128];
    snprintf(wurl, sizeof wurl, "redis://127.0.0.1:%d/0", e->s.port);
    e->w = aredis_sync_connect(&(aredis_options){.url = wurl}, &st);
    cr_assert_not_null(e->w, "%s", st.msg);
    wait_active(e);
}

static void env_close(env *e)
{
    aredis_ccache_free(e->cc);
    aredis_client_free(e->c);
    faults_run_for(e->loop, 20);
    testloop_free(e->loop);
    aredis_sync_free(e->w);
    if (e->proxied)
        faults_proxy_stop(&e->proxy);
    testenv_private_stop(&e->s);
}

/* The writer: a command, its reply checked not to be an error. */
static void wcmd(env *e, const char *fmt, ...) AREDIS_PRINTF(2, 3);
static void wcmd(env *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    aredis_reply *r = aredis_sync_vcommand(e->w, fmt, ap);
    va_end(ap);
    cr_assert_not_null(r);
    cr_assert_neq(r->type, AREDIS_REPLY_ERROR, "%s", r->str);
    aredis_reply_free(r);
}

/* One read's outcome. */
typedef struct rd {
    int calls;
    int type;
    int code;
    char val[256];
} rd;

static void on_rd(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    rd *x = ud;
    cr_assert_not_null(r);
    x->calls++;
    x->type = r->type;
    x->code = r->code;
    snprintf(x->val, sizeof x->val, "%.*s",
             r->type == AREDIS_REPLY_NIL ? 3 : (int)r->len,
             r->type == AREDIS_REPLY_NIL ? "nil" : r->str);
}

static int rd_done(const void *arg)
{
    return ((const rd *)arg)->calls > 0;
}

/* GET through the cache and wait; *hit says whether it was one. */
static void cget(env *e, const char *key, rd *x, int *hit)
{
    aredis_ccache_stats before, after;
    aredis_ccache_get_stats(e->cc, &before);
    memset(x, 0, sizeof *x);
    cr_assert_eq(aredis_ccache_command(e->cc, on_rd, x, "GET %s", key), 0);
    cr_assert(faults_run_until(e->loop, rd_done, x, 10000), "GET %s", key);
    cr_assert_eq(x->calls, 1);
    aredis_ccache_get_stats(e->cc, &after);
    if (hit != NULL)
        *hit = after.hits > before.hits;
}

typedef struct synced {
    int calls, status;
} synced;

static void on_sync(aredis_ccache *cc, int status, void *ud)
{
    (void)cc;
    synced *s = ud;
    s->calls++;
    s->status = status;
}

static int sync_done(const void *arg)
{
    return ((const synced *)arg)->calls > 0;
}

static int ccsync(env *e)
{
    synced s = {0, 0};
    cr_assert_eq(aredis_ccache_sync(e->cc, on_sync, &s), 0);
    cr_assert(faults_run_until(e->loop, sync_done, &s, 10000), "sync");
    cr_assert_eq(s.calls, 1);
    return s.status;
}

/* Cache n keys k0..k(n-1) holding "old<i>", each read twice (the second
 * a hit). */
static void warm(env *e, int n)
{
    for (int i = 0; i < n; i++)
        wcmd(e, "SET k%d old%d", i, i);
    for (int i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof key, "k%d", i);
        rd x;
        int hit;
        cget(e, key, &x, &hit);
        cget(e, key, &x, &hit);
        cr_assert(hit, "%s was not cached", key);
    }
}

/* Write new values under every key, sync, then read them all: how many
 * reads returned an old value. */
static int stale_after_rewrite(env *e, int n)
{
    for (int i = 0; i < n; i++)
        wcmd(e, "SET k%d new%d", i, i);
    ccsync(e);
    int stale = 0;
    for (int i = 0; i < n; i++) {
        char key[32], want[32];
        snprintf(key, sizeof key, "k%d", i);
        snprintf(want, sizeof want, "new%d", i);
        rd x;
        cget(e, key, &x, NULL);
        stale += strcmp(x.val, want) != 0;
    }
    return stale;
}

Test(ccache, miss_then_hit_then_invalidated_by_another_client)
{
    env e;
    env_open(&e, "cc-basic", 0, NULL, 0);
    wcmd(&e, "SET k v1");
    rd x;
    int hit;
    cget(&e, "k", &x, &hit);
    cr_assert(!hit);
    cr_assert_str_eq(x.val, "v1");
    cget(&e, "k", &x, &hit);
    cr_assert(hit, "the second read is served from memory");
    cr_assert_str_eq(x.val, "v1");

    wcmd(&e, "SET k v2");
    cr_assert_eq(ccsync(&e), 0);
    cget(&e, "k", &x, &hit);
    cr_assert(!hit, "invalidated by the other client's write");
    cr_assert_str_eq(x.val, "v2");
    aredis_ccache_stats st;
    aredis_ccache_get_stats(e.cc, &st);
    cr_assert_geq(st.invalidations, 1);
    cr_assert_eq(st.hits, 1);
    cr_assert_eq(st.misses, 2);
    cr_assert_eq(st.entries, 1);

    /* Commands the cache does not hold pass through. */
    memset(&x, 0, sizeof x);
    cr_assert_eq(aredis_ccache_command(e.cc, on_rd, &x, "INCR n"), 0);
    cr_assert(faults_run_until(e.loop, rd_done, &x, 5000));
    cr_assert_eq(x.type, AREDIS_REPLY_INTEGER);
    env_close(&e);
}

/* C2: the cached connection's replies are held back while another client
 * writes; after they are let through, no read returns the old value. */
Test(ccache, held_back_replies_while_another_client_writes)
{
    env e;
    env_open(&e, "cc-held", 0, NULL, 1);
    int stale = 0, reps = 20;
    for (int i = 0; i < reps; i++) {
        char key[32], v1[32], v2[32];
        snprintf(key, sizeof key, "h%d", i);
        snprintf(v1, sizeof v1, "old%d", i);
        snprintf(v2, sizeof v2, "new%d", i);
        wcmd(&e, "SET %s %s", key, v1);
        cr_assert_eq(faults_proxy_ctl(&e.proxy, "pause on down", NULL, 0), 0);
        /* A miss on its way: the server answers it (old value) and
         * tracks the key; the answer is held. */
        rd first;
        memset(&first, 0, sizeof first);
        cr_assert_eq(aredis_ccache_command(e.cc, on_rd, &first, "GET %s", key),
                     0);
        faults_run_for(e.loop, 20);
        cr_assert_eq(first.calls, 0, "held back");
        wcmd(&e, "SET %s %s", key, v2); /* acknowledged to the writer */
        cr_assert_eq(faults_proxy_ctl(&e.proxy, "pause off down", NULL, 0), 0);
        cr_assert(faults_run_until(e.loop, rd_done, &first, 10000));
        cr_assert_str_eq(first.val, v1, "the value when it was read");
        cr_assert_eq(ccsync(&e), 0);
        rd next;
        int hit;
        cget(&e, key, &next, &hit);
        cr_assert(!hit, "rep %d: the next GET is a miss", i);
        stale += strcmp(next.val, v2) != 0;
    }
    cr_assert_eq(stale, 0, "%d of %d reads stale", stale, reps);
    env_close(&e);
}

/* A read on its way when an invalidation of its key arrives is not
 * stored: the server still tracks k (read before, dropped only here), so
 * the writer's SET sends this connection an invalidation, held back with
 * the GET's reply behind it. */
Test(ccache, read_in_flight_when_its_key_is_invalidated_is_not_stored)
{
    env e;
    env_open(&e, "cc-inflight", 0, NULL, 1);
    warm(&e, 1);
    aredis_ccache_invalidate(e.cc, "k0", 2); /* the server keeps tracking */
    cr_assert_eq(faults_proxy_ctl(&e.proxy, "pause on down", NULL, 0), 0);
    wcmd(&e, "SET k0 new");
    rd first;
    memset(&first, 0, sizeof first);
    cr_assert_eq(aredis_ccache_command(e.cc, on_rd, &first, "GET k0"), 0);
    faults_run_for(e.loop, 20);
    cr_assert_eq(faults_proxy_ctl(&e.proxy, "pause off down", NULL, 0), 0);
    cr_assert(faults_run_until(e.loop, rd_done, &first, 10000));
    cr_assert_str_eq(first.val, "new");
    aredis_ccache_stats st;
    aredis_ccache_get_stats(e.cc, &st);
    cr_assert_eq(st.not_stored, 1);
    rd next;
    int hit;
    cget(&e, "k0", &next, &hit);
    cr_assert(!hit, "not stored: the next GET is a miss");
    env_close(&e);
}

static int state_is_not_active(const void *arg)
{
    return aredis_ccache_get_state(arg) != AREDIS_CCACHE_ACTIVE;
}

/* C2: CLIENT KILL of the cached connection; it reconnects on its own. */
Test(ccache, client_kill_flushes_0_stale_over_100_keys)
{
    env e;
    env_open(&e, "cc-kill", 0, NULL, 0);
    warm(&e, 100);
    wcmd(&e, "CLIENT KILL TYPE normal SKIPME yes");
    cr_assert(faults_run_until(e.loop, state_is_not_active, e.cc, 5000),
              "the loss was noticed");
    wait_active(&e);
    aredis_ccache_stats st;
    aredis_ccache_get_stats(e.cc, &st);
    cr_assert_eq(st.entries, 0, "flushed on the loss");
    cr_assert_geq(st.flushes, 1);
    warm(&e, 100); /* cached again on the new connection */
    cr_assert_eq(stale_after_rewrite(&e, 100), 0);
    env_close(&e);
}

/* C2: FLUSHALL sends a null invalidation: everything goes. */
Test(ccache, flushall_flushes_0_stale_over_100_keys)
{
    env e;
    env_open(&e, "cc-flushall", 0, NULL, 0);
    warm(&e, 100);
    wcmd(&e, "FLUSHALL");
    cr_assert_eq(ccsync(&e), 0);
    aredis_ccache_stats st;
    aredis_ccache_get_stats(e.cc, &st);
    cr_assert_eq(st.entries, 0);
    cr_assert_geq(st.flushes, 1);
    int stale = 0;
    for (int i = 0; i < 100; i++) {
        char key[32];
        snprintf(key, sizeof key, "k%d", i);
        rd x;
        cget(&e, key, &x, NULL);
        stale += x.type != AREDIS_REPLY_NIL;
    }
    cr_assert_eq(stale, 0);
    env_close(&e);
}

/* C2: a tracking table of 10 keys: the server forgets keys by sending
 * their invalidation; nothing is served stale. */
Test(ccache, tracking_table_of_10_keys_0_stale_over_100_keys)
{
    env e;
    env_open(&e, "cc-table", 0, NULL, 0);
    wcmd(&e, "CONFIG SET tracking-table-max-keys 10");
    warm(&e, 100);
    cr_assert_eq(stale_after_rewrite(&e, 100), 0);
    aredis_ccache_stats st;
    aredis_ccache_get_stats(e.cc, &st);
    cr_assert_geq(st.invalidations, 90, "the table's overflow invalidates");
    env_close(&e);
}

/* C4: RESP2 REDIRECT mode, the same guarantees; CLIENT KILL of the
 * redirect connection: the next read is a miss. */
Test(ccache, resp2_redirect_and_the_loss_of_its_connection)
{
    env e;
    env_open(&e, "cc-resp2", 2, NULL, 0);
    cr_assert_eq(aredis_client_protocol(e.c), 2);
    wcmd(&e, "SET k v1");
    rd x;
    int hit;
    cget(&e, "k", &x, &hit);
    cget(&e, "k", &x, &hit);
    cr_assert(hit);
    wcmd(&e, "SET k v2");
    cr_assert_eq(ccsync(&e), 0);
    cget(&e, "k", &x, &hit);
    cr_assert(!hit);
    cr_assert_str_eq(x.val, "v2");
    cget(&e, "k", &x, &hit);
    cr_assert(hit);
    warm(&e, 100);
    cr_assert_eq(stale_after_rewrite(&e, 100), 0);

    /* The redirect connection is a subscriber (TYPE pubsub). */
    cget(&e, "k", &x, &hit);
    cr_assert(hit);
    wcmd(&e, "CLIENT KILL TYPE pubsub");
    wcmd(&e, "SET k v2b"); /* its invalidation has nowhere to go */
    cr_assert(faults_run_until(e.loop, state_is_not_active, e.cc, 5000),
              "the loss was noticed");
    cget(&e, "k", &x, &hit);
    cr_assert(!hit, "the next read is a miss");
    cr_assert_str_eq(x.val, "v2b");
    wait_active(&e); /* a new subscriber, the shared one redirected */
    cget(&e, "k", &x, &hit);
    cr_assert(!hit, "nothing from before the loss survives it");
    cr_assert_str_eq(x.val, "v2b");
    wcmd(&e, "SET k v3");
    cr_assert_eq(ccsync(&e), 0);
    cget(&e, "k", &x, &hit);
    cget(&e, "k", &x, &hit);
    cr_assert(hit);
    wcmd(&e, "SET k v4");
    cr_assert_eq(ccsync(&e), 0);
    cget(&e, "k", &x, &hit);
    cr_assert(!hit);
    cr_assert_str_eq(x.val, "v4");
    env_close(&e);
}

/* C5: many distinct keys through a small cache: the bounds hold. */
typedef struct flood {
    int sent, done;
} flood;

static void on_flood(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    (void)r;
    ((flood *)ud)->done++;
}

static int flood_done(const void *arg)
{
    const flood *f = arg;
    return f->done == f->sent;
}

Test(ccache, distinct_keys_through_a_small_cache_stay_bounded)
{
    env e;
    aredis_ccache_opts o = {.max_entries = 1000, .max_bytes = 256 * 1024};
    env_open(&e, "cc-bound", 0, &o, 0);
    flood f = {0, 0};
    long rss_mid = 0;
    int n = 30000;
    for (int i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof key, "d%d", i);
        cr_assert_eq(aredis_ccache_command(e.cc, on_flood, &f, "GET %s", key),
                     0);
        f.sent++;
        if (f.sent % 1000 == 0) {
            cr_assert(faults_run_until(e.loop, flood_done, &f, 10000));
            aredis_ccache_stats st;
            aredis_ccache_get_stats(e.cc, &st);
            cr_assert_leq(st.entries, 1000);
            cr_assert_leq(st.bytes, 256 * 1024);
            if (f.sent == 5000)
                rss_mid = faults_rss_mark_kb();
        }
    }
    aredis_ccache_stats st;
    aredis_ccache_get_stats(e.cc, &st);
    cr_assert_eq(st.misses, (uint64_t)n);
    cr_assert_geq(st.evictions, (uint64_t)(n - 1000));
    long rss_end = faults_rss_peak_kb();
    cr_assert_lt(rss_end - rss_mid, 32 * 1024,
                 "RSS grew %ld KiB over 25000 more keys", rss_end - rss_mid);
    env_close(&e);
}

/* BCAST: only keys under a prefix are cached, and invalidated without
 * having been read on this connection's behalf. */
Test(ccache, bcast_caches_only_keys_under_its_prefixes)
{
    env e;
    const char *prefixes[] = {"user:"};
    aredis_ccache_opts o = {
        .mode = AREDIS_CCACHE_BCAST, .prefixes = prefixes, .nprefixes = 1};
    env_open(&e, "cc-bcast", 0, &o, 0);
    wcmd(&e, "SET user:1 a");
    wcmd(&e, "SET other b");
    /* BCAST sends the invalidation of that write to this connection too:
     * a read racing it would not be stored. */
    cr_assert_eq(ccsync(&e), 0);
    rd x;
    int hit;
    cget(&e, "user:1", &x, &hit);
    cget(&e, "user:1", &x, &hit);
    cr_assert(hit);
    cget(&e, "other", &x, &hit);
    cget(&e, "other", &x, &hit);
    cr_assert(!hit, "outside the prefixes: never cached");
    wcmd(&e, "SET user:1 c");
    cr_assert_eq(ccsync(&e), 0);
    cget(&e, "user:1", &x, &hit);
    cr_assert(!hit);
    cr_assert_str_eq(x.val, "c");
    env_close(&e);
}

Test(ccache, optin_tracks_the_reads_through_the_cache)
{
    env e;
    const char *cmds[] = {"GET", "HGETALL"};
    aredis_ccache_opts o = {
        .mode = AREDIS_CCACHE_OPTIN, .commands = cmds, .ncommands = 2};
    env_open(&e, "cc-optin", 0, &o, 0);
    wcmd(&e, "SET k v1");
    wcmd(&e, "HSET h f 1");
    rd x;
    int hit;
    cget(&e, "k", &x, &hit);
    cget(&e, "k", &x, &hit);
    cr_assert(hit);
    memset(&x, 0, sizeof x);
    cr_assert_eq(aredis_ccache_command(e.cc, on_rd, &x, "HGETALL h"), 0);
    cr_assert(faults_run_until(e.loop, rd_done, &x, 5000));
    memset(&x, 0, sizeof x);
    cr_assert_eq(aredis_ccache_command(e.cc, on_rd, &x, "hgetall h"), 0);
    cr_assert(faults_run_until(e.loop, rd_done, &x, 5000));
    aredis_ccache_stats st;
    aredis_ccache_get_stats(e.cc, &st);
    cr_assert_eq(st.hits, 2, "GET and HGETALL (any case) both hit");
    wcmd(&e, "SET k v2");
    wcmd(&e, "HSET h f 2");
    cr_assert_eq(ccsync(&e), 0);
    cget(&e, "k", &x, &hit);
    cr_assert(!hit);
    cr_assert_str_eq(x.val, "v2");
    aredis_ccache_get_stats(e.cc, &st);
    cr_assert_eq(st.entries, 1, "both invalidated; k read again");
    env_close(&e);
}

Test(ccache, refuses_commands_it_cannot_cache)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = aredis_client_new(loop, NULL, NULL);
    const char *cmds[] = {"GET", "TTL"};
    aredis_status st;
    aredis_ccache *cc = aredis_ccache_new(
        c, &(aredis_ccache_opts){.commands = cmds, .ncommands = 2}, &st);
    cr_assert_null(cc);
    cr_assert_eq(st.code, AREDIS_EINVAL);
    cr_assert(strstr(st.msg, "TTL") != NULL, "%s", st.msg);
    aredis_client_free(c);
    testloop_free(loop);
}

/* An argument vector with a NULL string (and no lengths) is a bad
 * argument, as for aredis_commandv(): refused, not measured. */
Test(ccache, argv_with_a_null_string_is_refused)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = aredis_client_new(loop, NULL, NULL);
    aredis_status st;
    aredis_ccache *cc = aredis_ccache_new(c, NULL, &st);
    cr_assert_not_null(cc, "%s", st.msg);
    const char *argv[] = {"GET", NULL};
    cr_assert_eq(aredis_ccache_commandv(cc, NULL, NULL, 2, argv, NULL),
                 AREDIS_EINVAL);
    aredis_ccache_free(cc);
    aredis_client_free(c);
    testloop_free(loop);
}

/* Exactly once: 200 reads (hits and misses), then the client or the
 * cache is freed before any of them completed. */
typedef struct counts {
    int calls[200];
    int nulls;
} counts;

static void on_count(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    int *n = ud;
    (*n)++;
    if (r == NULL)
        abort();
}

static void freed_with_reads_in_flight(int free_client)
{
    env e;
    env_open(&e, free_client ? "cc-free-c" : "cc-free-cc", 0, NULL, 0);
    warm(&e, 50);
    counts cnt;
    memset(&cnt, 0, sizeof cnt);
    for (int i = 0; i < 200; i++) {
        char key[32];
        snprintf(key, sizeof key, "k%d", i % 100); /* half hits */
        cr_assert_eq(
            aredis_ccache_command(e.cc, on_count, &cnt.calls[i], "GET %s", key),
            0);
    }
    if (free_client) {
        aredis_client_free(e.c);
    } else {
        aredis_ccache_free(e.cc);
    }
    faults_run_for(e.loop, 300);
    for (int i = 0; i < 200; i++)
        cr_assert_eq(cnt.calls[i], 1, "read %d completed %d times", i,
                     cnt.calls[i]);
    if (free_client)
        aredis_ccache_free(e.cc);
    else
        aredis_client_free(e.c);
    faults_run_for(e.loop, 20);
    testloop_free(e.loop);
    aredis_sync_free(e.w);
    testenv_private_stop(&e.s);
}

Test(ccache, client_freed_with_reads_in_flight_completes_each_once)
{
    freed_with_reads_in_flight(1);
}

Test(ccache, cache_freed_with_reads_in_flight_completes_each_once)
{
    freed_with_reads_in_flight(0);
}

/* C5, the other half: the memory a cache holds goes back when it is freed.
 * A counting allocator tracks the library's live bytes; the baseline is
 * taken after the same burst of plain reads, so the client's own buffers
 * and spare records have grown to the same size on both sides. */
static long long live_bytes;

static void *live_malloc(size_t n)
{
    size_t *p = malloc(n + 16);
    if (p == NULL)
        return NULL;
    p[0] = n;
    live_bytes += (long long)n;
    return (char *)p + 16;
}

static void live_free(void *q)
{
    if (q == NULL)
        return;
    size_t *p = (size_t *)((char *)q - 16);
    live_bytes -= (long long)p[0];
    free(p);
}

static void *live_calloc(size_t k, size_t n)
{
    if (n != 0 && k > ((size_t)-1 - 16) / n)
        return NULL;
    void *q = live_malloc(k * n);
    if (q != NULL)
        memset(q, 0, k * n);
    return q;
}

static void *live_realloc(void *q, size_t n)
{
    if (q == NULL)
        return live_malloc(n);
    size_t *p = (size_t *)((char *)q - 16);
    size_t old = p[0];
    size_t *np = realloc(p, n + 16);
    if (np == NULL)
        return NULL;
    np[0] = n;
    live_bytes += (long long)n - (long long)old;
    return (char *)np + 16;
}

static void read_burst(aredis_loop *loop, aredis_client *c, aredis_ccache *cc,
                       int n)
{
    int done = 0;
    for (int i = 0; i < n; i++) {
        char key[64];
        testenv_key(key, sizeof key, "cc-base");
        size_t len = strlen(key);
        snprintf(key + len, sizeof key - len, ":%d", i);
        int e = cc != NULL
                    ? aredis_ccache_command(cc, on_count, &done, "GET %s", key)
                    : aredis_command(c, on_count, &done, "GET %s", key);
        cr_assert_eq(e, 0);
    }
    int64_t until = testenv_now_ms() + 10000;
    while (done < n && testenv_now_ms() < until)
        aredis_loop_run_once(loop, 10);
    cr_assert_eq(done, n, "%d of %d reads completed", done, n);
}

Test(ccache, memory_returns_to_baseline_when_the_cache_is_freed)
{
    enum { N = 2000 };
    testenv_server srv;
    cr_assert_eq(testenv_server_load(&srv, NULL), 0, "%s", testenv_errstr());
    aredis_allocator a = {live_malloc, live_calloc, live_realloc, live_free};
    cr_assert_eq(aredis_set_allocator(&a), 0);
    aredis_loop *loop = aredis_loop_new();
    char url[128];
    aredis_client *c = aredis_client_new(
        loop, &(aredis_options){.url = testenv_url(url, sizeof url, &srv, 0)},
        NULL);
    cr_assert_not_null(c);
    /* Values to read: N keys of 200 bytes. */
    char value[201];
    memset(value, 'v', 200);
    value[200] = '\0';
    int set = 0;
    for (int i = 0; i < N; i++) {
        char key[64];
        testenv_key(key, sizeof key, "cc-base");
        size_t len = strlen(key);
        snprintf(key + len, sizeof key - len, ":%d", i);
        cr_assert_eq(aredis_command(c, on_count, &set, "SET %s %s", key, value),
                     0);
    }
    int64_t until = testenv_now_ms() + 10000;
    while (set < N && testenv_now_ms() < until)
        aredis_loop_run_once(loop, 10);
    cr_assert_eq(set, N);
    read_burst(loop, c, NULL, N);
    read_burst(loop, c, NULL, N);
    long long baseline = live_bytes;

    const char *cmds[] = {"GET"};
    aredis_status st;
    aredis_ccache *cc = aredis_ccache_new(
        c,
        &(aredis_ccache_opts){
            .max_entries = 10000, .commands = cmds, .ncommands = 1},
        &st);
    cr_assert_not_null(cc, "%s", st.msg);
    until = testenv_now_ms() + 10000;
    while (aredis_ccache_get_state(cc) != AREDIS_CCACHE_ACTIVE &&
           testenv_now_ms() < until)
        aredis_loop_run_once(loop, 10);
    read_burst(loop, c, cc, N); /* misses: stored */
    read_burst(loop, c, cc, N); /* hits */
    aredis_ccache_stats stats;
    aredis_ccache_get_stats(cc, &stats);
    cr_assert_geq(stats.entries, (size_t)N, "entries %zu", stats.entries);
    long long held = live_bytes - baseline;
    cr_assert_gt(held, (long long)N * 200, "the cache holds %lld bytes", held);

    aredis_ccache_free(cc);
    for (int i = 0; i < 20; i++)
        aredis_loop_run_once(loop, 10);
    long long left = live_bytes - baseline;
    fprintf(stderr,
            "ccache: %lld bytes held for %d entries, %lld left after the "
            "cache was freed\n",
            held, N, left);
    cr_assert_leq(left, 16 * 1024,
                  "%lld bytes still held after the cache was freed", left);
    aredis_client_free(c);
    aredis_loop_free(loop);
    aredis_set_allocator(NULL);
    cr_assert_eq(live_bytes, 0, "%lld bytes never freed", live_bytes);
}
