/* Private to the client folder: the client's state and the helpers shared
 * by client.c (life cycle, submit, completion, deadlines, routing),
 * link.c (one server connection: connect, handshake, I/O, reconnect),
 * pool.c (exclusive connections), handshake.c, threads.c and normalize.c. */
#ifndef AREDIS_CLIENT_CLIENT_INT_H
#define AREDIS_CLIENT_CLIENT_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "aredis/client.h"
#include "conn/conn.h"
#include "loop/loop.h"
#include "transport/transport.h"

/* Command flags the client keeps (the connection's own are in cc.flags). */
enum {
    AREDIS__CMD_DONE = 1 << 1,     /* its callback has run or is scheduled */
    AREDIS__CMD_RETRY = 1 << 8,    /* may be re-sent after a lost connection */
    AREDIS__CMD_BLOCKING = 1 << 9, /* goes to an exclusive connection */
    AREDIS__CMD_PENDING = 1 << 10, /* waiting for an exclusive connection */
    AREDIS__CMD_NO_RESEND = 1 << 11, /* fail rather than re-queue */
};

typedef struct aredis__link aredis__link;
typedef struct aredis__cmd aredis__cmd;

/* One command, from submit to completion: a single allocation. Its first
 * member is the connection's part (conn.h): the queue link, its bytes and
 * the connection's flags; the rest is the client's. While it is in no
 * connection (free list, done queue, pool queue) cc.next links it. */
struct aredis__cmd {
    aredis__conn_cmd cc;
    aredis_reply_cb cb; /* user callback, or NULL */
    void *ud;
    aredis_reply_hook hook;
    void *hook_ud;
    int64_t deadline;   /* absolute ms, 0: none */
    int64_t timeout_ms; /* what the deadline was computed from */
    size_t heap_idx;    /* position in the deadline heap + 1, 0: not in it */
    unsigned flags;     /* AREDIS__CMD_* */
    int norm;           /* built-in RESP2 -> RESP3 reshaping, see client */
    aredis__link *link; /* the link whose connection holds it, or NULL */
    int64_t wait_until; /* waiting for an exclusive connection until then */
};

/* The record a connection's part belongs to. */
static inline aredis__cmd *aredis__cmd_of(aredis__conn_cmd *cc)
{
    return (aredis__cmd *)cc;
}

static inline aredis__cmd *aredis__cmd_next(const aredis__cmd *cmd)
{
    return aredis__cmd_of(cmd->cc.next);
}

/* Built-in reshaping of RESP2 replies (normalize.c). */
enum {
    AREDIS__NORM_NONE,
    AREDIS__NORM_MAP,          /* flat array -> map */
    AREDIS__NORM_SET,          /* array -> set */
    AREDIS__NORM_PAIRS_DOUBLE, /* m,s,m,s -> [m,s(double)],... */
    AREDIS__NORM_DOUBLE,       /* bulk -> double */
    AREDIS__NORM_DOUBLES,      /* array of bulks -> array of doubles */
};

typedef struct arena_chunk arena_chunk;

struct aredis_reply_arena {
    arena_chunk *chunks;
    size_t used; /* in the first chunk */
};

typedef struct aredis__hook {
    char *name;
    size_t len;
    aredis_reply_hook fn;
    void *ud;
} aredis__hook;

/* One server connection: the driver of an aredis__conn. It feeds the
 * connection from the loop, the resolver and the transport, and takes its
 * actions: I/O, completions (through client.c), pushes and events. */
struct aredis__link {
    aredis_client *c;
    int exclusive; /* a pool member, not the shared connection */
    aredis__conn conn;

    aredis__resolve *resolving;
    struct sockaddr_storage *addrs;
    socklen_t *addrlens;
    size_t naddrs;
    aredis__transport *tp;
    void *io;
    int io_events;

    aredis__defer defer; /* service at the end of the loop turn */
    int service_wanted;
    int draining; /* taking the connection's actions */

    /* The pubsub whose subscriptions live on this link, or NULL. */
    struct aredis_pubsub *pubsub;

    /* Pool bookkeeping (exclusive links). */
    aredis__link *pool_next;
    int64_t idle_since;       /* 0 while busy */
    int borrowed;             /* held through aredis_client_acquire() */
    aredis__defer free_defer; /* a retired link is freed from the loop */
};

/* A command waiting for a free exclusive connection. */
typedef struct aredis__waiter aredis__waiter;

struct aredis_client {
    aredis_loop *loop;
    aredis__config cfg;
    aredis__conn_config conn_cfg; /* every connection's, from cfg */
    int freeing;
    int closing; /* aredis_client_close(): free once nothing is pending */
    int in_cb;   /* depth of user callbacks on the stack */

    aredis__link main;

    /* Exclusive connections. */
    aredis__link *pool;
    int pool_size;
    aredis__link *retired; /* closed, freed on the next loop turn */
    aredis__cmd *pool_wait_head, *pool_wait_tail; /* blocking commands */
    struct aredis__acq *acq_head, *acq_tail;      /* acquire() requests */
    struct aredis__acq *acq_granted; /* answered, callback still deferred */

    void *timer;
    int64_t timer_at; /* armed for this absolute time, 0: disarmed */

    /* Completions decided inside an API call, run from the loop. */
    aredis__cmd *done_head, *done_tail;
    aredis__defer defer;

    /* Commands with a deadline, a binary min-heap on cmd->deadline. */
    aredis__cmd **heap;
    size_t heap_len, heap_cap;

    size_t pending; /* callbacks still to run */
    aredis__cmd *free_cmds;
    size_t nfree_cmds;

    aredis__hook *hooks;
    size_t nhooks;
    aredis_reply_arena arena;
    aredis_push_cb push_cb;
    void *push_ud;
    aredis_conn_event_cb event_cb;
    void *event_ud;
    void *data;
    void (*data_free)(void *);

    aredis_buf scratch;            /* encoding area when not on the fast path */
    struct aredis_pubsub *pubsubs; /* every pubsub of this client */

    /* Thread-safe submissions (threads.c). */
    pthread_mutex_t ts_lock;
    struct aredis__ts_msg *ts_head, *ts_tail;
    void *ts_wake;
    int ts_ready;
    int ts_closed; /* under ts_lock: the client is being freed */
};

/* Submit already-encoded bytes (thread-safe path, exclusive links). */
int aredis__submit_encoded(aredis_client *c, aredis__link *target,
                           aredis_reply_cb cb, void *ud, const char *bytes,
                           size_t len);
/* Drain thread-safe submissions (threads.c), cancelling them when freeing. */
void aredis__ts_drain(aredis_client *c);

/* ---- client.c, for the files above ------------------------------------ */

aredis__cmd *aredis__cmd_new(aredis_client *c);
void aredis__cmd_free(aredis_client *c, aredis__cmd *cmd);
/* Run a command's callback; the one place that does. */
void aredis__finish(aredis_client *c, aredis__cmd *cmd, const aredis_reply *r);
void aredis__finish_error(aredis_client *c, aredis__cmd *cmd, int code,
                          const char *msg);
/* Deliver a server reply through the command's hook or normalisation. */
void aredis__deliver(aredis_client *c, aredis__cmd *cmd, const aredis_reply *r);
/* Complete from the loop, later (inside API calls). */
void aredis__defer_done(aredis_client *c, aredis__cmd *cmd, int code,
                        const char *msg);
void aredis__rearm(aredis_client *c);
/* Cancel (ECANCELED, "client freed") and free a list of commands. */
void aredis__cancel_list(aredis_client *c, aredis__cmd *cmd);
void aredis__emit(aredis_client *c, const aredis__link *l, int type, int code,
                  const char *msg, int64_t delay_ms, int attempt);

/* ---- link.c ------------------------------------------------------------ */

int aredis__link_init(aredis__link *l, aredis_client *c, int exclusive);
void aredis__link_cleanup(aredis__link *l);
/* Connect (from the loop, a little later) unless already connecting. */
void aredis__link_connect(aredis__link *l);
/* Queue a command on the link: straight into the connection when ready,
 * otherwise into its pending list; it completes from the loop. The bytes
 * are copied; bytes == NULL means they are already at the end of the
 * ready connection's output buffer (the fast path). 0 or AREDIS_ENOMEM. */
int aredis__link_submit(aredis__link *l, aredis__cmd *cmd, const char *bytes);
/* Called by the client's timer: connect deadlines and backoff ends. */
void aredis__link_timer(aredis__link *l, int64_t now);
/* Close the transport and detach every command the link holds (pending,
 * in flight, decided); the link is idle afterwards. */
aredis__cmd *aredis__link_take_all(aredis__link *l);

/* ---- pool.c ------------------------------------------------------------ */

void aredis__pool_route(aredis_client *c, aredis__cmd *cmd, const char *bytes);
/* A link finished its work (or failed): give it to a waiter or idle it. */
void aredis__pool_link_idle(aredis__link *l);
void aredis__pool_timer(aredis_client *c, int64_t now);
int64_t aredis__pool_next_deadline(const aredis_client *c);
void aredis__pool_free_all(aredis_client *c);
/* Remove a command waiting for an exclusive link; 1 if it was waiting. */
int aredis__pool_unwait(aredis_client *c, aredis__cmd *cmd);

/* Close a borrowed link for good (a pubsub's own connection, acquired
 * with aredis_client_acquire) and forget it. */
void aredis__pool_drop(aredis_client *c, aredis__link *l);

/* ---- pubsub.c ------------------------------------------------------------ */
/* A push frame (or, in RESP2 subscribed mode, any reply) on a link. Returns
 * 1 when it was a pub/sub frame (consumed), 0 for other pushes. */
int aredis__pubsub_push(aredis_client *c, aredis__link *l,
                        const aredis_reply *r);
void aredis__pubsub_link_ready(aredis__link *l);
void aredis__pubsub_link_lost(aredis__link *l);
/* The shared link is ready: pubsubs waiting to learn the protocol decide. */
void aredis__pubsub_main_ready(aredis_client *c);
/* The client is going away: detach every pubsub from it. */
void aredis__pubsub_detach_all(aredis_client *c);
/* Send a (P|S)(UN)SUBSCRIBE on a link: answered by push frames. */
int aredis__send_pushed(aredis_client *c, aredis__link *l, int argc,
                        const char *const *argv, const size_t *lens);

/* ---- threads.c --------------------------------------------------------- */
int aredis__ts_init(aredis_client *c);
void aredis__ts_cleanup(aredis_client *c);

/* ---- normalize.c ------------------------------------------------------- */
int aredis__norm_classify(const char *name, size_t len, const char *args,
                          size_t argslen, int argc);
const aredis_reply *aredis__normalize(aredis_reply_arena *a, int norm,
                                      const aredis_reply *r);

/* ---- commands.c: what the client knows about command names ------------- */
int aredis__cmd_is_read_only(const char *name, size_t len);
int aredis__cmd_is_blocking(const char *cmd, size_t len, int argc);

/* ---- arena.c ------------------------------------------------------------ */
void aredis__arena_reset(aredis_reply_arena *a);
void aredis__arena_cleanup(aredis_reply_arena *a);

#endif /* AREDIS_CLIENT_CLIENT_INT_H */
