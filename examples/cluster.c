/* A Redis Cluster behind the same client.
 *
 * The program is the one written for a single server; only the URL names
 * seed nodes of a cluster. Each command goes to the primary serving its
 * key's hash slot; keys sharing a {hash tag} share a slot, so they can be
 * used together in one multi-key command. Run it with seeds:
 *
 *     ./cluster redis+cluster://127.0.0.1:7000,127.0.0.1:7001
 *
 * (REDIS_URL is used when no argument is given.) It writes keys in many
 * slots, reads them back, reads three keys of different slots with one
 * MGET (the client splits it by slot and puts the values back in order),
 * uses two keys of one hash tag in one MSET/MGET (one slot: one command,
 * atomic), and exits non-zero if any reply is not what it expects. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aredis/aredis.h>

#define NKEYS 100

typedef struct demo {
    aredis_client *client;
    int pending; /* replies still to come in the current step */
    int step;
    int failed;
} demo;

static void next(demo *d);

static void fail(demo *d, const char *what, const aredis_reply *r)
{
    fprintf(stderr, "%s: unexpected reply (%s) %.*s\n", what,
            aredis_reply_type_name(r->type),
            r->type == AREDIS_REPLY_ERROR ? (int)r->len : 0,
            r->type == AREDIS_REPLY_ERROR ? r->str : "");
    d->failed = 1;
}

/* Step 1: NKEYS SETs, all in flight at once, spread over the slots (and so
 * over every primary). */
static void on_set(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    demo *d = ud;
    if (r->type != AREDIS_REPLY_STATUS)
        fail(d, "SET", r);
    if (--d->pending == 0)
        next(d);
}

/* Step 2: read them back. */
static void on_get(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    demo *d = ud;
    if (r->type != AREDIS_REPLY_STRING || r->len == 0)
        fail(d, "GET", r);
    if (--d->pending == 0)
        next(d);
}

/* Step 3: keys of different slots in one MGET: split per slot by the
 * client, the values back in the caller's order. */
static void on_split_mget(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    demo *d = ud;
    int ok = r->type == AREDIS_REPLY_ARRAY && r->len == 3;
    for (size_t i = 0; ok && i < 3; i++) {
        char want[4];
        snprintf(want, sizeof want, "%zu", i);
        ok = r->element[i].type == AREDIS_REPLY_STRING &&
             strcmp(r->element[i].str, want) == 0;
    }
    if (!ok)
        fail(d, "MGET over 3 slots", r);
    else
        printf("MGET over 3 slots -> %s %s %s\n", r->element[0].str,
               r->element[1].str, r->element[2].str);
    next(d);
}

/* Step 4: two keys of one hash tag: one slot, so one MSET and one MGET. */
static void on_mset(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    if (r->type != AREDIS_REPLY_STATUS)
        fail(ud, "MSET", r);
    next(ud);
}

static void on_mget(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    demo *d = ud;
    if (r->type != AREDIS_REPLY_ARRAY || r->len != 2 ||
        r->element[0].type != AREDIS_REPLY_STRING ||
        strcmp(r->element[0].str, "Ada") != 0 ||
        r->element[1].type != AREDIS_REPLY_STRING ||
        strcmp(r->element[1].str, "ada@example.org") != 0)
        fail(d, "MGET", r);
    else
        printf("MGET {user:1}:name {user:1}:mail -> %s, %s\n",
               r->element[0].str, r->element[1].str);
    next(d);
}

static void next(demo *d)
{
    aredis_client *c = d->client;
    char key[32];
    if (d->failed) {
        /* Freeing completes what is still pending (AREDIS_ECANCELED):
         * those callbacks come back here and find nothing to free. */
        d->client = NULL;
        aredis_client_free(c);
        return;
    }
    switch (d->step++) {
    case 0:
        d->pending = NKEYS;
        for (int i = 0; i < NKEYS; i++) {
            snprintf(key, sizeof key, "example:cluster:%d", i);
            aredis_command(c, on_set, d, "SET %s %d", key, i);
        }
        break;
    case 1:
        printf("SET %d keys, spread over the slots\n", NKEYS);
        d->pending = NKEYS;
        for (int i = 0; i < NKEYS; i++) {
            snprintf(key, sizeof key, "example:cluster:%d", i);
            aredis_command(c, on_get, d, "GET %s", key);
        }
        break;
    case 2:
        printf("GET them back: ok\n");
        aredis_command(c, on_split_mget, d, "MGET %s %s %s",
                       "example:cluster:0", "example:cluster:1",
                       "example:cluster:2");
        break;
    case 3:
        /* The part between { and } decides the slot. */
        printf("slot of {user:1}:name = %u, of {user:1}:mail = %u\n",
               aredis_cluster_keyslot("{user:1}:name", 13),
               aredis_cluster_keyslot("{user:1}:mail", 13));
        aredis_command(c, on_mset, d, "MSET %s %s %s %s", "{user:1}:name",
                       "Ada", "{user:1}:mail", "ada@example.org");
        break;
    case 4:
        aredis_command(c, on_mget, d, "MGET %s %s", "{user:1}:name",
                       "{user:1}:mail");
        break;
    default:
        /* Done: closing lets the loop return once nothing is pending. */
        aredis_client_close(c);
    }
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : getenv("REDIS_URL");
    if (url == NULL) {
        fprintf(stderr, "usage: %s redis+cluster://host:port[,host:port...]\n",
                argv[0]);
        return 2;
    }
    aredis_loop *loop = aredis_loop_new();
    aredis_status st;
    aredis_client *c =
        aredis_client_new(loop, &(aredis_options){.url = url}, &st);
    if (c == NULL) {
        fprintf(stderr, "%s\n", st.msg);
        aredis_loop_free(loop);
        return 1;
    }
    demo d = {.client = c};
    next(&d);
    aredis_loop_run(loop);
    aredis_loop_free(loop);
    return d.failed ? 1 : 0;
}
