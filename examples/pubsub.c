/* Publish/subscribe: a handler for one channel, a queue read with a
 * deadline for a pattern, and messages published by a second client once
 * the server has confirmed both subscriptions.
 *
 *     ./pubsub redis://127.0.0.1:6379
 */
#include <stdio.h>
#include <stdlib.h>

#include <aredis/aredis.h>

typedef struct app {
    aredis_client *sub, *pub;
    aredis_pubsub *ps;
    int subscribed; /* confirmations seen: 2 when both are in place */
    int news, logs, expired;
} app;

static void on_news(aredis_pubsub *ps, const aredis_pubsub_message *m, void *ud)
{
    (void)ps;
    app *a = ud;
    if (m->kind == AREDIS_PUBSUB_SUBSCRIBE) {
        a->subscribed++;
    } else if (m->kind == AREDIS_PUBSUB_MESSAGE) {
        printf("handler: %.*s on %.*s\n", (int)m->data_len, m->data,
               (int)m->channel_len, m->channel);
        a->news++;
    }
}

/* The pattern has no handler: its confirmation and its messages are
 * queued, and read here one at a time. */
static void on_log(aredis_pubsub *ps, const aredis_pubsub_message *m,
                   int status, void *ud)
{
    app *a = ud;
    if (status == AREDIS_ECANCELED)
        return; /* the pubsub was freed */
    if (status == AREDIS_ETIMEDOUT) {
        printf("queue: nothing within the deadline\n");
    } else if (m->kind == AREDIS_PUBSUB_PSUBSCRIBE) {
        a->subscribed++;
    } else if (m->kind == AREDIS_PUBSUB_PMESSAGE) {
        printf("queue: %.*s on %.*s (pattern %.*s)\n", (int)m->data_len,
               m->data, (int)m->channel_len, m->channel, (int)m->pattern_len,
               m->pattern);
        a->logs++;
    }
    if (a->logs == 0 && !a->expired)
        aredis_pubsub_get_message(ps, 1000, on_log, a);
}

static void on_published(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    (void)ud;
    printf("PUBLISH -> %lld receiver(s)\n", r->integer);
}

static void on_deadline(void *ud)
{
    ((app *)ud)->expired = 1;
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : getenv("REDIS_URL");
    aredis_options o = {.url = url ? url : "redis://127.0.0.1:6379"};
    aredis_loop *loop = aredis_loop_new();
    aredis_status st;
    app a = {0};
    a.sub = aredis_client_new(loop, &o, &st);
    a.pub = aredis_client_new(loop, &o, &st);
    if (a.sub == NULL || a.pub == NULL) {
        fprintf(stderr, "%s\n", st.msg);
        return 1;
    }
    a.ps = aredis_pubsub_new(a.sub, NULL);
    aredis_pubsub_subscribe(a.ps, "demo:news", on_news, &a);
    aredis_pubsub_psubscribe(a.ps, "demo:log.*", NULL, NULL);
    aredis_pubsub_get_message(a.ps, 1000, on_log, &a);

    /* Give up after 10 s, however busy the machine. */
    aredis_timer *deadline = aredis_timer_new(loop, on_deadline, &a);
    aredis_timer_start(deadline, 10000);

    /* A subscription takes effect a round trip after the call: publish
     * once the server has confirmed both, or the messages go nowhere. */
    while (a.subscribed < 2 && !a.expired)
        aredis_loop_run_once(loop, -1);
    if (!a.expired) {
        aredis_command(a.pub, on_published, NULL, "PUBLISH %s %s", "demo:news",
                       "hello");
        aredis_command(a.pub, on_published, NULL, "PUBLISH %s %s",
                       "demo:log.app", "started");
    }
    while (!(a.news > 0 && a.logs > 0) && !a.expired)
        aredis_loop_run_once(loop, -1);

    int ok = a.news > 0 && a.logs > 0;
    aredis_timer_free(deadline);
    aredis_pubsub_free(a.ps);
    aredis_client_free(a.sub);
    aredis_client_free(a.pub);
    aredis_loop_run(loop);
    aredis_loop_free(loop);
    printf("%s\n", ok ? "received on both" : "FAILED");
    return ok ? 0 : 1;
}
