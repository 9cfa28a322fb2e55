/* The sentinel topology (topology layer): one node, the master of a
 * service that Redis Sentinel monitors, whose address the sentinels name.
 *
 * Before the node's connection looks up an address (locate), the
 * sentinels are asked in order, SENTINEL GET-MASTER-ADDR-BY-NAME, each
 * within a short deadline (sentinel_timeout_ms): a dead or hung sentinel
 * costs at most that. The address a sentinel names is then checked with
 * ROLE: a server that says it is a replica is dropped and the next
 * sentinel asked. The sentinel that answered moves to the front of the
 * list. A lost connection or a READONLY reply makes the next connect
 * rediscover. Each question goes over a short-lived private client on the
 * same loop, with its own credentials and TLS settings: the sentinels'
 * for the sentinels, the data servers' for ROLE.
 *
 * Failovers are followed actively: once the master is known, a private
 * client per configured sentinel subscribes to +switch-master (and
 * resubscribes after reconnecting, for as long as the client lives). When
 * one announces a new address for the service, the connection to the old
 * master is dropped (its commands in flight follow the retry policy) and
 * the next connect checks the announced address with ROLE first.
 *
 * Not yet: replica role, fencing writes during a graceful failover, the
 * other sentinel events, learning more sentinels. */
#include "topology/topology.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "aredis/error.h"
#include "aredis/pubsub.h"
#include "util/alloc.h"

enum { ASK_SENTINEL, ASK_ROLE };

typedef struct sentinel sentinel;

/* One question in flight: it outlives the topology when the client is
 * freed meanwhile (st is then NULL and the callback only tidies up). */
typedef struct ask {
    sentinel *st;
    aredis_client *probe;
    int kind;
} ask;

struct sentinel {
    aredis__topology base;
    aredis__node node;
    int located; /* node->host/port were named and verified */
    int busy;    /* a discovery round runs */
    size_t idx;  /* the sentinel asked (index in cfg.sentinels) */
    ask *cur;
    char cand_host[256];
    int cand_port;
    /* Why the round has not succeeded yet, for the failed commands. */
    char why[160];
    int why_code;
    size_t unknown;         /* sentinels that do not know the service */
    aredis__defer relocate; /* a READONLY: drop the connection */
    aredis__defer start;    /* a round starts from the loop */
    const char *reloc_why;  /* the reason relocate gives (static) */

    /* +switch-master subscriptions, one per configured sentinel. */
    struct watcher {
        aredis_client *c;
        aredis_pubsub *ps;
    } * watch;
    size_t nwatch;
    /* An address a sentinel announced: the next round checks it first. */
    int switched;
    int via_switch; /* this round's candidate came from an announcement */
    char switch_host[256];
    int switch_port;
};

static aredis__node *st_any(aredis__topology *t)
{
    return &((sentinel *)t)->node;
}

static aredis__node *st_route(aredis__topology *t, const aredis__cmd *cmd,
                              const char *bytes)
{
    (void)cmd;
    (void)bytes;
    return st_any(t);
}

static aredis__node *st_next(aredis__topology *t, const aredis__node *prev)
{
    return prev == NULL ? st_any(t) : NULL;
}

/* ---- the end of a round -------------------------------------------------
 */

/* Answer every link of the node that waits for the address. */
static void answer_links(sentinel *st, int code, const char *msg)
{
    aredis__node *n = &st->node;
    aredis__link_located(&n->main, code, msg);
    for (aredis__link *l = n->pool; l != NULL; l = l->pool_next)
        aredis__link_located(l, code, msg);
}

static void round_done(sentinel *st, int code, const char *msg)
{
    st->busy = 0;
    answer_links(st, code, msg);
}

static void note(sentinel *st, int code, const char *fmt, ...)
    AREDIS_PRINTF(3, 4);

static void note(sentinel *st, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->why, sizeof st->why, fmt, ap);
    va_end(ap);
    st->why_code = code;
}

static void ask_sentinel(sentinel *st);

/* The sentinel at st->idx did not help: the next one, or the round fails
 * with what the last one said (or, when every sentinel that answered
 * did not know the service, with that). */
static void next_sentinel(sentinel *st)
{
    aredis_client *c = st->base.c;
    if (++st->idx < c->cfg.nsentinels) {
        ask_sentinel(st);
        return;
    }
    char msg[192];
    if (st->unknown > 0 && st->why_code == AREDIS_ENOMASTER)
        snprintf(msg, sizeof msg,
                 "no sentinel knows the service '%.60s' (%zu of %zu asked "
                 "do not monitor it)",
                 c->cfg.sentinel_service, st->unknown, c->cfg.nsentinels);
    else
        snprintf(msg, sizeof msg, "sentinel discovery failed: %s", st->why);
    round_done(st, st->why_code != 0 ? st->why_code : AREDIS_ENOMASTER, msg);
}

/* ---- questions over private clients --------------------------------------
 */

static void on_answer(aredis_client *probe, const aredis_reply *r, void *ud);

/* Ask host:port one command over a fresh client, within the sentinel
 * deadline. sentinel_side: the sentinels' credentials and TLS, else the
 * data servers'. 0, or an error code after noting why. */
static int ask_start(sentinel *st, int kind, const char *host, int port,
                     const char *cmd, const char *arg)
{
    aredis_client *c = st->base.c;
    const aredis__config *cfg = &c->cfg;
    int on_sentinel = kind == ASK_SENTINEL;
    int tls = on_sentinel ? cfg->sentinel_tls : cfg->tls;
    aredis_options o = {
        .host = host,
        .port = port,
        .username = on_sentinel ? cfg->sentinel_username : cfg->username,
        .password = on_sentinel ? cfg->sentinel_password : cfg->password,
        .protocol = cfg->protocol,
        .connect_timeout_ms = cfg->sentinel_timeout_ms,
        .reconnect_max_attempts = AREDIS_NO_RECONNECT,
        .tls = {.enabled = tls,
                .ca_file = cfg->tls_ca_file,
                .ca_dir = cfg->tls_ca_dir,
                .cert_file = cfg->tls_cert_file,
                .key_file = cfg->tls_key_file,
                .sni = cfg->tls_sni,
                .insecure_skip_verify = cfg->tls_insecure},
    };
    aredis_status status;
    ask *a = aredis__calloc(1, sizeof *a);
    if (a == NULL) {
        note(st, AREDIS_ENOMEM, "out of memory");
        return AREDIS_ENOMEM;
    }
    a->st = st;
    a->kind = kind;
    a->probe = aredis_client_new(c->loop, &o, &status);
    if (a->probe == NULL) {
        aredis__free(a);
        note(st, status.code, "%.60s:%d: %.80s", host, port, status.msg);
        return status.code;
    }
    aredis_cmd_opts co = {.timeout_ms = cfg->sentinel_timeout_ms};
    int e = arg != NULL
                ? aredis_command_opts(a->probe, &co, on_answer, a, cmd, arg)
                : aredis_command_opts(a->probe, &co, on_answer, a, cmd);
    if (e != 0) {
        aredis_client_free(a->probe);
        aredis__free(a);
        note(st, e, "%s", aredis_strerror(e));
        return e;
    }
    st->cur = a;
    return 0;
}

static void ask_sentinel(sentinel *st)
{
    aredis_client *c = st->base.c;
    for (; st->idx < c->cfg.nsentinels; st->idx++) {
        const aredis__endpoint *ep = &c->cfg.sentinels[st->idx];
        if (ask_start(st, ASK_SENTINEL, ep->host, ep->port,
                      "SENTINEL GET-MASTER-ADDR-BY-NAME %s",
                      c->cfg.sentinel_service) == 0)
            return;
    }
    st->idx--; /* next_sentinel() steps past the last one */
    next_sentinel(st);
}

/* The sentinel at idx answered well: it goes first from now on. */
static void to_front(aredis__config *cfg, size_t idx)
{
    aredis__endpoint e = cfg->sentinels[idx];
    memmove(&cfg->sentinels[1], &cfg->sentinels[0],
            idx * sizeof cfg->sentinels[0]);
    cfg->sentinels[0] = e;
}

static int is_str(const aredis_reply *r)
{
    return r->type == AREDIS_REPLY_STRING || r->type == AREDIS_REPLY_STATUS;
}

static void sentinel_answered(sentinel *st, const aredis_reply *r)
{
    aredis_client *c = st->base.c;
    const aredis__endpoint *ep = &c->cfg.sentinels[st->idx];
    if (r->type == AREDIS_REPLY_ARRAY && r->len == 2 &&
        is_str(&r->element[0]) && is_str(&r->element[1]) &&
        r->element[0].len > 0 && r->element[0].len < sizeof st->cand_host) {
        int port = 0;
        for (size_t i = 0; i < r->element[1].len && port <= 65535; i++) {
            char d = r->element[1].str[i];
            port = d >= '0' && d <= '9' ? port * 10 + (d - '0') : 65536;
        }
        if (port > 0 && port <= 65535) {
            memcpy(st->cand_host, r->element[0].str, r->element[0].len);
            st->cand_host[r->element[0].len] = '\0';
            st->cand_port = port;
            if (ask_start(st, ASK_ROLE, st->cand_host, port, "ROLE", NULL) == 0)
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
             ep->port, c->cfg.sentinel_service);
    } else if (r->type == AREDIS_REPLY_ERROR) {
        note(st, r->code, "sentinel %.60s:%d: %.*s", ep->host, ep->port,
             (int)(r->len > 80 ? 80 : r->len), r->str);
    } else {
        note(st, AREDIS_EPROTO, "sentinel %.60s:%d sent an unexpected %s",
             ep->host, ep->port, aredis_reply_type_name(r->type));
    }
    next_sentinel(st);
}

static void start_watching(sentinel *st);
static void on_relocate(void *arg);

static void role_answered(sentinel *st, const aredis_reply *r)
{
    aredis_client *c = st->base.c;
    if (r->type == AREDIS_REPLY_ARRAY && r->len >= 1 &&
        is_str(&r->element[0]) && r->element[0].len == 6 &&
        memcmp(r->element[0].str, "master", 6) == 0) {
        char *h = aredis__strndup(st->cand_host, strlen(st->cand_host));
        if (h == NULL) {
            round_done(st, AREDIS_ENOMEM, "out of memory");
            return;
        }
        aredis__free(st->node.host);
        st->node.host = h;
        st->node.port = st->cand_port;
        st->node.role = AREDIS__ROLE_MASTER;
        st->located = 1;
        if (!st->via_switch)
            to_front(&c->cfg, st->idx);
        st->via_switch = 0;
        round_done(st, 0, NULL);
        start_watching(st);
        return;
    }
    if (r->type == AREDIS_REPLY_ERROR)
        note(st, r->code, "%.60s:%d (named by a sentinel): %.*s", st->cand_host,
             st->cand_port, (int)(r->len > 80 ? 80 : r->len), r->str);
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

static void on_answer(aredis_client *probe, const aredis_reply *r, void *ud)
{
    ask *a = ud;
    sentinel *st = a->st;
    aredis_client_free(probe); /* takes effect when this returns */
    int kind = a->kind;
    aredis__free(a);
    if (st == NULL)
        return; /* the client went away meanwhile */
    st->cur = NULL;
    if (kind == ASK_SENTINEL)
        sentinel_answered(st, r);
    else
        role_answered(st, r);
}

/* ---- the topology --------------------------------------------------------
 */

static void on_start(void *arg)
{
    sentinel *st = arg;
    st->idx = 0;
    st->unknown = 0;
    st->why[0] = '\0';
    st->why_code = 0;
    if (st->switched) {
        /* A sentinel announced the new master: check it, skip asking. */
        st->switched = 0;
        st->via_switch = 1;
        memcpy(st->cand_host, st->switch_host, sizeof st->cand_host);
        st->cand_port = st->switch_port;
        if (ask_start(st, ASK_ROLE, st->cand_host, st->cand_port, "ROLE",
                      NULL) == 0)
            return;
        st->via_switch = 0;
    }
    ask_sentinel(st);
}

/* ---- following failovers -------------------------------------------------
 */

/* "<name> <old-ip> <old-port> <new-ip> <new-port>" on +switch-master. */
static void on_switch(aredis_pubsub *ps, const aredis_pubsub_message *m,
                      void *ud)
{
    sentinel *st = ud;
    aredis_client *c = st->base.c;
    (void)ps;
    if (m->kind != AREDIS_PUBSUB_MESSAGE || m->data_len >= 600)
        return;
    char buf[600], name[256], oldh[256], newh[256];
    int oldp = 0, newp = 0;
    memcpy(buf, m->data, m->data_len);
    buf[m->data_len] = '\0';
    if (sscanf(buf, "%255s %255s %d %255s %d", name, oldh, &oldp, newh,
               &newp) != 5 ||
        strcmp(name, c->cfg.sentinel_service) != 0 || newp <= 0 || newp > 65535)
        return;
    if (st->located && st->node.host != NULL &&
        strcmp(st->node.host, newh) == 0 && st->node.port == newp)
        return; /* already there (each sentinel announces it) */
    memcpy(st->switch_host, newh, sizeof st->switch_host);
    st->switch_port = newp;
    st->switched = 1;
    st->located = 0;
    st->reloc_why = "the master moved (+switch-master): reconnecting";
    aredis__loop_defer(c->loop, &st->relocate, on_relocate, st);
}

static void stop_watching(sentinel *st)
{
    for (size_t i = 0; i < st->nwatch; i++) {
        aredis_pubsub_free(st->watch[i].ps);
        aredis_client_free(st->watch[i].c);
    }
    aredis__free(st->watch);
    st->watch = NULL;
    st->nwatch = 0;
}

/* Subscribe to every configured sentinel, once. Best effort: a watcher
 * that cannot be made (out of memory) leaves discovery on connection loss
 * and READONLY. */
static void start_watching(sentinel *st)
{
    aredis_client *c = st->base.c;
    const aredis__config *cfg = &c->cfg;
    if (st->watch != NULL)
        return;
    size_t n = cfg->nsentinels;
    if ((st->watch = aredis__calloc(n, sizeof st->watch[0])) == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        aredis_options o = {
            .host = cfg->sentinels[i].host,
            .port = cfg->sentinels[i].port,
            .username = cfg->sentinel_username,
            .password = cfg->sentinel_password,
            .protocol = cfg->protocol,
            .connect_timeout_ms = cfg->sentinel_timeout_ms,
            .reconnect_max_attempts = -1, /* for as long as we live */
            .reconnect_max_ms = 1000,
            .tls = {.enabled = cfg->sentinel_tls,
                    .ca_file = cfg->tls_ca_file,
                    .ca_dir = cfg->tls_ca_dir,
                    .cert_file = cfg->tls_cert_file,
                    .key_file = cfg->tls_key_file,
                    .sni = cfg->tls_sni,
                    .insecure_skip_verify = cfg->tls_insecure},
        };
        aredis_client *wc = aredis_client_new(c->loop, &o, NULL);
        aredis_pubsub *ps =
            wc != NULL ? aredis_pubsub_new(wc,
                                           &(aredis_pubsub_options){
                                               .ignore_subscribe_messages = 1})
                       : NULL;
        if (ps == NULL ||
            aredis_pubsub_subscribe(ps, "+switch-master", on_switch, st) != 0) {
            aredis_pubsub_free(ps);
            aredis_client_free(wc);
            continue;
        }
        st->watch[st->nwatch].c = wc;
        st->watch[st->nwatch].ps = ps;
        st->nwatch++;
    }
}

static int st_locate(aredis__topology *t, aredis__node *n)
{
    sentinel *st = (sentinel *)t;
    (void)n;
    if (st->located)
        return 0;
    if (!st->busy) {
        /* From the loop: the answer must find the link waiting, even when
         * the round ends at once. */
        st->busy = 1;
        aredis__loop_defer(t->c->loop, &st->start, on_start, st);
    }
    return 1;
}

static void st_node_lost(aredis__topology *t, aredis__node *n, int code)
{
    /* The master may have moved: the reconnect asks the sentinels. */
    (void)n;
    (void)code;
    ((sentinel *)t)->located = 0;
}

static void on_relocate(void *arg)
{
    sentinel *st = arg;
    aredis__link_lost(&st->node.main, AREDIS_ENOMASTER, st->reloc_why);
}

static int st_redirect(aredis__topology *t, aredis__cmd *cmd,
                       const aredis_reply *r)
{
    /* READONLY: the node we write to was demoted. The command gets its
     * error (it is not re-sent behind the caller's back); the connection
     * is dropped from the loop so the next ones find the new master. */
    sentinel *st = (sentinel *)t;
    (void)cmd;
    if (r->code == AREDIS_ESERVER && r->len >= 8 &&
        memcmp(r->str, "READONLY", 8) == 0) {
        st->located = 0;
        st->reloc_why = "the server is a replica now (READONLY): asking the "
                        "sentinels again";
        aredis__loop_defer(t->c->loop, &st->relocate, on_relocate, st);
    }
    return 0;
}

static void st_free(aredis__topology *t)
{
    sentinel *st = (sentinel *)t;
    aredis__loop_undefer(t->c->loop, &st->relocate);
    aredis__loop_undefer(t->c->loop, &st->start);
    stop_watching(st);
    if (st->cur != NULL) {
        st->cur->st = NULL;
        aredis_client_free(st->cur->probe);
        st->cur = NULL;
    }
    aredis__node_cleanup(&st->node);
    aredis__free(st);
}

static const aredis__topology_vt sentinel_vt = {
    .name = "sentinel",
    .route = st_route,
    .any = st_any,
    .sole = st_any,
    .next = st_next,
    .redirect = st_redirect,
    .node_lost = st_node_lost,
    .locate = st_locate,
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
    return &st->base;
}
