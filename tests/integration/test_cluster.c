/* Integration tests against the real test cluster (fixture redis_cluster:
 * tests/support/redis-cluster.sh, 3 primaries + 3 replicas on loopback).
 *
 *  - the fixture hands over a ready cluster: every node is up, says
 *    cluster_state:ok, lists all six nodes, and serves the same slot map;
 *  - aredis_cluster_keyslot() agrees with the server's CLUSTER KEYSLOT for
 *    thousands of random keys, hash tags and binary bytes included;
 *  - the cluster client routes, follows redirects, and, once warm,
 *    allocates nothing per command (a window of SETs). */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "aredis/aredis.h"
#include "countalloc.h"
#include "testclient.h"
#include "testenv.h"

#define MAX_NODES 16

/* The cluster's nodes, from the nodes= line of its state file. */
static int ports[MAX_NODES];
static int nports;

static void load_nodes(void)
{
    nports = testenv_state_ports("cluster", "nodes", ports, MAX_NODES);
    cr_assert_eq(nports, 6, "nodes= lists %d nodes: %s", nports,
                 testenv_errstr());
    cr_assert_eq(ports[0], testclient_port("cluster"),
                 "the state's port is the first node");
}

TestSuite(cluster, .init = load_nodes, .timeout = 120);

Test(cluster, fixture_is_a_ready_cluster)
{
    char first[4096] = "";
    for (int i = 0; i < nports; i++) {
        testenv_conn c;
        const aredis_reply *r;
        testclient_connect_port(&c, ports[i]);
        cr_assert_eq(testenv_command(&c, &r, "CLUSTER INFO"), 0, "%s",
                     testenv_errstr());
        cr_assert_eq(r->type, AREDIS_REPLY_STRING);
        cr_assert_not_null(strstr(r->str, "cluster_state:ok"), "%d: %s",
                           ports[i], r->str);
        cr_assert_not_null(strstr(r->str, "cluster_known_nodes:6"));
        cr_assert_not_null(strstr(r->str, "cluster_size:3"));
        cr_assert_not_null(strstr(r->str, "cluster_slots_assigned:16384"));
        cr_assert_not_null(strstr(r->str, "cluster_slots_ok:16384"));
        /* Same slot ranges and primaries everywhere: CLUSTER SLOTS names
         * primaries by address, so the first range of each entry and its
         * primary's port make a view to compare. */
        cr_assert_eq(testenv_command(&c, &r, "CLUSTER SLOTS"), 0, "%s",
                     testenv_errstr());
        cr_assert_eq(r->type, AREDIS_REPLY_ARRAY);
        cr_assert_eq(r->len, 3, "%zu slot ranges", r->len);
        long long covered = 0;
        char view[4096] = "";
        /* Entries sorted by start slot (the server's order may differ). */
        for (long long want = 0; want < 16384;) {
            const aredis_reply *hit = NULL;
            for (size_t k = 0; k < r->len; k++)
                if (r->element[k].element[0].integer == want)
                    hit = &r->element[k];
            cr_assert_not_null(hit, "no range starts at %lld", want);
            long long hi = hit->element[1].integer;
            cr_assert_eq(hit->len, 4, "one primary and one replica");
            char part[128];
            snprintf(part, sizeof part, "%lld-%lld@%lld/%lld ", want, hi,
                     hit->element[2].element[1].integer,
                     hit->element[3].element[1].integer);
            strcat(view, part);
            covered += hi - want + 1;
            want = hi + 1;
        }
        cr_assert_eq(covered, 16384);
        if (i == 0)
            strcpy(first, view);
        else
            cr_assert_str_eq(view, first, "node %d disagrees", ports[i]);
        testenv_close(&c);
    }
}

Test(cluster, keyslot_matches_the_server)
{
    testenv_conn c;
    testclient_connect_port(&c, ports[0]);
    /* Keys drawn from an alphabet rich in braces, so that tags, empty
     * tags, nested and unclosed braces all occur; lengths 0 to 24. */
    static const char alphabet[] = "{}{}ab:x\0\xff";
    srand((unsigned)getpid());
    int tagged = 0;
    for (int i = 0; i < 3000; i++) {
        char key[24];
        size_t len = (size_t)(rand() % 25);
        for (size_t k = 0; k < len; k++)
            key[k] = alphabet[rand() % (int)(sizeof alphabet - 1)];
        const char *argv[] = {"CLUSTER", "KEYSLOT", key};
        size_t argvlen[] = {7, 7, len};
        const aredis_reply *r;
        cr_assert_eq(testenv_commandv(&c, &r, 3, argv, argvlen), 0, "%s",
                     testenv_errstr());
        cr_assert_eq(r->type, AREDIS_REPLY_INTEGER);
        unsigned mine = aredis_cluster_keyslot(key, len);
        cr_assert_eq((long long)mine, r->integer,
                     "key %d (%zu bytes): %u, server %lld", i, len, mine,
                     r->integer);
        const char *open = memchr(key, '{', len);
        if (open != NULL &&
            memchr(open + 1, '}', len - (size_t)(open + 1 - key)) != NULL)
            tagged++;
    }
    cr_assert_gt(tagged, 500, "only %d keys had braces", tagged);
    testenv_close(&c);
}

/* ---- the cluster client -------------------------------------------------- */

#define NKEYS 300

typedef struct tally {
    int calls[NKEYS];
    int ok[NKEYS];
    char val[NKEYS][32];
    int done;
} tally;

typedef struct call {
    tally *t;
    int i;
} call;

static call calls[NKEYS];

static void on_set(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    call *k = ud;
    cr_assert_not_null(r);
    k->t->calls[k->i]++;
    k->t->done++;
    k->t->ok[k->i] = r->type == AREDIS_REPLY_STATUS && r->len == 2 &&
                     memcmp(r->str, "OK", 2) == 0;
    if (!k->t->ok[k->i])
        fprintf(stderr, "key %d: %.*s\n", k->i, (int)r->len,
                r->str ? r->str : "");
}

static void on_get(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    call *k = ud;
    cr_assert_not_null(r);
    k->t->calls[k->i]++;
    k->t->done++;
    k->t->ok[k->i] = r->type == AREDIS_REPLY_STRING && r->len < 32;
    if (k->t->ok[k->i]) {
        memcpy(k->t->val[k->i], r->str, r->len);
        k->t->val[k->i][r->len] = '\0';
    }
}

static void run_until_done(aredis_loop *loop, const tally *t, int n)
{
    for (int spins = 0; t->done < n && spins < 20000; spins++)
        aredis_loop_run_once(loop, 10);
    cr_assert_eq(t->done, n, "%d of %d completed", t->done, n);
}

/* The port of the primary that holds key (the one that answers GET
 * without MOVED), 0 when none does. */
static int holder(const char *key, const char *want)
{
    int found = 0;
    for (int i = 0; i < 3; i++) {
        testenv_conn c;
        const aredis_reply *r;
        testclient_connect_port(&c, ports[i]);
        cr_assert_eq(testenv_command(&c, &r, "GET %s", key), 0, "%s",
                     testenv_errstr());
        if (r->type == AREDIS_REPLY_STRING) {
            cr_assert_str_eq(r->str, want, "%s on %d", key, ports[i]);
            cr_assert_eq(found, 0, "%s is on two primaries", key);
            found = ports[i];
        } else {
            cr_assert_eq(r->type, AREDIS_REPLY_ERROR);
            cr_assert_eq(strncmp(r->str, "MOVED ", 6), 0, "%s", r->str);
        }
        testenv_close(&c);
    }
    return found;
}

/* Commands submitted before the client has the slot map go to the first
 * seed; about two thirds of them meet MOVED there and must be followed to
 * the owner. Every callback runs exactly once with OK, every key lands on
 * the primary that owns its slot, and the values read back through the
 * client (now routed by the map) are the ones written. */
Test(cluster, client_routes_by_slot_and_follows_moved)
{
    char url[256];
    snprintf(url, sizeof url, "redis+cluster://127.0.0.1:%d,127.0.0.1:%d",
             ports[0], ports[1]);
    aredis_loop *loop = aredis_loop_new();
    cr_assert_not_null(loop);
    aredis_status st;
    aredis_client *c =
        aredis_client_new(loop, &(aredis_options){.url = url}, &st);
    cr_assert_not_null(c, "%s", st.msg);

    static tally t;
    char keys[NKEYS][64];
    int slots_seen[3] = {0};
    for (int i = 0; i < NKEYS; i++) {
        char suffix[16];
        snprintf(suffix, sizeof suffix, "c%d", i);
        testenv_key(keys[i], sizeof keys[i], suffix);
        unsigned slot = aredis_cluster_keyslot(keys[i], strlen(keys[i]));
        slots_seen[slot * 3 / AREDIS_CLUSTER_SLOTS]++;
        calls[i] = (call){&t, i};
        cr_assert_eq(
            aredis_command(c, on_set, &calls[i], "SET %s v%d", keys[i], i), 0);
    }
    for (int k = 0; k < 3; k++)
        cr_assert_gt(slots_seen[k], 50, "keys on every primary");
    run_until_done(loop, &t, NKEYS);
    for (int i = 0; i < NKEYS; i++) {
        cr_assert_eq(t.calls[i], 1, "SET %d: %d callbacks", i, t.calls[i]);
        cr_assert(t.ok[i], "SET %d failed", i);
    }
    for (int i = 0; i < NKEYS; i += 7) {
        char want[16];
        snprintf(want, sizeof want, "v%d", i);
        cr_assert_neq(holder(keys[i], want), 0, "%s is nowhere", keys[i]);
    }

    /* Read back, routed by the map by now. */
    memset(&t, 0, sizeof t);
    for (int i = 0; i < NKEYS; i++)
        cr_assert_eq(aredis_command(c, on_get, &calls[i], "GET %s", keys[i]),
                     0);
    run_until_done(loop, &t, NKEYS);
    for (int i = 0; i < NKEYS; i++) {
        char want[16];
        snprintf(want, sizeof want, "v%d", i);
        cr_assert_eq(t.calls[i], 1, "GET %d: %d callbacks", i, t.calls[i]);
        cr_assert(t.ok[i], "GET %d failed", i);
        cr_assert_str_eq(t.val[i], want);
    }

    /* Clean up through the client too: DEL routes by slot as well. */
    memset(&t, 0, sizeof t);
    for (int i = 0; i < NKEYS; i++)
        cr_assert_eq(aredis_command(c, NULL, NULL, "DEL %s", keys[i]), 0);
    aredis_client_free(c);
    for (int spins = 0; spins < 100; spins++)
        aredis_loop_run_once(loop, 10);
    aredis_loop_free(loop);
}

/* A bad cluster URL says what is wrong with it. */
Test(cluster, client_refuses_a_bad_cluster_url)
{
    aredis_loop *loop = aredis_loop_new();
    cr_assert_not_null(loop);
    aredis_status st;
    aredis_client *c = aredis_client_new(
        loop, &(aredis_options){.url = "redis+cluster://h1,,h2"}, &st);
    cr_assert_null(c);
    cr_assert_eq(st.code, AREDIS_EURL);
    cr_assert_not_null(strstr(st.msg, "empty cluster seed 2 of 3"), "%s",
                       st.msg);
    aredis_loop_free(loop);
}

/* ---- redirects on a private cluster -------------------------------------- */

/* One command through the client, run to completion: its reply (a copy
 * the caller frees) after exactly one callback. */
static aredis_reply *run_one(aredis_loop *loop, aredis_client *c,
                             const char *fmt, const char *key)
{
    testgot o = {0};
    cr_assert_eq(aredis_command(c, testgot_keep, &o, fmt, key), 0);
    for (int spins = 0; o.calls == 0 && spins < 2000; spins++)
        aredis_loop_run_once(loop, 10);
    /* A second callback would come in the next turns, if any. */
    for (int spins = 0; spins < 5; spins++)
        aredis_loop_run_once(loop, 1);
    cr_assert_eq(o.calls, 1, "%s %s: %d callbacks", fmt, key, o.calls);
    return o.r;
}

static void cmd_ok(int port, const char *fmt, const char *a, const char *b)
{
    aredis_reply *r = testclient_direct(port, fmt, a, b);
    cr_assert(r->type == AREDIS_REPLY_STATUS, "%d: %s: %s", port, fmt,
              r->type == AREDIS_REPLY_ERROR ? r->str : "?");
    aredis_reply_free(r);
}

/* A key of this process whose slot is on the first primary (slots
 * 0-8191 of the private cluster). */
static unsigned key_on_first(char *key, size_t cap, const char *what)
{
    for (int i = 0;; i++) {
        char suffix[32];
        snprintf(suffix, sizeof suffix, "%s%d", what, i);
        testenv_key(key, cap, suffix);
        unsigned slot = aredis_cluster_keyslot(key, strlen(key));
        if (slot < 8192)
            return slot;
    }
}

/* A number from INFO <section> of the node at port: the integer after
 * `field` on the line starting with `line` (0 when there is none). */
static long long info_number(int port, const char *section, const char *line,
                             const char *field)
{
    testenv_conn c;
    const aredis_reply *r;
    testclient_connect_port(&c, port);
    cr_assert_eq(testenv_command(&c, &r, "INFO %s", section), 0);
    long long v = 0;
    const char *at = strstr(r->str, line);
    const char *f = at != NULL ? strstr(at, field) : NULL;
    const char *eol = at != NULL ? strchr(at, '\n') : NULL;
    if (f != NULL && (eol == NULL || f < eol))
        v = strtoll(f + strlen(field), NULL, 10);
    testenv_close(&c);
    return v;
}

/* The slot map requests a node has answered (CLUSTER SHARDS, SLOTS and
 * NODES). */
static long long map_requests(int port)
{
    return info_number(port, "commandstats",
                       "cmdstat_cluster|shards:", "calls=") +
           info_number(port, "commandstats",
                       "cmdstat_cluster|slots:", "calls=") +
           info_number(port, "commandstats",
                       "cmdstat_cluster|nodes:", "calls=");
}

/* Commands in flight at once during a migration, each with its count of
 * callbacks. */
#define ASK_BURST 64
static int burst_calls[ASK_BURST];
static int burst_ok[ASK_BURST];

static void on_burst(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    int i = (int)(intptr_t)ud;
    cr_assert_not_null(r);
    burst_calls[i]++;
    burst_ok[i] += r->type == AREDIS_REPLY_STATUS;
}

/* With the map loaded, a slot moves from A to B: the client's next
 * command for it goes to A, meets MOVED and lands on B, once. Then
 * another slot migrates with keys in it: during the migration A answers
 * ASK for a moved key, and the client's ASKING + GET on B returns it,
 * once; a new key in that slot is created on B the same way. Then
 * ASK_BURST SETs at once on that slot (keys still on A, keys moved to B,
 * new keys): each completes once, OK, and lands where the key is; the
 * ASKs neither asked for a slot map nor patched the client's (nothing
 * reached B without ASKING, so no MOVED from it). A blocking command
 * (BLPOP of a list moved to B) follows ASK too, with ASKING on its
 * exclusive connection. Runs on a private 2-primary cluster: moving slots
 * would disturb the shared one. */
Test(cluster, moved_after_a_slot_moves_and_ask_during_a_migration,
     .timeout = 120)
{
    testenv_server s;
    int p[2];
    testclient_private_cluster(&s, "clmove", p, 2);
    char ida[41], idb[41];
    testclient_node_id(p[0], ida);
    testclient_node_id(p[1], idb);

    char url[128];
    snprintf(url, sizeof url, "redis+cluster://127.0.0.1:%d", p[0]);
    aredis_loop *loop = aredis_loop_new();
    aredis_status st;
    /* No periodic refresh: every map request below has a cause. */
    aredis_client *c = aredis_client_new(
        loop,
        &(aredis_options){.url = url, .cluster = {.refresh_period_ms = -1}},
        &st);
    cr_assert_not_null(c, "%s", st.msg);
    /* Let the map arrive. */
    char warm[64];
    key_on_first(warm, sizeof warm, "warm");
    aredis_reply_free(run_one(loop, c, "GET %s", warm));

    /* MOVED: an empty slot changes owner, A -> B. */
    char key[64], slot[8];
    snprintf(slot, sizeof slot, "%u", key_on_first(key, sizeof key, "mv"));
    cmd_ok(p[1], "CLUSTER SETSLOT %s IMPORTING %s", slot, ida);
    cmd_ok(p[0], "CLUSTER SETSLOT %s MIGRATING %s", slot, idb);
    cmd_ok(p[1], "CLUSTER SETSLOT %s NODE %s", slot, idb);
    cmd_ok(p[0], "CLUSTER SETSLOT %s NODE %s", slot, idb);
    aredis_reply *r = run_one(loop, c, "SET %s moved", key);
    cr_assert_eq(r->type, AREDIS_REPLY_STATUS, "%s", r->str);
    aredis_reply_free(r);
    testenv_conn b;
    const aredis_reply *br;
    testclient_connect_port(&b, p[1]);
    cr_assert_eq(testenv_command(&b, &br, "GET %s", key), 0);
    cr_assert_eq(br->type, AREDIS_REPLY_STRING, "the key is not on B");
    cr_assert_str_eq(br->str, "moved");
    /* The slot stays patched: the next command goes to B straight away
     * (A would answer MOVED again, which is fine, but B must be asked). */
    r = run_one(loop, c, "GET %s", key);
    cr_assert_eq(r->type, AREDIS_REPLY_STRING);
    cr_assert_str_eq(r->str, "moved");
    aredis_reply_free(r);

    /* ASK: a slot with a key, half-way through its migration. */
    char old[64], fresh[96];
    unsigned s2 = key_on_first(old, sizeof old, "ask");
    snprintf(slot, sizeof slot, "%u", s2);
    /* A key of the same slot that does not exist yet. */
    for (int i = 0;; i++) {
        char suffix[32];
        snprintf(suffix, sizeof suffix, "new%d", i);
        testenv_key(fresh, sizeof fresh, suffix);
        if (aredis_cluster_keyslot(fresh, strlen(fresh)) == s2)
            break;
    }
    r = run_one(loop, c, "SET %s before", old);
    cr_assert_eq(r->type, AREDIS_REPLY_STATUS);
    aredis_reply_free(r);
    /* A list of the slot, moved to B below: a blocking pop meets ASK. */
    char lkey[96];
    snprintf(lkey, sizeof lkey, "{%s}:list", old);
    r = run_one(loop, c, "RPUSH %s popped", lkey);
    cr_assert_eq(r->type, AREDIS_REPLY_INTEGER);
    aredis_reply_free(r);
    /* Keys of the same slot ({old}:i): the first half exist on A. */
    char bkey[ASK_BURST][96];
    for (int i = 0; i < ASK_BURST; i++) {
        snprintf(bkey[i], sizeof bkey[i], "{%s}:%d", old, i);
        cr_assert_eq(aredis_cluster_keyslot(bkey[i], strlen(bkey[i])), s2);
        if (i < ASK_BURST / 2) {
            r = run_one(loop, c, "SET %s v1", bkey[i]);
            cr_assert_eq(r->type, AREDIS_REPLY_STATUS);
            aredis_reply_free(r);
        }
    }
    cmd_ok(p[1], "CLUSTER SETSLOT %s IMPORTING %s", slot, ida);
    cmd_ok(p[0], "CLUSTER SETSLOT %s MIGRATING %s", slot, idb);
    testenv_conn a;
    const aredis_reply *ar;
    testclient_connect_port(&a, p[0]);
    char port_b[8];
    snprintf(port_b, sizeof port_b, "%d", p[1]);
    const char *argv[] = {"MIGRATE", "127.0.0.1", port_b, old, "0", "5000"};
    cr_assert_eq(testenv_commandv(&a, &ar, 6, argv, NULL), 0);
    cr_assert_eq(ar->type, AREDIS_REPLY_STATUS, "MIGRATE: %s", ar->str);
    cr_assert_eq(testenv_command(&a, &ar, "GET %s", old), 0);
    cr_assert_eq(ar->type, AREDIS_REPLY_ERROR);
    cr_assert_eq(strncmp(ar->str, "ASK ", 4), 0, "%s", ar->str);
    r = run_one(loop, c, "GET %s", old);
    cr_assert_eq(r->type, AREDIS_REPLY_STRING, "%s", r->str);
    cr_assert_str_eq(r->str, "before");
    aredis_reply_free(r);
    r = run_one(loop, c, "SET %s created", fresh);
    cr_assert_eq(r->type, AREDIS_REPLY_STATUS, "%s", r->str);
    aredis_reply_free(r);
    cr_assert_eq(testenv_command(&b, &br, "ASKING"), 0);
    cr_assert_eq(testenv_command(&b, &br, "GET %s", fresh), 0);
    cr_assert_eq(br->type, AREDIS_REPLY_STRING, "the new key is not on B");
    cr_assert_str_eq(br->str, "created");

    /* The burst: of the keys on A, the even ones move to B first. */
    const char *margv[8 + ASK_BURST / 2] = {
        "MIGRATE", "127.0.0.1", port_b, "", "0", "5000", "KEYS", lkey};
    int margc = 8;
    for (int i = 0; i < ASK_BURST / 2; i += 2)
        margv[margc++] = bkey[i];
    cr_assert_eq(testenv_commandv(&a, &ar, margc, margv, NULL), 0);
    cr_assert_eq(ar->type, AREDIS_REPLY_STATUS, "MIGRATE: %s", ar->str);
    for (int spins = 0; spins < 30; spins++)
        aredis_loop_run_once(loop, 10); /* the refresh of the MOVED above */
    long long maps0 = map_requests(p[0]) + map_requests(p[1]);
    long long moved0 =
        info_number(p[1], "errorstats", "errorstat_MOVED:", "count=");
    long long asks0 =
        info_number(p[0], "errorstats", "errorstat_ASK:", "count=");
    for (int i = 0; i < ASK_BURST; i++)
        cr_assert_eq(aredis_command(c, on_burst, (void *)(intptr_t)i,
                                    "SET %s v2-%d", bkey[i], i),
                     0);
    int done = 0;
    for (int spins = 0; done < ASK_BURST && spins < 2000; spins++) {
        aredis_loop_run_once(loop, 10);
        done = 0;
        for (int i = 0; i < ASK_BURST; i++)
            done += burst_calls[i] > 0;
    }
    /* A key still on A goes to A: the ASKs left the map as it was. */
    r = run_one(loop, c, "GET %s", bkey[1]);
    cr_assert_eq(r->type, AREDIS_REPLY_STRING, "%s", r->str);
    cr_assert_str_eq(r->str, "v2-1");
    aredis_reply_free(r);
    /* Long enough for a refresh the ASKs would have asked for. */
    for (int spins = 0; spins < 30; spins++)
        aredis_loop_run_once(loop, 10);
    for (int i = 0; i < ASK_BURST; i++) {
        cr_assert_eq(burst_calls[i], 1, "%s: %d callbacks", bkey[i],
                     burst_calls[i]);
        cr_assert_eq(burst_ok[i], 1, "%s failed", bkey[i]);
    }
    cr_assert_geq(
        info_number(p[0], "errorstats", "errorstat_ASK:", "count=") - asks0,
        ASK_BURST / 4 + ASK_BURST / 2, "the moved and new keys met ASK");
    cr_assert_eq(map_requests(p[0]) + map_requests(p[1]), maps0,
                 "an ASK asked for a slot map");
    cr_assert_eq(info_number(p[1], "errorstats", "errorstat_MOVED:", "count="),
                 moved0, "a command reached B without ASKING (map patched?)");
    /* Each key where the migration says: odd ones of the first half
     * still on A, the others on B. */
    for (int i = 0; i < ASK_BURST; i++) {
        char want[32];
        snprintf(want, sizeof want, "v2-%d", i);
        int on_a = i < ASK_BURST / 2 && (i & 1);
        testenv_conn *at = on_a ? &a : &b;
        if (!on_a)
            cr_assert_eq(testenv_command(at, &br, "ASKING"), 0);
        cr_assert_eq(testenv_command(at, &br, "GET %s", bkey[i]), 0);
        cr_assert_eq(br->type, AREDIS_REPLY_STRING, "%s not on %s", bkey[i],
                     on_a ? "A" : "B");
        cr_assert_str_eq(br->str, want);
    }
    /* A blocking command redirected by ASK goes with ASKING too (on its
     * exclusive connection): BLPOP gets the list's element from B, once,
     * rather than bouncing between B's MOVED and A's ASK. */
    r = run_one(loop, c, "BLPOP %s 2", lkey);
    cr_assert_eq(r->type, AREDIS_REPLY_ARRAY, "BLPOP: %s",
                 r->type == AREDIS_REPLY_ERROR ? r->str : "?");
    cr_assert_eq(r->len, 2);
    cr_assert_str_eq(r->element[1].str, "popped");
    aredis_reply_free(r);
    /* The rest moves too (a slot ends its migration empty). */
    margc = 7;
    for (int i = 1; i < ASK_BURST / 2; i += 2)
        margv[margc++] = bkey[i];
    cr_assert_eq(testenv_commandv(&a, &ar, margc, margv, NULL), 0);
    cr_assert_eq(ar->type, AREDIS_REPLY_STATUS, "MIGRATE: %s", ar->str);
    /* The migration ends: MOVED takes over from ASK. */
    cmd_ok(p[1], "CLUSTER SETSLOT %s NODE %s", slot, idb);
    cmd_ok(p[0], "CLUSTER SETSLOT %s NODE %s", slot, idb);
    r = run_one(loop, c, "GET %s", old);
    cr_assert_eq(r->type, AREDIS_REPLY_STRING);
    cr_assert_str_eq(r->str, "before");
    aredis_reply_free(r);

    testenv_close(&a);
    testenv_close(&b);
    aredis_client_free(c);
    for (int spins = 0; spins < 20; spins++)
        aredis_loop_run_once(loop, 5);
    aredis_loop_free(loop);
    testenv_private_cluster_stop(&s);
}

/* The client freed while commands are being redirected: every callback
 * still runs exactly once (OK, or canceled), whatever point each command
 * had reached. Freed at several points of the first loop turns. */
static int freed_calls[NKEYS];

static void on_any(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    cr_assert_not_null(r);
    freed_calls[(int)(intptr_t)ud]++;
}

Test(cluster, client_freed_while_redirects_are_pending)
{
    char url[128];
    snprintf(url, sizeof url, "redis+cluster://127.0.0.1:%d", ports[0]);
    for (int turns = 0; turns < 6; turns++) {
        aredis_loop *loop = aredis_loop_new();
        aredis_status st;
        aredis_client *c =
            aredis_client_new(loop, &(aredis_options){.url = url}, &st);
        cr_assert_not_null(c, "%s", st.msg);
        memset(freed_calls, 0, sizeof freed_calls);
        for (int i = 0; i < NKEYS; i++) {
            char key[64], suffix[32];
            snprintf(suffix, sizeof suffix, "free%d", i);
            testenv_key(key, sizeof key, suffix);
            cr_assert_eq(
                aredis_command(c, on_any, (void *)(intptr_t)i, "SET %s x", key),
                0);
        }
        for (int t = 0; t < turns; t++)
            aredis_loop_run_once(loop, 20);
        aredis_client_free(c);
        for (int spins = 0; spins < 50; spins++)
            aredis_loop_run_once(loop, 5);
        for (int i = 0; i < NKEYS; i++)
            cr_assert_eq(freed_calls[i], 1, "turns %d, key %d: %d callbacks",
                         turns, i, freed_calls[i]);
        aredis_loop_free(loop);
    }
}

/* A command on a borrowed (exclusive) connection is the caller's: inside
 * a transaction, sending it to another node would take it out of its
 * context. So its MOVED comes back as the reply, once, unfollowed. */
typedef struct borrowed {
    aredis_exclusive *x;
    int acquired, calls;
    aredis_reply *r;
} borrowed;

static void on_acquired(aredis_client *c, aredis_exclusive *x, int status,
                        void *ud)
{
    (void)c;
    borrowed *b = ud;
    cr_assert_eq(status, 0, "%s", aredis_err_name(status));
    b->x = x;
    b->acquired++;
}

static void on_borrowed_reply(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    borrowed *b = ud;
    cr_assert_not_null(r);
    b->calls++;
    aredis_reply_free(b->r);
    b->r = aredis_reply_dup(r);
}

Test(cluster, commands_on_a_borrowed_connection_are_not_redirected)
{
    char url[128];
    snprintf(url, sizeof url, "redis+cluster://127.0.0.1:%d", ports[0]);
    aredis_loop *loop = aredis_loop_new();
    aredis_status st;
    aredis_client *c =
        aredis_client_new(loop, &(aredis_options){.url = url}, &st);
    cr_assert_not_null(c, "%s", st.msg);
    borrowed b = {0};
    cr_assert_eq(aredis_client_acquire(c, on_acquired, &b), 0);
    for (int spins = 0; b.acquired == 0 && spins < 1000; spins++)
        aredis_loop_run_once(loop, 10);
    cr_assert_eq(b.acquired, 1);
    /* A key the first seed (slots 0-5460) does not serve. */
    char key[64];
    for (int i = 0;; i++) {
        char suffix[32];
        snprintf(suffix, sizeof suffix, "pin%d", i);
        testenv_key(key, sizeof key, suffix);
        if (aredis_cluster_keyslot(key, strlen(key)) > 5460)
            break;
    }
    cr_assert_eq(
        aredis_exclusive_command(b.x, on_borrowed_reply, &b, "GET %s", key), 0);
    for (int spins = 0; b.calls == 0 && spins < 1000; spins++)
        aredis_loop_run_once(loop, 10);
    for (int spins = 0; spins < 5; spins++)
        aredis_loop_run_once(loop, 1);
    cr_assert_eq(b.calls, 1);
    cr_assert_eq(b.r->type, AREDIS_REPLY_ERROR);
    cr_assert_eq(strncmp(b.r->str, "MOVED ", 6), 0, "%s", b.r->str);
    aredis_reply_free(b.r);
    aredis_exclusive_release(b.x);
    aredis_client_free(c);
    for (int spins = 0; spins < 20; spins++)
        aredis_loop_run_once(loop, 5);
    aredis_loop_free(loop);
}

/* ---- seeds, callbacks, replica reads, lazy start ------------------------- */

static aredis_client *client_for(aredis_loop *loop, const aredis_options *o)
{
    aredis_status st;
    aredis_client *c = aredis_client_new(loop, o, &st);
    cr_assert_not_null(c, "%s", st.msg);
    return c;
}

static void free_and_drain(aredis_loop *loop, aredis_client *c)
{
    aredis_client_free(c);
    for (int spins = 0; spins < 20; spins++)
        aredis_loop_run_once(loop, 5);
    aredis_loop_free(loop);
}

/* Two seeds that nothing listens on come first: the client finds the map
 * through the third, and every command succeeds, once. */
Test(cluster, a_seed_list_where_some_seeds_are_down)
{
    int dead1 = testenv_free_port(), dead2 = testenv_free_port();
    cr_assert_gt(dead1, 0);
    cr_assert_gt(dead2, 0);
    char url[256];
    snprintf(url, sizeof url,
             "redis+cluster://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", dead1,
             dead2, ports[1]);
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client_for(
        loop, &(aredis_options){.url = url, .command_timeout_ms = 5000});
    static tally t;
    memset(&t, 0, sizeof t);
    int64_t t0 = testenv_now_ms();
    for (int i = 0; i < 100; i++) {
        char key[64], suffix[16];
        snprintf(suffix, sizeof suffix, "sd%d", i);
        testenv_key(key, sizeof key, suffix);
        calls[i] = (call){&t, i};
        cr_assert_eq(aredis_command(c, on_set, &calls[i], "SET %s v", key), 0);
    }
    run_until_done(loop, &t, 100);
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(t.calls[i], 1);
        cr_assert(t.ok[i], "SET %d failed", i);
    }
    cr_assert_lt(testenv_now_ms() - t0, 3000, "the dead seeds held it up");
    free_and_drain(loop, c);
}

/* Each callback submits the next command (the GET of the key its SET
 * wrote, or the next SET; keys over every slot), the first ones before
 * the client has the map: every command completes once and every GET
 * reads its SET's value. */
typedef struct chain chain;

typedef struct chain_rec {
    chain *ch;
    int i;
} chain_rec;

struct chain {
    aredis_client *c;
    int step, done, bad;
    int calls[2 * NKEYS];
    chain_rec rec[2 * NKEYS];
};

static void chain_next(chain *ch);

static void chain_key(char *key, size_t cap, int i)
{
    char suffix[16];
    snprintf(suffix, sizeof suffix, "ch%d", i / 2);
    testenv_key(key, cap, suffix);
}

static void on_chain(aredis_client *c, const aredis_reply *r, void *ud)
{
    chain_rec *k = ud;
    chain *ch = k->ch;
    int i = k->i;
    ch->done++;
    ch->calls[i]++;
    char want[16], key[64];
    snprintf(want, sizeof want, "c%d", i / 2);
    if (i % 2 == 0 ? r->type != AREDIS_REPLY_STATUS
                   : r->type != AREDIS_REPLY_STRING || strcmp(r->str, want))
        ch->bad++;
    if (i % 2 == 1) {
        chain_next(ch);
        return;
    }
    /* The SET is done: its GET, from its callback. */
    chain_key(key, sizeof key, i);
    ch->rec[i + 1] = (chain_rec){ch, i + 1};
    cr_assert_eq(aredis_command(c, on_chain, &ch->rec[i + 1], "GET %s", key),
                 0);
}

/* The next pair: SET of a key, then (from its callback) its GET. */
static void chain_next(chain *ch)
{
    int i = ch->step;
    if (i >= 2 * NKEYS)
        return;
    ch->step += 2;
    char key[64], val[16];
    chain_key(key, sizeof key, i);
    snprintf(val, sizeof val, "c%d", i / 2);
    ch->rec[i] = (chain_rec){ch, i};
    cr_assert_eq(
        aredis_command(ch->c, on_chain, &ch->rec[i], "SET %s %s", key, val), 0);
}

Test(cluster, a_callback_that_issues_a_new_command)
{
    char url[128];
    snprintf(url, sizeof url, "redis+cluster://127.0.0.1:%d", ports[2]);
    aredis_loop *loop = aredis_loop_new();
    static chain ch;
    memset(&ch, 0, sizeof ch);
    ch.c = client_for(loop, &(aredis_options){.url = url});
    /* Four chains at once, started before the map arrives. */
    for (int k = 0; k < 4; k++)
        chain_next(&ch);
    for (int spins = 0; ch.done < 2 * NKEYS && spins < 3000; spins++)
        aredis_loop_run_once(loop, 10);
    cr_assert_eq(ch.done, 2 * NKEYS);
    for (int i = 0; i < 2 * NKEYS; i++)
        cr_assert_eq(ch.calls[i], 1, "command %d: %d callbacks", i,
                     ch.calls[i]);
    cr_assert_eq(ch.bad, 0, "%d wrong replies", ch.bad);
    free_and_drain(loop, ch.c);
}

/* keyspace_hits + keyspace_misses of the node at port. */
static long long lookups(int port)
{
    testenv_conn c;
    const aredis_reply *r;
    testclient_connect_port(&c, port);
    cr_assert_eq(testenv_command(&c, &r, "INFO stats"), 0);
    const char *h = strstr(r->str, "keyspace_hits:");
    const char *m = strstr(r->str, "keyspace_misses:");
    cr_assert(h != NULL && m != NULL);
    long long n = atoll(h + 14) + atoll(m + 16);
    testenv_close(&c);
    return n;
}

static long long replica_lookups(void)
{
    long long n = 0;
    for (int i = 3; i < nports; i++)
        n += lookups(ports[i]);
    return n;
}

/* read_from: GETs go to the replicas (replica), to replicas and primaries
 * in turn (any), or to the nearest node (nearest); a replica serves them
 * only when its connection said READONLY (otherwise it answers MOVED and
 * the read lands on the primary). Writes still succeed: they go to the
 * primary. */
Test(cluster, replica_reads)
{
    static const struct {
        const char *name;
        int mode;
    } modes[] = {{"replica", AREDIS_READ_REPLICA},
                 {"any", AREDIS_READ_ANY},
                 {"nearest", AREDIS_READ_NEAREST}};
    char url[128];
    snprintf(url, sizeof url, "redis+cluster://127.0.0.1:%d", ports[0]);
    enum { N = 120 };
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        aredis_loop *loop = aredis_loop_new();
        aredis_client *c = client_for(
            loop, &(aredis_options){.url = url,
                                    .cluster = {.read_from = modes[m].mode}});
        static tally t;
        memset(&t, 0, sizeof t);
        char keys[N][64];
        for (int i = 0; i < N; i++) {
            char suffix[32];
            snprintf(suffix, sizeof suffix, "rr%s%d", modes[m].name, i);
            testenv_key(keys[i], sizeof keys[i], suffix);
            calls[i] = (call){&t, i};
            cr_assert_eq(
                aredis_command(c, on_set, &calls[i], "SET %s v%d", keys[i], i),
                0);
        }
        run_until_done(loop, &t, N);
        for (int i = 0; i < N; i++)
            cr_assert(t.ok[i], "%s: SET %d failed", modes[m].name, i);
        /* Let the replicas catch up, then read. */
        for (int spins = 0; spins < 30; spins++)
            aredis_loop_run_once(loop, 10);
        long long before = replica_lookups();
        memset(&t, 0, sizeof t);
        for (int i = 0; i < N; i++)
            cr_assert_eq(
                aredis_command(c, on_get, &calls[i], "GET %s", keys[i]), 0);
        run_until_done(loop, &t, N);
        long long on_replicas = replica_lookups() - before;
        for (int i = 0; i < N; i++) {
            char want[16];
            snprintf(want, sizeof want, "v%d", i);
            cr_assert_eq(t.calls[i], 1);
            cr_assert(t.ok[i], "%s: GET %d failed", modes[m].name, i);
            cr_assert_str_eq(t.val[i], want, "%s", modes[m].name);
        }
        if (modes[m].mode == AREDIS_READ_REPLICA)
            cr_assert_geq(on_replicas, N, "replica: %lld of %d on replicas",
                          on_replicas, N);
        else if (modes[m].mode == AREDIS_READ_ANY)
            cr_assert(on_replicas >= N / 4 && on_replicas <= 3 * N / 4,
                      "any: %lld of %d on replicas", on_replicas, N);
        for (int i = 0; i < N; i++)
            cr_assert_eq(aredis_command(c, NULL, NULL, "DEL %s", keys[i]), 0);
        free_and_drain(loop, c);
    }
}

/* Whether any node lists a connection named name. */
static int named_anywhere(const char *name)
{
    for (int i = 0; i < nports; i++) {
        testenv_conn c;
        const aredis_reply *r;
        testclient_connect_port(&c, ports[i]);
        cr_assert_eq(testenv_command(&c, &r, "CLIENT LIST"), 0);
        int yes = strstr(r->str, name) != NULL;
        testenv_close(&c);
        if (yes)
            return 1;
    }
    return 0;
}

/* lazy=yes: no connection until the first command; the default (eager)
 * fetches the map at once. */
Test(cluster, lazy_and_eager_start)
{
    for (int lazy = 0; lazy < 2; lazy++) {
        char url[192], name[64];
        snprintf(name, sizeof name, "lazy%d-%ld", lazy, (long)getpid());
        snprintf(url, sizeof url, "redis+cluster://127.0.0.1:%d/?lazy=%s",
                 ports[0], lazy ? "yes" : "no");
        aredis_loop *loop = aredis_loop_new();
        aredis_client *c = client_for(
            loop, &(aredis_options){.url = url, .client_name = name});
        for (int spins = 0; spins < 30; spins++)
            aredis_loop_run_once(loop, 10);
        cr_assert_eq(named_anywhere(name), !lazy,
                     "lazy=%d: connected before any command: %d", lazy,
                     named_anywhere(name));
        char key[64];
        testenv_key(key, sizeof key, "lazy");
        aredis_reply *r = run_one(loop, c, "SET %s x", key);
        cr_assert_eq(r->type, AREDIS_REPLY_STATUS, "%s", r->str);
        aredis_reply_free(r);
        cr_assert(named_anywhere(name));
        free_and_drain(loop, c);
    }
}

/* ---- memory per command -------------------------------------------------- */

#define WINDOW 64
#define WARM 3000
#define MEASURED 3000

typedef struct window {
    aredis_client *c;
    char keys[500][48];
    int issued, done, failed;
    long at_warm; /* allocations counted when the warm-up ended */
} window;

static void window_send(window *w);

static void on_window(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    window *w = ud;
    w->done++;
    if (r->type != AREDIS_REPLY_STATUS)
        w->failed++;
    if (w->issued < WARM + MEASURED)
        window_send(w);
}

static void window_send(window *w)
{
    if (w->issued == WARM)
        w->at_warm = countalloc_calls;
    const char *key = w->keys[w->issued % 500];
    w->issued++;
    cr_assert_eq(aredis_command(w->c, on_window, w, "SET %s v", key), 0);
}

/* SETs over keys of every slot range with 64 in flight, as a program
 * keeping a window of commands: once warm (a connection per primary,
 * buffers at their size, records reused), the cluster client allocates
 * nothing per command. A redirect needs each command's bytes, which stay
 * in its connection's output buffer until the reply instead of being
 * copied per command. */
Test(cluster, a_window_of_commands_allocates_nothing_once_warm)
{
    cr_assert_eq(aredis_set_allocator(&countalloc_hooks), 0);
    char url[256];
    snprintf(url, sizeof url,
             "redis+cluster://127.0.0.1:%d,127.0.0.1:%d/?refresh_period=0",
             ports[0], ports[1]);
    aredis_loop *loop = aredis_loop_new();
    static window w;
    w.c = client_for(loop, &(aredis_options){.url = url});
    for (int i = 0; i < 500; i++) {
        char suffix[16];
        snprintf(suffix, sizeof suffix, "w%d", i);
        testenv_key(w.keys[i], sizeof w.keys[i], suffix);
    }
    for (int i = 0; i < WINDOW; i++)
        window_send(&w);
    for (int spins = 0; w.done < WARM + MEASURED && spins < 20000; spins++)
        aredis_loop_run_once(loop, 10);
    cr_assert_eq(w.done, WARM + MEASURED, "%d completed", w.done);
    cr_assert_eq(w.failed, 0, "%d failed", w.failed);
    long used = countalloc_calls - w.at_warm;
    /* Each command cost one allocation before (its bytes' copy): 3,000
     * here. A few may come from the connections' buffers settling. */
    cr_assert_leq(used, MEASURED / 100,
                  "%ld allocations for %d commands after the warm-up", used,
                  MEASURED);
    free_and_drain(loop, w.c);
    aredis_set_allocator(NULL);
}

/* ---- one write per node per loop turn --------------------------------------
 */

/* The client's connection to the node at port: the one socket of this
 * process whose peer is that port. */
static int socket_to(int port)
{
    int found = -1;
    for (int fd = 3; fd < 1024; fd++) {
        struct sockaddr_in sa;
        socklen_t len = sizeof sa;
        if (getpeername(fd, (struct sockaddr *)&sa, &len) != 0 ||
            sa.sin_family != AF_INET || ntohs(sa.sin_port) != port)
            continue;
        cr_assert_eq(found, -1, "two sockets to %d", port);
        found = fd;
    }
    cr_assert_geq(found, 0, "no socket to %d", port);
    return found;
}

/* The data segments sent on a TCP socket: one per write of a few bytes
 * (the client sets TCP_NODELAY). */
static unsigned segs_out(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    cr_assert_eq(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len), 0);
    cr_assert_geq(len, offsetof(struct tcp_info, tcpi_data_segs_out) +
                           sizeof ti.tcpi_data_segs_out);
    return ti.tcpi_data_segs_out;
}

typedef struct turn {
    aredis_client *c;
    char next[64]; /* the key each reply's callback sets */
    int replies, sets, bad;
} turn;

static void on_turn_set(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    turn *t = ud;
    t->sets++;
    t->bad += r->type != AREDIS_REPLY_STATUS;
}

static void on_turn_get(aredis_client *c, const aredis_reply *r, void *ud)
{
    turn *t = ud;
    t->replies++;
    t->bad += r->type == AREDIS_REPLY_ERROR;
    cr_assert_eq(aredis_command(c, on_turn_set, t, "SET %s v", t->next), 0);
}

/* The replies of two connections arrive together, and each one's
 * callback sends a command to the first node: those two commands leave in one
 * write at the end of the loop turn, not one right after the first
 * node's reply and another after the second's (a write, and a wake-up
 * of the server, per command instead of per node and turn). */
Test(cluster, commands_of_one_loop_turn_leave_in_one_write_per_node)
{
    char url[256], kx[64], ky[64];
    snprintf(url, sizeof url, "redis+cluster://127.0.0.1:%d/?refresh_period=0",
             ports[0]);
    /* Keys well inside the first and the last primary's slot ranges
     * (redis-cluster.sh splits them evenly, in order). */
    for (int i = 0;; i++) {
        char suffix[32];
        snprintf(suffix, sizeof suffix, "tx%d", i);
        testenv_key(kx, sizeof kx, suffix);
        if (aredis_cluster_keyslot(kx, strlen(kx)) < 5000)
            break;
    }
    for (int i = 0;; i++) {
        char suffix[32];
        snprintf(suffix, sizeof suffix, "ty%d", i);
        testenv_key(ky, sizeof ky, suffix);
        if (aredis_cluster_keyslot(ky, strlen(ky)) > 11500)
            break;
    }
    aredis_loop *loop = aredis_loop_new();
    static turn t;
    memset(&t, 0, sizeof t);
    t.c = client_for(loop, &(aredis_options){.url = url});
    snprintf(t.next, sizeof t.next, "%s", kx);
    /* The map, the first node's connection, and a pooled one to the
     * last node (for BLPOP). */
    aredis_reply_free(run_one(loop, t.c, "GET %s", kx));
    aredis_reply_free(run_one(loop, t.c, "BLPOP %s 0.01", ky));
    int fx = socket_to(ports[0]);

    /* A GET to the first node and a BLPOP that times out after 50 ms to
     * the last, written in one turn, and time for both replies to
     * arrive: the next turn finds both sockets ready, the first node's
     * first. */
    cr_assert_eq(aredis_command(t.c, on_turn_get, &t, "GET %s", kx), 0);
    cr_assert_eq(aredis_command(t.c, on_turn_get, &t, "BLPOP %s 0.05", ky), 0);
    aredis_loop_run_once(loop, 0);
    usleep(300 * 1000);
    cr_assert_eq(t.replies, 0, "a reply came before its turn");
    unsigned before = segs_out(fx);
    aredis_loop_run_once(loop, 1000);
    cr_assert_eq(t.replies, 2, "%d replies in the turn", t.replies);
    unsigned writes = segs_out(fx) - before;
    cr_assert_eq(writes, 1, "the turn wrote the first node %u times", writes);

    for (int spins = 0; t.sets < 2 && spins < 500; spins++)
        aredis_loop_run_once(loop, 10);
    cr_assert_eq(t.sets, 2);
    cr_assert_eq(t.bad, 0, "%d wrong replies", t.bad);
    free_and_drain(loop, t.c);
}
