/* Exclusive connections (node layer): a bounded pool of links to one
 * server that each serve one caller at a time, beside its shared
 * multiplexed link.
 *
 * Blocking commands are routed here automatically so they never stall the
 * shared connection; aredis_client_acquire() lends a whole connection for
 * a sequence (WATCH ... EXEC). Callers beyond pool_max wait in FIFO order
 * up to pool_wait_ms; idle links close after pool_idle_ms. A link given
 * back with replies unread is closed, never reused. */
#include <stdio.h>
#include <string.h>

#include "aredis/error.h"
#include "node/node.h"
#include "topology/topology.h"
#include "util/alloc.h"

struct aredis__acq {
    struct aredis__acq *next;
    aredis__node *n;
    aredis_acquire_cb cb;
    void *ud;
    int64_t wait_until;
    aredis__link *got;
    int failed; /* an error to report instead of a connection */
    aredis__defer defer;
};

static const char pool_busy[] =
    "no exclusive connection became free within pool_wait_ms";

static int is_free(const aredis__link *l)
{
    return !l->borrowed && ((const aredis__plink *)l)->idle_since != 0;
}

/* The node's pool, allocated at its first use; NULL when out of memory. */
static aredis__pool *pool_of(aredis__node *n)
{
    if (n->pool == NULL)
        n->pool = aredis__calloc(1, sizeof *n->pool);
    return n->pool;
}

static aredis__link *find_free(aredis__node *n)
{
    for (aredis__link *l = aredis__pool_first(n); l != NULL;
         l = aredis__pool_next(l))
        if (is_free(l))
            return l;
    return NULL;
}

static aredis__link *new_link(aredis__node *n)
{
    aredis_client *c = n->c;
    aredis__pool *p = n->pool;
    if (p->size >= c->cfg.pool_max)
        return NULL;
    aredis__plink *pl = aredis__calloc(1, sizeof *pl);
    if (pl == NULL)
        return NULL;
    if (aredis__link_init(&pl->link, n, 1) != 0) {
        aredis__link_cleanup(&pl->link);
        aredis__free(pl);
        return NULL;
    }
    pl->next = p->links;
    p->links = pl;
    p->size++;
    return &pl->link;
}

/* Close a link and take it out of the pool; what it still carried
 * completes later, from the loop. The memory is not freed here. */
static void detach_link(aredis__node *n, aredis__link *l, int code,
                        const char *msg)
{
    aredis_client *c = n->c;
    aredis__pool *p = n->pool;
    aredis__cmd *cmd = aredis__link_take_all(l);
    while (cmd != NULL) {
        aredis__cmd *next = aredis__cmd_next(cmd);
        if (cmd->flags & AREDIS__CMD_DONE)
            aredis__cmd_free(c, cmd);
        else
            aredis__defer_done(c, cmd, code, msg);
        cmd = next;
    }
    aredis__plink *pl = aredis__plink_of(l);
    for (aredis__plink **pp = &p->links; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == pl) {
            *pp = pl->next;
            break;
        }
    }
    p->size--;
}

static void destroy_link(aredis__node *n, aredis__link *l, int code,
                         const char *msg)
{
    detach_link(n, l, code, msg);
    aredis__link_cleanup(l);
    aredis__free(aredis__plink_of(l));
}

static void free_retired(void *arg)
{
    aredis__plink *pl = arg;
    aredis__pool *p = pl->link.node->pool;
    for (aredis__plink **pp = &p->retired; *pp != NULL; pp = &(*pp)->next)
        if (*pp == pl) {
            *pp = pl->next;
            break;
        }
    aredis__link_cleanup(&pl->link);
    aredis__free(pl);
}

/* Like destroy_link(), but the memory goes on the next loop turn: a
 * callback running for this very link (a reply being delivered, a
 * failure being reported) may be the one giving it back, and the code
 * around that callback still uses the link and its reply. */
static void retire_link(aredis__node *n, aredis__link *l, int code,
                        const char *msg)
{
    aredis_client *c = n->c;
    aredis__plink *pl = aredis__plink_of(l);
    detach_link(n, l, code, msg);
    l->borrowed = 1; /* never lent again */
    l->pubsub = NULL;
    pl->next = n->pool->retired;
    n->pool->retired = pl;
    aredis__loop_defer(c->loop, &pl->free_defer, free_retired, pl);
}

static void acq_done(void *arg)
{
    struct aredis__acq *a = arg;
    aredis__node *n = a->n;
    aredis_client *c = n->c;
    for (struct aredis__acq **pp = &n->pool->acq_granted; *pp != NULL;
         pp = &(*pp)->next)
        if (*pp == a) {
            *pp = a->next;
            break;
        }
    AREDIS__USER_CB(c, a->cb(c, (aredis_exclusive *)a->got, a->failed, a->ud));
    aredis__free(a);
}

/* An answered request waits for its callback on the acq_granted list, so
 * a client released first still finds it (aredis__pool_free_all). */
static void grant(aredis__node *n, struct aredis__acq *a)
{
    aredis_client *c = n->c;
    a->next = n->pool->acq_granted;
    n->pool->acq_granted = a;
    aredis__loop_defer(c->loop, &a->defer, acq_done, a);
}

/* Hand a free (or new) link to the oldest waiter, if there is one. */
static int serve_one(aredis__node *n, aredis__link *l)
{
    aredis_client *c = n->c;
    aredis__pool *p = n->pool;
    if (p->wait_head != NULL) {
        aredis__cmd *cmd = p->wait_head;
        p->wait_head = aredis__cmd_next(cmd);
        if (p->wait_head == NULL)
            p->wait_tail = NULL;
        cmd->flags &= (uint8_t)~AREDIS__CMD_PENDING;
        cmd->link = NULL; /* was wait_until */
        cmd->cc.next = NULL;
        aredis__plink_of(l)->idle_since = 0;
        if (cmd->flags & AREDIS__CMD_ASKING) {
            /* A cluster ASK: ASKING first, on the same connection. */
            static const char asking[] = "*1\r\n$6\r\nASKING\r\n";
            cmd->flags &= (uint8_t)~AREDIS__CMD_ASKING;
            int e = aredis__submit_encoded(c, l, NULL, NULL, asking,
                                           sizeof asking - 1);
            if (e != 0) {
                aredis__defer_done(c, cmd, e, aredis_strerror(e));
                return 1;
            }
        }
        if (aredis__link_submit(l, cmd, cmd->cc.copy) != 0)
            aredis__defer_done(c, cmd, AREDIS_ENOMEM, "out of memory");
        else if (!(cmd->flags & AREDIS__CMD_RETRY) || c->topo->keep_bytes) {
            /* Kept only for a retry, unless the connection keeps them
             * (keep_bytes: redirects find them there too). */
            aredis__free(cmd->cc.copy);
            cmd->cc.copy = NULL;
        }
        return 1;
    }
    if (p->acq_head != NULL) {
        struct aredis__acq *a = p->acq_head;
        p->acq_head = a->next;
        if (p->acq_head == NULL)
            p->acq_tail = NULL;
        aredis__plink_of(l)->idle_since = 0;
        l->borrowed = 1;
        a->got = l;
        if (l->conn.state == AREDIS__ST_IDLE)
            aredis__link_connect(l);
        grant(n, a);
        return 1;
    }
    return 0;
}

static void fail_oldest_nomem(aredis__node *n)
{
    aredis_client *c = n->c;
    aredis__pool *p = n->pool;
    if (p->wait_head != NULL) {
        aredis__cmd *cmd = p->wait_head;
        aredis__pool_unwait(n, cmd);
        aredis__defer_done(c, cmd, AREDIS_ENOMEM, "out of memory");
        return;
    }
    struct aredis__acq *a = p->acq_head;
    p->acq_head = a->next;
    if (p->acq_head == NULL)
        p->acq_tail = NULL;
    a->got = NULL;
    a->failed = AREDIS_ENOMEM;
    grant(n, a);
}

/* Give waiters every link that is free or can still be created. */
static void serve(aredis__node *n)
{
    aredis_client *c = n->c;
    aredis__pool *p = n->pool;
    while (p->wait_head != NULL || p->acq_head != NULL) {
        aredis__link *l = find_free(n);
        if (l == NULL && p->size < c->cfg.pool_max &&
            (l = new_link(n)) == NULL) {
            fail_oldest_nomem(n); /* out of memory, not a full pool */
            continue;
        }
        if (l == NULL)
            break;
        if (!serve_one(n, l))
            break;
    }
    aredis__rearm(c);
}

void aredis__pool_route(aredis__node *n, aredis__cmd *cmd, const char *bytes)
{
    aredis_client *c = n->c;
    aredis__pool *p = pool_of(n);
    if (p == NULL ||
        (cmd->cc.copy == NULL &&
         (cmd->cc.copy = aredis__strndup(bytes, cmd->cc.len)) == NULL)) {
        aredis__defer_done(c, cmd, AREDIS_ENOMEM, "out of memory");
        return;
    }
    cmd->flags |= AREDIS__CMD_PENDING;
    cmd->cc.next = NULL;
    cmd->wait_until = aredis__now_ms() + c->cfg.pool_wait_ms;
    if (p->wait_tail)
        p->wait_tail->cc.next = &cmd->cc;
    else
        p->wait_head = cmd;
    p->wait_tail = cmd;
    serve(n);
}

int aredis__pool_unwait(aredis__node *n, aredis__cmd *cmd)
{
    aredis__pool *p = n->pool;
    if (p == NULL)
        return 0;
    aredis__cmd *prev = NULL;
    for (aredis__cmd *q = p->wait_head; q != NULL;
         prev = q, q = aredis__cmd_next(q)) {
        if (q != cmd)
            continue;
        if (prev)
            prev->cc.next = q->cc.next;
        else
            p->wait_head = aredis__cmd_next(q);
        if (p->wait_tail == q)
            p->wait_tail = prev;
        cmd->flags &= (uint8_t)~AREDIS__CMD_PENDING;
        cmd->link = NULL; /* was wait_until */
        cmd->cc.next = NULL;
        return 1;
    }
    return 0;
}

void aredis__pool_link_idle(aredis__link *l)
{
    aredis__node *n = l->node;
    aredis_client *c = l->c;
    if (l->borrowed || !aredis__conn_idle(&l->conn) || c->freeing)
        return;
    if (!serve_one(n, l)) {
        aredis__plink_of(l)->idle_since = aredis__now_ms();
        aredis__rearm(c);
    }
}

void aredis__pool_close_idle(aredis__node *n)
{
    aredis__link *l = aredis__pool_first(n);
    while (l != NULL) {
        aredis__link *next = aredis__pool_next(l);
        if (is_free(l))
            destroy_link(n, l, AREDIS_ECANCELED, "idle connection closed");
        l = next;
    }
}

void aredis__pool_timer(aredis__node *n, int64_t now)
{
    aredis_client *c = n->c;
    aredis__pool *p = n->pool;
    if (p == NULL)
        return;
    aredis__link *l = aredis__pool_first(n);
    while (l != NULL) {
        aredis__link *next = aredis__pool_next(l);
        aredis__link_timer(l, now);
        if (is_free(l) &&
            now - aredis__plink_of(l)->idle_since >= c->cfg.pool_idle_ms)
            destroy_link(n, l, AREDIS_ECANCELED, "idle connection closed");
        l = next;
    }
    while (p->wait_head != NULL && p->wait_head->wait_until <= now) {
        aredis__cmd *cmd = p->wait_head;
        aredis__pool_unwait(n, cmd);
        aredis__finish_error(c, cmd, AREDIS_EPOOL, pool_busy);
        aredis__cmd_free(c, cmd);
    }
    while (p->acq_head != NULL && p->acq_head->wait_until <= now) {
        struct aredis__acq *a = p->acq_head;
        p->acq_head = a->next;
        if (p->acq_head == NULL)
            p->acq_tail = NULL;
        AREDIS__USER_CB(c, a->cb(c, NULL, AREDIS_EPOOL, a->ud));
        aredis__free(a);
    }
}

int64_t aredis__pool_next_deadline(const aredis__node *n)
{
    const aredis_client *c = n->c;
    const aredis__pool *p = n->pool;
    if (p == NULL)
        return 0;
    int64_t next = 0;
#define CONSIDER(t)                              \
    do {                                         \
        int64_t t_ = (t);                        \
        if (t_ != 0 && (next == 0 || t_ < next)) \
            next = t_;                           \
    } while (0)
    for (const aredis__plink *pl = p->links; pl != NULL; pl = pl->next) {
        CONSIDER(aredis__conn_deadline(&pl->link.conn));
        if (is_free(&pl->link))
            CONSIDER(pl->idle_since + c->cfg.pool_idle_ms);
    }
    if (p->wait_head != NULL)
        CONSIDER(p->wait_head->wait_until);
    if (p->acq_head != NULL)
        CONSIDER(p->acq_head->wait_until);
#undef CONSIDER
    return next;
}

int aredis__pool_empty(const aredis__node *n)
{
    const aredis__pool *p = n->pool;
    return p == NULL ||
           (p->links == NULL && p->retired == NULL && p->wait_head == NULL &&
            p->acq_head == NULL && p->acq_granted == NULL);
}

void aredis__pool_free_all(aredis__node *n)
{
    aredis_client *c = n->c;
    aredis__pool *p = n->pool;
    if (p == NULL)
        return;
    while (p->retired != NULL) {
        aredis__plink *pl = p->retired;
        p->retired = pl->next;
        aredis__loop_undefer(c->loop, &pl->free_defer);
        aredis__link_cleanup(&pl->link);
        aredis__free(pl);
    }
    while (p->links != NULL) {
        aredis__plink *pl = p->links;
        aredis__cancel_list(c, aredis__link_take_all(&pl->link));
        p->links = pl->next;
        aredis__link_cleanup(&pl->link);
        aredis__free(pl);
    }
    p->size = 0;
    while (p->wait_head != NULL) {
        aredis__cmd *cmd = p->wait_head;
        aredis__pool_unwait(n, cmd);
        aredis__finish_error(c, cmd, AREDIS_ECANCELED,
                             "canceled: the client was freed");
        aredis__cmd_free(c, cmd);
    }
    while (p->acq_granted != NULL) {
        /* Answered, but the link just went with the pool. */
        struct aredis__acq *a = p->acq_granted;
        p->acq_granted = a->next;
        aredis__loop_undefer(c->loop, &a->defer);
        a->next = p->acq_head;
        p->acq_head = a;
    }
    while (p->acq_head != NULL) {
        struct aredis__acq *a = p->acq_head;
        p->acq_head = a->next;
        AREDIS__USER_CB(c, a->cb(c, NULL, AREDIS_ECANCELED, a->ud));
        aredis__free(a);
    }
    p->acq_tail = NULL;
    n->pool = NULL;
    aredis__free(p);
}

void aredis__pool_drop(aredis__link *l)
{
    aredis__node *n = l->node;
    retire_link(n, l, AREDIS_ECANCELED, "canceled: the pubsub was freed");
    serve(n);
}

int aredis__pool_acquire(aredis__node *n, aredis_acquire_cb cb, void *ud)
{
    aredis_client *c = n->c;
    if (c->freeing || c->closing)
        return AREDIS_ESTATE;
    if (cb == NULL)
        return AREDIS_EINVAL;
    aredis__pool *p = pool_of(n);
    struct aredis__acq *a = p != NULL ? aredis__calloc(1, sizeof *a) : NULL;
    if (a == NULL)
        return AREDIS_ENOMEM;
    a->n = n;
    a->cb = cb;
    a->ud = ud;
    a->wait_until = aredis__now_ms() + c->cfg.pool_wait_ms;
    if (p->acq_tail)
        p->acq_tail->next = a;
    else
        p->acq_head = a;
    p->acq_tail = a;
    serve(n);
    return 0;
}

void aredis__pool_abandon(aredis__link *l)
{
    aredis__node *n = l->node;
    retire_link(n, l, AREDIS_ETIMEDOUT,
                "a command before it on its exclusive connection timed out");
    serve(n);
}

void aredis_exclusive_release(aredis_exclusive *x)
{
    if (x == NULL)
        return;
    aredis__link *l = (aredis__link *)x;
    aredis__node *n = l->node;
    aredis_client *c = l->c;
    l->borrowed = 0;
    if (c->freeing)
        return; /* the final release closes every link */
    if (l->conn.broken || !aredis__conn_idle(&l->conn)) {
        retire_link(n, l, AREDIS_ECANCELED,
                    "canceled: the exclusive connection was released with "
                    "replies unread");
        serve(n);
        return;
    }
    aredis__pool_link_idle(l);
}

int aredis_client_acquire(aredis_client *c, aredis_acquire_cb cb, void *ud)
{
    if (c->freeing || c->closing)
        return AREDIS_ESTATE;
    aredis__node *n = c->topo->vt->any(c->topo);
    if (n == NULL)
        return AREDIS_ESTATE;
    return aredis__pool_acquire(n, cb, ud);
}
