/* Publish/subscribe: a handler for one channel, a queue read with a
 * deadline for a pattern, and messages published by a second client.
 *
 *     ./pubsub redis://127.0.0.1:6379
 */
#include <stdio.h>
#include <stdlib.h>

#include <aredis/aredis.h>

typedef struct app {
    aredis_client *sub, *pub;
    aredis_pubsub *ps;
    int news, logs, done;
} app;

static void on_news(aredis_pubsub *ps, const aredis_pubsub_message *m, void *ud)
{
    (void)ps;
    app *a = ud;
    if (m->kind == AREDIS_PUBSUB_MESSAGE) {
        printf("handler: %.*s on %.*s\n", (int)m->data_len, m->data,
               (int)m->channel_len, m->channel);
        a->news++;
    }
}

static void on_log(aredis_pubsub *ps, const aredis_pubsub_message *m,
                   int status, void *ud)
{
    app *a = ud;
    if (status == AREDIS_ETIMEDOUT) {
        printf("queue: nothing within the deadline\n");
    } else if (m != NULL) {
        printf("queue: %.*s on %.*s (pattern %.*s)\n", (int)m->data_len,
               m->data, (int)m->channel_len, m->channel, (int)m->pattern_len,
               m->pattern);
        a->logs++;
    }
    if (a->logs < 1 && status != AREDIS_ECANCELED)
        aredis_pubsub_get_message(ps, 2000, on_log, a);
    else
        a->done = 1;
}

static void on_published(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    (void)ud;
    printf("PUBLISH -> %lld receiver(s)\n", r->integer);
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
    a.ps = aredis_pubsub_new(
        a.sub, &(aredis_pubsub_options){.ignore_subscribe_messages = 1});
    aredis_pubsub_subscribe(a.ps, "demo:news", on_news, &a);
    aredis_pubsub_psubscribe(a.ps, "demo:log.*", NULL, NULL);
    aredis_pubsub_get_message(a.ps, 2000, on_log, &a);
    /* Publish a few times: a subscription takes effect a round trip after
     * the call, so keep going until both have been seen. */
    for (int i = 0; i < 50 && !(a.done && a.news > 0); i++) {
        aredis_command(a.pub, on_published, NULL, "PUBLISH demo:news %s",
                       "hello");
        aredis_command(a.pub, on_published, NULL, "PUBLISH demo:log.app %s",
                       "started");
        aredis_loop_run_once(loop, 100);
    }
    int ok = a.news > 0 && a.logs > 0;
    aredis_pubsub_free(a.ps);
    aredis_client_free(a.sub);
    aredis_client_free(a.pub);
    aredis_loop_run(loop);
    aredis_loop_free(loop);
    printf("%s\n", ok ? "received on both" : "FAILED");
    return ok ? 0 : 1;
}
