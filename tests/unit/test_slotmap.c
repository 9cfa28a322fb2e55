/* Unit tests for the slot map parsers and the redirect parser
 * (src/topology/slotmap.c). No server: the replies are the real test
 * cluster's, recorded (cluster_replies.h), and hand-written variants -
 * unknown endpoints, IPv6, hostnames, migrations in progress, failed and
 * handshaking nodes - and hostile ones: wrong types, out-of-range slots
 * and ports, overlapping ranges, truncated lines, every prefix of a
 * recorded reply, and random byte flips. A hostile reply must give an
 * error with a reason, never a crash or a half-built map. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aredis/error.h"
#include "aredis/resp.h"
#include "cluster_replies.h"
#include "topology/slotmap.h"

static aredis_reader *rd;
static char err[256];

static void setup(void)
{
    rd = NULL;
}

static void teardown(void)
{
    aredis_reader_free(rd);
}

TestSuite(slotmap, .init = setup, .fini = teardown);
TestSuite(redirect);

/* The reply held in RESP bytes; borrowed until the next call. */
static const aredis_reply *resp(const char *bytes, size_t n)
{
    aredis_reader_free(rd);
    rd = aredis_reader_new(NULL);
    cr_assert_not_null(rd);
    cr_assert_eq(aredis_reader_feed(rd, bytes, n), 0);
    const aredis_reply *r = NULL;
    cr_assert_eq(aredis_reader_get_reply(rd, &r), 1, "%s: %s", bytes,
                 aredis_reader_errstr(rd));
    return r;
}

#define RESP(lit) resp(lit, sizeof(lit) - 1)

typedef int (*parser)(aredis__slotmap **, const aredis_reply *, const char *,
                      char *, size_t);

/* A text reply (what CLUSTER NODES sends) without going through RESP. */
static aredis_reply text(const char *s, size_t n)
{
    aredis_reply r;
    memset(&r, 0, sizeof r);
    r.type = AREDIS_REPLY_STRING;
    r.str = s;
    r.len = n;
    return r;
}

static aredis__slotmap *parse_ok(parser p, const aredis_reply *r,
                                 const char *answered)
{
    aredis__slotmap *m = NULL;
    int rc = p(&m, r, answered, err, sizeof err);
    cr_assert_eq(rc, 0, "rc %d: %s", rc, err);
    cr_assert_not_null(m);
    return m;
}

/* A hostile reply: an error code, a reason, and no map. */
static void parse_bad(parser p, const aredis_reply *r, const char *why)
{
    aredis__slotmap *m = (aredis__slotmap *)1;
    err[0] = '\0';
    int rc = p(&m, r, "127.0.0.1", err, sizeof err);
    cr_assert_eq(rc, AREDIS_EPROTO, "%s: rc %d", why, rc);
    cr_assert_null(m, "%s", why);
    cr_assert_gt(strlen(err), 10, "%s: no reason given", why);
}

static const char *slot_addr(const aredis__slotmap *m, unsigned slot)
{
    static char buf[300];
    const aredis__slotnode *n = aredis__slotmap_primary(m, slot);
    if (n == NULL)
        return "none";
    snprintf(buf, sizeof buf, "%s:%d", n->host, n->port);
    return buf;
}

/* The recorded cluster, fully formed: 0-5460 on 7960 (replica 7977),
 * 5461-10921 on 7464 (7371), 10922-16383 on 7683 (7479). */
static void check_settled(const aredis__slotmap *m, int replicas_known)
{
    static const struct {
        unsigned lo, hi;
        int port, replica;
        const char *id;
    } want[] = {
        {0, 5460, 7960, 7977, "cbd0e499d24663906c929657aebdf0b2ae8c23f0"},
        {5461, 10921, 7464, 7371, "f8a90a2e4a16caf0914c438f3258f3e78c20cf9e"},
        {10922, 16383, 7683, 7479, "956a9bc240ff0b737c255afa282c941630b7033a"},
    };
    cr_assert_eq(m->covered, AREDIS_CLUSTER_SLOTS);
    cr_assert_eq(m->nshards, 3);
    for (size_t i = 0; i < 3; i++) {
        for (unsigned s = want[i].lo; s <= want[i].hi; s++) {
            const aredis__slotnode *n = aredis__slotmap_primary(m, s);
            cr_assert_not_null(n, "slot %u", s);
            cr_assert_eq(n->port, want[i].port, "slot %u: %d", s, n->port);
        }
        const aredis__slotshard *sh = aredis__slotmap_shard(m, want[i].lo);
        const aredis__slotnode *p = &m->nodes[sh->primary];
        cr_assert_str_eq(p->host, "127.0.0.1");
        cr_assert_str_eq(p->id, want[i].id);
        cr_assert(p->primary);
        cr_assert(p->healthy);
        if (!replicas_known)
            continue;
        cr_assert_eq(sh->nreplicas, 1, "shard %zu", i);
        const aredis__slotnode *r = &m->nodes[m->replicas[sh->first_replica]];
        cr_assert_eq(r->port, want[i].replica);
        cr_assert_str_eq(r->host, "127.0.0.1");
        cr_assert_not(r->primary);
    }
    cr_assert_null(aredis__slotmap_shard(m, AREDIS_CLUSTER_SLOTS));
}

Test(slotmap, recorded_shards_slots_nodes_in_resp2_and_resp3)
{
    static const struct {
        parser p;
        const char *bytes;
        size_t n;
        int is_text;
    } rec[] = {
        {aredis__slotmap_from_shards, rec_shards_resp2,
         sizeof rec_shards_resp2 - 1, 0},
        {aredis__slotmap_from_shards, rec_shards_resp3,
         sizeof rec_shards_resp3 - 1, 0},
        {aredis__slotmap_from_slots, rec_slots_resp2,
         sizeof rec_slots_resp2 - 1, 0},
        {aredis__slotmap_from_slots, rec_slots_resp3,
         sizeof rec_slots_resp3 - 1, 0},
        {aredis__slotmap_from_nodes, rec_nodes_resp2,
         sizeof rec_nodes_resp2 - 1, 1},
        {aredis__slotmap_from_nodes, rec_nodes_resp3,
         sizeof rec_nodes_resp3 - 1, 1},
    };
    for (size_t i = 0; i < sizeof rec / sizeof *rec; i++) {
        aredis__slotmap *m =
            parse_ok(rec[i].p, resp(rec[i].bytes, rec[i].n), "127.0.0.1");
        check_settled(m, 1);
        cr_assert_eq(m->nnodes, 6, "recording %zu: %zu nodes", i, m->nnodes);
        for (size_t k = 0; k < m->nnodes; k++)
            cr_assert(m->nodes[k].healthy, "recording %zu node %zu", i, k);
        aredis__slotmap_free(m);
    }
}

Test(slotmap, recorded_while_replicas_had_replicated_nothing)
{
    /* CLUSTER SHARDS lists the replicas as "loading": kept, not healthy. */
    aredis__slotmap *m = parse_ok(aredis__slotmap_from_shards,
                                  RESP(rec_early_shards_resp3), "127.0.0.1");
    check_settled(m, 1);
    for (size_t i = 0; i < m->nshards; i++) {
        cr_assert(m->nodes[m->shards[i].primary].healthy);
        cr_assert_not(
            m->nodes[m->replicas[m->shards[i].first_replica]].healthy);
    }
    aredis__slotmap_free(m);
    /* CLUSTER SLOTS leaves two of the replicas out. */
    m = parse_ok(aredis__slotmap_from_slots, RESP(rec_early_slots_resp2),
                 "127.0.0.1");
    check_settled(m, 0);
    cr_assert_eq(m->nreplicas, 1);
    cr_assert_eq(m->nnodes, 4);
    aredis__slotmap_free(m);
}

Test(slotmap, unknown_endpoints_are_the_host_that_answered)
{
    /* CLUSTER SLOTS: "" (unknown own address), NULL (unknown endpoint)
     * and "?" (hostname preferred but not set). */
    aredis__slotmap *m = parse_ok(
        aredis__slotmap_from_slots,
        RESP("*3\r\n"
             "*3\r\n:0\r\n:99\r\n*2\r\n$0\r\n\r\n:7000\r\n"
             "*4\r\n:100\r\n:199\r\n*2\r\n$-1\r\n:7001\r\n*2\r\n$1\r\n?\r\n:"
             "7004\r\n"
             "*3\r\n:200\r\n:16383\r\n*3\r\n$15\r\nredis-2.example\r\n:"
             "7002\r\n$40\r\n0123456789abcdef0123456789abcdef01234567\r\n"),
        "seed.example");
    cr_assert_str_eq(slot_addr(m, 0), "seed.example:7000");
    cr_assert_str_eq(slot_addr(m, 150), "seed.example:7001");
    cr_assert_str_eq(slot_addr(m, 16383), "redis-2.example:7002");
    const aredis__slotshard *sh = aredis__slotmap_shard(m, 100);
    cr_assert_eq(sh->nreplicas, 1);
    cr_assert_str_eq(m->nodes[m->replicas[sh->first_replica]].host,
                     "seed.example");
    cr_assert_str_eq(aredis__slotmap_primary(m, 200)->id,
                     "0123456789abcdef0123456789abcdef01234567");
    aredis__slotmap_free(m);

    /* CLUSTER SHARDS: endpoint NULL, then "", then an IPv6 endpoint; the
     * tls-port is kept beside the port. */
    m = parse_ok(aredis__slotmap_from_shards,
                 RESP("*2\r\n"
                      "%2\r\n$5\r\nslots\r\n*2\r\n:0\r\n:8191\r\n"
                      "$5\r\nnodes\r\n*1\r\n%4\r\n$8\r\nendpoint\r\n_\r\n"
                      "$4\r\nport\r\n:7000\r\n$8\r\ntls-port\r\n:8000\r\n"
                      "$4\r\nrole\r\n$6\r\nmaster\r\n"
                      "%2\r\n$5\r\nslots\r\n*2\r\n:8192\r\n:16383\r\n"
                      "$5\r\nnodes\r\n*2\r\n"
                      "%3\r\n$8\r\nendpoint\r\n$3\r\n::1\r\n"
                      "$4\r\nport\r\n:7001\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
                      "%3\r\n$8\r\nendpoint\r\n$0\r\n\r\n"
                      "$4\r\nport\r\n:7002\r\n$4\r\nrole\r\n$7\r\nreplica\r\n"),
                 "10.1.2.3");
    cr_assert_str_eq(slot_addr(m, 0), "10.1.2.3:7000");
    cr_assert_eq(aredis__slotmap_primary(m, 0)->tls_port, 8000);
    cr_assert_str_eq(slot_addr(m, 8192), "::1:7001");
    sh = aredis__slotmap_shard(m, 9000);
    cr_assert_eq(sh->nreplicas, 1);
    cr_assert_str_eq(m->nodes[m->replicas[sh->first_replica]].host, "10.1.2.3");
    aredis__slotmap_free(m);
}

Test(slotmap, cluster_nodes_variants)
{
    static const char nodes[] =
        /* myself before it learned its address; CRLF line end */
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa :7000@17000 myself,master "
        "- 0 0 1 connected 0-99 "
        "[100->-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb]"
        " 100\r\n"
        /* IPv6 with a hostname; an importing slot is not its own yet */
        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb ::1:7001@17001,redis-1 "
        "master - 0 0 2 connected 101-16383 "
        "[100-<-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\n"
        /* a failed replica, a handshaking node, a node with no address */
        "cccccccccccccccccccccccccccccccccccccccc 127.0.0.1:7002@17002 "
        "slave,fail bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb 0 0 2 "
        "disconnected\n"
        "dddddddddddddddddddddddddddddddddddddddd 127.0.0.1:7003@17003 "
        "handshake - 0 0 0 connected\n"
        "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee :0@0 master,noaddr - 0 0 3 "
        "connected\n"
        /* a replica of a primary this reply does not list */
        "ffffffffffffffffffffffffffffffffffffffff 127.0.0.1:7005@17005 slave "
        "9999999999999999999999999999999999999999 0 0 3 connected\n"
        /* an old server: no bus port in the address */
        "1111111111111111111111111111111111111111 127.0.0.1:7006 slave "
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 0 0 1 connected\n";
    aredis_reply r = text(nodes, sizeof nodes - 1);
    aredis__slotmap *m = parse_ok(aredis__slotmap_from_nodes, &r, "seed");
    cr_assert_str_eq(slot_addr(m, 0), "seed:7000");
    cr_assert_str_eq(slot_addr(m, 100), "seed:7000",
                     "a migrating slot "
                     "stays with its source");
    cr_assert_str_eq(slot_addr(m, 101), "::1:7001");
    cr_assert_eq(m->covered, AREDIS_CLUSTER_SLOTS);
    cr_assert_eq(m->nnodes, 5, "handshake and noaddr nodes are skipped");
    const aredis__slotshard *sh = aredis__slotmap_shard(m, 5000);
    cr_assert_eq(sh->nreplicas, 1);
    const aredis__slotnode *rep = &m->nodes[m->replicas[sh->first_replica]];
    cr_assert_eq(rep->port, 7002);
    cr_assert_not(rep->healthy, "a failed replica is kept as unhealthy");
    sh = aredis__slotmap_shard(m, 0);
    cr_assert_eq(sh->nreplicas, 1);
    cr_assert_eq(m->nodes[m->replicas[sh->first_replica]].port, 7006);
    aredis__slotmap_free(m);
}

Test(slotmap, hostile_replies_are_refused_with_a_reason)
{
    parse_bad(aredis__slotmap_from_slots, RESP(":1\r\n"), "not an array");
    parse_bad(aredis__slotmap_from_slots, RESP("*0\r\n"), "no slot at all");
    parse_bad(aredis__slotmap_from_slots, RESP("*1\r\n*2\r\n:0\r\n:1\r\n"),
              "entry without a node");
    parse_bad(aredis__slotmap_from_slots,
              RESP("*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n"),
              "slot 16384");
    parse_bad(aredis__slotmap_from_slots,
              RESP("*1\r\n*3\r\n:-1\r\n:5\r\n*2\r\n$1\r\nh\r\n:1\r\n"),
              "slot -1");
    parse_bad(aredis__slotmap_from_slots,
              RESP("*1\r\n*3\r\n:9\r\n:5\r\n*2\r\n$1\r\nh\r\n:1\r\n"),
              "start after end");
    parse_bad(aredis__slotmap_from_slots,
              RESP("*2\r\n*3\r\n:0\r\n:10\r\n*2\r\n$1\r\nh\r\n:1\r\n"
                   "*3\r\n:10\r\n:20\r\n*2\r\n$1\r\ng\r\n:1\r\n"),
              "overlapping ranges");
    parse_bad(aredis__slotmap_from_slots,
              RESP("*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:0\r\n"),
              "port 0");
    parse_bad(aredis__slotmap_from_slots,
              RESP("*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:65536\r\n"),
              "port 65536");
    parse_bad(aredis__slotmap_from_slots,
              RESP("*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$3\r\nh h\r\n:1\r\n"),
              "host with a space");
    parse_bad(aredis__slotmap_from_slots,
              RESP("*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n:5\r\n:1\r\n"),
              "host not a string");
    parse_bad(aredis__slotmap_from_slots,
              RESP("*1\r\n*3\r\n:0\r\n:1\r\n*3\r\n$1\r\nh\r\n:1\r\n$3\r\nxyz"
                   "\r\n"),
              "node id not hex");
    parse_bad(aredis__slotmap_from_slots,
              RESP("*1\r\n*3\r\n$1\r\nx\r\n:1\r\n*2\r\n$1\r\nh\r\n:1\r\n"),
              "slot not a number");
    char big[400];
    int n = snprintf(big, sizeof big, "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$300\r\n");
    memset(big + n, 'h', 300);
    memcpy(big + n + 300, "\r\n:1\r\n", 6);
    parse_bad(aredis__slotmap_from_slots, resp(big, (size_t)n + 306),
              "host of 300 bytes");

    parse_bad(aredis__slotmap_from_shards, RESP("*1\r\n:1\r\n"),
              "shard not a map");
    parse_bad(aredis__slotmap_from_shards,
              RESP("*1\r\n%1\r\n$5\r\nslots\r\n*2\r\n:0\r\n:1\r\n"),
              "shard without nodes");
    parse_bad(aredis__slotmap_from_shards,
              RESP("*1\r\n%2\r\n$5\r\nslots\r\n*1\r\n:0\r\n$5\r\nnodes\r\n*0"
                   "\r\n"),
              "odd slot list");
    parse_bad(aredis__slotmap_from_shards,
              RESP("*1\r\n%2\r\n$5\r\nslots\r\n*2\r\n:0\r\n:1\r\n$5\r\nnodes"
                   "\r\n*1\r\n%2\r\n$2\r\nip\r\n$1\r\nh\r\n$4\r\nport\r\n:1"
                   "\r\n"),
              "node without role");
    parse_bad(aredis__slotmap_from_shards,
              RESP("*1\r\n%2\r\n$5\r\nslots\r\n*2\r\n:0\r\n:1\r\n$5\r\nnodes"
                   "\r\n*1\r\n%3\r\n$2\r\nip\r\n$1\r\nh\r\n$4\r\nport\r\n:1"
                   "\r\n$4\r\nrole\r\n$7\r\nreplica\r\n"),
              "slots but no primary");

    static const char *lines[] = {
        "",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 127.0.0.1:1@2 master - 0 0",
        "short 127.0.0.1:1@2 master - 0 0 1 connected 0-16383",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 127.0.0.1@2 master - 0 0 1 "
        "connected 0-16383",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 127.0.0.1:99999@2 master - 0 "
        "0 1 connected 0-16383",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 127.0.0.1:1@2 master - 0 0 1 "
        "connected 0-16384",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 127.0.0.1:1@2 master - 0 0 1 "
        "connected 5-x",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 127.0.0.1:1@2 master - 0 0 1 "
        "connected 0-10 5",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 127.0.0.1:1@2 myself - 0 0 1 "
        "connected 0-10",
    };
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
        aredis_reply t = text(lines[i], strlen(lines[i]));
        parse_bad(aredis__slotmap_from_nodes, &t, lines[i]);
    }
    aredis_reply notext = {.type = AREDIS_REPLY_INTEGER};
    parse_bad(aredis__slotmap_from_nodes, &notext, "not text");
    aredis__slotmap *m = NULL;
    cr_assert_eq(aredis__slotmap_from_nodes(&m, &notext, "", err, sizeof err),
                 AREDIS_EPROTO, "an empty answering host is refused");
}

/* Every prefix of the recorded CLUSTER NODES text parses or fails
 * cleanly (ASan watches the reads); only the whole text gives the whole
 * map. */
Test(slotmap, every_prefix_of_cluster_nodes)
{
    const aredis_reply *rec = RESP(rec_nodes_resp2);
    for (size_t n = 0; n <= rec->len; n++) {
        char *copy = malloc(n + 1); /* exactly n bytes for ASan */
        memcpy(copy, rec->str, n);
        aredis_reply t = text(copy, n);
        aredis__slotmap *m = NULL;
        int rc =
            aredis__slotmap_from_nodes(&m, &t, "127.0.0.1", err, sizeof err);
        cr_assert(rc == 0 || rc == AREDIS_EPROTO, "prefix %zu: rc %d", n, rc);
        cr_assert_eq(rc == 0, m != NULL);
        if (m != NULL)
            cr_assert_leq(m->covered, AREDIS_CLUSTER_SLOTS);
        aredis__slotmap_free(m);
        free(copy);
    }
}

/* Random byte flips in recorded replies: whatever the reader accepts, the
 * parsers either build a consistent map or refuse it. */
Test(slotmap, random_corruption_never_builds_a_broken_map)
{
    static const struct {
        parser p;
        const char *bytes;
        size_t n;
    } rec[] = {
        {aredis__slotmap_from_shards, rec_shards_resp3,
         sizeof rec_shards_resp3 - 1},
        {aredis__slotmap_from_slots, rec_slots_resp2,
         sizeof rec_slots_resp2 - 1},
        {aredis__slotmap_from_nodes, rec_nodes_resp2,
         sizeof rec_nodes_resp2 - 1},
    };
    static const char junk[] = "0123456789:-{}[]@,*$%_ \r\n?aZ\xff";
    srand(12345);
    int built = 0, refused = 0;
    for (int it = 0; it < 2000; it++) {
        size_t w = (size_t)it % 3;
        char buf[2048];
        memcpy(buf, rec[w].bytes, rec[w].n);
        for (int k = 0; k < 1 + rand() % 3; k++)
            buf[rand() % (int)rec[w].n] = junk[rand() % (int)(sizeof junk - 1)];
        aredis_reader_free(rd);
        rd = aredis_reader_new(NULL);
        const aredis_reply *r = NULL;
        if (aredis_reader_feed(rd, buf, rec[w].n) != 0 ||
            aredis_reader_get_reply(rd, &r) != 1)
            continue;
        aredis__slotmap *m = NULL;
        int rc = rec[w].p(&m, r, "127.0.0.1", err, sizeof err);
        cr_assert(rc == 0 || rc == AREDIS_EPROTO, "rc %d", rc);
        if (rc != 0) {
            refused++;
            cr_assert_null(m);
            continue;
        }
        built++;
        /* Plain checks in the slot loop (an assertion per slot is slow). */
        size_t covered = 0;
        int bad = 0;
        for (unsigned s = 0; s < AREDIS_CLUSTER_SLOTS; s++) {
            if (m->slot[s] == AREDIS__SLOT_NONE)
                continue;
            covered++;
            if (m->slot[s] >= m->nshards) {
                bad = 1;
                break;
            }
            const aredis__slotnode *p = aredis__slotmap_primary(m, s);
            bad |= p->port <= 0 || p->port > 65535 || p->host[0] == '\0';
        }
        cr_assert_not(bad, "iteration %d: a slot maps to a broken shard", it);
        cr_assert_eq(covered, m->covered);
        for (size_t i = 0; i < m->nshards; i++) {
            cr_assert_lt(m->shards[i].primary, m->nnodes);
            for (unsigned k = 0; k < m->shards[i].nreplicas; k++)
                cr_assert_lt(m->replicas[m->shards[i].first_replica + k],
                             m->nnodes);
        }
        aredis__slotmap_free(m);
    }
    cr_assert_gt(built, 30, "built %d", built);
    cr_assert_gt(refused, 30, "refused %d", refused);
}

/* ---- redirects ----------------------------------------------------------- */

static aredis__redirect parse_redirect(const char *msg)
{
    aredis__redirect r;
    memset(&r, 0x55, sizeof r);
    int rc = aredis__redirect_parse(msg, strlen(msg), &r, err, sizeof err);
    cr_assert_eq(rc, 1, "%s: rc %d %s", msg, rc, err);
    return r;
}

Test(redirect, moved_and_ask)
{
    aredis__redirect r = parse_redirect("MOVED 3999 127.0.0.1:6381");
    cr_assert_eq(r.kind, AREDIS__REDIRECT_MOVED);
    cr_assert_eq(r.slot, 3999);
    cr_assert_str_eq(r.host, "127.0.0.1");
    cr_assert_eq(r.port, 6381);
    r = parse_redirect("ASK 16383 ::1:7000");
    cr_assert_eq(r.kind, AREDIS__REDIRECT_ASK);
    cr_assert_eq(r.slot, 16383);
    cr_assert_str_eq(r.host, "::1");
    cr_assert_eq(r.port, 7000);
    r = parse_redirect("MOVED 0 redis-0.cluster.example:6379");
    cr_assert_eq(r.slot, 0);
    cr_assert_str_eq(r.host, "redis-0.cluster.example");
    r = parse_redirect("MOVED 5 [fe80::1]:6379");
    cr_assert_str_eq(r.host, "fe80::1");
    r = parse_redirect("MOVED 5 :6380");
    cr_assert_str_eq(r.host, "", "unknown endpoint: the host that answered");
    cr_assert_eq(r.port, 6380);
    r = parse_redirect("ASK 5 ?:6380");
    cr_assert_str_eq(r.host, "");
}

Test(redirect, other_errors_are_not_redirects)
{
    static const char *msgs[] = {
        "ERR unknown command",
        "MOVEDX 1 h:1",
        "ASKING",
        "TRYAGAIN Multiple keys request during rehashing of slot",
        "CLUSTERDOWN The cluster is down",
        "moved 1 h:1",
        "",
    };
    for (size_t i = 0; i < sizeof msgs / sizeof *msgs; i++) {
        aredis__redirect r;
        cr_assert_eq(aredis__redirect_parse(msgs[i], strlen(msgs[i]), &r, err,
                                            sizeof err),
                     0, "%s", msgs[i]);
    }
}

Test(redirect, truncated_or_malformed_redirects_say_why)
{
    static const char *msgs[] = {
        "MOVED",
        "MOVED ",
        "MOVED 3999",
        "MOVED 3999 ",
        "MOVED 3999 127.0.0.1",
        "MOVED 3999 127.0.0.1:",
        "MOVED 3999 127.0.0.1:0",
        "MOVED 3999 127.0.0.1:65536",
        "MOVED 3999 127.0.0.1:63a",
        "MOVED 16384 127.0.0.1:1",
        "MOVED -1 127.0.0.1:1",
        "MOVED abc 127.0.0.1:1",
        "MOVED  3999 127.0.0.1:1",
        "MOVED 3999 bad host:1",
        "ASK",
        "ASK 1",
        "ASK 99999999999999999999 h:1",
    };
    for (size_t i = 0; i < sizeof msgs / sizeof *msgs; i++) {
        aredis__redirect r;
        err[0] = '\0';
        cr_assert_eq(aredis__redirect_parse(msgs[i], strlen(msgs[i]), &r, err,
                                            sizeof err),
                     AREDIS_EPROTO, "%s", msgs[i]);
        cr_assert(strstr(err, msgs[i][0] == 'M' ? "MOVED" : "ASK") != NULL,
                  "%s: '%s'", msgs[i], err);
        cr_assert(strstr(err, "truncated") || strstr(err, "malformed"), "%s",
                  err);
    }
    /* A host longer than any DNS name. */
    char big[400] = "MOVED 1 ";
    memset(big + 8, 'h', 300);
    memcpy(big + 308, ":1", 3);
    aredis__redirect r;
    cr_assert_eq(aredis__redirect_parse(big, strlen(big), &r, err, sizeof err),
                 AREDIS_EPROTO);
    /* The parser never reads past len: a valid redirect cut anywhere. */
    const char *full = "MOVED 3999 127.0.0.1:6381";
    for (size_t n = 0; n < strlen(full); n++) {
        char *copy = malloc(n ? n : 1);
        memcpy(copy, full, n);
        int rc = aredis__redirect_parse(copy, n, &r, err, sizeof err);
        cr_assert(rc == 0 || rc == AREDIS_EPROTO || (rc == 1 && n >= 22),
                  "cut at %zu: rc %d", n, rc);
        free(copy);
    }
}
