/* Integration tests of cluster endpoints other than IPv4 literals, on real
 * clusters:
 *
 *  - seeds given by host name ("localhost:PORT", fixture redis_cluster);
 *  - a cluster that names its nodes by host name (fixture
 *    redis_cluster_host: cluster-announce-hostname localhost with
 *    cluster-preferred-endpoint-type hostname, so CLUSTER SHARDS, CLUSTER
 *    SLOTS and MOVED say "localhost");
 *  - a cluster on IPv6 (fixture redis_cluster_v6: every node announces
 *    ::1, seeds "[::1]:PORT", MOVED says "::1:PORT").
 *
 * Names are resolved off the loop (transport/resolve.c); here the client
 * must connect to every primary through them, route by slot and read back
 * what it wrote, each command completing once. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aredis/aredis.h"
#include "testclient.h"
#include "testenv.h"

TestSuite(cluster_hosts, .timeout = 120);

#define NKEYS 60

/* Write and read back NKEYS keys over every slot range through a client
 * of url; the primaries it lists are named host (NULL: not checked). */
static void write_and_read(const char *url, const char *host)
{
    aredis_loop *loop = aredis_loop_new();
    cr_assert_not_null(loop);
    aredis_status st;
    aredis_client *c = aredis_client_new(
        loop, &(aredis_options){.url = url, .command_timeout_ms = 5000}, &st);
    cr_assert_not_null(c, "%s: %s", url, st.msg);

    static testgot set[NKEYS], get[NKEYS];
    memset(set, 0, sizeof set);
    memset(get, 0, sizeof get);
    char keys[NKEYS][64];
    int third[3] = {0};
    for (int i = 0; i < NKEYS; i++) {
        char sfx[16];
        snprintf(sfx, sizeof sfx, "h%d", i);
        testenv_key(keys[i], sizeof keys[i], sfx);
        third[aredis_cluster_keyslot(keys[i], strlen(keys[i])) * 3 /
              AREDIS_CLUSTER_SLOTS]++;
        cr_assert_eq(
            aredis_command(c, testgot_keep, &set[i], "SET %s v%d", keys[i], i),
            0);
    }
    for (int k = 0; k < 3; k++)
        cr_assert_gt(third[k], 0, "keys in every third of the slots");
    testgot_wait_all(loop, set, NKEYS);
    for (int i = 0; i < NKEYS; i++) {
        cr_assert_eq(set[i].r->type, AREDIS_REPLY_STATUS, "%s: SET %d: %s", url,
                     i, set[i].r->str);
        cr_assert_eq(
            aredis_command(c, testgot_keep, &get[i], "GET %s", keys[i]), 0);
    }
    testgot_wait_all(loop, get, NKEYS);
    for (int i = 0; i < NKEYS; i++) {
        char want[16];
        snprintf(want, sizeof want, "v%d", i);
        cr_assert_eq(get[i].r->type, AREDIS_REPLY_STRING, "%s: GET %d", url, i);
        cr_assert_str_eq(get[i].r->str, want);
        aredis_reply_free(set[i].r);
        aredis_reply_free(get[i].r);
    }
    aredis_node_addr a[8];
    size_t n = aredis_client_nodes(c, AREDIS_NODES_PRIMARIES, a, 8);
    cr_assert_eq(n, 3, "%s: %zu primaries", url, n);
    for (size_t i = 0; host != NULL && i < n; i++)
        cr_assert_str_eq(a[i].host, host, "%s: primary %zu", url, i);
    aredis_client_free(c);
    for (int spins = 0; spins < 20; spins++)
        aredis_loop_run_once(loop, 5);
    aredis_loop_free(loop);
}

/* Seeds by host name; the map names the nodes by address. */
Test(cluster_hosts, seeds_by_host_name)
{
    char url[128];
    snprintf(url, sizeof url, "redis+cluster://localhost:%d",
             testclient_port("cluster"));
    write_and_read(url, "127.0.0.1");
}

/* The cluster names its nodes "localhost": the client connects to each
 * by that name. */
Test(cluster_hosts, nodes_announced_by_host_name)
{
    char url[128];
    snprintf(url, sizeof url, "redis+cluster://127.0.0.1:%d",
             testclient_port("cluster_host"));
    write_and_read(url, "localhost");
    snprintf(url, sizeof url, "redis+cluster://localhost:%d",
             testclient_port("cluster_host"));
    write_and_read(url, "localhost");
}

/* IPv6: seeds "[::1]:PORT", nodes announced as ::1. */
Test(cluster_hosts, ipv6_cluster)
{
    char url[128];
    snprintf(url, sizeof url, "redis+cluster://[::1]:%d",
             testclient_port("cluster_v6"));
    write_and_read(url, "::1");
}
