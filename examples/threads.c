/* Submitting from other threads: four workers each send 1000 INCRs with
 * aredis_command_ts() while the main thread runs the loop; every callback
 * runs on the loop thread.
 *
 *     ./threads redis://127.0.0.1:6379
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <aredis/aredis.h>

enum { WORKERS = 4, EACH = 1000 };

static aredis_client *client;
static int replies; /* touched on the loop thread only */

static void on_incr(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)ud;
    if (r->type == AREDIS_REPLY_ERROR)
        fprintf(stderr, "INCR: %s\n", r->str);
    if (++replies == WORKERS * EACH) {
        printf("%d replies on the loop thread; last value %lld\n", replies,
               r->integer);
        aredis_client_free(c);
    }
}

static void *worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < EACH; i++)
        aredis_command_ts(client, on_incr, NULL, "INCR %s", "demo:threads");
    return NULL;
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : getenv("REDIS_URL");
    aredis_loop *loop = aredis_loop_new();
    aredis_status st;
    client = aredis_client_new(
        loop, &(aredis_options){.url = url ? url : "redis://127.0.0.1:6379"},
        &st);
    if (client == NULL) {
        fprintf(stderr, "%s\n", st.msg);
        return 1;
    }
    pthread_t t[WORKERS];
    for (int i = 0; i < WORKERS; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    /* Run the loop while the workers submit; it returns once the last
     * callback has freed the client. */
    while (aredis_loop_run_once(loop, 100) > 0)
        ;
    for (int i = 0; i < WORKERS; i++)
        pthread_join(t[i], NULL);
    aredis_loop_free(loop);
    return replies == WORKERS * EACH ? 0 : 1;
}
