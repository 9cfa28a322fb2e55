/* Cluster benchmark: one aredis client against a real Redis Cluster (or,
 * for comparison, one server), for bench/cluster.sh.
 *
 *   bench_cluster --url URL --mode seq   -n N
 *   bench_cluster --url URL --mode set   -n N -w W
 *   bench_cluster --url URL --mode fault --fault kill|failover|migrate ...
 *   bench_cluster --url URL --mode mapwatch --replica H:P --slot S
 *   bench_cluster --keys FILE        (writes the key table and exits)
 *
 * Keys: one key per hash slot ("k:<n>", the first n whose slot is s), and
 * command i uses slot (i * 10007) mod 16384: every slot once per 16384
 * commands, consecutive commands on slots far apart, so every primary is
 * used alike and at the same time. The peers' programs read the same table
 * (--keys).
 *
 * seq: N sequential awaited GETs (each callback sends the next). set: N
 * SETs of 16-byte values with W in flight, each completion sending the
 * next. Both warm up first with --warm commands (default 16384: the slot
 * map, one connection per primary; a fixed count, so that two runs under
 * callgrind differ by the measured commands only), then time the
 * measured part: wall time, getrusage() user+sys CPU, and
 * the allocations aredis made per command (through its allocator hooks).
 * Every reply is checked; any error exits non-zero.
 *
 * fault: a stream of SETs, W (default 16) in flight, with a 5 s deadline
 * per command; after --warm-ms a helper thread injects the fault and
 * watches the replica's ROLE to time its promotion:
 *   kill      kill -9 of --pid (a primary); affected slots --affected LO-HI
 *   failover  CLUSTER FAILOVER sent to --replica; affected slots LO-HI
 *   migrate   slot --slot moves from --src to --dst the way redis-cli
 *             --cluster reshard moves it: IMPORTING on --dst, MIGRATING
 *             on --src, then batches of --batch keys (default 10, its
 *             --cluster-pipeline) each read with CLUSTER GETKEYSINSLOT and
 *             moved with one MIGRATE ... KEYS, back to back; then SETSLOT
 *             NODE on --dst, on --src, and on the other primaries. Half
 *             the window writes one of 4096 keys of that slot, the other
 *             half the other slots, each completion sending a command of
 *             its own half: commands waiting on the slot do not take the
 *             others' room (nor the reverse).
 * The stream goes on --after-ms past the fault (for migrate: past the end
 * of the migration), then stops sending and waits for every completion.
 * Counted: completions by outcome (errors by code, server errors by their
 * first word), commands never completed (lost) or completed twice
 * (duplicated), the longest gap between successes on the affected slots
 * and on the others, and for kill/failover the first success on an
 * affected slot of a command sent after the fault, relative to the
 * promotion. sent_before_ok_late counts the commands sent to an affected
 * slot before the fault that succeeded more than 50 ms after it (so on
 * another server than the one they were sent to).
 *
 * A gap of the affected slots is the fault's only when the rest of the
 * stream went on meanwhile: on a busy machine the client (or every
 * server) may not run for a while, and every slot waits alike. So more
 * figures: gap_affected_only_ms, of the gaps of the affected slots
 * during the fault (from the fault to 200 ms past the end of the
 * migration or the promotion), the longest less the longest gap of the
 * other slots inside it (the time the affected slots waited while the
 * others were served); gap_affected_only_before_ms, the same over the
 * --warm-ms before the fault (what one busy server costs without a
 * fault); and loop_stall_ms, the longest the client's loop ran late on a
 * 10 ms timer (the process kept off its CPU, or a callback that blocked).
 * For kill and failover the window is shared, so commands held for the
 * affected slots also slow the others: there gap_affected_only_ms
 * understates the fault.
 *
 * mapwatch: no traffic after the warm-up; the helper waits until a node
 * answers the client's next periodic slot map request (polling every
 * node's INFO commandstats), then sends CLUSTER FAILOVER to --replica at
 * once: the worst moment, the next refresh a whole period away. The
 * client's own slot map is read every millisecond until it names the
 * replica as the owner of --slot (for at most --watch-ms, default 30000;
 * t_map_ms=-1 when it never did); map_minus_refresh_ms is the time from
 * the refresh seen to the map naming it, at most the client's refresh
 * period plus one map request when the map follows the period.
 *
 * Each run prints one line of key=value pairs. A program, not a test:
 * nothing here asserts timing. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "aredis/aredis.h"
#include "bench.h"
#include "client/client_int.h"
#include "countalloc.h" /* the allocations aredis makes, by its hooks */
#include "node/node.h"
#include "topology/topology.h"

#define NSLOTS AREDIS_CLUSTER_SLOTS
#define VLEN 16
#define MIGRATE_KEYS 4096
#define MAX_BATCH 1000
#define MAX_RECORDS (4u << 20)

/* ------------------------------------------------------------------------
 * Options, clocks, failure
 * ------------------------------------------------------------------------ */

typedef struct config {
    const char *url, *mode, *fault, *keys_out;
    long n, w, warm;
    long warm_ms, after_ms, timeout_ms, watch_ms, batch;
    int pid;
    const char *replica, *src, *dst;
    int slot, aff_lo, aff_hi;
} config;

static config cfg = {.n = 100000,
                     .w = 1,
                     .warm = NSLOTS,
                     .warm_ms = 1000,
                     .after_ms = 6000,
                     .timeout_ms = 5000,
                     .watch_ms = 30000,
                     .batch = 10,
                     .slot = -1,
                     .aff_lo = -1,
                     .aff_hi = -1};

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt,
                                                                ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench_cluster: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* host:port into its parts (host copied into buf). */
static void split_addr(const char *s, char *buf, size_t cap, int *port)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || (size_t)(colon - s) >= cap)
        die("bad address '%s' (host:port)", s);
    memcpy(buf, s, (size_t)(colon - s));
    buf[colon - s] = '\0';
    *port = (int)strtol(colon + 1, NULL, 10);
}

/* ------------------------------------------------------------------------
 * Keys: one per slot
 * ------------------------------------------------------------------------ */

static char slot_key[NSLOTS][16];
static size_t slot_key_len[NSLOTS];

/* The slot of command i: every slot once per 16384 commands, in an order
 * that jumps around the key space (an odd step is a permutation modulo a
 * power of two), so that the commands in flight at any moment are spread
 * over every primary rather than queued on the one owning a range. */
static unsigned spread(long i)
{
    return (unsigned)(((unsigned long)i * 10007u) % NSLOTS);
}

static void make_keys(void)
{
    size_t filled = 0;
    for (unsigned long n = 0; filled < NSLOTS; n++) {
        char k[16];
        int len = snprintf(k, sizeof k, "k:%lu", n);
        unsigned s = aredis_cluster_keyslot(k, (size_t)len);
        if (slot_key_len[s] == 0) {
            memcpy(slot_key[s], k, (size_t)len + 1);
            slot_key_len[s] = (size_t)len;
            filled++;
        }
    }
}

/* ------------------------------------------------------------------------
 * seq and set
 * ------------------------------------------------------------------------ */

static aredis_loop *loop;
static aredis_client *cli;
static long issued, completed, target;
static const char value[VLEN + 1] = "vvvvvvvvvvvvvvvv";

static void on_reply(aredis_client *c, const aredis_reply *r, void *ud);

static void send_one(int set)
{
    unsigned s = spread(issued);
    const char *argv[3] = {set ? "SET" : "GET", slot_key[s], value};
    size_t lens[3] = {3, slot_key_len[s], VLEN};
    issued++;
    int e = aredis_commandv(cli, on_reply, (void *)(intptr_t)set, set ? 3 : 2,
                            argv, lens);
    if (e != 0)
        die("aredis_commandv: %s", aredis_strerror(e));
}

static void on_reply(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    int set = (int)(intptr_t)ud;
    if (r->type == AREDIS_REPLY_ERROR)
        die("%s: %.*s (%s)", set ? "SET" : "GET", (int)r->len, r->str,
            aredis_err_name(r->code));
    completed++;
    if (issued < target)
        send_one(set);
    else if (completed == target)
        aredis_loop_stop(loop);
}

/* Run n commands with w in flight to completion. */
static void run_batch(int set, long n, long w)
{
    issued = completed = 0;
    target = n;
    if (n <= 0)
        return;
    for (long i = 0; i < w && issued < target; i++)
        send_one(set);
    if (aredis_loop_run(loop) < 0)
        die("loop failed");
    if (completed != n)
        die("%ld of %ld completed", completed, n);
}

static void run_throughput(void)
{
    int set = strcmp(cfg.mode, "set") == 0;
    long w = set ? cfg.w : 1;
    /* Warm-up: the map, a connection per node, buffers at their size. */
    run_batch(set, cfg.warm, w);
    long a0 = countalloc_calls;
    double c0 = bench_cpu_s(), t0 = now_ms();
    run_batch(set, cfg.n, w);
    double secs = (now_ms() - t0) / 1e3, cpu = bench_cpu_s() - c0;
    printf("mode=%s w=%ld n=%ld ops_per_sec=%.0f cpu_s=%.4f "
           "cpu_us_per_op=%.3f cpu_s_per_million=%.4f allocs_per_op=%.4f\n",
           cfg.mode, w, cfg.n, (double)cfg.n / secs, cpu,
           cpu * 1e6 / (double)cfg.n, cpu * 1e6 / (double)cfg.n,
           (double)(countalloc_calls - a0) / (double)cfg.n);
}

/* ------------------------------------------------------------------------
 * The client's own slot map (mapwatch), read through the topology seam
 * ------------------------------------------------------------------------ */

/* Whether the client's own slot map names `want` (host:port) as the
 * primary of `slot`: 1 yes, 0 no, -1 when this client cannot say.
 *  - With aredis_client_nodes(): want is among the primaries of the map
 *    (one primary per shard, so the replica of the slot's shard).
 *  - Without it, the first cluster topology answers route() from its
 *    table alone, so a made-up GET for the slot tells the owner. A
 *    topology that may keep the command (AREDIS__HELD) cannot be asked
 *    that way. */
static int map_names(int slot, const char *want)
{
#if defined(AREDIS_NODES_PRIMARIES)
    (void)slot;
    aredis_node_addr a[64];
    size_t n = aredis_client_nodes(cli, AREDIS_NODES_PRIMARIES, a, 64);
    for (size_t i = 0; i < n && i < 64; i++) {
        char addr[300];
        snprintf(addr, sizeof addr, "%.255s:%d", a[i].host, a[i].port);
        if (a[i].primary && strcmp(addr, want) == 0)
            return 1;
    }
    return 0;
#elif defined(AREDIS__HELD)
    (void)slot;
    (void)want;
    return -1;
#else
    char buf[64], addr[300];
    snprintf(buf, sizeof buf, "*2\r\n$3\r\nGET\r\n$%zu\r\n%s\r\n",
             slot_key_len[slot], slot_key[slot]);
    aredis__cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    aredis__topology *t = cli->topo;
    aredis__node *n = t->vt->route(t, &cmd, buf);
    if (n == NULL)
        return 0;
    snprintf(addr, sizeof addr, "%s:%d", n->host, n->port);
    return strcmp(addr, want) == 0;
#endif
}

/* ------------------------------------------------------------------------
 * Faults
 * ------------------------------------------------------------------------ */

typedef struct record {
    float t_sent, t_done; /* ms since the stream started */
    uint8_t done, affected;
    int16_t code;
} record;

enum { CLS_OTHER, CLS_AFFECTED };

static record *recs;
static long nrecs, inflight;
static double t_start, t_fault = -1, t_promoted = -1, t_mig_end = -1;
static double t_first_ok_aff = -1;
static volatile int fault_done; /* the helper thread finished */
static int stopping;
static double last_ok[2] = {-1, -1}, max_gap[2], max_gap_at[2];
static long n_ok, n_err[2];
static long mig_counter;

/* Failures by error name ("EUNKNOWN", "ESERVER:MOVED"). */
#define MAX_KINDS 32
static char kind_name[MAX_KINDS][48];
static long kind_count[MAX_KINDS], kind_count_aff[MAX_KINDS];

static void count_failure(const aredis_reply *r, int affected)
{
    char name[48];
    if (r->code == AREDIS_ESERVER) {
        size_t w = 0;
        while (w < r->len && w < 24 && r->str[w] != ' ')
            w++;
        snprintf(name, sizeof name, "ESERVER:%.*s", (int)w, r->str);
    } else {
        snprintf(name, sizeof name, "%s", aredis_err_name(r->code));
    }
    for (int i = 0; i < MAX_KINDS; i++) {
        if (kind_name[i][0] == '\0')
            snprintf(kind_name[i], sizeof kind_name[i], "%s", name);
        if (strcmp(kind_name[i], name) == 0) {
            kind_count[i]++;
            kind_count_aff[i] += affected;
            return;
        }
    }
}

static int is_affected(unsigned slot)
{
    if (strcmp(cfg.fault, "migrate") == 0)
        return (int)slot == cfg.slot;
    return (int)slot >= cfg.aff_lo && (int)slot <= cfg.aff_hi;
}

static void stream_send(int cls);

static void on_stream(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    record *rec = &recs[(intptr_t)ud];
    double t = now_ms() - t_start;
    rec->done++;
    rec->t_done = (float)t;
    inflight--;
    int cls = rec->affected ? CLS_AFFECTED : CLS_OTHER;
    if (r->type == AREDIS_REPLY_ERROR) {
        rec->code = (int16_t)r->code;
        n_err[cls]++;
        count_failure(r, rec->affected);
    } else {
        n_ok++;
        if (last_ok[cls] >= 0 && t - last_ok[cls] > max_gap[cls])
            max_gap[cls] = t - last_ok[cls], max_gap_at[cls] = t;
        last_ok[cls] = t;
        if (cls == CLS_AFFECTED && t_fault >= 0 && t_first_ok_aff < 0 &&
            rec->t_sent >= t_fault)
            t_first_ok_aff = t;
    }
    if (rec->done > 1)
        return; /* counted as duplicated at the end */
    if (!stopping)
        stream_send(cfg.slot >= 0 ? cls : -1);
    if (stopping && inflight == 0)
        aredis_loop_stop(loop);
}

/* Send the next command of the stream: for migrate, of class cls (the
 * migrating slot, or the others); otherwise (cls < 0) the next slot of
 * the spread order, whatever its class. */
static void stream_send(int cls)
{
    static long n_other;
    if ((unsigned long)nrecs >= MAX_RECORDS) {
        stopping = 1;
        return;
    }
    long i = nrecs++;
    record *rec = &recs[i];
    char kbuf[48];
    const char *key;
    size_t klen;
    unsigned slot;
    if (cls == CLS_AFFECTED) {
        /* The migrating slot: one of MIGRATE_KEYS keys with its tag. */
        slot = (unsigned)cfg.slot;
        klen = (size_t)snprintf(kbuf, sizeof kbuf, "{%s}:%ld", slot_key[slot],
                                mig_counter++ % MIGRATE_KEYS);
        key = kbuf;
    } else {
        slot = spread(cls < 0 ? i : n_other++);
        if (cls >= 0 && (int)slot == cfg.slot)
            slot = spread(n_other++);
        key = slot_key[slot];
        klen = slot_key_len[slot];
    }
    rec->t_sent = (float)(now_ms() - t_start);
    rec->affected = (uint8_t)is_affected(slot);
    const char *argv[3] = {"SET", key, value};
    size_t lens[3] = {3, klen, VLEN};
    aredis_cmd_opts o = {.timeout_ms = cfg.timeout_ms};
    inflight++;
    int e = aredis_commandv_opts(cli, &o, on_stream, (void *)(intptr_t)i, 3,
                                 argv, lens);
    if (e != 0)
        die("aredis_commandv_opts: %s", aredis_strerror(e));
}

/* The helper thread's blocking connections. */
static aredis_sync *sync_to(const char *addr)
{
    char host[128];
    int port;
    split_addr(addr, host, sizeof host, &port);
    aredis_status st;
    aredis_sync *s = aredis_sync_connect_host(host, port, &st);
    if (s == NULL)
        die("connect %s: %s", addr, st.msg);
    return s;
}

/* Run a command, die on an error reply; returns the owned reply. */
static aredis_reply *must(const char *what, aredis_reply *r)
{
    if (r == NULL)
        die("%s: out of memory", what);
    if (r->type == AREDIS_REPLY_ERROR)
        die("%s: %.*s", what, (int)r->len, r->str);
    return r;
}

static int is_master(aredis_sync *s)
{
    aredis_reply *r = aredis_sync_command(s, "ROLE");
    int yes = r != NULL && r->type == AREDIS_REPLY_ARRAY && r->len > 0 &&
              r->element[0].len == 6 &&
              memcmp(r->element[0].str, "master", 6) == 0;
    aredis_reply_free(r);
    return yes;
}

static void node_id(aredis_sync *s, char *out, size_t cap)
{
    aredis_reply *r =
        must("CLUSTER MYID", aredis_sync_command(s, "CLUSTER MYID"));
    snprintf(out, cap, "%.*s", (int)r->len, r->str);
    aredis_reply_free(r);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Wait (polling ROLE every ms) until the replica is a primary. */
static void watch_promotion(aredis_sync *rep)
{
    double limit = now_ms() + 30000;
    while (!is_master(rep)) {
        if (now_ms() > limit)
            die("the replica was not promoted within 30 s");
        sleep_ms(1);
    }
    t_promoted = now_ms() - t_start;
}

/* SETSLOT NODE for the slot on the primary at addr. */
static void setslot_node(const char *addr, int slot, const char *id)
{
    aredis_sync *n = sync_to(addr);
    aredis_reply_free(
        must("SETSLOT NODE",
             aredis_sync_command(n, "CLUSTER SETSLOT %d NODE %s", slot, id)));
    aredis_sync_free(n);
}

/* The addresses of the nodes (CLUSTER NODES of s; primaries only when
 * primaries is set) other than the two ids, as "host:port" into out. */
static size_t node_addrs(aredis_sync *s, int primaries, const char *id1,
                         const char *id2, char out[][160], size_t cap)
{
    aredis_reply *r =
        must("CLUSTER NODES", aredis_sync_command(s, "CLUSTER NODES"));
    size_t k = 0;
    for (const char *line = r->str; line != NULL && *line != '\0' && k < cap;) {
        const char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        char id[64], addr[200], flags[200];
        char buf[512];
        snprintf(buf, sizeof buf, "%.*s", (int)(len < 511 ? len : 511), line);
        if (sscanf(buf, "%63s %199s %199s", id, addr, flags) == 3 &&
            (!primaries || strstr(flags, "master") != NULL) &&
            strstr(flags, "fail") == NULL && strcmp(id, id1) != 0 &&
            strcmp(id, id2) != 0) {
            addr[strcspn(addr, "@,")] = '\0';
            snprintf(out[k++], 160, "%.159s", addr);
        }
        line = end != NULL ? end + 1 : NULL;
    }
    aredis_reply_free(r);
    return k;
}

/* The migration as redis-cli --cluster reshard does it (see the top). */
static void migrate_slot(void)
{
    aredis_sync *src = sync_to(cfg.src), *dst = sync_to(cfg.dst);
    char src_id[64], dst_id[64], host[128], portbuf[16];
    int port;
    node_id(src, src_id, sizeof src_id);
    node_id(dst, dst_id, sizeof dst_id);
    split_addr(cfg.dst, host, sizeof host, &port);
    snprintf(portbuf, sizeof portbuf, "%d", port);
    char others[16][160];
    size_t nothers = node_addrs(src, 1, src_id, dst_id, others, 16);
    int s = cfg.slot;
    aredis_reply_free(
        must("SETSLOT IMPORTING",
             aredis_sync_command(dst, "CLUSTER SETSLOT %d IMPORTING %s", s,
                                 src_id)));
    aredis_reply_free(
        must("SETSLOT MIGRATING",
             aredis_sync_command(src, "CLUSTER SETSLOT %d MIGRATING %s", s,
                                 dst_id)));
    t_fault = now_ms() - t_start;
    static const char *argv[7 + MAX_BATCH];
    static size_t lens[7 + MAX_BATCH];
    const char *head[] = {"MIGRATE", host, portbuf, "", "0", "60000", "KEYS"};
    for (int i = 0; i < 7; i++) {
        argv[i] = head[i];
        lens[i] = strlen(head[i]);
    }
    for (;;) {
        aredis_reply *keys =
            must("GETKEYSINSLOT",
                 aredis_sync_command(src, "CLUSTER GETKEYSINSLOT %d %ld", s,
                                     cfg.batch));
        if (keys->len == 0) {
            aredis_reply_free(keys);
            break;
        }
        size_t argc = 7;
        for (size_t i = 0; i < keys->len && i < MAX_BATCH; i++) {
            argv[argc] = keys->element[i].str;
            lens[argc++] = keys->element[i].len;
        }
        aredis_reply_free(
            must("MIGRATE", aredis_sync_commandv(src, (int)argc, argv, lens)));
        aredis_reply_free(keys);
    }
    /* The new owner first (it tells the cluster), then the old one, then
     * the other primaries, so that none of them redirects to the old. */
    aredis_reply_free(must(
        "SETSLOT NODE",
        aredis_sync_command(dst, "CLUSTER SETSLOT %d NODE %s", s, dst_id)));
    aredis_reply_free(must(
        "SETSLOT NODE",
        aredis_sync_command(src, "CLUSTER SETSLOT %d NODE %s", s, dst_id)));
    for (size_t i = 0; i < nothers; i++)
        setslot_node(others[i], s, dst_id);
    t_mig_end = now_ms() - t_start;
    aredis_sync_free(src);
    aredis_sync_free(dst);
}

/* mapwatch: when the client's slot map request was seen (ms since
 * t_start), and whether to wait for one before the failover. */
static double t_refresh_seen = -1;
static int failover_after_refresh;

/* The slot map requests (CLUSTER SHARDS, SLOTS, NODES) the nodes have
 * answered, in all. */
static long long map_requests(aredis_sync **n, size_t count)
{
    static const char *const fields[] = {
        "cmdstat_cluster|shards:calls=", "cmdstat_cluster|slots:calls=",
        "cmdstat_cluster|nodes:calls="};
    long long sum = 0;
    for (size_t i = 0; i < count; i++) {
        aredis_reply *r =
            must("INFO", aredis_sync_command(n[i], "INFO commandstats"));
        for (size_t f = 0; f < 3; f++) {
            const char *at = strstr(r->str, fields[f]);
            if (at != NULL)
                sum += strtoll(at + strlen(fields[f]), NULL, 10);
        }
        aredis_reply_free(r);
    }
    return sum;
}

/* Wait until a node answers a slot map request (the client's periodic
 * refresh: nothing else asks), so that the failover comes right after
 * one and the next is a whole period away. The bench's own CLUSTER NODES
 * is asked before the count starts. */
static void wait_for_refresh(void)
{
    aredis_sync *rep = sync_to(cfg.replica);
    char addrs[16][160];
    size_t count = node_addrs(rep, 0, "", "", addrs, 16);
    aredis_sync_free(rep);
    aredis_sync *n[16];
    for (size_t i = 0; i < count; i++)
        n[i] = sync_to(addrs[i]);
    long long before = map_requests(n, count);
    double limit = now_ms() + 30000;
    while (map_requests(n, count) == before) {
        if (now_ms() > limit)
            die("no slot map request from the client within 30 s");
        sleep_ms(2);
    }
    t_refresh_seen = now_ms() - t_start;
    for (size_t i = 0; i < count; i++)
        aredis_sync_free(n[i]);
}

static void *fault_thread(void *arg)
{
    (void)arg;
    sleep_ms(cfg.warm_ms);
    if (failover_after_refresh)
        wait_for_refresh();
    if (strcmp(cfg.fault, "migrate") == 0) {
        migrate_slot();
    } else {
        aredis_sync *rep = sync_to(cfg.replica);
        if (strcmp(cfg.fault, "kill") == 0) {
            t_fault = now_ms() - t_start;
            if (kill(cfg.pid, SIGKILL) != 0)
                die("kill %d: %s", cfg.pid, strerror(errno));
        } else {
            t_fault = now_ms() - t_start;
            aredis_reply_free(
                must("CLUSTER FAILOVER",
                     aredis_sync_command(rep, "CLUSTER FAILOVER")));
        }
        watch_promotion(rep);
        aredis_sync_free(rep);
    }
    double end = (t_mig_end >= 0 ? t_mig_end : t_fault) + (double)cfg.after_ms;
    while (now_ms() - t_start < end)
        sleep_ms(10);
    fault_done = 1;
    return NULL;
}

static aredis_timer *tick;
static double t_stopped; /* when the stream stopped sending */
static double tick_due = -1, loop_stall, loop_stall_at;

/* From the loop, every 10 ms: once the helper is done, stop sending and
 * let the loop end when the last command has completed (or after 15 s:
 * whatever is still missing then is lost). */
static void on_tick(void *arg)
{
    static double drain_until = -1;
    (void)arg;
    double t = now_ms() - t_start;
    if (tick_due >= 0 && t - tick_due > loop_stall)
        loop_stall = t - tick_due, loop_stall_at = t;
    tick_due = t + 10;
    if (fault_done && !stopping) {
        stopping = 1;
        t_stopped = now_ms() - t_start;
        drain_until = now_ms() + 15000;
    }
    if (stopping && (inflight == 0 || now_ms() > drain_until)) {
        aredis_loop_stop(loop);
        return;
    }
    aredis_timer_start(tick, 10);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The times of the successes of class cls, sorted; their count in *n. */
static double *ok_times(int cls, long *n)
{
    double *t = malloc(((size_t)nrecs + 1) * sizeof *t);
    if (t == NULL)
        die("out of memory");
    *n = 0;
    for (long i = 0; i < nrecs; i++)
        if (recs[i].done >= 1 && recs[i].code == 0 &&
            recs[i].affected == (cls == CLS_AFFECTED))
            t[(*n)++] = recs[i].t_done;
    qsort(t, (size_t)*n, sizeof *t, cmp_double);
    return t;
}

/* Of the gaps between successes on the affected slots that overlap
 * [from, to], the longest less the longest gap of the others inside it
 * (a gap runs to the end of the stream, t_stop, at most); *at: when it
 * ended. */
static double gap_affected_only(double from, double to, double t_stop,
                                double *at)
{
    long na, no;
    double *a = ok_times(CLS_AFFECTED, &na), *o = ok_times(CLS_OTHER, &no);
    double best = 0;
    *at = -1;
    long j = 0;
    for (long i = 1; i <= na; i++) {
        double lo = a[i - 1], hi = i < na ? a[i] : t_stop;
        if (hi < from || lo > to)
            continue;
        while (j < no && o[j] < lo)
            j++;
        double prev = lo, inner = 0;
        long k = j;
        for (; k < no && o[k] <= hi; k++) {
            if (o[k] - prev > inner)
                inner = o[k] - prev;
            prev = o[k];
        }
        if (hi - prev > inner)
            inner = hi - prev;
        if (hi - lo - inner > best)
            best = hi - lo - inner, *at = hi;
    }
    free(a);
    free(o);
    return best;
}

static void report_fault(void)
{
    /* A class without a success since some time: its gap runs to the end
     * of the stream. */
    double t_stop = t_stopped;
    for (int cls = 0; cls < 2; cls++)
        if (last_ok[cls] >= 0 && t_stop - last_ok[cls] > max_gap[cls])
            max_gap[cls] = t_stop - last_ok[cls], max_gap_at[cls] = t_stop;
    long ok = 0, failed = 0, lost = 0, dup = 0, late = 0;
    for (long i = 0; i < nrecs; i++) {
        /* Sent to an affected slot before the fault and answered well
         * after it: by another server than the one it was written to. */
        if (recs[i].affected && t_fault >= 0 && recs[i].t_sent < t_fault &&
            recs[i].t_done > t_fault + 50 && recs[i].done >= 1 &&
            recs[i].code == 0)
            late++;
        if (recs[i].done == 0)
            lost++;
        else if (recs[i].done > 1)
            dup++;
        if (recs[i].done >= 1 && recs[i].code == 0)
            ok++;
        else if (recs[i].done >= 1)
            failed++;
    }
    /* The fault's window: from the fault to 200 ms past the end of the
     * migration or the promotion; and as many ms before the fault as the
     * warm-up gives, for the same figure without a fault. */
    double t_end = t_mig_end >= 0    ? t_mig_end
                   : t_promoted >= 0 ? t_promoted
                                     : t_fault;
    double only_at, before_at;
    double only = gap_affected_only(t_fault, t_end + 200, t_stop, &only_at);
    double before = gap_affected_only(t_fault - (double)cfg.warm_ms, t_fault,
                                      t_stop, &before_at);
    char kinds[1024] = "";
    size_t used = 0;
    for (int i = 0; i < MAX_KINDS && kind_name[i][0] != '\0'; i++) {
        int m = snprintf(kinds + used, sizeof kinds - used, "%s%s:%ld(%ld)",
                         used ? "," : "", kind_name[i], kind_count[i],
                         kind_count_aff[i]);
        if (m < 0 || (size_t)m >= sizeof kinds - used)
            break;
        used += (size_t)m;
    }
    printf("mode=fault fault=%s sent=%ld ok=%ld failed=%ld lost=%ld "
           "duplicated=%ld sent_before_ok_late=%ld failed_affected=%ld "
           "failed_other=%ld "
           "failures=%s gap_affected_ms=%.1f gap_affected_end_ms=%.1f "
           "gap_other_ms=%.1f gap_other_end_ms=%.1f "
           "gap_affected_only_ms=%.1f gap_affected_only_end_ms=%.1f "
           "gap_affected_only_before_ms=%.1f "
           "loop_stall_ms=%.1f loop_stall_end_ms=%.1f "
           "t_fault_ms=%.1f t_promoted_ms=%.1f t_migration_done_ms=%.1f "
           "first_ok_affected_ms=%.1f first_ok_minus_promotion_ms=%.1f\n",
           cfg.fault, nrecs, ok, failed, lost, dup, late, n_err[CLS_AFFECTED],
           n_err[CLS_OTHER], used ? kinds : "none", max_gap[CLS_AFFECTED],
           max_gap_at[CLS_AFFECTED] - t_fault, max_gap[CLS_OTHER],
           max_gap_at[CLS_OTHER] - t_fault, only,
           only_at >= 0 ? only_at - t_fault : -1.0, before, loop_stall,
           loop_stall_at - t_fault, t_fault,
           t_promoted >= 0 ? t_promoted - t_fault : -1.0,
           t_mig_end >= 0 ? t_mig_end - t_fault : -1.0,
           t_first_ok_aff >= 0 ? t_first_ok_aff - t_fault : -1.0,
           t_first_ok_aff >= 0 && t_promoted >= 0 ? t_first_ok_aff - t_promoted
                                                  : -1.0);
}

static void run_fault(void)
{
    if (cfg.fault == NULL)
        die("--fault kill|failover|migrate");
    if (strcmp(cfg.fault, "migrate") == 0) {
        if (cfg.slot < 0 || cfg.src == NULL || cfg.dst == NULL)
            die("migrate needs --slot, --src and --dst");
        if (cfg.batch < 1 || cfg.batch > MAX_BATCH)
            die("--batch 1..%d", MAX_BATCH);
    } else if (cfg.replica == NULL || cfg.aff_lo < 0 ||
               (strcmp(cfg.fault, "kill") == 0 && cfg.pid <= 0)) {
        die("kill/failover need --replica, --affected (and --pid to kill)");
    } else {
        cfg.slot = -1;
    }
    recs = calloc(MAX_RECORDS, sizeof *recs);
    tick = aredis_timer_new(loop, on_tick, NULL);
    if (recs == NULL || tick == NULL)
        die("out of memory");
    long w = cfg.w > 1 ? cfg.w : 16;
    /* Warm-up outside the stream: the map and the connections. */
    run_batch(1, NSLOTS, w);
    t_start = now_ms();
    pthread_t th;
    if (pthread_create(&th, NULL, fault_thread, NULL) != 0)
        die("pthread_create");
    for (long i = 0; i < w; i++)
        stream_send(cfg.slot >= 0 ? (int)(i & 1) : -1);
    tick_due = now_ms() - t_start + 10;
    aredis_timer_start(tick, 10);
    if (aredis_loop_run(loop) < 0)
        die("loop failed");
    pthread_join(th, NULL);
    aredis_timer_free(tick);
    report_fault();
}

/* mapwatch: from the loop, every ms, the client's owner of cfg.slot. */
static char want_owner[160];
static double t_map = -1;

static void on_watch(void *arg)
{
    (void)arg;
    if (t_fault >= 0 && map_names(cfg.slot, want_owner) == 1) {
        t_map = now_ms() - t_start;
        aredis_loop_stop(loop);
        return;
    }
    if (now_ms() - t_start > (double)cfg.watch_ms) {
        aredis_loop_stop(loop);
        return;
    }
    aredis_timer_start(tick, 1);
}

static void run_mapwatch(void)
{
    if (cfg.replica == NULL || cfg.slot < 0)
        die("mapwatch needs --replica and --slot");
    snprintf(want_owner, sizeof want_owner, "%s", cfg.replica);
    tick = aredis_timer_new(loop, on_watch, NULL);
    if (tick == NULL)
        die("out of memory");
    run_batch(0, NSLOTS, 16); /* the map and the connections */
    int before = map_names(cfg.slot, want_owner);
    if (before < 0) {
        printf("mode=mapwatch supported=0 t_promoted_ms=-1 t_map_ms=-1 "
               "map_minus_promotion_ms=-1\n");
        return;
    }
    if (before == 1)
        die("the map names %s as a primary before the failover", want_owner);
    cfg.fault = "failover";
    cfg.after_ms = 0;
    failover_after_refresh = 1;
    t_start = now_ms();
    pthread_t th;
    if (pthread_create(&th, NULL, fault_thread, NULL) != 0)
        die("pthread_create");
    aredis_timer_start(tick, 1);
    if (aredis_loop_run(loop) < 0)
        die("loop failed");
    pthread_join(th, NULL);
    aredis_timer_free(tick);
    printf("mode=mapwatch supported=1 slot=%d new_primary=%s "
           "refresh_period_ms=%lld t_refresh_seen_ms=%.1f t_promoted_ms=%.1f "
           "t_map_ms=%.1f map_minus_promotion_ms=%.1f "
           "map_minus_refresh_ms=%.1f\n",
           cfg.slot, want_owner, (long long)cli->cfg.more->cluster_refresh_ms,
           t_refresh_seen - t_fault, t_promoted - t_fault,
           t_map >= 0 ? t_map - t_fault : -1.0,
           t_map >= 0 ? t_map - t_promoted : -1.0,
           t_map >= 0 ? t_map - t_refresh_seen : -1.0);
}

/* ------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (strcmp(a, name) == 0 && v != NULL && (i++, 1))
        if (OPT("--url"))
            cfg.url = v;
        else if (OPT("--mode"))
            cfg.mode = v;
        else if (OPT("--fault"))
            cfg.fault = v;
        else if (OPT("--keys"))
            cfg.keys_out = v;
        else if (OPT("-n"))
            cfg.n = strtol(v, NULL, 10);
        else if (OPT("--warm"))
            cfg.warm = strtol(v, NULL, 10);
        else if (OPT("-w"))
            cfg.w = strtol(v, NULL, 10);
        else if (OPT("--warm-ms"))
            cfg.warm_ms = strtol(v, NULL, 10);
        else if (OPT("--after-ms"))
            cfg.after_ms = strtol(v, NULL, 10);
        else if (OPT("--watch-ms"))
            cfg.watch_ms = strtol(v, NULL, 10);
        else if (OPT("--batch"))
            cfg.batch = strtol(v, NULL, 10);
        else if (OPT("--timeout-ms"))
            cfg.timeout_ms = strtol(v, NULL, 10);
        else if (OPT("--pid"))
            cfg.pid = (int)strtol(v, NULL, 10);
        else if (OPT("--replica"))
            cfg.replica = v;
        else if (OPT("--src"))
            cfg.src = v;
        else if (OPT("--dst"))
            cfg.dst = v;
        else if (OPT("--slot"))
            cfg.slot = (int)strtol(v, NULL, 10);
        else if (OPT("--affected")) {
            char *end;
            cfg.aff_lo = (int)strtol(v, &end, 10);
            cfg.aff_hi =
                *end == '-' ? (int)strtol(end + 1, NULL, 10) : cfg.aff_lo;
        } else
            die("unknown or incomplete option '%s'", a);
#undef OPT
    }
    make_keys();
    if (cfg.keys_out != NULL) {
        FILE *f = fopen(cfg.keys_out, "w");
        if (f == NULL)
            die("%s: %s", cfg.keys_out, strerror(errno));
        for (int s = 0; s < NSLOTS; s++)
            fprintf(f, "%s\n", slot_key[s]);
        fclose(f);
        return 0;
    }
    if (cfg.url == NULL || cfg.mode == NULL)
        die("usage: bench_cluster --url URL --mode seq|set|fault|mapwatch");
    aredis_set_allocator(&countalloc_hooks);
    loop = aredis_loop_new();
    aredis_status st;
    cli = aredis_client_new(loop, &(aredis_options){.url = cfg.url}, &st);
    if (loop == NULL || cli == NULL)
        die("client: %s", st.msg);
    if (strcmp(cfg.mode, "seq") == 0 || strcmp(cfg.mode, "set") == 0)
        run_throughput();
    else if (strcmp(cfg.mode, "fault") == 0)
        run_fault();
    else if (strcmp(cfg.mode, "mapwatch") == 0)
        run_mapwatch();
    else
        die("unknown mode '%s'", cfg.mode);
    aredis_client_free(cli);
    aredis_loop_free(loop);
    free(recs);
    return 0;
}
