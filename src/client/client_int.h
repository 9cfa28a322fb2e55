/* Private to the client folder: the client's state, the command record,
 * and the helpers shared by client.c (life cycle, submit, completion,
 * deadlines), threads.c and normalize.c, and used by the node
 * layer below to complete commands and report events (src/node). The
 * servers themselves are the topology's (src/topology). */
#ifndef AREDIS_CLIENT_CLIENT_INT_H
#define AREDIS_CLIENT_CLIENT_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "aredis/client.h"
#include "conn/conn.h"
#include "loop/loop.h"
#include "transport/transport.h"
#include "util/cmdtable.h"
#include "util/heap.h"

typedef struct aredis__node aredis__node;
typedef struct aredis__topology aredis__topology;

/* Command flags the client keeps (the connection's own are in cc.flags).
 * RETRY and NO_RESEND are the connection's bits of the same meaning, so
 * they are handed down with a mask. */
enum {
    AREDIS__CMD_DONE = 1 << 0,     /* its callback has run or is scheduled */
    AREDIS__CMD_BLOCKING = 1 << 1, /* goes to an exclusive connection */
    AREDIS__CMD_PENDING = 1 << 2,  /* waiting for an exclusive connection,
                                    * or held by the topology */
    AREDIS__CMD_RETRY = AREDIS__CC_RETRY,         /* may be re-sent after a lost
                                                   * connection */
    AREDIS__CMD_NO_RESEND = AREDIS__CC_NO_RESEND, /* fail rather than
                                                   * re-queue */
    /* Sent on a connection the caller chose (a borrowed one: transactions,
     * pub/sub), not routed by the topology: never redirected elsewhere. */
    AREDIS__CMD_PINNED = 1 << 5,
    /* Its cluster policy is not "route by key" (util/cmdtable.h): a
     * cluster client may send it to several nodes or refuse it. */
    AREDIS__CMD_FANOUT = 1 << 6,
    /* A cluster ASK redirect sends it to an exclusive connection (a
     * blocking command): ASKING goes right before it on that connection
     * (pool.c), once. */
    AREDIS__CMD_ASKING = 1 << 7,
};
_Static_assert(((AREDIS__CMD_DONE | AREDIS__CMD_BLOCKING | AREDIS__CMD_PENDING |
                 AREDIS__CMD_PINNED | AREDIS__CMD_FANOUT | AREDIS__CMD_ASKING) &
                (AREDIS__CMD_RETRY | AREDIS__CMD_NO_RESEND)) == 0,
               "command flags overlap");
_Static_assert(AREDIS__CMD_ASKING <= 0xff, "flags is a uint8_t");

typedef struct aredis__link aredis__link;
typedef struct aredis__cmd aredis__cmd;
typedef struct aredis__hook aredis__hook;

/* One command, from submit to completion: a single allocation. Its first
 * member is the connection's part (conn.h): the queue link, its bytes and
 * the connection's flags; the rest is the client's. While it is in no
 * connection (free list, done queue, pool queue) cc.next links it.
 *
 * Paid once per command in flight: AREDIS__CMD_SIZE bytes at most (a
 * static assertion below and tests/unit/test_client_unit.c hold it). */
struct aredis__cmd {
    aredis__conn_cmd cc;
    aredis_reply_cb cb; /* user callback, or NULL */
    void *ud;
    aredis__hook *hook; /* its reply hook (a reference), or NULL */
    /* In the client's deadline heap while it has a deadline: key is the
     * absolute time in ms. */
    aredis__heap_node dl;
    union {
        aredis__link *link; /* the link whose connection holds it, or NULL */
        int64_t wait_until; /* AREDIS__CMD_PENDING: waiting for an exclusive
                             * connection until then (or, held by the
                             * topology, its own use) */
    };
    uint32_t timeout_ms; /* what the deadline was computed from, capped */
    uint8_t flags;       /* AREDIS__CMD_* */
    uint8_t norm;        /* built-in RESP2 -> RESP3 reshaping, see client */
    uint8_t redirects;   /* cluster redirects followed so far */
    uint8_t retries;     /* cluster retries (TRYAGAIN, CLUSTERDOWN, a node
                          * lost) so far */
};

/* The bookkeeping a command in flight costs, its bytes aside. */
#define AREDIS__CMD_SIZE 96
_Static_assert(sizeof(aredis__cmd) <= AREDIS__CMD_SIZE,
               "the command record outgrew its budget");

/* Run a user callback: the one way user code is called from the library,
 * keeping count of the callbacks on the stack (c->in_cb). c may be NULL
 * (a pubsub whose client is gone). */
#define AREDIS__USER_CB(c, call)     \
    do {                             \
        aredis_client *ucb_c_ = (c); \
        if (ucb_c_ != NULL)          \
            ucb_c_->in_cb++;         \
        call;                        \
        if (ucb_c_ != NULL)          \
            ucb_c_->in_cb--;         \
    } while (0)

/* An error reply with a client-side code and message (borrowed), as every
 * failed command's callback receives it. */
static inline aredis_reply aredis__error_reply(int code, const char *msg)
{
    aredis_reply r;
    memset(&r, 0, sizeof r);
    r.type = AREDIS_REPLY_ERROR;
    r.code = code;
    r.str = msg;
    r.len = strlen(msg);
    return r;
}

/* The record a connection's part belongs to. */
static inline aredis__cmd *aredis__cmd_of(aredis__conn_cmd *cc)
{
    return (aredis__cmd *)cc;
}

static inline aredis__cmd *aredis__cmd_next(const aredis__cmd *cmd)
{
    return aredis__cmd_of(cmd->cc.next);
}

typedef struct arena_chunk arena_chunk;

struct aredis_reply_arena {
    arena_chunk *chunks;
    size_t used; /* in the first chunk */
};

/* A reply hook: the table holds one reference while it is registered,
 * each command submitted under it one more, so a command keeps the hook
 * it was submitted with whatever the table does meanwhile. */
struct aredis__hook {
    char *name;
    size_t len;
    aredis_reply_hook fn;
    void *ud;
    size_t refs;
};

/* An internal observer of the client's links: the client-side cache
 * (extras/client_cache.c), at most one per client. It sees every push
 * first (returning 1 consumes it) and every connection event, on every
 * link (it picks the ones it watches: the shared link, its own redirect
 * connection), and is told when the client is released, from the loop,
 * before the links are torn down. */
typedef struct aredis__watch {
    int (*push)(void *ud, aredis__link *l, const aredis_reply *r);
    void (*event)(void *ud, aredis__link *l, int event); /* AREDIS__EV_* */
    void (*release)(void *ud);
    void *ud;
} aredis__watch;

/* A command waiting for a free exclusive connection. */
typedef struct aredis__waiter aredis__waiter;

struct aredis_client {
    aredis_loop *loop;
    aredis__config cfg;
    aredis__conn_config conn_cfg; /* every connection's, from cfg */
    uint16_t in_cb;               /* depth of user callbacks on the stack */
    uint8_t tm_on;     /* in the loop's clients' shared timer (client.c) */
    uint8_t freeing;   /* 1: aredis_client_free(); 2: being released */
    uint8_t closing;   /* aredis_client_close(): free once nothing is pending */
    uint8_t ts_listed; /* threads.c: on the hub's list of clients with
                        * messages */
    uint8_t ts_closed; /* threads.c: closing or being freed */
    uint8_t nodes_due; /* a node had a deadline when aredis__rearm() last
                        * looked (aredis__rearm_link() looks again) */

    /* Counts, 32 bits: each pending callback and each spare record holds
     * a command record of its own (or a fan-out's), so four billion of
     * them would not fit in memory. */
    uint32_t pending; /* callbacks still to run */
    uint32_t nfree_cmds;
    /* The most commands pending at once in this burst (since the free
     * list was last trimmed) and in the one before. */
    uint32_t burst_peak, last_peak;
    uint32_t nhooks;

    /* Which server each command goes to (standalone, later cluster and
     * sentinel): the client does not know which one it has. */
    aredis__topology *topo;

    /* The earliest time its timers need (key), in the loop's clients'
     * shared timer (client.c) while it needs one. */
    aredis__heap_node tnode;

    /* Completions decided inside an API call, run from the loop. */
    aredis__cmd *done_head, *done_tail;
    aredis__defer defer;

    /* Commands with a deadline (cmd->dl). */
    aredis__heap deadlines;

    aredis__cmd *free_cmds;
    aredis__hook **hooks;
    aredis__cmdmemo memo; /* the names submitted last, classified */
    aredis_reply_arena arena;
    aredis_push_cb push_cb;
    void *push_ud;
    aredis_conn_event_cb event_cb;
    void *event_ud;
    const aredis__watch *watch; /* NULL: none */
    void *data;
    void (*data_free)(void *);

    aredis_buf scratch;            /* encoding area when not on the fast path */
    struct aredis_pubsub *pubsubs; /* every pubsub of this client */
    /* Fan-outs waiting for a cluster's slot map (fanout.c). */
    struct aredis__fanout *fanouts;

    /* Thread-safe submissions (threads.c): the lock and the wake-up are
     * the loop's clients' shared hub's; the rest is under that lock. */
    struct aredis__ts_hub *ts_hub; /* NULL until aredis__ts_init() */
    struct aredis__ts_msg *ts_head, *ts_tail;
    aredis_client *ts_next; /* in the hub's list of clients with messages */
};

/* Submit already-encoded bytes (thread-safe path, exclusive links). */
int aredis__submit_encoded(aredis_client *c, aredis__link *target,
                           aredis_reply_cb cb, void *ud, const char *bytes,
                           size_t len);
/* The shared connection of the node that takes work naming no key. */
aredis__link *aredis__client_main(aredis_client *c);
/* Drain thread-safe submissions (threads.c), cancelling them when freeing. */
void aredis__ts_drain(aredis_client *c);

/* ---- client.c, for the files above ------------------------------------ */

aredis__cmd *aredis__cmd_new(aredis_client *c);
void aredis__cmd_free(aredis_client *c, aredis__cmd *cmd);
/* Give a command a copy of its bytes (cmd->cc.len of them) unless it has
 * one, for whoever sends it later from outside any connection: 0 or
 * AREDIS_ENOMEM. */
int aredis__cmd_keep(aredis__cmd *cmd, const char *bytes);
/* Run a command's callback; the one place that does. */
void aredis__finish(aredis_client *c, aredis__cmd *cmd, const aredis_reply *r);
void aredis__finish_error(aredis_client *c, aredis__cmd *cmd, int code,
                          const char *msg);
/* Deliver a server reply through the command's hook or normalisation.
 * Returns 1 when the topology took the command back instead (a redirect:
 * it is not completed and no longer the caller's), else 0. from is the
 * link that answered. */
int aredis__deliver(aredis_client *c, aredis__cmd *cmd, aredis__link *from,
                    const aredis_reply *r);
/* Complete from the loop, later (inside API calls). */
void aredis__defer_done(aredis_client *c, aredis__cmd *cmd, int code,
                        const char *msg);
void aredis__rearm(aredis_client *c);
/* aredis__rearm() after a service of link l: looks at every node only when
 * one may have a deadline (l's connection has one, or a node had one). */
void aredis__rearm_link(aredis_client *c, const aredis__link *l);
/* Cancel (ECANCELED, "client freed") and free a list of commands. */
void aredis__cancel_list(aredis_client *c, aredis__cmd *cmd);
void aredis__emit(aredis_client *c, const aredis__link *l, int type, int code,
                  const char *msg, int64_t delay_ms, int attempt);

/* Submit encoded bytes like aredis_command_opts() (o may be NULL) to a
 * node's shared or a borrowed link (target), or routed by the topology
 * with no fan-out (target NULL). */
int aredis__submit_bytes(aredis_client *c, aredis__link *target,
                         const aredis_cmd_opts *o, aredis_reply_cb cb, void *ud,
                         const char *bytes, size_t len);
/* A callback owed outside any command record has run or is on its way
 * (fanout.c waiting for the map): one less pending; closes the client
 * when it was the last thing a close waited for. */
void aredis__pending_done(aredis_client *c);

/* ---- fanout.c: commands a cluster sends to several nodes ---------------- */

typedef struct aredis__fanout aredis__fanout;
/* A command a caller submitted to a cluster client (not to a connection
 * of its choosing) whose cluster policy is not "route by key": sent to
 * several nodes (the record is freed, the parts are commands of their
 * own) or refused (completed with the reason). Returns 1 to route it as
 * usual (its keys share a slot), else it was taken and this is what the
 * submit call returns (0 or an error). k: its classification. */
int aredis__cluster_submit(aredis_client *c, aredis__cmd *cmd,
                           const char *bytes, const aredis__cmdclass *k,
                           const aredis_cmd_opts *o);
/* aredis_nodes_command: a map "host:port" -> reply over nodes of a kind,
 * each node's command with the options o (may be NULL). */
int aredis__nodes_submit(aredis_client *c, const aredis_cmd_opts *o, int which,
                         aredis_reply_cb cb, void *ud, const char *bytes,
                         size_t len);
/* The client is closing: the fan-outs waiting for the map wait a little
 * more at most (the client fetches no map of its own accord any more). */
void aredis__fanout_closing(aredis_client *c);

/* ---- threads.c --------------------------------------------------------- */
int aredis__ts_init(aredis_client *c);
void aredis__ts_cleanup(aredis_client *c);
/* Refuse later thread-safe submissions (AREDIS_ESTATE). */
void aredis__ts_close(aredis_client *c);
/* 1 while submissions from other threads wait for the loop. */
int aredis__ts_queued(aredis_client *c);
/* The wake-up source of those submissions (NULL before init). */
void *aredis__ts_wake(aredis_client *c);

/* ---- normalize.c: norm is an AREDIS__NORM_* of util/cmdtable.h ---------- */
const aredis_reply *aredis__normalize(aredis_reply_arena *a, int norm,
                                      const aredis_reply *r);

/* ---- arena.c ------------------------------------------------------------ */
void aredis__arena_reset(aredis_reply_arena *a);
void aredis__arena_cleanup(aredis_reply_arena *a);

#endif /* AREDIS_CLIENT_CLIENT_INT_H */
