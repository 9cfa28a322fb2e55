/* Interface of the node layer to the client and the topologies: one
 * server.
 *
 * A node is one server: its address and role, its shared (multiplexed)
 * connection, its bounded pool of exclusive connections, and the pub/sub
 * state that lives on them. Each connection is an aredis__link: the thin
 * I/O driver of a sans-I/O aredis__conn (src/conn), fed from the loop and
 * the transport. Topologies (src/topology) own nodes and pick one per
 * command; the client above never names a connection.
 *
 * The node completes the client's command records and reports events
 * through client_int.h (aredis__finish, aredis__emit, ...): that is the
 * one way back up, and it runs only from the loop. */
#ifndef AREDIS_NODE_NODE_H
#define AREDIS_NODE_NODE_H

#include <stdint.h>

#include "client/client_int.h"

/* What a topology knows of a server's role. */
enum {
    AREDIS__ROLE_UNKNOWN,
    AREDIS__ROLE_MASTER,
    AREDIS__ROLE_REPLICA,
};

/* One server connection: the driver of an aredis__conn. It feeds the
 * connection from the loop, the resolver and the transport, and takes its
 * actions: I/O, completions (through client.c), pushes and events. */
struct aredis__link {
    aredis_client *c;
    aredis__node *node; /* the server it connects to */
    aredis__conn conn;

    aredis__resolve *resolving;
    struct aredis__addrs *addrs; /* the attempt's addresses, or NULL */
    aredis__transport *tp;
    void *io;
    aredis__defer defer; /* service at the end of the loop turn */

    /* The pubsub whose subscriptions live on this link, or NULL. */
    struct aredis_pubsub *pubsub;

    uint8_t io_events;      /* AREDIS_EV_* the watcher has */
    uint8_t exclusive;      /* a pool member (an aredis__plink), not the
                             * shared connection */
    uint8_t borrowed;       /* held through aredis_client_acquire() */
    uint8_t locating;       /* waiting for the topology to find the address */
    uint8_t service_wanted; /* a service is deferred */
    uint8_t draining;       /* taking the connection's actions */
};

/* An exclusive connection: a link with its pool bookkeeping, which the
 * shared link (embedded in its node) does without. */
typedef struct aredis__plink {
    aredis__link link; /* first: an exclusive aredis__link is one of these */
    struct aredis__plink *next; /* in the pool, or in its retired list */
    int64_t idle_since;         /* 0 while busy */
    aredis__defer free_defer;   /* a retired link is freed from the loop */
} aredis__plink;

static inline aredis__plink *aredis__plink_of(aredis__link *l)
{
    return (aredis__plink *)l;
}

/* A node's exclusive connections and the callers waiting for one,
 * allocated at the node's first blocking command or acquire(): a node
 * that never needs one carries a NULL pointer. */
typedef struct aredis__pool {
    aredis__plink *links;
    int size;
    aredis__plink *retired; /* closed, freed on the next loop turn */
    aredis__cmd *wait_head, *wait_tail;      /* blocking commands */
    struct aredis__acq *acq_head, *acq_tail; /* acquire() requests */
    struct aredis__acq *acq_granted; /* answered, callback still deferred */
} aredis__pool;

struct aredis__node {
    aredis_client *c;
    /* NULL: the client's unix socket. Owned, unless it is the client's
     * own c->cfg.host (aredis__node_init with borrow): the one node of a
     * standalone client keeps no second copy. */
    char *host;
    /* Handshake steps every connection to it ends with (a cluster
     * replica's READONLY), replayed on every reconnect; borrowed, set with
     * aredis__node_set_steps(). */
    const aredis__conn_step *steps;
    int port;
    uint8_t nsteps;     /* a handful (aredis__conn.nextra) */
    uint8_t role;       /* AREDIS__ROLE_* */
    aredis__link main;  /* the shared connection */
    aredis__pool *pool; /* exclusive connections, NULL until needed */
};

/* The exclusive connections of a node, for a walk:
 * for (l = aredis__pool_first(n); l != NULL; l = aredis__pool_next(l)). */
static inline aredis__link *aredis__pool_first(const aredis__node *n)
{
    return n->pool != NULL && n->pool->links != NULL ? &n->pool->links->link
                                                     : NULL;
}

static inline aredis__link *aredis__pool_next(aredis__link *l)
{
    aredis__plink *next = aredis__plink_of(l)->next;
    return next != NULL ? &next->link : NULL;
}

/* ---- node.c ------------------------------------------------------------- */

/* A node for host:port (host NULL: the client's unix socket); host is
 * copied, unless it is c->cfg.host itself (then borrowed). 0 or
 * AREDIS_ENOMEM (then nothing to clean up). */
int aredis__node_init(aredis__node *n, aredis_client *c, const char *host,
                      int port);
/* Replace the node's host with an allocated one (taken) or NULL, freeing
 * the old one unless it was borrowed. */
void aredis__node_set_host(aredis__node *n, char *host);
/* Set the handshake steps of its connections (n->steps): the shared one
 * and the pooled ones take them at their next connect. */
void aredis__node_set_steps(aredis__node *n, const aredis__conn_step *steps,
                            size_t nsteps);
/* Cancel what it still holds (ECANCELED, "client freed") and free it all. */
void aredis__node_cleanup(aredis__node *n);
/* The client's timer fired: connect deadlines, backoff, the pool. */
void aredis__node_timer(aredis__node *n, int64_t now);
/* The earliest time its timers need, 0: none. Inline: the client asks
 * it of every node after each service of a connection. */
static inline int64_t aredis__node_next_deadline(const aredis__node *n);
/* A command waiting for an exclusive connection is gone (its deadline):
 * 1 if it was waiting here. */
int aredis__node_unwait(aredis__node *n, aredis__cmd *cmd);

/* ---- link.c: one connection's driver ------------------------------------ */

int aredis__link_init(aredis__link *l, aredis__node *n, int exclusive);
void aredis__link_cleanup(aredis__link *l);
/* Connect (from the loop, a little later) unless already connecting. */
void aredis__link_connect(aredis__link *l);
/* Queue a command on the link: straight into the connection when ready,
 * otherwise into its pending list; it completes from the loop. The bytes
 * are copied; bytes == NULL means they are already at the end of the
 * ready connection's output buffer (the fast path). 0 or AREDIS_ENOMEM. */
int aredis__link_submit(aredis__link *l, aredis__cmd *cmd, const char *bytes);
/* The topology found the node's address (code 0: node->host/port hold
 * it; the connection goes on and looks it up) or could not (code and msg
 * fail this connect attempt; the connection's reconnect policy decides
 * what next). A no-op unless the link waits for it (see the topology's
 * locate). Loop context. */
void aredis__link_located(aredis__link *l, int code, const char *msg);
/* The topology is still finding the address and asks a link that waits
 * for it (locating) to give it until `until` (absolute ms) instead of its
 * connect deadline: a sentinel failover takes longer than a connect. A
 * no-op for a link that does not wait. */
void aredis__link_wait_until(aredis__link *l, int64_t until);
/* The topology learnt that the server behind a working connection is the
 * wrong one (a READONLY from what should be the master): handle it as a
 * lost connection (code, msg), so it reconnects through locate. Loop
 * context, not from inside one of this link's actions. */
void aredis__link_lost(aredis__link *l, int code, const char *msg);
/* Called by the client's timer: connect deadlines and backoff ends. */
void aredis__link_timer(aredis__link *l, int64_t now);
/* cmd's deadline passed (the client completes it): take it out unsent
 * when none of its bytes were written (aredis__conn_cancel has the
 * rules), returning 1 and the record to the caller, cmd->link cleared; a
 * pooled link left with nothing to do is free again. Otherwise 0: it
 * stays, and its late reply is dropped. Loop context. */
int aredis__link_cancel(aredis__link *l, aredis__cmd *cmd);
/* Close the transport and detach every command the link holds (pending,
 * in flight, decided); the link is idle afterwards. */
aredis__cmd *aredis__link_take_all(aredis__link *l);
/* Detach the commands waiting for the connection to be ready (never
 * written, or written before and safe to send again: see conn.h); the
 * connection goes on as it was. For a topology that sends them elsewhere. */
aredis__cmd *aredis__link_take_pending(aredis__link *l);

/* ---- pool.c: exclusive connections -------------------------------------- */

void aredis__pool_route(aredis__node *n, aredis__cmd *cmd, const char *bytes);
/* A link finished its work (or failed): give it to a waiter or idle it. */
void aredis__pool_link_idle(aredis__link *l);
void aredis__pool_timer(aredis__node *n, int64_t now);
/* Close the idle exclusive connections now (the server left: a cluster
 * node dropped from the map); busy and lent ones are left to finish. */
void aredis__pool_close_idle(aredis__node *n);
int64_t aredis__pool_next_deadline(const aredis__node *n);
void aredis__pool_free_all(aredis__node *n);
/* 1 when the node has no exclusive connection (busy, lent, idle or
 * retired) and nobody waits for one. */
int aredis__pool_empty(const aredis__node *n);
/* Remove a command waiting for an exclusive link; 1 if it was waiting. */
int aredis__pool_unwait(aredis__node *n, aredis__cmd *cmd);
/* Lend a connection (aredis_client_acquire on this node). */
int aredis__pool_acquire(aredis__node *n, aredis_acquire_cb cb, void *ud);
/* A command in flight on a pooled (not borrowed) link timed out: close the
 * link, which unblocks the server, and serve the waiters with a new one.
 * Safe from the client's timer; the timed-out command is freed. */
void aredis__pool_abandon(aredis__link *l);
/* Close a borrowed link for good (a pubsub's own connection, acquired
 * with aredis_client_acquire) and forget it. */
void aredis__pool_drop(aredis__link *l);

/* ---- pubsub.c: the pub/sub state on a node's links ---------------------- */
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

static inline int64_t aredis__node_next_deadline(const aredis__node *n)
{
    int64_t a = aredis__conn_deadline(&n->main.conn);
    if (n->pool == NULL) /* no exclusive connection was ever needed */
        return a;
    int64_t b = aredis__pool_next_deadline(n);
    return a == 0 || (b != 0 && b < a) ? b : a;
}

#endif /* AREDIS_NODE_NODE_H */
