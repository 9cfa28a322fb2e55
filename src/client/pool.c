/* Exclusive connections (client layer): a bounded pool of links that each
 * serve one caller at a time, beside the shared multiplexed link.
 *
 * Blocking commands are routed here automatically so they never stall the
 * shared connection; aredis_client_acquire() lends a whole connection for
 * a sequence (WATCH ... EXEC). Callers beyond pool_max wait in FIFO order
 * up to pool_wait_ms; idle links close after pool_idle_ms. A link given
 * back with replies unread is closed, never reused. */
#include <stdio.h>
#include <string.h>

#include "aredis/error.h"
#include "client/client_int.h"
#include "util/alloc.h"

struct aredis__acq {
    struct aredis__acq *next;
    aredis_client *c;
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
    return !l->borrowed && l->idle_since != 0;
}

static aredis__link *find_free(aredis_client *c)
{
    for (aredis__link *l = c->pool; l != NULL; l = l->pool_next)
        if (is_free(l))
            return l;
    return NULL;
}

static aredis__link *new_link(aredis_client *c)
{
    if (c->pool_size >= c->cfg.pool_max)
        return NULL;
    aredis__link *l = aredis__calloc(1, sizeof *l);
    if (l == NULL)
        return NULL;
    if (aredis__link_init(l, c, 1) != 0) {
        aredis__link_cleanup(l);
        aredis__free(l);
        return NULL;
    }
    l->pool_next = c->pool;
    c->pool = l;
    c->pool_size++;
    return l;
}

/* Close a link and take it out of the pool; what it still carried
 * completes later, from the loop. The memory is not freed here. */
static void detach_link(aredis_client *c, aredis__link *l, int code,
                        const char *msg)
{
    aredis__cmd *cmd = aredis__link_take_all(l);
    while (cmd != NULL) {
        aredis__cmd *next = aredis__cmd_next(cmd);
        if (cmd->flags & AREDIS__CMD_DONE)
            aredis__cmd_free(c, cmd);
        else
            aredis__defer_done(c, cmd, code, msg);
        cmd = next;
    }
    for (aredis__link **pp = &c->pool; *pp != NULL; pp = &(*pp)->pool_next) {
        if (*pp == l) {
            *pp = l->pool_next;
            break;
        }
    }
    c->pool_size--;
}

static void destroy_link(aredis_client *c, aredis__link *l, int code,
                         const char *msg)
{
    detach_link(c, l, code, msg);
    aredis__link_cleanup(l);
    aredis__free(l);
}

static void free_retired(void *arg)
{
    aredis__link *l = arg;
    aredis_client *c = l->c;
    for (aredis__link **pp = &c->retired; *pp != NULL; pp = &(*pp)->pool_next)
        if (*pp == l) {
            *pp = l->pool_next;
            break;
        }
    aredis__link_cleanup(l);
    aredis__free(l);
}

/* Like destroy_link(), but the memory goes on the next loop turn: a
 * callback running for this very link (a reply being delivered, a
 * failure being reported) may be the one giving it back, and the code
 * around that callback still uses the link and its reply. */
static void retire_link(aredis_client *c, aredis__link *l, int code,
                        const char *msg)
{
    detach_link(c, l, code, msg);
    l->borrowed = 1; /* never lent again */
    l->pubsub = NULL;
    l->pool_next = c->retired;
    c->retired = l;
    aredis__loop_defer(c->loop, &l->free_defer, free_retired, l);
}

static void acq_done(void *arg)
{
    struct aredis__acq *a = arg;
    aredis_client *c = a->c;
    for (struct aredis__acq **pp = &c->acq_granted; *pp != NULL;
         pp = &(*pp)->next)
        if (*pp == a) {
            *pp = a->next;
            break;
        }
    c->in_cb++;
    a->cb(c, (aredis_exclusive *)a->got, a->failed, a->ud);
    c->in_cb--;
    aredis__free(a);
}

/* An answered request waits for its callback on the acq_granted list, so
 * a client released first still finds it (aredis__pool_free_all). */
static void grant(aredis_client *c, struct aredis__acq *a)
{
    a->next = c->acq_granted;
    c->acq_granted = a;
    aredis__loop_defer(c->loop, &a->defer, acq_done, a);
}

/* Hand a free (or new) link to the oldest waiter, if there is one. */
static int serve_one(aredis_client *c, aredis__link *l)
{
    if (c->pool_wait_head != NULL) {
        aredis__cmd *cmd = c->pool_wait_head;
        c->pool_wait_head = aredis__cmd_next(cmd);
        if (c->pool_wait_head == NULL)
            c->pool_wait_tail = NULL;
        cmd->flags &= ~(unsigned)AREDIS__CMD_PENDING;
        cmd->cc.next = NULL;
        l->idle_since = 0;
        if (aredis__link_submit(l, cmd, cmd->cc.copy) != 0)
            aredis__defer_done(c, cmd, AREDIS_ENOMEM, "out of memory");
        else if (!(cmd->flags & AREDIS__CMD_RETRY)) {
            aredis__free(cmd->cc.copy);
            cmd->cc.copy = NULL;
        }
        return 1;
    }
    if (c->acq_head != NULL) {
        struct aredis__acq *a = c->acq_head;
        c->acq_head = a->next;
        if (c->acq_head == NULL)
            c->acq_tail = NULL;
        l->idle_since = 0;
        l->borrowed = 1;
        a->got = l;
        if (l->conn.state == AREDIS__ST_IDLE)
            aredis__link_connect(l);
        grant(c, a);
        return 1;
    }
    return 0;
}

static void fail_oldest_nomem(aredis_client *c)
{
    if (c->pool_wait_head != NULL) {
        aredis__cmd *cmd = c->pool_wait_head;
        aredis__pool_unwait(c, cmd);
        aredis__defer_done(c, cmd, AREDIS_ENOMEM, "out of memory");
        return;
    }
    struct aredis__acq *a = c->acq_head;
    c->acq_head = a->next;
    if (c->acq_head == NULL)
        c->acq_tail = NULL;
    a->got = NULL;
    a->failed = AREDIS_ENOMEM;
    grant(c, a);
}

/* Give waiters every link that is free or can still be created. */
static void serve(aredis_client *c)
{
    while (c->pool_wait_head != NULL || c->acq_head != NULL) {
        aredis__link *l = find_free(c);
        if (l == NULL && c->pool_size < c->cfg.pool_max &&
            (l = new_link(c)) == NULL) {
            fail_oldest_nomem(c); /* out of memory, not a full pool */
            continue;
        }
        if (l == NULL)
            break;
        if (!serve_one(c, l))
            break;
    }
    aredis__rearm(c);
}

void aredis__pool_route(aredis_client *c, aredis__cmd *cmd, const char *bytes)
{
    if (cmd->cc.copy == NULL &&
        (cmd->cc.copy = aredis__strndup(bytes, cmd->cc.len)) == NULL) {
        aredis__defer_done(c, cmd, AREDIS_ENOMEM, "out of memory");
        return;
    }
    cmd->flags |= AREDIS__CMD_PENDING;
    cmd->link = NULL;
    cmd->cc.next = NULL;
    cmd->wait_until = aredis__now_ms() + c->cfg.pool_wait_ms;
    if (c->pool_wait_tail)
        c->pool_wait_tail->cc.next = &cmd->cc;
    else
        c->pool_wait_head = cmd;
    c->pool_wait_tail = cmd;
    serve(c);
}

int aredis__pool_unwait(aredis_client *c, aredis__cmd *cmd)
{
    aredis__cmd *prev = NULL;
    for (aredis__cmd *q = c->pool_wait_head; q != NULL;
         prev = q, q = aredis__cmd_next(q)) {
        if (q != cmd)
            continue;
        if (prev)
            prev->cc.next = q->cc.next;
        else
            c->pool_wait_head = aredis__cmd_next(q);
        if (c->pool_wait_tail == q)
            c->pool_wait_tail = prev;
        cmd->flags &= ~(unsigned)AREDIS__CMD_PENDING;
        cmd->cc.next = NULL;
        return 1;
    }
    return 0;
}

void aredis__pool_link_idle(aredis__link *l)
{
    aredis_client *c = l->c;
    if (l->borrowed || !aredis__conn_idle(&l->conn) || c->freeing)
        return;
    if (!serve_one(c, l)) {
        l->idle_since = aredis__now_ms();
        aredis__rearm(c);
    }
}

void aredis__pool_timer(aredis_client *c, int64_t now)
{
    aredis__link *l = c->pool;
    while (l != NULL) {
        aredis__link *next = l->pool_next;
        aredis__link_timer(l, now);
        if (is_free(l) && now - l->idle_since >= c->cfg.pool_idle_ms)
            destroy_link(c, l, AREDIS_ECANCELED, "idle connection closed");
        l = next;
    }
    while (c->pool_wait_head != NULL && c->pool_wait_head->wait_until <= now) {
        aredis__cmd *cmd = c->pool_wait_head;
        aredis__pool_unwait(c, cmd);
        aredis__finish_error(c, cmd, AREDIS_EBUSY, pool_busy);
        aredis__cmd_free(c, cmd);
    }
    while (c->acq_head != NULL && c->acq_head->wait_until <= now) {
        struct aredis__acq *a = c->acq_head;
        c->acq_head = a->next;
        if (c->acq_head == NULL)
            c->acq_tail = NULL;
        c->in_cb++;
        a->cb(c, NULL, AREDIS_EBUSY, a->ud);
        c->in_cb--;
        aredis__free(a);
    }
}

int64_t aredis__pool_next_deadline(const aredis_client *c)
{
    int64_t next = 0;
#define CONSIDER(t)                              \
    do {                                         \
        int64_t t_ = (t);                        \
        if (t_ != 0 && (next == 0 || t_ < next)) \
            next = t_;                           \
    } while (0)
    for (const aredis__link *l = c->pool; l != NULL; l = l->pool_next) {
        CONSIDER(aredis__conn_deadline(&l->conn));
        if (is_free(l))
            CONSIDER(l->idle_since + c->cfg.pool_idle_ms);
    }
    if (c->pool_wait_head != NULL)
        CONSIDER(c->pool_wait_head->wait_until);
    if (c->acq_head != NULL)
        CONSIDER(c->acq_head->wait_until);
#undef CONSIDER
    return next;
}

void aredis__pool_free_all(aredis_client *c)
{
    while (c->retired != NULL) {
        aredis__link *l = c->retired;
        c->retired = l->pool_next;
        aredis__loop_undefer(c->loop, &l->free_defer);
        aredis__link_cleanup(l);
        aredis__free(l);
    }
    while (c->pool != NULL) {
        aredis__link *l = c->pool;
        aredis__cancel_list(c, aredis__link_take_all(l));
        c->pool = l->pool_next;
        aredis__link_cleanup(l);
        aredis__free(l);
    }
    c->pool_size = 0;
    while (c->pool_wait_head != NULL) {
        aredis__cmd *cmd = c->pool_wait_head;
        aredis__pool_unwait(c, cmd);
        aredis__finish_error(c, cmd, AREDIS_ECANCELED,
                             "canceled: the client was freed");
        aredis__cmd_free(c, cmd);
    }
    while (c->acq_granted != NULL) {
        /* Answered, but the link just went with the pool. */
        struct aredis__acq *a = c->acq_granted;
        c->acq_granted = a->next;
        aredis__loop_undefer(c->loop, &a->defer);
        a->next = c->acq_head;
        c->acq_head = a;
    }
    while (c->acq_head != NULL) {
        struct aredis__acq *a = c->acq_head;
        c->acq_head = a->next;
        c->in_cb++;
        a->cb(c, NULL, AREDIS_ECANCELED, a->ud);
        c->in_cb--;
        aredis__free(a);
    }
    c->acq_tail = NULL;
}

void aredis__pool_drop(aredis_client *c, aredis__link *l)
{
    retire_link(c, l, AREDIS_ECANCELED, "canceled: the pubsub was freed");
    serve(c);
}

int aredis_client_acquire(aredis_client *c, aredis_acquire_cb cb, void *ud)
{
    if (c->freeing || c->closing)
        return AREDIS_ESTATE;
    if (cb == NULL)
        return AREDIS_EINVAL;
    struct aredis__acq *a = aredis__calloc(1, sizeof *a);
    if (a == NULL)
        return AREDIS_ENOMEM;
    a->c = c;
    a->cb = cb;
    a->ud = ud;
    a->wait_until = aredis__now_ms() + c->cfg.pool_wait_ms;
    if (c->acq_tail)
        c->acq_tail->next = a;
    else
        c->acq_head = a;
    c->acq_tail = a;
    serve(c);
    return 0;
}

void aredis_exclusive_release(aredis_exclusive *x)
{
    if (x == NULL)
        return;
    aredis__link *l = (aredis__link *)x;
    aredis_client *c = l->c;
    l->borrowed = 0;
    if (c->freeing)
        return; /* the final release closes every link */
    if (l->conn.broken || !aredis__conn_idle(&l->conn)) {
        retire_link(c, l, AREDIS_ECANCELED,
                    "canceled: the exclusive connection was released with "
                    "replies unread");
        serve(c);
        return;
    }
    aredis__pool_link_idle(l);
}
