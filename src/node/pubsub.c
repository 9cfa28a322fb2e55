/* Publish/subscribe (node layer): the subscriptions on a node's links.
 *
 * A pubsub keeps the set of its subscriptions and the link they live on:
 * the shared link on RESP3 (messages are push frames there, beside
 * ordinary replies), or a connection of its own taken from the pool on
 * RESP2, where the connection is put in "every reply is a message" mode
 * after its handshake. When the protocol is not known yet (automatic
 * mode, not connected), the decision waits for the shared link's first
 * handshake. A lost link marks the set for replay: on the next handshake
 * every subscription is sent again, the confirmations that replay causes
 * are swallowed, and one RESUBSCRIBED message is delivered instead.
 *
 * On a cluster client, shard channels (SSUBSCRIBE) live on the primary
 * serving their slot: the pubsub borrows a connection to each such node
 * (see "Shard channels on a cluster" below), while channels and patterns
 * stay on the one link above (classic messages reach every node). */
#include "aredis/pubsub.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "aredis/cluster.h"
#include "aredis/error.h"
#include "node/node.h"
#include "topology/topology.h"
#include "util/alloc.h"

enum { MODE_UNDECIDED, MODE_SHARED, MODE_OWN };
enum { SUB_CHANNEL, SUB_PATTERN, SUB_SHARD, SUB_KINDS };

typedef struct sub {
    char *name;
    size_t len;
    aredis_pubsub_handler handler;
    void *ud;
    /* A shard channel on a cluster: the link its SSUBSCRIBE went to, or
     * NULL while it has none (not sent yet, lost, moved). */
    aredis__link *on;
} sub;

typedef struct sub_set {
    sub *v;
    size_t n, cap;
} sub_set;

/* A queued (owned) message: one allocation with its strings. */
typedef struct queued {
    struct queued *next;
    aredis_pubsub_message m;
} queued;

typedef struct waiter {
    struct waiter *next;
    aredis_pubsub_message_cb cb;
    void *ud;
    int64_t deadline; /* 0: none */
} waiter;

struct aredis_pubsub {
    aredis_client *c; /* NULL once the client is gone */
    aredis_loop *loop;
    aredis_pubsub *next;
    aredis_pubsub_options opts;
    int mode;
    aredis__link *link;
    sub_set subs[SUB_KINDS];
    int need_replay;   /* the link was lost with subscriptions held */
    long long swallow; /* confirmations the replay will cause */
    queued *q_head, *q_tail;
    waiter *w_head, *w_tail;
    aredis_timer *timer;
    aredis__defer defer;
    int freeing;
    int acquiring; /* an exclusive connection is asked for (on_acquired) */
    int released;  /* final_free ran; on_acquired frees the memory */
    /* Shard channels on a cluster: a borrowed link per node serving some,
     * the acquisitions pending, and a timer for the channels left without
     * a link (no map yet, slot moving). */
    aredis__link **slinks;
    size_t nslinks;
    struct shard_req *sreqs;
    aredis_timer *stimer;
    int stries;
    /* A cluster pubsub whose link was lost moves to another node when the
     * lost one does not come back soon (rehome()); replaying there counts
     * as a resubscription. */
    aredis_timer *rtimer;
    int rehoming;
    unsigned rnext; /* where the next look for a node starts */
};

static int sharded(const aredis_pubsub *ps)
{
    return ps->c != NULL && ps->c->cfg.cluster;
}

static void shard_sync(aredis_pubsub *ps);
static void shard_moved(aredis_pubsub *ps, const sub *s);
static int shard_unsubscribe(aredis_pubsub *ps, const char *name);
static int shard_link(const aredis_pubsub *ps, const aredis__link *l);
static void shard_lost(aredis_pubsub *ps, aredis__link *l);
static void shard_leave(aredis_pubsub *ps);
static int shard_pending(const aredis_pubsub *ps);
static void rehome_later(aredis_pubsub *ps);
static void deliver(aredis_pubsub *ps, const aredis_pubsub_message *m,
                    const sub *s);

static const char *const sub_cmd[SUB_KINDS] = {"SUBSCRIBE", "PSUBSCRIBE",
                                               "SSUBSCRIBE"};
static const char *const unsub_cmd[SUB_KINDS] = {"UNSUBSCRIBE", "PUNSUBSCRIBE",
                                                 "SUNSUBSCRIBE"};

/* ------------------------------------------------------------------------
 * Subscription sets
 * ------------------------------------------------------------------------ */

static sub *find(sub_set *s, const char *name, size_t len)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].len == len && memcmp(s->v[i].name, name, len) == 0)
            return &s->v[i];
    return NULL;
}

static int add(sub_set *s, const char *name, size_t len,
               aredis_pubsub_handler h, void *ud)
{
    sub *e = find(s, name, len);
    if (e != NULL) {
        e->handler = h;
        e->ud = ud;
        return 0;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        sub *v = aredis__reallocarray(s->v, cap, sizeof *v);
        if (v == NULL)
            return AREDIS_ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    char *copy = aredis__strndup(name, len);
    if (copy == NULL)
        return AREDIS_ENOMEM;
    s->v[s->n++] = (sub){copy, len, h, ud, NULL};
    return 1;
}

static void drop(sub_set *s, const char *name, size_t len)
{
    sub *e = find(s, name, len);
    if (e == NULL)
        return;
    aredis__free(e->name);
    *e = s->v[--s->n];
}

static void clear(sub_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        aredis__free(s->v[i].name);
    aredis__free(s->v);
    memset(s, 0, sizeof *s);
}

size_t aredis_pubsub_subscriptions(const aredis_pubsub *ps)
{
    if (ps == NULL)
        return 0;
    return ps->subs[0].n + ps->subs[1].n + ps->subs[2].n;
}

aredis_client *aredis_pubsub_client(const aredis_pubsub *ps)
{
    return ps != NULL ? ps->c : NULL;
}

/* ------------------------------------------------------------------------
 * Sending
 * ------------------------------------------------------------------------ */

static int link_usable(const aredis_pubsub *ps)
{
    return ps->c != NULL && ps->link != NULL && ps->mode != MODE_UNDECIDED;
}

/* Send one (un)subscribe command for a list of names (all of a kind when
 * names is NULL and n is the set's size). */
static int send_kind(aredis_pubsub *ps, const char *cmd, const sub *names,
                     size_t n)
{
    if (n > 4096)
        n = 4096; /* keep one command bounded; callers loop */
    const char **argv = aredis__calloc(n + 1, sizeof *argv);
    size_t *lens = aredis__calloc(n + 1, sizeof *lens);
    int e = AREDIS_ENOMEM;
    if (argv != NULL && lens != NULL) {
        argv[0] = cmd;
        lens[0] = strlen(cmd);
        for (size_t i = 0; i < n; i++) {
            argv[i + 1] = names[i].name;
            lens[i + 1] = names[i].len;
        }
        e = aredis__send_pushed(ps->c, ps->link, (int)n + 1, argv, lens);
    }
    aredis__free(argv);
    aredis__free(lens);
    return e;
}

static int send_one(aredis_pubsub *ps, const char *cmd, const char *name,
                    size_t len)
{
    sub one = {(char *)name, len, NULL, NULL, NULL};
    return send_kind(ps, cmd, &one, name ? 1 : 0);
}

/* Every subscription again (after a reconnection, or once the link is
 * chosen). Returns how many confirmations it will cause. */
static long long replay(aredis_pubsub *ps)
{
    long long total = 0;
    for (int k = 0; k < SUB_KINDS; k++) {
        if (k == SUB_SHARD && sharded(ps))
            continue; /* on their nodes' links */
        sub_set *s = &ps->subs[k];
        for (size_t at = 0; at < s->n; at += 4096) {
            size_t n = s->n - at < 4096 ? s->n - at : 4096;
            if (send_kind(ps, sub_cmd[k], s->v + at, n) == 0)
                total += (long long)n;
        }
    }
    return total;
}

/* The link is the pubsub's now: what was subscribed while it had none is
 * sent (or queued until the link is connected). */
static void take_link(aredis_pubsub *ps, int mode, aredis__link *l)
{
    ps->mode = mode;
    ps->link = l;
    l->pubsub = ps;
    if (l->conn.state == AREDIS__ST_READY && mode == MODE_OWN &&
        l->conn.proto == 2)
        l->conn.raw_push = 1; /* connected already: no handshake to wait */
    long long n = replay(ps);
    if (ps->rehoming) {
        /* Moved from a lost node: one RESUBSCRIBED once all are back. */
        ps->rehoming = 0;
        ps->swallow = n;
        if (n == 0) {
            aredis_pubsub_message done;
            memset(&done, 0, sizeof done);
            done.kind = AREDIS_PUBSUB_RESUBSCRIBED;
            deliver(ps, &done, NULL);
        }
    }
}

static void choose_link(aredis_pubsub *ps);

/* An exclusive connection for the pubsub, or none this time. */
static void on_acquired(aredis_client *c, aredis_exclusive *x, int status,
                        void *ud)
{
    aredis_pubsub *ps = ud;
    (void)c;
    ps->acquiring = 0;
    if (ps->freeing || ps->c == NULL) {
        if (x != NULL && ps->c != NULL)
            aredis_exclusive_release(x); /* unused: back to the pool */
        if (ps->released && !shard_pending(ps))
            aredis__free(ps); /* final_free ran while this was pending */
        return;
    }
    if (x != NULL) {
        take_link(ps, MODE_OWN, (aredis__link *)x);
        return;
    }
    if (ps->rehoming) {
        rehome_later(ps); /* that node failed too: look again */
        return;
    }
    /* AREDIS_EPOOL: every connection of the pool is still in use after
     * pool_wait_ms. A pubsub has no deadline of its own: it asks again,
     * at the back of the queue. Other errors wait for the next handshake
     * of the shared link (aredis__pubsub_main_ready). */
    if (status == AREDIS_EPOOL)
        choose_link(ps);
}

/* RESP3: the shared link, if no other pubsub has it. Otherwise (RESP2, a
 * second pubsub) an exclusive connection from the pool, which may mean
 * waiting for one: never more than pool_max. */
static void choose_link(aredis_pubsub *ps)
{
    aredis_client *c = ps->c;
    if (ps->acquiring)
        return;
    int proto = aredis__client_main(c)->conn.proto
                    ? aredis__client_main(c)->conn.proto
                    : c->cfg.protocol;
    if (proto == 3 && aredis__client_main(c)->pubsub == NULL) {
        take_link(ps, MODE_SHARED, aredis__client_main(c));
        return;
    }
    if (aredis_client_acquire(c, on_acquired, ps) == 0)
        ps->acquiring = 1;
}

static int subscribe_kind(aredis_pubsub *ps, int kind, const char *name,
                          aredis_pubsub_handler h, void *ud)
{
    if (ps == NULL)
        return AREDIS_EINVAL;
    if (ps->c == NULL || ps->freeing || ps->c->freeing)
        return AREDIS_ESTATE;
    if (name == NULL || name[0] == '\0')
        return AREDIS_EINVAL;
    size_t len = strlen(name);
    int added = add(&ps->subs[kind], name, len, h, ud);
    if (added < 0)
        return added;
    if (kind == SUB_SHARD && sharded(ps)) {
        if (added)
            shard_sync(ps);
        return 0;
    }
    /* While the link is down with a replay due, the replay will carry it;
     * sending now as well would subscribe twice. */
    if (added && link_usable(ps) && !ps->need_replay)
        return send_one(ps, sub_cmd[kind], name, len);
    return 0;
}

static int unsubscribe_kind(aredis_pubsub *ps, int kind, const char *name)
{
    if (ps == NULL)
        return AREDIS_EINVAL;
    if (ps->c == NULL || ps->freeing)
        return AREDIS_ESTATE;
    sub_set *s = &ps->subs[kind];
    if (kind == SUB_SHARD && sharded(ps))
        return shard_unsubscribe(ps, name);
    if (name == NULL) {
        if (s->n == 0)
            return 0;
        clear(s);
    } else {
        if (find(s, name, strlen(name)) == NULL)
            return 0;
        drop(s, name, strlen(name));
    }
    if (!link_usable(ps) || ps->need_replay)
        return 0;
    return send_one(ps, unsub_cmd[kind], name, name ? strlen(name) : 0);
}

int aredis_pubsub_subscribe(aredis_pubsub *ps, const char *channel,
                            aredis_pubsub_handler h, void *ud)
{
    return subscribe_kind(ps, SUB_CHANNEL, channel, h, ud);
}

int aredis_pubsub_psubscribe(aredis_pubsub *ps, const char *pattern,
                             aredis_pubsub_handler h, void *ud)
{
    return subscribe_kind(ps, SUB_PATTERN, pattern, h, ud);
}

int aredis_pubsub_ssubscribe(aredis_pubsub *ps, const char *channel,
                             aredis_pubsub_handler h, void *ud)
{
    return subscribe_kind(ps, SUB_SHARD, channel, h, ud);
}

int aredis_pubsub_unsubscribe(aredis_pubsub *ps, const char *channel)
{
    return unsubscribe_kind(ps, SUB_CHANNEL, channel);
}

int aredis_pubsub_punsubscribe(aredis_pubsub *ps, const char *pattern)
{
    return unsubscribe_kind(ps, SUB_PATTERN, pattern);
}

int aredis_pubsub_sunsubscribe(aredis_pubsub *ps, const char *channel)
{
    return unsubscribe_kind(ps, SUB_SHARD, channel);
}

/* ------------------------------------------------------------------------
 * Receiving
 * ------------------------------------------------------------------------ */

static void serve_waiters(aredis_pubsub *ps);

static void on_serve_tick(void *arg)
{
    serve_waiters(arg);
}

static void schedule(aredis_pubsub *ps)
{
    aredis__loop_defer(ps->loop, &ps->defer, on_serve_tick, ps);
}

static queued *copy_message(const aredis_pubsub_message *m)
{
    size_t extra = m->channel_len + m->pattern_len + m->data_len + 3;
    queued *q = aredis__malloc(sizeof *q + extra);
    if (q == NULL)
        return NULL;
    q->next = NULL;
    q->m = *m;
    char *p = (char *)(q + 1);
#define COPY(field, len)             \
    if (m->field != NULL) {          \
        memcpy(p, m->field, m->len); \
        p[m->len] = '\0';            \
        q->m.field = p;              \
        p += m->len + 1;             \
    }
    COPY(channel, channel_len)
    COPY(pattern, pattern_len)
    COPY(data, data_len)
#undef COPY
    return q;
}

static void deliver_to_waiter(aredis_pubsub *ps, waiter *w,
                              const aredis_pubsub_message *m, int status)
{
    AREDIS__USER_CB(ps->c, w->cb(ps, m, status, w->ud));
    aredis__free(w);
}

static void rearm_waiters(aredis_pubsub *ps)
{
    int64_t next = 0;
    for (waiter *w = ps->w_head; w != NULL; w = w->next)
        if (w->deadline != 0 && (next == 0 || w->deadline < next))
            next = w->deadline;
    if (ps->timer == NULL)
        return;
    if (next == 0) {
        aredis_timer_stop(ps->timer);
        return;
    }
    int64_t ms = next - aredis__now_ms();
    aredis_timer_start(ps->timer, ms < 0 ? 0 : ms);
}

/* Queued messages to waiters, oldest first; from the loop. */
static void serve_waiters(aredis_pubsub *ps)
{
    /* A callback that frees the pubsub leaves the rest to final_free. */
    while (ps->w_head != NULL && ps->q_head != NULL && !ps->freeing) {
        waiter *w = ps->w_head;
        ps->w_head = w->next;
        if (ps->w_head == NULL)
            ps->w_tail = NULL;
        queued *q = ps->q_head;
        ps->q_head = q->next;
        if (ps->q_head == NULL)
            ps->q_tail = NULL;
        deliver_to_waiter(ps, w, &q->m, 0);
        aredis__free(q);
    }
    rearm_waiters(ps);
}

static void on_waiter_timer(void *arg)
{
    aredis_pubsub *ps = arg;
    int64_t now = aredis__now_ms();
    /* The expired waiters leave the list before any callback runs: a
     * callback may call get_message again, which appends to the list. */
    waiter *expired = NULL, **ep = &expired;
    waiter **pp = &ps->w_head;
    ps->w_tail = NULL;
    while (*pp != NULL) {
        waiter *w = *pp;
        if (w->deadline != 0 && w->deadline <= now) {
            *pp = w->next;
            w->next = NULL;
            *ep = w;
            ep = &w->next;
            continue;
        }
        ps->w_tail = w;
        pp = &w->next;
    }
    while (expired != NULL) {
        waiter *w = expired;
        expired = w->next;
        deliver_to_waiter(ps, w, NULL, AREDIS_ETIMEDOUT);
    }
    rearm_waiters(ps);
}

/* A message for the program: its handler, a waiter, or the queue. */
static void deliver(aredis_pubsub *ps, const aredis_pubsub_message *m,
                    const sub *s)
{
    aredis_client *c = ps->c;
    sub event = {NULL, 0, ps->opts.event_handler, ps->opts.event_ud, NULL};
    if (m->kind == AREDIS_PUBSUB_RESUBSCRIBED)
        s = &event;
    if (s != NULL && s->handler != NULL) {
        AREDIS__USER_CB(c, s->handler(ps, m, s->ud));
        return;
    }
    if (ps->w_head != NULL && ps->q_head == NULL) {
        waiter *w = ps->w_head;
        ps->w_head = w->next;
        if (ps->w_head == NULL)
            ps->w_tail = NULL;
        deliver_to_waiter(ps, w, m, 0);
        rearm_waiters(ps);
        return;
    }
    queued *q = copy_message(m);
    if (q == NULL)
        return; /* out of memory: the message is lost, like a slow reader's */
    if (ps->q_tail)
        ps->q_tail->next = q;
    else
        ps->q_head = q;
    ps->q_tail = q;
}

static int str_is(const aredis_reply *r, const char *w)
{
    size_t n = strlen(w);
    return (r->type == AREDIS_REPLY_STRING || r->type == AREDIS_REPLY_STATUS ||
            r->type == AREDIS_REPLY_VERB) &&
           r->len == n && memcmp(r->str, w, n) == 0;
}

static const struct {
    const char *word;
    int kind;
    int set; /* which subscription set names it */
} kinds[] = {
    {"message", AREDIS_PUBSUB_MESSAGE, SUB_CHANNEL},
    {"pmessage", AREDIS_PUBSUB_PMESSAGE, SUB_PATTERN},
    {"smessage", AREDIS_PUBSUB_SMESSAGE, SUB_SHARD},
    {"subscribe", AREDIS_PUBSUB_SUBSCRIBE, SUB_CHANNEL},
    {"unsubscribe", AREDIS_PUBSUB_UNSUBSCRIBE, SUB_CHANNEL},
    {"psubscribe", AREDIS_PUBSUB_PSUBSCRIBE, SUB_PATTERN},
    {"punsubscribe", AREDIS_PUBSUB_PUNSUBSCRIBE, SUB_PATTERN},
    {"ssubscribe", AREDIS_PUBSUB_SSUBSCRIBE, SUB_SHARD},
    {"sunsubscribe", AREDIS_PUBSUB_SUNSUBSCRIBE, SUB_SHARD},
};

static void set_str(const aredis_reply *r, const char **p, size_t *n)
{
    if (r->type == AREDIS_REPLY_NIL) {
        *p = NULL;
        *n = 0;
        return;
    }
    *p = r->str;
    *n = r->len;
}

int aredis__pubsub_push(aredis_client *c, aredis__link *l,
                        const aredis_reply *r)
{
    if ((r->type != AREDIS_REPLY_PUSH && r->type != AREDIS_REPLY_ARRAY) ||
        r->len < 2)
        return 0;
    int k = -1;
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        if (str_is(&r->element[0], kinds[i].word)) {
            k = (int)i;
            break;
        }
    if (k < 0) {
        /* RESP2 subscribed mode answers PING with ["pong", data]. */
        return l->conn.raw_push;
    }
    aredis_pubsub *ps = l->pubsub;
    if (ps == NULL || ps->freeing)
        return 1; /* for a pubsub that is gone: never the program's */
    aredis_pubsub_message m;
    memset(&m, 0, sizeof m);
    m.kind = kinds[k].kind;
    const sub *s = NULL;
    sub_set *set = &ps->subs[kinds[k].set];
    if (m.kind == AREDIS_PUBSUB_PMESSAGE) {
        if (r->len < 4)
            return 1;
        set_str(&r->element[1], &m.pattern, &m.pattern_len);
        set_str(&r->element[2], &m.channel, &m.channel_len);
        set_str(&r->element[3], &m.data, &m.data_len);
        s = find(set, m.pattern ? m.pattern : "", m.pattern_len);
    } else if (m.kind <= AREDIS_PUBSUB_SMESSAGE) {
        if (r->len < 3)
            return 1;
        set_str(&r->element[1], &m.channel, &m.channel_len);
        set_str(&r->element[2], &m.data, &m.data_len);
        s = find(set, m.channel ? m.channel : "", m.channel_len);
    } else {
        /* A confirmation: name (or nil) and the subscription count. */
        if (kinds[k].set == SUB_PATTERN)
            set_str(&r->element[1], &m.pattern, &m.pattern_len);
        else
            set_str(&r->element[1], &m.channel, &m.channel_len);
        if (r->len >= 3 && r->element[2].type == AREDIS_REPLY_INTEGER)
            m.count = r->element[2].integer;
        if (ps->swallow > 0 && (m.kind == AREDIS_PUBSUB_SUBSCRIBE ||
                                m.kind == AREDIS_PUBSUB_PSUBSCRIBE ||
                                m.kind == AREDIS_PUBSUB_SSUBSCRIBE)) {
            if (--ps->swallow == 0) {
                aredis_pubsub_message done;
                memset(&done, 0, sizeof done);
                done.kind = AREDIS_PUBSUB_RESUBSCRIBED;
                done.count = m.count;
                deliver(ps, &done, NULL);
            }
            return 1;
        }
        if (m.kind == AREDIS_PUBSUB_SUNSUBSCRIBE && shard_link(ps, l) &&
            m.channel != NULL) {
            sub *moved = find(set, m.channel, m.channel_len);
            if (moved != NULL && moved->on == l) {
                /* Still wanted: the server dropped it because its slot
                 * moved. Subscribe again where the slot is now. */
                moved->on = NULL;
                shard_moved(ps, moved);
                return 1;
            }
        }
        if (ps->opts.ignore_subscribe_messages)
            return 1;
        const char *name = m.pattern ? m.pattern : m.channel;
        size_t nlen = m.pattern ? m.pattern_len : m.channel_len;
        s = name ? find(set, name, nlen) : NULL;
    }
    (void)c;
    deliver(ps, &m, s);
    return 1;
}

void aredis__pubsub_link_lost(aredis__link *l)
{
    aredis_pubsub *ps = l->pubsub;
    if (shard_link(ps, l)) {
        shard_lost(ps, l);
        return;
    }
    if (aredis_pubsub_subscriptions(ps) > 0)
        ps->need_replay = 1;
    ps->swallow = 0;
    if (sharded(ps) && !l->c->freeing)
        rehome_later(ps);
}

void aredis__pubsub_link_ready(aredis__link *l)
{
    aredis_pubsub *ps = l->pubsub;
    if (shard_link(ps, l)) {
        if (l->conn.proto == 2)
            l->conn.raw_push = 1;
        shard_sync(ps); /* its channels again */
        return;
    }
    if (ps->mode == MODE_OWN && l->conn.proto == 2)
        l->conn.raw_push = 1;
    if (!ps->need_replay)
        return;
    ps->need_replay = 0;
    ps->swallow = replay(ps);
    if (ps->swallow == 0) {
        aredis_pubsub_message done;
        memset(&done, 0, sizeof done);
        done.kind = AREDIS_PUBSUB_RESUBSCRIBED;
        deliver(ps, &done, NULL);
    }
}

void aredis__pubsub_main_ready(aredis_client *c)
{
    for (aredis_pubsub *ps = c->pubsubs; ps != NULL; ps = ps->next)
        if (ps->mode == MODE_UNDECIDED && !ps->freeing)
            choose_link(ps);
}

/* ------------------------------------------------------------------------
 * Reading calls
 * ------------------------------------------------------------------------ */

int aredis_pubsub_get_message(aredis_pubsub *ps, int64_t timeout_ms,
                              aredis_pubsub_message_cb cb, void *ud)
{
    if (ps == NULL)
        return AREDIS_EINVAL;
    if (ps->c == NULL || ps->freeing || ps->c->freeing)
        return AREDIS_ESTATE;
    if (cb == NULL)
        return AREDIS_EINVAL;
    waiter *w = aredis__calloc(1, sizeof *w);
    if (w == NULL)
        return AREDIS_ENOMEM;
    w->cb = cb;
    w->ud = ud;
    w->deadline = timeout_ms >= 0 ? aredis__now_ms() + timeout_ms : 0;
    if (ps->w_tail)
        ps->w_tail->next = w;
    else
        ps->w_head = w;
    ps->w_tail = w;
    /* Never inside this call: a queued message is handed over from the
     * loop, and a deadline is watched by the timer. */
    if (ps->q_head != NULL)
        schedule(ps);
    rearm_waiters(ps);
    return 0;
}

aredis_pubsub_message *aredis_pubsub_poll(aredis_pubsub *ps)
{
    if (ps == NULL)
        return NULL;
    queued *q = ps->q_head;
    if (q == NULL)
        return NULL;
    ps->q_head = q->next;
    if (ps->q_head == NULL)
        ps->q_tail = NULL;
    /* The message is the struct inside the allocation: free finds it. */
    return &q->m;
}

void aredis_pubsub_message_free(aredis_pubsub_message *m)
{
    if (m == NULL)
        return;
    queued *q = (queued *)((char *)m - offsetof(queued, m));
    aredis__free(q);
}

/* ------------------------------------------------------------------------
 * Life cycle
 * ------------------------------------------------------------------------ */

aredis_pubsub *aredis_pubsub_new(aredis_client *c,
                                 const aredis_pubsub_options *o)
{
    if (c == NULL || c->freeing)
        return NULL;
    aredis_pubsub *ps = aredis__calloc(1, sizeof *ps);
    if (ps == NULL)
        return NULL;
    ps->c = c;
    ps->loop = c->loop;
    if (o != NULL)
        ps->opts = *o;
    ps->timer = aredis_timer_new(c->loop, on_waiter_timer, ps);
    if (ps->timer == NULL) {
        aredis__free(ps);
        return NULL;
    }
    ps->next = c->pubsubs;
    c->pubsubs = ps;
    int proto = aredis__client_main(c)->conn.proto
                    ? aredis__client_main(c)->conn.proto
                    : c->cfg.protocol;
    if (proto != 0)
        choose_link(ps);
    return ps;
}

/* Give up the link at once: nothing more arrives for a pubsub being
 * freed. It stays on the client's list until its final release, so a
 * client freed in between still finds it, cancels its waiters and
 * forgets it (detach_all) before the client's memory goes. */
static void leave_link(aredis_pubsub *ps)
{
    aredis_client *c = ps->c;
    if (ps->mode == MODE_SHARED) {
        aredis__client_main(c)->pubsub = NULL;
        /* Leave everything on the shared connection; the confirmations
         * are dropped because no pubsub owns the link any more. */
        if (!c->freeing &&
            aredis__client_main(c)->conn.state == AREDIS__ST_READY)
            for (int k = 0; k < SUB_KINDS; k++)
                if (ps->subs[k].n > 0)
                    send_kind(ps, unsub_cmd[k], NULL, 0);
    } else if (ps->mode == MODE_OWN && ps->link != NULL) {
        aredis__pool_drop(ps->link);
    }
    ps->link = NULL;
    ps->mode = MODE_UNDECIDED;
    shard_leave(ps);
}

static void cancel_waiters(aredis_pubsub *ps)
{
    while (ps->w_head != NULL) {
        waiter *w = ps->w_head;
        ps->w_head = w->next;
        deliver_to_waiter(ps, w, NULL, AREDIS_ECANCELED);
    }
    ps->w_tail = NULL;
}

static void final_free(aredis_pubsub *ps)
{
    aredis_client *c = ps->c; /* still alive when set: see leave_link */
    if (c != NULL)
        for (aredis_pubsub **pp = &c->pubsubs; *pp != NULL; pp = &(*pp)->next)
            if (*pp == ps) {
                *pp = ps->next;
                break;
            }
    cancel_waiters(ps);
    while (ps->q_head != NULL) {
        queued *q = ps->q_head;
        ps->q_head = q->next;
        aredis__free(q);
    }
    for (int k = 0; k < SUB_KINDS; k++)
        clear(&ps->subs[k]);
    aredis_timer_free(ps->timer);
    ps->timer = NULL;
    aredis_timer_free(ps->stimer);
    ps->stimer = NULL;
    aredis_timer_free(ps->rtimer);
    ps->rtimer = NULL;
    aredis__free(ps->slinks);
    ps->slinks = NULL;
    ps->nslinks = 0;
    if (ps->acquiring || shard_pending(ps)) {
        ps->released = 1; /* the pending requests still point here */
        return;
    }
    aredis__free(ps);
}

static void on_free_tick(void *arg)
{
    final_free(arg);
}

void aredis_pubsub_free(aredis_pubsub *ps)
{
    if (ps == NULL || ps->freeing)
        return;
    ps->freeing = 1;
    aredis__loop_undefer(ps->loop, &ps->defer);
    if (ps->c == NULL) {
        /* The client is gone already: only memory is left. */
        final_free(ps);
        return;
    }
    leave_link(ps);
    /* Waiting get_message calls complete from the loop, not in here, and
     * all with AREDIS_ECANCELED: their deadlines no longer count. */
    if (ps->timer != NULL)
        aredis_timer_stop(ps->timer);
    aredis__loop_defer(ps->loop, &ps->defer, on_free_tick, ps);
}

void aredis__pubsub_detach_all(aredis_client *c)
{
    while (c->pubsubs != NULL) {
        aredis_pubsub *ps = c->pubsubs;
        c->pubsubs = ps->next;
        if (ps->link != NULL)
            ps->link->pubsub = NULL;
        ps->link = NULL;
        ps->mode = MODE_UNDECIDED;
        cancel_waiters(ps);
        aredis_timer_free(ps->timer);
        ps->timer = NULL;
        for (size_t i = 0; i < ps->nslinks; i++)
            ps->slinks[i]->pubsub = NULL;
        ps->nslinks = 0;
        for (int k = 0; k < SUB_KINDS; k++)
            for (size_t i = 0; i < ps->subs[k].n; i++)
                ps->subs[k].v[i].on = NULL;
        aredis_timer_free(ps->stimer);
        ps->stimer = NULL;
        aredis_timer_free(ps->rtimer);
        ps->rtimer = NULL;
        ps->c = NULL;
    }
    aredis__client_main(c)->pubsub = NULL;
}

/* ------------------------------------------------------------------------
 * Shard channels on a cluster
 *
 * Each shard channel is subscribed on a connection to the primary serving
 * its slot, borrowed from that node's pool (aredis_client_acquire_slot)
 * and kept for the pubsub's life; a node serving several channels gets
 * one connection. A channel is re-homed when the server unsubscribes it
 * by itself (its slot moved: the -sunsubscribe push of Redis 7) and when
 * its connection is lost: it is sent again to whichever node the slot map
 * names then, after a short pause if the map names none yet.
 * ------------------------------------------------------------------------ */

/* An acquisition on its way (for a slot's node), or a probe of a moved
 * slot: for the pubsub, which waits for it before its memory goes. */
struct shard_req {
    struct shard_req *next;
    aredis_pubsub *ps;
    unsigned slot;
};

static void req_done(struct shard_req *req)
{
    aredis_pubsub *ps = req->ps;
    for (struct shard_req **pp = &ps->sreqs; *pp != NULL; pp = &(*pp)->next)
        if (*pp == req) {
            *pp = req->next;
            break;
        }
    aredis__free(req);
}

static int shard_pending(const aredis_pubsub *ps)
{
    return ps->sreqs != NULL;
}

static int shard_link(const aredis_pubsub *ps, const aredis__link *l)
{
    for (size_t i = 0; i < ps->nslinks; i++)
        if (ps->slinks[i] == l)
            return 1;
    return 0;
}

static void on_shard_timer(void *arg)
{
    shard_sync(arg);
}

/* Channels are left without a link: try again a little later. */
static void shard_retry(aredis_pubsub *ps)
{
    if (ps->stimer == NULL)
        ps->stimer = aredis_timer_new(ps->loop, on_shard_timer, ps);
    if (ps->stimer == NULL)
        return;
    int64_t ms = (int64_t)10 << (ps->stries < 5 ? ps->stries : 5);
    ps->stries++;
    aredis_timer_start(ps->stimer, ms);
}

static void on_shard_acquired(aredis_client *c, aredis_exclusive *x, int status,
                              void *ud)
{
    struct shard_req *req = ud;
    aredis_pubsub *ps = req->ps;
    (void)c;
    req_done(req);
    if (ps->freeing || ps->c == NULL) {
        if (x != NULL && ps->c != NULL)
            aredis_exclusive_release(x);
        if (ps->released && !ps->acquiring && !shard_pending(ps))
            aredis__free(ps);
        return;
    }
    if (x == NULL) {
        (void)status;
        shard_retry(ps);
        return;
    }
    aredis__link *l = (aredis__link *)x;
    aredis__link **v =
        // NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers
        aredis__reallocarray(ps->slinks, ps->nslinks + 1, sizeof *v);
    if (v == NULL) {
        aredis_exclusive_release(x);
        shard_retry(ps);
        return;
    }
    ps->slinks = v;
    ps->slinks[ps->nslinks++] = l;
    l->pubsub = ps;
    if (l->conn.state == AREDIS__ST_READY && l->conn.proto == 2)
        l->conn.raw_push = 1;
    shard_sync(ps);
}

/* Send every shard channel that has no link to its slot's node: on the
 * pubsub's link to that node, or once one is borrowed. */
static void shard_sync(aredis_pubsub *ps)
{
    aredis_client *c = ps->c;
    if (c == NULL || ps->freeing || c->freeing)
        return;
    aredis__topology *t = c->topo;
    sub_set *set = &ps->subs[SUB_SHARD];
    int waiting = 0;
    for (size_t i = 0; i < set->n; i++) {
        sub *s = &set->v[i];
        if (s->on != NULL)
            continue;
        unsigned slot = aredis_cluster_keyslot(s->name, s->len);
        aredis__node *n = t->vt->slot_node(t, slot);
        if (n == NULL) {
            waiting = 1;
            continue;
        }
        aredis__link *l = NULL;
        for (size_t k = 0; k < ps->nslinks && l == NULL; k++)
            if (ps->slinks[k]->node == n)
                l = ps->slinks[k];
        if (l != NULL) {
            if (l->conn.state != AREDIS__ST_READY)
                continue; /* sent when it is (aredis__pubsub_link_ready) */
            const char *argv[2] = {"SSUBSCRIBE", s->name};
            size_t lens[2] = {10, s->len};
            if (aredis__send_pushed(c, l, 2, argv, lens) == 0)
                s->on = l;
            else
                waiting = 1;
            continue;
        }
        /* One acquisition per node at a time. */
        int asked = 0;
        for (struct shard_req *r = ps->sreqs; r != NULL && !asked; r = r->next)
            asked = t->vt->slot_node(t, r->slot) == n;
        if (asked)
            continue;
        struct shard_req *r = aredis__calloc(1, sizeof *r);
        if (r == NULL) {
            waiting = 1;
            continue;
        }
        r->ps = ps;
        r->slot = slot;
        if (aredis_client_acquire_slot(c, slot, on_shard_acquired, r) != 0) {
            aredis__free(r);
            waiting = 1;
            continue;
        }
        r->next = ps->sreqs;
        ps->sreqs = r;
    }
    if (waiting)
        shard_retry(ps);
    else
        ps->stries = 0;
}

/* The probe of a moved slot has its answer: the map knows the slot's new
 * node now (the probe met MOVED), so the channel goes there. */
static void on_probe(aredis_client *c, const aredis_reply *r, void *ud)
{
    struct shard_req *req = ud;
    aredis_pubsub *ps = req->ps;
    (void)c;
    (void)r;
    req_done(req);
    if (ps->freeing || ps->c == NULL) {
        if (ps->released && !ps->acquiring && !shard_pending(ps))
            aredis__free(ps);
        return;
    }
    shard_sync(ps);
}

/* A channel's slot moved away from its node, to a node the map may not
 * know yet: a read of the channel's name as a key (EXISTS), routed by the
 * same slot, meets MOVED and teaches the map before the channel is sent
 * again. */
static void shard_moved(aredis_pubsub *ps, const sub *s)
{
    struct shard_req *r = aredis__calloc(1, sizeof *r);
    const char *argv[2] = {"EXISTS", s->name};
    size_t lens[2] = {6, s->len};
    if (r != NULL) {
        r->ps = ps;
        r->slot = aredis_cluster_keyslot(s->name, s->len);
        if (aredis_commandv(ps->c, on_probe, r, 2, argv, lens) == 0) {
            r->next = ps->sreqs;
            ps->sreqs = r;
            return;
        }
        aredis__free(r);
    }
    shard_retry(ps);
}

static int shard_unsubscribe(aredis_pubsub *ps, const char *name)
{
    sub_set *set = &ps->subs[SUB_SHARD];
    if (name == NULL) {
        /* Every channel: SUNSUBSCRIBE on each node's link. */
        clear(set);
        for (size_t i = 0; i < ps->nslinks; i++) {
            const char *argv[1] = {"SUNSUBSCRIBE"};
            if (ps->slinks[i]->conn.state == AREDIS__ST_READY)
                aredis__send_pushed(ps->c, ps->slinks[i], 1, argv, NULL);
        }
        return 0;
    }
    size_t len = strlen(name);
    sub *s = find(set, name, len);
    if (s == NULL)
        return 0;
    aredis__link *l = s->on;
    drop(set, name, len);
    if (l == NULL || l->conn.state != AREDIS__ST_READY)
        return 0;
    const char *argv[2] = {"SUNSUBSCRIBE", name};
    size_t lens[2] = {12, len};
    return aredis__send_pushed(ps->c, l, 2, argv, lens);
}

/* A shard link was lost: its channels go again once it is back (or to
 * another node if their slot moved meanwhile). */
static void shard_lost(aredis_pubsub *ps, aredis__link *l)
{
    sub_set *set = &ps->subs[SUB_SHARD];
    for (size_t i = 0; i < set->n; i++)
        if (set->v[i].on == l)
            set->v[i].on = NULL;
}

/* The pubsub is being freed: its shard links go back for good, and the
 * pending acquisitions forget it. */
static void shard_leave(aredis_pubsub *ps)
{
    for (size_t i = 0; i < ps->nslinks; i++) {
        ps->slinks[i]->pubsub = NULL;
        aredis__pool_drop(ps->slinks[i]);
    }
    ps->nslinks = 0;
    sub_set *set = &ps->subs[SUB_SHARD];
    for (size_t i = 0; i < set->n; i++)
        set->v[i].on = NULL;
    if (ps->stimer != NULL)
        aredis_timer_stop(ps->stimer);
    if (ps->rtimer != NULL)
        aredis_timer_stop(ps->rtimer);
}

/* ------------------------------------------------------------------------
 * Channels and patterns on a cluster: re-homed when their node is lost
 *
 * Classic messages reach every node of a cluster, so the pubsub's one
 * link may be on any: when it is lost and has not come back after
 * REHOME_MS, the subscriptions move to a node whose shared connection is
 * up (a connection of its own there), and are replayed; a RESUBSCRIBED
 * message says when they are all in place again. Messages published in
 * between are lost, as after any reconnection.
 * ------------------------------------------------------------------------ */

#define REHOME_MS 300

static void rehome(aredis_pubsub *ps)
{
    aredis_client *c = ps->c;
    if (c == NULL || ps->freeing || c->freeing || ps->acquiring)
        return;
    aredis__link *l = ps->link;
    if (l != NULL && l->conn.state == AREDIS__ST_READY)
        return; /* it came back */
    aredis__node *lost = l != NULL ? l->node : NULL;
    aredis__node *v[32];
    size_t k = c->topo->vt->nodes(c->topo, AREDIS_NODES_ALL, v, 32);
    if (k > 32)
        k = 32;
    /* A node whose shared connection is up, else the others in turn (a
     * connection of its own is made there; one that fails sends us on to
     * the next). */
    aredis__node *pick = NULL;
    for (size_t i = 0; i < k && pick == NULL; i++)
        if (v[i] != lost && v[i]->main.conn.state == AREDIS__ST_READY)
            pick = v[i];
    for (size_t i = 0; i < k && pick == NULL; i++) {
        aredis__node *n = v[(ps->rnext + i) % k];
        if (n != lost) {
            pick = n;
            ps->rnext += (unsigned)i + 1;
        }
    }
    if (pick == NULL) {
        rehome_later(ps); /* none up yet: look again */
        return;
    }
    if (ps->mode == MODE_SHARED && l != NULL)
        l->pubsub = NULL;
    else if (ps->mode == MODE_OWN && l != NULL)
        aredis__pool_drop(l);
    ps->link = NULL;
    ps->mode = MODE_UNDECIDED;
    ps->need_replay = 0;
    ps->swallow = 0;
    ps->rehoming = 1;
    if (aredis__pool_acquire(pick, on_acquired, ps) == 0)
        ps->acquiring = 1;
    else
        rehome_later(ps);
}

static void on_rehome_timer(void *arg)
{
    rehome(arg);
}

static void rehome_later(aredis_pubsub *ps)
{
    if (ps->rtimer == NULL)
        ps->rtimer = aredis_timer_new(ps->loop, on_rehome_timer, ps);
    if (ps->rtimer != NULL)
        aredis_timer_start(ps->rtimer, REHOME_MS);
}

/* ------------------------------------------------------------------------
 * A pubsub on a thread of its own
 * ------------------------------------------------------------------------ */

struct aredis_pubsub_thread {
    aredis_loop *loop;
    aredis_client *client;
    aredis_pubsub *ps;
    pthread_t thread;
    void *wake;
    _Atomic int stop;
};

static void on_stop_wake(void *arg)
{
    (void)arg; /* waking the loop is enough: the thread checks `stop` */
}

static void *pubsub_thread_main(void *arg)
{
    aredis_pubsub_thread *t = arg;
    while (!t->stop)
        aredis_loop_run_once(t->loop, -1);
    aredis_pubsub_free(t->ps);
    aredis_client_free(t->client);
    return NULL;
}

static void thread_cleanup(aredis_pubsub_thread *t)
{
    if (t->wake != NULL)
        aredis__loop_wake_stop(t->loop, t->wake);
    aredis_pubsub_free(t->ps);
    aredis_client_free(t->client);
    aredis_loop_free(t->loop); /* runs the final releases */
    aredis__free(t);
}

aredis_pubsub_thread *aredis_pubsub_thread_start(const aredis_options *opts,
                                                 const aredis_pubsub_sub *subs,
                                                 size_t n, aredis_status *st)
{
    aredis_status dummy;
    if (st == NULL)
        st = &dummy;
    st->code = 0;
    st->msg[0] = '\0';
    if (n == 0 || subs == NULL) {
        st->code = AREDIS_EINVAL;
        snprintf(st->msg, sizeof st->msg, "no subscription given");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        int kind = subs[i].kind;
        const char *why = NULL;
        if (subs[i].handler == NULL)
            why = "has no handler: a pubsub thread delivers only through "
                  "handlers";
        else if (subs[i].name == NULL)
            why = "has no channel or pattern name";
        else if (kind != AREDIS_PUBSUB_SUBSCRIBE &&
                 kind != AREDIS_PUBSUB_PSUBSCRIBE &&
                 kind != AREDIS_PUBSUB_SSUBSCRIBE)
            why = "has a kind other than AREDIS_PUBSUB_SUBSCRIBE, "
                  "_PSUBSCRIBE or _SSUBSCRIBE";
        if (why != NULL) {
            st->code = AREDIS_EINVAL;
            snprintf(st->msg, sizeof st->msg, "subscription %zu %s", i, why);
            return NULL;
        }
    }
    aredis_pubsub_thread *t = aredis__calloc(1, sizeof *t);
    if (t == NULL || (t->loop = aredis_loop_new()) == NULL) {
        aredis__free(t);
        st->code = AREDIS_ENOMEM;
        snprintf(st->msg, sizeof st->msg, "out of memory");
        return NULL;
    }
    /* Everything is built here, where errors can still be returned; the
     * new thread takes over once it starts and this one never touches the
     * objects again (pthread_create orders the memory). */
    t->client = aredis_client_new(t->loop, opts, st);
    int e = t->client != NULL ? 0 : st->code;
    if (e == 0 && (t->ps = aredis_pubsub_new(t->client, NULL)) == NULL)
        e = AREDIS_ENOMEM;
    for (size_t i = 0; e == 0 && i < n; i++) {
        if (subs[i].kind == AREDIS_PUBSUB_PSUBSCRIBE)
            e = aredis_pubsub_psubscribe(t->ps, subs[i].name, subs[i].handler,
                                         subs[i].ud);
        else if (subs[i].kind == AREDIS_PUBSUB_SSUBSCRIBE)
            e = aredis_pubsub_ssubscribe(t->ps, subs[i].name, subs[i].handler,
                                         subs[i].ud);
        else
            e = aredis_pubsub_subscribe(t->ps, subs[i].name, subs[i].handler,
                                        subs[i].ud);
    }
    if (e == 0)
        e = aredis__loop_wake_start(t->loop, on_stop_wake, t, &t->wake);
    if (e == 0 && pthread_create(&t->thread, NULL, pubsub_thread_main, t) != 0)
        e = AREDIS_ENOMEM;
    if (e != 0) {
        if (st->code == 0) {
            st->code = e;
            snprintf(st->msg, sizeof st->msg, "%s", aredis_strerror(e));
        }
        thread_cleanup(t);
        return NULL;
    }
    return t;
}

void aredis_pubsub_thread_stop(aredis_pubsub_thread *t)
{
    if (t == NULL)
        return;
    t->stop = 1;
    aredis__loop_wake(t->loop, t->wake);
    pthread_join(t->thread, NULL);
    /* The thread freed the pubsub and the client; the loop still holds
     * their final releases, which run here. */
    t->ps = NULL;
    t->client = NULL;
    thread_cleanup(t);
}
