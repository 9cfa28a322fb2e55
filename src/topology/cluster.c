/* The Redis Cluster topology (topology layer): a slot table over the
 * cluster's shards, kept up to date, and the redirects and failures only a
 * cluster has, followed without the caller seeing them.
 *
 *  - Nodes: one aredis__node per server met (the seeds, every node of the
 *    slot map, MOVED/ASK targets). role is AREDIS__ROLE_MASTER or _REPLICA
 *    as the latest map says; a node the map no longer lists is dropped:
 *    its connections are closed (what the shared one carried follows the
 *    retry policy: commands never written, or safe to send again, go to
 *    the slot's new owner; the others fail AREDIS_EUNKNOWN, once; idle
 *    exclusive ones close, busy or lent ones finish), its role becomes
 *    AREDIS__ROLE_UNKNOWN, and it is never routed to again; a pub/sub
 *    connection on it is closed as lost, so its subscriptions move to
 *    another node. The record is freed once nothing points into it (no
 *    command queued, in flight or owed a completion on it, no exclusive
 *    connection, lent or not, no acquire waiting, no map request), checked
 *    at each maintenance; until then next() still walks it.
 *  - Map: CLUSTER SHARDS, falling back to CLUSTER SLOTS then CLUSTER
 *    NODES when a server does not know the first, asked of one node at a
 *    time (a few in turn when one cannot answer, preferring nodes whose
 *    connection is up). An endpoint the server does not know is the host
 *    of the node that answered. The table slot -> shard (primary and
 *    replicas) is rebuilt from each answer and swapped in whole.
 *    The first map is fetched when the client is created (eager) or with
 *    the first command (cluster_lazy); until it arrives, commands that
 *    name a key are held, not sent to an arbitrary node, and so is the
 *    client's wait for a fan-out over nodes (hold_for_map), answered the
 *    moment the map is applied. Keyless ones go to the first seed not
 *    known to be down.
 *  - Refresh: after a MOVED (the slot is patched at once; one refresh,
 *    throttled to REFRESH_MIN_MS and coalesced across many MOVEDs), a node
 *    lost, a CLUSTERDOWN, and every cluster_refresh_ms. While something is
 *    wrong (a primary unreachable, slots not served, no map) it refreshes
 *    every DEGRADED_MS while commands wait for it, every DEGRADED_IDLE_MS
 *    otherwise.
 *  - Routing: the command's first key (the command table's key positions,
 *    EVAL's key count, XREAD's STREAMS) gives the slot; slot -> shard is
 *    one array read. The client asks before encoding, with the caller's
 *    arguments: a key at a fixed place is read from them, so the command
 *    is encoded straight into its node's connection; any other asks for
 *    the bytes (AREDIS__NEEDS_BYTES). A command the table does not know (a
 * module's, a newer server's) is asked about once per client (COMMAND INFO,
 * from the loop; "container|sub" for a command with subcommands) while the
 *    commands naming it are held; its key specs (first/last/step on a
 *    server without them) then place its first key. The answers are kept
 *    for LEARN_MAX names (an answered one makes room). A command whose
 *    keys they cannot place (no key spec the client follows, a module's
 *    own key finding), or that the server does not know either, goes
 *    where a keyless one goes: the server answers MOVED (followed) or its
 *    own error. Read-only commands (the command table) go where
 *    cluster_read_from says: the primary, the replicas in turn (the
 *    primary when none is up), all of them in turn, or the one with the
 *    lowest PING time (measured at each refresh). Replica connections
 *    send READONLY in their handshake, replayed on every reconnect.
 *  - MOVED: the slot is patched, the command sent to the new owner (its
 *    bytes are kept for that). ASK: ASKING then the command on the
 *    target's connection (for a blocking command, the exclusive one the
 *    pool gives it), once; the map is not patched. At most
 *    cluster_max_redirects redirects, then an error naming the last one.
 *  - TRYAGAIN, CLUSTERDOWN, and a command for a node whose connection is
 *    lost: the command is held and sent again after a capped backoff
 *    (RETRY_FIRST_MS doubling up to RETRY_MAX_MS), within its deadline
 *    (or RETRY_BUDGET retries without one); when the map changes, held
 *    commands go at once. TRYAGAIN backs off less (TRYAGAIN_FIRST_MS
 *    doubling up to TRYAGAIN_MAX_MS): it says a migration has split the
 *    command's keys, which ends when the next MIGRATE moves the rest or
 *    the slot changes hands, a few milliseconds apart, and a long wait
 *    would only add to the gap. Giving up completes it with the cause (the
 *    server's error or the connection's, and the node).
 *
 * Held commands carry AREDIS__CMD_PENDING (their deadline takes them back
 * through unwait()). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aredis/cluster.h"
#include "aredis/error.h"
#include "loop/loop.h"
#include "topology/keyslot.h"
#include "topology/slotmap.h"
#include "topology/topology.h"
#include "transport/transport.h"
#include "util/alloc.h"
#include "util/cmdtable.h"
#include "util/inline.h"
#include "util/msg.h"

/* Refreshes: at most one per REFRESH_MIN_MS; while something is wrong, one
 * every DEGRADED_MS when commands are held, DEGRADED_IDLE_MS when none
 * is; a node that has not answered the map request in
 * FETCH_TIMEOUT_MS is given up for the next; a round asks FETCH_TRIES
 * nodes at most. */
#define REFRESH_MIN_MS 100
#define DEGRADED_MS 100
#define DEGRADED_IDLE_MS 1000
#define FETCH_TIMEOUT_MS 1000
#define FETCH_TRIES 3
/* Retries of a held command: the first after RETRY_FIRST_MS, doubling up
 * to RETRY_MAX_MS; without a deadline, RETRY_BUDGET of them at most. After
 * a TRYAGAIN: TRYAGAIN_FIRST_MS doubling up to TRYAGAIN_MAX_MS, and as
 * long a wait in all without a deadline (TRYAGAIN_BUDGET retries). */
#define RETRY_FIRST_MS 20
#define RETRY_MAX_MS 200
#define RETRY_BUDGET 40
#define TRYAGAIN_FIRST_MS 5
#define TRYAGAIN_MAX_MS 50
#define TRYAGAIN_BUDGET 160
/* Commands the built-in table does not know: the names whose key specs a
 * client keeps (the oldest answered one makes room), the longest name
 * asked about, the key specs kept per name, and the tries at asking before
 * a name is taken as keyless. */
#define LEARN_MAX 64
#define LEARN_NAME 64
#define LEARN_SPECS 4
#define LEARN_TRIES 3
/* Replicas of one shard the table keeps. */
#define MAX_REPLICAS 8
/* Shards a table may grow to by MOVED patches before a refresh. */
#define MAX_SHARDS 4096

typedef struct cnode {
    aredis__node node;
    struct cnode *next;
    int in_map;     /* listed by the latest map */
    int dropped;    /* left the cluster: closed, never routed to */
    int closed;     /* its connection was closed after the drop */
    int lost;       /* its shared connection was lost and is not back */
    int failed;     /* the map says it is failed or loading */
    int serving;    /* the primary of a shard that serves slots */
    int64_t rtt_us; /* READ_NEAREST: smoothed PING time; 0 unknown */
} cnode;

typedef struct cshard {
    cnode *primary;
    cnode *rep[MAX_REPLICAS];
    unsigned nrep;
    unsigned turn; /* replica reads in turn */
} cshard;

/* What a server said about a command the table does not know. */
enum {
    LEARN_UNASKED, /* to be asked when a command needs it */
    LEARN_WANTED,  /* to be asked from the loop; commands wait */
    LEARN_ASKING,  /* COMMAND INFO in flight; commands wait */
    LEARN_KNOWN,   /* specs below (none: keyless) */
};

typedef struct learnt {
    char name[LEARN_NAME]; /* lower case: "name" or "container|sub" */
    uint8_t state;         /* LEARN_* */
    uint8_t tries;         /* failed asks */
    uint8_t readonly;      /* the server's "readonly" flag */
    uint8_t container;     /* has subcommands: "name|sub" are learnt */
    uint8_t nspecs;
    unsigned gen;  /* the ask in flight */
    int64_t asked; /* when (ms) */
    aredis__keyspec specs[LEARN_SPECS];
} learnt;

typedef struct cluster {
    aredis__topology base;
    cnode *nodes; /* every node met, the seeds first */

    cshard *shards;
    size_t nshards, cap;
    uint16_t slot[AREDIS_CLUSTER_SLOTS]; /* shard index or SLOT_NONE */
    size_t covered;                      /* slots served */
    int have_map;

    /* Held commands (AREDIS__CMD_PENDING), oldest first; wait_until is
     * when each goes again, 0: with the next map. */
    aredis__held held;

    void *timer;
    int64_t timer_at;
    aredis__defer kick; /* maintenance and refresh, from the loop */
    int started;        /* the first map was asked for */
    int replica_reads;  /* cluster_read_from is not AREDIS_READ_PRIMARY */

    /* The map request in flight (at most one). */
    int fetching;
    cnode *fetch_node; /* the node asked */
    unsigned fetch_gen;
    int64_t fetch_started;
    int fetch_tries; /* nodes asked in this round */
    int source;      /* 0 SHARDS, 1 SLOTS, 2 NODES */
    unsigned turn;   /* the node asked next */
    int want_refresh;
    int64_t last_fetch;
    int64_t next_periodic;
    int64_t next_probe;
    /* Why the latest map request failed (the commands waiting for a first
     * map say it when they give up). */
    int why_code;
    char why[200];

    /* Commands the built-in table does not know (LEARN_MAX, allocated at
     * the first one). */
    learnt *learn;
    size_t nlearn;
    size_t learn_next; /* the entry replaced next when full */
} cluster;

/* One map request or latency probe in flight; freed by its callback. */
typedef struct request {
    cluster *cl;
    cnode *n;
    unsigned gen;
    int source;
    int64_t t0_us;
} request;

static const char readonly_bytes[] = "*1\r\n$8\r\nREADONLY\r\n";
static const aredis__conn_step readonly_step = {"READONLY", readonly_bytes,
                                                sizeof readonly_bytes - 1};

static const aredis__topology_vt cluster_vt;
static void request_refresh(cluster *cl);
static void arm(cluster *cl);
static void kick(cluster *cl);

static cluster *of(aredis__topology *t)
{
    return (cluster *)t;
}

static cnode *cnode_of(aredis__node *n)
{
    return (cnode *)(void *)n;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The node for host:port, created when new (a dropped one comes back);
 * NULL when out of memory. */
static cnode *node_at(cluster *cl, const char *host, int port)
{
    cnode **tail = &cl->nodes;
    for (cnode *n = cl->nodes; n != NULL; n = n->next) {
        if (n->node.port == port && strcmp(n->node.host, host) == 0) {
            if (n->dropped) {
                n->dropped = n->closed = 0;
                n->lost = 0;
                n->node.role = AREDIS__ROLE_MASTER;
            }
            return n;
        }
        tail = &n->next;
    }
    cnode *n = aredis__calloc(1, sizeof *n);
    if (n == NULL)
        return NULL;
    if (aredis__node_init(&n->node, cl->base.c, host, port) != 0) {
        aredis__free(n);
        return NULL;
    }
    n->node.role = AREDIS__ROLE_MASTER;
    *tail = n; /* appended: the first seed stays first */
    return n;
}

static int is_ready(const cnode *n)
{
    return n->node.main.conn.state == AREDIS__ST_READY;
}

/* A node commands may go to now. */
static int usable(const cnode *n)
{
    return !n->dropped && !n->failed && (!n->lost || is_ready(n));
}

/* ---- keys ------------------------------------------------------------- */

/* command_slot(): the command waits for its key specs. */
#define SLOT_LEARNING (-2)

/* Commands routing treats as unknown to the table (tests): lower-case
 * names, each followed by a space. */
static char test_unknown[256];

void aredis__cluster_test_unknown(const char *names)
{
    size_t n = names != NULL ? strlen(names) : 0;
    if (n + 2 > sizeof test_unknown)
        n = 0;
    memcpy(test_unknown, names != NULL ? names : "", n);
    test_unknown[n] = n > 0 ? ' ' : '\0';
    test_unknown[n + 1] = '\0';
}

/* Whether the tests hide e (or its container) from routing. */
COLD_PATH static int hidden(const aredis__cmdinfo *e)
{
    size_t n = strcspn(e->name, "|");
    for (const char *p = test_unknown; *p != '\0';) {
        size_t k = strcspn(p, " ");
        if (k == n && memcmp(p, e->name, n) == 0)
            return 1;
        p += k + (p[k] == ' ');
    }
    return 0;
}

/* The entry for name (n bytes, lower case), added when new (replacing the
 * oldest answered one when full); NULL when there is no room. */
static learnt *learn_entry(cluster *cl, const char *name, size_t n)
{
    for (size_t i = 0; i < cl->nlearn; i++)
        if (strlen(cl->learn[i].name) == n &&
            memcmp(cl->learn[i].name, name, n) == 0)
            return &cl->learn[i];
    if (cl->learn == NULL &&
        (cl->learn = aredis__calloc(LEARN_MAX, sizeof *cl->learn)) == NULL)
        return NULL;
    learnt *e = NULL;
    if (cl->nlearn < LEARN_MAX) {
        e = &cl->learn[cl->nlearn++];
    } else {
        for (size_t k = 0; k < LEARN_MAX && e == NULL; k++) {
            learnt *x = &cl->learn[cl->learn_next++ % LEARN_MAX];
            if (x->state == LEARN_KNOWN || x->state == LEARN_UNASKED)
                e = x;
        }
        if (e == NULL)
            return NULL; /* every one is being asked about */
    }
    unsigned gen = e->gen;
    memset(e, 0, sizeof *e);
    e->gen = gen + 1; /* an answer for the one replaced is not this one's */
    memcpy(e->name, name, n);
    return e;
}

/* The lower case of arg into out (LEARN_NAME bytes) after prefix (plen
 * bytes and a '|' when plen > 0); its length, 0 when it does not fit. */
static size_t learn_name(char *out, const char *prefix, size_t plen,
                         const char *arg, size_t n)
{
    size_t at = plen > 0 ? plen + 1 : 0;
    if (n == 0 || at + n >= LEARN_NAME)
        return 0;
    memcpy(out, prefix, plen);
    if (plen > 0)
        out[plen] = '|';
    for (size_t i = 0; i < n; i++) {
        char ch = arg[i];
        out[at + i] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
    }
    out[at + n] = '\0';
    return at + n;
}

/* What the servers said about the command in bytes, which the table does
 * not know: its entry (known), NULL (nothing to go by: keyless), or
 * LEARNING_ENTRY when commands must wait for the answer. */
static learnt learning_entry;
#define LEARNING_ENTRY (&learning_entry)

static learnt *learnt_for(cluster *cl, const char *bytes)
{
    aredis__args it;
    const char *a;
    size_t n;
    char name[LEARN_NAME];
    aredis__args_init(&it, bytes);
    if (!aredis__args_next(&it, &a, &n))
        return NULL;
    size_t len = learn_name(name, "", 0, a, n);
    for (int level = 0; len > 0 && level < 2; level++) {
        learnt *e = learn_entry(cl, name, len);
        if (e == NULL)
            return NULL;
        if (e->state == LEARN_UNASKED) {
            e->state = LEARN_WANTED;
            kick(cl); /* asked from the loop */
        }
        if (e->state != LEARN_KNOWN)
            return LEARNING_ENTRY;
        if (!e->container)
            return e;
        /* A container: its subcommand has its own keys. */
        if (!aredis__args_next(&it, &a, &n))
            return e;
        char sub[LEARN_NAME];
        len = learn_name(sub, name, len, a, n);
        memcpy(name, sub, len + 1);
    }
    return NULL;
}

/* command_slot() for a command the table does not know: it goes by the
 * key specs a server gave for it (asked once per client); one it still
 * cannot place (a module's own key finding) goes to any node, whose
 * MOVED is then followed. */
COLD_PATH static int learnt_slot(cluster *cl, const char *bytes, int *ro)
{
    const char *key = NULL;
    size_t len = 0;
    learnt *e = learnt_for(cl, bytes);
    if (e == LEARNING_ENTRY)
        return SLOT_LEARNING;
    *ro = e != NULL && e->readonly;
    if (e == NULL ||
        !aredis__keyspec_first_key(bytes, e->specs, e->nspecs, &key, &len))
        return -1;
    return (int)aredis_cluster_keyslot(key, len);
}

/* The slot of an encoded command's first key, -1 when it names none, or
 * SLOT_LEARNING when the command must wait for what a server says about
 * it; *ro: the command only reads. cls is its classification. */
static HOT_INLINE int command_slot(cluster *cl, const char *bytes,
                                   const aredis__cmdclass *cls, int *ro)
{
    if (cls->info == NULL || (test_unknown[0] != '\0' && hidden(cls->info)))
        return learnt_slot(cl, bytes, ro);
    *ro = (cls->flags & AREDIS__CMDF_READONLY) != 0;
    const char *key;
    size_t len;
    if (!aredis__cmd_first_key_of(bytes, cls, &key, &len))
        return -1;
    return (int)aredis__keyslot(key, len);
}

/* ---- held commands ------------------------------------------------------ */

static void hold(cluster *cl, aredis__cmd *cmd, int64_t until)
{
    aredis__held_push(&cl->held, cmd);
    cmd->wait_until = until; /* after the push: it shares room with link */
    arm(cl);
}

static int cl_unwait(aredis__topology *t, aredis__cmd *cmd)
{
    return aredis__held_remove(&of(t)->held, cmd);
}

/* Complete a command the topology holds or took back with an error of its
 * own: from the loop later when inside an API call (deferred), now
 * otherwise. */
static void give_up(cluster *cl, aredis__cmd *cmd, int code, const char *msg,
                    int deferred)
{
    aredis_client *c = cl->base.c;
    cmd->flags &= (uint8_t)~AREDIS__CMD_PENDING;
    if (!deferred) {
        aredis__finish_error(c, cmd, code, msg);
        aredis__cmd_free(c, cmd);
        return;
    }
    /* The bytes are not needed any more: the copy keeps the message. */
    aredis__free(cmd->cc.copy);
    cmd->cc.copy = aredis__strndup(msg, strlen(msg));
    aredis__defer_done(c, cmd, code,
                       cmd->cc.copy != NULL ? cmd->cc.copy
                                            : aredis_strerror(code));
}

int aredis__cluster_retry_budget(int tryagain)
{
    return tryagain ? TRYAGAIN_BUDGET : RETRY_BUDGET;
}

int64_t aredis__cluster_backoff(int tryagain, int retries)
{
    int64_t delay = tryagain ? TRYAGAIN_FIRST_MS : RETRY_FIRST_MS;
    int64_t max = tryagain ? TRYAGAIN_MAX_MS : RETRY_MAX_MS;
    for (int i = 0; i < retries && delay < max; i++)
        delay *= 2;
    return delay < max ? delay : max;
}

/* Why a command waits: node n's connection is down. Room for a host name
 * and the connection's own message. */
#define UNREACHABLE_MAX (AREDIS__CONN_MSG_MAX + 300)

static void unreachable(char *why, size_t cap, const cnode *n)
{
    aredis__msgf(why, cap, "cluster node %s:%d is unreachable (%s)",
                 n->node.host, n->node.port,
                 n->node.main.conn.msgs != NULL ? n->node.main.conn.msgs->err
                                                : "connection lost");
}

/* Hold cmd and send it again after its backoff (the shorter one after a
 * TRYAGAIN), or give up (code and why) when the next try would pass its
 * deadline or, without one, the retry budget. */
static void retry_later(cluster *cl, aredis__cmd *cmd, int tryagain, int code,
                        const char *why, int deferred)
{
    int64_t now = aredis__now_ms();
    int64_t delay = aredis__cluster_backoff(tryagain, cmd->retries);
    int over = aredis__heap_contains(&cmd->dl)
                   ? now + delay >= cmd->dl.key
                   : cmd->retries >= aredis__cluster_retry_budget(tryagain);
    if (over) {
        char msg[UNREACHABLE_MAX + 64];
        /* The count stops at UINT8_MAX; a long deadline may see more. */
        aredis__msgf(msg, sizeof msg, "%s; gave up after %d%s retries", why,
                     cmd->retries, cmd->retries == UINT8_MAX ? " or more" : "");
        give_up(cl, cmd, code, msg, deferred);
        return;
    }
    if (cmd->retries < UINT8_MAX)
        cmd->retries++;
    hold(cl, cmd, now + delay);
}

/* ---- the table ---------------------------------------------------------- */

/* pick() for a read that may go to a replica. */
static cnode *pick_reader(cshard *sh, int mode)
{
    if (mode == AREDIS_READ_NEAREST) {
        cnode *best = usable(sh->primary) ? sh->primary : NULL;
        for (unsigned i = 0; i < sh->nrep; i++) {
            cnode *r = sh->rep[i];
            if (!usable(r) || r->rtt_us == 0)
                continue;
            if (best == NULL || best->rtt_us == 0 || r->rtt_us < best->rtt_us)
                best = r;
        }
        return best != NULL ? best : sh->primary;
    }
    /* REPLICA: the replicas in turn; ANY: the primary too. */
    unsigned n = sh->nrep + (mode == AREDIS_READ_ANY ? 1u : 0u);
    for (unsigned k = 0; k < n; k++) {
        unsigned i = sh->turn++ % n;
        cnode *x = i < sh->nrep ? sh->rep[i] : sh->primary;
        if (usable(x))
            return x;
    }
    return sh->primary;
}

/* The node a command for shard sh goes to. */
static inline cnode *pick(cluster *cl, cshard *sh, int read)
{
    if (!read || sh->nrep == 0)
        return sh->primary;
    int mode = cl->base.c->cfg.more->cluster_read_from;
    return mode == AREDIS_READ_PRIMARY ? sh->primary : pick_reader(sh, mode);
}

static void start(cluster *cl)
{
    if (!cl->started) {
        cl->started = 1;
        cl->want_refresh = 1;
        kick(cl);
    }
}

static aredis__node *cl_any(aredis__topology *t)
{
    cluster *cl = of(t);
    start(cl);
    cnode *fallback = NULL;
    for (cnode *n = cl->nodes; n != NULL; n = n->next) {
        if (n->dropped)
            continue;
        if (!cl->have_map && !n->lost)
            return &n->node; /* the first seed that is not known down */
        if (n->in_map && n->node.role == AREDIS__ROLE_MASTER && usable(n))
            return &n->node;
        if (fallback == NULL)
            fallback = n;
    }
    return fallback != NULL ? &fallback->node : &cl->nodes->node;
}

/* A command about to be held keeps a copy of its bytes (they are the
 * caller's, or a connection's): 0, or 1 when it could not and was given
 * up. */
static int keep(cluster *cl, aredis__cmd *cmd, const char *bytes, int deferred)
{
    if (aredis__cmd_keep(cmd, bytes) == 0)
        return 0;
    give_up(cl, cmd, AREDIS_ENOMEM, "out of memory", deferred);
    return 1;
}

/* route_cmd() for a command it cannot send at once: keyless, waiting
 * for its key specs or the map, its slot not served, its node's
 * connection down. Kept apart (never inlined): the usual case has no use
 * for its room. */
COLD_PATH static aredis__node *route_other(cluster *cl, aredis__cmd *cmd,
                                           const char *bytes, int slot, int ro,
                                           int deferred)
{
    if (slot == SLOT_LEARNING) {
        /* Sent again when the answer comes (with the map, when none). */
        start(cl);
        if (!keep(cl, cmd, bytes, deferred))
            hold(cl, cmd, 0);
        return AREDIS__HELD;
    }
    if (slot < 0)
        return cl_any(&cl->base);
    unsigned sh = cl->slot[slot];
    if (!cl->have_map) {
        char why[240];
        aredis__msgf(why, sizeof why, "no cluster slot map yet (%s)",
                     cl->why[0] ? cl->why : "waiting for the first answer");
        if (!keep(cl, cmd, bytes, deferred))
            retry_later(cl, cmd, 0,
                        cl->why_code ? cl->why_code : AREDIS_ECLOSED, why,
                        deferred);
        return AREDIS__HELD;
    }
    if (sh == AREDIS__SLOT_NONE) {
        request_refresh(cl);
        char why[160];
        snprintf(why, sizeof why,
                 "slot %d is not served by any node (the slot map covers "
                 "%zu of 16384 slots)",
                 slot, cl->covered);
        if (!keep(cl, cmd, bytes, deferred))
            retry_later(cl, cmd, 0, AREDIS_ECLOSED, why, deferred);
        return AREDIS__HELD;
    }
    cnode *n =
        pick(cl, &cl->shards[sh], ro && !(cmd->flags & AREDIS__CMD_BLOCKING));
    if (n->lost && !is_ready(n)) {
        /* Its connection is down: wait for it or for a new owner. */
        char why[UNREACHABLE_MAX];
        unreachable(why, sizeof why, n);
        request_refresh(cl);
        if (!keep(cl, cmd, bytes, deferred))
            retry_later(cl, cmd, 0, AREDIS_ECLOSED, why, deferred);
        return AREDIS__HELD;
    }
    return &n->node;
}

/* The classification of bytes, in *k, for a command taken back (the memo
 * answers for the usual names). */
static const aredis__cmdclass *classified(cluster *cl, const char *bytes,
                                          aredis__cmdclass *k)
{
    aredis__cmd_classify_memo(bytes, k, &cl->base.c->memo);
    return k;
}

/* Where a command for slot goes (-1: none; ro: it only reads): a node,
 * AREDIS__HELD when it was held (or given up: deferred tells how to
 * complete it), or AREDIS__NEEDS_BYTES when that takes its bytes and
 * there are none yet. */
static HOT_INLINE aredis__node *route_slot(cluster *cl, aredis__cmd *cmd,
                                           const char *bytes, int slot, int ro,
                                           int deferred)
{
    if (slot >= 0) {
        start(cl);
        unsigned sh = cl->slot[slot];
        if (cl->have_map && sh != AREDIS__SLOT_NONE) {
            cnode *n = pick(cl, &cl->shards[sh],
                            ro && !(cmd->flags & AREDIS__CMD_BLOCKING));
            if (!n->lost || is_ready(n))
                return &n->node;
        }
    }
    if (bytes == NULL && slot != -1)
        return AREDIS__NEEDS_BYTES; /* to be held */
    return route_other(cl, cmd, bytes, slot, ro, deferred);
}

/* route_slot() for an encoded command (cls: its classification). */
static HOT_INLINE aredis__node *route_cmd(cluster *cl, aredis__cmd *cmd,
                                          const char *bytes,
                                          const aredis__cmdclass *cls,
                                          int deferred)
{
    int ro = 0;
    int slot = command_slot(cl, bytes, cls, &ro);
    return route_slot(cl, cmd, bytes, slot, ro, deferred);
}

/* cl_route() for any command: encoded or not, whatever its key. */
COLD_PATH static aredis__node *route_any(aredis__topology *t,
                                         const aredis__cmd *cmd,
                                         const aredis__cmdview *v)
{
    /* The record is the caller's until this returns; holding it takes it
     * over, which route()'s contract allows. */
    cluster *cl = of(t);
    aredis__cmd *x = (aredis__cmd *)(uintptr_t)cmd;
    const aredis__cmdclass *cls = v->cls;
    if (v->bytes != NULL)
        return route_cmd(cl, x, v->bytes, cls, 1);
    /* Not encoded yet: the caller's arguments name the key, when it is
     * at a fixed place of a command the table knows. */
    const char *key;
    size_t len;
    if (cls == NULL || v->argv == NULL ||
        (test_unknown[0] != '\0' && cls->info != NULL && hidden(cls->info)))
        return AREDIS__NEEDS_BYTES;
    int has = aredis__cmd_first_key_argv(cls, v->argc, v->argv, v->argvlen,
                                         &key, &len);
    if (has < 0)
        return AREDIS__NEEDS_BYTES;
    return route_slot(cl, x, NULL, has ? (int)aredis__keyslot(key, len) : -1,
                      (cls->flags & AREDIS__CMDF_READONLY) != 0, 1);
}

static aredis__node *cl_route(aredis__topology *t, const aredis__cmd *cmd,
                              const aredis__cmdview *v)
{
    /* The usual command is answered here, with no call (so no register to
     * save): not encoded yet, its key of 4 to 8 bytes with no '{' at a
     * fixed place (GET k, SET k v, HSET k f v), its slot's primary up, and
     * for its primary (a write, or reads from primaries). The same answer
     * as route_any() (pick()), which takes everything else. */
    cluster *cl = of(t);
    const aredis__cmdclass *cls = v->cls;
    const char *key;
    size_t len;
    unsigned crc;
    if (v->bytes == NULL && cls != NULL && v->argv != NULL &&
        v->argvlen != NULL && test_unknown[0] == '\0' && cl->started &&
        cl->have_map &&
        aredis__cmd_first_key_argv(cls, v->argc, v->argv, v->argvlen, &key,
                                   &len) > 0 &&
        len - 4 <= 4 &&
        !aredis__crc16_short((const unsigned char *)key, len, &crc)) {
        unsigned sh = cl->slot[crc & (AREDIS_CLUSTER_SLOTS - 1)];
        if (sh != AREDIS__SLOT_NONE) {
            const cshard *s = &cl->shards[sh];
            const cnode *n = s->primary;
            if ((!(cls->flags & AREDIS__CMDF_READONLY) || s->nrep == 0 ||
                 !cl->replica_reads) &&
                (!n->lost || is_ready(n)))
                return (aredis__node *)(uintptr_t)&n->node;
        }
    }
    return route_any(t, cmd, v);
}

static aredis__node *cl_next(aredis__topology *t, const aredis__node *prev)
{
    if (prev == NULL)
        return &of(t)->nodes->node;
    cnode *n = ((const cnode *)(const void *)prev)->next;
    return n != NULL ? &n->node : NULL;
}

/* Send a command (its kept bytes) to node n: blocking commands through
 * its pool, the others on its shared connection. */
static int send_to(aredis__node *n, aredis__cmd *cmd)
{
    cmd->flags &= (uint8_t)~AREDIS__CMD_PENDING;
    if (cmd->flags & AREDIS__CMD_BLOCKING) {
        aredis__pool_route(n, cmd, cmd->cc.copy);
        return 0;
    }
    return aredis__link_submit(&n->main, cmd, cmd->cc.copy);
}

/* Route a command taken back (held, or from a lost connection) again:
 * loop context. */
static void resend(cluster *cl, aredis__cmd *cmd)
{
    aredis__cmdclass k;
    aredis__node *n =
        route_cmd(cl, cmd, cmd->cc.copy, classified(cl, cmd->cc.copy, &k), 0);
    if (n == AREDIS__HELD)
        return;
    if (send_to(n, cmd) != 0)
        give_up(cl, cmd, AREDIS_ENOMEM, "out of memory", 0);
}

/* Send the held commands that are due (all of them when all is set). */
static void release_held(cluster *cl, int all)
{
    aredis__cmd *list = aredis__held_take(&cl->held);
    int64_t now = aredis__now_ms();
    while (list != NULL && !cl->base.c->freeing) {
        aredis__cmd *cmd = list;
        list = aredis__cmd_next(cmd);
        cmd->cc.next = NULL;
        int due = all || (cmd->wait_until == 0 ? cl->have_map
                                               : cmd->wait_until <= now);
        if (!due) {
            hold(cl, cmd, cmd->wait_until);
            continue;
        }
        cmd->flags &= (uint8_t)~AREDIS__CMD_PENDING;
        if (aredis__cmd_is_wait(cmd)) {
            /* A wait for the map (cl_hold_for_map): over. */
            static const aredis_reply known = {
                .type = AREDIS_REPLY_STATUS, .str = "OK", .len = 2};
            aredis__finish(cl->base.c, cmd, &known);
            aredis__cmd_free(cl->base.c, cmd);
            continue;
        }
        resend(cl, cmd);
    }
    /* Freeing: what was not sent goes back, for cl_free to cancel. */
    while (list != NULL) {
        aredis__cmd *cmd = list;
        list = aredis__cmd_next(cmd);
        hold(cl, cmd, cmd->wait_until);
    }
}

/* ---- the map ------------------------------------------------------------ */

static void fetch(cluster *cl);

/* The shard whose primary is n, added when there is none. -1: no room. */
static int shard_of(cluster *cl, cnode *n)
{
    for (size_t i = 0; i < cl->nshards; i++)
        if (cl->shards[i].primary == n)
            return (int)i;
    if (cl->nshards >= MAX_SHARDS)
        return -1;
    if (cl->nshards == cl->cap) {
        size_t cap = cl->cap ? cl->cap * 2 : 8;
        cshard *s = aredis__reallocarray(cl->shards, cap, sizeof *s);
        if (s == NULL)
            return -1;
        cl->shards = s;
        cl->cap = cap;
    }
    memset(&cl->shards[cl->nshards], 0, sizeof cl->shards[0]);
    cl->shards[cl->nshards].primary = n;
    return (int)cl->nshards++;
}

static void set_role(cluster *cl, cnode *n, int role)
{
    n->node.role = (uint8_t)role;
    int ro = role == AREDIS__ROLE_REPLICA && cl->replica_reads;
    if (ro && n->node.nsteps == 0)
        aredis__node_set_steps(&n->node, &readonly_step, 1);
}

/* The node of each map entry (NULL for an entry with no usable port),
 * created when new; their roles and health as the map says. NULL when out
 * of memory. */
static cnode **map_nodes(cluster *cl, const aredis__slotmap *m)
{
    aredis_client *c = cl->base.c;
    // NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers
    cnode **at = aredis__calloc(m->nnodes ? m->nnodes : 1, sizeof *at);
    if (at == NULL)
        return NULL;
    for (size_t i = 0; i < m->nnodes; i++) {
        const aredis__slotnode *x = &m->nodes[i];
        int port = x->port;
        if ((c->cfg.tls && x->tls_port > 0) || port == 0)
            port = x->tls_port;
        if (port > 0 && (at[i] = node_at(cl, x->host, port)) == NULL) {
            aredis__free(at);
            return NULL;
        }
    }
    for (cnode *n = cl->nodes; n != NULL; n = n->next)
        n->in_map = n->serving = 0;
    for (size_t i = 0; i < m->nnodes; i++) {
        if (at[i] == NULL)
            continue;
        at[i]->in_map = 1;
        at[i]->failed = !m->nodes[i].healthy;
        set_role(cl, at[i],
                 m->nodes[i].primary ? AREDIS__ROLE_MASTER
                                     : AREDIS__ROLE_REPLICA);
    }
    return at;
}

/* The primary serving slot as the table says, NULL when none does. */
static cnode *slot_owner(const cluster *cl, unsigned slot)
{
    unsigned k =
        slot < AREDIS_CLUSTER_SLOTS ? cl->slot[slot] : AREDIS__SLOT_NONE;
    return k < cl->nshards ? cl->shards[k].primary : NULL;
}

/* Swap in the slot table of m over the shards sh (built from it): 1 when
 * a slot changed hands. */
static int swap_table(cluster *cl, const aredis__slotmap *m, cshard *sh)
{
    int changed = !cl->have_map;
    size_t covered = 0;
    for (size_t s = 0; s < AREDIS_CLUSTER_SLOTS; s++) {
        unsigned k = m->slot[s];
        cnode *now = k < m->nshards ? sh[k].primary : NULL;
        cnode *was = slot_owner(cl, (unsigned)s);
        if (now != was)
            changed = 1;
        if (now == NULL) {
            cl->slot[s] = AREDIS__SLOT_NONE;
        } else {
            cl->slot[s] = (uint16_t)k;
            now->serving = 1;
            covered++;
        }
    }
    aredis__free(cl->shards);
    cl->shards = sh;
    cl->nshards = cl->cap = m->nshards;
    cl->covered = covered;
    cl->have_map = 1;
    return changed;
}

/* Apply a map. 0, or AREDIS_ENOMEM (the old map stays). */
static int apply_map(cluster *cl, const aredis__slotmap *m)
{
    cshard *sh = aredis__calloc(m->nshards ? m->nshards : 1, sizeof *sh);
    cnode **at = sh != NULL ? map_nodes(cl, m) : NULL;
    if (at == NULL) {
        aredis__free(sh);
        return AREDIS_ENOMEM;
    }
    for (size_t i = 0; i < m->nshards; i++) {
        const aredis__slotshard *s = &m->shards[i];
        sh[i].primary = at[s->primary];
        for (unsigned k = 0; k < s->nreplicas && sh[i].nrep < MAX_REPLICAS;
             k++) {
            cnode *r = at[m->replicas[s->first_replica + k]];
            if (r != NULL)
                sh[i].rep[sh[i].nrep++] = r;
        }
    }
    aredis__free(at);
    int changed = swap_table(cl, m, sh);
    /* Nodes the map no longer lists leave (closed from the loop). */
    for (cnode *n = cl->nodes; n != NULL; n = n->next) {
        if (!n->in_map && !n->dropped) {
            n->dropped = 1;
            n->node.role = AREDIS__ROLE_UNKNOWN;
        }
    }
    /* Held commands go at once when a slot changed hands. */
    if (changed)
        release_held(cl, 1);
    kick(cl);
    return 0;
}

static int unknown_command(const aredis_reply *r)
{
    return r->type == AREDIS_REPLY_ERROR && r->str != NULL &&
           (strstr(r->str, "nknown subcommand") != NULL ||
            strstr(r->str, "nknown command") != NULL);
}

static void on_map(aredis_client *c, const aredis_reply *r, void *ud)
{
    request *q = ud;
    cluster *cl = q->cl;
    cnode *n = q->n;
    int source = q->source, current = q->gen == cl->fetch_gen;
    aredis__free(q);
    if (c->freeing || !current)
        return; /* going away, or given up for another node */
    cl->fetching = 0;
    if (unknown_command(r) && source < 2) {
        /* An older server: the next source, same node. */
        if (cl->source <= source)
            cl->source = source + 1;
        fetch(cl);
        return;
    }
    aredis__slotmap *m = NULL;
    char err[160] = "out of memory";
    int e = AREDIS_EPROTO;
    if (r->type != AREDIS_REPLY_ERROR) {
        const char *host = n->node.host;
        e = source == 0
                ? aredis__slotmap_from_shards(&m, r, host, err, sizeof err)
            : source == 1
                ? aredis__slotmap_from_slots(&m, r, host, err, sizeof err)
                : aredis__slotmap_from_nodes(&m, r, host, err, sizeof err);
    }
    if (e == 0)
        e = apply_map(cl, m);
    aredis__slotmap_free(m);
    if (e != 0) {
        cl->why_code = r->type == AREDIS_REPLY_ERROR && r->code != 0
                           ? r->code
                           : AREDIS_EPROTO;
        aredis__msgf(
            cl->why, sizeof cl->why, "%s:%d: %.*s", n->node.host, n->node.port,
            r->type == AREDIS_REPLY_ERROR ? (int)r->len : (int)strlen(err),
            r->type == AREDIS_REPLY_ERROR ? r->str : err);
    }
    if (e == 0) {
        cl->fetch_tries = 0;
        arm(cl);
        return;
    }
    /* This node could not say: the next one, a few at most per round. */
    if (++cl->fetch_tries < FETCH_TRIES) {
        cl->want_refresh = 1;
        fetch(cl);
    } else {
        cl->fetch_tries = 0;
        arm(cl);
    }
}

/* The node to ask for the map: in turn, one whose connection is up or
 * not known to be down first, then any. */
static cnode *fetch_node(cluster *cl)
{
    size_t count = 0;
    for (cnode *n = cl->nodes; n != NULL; n = n->next)
        count++;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t k = 0; k < count; k++) {
            size_t want = (cl->turn + k) % count;
            cnode *n = cl->nodes;
            for (size_t i = 0; i < want; i++)
                n = n->next;
            if (n->dropped || (pass == 0 && (n->lost || n->failed)))
                continue;
            cl->turn = (unsigned)(want + 1);
            return n;
        }
    }
    /* Every node left: the seeds again. */
    const aredis__endpoint *s = &cl->base.c->cfg.more->seeds[0];
    return node_at(cl, s->host, s->port);
}

static void fetch(cluster *cl)
{
    static const char *const cmds[] = {
        "*2\r\n$7\r\nCLUSTER\r\n$6\r\nSHARDS\r\n",
        "*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n",
        "*2\r\n$7\r\nCLUSTER\r\n$5\r\nNODES\r\n",
    };
    aredis_client *c = cl->base.c;
    if (c->freeing || cl->fetching)
        return;
    cnode *n = fetch_node(cl);
    request *q = n != NULL ? aredis__calloc(1, sizeof *q) : NULL;
    if (q == NULL)
        return;
    *q = (request){cl, n, ++cl->fetch_gen, cl->source, 0};
    const char *b = cmds[cl->source];
    cl->want_refresh = 0;
    cl->last_fetch = cl->fetch_started = aredis__now_ms();
    if (aredis__submit_encoded(c, &n->node.main, on_map, q, b, strlen(b)) !=
        0) {
        aredis__free(q);
        cl->want_refresh = 1;
        return;
    }
    cl->fetching = 1;
    cl->fetch_node = n;
    arm(cl);
}

static void request_refresh(cluster *cl)
{
    cl->want_refresh = 1;
    if (!cl->fetching && aredis__now_ms() - cl->last_fetch >= REFRESH_MIN_MS)
        kick(cl);
    else
        arm(cl);
}

/* ---- latency (READ_NEAREST) --------------------------------------------- */

static void on_pong(aredis_client *c, const aredis_reply *r, void *ud)
{
    request *q = ud;
    if (!c->freeing && r->type != AREDIS_REPLY_ERROR) {
        int64_t rtt = now_us() - q->t0_us;
        if (rtt < 1)
            rtt = 1;
        cnode *n = q->n;
        n->rtt_us = n->rtt_us == 0 ? rtt : (n->rtt_us + rtt) / 2;
    }
    aredis__free(q);
}

static void probe(cluster *cl)
{
    static const char ping[] = "*1\r\n$4\r\nPING\r\n";
    for (cnode *n = cl->nodes; n != NULL; n = n->next) {
        if (!n->in_map || n->dropped || n->lost)
            continue;
        request *q = aredis__calloc(1, sizeof *q);
        if (q == NULL)
            return;
        *q = (request){cl, n, 0, 0, now_us()};
        if (aredis__submit_encoded(cl->base.c, &n->node.main, on_pong, q, ping,
                                   sizeof ping - 1) != 0)
            aredis__free(q);
    }
}

/* ---- learning key specs ---------------------------------------------------
 */

/* One COMMAND INFO in flight; freed by its callback. */
typedef struct learn_req {
    cluster *cl;
    size_t at; /* the entry */
    unsigned gen;
} learn_req;

/* The value of field name in a RESP3 map or a RESP2 flat list of pairs;
 * NULL when absent. */
static const aredis_reply *field(const aredis_reply *m, const char *name)
{
    if (m == NULL ||
        (m->type != AREDIS_REPLY_MAP && m->type != AREDIS_REPLY_ARRAY))
        return NULL;
    size_t n = strlen(name);
    for (size_t i = 0; i + 1 < m->len; i += 2) {
        const aredis_reply *k = &m->element[i];
        if ((k->type == AREDIS_REPLY_STRING ||
             k->type == AREDIS_REPLY_STATUS) &&
            aredis__word_is(k->str, k->len, name, n))
            return &m->element[i + 1];
    }
    return NULL;
}

static int is_text(const aredis_reply *r, const char *w)
{
    return r != NULL &&
           (r->type == AREDIS_REPLY_STRING || r->type == AREDIS_REPLY_STATUS) &&
           aredis__word_is(r->str, r->len, w, strlen(w));
}

static int int_of(const aredis_reply *r, long long lo, long long hi,
                  long long *out)
{
    if (r == NULL || r->type != AREDIS_REPLY_INTEGER || r->integer < lo ||
        r->integer > hi)
        return 0;
    *out = r->integer;
    return 1;
}

/* One key spec of COMMAND INFO (Redis 7): 1 when it can be followed. */
static int parse_spec(const aredis_reply *r, aredis__keyspec *ks)
{
    memset(ks, 0, sizeof *ks);
    const aredis_reply *bs = field(r, "begin_search");
    const aredis_reply *fk = field(r, "find_keys");
    const aredis_reply *bspec = field(bs, "spec");
    const aredis_reply *fspec = field(fk, "spec");
    long long v;
    if (is_text(field(bs, "type"), "index")) {
        if (!int_of(field(bspec, "index"), 1, INT16_MAX, &v))
            return 0;
        ks->begin = AREDIS__KS_INDEX;
        ks->index = (int16_t)v;
    } else if (is_text(field(bs, "type"), "keyword")) {
        const aredis_reply *kw = field(bspec, "keyword");
        if (kw == NULL || kw->type != AREDIS_REPLY_STRING || kw->len == 0 ||
            kw->len >= sizeof ks->keyword ||
            !int_of(field(bspec, "startfrom"), INT16_MIN, INT16_MAX, &v))
            return 0;
        ks->begin = AREDIS__KS_KEYWORD;
        ks->index = (int16_t)v;
        ks->kwlen = (uint8_t)learn_name(ks->keyword, "", 0, kw->str, kw->len);
    } else {
        return 0;
    }
    long long a, b;
    if (is_text(field(fk, "type"), "range")) {
        ks->find = AREDIS__KS_RANGE;
    } else if (is_text(field(fk, "type"), "keynum") &&
               int_of(field(fspec, "keynumidx"), 0, INT16_MAX, &a) &&
               int_of(field(fspec, "firstkey"), 1, INT16_MAX, &b)) {
        ks->find = AREDIS__KS_KEYNUM;
        ks->keynumidx = (int16_t)a;
        ks->firstkey = (int16_t)b;
    } else {
        return 0;
    }
    return 1;
}

/* Fill e from one command's COMMAND INFO entry: [name, arity, flags,
 * first, last, step, (Redis 7:) categories, tips, key specs,
 * subcommands]. The key specs when given, else first key (Redis 6). */
static void learn_from(learnt *e, const aredis_reply *x)
{
    e->nspecs = 0;
    const aredis_reply *flags = &x->element[2];
    if (flags->type == AREDIS_REPLY_ARRAY || flags->type == AREDIS_REPLY_SET)
        for (size_t i = 0; i < flags->len; i++)
            if (is_text(&flags->element[i], "readonly"))
                e->readonly = 1;
    const aredis_reply *specs = x->len >= 9 ? &x->element[8] : NULL;
    if (specs != NULL && (specs->type == AREDIS_REPLY_ARRAY ||
                          specs->type == AREDIS_REPLY_SET)) {
        for (size_t i = 0; i < specs->len && e->nspecs < LEARN_SPECS; i++)
            if (parse_spec(&specs->element[i], &e->specs[e->nspecs]))
                e->nspecs++;
    } else {
        long long first;
        if (int_of(&x->element[3], 1, INT16_MAX, &first)) {
            e->specs[0] = (aredis__keyspec){.begin = AREDIS__KS_INDEX,
                                            .index = (int16_t)first,
                                            .find = AREDIS__KS_RANGE};
            e->nspecs = 1;
        }
    }
    const aredis_reply *subs = x->len >= 10 ? &x->element[9] : NULL;
    e->container =
        subs != NULL && e->nspecs == 0 &&
        (subs->type == AREDIS_REPLY_ARRAY || subs->type == AREDIS_REPLY_SET) &&
        subs->len > 0;
}

static void on_info(aredis_client *c, const aredis_reply *r, void *ud)
{
    learn_req *q = ud;
    cluster *cl = q->cl;
    size_t at = q->at;
    unsigned gen = q->gen;
    aredis__free(q);
    if (c->freeing)
        return;
    learnt *e = &cl->learn[at];
    if (e->gen != gen || e->state != LEARN_ASKING)
        return; /* given up, or the entry holds another name now */
    if (r->type == AREDIS_REPLY_ERROR) {
        /* Asked again with the next command naming it, a few times; a
         * server without COMMAND INFO: keyless. */
        if (unknown_command(r) || ++e->tries >= LEARN_TRIES) {
            e->state = LEARN_KNOWN;
            e->nspecs = 0;
        } else {
            e->state = LEARN_UNASKED;
        }
    } else {
        /* [entry], an entry being nil for a name the server does not know
         * either: keyless, it answers its own error. */
        e->state = LEARN_KNOWN;
        const aredis_reply *x = r->type == AREDIS_REPLY_ARRAY && r->len == 1
                                    ? &r->element[0]
                                    : NULL;
        if (x != NULL && x->type == AREDIS_REPLY_ARRAY && x->len >= 6)
            learn_from(e, x);
    }
    kick(cl); /* the commands that wait go again */
}

/* Ask about the names wanted, and give up asks that took too long. */
static void learn_ask(cluster *cl)
{
    aredis_client *c = cl->base.c;
    int64_t now = aredis__now_ms();
    for (size_t i = 0; i < cl->nlearn; i++) {
        learnt *e = &cl->learn[i];
        if (e->state == LEARN_ASKING && now - e->asked >= FETCH_TIMEOUT_MS) {
            e->gen++;
            e->state = ++e->tries >= LEARN_TRIES ? LEARN_KNOWN : LEARN_WANTED;
            e->nspecs = 0;
        }
        if (e->state != LEARN_WANTED)
            continue;
        char b[LEARN_NAME + 48];
        size_t n = strlen(e->name);
        int len = snprintf(
            b, sizeof b, "*3\r\n$7\r\nCOMMAND\r\n$4\r\nINFO\r\n$%zu\r\n%s\r\n",
            n, e->name);
        learn_req *q = aredis__calloc(1, sizeof *q);
        if (q == NULL)
            return;
        *q = (learn_req){cl, i, ++e->gen};
        /* Asking before the submit: a failure may answer at once. */
        e->state = LEARN_ASKING;
        e->asked = now;
        aredis__node *to = cl_any(&cl->base);
        if (aredis__submit_encoded(c, &to->main, on_info, q, b, (size_t)len) !=
            0) {
            aredis__free(q);
            e->state = LEARN_WANTED;
            return;
        }
        if (c->freeing)
            return;
    }
}

/* ---- maintenance --------------------------------------------------------- */

/* Take back what waits on a node's connection (never written, or safe to
 * send again) to send it elsewhere; commands pinned to it stay. */
static void take_back(cluster *cl, cnode *n, int hold_them)
{
    aredis__cmd *list = aredis__link_take_pending(&n->node.main);
    while (list != NULL) {
        aredis__cmd *cmd = list;
        list = aredis__cmd_next(cmd);
        cmd->cc.next = NULL;
        if (cmd->flags & AREDIS__CMD_PINNED) {
            if (aredis__link_submit(&n->node.main, cmd, cmd->cc.copy) != 0)
                give_up(cl, cmd, AREDIS_ENOMEM, "out of memory", 0);
        } else if (hold_them) {
            char why[UNREACHABLE_MAX];
            unreachable(why, sizeof why, n);
            retry_later(cl, cmd, 0, AREDIS_ECLOSED, why, 0);
        } else {
            resend(cl, cmd);
        }
    }
}

/* Close the connections of a node that left: the shared one, what it
 * carried following the retry policy (sent elsewhere, or AREDIS_EUNKNOWN),
 * and the idle exclusive ones (busy or lent ones finish their work). */
static void close_dropped(cluster *cl, cnode *n)
{
    aredis_client *c = cl->base.c;
    n->closed = 1;
    aredis__pool_close_idle(&n->node);
    /* Subscriptions move to a node of the cluster (pubsub.c re-homes them
     * and gives the link back). */
    for (aredis__link *l = aredis__pool_first(&n->node);
         l != NULL && !c->freeing;) {
        aredis__link *next = aredis__pool_next(l);
        if (l->pubsub != NULL)
            aredis__link_lost(l, AREDIS_ECLOSED, "the node left the cluster");
        l = next;
    }
    if (c->freeing)
        return;
    aredis__link_lost(&n->node.main, AREDIS_ECLOSED,
                      "the node left the cluster");
    if (c->freeing)
        return; /* a callback freed the client: release() takes the rest */
    take_back(cl, n, 0);
    aredis__cmd *rest = aredis__link_take_all(&n->node.main);
    while (rest != NULL) {
        aredis__cmd *cmd = rest;
        rest = aredis__cmd_next(cmd);
        if (cmd->flags & AREDIS__CMD_DONE) {
            aredis__cmd_free(c, cmd);
        } else if (cmd->cc.code != 0) {
            aredis__finish_error(c, cmd, cmd->cc.code, cmd->cc.msg);
            aredis__cmd_free(c, cmd);
        } else {
            aredis__finish_error(c, cmd, AREDIS_ECLOSED,
                                 "the node left the cluster");
            aredis__cmd_free(c, cmd);
        }
    }
}

/* A dropped node nothing points into any more: no command on its shared
 * connection, no exclusive connection (busy, lent, carrying pub/sub, or
 * retired), nobody waiting for one, no map request to it. */
static int reclaimable(const cluster *cl, const cnode *n)
{
    const aredis__node *x = &n->node;
    return n->dropped && n->closed && aredis__conn_idle(&x->main.conn) &&
           !x->main.draining && x->main.pubsub == NULL &&
           aredis__pool_empty(x) && !(cl->fetching && cl->fetch_node == n);
}

/* Free the dropped nodes that nothing points into. The first node (the
 * first seed, asked when every other left) stays. Loop context, outside
 * any walk of the nodes. */
static void reclaim(cluster *cl)
{
    if (cl->nodes == NULL)
        return;
    for (cnode **pp = &cl->nodes->next; *pp != NULL;) {
        cnode *n = *pp;
        if (n->dropped && n->closed) /* idle exclusive ones that finished */
            aredis__pool_close_idle(&n->node);
        if (!reclaimable(cl, n)) {
            pp = &n->next;
            continue;
        }
        *pp = n->next;
        aredis__node_cleanup(&n->node);
        aredis__free(n);
    }
}

int aredis__cluster_test_meet(aredis_client *c, const char *host, int port)
{
    if (c->topo == NULL || c->topo->vt != &cluster_vt)
        return AREDIS_EINVAL;
    return node_at(of(c->topo), host, port) != NULL ? 0 : AREDIS_ENOMEM;
}

size_t aredis__cluster_test_node_count(aredis_client *c)
{
    size_t k = 0;
    if (c->topo == NULL || c->topo->vt != &cluster_vt)
        return 0;
    for (const cnode *n = of(c->topo)->nodes; n != NULL; n = n->next)
        k++;
    return k;
}

static int degraded(const cluster *cl)
{
    if (!cl->have_map || cl->held.head != NULL ||
        cl->covered < AREDIS_CLUSTER_SLOTS)
        return 1;
    for (const cnode *n = cl->nodes; n != NULL; n = n->next)
        if (n->serving && n->lost)
            return 1;
    return 0;
}

/* How often to refresh while degraded. */
static int64_t degraded_every(const cluster *cl)
{
    return cl->held.head != NULL ? DEGRADED_MS : DEGRADED_IDLE_MS;
}

static void maintain(cluster *cl)
{
    aredis_client *c = cl->base.c;
    int64_t now = aredis__now_ms();
    for (cnode *n = cl->nodes; n != NULL && !c->freeing; n = n->next) {
        if (n->lost && is_ready(n))
            n->lost = 0;
        if (n->dropped) {
            if (!n->closed)
                close_dropped(cl, n);
            continue;
        }
        if (!n->lost)
            continue;
        if (!is_ready(n) && n->node.main.conn.npend > 0)
            take_back(cl, n, 1);
        /* A lost primary is tried again, so that it is found when it comes
         * back rather than replaced. */
        if (n->serving && n->node.main.conn.state == AREDIS__ST_IDLE)
            aredis__link_connect(&n->node.main);
    }
    if (c->freeing)
        return;
    reclaim(cl);
    if (cl->nlearn > 0)
        learn_ask(cl);
    release_held(cl, 0);
    /* The map: when asked for, periodically, or while degraded. */
    if (cl->fetching && now - cl->fetch_started >= FETCH_TIMEOUT_MS) {
        cl->fetching = 0; /* its answer, if any, is ignored (gen) */
        cl->fetch_gen++;
        cl->want_refresh = 1;
    }
    int64_t period = c->cfg.more->cluster_refresh_ms;
    if (period > 0 && cl->started && now >= cl->next_periodic) {
        cl->want_refresh = 1;
        cl->next_periodic = now + period;
    }
    if (cl->started && degraded(cl) &&
        now - cl->last_fetch >= degraded_every(cl))
        cl->want_refresh = 1;
    if (cl->want_refresh && !cl->fetching &&
        now - cl->last_fetch >= REFRESH_MIN_MS)
        fetch(cl);
    if (c->cfg.more->cluster_read_from == AREDIS_READ_NEAREST && cl->have_map &&
        now >= cl->next_probe) {
        probe(cl);
        cl->next_probe = now + (period > 0 ? period : 5000);
    }
    arm(cl);
}

static void on_kick(void *arg)
{
    cluster *cl = arg;
    if (!cl->base.c->freeing)
        maintain(cl);
}

static void kick(cluster *cl)
{
    aredis__loop_defer(cl->base.c->loop, &cl->kick, on_kick, cl);
}

static void on_timer(void *arg)
{
    cluster *cl = arg;
    cl->timer_at = 0;
    if (!cl->base.c->freeing)
        maintain(cl);
}

/* Arm the timer for the earliest thing to do. */
static void arm(cluster *cl)
{
    aredis_client *c = cl->base.c;
    if (cl->timer == NULL || c->freeing)
        return;
    int64_t now = aredis__now_ms(), next = 0;
#define EARLIER(x)                              \
    do {                                        \
        int64_t x_ = (x);                       \
        if (x_ > 0 && (next == 0 || x_ < next)) \
            next = x_;                          \
    } while (0)
    for (aredis__cmd *x = cl->held.head; x != NULL; x = aredis__cmd_next(x))
        EARLIER(x->wait_until);
    if (cl->started) {
        if (c->cfg.more->cluster_refresh_ms > 0)
            EARLIER(cl->next_periodic);
        if (cl->fetching)
            EARLIER(cl->fetch_started + FETCH_TIMEOUT_MS);
        else if (cl->want_refresh)
            EARLIER(cl->last_fetch + REFRESH_MIN_MS);
        if (!cl->fetching && degraded(cl)) {
            int64_t at = cl->last_fetch + degraded_every(cl);
            EARLIER(at > now ? at : now + DEGRADED_MS);
        }
    }
#undef EARLIER
    if (next == cl->timer_at)
        return;
    cl->timer_at = next;
    if (next == 0) {
        aredis__loop_timer_set(c->loop, cl->timer, -1);
        return;
    }
    aredis__loop_timer_set(c->loop, cl->timer, next > now ? next - now : 0);
}

/* ---- redirects and failures ---------------------------------------------- */

static int starts(const aredis_reply *r, const char *word)
{
    size_t n = strlen(word);
    return r->str != NULL && r->len >= n && memcmp(r->str, word, n) == 0;
}

/* A server's error, cut cleanly to leave room for what follows it in a
 * message. */
enum { QUOTE_MAX = 164 };

static void quote(char said[QUOTE_MAX], const aredis_reply *r)
{
    aredis__msgf(said, QUOTE_MAX, "%.*s", (int)r->len, r->str);
}

static int cl_redirect(aredis__topology *t, aredis__cmd *cmd,
                       aredis__node *from, const char *bytes,
                       const aredis_reply *r)
{
    cluster *cl = of(t);
    aredis_client *c = t->c;
    aredis__redirect rd;
    char err[320], said[QUOTE_MAX];
    /* A command on a connection its caller chose (inside a transaction on
     * a borrowed connection, say) keeps its redirect: sending it to
     * another node would silently take it out of its context. */
    if (cmd->flags & AREDIS__CMD_PINNED)
        return 0;
    cmd->flags &= (uint8_t)~AREDIS__CMD_ASKING; /* set for this ASK only */
    int busy = starts(r, "TRYAGAIN");
    int down = starts(r, "CLUSTERDOWN");
    if ((busy || down) && bytes != NULL) {
        if (keep(cl, cmd, bytes, 0))
            return 1;
        if (down)
            request_refresh(cl);
        quote(said, r);
        aredis__msgf(err, sizeof err, "%s (from %s:%d)", said, from->host,
                     from->port);
        retry_later(cl, cmd, busy, AREDIS_ESERVER, err, 0);
        return 1;
    }
    int rc = aredis__redirect_parse(r->str, r->len, &rd, err, sizeof err);
    if (rc == 0)
        return 0; /* another error: the caller's */
    if (rc < 0 || bytes == NULL) {
        aredis__finish_error(c, cmd, AREDIS_EPROTO,
                             rc < 0 ? err
                                    : "redirected, but the command's bytes "
                                      "were not kept");
        aredis__cmd_free(c, cmd);
        return 1;
    }
    /* Copied before anything is submitted: they may be in the buffer of
     * the connection the command goes to next. */
    if (keep(cl, cmd, bytes, 0))
        return 1;
    if (++cmd->redirects > c->cfg.more->cluster_max_redirects) {
        quote(said, r);
        aredis__msgf(err, sizeof err,
                     "too many cluster redirects (%d), last: %s (from %s:%d)",
                     c->cfg.more->cluster_max_redirects, said, from->host,
                     from->port);
        aredis__finish_error(c, cmd, AREDIS_EPROTO, err);
        aredis__cmd_free(c, cmd);
        return 1;
    }
    /* An unknown endpoint is the host that answered. */
    const char *host = rd.host[0] != '\0' ? rd.host : from->host;
    cnode *n = node_at(cl, host, rd.port);
    int e = n == NULL ? AREDIS_ENOMEM : 0;
    if (e == 0 && rd.kind == AREDIS__REDIRECT_MOVED) {
        int k = shard_of(cl, n);
        if (k >= 0) {
            cl->slot[rd.slot] = (uint16_t)k;
            n->serving = 1;
        }
        request_refresh(cl);
    }
    if (e == 0 && rd.kind == AREDIS__REDIRECT_ASK) {
        /* ASKING, then the command, back to back on one connection: the
         * shared one, or the exclusive one the pool gives a blocking
         * command (it sends ASKING first). */
        static const char asking[] = "*1\r\n$6\r\nASKING\r\n";
        if (cmd->flags & AREDIS__CMD_BLOCKING)
            cmd->flags |= AREDIS__CMD_ASKING;
        else
            e = aredis__submit_encoded(c, &n->node.main, NULL, NULL, asking,
                                       sizeof asking - 1);
    }
    if (e == 0)
        e = send_to(&n->node, cmd);
    if (e != 0) {
        aredis__finish_error(c, cmd, e, "out of memory following a redirect");
        aredis__cmd_free(c, cmd);
    }
    return 1;
}

static void cl_node_lost(aredis__topology *t, aredis__node *n, int code)
{
    (void)code;
    cluster *cl = of(t);
    cnode *x = cnode_of(n);
    if (x->dropped || t->c->freeing)
        return;
    x->lost = 1;
    request_refresh(cl);
    kick(cl); /* from the loop: not inside the lost link's actions */
}

static void cl_free(aredis__topology *t)
{
    cluster *cl = of(t);
    aredis_client *c = t->c;
    aredis__loop_undefer(c->loop, &cl->kick);
    if (cl->timer != NULL)
        aredis__loop_timer_stop(c->loop, cl->timer);
    cl->timer = NULL;
    aredis__cmd *held = aredis__held_take(&cl->held);
    aredis__cancel_list(c, held);
    cnode *n = cl->nodes;
    while (n != NULL) {
        cnode *next = n->next;
        aredis__node_cleanup(&n->node);
        aredis__free(n);
        n = next;
    }
    aredis__free(cl->shards);
    aredis__free(cl->learn);
    aredis__free(cl);
}

/* ---- queries for fan-out and the node API ----------------------------------
 * Read-only views of the map for client/fanout.c and the public node API
 * (aredis/cluster.h): they keep no pointer. */

/* out[0..max) gets n unless it is there already; the new count. */
static size_t add_unique(aredis__node **out, size_t k, size_t max,
                         aredis__node *n)
{
    for (size_t i = 0; i < k && i < max; i++)
        if (out[i] == n)
            return k;
    if (k < max)
        out[k] = n;
    return k + 1;
}

static size_t cl_nodes(aredis__topology *t, int which, aredis__node **out,
                       size_t max)
{
    cluster *cl = of(t);
    size_t k = 0;
    start(cl); /* a lazy client's first command may be a fan-out */
    if (which & AREDIS_NODES_PRIMARIES) {
        /* The primaries are the slots' owners: ranges are long, so the
         * owner changes rarely from one slot to the next. */
        cnode *last = NULL;
        for (size_t s = 0; s < AREDIS_CLUSTER_SLOTS; s++) {
            cnode *n = slot_owner(cl, (unsigned)s);
            if (n != NULL && n != last) {
                k = add_unique(out, k, max, &n->node);
                last = n;
            }
        }
    }
    if (which & AREDIS_NODES_REPLICAS)
        for (cnode *n = cl->nodes; n != NULL; n = n->next)
            if (n->node.role == AREDIS__ROLE_REPLICA)
                k = add_unique(out, k, max, &n->node);
    return k;
}

static aredis__node *cl_slot_node(aredis__topology *t, unsigned slot)
{
    start(of(t));
    cnode *n = slot_owner(of(t), slot);
    return n != NULL ? &n->node : NULL;
}

/* A wait for the map is held as the commands waiting for one are: it is
 * answered with the first map (or at the next maintenance, when the map
 * has come), or given back at its deadline. */
static void cl_hold_for_map(aredis__topology *t, aredis__cmd *cmd)
{
    cluster *cl = of(t);
    start(cl);
    hold(cl, cmd, 0);
}

static const char *cl_map_why(aredis__topology *t)
{
    cluster *cl = of(t);
    return cl->have_map || cl->why[0] == '\0' ? NULL : cl->why;
}

static const aredis__topology_vt cluster_vt = {
    .name = "cluster",
    .route = cl_route,
    .any = cl_any,
    .next = cl_next,
    .redirect = cl_redirect,
    .unwait = cl_unwait,
    .node_lost = cl_node_lost,
    .free = cl_free,
    .nodes = cl_nodes,
    .slot_node = cl_slot_node,
    .hold_for_map = cl_hold_for_map,
    .map_why = cl_map_why,
};

aredis__topology *aredis__cluster_new(aredis_client *c)
{
    if (c->cfg.more->nseeds == 0)
        return NULL;
    cluster *cl = aredis__calloc(1, sizeof *cl);
    if (cl == NULL)
        return NULL;
    cl->base.vt = &cluster_vt;
    cl->base.c = c;
    cl->base.keep_bytes = 1;
    cl->replica_reads = c->cfg.more->cluster_read_from != AREDIS_READ_PRIMARY;
    for (size_t s = 0; s < AREDIS_CLUSTER_SLOTS; s++)
        cl->slot[s] = AREDIS__SLOT_NONE;
    for (size_t i = 0; i < c->cfg.more->nseeds; i++) {
        if (node_at(cl, c->cfg.more->seeds[i].host,
                    c->cfg.more->seeds[i].port) == NULL) {
            cl_free(&cl->base);
            return NULL;
        }
    }
    if (aredis__loop_timer_start(c->loop, on_timer, cl, &cl->timer) != 0) {
        cl_free(&cl->base);
        return NULL;
    }
    cl->next_periodic = aredis__now_ms() + c->cfg.more->cluster_refresh_ms;
    if (!c->cfg.more->cluster_lazy)
        start(cl);
    return &cl->base;
}
