/* The client (client layer): life cycle, submitting commands, routing them
 * to a connection, deadlines and the exactly-once completion rule.
 *
 * Every user callback runs through aredis__finish(), which marks the
 * command done first, so no path can complete a command twice; every path
 * that drops a command (reply, server error, timeout, lost connection,
 * refused connect, free) goes through it, so none can complete it zero
 * times. Callbacks run only from loop events or the loop's deferred queue,
 * never inside the API call that caused them. Connections live in link.c
 * (the shared one) and pool.c (exclusive ones). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aredis/error.h"
#include "client/client_int.h"
#include "node/node.h"
#include "resp/resp.h"
#include "topology/topology.h"
#include "util/alloc.h"
#include "util/cmdtable.h"
#include "util/inline.h"
#include "util/msg.h"

/* Spent command records kept for reuse. While commands are pending, every
 * record is kept. When none is (a burst has ended), the list is trimmed to
 * FREE_CMDS_SLACK more than the smaller of this burst's peak and the one
 * before: a burst that repeats (a pipeline run again, a steady window of W
 * in flight) recycles its records without allocating, while an idle
 * client keeps FREE_CMDS_SLACK records after a one-off burst, not the
 * burst's size. */
#define FREE_CMDS_SLACK 64

const char aredis__held_marker = 0;
const char aredis__bytes_marker = 0;

static void on_tick(void *arg);
static void schedule(aredis_client *c);

/* ------------------------------------------------------------------------
 * Command records and the deadline heap (util/heap.h)
 * ------------------------------------------------------------------------ */

aredis__cmd *aredis__cmd_new(aredis_client *c)
{
    aredis__cmd *cmd = c->free_cmds;
    if (cmd != NULL) {
        c->free_cmds = aredis__cmd_next(cmd);
        c->nfree_cmds--;
    } else if ((cmd = aredis__loop_spare_take(c->loop, AREDIS__SPARE_CMD)) ==
               NULL) {
        cmd = aredis__malloc(sizeof *cmd);
        if (cmd == NULL)
            return NULL;
    }
    memset(cmd, 0, sizeof *cmd);
    return cmd;
}

int aredis__cmd_keep(aredis__cmd *cmd, const char *bytes)
{
    if (cmd->cc.copy == NULL &&
        (cmd->cc.copy = aredis__strndup(bytes, cmd->cc.len)) == NULL)
        return AREDIS_ENOMEM;
    return 0;
}

static void hook_unref(aredis__hook *h)
{
    if (--h->refs > 0)
        return;
    aredis__free(h->name);
    aredis__free(h);
}

/* The encoding area goes to the loop's spare blocks (or is freed), for
 * whichever client encodes next; one too large for them stays. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void
give_scratch(aredis_client *c)
{
    if (c->scratch.data == NULL || c->scratch.len != 0)
        return;
    int kept =
        aredis__loop_spare_block_put(c->loop, c->scratch.data, c->scratch.cap);
    if (kept < 0)
        aredis_buf_cleanup(&c->scratch);
    else if (kept == 0)
        aredis_buf_init(&c->scratch);
}

void aredis__cmd_free(aredis_client *c, aredis__cmd *cmd)
{
    if (cmd->cc.copy != NULL) { /* most commands keep no copy */
        aredis__free(cmd->cc.copy);
        cmd->cc.copy = NULL;
    }
    if (cmd->hook != NULL) {
        hook_unref(cmd->hook);
        cmd->hook = NULL;
    }
    if (c->freeing) {
        aredis__free(cmd);
        return;
    }
    /* The last of a burst, or of a call: an idle client keeps no record
     * of its own, the loop keeps a few for whichever client needs one. */
    if (c->pending == 0) {
        if (aredis__loop_spare_put(c->loop, AREDIS__SPARE_CMD, cmd,
                                   aredis__free) != 0)
            aredis__free(cmd);
        give_scratch(c);
        /* The burst may be over: trim from the loop, once the callbacks
         * of this turn have had the chance to start the next one. */
        if (c->nfree_cmds > FREE_CMDS_SLACK)
            schedule(c);
        return;
    }
    cmd->cc.next = c->free_cmds != NULL ? &c->free_cmds->cc : NULL;
    c->free_cmds = cmd;
    c->nfree_cmds++;
}

/* Trim the free list after a burst (see FREE_CMDS_SLACK). */
static void trim_free_cmds(aredis_client *c)
{
    if (c->pending != 0 || c->nfree_cmds <= FREE_CMDS_SLACK)
        return;
    uint32_t keep =
        (c->burst_peak < c->last_peak ? c->burst_peak : c->last_peak) +
        FREE_CMDS_SLACK;
    c->last_peak = c->burst_peak;
    c->burst_peak = 0;
    while (c->nfree_cmds > keep) {
        aredis__cmd *spare = c->free_cmds;
        c->free_cmds = aredis__cmd_next(spare);
        c->nfree_cmds--;
        aredis__free(spare);
    }
}

static void heap_remove(aredis_client *c, aredis__cmd *cmd)
{
    if (aredis__heap_contains(&cmd->dl)) /* most commands have no deadline */
        aredis__heap_remove(&c->deadlines, &cmd->dl);
}

static aredis__cmd *earliest_cmd(const aredis_client *c)
{
    aredis__heap_node *n = aredis__heap_min(&c->deadlines);
    return n != NULL ? AREDIS__CONTAINER_OF(n, aredis__cmd, dl) : NULL;
}

static int64_t earliest(int64_t a, int64_t b)
{
    if (a == 0)
        return b;
    if (b == 0)
        return a;
    return a < b ? a : b;
}

/* ---- the clients' shared timer ------------------------------------------
 *
 * The clients of a loop share one loop timer: each is in the hub's heap,
 * keyed by the earliest time it needs (c->tnode), while it needs one, and
 * the timer is armed for the heap's first. The first client of a loop
 * starts it, the last one stops it, so an idle client holds no timer
 * handle of its own. */
typedef struct aredis__tm_hub {
    aredis__heap clients;
    void *timer;
    int64_t armed_at; /* 0: disarmed */
    aredis_loop *loop;
    size_t refs;
} aredis__tm_hub;

static void on_timer(aredis_client *c);

static void tm_arm(aredis__tm_hub *h)
{
    const aredis__heap_node *first = aredis__heap_min(&h->clients);
    int64_t at = first != NULL ? first->key : 0;
    if (at == h->armed_at)
        return;
    h->armed_at = at;
    if (at == 0) {
        aredis__loop_timer_set(h->loop, h->timer, -1);
        return;
    }
    int64_t ms = at - aredis__now_ms();
    aredis__loop_timer_set(h->loop, h->timer, ms < 0 ? 0 : ms);
}

/* Run every client that was due when the timer fired; one that a callback
 * re-keys waits for the next firing (its seq is newer), so a client
 * re-arming at once cannot keep this loop going. */
static void tm_fire(void *arg)
{
    aredis__tm_hub *h = arg;
    h->armed_at = 0;
    int64_t now = aredis__now_ms();
    uint64_t limit = h->clients.seq;
    aredis__heap_node *n;
    while ((n = aredis__heap_min(&h->clients)) != NULL && n->key <= now &&
           n->seq <= limit) {
        aredis__heap_remove(&h->clients, n);
        on_timer(AREDIS__CONTAINER_OF(n, aredis_client, tnode));
    }
    tm_arm(h);
}

static int tm_start(aredis_client *c)
{
    void **slot = aredis__loop_slot(c->loop, AREDIS__SLOT_TIMER);
    aredis__tm_hub *h = *slot;
    if (h == NULL) {
        h = aredis__calloc(1, sizeof *h);
        if (h == NULL)
            return AREDIS_ENOMEM;
        aredis__heap_init(&h->clients);
        int e = aredis__loop_timer_start(c->loop, tm_fire, h, &h->timer);
        if (e != 0) {
            aredis__free(h);
            return e;
        }
        h->loop = c->loop;
        *slot = h;
    }
    /* Room for every client in advance: re-keying never allocates. */
    if (aredis__heap_reserve(&h->clients, h->refs + 1) != 0) {
        if (h->refs == 0) {
            aredis__loop_timer_stop(h->loop, h->timer);
            aredis__heap_cleanup(&h->clients);
            *slot = NULL;
            aredis__free(h);
        }
        return AREDIS_ENOMEM;
    }
    h->refs++;
    c->tm_on = 1;
    return 0;
}

static void tm_stop(aredis_client *c)
{
    if (!c->tm_on)
        return;
    aredis__tm_hub *h = *aredis__loop_slot(c->loop, AREDIS__SLOT_TIMER);
    c->tm_on = 0;
    if (aredis__heap_contains(&c->tnode)) {
        aredis__heap_remove(&h->clients, &c->tnode);
        tm_arm(h);
    }
    if (--h->refs > 0)
        return;
    aredis__loop_timer_stop(h->loop, h->timer);
    aredis__heap_cleanup(&h->clients);
    *aredis__loop_slot(h->loop, AREDIS__SLOT_TIMER) = NULL;
    aredis__free(h);
}

/* Key the client in the shared timer for `next` (0: nothing due). */
static void rearm_at(aredis_client *c, int64_t next)
{
    aredis__tm_hub *h = *aredis__loop_slot(c->loop, AREDIS__SLOT_TIMER);
    int64_t at = aredis__heap_contains(&c->tnode) ? c->tnode.key : 0;
    if (next == at)
        return;
    if (next == 0)
        aredis__heap_remove(&h->clients, &c->tnode);
    else /* room was reserved by tm_start(): this cannot fail */
        (void)aredis__heap_set(&h->clients, &c->tnode, next);
    tm_arm(h);
}

static int64_t first_deadline(const aredis_client *c)
{
    const aredis__heap_node *first = aredis__heap_min(&c->deadlines);
    return first != NULL ? first->key : 0;
}

/* Key the client in the shared timer for the earliest deadline anything
 * has: commands, the nodes' connects, backoffs and pools. */
void aredis__rearm(aredis_client *c)
{
    if (!c->tm_on)
        return;
    int64_t due = 0;
    aredis__topology *t = c->topo;
    for (aredis__node *n = t->vt->next(t, NULL); n != NULL;
         n = t->vt->next(t, n))
        due = earliest(due, aredis__node_next_deadline(n));
    c->nodes_due = due != 0;
    rearm_at(c, earliest(first_deadline(c), due));
}

void aredis__rearm_link(aredis_client *c, const aredis__link *l)
{
    /* A node's deadline changes with a service of its link (a connect, a
     * loss, a backoff), from the pool, or from the timer, each of which
     * looks at every node; when none had one and this shared link has
     * none, the nodes still have none and only commands can be due. */
    if (c->nodes_due || l->exclusive || aredis__conn_deadline(&l->conn) != 0)
        aredis__rearm(c);
    else if (c->tm_on)
        rearm_at(c, first_deadline(c));
}

aredis__link *aredis__client_main(aredis_client *c)
{
    return &c->topo->vt->any(c->topo)->main;
}

void aredis__emit(aredis_client *c, const aredis__link *l, int type, int code,
                  const char *msg, int64_t delay_ms, int attempt)
{
    if (type == AREDIS_CONN_DISCONNECTED && !l->exclusive)
        c->topo->vt->node_lost(c->topo, l->node, code);
    if (c->event_cb == NULL || c->freeing)
        return;
    aredis_conn_event ev = {type, code, msg, delay_ms, attempt, l->exclusive};
    AREDIS__USER_CB(c, c->event_cb(c, &ev, c->event_ud));
}

/* ------------------------------------------------------------------------
 * Completion
 * ------------------------------------------------------------------------ */

static void schedule(aredis_client *c)
{
    aredis__loop_defer(c->loop, &c->defer, on_tick, c);
}

/* A closing client goes once every command submitted before the close has
 * completed: those of this thread (pending) and those other threads handed
 * over before it (still in the thread-safe queue, to be submitted by the
 * loop). */
static void close_if_done(aredis_client *c)
{
    if (!aredis__ts_queued(c))
        aredis_client_free(c);
}

void aredis__finish(aredis_client *c, aredis__cmd *cmd, const aredis_reply *r)
{
    if (cmd->flags & AREDIS__CMD_DONE)
        return;
    cmd->flags |= AREDIS__CMD_DONE;
    heap_remove(c, cmd);
    c->pending--;
    if (cmd->cb != NULL)
        AREDIS__USER_CB(c, cmd->cb(c, r, cmd->ud));
    if (c->closing && c->pending == 0)
        close_if_done(c);
}

void aredis__pending_done(aredis_client *c)
{
    c->pending--;
    if (c->closing && c->pending == 0)
        close_if_done(c);
}

void aredis__finish_error(aredis_client *c, aredis__cmd *cmd, int code,
                          const char *msg)
{
    aredis_reply r = aredis__error_reply(code, msg);
    aredis__finish(c, cmd, &r);
}

int aredis__deliver(aredis_client *c, aredis__cmd *cmd, aredis__link *from,
                    const aredis_reply *r)
{
    if (r->type == AREDIS_REPLY_ERROR &&
        c->topo->vt->redirect(c->topo, cmd, from->node,
                              cmd->cc.copy != NULL ? cmd->cc.copy
                                                   : aredis__conn_cmd_bytes(
                                                         &from->conn, &cmd->cc),
                              r))
        return 1;
    const aredis_reply *out = r;
    if (cmd->hook != NULL) {
        const aredis_reply *x = cmd->hook->fn(c, r, &c->arena, cmd->hook->ud);
        if (x != NULL)
            out = x;
    } else if (cmd->norm != AREDIS__NORM_NONE) {
        out = aredis__normalize(&c->arena, cmd->norm, r);
    }
    aredis__finish(c, cmd, out);
    if (c->arena.chunks != NULL)
        aredis__arena_reset(&c->arena);
    return 0;
}

void aredis__defer_done(aredis_client *c, aredis__cmd *cmd, int code,
                        const char *msg)
{
    /* Its outcome is decided: no deadline may complete it another way. */
    heap_remove(c, cmd);
    cmd->cc.code = (int16_t)code; /* error codes are small (error.h) */
    cmd->cc.msg = msg;
    cmd->link = NULL;
    cmd->cc.next = NULL;
    if (c->done_tail)
        c->done_tail->cc.next = &cmd->cc;
    else
        c->done_head = cmd;
    c->done_tail = cmd;
    schedule(c);
}

static void run_done(aredis_client *c)
{
    while (c->done_head != NULL && !c->freeing) {
        aredis__cmd *cmd = c->done_head;
        c->done_head = aredis__cmd_next(cmd);
        if (c->done_head == NULL)
            c->done_tail = NULL;
        if (cmd->cc.code != 0) {
            aredis__finish_error(c, cmd, cmd->cc.code, cmd->cc.msg);
        } else {
            /* A command the server does not answer (CLIENT REPLY). */
            aredis_reply nil;
            memset(&nil, 0, sizeof nil);
            nil.type = AREDIS_REPLY_NIL;
            aredis__finish(c, cmd, &nil);
        }
        aredis__cmd_free(c, cmd);
    }
}

/* ------------------------------------------------------------------------
 * Loop events
 * ------------------------------------------------------------------------ */

/* Take a command the topology or a node's pool holds (AREDIS__CMD_PENDING)
 * back: 1 when one of them had it. */
static int unwait(aredis__topology *t, aredis__cmd *cmd)
{
    if (t->vt->unwait != NULL && t->vt->unwait(t, cmd))
        return 1;
    for (aredis__node *n = t->vt->next(t, NULL); n != NULL;
         n = t->vt->next(t, n))
        if (aredis__node_unwait(n, cmd))
            return 1;
    return 0;
}

static void on_timer(aredis_client *c)
{
    if (c->freeing)
        return;
    int64_t now = aredis__now_ms();
    aredis__topology *t = c->topo;
    for (aredis__node *n = t->vt->next(t, NULL); n != NULL && !c->freeing;
         n = t->vt->next(t, n))
        aredis__node_timer(n, now);
    aredis__cmd *cmd;
    while (!c->freeing && (cmd = earliest_cmd(c)) != NULL &&
           cmd->dl.key <= now) {
        heap_remove(c, cmd);
        /* Not sent yet: take it (and its bytes) out so it never runs,
         * unless the commands around it depend on it (the connection's
         * rule, conn.h: aredis__conn_cancel), which holds for a command
         * the topology or the pool holds too: it stays, is sent with
         * the others, and its late reply is dropped. */
        int unsent = 0;
        aredis__link *pooled = NULL;
        if (cmd->flags & AREDIS__CMD_PENDING) {
            if (!aredis__conn_cmd_bound(&cmd->cc))
                unsent = unwait(t, cmd);
        } else if (cmd->link != NULL) {
            /* Queued but not written yet (held in a deep pipeline, or the
             * socket full): taken out too. */
            aredis__link *l = cmd->link;
            unsent = aredis__link_cancel(l, cmd);
            if (!unsent && l->exclusive && !l->borrowed)
                pooled = l;
        }
        /* Never sent, unless an earlier connection carried it (a retry):
         * then it may have run there. */
        const char *how = unsent && !(cmd->cc.flags & AREDIS__CC_WAS_SENT)
                              ? " (not sent)"
                              : "";
        char msg[96];
        if (cmd->timeout_ms < UINT32_MAX)
            snprintf(msg, sizeof msg, "command timed out after %lu ms%s",
                     (unsigned long)cmd->timeout_ms, how);
        else
            snprintf(msg, sizeof msg, "command timed out after %lu s or more%s",
                     (unsigned long)(UINT32_MAX / 1000), how);
        aredis__finish_error(c, cmd, AREDIS_ETIMEDOUT, msg);
        /* In flight: it stays queued so its late reply is read and
         * dropped in order (or its failure), then freed; otherwise it is
         * gone. A pooled connection blocked in the server (BLPOP key 0
         * past its per-call deadline) would stay busy until data came:
         * it is closed instead, which also unblocks the server. */
        if (unsent)
            aredis__cmd_free(c, cmd);
        else if (pooled != NULL && !c->freeing)
            aredis__pool_abandon(pooled);
    }
    if (!c->freeing)
        aredis__rearm(c);
}

/* ------------------------------------------------------------------------
 * Free
 * ------------------------------------------------------------------------ */

void aredis__cancel_list(aredis_client *c, aredis__cmd *cmd)
{
    while (cmd != NULL) {
        aredis__cmd *next = aredis__cmd_next(cmd);
        if (!(cmd->flags & AREDIS__CMD_DONE))
            aredis__finish_error(c, cmd, AREDIS_ECANCELED,
                                 "canceled: the client was freed");
        aredis__cmd_free(c, cmd);
        cmd = next;
    }
}

static void release(aredis_client *c)
{
    tm_stop(c);
    aredis__loop_undefer(c->loop, &c->defer);

    /* Everything still owed a callback gets one: completions already
     * decided keep their code, the rest are cancelled. */
    aredis__cmd *done = c->done_head;
    c->done_head = c->done_tail = NULL;
    c->freeing = 2; /* submissions refused, callbacks still allowed */
    while (done != NULL) {
        aredis__cmd *next = aredis__cmd_next(done);
        if (done->cc.code != 0)
            aredis__finish_error(c, done, done->cc.code, done->cc.msg);
        else
            aredis__finish_error(c, done, AREDIS_ECANCELED,
                                 "canceled: the client was freed");
        aredis__cmd_free(c, done);
        done = next;
    }
    if (c->watch != NULL)
        c->watch->release(c->watch->ud);
    c->watch = NULL;
    aredis__topology *t = c->topo;
    for (aredis__node *n = t->vt->next(t, NULL); n != NULL;
         n = t->vt->next(t, n))
        aredis__cancel_list(c, aredis__link_take_all(&n->main));
    aredis__pubsub_detach_all(c);
    aredis__ts_drain(c);
    t->vt->free(t);
    c->topo = NULL;
    aredis__ts_cleanup(c);
    while (c->free_cmds != NULL) {
        aredis__cmd *next = aredis__cmd_next(c->free_cmds);
        aredis__free(c->free_cmds);
        c->free_cmds = next;
    }
    aredis_buf_cleanup(&c->scratch);
    aredis__heap_cleanup(&c->deadlines);
    for (size_t i = 0; i < c->nhooks; i++)
        hook_unref(c->hooks[i]);
    aredis__free(c->hooks);
    aredis__arena_cleanup(&c->arena);
    aredis__config_cleanup(&c->cfg);
    if (c->data_free != NULL)
        c->data_free(c->data);
    aredis__free(c);
}

static void on_tick(void *arg)
{
    aredis_client *c = arg;
    if (c->freeing) {
        release(c);
        return;
    }
    run_done(c);
    if (c->freeing)
        schedule(c);
    else
        trim_free_cmds(c);
}

void aredis_client_free(aredis_client *c)
{
    if (c == NULL || c->freeing)
        return;
    aredis__ts_close(c);
    c->freeing = 1;
    /* Everything happens from the loop: a callback on the stack may still
     * be using the client, and callbacks must not run inside this call. */
    schedule(c);
}

void aredis_client_close(aredis_client *c)
{
    if (c == NULL || c->freeing || c->closing)
        return;
    aredis__ts_close(c); /* later thread-safe submissions: AREDIS_ESTATE */
    c->closing = 1;
    if (c->fanouts != NULL)
        aredis__fanout_closing(c);
    if (c->pending == 0)
        close_if_done(c);
}

/* ------------------------------------------------------------------------
 * Creation
 * ------------------------------------------------------------------------ */

/* The resilience options with their defaults (options.h documents them);
 * reconnection's go to the connections' configuration. */
static int resilience(aredis_client *c, const aredis_options *o,
                      aredis_status *st)
{
    aredis__config *cfg = &c->cfg;
    int max_attempts =
        o->reconnect_max_attempts ? o->reconnect_max_attempts : 3;
    int64_t initial_ms =
        o->reconnect_initial_ms > 0 ? o->reconnect_initial_ms : 100;
    int64_t max_ms = o->reconnect_max_ms > 0 ? o->reconnect_max_ms : 5000;
    c->conn_cfg.max_attempts =
        max_attempts == AREDIS_NO_RECONNECT ? 0 : max_attempts;
    c->conn_cfg.backoff_first_ms = initial_ms;
    c->conn_cfg.backoff_max_ms = max_ms;
    cfg->max_queued = o->max_queued ? o->max_queued : 100000;
    cfg->queue_full = (uint8_t)o->queue_full;
    cfg->retry_read_only = o->retry_read_only != 0;
    cfg->pool_max = o->pool_max > 0 ? o->pool_max : 8;
    cfg->pool_wait_ms = o->pool_wait_ms > 0 ? o->pool_wait_ms : 5000;
    cfg->pool_idle_ms = o->pool_idle_ms > 0 ? o->pool_idle_ms : 60000;
    const char *bad = NULL;
    if (max_attempts < AREDIS_NO_RECONNECT)
        bad = "reconnect_max_attempts must be >= -2";
    else if (initial_ms > max_ms)
        bad = "reconnect_initial_ms must not exceed reconnect_max_ms";
    else if (o->queue_full != AREDIS_QUEUE_FAIL &&
             o->queue_full != AREDIS_QUEUE_WAIT)
        bad = "queue_full must be AREDIS_QUEUE_FAIL or AREDIS_QUEUE_WAIT";
    else if (o->pool_max < 0)
        bad = "pool_max must not be negative";
    if (bad == NULL)
        return 0;
    st->code = AREDIS_EINVAL;
    aredis__msgf(st->msg, sizeof st->msg, "bad option: %s", bad);
    return AREDIS_EINVAL;
}

/* The jitter of reconnection delays (conn.h takes its random source). */
static uint64_t jitter(void *ud)
{
    (void)ud;
    return (uint64_t)rand();
}

static void *spare_block(void *ud, size_t *cap)
{
    aredis_client *c = ud;
    return aredis__loop_spare_block_take(c->loop, cap);
}

/* Every connection's configuration, borrowed from the client's (the
 * reconnection policy is set by resilience()). */
static void conn_config(aredis_client *c)
{
    const aredis__config *cfg = &c->cfg;
    aredis__conn_config *cc = &c->conn_cfg;
    cc->protocol = cfg->protocol;
    cc->username = cfg->username;
    cc->password = cfg->password;
    cc->client_name = cfg->client_name;
    cc->db = cfg->db;
    cc->connect_timeout_ms = cfg->connect_timeout_ms;
    cc->one_address = cfg->path != NULL;
    cc->limits = cfg->more != NULL ? &cfg->more->limits : NULL;
    cc->rand = jitter;
    cc->spare_block = spare_block;
    cc->ud = c;
}

aredis_client *aredis_client_new(aredis_loop *loop, const aredis_options *opts,
                                 aredis_status *st)
{
    aredis_status dummy;
    if (st == NULL)
        st = &dummy;
    st->code = 0;
    st->msg[0] = '\0';
    if (loop == NULL) {
        st->code = AREDIS_EINVAL;
        snprintf(st->msg, sizeof st->msg, "no loop given");
        return NULL;
    }
    aredis_options none;
    if (opts == NULL) {
        memset(&none, 0, sizeof none);
        opts = &none;
    }
    aredis_client *c = aredis__calloc(1, sizeof *c);
    if (c == NULL) {
        st->code = AREDIS_ENOMEM;
        snprintf(st->msg, sizeof st->msg, "out of memory");
        return NULL;
    }
    c->loop = loop;
    int e = aredis__config_from_options(&c->cfg, opts, st->msg, sizeof st->msg);
    if (e != 0) {
        st->code = e;
        aredis__free(c);
        return NULL;
    }
    if (resilience(c, opts, st) != 0) {
        aredis__config_cleanup(&c->cfg);
        aredis__free(c);
        return NULL;
    }
    aredis_buf_init(&c->scratch);
    aredis__heap_init(&c->deadlines);
    conn_config(c);
    size_t nsentinels = aredis__config_more_of(&c->cfg)->nsentinels;
    c->topo = c->cfg.cluster   ? aredis__cluster_new(c)
              : nsentinels > 0 ? aredis__sentinel_new(c)
                               : aredis__standalone_new(c);
    e = c->topo != NULL ? 0 : AREDIS_ENOMEM;
    if (e == 0) /* read by the connections from their first command on */
        c->conn_cfg.keep_inflight = (uint8_t)(c->topo->keep_bytes != 0);
    if (e == 0)
        e = aredis__ts_init(c);
    if (e == 0)
        e = tm_start(c);
    if (e != 0) {
        st->code = e;
        snprintf(st->msg, sizeof st->msg, "%s", aredis_strerror(e));
        aredis__ts_cleanup(c);
        if (c->topo != NULL)
            c->topo->vt->free(c->topo);
        aredis__config_cleanup(&c->cfg);
        aredis__free(c);
        return NULL;
    }
    /* A lazy cluster client connects with its first command. */
    if (!(c->cfg.cluster && c->cfg.more->cluster_lazy))
        aredis__link_connect(aredis__client_main(c));
    return c;
}

/* ------------------------------------------------------------------------
 * Submitting
 * ------------------------------------------------------------------------ */

static const char select_refused[] =
    "SELECT is refused: the database is a client option (aredis_options.db "
    "or the URL path, redis://host/2), because every caller shares the "
    "connection";
static const char hello_refused[] =
    "HELLO is refused: the client makes the handshake itself on every "
    "connection (aredis_options protocol, username, password, client_name)";
static const char reset_refused[] =
    "RESET is refused: it would silently undo the database, name, protocol "
    "and tracking the client set up on a connection every caller shares";
static const char subscribe_refused[] =
    "(P|S)SUBSCRIBE and (P|S)UNSUBSCRIBE are refused as plain commands: use "
    "aredis_pubsub (pubsub.h), which keeps the connection usable";
static const char queue_full[] =
    "disconnected, and the queue of waiting commands is full (max_queued)";

/* The message of a command the client refuses (its table entry has
 * AREDIS__CMDF_PUBSUB or AREDIS__CMDF_REFUSED). */
COLD_PATH static const char *refused_why(const aredis__cmdclass *k)
{
    if (k->flags & AREDIS__CMDF_PUBSUB)
        return subscribe_refused;
    if (strcmp(k->info->name, "hello") == 0)
        return hello_refused;
    if (strcmp(k->info->name, "reset") == 0)
        return reset_refused;
    return select_refused;
}

/* Where a submission's bytes come from. */
typedef struct submit_args {
    const char *fmt;
    va_list *ap;
    int argc;
    const char *const *argv;
    const size_t *argvlen;
    const char *bytes; /* already encoded (len bytes), or NULL */
    size_t len;
    int pushed; /* a pubsub command, answered by push frames */
} submit_args;

/* Fill the record's routing fields from a command's classification
 * (v->cls, made once through the command table: by name before encoding,
 * or from the bytes). Returns the message when the command must be
 * refused, or NULL; *block_ms is a blocking command's server-side timeout
 * (aredis__cmdclass), -1 for a command that does not block. A command
 * whose cluster policy is not "route by key" is marked AREDIS__CMD_FANOUT
 * (what a cluster client does with it: fanout.c). */
static HOT_INLINE const char *classify(aredis_client *c, aredis__cmd *cmd,
                                       const aredis__cmdview *v, unsigned flags,
                                       int64_t *block_ms)
{
    const aredis__cmdclass *k = v->cls;
    /* One test for the rare kinds: refused, with a cluster policy, or
     * applying to the command after it. */
    if (k->flags & (AREDIS__CMDF_PUBSUB | AREDIS__CMDF_REFUSED |
                    AREDIS__CMDF_CL_MASK | AREDIS__CMDF_NEXT)) {
        if (k->flags & (AREDIS__CMDF_PUBSUB | AREDIS__CMDF_REFUSED))
            return refused_why(k);
        if (k->flags & AREDIS__CMDF_CL_MASK)
            cmd->flags |= AREDIS__CMD_FANOUT;
        if (k->flags & AREDIS__CMDF_NEXT) /* a deadline never cuts the two */
            cmd->cc.flags |= AREDIS__CC_GLUED;
    }
    /* The command table's CLIENT REPLY values are the connection's. */
    _Static_assert((int)AREDIS__CLIENT_REPLY_NONE == AREDIS__REPLY_NORMAL &&
                       (int)AREDIS__CLIENT_REPLY_ON == AREDIS__REPLY_ON &&
                       (int)AREDIS__CLIENT_REPLY_OFF == AREDIS__REPLY_OFF &&
                       (int)AREDIS__CLIENT_REPLY_SKIP == AREDIS__REPLY_SKIP,
                   "CLIENT REPLY values differ");
    cmd->cc.reply_kind = (uint8_t)k->client_reply;
    if (c->nhooks > 0) {
        const char *name = "";
        size_t n = 0;
        if (v->bytes != NULL) {
            aredis__args it;
            aredis__args_init(&it, v->bytes);
            aredis__args_next(&it, &name, &n);
        } else {
            name = v->argv[0];
            n = v->argvlen != NULL ? v->argvlen[0] : strlen(name);
        }
        for (size_t i = 0; i < c->nhooks; i++) {
            aredis__hook *h = c->hooks[i];
            if (h->len == n && strncasecmp(h->name, name, n) == 0) {
                h->refs++;
                cmd->hook = h;
                break;
            }
        }
    }
    if (cmd->hook == NULL && c->cfg.normalize_resp2)
        cmd->norm = (uint8_t)k->norm;
    if ((flags & AREDIS_CMD_IDEMPOTENT) ||
        (c->cfg.retry_read_only && (k->flags & AREDIS__CMDF_READONLY)))
        cmd->flags |= AREDIS__CMD_RETRY;
    /* Blocking commands go to an exclusive connection, except WAIT and
     * WAITAOF, which count the writes of the connection they run on. */
    if ((k->flags & (AREDIS__CMDF_BLOCKING | AREDIS__CMDF_OWN_WRITES)) ==
        AREDIS__CMDF_BLOCKING)
        cmd->flags |= AREDIS__CMD_BLOCKING;
    if (flags & AREDIS_CMD_TOGETHER) /* never taken out alone */
        cmd->cc.flags |= AREDIS__CC_TOGETHER;
    if (flags & (AREDIS_CMD_NO_RESEND | AREDIS_CMD_TOGETHER))
        cmd->flags = (uint8_t)((cmd->flags | AREDIS__CMD_NO_RESEND) &
                               ~AREDIS__CMD_RETRY);
    *block_ms = k->flags & AREDIS__CMDF_BLOCKING ? k->block_ms : -1;
    return NULL;
}

/* The deadline a command gets, and its heap entry. 0 or AREDIS_ENOMEM.
 *
 * A per-call timeout (aredis_cmd_opts.timeout_ms > 0) is the whole
 * deadline, whatever the command. Otherwise command_timeout_ms applies;
 * for a blocking command it is a margin on top of the time the server may
 * legitimately wait: BLPOP key 2 with command_timeout_ms = 100 gets
 * 2,100 ms, so its nil reply arrives first, while a stalled server still
 * fails it. A blocking command without a server-side limit (BLPOP key 0,
 * XREAD BLOCK 0) waits as long as it says, unless given a per-call
 * timeout. options.h and docs/guide/commands.md document this. */
static int set_deadline(aredis_client *c, aredis__cmd *cmd,
                        const aredis_cmd_opts *o, int64_t block_ms)
{
    int64_t timeout = c->cfg.command_timeout_ms;
    if (o != NULL && o->timeout_ms != 0)
        timeout = o->timeout_ms;
    else if (block_ms >= 0 && timeout > 0)
        timeout = block_ms > 0 && block_ms <= INT64_MAX / 2 - timeout
                      ? block_ms + timeout
                      : 0;
    if (timeout <= 0)
        return 0;
    cmd->timeout_ms = timeout < UINT32_MAX ? (uint32_t)timeout : UINT32_MAX;
    return aredis__heap_set(&c->deadlines, &cmd->dl,
                            aredis__now_ms() + timeout);
}

/* Hand a classified, encoded command to its connection: target (a
 * borrowed link, or a node's shared one), else the node n the topology
 * named (NULL: none). direct: its bytes are already at the end of that
 * connection's output buffer. Returns 0, or AREDIS_ENOMEM when the bytes
 * could not be queued. */
static int hand_over(aredis_client *c, aredis__link *target, aredis__node *n,
                     aredis__cmd *cmd, const char *bytes, int direct)
{
    if (target != NULL && target->conn.broken) {
        heap_remove(c, cmd);
        aredis__defer_done(c, cmd, AREDIS_ECLOSED,
                           "the exclusive connection was lost: release it "
                           "and acquire another");
        return 0;
    }
    if (target != NULL) {
        cmd->flags |= AREDIS__CMD_PINNED;
        if (!target->exclusive && (cmd->flags & AREDIS__CMD_BLOCKING)) {
            /* Sent to a node (aredis_node_command): never on the
             * connection every caller shares. */
            aredis__pool_route(target->node, cmd, bytes);
            return 0;
        }
        return aredis__link_submit(target, cmd, direct ? NULL : bytes);
    }
    if (n == AREDIS__HELD)
        return 0; /* the topology sends it when it can */
    if (n == NULL) {
        aredis__defer_done(c, cmd, AREDIS_ECLOSED,
                           "no server is known for this command");
        return 0;
    }
    if (cmd->flags & AREDIS__CMD_BLOCKING) {
        aredis__pool_route(n, cmd, bytes);
        return 0;
    }
    aredis__link *m = &n->main;
    if (direct)
        return aredis__link_submit(m, cmd, NULL);
    if (c->cfg.max_queued >= 0 && m->conn.npend >= (size_t)c->cfg.max_queued &&
        c->cfg.queue_full == AREDIS_QUEUE_FAIL) {
        heap_remove(c, cmd);
        aredis__defer_done(c, cmd, AREDIS_EBUSY, queue_full);
        return 0;
    }
    return aredis__link_submit(m, cmd, bytes);
}

static int encode(aredis_buf *b, const submit_args *sa)
{
    if (sa->bytes != NULL)
        return aredis__buf_append(b, sa->bytes, sa->len);
    if (sa->fmt != NULL)
        return aredis_write_vfmt(b, sa->fmt, *sa->ap);
    return aredis_write_argv(b, sa->argc, sa->argv, sa->argvlen);
}

/* An empty buffer (an idle connection gave its output buffer back, an
 * idle client its encoding area) grows from a block of the loop's spares
 * if there is one. */
static void adopt_block(aredis_client *c, aredis_buf *b)
{
    size_t cap;
    char *p = aredis__loop_spare_block_take(c->loop, &cap);
    if (p != NULL) {
        b->data = p;
        b->cap = cap;
        b->len = 0;
    }
}

/* classify() for a command not classified by name, from its bytes (v,
 * into *k); a pub/sub one (pushed) is only routed by it. */
COLD_PATH static const char *classify_bytes(aredis_client *c, aredis__cmd *cmd,
                                            aredis__cmdview *v,
                                            aredis__cmdclass *k, unsigned flags,
                                            int64_t *block_ms, int pushed)
{
    aredis__cmd_classify_memo(v->bytes, k, &c->memo);
    v->cls = k;
    if (!pushed)
        return classify(c, cmd, v, flags, block_ms);
    cmd->cc.reply_kind = AREDIS__REPLY_PUSHED;
    cmd->flags |= AREDIS__CMD_NO_RESEND;
    return NULL;
}

/* Before encoding, what the caller's arguments tell: the classification by
 * name (into *k, v->cls set) when the name alone decides, and then (or
 * when nothing is known: a format) the node the command goes to, when the
 * topology can name it without the bytes. Returns the link whose output
 * buffer the writer fills (NULL: the scratch buffer) and sets *n to the
 * topology's answer (AREDIS__NEEDS_BYTES: ask again once encoded). */
static HOT_INLINE aredis__link *aim(aredis_client *c, aredis__link *target,
                                    aredis__cmd *cmd, const submit_args *sa,
                                    aredis__cmdview *v, aredis__cmdclass *k,
                                    unsigned flags, int64_t *block_ms,
                                    aredis__node **n)
{
    *n = AREDIS__NEEDS_BYTES;
    if (sa->bytes != NULL)
        return NULL; /* encoded already: copied once, wherever it goes */
    if (sa->argv != NULL && sa->argc >= 1 && !sa->pushed &&
        sa->argv[0] != NULL &&
        aredis__cmd_classify_name(sa->argv[0],
                                  sa->argvlen != NULL ? sa->argvlen[0]
                                                      : strlen(sa->argv[0]),
                                  k, &c->memo)) {
        v->cls = k;
        /* A refused one is refused after encoding, as the others. */
        if (classify(c, cmd, v, flags, block_ms) != NULL)
            v->cls = NULL;
    }
    if (target != NULL) {
        *n = NULL;
        return v->cls != NULL && !target->conn.broken &&
                       (target->exclusive ||
                        !(cmd->flags & AREDIS__CMD_BLOCKING))
                   ? target
                   : NULL;
    }
    if (cmd->flags & AREDIS__CMD_FANOUT)
        return NULL; /* fanout.c reads the bytes first */
    aredis__node *x = c->topo->vt->route(c->topo, cmd, v);
    *n = x;
    /* (Not HELD: route() holds nothing before encoding.) */
    return x != AREDIS__NEEDS_BYTES && x != NULL ? &x->main : NULL;
}

/* The end of a submission: cmd, encoded (v) into b from start, goes to
 * target or to n (AREDIS__NEEDS_BYTES: the topology is asked now); keep
 * as submit() decides it. */
static HOT_INLINE void send_cmd(aredis_client *c, aredis__link *target,
                                aredis__node *n, aredis__cmd *cmd,
                                const aredis__cmdview *v, aredis_buf *b,
                                size_t start, int keep)
{
    /* Which server: the topology's question, and only its. */
    if (n == AREDIS__NEEDS_BYTES)
        n = c->topo->vt->route(c->topo, cmd, v);
    int e = hand_over(c, target, n, cmd, v->bytes, keep > 0);
    if (keep <= 0) {
        b->len = start;
        if (keep < 0)
            give_scratch(c);
    }
    if (e != 0) {
        /* Only out of memory gets here: complete it rather than break the
         * promise made by returning 0 below. */
        heap_remove(c, cmd);
        aredis__defer_done(c, cmd, e, "out of memory");
    }
}

/* Submit to the shared link (target NULL) or to a borrowed one. */
static int submit(aredis_client *c, aredis__link *target,
                  const aredis_cmd_opts *o, aredis_reply_cb cb, void *ud,
                  const submit_args *sa)
{
    if (c == NULL) /* no client given: a bad argument, never a crash */
        return AREDIS_EINVAL;
    /* Closing refuses new work; encoded bytes come from the thread-safe
     * queue, where they were accepted before the close. */
    if (c->freeing || (c->closing && sa->bytes == NULL))
        return AREDIS_ESTATE;
    aredis__cmd *cmd = aredis__cmd_new(c);
    if (cmd == NULL)
        return AREDIS_ENOMEM;
    cmd->cb = cb;
    cmd->ud = ud;
    unsigned flags = o ? o->flags : 0;

    /* Where it goes is asked before encoding when that can be answered,
     * so the writer fills that connection's output buffer when it is
     * ready (the fast path); everything else goes through the scratch
     * buffer, and is copied where it belongs. */
    int64_t block_ms = -1;
    aredis__cmdclass k;
    aredis__cmdview v = {NULL, NULL, sa->argc, sa->argv, sa->argvlen};
    aredis__node *n;
    aredis__link *dest = aim(c, target, cmd, sa, &v, &k, flags, &block_ms, &n);
    int direct = dest != NULL && dest->conn.state == AREDIS__ST_READY;
    aredis_buf *b = direct ? &dest->conn.out : &c->scratch;
    if (b->data == NULL) /* an idle client's or connection's, given back */
        adopt_block(c, b);
    size_t start = b->len;
    int e = encode(b, sa);
    if (e == 0 && b->len - start > AREDIS__CONN_CMD_MAX)
        e = AREDIS_EINVAL;
    if (e != 0) {
        b->len = start;
        aredis__cmd_free(c, cmd);
        return e;
    }
    cmd->cc.len = (uint32_t)(b->len - start);
    const char *bytes = b->data + start;
    v.bytes = bytes;

    if (++c->pending > c->burst_peak)
        c->burst_peak = c->pending;
    if (v.cls == NULL) {
        const char *refused =
            classify_bytes(c, cmd, &v, &k, flags, &block_ms, sa->pushed);
        if (refused != NULL) {
            b->len = start;
            aredis__defer_done(c, cmd, AREDIS_EINVAL, refused);
            return 0;
        }
    }
    /* A cluster client may send the caller's command to several nodes,
     * or refuse it (fanout.c). */
    if ((cmd->flags & AREDIS__CMD_FANOUT) && c->cfg.cluster && target == NULL) {
        int taken = aredis__cluster_submit(c, cmd, bytes, &k, o);
        if (taken <= 0) {
            b->len = start;
            return taken;
        }
    }
    /* Kept for sending again after a lost connection, unless every
     * connection keeps them (keep_bytes). */
    if ((cmd->flags & AREDIS__CMD_RETRY) && !c->topo->keep_bytes)
        e = aredis__cmd_keep(cmd, bytes);
    if (e == 0)
        e = set_deadline(c, cmd, o, block_ms);
    if (e != 0) {
        b->len = start;
        c->pending--;
        aredis__cmd_free(c, cmd);
        return e;
    }
    /* 1: the bytes stay where they were encoded; 0: they are copied where
     * they belong; -1: copied to the connection they were aimed at, not
     * ready yet, where they wait: a client that connects holds no encoding
     * area meanwhile. A command aimed at the node's connection before its
     * class was known may still belong elsewhere (a blocking one goes to
     * the pool); a borrowed link is aimed at only once it is known to
     * fit. */
    int keep = direct ? target != NULL || !(cmd->flags & AREDIS__CMD_BLOCKING)
                      : -(dest != NULL && target == NULL);
    send_cmd(c, target, n, cmd, &v, b, start, keep);
    if (cmd->dl.pos == 1)
        aredis__rearm(c); /* the earliest deadline changed */
    return 0;
}

int aredis__submit_encoded(aredis_client *c, aredis__link *target,
                           aredis_reply_cb cb, void *ud, const char *bytes,
                           size_t len)
{
    submit_args sa = {NULL, NULL, 0, NULL, NULL, bytes, len, 0};
    return submit(c, target, NULL, cb, ud, &sa);
}

int aredis__submit_bytes(aredis_client *c, aredis__link *target,
                         const aredis_cmd_opts *o, aredis_reply_cb cb, void *ud,
                         const char *bytes, size_t len)
{
    submit_args sa = {NULL, NULL, 0, NULL, NULL, bytes, len, 0};
    return submit(c, target, o, cb, ud, &sa);
}

int aredis__send_pushed(aredis_client *c, aredis__link *l, int argc,
                        const char *const *argv, const size_t *lens)
{
    submit_args sa = {NULL, NULL, argc, argv, lens, NULL, 0, 1};
    return submit(c, l->exclusive ? l : NULL, NULL, NULL, NULL, &sa);
}

int aredis_vcommand(aredis_client *c, aredis_reply_cb cb, void *ud,
                    const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    submit_args sa = {fmt, &copy, 0, NULL, NULL, NULL, 0, 0};
    int e = fmt != NULL ? submit(c, NULL, NULL, cb, ud, &sa) : AREDIS_EFORMAT;
    va_end(copy);
    return e;
}

int aredis_command(aredis_client *c, aredis_reply_cb cb, void *ud,
                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    submit_args sa = {fmt, &ap, 0, NULL, NULL, NULL, 0, 0};
    int e = fmt != NULL ? submit(c, NULL, NULL, cb, ud, &sa) : AREDIS_EFORMAT;
    va_end(ap);
    return e;
}

int aredis_command_opts(aredis_client *c, const aredis_cmd_opts *o,
                        aredis_reply_cb cb, void *ud, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    submit_args sa = {fmt, &ap, 0, NULL, NULL, NULL, 0, 0};
    int e = fmt != NULL ? submit(c, NULL, o, cb, ud, &sa) : AREDIS_EFORMAT;
    va_end(ap);
    return e;
}

int aredis_vcommand_opts(aredis_client *c, const aredis_cmd_opts *o,
                         aredis_reply_cb cb, void *ud, const char *fmt,
                         va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    submit_args sa = {fmt, &copy, 0, NULL, NULL, NULL, 0, 0};
    int e = fmt != NULL ? submit(c, NULL, o, cb, ud, &sa) : AREDIS_EFORMAT;
    va_end(copy);
    return e;
}

int aredis_commandv(aredis_client *c, aredis_reply_cb cb, void *ud, int argc,
                    const char *const *argv, const size_t *argvlen)
{
    submit_args sa = {NULL, NULL, argc, argv, argvlen, NULL, 0, 0};
    return submit(c, NULL, NULL, cb, ud, &sa);
}

int aredis_commandv_opts(aredis_client *c, const aredis_cmd_opts *o,
                         aredis_reply_cb cb, void *ud, int argc,
                         const char *const *argv, const size_t *argvlen)
{
    submit_args sa = {NULL, NULL, argc, argv, argvlen, NULL, 0, 0};
    return submit(c, NULL, o, cb, ud, &sa);
}

int aredis_exclusive_command(aredis_exclusive *x, aredis_reply_cb cb, void *ud,
                             const char *fmt, ...)
{
    aredis__link *l = (aredis__link *)x;
    if (l == NULL)
        return AREDIS_EINVAL;
    va_list ap;
    va_start(ap, fmt);
    submit_args sa = {fmt, &ap, 0, NULL, NULL, NULL, 0, 0};
    int e = fmt != NULL ? submit(l->c, l, NULL, cb, ud, &sa) : AREDIS_EFORMAT;
    va_end(ap);
    return e;
}

int aredis_exclusive_commandv(aredis_exclusive *x, aredis_reply_cb cb, void *ud,
                              int argc, const char *const *argv,
                              const size_t *argvlen)
{
    aredis__link *l = (aredis__link *)x;
    if (l == NULL)
        return AREDIS_EINVAL;
    submit_args sa = {NULL, NULL, argc, argv, argvlen, NULL, 0, 0};
    return submit(l->c, l, NULL, cb, ud, &sa);
}

/* ------------------------------------------------------------------------
 * Small accessors
 * ------------------------------------------------------------------------ */

void aredis_client_set_push_handler(aredis_client *c, aredis_push_cb cb,
                                    void *ud)
{
    c->push_cb = cb;
    c->push_ud = ud;
}

void aredis_client_set_event_handler(aredis_client *c, aredis_conn_event_cb cb,
                                     void *ud)
{
    c->event_cb = cb;
    c->event_ud = ud;
}

int aredis_client_set_reply_hook(aredis_client *c, const char *command,
                                 aredis_reply_hook hook, void *ud)
{
    if (command == NULL || command[0] == '\0')
        return AREDIS_EINVAL;
    size_t len = strlen(command);
    aredis__hook *h = NULL;
    if (hook != NULL) {
        h = aredis__malloc(sizeof *h);
        char *name = h != NULL ? aredis__strndup(command, len) : NULL;
        if (name == NULL) {
            aredis__free(h);
            return AREDIS_ENOMEM;
        }
        *h = (aredis__hook){name, len, hook, ud, 1};
    }
    /* Commands already submitted keep the hook they hold a reference to:
     * an entry is replaced or dropped, never changed in place. */
    for (size_t i = 0; i < c->nhooks; i++) {
        if (c->hooks[i]->len != len ||
            strcasecmp(c->hooks[i]->name, command) != 0)
            continue;
        hook_unref(c->hooks[i]);
        if (h != NULL)
            c->hooks[i] = h;
        else
            c->hooks[i] = c->hooks[--c->nhooks];
        return 0;
    }
    if (h == NULL)
        return 0;
    /* An array of pointers to hooks. */
    // NOLINTNEXTLINE(bugprone-sizeof-expression)
    aredis__hook **v = aredis__reallocarray(c->hooks, c->nhooks + 1, sizeof *v);
    if (v == NULL) {
        hook_unref(h);
        return AREDIS_ENOMEM;
    }
    c->hooks = v;
    c->hooks[c->nhooks++] = h;
    return 0;
}

int aredis_client_protocol(const aredis_client *c)
{
    if (c == NULL)
        return 0;
    aredis__node *n = c->topo->vt->any(c->topo);
    return n != NULL ? n->main.conn.proto : 0;
}

aredis_loop *aredis_client_loop(const aredis_client *c)
{
    return c != NULL ? c->loop : NULL;
}

size_t aredis_client_pending(const aredis_client *c)
{
    return c != NULL ? c->pending : 0;
}

void aredis_client_set_data(aredis_client *c, void *data,
                            void (*free_fn)(void *))
{
    if (c == NULL)
        return;
    c->data = data;
    c->data_free = free_fn;
}

void *aredis_client_get_data(const aredis_client *c)
{
    return c != NULL ? c->data : NULL;
}
