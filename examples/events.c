/* Connection events and automatic reconnection: print every state change
 * while a PING is sent each half second. Stop the server and start it again
 * to watch the client reconnect by itself.
 *
 *     ./events redis://127.0.0.1:6379 [seconds]
 */
#include <stdio.h>
#include <stdlib.h>

#include <aredis/aredis.h>

typedef struct app {
    aredis_client *client;
    aredis_timer *tick;
    int left;
} app;

static void on_event(aredis_client *c, const aredis_conn_event *ev, void *ud)
{
    (void)c;
    (void)ud;
    switch (ev->type) {
    case AREDIS_CONN_CONNECTED:
        printf("event: connected\n");
        break;
    case AREDIS_CONN_DISCONNECTED:
        printf("event: disconnected (%s: %s)\n", aredis_err_name(ev->code),
               ev->msg);
        break;
    case AREDIS_CONN_RECONNECTING:
        printf("event: reconnecting in %lld ms (attempt %d)\n",
               (long long)ev->delay_ms, ev->attempt);
        break;
    }
}

static void on_pong(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    (void)ud;
    printf("PING -> %s%.*s\n", r->type == AREDIS_REPLY_ERROR ? "error: " : "",
           (int)r->len, r->str);
}

static void tick(void *arg)
{
    app *a = arg;
    if (a->left-- <= 0) {
        aredis_client_free(a->client);
        return;
    }
    aredis_command(a->client, on_pong, NULL, "PING");
    aredis_timer_start(a->tick, 500);
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : getenv("REDIS_URL");
    int seconds = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 2;
    aredis_loop *loop = aredis_loop_new();
    aredis_status st;
    app a = {0};
    a.left = seconds * 2;
    a.client = aredis_client_new(
        loop,
        &(aredis_options){.url = url ? url : "redis://127.0.0.1:6379",
                          .reconnect_max_attempts = -1},
        &st);
    if (a.client == NULL) {
        fprintf(stderr, "%s\n", st.msg);
        return 1;
    }
    aredis_client_set_event_handler(a.client, on_event, NULL);
    a.tick = aredis_timer_new(loop, tick, &a);
    tick(&a);
    aredis_loop_run(loop);
    aredis_timer_free(a.tick);
    aredis_loop_free(loop);
    return 0;
}
