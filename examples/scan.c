/* SCAN iterators: walk keys, a hash and a sorted set without cursors.
 *
 * The asynchronous part fills a database (it FLUSHES it first: give it a
 * database of its own), then walks:
 *   - the keys matching user:* (SCAN MATCH ... COUNT ...), per element;
 *   - a hash's field/value pairs (HSCAN), per batch and per pair;
 *   - a sorted set's members and scores (ZSCAN);
 * and the blocking part walks the keys of one type (SCAN ... TYPE) with
 * an iterator on the blocking facade. Run it with a server URL:
 *
 *     ./scan redis://127.0.0.1:6379/5
 *
 * (REDIS_URL is used when no argument is given.) It exits non-zero if a
 * walk does not return what the database holds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aredis/aredis.h>

#define USERS 250

typedef struct demo {
    aredis_client *client;
    int step;
    int pending; /* replies still expected for the current step */
    int failed;
    char seen[USERS]; /* user:N returned (maybe more than once) */
    int elements, batches;
} demo;

static void next(demo *d);

static void fail(demo *d, const char *what)
{
    if (d->failed)
        return; /* the client is already being freed */
    fprintf(stderr, "unexpected: %s\n", what);
    d->failed = 1;
    aredis_client_free(d->client); /* ends the loop */
}

/* Counts the replies of a step's commands; the last one moves on. */
static void on_setup(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    demo *d = ud;
    if (r->type == AREDIS_REPLY_ERROR) {
        fail(d, r->str);
        return;
    }
    if (--d->pending == 0) {
        d->step++;
        next(d);
    }
}

static int on_user(aredis_client *c, const aredis_scan_elem *e, void *ud)
{
    (void)c;
    demo *d = ud;
    /* Keys are "user:N"; SCAN may return one twice, so count distinct. */
    long n = strtol(e->str + 5, NULL, 10);
    if (e->len > 5 && n >= 0 && n < USERS)
        d->seen[n] = 1;
    d->elements++;
    return 0; /* go on */
}

static int on_hash_batch(aredis_client *c, const aredis_reply *b, void *ud)
{
    (void)c;
    demo *d = ud;
    d->batches++;
    printf("  HSCAN batch of %zu pairs\n", b->len / 2);
    return 0;
}

static int on_pair(aredis_client *c, const aredis_scan_elem *e, void *ud)
{
    (void)c;
    demo *d = ud;
    printf("    %.*s = %.*s\n", (int)e->len, e->str, (int)e->vlen, e->value);
    d->elements++;
    return 0;
}

static int on_member(aredis_client *c, const aredis_scan_elem *e, void *ud)
{
    (void)c;
    demo *d = ud;
    printf("    %-8.*s %g\n", (int)e->len, e->str, e->score);
    d->elements++;
    return 0;
}

/* Runs once per walk: finished, stopped, or failed. */
static void on_walk_done(aredis_client *c, int status, const aredis_reply *err,
                         void *ud)
{
    (void)c;
    demo *d = ud;
    if (status < 0) {
        fail(d, err->str);
        return;
    }
    switch (d->step) {
    case 2: {
        int distinct = 0;
        for (int i = 0; i < USERS; i++)
            distinct += d->seen[i];
        printf("SCAN MATCH user:* -> %d distinct keys (%d returned)\n",
               distinct, d->elements);
        if (distinct != USERS) {
            fail(d, "SCAN missed a user key");
            return;
        }
        break;
    }
    case 3:
        if (d->elements != 3) {
            fail(d, "HSCAN did not return the 3 fields");
            return;
        }
        break;
    case 4:
        if (d->elements != 4) {
            fail(d, "ZSCAN did not return the 4 members");
            return;
        }
        break;
    default:
        break;
    }
    d->elements = 0;
    d->step++;
    next(d);
}

static void next(demo *d)
{
    aredis_client *c = d->client;
    switch (d->step) {
    case 0:
        d->pending = 1;
        aredis_command(c, on_setup, d, "FLUSHDB");
        break;
    case 1:
        /* Sent back to back: they travel pipelined. */
        d->pending = USERS + 30 + 2;
        for (int i = 0; i < USERS; i++)
            aredis_command(c, on_setup, d, "SET user:%d name-%d", i, i);
        for (int i = 0; i < 30; i++)
            aredis_command(c, on_setup, d, "SET session:%d x", i);
        aredis_command(c, on_setup, d,
                       "HSET profile:1 name Ada lang C since 1843");
        aredis_command(c, on_setup, d,
                       "ZADD scores 12.5 ada 7 bob -1 eve 100 max");
        break;
    case 2:
        aredis_scan(c, &(aredis_scan_opts){.match = "user:*", .count = 100},
                    NULL, on_user, on_walk_done, d);
        break;
    case 3:
        printf("HSCAN profile:1\n");
        aredis_scan(
            c,
            &(aredis_scan_opts){.kind = AREDIS_SCAN_HASH, .key = "profile:1"},
            on_hash_batch, on_pair, on_walk_done, d);
        break;
    case 4:
        printf("ZSCAN scores\n");
        aredis_scan(
            c, &(aredis_scan_opts){.kind = AREDIS_SCAN_ZSET, .key = "scores"},
            NULL, on_member, on_walk_done, d);
        break;
    default:
        aredis_client_free(c); /* lets aredis_loop_run() return */
    }
}

/* The blocking facade: an iterator that hands out one element at a time. */
static int blocking_walk(const char *url)
{
    aredis_status st;
    aredis_sync *s = aredis_sync_connect(&(aredis_options){.url = url}, &st);
    if (s == NULL) {
        fprintf(stderr, "%s: %s\n", url, st.msg);
        return 1;
    }
    aredis_sync_scan *it = aredis_sync_scan_new(
        s, &(aredis_scan_opts){.type = "hash", .count = 100}, &st);
    if (it == NULL) {
        fprintf(stderr, "%s\n", st.msg);
        aredis_sync_free(s);
        return 1;
    }
    printf("SCAN TYPE hash (blocking iterator):\n");
    aredis_scan_elem e;
    int r, n = 0;
    /* e's strings belong to the iterator until the next call. */
    while ((r = aredis_sync_scan_next(it, &e)) == 1) {
        printf("  %.*s\n", (int)e.len, e.str);
        n++;
    }
    if (r < 0)
        fprintf(stderr, "scan failed: %s\n", aredis_sync_scan_errmsg(it));
    aredis_sync_scan_free(it);
    aredis_sync_free(s);
    return r < 0 || n != 1;
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : getenv("REDIS_URL");
    if (url == NULL)
        url = "redis://127.0.0.1:6379/5";
    aredis_loop *loop = aredis_loop_new();
    if (loop == NULL)
        return 1;
    demo d = {0};
    aredis_status st;
    d.client = aredis_client_new(loop, &(aredis_options){.url = url}, &st);
    if (d.client == NULL) {
        fprintf(stderr, "%s: %s\n", url, st.msg);
        aredis_loop_free(loop);
        return 1;
    }
    next(&d);
    aredis_loop_run(loop);
    aredis_loop_free(loop);
    if (d.step < 5)
        d.failed = 1;
    if (!d.failed)
        d.failed = blocking_walk(url);
    printf("%s\n", d.failed ? "FAILED" : "all walks as expected");
    return d.failed;
}
