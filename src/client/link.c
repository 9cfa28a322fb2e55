/* One server connection and its life (client layer): resolve, connect,
 * TLS, handshake, reading and writing, and reconnecting with a capped
 * exponential backoff after a loss.
 *
 * When a connection is lost, a command that never fully reached the server
 * cannot have run, so it is queued again for the next connection; one that
 * was written may have run, so it fails "outcome unknown" unless it was
 * marked safe to re-send. Completion itself (callbacks) belongs to
 * client.c; I/O goes through the transport and the loop. */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aredis/error.h"
#include "client/client_int.h"
#include "resp/resp.h"
#include "util/alloc.h"

static void on_io(void *arg, int events);
static void on_flush(void *arg);

int aredis__link_init(aredis__link *l, aredis_client *c, int exclusive)
{
    memset(l, 0, sizeof *l);
    l->c = c;
    l->exclusive = exclusive;
    aredis_buf_init(&l->pend_out);
    return aredis__conn_init(&l->conn, &c->cfg.limits);
}

static void close_transport(aredis__link *l)
{
    if (l->io != NULL) {
        aredis__loop_io_stop(l->c->loop, l->io);
        l->io = NULL;
        l->io_events = 0;
    }
    if (l->tp != NULL) {
        l->tp->vt->close(l->tp);
        l->tp = NULL;
    }
    if (l->resolving != NULL) {
        aredis__resolve_cancel(l->resolving);
        l->resolving = NULL;
    }
}

void aredis__link_close(aredis__link *l)
{
    close_transport(l);
}

void aredis__link_cleanup(aredis__link *l)
{
    close_transport(l);
    aredis__loop_undefer(l->c->loop, &l->defer);
    aredis__conn_cleanup(&l->conn);
    aredis_buf_cleanup(&l->pend_out);
    aredis__free(l->addrs);
    aredis__free(l->addrlens);
    l->addrs = NULL;
    l->addrlens = NULL;
}

/* ------------------------------------------------------------------------
 * Pending commands (waiting for the link to be ready)
 * ------------------------------------------------------------------------ */

static int pend_push(aredis__link *l, aredis__cmd *cmd, const char *bytes)
{
    cmd->off = l->pend_out.len;
    if (aredis__buf_append(&l->pend_out, bytes, cmd->len) != 0)
        return AREDIS_ENOMEM;
    cmd->next = NULL;
    cmd->flags |= AREDIS__CMD_PENDING;
    cmd->link = l;
    if (l->pend_tail)
        l->pend_tail->next = cmd;
    else
        l->pend_head = cmd;
    l->pend_tail = cmd;
    l->npend++;
    return 0;
}

int aredis__link_unpend(aredis__link *l, aredis__cmd *cmd)
{
    aredis__cmd *prev = NULL;
    for (aredis__cmd *q = l->pend_head; q != NULL; prev = q, q = q->next) {
        if (q != cmd)
            continue;
        if (prev)
            prev->next = q->next;
        else
            l->pend_head = q->next;
        if (l->pend_tail == q)
            l->pend_tail = prev;
        memmove(l->pend_out.data + cmd->off,
                l->pend_out.data + cmd->off + cmd->len,
                l->pend_out.len - cmd->off - cmd->len);
        l->pend_out.len -= cmd->len;
        for (aredis__cmd *r = cmd->next; r != NULL; r = r->next)
            r->off -= cmd->len;
        l->npend--;
        cmd->flags &= ~(unsigned)AREDIS__CMD_PENDING;
        cmd->next = NULL;
        return 1;
    }
    return 0;
}

/* Queue a command on the ready connection; completes NOREPLY ones. */
static void conn_push(aredis__link *l, aredis__cmd *cmd)
{
    cmd->link = l;
    cmd->flags &= ~(unsigned)AREDIS__CMD_PENDING;
    if (!aredis__conn_enqueue(&l->conn, cmd, cmd->len, cmd->reply_kind))
        aredis__defer_done(l->c, cmd, 0, NULL);
}

static void want_flush(aredis__link *l)
{
    if (!l->flush_wanted) {
        l->flush_wanted = 1;
        aredis__loop_defer(l->c->loop, &l->defer, on_flush, l);
    }
}

int aredis__link_submit(aredis__link *l, aredis__cmd *cmd, const char *bytes)
{
    if (l->state == AREDIS__ST_READY) {
        /* bytes == NULL is the fast path: the client encoded straight
         * into the end of this connection's output buffer. */
        if (bytes != NULL &&
            aredis__buf_append(&l->conn.out, bytes, cmd->len) != 0)
            return AREDIS_ENOMEM;
        conn_push(l, cmd);
        want_flush(l);
        return 0;
    }
    if (bytes == NULL)
        return AREDIS_EINVAL; /* the fast path is only for a ready link */
    int e = pend_push(l, cmd, bytes);
    if (e != 0)
        return e;
    if (l->state == AREDIS__ST_IDLE)
        aredis__link_connect(l);
    return 0;
}

aredis__cmd *aredis__link_take_all(aredis__link *l)
{
    aredis__cmd *head = aredis__conn_take_inflight(&l->conn);
    aredis__cmd **tail = &head;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = l->pend_head;
    for (aredis__cmd *q = l->pend_head; q != NULL; q = q->next)
        q->flags &= ~(unsigned)AREDIS__CMD_PENDING;
    l->pend_head = l->pend_tail = NULL;
    l->pend_out.len = 0;
    l->npend = 0;
    return head;
}

/* ------------------------------------------------------------------------
 * Output
 * ------------------------------------------------------------------------ */

static void set_interest(aredis__link *l, int events)
{
    if (l->io == NULL || l->io_events == events)
        return;
    l->io_events = events;
    aredis__loop_io_update(l->c->loop, l->io, events);
}

void aredis__link_flush(aredis__link *l)
{
    l->flush_wanted = 0;
    if (l->tp == NULL || l->state < AREDIS__ST_HANDSHAKE)
        return;
    for (;;) {
        const char *data;
        size_t n = aredis__conn_out(&l->conn, &data);
        if (n == 0) {
            set_interest(l, AREDIS_EV_READ);
            return;
        }
        struct iovec iov = {(void *)data, n};
        ssize_t w = l->tp->vt->writev(l->tp, &iov, 1);
        if (w > 0) {
            aredis__conn_wrote(&l->conn, (size_t)w);
            continue;
        }
        if (w == AREDIS__WANT_WRITE || w == AREDIS__WANT_READ) {
            set_interest(l, AREDIS_EV_READ | AREDIS_EV_WRITE);
            return;
        }
        aredis__link_lost(l, w < 0 ? (int)w : AREDIS_EIO, l->tp->errmsg);
        return;
    }
}

/* Write what was just queued: now, unless input read earlier is still
 * waiting to be dispatched (a handshake reply and what came with it). That
 * input cannot answer the new commands (conn.h), and if it breaks the
 * connection, they should not have been sent on it: they are re-queued
 * instead of failing "outcome unknown". */
static void flush_after_input(aredis__link *l)
{
    if (aredis__conn_has_input(&l->conn))
        want_flush(l);
    else
        aredis__link_flush(l);
}

static void on_flush(void *arg)
{
    aredis__link *l = arg;
    if (l->flush_wanted && !l->c->freeing)
        aredis__link_flush(l);
}

int aredis__link_internal(aredis__link *l, int argc, const char **argv,
                          void (*icb)(aredis_client *, aredis__cmd *,
                                      const aredis_reply *))
{
    aredis__cmd *cmd = aredis__cmd_new(l->c);
    if (cmd == NULL)
        return AREDIS_ENOMEM;
    size_t start = l->conn.out.len;
    int e = aredis_write_argv(&l->conn.out, argc, argv, NULL);
    if (e != 0) {
        aredis__cmd_free(l->c, cmd);
        return e;
    }
    cmd->flags = AREDIS__CMD_INTERNAL;
    cmd->icb = icb;
    cmd->link = l;
    cmd->len = l->conn.out.len - start;
    aredis__conn_enqueue(&l->conn, cmd, cmd->len, AREDIS__REPLY_NORMAL);
    flush_after_input(l);
    return 0;
}

/* ------------------------------------------------------------------------
 * Losing a connection, and the backoff before the next one
 * ------------------------------------------------------------------------ */

static int64_t backoff_ms(const aredis__config *cfg, int attempt)
{
    int64_t d = cfg->reconnect_initial_ms;
    for (int i = 1; i < attempt && d < cfg->reconnect_max_ms; i++)
        d *= 2;
    if (d > cfg->reconnect_max_ms)
        d = cfg->reconnect_max_ms;
    /* Full jitter over the upper half, so clients that lost the same
     * server do not all come back in the same millisecond. */
    return d / 2 +
           (d > 1 ? (int64_t)((uint64_t)rand() % (uint64_t)(d / 2 + 1)) : 0);
}

/* Move the commands a dead connection carried: re-queue what cannot have
 * run (or may safely run again), fail the rest. The failures complete from
 * the loop (aredis__defer_fail): no user callback runs while the link is
 * half torn down, so a callback that submits finds it in its final state. */
static void salvage(aredis__link *l, int code, const char *why)
{
    aredis_client *c = l->c;
    /* On a borrowed connection nothing is replayed: the sequence the
     * borrower is running (WATCH ... EXEC) does not survive a new one. */
    int replay = !(l->exclusive && l->borrowed && l->pubsub == NULL);
    uint64_t written = l->conn.written;
    aredis__cmd *inflight = aredis__conn_take_inflight(&l->conn);
    char unknown[256];
    snprintf(unknown, sizeof unknown, "connection lost, outcome unknown: %s",
             why);
    /* A malformed or oversized reply belongs to the oldest command: that
     * one fails with the cause itself, the others by the usual rules. */
    int blame = code == AREDIS_EPROTO || code == AREDIS_ETOOBIG;

    /* Rebuild the pending list: salvaged in-flight commands first (they
     * were submitted earlier), then those that were already pending. */
    aredis__cmd *old_head = l->pend_head;
    aredis_buf old_out = l->pend_out;
    aredis_buf_init(&l->pend_out);
    l->pend_head = l->pend_tail = NULL;
    l->npend = 0;

    aredis__cmd *cmd = inflight;
    while (cmd != NULL) {
        aredis__cmd *next = cmd->next;
        if (cmd->flags & (AREDIS__CMD_INTERNAL | AREDIS__CMD_DONE)) {
            aredis__cmd_free(c, cmd);
            cmd = next;
            continue;
        }
        const char *bytes = NULL;
        if (blame && cmd->end <= l->conn.heard) {
            blame = 0;
            aredis__defer_fail(c, cmd, code, why);
            cmd = next;
            continue;
        }
        if ((cmd->flags & AREDIS__CMD_NO_RESEND) || !replay)
            bytes = NULL; /* part of a whole that cannot be replayed */
        else if (cmd->end > written)
            bytes = aredis__conn_cmd_bytes(&l->conn, cmd); /* not received */
        else if (cmd->flags & AREDIS__CMD_RETRY) {
            bytes = cmd->copy;
            cmd->flags |= AREDIS__CMD_WAS_SENT;
        }
        if (bytes == NULL && cmd->end > written)
            aredis__defer_done(c, cmd, AREDIS_ECLOSED,
                               "connection lost before the command was sent");
        else if (bytes == NULL)
            aredis__defer_fail(c, cmd, AREDIS_EUNKNOWN, unknown);
        else if (pend_push(l, cmd, bytes) != 0)
            aredis__defer_done(c, cmd, AREDIS_ENOMEM, "out of memory");
        cmd = next;
    }
    for (cmd = old_head; cmd != NULL;) {
        aredis__cmd *next = cmd->next;
        if (pend_push(l, cmd, old_out.data + cmd->off) != 0)
            aredis__defer_done(c, cmd, AREDIS_ENOMEM, "out of memory");
        cmd = next;
    }
    aredis_buf_cleanup(&old_out);
}

/* Fail every pending command: the outage outlasted the attempts. One that
 * had been written before (kept to be re-sent) may have run: its outcome
 * is unknown, whatever stopped the retry. They complete from the loop. */
static void fail_pending(aredis__link *l, int code, const char *msg)
{
    aredis__cmd *cmd = l->pend_head;
    l->pend_head = l->pend_tail = NULL;
    l->pend_out.len = 0;
    l->npend = 0;
    char unknown[256];
    snprintf(unknown, sizeof unknown,
             "connection lost, outcome unknown (could not re-send: %s)", msg);
    while (cmd != NULL) {
        aredis__cmd *next = cmd->next;
        cmd->flags &= ~(unsigned)AREDIS__CMD_PENDING;
        if (cmd->flags & AREDIS__CMD_WAS_SENT)
            aredis__defer_fail(l->c, cmd, AREDIS_EUNKNOWN, unknown);
        else
            aredis__defer_fail(l->c, cmd, code, msg);
        cmd = next;
    }
}

/* The link lost its connection (or a connect attempt failed). Everything
 * is decided before any user code runs: the transport is closed, what it
 * carried is re-queued or failed (from the loop), and the link is in its
 * final state (BACKOFF with one timer, or IDLE) when the DISCONNECTED and
 * RECONNECTING events are emitted, so a handler that submits neither
 * starts a second connect nor sees a half-torn-down link. Nothing touches
 * the link after the events: a handler may give a borrowed one back. */
void aredis__link_lost(aredis__link *l, int code, const char *msg)
{
    aredis_client *c = l->c;
    snprintf(l->errmsg, sizeof l->errmsg, "%s",
             msg != NULL && msg[0] ? msg : aredis_strerror(code));
    const char *why = l->errmsg;
    int was_ready = l->state == AREDIS__ST_READY;
    close_transport(l);
    l->state = AREDIS__ST_IDLE;
    l->deadline = 0;
    salvage(l, code, why);
    if (aredis__conn_reset(&l->conn) != 0) {
        fail_pending(l, AREDIS_ENOMEM, "out of memory");
        return;
    }
    if (c->freeing)
        return;
    if (was_ready && l->exclusive && l->borrowed && l->pubsub == NULL) {
        /* The borrower decides: it gets errors until it gives the
         * connection back, and a fresh one after that. A connection that
         * never became ready carried none of the borrower's commands, so
         * it reconnects as any other and they wait for it (a WATCH must
         * not fail at once while the server restarts). */
        l->broken = 1;
        fail_pending(l, AREDIS_ECLOSED,
                     "the exclusive connection was lost: release it and "
                     "acquire another");
        aredis__rearm(c);
        aredis__emit(c, l, AREDIS_CONN_DISCONNECTED, code, why, 0, 0);
        return;
    }
    /* Subscriptions are work that must come back: a link that carries
     * them reconnects for as long as it takes. */
    int keep = l->pubsub != NULL;
    if (keep)
        aredis__pubsub_link_lost(l);

    /* A lost ready connection is retried at once; failed attempts back
     * off. An exclusive link with nothing to do is simply dropped. */
    if (was_ready)
        l->attempts = 0;
    int max = c->cfg.reconnect_max_attempts;
    int retry = 1;
    if (l->exclusive && l->npend == 0 && !keep) {
        retry = 0;
    } else if (max == AREDIS_NO_RECONNECT || (max >= 0 && l->attempts >= max)) {
        fail_pending(l, code, why);
        if (!keep) {
            l->attempts = 0;
            retry = 0;
        }
    }
    int64_t delay = 0;
    if (retry) {
        l->attempts++;
        delay = was_ready ? 0 : backoff_ms(&c->cfg, l->attempts);
        l->state = AREDIS__ST_BACKOFF;
        l->deadline = aredis__now_ms() + delay;
    }
    int attempt = l->attempts;
    aredis__rearm(c);
    /* A dropped exclusive link goes back to the pool (or to a waiter)
     * before the events: its state is final once they run. */
    if (!retry && l->exclusive)
        aredis__pool_link_idle(l);
    aredis__emit(c, l, AREDIS_CONN_DISCONNECTED, code, why, 0, 0);
    if (retry)
        aredis__emit(c, l, AREDIS_CONN_RECONNECTING, 0, NULL, delay, attempt);
}

/* ------------------------------------------------------------------------
 * Connecting
 * ------------------------------------------------------------------------ */

static void try_next_address(aredis__link *l)
{
    aredis_client *c = l->c;
    char err[160] = "";
    int code = AREDIS_ECONNREFUSED;
    for (;;) {
        const struct sockaddr *sa = NULL;
        socklen_t len = 0;
        if (c->cfg.path == NULL) {
            if (l->addr_next >= l->naddrs)
                break;
            sa = (const struct sockaddr *)&l->addrs[l->addr_next];
            len = l->addrlens[l->addr_next];
            l->addr_next++;
        }
        aredis__transport *tp = NULL;
        assert(l->tp == NULL && l->io == NULL);
        code =
            aredis__transport_connect(&c->cfg, sa, len, &tp, err, sizeof err);
        if (code == 0) {
            l->tp = tp;
            l->state = AREDIS__ST_CONNECTING;
            code = aredis__loop_io_start(c->loop, tp->fd, on_io, l, &l->io);
            if (code == 0) {
                l->io_events = AREDIS_EV_WRITE;
                code = aredis__loop_io_update(c->loop, l->io, AREDIS_EV_WRITE);
            }
            if (code == 0)
                return;
            snprintf(err, sizeof err, "cannot watch the socket: %s",
                     aredis_strerror(code));
            close_transport(l);
        }
        if (c->cfg.path != NULL)
            break;
    }
    aredis__link_lost(l, code, err[0] ? err : "no address to connect to");
}

static void on_resolved(void *arg, int status, const struct addrinfo *ai,
                        const char *errmsg)
{
    aredis__link *l = arg;
    l->resolving = NULL;
    if (status != 0) {
        aredis__link_lost(l, status, errmsg);
        return;
    }
    size_t n = 0;
    for (const struct addrinfo *p = ai; p != NULL; p = p->ai_next)
        n++;
    aredis__free(l->addrs);
    aredis__free(l->addrlens);
    l->addrs = aredis__calloc(n ? n : 1, sizeof *l->addrs);
    l->addrlens = aredis__calloc(n ? n : 1, sizeof *l->addrlens);
    if (l->addrs == NULL || l->addrlens == NULL) {
        aredis__link_lost(l, AREDIS_ENOMEM, "out of memory");
        return;
    }
    n = 0;
    for (const struct addrinfo *p = ai; p != NULL; p = p->ai_next) {
        if (p->ai_addrlen > sizeof *l->addrs)
            continue;
        memcpy(&l->addrs[n], p->ai_addr, p->ai_addrlen);
        l->addrlens[n] = p->ai_addrlen;
        n++;
    }
    l->naddrs = n;
    l->addr_next = 0;
    try_next_address(l);
}

void aredis__link_connect(aredis__link *l)
{
    aredis_client *c = l->c;
    /* One connect attempt, resolution and transport per link at a time. */
    if (l->state != AREDIS__ST_IDLE && l->state != AREDIS__ST_BACKOFF)
        return;
    assert(l->resolving == NULL && l->tp == NULL && l->io == NULL);
    l->state = AREDIS__ST_RESOLVING;
    /* Even with no connect timeout the timer stays armed (24 days out):
     * a name lookup runs on a thread, and an armed timer is what keeps
     * the loop from going idle while it does. */
    l->deadline = aredis__now_ms() + (c->cfg.connect_timeout_ms >= 0
                                          ? c->cfg.connect_timeout_ms
                                          : (int64_t)INT32_MAX);
    aredis__rearm(c);
    if (c->cfg.path != NULL) {
        try_next_address(l);
        return;
    }
    int e = aredis__resolve_start(c->loop, c->cfg.host, c->cfg.port,
                                  on_resolved, l, &l->resolving);
    if (e != 0)
        aredis__link_lost(l, e, "cannot start name resolution");
}

void aredis__link_ready(aredis__link *l)
{
    aredis_client *c = l->c;
    l->state = AREDIS__ST_READY;
    l->deadline = 0;
    l->attempts = 0;
    l->ever_ready = 1;
    aredis__cmd *cmd = l->pend_head;
    l->pend_head = l->pend_tail = NULL;
    l->npend = 0;
    if (l->pend_out.len != 0 &&
        aredis__buf_append(&l->conn.out, l->pend_out.data, l->pend_out.len) !=
            0) {
        l->pend_head = cmd;
        aredis__link_lost(l, AREDIS_ENOMEM, "out of memory");
        return;
    }
    l->pend_out.len = 0;
    while (cmd != NULL) {
        aredis__cmd *next = cmd->next;
        conn_push(l, cmd);
        cmd = next;
    }
    aredis__emit(c, l, AREDIS_CONN_CONNECTED, 0, NULL, 0, 0);
    if (l->pubsub != NULL)
        aredis__pubsub_link_ready(l);
    if (l == &c->main)
        aredis__pubsub_main_ready(c);
    aredis__rearm(c);
    flush_after_input(l);
}

void aredis__link_timer(aredis__link *l, int64_t now)
{
    if (l->deadline == 0 || now < l->deadline)
        return;
    if (l->state == AREDIS__ST_BACKOFF) {
        aredis__link_connect(l);
        return;
    }
    if (l->state != AREDIS__ST_READY && l->state != AREDIS__ST_IDLE) {
        char msg[96];
        snprintf(msg, sizeof msg, "connect timed out after %lld ms",
                 (long long)l->c->cfg.connect_timeout_ms);
        aredis__link_lost(l, AREDIS_ETIMEDOUT, msg);
    }
}

/* ------------------------------------------------------------------------
 * Loop events
 * ------------------------------------------------------------------------ */

static void dispatch(aredis__link *l)
{
    aredis_client *c = l->c;
    aredis__cmd *cmd;
    const aredis_reply *r;
    int e = 0;
    while (!c->freeing && l->tp != NULL &&
           (e = aredis__conn_next(&l->conn, &cmd, &r)) == 1) {
        if (cmd == NULL) {
            if (aredis__pubsub_push(c, l, r))
                continue;
            if (c->push_cb != NULL) {
                c->in_cb++;
                c->push_cb(c, r, c->push_ud);
                c->in_cb--;
            }
            continue;
        }
        if (cmd->flags & AREDIS__CMD_INTERNAL) {
            cmd->icb(c, cmd, r);
            aredis__cmd_free(c, cmd);
            continue;
        }
        /* A command that already timed out: its late reply is dropped. */
        if (!(cmd->flags & AREDIS__CMD_DONE))
            aredis__deliver(c, cmd, r);
        aredis__cmd_free(c, cmd);
        if (l->exclusive && l->conn.inflight == 0 && !l->borrowed)
            aredis__pool_link_idle(l);
    }
    if (!c->freeing && l->tp != NULL && e < 0) {
        char msg[192];
        snprintf(msg, sizeof msg, "protocol error: %s",
                 aredis__conn_errstr(&l->conn));
        aredis__link_lost(l, e, msg);
    }
}

static void do_read(aredis__link *l)
{
    for (;;) {
        size_t avail = 0;
        char *buf = aredis__conn_in_buf(&l->conn, &avail);
        if (buf == NULL) {
            char msg[192];
            snprintf(msg, sizeof msg, "reply too large: %s",
                     aredis_reader_errstr(l->conn.rd));
            aredis__link_lost(l, AREDIS_ETOOBIG, msg);
            return;
        }
        ssize_t n = l->tp->vt->read(l->tp, buf, avail);
        if (n > 0) {
            aredis__conn_in_commit(&l->conn, (size_t)n);
            dispatch(l);
            if (l->c->freeing || l->tp == NULL || (size_t)n < avail)
                return;
            continue;
        }
        if (n == 0) {
            aredis__link_lost(l, AREDIS_ECLOSED,
                              "server closed the connection");
            return;
        }
        if (n == AREDIS__WANT_READ)
            return;
        if (n == AREDIS__WANT_WRITE) {
            set_interest(l, AREDIS_EV_READ | AREDIS_EV_WRITE);
            return;
        }
        aredis__link_lost(l, (int)n, l->tp->errmsg);
        return;
    }
}

static void on_io(void *arg, int events)
{
    aredis__link *l = arg;
    if (l->c->freeing || l->tp == NULL)
        return;
    if (l->state == AREDIS__ST_CONNECTING) {
        int r = l->tp->vt->handshake(l->tp);
        if (r == AREDIS__WANT_READ) {
            set_interest(l, AREDIS_EV_READ);
            return;
        }
        if (r == AREDIS__WANT_WRITE) {
            set_interest(l, AREDIS_EV_WRITE);
            return;
        }
        if (r != 0) {
            char msg[192];
            snprintf(msg, sizeof msg, "%s", l->tp->errmsg);
            close_transport(l);
            if (r == AREDIS_ECONNREFUSED && l->addr_next < l->naddrs) {
                try_next_address(l);
                return;
            }
            aredis__link_lost(l, r, msg);
            return;
        }
        l->state = AREDIS__ST_HANDSHAKE;
        set_interest(l, AREDIS_EV_READ);
        int e = aredis__handshake_start(l);
        if (e != 0)
            aredis__link_lost(l, e, "cannot start the handshake");
        return;
    }
    if (events & AREDIS_EV_READ)
        do_read(l);
    if (!l->c->freeing && l->tp != NULL && (events & AREDIS_EV_WRITE))
        aredis__link_flush(l);
}
