/* The driver of one server connection (node layer): the thin I/O side of
 * the connection state machine (conn/conn.h).
 *
 * It feeds the connection its events — names resolved, a transport open or
 * failed, bytes read, bytes written, a timer — and takes its actions: start
 * a resolution, open or close a transport, complete a command (through
 * client.c), deliver a push, report a connection event. Every decision
 * (what to connect to next, when, what a lost connection re-sends) is the
 * connection's; nothing here but calls into the transport, the loop and
 * the client.
 *
 * Actions are taken only from the loop (an I/O or timer callback, or the
 * deferred service an API call schedules), never inside an API call, and
 * never from inside an action: a callback that submits only schedules the
 * service. */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aredis/error.h"
#include "node/node.h"
#include "resp/resp.h"
#include "topology/topology.h"
#include "util/alloc.h"
#include "util/inline.h"

static void on_io(void *arg, int events);
static int on_wait(void *arg, int timeout_ms);
/* The addresses a name resolved to, for one connect attempt: one block,
 * freed once connected. */
struct aredis__addrs {
    size_t n;
    struct {
        struct sockaddr_storage sa;
        socklen_t len;
    } a[];
};

static void on_service(void *arg);
static void service(aredis__link *l);

int aredis__link_init(aredis__link *l, aredis__node *n, int exclusive)
{
    memset(l, 0, sizeof *l);
    l->c = n->c;
    l->node = n;
    l->exclusive = exclusive != 0;
    int e = aredis__conn_init(&l->conn, &n->c->conn_cfg);
    l->conn.exclusive = exclusive != 0;
    l->conn.extra = n->steps;
    l->conn.nextra = n->nsteps;
    return e;
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
    l->locating = 0; /* a later answer from the topology is not for us */
}

void aredis__link_cleanup(aredis__link *l)
{
    close_transport(l);
    aredis__loop_undefer(l->c->loop, &l->defer);
    aredis__conn_cleanup(&l->conn);
    aredis__free(l->addrs);
    l->addrs = NULL;
}

/* What the connection must know of its owner before an event: a lent
 * connection is never reconnected behind the borrower's back, one that
 * carries subscriptions is reconnected for as long as it takes. */
static void policy(aredis__link *l)
{
    l->conn.lent = l->borrowed;
    l->conn.keep = l->pubsub != NULL;
}

/* Take the connection's actions at the end of the loop turn. */
static void want_service(aredis__link *l)
{
    if (!l->service_wanted) {
        l->service_wanted = 1;
        aredis__loop_defer(l->c->loop, &l->defer, on_service, l);
    }
}

static void on_service(void *arg)
{
    aredis__link *l = arg;
    l->service_wanted = 0;
    if (!l->c->freeing)
        service(l);
}

/* ------------------------------------------------------------------------
 * From the client and the pool (API calls: nothing runs until the loop)
 * ------------------------------------------------------------------------ */

int aredis__link_submit(aredis__link *l, aredis__cmd *cmd, const char *bytes)
{
    policy(l);
    cmd->cc.flags =
        (uint8_t)((cmd->cc.flags & (AREDIS__CC_WAS_SENT | AREDIS__CC_GLUED |
                                    AREDIS__CC_TOGETHER)) |
                  (cmd->flags & (AREDIS__CMD_RETRY | AREDIS__CMD_NO_RESEND)));
    /* A ready connection has no use for the time on a submit (it only
     * queues the bytes): the hot path spares the clock read. */
    int64_t now =
        l->conn.state == AREDIS__ST_READY ? l->conn.now : aredis__now_ms();
    int e = aredis__conn_submit(&l->conn, &cmd->cc, bytes, now);
    if (e != 0)
        return e;
    cmd->link = l;
    want_service(l);
    return 0;
}

void aredis__link_connect(aredis__link *l)
{
    policy(l);
    aredis__conn_connect(&l->conn, aredis__now_ms());
    want_service(l);
}

aredis__cmd *aredis__link_take_pending(aredis__link *l)
{
    aredis__conn_cmd *cc = aredis__conn_take_pending(&l->conn);
    for (aredis__conn_cmd *q = cc; q != NULL; q = q->next)
        aredis__cmd_of(q)->link = NULL;
    if (l->conn.done_head != NULL)
        want_service(l); /* those it could not copy failed */
    return aredis__cmd_of(cc);
}

aredis__cmd *aredis__link_take_all(aredis__link *l)
{
    close_transport(l);
    aredis__conn_abort(&l->conn, 0, NULL);
    aredis__conn_cmd *cc = aredis__conn_take_all(&l->conn);
    for (aredis__conn_cmd *q = cc; q != NULL; q = q->next)
        aredis__cmd_of(q)->link = NULL;
    return aredis__cmd_of(cc);
}

void aredis__link_timer(aredis__link *l, int64_t now)
{
    int64_t d = aredis__conn_deadline(&l->conn);
    if (d == 0 || now < d)
        return;
    policy(l);
    aredis__conn_timer(&l->conn, now);
    service(l);
}

int aredis__link_cancel(aredis__link *l, aredis__cmd *cmd)
{
    policy(l);
    if (!aredis__conn_cancel(&l->conn, &cmd->cc))
        return 0;
    cmd->link = NULL;
    if (l->conn.done_head != NULL)
        want_service(l); /* what was glued in front of it */
    else if (l->exclusive && !l->borrowed && aredis__conn_idle(&l->conn))
        aredis__pool_link_idle(l); /* free for the next caller */
    return 1;
}

/* ------------------------------------------------------------------------
 * Output
 * ------------------------------------------------------------------------ */

static void set_interest(aredis__link *l, int events)
{
    if (l->io == NULL || l->io_events == events)
        return;
    l->io_events = (uint8_t)events;
    aredis__loop_io_update(l->c->loop, l->io, events);
}

/* Write what the connection has. Returns 1 when the transport failed (the
 * connection has been told: its actions are due). */
static int flush(aredis__link *l)
{
    if (l->tp == NULL || l->conn.state < AREDIS__ST_HANDSHAKE)
        return 0;
    for (;;) {
        const char *data;
        size_t n = aredis__conn_out(&l->conn, &data);
        if (n == 0) {
            set_interest(l, AREDIS_EV_READ);
            return 0;
        }
        struct iovec iov = {(void *)data, n};
        ssize_t w = l->tp->vt->writev(l->tp, &iov, 1);
        if (w > 0) {
            aredis__conn_wrote(&l->conn, (size_t)w);
            continue;
        }
        if (w == AREDIS__WANT_WRITE || w == AREDIS__WANT_READ) {
            set_interest(l, AREDIS_EV_READ | AREDIS_EV_WRITE);
            return 0;
        }
        aredis__conn_closed(&l->conn, w < 0 ? (int)w : AREDIS_EIO,
                            l->tp->errmsg, aredis__now_ms());
        return 1;
    }
}

/* ------------------------------------------------------------------------
 * Actions
 * ------------------------------------------------------------------------ */

static void on_resolved(void *arg, int status, const struct addrinfo *ai,
                        const char *errmsg)
{
    aredis__link *l = arg;
    l->resolving = NULL;
    policy(l);
    int64_t now = aredis__now_ms();
    if (status != 0) {
        aredis__conn_open_failed(&l->conn, status, errmsg, now);
        service(l);
        return;
    }
    size_t n = 0;
    for (const struct addrinfo *p = ai; p != NULL; p = p->ai_next)
        n++;
    aredis__free(l->addrs);
    l->addrs = aredis__malloc(sizeof *l->addrs + n * sizeof l->addrs->a[0]);
    if (l->addrs == NULL) {
        aredis__conn_open_failed(&l->conn, AREDIS_ENOMEM, "out of memory", now);
        service(l);
        return;
    }
    n = 0;
    for (const struct addrinfo *p = ai; p != NULL; p = p->ai_next) {
        if (p->ai_addrlen > sizeof l->addrs->a[0].sa)
            continue;
        memcpy(&l->addrs->a[n].sa, p->ai_addr, p->ai_addrlen);
        l->addrs->a[n].len = p->ai_addrlen;
        n++;
    }
    l->addrs->n = n;
    aredis__conn_resolved(&l->conn, n, now);
    service(l);
}

static void resolve_now(aredis__link *l)
{
    aredis_client *c = l->c;
    assert(l->resolving == NULL && l->tp == NULL && l->io == NULL);
    /* An address literal is its own one address: open_address() reads it
     * again, so connecting to one allocates nothing. */
    struct sockaddr_storage ss;
    socklen_t len;
    if (aredis__resolve_literal(l->node->host, l->node->port, &ss, &len)) {
        aredis__free(l->addrs);
        l->addrs = NULL;
        aredis__conn_resolved(&l->conn, 1, aredis__now_ms());
        return;
    }
    int e = aredis__resolve_start(c->loop, l->node->host, l->node->port,
                                  on_resolved, l, &l->resolving);
    if (e != 0)
        aredis__conn_open_failed(&l->conn, e, "cannot start name resolution",
                                 aredis__now_ms());
}

/* A topology whose nodes move (sentinel) finds the address first. */
static void start_resolve(aredis__link *l)
{
    aredis__topology *t = l->c->topo;
    if (t->vt->locate != NULL && t->vt->locate(t, l->node)) {
        l->locating = 1;
        return;
    }
    resolve_now(l);
}

void aredis__link_located(aredis__link *l, int code, const char *msg)
{
    if (!l->locating || l->c->freeing)
        return;
    l->locating = 0;
    policy(l);
    if (code != 0)
        aredis__conn_open_failed(&l->conn, code, msg, aredis__now_ms());
    else
        resolve_now(l);
    service(l);
}

void aredis__link_wait_until(aredis__link *l, int64_t until)
{
    if (!l->locating || l->c->freeing || l->conn.deadline >= until)
        return;
    l->conn.deadline = until;
    aredis__rearm(l->c);
}

void aredis__link_lost(aredis__link *l, int code, const char *msg)
{
    if (l->c->freeing || l->tp == NULL)
        return;
    policy(l);
    aredis__conn_closed(&l->conn, code, msg, aredis__now_ms());
    service(l);
}

static void open_address(aredis__link *l, size_t i)
{
    aredis_client *c = l->c;
    /* At most one transport per connection. */
    assert(l->tp == NULL && l->io == NULL);
    const struct sockaddr *sa = NULL;
    socklen_t len = 0;
    struct sockaddr_storage lit;
    if (c->cfg.path == NULL && l->addrs != NULL && i < l->addrs->n) {
        sa = (const struct sockaddr *)&l->addrs->a[i].sa;
        len = l->addrs->a[i].len;
    } else if (c->cfg.path == NULL && l->addrs == NULL && i == 0 &&
               aredis__resolve_literal(l->node->host, l->node->port, &lit,
                                       &len)) {
        sa = (const struct sockaddr *)&lit;
    }
    char err[160] = "";
    aredis__transport *tp = NULL;
    int code =
        aredis__transport_connect(&c->cfg, sa, len, &tp, err, sizeof err);
    if (code == 0) {
        l->tp = tp;
        /* The blocking facade writes before it looks at the socket: a
         * close found after a write is classified by evidence (got()). */
        l->conn.keep_sent = c->cfg.blocking_reads;
        code = aredis__loop_io_start(c->loop, tp->fd, on_io, l, &l->io);
        /* A custom loop has no use for the transport's own wait. */
        if (code == 0 && c->cfg.blocking_reads && tp->vt->read_wait != NULL)
            (void)aredis__loop_io_set_wait(c->loop, l->io, on_wait);
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
    aredis__conn_open_failed(
        &l->conn, code, err[0] ? err : aredis_strerror(code), aredis__now_ms());
}

static void complete(aredis__link *l, const aredis__conn_action *a)
{
    aredis_client *c = l->c;
    aredis__cmd *cmd = aredis__cmd_of(a->cmd);
    cmd->link = NULL;
    /* A command its deadline already completed: its late reply (or
     * failure) is dropped. */
    if (!(cmd->flags & AREDIS__CMD_DONE)) {
        if (a->reply != NULL) {
            if (aredis__deliver(c, cmd, l, a->reply))
                return; /* taken back (a redirect): not ours any more */
        } else if (a->code != 0) {
            aredis__finish_error(c, cmd, a->code, a->msg);
        } else {
            /* A command the server does not answer (CLIENT REPLY). */
            aredis_reply nil;
            memset(&nil, 0, sizeof nil);
            nil.type = AREDIS_REPLY_NIL;
            aredis__finish(c, cmd, &nil);
        }
    }
    aredis__cmd_free(c, cmd);
    /* The last command of a pooled link done: the link is free again,
     * whether its connection is up or was lost and not retried (then its
     * failures complete after the DISCONNECTED event, which found it
     * still busy). */
    if (l->exclusive && !l->borrowed && aredis__conn_idle(&l->conn) &&
        (l->conn.state == AREDIS__ST_READY ||
         (l->conn.state == AREDIS__ST_IDLE && !l->conn.broken)))
        aredis__pool_link_idle(l);
}

static void on_event(aredis__link *l, const aredis__conn_action *a)
{
    aredis_client *c = l->c;
    /* The watch first: the client-side cache flushes on a loss before
     * anything else can run. */
    if (c->watch != NULL)
        c->watch->event(c->watch->ud, l, a->event);
    switch (a->event) {
    case AREDIS__EV_CONNECTED:
        /* Every attempt resolves afresh: the addresses are done with. */
        aredis__free(l->addrs);
        l->addrs = NULL;
        aredis__emit(c, l, AREDIS_CONN_CONNECTED, 0, NULL, 0, 0);
        if (l->pubsub != NULL)
            aredis__pubsub_link_ready(l);
        if (!l->exclusive)
            aredis__pubsub_main_ready(c);
        else if (!l->borrowed && aredis__conn_idle(&l->conn))
            /* Its command went while it connected (a deadline took it
             * out unsent): free for the next one. */
            aredis__pool_link_idle(l);
        break;
    case AREDIS__EV_DISCONNECTED:
        if (l->pubsub != NULL)
            aredis__pubsub_link_lost(l);
        aredis__emit(c, l, AREDIS_CONN_DISCONNECTED, a->code, a->msg, 0, 0);
        /* An exclusive link that is not retried goes back to the pool
         * (or to a waiter). */
        if (l->exclusive && l->conn.state == AREDIS__ST_IDLE && !l->conn.broken)
            aredis__pool_link_idle(l);
        break;
    default:
        aredis__emit(c, l, AREDIS_CONN_RECONNECTING, 0, NULL, a->delay_ms,
                     a->attempt);
        break;
    }
}

static HOT_INLINE void take(aredis__link *l, const aredis__conn_action *a)
{
    aredis_client *c = l->c;
    switch (a->kind) {
    case AREDIS__ACT_RESOLVE:
        start_resolve(l);
        break;
    case AREDIS__ACT_OPEN:
        open_address(l, a->index);
        break;
    case AREDIS__ACT_CLOSE:
        close_transport(l);
        break;
    case AREDIS__ACT_COMPLETE:
        complete(l, a);
        break;
    case AREDIS__ACT_PUSH:
        if (c->watch != NULL && c->watch->push(c->watch->ud, l, a->reply))
            break;
        if (aredis__pubsub_push(c, l, a->reply))
            break;
        if (c->push_cb != NULL)
            AREDIS__USER_CB(c, c->push_cb(c, a->reply, c->push_ud));
        break;
    default:
        on_event(l, a);
        break;
    }
}

static void free_reader(void *rd)
{
    aredis_reader_free(rd);
}

/* An idle connection holds no reader and no output buffer, and one that
 * has just done its handshake no reader (aredis__conn_sheds): they go to
 * the loop's spares (or are freed), and the next bytes take from there.
 * A program running one command at a time so allocates nothing per
 * command, and a thousand idle or connecting connections hold no reader
 * each. */
static void shed(aredis__link *l)
{
    /* The output buffer first (the reader's taking ends the shedding of a
     * connection just ready): the next bytes take a block from the loop's
     * spares (the client's submit, the connection's handshake). */
    aredis_buf out;
    if (aredis__conn_take_out(&l->conn, &out) == 0) {
        int kept = aredis__loop_spare_block_put(l->c->loop, out.data, out.cap);
        if (kept > 0) /* a burst's: kept for the next one */
            aredis__conn_put_out(&l->conn, &out);
        else if (kept < 0)
            aredis_buf_cleanup(&out);
    }
    aredis_reader *rd = aredis__conn_take_reader(&l->conn);
    if (rd != NULL && aredis__loop_spare_put(l->c->loop, AREDIS__SPARE_READER,
                                             rd, free_reader) != 0)
        aredis_reader_free(rd);
}

/* Where the next bytes go, with a reader from the loop's spares if the
 * connection has none. */
static char *in_buf(aredis__link *l, size_t *avail)
{
    if (l->conn.rd == NULL) {
        aredis_reader *rd =
            aredis__loop_spare_take(l->c->loop, AREDIS__SPARE_READER);
        if (rd != NULL && aredis__conn_give_reader(&l->conn, rd) != 0)
            aredis_reader_free(rd);
    }
    return aredis__conn_in_buf(&l->conn, avail);
}

/* Take every action the connection has, then, with `write`, write what
 * it queued; again if writing failed. Without `write` (bytes just read)
 * the write waits for the end of the loop turn: the replies of every
 * connection ready in this turn are taken first, so that each connection
 * gets one write carrying all their callbacks submitted for it, rather
 * than one now and another at the end of the turn. A connection with two
 * writes unanswered holds what it queued (aredis__conn_held) until a
 * reply comes: reading one asks for the end-of-turn write again. Loop
 * context only. */
static void service_as(aredis__link *l, int write)
{
    aredis_client *c = l->c;
    if (l->draining) {
        /* Never from inside an action (a borrowed reply would go). */
        want_service(l);
        return;
    }
    l->draining = 1;
    for (;;) {
        aredis__conn_action a;
        while (!c->freeing && aredis__conn_poll(&l->conn, &a))
            take(l, &a);
        if (c->freeing)
            break;
        if (!write) {
            if (aredis__conn_want_write(&l->conn))
                want_service(l);
            break;
        }
        if (!flush(l))
            break;
    }
    l->draining = 0;
    if (c->freeing)
        return;
    if (aredis__conn_sheds(&l->conn))
        shed(l);
    aredis__rearm_link(c, l);
}

static void service(aredis__link *l)
{
    service_as(l, 1);
}

/* ------------------------------------------------------------------------
 * Loop events
 * ------------------------------------------------------------------------ */

/* What a read of `avail` bytes returned: n bytes, the end of the stream,
 * or an error. Returns 1 when more may be waiting (the buffer was
 * filled). */
static int got(aredis__link *l, ssize_t n, size_t avail)
{
    if (n > 0) {
        aredis__conn_in_commit(&l->conn, (size_t)n, aredis__now_ms());
        /* Replies are taken as they come, so the reader holds one read's
         * worth, not everything the socket has. */
        service_as(l, 0);
        return !l->c->freeing && (size_t)n == avail;
    }
    if (n == 0) {
        /* The server's FIN: what it had not acknowledged by then never
         * reached it. The blocking facade, which writes before it looks,
         * relies on this to send a command written after the close
         * again. */
        uint64_t acked;
        if (l->conn.keep_sent && l->tp->vt->acked != NULL &&
            l->tp->vt->acked(l->tp, &acked) == 0)
            aredis__conn_acked(&l->conn, acked);
        aredis__conn_closed(&l->conn, AREDIS_ECLOSED,
                            "server closed the connection", aredis__now_ms());
        return 0;
    }
    if (n == AREDIS__WANT_WRITE)
        set_interest(l, AREDIS_EV_READ | AREDIS_EV_WRITE);
    else if (n != AREDIS__WANT_READ)
        aredis__conn_closed(&l->conn, (int)n, l->tp->errmsg, aredis__now_ms());
    return 0;
}

static void do_read(aredis__link *l)
{
    while (l->tp != NULL && l->conn.state >= AREDIS__ST_HANDSHAKE) {
        size_t avail = 0;
        char *buf = in_buf(l, &avail);
        if (buf == NULL)
            return; /* the reply outgrew the limits: the conn was lost */
        if (!got(l, l->tp->vt->read(l->tp, buf, avail), avail))
            return;
    }
}

/* The loop's wait, when this link is all it waits for (loop.h): one
 * blocking read instead of a poll and a read. */
static int on_wait(void *arg, int timeout_ms)
{
    aredis__link *l = arg;
    if (l->c->freeing || l->tp == NULL || l->conn.state < AREDIS__ST_HANDSHAKE)
        return -1;
    policy(l);
    size_t avail = 0;
    char *buf = in_buf(l, &avail);
    if (buf != NULL) {
        ssize_t n = l->tp->vt->read_wait(l->tp, buf, avail, timeout_ms);
        if (n == AREDIS_ENOTSUP)
            return -1;
        if (n == AREDIS__WANT_READ)
            return 0;
        if (got(l, n, avail))
            do_read(l);
    }
    service(l);
    return 1;
}

static void on_io(void *arg, int events)
{
    aredis__link *l = arg;
    if (l->c->freeing || l->tp == NULL)
        return;
    policy(l);
    if (l->conn.state == AREDIS__ST_CONNECTING) {
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
            aredis__conn_open_failed(&l->conn, r, l->tp->errmsg,
                                     aredis__now_ms());
        } else {
            set_interest(l, AREDIS_EV_READ);
            aredis__conn_opened(&l->conn, aredis__now_ms());
        }
        service(l);
        return;
    }
    if (events & AREDIS_EV_READ)
        do_read(l);
    /* Writable: the rest of a write is due now. Otherwise what the
     * replies submitted is written at the end of the turn. */
    service_as(l, events & AREDIS_EV_WRITE);
}
