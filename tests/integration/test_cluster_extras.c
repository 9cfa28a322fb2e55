/* The extras on a cluster client, against the shared test cluster
 * (fixture redis_cluster: 3 primaries + 3 replicas): pipelines,
 * transactions (pipeline and helper, with WATCH retries), scripts
 * (EVALSHA -> NOSCRIPT -> load -> retry), SCAN iterators over every
 * primary (asynchronous and blocking), the blocking facade, locks and the
 * cache. None of them has code of its own for clusters beyond the client
 * API; each check counts callbacks (exactly once) and reads the data back
 * from the servers. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aredis/aredis.h"
#include "testclient.h"
#include "testenv.h"

static int primaries[3];

static void load_nodes(void)
{
    cr_assert_eq(testenv_state_ports("cluster", "primaries", primaries, 3), 3,
                 "%s", testenv_errstr());
}

TestSuite(cluster_extras, .init = load_nodes, .timeout = 120);

static void seeds(char *buf, size_t cap)
{
    snprintf(buf, cap, "127.0.0.1:%d,127.0.0.1:%d", primaries[0], primaries[1]);
}

static aredis_client *cluster_client(aredis_loop *loop)
{
    char s[64];
    seeds(s, sizeof s);
    aredis_options o = {0};
    o.cluster.seeds = s;
    aredis_status st;
    aredis_client *c = aredis_client_new(loop, &o, &st);
    cr_assert_not_null(c, "%s", st.msg);
    return c;
}

static aredis_sync *cluster_sync(void)
{
    char s[64];
    seeds(s, sizeof s);
    aredis_options o = {0};
    o.cluster.seeds = s;
    aredis_status st;
    aredis_sync *sy = aredis_sync_connect(&o, &st);
    cr_assert_not_null(sy, "%s", st.msg);
    return sy;
}

static void client_done(aredis_client *c, aredis_loop *loop)
{
    aredis_client_free(c);
    for (int spins = 0; spins < 20; spins++)
        aredis_loop_run_once(loop, 5);
    aredis_loop_free(loop);
}

static int ndone;

static void spin(aredis_loop *loop, int n)
{
    for (int spins = 0; ndone < n && spins < 3000; spins++)
        aredis_loop_run_once(loop, 10);
    cr_assert_eq(ndone, n, "%d of %d callbacks ran", ndone, n);
}

/* The value of key on the primary that holds it (direct connections), an
 * owned string, or NULL when no primary has it. */
static char *server_get(const char *key)
{
    char *out = NULL;
    for (int i = 0; i < 3; i++) {
        aredis_reply *r = testclient_direct(primaries[i], "GET %s", key);
        if (r->type == AREDIS_REPLY_STRING) {
            cr_assert_null(out, "%s on two primaries", key);
            out = strdup(r->str);
        }
        aredis_reply_free(r);
    }
    return out;
}

static void expect_value(const char *key, const char *want)
{
    char *v = server_get(key);
    if (want == NULL) {
        cr_assert_null(v, "%s should not exist", key);
        return;
    }
    cr_assert_not_null(v, "%s missing", key);
    cr_assert_str_eq(v, want, "%s", key);
    free(v);
}

/* ---- pipelines and transactions ------------------------------------------ */

typedef struct batch {
    int calls;
    aredis_reply *r;
} batch;

static void on_batch(aredis_pipeline *p, const aredis_reply *r, void *ud)
{
    (void)p;
    batch *b = ud;
    b->calls++;
    ndone++;
    aredis_reply_free(b->r);
    b->r = aredis_reply_dup(r);
}

/* A plain pipeline over many slots: per-command routing, replies in order.
 * A transaction pipeline on keys sharing a hash tag runs MULTI/EXEC on the
 * slot's primary; one whose keys span slots fails before sending. */
Test(cluster_extras, pipelines_and_transaction_pipelines)
{
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = cluster_client(loop);
    char keys[20][64];
    aredis_pipeline *p = aredis_pipeline_new(c, 0);
    cr_assert_not_null(p);
    for (int i = 0; i < 20; i++) {
        char suffix[16];
        snprintf(suffix, sizeof suffix, "pl%d", i);
        testenv_key(keys[i], sizeof keys[i], suffix);
        cr_assert_eq(aredis_pipeline_command(p, "SET %s p%d", keys[i], i), 0);
        cr_assert_eq(aredis_pipeline_command(p, "INCR %s", keys[i]), 0);
    }
    batch b = {0};
    ndone = 0;
    cr_assert_eq(aredis_pipeline_execute(p, on_batch, &b), 0);
    spin(loop, 1);
    cr_assert_eq(b.calls, 1);
    cr_assert_eq(b.r->type, AREDIS_REPLY_ARRAY);
    cr_assert_eq(b.r->len, 40);
    for (int i = 0; i < 20; i++) {
        cr_assert_str_eq(b.r->element[2 * i].str, "OK");
        /* INCR of "p<i>": a per-command error, kept in its place. */
        cr_assert_eq(b.r->element[2 * i + 1].type, AREDIS_REPLY_ERROR);
        char want[16];
        snprintf(want, sizeof want, "p%d", i);
        expect_value(keys[i], want);
    }
    aredis_pipeline_free(p);

    /* MULTI/EXEC on {tag} keys. */
    char tag[48], ta[64], tb[64];
    testenv_key(tag, sizeof tag, "tx");
    snprintf(ta, sizeof ta, "{%s}a", tag);
    snprintf(tb, sizeof tb, "{%s}b", tag);
    p = aredis_pipeline_new(c, 1);
    cr_assert_eq(aredis_pipeline_command(p, "SET %s 10", ta), 0);
    cr_assert_eq(aredis_pipeline_command(p, "INCRBY %s 5", ta), 0);
    cr_assert_eq(aredis_pipeline_command(p, "SET %s x", tb), 0);
    ndone = 0;
    cr_assert_eq(aredis_pipeline_execute(p, on_batch, &b), 0);
    spin(loop, 1);
    cr_assert_eq(b.calls, 2);
    cr_assert_eq(b.r->type, AREDIS_REPLY_ARRAY, "%s",
                 b.r->type == AREDIS_REPLY_ERROR ? b.r->str : "");
    cr_assert_eq(b.r->len, 3);
    cr_assert_eq(b.r->element[1].integer, 15);
    expect_value(ta, "15");
    expect_value(tb, "x");

    /* Keys over two slots: refused before sending. */
    char other[64];
    testenv_key(other, sizeof other, "tx-other");
    cr_assert_neq(aredis_cluster_keyslot(ta, strlen(ta)),
                  aredis_cluster_keyslot(other, strlen(other)));
    cr_assert_eq(aredis_pipeline_command(p, "SET %s 1", ta), 0);
    cr_assert_eq(aredis_pipeline_command(p, "SET %s 1", other), 0);
    ndone = 0;
    cr_assert_eq(aredis_pipeline_execute(p, on_batch, &b), 0);
    spin(loop, 1);
    cr_assert_eq(b.calls, 3);
    cr_assert_eq(b.r->type, AREDIS_REPLY_ERROR);
    cr_assert_not_null(strstr(b.r->str, "CROSSSLOT"), "%s", b.r->str);
    expect_value(ta, "15");
    expect_value(other, NULL);
    aredis_pipeline_free(p);
    aredis_reply_free(b.r);
    aredis_command(c, NULL, NULL, "DEL %s %s", ta, tb);
    for (int i = 0; i < 20; i++)
        aredis_command(c, NULL, NULL, "DEL %s", keys[i]);
    client_done(c, loop);
}

/* The transaction helper: WATCH on the key's primary, a read in immediate
 * mode, MULTI/EXEC; a concurrent write between the read and EXEC (from
 * another client) forces a retry, and the final value is right. */
typedef struct incr_state {
    const char *key;
    aredis_sync *other;
    int bodies;
    int done_calls;
    aredis_reply *result;
    long long seen;
} incr_state;

static void on_read(aredis_pipeline *p, const aredis_reply *r, void *ud)
{
    incr_state *s = ud;
    cr_assert_eq(r->type, AREDIS_REPLY_STRING, "%s",
                 r->type == AREDIS_REPLY_ERROR ? r->str : "");
    s->seen = atoll(r->str);
    if (s->bodies == 1) {
        /* Another client changes the key: this attempt must fail. */
        aredis_reply *w =
            aredis_sync_command(s->other, "INCRBY %s 100", s->key);
        cr_assert_eq(w->type, AREDIS_REPLY_INTEGER);
        aredis_reply_free(w);
    }
    cr_assert_eq(aredis_pipeline_multi(p), 0);
    cr_assert_eq(aredis_pipeline_command(p, "SET %s %lld", s->key, s->seen + 1),
                 0);
    cr_assert_eq(aredis_transaction_commit(p), 0);
}

static void body(aredis_pipeline *p, void *ud)
{
    incr_state *s = ud;
    s->bodies++;
    cr_assert_eq(aredis_pipeline_immediate(p, on_read, s, "GET %s", s->key), 0);
}

static void on_txn_done(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    incr_state *s = ud;
    s->done_calls++;
    ndone++;
    s->result = aredis_reply_dup(r);
}

Test(cluster_extras, transaction_helper_retries_on_the_keys_primary)
{
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = cluster_client(loop);
    aredis_sync *other = cluster_sync();
    char key[64];
    testenv_key(key, sizeof key, "txhelper");
    aredis_reply *r = aredis_sync_command(other, "SET %s 1", key);
    cr_assert_str_eq(r->str, "OK");
    aredis_reply_free(r);
    static incr_state s;
    memset(&s, 0, sizeof s);
    s.key = key;
    s.other = other;
    const char *keys[] = {key};
    aredis_transaction_opts o = {.max_attempts = 3};
    ndone = 0;
    cr_assert_eq(aredis_transaction(c, &o, body, on_txn_done, &s, 1, keys), 0);
    spin(loop, 1);
    cr_assert_eq(s.done_calls, 1);
    cr_assert_eq(s.bodies, 2, "one retry after the concurrent write");
    cr_assert_eq(s.result->type, AREDIS_REPLY_ARRAY, "%s",
                 s.result->type == AREDIS_REPLY_ERROR ? s.result->str : "");
    expect_value(key, "102");
    aredis_reply_free(s.result);
    aredis_reply_free(aredis_sync_command(other, "DEL %s", key));
    aredis_sync_free(other);
    client_done(c, loop);
}

/* ---- scripts ---------------------------------------------------------------
 */

/* A script never loaded anywhere: EVALSHA meets NOSCRIPT, the script is
 * loaded and EVALSHA retried once, for keys on every primary. */
Test(cluster_extras, script_loads_on_noscript_for_keys_on_every_primary)
{
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = cluster_client(loop);
    char src[128];
    snprintf(src, sizeof src,
             "redis.call('SET', KEYS[1], ARGV[1]) return '%ld'",
             (long)getpid());
    aredis_script *sc = aredis_script_new(src, strlen(src));
    char keys[12][64];
    testgot g[12];
    memset(g, 0, sizeof g);
    for (int i = 0; i < 12; i++) {
        char suffix[16];
        snprintf(suffix, sizeof suffix, "sc%d", i);
        testenv_key(keys[i], sizeof keys[i], suffix);
        const char *k[] = {keys[i]};
        const char *a[] = {suffix};
        cr_assert_eq(aredis_script_eval(c, sc, testgot_keep, &g[i], 1, k, 1, a),
                     0);
    }
    testgot_wait_all(loop, g, 12); /* one reply each */
    for (int i = 0; i < 12; i++) {
        cr_assert_eq(g[i].r->type, AREDIS_REPLY_STRING, "%s", g[i].r->str);
        char suffix[16];
        snprintf(suffix, sizeof suffix, "sc%d", i);
        expect_value(keys[i], suffix);
        aredis_reply_free(g[i].r);
        aredis_command(c, NULL, NULL, "DEL %s", keys[i]);
    }
    aredis_script_free(sc);
    client_done(c, loop);
}

/* ---- scans -----------------------------------------------------------------
 */

#define NSCAN 60

typedef struct walk {
    testscan_end end; /* first: testscan_done's */
    char (*keys)[64];
    int seen[NSCAN];
    int other;
} walk;

static int count_key(walk *w, const char *k, size_t len)
{
    for (int i = 0; i < NSCAN; i++) {
        if (strlen(w->keys[i]) == len && memcmp(w->keys[i], k, len) == 0) {
            w->seen[i]++;
            return 0;
        }
    }
    w->other++;
    return 0;
}

static int on_elem(aredis_client *c, const aredis_scan_elem *e, void *ud)
{
    (void)c;
    return count_key(ud, e->str, e->len);
}

/* SCAN walks every primary (asynchronous and blocking forms): every key of
 * this test is found exactly once, on whichever primary it lives; SSCAN
 * follows its key. */
Test(cluster_extras, scan_walks_every_primary)
{
    static char keys[NSCAN][64];
    aredis_sync *sy = cluster_sync();
    for (int i = 0; i < NSCAN; i++) {
        char suffix[16];
        snprintf(suffix, sizeof suffix, "scan%d", i);
        testenv_key(keys[i], sizeof keys[i], suffix);
        aredis_reply_free(aredis_sync_command(sy, "SET %s 1", keys[i]));
    }
    char pattern[80];
    testenv_key(pattern, sizeof pattern, "scan*");
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = cluster_client(loop);
    static walk w;
    memset(&w, 0, sizeof w);
    w.keys = keys;
    aredis_scan_opts o = {
        .kind = AREDIS_SCAN_KEYS, .match = pattern, .count = 7};
    cr_assert_eq(aredis_scan(c, &o, NULL, on_elem, testscan_done, &w), 0);
    for (int spins = 0; w.end.calls == 0 && spins < 3000; spins++)
        aredis_loop_run_once(loop, 10);
    cr_assert_eq(w.end.calls, 1);
    cr_assert_eq(w.end.status, AREDIS_SCAN_FINISHED, "%d: %s", w.end.status,
                 w.end.err);
    for (int i = 0; i < NSCAN; i++)
        cr_assert_eq(w.seen[i], 1, "%s seen %d times", keys[i], w.seen[i]);
    cr_assert_eq(w.other, 0);
    client_done(c, loop);

    /* The blocking iterator. */
    memset(&w, 0, sizeof w);
    w.keys = keys;
    aredis_status st;
    aredis_sync_scan *it = aredis_sync_scan_new(sy, &o, &st);
    cr_assert_not_null(it, "%s", st.msg);
    aredis_scan_elem e;
    int rc;
    while ((rc = aredis_sync_scan_next(it, &e)) == 1)
        count_key(&w, e.str, e.len);
    cr_assert_eq(rc, 0, "%d %s", rc, aredis_sync_scan_errmsg(it));
    aredis_sync_scan_free(it);
    for (int i = 0; i < NSCAN; i++)
        cr_assert_eq(w.seen[i], 1, "%s seen %d times", keys[i], w.seen[i]);

    /* SSCAN on one key, wherever it lives. */
    char set[64];
    testenv_key(set, sizeof set, "scan-set");
    aredis_reply_free(aredis_sync_command(sy, "SADD %s a b c d e", set));
    aredis_scan_opts so = {.kind = AREDIS_SCAN_SET, .key = set};
    it = aredis_sync_scan_new(sy, &so, &st);
    int members = 0;
    while ((rc = aredis_sync_scan_next(it, &e)) == 1)
        members++;
    cr_assert_eq(rc, 0, "%s", aredis_sync_scan_errmsg(it));
    cr_assert_eq(members, 5);
    aredis_sync_scan_free(it);
    aredis_reply_free(aredis_sync_command(sy, "DEL %s", set));
    for (int i = 0; i < NSCAN; i++)
        aredis_reply_free(aredis_sync_command(sy, "DEL %s", keys[i]));
    aredis_sync_free(sy);
}

/* ---- the blocking facade, locks and the cache ---------------------------- */

Test(cluster_extras, blocking_facade_locks_and_cache)
{
    aredis_sync *sy = cluster_sync();
    char a[64], b[64];
    testenv_key(a, sizeof a, "sync-a");
    testenv_key(b, sizeof b, "sync-b7");
    aredis_reply *r = aredis_sync_command(sy, "MSET %s 1 %s 2", a, b);
    cr_assert_str_eq(r->str, "OK");
    aredis_reply_free(r);
    r = aredis_sync_command(sy, "MGET %s %s", b, a);
    cr_assert_eq(r->len, 2);
    cr_assert_str_eq(r->element[0].str, "2");
    cr_assert_str_eq(r->element[1].str, "1");
    aredis_reply_free(r);
    expect_value(a, "1");
    expect_value(b, "2");
    r = aredis_sync_command(sy, "DEL %s %s", a, b);
    cr_assert_eq(r->integer, 2);
    aredis_reply_free(r);

    /* Locks: one holder at a time, across two handles. */
    char name[64];
    testenv_key(name, sizeof name, "lock");
    aredis_sync *sy2 = cluster_sync();
    aredis_status st;
    aredis_lock_options lo = {0};
    lo.ttl_ms = 5000;
    aredis_lock *l1 = aredis_sync_lock_new(sy, name, &lo, &st);
    cr_assert_not_null(l1, "%s", st.msg);
    aredis_lock *l2 = aredis_sync_lock_new(sy2, name, &lo, &st);
    cr_assert_not_null(l2, "%s", st.msg);
    cr_assert_eq(aredis_sync_lock_acquire(l1, 0), 0);
    cr_assert(aredis_lock_held(l1));
    cr_assert_neq(aredis_sync_lock_acquire(l2, 0), 0, "held by l1");
    char *v = server_get(aredis_lock_key(l1));
    cr_assert_not_null(v, "the lock key is on its slot's primary");
    cr_assert_str_eq(v, aredis_lock_token(l1));
    free(v);
    cr_assert_eq(aredis_sync_lock_release(l1), 0);
    cr_assert_eq(aredis_sync_lock_acquire(l2, 1000), 0);
    cr_assert_eq(aredis_sync_lock_release(l2), 0);
    expect_value(aredis_lock_key(l2), NULL);
    aredis_lock_free(l1);
    aredis_lock_free(l2);
    aredis_sync_free(sy2);

    /* A replicated lock: the acquire and its WAIT on the connection to
     * the lock key's primary (each primary has one replica). */
    /* Its key on another primary than the first seed (the node any
     * keyless work would go to). */
    aredis_lock_options ro = {0};
    ro.ttl_ms = 5000;
    ro.replicas = 1;
    ro.wait_timeout_ms = 2000;
    aredis_lock *rl = NULL;
    for (int i = 0; rl == NULL; i++) {
        char rname[64], suffix[16];
        snprintf(suffix, sizeof suffix, "rlock%d", i);
        testenv_key(rname, sizeof rname, suffix);
        rl = aredis_sync_lock_new(sy, rname, &ro, &st);
        cr_assert_not_null(rl, "%s", st.msg);
        testenv_server s0 = {.host = "127.0.0.1", .port = primaries[0]};
        testenv_conn tc;
        const aredis_reply *gr;
        cr_assert_eq(testenv_connect(&tc, &s0), 0);
        cr_assert_eq(testenv_command(&tc, &gr, "GET %s", aredis_lock_key(rl)),
                     0);
        int elsewhere = gr->type == AREDIS_REPLY_ERROR;
        testenv_close(&tc);
        if (!elsewhere) {
            aredis_lock_free(rl);
            rl = NULL;
        }
    }
    cr_assert_eq(aredis_sync_lock_acquire(rl, 0), 0);
    v = server_get(aredis_lock_key(rl));
    cr_assert_not_null(v);
    cr_assert_str_eq(v, aredis_lock_token(rl));
    free(v);
    cr_assert_eq(aredis_sync_lock_release(rl), 0);
    expect_value(aredis_lock_key(rl), NULL);
    aredis_lock_free(rl);

    /* The cache: set, get, many, delete by pattern (a SCAN over every
     * primary). */
    aredis_cache_opts co = {0};
    char prefix[64];
    testenv_key(prefix, sizeof prefix, "cache");
    co.app = prefix;
    aredis_cache *k = aredis_cache_new(aredis_sync_client(sy), &co, &st);
    cr_assert_not_null(k, "%s", st.msg);
    aredis_cache_entry ents[8];
    char ekeys[8][16], evals[8][16];
    for (int i = 0; i < 8; i++) {
        snprintf(ekeys[i], sizeof ekeys[i], "k%d", i);
        snprintf(evals[i], sizeof evals[i], "value%d", i);
        ents[i] = (aredis_cache_entry){.key = ekeys[i],
                                       .value = evals[i],
                                       .len = strlen(evals[i]),
                                       .ttl_ms = 60000};
    }
    aredis_cache_result *res = aredis_sync_cache_set_many(k, ents, 8);
    cr_assert_eq(res->status, 0, "%s", res->errmsg);
    aredis_cache_result_free(res);
    res = aredis_sync_cache_get_many(k, ents, 8);
    cr_assert_eq(res->status, 0, "%s", res->errmsg);
    cr_assert_eq(res->nitems, 8);
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(res->items[i].status, AREDIS_CACHE_HIT, "%d", i);
        cr_assert_eq(res->items[i].len, strlen(evals[i]));
        cr_assert_eq(memcmp(res->items[i].data, evals[i], res->items[i].len),
                     0);
    }
    aredis_cache_result_free(res);
    res = aredis_sync_cache_delete_pattern(k, "k*", 0);
    cr_assert_eq(res->status, 0, "%s", res->errmsg);
    cr_assert_eq(res->integer, 8, "deleted on every primary");
    aredis_cache_result_free(res);
    res = aredis_sync_cache_get(k, "k3", NULL, 0);
    cr_assert_eq(res->status, AREDIS_CACHE_MISS);
    aredis_cache_result_free(res);
    aredis_cache_free(k);
    aredis_sync_free(sy);
}

/* ---- client-side caching ------------------------------------------------ */

/* Tracking is per connection: a cache over the first node's connection
 * would keep serving the other primaries' keys after they changed, so a
 * cluster client is refused at creation, with a reason. */
Test(cluster_extras, client_side_cache_refused_on_a_cluster_client)
{
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = cluster_client(loop);
    aredis_status st;
    aredis_ccache *cc = aredis_ccache_new(c, NULL, &st);
    cr_assert_null(cc, "a cluster client gets no client-side cache");
    cr_assert_eq(st.code, AREDIS_ENOTSUP, "%d %s", st.code, st.msg);
    cr_assert(strstr(st.msg, "cluster") != NULL, "%s", st.msg);
    aredis_ccache_free(cc);
    client_done(c, loop);
}

/* ---- pub/sub ----------------------------------------------------------------
 */

#define NCH 12

typedef struct heard {
    char names[NCH][64];
    int smessages[NCH];
    int confirmations;
    int messages, pmessages;
} heard;

static void on_message(aredis_pubsub *ps, const aredis_pubsub_message *m,
                       void *ud)
{
    (void)ps;
    heard *h = ud;
    switch (m->kind) {
    case AREDIS_PUBSUB_SSUBSCRIBE:
    case AREDIS_PUBSUB_SUBSCRIBE:
    case AREDIS_PUBSUB_PSUBSCRIBE:
        h->confirmations++;
        break;
    case AREDIS_PUBSUB_SMESSAGE:
        for (int i = 0; i < NCH; i++)
            if (strlen(h->names[i]) == m->channel_len &&
                memcmp(h->names[i], m->channel, m->channel_len) == 0) {
                cr_assert_eq(m->data_len, strlen(h->names[i]) + 3);
                h->smessages[i]++;
            }
        break;
    case AREDIS_PUBSUB_MESSAGE:
        h->messages++;
        break;
    case AREDIS_PUBSUB_PMESSAGE:
        h->pmessages++;
        break;
    default:
        break;
    }
}

static long long shardnumsub(int port, const char *ch)
{
    aredis_reply *r = testclient_direct(port, "PUBSUB SHARDNUMSUB %s", ch);
    cr_assert_eq(r->len, 2);
    long long n = r->element[1].integer;
    aredis_reply_free(r);
    return n;
}

/* SSUBSCRIBE on channels whose slots are on every primary: each lives on
 * its slot's primary, SPUBLISH (routed by slot) reaches it once; classic
 * SUBSCRIBE and PSUBSCRIBE on one node hear PUBLISH from any node. */
Test(cluster_extras, sharded_pubsub_follows_the_slots)
{
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = cluster_client(loop);
    static heard h;
    memset(&h, 0, sizeof h);
    aredis_pubsub *ps = aredis_pubsub_new(c, NULL);
    cr_assert_not_null(ps);
    int on_primary[3] = {0};
    for (int i = 0; i < NCH; i++) {
        char suffix[16];
        snprintf(suffix, sizeof suffix, "sch%d", i);
        testenv_key(h.names[i], sizeof h.names[i], suffix);
        cr_assert_eq(aredis_pubsub_ssubscribe(ps, h.names[i], on_message, &h),
                     0);
    }
    char news[64], pat[64];
    testenv_key(news, sizeof news, "news");
    testenv_key(pat, sizeof pat, "new*");
    cr_assert_eq(aredis_pubsub_subscribe(ps, news, on_message, &h), 0);
    cr_assert_eq(aredis_pubsub_psubscribe(ps, pat, on_message, &h), 0);
    for (int spins = 0; h.confirmations < NCH + 2 && spins < 500; spins++)
        aredis_loop_run_once(loop, 10);
    cr_assert_eq(h.confirmations, NCH + 2);
    for (int i = 0; i < NCH; i++) {
        int owners = 0;
        for (int p = 0; p < 3; p++) {
            long long n = shardnumsub(primaries[p], h.names[i]);
            owners += n == 1;
            on_primary[p] += n == 1;
        }
        cr_assert_eq(owners, 1, "%s subscribed on %d primaries", h.names[i],
                     owners);
    }
    for (int p = 0; p < 3; p++)
        cr_assert_gt(on_primary[p], 0, "no channel on primary %d", p);

    aredis_sync *pub = cluster_sync();
    for (int i = 0; i < NCH; i++) {
        aredis_reply *r = aredis_sync_command(pub, "SPUBLISH %s %s-go",
                                              h.names[i], h.names[i]);
        cr_assert_eq(r->type, AREDIS_REPLY_INTEGER, "%s",
                     r->type == AREDIS_REPLY_ERROR ? r->str : "");
        cr_assert_eq(r->integer, 1);
        aredis_reply_free(r);
    }
    aredis_reply_free(aredis_sync_command(pub, "PUBLISH %s hello", news));
    for (int spins = 0; spins < 300; spins++) {
        int total = h.messages + h.pmessages;
        for (int i = 0; i < NCH; i++)
            total += h.smessages[i];
        if (total == NCH + 2)
            break;
        aredis_loop_run_once(loop, 10);
    }
    for (int i = 0; i < NCH; i++)
        cr_assert_eq(h.smessages[i], 1, "%s: %d messages", h.names[i],
                     h.smessages[i]);
    cr_assert_eq(h.messages, 1);
    cr_assert_eq(h.pmessages, 1);

    /* SUNSUBSCRIBE goes to the channel's node. */
    cr_assert_eq(aredis_pubsub_sunsubscribe(ps, h.names[0]), 0);
    for (int spins = 0; spins < 20; spins++)
        aredis_loop_run_once(loop, 5);
    aredis_reply *r =
        aredis_sync_command(pub, "SPUBLISH %s %s-go", h.names[0], h.names[0]);
    cr_assert_eq(r->integer, 0, "nobody listens any more");
    aredis_reply_free(r);
    aredis_sync_free(pub);
    aredis_pubsub_free(ps);
    client_done(c, loop);
}

static void node_cmd(int port, const char *fmt, const char *a, const char *b)
{
    aredis_reply *r = testclient_direct(port, fmt, a, b);
    cr_assert(r->type != AREDIS_REPLY_ERROR, "%d: %s: %s", port, fmt, r->str);
    aredis_reply_free(r);
}

/* A shard channel's slot moves from A to B (on a private 2-primary
 * cluster): A drops the subscription (-sunsubscribe), the pubsub learns
 * where the slot went and subscribes on B; SPUBLISH after the move
 * reaches it once, and no message is delivered twice. */
Test(cluster_extras, shard_channel_follows_its_slot_when_it_moves,
     .timeout = 120)
{
    testenv_server srv;
    int p[2];
    testclient_private_cluster(&srv, "clpubmv", p, 2);
    char ida[41], idb[41];
    testclient_node_id(p[0], ida);
    testclient_node_id(p[1], idb);
    char seeds[64];
    snprintf(seeds, sizeof seeds, "127.0.0.1:%d", p[0]);
    aredis_options o = {0};
    o.cluster.seeds = seeds;
    aredis_loop *loop = aredis_loop_new();
    aredis_status st;
    aredis_client *c = aredis_client_new(loop, &o, &st);
    cr_assert_not_null(c, "%s", st.msg);

    static heard h;
    memset(&h, 0, sizeof h);
    unsigned slot = 0;
    for (int i = 0;; i++) {
        char suffix[32];
        snprintf(suffix, sizeof suffix, "mv%d", i);
        testenv_key(h.names[0], sizeof h.names[0], suffix);
        slot = aredis_cluster_keyslot(h.names[0], strlen(h.names[0]));
        if (shardnumsub(p[0], h.names[0]) == 0 && slot < 8192)
            break;
    }
    aredis_pubsub *ps = aredis_pubsub_new(c, NULL);
    cr_assert_eq(aredis_pubsub_ssubscribe(ps, h.names[0], on_message, &h), 0);
    for (int spins = 0; h.confirmations < 1 && spins < 500; spins++)
        aredis_loop_run_once(loop, 10);
    cr_assert_eq(h.confirmations, 1);
    cr_assert_eq(shardnumsub(p[0], h.names[0]), 1, "on A first");

    char s[16];
    snprintf(s, sizeof s, "%u", slot);
    node_cmd(p[1], "CLUSTER SETSLOT %s IMPORTING %s", s, ida);
    node_cmd(p[0], "CLUSTER SETSLOT %s MIGRATING %s", s, idb);
    node_cmd(p[1], "CLUSTER SETSLOT %s NODE %s", s, idb);
    node_cmd(p[0], "CLUSTER SETSLOT %s NODE %s", s, idb);

    for (int spins = 0; spins < 500; spins++) {
        aredis_loop_run_once(loop, 10);
        if (spins % 10 == 0 && shardnumsub(p[1], h.names[0]) == 1)
            break;
    }
    cr_assert_eq(shardnumsub(p[1], h.names[0]), 1, "re-homed on B");
    cr_assert_eq(shardnumsub(p[0], h.names[0]), 0, "gone from A");
    testenv_server sb = {.host = "127.0.0.1", .port = p[1]};
    testenv_conn tc;
    cr_assert_eq(testenv_connect(&tc, &sb), 0);
    const aredis_reply *pr;
    cr_assert_eq(
        testenv_command(&tc, &pr, "SPUBLISH %s %s-go", h.names[0], h.names[0]),
        0);
    cr_assert_eq(pr->integer, 1);
    testenv_close(&tc);
    for (int spins = 0; h.smessages[0] < 1 && spins < 300; spins++)
        aredis_loop_run_once(loop, 10);
    for (int spins = 0; spins < 10; spins++)
        aredis_loop_run_once(loop, 5);
    cr_assert_eq(h.smessages[0], 1, "%d messages", h.smessages[0]);
    aredis_pubsub_free(ps);
    aredis_client_free(c);
    for (int spins = 0; spins < 20; spins++)
        aredis_loop_run_once(loop, 5);
    aredis_loop_free(loop);
    testenv_private_cluster_stop(&srv);
}

static long long numsub(int port, const char *ch)
{
    testenv_server s = {.host = "127.0.0.1", .port = port};
    testenv_conn tc;
    const aredis_reply *r;
    if (testenv_connect(&tc, &s) != 0)
        return -1; /* down */
    long long n = -1;
    if (testenv_command(&tc, &r, "PUBSUB NUMSUB %s", ch) == 0 && r->len == 2)
        n = r->element[1].integer;
    testenv_close(&tc);
    return n;
}

typedef struct rehomed {
    int resubscribed;
    int messages;
} rehomed;

static void on_classic(aredis_pubsub *ps, const aredis_pubsub_message *m,
                       void *ud)
{
    (void)ps;
    rehomed *h = ud;
    if (m->kind == AREDIS_PUBSUB_RESUBSCRIBED)
        h->resubscribed++;
    else if (m->kind == AREDIS_PUBSUB_MESSAGE)
        h->messages++;
}

/* Classic subscriptions live on one node; when that node dies (SHUTDOWN
 * NOSAVE on a private 3-primary cluster), they move to another one, a
 * RESUBSCRIBED event says so, and a message published afterwards arrives
 * once. */
Test(cluster_extras, classic_subscriptions_move_off_a_dead_node, .timeout = 120)
{
    testenv_server srv;
    int p[3];
    testclient_private_cluster(&srv, "clsubdie", p, 3);
    char seeds[96];
    snprintf(seeds, sizeof seeds, "127.0.0.1:%d,127.0.0.1:%d", p[0], p[1]);
    aredis_options o = {0};
    o.cluster.seeds = seeds;
    aredis_loop *loop = aredis_loop_new();
    aredis_status st;
    aredis_client *c = aredis_client_new(loop, &o, &st);
    cr_assert_not_null(c, "%s", st.msg);
    static rehomed h;
    memset(&h, 0, sizeof h);
    aredis_pubsub_options po = {0};
    po.event_handler = on_classic;
    po.event_ud = &h;
    aredis_pubsub *ps = aredis_pubsub_new(c, &po);
    char ch[64];
    testenv_key(ch, sizeof ch, "classic");
    cr_assert_eq(aredis_pubsub_subscribe(ps, ch, on_classic, &h), 0);
    int home = -1;
    for (int spins = 0; home < 0 && spins < 300; spins++) {
        aredis_loop_run_once(loop, 10);
        for (int i = 0; i < 3 && spins % 10 == 0; i++)
            if (numsub(p[i], ch) == 1)
                home = i;
    }
    cr_assert_geq(home, 0, "subscribed somewhere");
    {
        testenv_server dn = {.host = "127.0.0.1", .port = p[home]};
        testenv_conn tc;
        const aredis_reply *r;
        cr_assert_eq(testenv_connect(&tc, &dn), 0);
        testenv_command(&tc, &r, "SHUTDOWN NOSAVE");
        testenv_close(&tc);
    }
    int moved = -1;
    for (int spins = 0; moved < 0 && spins < 800; spins++) {
        aredis_loop_run_once(loop, 10);
        for (int i = 0; i < 3 && spins % 10 == 0; i++)
            if (i != home && numsub(p[i], ch) == 1)
                moved = i;
    }
    cr_assert_geq(moved, 0, "moved off the dead node");
    for (int spins = 0; h.resubscribed < 1 && spins < 300; spins++)
        aredis_loop_run_once(loop, 10);
    cr_assert_eq(h.resubscribed, 1);
    int other = 3 - home - moved; /* publish through the third node */
    testenv_server pn = {.host = "127.0.0.1", .port = p[other]};
    testenv_conn tc;
    const aredis_reply *r;
    cr_assert_eq(testenv_connect(&tc, &pn), 0);
    cr_assert_eq(testenv_command(&tc, &r, "PUBLISH %s hello", ch), 0);
    testenv_close(&tc);
    for (int spins = 0; h.messages < 1 && spins < 300; spins++)
        aredis_loop_run_once(loop, 10);
    for (int spins = 0; spins < 10; spins++)
        aredis_loop_run_once(loop, 5);
    cr_assert_eq(h.messages, 1);
    aredis_pubsub_free(ps);
    aredis_client_free(c);
    for (int spins = 0; spins < 20; spins++)
        aredis_loop_run_once(loop, 5);
    aredis_loop_free(loop);
    testenv_private_cluster_stop(&srv);
}
