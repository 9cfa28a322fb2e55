/* The blocking API beyond single commands (docs/guide/blocking.md): a
 * deadline per command, pipelining with append / get-reply, a MULTI/EXEC
 * pipeline, the transaction helper with a blocking body, a script, and
 * pub/sub with a timeout -- each step checked.
 *
 *     ./blocking redis://127.0.0.1:6379/0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aredis/aredis.h>

static int failed;

static void check(const char *what, int ok)
{
    printf("%-44s %s\n", what, ok ? "ok" : "FAILED");
    if (!ok)
        failed = 1;
}

/* The transaction body: read the counter, write twice its value. */
static int double_it(aredis_sync *s, aredis_pipeline *p, void *ud)
{
    const char *key = ud;
    aredis_reply *r = aredis_sync_pipeline_immediate(s, p, "GET %s", key);
    if (r == NULL || r->type == AREDIS_REPLY_ERROR) {
        int code = r ? r->code : AREDIS_ENOMEM;
        aredis_reply_free(r);
        return code;
    }
    long long v = r->type == AREDIS_REPLY_STRING ? atoll(r->str) : 0;
    aredis_reply_free(r);
    aredis_pipeline_multi(p);
    aredis_pipeline_command(p, "SET %s %lld", key, v * 2);
    return 0;
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : getenv("REDIS_URL");
    if (url == NULL)
        url = "redis://127.0.0.1:6379/0";
    aredis_status st;
    aredis_sync *s = aredis_sync_connect(&(aredis_options){.url = url}, &st);
    if (s == NULL) {
        fprintf(stderr, "%s: %s: %s\n", url, aredis_err_name(st.code), st.msg);
        return 1;
    }
    aredis_reply *r;

    /* A deadline for one command. */
    r = aredis_sync_command_opts(s, &(aredis_cmd_opts){.timeout_ms = 50},
                                 "DEBUG SLEEP %s", "0.2");
    check("DEBUG SLEEP 0.2 with a 50 ms deadline",
          r != NULL && r->type == AREDIS_REPLY_ERROR &&
              r->code == AREDIS_ETIMEDOUT);
    aredis_reply_free(r);

    /* Pipelining: 1000 commands, one round trip, replies in order. */
    aredis_sync_append(s, "DEL %s", "ex:list");
    for (int i = 0; i < 1000; i++)
        aredis_sync_append(s, "RPUSH %s %d", "ex:list", i);
    aredis_sync_append(s, "LINDEX %s -1", "ex:list");
    int in_order = aredis_sync_get_reply(s)->type == AREDIS_REPLY_INTEGER;
    for (int i = 0; i < 1000; i++)
        in_order &= aredis_sync_get_reply(s)->integer == i + 1;
    const aredis_reply *last = aredis_sync_get_reply(s); /* borrowed */
    check("1000 appended RPUSH, replies in order",
          in_order && last->type == AREDIS_REPLY_STRING &&
              strcmp(last->str, "999") == 0);
    check("nothing left to read",
          aredis_sync_get_reply(s)->code == AREDIS_ESTATE);

    /* A MULTI ... EXEC pipeline, executed and waited for. */
    aredis_pipeline *p = aredis_pipeline_new(aredis_sync_client(s), 1);
    aredis_pipeline_command(p, "SET %s %d", "ex:n", 21);
    aredis_pipeline_command(p, "GET %s", "ex:n");
    r = aredis_sync_pipeline_execute(s, p);
    check("MULTI SET GET EXEC", r != NULL && r->type == AREDIS_REPLY_ARRAY &&
                                    strcmp(r->element[1].str, "21") == 0);
    aredis_reply_free(r);
    aredis_pipeline_free(p);

    /* The transaction helper: WATCH, a blocking read, MULTI ... EXEC. */
    const char *keys[] = {"ex:n"};
    r = aredis_sync_transaction(s, NULL, double_it, (void *)keys[0], 1, keys);
    check("transaction doubling ex:n",
          r != NULL && r->type == AREDIS_REPLY_ARRAY);
    aredis_reply_free(r);
    r = aredis_sync_command(s, "GET %s", "ex:n");
    check("ex:n is 42", r != NULL && r->str && strcmp(r->str, "42") == 0);
    aredis_reply_free(r);

    /* A script, loaded on first use. */
    const char *src = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
    aredis_script *sc = aredis_script_new(src, strlen(src));
    const char *args[] = {"58"};
    r = aredis_sync_script_eval(s, sc, 1, keys, 1, args);
    check("script INCRBY 58", r != NULL && r->integer == 100);
    aredis_reply_free(r);
    aredis_script_free(sc);

    /* Pub/sub: subscribe, publish from another handle, get the message. */
    aredis_sync *pub = aredis_sync_connect(&(aredis_options){.url = url}, &st);
    aredis_pubsub *ps = aredis_pubsub_new(aredis_sync_client(s), NULL);
    aredis_pubsub_subscribe(ps, "ex:chan", NULL, NULL);
    const aredis_pubsub_message *m;
    int rc = aredis_sync_pubsub_get_message(s, ps, 2000, &m);
    check("subscribed", rc == 0 && m->kind == AREDIS_PUBSUB_SUBSCRIBE);
    aredis_reply_free(
        aredis_sync_command(pub, "PUBLISH %s %s", "ex:chan", "hello"));
    rc = aredis_sync_pubsub_get_message(s, ps, 2000, &m);
    check("message received", rc == 0 && m->kind == AREDIS_PUBSUB_MESSAGE &&
                                  strcmp(m->data, "hello") == 0);
    rc = aredis_sync_pubsub_get_message(s, ps, 100, &m);
    check("nothing more within 100 ms", rc == AREDIS_ETIMEDOUT);
    aredis_pubsub_free(ps);
    aredis_sync_free(pub);

    aredis_reply_free(aredis_sync_command(s, "DEL %s %s", "ex:list", "ex:n"));
    aredis_sync_free(s);
    printf("%s\n", failed ? "FAILED" : "all steps as expected");
    return failed;
}
