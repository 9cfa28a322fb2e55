/* Integration tests of publish/subscribe against the real server, on RESP2
 * and RESP3: handlers and the queue, get_message with a deadline, poll,
 * patterns and shard channels, confirmations (shown or hidden), ordinary
 * commands beside subscriptions, keyspace notifications, the thread mode,
 * and resubscription after the connection is killed. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aredis/aredis.h"
#include "testclient.h"
#include "testenv.h"

static testenv_server srv;

static void setup(void)
{
    testclient_standalone(&srv, NULL, 0, 0);
}

static aredis_client *client(aredis_loop *loop, int protocol)
{
    char url[128];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0?protocol=%d", srv.port,
             protocol);
    return testclient_new(loop, url);
}

/* A client whose connections the server lists under `name` (CLIENT LIST);
 * pool_max as given, with pool_wait_ms 100 (0: the defaults for both). */
static aredis_client *named_client(aredis_loop *loop, int protocol, char *name,
                                   int pool_max)
{
    for (char *p = name; *p; p++)
        if (*p == ':')
            *p = '-';
    char url[192];
    snprintf(url, sizeof url,
             "redis://127.0.0.1:%d/0?protocol=%d&client_name=%s", srv.port,
             protocol, name);
    aredis_status st;
    aredis_client *c =
        aredis_client_new(loop,
                          &(aredis_options){.url = url,
                                            .pool_max = pool_max,
                                            .pool_wait_ms = pool_max ? 100 : 0},
                          &st);
    cr_assert_not_null(c, "%s", st.msg);
    return c;
}

typedef struct seen {
    int messages, confirmations, resubscribed, done, want;
    int kind;
    char channel[128], pattern[128], data[256];
    long long count;
} seen;

static void record(seen *s, const aredis_pubsub_message *m)
{
    if (getenv("PS_DEBUG"))
        fprintf(stderr, "kind %d ch %.*s data %.*s count %lld\n", m->kind,
                (int)m->channel_len, m->channel ? m->channel : "",
                (int)m->data_len, m->data ? m->data : "", m->count);
    s->kind = m->kind;
    if (m->kind == AREDIS_PUBSUB_RESUBSCRIBED)
        s->resubscribed++;
    else if (m->kind <= AREDIS_PUBSUB_SMESSAGE)
        s->messages++;
    else
        s->confirmations++;
    snprintf(s->channel, sizeof s->channel, "%.*s", (int)m->channel_len,
             m->channel ? m->channel : "");
    snprintf(s->pattern, sizeof s->pattern, "%.*s", (int)m->pattern_len,
             m->pattern ? m->pattern : "");
    snprintf(s->data, sizeof s->data, "%.*s", (int)m->data_len,
             m->data ? m->data : "");
    s->count = m->count;
    if (s->want && s->messages >= s->want)
        s->done = 1;
}

static void handler(aredis_pubsub *ps, const aredis_pubsub_message *m, void *ud)
{
    (void)ps;
    record(ud, m);
}

typedef struct reply_seen {
    int done, type;
    long long integer;
    char text[128];
} reply_seen;

static void on_reply(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    reply_seen *k = ud;
    k->done = 1;
    k->type = r->type;
    k->integer = r->integer;
    if (r->str &&
        (r->type == AREDIS_REPLY_STRING || r->type == AREDIS_REPLY_STATUS ||
         r->type == AREDIS_REPLY_ERROR))
        snprintf(k->text, sizeof k->text, "%.*s", (int)r->len, r->str);
}

/* Publish from another client until the subscriber has seen `want`
 * messages (a subscription takes effect a round trip after the call). */
static void publish_until(aredis_loop *loop, aredis_client *pub,
                          const char *channel, const char *data, seen *s,
                          int want)
{
    s->want = want;
    for (int tries = 0; !s->done && tries < 200; tries++) {
        reply_seen r = {0};
        aredis_command(pub, on_reply, &r, "PUBLISH %s %s", channel, data);
        testloop_run_until(loop, &r.done, 2000);
        testloop_run_until(loop, &s->done, 20);
    }
}

static void handlers_and_confirmations(int protocol)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = client(loop, protocol);
    aredis_client *pub = client(loop, 3);
    char ch[64];
    testenv_key(ch, sizeof ch, "ch");
    aredis_pubsub *ps = aredis_pubsub_new(c, NULL);
    cr_assert_not_null(ps);
    seen s = {0};
    cr_assert_eq(aredis_pubsub_subscribe(ps, ch, handler, &s), 0);
    publish_until(loop, pub, ch, "hello", &s, 1);
    cr_assert_eq(s.messages, 1, "protocol %d", protocol);
    cr_assert_str_eq(s.channel, ch);
    cr_assert_str_eq(s.data, "hello");
    cr_assert_eq(s.confirmations, 1, "the subscribe confirmation");

    /* Ordinary commands keep working on the same client beside it. */
    reply_seen r = {0};
    aredis_command(c, on_reply, &r, "ECHO %s", "beside");
    cr_assert(testloop_run_until(loop, &r.done, 3000));
    cr_assert_str_eq(r.text, "beside");

    /* Subscribing through the plain command API is refused. */
    reply_seen bad = {0};
    aredis_command(c, on_reply, &bad, "SUBSCRIBE %s", ch);
    cr_assert(testloop_run_until(loop, &bad.done, 3000));
    cr_assert_eq(bad.type, AREDIS_REPLY_ERROR);
    cr_assert(strstr(bad.text, "aredis_pubsub") != NULL, "%s", bad.text);

    cr_assert_eq(aredis_pubsub_subscriptions(ps), 1);
    cr_assert_eq(aredis_pubsub_unsubscribe(ps, NULL), 0);
    cr_assert_eq(aredis_pubsub_subscriptions(ps), 0);
    aredis_pubsub_free(ps);
    aredis_client_free(c);
    aredis_client_free(pub);
    testloop_free(loop);
}

TestSuite(pubsub, .init = setup);

Test(pubsub, handlers_resp3)
{
    handlers_and_confirmations(3);
}

Test(pubsub, handlers_resp2)
{
    handlers_and_confirmations(2);
}

typedef struct got_msg {
    int done, status;
    seen s;
} got_msg;

static void on_message(aredis_pubsub *ps, const aredis_pubsub_message *m,
                       int status, void *ud)
{
    (void)ps;
    got_msg *g = ud;
    g->done = 1;
    g->status = status;
    if (m != NULL)
        record(&g->s, m);
}

static void queue_mode(int protocol)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = client(loop, protocol);
    aredis_client *pub = client(loop, 3);
    char pat[64], ch[80];
    testenv_key(pat, sizeof pat, "q.*");
    snprintf(ch, sizeof ch, "%.*s.one", (int)strlen(pat) - 2, pat);
    aredis_pubsub *ps = aredis_pubsub_new(
        c, &(aredis_pubsub_options){.ignore_subscribe_messages = 1});

    /* Nothing subscribed: the deadline passes, reported as such. */
    got_msg idle = {0};
    cr_assert_eq(aredis_pubsub_get_message(ps, 100, on_message, &idle), 0);
    cr_assert_eq(idle.done, 0);
    cr_assert(testloop_run_until(loop, &idle.done, 3000));
    cr_assert_eq(idle.status, AREDIS_ETIMEDOUT);

    cr_assert_eq(aredis_pubsub_psubscribe(ps, pat, NULL, NULL), 0);
    got_msg g = {0};
    aredis_pubsub_get_message(ps, 5000, on_message, &g);
    for (int tries = 0; !g.done && tries < 200; tries++) {
        reply_seen r = {0};
        aredis_command(pub, on_reply, &r, "PUBLISH %s %s", ch, "queued");
        testloop_run_until(loop, &r.done, 2000);
        testloop_run_until(loop, &g.done, 20);
    }
    cr_assert_eq(g.status, 0);
    cr_assert_eq(g.s.kind, AREDIS_PUBSUB_PMESSAGE, "no confirmation shown: %d",
                 g.s.kind);
    cr_assert_str_eq(g.s.pattern, pat);
    cr_assert_str_eq(g.s.channel, ch);
    cr_assert_str_eq(g.s.data, "queued");

    /* The extra publishes are queued; poll drains them. */
    int zero = 0;
    testloop_run_until(loop, &zero, 100);
    aredis_pubsub_message *m;
    int polled = 0;
    while ((m = aredis_pubsub_poll(ps)) != NULL) {
        cr_assert_eq(m->kind, AREDIS_PUBSUB_PMESSAGE);
        cr_assert_str_eq(m->data, "queued");
        aredis_pubsub_message_free(m);
        polled++;
    }
    cr_assert_geq(polled, 0);
    cr_assert_null(aredis_pubsub_poll(ps));

    /* A waiter still pending at free is cancelled, from the loop. */
    got_msg late = {0};
    aredis_pubsub_get_message(ps, -1, on_message, &late);
    aredis_pubsub_free(ps);
    cr_assert_eq(late.done, 0);
    cr_assert(testloop_run_until(loop, &late.done, 3000));
    cr_assert_eq(late.status, AREDIS_ECANCELED);
    aredis_client_free(c);
    aredis_client_free(pub);
    testloop_free(loop);
}

Test(pubsub, queue_and_deadline_resp3)
{
    queue_mode(3);
}

Test(pubsub, queue_and_deadline_resp2)
{
    queue_mode(2);
}

Test(pubsub, shard_channels_and_introspection)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = client(loop, 3);
    aredis_client *pub = client(loop, 3);
    char ch[64];
    testenv_key(ch, sizeof ch, "shard");
    aredis_pubsub *ps = aredis_pubsub_new(c, NULL);
    seen s = {0};
    aredis_pubsub_ssubscribe(ps, ch, handler, &s);
    s.want = 1;
    for (int tries = 0; !s.done && tries < 200; tries++) {
        reply_seen r = {0};
        aredis_command(pub, on_reply, &r, "SPUBLISH %s %s", ch, "sharded");
        testloop_run_until(loop, &r.done, 2000);
        testloop_run_until(loop, &s.done, 20);
    }
    cr_assert_eq(s.kind, AREDIS_PUBSUB_SMESSAGE);
    cr_assert_str_eq(s.data, "sharded");
    reply_seen n = {0};
    aredis_command(pub, on_reply, &n, "PUBSUB SHARDNUMSUB %s", ch);
    cr_assert(testloop_run_until(loop, &n.done, 3000));
    cr_assert_neq(n.type, AREDIS_REPLY_ERROR);
    reply_seen numpat = {0};
    aredis_command(pub, on_reply, &numpat, "PUBSUB NUMPAT");
    cr_assert(testloop_run_until(loop, &numpat.done, 3000));
    cr_assert_eq(numpat.type, AREDIS_REPLY_INTEGER);
    aredis_pubsub_free(ps);
    aredis_client_free(c);
    aredis_client_free(pub);
    testloop_free(loop);
}

Test(pubsub, keyspace_notifications)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = client(loop, 3);
    aredis_client *w = client(loop, 3);
    char key[64], pattern[128];
    testenv_key(key, sizeof key, "ks");
    snprintf(pattern, sizeof pattern, "__keyspace@0__:%s", key);
    reply_seen cfg = {0};
    aredis_command(w, on_reply, &cfg, "CONFIG SET notify-keyspace-events KEA");
    cr_assert(testloop_run_until(loop, &cfg.done, 3000));
    cr_assert_str_eq(cfg.text, "OK");
    aredis_pubsub *ps = aredis_pubsub_new(c, NULL);
    seen s = {0};
    aredis_pubsub_subscribe(ps, pattern, handler, &s);
    s.want = 1;
    for (int tries = 0; !s.done && tries < 200; tries++) {
        reply_seen r = {0};
        aredis_command(w, on_reply, &r, "SET %s v", key);
        testloop_run_until(loop, &r.done, 2000);
        testloop_run_until(loop, &s.done, 20);
    }
    cr_assert_str_eq(s.channel, pattern);
    cr_assert_str_eq(s.data, "set");
    aredis_pubsub_free(ps);
    aredis_client_free(c);
    aredis_client_free(w);
    testloop_free(loop);
}

/* Every get_message call completes exactly once: count them. */
typedef struct calls {
    int n, timedout, canceled, other, resubmit;
} calls;

static void count_call(aredis_pubsub *ps, const aredis_pubsub_message *m,
                       int status, void *ud)
{
    (void)m;
    calls *k = ud;
    k->n++;
    if (status == AREDIS_ETIMEDOUT)
        k->timedout++;
    else if (status == AREDIS_ECANCELED)
        k->canceled++;
    else
        k->other++;
    /* Wait again from the timeout callback, while the timer is still
     * handing out the other expired waiters. */
    if (k->resubmit > 0) {
        k->resubmit--;
        cr_assert_eq(aredis_pubsub_get_message(ps, 30, count_call, k), 0);
    }
}

typedef struct numsub {
    int done, ok;
    char channel[96];
} numsub;

static void on_numsub(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    numsub *n = ud;
    n->done = 1;
    /* [channel, count] pairs, an integer count, in RESP2 and RESP3. */
    n->ok = r->type == AREDIS_REPLY_ARRAY && r->len == 2 &&
            r->element[0].type == AREDIS_REPLY_STRING &&
            strcmp(r->element[0].str, n->channel) == 0 &&
            r->element[1].type == AREDIS_REPLY_INTEGER &&
            r->element[1].integer == 1;
}

/* Wait until the server has the subscription (PUBSUB NUMSUB says 1). */
static void numsub_wait(aredis_loop *loop, aredis_client *q, const char *ch)
{
    reply_seen r = {0};
    for (int tries = 0; tries < 300; tries++) {
        numsub n = {0};
        snprintf(n.channel, sizeof n.channel, "%s", ch);
        aredis_command(q, on_numsub, &n, "PUBSUB NUMSUB %s", ch);
        cr_assert(testloop_run_until(loop, &n.done, 3000));
        if (n.ok)
            return;
        testloop_run_until(loop, &r.done, 10);
    }
    cr_assert_fail("%s: never subscribed", ch);
}

/* Several waiters time out in one timer run; each callback waits again.
 * Every call, the first ones and the new ones, completes exactly once. */
Test(pubsub, timeout_callbacks_wait_again)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = client(loop, 3);
    aredis_pubsub *ps = aredis_pubsub_new(c, NULL);
    enum { N = 4 };
    calls k[N];
    memset(k, 0, sizeof k);
    for (int i = 0; i < N; i++) {
        k[i].resubmit = 1;
        cr_assert_eq(aredis_pubsub_get_message(ps, 50, count_call, &k[i]), 0);
    }
    int all = 0;
    for (int waited = 0; !all && waited < 3000; waited += 10) {
        testloop_run_once(loop, 10);
        all = 1;
        for (int i = 0; i < N; i++)
            all = all && k[i].n == 2;
    }
    int zero = 0;
    testloop_run_until(loop, &zero, 100);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(k[i].n, 2, "waiter %d: completed %d times (want 2)", i,
                     k[i].n);
        cr_assert_eq(k[i].timedout, 2, "waiter %d", i);
    }
    aredis_pubsub_free(ps);
    aredis_client_free(c);
    testloop_free(loop);
}

static void free_on_first(aredis_pubsub *ps, const aredis_pubsub_message *m,
                          int status, void *ud)
{
    count_call(ps, m, status, ud);
    aredis_pubsub_free(ps);
}

/* Two waiters, two queued messages; the first callback frees the pubsub:
 * the second waiter is cancelled, not handed a message. */
Test(pubsub, free_from_message_callback)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = client(loop, 3);
    aredis_client *pub = client(loop, 3);
    char ch[64];
    testenv_key(ch, sizeof ch, "freecb");
    aredis_pubsub *ps = aredis_pubsub_new(
        c, &(aredis_pubsub_options){.ignore_subscribe_messages = 1});
    cr_assert_eq(aredis_pubsub_subscribe(ps, ch, NULL, NULL), 0);
    numsub_wait(loop, pub, ch);
    for (int i = 0; i < 2; i++) {
        reply_seen r = {0};
        aredis_command(pub, on_reply, &r, "PUBLISH %s %s", ch, "queued");
        cr_assert(testloop_run_until(loop, &r.done, 3000));
        cr_assert_eq(r.integer, 1);
    }
    int zero = 0;
    testloop_run_until(loop, &zero, 100); /* both are queued now */
    calls first = {0}, second = {0};
    aredis_pubsub_get_message(ps, 5000, free_on_first, &first);
    aredis_pubsub_get_message(ps, 5000, count_call, &second);
    for (int i = 0; i < 300 && second.n == 0; i++)
        testloop_run_once(loop, 10);
    cr_assert_eq(first.n, 1);
    cr_assert_eq(first.other, 1, "the first waiter got a message");
    cr_assert_eq(second.n, 1);
    cr_assert_eq(second.canceled, 1, "freed before its turn");
    aredis_client_free(c);
    aredis_client_free(pub);
    testloop_free(loop);
}

/* A pubsub and its client freed in the same loop turn, in either order,
 * with get_message calls still waiting: each completes exactly once, with
 * AREDIS_ECANCELED, and nothing is touched after it is freed. */
static void free_together(int protocol, int pubsub_first, int queued_ahead)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = client(loop, protocol);
    char ch[64];
    testenv_key(ch, sizeof ch, "freed");
    aredis_pubsub *ps = aredis_pubsub_new(c, NULL);
    cr_assert_eq(aredis_pubsub_subscribe(ps, ch, NULL, NULL), 0);
    /* The subscription is live once its confirmation is queued. */
    got_msg conf = {0};
    aredis_pubsub_get_message(ps, 5000, on_message, &conf);
    cr_assert(testloop_run_until(loop, &conf.done, 5000));
    cr_assert_eq(conf.s.kind, AREDIS_PUBSUB_SUBSCRIBE);
    calls forever = {0}, bounded = {0};
    cr_assert_eq(aredis_pubsub_get_message(ps, -1, count_call, &forever), 0);
    cr_assert_eq(aredis_pubsub_get_message(ps, 5000, count_call, &bounded), 0);
    reply_seen refused = {0};
    if (queued_ahead) /* a completion puts the client's turn first */
        aredis_command(c, on_reply, &refused, "SUBSCRIBE %s", ch);
    if (pubsub_first) {
        aredis_pubsub_free(ps);
        aredis_client_free(c);
    } else {
        aredis_client_free(c);
        aredis_pubsub_free(ps);
    }
    cr_assert_eq(forever.n + bounded.n, 0, "never inside the free calls");
    for (int i = 0; i < 100 && forever.n + bounded.n < 2; i++)
        testloop_run_once(loop, 10);
    testloop_free(loop); /* runs whatever release is still queued */
    cr_assert_eq(forever.n, 1, "protocol %d: completed %d times", protocol,
                 forever.n);
    cr_assert_eq(forever.canceled, 1);
    cr_assert_eq(bounded.n, 1, "protocol %d: completed %d times", protocol,
                 bounded.n);
    cr_assert_eq(bounded.canceled, 1);
    cr_assert_eq(refused.done, queued_ahead);
}

Test(pubsub, free_pubsub_then_client_resp3)
{
    free_together(3, 1, 0);
}

Test(pubsub, free_pubsub_then_client_resp2)
{
    free_together(2, 1, 0);
}

/* The same, with the client's own deferred work queued before the frees:
 * its release runs before the pubsub's. */
Test(pubsub, free_pubsub_then_client_queued_resp3)
{
    free_together(3, 1, 1);
}

Test(pubsub, free_pubsub_then_client_queued_resp2)
{
    free_together(2, 1, 1);
}

Test(pubsub, free_client_then_pubsub_resp3)
{
    free_together(3, 0, 0);
}

Test(pubsub, free_client_then_pubsub_resp2)
{
    free_together(2, 0, 0);
}

/* The server's view of one client's connections (CLIENT LIST), found by
 * the client name: how many, and the id of the one holding subscriptions. */
typedef struct conns {
    int done, named;
    long long sub_id;
    char name[64];
} conns;

/* A CLIENT LIST field ("id", "sub"...) of one line, or -1. */
static long long list_field(const char *line, const char *key)
{
    char pat[32];
    snprintf(pat, sizeof pat, " %s=", key);
    const char *at = NULL;
    if (strncmp(line, pat + 1, strlen(pat + 1)) == 0)
        at = line + strlen(pat + 1);
    else if ((at = strstr(line, pat)) != NULL)
        at += strlen(pat);
    return at != NULL ? strtoll(at, NULL, 10) : -1;
}

static void on_client_list(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    conns *k = ud;
    k->done = 1;
    k->named = 0;
    k->sub_id = 0;
    if (r->type != AREDIS_REPLY_STRING && r->type != AREDIS_REPLY_VERB)
        return;
    char want[96];
    snprintf(want, sizeof want, " name=%s ", k->name);
    const char *p = r->str, *end = r->str + r->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            nl = end;
        char line[2048];
        snprintf(line, sizeof line, "%.*s", (int)(nl - p), p);
        if (strstr(line, want) != NULL) {
            k->named++;
            if (list_field(line, "sub") > 0 || list_field(line, "psub") > 0 ||
                list_field(line, "ssub") > 0)
                k->sub_id = list_field(line, "id");
        }
        p = nl + 1;
    }
}

static conns client_list(aredis_loop *loop, aredis_client *q, const char *name)
{
    conns k = {0};
    snprintf(k.name, sizeof k.name, "%s", name);
    aredis_command(q, on_client_list, &k, "CLIENT LIST");
    cr_assert(testloop_run_until(loop, &k.done, 3000));
    return k;
}

static void on_acquired(aredis_client *c, aredis_exclusive *x, int status,
                        void *ud)
{
    (void)c;
    cr_assert_eq(status, 0, "acquire: %d", status);
    *(aredis_exclusive **)ud = x;
}

/* RESP2 with every connection of the pool in use: the pubsub opens none
 * beyond pool_max; it waits (past pool_wait_ms, which only bounds one
 * request) and subscribes once a connection is given back. */
Test(pubsub, resp2_pool_full_waits)
{
    aredis_loop *loop = testloop_new();
    char name[64], ch[64];
    testenv_key(name, sizeof name, "poolfull");
    aredis_client *c = named_client(loop, 2, name, 1);
    aredis_client *q = client(loop, 3);
    testenv_key(ch, sizeof ch, "poolfull");

    /* The pool's only connection is lent out (and connected). */
    aredis_exclusive *x = NULL;
    cr_assert_eq(aredis_client_acquire(c, on_acquired, &x), 0);
    for (int i = 0; i < 300 && x == NULL; i++)
        testloop_run_once(loop, 10);
    cr_assert_not_null(x);
    reply_seen ping = {0};
    aredis_exclusive_command(x, on_reply, &ping, "PING");
    cr_assert(testloop_run_until(loop, &ping.done, 3000));
    reply_seen main = {0};
    aredis_command(c, on_reply, &main, "PING");
    cr_assert(testloop_run_until(loop, &main.done, 3000));

    seen s = {0};
    aredis_pubsub *ps = aredis_pubsub_new(c, NULL);
    cr_assert_eq(aredis_pubsub_subscribe(ps, ch, handler, &s), 0);
    /* Several pool_wait_ms go by: still no extra connection, no
     * subscriber. */
    int zero = 0;
    testloop_run_until(loop, &zero, 500);
    conns k = client_list(loop, q, name);
    cr_assert_eq(k.named, 2, "the shared connection and the lent one: %d",
                 k.named);
    cr_assert_eq(k.sub_id, 0, "nothing subscribed yet");
    reply_seen none = {0};
    aredis_command(q, on_reply, &none, "PUBLISH %s %s", ch, "early");
    cr_assert(testloop_run_until(loop, &none.done, 3000));
    cr_assert_eq(none.integer, 0);
    cr_assert_eq(s.messages, 0);

    /* Given back: the pubsub takes it and its subscription is made. */
    aredis_exclusive_release(x);
    publish_until(loop, q, ch, "late", &s, 1);
    cr_assert_eq(s.messages, 1, "the waiting pubsub got the connection");
    cr_assert_str_eq(s.data, "late");
    k = client_list(loop, q, name);
    cr_assert_eq(k.named, 2, "still pool_max + the shared one: %d", k.named);
    cr_assert_neq(k.sub_id, 0);
    aredis_pubsub_free(ps);
    aredis_client_free(c);
    aredis_client_free(q);
    testloop_free(loop);
}

/* RESP2: the pubsub's connection is granted, but the grant is still on
 * its way (deferred) when the pubsub and the client are freed, behind a
 * client release that was queued first (a refused command queued it):
 * nothing may run on the freed client. */
Test(pubsub, free_while_connection_granted_resp2)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = client(loop, 2);
    reply_seen refused = {0};
    aredis_command(c, on_reply, &refused, "SUBSCRIBE %s", "x");
    aredis_pubsub *ps = aredis_pubsub_new(c, NULL);
    cr_assert_not_null(ps);
    calls k = {0};
    cr_assert_eq(aredis_pubsub_get_message(ps, -1, count_call, &k), 0);
    aredis_pubsub_free(ps);
    aredis_client_free(c);
    testloop_free(loop);
    cr_assert_eq(refused.done, 1);
    cr_assert_eq(k.n, 1);
    cr_assert_eq(k.canceled, 1);
}

/* After the pubsub's connection is killed (CLIENT KILL ID, found by the
 * client's name), a channel, a pattern and a shard channel are all made
 * again: one message published to each afterwards (PUBLISH to a channel
 * the pattern matches, SPUBLISH to the shard channel) arrives exactly
 * once, and the program sees one RESUBSCRIBED event, no confirmations. */
static void resubscribe_after_kill(int protocol)
{
    aredis_loop *loop = testloop_new();
    char name[64];
    testenv_key(name, sizeof name, protocol == 2 ? "resub2" : "resub3");
    aredis_client *c = named_client(loop, protocol, name, 0);
    aredis_client *pub = client(loop, 3);
    char ch[64], pat[64], pch[80], shard[64];
    testenv_key(ch, sizeof ch, "resub.ch");
    testenv_key(pat, sizeof pat, "resub.pat.*");
    snprintf(pch, sizeof pch, "%.*s.x", (int)strlen(pat) - 2, pat);
    testenv_key(shard, sizeof shard, "resub.shard");
    seen ev = {0}, sc = {0}, sp = {0}, ss = {0};
    aredis_pubsub *ps = aredis_pubsub_new(
        c, &(aredis_pubsub_options){.event_handler = handler, .event_ud = &ev});
    cr_assert_eq(aredis_pubsub_subscribe(ps, ch, handler, &sc), 0);
    cr_assert_eq(aredis_pubsub_psubscribe(ps, pat, handler, &sp), 0);
    cr_assert_eq(aredis_pubsub_ssubscribe(ps, shard, handler, &ss), 0);
    for (int i = 0;
         i < 300 && sc.confirmations + sp.confirmations + ss.confirmations < 3;
         i++)
        testloop_run_once(loop, 10);
    cr_assert_eq(sc.confirmations + sp.confirmations + ss.confirmations, 3);

    /* Kill the subscriber's connection, and only that one. */
    conns before = client_list(loop, pub, name);
    cr_assert_neq(before.sub_id, 0, "the subscribed connection");
    reply_seen k = {0};
    aredis_command(pub, on_reply, &k, "CLIENT KILL ID %lld", before.sub_id);
    cr_assert(testloop_run_until(loop, &k.done, 3000));
    cr_assert_eq(k.integer, 1, "killed %lld (%s)", k.integer, k.text);
    for (int i = 0; i < 300 && ev.resubscribed == 0; i++)
        testloop_run_once(loop, 10);
    cr_assert_eq(ev.resubscribed, 1, "protocol %d: the resubscribed event",
                 protocol);
    cr_assert_eq(sc.confirmations + sp.confirmations + ss.confirmations, 3,
                 "no duplicate confirmations reach the program");
    conns after = client_list(loop, pub, name);
    cr_assert_neq(after.sub_id, 0);
    cr_assert_neq(after.sub_id, before.sub_id, "a new connection");
    cr_assert_eq(after.named, protocol == 2 ? 2 : 1,
                 "one connection per link: %d", after.named);

    /* One message to each, after recovery: each arrives exactly once. */
    const char *cmd[3] = {"PUBLISH", "PUBLISH", "SPUBLISH"};
    const char *to[3] = {ch, pch, shard};
    for (int i = 0; i < 3; i++) {
        reply_seen p = {0};
        aredis_command(pub, on_reply, &p, "%s %s %s", cmd[i], to[i], "after");
        cr_assert(testloop_run_until(loop, &p.done, 3000));
        cr_assert_eq(p.integer, 1, "%s %s: one subscriber again (%s)", cmd[i],
                     to[i], p.text);
    }
    for (int i = 0; i < 300 && sc.messages + sp.messages + ss.messages < 3; i++)
        testloop_run_once(loop, 10);
    int zero = 0;
    testloop_run_until(loop, &zero, 200);
    cr_assert_eq(sc.messages, 1, "protocol %d: channel", protocol);
    cr_assert_eq(sc.kind, AREDIS_PUBSUB_MESSAGE);
    cr_assert_str_eq(sc.data, "after");
    cr_assert_eq(sp.messages, 1, "protocol %d: pattern", protocol);
    cr_assert_eq(sp.kind, AREDIS_PUBSUB_PMESSAGE);
    cr_assert_str_eq(sp.pattern, pat);
    cr_assert_str_eq(sp.channel, pch);
    cr_assert_eq(ss.messages, 1, "protocol %d: shard channel", protocol);
    cr_assert_eq(ss.kind, AREDIS_PUBSUB_SMESSAGE);
    cr_assert_str_eq(ss.channel, shard);
    cr_assert_eq(ev.messages + ev.confirmations, 0);
    aredis_pubsub_free(ps);
    aredis_client_free(c);
    aredis_client_free(pub);
    testloop_free(loop);
}

Test(pubsub, resubscribe_resp3)
{
    resubscribe_after_kill(3);
}

Test(pubsub, resubscribe_resp2)
{
    resubscribe_after_kill(2);
}

/* Messages the thread's handler saw, by kind. */
static _Atomic int thread_messages, thread_pmessages, thread_smessages;

static void thread_handler(aredis_pubsub *ps, const aredis_pubsub_message *m,
                           void *ud)
{
    (void)ps;
    (void)ud;
    if (m->data == NULL || strcmp(m->data, "to-thread") != 0)
        return;
    if (m->kind == AREDIS_PUBSUB_MESSAGE)
        thread_messages++;
    else if (m->kind == AREDIS_PUBSUB_PMESSAGE)
        thread_pmessages++;
    else if (m->kind == AREDIS_PUBSUB_SMESSAGE)
        thread_smessages++;
}

/* The thread mode subscribes each kind as what it is: a channel, a
 * pattern, a shard channel. */
Test(pubsub, thread_mode)
{
    char url[128], ch[64], pat[80], pch[80], shard[80];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", srv.port);
    testenv_key(ch, sizeof ch, "thread");
    snprintf(pat, sizeof pat, "%s.p.*", ch);
    snprintf(pch, sizeof pch, "%s.p.x", ch);
    snprintf(shard, sizeof shard, "%s.s", ch);
    aredis_status st;
    aredis_pubsub_sub bad = {AREDIS_PUBSUB_SUBSCRIBE, ch, NULL, NULL};
    cr_assert_null(aredis_pubsub_thread_start(&(aredis_options){.url = url},
                                              &bad, 1, &st));
    cr_assert_eq(st.code, AREDIS_EINVAL);
    cr_assert(strstr(st.msg, "handler") != NULL, "%s", st.msg);
    /* A message kind is not a subscription kind: refused, not taken for a
     * channel; a missing name is named as such. */
    aredis_pubsub_sub pmsg = {AREDIS_PUBSUB_PMESSAGE, pat, thread_handler,
                              NULL};
    cr_assert_null(aredis_pubsub_thread_start(&(aredis_options){.url = url},
                                              &pmsg, 1, &st));
    cr_assert_eq(st.code, AREDIS_EINVAL);
    cr_assert(strstr(st.msg, "kind") != NULL, "%s", st.msg);
    aredis_pubsub_sub noname = {AREDIS_PUBSUB_SUBSCRIBE, NULL, thread_handler,
                                NULL};
    cr_assert_null(aredis_pubsub_thread_start(&(aredis_options){.url = url},
                                              &noname, 1, &st));
    cr_assert(strstr(st.msg, "name") != NULL, "%s", st.msg);

    aredis_pubsub_sub good[] = {
        {AREDIS_PUBSUB_SUBSCRIBE, ch, thread_handler, NULL},
        {AREDIS_PUBSUB_PSUBSCRIBE, pat, thread_handler, NULL},
        {AREDIS_PUBSUB_SSUBSCRIBE, shard, thread_handler, NULL},
    };
    aredis_pubsub_thread *t =
        aredis_pubsub_thread_start(&(aredis_options){.url = url}, good, 3, &st);
    cr_assert_not_null(t, "%s", st.msg);
    aredis_sync *s = aredis_sync_connect(&(aredis_options){.url = url}, &st);
    cr_assert_not_null(s, "%s", st.msg);
    for (int tries = 0; (thread_messages == 0 || thread_pmessages == 0 ||
                         thread_smessages == 0) &&
                        tries < 200;
         tries++) {
        aredis_reply_free(aredis_sync_command(s, "PUBLISH %s to-thread", ch));
        aredis_reply_free(aredis_sync_command(s, "PUBLISH %s to-thread", pch));
        aredis_reply_free(
            aredis_sync_command(s, "SPUBLISH %s to-thread", shard));
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    cr_assert_geq(thread_messages, 1, "channel");
    cr_assert_geq(thread_pmessages, 1, "pattern");
    cr_assert_geq(thread_smessages, 1, "shard channel");
    aredis_pubsub_thread_stop(t);
    aredis_sync_free(s);
}

static void on_channels(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    numsub *n = ud;
    n->done = 1;
    n->ok = r->type == AREDIS_REPLY_ARRAY && r->len == 1 &&
            strcmp(r->element[0].str, n->channel) == 0;
}

static void introspection(int protocol)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = client(loop, protocol);
    aredis_client *q = client(loop, protocol);
    char ch[64];
    testenv_key(ch, sizeof ch, "numsub");
    aredis_pubsub *ps = aredis_pubsub_new(c, NULL);
    seen s = {0};
    aredis_pubsub_subscribe(ps, ch, handler, &s);
    publish_until(loop, q, ch, "x", &s, 1);
    numsub n = {0};
    snprintf(n.channel, sizeof n.channel, "%s", ch);
    aredis_command(q, on_numsub, &n, "PUBSUB NUMSUB %s", ch);
    cr_assert(testloop_run_until(loop, &n.done, 3000));
    cr_assert(n.ok, "protocol %d: NUMSUB gives [channel, 1]", protocol);
    numsub chans = {0};
    snprintf(chans.channel, sizeof chans.channel, "%s", ch);
    aredis_command(q, on_channels, &chans, "PUBSUB CHANNELS %s", ch);
    cr_assert(testloop_run_until(loop, &chans.done, 3000));
    cr_assert(chans.ok, "protocol %d: CHANNELS lists it", protocol);
    reply_seen pub = {0};
    aredis_command(q, on_reply, &pub, "PUBLISH %s %s", ch, "counted");
    cr_assert(testloop_run_until(loop, &pub.done, 3000));
    cr_assert_eq(pub.type, AREDIS_REPLY_INTEGER);
    cr_assert_eq(pub.integer, 1, "one receiver");
    aredis_pubsub_free(ps);
    aredis_client_free(c);
    aredis_client_free(q);
    testloop_free(loop);
}

Test(pubsub, introspection_resp2)
{
    introspection(2);
}

Test(pubsub, introspection_resp3)
{
    introspection(3);
}

typedef struct tally {
    int hits[200];
    int pattern_hits;
    int total;
} tally;

static void count_channel(aredis_pubsub *ps, const aredis_pubsub_message *m,
                          void *ud)
{
    (void)ps;
    tally *t = ud;
    if (m->kind != AREDIS_PUBSUB_MESSAGE)
        return;
    const char *dot = strrchr(m->data, '.');
    int i = dot ? (int)strtol(dot + 1, NULL, 10) : -1;
    if (i >= 0 && i < 200)
        t->hits[i]++;
    t->total++;
}

static void count_pattern(aredis_pubsub *ps, const aredis_pubsub_message *m,
                          void *ud)
{
    (void)ps;
    tally *t = ud;
    if (m->kind == AREDIS_PUBSUB_PMESSAGE)
        t->pattern_hits++;
}

static void many(int protocol)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = client(loop, protocol);
    aredis_client *pub = client(loop, 3);
    char base[64];
    testenv_key(base, sizeof base, "many");
    aredis_pubsub *ps = aredis_pubsub_new(
        c, &(aredis_pubsub_options){.ignore_subscribe_messages = 1});
    tally t;
    memset(&t, 0, sizeof t);
    char name[128];
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof name, "%s.%d", base, i);
        cr_assert_eq(aredis_pubsub_subscribe(ps, name, count_channel, &t), 0);
    }
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof name, "%s.%d*", base, i);
        cr_assert_eq(aredis_pubsub_psubscribe(ps, name, count_pattern, &t), 0);
    }
    cr_assert_eq(aredis_pubsub_subscriptions(ps), 220);
    /* Wait until the server has them all, then one message per channel. */
    reply_seen numpat = {0};
    for (int tries = 0; tries < 300 && numpat.integer < 20; tries++) {
        numpat.done = 0;
        aredis_command(pub, on_reply, &numpat, "PUBSUB NUMPAT");
        testloop_run_until(loop, &numpat.done, 2000);
        testloop_run_once(loop, 5);
    }
    int zero = 0;
    testloop_run_until(loop, &zero, 100);
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof name, "%s.%d", base, i);
        char data[32];
        snprintf(data, sizeof data, "n.%d", i);
        aredis_command(pub, NULL, NULL, "PUBLISH %s %s", name, data);
    }
    for (int i = 0; i < 500 && t.total < 200; i++)
        testloop_run_once(loop, 10);
    cr_assert_eq(t.total, 200, "protocol %d", protocol);
    for (int i = 0; i < 200; i++)
        cr_assert_eq(t.hits[i], 1, "channel %d", i);
    /* Channels base.0 .. base.19 match patterns "base.<k>*" for k a prefix:
     * at least one pattern message each for those twenty. */
    cr_assert_geq(t.pattern_hits, 20);
    aredis_pubsub_free(ps);
    aredis_client_free(c);
    aredis_client_free(pub);
    testloop_free(loop);
}

Test(pubsub, many_channels_and_patterns_resp3)
{
    many(3);
}

Test(pubsub, many_channels_and_patterns_resp2)
{
    many(2);
}
