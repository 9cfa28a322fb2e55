/* Streams: the Python aredis stream examples, in C.
 *
 *   1. append entries to a stream, capped at 10 (XADD ... MAXLEN 10 *);
 *   2. read them back with XRANGE and XREVRANGE, ranges and COUNT;
 *   3. a consumer group: 20 entries with ids 1..20, a group created at 0,
 *      XREADGROUP COUNT 5 for consumer1, XACK;
 *   4. XREAD BLOCK waiting for an entry that another command adds (it
 *      waits on a connection of its own; the other command is not held up);
 *   5. the consumer helper: consumer2 processes the rest of the group's
 *      entries, acknowledging each, then stops.
 *
 * Run it with a server URL; it deletes and reuses the keys example_stream
 * and test_stream:
 *
 *     ./streams redis://127.0.0.1:6379/3
 *
 * (REDIS_URL is used when no argument is given.) It exits non-zero if a
 * reply is not what the step expects. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aredis/aredis.h>

typedef struct demo {
    aredis_loop *loop;
    aredis_client *client;
    aredis_stream_consumer *consumer;
    int step;
    int pending; /* replies still expected for the current step */
    int failed;
    int processed;
    char last_id[64]; /* the newest entry of example_stream */
} demo;

static void next(demo *d);

static void fail(demo *d, const char *what)
{
    if (d->failed)
        return;
    fprintf(stderr, "unexpected at step %d: %s\n", d->step, what);
    d->failed = 1;
    aredis_stream_consumer_free(d->consumer);
    d->consumer = NULL;
    aredis_client_free(d->client); /* ends the loop */
}

static void advance(demo *d)
{
    d->step++;
    next(d);
}

static void print_entries(const char *title, const aredis_reply *entries)
{
    printf("%s\n", title);
    for (size_t i = 0; i < entries->len; i++) {
        aredis_stream_entry e;
        if (aredis_stream_entry_at(entries, i, &e) != 0)
            continue;
        printf("  %.*s", (int)e.idlen, e.id);
        for (size_t f = 0; f < e.nfields; f++)
            printf(" %.*s=%.*s", (int)e.fields[2 * f].len, e.fields[2 * f].str,
                   (int)e.fields[2 * f + 1].len, e.fields[2 * f + 1].str);
        printf("\n");
    }
}

/* Replies whose only job is to succeed; the step's last one moves on. */
static void on_ok(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    demo *d = ud;
    if (r->type == AREDIS_REPLY_ERROR) {
        fail(d, r->str);
        return;
    }
    if (--d->pending == 0)
        advance(d);
}

static void on_xlen(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    demo *d = ud;
    printf("XLEN example_stream -> %lld (12 added, MAXLEN 10)\n", r->integer);
    if (r->type != AREDIS_REPLY_INTEGER || r->integer != 10) {
        fail(d, "the stream was not capped at 10");
        return;
    }
    advance(d);
}

static void on_range(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    demo *d = ud;
    if (r->type != AREDIS_REPLY_ARRAY || r->len != 3) {
        fail(d, "XRANGE/XREVRANGE did not return 3 entries");
        return;
    }
    print_entries(d->step == 3 ? "XRANGE example_stream - + COUNT 3"
                               : "XREVRANGE example_stream + - COUNT 3",
                  r);
    /* XREVRANGE lists the newest entry first: remember its id. */
    aredis_stream_entry newest = {0};
    if (d->step == 4 && aredis_stream_entry_at(r, 0, &newest) == 0)
        snprintf(d->last_id, sizeof d->last_id, "%.*s", (int)newest.idlen,
                 newest.id);
    advance(d);
}

static void on_group_read(aredis_client *c, const aredis_reply *r, void *ud)
{
    demo *d = ud;
    /* XREADGROUP answers stream -> entries: a map on RESP3, an array of
     * pairs on RESP2; the view reads both. */
    aredis_stream_read sr;
    if (aredis_stream_read_count(r) != 1 ||
        aredis_stream_read_at(r, 0, &sr) != 0 || sr.nentries != 5) {
        fail(d, "XREADGROUP did not return 5 entries");
        return;
    }
    print_entries("XREADGROUP GROUP test_group consumer1 COUNT 5", sr.entries);
    /* Acknowledge what was processed: ids taken from the borrowed reply
     * are copied by the submit. */
    const char *argv[3 + 5] = {"XACK", "test_stream", "test_group"};
    for (size_t i = 0; i < sr.nentries; i++) {
        aredis_stream_entry e;
        aredis_stream_entry_at(sr.entries, i, &e);
        argv[3 + i] = e.id; /* NUL-terminated like every reply string */
    }
    d->pending = 1;
    aredis_commandv(c, on_ok, d, 8, argv, NULL);
}

static void on_blocked_read(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    demo *d = ud;
    aredis_stream_read sr;
    aredis_stream_entry e;
    if (aredis_stream_read_at(r, 0, &sr) != 0 ||
        aredis_stream_entry_at(sr.entries, 0, &e) != 0) {
        fail(d, "XREAD BLOCK did not return the new entry");
        return;
    }
    const aredis_reply *who = aredis_stream_entry_field(&e, "user", 4);
    printf("XREAD BLOCK woke up: %.*s user=%s\n", (int)e.idlen, e.id,
           who ? who->str : "?");
    if (--d->pending == 0)
        advance(d);
}

static void on_ping(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    demo *d = ud;
    /* Answered on the shared connection whatever XREAD is doing on its
     * own one. */
    printf("PING next to XREAD BLOCK -> %s\n", r->str);
    if (--d->pending == 0)
        advance(d);
}

static void on_stopped(aredis_stream_consumer *sc, void *ud)
{
    (void)sc;
    advance(ud);
}

static int on_entry(aredis_stream_consumer *sc, const aredis_stream_entry *e,
                    unsigned flags, void *ud)
{
    (void)flags;
    demo *d = ud;
    printf("  consumer2 processed %.*s\n", (int)e->idlen, e->id);
    /* Stop once the 15 are done; on_stopped runs when the stop has
     * completed (this entry is still acknowledged first). */
    if (++d->processed == 15)
        aredis_stream_consumer_stop(sc, on_stopped, d);
    return AREDIS_STREAM_ACCEPT; /* XACK it */
}

static void on_consumer_error(aredis_stream_consumer *sc,
                              const aredis_reply *err, void *ud)
{
    (void)sc;
    fail(ud, err->str);
}

static void on_pending(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    demo *d = ud;
    long long left = r->type == AREDIS_REPLY_ARRAY ? r->element[0].integer : -1;
    printf("XPENDING test_stream test_group -> %lld pending\n", left);
    if (left != 0) {
        fail(d, "entries left unacknowledged");
        return;
    }
    advance(d);
}

static void next(demo *d)
{
    aredis_client *c = d->client;
    switch (d->step) {
    case 0:
        d->pending = 1;
        aredis_command(c, on_ok, d, "DEL example_stream test_stream");
        break;
    case 1:
        /* 1. entry = {event: N, user: usr1}; at most 10 kept. '*' lets the
         * server choose the id. */
        d->pending = 12;
        for (int i = 1; i <= 12; i++)
            aredis_command(c, on_ok, d,
                           "XADD example_stream MAXLEN 10 * event %d user usr1",
                           i);
        break;
    case 2:
        aredis_command(c, on_xlen, d, "XLEN example_stream");
        break;
    case 3:
        /* 2. the oldest three, then the newest three. */
        aredis_command(c, on_range, d, "XRANGE example_stream - + COUNT 3");
        break;
    case 4:
        aredis_command(c, on_range, d, "XREVRANGE example_stream + - COUNT 3");
        break;
    case 5:
        /* 3. progressive ids given by us: 1-0 ... 20-0. */
        d->pending = 21;
        for (int i = 1; i <= 20; i++)
            aredis_command(c, on_ok, d, "XADD test_stream %d-0 k1 v1 k2 1", i);
        /* From the beginning ('0'); '$' would mean new entries only. */
        aredis_command(c, on_ok, d, "XGROUP CREATE test_stream test_group 0");
        break;
    case 6:
        aredis_command(c, on_group_read, d,
                       "XREADGROUP GROUP test_group consumer1 COUNT 5 "
                       "STREAMS test_stream >");
        break;
    case 7:
        /* 4. XREAD BLOCK goes to an exclusive connection by itself. It
         * reads after the newest id seen rather than '$', so the XADD may
         * reach the server first (the exclusive connection is still being
         * opened) without being missed. */
        d->pending = 3;
        aredis_command(c, on_blocked_read, d,
                       "XREAD BLOCK 5000 STREAMS example_stream %s",
                       d->last_id);
        aredis_command(c, on_ping, d, "PING");
        aredis_command(c, on_ok, d,
                       "XADD example_stream MAXLEN 10 * event new user usr2");
        break;
    case 8: {
        /* 5. the consumer helper takes the 15 entries consumer1 left. */
        aredis_status st;
        d->consumer = aredis_stream_consumer_new(
            c, d->loop,
            &(aredis_stream_consumer_opts){.stream = "test_stream",
                                           .group = "test_group",
                                           .consumer = "consumer2",
                                           .count = 5,
                                           .block_ms = 1000,
                                           .on_entry = on_entry,
                                           .on_error = on_consumer_error,
                                           .ud = d},
            &st);
        if (d->consumer == NULL) {
            fail(d, st.msg);
            return;
        }
        printf("consumer helper:\n");
        if (aredis_stream_consumer_start(d->consumer) != 0)
            fail(d, "the consumer did not start");
        break;
    }
    case 9:
        aredis_command(c, on_pending, d, "XPENDING test_stream test_group");
        break;
    default:
        aredis_stream_consumer_free(d->consumer);
        d->consumer = NULL;
        aredis_client_free(c); /* lets aredis_loop_run() return */
    }
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : getenv("REDIS_URL");
    if (url == NULL)
        url = "redis://127.0.0.1:6379/3";
    demo d = {0};
    d.loop = aredis_loop_new();
    if (d.loop == NULL)
        return 1;
    aredis_status st;
    d.client = aredis_client_new(d.loop, &(aredis_options){.url = url}, &st);
    if (d.client == NULL) {
        fprintf(stderr, "%s: %s\n", url, st.msg);
        aredis_loop_free(d.loop);
        return 1;
    }
    next(&d);
    aredis_loop_run(d.loop);
    aredis_loop_free(d.loop);
    if (d.step < 10)
        d.failed = 1;
    printf("%s\n", d.failed ? "FAILED" : "all steps as expected");
    return d.failed;
}
