/* The client (client layer): life cycle, connecting, submitting commands,
 * dispatching replies, deadlines and the exactly-once completion rule.
 *
 * Every user callback runs through finish(), which marks the command done
 * first, so no path can complete a command twice; every path that drops a
 * command (reply, server error, timeout, lost connection, refused connect,
 * free) goes through it, so none can complete it zero times. Callbacks run
 * only from loop events or the loop's deferred queue, never inside the API
 * call that caused them. I/O goes through the transport and the loop. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "aredis/error.h"
#include "client/client_int.h"
#include "resp/resp.h"
#include "util/alloc.h"

#define MAX_FREE_CMDS 1024

static void on_io(void *arg, int events);
static void on_timer(void *arg);
static void on_tick(void *arg);
static void start_connect(aredis_client *c);
static void conn_lost(aredis_client *c, int code, const char *msg);

/* ------------------------------------------------------------------------
 * Command records and the deadline heap
 * ------------------------------------------------------------------------ */

static aredis__cmd *cmd_new(aredis_client *c)
{
    aredis__cmd *cmd = c->free_cmds;
    if (cmd != NULL) {
        c->free_cmds = cmd->next;
        c->nfree_cmds--;
    } else {
        cmd = aredis__malloc(sizeof *cmd);
        if (cmd == NULL)
            return NULL;
    }
    memset(cmd, 0, sizeof *cmd);
    return cmd;
}

static void cmd_free(aredis_client *c, aredis__cmd *cmd)
{
    if (c->nfree_cmds < MAX_FREE_CMDS) {
        cmd->next = c->free_cmds;
        c->free_cmds = cmd;
        c->nfree_cmds++;
        return;
    }
    aredis__free(cmd);
}

static void heap_swap(aredis__cmd **h, size_t i, size_t j)
{
    aredis__cmd *t = h[i];
    h[i] = h[j];
    h[j] = t;
    h[i]->heap_idx = i + 1;
    h[j]->heap_idx = j + 1;
}

static void heap_up(aredis__cmd **h, size_t i)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h[parent]->deadline <= h[i]->deadline)
            break;
        heap_swap(h, i, parent);
        i = parent;
    }
}

static void heap_down(aredis__cmd **h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && h[l]->deadline < h[m]->deadline)
            m = l;
        if (r < n && h[r]->deadline < h[m]->deadline)
            m = r;
        if (m == i)
            return;
        heap_swap(h, i, m);
        i = m;
    }
}

static int heap_push(aredis_client *c, aredis__cmd *cmd)
{
    if (c->heap_len == c->heap_cap) {
        size_t cap = c->heap_cap ? c->heap_cap * 2 : 64;
        aredis__cmd **h = aredis__reallocarray(c->heap, cap, sizeof *h);
        if (h == NULL)
            return AREDIS_ENOMEM;
        c->heap = h;
        c->heap_cap = cap;
    }
    c->heap[c->heap_len] = cmd;
    cmd->heap_idx = ++c->heap_len;
    heap_up(c->heap, c->heap_len - 1);
    return 0;
}

static void heap_remove(aredis_client *c, aredis__cmd *cmd)
{
    if (cmd->heap_idx == 0)
        return;
    size_t i = cmd->heap_idx - 1;
    cmd->heap_idx = 0;
    c->heap_len--;
    if (i == c->heap_len)
        return;
    c->heap[i] = c->heap[c->heap_len];
    c->heap[i]->heap_idx = i + 1;
    heap_up(c->heap, i);
    heap_down(c->heap, c->heap_len, c->heap[i]->heap_idx - 1);
}

/* Arm the single loop timer for the earliest deadline we care about. */
static void rearm(aredis_client *c)
{
    int64_t next = 0;
    if (c->heap_len > 0)
        next = c->heap[0]->deadline;
    if (c->connect_deadline != 0 && c->state != AREDIS__ST_READY &&
        c->state != AREDIS__ST_IDLE &&
        (next == 0 || c->connect_deadline < next))
        next = c->connect_deadline;
    if (next == c->timer_at)
        return;
    c->timer_at = next;
    if (next == 0) {
        aredis__loop_timer_set(c->loop, c->timer, -1);
        return;
    }
    int64_t ms = next - aredis__now_ms();
    aredis__loop_timer_set(c->loop, c->timer, ms < 0 ? 0 : ms);
}

/* ------------------------------------------------------------------------
 * Completion
 * ------------------------------------------------------------------------ */

static void schedule(aredis_client *c)
{
    aredis__loop_defer(c->loop, &c->defer, on_tick, c);
}

/* Run a command's callback: the one place that does. */
static void finish(aredis_client *c, aredis__cmd *cmd, const aredis_reply *r)
{
    if (cmd->flags & AREDIS__CMD_DONE)
        return;
    cmd->flags |= AREDIS__CMD_DONE;
    heap_remove(c, cmd);
    c->pending--;
    if (cmd->cb != NULL) {
        c->in_cb++;
        cmd->cb(c, r, cmd->ud);
        c->in_cb--;
    }
}

static void finish_error(aredis_client *c, aredis__cmd *cmd, int code,
                         const char *msg)
{
    aredis_reply r;
    memset(&r, 0, sizeof r);
    r.type = AREDIS_REPLY_ERROR;
    r.code = code;
    r.str = msg;
    r.len = strlen(msg);
    finish(c, cmd, &r);
}

/* Deliver a server reply, through the command's hook or normalisation. */
static void deliver(aredis_client *c, aredis__cmd *cmd, const aredis_reply *r)
{
    const aredis_reply *out = r;
    if (cmd->hook != NULL) {
        const aredis_reply *x = cmd->hook(c, r, &c->arena, cmd->hook_ud);
        if (x != NULL)
            out = x;
    } else if (cmd->norm != AREDIS__NORM_NONE) {
        out = aredis__normalize(&c->arena, cmd->norm, r);
    }
    finish(c, cmd, out);
    if (c->arena.chunks != NULL)
        aredis__arena_reset(&c->arena);
}

/* Queue a completion decided inside an API call; it runs from the loop. */
static void defer_done(aredis_client *c, aredis__cmd *cmd, int code,
                       const char *msg)
{
    cmd->fail_code = code;
    cmd->fail_msg = msg;
    cmd->next = NULL;
    if (c->done_tail)
        c->done_tail->next = cmd;
    else
        c->done_head = cmd;
    c->done_tail = cmd;
    schedule(c);
}

static void run_done(aredis_client *c)
{
    while (c->done_head != NULL && !c->freeing) {
        aredis__cmd *cmd = c->done_head;
        c->done_head = cmd->next;
        if (c->done_head == NULL)
            c->done_tail = NULL;
        if (cmd->fail_code != 0) {
            finish_error(c, cmd, cmd->fail_code, cmd->fail_msg);
        } else {
            /* A command the server does not answer (CLIENT REPLY). */
            aredis_reply nil;
            memset(&nil, 0, sizeof nil);
            nil.type = AREDIS_REPLY_NIL;
            finish(c, cmd, &nil);
        }
        cmd_free(c, cmd);
    }
}

/* ------------------------------------------------------------------------
 * Output
 * ------------------------------------------------------------------------ */

static void set_interest(aredis_client *c, int events)
{
    if (c->io == NULL || c->io_events == events)
        return;
    c->io_events = events;
    aredis__loop_io_update(c->loop, c->io, events);
}

void aredis__client_flush(aredis_client *c)
{
    c->flush_wanted = 0;
    if (c->tp == NULL || c->state < AREDIS__ST_HANDSHAKE)
        return;
    for (;;) {
        const char *data;
        size_t n = aredis__conn_out(&c->conn, &data);
        if (n == 0) {
            set_interest(c, AREDIS_EV_READ);
            return;
        }
        struct iovec iov = {(void *)data, n};
        ssize_t w = c->tp->vt->writev(c->tp, &iov, 1);
        if (w > 0) {
            aredis__conn_wrote(&c->conn, (size_t)w);
            continue;
        }
        if (w == AREDIS__WANT_WRITE || w == AREDIS__WANT_READ) {
            set_interest(c, AREDIS_EV_READ | AREDIS_EV_WRITE);
            return;
        }
        conn_lost(c, w < 0 ? (int)w : AREDIS_EIO, c->tp->errmsg);
        return;
    }
}

static void want_flush(aredis_client *c)
{
    if (!c->flush_wanted) {
        c->flush_wanted = 1;
        schedule(c);
    }
}

/* ------------------------------------------------------------------------
 * Connection life cycle
 * ------------------------------------------------------------------------ */

static void close_transport(aredis_client *c)
{
    if (c->io != NULL) {
        aredis__loop_io_stop(c->loop, c->io);
        c->io = NULL;
        c->io_events = 0;
    }
    if (c->tp != NULL) {
        c->tp->vt->close(c->tp);
        c->tp = NULL;
    }
    if (c->resolving != NULL) {
        aredis__resolve_cancel(c->resolving);
        c->resolving = NULL;
    }
}

/* Fail every command that was waiting for a connection. */
static void fail_pending(aredis_client *c, int code, const char *msg)
{
    aredis__cmd *cmd = c->pend_head;
    c->pend_head = c->pend_tail = NULL;
    c->pend_out.len = 0;
    while (cmd != NULL) {
        aredis__cmd *next = cmd->next;
        finish_error(c, cmd, code, msg);
        cmd_free(c, cmd);
        cmd = next;
    }
}

/* The socket is gone: complete what it carried. Commands whose bytes all
 * reached the socket may have run; those never sent certainly did not. */
static void conn_lost(aredis_client *c, int code, const char *msg)
{
    char why[192];
    snprintf(why, sizeof why, "%s", msg != NULL && msg[0] ? msg
                                                          : aredis_strerror(code));
    int was_ready = c->state == AREDIS__ST_READY;
    close_transport(c);
    c->state = AREDIS__ST_IDLE;
    c->connect_deadline = 0;
    snprintf(c->errmsg, sizeof c->errmsg, "%s", why);

    uint64_t written = c->conn.written;
    aredis__cmd *cmd = aredis__conn_take_inflight(&c->conn);
    char unknown[256], unsent[256];
    snprintf(unknown, sizeof unknown, "connection lost, outcome unknown: %s",
             why);
    snprintf(unsent, sizeof unsent,
             "connection lost before the command was sent: %s", why);
    while (cmd != NULL) {
        aredis__cmd *next = cmd->next;
        if (!(cmd->flags & (AREDIS__CMD_INTERNAL | AREDIS__CMD_DONE))) {
            if (written > cmd->end - cmd->len)
                finish_error(c, cmd, AREDIS_EUNKNOWN, unknown);
            else
                finish_error(c, cmd, AREDIS_ECLOSED, unsent);
        }
        cmd_free(c, cmd);
        cmd = next;
    }
    if (aredis__conn_reset(&c->conn) != 0)
        code = AREDIS_ENOMEM;
    /* Commands still waiting for a connection fail with the reason the
     * connection could not be made (a lost ready connection has none). */
    if (!was_ready && c->pend_head != NULL)
        fail_pending(c, code == AREDIS_ECLOSED ? AREDIS_ECLOSED : code, why);
    rearm(c);
}

void aredis__client_conn_failed(aredis_client *c, int code, const char *msg)
{
    conn_lost(c, code, msg);
}

static void try_next_address(aredis_client *c)
{
    char err[160] = "";
    int code = AREDIS_ECONNREFUSED;
    for (;;) {
        const struct sockaddr *sa = NULL;
        socklen_t len = 0;
        if (c->cfg.path == NULL) {
            if (c->addr_next >= c->naddrs)
                break;
            sa = (const struct sockaddr *)&c->addrs[c->addr_next];
            len = c->addrlens[c->addr_next];
            c->addr_next++;
        }
        aredis__transport *tp = NULL;
        code = aredis__transport_connect(&c->cfg, sa, len, &tp, err,
                                         sizeof err);
        if (code == 0) {
            c->tp = tp;
            c->state = AREDIS__ST_CONNECTING;
            code = aredis__loop_io_start(c->loop, tp->fd, on_io, c, &c->io);
            if (code == 0) {
                c->io_events = AREDIS_EV_WRITE;
                code = aredis__loop_io_update(c->loop, c->io, AREDIS_EV_WRITE);
            }
            if (code == 0)
                return;
            snprintf(err, sizeof err, "cannot watch the socket: %s",
                     aredis_strerror(code));
            close_transport(c);
        }
        if (c->cfg.path != NULL)
            break;
    }
    conn_lost(c, code, err[0] ? err : "no address to connect to");
}

static void on_resolved(void *arg, int status, const struct addrinfo *ai,
                        const char *errmsg)
{
    aredis_client *c = arg;
    c->resolving = NULL;
    if (status != 0) {
        conn_lost(c, status, errmsg);
        return;
    }
    size_t n = 0;
    for (const struct addrinfo *p = ai; p != NULL; p = p->ai_next)
        n++;
    aredis__free(c->addrs);
    aredis__free(c->addrlens);
    c->addrs = aredis__calloc(n ? n : 1, sizeof *c->addrs);
    c->addrlens = aredis__calloc(n ? n : 1, sizeof *c->addrlens);
    if (c->addrs == NULL || c->addrlens == NULL) {
        conn_lost(c, AREDIS_ENOMEM, "out of memory");
        return;
    }
    n = 0;
    for (const struct addrinfo *p = ai; p != NULL; p = p->ai_next) {
        if (p->ai_addrlen > sizeof *c->addrs)
            continue;
        memcpy(&c->addrs[n], p->ai_addr, p->ai_addrlen);
        c->addrlens[n] = p->ai_addrlen;
        n++;
    }
    c->naddrs = n;
    c->addr_next = 0;
    try_next_address(c);
}

static void start_connect(aredis_client *c)
{
    c->state = AREDIS__ST_RESOLVING;
    c->connect_deadline = c->cfg.connect_timeout_ms >= 0
                              ? aredis__now_ms() + c->cfg.connect_timeout_ms
                              : 0;
    rearm(c);
    if (c->cfg.path != NULL) {
        try_next_address(c);
        return;
    }
    int e = aredis__resolve_start(c->loop, c->cfg.host, c->cfg.port,
                                  on_resolved, c, &c->resolving);
    if (e != 0)
        conn_lost(c, e, "cannot start name resolution");
}

/* The handshake is done: release the commands that waited for it. */
void aredis__client_ready(aredis_client *c)
{
    c->state = AREDIS__ST_READY;
    c->connect_deadline = 0;
    aredis__cmd *cmd = c->pend_head;
    c->pend_head = c->pend_tail = NULL;
    if (c->pend_out.len != 0 &&
        aredis__buf_append(&c->conn.out, c->pend_out.data, c->pend_out.len) !=
            0) {
        c->pend_head = cmd;
        conn_lost(c, AREDIS_ENOMEM, "out of memory");
        return;
    }
    c->pend_out.len = 0;
    while (cmd != NULL) {
        aredis__cmd *next = cmd->next;
        if (!aredis__conn_enqueue(&c->conn, cmd, cmd->len, (int)cmd->fail_code))
            defer_done(c, cmd, 0, NULL);
        cmd = next;
    }
    rearm(c);
    aredis__client_flush(c);
}

/* ------------------------------------------------------------------------
 * Loop events
 * ------------------------------------------------------------------------ */

static void dispatch(aredis_client *c)
{
    aredis__cmd *cmd;
    const aredis_reply *r;
    int e = 0;
    while (!c->freeing && c->tp != NULL &&
           (e = aredis__conn_next(&c->conn, &cmd, &r)) == 1) {
        if (cmd == NULL) {
            if (c->push_cb != NULL) {
                c->in_cb++;
                c->push_cb(c, r, c->push_ud);
                c->in_cb--;
            }
            continue;
        }
        if (cmd->flags & AREDIS__CMD_INTERNAL) {
            cmd->icb(c, cmd, r);
            cmd_free(c, cmd);
            continue;
        }
        /* A command that already timed out: its late reply is dropped. */
        if (!(cmd->flags & AREDIS__CMD_DONE))
            deliver(c, cmd, r);
        cmd_free(c, cmd);
    }
    if (!c->freeing && c->tp != NULL && e < 0) {
        char msg[192];
        snprintf(msg, sizeof msg, "protocol error: %s",
                 aredis__conn_errstr(&c->conn));
        conn_lost(c, e, msg);
    }
}

static void do_read(aredis_client *c)
{
    for (;;) {
        size_t avail = 0;
        char *buf = aredis__conn_in_buf(&c->conn, &avail);
        if (buf == NULL) {
            char msg[192];
            snprintf(msg, sizeof msg, "reply too large: %s",
                     aredis_reader_errstr(c->conn.rd));
            conn_lost(c, AREDIS_ETOOBIG, msg);
            return;
        }
        ssize_t n = c->tp->vt->read(c->tp, buf, avail);
        if (n > 0) {
            aredis__conn_in_commit(&c->conn, (size_t)n);
            dispatch(c);
            if (c->freeing || c->tp == NULL || (size_t)n < avail)
                return;
            continue;
        }
        if (n == 0) {
            conn_lost(c, AREDIS_ECLOSED, "server closed the connection");
            return;
        }
        if (n == AREDIS__WANT_READ)
            return;
        if (n == AREDIS__WANT_WRITE) {
            set_interest(c, AREDIS_EV_READ | AREDIS_EV_WRITE);
            return;
        }
        conn_lost(c, (int)n, c->tp->errmsg);
        return;
    }
}

static void on_io(void *arg, int events)
{
    aredis_client *c = arg;
    if (c->freeing || c->tp == NULL)
        return;
    if (c->state == AREDIS__ST_CONNECTING) {
        int r = c->tp->vt->handshake(c->tp);
        if (r == AREDIS__WANT_READ) {
            set_interest(c, AREDIS_EV_READ);
            return;
        }
        if (r == AREDIS__WANT_WRITE) {
            set_interest(c, AREDIS_EV_WRITE);
            return;
        }
        if (r != 0) {
            char msg[192];
            snprintf(msg, sizeof msg, "%s", c->tp->errmsg);
            close_transport(c);
            if (r == AREDIS_ECONNREFUSED && c->addr_next < c->naddrs) {
                try_next_address(c);
                return;
            }
            conn_lost(c, r, msg);
            return;
        }
        c->state = AREDIS__ST_HANDSHAKE;
        set_interest(c, AREDIS_EV_READ);
        int e = aredis__handshake_start(c);
        if (e != 0)
            conn_lost(c, e, "cannot start the handshake");
        return;
    }
    if (events & AREDIS_EV_READ)
        do_read(c);
    if (!c->freeing && c->tp != NULL && (events & AREDIS_EV_WRITE))
        aredis__client_flush(c);
}

static void on_timer(void *arg)
{
    aredis_client *c = arg;
    c->timer_at = 0;
    if (c->freeing)
        return;
    int64_t now = aredis__now_ms();
    if (c->connect_deadline != 0 && now >= c->connect_deadline &&
        c->state != AREDIS__ST_READY && c->state != AREDIS__ST_IDLE) {
        char msg[96];
        snprintf(msg, sizeof msg, "connect timed out after %lld ms",
                 (long long)c->cfg.connect_timeout_ms);
        conn_lost(c, AREDIS_ETIMEDOUT, msg);
    }
    while (!c->freeing && c->heap_len > 0 && c->heap[0]->deadline <= now) {
        aredis__cmd *cmd = c->heap[0];
        heap_remove(c, cmd);
        if (cmd->flags & AREDIS__CMD_NOREPLY)
            continue; /* already completing through the done queue */
        int pending = 0;
        /* Not sent yet: take it (and its bytes) out so it never runs. */
        for (aredis__cmd **pp = &c->pend_head; *pp != NULL; pp = &(*pp)->next) {
            if (*pp != cmd)
                continue;
            pending = 1;
            *pp = cmd->next;
            if (c->pend_tail == cmd) {
                c->pend_tail = NULL;
                for (aredis__cmd *q = c->pend_head; q != NULL; q = q->next)
                    c->pend_tail = q;
            }
            memmove(c->pend_out.data + cmd->off,
                    c->pend_out.data + cmd->off + cmd->len,
                    c->pend_out.len - cmd->off - cmd->len);
            c->pend_out.len -= cmd->len;
            for (aredis__cmd *q = cmd->next; q != NULL; q = q->next)
                q->off -= cmd->len;
            break;
        }
        char msg[96];
        snprintf(msg, sizeof msg, "command timed out after %lld ms",
                 (long long)cmd->timeout_ms);
        finish_error(c, cmd, AREDIS_ETIMEDOUT, msg);
        /* In flight: it stays queued so its late reply is read and
         * dropped in order; otherwise it is gone. */
        if (pending)
            cmd_free(c, cmd);
    }
    if (!c->freeing)
        rearm(c);
}

/* ------------------------------------------------------------------------
 * Free
 * ------------------------------------------------------------------------ */

static void release(aredis_client *c)
{
    close_transport(c);
    if (c->timer != NULL)
        aredis__loop_timer_stop(c->loop, c->timer);
    c->timer = NULL;
    aredis__loop_undefer(c->loop, &c->defer);

    /* Everything still owed a callback gets one, in submission order where
     * it is known: completions already decided, then in flight, then the
     * commands that waited for a connection. */
    aredis__cmd *lists[3] = {c->done_head, aredis__conn_take_inflight(&c->conn),
                             c->pend_head};
    c->done_head = c->done_tail = c->pend_head = c->pend_tail = NULL;
    c->freeing = 2; /* submissions refused, callbacks still allowed */
    for (int i = 0; i < 3; i++) {
        aredis__cmd *cmd = lists[i];
        while (cmd != NULL) {
            aredis__cmd *next = cmd->next;
            if (!(cmd->flags & (AREDIS__CMD_INTERNAL | AREDIS__CMD_DONE))) {
                if (i == 0 && cmd->fail_code != 0)
                    finish_error(c, cmd, cmd->fail_code, cmd->fail_msg);
                else
                    finish_error(c, cmd, AREDIS_ECANCELED,
                                 "canceled: the client was freed");
            }
            aredis__free(cmd);
            cmd = next;
        }
    }
    while (c->free_cmds != NULL) {
        aredis__cmd *next = c->free_cmds->next;
        aredis__free(c->free_cmds);
        c->free_cmds = next;
    }
    aredis__conn_cleanup(&c->conn);
    aredis_buf_cleanup(&c->pend_out);
    aredis__free(c->heap);
    aredis__free(c->addrs);
    aredis__free(c->addrlens);
    for (size_t i = 0; i < c->nhooks; i++)
        aredis__free(c->hooks[i].name);
    aredis__free(c->hooks);
    aredis__arena_cleanup(&c->arena);
    aredis__config_cleanup(&c->cfg);
    if (c->data_free != NULL)
        c->data_free(c->data);
    aredis__free(c);
}

static void on_tick(void *arg)
{
    aredis_client *c = arg;
    if (c->freeing) {
        release(c);
        return;
    }
    if (c->flush_wanted)
        aredis__client_flush(c);
    run_done(c);
    if (c->freeing)
        schedule(c);
}

void aredis_client_free(aredis_client *c)
{
    if (c == NULL || c->freeing)
        return;
    c->freeing = 1;
    /* Everything happens from the loop: a callback on the stack may still
     * be using the client, and callbacks must not run inside this call. */
    schedule(c);
}

/* ------------------------------------------------------------------------
 * Creation
 * ------------------------------------------------------------------------ */

aredis_client *aredis_client_new(aredis_loop *loop, const aredis_options *opts,
                                 aredis_status *st)
{
    aredis_status dummy;
    if (st == NULL)
        st = &dummy;
    st->code = 0;
    st->msg[0] = '\0';
    if (loop == NULL) {
        st->code = AREDIS_EINVAL;
        snprintf(st->msg, sizeof st->msg, "no loop given");
        return NULL;
    }
    aredis_options none;
    if (opts == NULL) {
        memset(&none, 0, sizeof none);
        opts = &none;
    }
    aredis_client *c = aredis__calloc(1, sizeof *c);
    if (c == NULL) {
        st->code = AREDIS_ENOMEM;
        snprintf(st->msg, sizeof st->msg, "out of memory");
        return NULL;
    }
    c->loop = loop;
    int e = aredis__config_from_options(&c->cfg, opts, st->msg, sizeof st->msg);
    if (e != 0) {
        st->code = e;
        aredis__free(c);
        return NULL;
    }
    aredis_buf_init(&c->pend_out);
    e = aredis__conn_init(&c->conn, &c->cfg.limits);
    if (e == 0)
        e = aredis__loop_timer_start(loop, on_timer, c, &c->timer);
    if (e != 0) {
        st->code = e;
        snprintf(st->msg, sizeof st->msg, "%s", aredis_strerror(e));
        aredis__conn_cleanup(&c->conn);
        aredis__config_cleanup(&c->cfg);
        aredis__free(c);
        return NULL;
    }
    start_connect(c);
    return c;
}

/* ------------------------------------------------------------------------
 * Submitting
 * ------------------------------------------------------------------------ */

/* One argument of an encoded command: the writer's own output, so the
 * format is trusted. */
typedef struct arg_view {
    const char *p;
    size_t n;
} arg_view;

/* Read the first `want` arguments of an encoded command; returns argc. */
static int peek_args(const char *p, arg_view *out, int want)
{
    int argc = 0;
    p++; /* '*' */
    while (*p != '\r')
        argc = argc * 10 + (*p++ - '0');
    p += 2;
    for (int i = 0; i < argc && i < want; i++) {
        size_t n = 0;
        p++; /* '$' */
        while (*p != '\r')
            n = n * 10 + (size_t)(*p++ - '0');
        p += 2;
        out[i].p = p;
        out[i].n = n;
        p += n + 2;
    }
    return argc;
}

static int arg_is(const arg_view *a, const char *word)
{
    size_t n = strlen(word);
    return a->n == n && strncasecmp(a->p, word, n) == 0;
}

static const char select_refused[] =
    "SELECT is refused: the database is a client option (aredis_options.db "
    "or the URL path, redis://host/2), because every caller shares the "
    "connection";

typedef struct submit_args {
    const char *fmt;
    va_list *ap;
    int argc;
    const char *const *argv;
    const size_t *argvlen;
} submit_args;

static int submit(aredis_client *c, const aredis_cmd_opts *o,
                  aredis_reply_cb cb, void *ud, const submit_args *sa)
{
    if (c->freeing)
        return AREDIS_ESTATE;
    aredis__cmd *cmd = cmd_new(c);
    if (cmd == NULL)
        return AREDIS_ENOMEM;
    int ready = c->state == AREDIS__ST_READY;
    aredis_buf *b = ready ? &c->conn.out : &c->pend_out;
    size_t start = b->len;
    int e = sa->fmt != NULL ? aredis_write_vfmt(b, sa->fmt, *sa->ap)
                            : aredis_write_argv(b, sa->argc, sa->argv,
                                                sa->argvlen);
    if (e != 0) {
        cmd_free(c, cmd);
        return e;
    }
    cmd->cb = cb;
    cmd->ud = ud;
    cmd->len = b->len - start;
    cmd->off = start;

    arg_view args[3];
    int argc = peek_args(b->data + start, args, 3);
    int kind = AREDIS__REPLY_NORMAL;
    if (arg_is(&args[0], "select")) {
        b->len = start;
        c->pending++;
        defer_done(c, cmd, AREDIS_EINVAL, select_refused);
        return 0;
    }
    if (argc >= 3 && arg_is(&args[0], "client") && arg_is(&args[1], "reply")) {
        if (arg_is(&args[2], "on"))
            kind = AREDIS__REPLY_ON;
        else if (arg_is(&args[2], "off"))
            kind = AREDIS__REPLY_OFF;
        else if (arg_is(&args[2], "skip"))
            kind = AREDIS__REPLY_SKIP;
    }
    for (size_t i = 0; i < c->nhooks; i++) {
        if (c->hooks[i].len == args[0].n &&
            strncasecmp(c->hooks[i].name, args[0].p, args[0].n) == 0) {
            cmd->hook = c->hooks[i].fn;
            cmd->hook_ud = c->hooks[i].ud;
            break;
        }
    }
    if (cmd->hook == NULL && c->cfg.normalize_resp2)
        cmd->norm = aredis__norm_classify(args[0].p, args[0].n,
                                          b->data + start, cmd->len, argc);

    int64_t timeout = c->cfg.command_timeout_ms;
    if (o != NULL && o->timeout_ms != 0)
        timeout = o->timeout_ms;
    if (timeout > 0) {
        cmd->deadline = aredis__now_ms() + timeout;
        cmd->timeout_ms = timeout;
        if (heap_push(c, cmd) != 0) {
            b->len = start;
            cmd_free(c, cmd);
            return AREDIS_ENOMEM;
        }
    }
    c->pending++;
    if (ready) {
        if (!aredis__conn_enqueue(&c->conn, cmd, cmd->len, kind))
            defer_done(c, cmd, 0, NULL);
        want_flush(c);
    } else {
        /* fail_code carries the CLIENT REPLY kind until it is enqueued. */
        cmd->fail_code = kind;
        if (c->pend_tail)
            c->pend_tail->next = cmd;
        else
            c->pend_head = cmd;
        c->pend_tail = cmd;
        if (c->state == AREDIS__ST_IDLE)
            start_connect(c);
    }
    if (cmd->deadline != 0 && cmd->heap_idx == 1)
        rearm(c);
    return 0;
}

int aredis__client_internal(aredis_client *c, int argc, const char **argv,
                            void (*icb)(aredis_client *, aredis__cmd *,
                                        const aredis_reply *))
{
    aredis__cmd *cmd = cmd_new(c);
    if (cmd == NULL)
        return AREDIS_ENOMEM;
    size_t start = c->conn.out.len;
    int e = aredis_write_argv(&c->conn.out, argc, argv, NULL);
    if (e != 0) {
        cmd_free(c, cmd);
        return e;
    }
    cmd->flags = AREDIS__CMD_INTERNAL;
    cmd->icb = icb;
    cmd->len = c->conn.out.len - start;
    aredis__conn_enqueue(&c->conn, cmd, cmd->len, AREDIS__REPLY_NORMAL);
    aredis__client_flush(c);
    return 0;
}

int aredis_vcommand(aredis_client *c, aredis_reply_cb cb, void *ud,
                    const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    submit_args sa = {fmt, &copy, 0, NULL, NULL};
    int e = fmt != NULL ? submit(c, NULL, cb, ud, &sa) : AREDIS_EFORMAT;
    va_end(copy);
    return e;
}

int aredis_command(aredis_client *c, aredis_reply_cb cb, void *ud,
                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    submit_args sa = {fmt, &ap, 0, NULL, NULL};
    int e = fmt != NULL ? submit(c, NULL, cb, ud, &sa) : AREDIS_EFORMAT;
    va_end(ap);
    return e;
}

int aredis_command_opts(aredis_client *c, const aredis_cmd_opts *o,
                        aredis_reply_cb cb, void *ud, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    submit_args sa = {fmt, &ap, 0, NULL, NULL};
    int e = fmt != NULL ? submit(c, o, cb, ud, &sa) : AREDIS_EFORMAT;
    va_end(ap);
    return e;
}

int aredis_commandv(aredis_client *c, aredis_reply_cb cb, void *ud, int argc,
                    const char *const *argv, const size_t *argvlen)
{
    submit_args sa = {NULL, NULL, argc, argv, argvlen};
    return submit(c, NULL, cb, ud, &sa);
}

int aredis_commandv_opts(aredis_client *c, const aredis_cmd_opts *o,
                         aredis_reply_cb cb, void *ud, int argc,
                         const char *const *argv, const size_t *argvlen)
{
    submit_args sa = {NULL, NULL, argc, argv, argvlen};
    return submit(c, o, cb, ud, &sa);
}

/* ------------------------------------------------------------------------
 * Small accessors
 * ------------------------------------------------------------------------ */

void aredis_client_set_push_handler(aredis_client *c, aredis_push_cb cb,
                                    void *ud)
{
    c->push_cb = cb;
    c->push_ud = ud;
}

int aredis_client_set_reply_hook(aredis_client *c, const char *command,
                                 aredis_reply_hook hook, void *ud)
{
    if (command == NULL || command[0] == '\0')
        return AREDIS_EINVAL;
    size_t len = strlen(command);
    for (size_t i = 0; i < c->nhooks; i++) {
        if (c->hooks[i].len != len || strcasecmp(c->hooks[i].name, command))
            continue;
        if (hook != NULL) {
            c->hooks[i].fn = hook;
            c->hooks[i].ud = ud;
            return 0;
        }
        aredis__free(c->hooks[i].name);
        c->hooks[i] = c->hooks[--c->nhooks];
        return 0;
    }
    if (hook == NULL)
        return 0;
    aredis__hook *h = aredis__reallocarray(c->hooks, c->nhooks + 1, sizeof *h);
    if (h == NULL)
        return AREDIS_ENOMEM;
    c->hooks = h;
    char *name = aredis__strndup(command, len);
    if (name == NULL)
        return AREDIS_ENOMEM;
    c->hooks[c->nhooks++] = (aredis__hook){name, len, hook, ud};
    return 0;
}

int aredis_client_protocol(const aredis_client *c)
{
    return c->proto;
}

size_t aredis_client_pending(const aredis_client *c)
{
    return c->pending;
}

void aredis_client_set_data(aredis_client *c, void *data,
                            void (*free_fn)(void *))
{
    c->data = data;
    c->data_free = free_fn;
}

void *aredis_client_get_data(const aredis_client *c)
{
    return c->data;
}
