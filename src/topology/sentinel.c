/* The sentinel topology (topology layer): the master of a service that
 * Redis Sentinel monitors, whose address the sentinels name, and (role
 * replica) its replicas.
 *
 * Discovery. Before the master's connection looks up an address (locate),
 * the sentinels are asked in order, SENTINEL GET-MASTER-ADDR-BY-NAME, each
 * within a short deadline (sentinel_timeout_ms): a dead or hung sentinel
 * costs at most that. The address named is checked with ROLE: a server
 * that says it is a replica is dropped and the next sentinel asked. The
 * sentinel that answered moves to the front of the list. Each question
 * goes over a short-lived private client on the same loop, with its own
 * credentials and TLS settings: the sentinels' for the sentinels, the data
 * servers' for ROLE. Once the master is known, SENTINEL SENTINELS adds the
 * sentinels the configuration did not name, so later look-ups survive the
 * loss of the configured ones.
 *
 * Following failovers. A private client per known sentinel subscribes to
 * its events (PSUBSCRIBE *, resubscribed after every reconnect):
 *  - +switch-master: the connection to the old master is dropped (its
 *    commands in flight follow the retry policy), the announced address is
 *    checked with ROLE and connected to;
 *  - +sdown or +odown of the master: the connection is dropped, commands
 *    are held, and the master is looked up again (ROLE tells a master
 *    that is fine, which takes them at once, from a hung one);
 *  - +selected-slave / +failover-state-send-slaveof-noone (the leader of a
 *    failover): the fence. The connection is dropped and new commands are
 *    held (not sent) until +switch-master, an abort, or failover_wait;
 *  - +sdown/-sdown of a replica: it leaves/rejoins the read rotation;
 *  - +sentinel: one more sentinel to watch and ask.
 * A lost connection and a READONLY reply make the next connect look again.
 * While the master is down (lost, +odown, fenced), a look-up that finds no
 * master holds the connection (its commands wait in its queue) and looks
 * again every HOLD_RETRY_MS, or at once on +switch-master, for up to
 * failover_wait; after that, or at once with failover_wait 0, it fails
 * with AREDIS_ENOMASTER and a message naming the cause.
 *
 * Replica role. The replicas come from SENTINEL REPLICAS (those flagged
 * s_down, o_down or disconnected are left out), refreshed after every
 * look-up of the master and on +slave events. Each command goes to the
 * next healthy replica (round robin); with none, to the master when
 * replica_fallback is set, else it fails (route answers no node). */
#include "topology/topology.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "aredis/error.h"
#include "aredis/pubsub.h"
#include "util/alloc.h"
#include "util/msg.h"

/* A held look-up asks again this often (besides +switch-master). */
#define HOLD_RETRY_MS 250
/* A replica whose connection was lost (and no sentinel said +sdown) is
 * tried again after this long. */
#define REPLICA_RETRY_MS 1000
/* The most sentinels known at once (configured and learnt). */
#define MAX_SENTINELS 32

enum { ASK_SENTINEL, ASK_ROLE, ASK_REPLICAS, ASK_SENTINELS };

typedef struct sentinel sentinel;

/* One question in flight: it outlives the topology when the client is
 * freed meanwhile (st is then NULL and the callback only tidies up). */
typedef struct ask {
    sentinel *st;
    aredis_client *probe;
    int kind;
} ask;

typedef struct replica {
    aredis__node node;
    struct replica *next;
    int listed;      /* in the latest SENTINEL REPLICAS, not flagged down */
    int sdown;       /* a sentinel said +sdown, none -sdown since */
    int64_t lost_at; /* its connection was lost then; 0: it was not */
} replica;

/* The event subscription on one sentinel. */
typedef struct watcher {
    aredis_client *c;
    aredis_pubsub *ps;
    char *host;
    int port;
} watcher;

struct sentinel {
    aredis__topology base;
    aredis__node node; /* the master */
    int located;       /* node->host/port were named and verified */
    int busy;          /* the master's links wait for an answer */
    size_t idx;        /* the sentinel asked (index in cfg.more->sentinels) */
    ask *cur;          /* the round's question */
    ask *bg[2];        /* SENTINEL REPLICAS, SENTINEL SENTINELS */
    size_t bg_idx[2];  /* the sentinel each asks */
    char cand_host[256];
    int cand_port;
    /* Why the round has not succeeded yet, for the failed commands: the
     * latest failure in full, the earlier ones of the round in order
     * ("; " between them; `full` once one did not fit), and how many. */
    char why[256];
    char before[384];
    int before_full;
    unsigned nwhy;
    int why_code;
    size_t unknown;         /* sentinels that do not know the service */
    aredis__defer relocate; /* drop the master's connection */
    aredis__defer start;    /* a round starts from the loop */
    const char *reloc_why;  /* the reason relocate gives (static) */

    watcher *watch;
    size_t nwatch;
    /* An address a sentinel announced: the next round checks it first. */
    int switched;
    int via_switch; /* this round's candidate came from an announcement */
    char switch_host[256];
    int switch_port;

    /* The master is down (lost, +odown, a failover under way) since then
     * (0: it is not): a failing look-up holds until down_since +
     * failover_wait. */
    int64_t down_since;
    char down_why[160];
    char last_master[280]; /* "host:port" of the last master, for messages */
    int fenced;            /* a failover's leader picked a replica */
    int held;              /* the round ended without an answer: waiting */
    int64_t retry_at;      /* a held round starts again then (0: never) */
    void *timer;

    /* Role replica. */
    replica *replicas;
    replica *rr; /* the last one a command went to */
    int replicas_known;
    /* Commands that came before the replicas were known, in order. */
    aredis__held waiting;
    int learnt; /* SENTINEL SENTINELS was answered once */
};

static int64_t wait_ms(const sentinel *st)
{
    return st->base.c->cfg.more->sentinel_failover_wait_ms;
}

static int is_replica_role(const sentinel *st)
{
    return st->base.c->cfg.more->sentinel_role == AREDIS_SENTINEL_REPLICA;
}

static int same_addr(const char *host, int port, const char *h2, int p2)
{
    return host != NULL && port == p2 && strcmp(host, h2) == 0;
}

/* ---- routing --------------------------------------------------------------
 */

/* A replica takes commands when the sentinels list it up and its
 * connection is not known to be broken. One whose connection was lost gets
 * none until it is back: every REPLICA_RETRY_MS it is reconnected without
 * any command riding on the attempt. */
static int replica_healthy(replica *r, int64_t *now)
{
    if (!r->listed || r->sdown)
        return 0;
    if (r->lost_at == 0)
        return 1;
    aredis__link *l = &r->node.main;
    if (l->conn.state == AREDIS__ST_READY) {
        r->lost_at = 0;
        return 1;
    }
    if (*now == 0)
        *now = aredis__now_ms();
    if (l->conn.state == AREDIS__ST_IDLE &&
        *now - r->lost_at >= REPLICA_RETRY_MS) {
        r->lost_at = *now;
        aredis__link_connect(l);
    }
    return 0;
}

/* The next healthy replica after st->rr (advance: move the cursor). */
static replica *next_replica(sentinel *st, int advance)
{
    int64_t now = 0;
    replica *start =
        st->rr != NULL && st->rr->next != NULL ? st->rr->next : st->replicas;
    replica *r = start;
    if (r == NULL)
        return NULL;
    do {
        if (replica_healthy(r, &now)) {
            if (advance)
                st->rr = r;
            return r;
        }
        r = r->next != NULL ? r->next : st->replicas;
    } while (r != start);
    return NULL;
}

static aredis__node *replica_or_master(sentinel *st, int advance)
{
    /* Until the replicas are known, work that names no command (acquire,
     * pub/sub) uses the master; commands are held (st_route). */
    if (!st->replicas_known)
        return &st->node;
    replica *r = next_replica(st, advance);
    if (r != NULL)
        return &r->node;
    return st->base.c->cfg.more->sentinel_replica_fallback ? &st->node : NULL;
}

static aredis__node *st_any(aredis__topology *t)
{
    sentinel *st = (sentinel *)t;
    if (!is_replica_role(st))
        return &st->node;
    aredis__node *n = replica_or_master(st, 0);
    return n != NULL ? n : &st->node;
}

static aredis__node *st_route(aredis__topology *t, const aredis__cmd *cmd,
                              const aredis__cmdview *v)
{
    sentinel *st = (sentinel *)t;
    if (!is_replica_role(st))
        return &st->node;
    if (!st->replicas_known) {
        if (v->bytes == NULL)
            return AREDIS__NEEDS_BYTES;
        /* Held, with a copy of its bytes, until SENTINEL REPLICAS
         * answers, so no read goes to the master by accident. */
        aredis__cmd *x = (aredis__cmd *)(uintptr_t)cmd;
        if (aredis__cmd_keep(x, v->bytes) != 0)
            aredis__defer_done(t->c, x, AREDIS_ENOMEM, "out of memory");
        else
            aredis__held_push(&st->waiting, x);
        return AREDIS__HELD;
    }
    return replica_or_master(st, 1);
}

static int st_unwait(aredis__topology *t, aredis__cmd *cmd)
{
    return aredis__held_remove(&((sentinel *)t)->waiting, cmd);
}

/* The replicas are known (or the sentinels could not say: why): the held
 * commands go where they would have gone, or fail. Loop context. */
static void release_held(sentinel *st, const char *why)
{
    aredis_client *c = st->base.c;
    aredis__cmd *list = aredis__held_take(&st->waiting);
    while (list != NULL) {
        aredis__cmd *cmd = list;
        list = aredis__cmd_next(cmd);
        cmd->cc.next = NULL;
        cmd->flags &= (uint8_t)~AREDIS__CMD_PENDING;
        aredis__node *n = replica_or_master(st, 1);
        if (n == NULL) {
            aredis__defer_done(c, cmd, AREDIS_ENOMASTER,
                               why != NULL ? why
                                           : "no healthy replica (and no "
                                             "replica_fallback)");
        } else if (cmd->flags & AREDIS__CMD_BLOCKING) {
            aredis__pool_route(n, cmd, cmd->cc.copy);
        } else if (aredis__link_submit(&n->main, cmd, cmd->cc.copy) != 0) {
            aredis__defer_done(c, cmd, AREDIS_ENOMEM, "out of memory");
        }
    }
}

static aredis__node *st_next(aredis__topology *t, const aredis__node *prev)
{
    sentinel *st = (sentinel *)t;
    if (prev == NULL)
        return &st->node;
    if (prev == &st->node)
        return st->replicas != NULL ? &st->replicas->node : NULL;
    const replica *r = (const replica *)prev;
    return r->next != NULL ? &r->next->node : NULL;
}

/* ---- the end of a round -------------------------------------------------
 */

/* Answer every link of the master that waits for the address. */
static void answer_links(sentinel *st, int code, const char *msg)
{
    aredis__node *n = &st->node;
    aredis__link_located(&n->main, code, msg);
    for (aredis__link *l = aredis__pool_first(n); l != NULL;
         l = aredis__pool_next(l))
        aredis__link_located(l, code, msg);
}

static void arm(sentinel *st);

static void round_done(sentinel *st, int code, const char *msg)
{
    st->busy = 0;
    st->held = 0;
    arm(st);
    answer_links(st, code, msg);
}

static void note(sentinel *st, int code, const char *fmt, ...)
    AREDIS_PRINTF(3, 4);

static void note(sentinel *st, int code, const char *fmt, ...)
{
    /* The previous failure joins the earlier ones, while they fit: the
     * message the round ends with leads with the count and the latest, so
     * that a cut loses only the oldest. */
    size_t n = strlen(st->before);
    if (st->why[0] != '\0' && !st->before_full) {
        aredis__msgf(st->before + n, sizeof st->before - n, "%s%s",
                     n > 0 ? "; " : "", st->why);
        st->before_full = strlen(st->before) + 1 >= sizeof st->before;
    }
    va_list ap;
    va_start(ap, fmt);
    aredis__vmsgf(st->why, sizeof st->why, fmt, ap);
    va_end(ap);
    st->why_code = code;
    st->nwhy++;
}

/* A new round: nothing has failed yet. */
static void note_clear(sentinel *st)
{
    st->why[0] = '\0';
    st->before[0] = '\0';
    st->before_full = 0;
    st->nwhy = 0;
    st->why_code = 0;
}

/* The master is down (or about to move): from now on a failing look-up
 * holds, up to failover_wait. */
static void master_down(sentinel *st, const char *why)
{
    if (st->down_since != 0)
        return;
    st->down_since = aredis__now_ms();
    aredis__msgf(st->down_why, sizeof st->down_why, "%s", why);
}

/* Keep the master's waiting links waiting until `until`, their connect
 * deadline aside (plus a connect's own time after the answer). */
static void extend_links(sentinel *st, int64_t until)
{
    int64_t ct = st->base.c->cfg.connect_timeout_ms;
    until += ct > 0 ? ct : 0;
    aredis__node *n = &st->node;
    aredis__link_wait_until(&n->main, until);
    for (aredis__link *l = aredis__pool_first(n); l != NULL;
         l = aredis__pool_next(l))
        aredis__link_wait_until(l, until);
}

/* When the hold ends: the fence's or failover_wait's end. */
static int64_t hold_end(const sentinel *st)
{
    return st->down_since + wait_ms(st);
}

/* The round found no master while it is down: wait for +switch-master,
 * and ask again now and then, until failover_wait is over. */
static void hold(sentinel *st)
{
    int64_t now = aredis__now_ms(), end = hold_end(st);
    st->held = 1;
    st->retry_at = st->fenced ? end : now + HOLD_RETRY_MS;
    if (st->retry_at > end)
        st->retry_at = end;
    extend_links(st, end);
    arm(st);
}

/* The round found no master. */
static void round_failed(sentinel *st, int code, const char *msg)
{
    if (st->down_since != 0 && wait_ms(st) > 0 &&
        aredis__now_ms() < hold_end(st)) {
        hold(st);
        return;
    }
    if (st->down_since != 0) {
        char m[1024];
        aredis__msgf(m, sizeof m,
                     "the master %s is down (%s) and no new one is known "
                     "after %lld ms (failover_wait): %s",
                     st->last_master, st->down_why,
                     (long long)(aredis__now_ms() - st->down_since), msg);
        round_done(st, AREDIS_ENOMASTER, m);
        return;
    }
    round_done(st, code, msg);
}

static void ask_sentinel(sentinel *st);

/* The sentinel at st->idx did not help: the next one, or the round fails
 * with what the last one said, and, when several failed, how many were
 * asked and what the others said, as far as it fits (or, when every
 * sentinel that answered did not know the service, with that). */
static void next_sentinel(sentinel *st)
{
    aredis_client *c = st->base.c;
    if (++st->idx < c->cfg.more->nsentinels) {
        ask_sentinel(st);
        return;
    }
    char msg[sizeof st->why + sizeof st->before + 128];
    if (st->unknown > 0 && st->why_code == AREDIS_ENOMASTER)
        aredis__msgf(msg, sizeof msg,
                     "no sentinel knows the service '%s' (%zu of %zu asked "
                     "do not monitor it)",
                     c->cfg.more->sentinel_service, st->unknown,
                     c->cfg.more->nsentinels);
    else if (st->nwhy > 1)
        aredis__msgf(msg, sizeof msg,
                     "sentinel discovery failed, %zu sentinels asked; the "
                     "last: %s; before: %s",
                     c->cfg.more->nsentinels, st->why, st->before);
    else
        aredis__msgf(msg, sizeof msg, "sentinel discovery failed: %s", st->why);
    round_failed(st, st->why_code != 0 ? st->why_code : AREDIS_ENOMASTER, msg);
}

/* ---- questions over private clients --------------------------------------
 */

static void on_answer(aredis_client *probe, const aredis_reply *r, void *ud);

/* The options of a private client to host:port: the sentinels' or the
 * data servers' credentials and TLS. */
static aredis_options probe_options(const aredis__config *cfg, int on_sentinel,
                                    const char *host, int port)
{
    return (aredis_options){
        .host = host,
        .port = port,
        .username = on_sentinel ? cfg->more->sentinel_username : cfg->username,
        .password = on_sentinel ? cfg->more->sentinel_password : cfg->password,
        .protocol = cfg->protocol,
        .connect_timeout_ms = cfg->more->sentinel_timeout_ms,
        .reconnect_max_attempts = AREDIS_NO_RECONNECT,
        .tls = {.enabled = on_sentinel ? cfg->more->sentinel_tls : cfg->tls,
                .ca_file = cfg->more->tls_ca_file,
                .ca_dir = cfg->more->tls_ca_dir,
                .cert_file = cfg->more->tls_cert_file,
                .key_file = cfg->more->tls_key_file,
                .sni = cfg->more->tls_sni,
                .insecure_skip_verify = cfg->more->tls_insecure},
    };
}

/* Ask host:port one command over a fresh client, within the sentinel
 * deadline. The question, or NULL after noting why. */
static ask *ask_start(sentinel *st, int kind, const char *host, int port,
                      const char *cmd, const char *arg)
{
    aredis_client *c = st->base.c;
    const aredis__config *cfg = &c->cfg;
    aredis_options o = probe_options(cfg, kind != ASK_ROLE, host, port);
    aredis_status status;
    ask *a = aredis__calloc(1, sizeof *a);
    if (a == NULL) {
        note(st, AREDIS_ENOMEM, "out of memory");
        return NULL;
    }
    a->st = st;
    a->kind = kind;
    a->probe = aredis_client_new(c->loop, &o, &status);
    if (a->probe == NULL) {
        aredis__free(a);
        note(st, status.code, "%.60s:%d: %s", host, port, status.msg);
        return NULL;
    }
    aredis_cmd_opts co = {.timeout_ms = cfg->more->sentinel_timeout_ms};
    int e = arg != NULL
                ? aredis_command_opts(a->probe, &co, on_answer, a, cmd, arg)
                : aredis_command_opts(a->probe, &co, on_answer, a, cmd);
    if (e != 0) {
        aredis_client_free(a->probe);
        aredis__free(a);
        note(st, e, "%s", aredis_strerror(e));
        return NULL;
    }
    return a;
}

/* Forget a question: its answer will only tidy up. */
static void ask_drop(ask **ap)
{
    if (*ap == NULL)
        return;
    (*ap)->st = NULL;
    aredis_client_free((*ap)->probe);
    *ap = NULL;
}

static void ask_sentinel(sentinel *st)
{
    aredis_client *c = st->base.c;
    for (; st->idx < c->cfg.more->nsentinels; st->idx++) {
        const aredis__endpoint *ep = &c->cfg.more->sentinels[st->idx];
        if ((st->cur = ask_start(st, ASK_SENTINEL, ep->host, ep->port,
                                 "SENTINEL GET-MASTER-ADDR-BY-NAME %s",
                                 c->cfg.more->sentinel_service)) != NULL)
            return;
    }
    st->idx--; /* next_sentinel() steps past the last one */
    next_sentinel(st);
}

/* The sentinel at idx answered well: it goes first from now on. */
static void to_front(aredis__config *cfg, size_t idx)
{
    aredis__endpoint e = cfg->more->sentinels[idx];
    memmove(&cfg->more->sentinels[1], &cfg->more->sentinels[0],
            idx * sizeof cfg->more->sentinels[0]);
    cfg->more->sentinels[0] = e;
}

static int is_str(const aredis_reply *r)
{
    return r->type == AREDIS_REPLY_STRING || r->type == AREDIS_REPLY_STATUS;
}

static int str_is(const aredis_reply *r, const char *s)
{
    size_t n = strlen(s);
    return is_str(r) && r->len == n && memcmp(r->str, s, n) == 0;
}

/* A port number from a reply's text, 0 when it is none. */
static int port_of(const char *s, size_t len)
{
    int port = 0;
    for (size_t i = 0; i < len && port <= 65535; i++)
        port = s[i] >= '0' && s[i] <= '9' ? port * 10 + (s[i] - '0') : 65536;
    return len > 0 && port <= 65535 ? port : 0;
}

static void sentinel_answered(sentinel *st, const aredis_reply *r)
{
    aredis_client *c = st->base.c;
    const aredis__endpoint *ep = &c->cfg.more->sentinels[st->idx];
    if (r->type == AREDIS_REPLY_ARRAY && r->len == 2 &&
        is_str(&r->element[0]) && is_str(&r->element[1]) &&
        r->element[0].len > 0 && r->element[0].len < sizeof st->cand_host) {
        int port = port_of(r->element[1].str, r->element[1].len);
        if (port > 0) {
            memcpy(st->cand_host, r->element[0].str, r->element[0].len);
            st->cand_host[r->element[0].len] = '\0';
            st->cand_port = port;
            if ((st->cur = ask_start(st, ASK_ROLE, st->cand_host, port, "ROLE",
                                     NULL)) != NULL)
                return;
            next_sentinel(st);
            return;
        }
    }
    if (r->type == AREDIS_REPLY_NIL ||
        (r->type == AREDIS_REPLY_ARRAY && r->len == 0)) {
        st->unknown++;
        note(st, AREDIS_ENOMASTER,
             "sentinel %.60s:%d does not know the service '%.40s'", ep->host,
             ep->port, c->cfg.more->sentinel_service);
    } else if (r->type == AREDIS_REPLY_ERROR) {
        note(st, r->code, "sentinel %.60s:%d: %.*s", ep->host, ep->port,
             (int)(r->len < sizeof st->why ? r->len : sizeof st->why), r->str);
    } else {
        note(st, AREDIS_EPROTO, "sentinel %.60s:%d sent an unexpected %s",
             ep->host, ep->port, aredis_reply_type_name(r->type));
    }
    next_sentinel(st);
}

static void start_watching(sentinel *st);
static void on_relocate(void *arg);
static void ask_bg(sentinel *st, int which);

static void role_answered(sentinel *st, const aredis_reply *r)
{
    aredis_client *c = st->base.c;
    if (r->type == AREDIS_REPLY_ARRAY && r->len >= 1 &&
        str_is(&r->element[0], "master")) {
        char *h = aredis__strndup(st->cand_host, strlen(st->cand_host));
        if (h == NULL) {
            round_done(st, AREDIS_ENOMEM, "out of memory");
            return;
        }
        aredis__node_set_host(&st->node, h);
        st->node.port = st->cand_port;
        st->node.role = AREDIS__ROLE_MASTER;
        snprintf(st->last_master, sizeof st->last_master, "%s:%d",
                 st->cand_host, st->cand_port);
        st->located = 1;
        st->down_since = 0;
        st->fenced = 0;
        if (!st->via_switch)
            to_front(&c->cfg, st->idx);
        st->via_switch = 0;
        round_done(st, 0, NULL);
        start_watching(st);
        if (is_replica_role(st))
            ask_bg(st, 0);
        if (!st->learnt)
            ask_bg(st, 1);
        return;
    }
    if (r->type == AREDIS_REPLY_ERROR)
        note(st, r->code, "%.60s:%d (named by a sentinel): %.*s", st->cand_host,
             st->cand_port,
             (int)(r->len < sizeof st->why ? r->len : sizeof st->why), r->str);
    else
        note(st, AREDIS_ENOMASTER,
             "%.60s:%d, named master by a sentinel, says it is not one",
             st->cand_host, st->cand_port);
    if (st->via_switch) { /* the announcement was wrong: ask as usual */
        st->via_switch = 0;
        st->idx = 0;
        ask_sentinel(st);
        return;
    }
    next_sentinel(st);
}

/* ---- replicas and sentinels, learnt in the background --------------------
 */

/* The value of key in an entry of SENTINEL REPLICAS / SENTINELS (a flat
 * array of pairs in RESP2, a map in RESP3), or NULL. */
static const aredis_reply *field(const aredis_reply *e, const char *key)
{
    if (e->type != AREDIS_REPLY_ARRAY && e->type != AREDIS_REPLY_MAP)
        return NULL;
    for (size_t i = 0; i + 1 < e->len; i += 2)
        if (str_is(&e->element[i], key) && is_str(&e->element[i + 1]))
            return &e->element[i + 1];
    return NULL;
}

/* ip and port of an entry into host (cap bytes) and *port; 0 when bad. */
static int entry_addr(const aredis_reply *e, char *host, size_t cap, int *port)
{
    const aredis_reply *ip = field(e, "ip"), *p = field(e, "port");
    if (ip == NULL || p == NULL || ip->len == 0 || ip->len >= cap)
        return 0;
    memcpy(host, ip->str, ip->len);
    host[ip->len] = '\0';
    *port = port_of(p->str, p->len);
    return *port > 0;
}

static replica *find_replica(sentinel *st, const char *host, int port)
{
    for (replica *r = st->replicas; r != NULL; r = r->next)
        if (r->node.port == port && strcmp(r->node.host, host) == 0)
            return r;
    return NULL;
}

/* Replicas are kept for the client's life (commands may wait on them);
 * one the sentinels no longer list leaves the rotation. */
static replica *add_replica(sentinel *st, const char *host, int port)
{
    replica *r = find_replica(st, host, port);
    if (r != NULL)
        return r;
    if ((r = aredis__calloc(1, sizeof *r)) == NULL)
        return NULL;
    if (aredis__node_init(&r->node, st->base.c, host, port) != 0) {
        aredis__free(r);
        return NULL;
    }
    r->node.role = AREDIS__ROLE_REPLICA;
    replica **tail = &st->replicas;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = r;
    return r;
}

static void replicas_answered(sentinel *st, const aredis_reply *r)
{
    if (r->type != AREDIS_REPLY_ARRAY)
        return;
    for (replica *p = st->replicas; p != NULL; p = p->next)
        p->listed = 0;
    for (size_t i = 0; i < r->len; i++) {
        char host[256];
        int port = 0;
        const aredis_reply *e = &r->element[i], *fl = field(e, "flags");
        if (!entry_addr(e, host, sizeof host, &port))
            continue;
        replica *p = add_replica(st, host, port);
        if (p == NULL)
            continue;
        int down = 0;
        if (fl != NULL) {
            char f[256];
            snprintf(f, sizeof f, "%.*s", (int)fl->len, fl->str);
            down = strstr(f, "s_down") != NULL || strstr(f, "o_down") != NULL ||
                   strstr(f, "disconnected") != NULL;
        }
        p->listed = !down;
        p->sdown = down;
    }
    st->replicas_known = 1;
    release_held(st, NULL);
}

static void watch_one(sentinel *st, const char *host, int port);

/* A sentinel the configuration did not name joins the list (asked after
 * the configured ones) and is watched. */
static void add_sentinel(sentinel *st, const char *host, int port)
{
    aredis__config *cfg = &st->base.c->cfg;
    for (size_t k = 0; k < cfg->more->nsentinels; k++)
        if (same_addr(cfg->more->sentinels[k].host,
                      cfg->more->sentinels[k].port, host, port))
            return;
    if (cfg->more->nsentinels >= MAX_SENTINELS)
        return;
    aredis__endpoint *eps = aredis__reallocarray(
        cfg->more->sentinels, cfg->more->nsentinels + 1, sizeof *eps);
    if (eps == NULL)
        return;
    cfg->more->sentinels = eps;
    if ((eps[cfg->more->nsentinels].host =
             aredis__strndup(host, strlen(host))) == NULL)
        return;
    eps[cfg->more->nsentinels].port = port;
    cfg->more->nsentinels++;
    watch_one(st, host, port);
}

static void sentinels_answered(sentinel *st, const aredis_reply *r)
{
    if (r->type != AREDIS_REPLY_ARRAY)
        return;
    st->learnt = 1;
    for (size_t i = 0; i < r->len; i++) {
        char host[256];
        int port = 0;
        if (entry_addr(&r->element[i], host, sizeof host, &port))
            add_sentinel(st, host, port);
    }
}

/* Ask a sentinel (the first that answers, from the front) SENTINEL
 * REPLICAS (which 0) or SENTINEL SENTINELS (1) in the background. */
static void ask_bg_from(sentinel *st, int which)
{
    static const char *const q[] = {"SENTINEL REPLICAS %s",
                                    "SENTINEL SENTINELS %s"};
    const aredis__config *cfg = &st->base.c->cfg;
    for (; st->bg_idx[which] < cfg->more->nsentinels; st->bg_idx[which]++) {
        const aredis__endpoint *ep = &cfg->more->sentinels[st->bg_idx[which]];
        if ((st->bg[which] = ask_start(
                 st, which == 0 ? ASK_REPLICAS : ASK_SENTINELS, ep->host,
                 ep->port, q[which], cfg->more->sentinel_service)) != NULL)
            return;
    }
    /* No sentinel could list the replicas: what waited for them goes to
     * the master (replica_fallback) or fails, rather than waiting on. */
    if (which == 0 && !st->replicas_known && st->waiting.head != NULL)
        release_held(st, "no sentinel could list the replicas "
                         "(SENTINEL REPLICAS)");
}

static void ask_bg(sentinel *st, int which)
{
    ask_drop(&st->bg[which]); /* a newer question supersedes it */
    st->bg_idx[which] = 0;
    ask_bg_from(st, which);
}

static void bg_answered(sentinel *st, int which, const aredis_reply *r)
{
    st->bg[which] = NULL;
    if (r->type == AREDIS_REPLY_ERROR) {
        st->bg_idx[which]++;
        ask_bg_from(st, which);
        return;
    }
    if (which == 0)
        replicas_answered(st, r);
    else
        sentinels_answered(st, r);
}

static void on_answer(aredis_client *probe, const aredis_reply *r, void *ud)
{
    ask *a = ud;
    sentinel *st = a->st;
    aredis_client_free(probe); /* takes effect when this returns */
    int kind = a->kind;
    aredis__free(a);
    if (st == NULL)
        return; /* the client went away meanwhile, or the question */
    switch (kind) {
    case ASK_SENTINEL:
        st->cur = NULL;
        sentinel_answered(st, r);
        break;
    case ASK_ROLE:
        st->cur = NULL;
        role_answered(st, r);
        break;
    default:
        bg_answered(st, kind == ASK_REPLICAS ? 0 : 1, r);
        break;
    }
}

/* ---- rounds --------------------------------------------------------------
 */

static void on_start(void *arg)
{
    sentinel *st = arg;
    st->idx = 0;
    st->unknown = 0;
    note_clear(st);
    st->held = 0;
    if (st->switched) {
        /* A sentinel announced the new master: check it, skip asking. */
        st->switched = 0;
        st->via_switch = 1;
        memcpy(st->cand_host, st->switch_host, sizeof st->cand_host);
        st->cand_port = st->switch_port;
        if ((st->cur = ask_start(st, ASK_ROLE, st->cand_host, st->cand_port,
                                 "ROLE", NULL)) != NULL)
            return;
        st->via_switch = 0;
    }
    if (st->fenced) {
        /* Writes wait for the failover's end: nobody is asked. */
        note(st, AREDIS_ENOMASTER, "a failover is in progress");
        hold(st);
        return;
    }
    ask_sentinel(st);
}

/* Start the round again now (news from a sentinel), if the links wait. */
static void restart_round(sentinel *st)
{
    if (!st->busy)
        return;
    ask_drop(&st->cur);
    st->via_switch = 0;
    st->held = 0;
    aredis__loop_defer(st->base.c->loop, &st->start, on_start, st);
}

static void arm(sentinel *st)
{
    int64_t at = st->held ? st->retry_at : 0;
    if (at == 0) {
        aredis__loop_timer_set(st->base.c->loop, st->timer, -1);
        return;
    }
    int64_t ms = at - aredis__now_ms();
    aredis__loop_timer_set(st->base.c->loop, st->timer, ms < 0 ? 0 : ms);
}

static void on_timer(void *arg)
{
    sentinel *st = arg;
    if (!st->held || st->base.c->freeing)
        return;
    if (aredis__now_ms() < st->retry_at) {
        arm(st);
        return;
    }
    st->fenced = 0; /* the fence ends with failover_wait at the latest */
    st->held = 0;
    on_start(st); /* a last round: it fails for good once the wait is over */
}

/* ---- following failovers -------------------------------------------------
 */

/* The master's connection goes (from the loop): why says what next. */
static void drop_master(sentinel *st, const char *why)
{
    st->located = 0;
    st->reloc_why = why;
    aredis__loop_defer(st->base.c->loop, &st->relocate, on_relocate, st);
}

/* "<name> <old-ip> <old-port> <new-ip> <new-port>" on +switch-master. */
static void on_switch(sentinel *st, const char *data)
{
    char name[256], oldh[256], newh[256];
    int oldp = 0, newp = 0;
    if (sscanf(data, "%255s %255s %d %255s %d", name, oldh, &oldp, newh,
               &newp) != 5 ||
        strcmp(name, st->base.c->cfg.more->sentinel_service) != 0 ||
        newp <= 0 || newp > 65535)
        return;
    if (st->located && same_addr(st->node.host, st->node.port, newh, newp))
        return; /* already there (each sentinel announces it) */
    memcpy(st->switch_host, newh, sizeof st->switch_host);
    st->switch_port = newp;
    st->switched = 1;
    st->fenced = 0;
    if (is_replica_role(st) && st->replicas_known)
        ask_bg(st, 0); /* the promoted replica leaves, the old master joins */
    if (st->busy) {
        restart_round(st);
        return;
    }
    drop_master(st, "the master moved (+switch-master): reconnecting");
}

/* The leader of a failover chose the replica to promote: from now on,
 * writes sent to the old master could be lost, so none is sent. */
static void fence(sentinel *st, const char *event)
{
    if (wait_ms(st) <= 0 || st->fenced || is_replica_role(st))
        return;
    st->fenced = 1;
    char why[96];
    aredis__msgf(why, sizeof why, "a failover is in progress (%s)", event);
    master_down(st, why);
    if (st->busy)
        restart_round(st); /* it holds from now on */
    else if (st->located)
        drop_master(st, "a failover is in progress (+selected-slave): "
                        "commands are held until the new master is known");
}

/* "<type> <name> <ip> <port> [@ <master-name> <master-ip> <master-port>]"
 * for every other event. */
static void on_instance_event(sentinel *st, const char *ev, const char *data)
{
    char type[32], name[256], ip[256], at[4] = "", mname[256] = "";
    int port = 0;
    int n = sscanf(data, "%31s %255s %255s %d %3s %255s", type, name, ip, &port,
                   at, mname);
    if (n < 4)
        return;
    int is_master = strcmp(type, "master") == 0;
    const char *service = is_master ? name : mname;
    if (strcmp(service, st->base.c->cfg.more->sentinel_service) != 0)
        return;
    if (is_master) {
        int ours = same_addr(st->node.host, st->node.port, ip, port);
        if ((strcmp(ev, "+sdown") == 0 || strcmp(ev, "+odown") == 0) && ours &&
            st->located) {
            /* One sentinel's view is enough to stop writing to it: the
             * look-up that follows checks the master with ROLE, so a
             * master that is fine is back at once, and a hung one is
             * held for instead of being sent more. */
            master_down(st, ev[1] == 's' ? "a sentinel finds it down (+sdown)"
                                         : "the sentinels agree it is down "
                                           "(+odown)");
            drop_master(st, ev[1] == 's'
                                ? "the master looks down (+sdown): commands "
                                  "are held until a master answers"
                                : "the master is down (+odown): commands are "
                                  "held until a new master is known");
        } else if ((strcmp(ev, "-sdown") == 0 || strcmp(ev, "-odown") == 0) &&
                   st->held) {
            restart_round(st);
        } else if ((strncmp(ev, "-failover-abort", 15) == 0 ||
                    strcmp(ev, "+failover-end-for-timeout") == 0) &&
                   st->fenced) {
            st->fenced = 0;
            restart_round(st);
        }
        return;
    }
    if (strcmp(type, "slave") == 0) {
        if (strcmp(ev, "+selected-slave") == 0 ||
            strcmp(ev, "+failover-state-send-slaveof-noone") == 0) {
            fence(st, ev);
            return;
        }
        replica *r = find_replica(st, ip, port);
        if (strcmp(ev, "+sdown") == 0 && r != NULL) {
            r->sdown = 1;
        } else if (strcmp(ev, "-sdown") == 0 && r != NULL) {
            r->sdown = 0;
            r->lost_at = 0;
            r->listed = 1;
        } else if (strcmp(ev, "+slave") == 0 && is_replica_role(st) &&
                   r == NULL) {
            ask_bg(st, 0);
        }
        return;
    }
    if (strcmp(type, "sentinel") == 0 && strcmp(ev, "+sentinel") == 0)
        add_sentinel(st, ip, port);
}

static void on_event(aredis_pubsub *ps, const aredis_pubsub_message *m,
                     void *ud)
{
    sentinel *st = ud;
    (void)ps;
    if (m->kind != AREDIS_PUBSUB_PMESSAGE || m->data_len >= 600 ||
        m->channel_len >= 64 || st->base.c->freeing)
        return;
    char ev[64], data[600];
    memcpy(ev, m->channel, m->channel_len);
    ev[m->channel_len] = '\0';
    memcpy(data, m->data, m->data_len);
    data[m->data_len] = '\0';
    if (strcmp(ev, "+switch-master") == 0)
        on_switch(st, data);
    else if (ev[0] == '+' || ev[0] == '-')
        on_instance_event(st, ev, data);
}

static void watch_one(sentinel *st, const char *host, int port)
{
    const aredis__config *cfg = &st->base.c->cfg;
    for (size_t i = 0; i < st->nwatch; i++)
        if (same_addr(st->watch[i].host, st->watch[i].port, host, port))
            return;
    watcher *w =
        aredis__reallocarray(st->watch, st->nwatch + 1, sizeof *st->watch);
    if (w == NULL)
        return;
    st->watch = w;
    aredis_options o = probe_options(cfg, 1, host, port);
    o.reconnect_max_attempts = -1; /* for as long as we live */
    o.reconnect_max_ms = 1000;
    aredis_client *wc = aredis_client_new(st->base.c->loop, &o, NULL);
    aredis_pubsub *ps =
        wc != NULL
            ? aredis_pubsub_new(
                  wc, &(aredis_pubsub_options){.ignore_subscribe_messages = 1})
            : NULL;
    char *h = aredis__strndup(host, strlen(host));
    if (ps == NULL || h == NULL ||
        aredis_pubsub_psubscribe(ps, "*", on_event, st) != 0) {
        aredis__free(h);
        aredis_pubsub_free(ps);
        aredis_client_free(wc);
        return;
    }
    st->watch[st->nwatch++] = (watcher){wc, ps, h, port};
}

static void stop_watching(sentinel *st)
{
    for (size_t i = 0; i < st->nwatch; i++) {
        aredis_pubsub_free(st->watch[i].ps);
        aredis_client_free(st->watch[i].c);
        aredis__free(st->watch[i].host);
    }
    aredis__free(st->watch);
    st->watch = NULL;
    st->nwatch = 0;
}

/* Subscribe to every known sentinel's events. Best effort: a watcher
 * that cannot be made (out of memory) leaves discovery on connection loss
 * and READONLY. */
static void start_watching(sentinel *st)
{
    const aredis__config *cfg = &st->base.c->cfg;
    for (size_t i = 0; i < cfg->more->nsentinels; i++)
        watch_one(st, cfg->more->sentinels[i].host,
                  cfg->more->sentinels[i].port);
}

/* ---- the topology --------------------------------------------------------
 */

static int st_locate(aredis__topology *t, aredis__node *n)
{
    sentinel *st = (sentinel *)t;
    if (n != &st->node || st->located)
        return 0; /* a replica's address is fixed */
    if (!st->busy) {
        /* From the loop: the answer must find the link waiting, even when
         * the round ends at once. */
        st->busy = 1;
        aredis__loop_defer(t->c->loop, &st->start, on_start, st);
    } else if (st->held) {
        extend_links(st, hold_end(st));
    }
    return 1;
}

static void st_node_lost(aredis__topology *t, aredis__node *n, int code)
{
    sentinel *st = (sentinel *)t;
    (void)code;
    if (n != &st->node) {
        ((replica *)n)->lost_at = aredis__now_ms();
        return;
    }
    /* The master may have moved: the reconnect asks the sentinels, and
     * holds while they name none. */
    if (st->located)
        master_down(st, st->reloc_why != NULL ? st->reloc_why
                                              : "its connection was lost");
    st->reloc_why = NULL;
    st->located = 0;
}

static void on_relocate(void *arg)
{
    sentinel *st = arg;
    const char *why = st->reloc_why;
    if (st->located || why == NULL)
        return; /* found again meanwhile */
    master_down(st, why);
    aredis__link_lost(&st->node.main, AREDIS_ENOMASTER, why);
    st->reloc_why = NULL;
}

static int st_redirect(aredis__topology *t, aredis__cmd *cmd,
                       aredis__node *from, const char *bytes,
                       const aredis_reply *r)
{
    /* READONLY: the node we write to was demoted. The command gets its
     * error (it is not re-sent behind the caller's back); the connection
     * is dropped from the loop so the next ones find the new master. */
    sentinel *st = (sentinel *)t;
    (void)cmd;
    (void)from;
    (void)bytes;
    if (!is_replica_role(st) && st->located && r->code == AREDIS_ESERVER &&
        r->len >= 8 && memcmp(r->str, "READONLY", 8) == 0)
        drop_master(st, "the server is a replica now (READONLY): asking the "
                        "sentinels again");
    return 0;
}

static void st_free(aredis__topology *t)
{
    sentinel *st = (sentinel *)t;
    aredis__loop_undefer(t->c->loop, &st->relocate);
    aredis__loop_undefer(t->c->loop, &st->start);
    if (st->timer != NULL)
        aredis__loop_timer_stop(t->c->loop, st->timer);
    stop_watching(st);
    ask_drop(&st->cur);
    ask_drop(&st->bg[0]);
    ask_drop(&st->bg[1]);
    aredis__cmd *held = aredis__held_take(&st->waiting);
    aredis__cancel_list(t->c, held);
    aredis__node_cleanup(&st->node);
    while (st->replicas != NULL) {
        replica *r = st->replicas;
        st->replicas = r->next;
        aredis__node_cleanup(&r->node);
        aredis__free(r);
    }
    aredis__free(st);
}

static const aredis__topology_vt sentinel_vt = {
    .name = "sentinel",
    .route = st_route,
    .any = st_any,
    .next = st_next,
    .redirect = st_redirect,
    .node_lost = st_node_lost,
    .locate = st_locate,
    .unwait = st_unwait,
    .free = st_free,
    .nodes = aredis__one_node_nodes,
    .slot_node = aredis__one_node_slot,
};

aredis__topology *aredis__sentinel_new(aredis_client *c)
{
    sentinel *st = aredis__calloc(1, sizeof *st);
    if (st == NULL)
        return NULL;
    st->base.vt = &sentinel_vt;
    st->base.c = c;
    /* The address is the sentinels' to name: until then, none. */
    if (aredis__node_init(&st->node, c, c->cfg.host, 0) != 0) {
        aredis__free(st);
        return NULL;
    }
    st->node.role = AREDIS__ROLE_MASTER;
    /* Replica reads go to a replica: no one node takes every command. */
    if (aredis__loop_timer_start(c->loop, on_timer, st, &st->timer) != 0) {
        aredis__node_cleanup(&st->node);
        aredis__free(st);
        return NULL;
    }
    return &st->base;
}
