/* Stream helpers (extras layer): views over stream replies, and the
 * consumer-group helper aredis_stream_consumer.
 *
 * Built only on the public client API (aredis_commandv_opts(), the loop's
 * timers), so it works on every topology; it must not reach into the
 * client, connection or resp layers' internals. The only internal header
 * used is the allocator's, so the user's allocator hooks apply.
 *
 * Reply shapes (https://redis.io/docs/data-types/streams/): an entry is
 * [id, [field, value, ...]] in RESP2 and RESP3 alike; XREAD and XREADGROUP
 * answer an array of [stream, entries] in RESP2 and a map stream ->
 * entries in RESP3 (RESP3.md, "Map type"), nil when BLOCK timed out. */
#include "aredis/stream.h"

#include <stdio.h>
#include <string.h>

#include "aredis/error.h"
#include "util/alloc.h"
#include "util/msg.h"

/* ---- views ------------------------------------------------------------- */

static int is_text(const aredis_reply *r)
{
    return r->type == AREDIS_REPLY_STRING || r->type == AREDIS_REPLY_STATUS ||
           r->type == AREDIS_REPLY_VERB;
}

int aredis_stream_entry_parse(const aredis_reply *r, aredis_stream_entry *out)
{
    if (r == NULL || out == NULL)
        return AREDIS_EINVAL;
    memset(out, 0, sizeof *out);
    if (is_text(r)) { /* JUSTID */
        out->id = r->str;
        out->idlen = r->len;
        out->id_only = 1;
        return 0;
    }
    if (r->type != AREDIS_REPLY_ARRAY || r->len != 2 ||
        !is_text(&r->element[0]))
        return AREDIS_EPROTO;
    const aredis_reply *f = &r->element[1];
    out->id = r->element[0].str;
    out->idlen = r->element[0].len;
    if (f->type == AREDIS_REPLY_NIL) { /* deleted while pending */
        out->id_only = 1;
        return 0;
    }
    /* A MAP has the same flat layout; accept it for replies a user hook
     * has reshaped. */
    if ((f->type != AREDIS_REPLY_ARRAY && f->type != AREDIS_REPLY_MAP) ||
        f->len % 2 != 0)
        return AREDIS_EPROTO;
    out->nfields = f->len / 2;
    out->fields = f->len ? f->element : NULL;
    return 0;
}

int aredis_stream_entry_at(const aredis_reply *entries, size_t i,
                           aredis_stream_entry *out)
{
    if (entries == NULL || out == NULL || entries->type != AREDIS_REPLY_ARRAY ||
        i >= entries->len)
        return AREDIS_EINVAL;
    return aredis_stream_entry_parse(&entries->element[i], out);
}

const aredis_reply *aredis_stream_entry_field(const aredis_stream_entry *e,
                                              const char *name, size_t len)
{
    if (e == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < e->nfields; i++) {
        const aredis_reply *k = &e->fields[2 * i];
        if (is_text(k) && k->len == len && memcmp(k->str, name, len) == 0)
            return k + 1;
    }
    return NULL;
}

size_t aredis_stream_read_count(const aredis_reply *r)
{
    if (r == NULL)
        return 0;
    if (r->type == AREDIS_REPLY_MAP)
        return r->len / 2;
    if (r->type == AREDIS_REPLY_ARRAY)
        return r->len;
    return 0;
}

int aredis_stream_read_at(const aredis_reply *r, size_t i,
                          aredis_stream_read *out)
{
    if (out == NULL || i >= aredis_stream_read_count(r))
        return AREDIS_EINVAL;
    memset(out, 0, sizeof *out);
    const aredis_reply *name, *entries;
    if (r->type == AREDIS_REPLY_MAP) {
        name = &r->element[2 * i];
        entries = &r->element[2 * i + 1];
    } else {
        const aredis_reply *pair = &r->element[i];
        if (pair->type != AREDIS_REPLY_ARRAY || pair->len != 2)
            return AREDIS_EPROTO;
        name = &pair->element[0];
        entries = &pair->element[1];
    }
    if (!is_text(name) || entries->type != AREDIS_REPLY_ARRAY)
        return AREDIS_EPROTO;
    out->name = name->str;
    out->namelen = name->len;
    out->entries = entries;
    out->nentries = entries->len;
    return 0;
}

int aredis_stream_autoclaim_parse(const aredis_reply *r,
                                  aredis_stream_autoclaim *out)
{
    if (r == NULL || out == NULL)
        return AREDIS_EINVAL;
    memset(out, 0, sizeof *out);
    if (r->type != AREDIS_REPLY_ARRAY || r->len < 2 || r->len > 3 ||
        !is_text(&r->element[0]) || r->element[1].type != AREDIS_REPLY_ARRAY)
        return AREDIS_EPROTO;
    out->next_id = r->element[0].str;
    out->next_idlen = r->element[0].len;
    out->entries = &r->element[1];
    out->nentries = r->element[1].len;
    if (r->len == 3) { /* Redis 7.0 added the deleted ids */
        if (r->element[2].type != AREDIS_REPLY_ARRAY)
            return AREDIS_EPROTO;
        out->deleted = &r->element[2];
        out->ndeleted = r->element[2].len;
    }
    return 0;
}

int aredis_stream_pending_at(const aredis_reply *r, size_t i,
                             aredis_stream_pending *out)
{
    if (r == NULL || out == NULL || r->type != AREDIS_REPLY_ARRAY ||
        i >= r->len)
        return AREDIS_EINVAL;
    memset(out, 0, sizeof *out);
    const aredis_reply *p = &r->element[i];
    if (p->type != AREDIS_REPLY_ARRAY || p->len != 4 ||
        !is_text(&p->element[0]) || !is_text(&p->element[1]) ||
        p->element[2].type != AREDIS_REPLY_INTEGER ||
        p->element[3].type != AREDIS_REPLY_INTEGER)
        return AREDIS_EPROTO;
    out->id = p->element[0].str;
    out->idlen = p->element[0].len;
    out->consumer = p->element[1].str;
    out->consumerlen = p->element[1].len;
    out->idle_ms = p->element[2].integer;
    out->deliveries = p->element[3].integer;
    return 0;
}

/* Parse decimal digits into a uint64_t. \return the digits used, 0 on an
 * empty run or overflow. */
static size_t parse_u64(const char *s, size_t len, uint64_t *v)
{
    uint64_t x = 0;
    size_t i = 0;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return 0;
        x = x * 10 + d;
    }
    *v = x;
    return i;
}

int aredis_stream_id_parse(const char *id, size_t len, uint64_t *ms,
                           uint64_t *seq)
{
    uint64_t a = 0, b = 0;
    if (id == NULL)
        return AREDIS_EINVAL;
    size_t n = parse_u64(id, len, &a);
    if (n == 0)
        return AREDIS_EINVAL;
    if (n < len) {
        if (id[n] != '-')
            return AREDIS_EINVAL;
        size_t m = parse_u64(id + n + 1, len - n - 1, &b);
        if (m == 0 || n + 1 + m != len)
            return AREDIS_EINVAL;
    }
    if (ms != NULL)
        *ms = a;
    if (seq != NULL)
        *seq = b;
    return 0;
}

/* ---- consumer-group helper ------------------------------------------------
 */

/* Slack on top of BLOCK for the read's deadline: it only has to catch a
 * server that stopped answering, never a read that is merely waiting. */
#define READ_DEADLINE_SLACK_MS 10000

enum { ST_IDLE, ST_RUNNING, ST_STOPPING };

struct aredis_stream_consumer {
    aredis_client *c;
    aredis_loop *loop;
    char *stream, *group, *consumer, *create_id; /* one allocation: strs */
    char count[24], block[24], min_idle[24], claim_count[24];
    long long block_ms, claim_interval_ms, retry_ms;
    int claiming_enabled, create_group;
    aredis_stream_entry_cb on_entry;
    aredis_stream_error_cb on_error;
    void *ud;

    int state;
    int dead;          /* the client is gone: send nothing more */
    int freed;         /* aredis_stream_consumer_free() was called */
    int depth;         /* user callbacks on the stack */
    unsigned inflight; /* our commands not completed */
    int reading, claiming, creating; /* one of each at most */
    int need_create;                 /* create the group before reading */
    int kick_armed;                  /* kick timer started */
    char cursor[64];                 /* XAUTOCLAIM cursor */
    aredis_timer *kick_timer, *claim_timer, *stop_timer;
    aredis_stream_stopped_cb stop_cb;
    void *stop_ud;
    aredis_stream_consumer_stats stats;
    char strs[];
};

static void local_error(aredis_reply *r, int code, const char *msg)
{
    memset(r, 0, sizeof *r);
    r->type = AREDIS_REPLY_ERROR;
    r->code = code;
    r->str = msg;
    r->len = strlen(msg);
}

static void release(aredis_stream_consumer *sc)
{
    aredis_timer_free(sc->kick_timer);
    aredis_timer_free(sc->claim_timer);
    aredis_timer_free(sc->stop_timer);
    aredis__free(sc);
}

static void report(aredis_stream_consumer *sc, const aredis_reply *err)
{
    sc->stats.errors++;
    if (sc->on_error == NULL || sc->freed)
        return;
    sc->depth++;
    sc->on_error(sc, err, sc->ud);
    sc->depth--;
}

static void report_code(aredis_stream_consumer *sc, int code, const char *msg)
{
    aredis_reply r;
    local_error(&r, code, msg);
    report(sc, &r);
}

/* A cancellation normally means the client is being freed; ask it, while
 * it still exists (it does during the cancelled command's callback). A
 * refused PING is the answer: nothing may be sent on it after this. */
static int client_gone(aredis_stream_consumer *sc, const aredis_reply *r)
{
    if (!sc->dead && r->type == AREDIS_REPLY_ERROR &&
        (r->code == AREDIS_ECANCELED || r->code == AREDIS_ESTATE) &&
        aredis_command(sc->c, NULL, NULL, "PING") == AREDIS_ESTATE)
        sc->dead = 1;
    return sc->dead;
}

static void complete_stop(aredis_stream_consumer *sc)
{
    aredis_stream_stopped_cb cb = sc->stop_cb;
    void *ud = sc->stop_ud;
    sc->stop_cb = NULL;
    sc->state = ST_IDLE;
    aredis_timer_stop(sc->stop_timer);
    if (cb != NULL) {
        sc->depth++;
        cb(sc, ud);
        sc->depth--;
    }
}

/* Called at the end of every entry point from the loop: releases a freed
 * consumer, and completes a stop, once nothing is in flight. */
static void settle(aredis_stream_consumer *sc)
{
    if (sc->depth > 0 || sc->inflight > 0)
        return;
    if (!sc->freed && sc->state == ST_STOPPING)
        complete_stop(sc);
    if (sc->freed && sc->depth == 0 && sc->inflight == 0)
        release(sc);
}

/* Submit one of our commands. \return 0 or a negative aredis_err (the
 * client being freed marks the consumer dead). */
static int submit(aredis_stream_consumer *sc, aredis_reply_cb cb,
                  int64_t timeout_ms, int argc, const char *const *argv,
                  const size_t *lens)
{
    if (sc->dead)
        return AREDIS_ESTATE;
    aredis_cmd_opts o = {.timeout_ms = timeout_ms};
    int e = aredis_commandv_opts(sc->c, &o, cb, sc, argc, argv, lens);
    if (e == 0)
        sc->inflight++;
    else if (e == AREDIS_ESTATE)
        sc->dead = 1;
    return e;
}

static void arm_kick(aredis_stream_consumer *sc, long long ms)
{
    if (sc->kick_armed || sc->dead)
        return;
    if (aredis_timer_start(sc->kick_timer, ms) == 0)
        sc->kick_armed = 1;
}

static void arm_claim(aredis_stream_consumer *sc, long long ms)
{
    if (sc->claiming_enabled && sc->state == ST_RUNNING && !sc->dead &&
        !sc->freed)
        aredis_timer_start(sc->claim_timer, ms);
}

static void on_read(aredis_client *c, const aredis_reply *r, void *ud);
static void on_create(aredis_client *c, const aredis_reply *r, void *ud);
static void on_claim(aredis_client *c, const aredis_reply *r, void *ud);
static void on_ack(aredis_client *c, const aredis_reply *r, void *ud);

static void send_failed(aredis_stream_consumer *sc, int e)
{
    report_code(sc, e, aredis_strerror(e));
    if (!sc->dead)
        arm_kick(sc, sc->retry_ms);
}

/* Send what the consumer needs next: the group, then a read. */
static void kick(aredis_stream_consumer *sc)
{
    if (sc->state != ST_RUNNING || sc->dead || sc->freed || sc->kick_armed)
        return;
    if (sc->need_create) {
        if (sc->creating)
            return;
        const char *argv[] = {"XGROUP",  "CREATE",      sc->stream,
                              sc->group, sc->create_id, "MKSTREAM"};
        int e = submit(sc, on_create, 0, 6, argv, NULL);
        if (e != 0)
            send_failed(sc, e);
        else
            sc->creating = 1;
        return;
    }
    if (sc->reading)
        return;
    const char *argv[] = {"XREADGROUP", "GROUP",    sc->group, sc->consumer,
                          "COUNT",      sc->count,  "BLOCK",   sc->block,
                          "STREAMS",    sc->stream, ">"};
    int e = submit(sc, on_read, sc->block_ms + READ_DEADLINE_SLACK_MS, 11, argv,
                   NULL);
    if (e != 0)
        send_failed(sc, e);
    else
        sc->reading = 1;
}

static void send_claim(aredis_stream_consumer *sc)
{
    const char *argv[] = {"XAUTOCLAIM", sc->stream, sc->group, sc->consumer,
                          sc->min_idle, sc->cursor, "COUNT",   sc->claim_count};
    int e = submit(sc, on_claim, 0, 8, argv, NULL);
    if (e != 0) {
        report_code(sc, e, aredis_strerror(e));
        arm_claim(sc, sc->claim_interval_ms);
    } else {
        sc->claiming = 1;
    }
}

/* Hand a list of entries to on_entry and acknowledge the accepted ones in
 * one XACK. Ids point into the borrowed reply, which outlives the submit
 * (the command is encoded at once). */
static void deliver(aredis_stream_consumer *sc, const aredis_reply *entries,
                    unsigned flags)
{
    size_t n = entries->len;
    if (n == 0)
        return;
    const char **argv = aredis__calloc(n + 3, sizeof *argv);
    size_t *lens = aredis__calloc(n + 3, sizeof *lens);
    if (argv == NULL || lens == NULL)
        /* Entries are delivered anyway; unacknowledged, they come back
         * through a claim. */
        report_code(sc, AREDIS_ENOMEM, "out of memory: entries not acked");
    int argc = 3;
    for (size_t i = 0; i < n && !sc->freed; i++) {
        aredis_stream_entry e;
        if (aredis_stream_entry_at(entries, i, &e) != 0) {
            report_code(sc, AREDIS_EPROTO, "malformed stream entry");
            continue;
        }
        int verdict = AREDIS_STREAM_ACCEPT;
        if (!e.id_only) {
            sc->stats.delivered++;
            if (flags & AREDIS_STREAM_CLAIMED)
                sc->stats.claimed++;
            sc->depth++;
            verdict = sc->on_entry(sc, &e, flags, sc->ud);
            sc->depth--;
            if (verdict == AREDIS_STREAM_ACCEPT)
                sc->stats.accepted++;
        }
        /* An entry deleted while pending (nil fields) is acknowledged
         * without a callback: that only clears its pending slot. */
        if (verdict == AREDIS_STREAM_ACCEPT && argv != NULL && lens != NULL) {
            argv[argc] = e.id;
            lens[argc++] = e.idlen;
        }
    }
    if (argc > 3) {
        argv[0] = "XACK";
        lens[0] = 4;
        argv[1] = sc->stream;
        lens[1] = strlen(sc->stream);
        argv[2] = sc->group;
        lens[2] = strlen(sc->group);
        int e = submit(sc, on_ack, 0, argc, argv, lens);
        if (e != 0)
            report_code(sc, e, "XACK not sent: entries stay pending");
    }
    aredis__free(argv);
    aredis__free(lens);
}

static int is_server_error(const aredis_reply *r, const char *prefix)
{
    size_t n = strlen(prefix);
    return r->type == AREDIS_REPLY_ERROR && r->code == AREDIS_ESERVER &&
           r->len >= n && memcmp(r->str, prefix, n) == 0;
}

static void on_read(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    aredis_stream_consumer *sc = ud;
    sc->inflight--;
    sc->reading = 0;
    if (sc->freed) {
        settle(sc);
        return;
    }
    if (r->type == AREDIS_REPLY_ERROR) {
        int gone = client_gone(sc, r);
        report(sc, r);
        if (!gone && sc->create_group && is_server_error(r, "NOGROUP")) {
            sc->need_create = 1; /* the stream or group was deleted */
            kick(sc);
        } else if (!gone) {
            arm_kick(sc, sc->retry_ms);
        }
        settle(sc);
        return;
    }
    size_t ns = aredis_stream_read_count(r);
    for (size_t i = 0; i < ns && !sc->freed; i++) {
        aredis_stream_read sr;
        if (aredis_stream_read_at(r, i, &sr) != 0)
            report_code(sc, AREDIS_EPROTO, "malformed XREADGROUP reply");
        else
            deliver(sc, sr.entries, 0);
    }
    kick(sc);
    settle(sc);
}

static void on_create(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    aredis_stream_consumer *sc = ud;
    sc->inflight--;
    sc->creating = 0;
    if (!sc->freed) {
        if (r->type != AREDIS_REPLY_ERROR || is_server_error(r, "BUSYGROUP")) {
            sc->need_create = 0;
            kick(sc);
        } else {
            int gone = client_gone(sc, r);
            report(sc, r);
            if (!gone)
                arm_kick(sc, sc->retry_ms);
        }
    }
    settle(sc);
}

static void on_claim(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    aredis_stream_consumer *sc = ud;
    sc->inflight--;
    sc->claiming = 0;
    if (sc->freed) {
        settle(sc);
        return;
    }
    aredis_stream_autoclaim ac;
    if (r->type == AREDIS_REPLY_ERROR) {
        int gone = client_gone(sc, r);
        report(sc, r);
        if (!gone && sc->create_group && is_server_error(r, "NOGROUP")) {
            sc->need_create = 1;
            kick(sc);
        }
        memcpy(sc->cursor, "0-0", 4);
        arm_claim(sc, sc->claim_interval_ms);
    } else if (aredis_stream_autoclaim_parse(r, &ac) != 0 ||
               ac.next_idlen >= sizeof sc->cursor) {
        report_code(sc, AREDIS_EPROTO, "malformed XAUTOCLAIM reply");
        memcpy(sc->cursor, "0-0", 4);
        arm_claim(sc, sc->claim_interval_ms);
    } else {
        deliver(sc, ac.entries, AREDIS_STREAM_CLAIMED);
        memcpy(sc->cursor, ac.next_id, ac.next_idlen);
        sc->cursor[ac.next_idlen] = '\0';
        /* A cursor other than 0-0 means the pending list has more to
         * look at: go on now rather than after a whole interval. */
        int more = strcmp(sc->cursor, "0-0") != 0;
        if (more && sc->state == ST_RUNNING && !sc->freed && !sc->dead)
            send_claim(sc);
        else
            arm_claim(sc, sc->claim_interval_ms);
    }
    settle(sc);
}

static void on_ack(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    aredis_stream_consumer *sc = ud;
    sc->inflight--;
    if (!sc->freed) {
        if (r->type == AREDIS_REPLY_INTEGER && r->integer > 0)
            sc->stats.acked += (unsigned long long)r->integer;
        else if (r->type == AREDIS_REPLY_ERROR) {
            client_gone(sc, r);
            report(sc, r);
        }
    }
    settle(sc);
}

static void on_kick_timer(void *arg)
{
    aredis_stream_consumer *sc = arg;
    sc->kick_armed = 0;
    kick(sc);
    settle(sc);
}

static void on_claim_timer(void *arg)
{
    aredis_stream_consumer *sc = arg;
    if (sc->state == ST_RUNNING && !sc->dead && !sc->claiming) {
        if (sc->need_create)
            arm_claim(sc, sc->claim_interval_ms);
        else
            send_claim(sc);
    }
    settle(sc);
}

static void on_stop_timer(void *arg)
{
    settle(arg);
}

static void bad(aredis_status *st, int code, const char *msg)
{
    if (st != NULL) {
        st->code = code;
        aredis__msgf(st->msg, sizeof st->msg, "%s", msg);
    }
}

aredis_stream_consumer *aredis_stream_consumer_new(
    aredis_client *c, aredis_loop *loop, const aredis_stream_consumer_opts *o,
    aredis_status *st)
{
    if (c == NULL || loop == NULL || o == NULL || o->stream == NULL ||
        o->group == NULL || o->consumer == NULL || o->on_entry == NULL) {
        bad(st, AREDIS_EINVAL,
            "stream consumer: client, loop, stream, group, consumer and "
            "on_entry are required");
        return NULL;
    }
    if (o->count < 0 || o->block_ms < 0 || o->claim_min_idle_ms < 0 ||
        o->claim_interval_ms < 0 || o->claim_count < 0 || o->retry_ms < 0) {
        bad(st, AREDIS_EINVAL, "stream consumer: negative count or time");
        return NULL;
    }
    const char *create_id = o->create_id != NULL ? o->create_id : "$";
    size_t ls = strlen(o->stream) + 1, lg = strlen(o->group) + 1,
           lc = strlen(o->consumer) + 1, li = strlen(create_id) + 1;
    aredis_stream_consumer *sc =
        aredis__calloc(1, sizeof *sc + ls + lg + lc + li);
    if (sc == NULL)
        goto oom;
    sc->c = c;
    sc->loop = loop;
    sc->stream = memcpy(sc->strs, o->stream, ls);
    sc->group = memcpy(sc->stream + ls, o->group, lg);
    sc->consumer = memcpy(sc->group + lg, o->consumer, lc);
    sc->create_id = memcpy(sc->consumer + lc, create_id, li);
    snprintf(sc->count, sizeof sc->count, "%lld", o->count ? o->count : 10);
    sc->block_ms = o->block_ms ? o->block_ms : 2000;
    snprintf(sc->block, sizeof sc->block, "%lld", sc->block_ms);
    sc->claiming_enabled = o->claim_min_idle_ms > 0;
    snprintf(sc->min_idle, sizeof sc->min_idle, "%lld", o->claim_min_idle_ms);
    sc->claim_interval_ms =
        o->claim_interval_ms ? o->claim_interval_ms : o->claim_min_idle_ms;
    snprintf(sc->claim_count, sizeof sc->claim_count, "%lld",
             o->claim_count ? o->claim_count : 100);
    sc->retry_ms = o->retry_ms ? o->retry_ms : 500;
    sc->create_group = o->create_group;
    sc->on_entry = o->on_entry;
    sc->on_error = o->on_error;
    sc->ud = o->ud;
    memcpy(sc->cursor, "0-0", 4);
    sc->kick_timer = aredis_timer_new(loop, on_kick_timer, sc);
    sc->claim_timer = aredis_timer_new(loop, on_claim_timer, sc);
    sc->stop_timer = aredis_timer_new(loop, on_stop_timer, sc);
    if (sc->kick_timer == NULL || sc->claim_timer == NULL ||
        sc->stop_timer == NULL) {
        release(sc);
        goto oom;
    }
    bad(st, 0, "");
    return sc;
oom:
    bad(st, AREDIS_ENOMEM, "out of memory");
    return NULL;
}

int aredis_stream_consumer_start(aredis_stream_consumer *sc)
{
    if (sc == NULL)
        return AREDIS_EINVAL;
    if (sc->state != ST_IDLE || sc->dead || sc->freed)
        return AREDIS_ESTATE;
    /* Everything starts from the loop, so that no callback (on_error for a
     * refused submit) runs inside this call. */
    if (aredis_timer_start(sc->kick_timer, 0) != 0)
        return AREDIS_ENOMEM;
    sc->kick_armed = 1;
    sc->state = ST_RUNNING;
    sc->need_create = sc->create_group;
    memcpy(sc->cursor, "0-0", 4);
    arm_claim(sc, 0);
    return 0;
}

int aredis_stream_consumer_stop(aredis_stream_consumer *sc,
                                aredis_stream_stopped_cb cb, void *ud)
{
    if (sc == NULL)
        return AREDIS_EINVAL;
    if (sc->state != ST_RUNNING || sc->freed)
        return AREDIS_ESTATE;
    if (sc->inflight == 0 && aredis_timer_start(sc->stop_timer, 0) != 0)
        return AREDIS_ENOMEM;
    sc->state = ST_STOPPING;
    sc->stop_cb = cb;
    sc->stop_ud = ud;
    aredis_timer_stop(sc->kick_timer);
    sc->kick_armed = 0;
    aredis_timer_stop(sc->claim_timer);
    return 0;
}

aredis_client *aredis_stream_consumer_client(const aredis_stream_consumer *sc)
{
    return sc != NULL ? sc->c : NULL;
}

void aredis_stream_consumer_stats_get(const aredis_stream_consumer *sc,
                                      aredis_stream_consumer_stats *out)
{
    if (out == NULL)
        return;
    if (sc == NULL)
        memset(out, 0, sizeof *out);
    else
        *out = sc->stats;
}

void aredis_stream_consumer_free(aredis_stream_consumer *sc)
{
    if (sc == NULL || sc->freed)
        return;
    sc->freed = 1;
    sc->stop_cb = NULL;
    aredis_timer_stop(sc->kick_timer);
    sc->kick_armed = 0;
    aredis_timer_stop(sc->claim_timer);
    aredis_timer_stop(sc->stop_timer);
    if (sc->depth == 0 && sc->inflight == 0)
        release(sc);
}
