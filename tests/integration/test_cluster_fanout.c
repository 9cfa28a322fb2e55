/* Fan-out on a cluster client, against real clusters (the shared fixture
 * redis_cluster, 3 primaries + 3 replicas, and private ones where a test
 * flushes or counts the whole key space):
 *
 *  - multi-key commands split by slot, sent at once, reassembled in the
 *    caller's order (MGET array, MSET OK, DEL/EXISTS/UNLINK/TOUCH sums);
 *    cross_slot = refuse refuses them before sending; other multi-key
 *    commands spanning slots are refused before sending too;
 *  - keyless commands by their declared policy: every primary merged
 *    (KEYS, DBSIZE, FLUSHALL, SCRIPT LOAD/EXISTS/FLUSH, RANDOMKEY), every
 *    node (PUBSUB, INFO, PING, TIME, CONFIG GET as node -> reply maps), or
 *    refused (SCAN, MULTI...);
 *  - the node API: enumerate, send to one node, send to each;
 *  - an exclusive connection to a key's primary (WATCH ... EXEC).
 * Every callback is counted: each runs exactly once with a non-NULL
 * reply, and the data is checked on the servers. */
#include <criterion/criterion.h>

#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "aredis/aredis.h"
#include "testclient.h"
#include "testenv.h"

#define MAX_NODES 16

static int nodes[MAX_NODES], nnodes;
static int primaries[3];

static void load_nodes(void)
{
    nnodes = testenv_state_ports("cluster", "nodes", nodes, MAX_NODES);
    cr_assert_eq(nnodes, 6, "%s", testenv_errstr());
    cr_assert_eq(testenv_state_ports("cluster", "primaries", primaries, 3), 3);
}

TestSuite(cluster_fanout, .init = load_nodes, .timeout = 120);

/* ---- shared pieces ------------------------------------------------------- */

/* One expected callback: how often it ran and an owned copy of its reply. */
typedef struct got {
    int calls;
    aredis_reply *r;
} got;

static int ndone;

static void on_got(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    got *g = ud;
    cr_assert_not_null(r, "a callback without a reply");
    g->calls++;
    ndone++;
    if (g->r == NULL)
        g->r = aredis_reply_dup(r);
}

static void wait_for(aredis_loop *loop, int n)
{
    for (int spins = 0; ndone < n && spins < 3000; spins++)
        aredis_loop_run_once(loop, 10);
    cr_assert_eq(ndone, n, "%d of %d callbacks ran", ndone, n);
}

static void got_clear(got *g)
{
    aredis_reply_free(g->r);
    memset(g, 0, sizeof *g);
}

static aredis_client *cluster_client(aredis_loop *loop, int port, int refuse)
{
    char seeds[64];
    snprintf(seeds, sizeof seeds, "127.0.0.1:%d", port);
    aredis_status st;
    aredis_options o = {0};
    o.cluster.seeds = seeds;
    o.cluster.cross_slot =
        refuse ? AREDIS_CROSS_SLOT_REFUSE : AREDIS_CROSS_SLOT_SPLIT;
    aredis_client *c = aredis_client_new(loop, &o, &st);
    cr_assert_not_null(c, "%s", st.msg);
    return c;
}

static void client_done(aredis_client *c, aredis_loop *loop)
{
    aredis_client_free(c);
    for (int spins = 0; spins < 20; spins++)
        aredis_loop_run_once(loop, 5);
    aredis_loop_free(loop);
}

/* The primary port (of ps[0..n)) that holds key: the one not answering
 * MOVED to a GET. */
static int owner_of(const int *ps, int n, const char *key)
{
    int found = 0;
    for (int i = 0; i < n; i++) {
        aredis_reply *r = testclient_direct(ps[i], "GET %s", key);
        if (!(r->type == AREDIS_REPLY_ERROR &&
              strncmp(r->str, "MOVED", 5) == 0))
            found = ps[i];
        aredis_reply_free(r);
    }
    return found;
}

#define NK 40

/* NK keys of this test run, spread over the slots. */
static void make_keys(char keys[NK][64], const char *tag)
{
    for (int i = 0; i < NK; i++) {
        char suffix[32];
        snprintf(suffix, sizeof suffix, "%s%d", tag, i);
        testenv_key(keys[i], sizeof keys[i], suffix);
    }
}

static int count_slots(char keys[][64], int n)
{
    static unsigned char seen[AREDIS_CLUSTER_SLOTS];
    memset(seen, 0, sizeof seen);
    int k = 0;
    for (int i = 0; i < n; i++) {
        unsigned s = aredis_cluster_keyslot(keys[i], strlen(keys[i]));
        k += !seen[s];
        seen[s] = 1;
    }
    return k;
}

/* ---- an empty merged reply ----------------------------------------------- */

static void on_empty(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    got *g = ud;
    g->calls++;
    ndone++;
    /* reply.h: an aggregate of len 0 has element NULL, as from one server */
    if (r->type == AREDIS_REPLY_ARRAY && r->len == 0 && r->element == NULL)
        g->r = aredis_reply_dup(r);
}

/* KEYS matching nothing on any primary: an empty array whose element is
 * NULL in the callback and in a copy kept after it (the merge's scratch
 * array is freed when the callback returns). */
Test(cluster_fanout, empty_merged_array_has_no_element_pointer)
{
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = cluster_client(loop, primaries[0], 0);
    got keys = {0};
    ndone = 0;
    cr_assert_eq(aredis_command(c, on_empty, &keys, "KEYS %s", "nosuchkey*"),
                 0);
    wait_for(loop, 1);
    cr_assert_not_null(keys.r, "not an empty array with element NULL");
    cr_assert_eq(keys.r->len, 0);
    cr_assert_null(keys.r->element);
    got_clear(&keys);
    client_done(c, loop);
}

/* ---- a fan-out without a callback ---------------------------------------- */

/* client.h: cb may be NULL to ignore the reply. A command split by slot
 * (MSET, DEL) or sent to every primary (DBSIZE) takes that too: it runs,
 * and nothing is called. */
Test(cluster_fanout, null_callback_on_split_and_keyless_commands)
{
    char keys[NK][64];
    make_keys(keys, "nullcb");
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = cluster_client(loop, primaries[0], 0);
    cr_assert_eq(aredis_command(c, NULL, NULL, "MSET %s 1 %s 2 %s 3", keys[0],
                                keys[1], keys[2]),
                 0);
    cr_assert_eq(aredis_command(c, NULL, NULL, "DEL %s %s", keys[1], keys[2]),
                 0);
    cr_assert_eq(aredis_command(c, NULL, NULL, "DBSIZE"), 0);
    got exists = {0};
    ndone = 0;
    cr_assert_eq(aredis_command(c, on_got, &exists, "EXISTS %s %s %s", keys[0],
                                keys[1], keys[2]),
                 0);
    wait_for(loop, 1);
    cr_assert_eq(exists.r->type, AREDIS_REPLY_INTEGER);
    cr_assert_eq(exists.r->integer, 1, "MSET and DEL ran");
    got_clear(&exists);
    aredis_reply_free(
        testclient_direct(owner_of(primaries, 3, keys[0]), "DEL %s", keys[0]));
    client_done(c, loop);
}

/* ---- multi-key commands split by slot ------------------------------------ */

/* Submitted at once, before the client has its map (so parts meet MOVED
 * and follow it): MSET over NK keys in many slots, MGET in the caller's
 * order with a missing key in the middle, EXISTS with a repeated key,
 * TOUCH, UNLINK of half, DEL of the rest. Every reply is the one a single
 * server gives, every callback runs once, and every key is on the primary
 * that owns its slot. */
Test(cluster_fanout, multi_key_commands_split_by_slot_in_caller_order)
{
    char keys[NK][64];
    make_keys(keys, "split");
    cr_assert_gt(count_slots(keys, NK), 20, "keys in many slots");
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = cluster_client(loop, primaries[0], 0);

    const char *argv[2 * NK + 2];
    size_t lens[2 * NK + 2];
    char vals[NK][16];
    argv[0] = "MSET";
    for (int i = 0; i < NK; i++) {
        snprintf(vals[i], sizeof vals[i], "v%d", i);
        argv[1 + 2 * i] = keys[i];
        argv[2 + 2 * i] = vals[i];
    }
    for (int i = 0; i < 2 * NK + 1; i++)
        lens[i] = strlen(argv[i]);
    ndone = 0;
    got mset = {0}, mget = {0}, exists = {0};
    cr_assert_eq(aredis_commandv(c, on_got, &mset, 2 * NK + 1, argv, lens), 0);

    /* MGET k0 .. k(NK-1) with "missing" inserted after k9. */
    argv[0] = "MGET";
    int m = 1;
    char missing[64];
    testenv_key(missing, sizeof missing, "split-missing");
    for (int i = 0; i < NK; i++) {
        argv[m++] = keys[i];
        if (i == 9)
            argv[m++] = missing;
    }
    for (int i = 0; i < m; i++)
        lens[i] = strlen(argv[i]);
    cr_assert_eq(aredis_commandv(c, on_got, &mget, m, argv, lens), 0);
    cr_assert_eq(aredis_command(c, on_got, &exists, "EXISTS %s %s %s %s %s",
                                keys[0], keys[0], keys[20], missing, keys[39]),
                 0);
    wait_for(loop, 3);
    cr_assert_eq(mset.calls, 1);
    cr_assert_eq(mset.r->type, AREDIS_REPLY_STATUS, "%s", mset.r->str);
    cr_assert_str_eq(mset.r->str, "OK");
    cr_assert_eq(mget.calls, 1);
    cr_assert_eq(mget.r->type, AREDIS_REPLY_ARRAY, "%s",
                 mget.r->type == AREDIS_REPLY_ERROR ? mget.r->str : "");
    cr_assert_eq(mget.r->len, NK + 1);
    for (int i = 0, j = 0; i < NK + 1; i++) {
        const aredis_reply *e = &mget.r->element[i];
        if (i == 10) {
            cr_assert_eq(e->type, AREDIS_REPLY_NIL, "the missing key");
            continue;
        }
        cr_assert_eq(e->type, AREDIS_REPLY_STRING);
        cr_assert_str_eq(e->str, vals[j], "element %d", i);
        j++;
    }
    cr_assert_eq(exists.calls, 1);
    cr_assert_eq(exists.r->type, AREDIS_REPLY_INTEGER);
    cr_assert_eq(exists.r->integer, 4, "a repeated key counts twice");

    /* On the servers: each key on the primary owning its slot. */
    for (int i = 0; i < NK; i += 5) {
        int p = owner_of(primaries, 3, keys[i]);
        cr_assert_neq(p, 0);
        aredis_reply *r = testclient_direct(p, "GET %s", keys[i]);
        cr_assert_eq(r->type, AREDIS_REPLY_STRING);
        cr_assert_str_eq(r->str, vals[i]);
        aredis_reply_free(r);
    }

    /* TOUCH all, UNLINK the first half, DEL the rest and a missing one. */
    got touch = {0}, unlink_ = {0}, del = {0}, after = {0};
    ndone = 0;
    argv[0] = "TOUCH";
    for (int i = 0; i < NK; i++)
        argv[1 + i] = keys[i];
    for (int i = 0; i < NK + 1; i++)
        lens[i] = strlen(argv[i]);
    cr_assert_eq(aredis_commandv(c, on_got, &touch, NK + 1, argv, lens), 0);
    argv[0] = "UNLINK";
    lens[0] = 6;
    cr_assert_eq(aredis_commandv(c, on_got, &unlink_, NK / 2 + 1, argv, lens),
                 0);
    argv[NK / 2] = "DEL";
    lens[NK / 2] = 3;
    argv[NK + 1] = missing;
    lens[NK + 1] = strlen(missing);
    cr_assert_eq(aredis_commandv(c, on_got, &del, NK / 2 + 2, argv + NK / 2,
                                 lens + NK / 2),
                 0);
    wait_for(loop, 3);
    cr_assert_eq(touch.r->integer, NK);
    cr_assert_eq(unlink_.r->integer, NK / 2);
    cr_assert_eq(del.r->integer, NK / 2, "the missing key is not counted");
    cr_assert(touch.calls == 1 && unlink_.calls == 1 && del.calls == 1);
    argv[0] = "EXISTS";
    lens[0] = 6;
    for (int i = 0; i < NK; i++) {
        argv[1 + i] = keys[i];
        lens[1 + i] = strlen(keys[i]);
    }
    ndone = 0;
    cr_assert_eq(aredis_commandv(c, on_got, &after, NK + 1, argv, lens), 0);
    wait_for(loop, 1);
    cr_assert_eq(after.r->type, AREDIS_REPLY_INTEGER);
    cr_assert_eq(after.r->integer, 0, "every key is gone");
    got_clear(&mset);
    got_clear(&mget);
    got_clear(&exists);
    got_clear(&touch);
    got_clear(&unlink_);
    got_clear(&del);
    got_clear(&after);
    client_done(c, loop);
}

/* cross_slot = refuse: a multi-key command over several slots fails
 * before anything is sent (nothing is written), with a CROSSSLOT message;
 * keys sharing a hash tag still work. On the default client, a command
 * the library does not split (SUNIONSTORE, RENAME) over several slots
 * goes to its first key's slot and gets the server's CROSSSLOT. */
Test(cluster_fanout, cross_slot_refused_before_sending)
{
    char a[64], b[64], ta[64], tb[64];
    testenv_key(a, sizeof a, "xs-a");
    testenv_key(b, sizeof b, "xs-b9");
    cr_assert_neq(aredis_cluster_keyslot(a, strlen(a)),
                  aredis_cluster_keyslot(b, strlen(b)));
    char tag[48];
    testenv_key(tag, sizeof tag, "xs");
    snprintf(ta, sizeof ta, "{%s}a", tag);
    snprintf(tb, sizeof tb, "{%s}b", tag);
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = cluster_client(loop, primaries[1], 1);
    got mset = {0}, tagged = {0}, mget = {0};
    ndone = 0;
    cr_assert_eq(aredis_command(c, on_got, &mset, "MSET %s 1 %s 2", a, b), 0);
    cr_assert_eq(aredis_command(c, on_got, &tagged, "MSET %s 1 %s 2", ta, tb),
                 0);
    cr_assert_eq(aredis_command(c, on_got, &mget, "MGET %s %s", ta, tb), 0);
    wait_for(loop, 3);
    cr_assert_eq(mset.calls, 1);
    cr_assert_eq(mset.r->type, AREDIS_REPLY_ERROR);
    cr_assert_eq(mset.r->code, AREDIS_EINVAL);
    cr_assert_eq(strncmp(mset.r->str, "CROSSSLOT", 9), 0, "%s", mset.r->str);
    cr_assert_str_eq(tagged.r->str, "OK");
    cr_assert_eq(mget.r->len, 2);
    cr_assert_str_eq(mget.r->element[1].str, "2");
    /* Nothing of the refused MSET reached a server. */
    for (int i = 0; i < 3; i++) {
        aredis_reply *r = testclient_direct(primaries[i], "EXISTS %s", a);
        cr_assert_eq(r->integer, 0, "%s was written on %d", a, primaries[i]);
        aredis_reply_free(r);
    }
    got_clear(&mset);
    got_clear(&tagged);
    got_clear(&mget);
    client_done(c, loop);

    loop = aredis_loop_new();
    c = cluster_client(loop, primaries[1], 0);
    got su = {0}, ren = {0};
    ndone = 0;
    cr_assert_eq(aredis_command(c, on_got, &su, "SUNIONSTORE %s %s", a, b), 0);
    cr_assert_eq(aredis_command(c, on_got, &ren, "RENAME %s %s", a, b), 0);
    wait_for(loop, 2);
    cr_assert_eq(su.r->type, AREDIS_REPLY_ERROR);
    cr_assert_eq(su.r->code, AREDIS_ESERVER, "refused by the server");
    cr_assert_eq(strncmp(su.r->str, "CROSSSLOT", 9), 0, "%s", su.r->str);
    cr_assert_eq(ren.r->code, AREDIS_ESERVER);
    cr_assert_eq(strncmp(ren.r->str, "CROSSSLOT", 9), 0, "%s", ren.r->str);
    got_clear(&su);
    got_clear(&ren);
    aredis_command(c, NULL, NULL, "DEL %s %s", ta, tb);
    client_done(c, loop);
}

/* ---- keyless commands ------------------------------------------------------
 */

/* A private 3-primary cluster, as this test flushes and counts every key.
 * DBSIZE is asked before the client has its map (it waits for it). */
Test(cluster_fanout, keyless_commands_by_policy, .timeout = 120)
{
    testenv_server s;
    int p[3];
    testclient_private_cluster(&s, "clfan", p, 3);
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = cluster_client(loop, p[0], 0);

    got flush = {0}, size0 = {0};
    ndone = 0;
    cr_assert_eq(aredis_command(c, on_got, &size0, "DBSIZE"), 0);
    cr_assert_eq(aredis_command(c, on_got, &flush, "FLUSHALL"), 0);
    wait_for(loop, 2);
    cr_assert_eq(size0.r->type, AREDIS_REPLY_INTEGER, "%s",
                 size0.r->type == AREDIS_REPLY_ERROR ? size0.r->str : "");
    cr_assert_eq(size0.r->integer, 0);
    cr_assert_str_eq(flush.r->str, "OK");

    char keys[NK][64];
    make_keys(keys, "kl");
    for (int i = 0; i < NK; i++)
        cr_assert_eq(aredis_command(c, NULL, NULL, "SET %s %d", keys[i], i), 0);
    got size = {0}, all = {0}, rnd = {0}, load = {0}, ex = {0};
    ndone = 0;
    cr_assert_eq(aredis_command(c, on_got, &size, "DBSIZE"), 0);
    cr_assert_eq(aredis_command(c, on_got, &all, "KEYS *"), 0);
    cr_assert_eq(aredis_command(c, on_got, &rnd, "RANDOMKEY"), 0);
    cr_assert_eq(
        aredis_command(c, on_got, &load, "SCRIPT LOAD %s", "return 'fan'"), 0);
    wait_for(loop, 4);
    cr_assert_eq(size.r->integer, NK, "DBSIZE sums the primaries");
    cr_assert_eq(all.r->type, AREDIS_REPLY_ARRAY);
    cr_assert_eq(all.r->len, NK, "KEYS joins the primaries' keys");
    for (int i = 0; i < NK; i++) {
        int found = 0;
        for (size_t j = 0; j < all.r->len; j++)
            found += strcmp(all.r->element[j].str, keys[i]) == 0;
        cr_assert_eq(found, 1, "%s in KEYS %d times", keys[i], found);
    }
    cr_assert_eq(rnd.r->type, AREDIS_REPLY_STRING);
    cr_assert_eq(strncmp(rnd.r->str, keys[0], strlen(keys[0]) - 1), 0, "%s",
                 rnd.r->str);
    cr_assert_eq(load.r->type, AREDIS_REPLY_STRING);
    cr_assert_eq(load.r->len, 40);
    char sha[41];
    memcpy(sha, load.r->str, 41);
    for (int i = 0; i < 3; i++) {
        aredis_reply *r = testclient_direct(p[i], "SCRIPT EXISTS %s", sha);
        cr_assert_eq(r->element[0].integer, 1, "not loaded on %d", p[i]);
        aredis_reply_free(r);
    }
    /* Loaded on one primary only: EXISTS says no, like the primary that
     * lacks it would. */
    aredis_reply *r = testclient_direct(p[1], "SCRIPT LOAD %s", "return 'one'");
    char one[41];
    memcpy(one, r->str, 41);
    aredis_reply_free(r);
    ndone = 0;
    cr_assert_eq(
        aredis_command(c, on_got, &ex, "SCRIPT EXISTS %s %s", sha, one), 0);
    wait_for(loop, 1);
    cr_assert_eq(ex.r->len, 2);
    cr_assert_eq(ex.r->element[0].integer, 1);
    cr_assert_eq(ex.r->element[1].integer, 0, "on one primary of three");
    got_clear(&ex);

    /* Per node: maps "host:port" -> reply. */
    got ping = {0}, info = {0}, tm = {0}, cfg = {0}, numpat = {0}, chans = {0},
        numsub = {0}, sflush = {0};
    ndone = 0;
    cr_assert_eq(aredis_command(c, on_got, &ping, "PING"), 0);
    cr_assert_eq(aredis_command(c, on_got, &info, "INFO server"), 0);
    cr_assert_eq(aredis_command(c, on_got, &tm, "TIME"), 0);
    cr_assert_eq(aredis_command(c, on_got, &cfg, "CONFIG GET port"), 0);
    cr_assert_eq(aredis_command(c, on_got, &numpat, "PUBSUB NUMPAT"), 0);
    cr_assert_eq(aredis_command(c, on_got, &chans, "PUBSUB CHANNELS"), 0);
    cr_assert_eq(aredis_command(c, on_got, &numsub, "PUBSUB NUMSUB a b"), 0);
    cr_assert_eq(aredis_command(c, on_got, &sflush, "SCRIPT FLUSH"), 0);
    wait_for(loop, 8);
    cr_assert_eq(ping.r->type, AREDIS_REPLY_MAP);
    cr_assert_eq(ping.r->len, 6, "three nodes");
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "127.0.0.1:%d", p[i]);
        const aredis_reply *v =
            aredis_reply_map_get(ping.r, name, strlen(name));
        cr_assert_not_null(v, "%s missing", name);
        cr_assert_str_eq(v->str, "PONG");
        v = aredis_reply_map_get(info.r, name, strlen(name));
        cr_assert_not_null(v);
        cr_assert_not_null(strstr(v->str, "redis_version"));
        char port[16];
        snprintf(port, sizeof port, "tcp_port:%d", p[i]);
        cr_assert_not_null(strstr(v->str, port), "INFO of the right node");
        v = aredis_reply_map_get(tm.r, name, strlen(name));
        cr_assert_eq(v->len, 2);
        v = aredis_reply_map_get(cfg.r, name, strlen(name));
        cr_assert_not_null(v);
        snprintf(port, sizeof port, "%d", p[i]);
        const aredis_reply *pv = v->type == AREDIS_REPLY_MAP
                                     ? aredis_reply_map_get(v, "port", 4)
                                     : &v->element[1];
        cr_assert_str_eq(pv->str, port);
    }
    cr_assert_eq(numpat.r->type, AREDIS_REPLY_INTEGER);
    cr_assert_eq(numpat.r->integer, 0);
    cr_assert(chans.r->type == AREDIS_REPLY_ARRAY);
    cr_assert_eq(numsub.r->len, 4);
    cr_assert_str_eq(numsub.r->element[0].str, "a");
    cr_assert_eq(numsub.r->element[1].integer, 0);
    cr_assert_str_eq(sflush.r->str, "OK");
    for (int i = 0; i < 3; i++) {
        aredis_reply *e = testclient_direct(p[i], "SCRIPT EXISTS %s", sha);
        cr_assert_eq(e->element[0].integer, 0, "still loaded on %d", p[i]);
        aredis_reply_free(e);
    }

    /* Refused: their meaning depends on the node or connection. */
    got scan = {0}, multi = {0}, fdb = {0}, size2 = {0};
    ndone = 0;
    cr_assert_eq(aredis_command(c, on_got, &scan, "SCAN 0"), 0);
    cr_assert_eq(aredis_command(c, on_got, &multi, "MULTI"), 0);
    cr_assert_eq(aredis_command(c, on_got, &fdb, "FLUSHDB"), 0);
    cr_assert_eq(aredis_command(c, on_got, &size2, "DBSIZE"), 0);
    wait_for(loop, 4);
    cr_assert_eq(scan.r->code, AREDIS_ENOTSUP);
    cr_assert_not_null(strstr(scan.r->str, "refused on a cluster"));
    cr_assert_eq(multi.r->code, AREDIS_ENOTSUP);
    cr_assert_str_eq(fdb.r->str, "OK");
    cr_assert_eq(size2.r->integer, 0, "FLUSHDB reached every primary");
    for (int i = 0; i < 3; i++) {
        aredis_reply *e = testclient_direct(p[i], "DBSIZE");
        cr_assert_eq(e->integer, 0);
        aredis_reply_free(e);
    }
    got *all_got[] = {&flush,  &size0,  &size, &all,   &rnd,    &load,
                      &ping,   &info,   &tm,   &cfg,   &numpat, &chans,
                      &numsub, &sflush, &scan, &multi, &fdb,    &size2};
    for (size_t i = 0; i < sizeof all_got / sizeof *all_got; i++) {
        cr_assert_eq(all_got[i]->calls, 1, "reply %zu: %d callbacks", i,
                     all_got[i]->calls);
        got_clear(all_got[i]);
    }
    client_done(c, loop);
    testenv_private_cluster_stop(&s);
}

/* ---- the node API ----------------------------------------------------------
 */

Test(cluster_fanout, node_api_enumerates_and_sends_to_nodes)
{
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = cluster_client(loop, primaries[2], 0);
    /* Waits for the map. */
    got each = {0};
    ndone = 0;
    cr_assert_eq(aredis_nodes_command(c, AREDIS_NODES_PRIMARIES, on_got, &each,
                                      "CLUSTER MYID"),
                 0);
    wait_for(loop, 1);
    cr_assert_eq(each.r->type, AREDIS_REPLY_MAP);
    cr_assert_eq(each.r->len, 6);

    aredis_node_addr addr[8];
    size_t n = aredis_client_nodes(c, AREDIS_NODES_PRIMARIES, addr, 8);
    cr_assert_eq(n, 3);
    cr_assert_eq(aredis_client_nodes(c, AREDIS_NODES_PRIMARIES, NULL, 0), 3);
    got ids[3] = {{0}};
    ndone = 0;
    for (size_t i = 0; i < n; i++) {
        int known = 0;
        for (int k = 0; k < 3; k++)
            known += addr[i].port == primaries[k];
        cr_assert_eq(known, 1, "port %d is a primary", addr[i].port);
        cr_assert(addr[i].primary);
        cr_assert_eq(aredis_node_command(c, addr[i].host, addr[i].port, on_got,
                                         &ids[i], "CLUSTER MYID"),
                     0);
    }
    wait_for(loop, 3);
    for (size_t i = 0; i < n; i++) {
        char name[300];
        snprintf(name, sizeof name, "%s:%d", addr[i].host, addr[i].port);
        const aredis_reply *v =
            aredis_reply_map_get(each.r, name, strlen(name));
        cr_assert_not_null(v);
        cr_assert_eq(ids[i].calls, 1);
        cr_assert_eq(ids[i].r->len, 40);
        cr_assert_str_eq(v->str, ids[i].r->str, "the same node answered");
        aredis_reply *own = testclient_direct(addr[i].port, "CLUSTER MYID");
        cr_assert_str_eq(own->str, ids[i].r->str);
        aredis_reply_free(own);
        got_clear(&ids[i]);
    }
    cr_assert_eq(
        aredis_node_command(c, "127.0.0.1", 1, on_got, &ids[0], "PING"),
        AREDIS_EINVAL, "no such node");
    cr_assert_eq(aredis_nodes_command(c, 7, on_got, &ids[0], "PING"),
                 AREDIS_EINVAL);
    /* A key sent to a node that does not own it: MOVED, delivered. */
    char key[64];
    testenv_key(key, sizeof key, "nodeapi");
    unsigned slot = aredis_cluster_keyslot(key, strlen(key));
    int wrong = 0;
    for (size_t i = 0; i < n && wrong == 0; i++) {
        aredis_reply *r = testclient_direct(addr[i].port, "GET %s", key);
        if (r->type == AREDIS_REPLY_ERROR)
            wrong = addr[i].port;
        aredis_reply_free(r);
    }
    got moved = {0};
    ndone = 0;
    cr_assert_eq(aredis_node_command(c, "127.0.0.1", wrong, on_got, &moved,
                                     "GET %s", key),
                 0);
    wait_for(loop, 1);
    cr_assert_eq(moved.r->type, AREDIS_REPLY_ERROR);
    char want[32];
    snprintf(want, sizeof want, "MOVED %u ", slot);
    cr_assert_eq(strncmp(moved.r->str, want, strlen(want)), 0, "%s",
                 moved.r->str);
    got_clear(&moved);
    got_clear(&each);
    client_done(c, loop);
}

/* ---- an exclusive connection to a key's primary -------------------------- */

typedef struct txn {
    aredis_client *c;
    aredis_exclusive *x;
    got watch, multi, set, exec;
    int acquired;
    const char *key;
} txn;

static void on_acquired(aredis_client *c, aredis_exclusive *x, int status,
                        void *ud)
{
    txn *t = ud;
    t->acquired++;
    ndone++;
    cr_assert_eq(status, 0);
    t->x = x;
    (void)c;
    cr_assert_eq(
        aredis_exclusive_command(x, on_got, &t->watch, "WATCH %s", t->key), 0);
    cr_assert_eq(aredis_exclusive_command(x, on_got, &t->multi, "MULTI"), 0);
    cr_assert_eq(
        aredis_exclusive_command(x, on_got, &t->set, "SET %s tx", t->key), 0);
    cr_assert_eq(aredis_exclusive_command(x, on_got, &t->exec, "EXEC"), 0);
}

Test(cluster_fanout, acquire_for_a_key_runs_watch_multi_exec_on_its_primary)
{
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = cluster_client(loop, primaries[0], 0);
    static txn t;
    char key[64];
    memset(&t, 0, sizeof t);
    for (int i = 0; i < 20; i++) {
        /* A key owned by another primary than the seed. */
        char suffix[16];
        snprintf(suffix, sizeof suffix, "acq%d", i);
        testenv_key(key, sizeof key, suffix);
        aredis_reply *r = testclient_direct(primaries[0], "GET %s", key);
        int moved = r->type == AREDIS_REPLY_ERROR;
        aredis_reply_free(r);
        if (moved)
            break;
    }
    t.key = key;
    ndone = 0;
    cr_assert_eq(
        aredis_client_acquire_key(c, key, strlen(key), on_acquired, &t), 0);
    wait_for(loop, 5);
    cr_assert_eq(t.acquired, 1);
    cr_assert_str_eq(t.watch.r->str, "OK", "%s", t.watch.r->str);
    cr_assert_eq(t.exec.r->type, AREDIS_REPLY_ARRAY, "%s",
                 t.exec.r->type == AREDIS_REPLY_ERROR ? t.exec.r->str : "");
    cr_assert_str_eq(t.exec.r->element[0].str, "OK");
    aredis_exclusive_release(t.x);
    int p = owner_of(primaries, 3, key);
    aredis_reply *r = testclient_direct(p, "GET %s", key);
    cr_assert_str_eq(r->str, "tx");
    aredis_reply_free(r);
    cr_assert_eq(
        aredis_client_acquire_slot(c, AREDIS_CLUSTER_SLOTS, on_acquired, &t),
        AREDIS_EINVAL);
    got_clear(&t.watch);
    got_clear(&t.multi);
    got_clear(&t.set);
    got_clear(&t.exec);
    aredis_command(c, NULL, NULL, "DEL %s", key);
    client_done(c, loop);
}

/* ---- waiting for the first map ------------------------------------------- */

static int parts_seen;         /* DBSIZE replies from the nodes so far */
static int parts_at_first_get; /* ... when the first GET was answered */

static const aredis_reply *count_part(aredis_client *c, const aredis_reply *r,
                                      aredis_reply_arena *a, void *ud)
{
    (void)c;
    (void)a;
    (void)ud;
    parts_seen++;
    return r;
}

static void on_get(aredis_client *c, const aredis_reply *r, void *ud)
{
    if (parts_at_first_get < 0)
        parts_at_first_get = parts_seen;
    on_got(c, r, ud);
}

/* A fan-out asked before the client has its map goes the moment the map
 * arrives, not at a later tick: DBSIZE, then GETs on every primary, are
 * submitted to a new client; the GETs wait for the map in the topology,
 * the DBSIZE before them. When the map comes, both go in that order, so
 * on each primary's connection DBSIZE's part comes before the GET, and
 * the first GET answered finds a DBSIZE part answered already. (A fan-out
 * that looked for the map again on a timer sent its parts after the GETs,
 * which the map's arrival had released.) */
Test(cluster_fanout, fanout_waiting_for_the_map_goes_when_it_arrives)
{
    char keys[NK][64];
    make_keys(keys, "first");
    int per_primary[3] = {0};
    for (int i = 0; i < NK; i++)
        per_primary[aredis_cluster_keyslot(keys[i], strlen(keys[i])) * 3 /
                    AREDIS_CLUSTER_SLOTS]++;
    for (int i = 0; i < 3; i++)
        cr_assert_gt(per_primary[i], 0, "a GET for every primary");
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = cluster_client(loop, primaries[1], 0);
    cr_assert_eq(aredis_client_set_reply_hook(c, "DBSIZE", count_part, NULL),
                 0);
    parts_seen = 0;
    parts_at_first_get = -1;
    ndone = 0;
    static got size, gets[NK];
    cr_assert_eq(aredis_command(c, on_got, &size, "DBSIZE"), 0);
    for (int i = 0; i < NK; i++)
        cr_assert_eq(aredis_command(c, on_get, &gets[i], "GET %s", keys[i]), 0);
    wait_for(loop, NK + 1);
    cr_assert_eq(size.calls, 1);
    cr_assert_eq(size.r->type, AREDIS_REPLY_INTEGER, "%s",
                 size.r->type == AREDIS_REPLY_ERROR ? size.r->str : "");
    cr_assert_eq(parts_seen, 3, "one DBSIZE per primary");
    cr_assert_geq(parts_at_first_get, 1,
                  "the GETs went before the fan-out's parts");
    for (int i = 0; i < NK; i++) {
        cr_assert_eq(gets[i].calls, 1);
        got_clear(&gets[i]);
    }
    got_clear(&size);

    /* The map read run by run: the three primaries, every slot served,
     * in the fixture's order (first, second, third third). */
    aredis_node_addr node;
    unsigned last = 0, runs = 0;
    for (unsigned s = 0; s < AREDIS_CLUSTER_SLOTS; s = last + 1, runs++) {
        cr_assert_eq(aredis_client_slot_primary(c, s, &node, &last), 1);
        cr_assert_geq(last, s);
        cr_assert(node.primary);
        cr_assert_eq(node.port, primaries[runs], "slot %u: %d", s, node.port);
    }
    cr_assert_eq(runs, 3);
    cr_assert_eq(
        aredis_client_slot_primary(c, AREDIS_CLUSTER_SLOTS, &node, NULL),
        AREDIS_EINVAL);
    client_done(c, loop);
}

static int acquired_calls, acquired_code;

static void on_no_slot(aredis_client *c, aredis_exclusive *x, int status,
                       void *ud)
{
    (void)c;
    (void)ud;
    cr_assert_null(x);
    acquired_calls++;
    acquired_code = status;
}

static const char nomap[] = "no slot map: the cluster's nodes did not say "
                            "which node serves which slots in time";

/* The only seed refuses connections: a fan-out's failure says so, as a
 * keyed command's does, rather than only that no map came. */
Test(cluster_fanout, no_map_message_names_what_the_seed_said)
{
    char seeds[64];
    int port = testenv_free_port();
    snprintf(seeds, sizeof seeds, "127.0.0.1:%d", port);
    aredis_loop *loop = aredis_loop_new();
    aredis_status st;
    aredis_client *c = aredis_client_new(
        loop, &(aredis_options){.cluster = {.seeds = seeds}}, &st);
    cr_assert_not_null(c, "%s", st.msg);
    got size = {0};
    ndone = 0;
    cr_assert_eq(aredis_command(c, on_got, &size, "DBSIZE"), 0);
    wait_for(loop, 1);
    cr_assert_eq(size.r->type, AREDIS_REPLY_ERROR);
    cr_assert_eq(size.r->code, AREDIS_ETIMEDOUT, "%s", size.r->str);
    char want[160];
    snprintf(want, sizeof want,
             "%s (127.0.0.1:%d: connect to 127.0.0.1:%d: Connection refused)",
             nomap, port, port);
    cr_assert_str_eq(size.r->str, want);
    got_clear(&size);
    client_done(c, loop);
}

/* No map ever comes (one seed refuses connections, the other accepts them
 * and never answers): a fan-out over the primaries, a command to every
 * node and an exclusive connection for a slot each fail once, with the
 * reason, after the wait for the map. */
Test(cluster_fanout, fanout_fails_once_when_no_map_comes)
{
    int silent_port;
    int silent = testenv_listener(&silent_port);
    cr_assert_geq(silent, 0, "%s", testenv_errstr());
    char seeds[64];
    snprintf(seeds, sizeof seeds, "127.0.0.1:%d,127.0.0.1:%d",
             testenv_free_port(), silent_port);
    aredis_loop *loop = aredis_loop_new();
    aredis_status st;
    aredis_client *c = aredis_client_new(
        loop, &(aredis_options){.cluster = {.seeds = seeds}}, &st);
    cr_assert_not_null(c, "%s", st.msg);
    static got size, pings;
    ndone = 0;
    acquired_calls = 0;
    cr_assert_eq(aredis_command(c, on_got, &size, "DBSIZE"), 0);
    cr_assert_eq(
        aredis_nodes_command(c, AREDIS_NODES_ALL, on_got, &pings, "PING"), 0);
    cr_assert_eq(aredis_client_acquire_slot(c, 42, on_no_slot, NULL), 0);
    for (int spins = 0; spins < 1500 && (ndone < 2 || acquired_calls == 0);
         spins++)
        aredis_loop_run_once(loop, 10);
    cr_assert_eq(size.calls, 1);
    cr_assert_eq(pings.calls, 1);
    cr_assert_eq(acquired_calls, 1);
    for (int i = 0; i < 2; i++) {
        const aredis_reply *r = i == 0 ? size.r : pings.r;
        cr_assert_eq(r->type, AREDIS_REPLY_ERROR);
        cr_assert_eq(r->code, AREDIS_ETIMEDOUT, "%s", r->str);
        cr_assert_eq(strncmp(r->str, nomap, strlen(nomap)), 0, "%s", r->str);
    }
    cr_assert_eq(acquired_code, AREDIS_ETIMEDOUT);
    got_clear(&size);
    got_clear(&pings);
    client_done(c, loop);
    cr_assert_eq(ndone, 2, "a second callback");
    cr_assert_eq(acquired_calls, 1, "a second callback");
    close(silent);
}

/* ---- exactly once when the client goes away ------------------------------ */

/* Fan-outs waiting for the map, split commands in flight: freeing the
 * client runs each callback once. */
Test(cluster_fanout, client_freed_with_fanouts_pending)
{
    char keys[NK][64];
    make_keys(keys, "free");
    for (int round = 0; round < 3; round++) {
        aredis_loop *loop = aredis_loop_new();
        aredis_client *c = cluster_client(loop, primaries[round], 0);
        got g[4] = {{0}};
        ndone = 0;
        cr_assert_eq(aredis_command(c, on_got, &g[0], "DBSIZE"), 0);
        cr_assert_eq(aredis_command(c, on_got, &g[1], "MGET %s %s %s", keys[0],
                                    keys[1], keys[2]),
                     0);
        cr_assert_eq(aredis_command(c, on_got, &g[2], "PING"), 0);
        cr_assert_eq(aredis_command(c, on_got, &g[3], "DEL %s %s %s", keys[3],
                                    keys[4], keys[5]),
                     0);
        for (int i = 0; i < round; i++)
            aredis_loop_run_once(loop, 1);
        aredis_client_free(c);
        for (int spins = 0; spins < 50 && ndone < 4; spins++)
            aredis_loop_run_once(loop, 10);
        cr_assert_eq(ndone, 4);
        for (int i = 0; i < 4; i++) {
            cr_assert_eq(g[i].calls, 1, "round %d reply %d", round, i);
            got_clear(&g[i]);
        }
        aredis_loop_free(loop);
    }
}

/* aredis_client_close() lets pending work finish: fan-outs in flight
 * complete with their real replies and the client goes away after them.
 * One still waiting for the map of a client closed before it had one
 * completes once too (canceled: a closing client fetches no map). */
Test(cluster_fanout, client_closed_with_fanouts_pending)
{
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = cluster_client(loop, primaries[0], 0);
    got first = {0}, size = {0}, keys = {0};
    ndone = 0;
    cr_assert_eq(aredis_command(c, on_got, &first, "DBSIZE"), 0);
    wait_for(loop, 1); /* the map is known now */
    cr_assert_eq(aredis_command(c, on_got, &size, "DBSIZE"), 0);
    cr_assert_eq(aredis_command(c, on_got, &keys, "KEYS %s", "nosuchkey*"), 0);
    aredis_client_close(c);
    wait_for(loop, 3);
    cr_assert(first.calls == 1 && size.calls == 1 && keys.calls == 1);
    cr_assert_eq(size.r->type, AREDIS_REPLY_INTEGER, "%s",
                 size.r->type == AREDIS_REPLY_ERROR ? size.r->str : "");
    cr_assert_eq(keys.r->type, AREDIS_REPLY_ARRAY);
    cr_assert_eq(keys.r->len, 0);
    got_clear(&first);
    got_clear(&size);
    got_clear(&keys);
    for (int spins = 0; spins < 20; spins++)
        aredis_loop_run_once(loop, 5);
    aredis_loop_free(loop);

    loop = aredis_loop_new();
    c = cluster_client(loop, primaries[0], 0);
    ndone = 0;
    cr_assert_eq(aredis_command(c, on_got, &size, "DBSIZE"), 0);
    cr_assert_eq(aredis_client_pending(c), 1, "a waiting fan-out counts");
    aredis_client_close(c);
    wait_for(loop, 1);
    cr_assert_eq(size.calls, 1);
    cr_assert(size.r->type == AREDIS_REPLY_INTEGER ||
                  size.r->code == AREDIS_ECANCELED,
              "%s", size.r->type == AREDIS_REPLY_ERROR ? size.r->str : "");
    got_clear(&size);
    for (int spins = 0; spins < 20; spins++)
        aredis_loop_run_once(loop, 5);
    aredis_loop_free(loop);
}

/* A primary dies (SHUTDOWN NOSAVE) on a private 3-primary cluster: fan-outs
 * that need it complete exactly once, with an error that names the node
 * (after the command deadline at most); those that do not need it (an MGET
 * of keys on the other primaries) still succeed. */
Test(cluster_fanout, fanout_completes_once_when_a_primary_dies, .timeout = 120)
{
    testenv_server s;
    int p[3];
    testclient_private_cluster(&s, "clfandie", p, 3);
    char seeds[64];
    snprintf(seeds, sizeof seeds, "127.0.0.1:%d", p[0]);
    aredis_options o = {0};
    o.cluster.seeds = seeds;
    o.command_timeout_ms = 1500;
    aredis_loop *loop = aredis_loop_new();
    aredis_status st;
    aredis_client *c = aredis_client_new(loop, &o, &st);
    cr_assert_not_null(c, "%s", st.msg);
    got warm = {0};
    ndone = 0;
    cr_assert_eq(aredis_command(c, on_got, &warm, "DBSIZE"), 0);
    wait_for(loop, 1);
    cr_assert_eq(warm.r->type, AREDIS_REPLY_INTEGER);
    got_clear(&warm);

    /* Two keys on live primaries, one on the primary that dies. */
    char live[2][64], dead[64];
    int nlive = 0, ndead = 0;
    for (int i = 0; nlive < 2 || ndead < 1; i++) {
        char suffix[16], k[64];
        snprintf(suffix, sizeof suffix, "die%d", i);
        testenv_key(k, sizeof k, suffix);
        int owner = owner_of(p, 3, k);
        if (owner == p[2] && ndead < 1)
            memcpy(dead, k, sizeof k), ndead++;
        else if (owner != p[2] && nlive < 2 &&
                 (nlive == 0 ||
                  aredis_cluster_keyslot(k, strlen(k)) !=
                      aredis_cluster_keyslot(live[0], strlen(live[0]))))
            memcpy(live[nlive++], k, sizeof k);
    }
    {
        /* SHUTDOWN answers by closing the connection. */
        testenv_server dn = {.host = "127.0.0.1", .port = p[2]};
        testenv_conn tc;
        const aredis_reply *r;
        cr_assert_eq(testenv_connect(&tc, &dn), 0);
        testenv_command(&tc, &r, "SHUTDOWN NOSAVE");
        testenv_close(&tc);
    }

    got size = {0}, ping = {0}, mixed = {0}, fine = {0};
    ndone = 0;
    cr_assert_eq(aredis_command(c, on_got, &size, "DBSIZE"), 0);
    cr_assert_eq(aredis_command(c, on_got, &ping, "PING"), 0);
    cr_assert_eq(aredis_command(c, on_got, &mixed, "MGET %s %s %s", live[0],
                                dead, live[1]),
                 0);
    cr_assert_eq(
        aredis_command(c, on_got, &fine, "MGET %s %s", live[0], live[1]), 0);
    wait_for(loop, 4);
    for (int spins = 0; spins < 30; spins++)
        aredis_loop_run_once(loop, 10); /* nothing more may arrive */
    cr_assert_eq(ndone, 4);
    cr_assert(size.calls == 1 && ping.calls == 1 && mixed.calls == 1 &&
              fine.calls == 1);
    char name[32];
    snprintf(name, sizeof name, "127.0.0.1:%d", p[2]);
    cr_assert_eq(size.r->type, AREDIS_REPLY_ERROR);
    cr_assert_not_null(strstr(size.r->str, name), "%s", size.r->str);
    cr_assert_eq(ping.r->type, AREDIS_REPLY_MAP, "per node, errors included");
    const aredis_reply *v = aredis_reply_map_get(ping.r, name, strlen(name));
    cr_assert_not_null(v);
    cr_assert_eq(v->type, AREDIS_REPLY_ERROR);
    snprintf(name, sizeof name, "127.0.0.1:%d", p[0]);
    v = aredis_reply_map_get(ping.r, name, strlen(name));
    cr_assert_str_eq(v->str, "PONG");
    cr_assert_eq(mixed.r->type, AREDIS_REPLY_ERROR);
    cr_assert_eq(fine.r->type, AREDIS_REPLY_ARRAY, "%s",
                 fine.r->type == AREDIS_REPLY_ERROR ? fine.r->str : "");
    cr_assert_eq(fine.r->len, 2);
    got_clear(&size);
    got_clear(&ping);
    got_clear(&mixed);
    got_clear(&fine);
    client_done(c, loop);
    testenv_private_cluster_stop(&s);
}
