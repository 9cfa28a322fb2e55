/* Integration tests of key positions and node records on the real test
 * cluster (fixture
 * redis_cluster): commands whose keys are not the first argument (OBJECT
 * ENCODING, EVAL/EVALSHA/FCALL, XREAD/XREADGROUP ... STREAMS, MIGRATE,
 * SORT ... STORE, GEORADIUS ... STORE, ZUNIONSTORE/ZINTERSTORE, BITOP...)
 * go straight to the primary serving their key, by the built-in table and,
 * for commands the table does not know, by the key specs the client learns
 * from a server (COMMAND INFO) while the commands wait.
 *
 * "Straight" is checked on the servers: a command that reached a node
 * not serving its key is refused there with MOVED, which the node counts
 * in INFO commandstats as rejected_calls; summed over every primary, those
 * of the commands used here must not grow. The client follows MOVED, so
 * the replies alone would not tell. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aredis/aredis.h"
#include "testclient.h"
#include "testenv.h"
#include "topology/topology.h"

TestSuite(cluster_keys, .timeout = 120);

/* ---- the servers' view -------------------------------------------------- */

/* The commands sent below, as INFO commandstats names them. */
static const char *const stat_names[] = {
    "object|encoding", "memory|usage", "eval",
    "evalsha",         "fcall",        "xread",
    "xreadgroup",      "sort",         "georadius",
    "zunionstore",     "zinterstore",  "bitop",
    "migrate",         "xinfo|stream", "xgroup|createconsumer",
};
#define NSTATS (sizeof stat_names / sizeof *stat_names)

/* rejected_calls of those commands at port, summed. */
static long long rejected_at(int port)
{
    aredis_reply *r = testclient_direct(port, "INFO commandstats");
    cr_assert_eq(r->type, AREDIS_REPLY_STRING);
    long long n = 0;
    for (size_t i = 0; i < NSTATS; i++) {
        char want[64];
        snprintf(want, sizeof want, "cmdstat_%s:", stat_names[i]);
        const char *line = strstr(r->str, want);
        if (line == NULL)
            continue;
        const char *end = strchr(line, '\r');
        const char *rc = strstr(line, "rejected_calls=");
        if (rc != NULL && (end == NULL || rc < end))
            n += atoll(rc + 15);
    }
    aredis_reply_free(r);
    return n;
}

/* ---- the test ----------------------------------------------------------- */

#define MAX_PRIMARIES 8

typedef struct setup {
    aredis_loop *loop;
    aredis_client *c;
    int nprim;
    int port[MAX_PRIMARIES];
    char tag[MAX_PRIMARIES][48]; /* a hash tag served by each primary */
} setup;

static void raw_ok(int port, const char *fmt, const char *a)
{
    aredis_reply *r = testclient_direct(port, fmt, a);
    cr_assert_neq(r->type, AREDIS_REPLY_ERROR, "%d: %s: %s", port, fmt,
                  r->type == AREDIS_REPLY_ERROR ? r->str : "");
    aredis_reply_free(r);
}

/* A hash tag whose slot the primary at port serves: the first candidate
 * it answers without MOVED. */
static void tag_on(int port, char *tag, size_t cap)
{
    testenv_conn c;
    testclient_connect_port(&c, port);
    for (int i = 0; i < 1000; i++) {
        char base[32];
        snprintf(base, sizeof base, "k%d", i);
        char key[64];
        testenv_key(key, sizeof key, base);
        snprintf(tag, cap, "{%s}", key);
        const aredis_reply *r;
        cr_assert_eq(testenv_command(&c, &r, "EXISTS %s", tag), 0);
        if (r->type == AREDIS_REPLY_INTEGER) {
            testenv_close(&c);
            return;
        }
    }
    cr_assert_fail("no key found for %d", port);
}

/* A client of the cluster fixture; o: its options (the URL is set here),
 * query: what follows the seed in the URL. */
static void make_opts(setup *s, aredis_options o, const char *query)
{
    char url[128];
    snprintf(url, sizeof url, "redis+cluster://127.0.0.1:%d%s",
             testclient_port("cluster"), query);
    o.url = url;
    s->loop = aredis_loop_new();
    cr_assert_not_null(s->loop);
    aredis_status st;
    s->c = aredis_client_new(s->loop, &o, &st);
    cr_assert_not_null(s->c, "%s", st.msg);
}

static void make(setup *s, int lazy)
{
    make_opts(s, (aredis_options){.command_timeout_ms = 5000},
              lazy ? "/?lazy=yes" : "/?lazy=no");
}

/* One PING through the client, answered. */
static void ping(setup *s)
{
    testgot o = {0};
    cr_assert_eq(aredis_command(s->c, testgot_keep, &o, "PING"), 0);
    testgot_wait_all(s->loop, &o, 1);
    aredis_reply_free(o.r);
}

/* The primaries (node API) and, on each, a tag and the data the commands
 * read: written on the node itself, not through the client. */
static void prepare(setup *s)
{
    ping(s);
    aredis_node_addr a[MAX_PRIMARIES];
    size_t n = 0;
    for (int spins = 0; spins < 500 && n == 0; spins++) {
        n = aredis_client_nodes(s->c, AREDIS_NODES_PRIMARIES, a, MAX_PRIMARIES);
        if (n == 0)
            aredis_loop_run_once(s->loop, 10);
    }
    cr_assert_eq(n, 3, "%zu primaries", n);
    s->nprim = (int)n;
    for (int i = 0; i < s->nprim; i++) {
        int p = s->port[i] = a[i].port;
        char *t = s->tag[i];
        tag_on(p, t, sizeof s->tag[i]);
        char k[96];
#define KEY(suffix) (snprintf(k, sizeof k, "%s:" suffix, t), k)
        raw_ok(p, "SET %s 1", KEY("s"));
        raw_ok(p, "ZADD %s 1 a", KEY("z1"));
        raw_ok(p, "ZADD %s 2 a", KEY("z2"));
        raw_ok(p, "RPUSH %s 3 1 2", KEY("l"));
        raw_ok(p, "GEOADD %s 13.361389 38.115556 pa", KEY("g"));
        raw_ok(p, "XADD %s * f v", KEY("x"));
        raw_ok(p, "XGROUP CREATE %s g 0", KEY("x"));
#undef KEY
    }
}

/* Every command of the list for a key on every primary, all sent at once:
 * each completes once, not with an error, and no primary refused one. */
static void run_commands(setup *s)
{
    long long before = 0;
    for (int i = 0; i < s->nprim; i++)
        before += rejected_at(s->port[i]);

    /* EVALSHA and FCALL need the script and the function on every primary
     * (the client sends SCRIPT LOAD and FUNCTION LOAD to all of them). */
    static const char script[] = "return redis.call('get', KEYS[1])";
    testgot ld[2] = {{0}};
    cr_assert_eq(
        aredis_command(s->c, testgot_keep, &ld[0], "SCRIPT LOAD %s", script),
        0);
    cr_assert_eq(aredis_command(
                     s->c, testgot_keep, &ld[1], "FUNCTION LOAD REPLACE %s",
                     "#!lua name=clkeys\nredis.register_function('clkeys_get', "
                     "function(keys, args) return redis.call('get', keys[1]) "
                     "end)"),
                 0);
    testgot_wait_all(s->loop, ld, 2);
    cr_assert_eq(ld[0].r->type, AREDIS_REPLY_STRING, "%s", ld[0].r->str);
    cr_assert_eq(ld[1].r->type, AREDIS_REPLY_STRING, "%s", ld[1].r->str);
    char sha[48];
    snprintf(sha, sizeof sha, "%.*s", (int)ld[0].r->len, ld[0].r->str);
    aredis_reply_free(ld[0].r);
    aredis_reply_free(ld[1].r);

    int dead = testenv_free_port();
    enum { PER = 17 };
    testgot o[MAX_PRIMARIES * PER];
    memset(o, 0, sizeof o);
    for (int i = 0; i < s->nprim; i++) {
        const char *t = s->tag[i];
        testgot *x = &o[i * PER];
        char k[8][96];
        const char *sfx[8] = {"s", "x", "l", "g", "z1", "z2", "nokey", "d"};
        for (int j = 0; j < 8; j++)
            snprintf(k[j], sizeof k[j], "%s:%s", t, sfx[j]);
        aredis_client *c = s->c;
        int e = 0;
        e |= aredis_command(c, testgot_keep, &x[0], "OBJECT ENCODING %s", k[0]);
        e |= aredis_command(c, testgot_keep, &x[1], "MEMORY USAGE %s", k[0]);
        e |= aredis_command(c, testgot_keep, &x[2], "EVAL %s 1 %s", script,
                            k[0]);
        e |= aredis_command(c, testgot_keep, &x[3], "EVALSHA %s 1 %s", sha,
                            k[0]);
        e |= aredis_command(c, testgot_keep, &x[4], "FCALL clkeys_get 1 %s",
                            k[0]);
        e |= aredis_command(c, testgot_keep, &x[5],
                            "XREAD COUNT 1 STREAMS %s 0", k[1]);
        e |= aredis_command(c, testgot_keep, &x[6],
                            "XREADGROUP GROUP g c COUNT 1 STREAMS %s >", k[1]);
        e |= aredis_command(c, testgot_keep, &x[7], "SORT %s STORE %s", k[2],
                            k[7]);
        e |= aredis_command(c, testgot_keep, &x[8],
                            "GEORADIUS %s 15 37 200 km STORE %s", k[3], k[7]);
        e |= aredis_command(c, testgot_keep, &x[9], "ZUNIONSTORE %s 2 %s %s",
                            k[7], k[4], k[5]);
        e |= aredis_command(c, testgot_keep, &x[10], "ZINTERSTORE %s 2 %s %s",
                            k[7], k[4], k[5]);
        e |= aredis_command(c, testgot_keep, &x[11], "BITOP AND %s %s %s", k[7],
                            k[0], k[0]);
        e |= aredis_command(c, testgot_keep, &x[12],
                            "MIGRATE 127.0.0.1 %d %s 0 100", dead, k[6]);
        e |= aredis_command(c, testgot_keep, &x[13],
                            "MIGRATE 127.0.0.1 %d %s 0 100 KEYS %s", dead, "",
                            k[6]);
        e |= aredis_command(c, testgot_keep, &x[14], "XINFO STREAM %s", k[1]);
        e |= aredis_command(c, testgot_keep, &x[15],
                            "XGROUP CREATECONSUMER %s g c2", k[1]);
        /* A command no one knows: any node, which answers its error. */
        e |= aredis_command(c, testgot_keep, &x[16], "NOSUCHCMD %s", k[0]);
        cr_assert_eq(e, 0);
    }
    size_t n = (size_t)s->nprim * PER;
    testgot_wait_all(s->loop, o, n);
    for (size_t i = 0; i < n; i++) {
        int last = i % PER == PER - 1;
        aredis_reply *r = o[i].r;
        if (last) {
            cr_assert_eq(r->type, AREDIS_REPLY_ERROR);
            cr_assert_not_null(strstr(r->str, "unknown command"), "%s", r->str);
        } else {
            cr_assert_neq(r->type, AREDIS_REPLY_ERROR, "command %zu: %s", i,
                          r->str);
        }
        aredis_reply_free(r);
    }
    long long after = 0;
    for (int i = 0; i < s->nprim; i++)
        after += rejected_at(s->port[i]);
    cr_assert_eq(after, before, "%lld commands met MOVED", after - before);
}

static void done(setup *s)
{
    aredis_client_free(s->c);
    for (int spins = 0; spins < 20; spins++)
        aredis_loop_run_once(s->loop, 5);
    aredis_loop_free(s->loop);
}

/* The built-in table places every key. */
Test(cluster_keys, the_table_routes_commands_whose_keys_come_later)
{
    setup s;
    make(&s, 0);
    prepare(&s);
    run_commands(&s);
    done(&s);
}

/* The same commands, hidden from the table: the client asks a server
 * where their keys are (subcommands of OBJECT, XINFO... included), and
 * the commands wait for the answer instead of going anywhere. */
Test(cluster_keys, commands_the_table_lacks_are_routed_by_learnt_key_specs)
{
    aredis__cluster_test_unknown("object memory eval evalsha fcall xread "
                                 "xreadgroup sort georadius zunionstore "
                                 "zinterstore bitop migrate xinfo xgroup");
    setup s;
    make(&s, 0);
    prepare(&s);
    run_commands(&s);
    done(&s);
}

/* Before the first map (lazy start), an unknown command waits for both
 * the map and its key specs; many unknown names (more than the client
 * keeps) each complete once with the server's error. */
Test(cluster_keys, learning_before_the_map_and_many_unknown_names)
{
    aredis__cluster_test_unknown("object");
    setup s;
    make(&s, 1);
    testgot o[1 + 150];
    memset(o, 0, sizeof o);
    char key[64];
    testenv_key(key, sizeof key, "lazy");
    cr_assert_eq(
        aredis_command(s.c, testgot_keep, &o[0], "OBJECT ENCODING %s", key), 0);
    for (int i = 1; i <= 150; i++) {
        char name[32];
        snprintf(name, sizeof name, "NOSUCH%d", i);
        cr_assert_eq(aredis_command(s.c, testgot_keep, &o[i], "%s k", name), 0);
    }
    testgot_wait_all(s.loop, o, 151);
    /* No such key: the owner answers nil (another node: MOVED, followed). */
    cr_assert_eq(o[0].r->type, AREDIS_REPLY_NIL, "%s",
                 o[0].r->type == AREDIS_REPLY_ERROR ? o[0].r->str : "");
    aredis_reply_free(o[0].r);
    for (int i = 1; i <= 150; i++) {
        cr_assert_eq(o[i].r->type, AREDIS_REPLY_ERROR);
        cr_assert_not_null(strstr(o[i].r->str, "unknown command"), "%s",
                           o[i].r->str);
        aredis_reply_free(o[i].r);
    }
    done(&s);
}

/* ---- node records under churn ------------------------------------------- */

/* A client that fetches the map every 20 ms, once it has a record for each
 * of the cluster's 6 nodes: that count. */
static size_t make_refreshing(setup *s, int timeout_ms)
{
    make_opts(s,
              (aredis_options){.command_timeout_ms = timeout_ms,
                               .cluster = {.refresh_period_ms = 20}},
              "");
    ping(s);
    size_t base = 0;
    for (int spins = 0; spins < 500 && base != 6; spins++) {
        aredis_loop_run_once(s->loop, 10);
        base = aredis__cluster_test_node_count(s->c);
    }
    cr_assert_eq(base, 6, "%zu node records for 6 nodes", base);
    return base;
}

/* Run the loop (up to 3 s) until the client holds base node records
 * again: how many it holds then. */
static size_t node_count_back_to(setup *s, size_t base)
{
    size_t left = 0;
    for (int spins = 0; spins < 300; spins++) {
        aredis_loop_run_once(s->loop, 10);
        left = aredis__cluster_test_node_count(s->c);
        if (left == base)
            break;
    }
    return left;
}

/* Nodes met and then left out of the map (as MOVED targets that leave the
 * cluster do), over and over, each with a command on its connection: the
 * records of the nodes that left are freed once their commands completed,
 * so the count stays bounded; every command completes exactly once. */
Test(cluster_keys, dropped_nodes_are_freed)
{
    setup s;
    size_t base = make_refreshing(&s, 3000);
    aredis_client *c = s.c;
    aredis_loop *loop = s.loop;

    enum { ROUNDS = 25, PER = 4 };
    size_t most = 0;
    for (int round = 0; round < ROUNDS; round++) {
        testgot o[2 * PER];
        memset(o, 0, sizeof o);
        for (int j = 0; j < PER; j++) {
            /* Nothing listens there: refused, or closed when dropped. */
            int port = testenv_free_port();
            cr_assert_gt(port, 0);
            cr_assert_eq(aredis__cluster_test_meet(c, "127.0.0.1", port), 0);
            cr_assert_eq(aredis_node_command(c, "127.0.0.1", port, testgot_keep,
                                             &o[j], "PING"),
                         0);
            char key[64];
            char sfx[32];
            snprintf(sfx, sizeof sfx, "churn%d.%d", round, j);
            testenv_key(key, sizeof key, sfx);
            cr_assert_eq(
                aredis_command(c, testgot_keep, &o[PER + j], "SET %s v", key),
                0);
        }
        size_t now = aredis__cluster_test_node_count(c);
        if (now > most)
            most = now;
        testgot_wait_all(loop, o, 2 * PER);
        for (int j = 0; j < PER; j++) {
            cr_assert_eq(o[j].r->type, AREDIS_REPLY_ERROR);
            cr_assert_eq(o[PER + j].r->type, AREDIS_REPLY_STATUS, "%s",
                         o[PER + j].r->str);
            aredis_reply_free(o[j].r);
            aredis_reply_free(o[PER + j].r);
        }
    }
    /* Once the map has been fetched again, only the cluster's nodes. */
    size_t left = node_count_back_to(&s, base);
    cr_assert_eq(left, base, "%zu node records after %d rounds", left, ROUNDS);
    cr_assert_leq(most, base + 2 * PER, "up to %zu node records", most);
    done(&s);
}

/* A node that leaves while an exclusive connection to it is busy (a BLPOP
 * on the node's pool) keeps its record until that command has completed,
 * then the record goes. The node here is a real primary met under another
 * name ("localhost"), which the map never lists. */
Test(cluster_keys, a_dropped_node_with_a_busy_connection_is_kept_until_idle)
{
    setup s;
    size_t base = make_refreshing(&s, 5000);
    aredis_client *c = s.c;
    aredis_loop *loop = s.loop;

    /* BLPOP on a key the node does not serve would be MOVED at once: one
     * it serves, found by asking it. */
    aredis_node_addr a[8];
    cr_assert_gt(aredis_client_nodes(c, AREDIS_NODES_PRIMARIES, a, 8), 0);
    char tag[48];
    tag_on(a[0].port, tag, sizeof tag);
    cr_assert_eq(aredis__cluster_test_meet(c, "localhost", a[0].port), 0);
    testgot blpop = {0};
    cr_assert_eq(aredis_node_command(c, "localhost", a[0].port, testgot_keep,
                                     &blpop, "BLPOP %s:none 1", tag),
                 0);
    /* Dropped at the next map (20 ms), kept while BLPOP waits (1 s). */
    for (int spins = 0; spins < 50; spins++)
        aredis_loop_run_once(loop, 10);
    cr_assert_eq(blpop.calls, 0, "BLPOP answered early");
    cr_assert_eq(aredis__cluster_test_node_count(c), base + 1);
    testgot_wait_all(loop, &blpop, 1);
    cr_assert_eq(blpop.r->type, AREDIS_REPLY_NIL, "%s",
                 blpop.r->type == AREDIS_REPLY_ERROR ? blpop.r->str : "");
    aredis_reply_free(blpop.r);
    size_t left = node_count_back_to(&s, base);
    cr_assert_eq(left, base, "%zu node records", left);
    done(&s);
}
