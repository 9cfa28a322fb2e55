/* The transaction helper: the Python library's client_side_incr example in
 * C, run by twenty callers at once on the same key.
 *
 *     ./transaction redis://127.0.0.1:6379/7
 *
 * Each transaction watches OUR-SEQUENCE-KEY, reads it in immediate mode and
 * commits SET key value+1; when another one wins the race, EXEC finds the
 * key changed and the helper runs the body again. Every increment counts
 * exactly once, so the key ends at 20. Exits non-zero otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aredis/aredis.h>

#define KEY "OUR-SEQUENCE-KEY"
#define CALLERS 20

static int pending = CALLERS, attempts, failed;
static aredis_client *client;

static void on_get(aredis_pipeline *p, const aredis_reply *r, void *ud)
{
    (void)ud;
    if (r->type == AREDIS_REPLY_ERROR) {
        aredis_transaction_abort(p, r->code, r->str);
        return;
    }
    long long next = (r->type == AREDIS_REPLY_STRING ? atoll(r->str) : 0) + 1;
    aredis_pipeline_multi(p);
    aredis_pipeline_command(p, "SET %s %lld", KEY, next);
    aredis_transaction_commit(p);
}

/* The body: runs once per attempt, with KEY watched. */
static void client_side_incr(aredis_pipeline *p, void *ud)
{
    (void)ud;
    attempts++;
    aredis_pipeline_immediate(p, on_get, NULL, "GET %s", KEY);
}

static void on_final(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)ud;
    printf("%d transactions in %d attempts; GET %s -> %s\n", CALLERS, attempts,
           KEY, r->type == AREDIS_REPLY_STRING ? r->str : "?");
    if (!(r->type == AREDIS_REPLY_STRING && atoi(r->str) == CALLERS))
        failed = 1;
    aredis_client_free(c);
}

static void on_done(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)ud;
    if (r->type == AREDIS_REPLY_ERROR) {
        printf("transaction failed: %s: %s\n", aredis_err_name(r->code),
               r->str);
        failed = 1;
    }
    if (--pending == 0)
        aredis_command(c, on_final, NULL, "GET %s", KEY);
}

static void on_reset(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)r;
    (void)ud;
    const char *keys[] = {KEY};
    /* Twenty callers on one key lose often; allow them enough attempts. */
    aredis_transaction_opts o = {.max_attempts = 100};
    for (int i = 0; i < CALLERS; i++)
        if (aredis_transaction(c, &o, client_side_incr, on_done, NULL, 1,
                               keys) != 0) {
            failed = 1;
            pending--;
        }
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : getenv("REDIS_URL");
    aredis_loop *loop = aredis_loop_new();
    aredis_status st;
    client = aredis_client_new(
        loop, &(aredis_options){.url = url ? url : "redis://127.0.0.1:6379/7"},
        &st);
    if (client == NULL) {
        fprintf(stderr, "%s\n", st.msg);
        return 1;
    }
    aredis_command(client, on_reset, NULL, "DEL %s", KEY);
    aredis_loop_run(loop);
    aredis_loop_free(loop);
    return failed;
}
