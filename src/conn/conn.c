/* The connection state machine (connection layer), sans I/O.
 *
 * One server connection from "connect requested" to "ready" and back after
 * a loss: attempts and backoff, the handshake, the pairing of replies with
 * commands in order (keeping the CLIENT REPLY state so it never goes out of
 * step), RESP3 pushes routed aside, and the salvage policy. It makes no
 * system call, reads no clock and runs no user code: every effect is an
 * action the driver polls (conn.h). */
#include "conn/conn.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "aredis/error.h"
#include "resp/resp.h"
#include "util/alloc.h"
#include "util/inline.h"
#include "util/msg.h"

/* Written bytes are dropped from the front of the buffer lazily, once they
 * are this many, to keep memmove off the common path. With keep_inflight,
 * the bytes of commands awaiting replies stay behind the written ones:
 * those in front go once they are at least COMPACT_MIN and at least as
 * many as the ones kept, so each byte is moved at most once on average. */
#define COMPACT_AT ((size_t)64 * 1024)
#define COMPACT_MIN ((size_t)4096)

enum { HS_HELLO, HS_AUTH, HS_SETNAME, HS_SELECT, HS_EXTRA, HS_DONE };

static const char stray_msg[] = "reply received with no command awaiting one";
static const char lent_lost[] = "the exclusive connection was lost: release "
                                "it and acquire another";

static void lost(aredis__conn *cn, int code, const char *msg, int64_t now);

/* A deadline `d` ms after now; never 0, which means "none". */
static int64_t at(int64_t now, int64_t d)
{
    return now + d != 0 ? now + d : 1;
}

/* ------------------------------------------------------------------------
 * Life cycle
 * ------------------------------------------------------------------------ */

/* Any state but ready: the connection sheds what it holds (see
 * aredis__conn_sheds) until it is ready and has done so once. */
static void set_state(aredis__conn *cn, uint8_t state)
{
    cn->state = state;
    cn->unsettled = 1;
}

int aredis__conn_init(aredis__conn *cn, const aredis__conn_config *cfg)
{
    memset(cn, 0, sizeof *cn);
    cn->cfg = cfg;
    cn->unsettled = 1;
    aredis_buf_init(&cn->out);
    aredis_buf_init(&cn->pend_out);
    /* The reader comes with the first bytes (aredis__conn_in_buf). */
    return 0;
}

static void free_internal(aredis__conn_cmd *cmd)
{
    aredis__free(cmd->copy);
    aredis__free(cmd);
}

void aredis__conn_cleanup(aredis__conn *cn)
{
    aredis__conn_cmd *all = aredis__conn_take_all(cn);
    /* The owner takes its commands first; none may be left here. */
    assert(all == NULL);
    (void)all;
    aredis_buf_cleanup(&cn->out);
    aredis_buf_cleanup(&cn->pend_out);
    aredis_reader_free(cn->rd);
    cn->rd = NULL;
    aredis__free(cn->msgs);
    cn->msgs = NULL;
}

/* ------------------------------------------------------------------------
 * Queues of actions
 * ------------------------------------------------------------------------ */

static void push_action(aredis__conn *cn, aredis__conn_qa qa)
{
    /* Each transition queues at most three and the driver drains after
     * every event it feeds, so the queue never fills (debug builds and
     * the fuzzer check it). */
    assert(cn->qlen < AREDIS__CONN_QMAX);
    if (cn->qlen == AREDIS__CONN_QMAX)
        return;
    cn->q[(cn->qhead + cn->qlen) % AREDIS__CONN_QMAX] = qa;
    cn->qlen++;
}

static void act(aredis__conn *cn, int kind, size_t index)
{
    /* Address indexes are small: a resolution gives a handful. */
    push_action(
        cn, (aredis__conn_qa){.kind = (uint8_t)kind, .index = (uint32_t)index});
}

static void event(aredis__conn *cn, int ev, int code, int64_t delay,
                  int attempt)
{
    push_action(cn, (aredis__conn_qa){.kind = AREDIS__ACT_EVENT,
                                      .event = (uint8_t)ev,
                                      .code = (int16_t)code,
                                      .delay_ms = delay > INT32_MAX
                                                      ? INT32_MAX
                                                      : (int32_t)delay,
                                      .attempt = attempt});
}

/* Complete cmd through the done list; msg is static or in cmd->copy. */
static void done(aredis__conn *cn, aredis__conn_cmd *cmd, int code,
                 const char *msg)
{
    cmd->flags &= (uint8_t)~AREDIS__CC_PENDING;
    cmd->code = (int16_t)code; /* error codes are small (error.h) */
    cmd->msg = msg;
    cmd->next = NULL;
    if (cn->done_tail)
        cn->done_tail->next = cmd;
    else
        cn->done_head = cmd;
    cn->done_tail = cmd;
}

/* The same with a message that need not outlive the call: it is copied
 * into the command (whose bytes are not needed any more). */
static void fail(aredis__conn *cn, aredis__conn_cmd *cmd, int code,
                 const char *msg)
{
    aredis__free(cmd->copy);
    cmd->copy = aredis__strndup(msg, strlen(msg));
    done(cn, cmd, code, cmd->copy != NULL ? cmd->copy : aredis_strerror(code));
}

/* ------------------------------------------------------------------------
 * Pending commands (waiting for the connection to be ready)
 * ------------------------------------------------------------------------ */

static int pend_push(aredis__conn *cn, aredis__conn_cmd *cmd, const char *bytes)
{
    cmd->off = cn->pend_out.len;
    if (aredis__buf_append(&cn->pend_out, bytes, cmd->len) != 0)
        return AREDIS_ENOMEM;
    cmd->next = NULL;
    cmd->flags |= AREDIS__CC_PENDING;
    if (cn->pend_tail)
        cn->pend_tail->next = cmd;
    else
        cn->pend_head = cmd;
    cn->pend_tail = cmd;
    cn->npend++;
    return 0;
}

static const char glued_msg[] =
    "not sent: the command it was sent with was cancelled";

/* Complete the GLUED commands from first up to stop (the run in front of
 * a command taken out: aredis__conn_cancel), which left their queue. */
static void drop_glued(aredis__conn *cn, aredis__conn_cmd *first,
                       const aredis__conn_cmd *stop)
{
    while (first != stop) {
        aredis__conn_cmd *next = first->next;
        done(cn, first, AREDIS_ECANCELED, glued_msg);
        first = next;
    }
}

/* The CLIENT REPLY state (see the command's documentation) as a command
 * of reply kind `kind` goes out in state *off, *skip: 1 when the server
 * sends it no reply. OFF and SKIP get none themselves; OFF silences
 * everything after it until ON, whose +OK does arrive; SKIP silences the
 * one command that follows. */
static inline int reply_silent(uint8_t kind, uint8_t *off, uint8_t *skip)
{
    switch (kind) {
    case AREDIS__REPLY_ON:
        *off = 0;
        *skip = 0;
        return 0;
    case AREDIS__REPLY_OFF:
        *off = 1;
        return 1;
    case AREDIS__REPLY_SKIP:
        if (!*off)
            *skip = 1;
        return 1;
    case AREDIS__REPLY_PUSHED:
        /* SUBSCRIBE and friends: confirmed by push frames (RESP3) or by
         * messages on a connection in subscribed mode (RESP2). */
        return 1;
    default: {
        int silent = *off || *skip;
        *skip = 0;
        return silent;
    }
    }
}

/* Whether a deadline may take cmd out unwritten, for all the server
 * would make of the commands around it: the one rule of the pending and
 * the queued paths (aredis__conn_cancel in conn.h); each path adds that
 * the command's run is not silenced by CLIENT REPLY. */
static int movable(const aredis__conn *cn, const aredis__conn_cmd *cmd)
{
    return !cn->lent && !aredis__conn_cmd_bound(cmd);
}

/* Take a pending command out with its bytes, and the GLUED ones in front
 * of it, when movable(). 0 when it is not pending or stays. */
static int unpend(aredis__conn *cn, aredis__conn_cmd *cmd)
{
    if (!movable(cn, cmd))
        return 0;
    /* before: the command in front of first, the start of cmd's run.
     * The CLIENT REPLY state each pending command will be sent in: a new
     * stream's, where ready() puts them. */
    aredis__conn_cmd *prev = NULL, *before = NULL, *first = NULL;
    uint8_t reply_off = 0, skip_next = 0;
    int first_silent = 0;
    for (aredis__conn_cmd *q = cn->pend_head; q != NULL;
         prev = q, q = q->next) {
        int silent = reply_silent(q->reply_kind, &reply_off, &skip_next);
        if (prev == NULL || !(prev->flags & AREDIS__CC_GLUED)) {
            before = prev;
            first = q;
            first_silent = silent;
        }
        if (q != cmd)
            continue;
        /* Silenced: taking it out would silence another in its place. */
        if (first_silent)
            return 0;
        size_t off = first->off, len = cmd->off + cmd->len - off;
        if (before)
            before->next = cmd->next;
        else
            cn->pend_head = cmd->next;
        if (cn->pend_tail == cmd)
            cn->pend_tail = before;
        memmove(cn->pend_out.data + off, cn->pend_out.data + off + len,
                cn->pend_out.len - off - len);
        cn->pend_out.len -= len;
        for (aredis__conn_cmd *r = cmd->next; r != NULL; r = r->next)
            r->off -= len;
        for (aredis__conn_cmd *g = first; g != cmd; g = g->next)
            cn->npend--;
        drop_glued(cn, first, cmd);
        cn->npend--;
        cmd->flags &= (uint8_t)~AREDIS__CC_PENDING;
        cmd->next = NULL;
        return 1;
    }
    return 0;
}

static aredis__conn_cmd *take_pending(aredis__conn *cn)
{
    aredis__conn_cmd *h = cn->pend_head;
    for (aredis__conn_cmd *q = h; q != NULL; q = q->next)
        q->flags &= (uint8_t)~AREDIS__CC_PENDING;
    cn->pend_head = cn->pend_tail = NULL;
    cn->pend_out.len = 0;
    cn->npend = 0;
    return h;
}

/* ------------------------------------------------------------------------
 * The output buffer and the FIFO in flight
 * ------------------------------------------------------------------------ */

/* cmd's len bytes were appended to cn->out: put it in flight, unless the
 * CLIENT REPLY state says no reply will come; then it completes (nil). */
static inline void enqueue(aredis__conn *cn, aredis__conn_cmd *cmd)
{
    cn->queued += cmd->len;
    cmd->end = cn->queued;
    cmd->next = NULL;
    cmd->flags &= (uint8_t)~AREDIS__CC_PENDING;

    if (reply_silent(cmd->reply_kind, &cn->reply_off, &cn->skip_next)) {
        done(cn, cmd, 0, NULL);
        return;
    }
    if (cn->tail)
        cn->tail->next = cmd;
    else
        cn->head = cmd;
    cn->tail = cmd;
    cn->inflight++;
}

size_t aredis__conn_out(const aredis__conn *cn, const char **data)
{
    /* No arithmetic on a NULL buffer (nothing was ever queued). */
    if (cn->state < AREDIS__ST_HANDSHAKE || cn->out.len == cn->out_pos ||
        aredis__conn_held(cn)) {
        *data = cn->out.data;
        return 0;
    }
    *data = cn->out.data + cn->out_pos;
    return cn->out.len - cn->out_pos;
}

void aredis__conn_wrote(aredis__conn *cn, size_t n)
{
    /* A write begins once the one before is all written; its size
     * dates it (aredis__conn_held). */
    cn->wlast = (cn->wpart ? cn->wlast : 0) + (uint32_t)n;
    cn->out_pos += n;
    cn->written += n;
    int all = cn->out_pos == cn->out.len;
    cn->wpart = (uint8_t)!all;
    /* What may go: the bytes written, but (keep_sent) this write's once
     * everything is written, and (keep_inflight) those of the commands
     * still awaiting replies. */
    uint64_t keep = all && cn->keep_sent ? cn->written - n : cn->written;
    if (cn->cfg->keep_inflight && cn->head != NULL &&
        cn->head->end - cn->head->len < keep)
        keep = cn->head->end - cn->head->len;
    size_t drop = (size_t)(keep - cn->base);
    if (drop == cn->out.len) {
        cn->out_pos = 0;
        cn->out.len = 0;
        cn->base = cn->written;
    } else if ((all && cn->keep_sent) || drop >= COMPACT_AT ||
               (cn->cfg->keep_inflight && drop >= COMPACT_MIN &&
                drop >= cn->out.len - drop)) {
        aredis__buf_consume(&cn->out, drop);
        cn->base += drop;
        cn->out_pos -= drop;
    }
}

/* A queued command's bytes, if the buffer still holds all of them (the
 * front of the buffer is dropped lazily once written); NULL otherwise. */
static const char *cmd_bytes(const aredis__conn *cn,
                             const aredis__conn_cmd *cmd)
{
    uint64_t start = cmd->end - cmd->len;
    if (start < cn->base || cmd->end > cn->base + cn->out.len)
        return NULL;
    return cn->out.data + (size_t)(start - cn->base);
}

const char *aredis__conn_cmd_bytes(const aredis__conn *cn,
                                   const aredis__conn_cmd *cmd)
{
    return cn->cfg->keep_inflight && !(cmd->flags & AREDIS__CC_PENDING)
               ? cmd_bytes(cn, cmd)
               : NULL;
}

/* Take a command in flight out with its bytes, and the GLUED ones in
 * front of it, when none of their bytes were written and movable(). 0
 * otherwise. A command CLIENT REPLY silenced is not in flight (it
 * completed when queued). */
static int unqueue(aredis__conn *cn, aredis__conn_cmd *cmd)
{
    if (!movable(cn, cmd))
        return 0;
    aredis__conn_cmd *prev = NULL, *before = NULL, *first = NULL;
    uint64_t run = 0; /* the bytes of first..q */
    for (aredis__conn_cmd *q = cn->head; q != NULL; prev = q, q = q->next) {
        if (prev == NULL || !(prev->flags & AREDIS__CC_GLUED)) {
            before = prev;
            first = q;
            run = 0;
        }
        run += q->len;
        if (q != cmd)
            continue;
        uint64_t start = cmd->end - run;
        /* Written in part, or not back to back (a command silenced by
         * CLIENT REPLY, not in this list, sits between): it stays. */
        if (start < cn->written || start != first->end - first->len)
            return 0;
        size_t at = (size_t)(start - cn->base), len = (size_t)run;
        assert(at >= cn->out_pos && at + len <= cn->out.len);
        memmove(cn->out.data + at, cn->out.data + at + len,
                cn->out.len - at - len);
        cn->out.len -= len;
        cn->queued -= run;
        for (aredis__conn_cmd *r = cmd->next; r != NULL; r = r->next)
            r->end -= run;
        if (before)
            before->next = cmd->next;
        else
            cn->head = cmd->next;
        if (cn->tail == cmd)
            cn->tail = before;
        for (aredis__conn_cmd *g = first; g != cmd; g = g->next)
            cn->inflight--;
        drop_glued(cn, first, cmd);
        cn->inflight--;
        cmd->next = NULL;
        /* What is left of the latest write may have been this. */
        if (cn->out_pos == cn->out.len)
            cn->wpart = 0;
        return 1;
    }
    return 0;
}

static aredis__conn_cmd *take_inflight(aredis__conn *cn)
{
    aredis__conn_cmd *h = cn->head;
    cn->head = cn->tail = NULL;
    cn->inflight = 0;
    return h;
}

/* Forget the previous stream for a new transport. 0 or AREDIS_ENOMEM. */
static int new_stream(aredis__conn *cn)
{
    /* A reader that saw a protocol error stays failed, and one may hold
     * part of a reply from the old stream: a new one comes with the first
     * bytes, unless this one holds nothing. */
    if (cn->rd != NULL && aredis__reader_adopt(cn->rd, cn->cfg->limits) != 0) {
        aredis_reader_free(cn->rd);
        cn->rd = NULL;
    }
    cn->out.len = 0;
    cn->out_pos = 0;
    cn->queued = cn->written = cn->base = cn->heard = 0;
    cn->wlast = 0;
    cn->wpart = 0;
    cn->reply_off = cn->skip_next = 0;
    cn->raw_push = 0;
    return 0;
}

/* ------------------------------------------------------------------------
 * Losing a connection, and the backoff before the next one
 * ------------------------------------------------------------------------ */

static int64_t backoff_ms(const aredis__conn_config *cfg, int attempt)
{
    int64_t d = cfg->backoff_first_ms;
    for (int i = 1; i < attempt && d < cfg->backoff_max_ms; i++)
        d *= 2;
    if (d > cfg->backoff_max_ms)
        d = cfg->backoff_max_ms;
    /* Full jitter over the upper half, so clients that lost the same
     * server do not all come back in the same millisecond. */
    if (d <= 1 || cfg->rand == NULL)
        return d;
    return d / 2 + (int64_t)(cfg->rand(cfg->ud) % (uint64_t)(d / 2 + 1));
}

/* Move the commands a dead connection carried: re-queue what cannot have
 * run (or may safely run again), fail the rest. */
static void salvage(aredis__conn *cn, int code, const char *why)
{
    /* On a lent connection nothing is replayed: the sequence the borrower
     * is running (WATCH ... EXEC) does not survive a new one. */
    int replay = !(cn->lent && !cn->keep);
    /* What reached the server: what was written, unless the close came
     * with evidence of less. */
    uint64_t written = cn->written;
    if (cn->have_acked && cn->acked < written)
        written = cn->acked;
    cn->have_acked = 0;
    aredis__conn_cmd *inflight = take_inflight(cn);
    char unknown[AREDIS__CONN_MSG_MAX + 64];
    aredis__msgf(unknown, sizeof unknown,
                 "connection lost, outcome unknown: %s", why);
    /* A malformed or oversized reply belongs to the oldest command that
     * could have been answered: that one fails with the cause itself, the
     * others by the usual rules. */
    int blame = code == AREDIS_EPROTO || code == AREDIS_ETOOBIG;

    /* Rebuild the pending list: salvaged in-flight commands first (they
     * were submitted earlier), then those that were already pending. */
    aredis__conn_cmd *old_head = cn->pend_head;
    aredis_buf old_out = cn->pend_out;
    aredis_buf_init(&cn->pend_out);
    cn->pend_head = cn->pend_tail = NULL;
    cn->npend = 0;

    aredis__conn_cmd *cmd = inflight;
    while (cmd != NULL) {
        aredis__conn_cmd *next = cmd->next;
        if (cmd->flags & AREDIS__CC_INTERNAL) {
            free_internal(cmd);
        } else if (cmd->flags & AREDIS__CC_CANCELLED) {
            done(cn, cmd, AREDIS_ECLOSED, "cancelled");
        } else if (blame && cmd->end <= cn->heard) {
            blame = 0;
            fail(cn, cmd, code, why);
        } else {
            const char *bytes = NULL;
            if ((cmd->flags & AREDIS__CC_NO_RESEND) || !replay)
                bytes = NULL; /* part of a whole that cannot be replayed */
            else if (cmd->end > written)
                bytes = cmd_bytes(cn, cmd); /* never reached the server */
            else if (cmd->flags & AREDIS__CC_RETRY) {
                bytes = cmd->copy != NULL ? cmd->copy : cmd_bytes(cn, cmd);
                cmd->flags |= AREDIS__CC_WAS_SENT;
            }
            if (bytes == NULL && cmd->end > written)
                done(cn, cmd, AREDIS_ECLOSED,
                     "connection lost before the command was sent");
            else if (bytes == NULL)
                fail(cn, cmd, AREDIS_EUNKNOWN, unknown);
            else if (pend_push(cn, cmd, bytes) != 0)
                done(cn, cmd, AREDIS_ENOMEM, "out of memory");
        }
        cmd = next;
    }
    for (cmd = old_head; cmd != NULL;) {
        aredis__conn_cmd *next = cmd->next;
        if (pend_push(cn, cmd, old_out.data + cmd->off) != 0)
            done(cn, cmd, AREDIS_ENOMEM, "out of memory");
        cmd = next;
    }
    aredis_buf_cleanup(&old_out);
    cn->out.len = cn->out_pos = 0;
}

/* Fail every pending command: the outage outlasted the attempts. One that
 * had been written before (kept to be re-sent) may have run: its outcome
 * is unknown, whatever stopped the retry. */
static void fail_pending(aredis__conn *cn, int code, const char *msg)
{
    aredis__conn_cmd *cmd = take_pending(cn);
    char unknown[AREDIS__CONN_MSG_MAX + 64];
    aredis__msgf(unknown, sizeof unknown,
                 "connection lost, outcome unknown (could not re-send: %s)",
                 msg);
    while (cmd != NULL) {
        aredis__conn_cmd *next = cmd->next;
        if (cmd->flags & AREDIS__CC_WAS_SENT)
            fail(cn, cmd, AREDIS_EUNKNOWN, unknown);
        else
            fail(cn, cmd, code, msg);
        cmd = next;
    }
}

/* The connection (or an attempt) is lost. Everything is decided here,
 * before any action is taken: the transport is to be closed, what it
 * carried re-queued or failed, and the connection is in its final state
 * (BACKOFF with its deadline, or IDLE) when the events are reported. */
static void lost(aredis__conn *cn, int code, const char *msg, int64_t now)
{
    const aredis__conn_config *cfg = cn->cfg;
    const char *why = msg != NULL && msg[0] ? msg : aredis_strerror(code);
    if (cn->msgs == NULL)
        cn->msgs = aredis__calloc(1, sizeof *cn->msgs);
    if (cn->msgs != NULL) {
        if (why != cn->msgs->err)
            aredis__msgf(cn->msgs->err, sizeof cn->msgs->err, "%s", why);
        why = cn->msgs->err;
    } else {
        why = aredis_strerror(code); /* static, unlike msg */
    }
    int was_ready = cn->state == AREDIS__ST_READY;
    act(cn, AREDIS__ACT_CLOSE, 0);
    set_state(cn, AREDIS__ST_IDLE);
    cn->deadline = 0;
    salvage(cn, code, why);
    if (was_ready && cn->lent && !cn->keep) {
        /* The borrower decides: it gets errors until it gives the
         * connection back, and a fresh one after that. A connection that
         * never became ready carried none of the borrower's commands, so
         * it reconnects as any other and they wait for it (a WATCH must
         * not fail at once while the server restarts). */
        cn->broken = 1;
        fail_pending(cn, AREDIS_ECLOSED, lent_lost);
        event(cn, AREDIS__EV_DISCONNECTED, code, 0, 0);
        return;
    }
    /* A lost ready connection is retried at once (its attempts start
     * again: ready() zeroed them); failed attempts back off. An exclusive
     * connection with nothing to do is simply dropped; one that carries
     * subscriptions retries for as long as it takes. */
    int retry = 1;
    if (cn->exclusive && cn->npend == 0 && !cn->keep) {
        retry = 0;
    } else if (cfg->max_attempts >= 0 && cn->attempts >= cfg->max_attempts) {
        fail_pending(cn, code, why);
        if (!cn->keep) {
            cn->attempts = 0;
            retry = 0;
        }
    }
    event(cn, AREDIS__EV_DISCONNECTED, code, 0, 0);
    if (!retry)
        return;
    cn->attempts++;
    int64_t delay = was_ready ? 0 : backoff_ms(cfg, cn->attempts);
    set_state(cn, AREDIS__ST_BACKOFF);
    cn->deadline = at(now, delay);
    event(cn, AREDIS__EV_RECONNECTING, 0, delay, cn->attempts);
}

/* ------------------------------------------------------------------------
 * Connecting
 * ------------------------------------------------------------------------ */

void aredis__conn_connect(aredis__conn *cn, int64_t now)
{
    /* One connect attempt, resolution and transport at a time; a lent
     * connection that was lost stays down until it is given back. */
    if ((cn->state != AREDIS__ST_IDLE && cn->state != AREDIS__ST_BACKOFF) ||
        cn->broken)
        return;
    cn->now = now;
    set_state(cn, AREDIS__ST_RESOLVING);
    /* Even with no connect timeout a deadline stays set (24 days out): a
     * name lookup runs on a thread, and an armed timer is what keeps a
     * loop from going idle while it does. */
    cn->deadline =
        at(now, cn->cfg->connect_timeout_ms >= 0 ? cn->cfg->connect_timeout_ms
                                                 : (int64_t)INT32_MAX);
    if (cn->cfg->one_address) {
        aredis__conn_resolved(cn, 1, now);
        return;
    }
    act(cn, AREDIS__ACT_RESOLVE, 0);
}

void aredis__conn_resolved(aredis__conn *cn, size_t n, int64_t now)
{
    cn->now = now;
    if (cn->state != AREDIS__ST_RESOLVING)
        return;
    if (n == 0) {
        lost(cn, AREDIS_ECONNREFUSED, "no address to connect to", now);
        return;
    }
    cn->naddrs = n > UINT16_MAX ? UINT16_MAX : (uint16_t)n;
    cn->addr_next = 1;
    set_state(cn, AREDIS__ST_CONNECTING);
    act(cn, AREDIS__ACT_OPEN, 0);
}

void aredis__conn_open_failed(aredis__conn *cn, int code, const char *msg,
                              int64_t now)
{
    cn->now = now;
    if (cn->state == AREDIS__ST_CONNECTING && cn->addr_next < cn->naddrs) {
        act(cn, AREDIS__ACT_CLOSE, 0);
        act(cn, AREDIS__ACT_OPEN, cn->addr_next++);
        return;
    }
    if (cn->state == AREDIS__ST_RESOLVING || cn->state == AREDIS__ST_CONNECTING)
        lost(cn, code, msg, now);
}

/* ---- the handshake ------------------------------------------------------- */

static int str_is(const aredis_reply *r, const char *s)
{
    size_t n = strlen(s);
    return (r->type == AREDIS_REPLY_STRING || r->type == AREDIS_REPLY_STATUS ||
            r->type == AREDIS_REPLY_VERB) &&
           r->len == n && strncasecmp(r->str, s, n) == 0;
}

static int starts_with(const aredis_reply *r, const char *prefix)
{
    size_t n = strlen(prefix);
    return r->len >= n && memcmp(r->str, prefix, n) == 0;
}

/* The protocol a successful HELLO reply says the connection now speaks,
 * or 0 when the reply is not one. HELLO answers with the connection's
 * properties (the HELLO command's documentation): a map under RESP3, the
 * same pairs as a flat array under RESP2, with at least server, version
 * and proto. Anything else (a bare +OK, a reply meant for something else)
 * means the stream is not what the client thinks it is. */
static int hello_proto(const aredis_reply *r)
{
    if ((r->type != AREDIS_REPLY_MAP && r->type != AREDIS_REPLY_ARRAY) ||
        r->len % 2 != 0)
        return 0;
    int server = 0, version = 0;
    long long proto = 0;
    for (size_t i = 0; i < r->len; i += 2) {
        const aredis_reply *k = &r->element[i], *v = &r->element[i + 1];
        int text = v->type == AREDIS_REPLY_STRING ||
                   v->type == AREDIS_REPLY_STATUS ||
                   v->type == AREDIS_REPLY_VERB;
        if (str_is(k, "server") && text)
            server = 1;
        else if (str_is(k, "version") && text)
            version = 1;
        else if (str_is(k, "proto") && v->type == AREDIS_REPLY_INTEGER)
            proto = v->integer;
    }
    if (!server || !version)
        return 0;
    if (r->type == AREDIS_REPLY_MAP && proto == 3)
        return 3;
    if (r->type == AREDIS_REPLY_ARRAY && proto == 2)
        return 2;
    return 0;
}

/* Queue one handshake command, from argv or already encoded (bytes, len).
 * 0 or AREDIS_ENOMEM. */
/* An empty output buffer (given back: aredis__conn_take_out) grows from
 * one of the owner's spare blocks if it has one. */
static void out_block(aredis__conn *cn)
{
    if (cn->out.data == NULL && cn->cfg->spare_block != NULL &&
        (cn->out.data = cn->cfg->spare_block(cn->cfg->ud, &cn->out.cap)) ==
            NULL)
        cn->out.cap = 0;
}

static int internal_cmd(aredis__conn *cn, int argc, const char **argv,
                        const char *bytes, size_t len)
{
    aredis__conn_cmd *cmd = aredis__calloc(1, sizeof *cmd);
    if (cmd == NULL)
        return AREDIS_ENOMEM;
    out_block(cn);
    size_t start = cn->out.len;
    int e = bytes != NULL ? aredis__buf_append(&cn->out, bytes, len)
                          : aredis_write_argv(&cn->out, argc, argv, NULL);
    if (e != 0) {
        cn->out.len = start;
        aredis__free(cmd);
        return e;
    }
    cmd->flags = AREDIS__CC_INTERNAL;
    cmd->len = (uint32_t)(cn->out.len - start); /* a short handshake step */
    enqueue(cn, cmd);
    return 0;
}

static int internal(aredis__conn *cn, int argc, const char **argv)
{
    return internal_cmd(cn, argc, argv, NULL, 0);
}

static void ready(aredis__conn *cn, int64_t now);

/* Send the current step, skipping the ones that have nothing to do; the
 * last one makes the connection ready. 0 or AREDIS_ENOMEM. */
static int hs_send(aredis__conn *cn, int64_t now)
{
    const aredis__conn_config *cfg = cn->cfg;
    const char *argv[8];
    int argc = 0;
    for (;;) {
        switch (cn->hs_step) {
        case HS_HELLO:
            argv[argc++] = "HELLO";
            argv[argc++] = "3";
            if (cfg->password != NULL) {
                argv[argc++] = "AUTH";
                argv[argc++] = cfg->username ? cfg->username : "default";
                argv[argc++] = cfg->password;
            }
            if (cfg->client_name != NULL) {
                argv[argc++] = "SETNAME";
                argv[argc++] = cfg->client_name;
            }
            return internal(cn, argc, argv);
        case HS_AUTH:
            if (cfg->password == NULL)
                break;
            argv[argc++] = "AUTH";
            if (cfg->username != NULL)
                argv[argc++] = cfg->username;
            argv[argc++] = cfg->password;
            return internal(cn, argc, argv);
        case HS_SETNAME:
            if (cfg->client_name == NULL || cn->proto == 3)
                break;
            argv[argc++] = "CLIENT";
            argv[argc++] = "SETNAME";
            argv[argc++] = cfg->client_name;
            return internal(cn, argc, argv);
        case HS_SELECT: {
            if (cfg->db == 0)
                break;
            char db[24];
            snprintf(db, sizeof db, "%d", cfg->db);
            argv[argc++] = "SELECT";
            argv[argc++] = db;
            return internal(cn, argc, argv);
        }
        case HS_EXTRA:
            if (cn->extra_i >= cn->nextra || cn->extra == NULL)
                break;
            return internal_cmd(cn, 0, NULL, cn->extra[cn->extra_i].bytes,
                                cn->extra[cn->extra_i].len);
        default:
            if (cn->proto == 0)
                cn->proto = 2;
            ready(cn, now);
            return 0;
        }
        cn->hs_step++;
    }
}

static void hs_advance(aredis__conn *cn, int64_t now)
{
    if (cn->hs_step == HS_EXTRA)
        cn->extra_i++; /* the extra steps share one hs_step */
    else
        cn->hs_step++;
    if (hs_send(cn, now) != 0)
        lost(cn, AREDIS_ENOMEM, "handshake failed: out of memory", now);
}

/* A step was refused: the connect fails with the server's own message. */
static void hs_refused(aredis__conn *cn, const char *step,
                       const aredis_reply *r, int64_t now)
{
    int code = AREDIS_ESERVER;
    if (starts_with(r, "WRONGPASS") || starts_with(r, "NOAUTH") ||
        starts_with(r, "NOPERM") || starts_with(r, "ERR invalid password") ||
        starts_with(r, "ERR AUTH"))
        code = AREDIS_EAUTH;
    /* The server's text in full when it fits, else cut cleanly. */
    char msg[AREDIS__CONN_MSG_MAX];
    aredis__msgf(msg, sizeof msg, "handshake failed: %s: %.*s", step,
                 (int)(r->len < sizeof msg ? r->len : sizeof msg), r->str);
    lost(cn, code, msg, now);
}

/* The reply to the handshake step in flight. Steps go one at a time, so
 * a fallback never races a command sent on the wrong assumption. */
static void hs_reply(aredis__conn *cn, const aredis_reply *r, int64_t now)
{
    static const char *const names[] = {"HELLO", "AUTH", "CLIENT SETNAME",
                                        "SELECT"};
    int err = r->type == AREDIS_REPLY_ERROR;
    if (cn->hs_step == HS_HELLO && !err) {
        if (hello_proto(r) != 3) {
            lost(cn, AREDIS_EPROTO,
                 "handshake failed: HELLO 3 was not answered with a RESP3 "
                 "map of server, version and proto",
                 now);
            return;
        }
        cn->proto = 3;
        cn->hs_step = HS_SETNAME; /* AUTH and SETNAME rode on HELLO */
        hs_advance(cn, now);
        return;
    }
    /* Redis before 6 does not know HELLO; 6+ built without RESP3 says
     * NOPROTO. In automatic mode both mean: speak RESP2. */
    if (cn->hs_step == HS_HELLO && cn->cfg->protocol == 0 &&
        (starts_with(r, "NOPROTO") || starts_with(r, "ERR unknown command"))) {
        cn->proto = 2;
        hs_advance(cn, now);
        return;
    }
    if (err) {
        const char *name = "handshake command";
        if (cn->hs_step < HS_EXTRA)
            name = names[cn->hs_step];
        else if (cn->extra != NULL && cn->extra_i < cn->nextra)
            name = cn->extra[cn->extra_i].name;
        hs_refused(cn, name, r, now);
        return;
    }
    hs_advance(cn, now);
}

void aredis__conn_opened(aredis__conn *cn, int64_t now)
{
    cn->now = now;
    if (cn->state != AREDIS__ST_CONNECTING)
        return;
    if (new_stream(cn) != 0) {
        lost(cn, AREDIS_ENOMEM, "out of memory", now);
        return;
    }
    set_state(cn, AREDIS__ST_HANDSHAKE);
    int protocol = cn->cfg->protocol;
    cn->proto = protocol == 2 ? 2 : 0;
    cn->hs_step = protocol == 2 ? HS_AUTH : HS_HELLO;
    cn->extra_i = 0;
    if (hs_send(cn, now) != 0)
        lost(cn, AREDIS_ENOMEM, "cannot start the handshake", now);
}

/* The handshake is done: release the commands that waited for it. */
static void ready(aredis__conn *cn, int64_t now)
{
    if (cn->pend_out.len != 0)
        out_block(cn);
    if (cn->pend_out.len != 0 && aredis__buf_append(&cn->out, cn->pend_out.data,
                                                    cn->pend_out.len) != 0) {
        lost(cn, AREDIS_ENOMEM, "out of memory", now);
        return;
    }
    cn->state = AREDIS__ST_READY;
    cn->deadline = 0;
    cn->attempts = 0;
    cn->ever_ready = 1;
    cn->unsettled = 1; /* until the link's next shedding */
    aredis__conn_cmd *cmd = take_pending(cn);
    while (cmd != NULL) {
        aredis__conn_cmd *next = cmd->next;
        enqueue(cn, cmd);
        cmd = next;
    }
    /* What only the handshake and the wait for it needed goes back: the
     * pending bytes (in `out` now) and the reader's room for the
     * handshake's replies. */
    aredis_buf_cleanup(&cn->pend_out);
    if (cn->rd != NULL)
        aredis__reader_trim(cn->rd);
    event(cn, AREDIS__EV_CONNECTED, 0, 0, 0);
}

void aredis__conn_timer(aredis__conn *cn, int64_t now)
{
    cn->now = now;
    if (cn->deadline == 0 || now < cn->deadline)
        return;
    if (cn->state == AREDIS__ST_BACKOFF) {
        aredis__conn_connect(cn, now);
        return;
    }
    if (cn->state != AREDIS__ST_READY && cn->state != AREDIS__ST_IDLE) {
        char msg[96];
        aredis__msgf(msg, sizeof msg, "connect timed out after %lld ms",
                     (long long)cn->cfg->connect_timeout_ms);
        lost(cn, AREDIS_ETIMEDOUT, msg, now);
    }
}

void aredis__conn_acked(aredis__conn *cn, uint64_t acked)
{
    cn->have_acked = 1;
    cn->acked = acked;
}

void aredis__conn_closed(aredis__conn *cn, int code, const char *msg,
                         int64_t now)
{
    cn->now = now;
    if (cn->state == AREDIS__ST_CONNECTING)
        aredis__conn_open_failed(cn, code, msg, now);
    else if (cn->state >= AREDIS__ST_RESOLVING)
        lost(cn, code, msg, now);
    cn->have_acked = 0; /* evidence for this close only */
}

/* ------------------------------------------------------------------------
 * Commands
 * ------------------------------------------------------------------------ */

/* Kept out of aredis__conn_submit(): inlined, it costs the fast path
 * (bytes already in `out`) instructions it never uses (callgrind). */

/* Append a command's bytes to the output buffer; an empty one (an idle
 * connection gave it back) first takes the owner's spare block. */
COLD_PATH static int append_out(aredis__conn *cn, const char *bytes, size_t len)
{
    out_block(cn);
    return aredis__buf_append(&cn->out, bytes, len);
}

int aredis__conn_submit(aredis__conn *cn, aredis__conn_cmd *cmd,
                        const char *bytes, int64_t now)
{
    cn->now = now;
    cmd->flags &= (uint8_t) ~(AREDIS__CC_PENDING | AREDIS__CC_CANCELLED);
    if (cn->broken) {
        assert(bytes != NULL);
        done(cn, cmd, AREDIS_ECLOSED, lent_lost);
        return 0;
    }
    if (cn->state == AREDIS__ST_READY) {
        if (bytes != NULL && cn->out.cap - cn->out.len >= cmd->len) {
            /* Room for them (a busy connection's usual case). */
            memcpy(cn->out.data + cn->out.len, bytes, cmd->len);
            cn->out.len += cmd->len;
        } else if (bytes != NULL && append_out(cn, bytes, cmd->len) != 0) {
            return AREDIS_ENOMEM;
        }
        enqueue(cn, cmd);
        return 0;
    }
    if (bytes == NULL)
        return AREDIS_EINVAL; /* the fast path is only for a ready conn */
    int e = pend_push(cn, cmd, bytes);
    if (e != 0)
        return e;
    if (cn->state == AREDIS__ST_IDLE)
        aredis__conn_connect(cn, now);
    return 0;
}

int aredis__conn_cancel(aredis__conn *cn, aredis__conn_cmd *cmd)
{
    if ((cmd->flags & AREDIS__CC_PENDING) ? unpend(cn, cmd) : unqueue(cn, cmd))
        return 1;
    cmd->flags |= AREDIS__CC_CANCELLED;
    return 0;
}

void aredis__conn_abort(aredis__conn *cn, int code, const char *msg)
{
    if (cn->state != AREDIS__ST_IDLE && cn->state != AREDIS__ST_BACKOFF)
        act(cn, AREDIS__ACT_CLOSE, 0);
    set_state(cn, AREDIS__ST_IDLE);
    cn->deadline = 0;
    aredis__conn_cmd *cmd = take_inflight(cn);
    while (cmd != NULL) {
        aredis__conn_cmd *next = cmd->next;
        if (cmd->flags & AREDIS__CC_INTERNAL)
            free_internal(cmd);
        else
            done(cn, cmd, code, msg);
        cmd = next;
    }
    for (cmd = take_pending(cn); cmd != NULL;) {
        aredis__conn_cmd *next = cmd->next;
        done(cn, cmd, code, msg);
        cmd = next;
    }
    cn->out.len = cn->out_pos = 0;
}

aredis__conn_cmd *aredis__conn_take_pending(aredis__conn *cn)
{
    /* Their bytes go with them: the pending buffer is emptied. */
    aredis__conn_cmd *head = NULL, **tail = &head;
    for (aredis__conn_cmd *cmd = cn->pend_head; cmd != NULL;) {
        aredis__conn_cmd *next = cmd->next;
        cmd->flags &= (uint8_t)~AREDIS__CC_PENDING;
        cmd->next = NULL;
        if (cmd->copy == NULL &&
            (cmd->copy = aredis__strndup(cn->pend_out.data + cmd->off,
                                         cmd->len)) == NULL) {
            done(cn, cmd, AREDIS_ENOMEM, "out of memory");
        } else {
            *tail = cmd;
            tail = &cmd->next;
        }
        cmd = next;
    }
    cn->pend_head = cn->pend_tail = NULL;
    cn->pend_out.len = 0;
    cn->npend = 0;
    return head;
}

aredis__conn_cmd *aredis__conn_take_all(aredis__conn *cn)
{
    aredis__conn_cmd *head = cn->done_head, **tail = &head;
    cn->done_head = cn->done_tail = NULL;
    while (*tail != NULL)
        tail = &(*tail)->next;
    aredis__conn_cmd *lists[2] = {take_inflight(cn), take_pending(cn)};
    for (int i = 0; i < 2; i++) {
        for (aredis__conn_cmd *cmd = lists[i]; cmd != NULL;) {
            aredis__conn_cmd *next = cmd->next;
            if (cmd->flags & AREDIS__CC_INTERNAL) {
                free_internal(cmd);
            } else {
                cmd->next = NULL;
                *tail = cmd;
                tail = &cmd->next;
            }
            cmd = next;
        }
    }
    cn->qlen = 0;
    return head;
}

/* ------------------------------------------------------------------------
 * Input
 * ------------------------------------------------------------------------ */

aredis_reader *aredis__conn_take_reader(aredis__conn *cn)
{
    aredis_reader *rd = cn->rd;
    int sheds = aredis__conn_sheds(cn);
    if (cn->state == AREDIS__ST_READY)
        cn->unsettled = 0;
    if (rd == NULL || !sheds || aredis__reader_adopt(rd, cn->cfg->limits) != 0)
        return NULL;
    cn->rd = NULL;
    return rd;
}

int aredis__conn_take_out(aredis__conn *cn, aredis_buf *out)
{
    /* Idle and ready, what a write keeps for a resend (keep_sent) is moot;
     * otherwise only an empty buffer goes, while the connection sheds. */
    int idle = cn->state == AREDIS__ST_READY && aredis__conn_idle(cn);
    if (cn->out.data == NULL || cn->out_pos != cn->out.len ||
        (!idle && (cn->out.len != 0 || !aredis__conn_sheds(cn))))
        return -1;
    *out = cn->out;
    aredis_buf_init(&cn->out);
    cn->out_pos = 0;
    cn->base = cn->written;
    return 0;
}

void aredis__conn_put_out(aredis__conn *cn, aredis_buf *out)
{
    cn->out = *out;
    cn->out.len = 0;
    cn->out_pos = 0;
}

int aredis__conn_give_reader(aredis__conn *cn, aredis_reader *rd)
{
    if (cn->rd != NULL || aredis__reader_adopt(rd, cn->cfg->limits) != 0)
        return -1;
    cn->rd = rd;
    return 0;
}

char *aredis__conn_in_buf(aredis__conn *cn, size_t *avail)
{
    if (cn->rd == NULL &&
        (cn->rd = aredis_reader_new(cn->cfg->limits)) == NULL) {
        if (cn->state >= AREDIS__ST_HANDSHAKE)
            lost(cn, AREDIS_ENOMEM, "out of memory for a reader", cn->now);
        return NULL;
    }
    char *p = aredis_reader_prepare(cn->rd, 0, avail);
    if (p == NULL && cn->state >= AREDIS__ST_HANDSHAKE) {
        char msg[AREDIS__CONN_MSG_MAX];
        aredis__msgf(msg, sizeof msg, "reply too large: %s",
                     aredis_reader_errstr(cn->rd));
        lost(cn, AREDIS_ETOOBIG, msg, cn->now);
    }
    return p;
}

void aredis__conn_in_commit(aredis__conn *cn, size_t n, int64_t now)
{
    cn->now = now;
    cn->heard = cn->written;
    (void)aredis_reader_commit(cn->rd, n); /* errors surface in poll */
}

/* ------------------------------------------------------------------------
 * Actions
 * ------------------------------------------------------------------------ */

/* The next reply and what it is for: 1 with an action in *a, 0 when none
 * (more bytes needed), 2 when the state changed (a handshake step, a
 * loss): the queues may hold actions now. */
/* Out of next_reply(): its message buffer would keep the reply path from
 * being inlined into aredis__conn_poll() (callgrind, bench/client.sh). */
COLD_PATH static void protocol_error(aredis__conn *cn, int e)
{
    const char *s = aredis_reader_errstr(cn->rd);
    char msg[AREDIS__CONN_MSG_MAX];
    aredis__msgf(msg, sizeof msg, "protocol error: %s",
                 s[0] != '\0' ? s : stray_msg);
    lost(cn, e, msg, cn->now);
}

static int next_reply(aredis__conn *cn, aredis__conn_action *a)
{
    if (cn->state >= AREDIS__ST_HANDSHAKE && cn->rd != NULL) {
        const aredis_reply *r;
        int e = aredis_reader_get_reply(cn->rd, &r);
        if (e == 0)
            return 0;
        if (e == 1 && (r->type == AREDIS_REPLY_PUSH || cn->raw_push)) {
            a->kind = AREDIS__ACT_PUSH;
            a->reply = r;
            return 1;
        }
        /* A server answers only what it has received in full: a reply that
         * completed with bytes read before the oldest command had been
         * written (nothing in flight, or commands a handshake reply in the
         * same read released) is not for anyone. */
        aredis__conn_cmd *cmd = cn->head;
        if (e == 1 && (cmd == NULL || cmd->end > cn->heard))
            e = AREDIS_EPROTO;
        if (e < 0) {
            protocol_error(cn, e);
            return 2;
        }
        cn->head = cmd->next;
        if (cn->head == NULL)
            cn->tail = NULL;
        cn->inflight--;
        cmd->next = NULL;
        if (cmd->flags & AREDIS__CC_INTERNAL) {
            free_internal(cmd);
            hs_reply(cn, r, cn->now);
            return 2;
        }
        a->kind = AREDIS__ACT_COMPLETE;
        a->cmd = cmd;
        a->reply = r;
        return 1;
    }
    return 0;
}

static int poll_once(aredis__conn *cn, aredis__conn_action *a);

int aredis__conn_poll(aredis__conn *cn, aredis__conn_action *a)
{
    for (;;) {
        int r = poll_once(cn, a);
        if (r != 2)
            return r;
    }
}

static int poll_once(aredis__conn *cn, aredis__conn_action *a)
{
    /* What every kind leaves unset reads as none; the fields only events
     * and I/O actions carry are set by those. */
    a->cmd = NULL;
    a->reply = NULL;
    a->code = 0;
    a->msg = NULL;
    if (cn->qlen > 0) {
        aredis__conn_qa qa = cn->q[cn->qhead];
        cn->qhead = (uint8_t)((cn->qhead + 1) % AREDIS__CONN_QMAX);
        cn->qlen--;
        a->kind = qa.kind;
        a->index = qa.index;
        a->event = qa.event;
        a->code = qa.code;
        a->delay_ms = qa.delay_ms;
        a->attempt = qa.attempt;
        if (qa.kind == AREDIS__ACT_EVENT &&
            qa.event == AREDIS__EV_DISCONNECTED) {
            /* Copied: a later loss may rewrite errmsg before the driver
             * is done with this one. */
            if (cn->msgs != NULL) {
                memcpy(cn->msgs->ev, cn->msgs->err, sizeof cn->msgs->ev);
                a->msg = cn->msgs->ev;
            } else {
                a->msg = aredis_strerror(qa.code);
            }
        }
        return 1;
    }
    if (cn->done_head != NULL) {
        aredis__conn_cmd *cmd = cn->done_head;
        cn->done_head = cmd->next;
        if (cn->done_head == NULL)
            cn->done_tail = NULL;
        cmd->next = NULL;
        a->kind = AREDIS__ACT_COMPLETE;
        a->cmd = cmd;
        a->code = cmd->code;
        a->msg = cmd->msg;
        return 1;
    }
    return next_reply(cn, a);
}
