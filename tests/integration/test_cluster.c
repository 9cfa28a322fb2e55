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

/* Until the cluster topology exists, a client given a cluster URL refuses
 * to start, rather than talking to the first seed as if it were a single
 * server (where it would meet MOVED for most keys). */
Test(cluster, client_refuses_a_cluster_url_for_now)
{
    char url[256];
    snprintf(url, sizeof url, "redis+cluster://127.0.0.1:%d,127.0.0.1:%d",
             ports[0], ports[1]);
    aredis_loop *loop = aredis_loop_new();
    cr_assert_not_null(loop);
    aredis_status st;
    aredis_client *c =
        aredis_client_new(loop, &(aredis_options){.url = url}, &st);
    cr_assert_null(c);
    cr_assert_eq(st.code, AREDIS_ENOTSUP, "%s", aredis_err_name(st.code));
    cr_assert_not_null(strstr(st.msg, "cluster topology not available yet"),
                       "%s", st.msg);
    /* A bad cluster URL still says what is wrong with it. */
    c = aredis_client_new(
        loop, &(aredis_options){.url = "redis+cluster://h1,,h2"}, &st);
    cr_assert_null(c);
    cr_assert_eq(st.code, AREDIS_EURL);
    cr_assert_not_null(strstr(st.msg, "empty seed 2"), "%s", st.msg);
    aredis_loop_free(loop);
}
