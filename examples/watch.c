/* WATCH by hand: an optimistic transaction that retries when someone else
 * changes the key first -- the Python library's OUR-SEQUENCE-KEY example in
 * C (the transaction helper, examples/transaction.c, does the loop for you).
 *
 *     ./watch redis://127.0.0.1:6379/8
 *
 * WATCH the sequence key, read it in immediate mode, MULTI, SET it to the
 * value + 1, EXEC. To show the retry, the first attempt lets a second
 * client bump the key between the read and EXEC, so that EXEC fails with
 * AREDIS_EWATCH and the program watches and reads again. Exits non-zero
 * unless the key ends at 1 + 1 (theirs) + 1 (ours) = 3. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aredis/aredis.h>

#define KEY "OUR-SEQUENCE-KEY"

typedef struct app {
    aredis_client *c;     /* ours: the pipeline's client */
    aredis_client *other; /* someone else writing the same key */
    aredis_pipeline *p;
    int attempt;
    int failed;
} app;

static void start(app *a);

static void done(app *a, int failed)
{
    a->failed = failed;
    aredis_pipeline_free(a->p);
    aredis_client_free(a->c);
    aredis_client_free(a->other);
}

static void on_check(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    app *a = ud;
    printf("GET %s -> %s\n", KEY,
           r->type == AREDIS_REPLY_STRING ? r->str : "?");
    done(a, !(r->type == AREDIS_REPLY_STRING && strcmp(r->str, "3") == 0));
}

static void on_exec(aredis_pipeline *p, const aredis_reply *r, void *ud)
{
    (void)p;
    app *a = ud;
    if (r->type == AREDIS_REPLY_ERROR && r->code == AREDIS_EWATCH) {
        /* Another client changed the key between WATCH and EXEC: nothing
         * ran; our best bet is to just retry. */
        printf("attempt %d: %s, retrying\n", a->attempt, r->str);
        start(a);
        return;
    }
    if (r->type == AREDIS_REPLY_ERROR) {
        printf("attempt %d: %s\n", a->attempt, r->str);
        done(a, 1);
        return;
    }
    printf("attempt %d: EXEC -> %s\n", a->attempt, r->element[0].str);
    aredis_command(a->other, on_check, a, "GET %s", KEY);
}

static void commit(app *a, long long next)
{
    /* Back to buffering with MULTI; EXEC succeeds only if KEY is untouched
     * since WATCH. */
    aredis_pipeline_multi(a->p);
    aredis_pipeline_command(a->p, "SET %s %lld", KEY, next);
    aredis_pipeline_execute(a->p, on_exec, a);
}

static long long current;

static void on_theirs(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    (void)r;
    commit(ud, current + 1);
}

static void on_get(aredis_pipeline *p, const aredis_reply *r, void *ud)
{
    (void)p;
    app *a = ud;
    if (r->type == AREDIS_REPLY_ERROR) {
        printf("GET failed: %s\n", r->str);
        done(a, 1);
        return;
    }
    current = r->type == AREDIS_REPLY_STRING ? atoll(r->str) : 0;
    printf("attempt %d: WATCH %s, GET -> %lld\n", a->attempt, KEY, current);
    if (a->attempt == 1) /* the race, on purpose */
        aredis_command(a->other, on_theirs, a, "INCR %s", KEY);
    else
        commit(a, current + 1);
}

static void on_watch(aredis_pipeline *p, const aredis_reply *r, void *ud)
{
    app *a = ud;
    if (r->type == AREDIS_REPLY_ERROR) {
        printf("WATCH failed: %s\n", r->str);
        done(a, 1);
        return;
    }
    /* Immediate mode: this GET goes out now, on the WATCH connection. */
    aredis_pipeline_immediate(p, on_get, a, "GET %s", KEY);
}

static void start(app *a)
{
    a->attempt++;
    const char *keys[] = {KEY};
    aredis_pipeline_watch(a->p, on_watch, a, 1, keys);
}

static void on_reset(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    (void)r;
    start(ud);
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : getenv("REDIS_URL");
    aredis_options o = {.url = url ? url : "redis://127.0.0.1:6379/8"};
    aredis_loop *loop = aredis_loop_new();
    aredis_status st;
    app a = {0};
    a.c = aredis_client_new(loop, &o, &st);
    a.other = a.c ? aredis_client_new(loop, &o, &st) : NULL;
    if (a.other == NULL) {
        fprintf(stderr, "%s\n", st.msg);
        return 1;
    }
    a.p = aredis_pipeline_new(a.c, 1);
    aredis_command(a.c, on_reset, &a, "SET %s 1", KEY);
    aredis_loop_run(loop);
    aredis_loop_free(loop);
    return a.failed;
}
