/* Fault tests against real Redis Clusters: a primary killed (kill -9)
 * under load, a graceful CLUSTER FAILOVER, a primary paused until the
 * cluster says CLUSTERDOWN, TRYAGAIN during a migration, a slot served by
 * no node, a node added then removed, a cluster still forming, and a TLS
 * cluster.
 *
 * Every test starts private clusters or servers (tests/support/
 * redis-cluster.sh, redis-server.sh, owned by the test process) with a
 * short cluster-node-timeout, so it can break them without disturbing the
 * shared fixture. Under load, a driver keeps W SETs of distinct keys in
 * flight, each submitted from the previous one's callback, and records
 * every completion; each test asserts exactly-once completion (lost = 0,
 * duplicated = 0), which errors were allowed (by code), and the final data
 * (every SET that succeeded is readable with its value through a fresh
 * client); the kill -9 test also checks that aredis_loop_run() returns
 * promptly once the client is freed (no timer of the topology left
 * behind). Each load prints one line
 *
 *   CLUSTER <name>: sent=N ok=N failed={CODE:n,...} ...timings */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "aredis/aredis.h"
#include "refill.h"
#include "testclient.h"
#include "testenv.h"

enum { MAX_LOAD = 120000, WINDOW = 16, MAX_NODES = 8 };

/* ---- a private cluster --------------------------------------------------- */

typedef struct pcluster {
    testenv_server s;
    int ports[MAX_NODES];
    int n;
} pcluster;

static void start_cluster(pcluster *p, const char *tag, const char *args)
{
    setenv("AREDIS_TEST_CLUSTER_NODE_TIMEOUT", "500", 1);
    cr_assert_eq(testenv_private_cluster_start(&p->s, tag, args), 0, "%s",
                 testenv_errstr());
    p->n = testenv_state_ports(p->s.name, "nodes", p->ports, MAX_NODES);
    cr_assert_gt(p->n, 0);
}

static void stop_cluster(pcluster *p)
{
    testenv_private_cluster_stop(&p->s);
}

static long node_pid(const pcluster *p, int i)
{
    char name[96];
    snprintf(name, sizeof name, "%s-node%d", p->s.name, i);
    testenv_server ns;
    testclient_server(&ns, name);
    return ns.pid;
}

/* One command (words split on spaces) on a blocking connection to port;
 * returns a copy of the reply (the caller frees it), NULL when the
 * connection failed. */
static aredis_reply *raw(int port, const char *text)
{
    testenv_conn c;
    testenv_server s = {.host = "127.0.0.1", .port = port};
    if (testenv_connect(&c, &s) != 0)
        return NULL;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s", text);
    const char *argv[64];
    size_t lens[64];
    int argc = 0;
    char *save = NULL;
    for (char *t = strtok_r(cmd, " ", &save); t != NULL && argc < 64;
         t = strtok_r(NULL, " ", &save)) {
        argv[argc] = t;
        lens[argc++] = strlen(t);
    }
    const aredis_reply *r = NULL;
    aredis_reply *out = NULL;
    if (testenv_commandv(&c, &r, argc, argv, lens) == 0)
        out = aredis_reply_dup(r);
    testenv_close(&c);
    return out;
}

static void raw_ok(int port, const char *text)
{
    aredis_reply *r = raw(port, text);
    cr_assert_not_null(r, "%d: %s: %s", port, text, testenv_errstr());
    cr_assert(r->type != AREDIS_REPLY_ERROR, "%d: %s: %s", port, text, r->str);
    aredis_reply_free(r);
}

/* port answers text with an error that starts with prefix. */
static int raw_error_starts(int port, const char *text, const char *prefix)
{
    aredis_reply *r = raw(port, text);
    int yes = r != NULL && r->type == AREDIS_REPLY_ERROR &&
              strncmp(r->str, prefix, strlen(prefix)) == 0;
    aredis_reply_free(r);
    return yes;
}

/* The reply of port to "ROLE" starts with "master". */
static int is_master(int port)
{
    aredis_reply *r = raw(port, "ROLE");
    int yes = r != NULL && r->type == AREDIS_REPLY_ARRAY && r->len > 0 &&
              strcmp(r->element[0].str, "master") == 0;
    aredis_reply_free(r);
    return yes;
}

/* The port of the primary serving slot, per the node at port `ask`. */
static int owner_of(int ask, unsigned slot)
{
    aredis_reply *r = raw(ask, "CLUSTER SLOTS");
    cr_assert_not_null(r);
    int port = 0;
    for (size_t i = 0; i < r->len; i++) {
        const aredis_reply *e = &r->element[i];
        if ((long long)slot >= e->element[0].integer &&
            (long long)slot <= e->element[1].integer)
            port = (int)e->element[2].element[1].integer;
    }
    aredis_reply_free(r);
    return port;
}

/* ---- the load ------------------------------------------------------------ */

typedef struct load load;

typedef struct rec {
    load *l;
    int i;
} rec;

struct load {
    aredis_client *c;
    const char *name;
    char prefix[64];
    int window, inflight, sent, stop;
    int64_t t0;
    int rate; /* commands per ms at most */
    rec recs[MAX_LOAD];
    unsigned char calls[MAX_LOAD];
    signed char code[MAX_LOAD]; /* 0 ok, else the error code */
    int32_t done_ms[MAX_LOAD];  /* since t0 */
    unsigned short slot[MAX_LOAD];
    int ok, failed;
    char first_err[256];
};

static load L; /* each Criterion test runs in its own process */

static void load_submit(load *l);

static void on_load(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    rec *k = ud;
    load *l = k->l;
    cr_assert_not_null(r);
    l->calls[k->i]++;
    l->inflight--;
    l->done_ms[k->i] = (int32_t)(testenv_now_ms() - l->t0);
    if (r->type == AREDIS_REPLY_STATUS) {
        l->code[k->i] = 0;
        l->ok++;
    } else {
        l->code[k->i] = (signed char)(r->type == AREDIS_REPLY_ERROR
                                          ? (r->code != 0 ? r->code : -6)
                                          : -3);
        if (l->failed++ == 0)
            snprintf(l->first_err, sizeof l->first_err, "%s: %.*s",
                     aredis_err_name(r->code), (int)r->len,
                     r->str != NULL ? r->str : "");
    }
    load_submit(l);
}

static void load_submit(load *l)
{
    int64_t allowed = (testenv_now_ms() - l->t0 + 1) * l->rate;
    while (!l->stop && l->inflight < l->window && l->sent < MAX_LOAD &&
           l->sent < allowed) {
        int i = l->sent;
        char key[96], val[16];
        snprintf(key, sizeof key, "%s:%d", l->prefix, i);
        snprintf(val, sizeof val, "v%d", i);
        l->recs[i] = (rec){l, i};
        l->slot[i] = (unsigned short)aredis_cluster_keyslot(key, strlen(key));
        if (aredis_command(l->c, on_load, &l->recs[i], "SET %s %s", key, val) !=
            0)
            return;
        l->sent++;
        l->inflight++;
    }
}

static void load_start(load *l, aredis_client *c, const char *name)
{
    memset(l, 0, sizeof *l);
    l->c = c;
    l->name = name;
    l->window = WINDOW;
    l->rate = 8;
    testenv_key(l->prefix, sizeof l->prefix, name);
    l->t0 = testenv_now_ms();
    load_submit(l);
}

/* Run the loop for ms, topping the window up. */
static void run_for(aredis_loop *loop, load *l, int64_t ms)
{
    int64_t end = testenv_now_ms() + ms;
    while (testenv_now_ms() < end) {
        aredis_loop_run_once(loop, 2);
        if (l != NULL)
            load_submit(l);
    }
}

/* Run the load until the node at port is a primary, then settle_ms more,
 * for within_ms at most: when it was first seen a primary, 0 if never. */
static int64_t load_until_primary(aredis_loop *loop, load *l, int port,
                                  int64_t within_ms, int64_t settle_ms)
{
    int64_t end = testenv_now_ms() + within_ms, promoted = 0;
    while (testenv_now_ms() < end) {
        run_for(loop, l, 20);
        if (promoted == 0 && is_master(port))
            promoted = testenv_now_ms();
        if (promoted != 0 && testenv_now_ms() > promoted + settle_ms)
            break;
    }
    return promoted;
}

/* Stop, drain, and check exactly-once: every command sent completed once. */
static void load_stop(aredis_loop *loop, load *l)
{
    l->stop = 1;
    int64_t end = testenv_now_ms() + 15000;
    while (l->inflight > 0 && testenv_now_ms() < end)
        aredis_loop_run_once(loop, 5);
    cr_assert_eq(l->inflight, 0, "%s: %d commands never completed", l->name,
                 l->inflight);
    for (int i = 0; i < l->sent; i++)
        cr_assert_eq(l->calls[i], 1, "%s: command %d: %d callbacks", l->name, i,
                     l->calls[i]);
    cr_assert_eq(l->ok + l->failed, l->sent);
}

/* Failures by code, as "CODE:n,...". */
static void failures(const load *l, char *buf, size_t cap)
{
    int counts[64] = {0};
    for (int i = 0; i < l->sent; i++)
        if (l->code[i] != 0 && -l->code[i] < 64)
            counts[-l->code[i]]++;
    buf[0] = '\0';
    for (int k = 1; k < 64; k++)
        if (counts[k] > 0)
            snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s:%d",
                     buf[0] ? "," : "", aredis_err_name(-k), counts[k]);
}

static int count_code(const load *l, int code)
{
    int n = 0;
    for (int i = 0; i < l->sent; i++)
        n += l->code[i] == code;
    return n;
}

/* Every SET that succeeded reads back with its value, through a fresh
 * client on the cluster. */
typedef struct check {
    int pending, bad;
    char first[160];
} check;

typedef struct vrec {
    check *ck;
    int i;
} vrec;

static vrec vrecs[MAX_LOAD];

static void on_check(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    vrec *v = ud;
    char want[16];
    snprintf(want, sizeof want, "v%d", v->i);
    if (r->type != AREDIS_REPLY_STRING || strcmp(r->str, want) != 0) {
        if (v->ck->bad++ == 0)
            snprintf(v->ck->first, sizeof v->ck->first, "key %d: %s", v->i,
                     r->type == AREDIS_REPLY_ERROR ? r->str : "wrong value");
    }
    v->ck->pending--;
}

static void verify_data(aredis_loop *loop, const char *url, const load *l)
{
    aredis_status st;
    aredis_client *c =
        aredis_client_new(loop, &(aredis_options){.url = url}, &st);
    cr_assert_not_null(c, "%s", st.msg);
    check ck = {0};
    for (int i = 0; i < l->sent; i++) {
        if (l->code[i] != 0)
            continue;
        char key[96];
        snprintf(key, sizeof key, "%s:%d", l->prefix, i);
        vrecs[i] = (vrec){&ck, i};
        cr_assert_eq(aredis_command(c, on_check, &vrecs[i], "GET %s", key), 0);
        ck.pending++;
        while (ck.pending > 256)
            aredis_loop_run_once(loop, 5);
    }
    int64_t end = testenv_now_ms() + 10000;
    while (ck.pending > 0 && testenv_now_ms() < end)
        aredis_loop_run_once(loop, 5);
    cr_assert_eq(ck.pending, 0);
    cr_assert_eq(ck.bad, 0, "%d keys read back wrong, first %s", ck.bad,
                 ck.first);
    aredis_client_free(c);
    for (int i = 0; i < 20; i++)
        aredis_loop_run_once(loop, 2);
}

static aredis_client *new_client(aredis_loop *loop, const char *url,
                                 int64_t timeout_ms)
{
    aredis_status st;
    aredis_client *c = aredis_client_new(
        loop, &(aredis_options){.url = url, .command_timeout_ms = timeout_ms},
        &st);
    cr_assert_not_null(c, "%s", st.msg);
    return c;
}

static void cluster_url(char *url, size_t cap, const pcluster *p, int first)
{
    snprintf(url, cap, "redis+cluster://127.0.0.1:%d,127.0.0.1:%d",
             p->ports[first], p->ports[(first + 1) % p->n]);
}

static void free_client(aredis_loop *loop, aredis_client *c)
{
    aredis_client_free(c);
    for (int i = 0; i < 20; i++)
        aredis_loop_run_once(loop, 2);
}

TestSuite(cluster_faults, .timeout = 150);

static void periodic_refresh_finds_a_failover(const pcluster *p);
static long long moved_errors(int port);

/* ---- kill -9 and CLUSTER FAILOVER ---------------------------------------- */

/* Primary 0 of a 3+3 cluster is killed under a window-16 SET stream with
 * 5 s deadlines: its replica is promoted and the client follows without a
 * restart. Only commands already written to the killed primary may fail,
 * each with AREDIS_EUNKNOWN; none is lost or completed twice; every other
 * SET is stored. Then, on another shard, a graceful CLUSTER FAILOVER
 * under the same load fails nothing at all. */
Test(cluster_faults, kill_9_of_a_primary_then_a_graceful_failover)

{
    pcluster p;
    start_cluster(&p, "clkill", "--primaries 3 --replicas 1");
    char url[128];
    cluster_url(url, sizeof url, &p, 1);
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = new_client(loop, url, 5000);

    load_start(&L, c, "kill");
    run_for(loop, &L, 500);
    cr_assert_gt(L.ok, 100, "the load runs before the fault");
    cr_assert_eq(L.failed, 0, "%s", L.first_err);

    /* Node 0 is the primary of slots 0-5460; node 3 its replica. */
    int64_t t_kill = testenv_now_ms();
    cr_assert_eq(kill((pid_t)node_pid(&p, 0), SIGKILL), 0);
    int64_t t_promoted = load_until_primary(loop, &L, p.ports[3], 20000, 1500);
    cr_assert_neq(t_promoted, 0, "the replica was never promoted");
    load_stop(loop, &L);

    /* Timings on the affected slots (0-5460) and the others. */
    int64_t first_ok = -1, last_before = -1, gap_other = 0, prev_other = -1;
    int affected_failed = 0, other_failed = 0;
    int64_t kill_off = t_kill - L.t0;
    for (int i = 0; i < L.sent; i++) {
        int affected = L.slot[i] <= 5460;
        if (L.code[i] != 0) {
            affected ? affected_failed++ : other_failed++;
            continue;
        }
        if (affected && L.done_ms[i] > kill_off &&
            (first_ok < 0 || L.done_ms[i] < first_ok))
            first_ok = L.done_ms[i];
        if (affected && L.done_ms[i] <= kill_off && L.done_ms[i] > last_before)
            last_before = L.done_ms[i];
    }
    /* The longest gap between successes on the other slots. */
    {
        static int32_t t[MAX_LOAD];
        int n = 0;
        for (int i = 0; i < L.sent; i++)
            if (L.code[i] == 0 && L.slot[i] > 5460)
                t[n++] = L.done_ms[i];
        for (int i = 1; i < n; i++) /* completions are nearly in order */
            if (t[i] < t[i - 1]) {
                int32_t x = t[i];
                int j = i;
                while (j > 0 && t[j - 1] > x) {
                    t[j] = t[j - 1];
                    j--;
                }
                t[j] = x;
            }
        for (int i = 0; i < n; i++) {
            if (prev_other >= 0 && t[i] - prev_other > gap_other)
                gap_other = t[i] - prev_other;
            prev_other = t[i];
        }
    }
    char fails[256];
    failures(&L, fails, sizeof fails);
    fprintf(stderr,
            "CLUSTER kill-9: sent=%d ok=%d failed={%s} promoted_after_ms=%lld "
            "first_ok_affected_after_kill_ms=%lld "
            "first_ok_after_promotion_ms=%lld longest_gap_other_ms=%lld\n",
            L.sent, L.ok, fails, (long long)(t_promoted - t_kill),
            (long long)(first_ok - kill_off),
            (long long)(first_ok - (t_promoted - L.t0)), (long long)gap_other);
    cr_assert_geq(first_ok, 0, "no success on the affected slots after");
    cr_assert_eq(count_code(&L, AREDIS_EUNKNOWN), L.failed,
                 "only outcome-unknown failures: %s (first: %s)", fails,
                 L.first_err);
    cr_assert_eq(other_failed, 0, "unaffected slots failed: %s", fails);
    cr_assert_leq(affected_failed, WINDOW, "at most the window in flight");
    /* The client follows the promotion quickly (the issue asks for
     * promotion + 150 ms; a loaded test machine gets more room). */
    cr_assert_leq(first_ok - (t_promoted - L.t0), 1500);
    verify_data(loop, url, &L);

    /* Graceful failover of shard 1 (node 1, replica node 4): nothing
     * fails. */
    load_start(&L, c, "graceful");
    run_for(loop, &L, 300);
    aredis_reply *r = raw(p.ports[4], "CLUSTER FAILOVER");
    cr_assert_not_null(r);
    cr_assert_eq(r->type, AREDIS_REPLY_STATUS, "%s", r->str);
    aredis_reply_free(r);
    int64_t t_fo = testenv_now_ms();
    t_promoted = load_until_primary(loop, &L, p.ports[4], 15000, 1000);
    cr_assert_neq(t_promoted, 0, "CLUSTER FAILOVER did not happen");
    load_stop(loop, &L);
    failures(&L, fails, sizeof fails);
    fprintf(stderr,
            "CLUSTER failover: sent=%d ok=%d failed={%s} "
            "promoted_after_ms=%lld\n",
            L.sent, L.ok, fails, (long long)(t_promoted - t_fo));
    cr_assert_eq(L.failed, 0, "a graceful failover failed commands: %s (%s)",
                 fails, L.first_err);
    verify_data(loop, url, &L);

    aredis_client_free(c);
    int64_t took = refill_run_loop(loop, 5000);
    cr_assert_lt(took, 1000,
                 "the loop ran %lld ms after the clients were "
                 "freed",
                 (long long)took);
    aredis_loop_free(loop);
    periodic_refresh_finds_a_failover(&p);
    stop_cluster(&p);
}

/* ---- one command at a time ------------------------------------------------
 */

/* Wait for o's callback (running the load meanwhile), then a little more
 * for a second one, which must not come. */
static void wait_one(aredis_loop *loop, load *l, testgot *o, int64_t ms)
{
    int64_t end = testenv_now_ms() + ms;
    while (o->calls == 0 && testenv_now_ms() < end)
        run_for(loop, l, 5);
    run_for(loop, l, 20);
    cr_assert_eq(o->calls, 1, "%d callbacks", o->calls);
}

/* A key of this process in the slot range [lo, hi], with a suffix. */
static unsigned key_in(char *key, size_t cap, const char *what, unsigned lo,
                       unsigned hi)
{
    for (int i = 0;; i++) {
        char suffix[48];
        snprintf(suffix, sizeof suffix, "%s%d", what, i);
        testenv_key(key, cap, suffix);
        unsigned slot = aredis_cluster_keyslot(key, strlen(key));
        if (slot >= lo && slot <= hi)
            return slot;
    }
}

/* Wait (running the load) until cond(port) holds, 15 s at most. */
static void wait_until(aredis_loop *loop, load *l, int (*cond)(int, void *),
                       int port, void *arg, const char *what)
{
    int64_t end = testenv_now_ms() + 15000;
    while (!cond(port, arg)) {
        cr_assert_lt(testenv_now_ms(), end, "timed out waiting: %s", what);
        run_for(loop, l, 20);
    }
}

static int says_clusterdown(int port, void *key)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "GET %s", (const char *)key);
    return raw_error_starts(port, cmd, "CLUSTERDOWN");
}

static int serves(int port, void *key)
{
    return !says_clusterdown(port, key);
}

static int lists_client(int port, void *name)
{
    aredis_reply *r = raw(port, "CLIENT LIST");
    int yes = r != NULL && r->type != AREDIS_REPLY_ERROR &&
              strstr(r->str, (const char *)name) != NULL;
    aredis_reply_free(r);
    return yes;
}

static int lists_no_client(int port, void *name)
{
    return !lists_client(port, name);
}

static int knows_nodes(int port, void *count)
{
    char want[48];
    snprintf(want, sizeof want, "cluster_known_nodes:%d", *(int *)count);
    aredis_reply *r = raw(port, "CLUSTER INFO");
    int yes = r != NULL && r->type != AREDIS_REPLY_ERROR &&
              strstr(r->str, want) != NULL &&
              strstr(r->str, "cluster_state:ok") != NULL;
    aredis_reply_free(r);
    return yes;
}

/* Moving a slot (its keys too) from the node at port `from` to the node
 * at port `to`: begin (IMPORTING, MIGRATING), migrate its keys, end
 * (SETSLOT NODE on both and on every node of ports[0..n)). */
static void begin_move(unsigned slot, int from, int to)
{
    char idf[41], idt[41], cmd[256];
    testclient_node_id(from, idf);
    testclient_node_id(to, idt);
    snprintf(cmd, sizeof cmd, "CLUSTER SETSLOT %u IMPORTING %s", slot, idf);
    raw_ok(to, cmd);
    snprintf(cmd, sizeof cmd, "CLUSTER SETSLOT %u MIGRATING %s", slot, idt);
    raw_ok(from, cmd);
}

static void migrate_keys(unsigned slot, int from, int to)
{
    char cmd[256];
    for (;;) {
        snprintf(cmd, sizeof cmd, "CLUSTER GETKEYSINSLOT %u 100", slot);
        aredis_reply *r = raw(from, cmd);
        cr_assert_not_null(r);
        size_t nkeys = r->len;
        /* One at a time: the text form splits on spaces. */
        for (size_t i = 0; i < nkeys; i++) {
            snprintf(cmd, sizeof cmd, "MIGRATE 127.0.0.1 %d %s 0 5000", to,
                     r->element[i].str);
            raw_ok(from, cmd);
        }
        aredis_reply_free(r);
        if (nkeys == 0)
            break;
    }
}

static void end_move(unsigned slot, int from, int to, const int *ports, int n)
{
    char idt[41], cmd[256];
    testclient_node_id(to, idt);
    snprintf(cmd, sizeof cmd, "CLUSTER SETSLOT %u NODE %s", slot, idt);
    raw_ok(to, cmd);
    /* A primary that gives its last slot away becomes a replica of the
     * new owner (Redis 7), possibly before it is told itself. */
    aredis_reply *r = raw(from, cmd);
    cr_assert_not_null(r);
    cr_assert(r->type != AREDIS_REPLY_ERROR ||
                  strstr(r->str, "only with masters") != NULL,
              "%d: %s: %s", from, cmd, r->str);
    aredis_reply_free(r);
    for (int i = 0; i < n; i++)
        if (ports[i] != to && ports[i] != from)
            raw_ok(ports[i], cmd);
}

static void move_slot(unsigned slot, int from, int to, const int *ports, int n)
{
    begin_move(slot, from, to);
    migrate_keys(slot, from, to);
    end_move(slot, from, to, ports, n);
}

/* On a 3-primary cluster without replicas:
 *  - CLUSTERDOWN while a primary is down: primary 0 is paused (SIGSTOP)
 *    until the others say CLUSTERDOWN, then resumed; the SET stream (10 s
 *    deadlines) loses and fails nothing, while a command with a short
 *    deadline gives up with the server's CLUSTERDOWN and the node;
 *  - TRYAGAIN: an MGET of two keys of one slot, one of them migrated: the
 *    client retries until the migration ends, then gets both values;
 *  - a slot served by no node: a command for it fails before its deadline
 *    saying so; one sent while it is unserved succeeds once the slot is
 *    served again;
 *  - a node added, a slot moved to it with its keys (the client uses the
 *    new node), then moved back and the node removed (CLUSTER FORGET,
 *    reset, shutdown): the client closes its connection to it; the stream
 *    fails nothing throughout. */
Test(cluster_faults, clusterdown_tryagain_unserved_node_added_and_removed)

{
    pcluster p;
    start_cluster(&p, "cldown", "--primaries 3 --replicas 0");
    char url[128];
    cluster_url(url, sizeof url, &p, 1);
    char name[64];
    snprintf(name, sizeof name, "cldown-%ld", (long)getpid());
    aredis_loop *loop = aredis_loop_new();
    aredis_status st;
    aredis_client *c = aredis_client_new(
        loop,
        &(aredis_options){.url = url,
                          .client_name = name,
                          .command_timeout_ms = 10000,
                          .cluster = {.refresh_period_ms = 300}},
        &st);
    cr_assert_not_null(c, "%s", st.msg);
    load_start(&L, c, "down");
    run_for(loop, &L, 300);

    /* CLUSTERDOWN. A key node 1 serves (slots 5461-10922). */
    char k1[96];
    key_in(k1, sizeof k1, "k1-", 5461, 10922);
    long pid0 = node_pid(&p, 0);
    int64_t t_stop = testenv_now_ms();
    cr_assert_eq(kill((pid_t)pid0, SIGSTOP), 0);
    wait_until(loop, &L, says_clusterdown, p.ports[1], k1, "CLUSTERDOWN");
    int64_t t_down = testenv_now_ms();
    testgot o = {0};
    cr_assert_eq(aredis_command_opts(c, &(aredis_cmd_opts){.timeout_ms = 300},
                                     testgot_keep, &o, "GET %s", k1),
                 0);
    wait_one(loop, &L, &o, 2000);
    cr_assert_eq(o.r->type, AREDIS_REPLY_ERROR);
    cr_assert_eq(o.r->code, AREDIS_ESERVER, "%s: %s",
                 aredis_err_name(o.r->code), o.r->str);
    cr_assert_not_null(strstr(o.r->str, "CLUSTERDOWN"), "%s", o.r->str);
    cr_assert_not_null(strstr(o.r->str, "gave up"), "%s", o.r->str);
    cr_assert_not_null(strstr(o.r->str, "127.0.0.1:"), "names the node: %s",
                       o.r->str);
    aredis_reply_free(o.r);
    cr_assert_eq(kill((pid_t)pid0, SIGCONT), 0);
    wait_until(loop, &L, serves, p.ports[1], k1, "cluster_state ok");
    int64_t t_up = testenv_now_ms();
    run_for(loop, &L, 500);
    load_stop(loop, &L);
    char fails[256];
    failures(&L, fails, sizeof fails);
    fprintf(stderr,
            "CLUSTER clusterdown: sent=%d ok=%d failed={%s} down_after_ms=%lld "
            "down_for_ms=%lld\n",
            L.sent, L.ok, fails, (long long)(t_down - t_stop),
            (long long)(t_up - t_down));
    cr_assert_eq(L.failed, 0, "%s (first: %s)", fails, L.first_err);
    verify_data(loop, url, &L);

    /* TRYAGAIN: {tag}a migrated, {tag}b not yet. */
    char tag[64], ka[96], kb[96], cmd[512];
    testenv_key(tag, sizeof tag, "try");
    snprintf(ka, sizeof ka, "{%s}a", tag);
    snprintf(kb, sizeof kb, "{%s}b", tag);
    unsigned slot = aredis_cluster_keyslot(ka, strlen(ka));
    int a = owner_of(p.ports[0], slot);
    int b = a == p.ports[0] ? p.ports[1] : p.ports[0];
    snprintf(cmd, sizeof cmd, "SET %s va", ka);
    raw_ok(a, cmd);
    snprintf(cmd, sizeof cmd, "SET %s vb", kb);
    raw_ok(a, cmd);
    begin_move(slot, a, b);
    snprintf(cmd, sizeof cmd, "MIGRATE 127.0.0.1 %d %s 0 5000", b, ka);
    raw_ok(a, cmd);
    snprintf(cmd, sizeof cmd, "MGET %s %s", ka, kb);
    cr_assert(raw_error_starts(a, cmd, "TRYAGAIN"), "no TRYAGAIN from %d", a);
    o = (testgot){0};
    cr_assert_eq(aredis_command(c, testgot_keep, &o, "MGET %s %s", ka, kb), 0);
    run_for(loop, NULL, 300);
    cr_assert_eq(o.calls, 0, "the MGET is retried while the slot migrates");
    migrate_keys(slot, a, b);
    end_move(slot, a, b, p.ports, p.n);
    wait_one(loop, NULL, &o, 5000);
    cr_assert_eq(o.r->type, AREDIS_REPLY_ARRAY, "%s",
                 o.r->type == AREDIS_REPLY_ERROR ? o.r->str : "");
    cr_assert_eq(o.r->len, 2);
    cr_assert_str_eq(o.r->element[0].str, "va");
    cr_assert_str_eq(o.r->element[1].str, "vb");
    aredis_reply_free(o.r);

    /* A slot nobody serves. */
    for (int i = 0; i < p.n; i++)
        raw_ok(p.ports[i], "CONFIG SET cluster-require-full-coverage no");
    char ku[96];
    unsigned su = key_in(ku, sizeof ku, "unserved", 0, 16383);
    int owner = owner_of(p.ports[0], su);
    snprintf(cmd, sizeof cmd, "CLUSTER DELSLOTS %u", su);
    for (int i = 0; i < p.n; i++)
        raw_ok(p.ports[i], cmd);
    o = (testgot){0};
    cr_assert_eq(aredis_command_opts(c, &(aredis_cmd_opts){.timeout_ms = 500},
                                     testgot_keep, &o, "GET %s", ku),
                 0);
    wait_one(loop, NULL, &o, 3000);
    cr_assert_eq(o.r->type, AREDIS_REPLY_ERROR);
    cr_assert_neq(o.r->code, AREDIS_ETIMEDOUT, "%s", o.r->str);
    cr_assert_not_null(strstr(o.r->str, "not served"), "%s", o.r->str);
    aredis_reply_free(o.r);
    o = (testgot){0};
    cr_assert_eq(aredis_command(c, testgot_keep, &o, "SET %s served", ku), 0);
    run_for(loop, NULL, 300);
    cr_assert_eq(o.calls, 0, "held while the slot is not served");
    snprintf(cmd, sizeof cmd, "CLUSTER ADDSLOTS %u", su);
    raw_ok(owner, cmd);
    wait_one(loop, NULL, &o, 8000);
    cr_assert_eq(o.r->type, AREDIS_REPLY_STATUS, "%s", o.r->str);
    aredis_reply_free(o.r);

    /* A node added, a slot moved to it, moved back, the node removed. */
    testenv_server ns;
    cr_assert_eq(
        testenv_private_start(&ns, "cladd",
                              "--cluster-enabled yes --cluster-config-file "
                              "{dir}/nodes.conf --cluster-node-timeout 500"),
        0, "%s", testenv_errstr());
    snprintf(cmd, sizeof cmd, "CLUSTER MEET 127.0.0.1 %d", ns.port);
    raw_ok(p.ports[0], cmd);
    int four = 4, three = 3;
    load_start(&L, c, "add");
    wait_until(loop, &L, knows_nodes, ns.port, &four, "the new node joins");
    for (int i = 0; i < p.n; i++)
        wait_until(loop, &L, knows_nodes, p.ports[i], &four, "all know it");
    char km[96];
    unsigned sm = key_in(km, sizeof km, "mv", 0, 16383);
    testgot set = {0};
    cr_assert_eq(aredis_command(c, testgot_keep, &set, "SET %s before", km), 0);
    wait_one(loop, &L, &set, 3000);
    aredis_reply_free(set.r);
    int from = owner_of(p.ports[0], sm);
    move_slot(sm, from, ns.port, p.ports, p.n);
    o = (testgot){0};
    cr_assert_eq(aredis_command(c, testgot_keep, &o, "GET %s", km), 0);
    wait_one(loop, &L, &o, 3000);
    cr_assert_eq(o.r->type, AREDIS_REPLY_STRING, "%s", o.r->str);
    cr_assert_str_eq(o.r->str, "before");
    aredis_reply_free(o.r);
    cr_assert(lists_client(ns.port, name), "the client uses the new node");
    move_slot(sm, ns.port, from, p.ports, p.n);
    char idn[41];
    testclient_node_id(ns.port, idn);
    snprintf(cmd, sizeof cmd, "CLUSTER FORGET %s", idn);
    for (int i = 0; i < p.n; i++)
        raw_ok(p.ports[i], cmd);
    raw_ok(ns.port, "CLUSTER RESET HARD");
    for (int i = 0; i < p.n; i++)
        wait_until(loop, &L, knows_nodes, p.ports[i], &three, "node forgotten");
    wait_until(loop, &L, lists_no_client, ns.port, name,
               "the client closes its connection to the removed node");
    testenv_private_stop(&ns);
    run_for(loop, &L, 500);
    o = (testgot){0};
    cr_assert_eq(aredis_command(c, testgot_keep, &o, "GET %s", km), 0);
    wait_one(loop, &L, &o, 3000);
    cr_assert_eq(o.r->type, AREDIS_REPLY_STRING, "%s", o.r->str);
    cr_assert_str_eq(o.r->str, "before");
    aredis_reply_free(o.r);
    load_stop(loop, &L);
    failures(&L, fails, sizeof fails);
    fprintf(stderr, "CLUSTER add-remove: sent=%d ok=%d failed={%s}\n", L.sent,
            L.ok, fails);
    cr_assert_eq(L.failed, 0, "%s (first: %s)", fails, L.first_err);
    verify_data(loop, url, &L);
    free_client(loop, c);

    /* The redirect bound (cluster.max_redirects = 2): node A hands a slot
     * to node B, which still believes A owns it, so they bounce the
     * command between them. It follows two MOVED and fails on the third,
     * naming the last redirect and the node that sent it. */
    /* A slot with no key (SETSLOT NODE refuses to give one away). */
    char kl[96];
    unsigned sl = 0;
    int la = 0;
    for (int i = 0;; i++) {
        char what[32];
        snprintf(what, sizeof what, "loop%d-", i);
        sl = key_in(kl, sizeof kl, what, 0, 16383);
        la = owner_of(p.ports[0], sl);
        snprintf(cmd, sizeof cmd, "CLUSTER COUNTKEYSINSLOT %u", sl);
        aredis_reply *n = raw(la, cmd);
        cr_assert_not_null(n);
        long long keys = n->integer;
        aredis_reply_free(n);
        if (keys == 0)
            break;
    }
    int lb = la == p.ports[0] ? p.ports[1] : p.ports[0];
    char idl[41];
    testclient_node_id(lb, idl);
    snprintf(cmd, sizeof cmd, "CLUSTER SETSLOT %u NODE %s", sl, idl);
    raw_ok(la, cmd);
    snprintf(cmd, sizeof cmd, "GET %s", kl);
    cr_assert(raw_error_starts(la, cmd, "MOVED"));
    cr_assert(raw_error_starts(lb, cmd, "MOVED"), "B does not bounce it");
    long long moved0 = moved_errors(la) + moved_errors(lb);
    c = aredis_client_new(
        loop, &(aredis_options){.url = url, .cluster = {.max_redirects = 2}},
        &st);
    cr_assert_not_null(c, "%s", st.msg);
    o = (testgot){0};
    cr_assert_eq(aredis_command(c, testgot_keep, &o, "GET %s", kl), 0);
    wait_one(loop, NULL, &o, 3000);
    cr_assert_eq(o.r->type, AREDIS_REPLY_ERROR);
    cr_assert_not_null(strstr(o.r->str, "too many cluster redirects (2)"), "%s",
                       o.r->str);
    cr_assert_not_null(strstr(o.r->str, "last: MOVED"), "%s", o.r->str);
    cr_assert_not_null(strstr(o.r->str, "(from 127.0.0.1:"), "%s", o.r->str);
    aredis_reply_free(o.r);
    cr_assert_eq(moved_errors(la) + moved_errors(lb) - moved0, 3,
                 "the first answer and two redirects followed");
    free_client(loop, c);
    aredis_loop_free(loop);
    stop_cluster(&p);
}

/* The client starts against three cluster-enabled servers that know no
 * slots and no other node yet: commands wait (their deadline is long)
 * instead of failing, and all succeed, once, when the cluster forms. */
Test(cluster_faults, client_started_against_a_cluster_still_forming)

{
    testenv_server s[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(testenv_private_start(
                         &s[i],
                         i == 0   ? "clform0"
                         : i == 1 ? "clform1"
                                  : "clform2",
                         "--cluster-enabled yes --cluster-config-file "
                         "{dir}/nodes.conf --cluster-node-timeout 500"),
                     0, "%s", testenv_errstr());
    char url[160];
    snprintf(url, sizeof url,
             "redis+cluster://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d",
             s[0].port, s[1].port, s[2].port);
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = new_client(loop, url, 20000);
    load_start(&L, c, "form");
    L.rate = 1;
    run_for(loop, &L, 400);
    cr_assert_eq(L.ok + L.failed, 0,
                 "nothing completes before the cluster "
                 "has slots (%s)",
                 L.first_err);
    cr_assert_gt(L.sent, 0);
    char cmd[128];
    for (int i = 0; i < 3; i++) {
        snprintf(cmd, sizeof cmd, "CLUSTER ADDSLOTSRANGE %d %d", 16384 * i / 3,
                 16384 * (i + 1) / 3 - 1);
        raw_ok(s[i].port, cmd);
        snprintf(cmd, sizeof cmd, "CLUSTER SET-CONFIG-EPOCH %d", i + 1);
        raw_ok(s[i].port, cmd);
    }
    for (int i = 1; i < 3; i++) {
        snprintf(cmd, sizeof cmd, "CLUSTER MEET 127.0.0.1 %d", s[i].port);
        raw_ok(s[0].port, cmd);
    }
    int three = 3;
    for (int i = 0; i < 3; i++)
        wait_until(loop, &L, knows_nodes, s[i].port, &three, "formed");
    run_for(loop, &L, 500);
    load_stop(loop, &L);
    char fails[256];
    failures(&L, fails, sizeof fails);
    fprintf(stderr, "CLUSTER forming: sent=%d ok=%d failed={%s}\n", L.sent,
            L.ok, fails);
    cr_assert_eq(L.failed, 0, "%s (first: %s)", fails, L.first_err);
    verify_data(loop, url, &L);
    free_client(loop, c);
    aredis_loop_free(loop);
    for (int i = 0; i < 3; i++)
        testenv_private_stop(&s[i]);
}

#ifdef AREDIS_TEST_TLS
/* A TLS cluster (tls-cluster yes, TLS only) through rediss+cluster://:
 * the map's TLS ports are used, every SET succeeds and reads back. */
Test(cluster_faults, tls_cluster)
{
    pcluster p;
    start_cluster(&p, "cltls", "--primaries 3 --replicas 0 --tls");
    char state[512], line[600], dir[512] = "";
    snprintf(state, sizeof state, "%s/%s.state",
             getenv("AREDIS_TEST_STATE_DIR"), p.s.name);
    FILE *f = fopen(state, "r");
    cr_assert_not_null(f);
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "tls_dir=", 8) == 0)
            snprintf(dir, sizeof dir, "%.*s", (int)strcspn(line + 8, "\n"),
                     line + 8);
    fclose(f);
    cr_assert_neq(dir[0], '\0', "no tls_dir= in %s", state);
    char url[1024];
    snprintf(url, sizeof url,
             "rediss+cluster://127.0.0.1:%d,127.0.0.1:%d/?tls_ca_file=%s/"
             "ca.crt",
             p.ports[0], p.ports[1], dir);
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = new_client(loop, url, 5000);
    load_start(&L, c, "tls");
    run_for(loop, &L, 800);
    load_stop(loop, &L);
    char fails[256];
    failures(&L, fails, sizeof fails);
    fprintf(stderr, "CLUSTER tls: sent=%d ok=%d failed={%s}\n", L.sent, L.ok,
            fails);
    cr_assert_gt(L.ok, 100);
    cr_assert_eq(L.failed, 0, "%s (first: %s)", fails, L.first_err);
    verify_data(loop, url, &L);
    free_client(loop, c);
    aredis_loop_free(loop);
    stop_cluster(&p);
}
#endif

/* errorstat_MOVED of the node at port (INFO errorstats), 0 when none. */
static long long moved_errors(int port)
{
    aredis_reply *r = raw(port, "INFO errorstats");
    cr_assert_not_null(r);
    const char *m = strstr(r->str, "errorstat_MOVED:count=");
    long long n = m != NULL ? atoll(m + 22) : 0;
    aredis_reply_free(r);
    return n;
}

/* With no traffic at all, a CLUSTER FAILOVER is found by the periodic
 * refresh (300 ms here): after it, reads of the shard go straight to the
 * new primary; the old one (a replica now) answers no MOVED. Runs at the
 * end of the kill -9 test, on its cluster (node 2 and its replica 5). */
static void periodic_refresh_finds_a_failover(const pcluster *p)
{
    char url[128];
    cluster_url(url, sizeof url, p, 1);
    aredis_loop *loop = aredis_loop_new();
    aredis_status st;
    aredis_client *c = aredis_client_new(
        loop,
        &(aredis_options){.url = url,
                          .command_timeout_ms = 5000,
                          .cluster = {.refresh_period_ms = 300}},
        &st);
    cr_assert_not_null(c, "%s", st.msg);
    enum { N = 20 };
    char keys[N][96];
    for (int i = 0; i < N; i++) {
        char what[16];
        snprintf(what, sizeof what, "per%d-", i);
        key_in(keys[i], sizeof keys[i], what, 10923, 16383);
    }
    testgot o = {0};
    cr_assert_eq(aredis_command(c, testgot_keep, &o, "GET %s", keys[0]), 0);
    wait_one(loop, NULL, &o, 3000);
    aredis_reply_free(o.r);
    aredis_reply *r = raw(p->ports[5], "CLUSTER FAILOVER");
    cr_assert_not_null(r);
    cr_assert_eq(r->type, AREDIS_REPLY_STATUS, "%s", r->str);
    aredis_reply_free(r);
    int64_t end = testenv_now_ms() + 10000;
    while (!is_master(p->ports[5])) {
        cr_assert_lt(testenv_now_ms(), end, "CLUSTER FAILOVER did not happen");
        run_for(loop, NULL, 10);
    }
    /* Wait for the old primary to know it is a replica, then the period and
     * a margin. */
    while (is_master(p->ports[2])) {
        cr_assert_lt(testenv_now_ms(), end, "node 2 is still a primary");
        run_for(loop, NULL, 10);
    }
    run_for(loop, NULL, 300 + 100);
    long long before = moved_errors(p->ports[2]);
    static testgot got[N];
    for (int i = 0; i < N; i++) {
        got[i] = (testgot){0};
        cr_assert_eq(
            aredis_command(c, testgot_keep, &got[i], "GET %s", keys[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        wait_one(loop, NULL, &got[i], 3000);
        cr_assert_neq(got[i].r->type, AREDIS_REPLY_ERROR, "%s", got[i].r->str);
        aredis_reply_free(got[i].r);
    }
    cr_assert_eq(moved_errors(p->ports[2]), before,
                 "reads still went to the old primary: the map was not "
                 "refreshed by the period");
    free_client(loop, c);
    aredis_loop_free(loop);
}

/* ---- a SCAN walk across failovers -----------------------------------------
 */

enum { NWALK = 300 };

typedef struct walk {
    testscan_end end; /* first: testscan_done's */
    pcluster *p;
    char seen[NWALK];
    int batches;
} walk;

/* The index of a key of this test ("walk:<i>"), or -1. */
static int walk_index(const char *s, size_t len)
{
    char buf[32];
    if (len >= sizeof buf || len < 6 || memcmp(s, "walk:", 5) != 0)
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    int i = atoi(buf + 5);
    return i >= 0 && i < NWALK ? i : -1;
}

/* Block until the node at port is a primary (a failover finished). */
static void await_primary(int port)
{
    int64_t end = testenv_now_ms() + 30000;
    while (!is_master(port)) {
        cr_assert_lt(testenv_now_ms(), end, "%d was never promoted", port);
        usleep(20000);
    }
}

/* Mid-walk, on the first batch (from the primary of slot 0, node 0): a
 * graceful failover of that node's shard (node 3 takes over: the node
 * being walked is a replica from then on), and node 1, not walked yet,
 * killed (its replica, node 4, is promoted while the walk goes on). */
static int on_walk_batch(aredis_client *c, const aredis_reply *b, void *ud)
{
    (void)c;
    (void)b;
    walk *w = ud;
    if (w->batches++ == 0) {
        aredis_reply *r = raw(w->p->ports[3], "CLUSTER FAILOVER");
        cr_assert_not_null(r);
        cr_assert_eq(r->type, AREDIS_REPLY_STATUS, "%s", r->str);
        aredis_reply_free(r);
        await_primary(w->p->ports[3]);
        cr_assert_eq(kill((pid_t)node_pid(w->p, 1), SIGKILL), 0);
    }
    return 0;
}

static int on_walk_elem(aredis_client *c, const aredis_scan_elem *e, void *ud)
{
    (void)c;
    walk *w = ud;
    int i = walk_index(e->str, e->len);
    cr_assert_geq(i, 0, "a key not of this test: %.*s", (int)e->len, e->str);
    w->seen[i] = 1;
    return 0;
}

static void assert_all_seen(const char *seen, const char *form)
{
    for (int i = 0; i < NWALK; i++)
        cr_assert(seen[i], "%s: walk:%d was never returned", form, i);
}

/* SET walk:0 .. walk:n-1 through sy; with on_node, count them per third
 * of the slots (the primary of each in a three-primary cluster). */
static void write_walk_keys(aredis_sync *sy, int n, int on_node[3])
{
    for (int i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof key, "walk:%d", i);
        aredis_reply *r = aredis_sync_command(sy, "SET %s v", key);
        cr_assert_not_null(r);
        cr_assert_neq(r->type, AREDIS_REPLY_ERROR, "%s", r->str);
        aredis_reply_free(r);
        if (on_node != NULL)
            on_node[aredis_cluster_keyslot(key, strlen(key)) * 3 /
                    AREDIS_CLUSTER_SLOTS]++;
    }
}

/* A SCAN of the key space on a 3+3 cluster survives the topology changing
 * under it (asynchronous walk, then blocking iterator): a graceful
 * CLUSTER FAILOVER of the shard being walked, a kill -9 of a primary not
 * walked yet, then a kill -9 of the primary being walked and a graceful
 * failover of one not walked yet. Each walk finishes once, without an
 * error, and returns every key at least once. */
Test(cluster_faults, scan_walk_survives_failovers_and_kills)
{
    pcluster p;
    start_cluster(&p, "clscan", "--primaries 3 --replicas 1");
    char url[128];
    cluster_url(url, sizeof url, &p, 2);
    aredis_status st;
    aredis_sync *sy = aredis_sync_connect(&(aredis_options){.url = url}, &st);
    cr_assert_not_null(sy, "%s", st.msg);
    int on_node[3] = {0};
    write_walk_keys(sy, NWALK, on_node);
    for (int i = 0; i < 3; i++)
        cr_assert_gt(on_node[i], 20, "keys on every primary");
    aredis_sync_free(sy);

    /* Asynchronous: a few keys per call, so the walk is long. */
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = new_client(loop, url, 5000);
    static walk w;
    w.p = &p;
    aredis_scan_opts o = {.match = "walk:*", .count = 5, .timeout_ms = 20000};
    cr_assert_eq(
        aredis_scan(c, &o, on_walk_batch, on_walk_elem, testscan_done, &w), 0);
    int64_t end = testenv_now_ms() + 60000;
    while (w.end.calls == 0 && testenv_now_ms() < end)
        aredis_loop_run_once(loop, 50);
    cr_assert_eq(w.end.calls, 1, "the walk never finished");
    cr_assert_eq(w.end.status, AREDIS_SCAN_FINISHED, "%d: %s", w.end.status,
                 w.end.err);
    assert_all_seen(w.seen, "async");
    free_client(loop, c);
    aredis_loop_free(loop);
    cr_assert_eq(w.end.calls, 1, "done ran again");

    /* Blocking: node 3 serves slot 0 now; it is killed after the first
     * element (node 0 is promoted back), and node 5 takes shard 2 over
     * from node 2 before the walk reaches it. */
    static char seen[NWALK];
    sy = aredis_sync_connect(&(aredis_options){.url = url}, &st);
    cr_assert_not_null(sy, "%s", st.msg);
    aredis_sync_scan *it = aredis_sync_scan_new(sy, &o, &st);
    cr_assert_not_null(it, "%s", st.msg);
    aredis_scan_elem e;
    int rc, n = 0;
    while ((rc = aredis_sync_scan_next(it, &e)) == 1) {
        int i = walk_index(e.str, e.len);
        cr_assert_geq(i, 0, "a key not of this test: %.*s", (int)e.len, e.str);
        seen[i] = 1;
        if (n++ == 0) {
            cr_assert_eq(kill((pid_t)node_pid(&p, 3), SIGKILL), 0);
            aredis_reply *r = raw(p.ports[5], "CLUSTER FAILOVER");
            cr_assert_not_null(r);
            cr_assert_eq(r->type, AREDIS_REPLY_STATUS, "%s", r->str);
            aredis_reply_free(r);
            await_primary(p.ports[5]);
        }
    }
    cr_assert_eq(rc, 0, "%d: %s", rc, aredis_sync_scan_errmsg(it));
    cr_assert_eq(aredis_sync_scan_next(it, &e), 0, "the end is sticky");
    assert_all_seen(seen, "sync");
    aredis_sync_scan_free(it);
    aredis_sync_free(sy);
    stop_cluster(&p);
}

/* ---- a SCAN walk's deadline on a silent node ------------------------------
 */

enum { NSILENT = 40, SILENT_TIMEOUT_MS = 200, PAUSE_MS = 4000 };

/* Pause every client of the node at port (CLIENT PAUSE ... ALL: it stops
 * answering, while its cluster bus goes on, so no failover starts) for
 * PAUSE_MS; returns when the pause began. */
static int64_t pause_node(int port)
{
    char cmd[64];
    snprintf(cmd, sizeof cmd, "CLIENT PAUSE %d ALL", PAUSE_MS);
    int64_t t = testenv_now_ms();
    raw_ok(port, cmd);
    return t;
}

/* Run the loop until the pause begun at t0 is over, then check that the
 * node answers again. */
static void await_unpaused(aredis_loop *loop, int64_t t0, int port)
{
    while (testenv_now_ms() < t0 + PAUSE_MS + 100)
        aredis_loop_run_once(loop, 20);
    raw_ok(port, "PING");
}

/* Each walk's calls have the walk's timeout_ms on a cluster client too:
 * the node serving slot 0 stops answering (CLIENT PAUSE), and a SCAN walk
 * with a 200 ms timeout (the client's own command timeout is 10 s) ends
 * with AREDIS_ETIMEDOUT long before the pause does - its PING, SCAN and
 * probe calls time out one after the other at most - and its done
 * callback runs once. Once the node answers again a new walk returns
 * every key. The same for the blocking iterator. */
Test(cluster_faults, scan_timeout_on_a_silent_node)
{
    pcluster p;
    start_cluster(&p, "clsilent", "--primaries 3 --replicas 0");
    char url[128];
    cluster_url(url, sizeof url, &p, 1);
    int silent = owner_of(p.ports[0], 0);
    aredis_status st;
    aredis_sync *sy = aredis_sync_connect(
        &(aredis_options){.url = url, .command_timeout_ms = 10000}, &st);
    cr_assert_not_null(sy, "%s", st.msg);
    write_walk_keys(sy, NSILENT, NULL);
    const int64_t bound = 3 * SILENT_TIMEOUT_MS + 700;
    aredis_scan_opts o = {
        .match = "walk:*", .count = 5, .timeout_ms = SILENT_TIMEOUT_MS};

    /* Asynchronous. */
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = new_client(loop, url, 10000);
    static walk w;
    int64_t t0 = pause_node(silent);
    int64_t start = testenv_now_ms();
    cr_assert_eq(aredis_scan(c, &o, NULL, on_walk_elem, testscan_done, &w), 0);
    while (w.end.calls == 0 && testenv_now_ms() < start + PAUSE_MS - 500)
        aredis_loop_run_once(loop, 10);
    int64_t took = testenv_now_ms() - start;
    cr_assert_eq(w.end.calls, 1, "the walk did not end within %lld ms",
                 (long long)took);
    cr_assert_eq(w.end.status, AREDIS_ETIMEDOUT, "%d: %s", w.end.status,
                 w.end.err);
    cr_assert_lt(took, bound, "took %lld ms", (long long)took);
    await_unpaused(loop, t0, silent);
    cr_assert_eq(w.end.calls, 1, "done ran again");
    static walk again;
    cr_assert_eq(aredis_scan(c, &o, NULL, on_walk_elem, testscan_done, &again),
                 0);
    int64_t end = testenv_now_ms() + 10000;
    while (again.end.calls == 0 && testenv_now_ms() < end)
        aredis_loop_run_once(loop, 10);
    cr_assert_eq(again.end.calls, 1);
    cr_assert_eq(again.end.status, AREDIS_SCAN_FINISHED, "%d: %s",
                 again.end.status, again.end.err);
    for (int i = 0; i < NSILENT; i++)
        cr_assert(again.seen[i], "walk:%d was never returned", i);
    free_client(loop, c);
    aredis_loop_free(loop);
    cr_assert_eq(w.end.calls, 1, "done ran again");

    /* Blocking. */
    aredis_sync_scan *it = aredis_sync_scan_new(sy, &o, &st);
    cr_assert_not_null(it, "%s", st.msg);
    aredis_scan_elem e;
    t0 = pause_node(silent);
    start = testenv_now_ms();
    int rc = aredis_sync_scan_next(it, &e);
    took = testenv_now_ms() - start;
    cr_assert_eq(rc, AREDIS_ETIMEDOUT, "%d: %s", rc,
                 aredis_sync_scan_errmsg(it));
    cr_assert_lt(took, bound, "took %lld ms", (long long)took);
    cr_assert_eq(aredis_sync_scan_next(it, &e), AREDIS_ETIMEDOUT, "sticky");
    aredis_sync_scan_free(it);
    while (testenv_now_ms() < t0 + PAUSE_MS + 100)
        usleep(20000);
    raw_ok(silent, "PING");
    static char seen[NSILENT];
    it = aredis_sync_scan_new(sy, &o, &st);
    cr_assert_not_null(it, "%s", st.msg);
    while ((rc = aredis_sync_scan_next(it, &e)) == 1) {
        int i = walk_index(e.str, e.len);
        cr_assert(i >= 0 && i < NSILENT, "%.*s", (int)e.len, e.str);
        seen[i] = 1;
    }
    cr_assert_eq(rc, 0, "%d: %s", rc, aredis_sync_scan_errmsg(it));
    for (int i = 0; i < NSILENT; i++)
        cr_assert(seen[i], "sync: walk:%d was never returned", i);
    aredis_sync_scan_free(it);
    aredis_sync_free(sy);
    stop_cluster(&p);
}
