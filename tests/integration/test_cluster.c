/* Integration tests against the real test cluster (fixture redis_cluster:
 * tests/support/redis-cluster.sh, 3 primaries + 3 replicas on loopback).
 *
 *  - the fixture hands over a ready cluster: every node is up, says
 *    cluster_state:ok, lists all six nodes, and serves the same slot map;
 *  - aredis_cluster_keyslot() agrees with the server's CLUSTER KEYSLOT for
 *    thousands of random keys, hash tags and binary bytes included. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aredis/aredis.h"
#include "testenv.h"

#define MAX_NODES 16

/* The cluster's nodes, from the nodes= line of its state file. */
static int ports[MAX_NODES];
static int nports;

static void load_nodes(void)
{
    testenv_server s;
    cr_assert_eq(testenv_server_load(&s, "cluster"), 0, "%s", testenv_errstr());
    char path[512];
    const char *dir = getenv("AREDIS_TEST_STATE_DIR");
    cr_assert_not_null(dir);
    snprintf(path, sizeof path, "%s/cluster.state", dir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    char line[1024];
    nports = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "nodes=", 6) != 0)
            continue;
        for (char *p = line + 6; *p != '\0' && *p != '\n';) {
            cr_assert_eq(strncmp(p, "127.0.0.1:", 10), 0, "%s", p);
            p += 10;
            cr_assert_lt(nports, MAX_NODES);
            ports[nports++] = (int)strtol(p, &p, 10);
            if (*p == ',')
                p++;
        }
    }
    fclose(f);
    cr_assert_eq(nports, 6, "nodes= lists %d nodes", nports);
    cr_assert_eq(ports[0], s.port, "the state's port is the first node");
}

static void connect_port(testenv_conn *c, int port)
{
    testenv_server s = {.host = "127.0.0.1", .port = port};
    cr_assert_eq(testenv_connect(c, &s), 0, "%d: %s", port, testenv_errstr());
}

TestSuite(cluster, .init = load_nodes, .timeout = 120);

Test(cluster, fixture_is_a_ready_cluster)
{
    char first[4096] = "";
    for (int i = 0; i < nports; i++) {
        testenv_conn c;
        const aredis_reply *r;
        connect_port(&c, ports[i]);
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
    connect_port(&c, ports[0]);
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
        connect_port(&c, ports[i]);
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
    cr_assert_not_null(strstr(st.msg, "empty seed 2"), "%s", st.msg);
    aredis_loop_free(loop);
}
