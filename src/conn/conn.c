/* The connection state machine (connection layer), sans I/O.
 *
 * It pairs replies with commands in order, keeps the CLIENT REPLY state so
 * the pairing never goes out of step, routes RESP3 pushes aside and owns
 * the output buffer. It makes no system call, reads no clock and runs no
 * user code: the client drives it. */
#include "conn/conn.h"

#include <string.h>

#include "aredis/error.h"
#include "resp/resp.h"
#include "util/alloc.h"

/* Written bytes are dropped from the front of the buffer lazily, once they
 * are this many, to keep memmove off the common path. */
#define COMPACT_AT ((size_t)64 * 1024)

int aredis__conn_init(aredis__conn *cn, const aredis_reader_limits *limits)
{
    memset(cn, 0, sizeof *cn);
    if (limits != NULL)
        cn->limits = *limits;
    aredis_buf_init(&cn->out);
    cn->rd = aredis_reader_new(&cn->limits);
    return cn->rd != NULL ? 0 : AREDIS_ENOMEM;
}

void aredis__conn_cleanup(aredis__conn *cn)
{
    aredis_buf_cleanup(&cn->out);
    aredis_reader_free(cn->rd);
    cn->rd = NULL;
}

int aredis__conn_reset(aredis__conn *cn)
{
    /* A reader that saw a protocol error stays failed: start a new one. */
    aredis_reader *rd = aredis_reader_new(&cn->limits);
    if (rd == NULL)
        return AREDIS_ENOMEM;
    aredis_reader_free(cn->rd);
    cn->rd = rd;
    cn->out.len = 0;
    cn->out_pos = 0;
    cn->queued = cn->written = cn->base = cn->heard = 0;
    cn->head = cn->tail = NULL;
    cn->inflight = 0;
    cn->reply_off = cn->skip_next = 0;
    cn->raw_push = 0;
    return 0;
}

int aredis__conn_enqueue(aredis__conn *cn, aredis__cmd *cmd, size_t len,
                         int reply_kind)
{
    cn->queued += len;
    cmd->end = cn->queued;
    cmd->next = NULL;

    /* CLIENT REPLY (see the command's documentation): OFF and SKIP get no
     * reply themselves; OFF silences everything after it until ON, whose
     * +OK does arrive; SKIP silences the one command that follows. */
    int silent;
    switch (reply_kind) {
    case AREDIS__REPLY_ON:
        cn->reply_off = 0;
        cn->skip_next = 0;
        silent = 0;
        break;
    case AREDIS__REPLY_OFF:
        cn->reply_off = 1;
        silent = 1;
        break;
    case AREDIS__REPLY_SKIP:
        if (!cn->reply_off)
            cn->skip_next = 1;
        silent = 1;
        break;
    case AREDIS__REPLY_PUSHED:
        /* SUBSCRIBE and friends: confirmed by push frames (RESP3) or by
         * messages on a connection in subscribed mode (RESP2). */
        silent = 1;
        break;
    default:
        silent = cn->reply_off || cn->skip_next;
        cn->skip_next = 0;
        break;
    }
    if (silent) {
        cmd->flags |= AREDIS__CMD_NOREPLY;
        return 0;
    }
    if (cn->tail)
        cn->tail->next = cmd;
    else
        cn->head = cmd;
    cn->tail = cmd;
    cn->inflight++;
    return 1;
}

void aredis__conn_wrote(aredis__conn *cn, size_t n)
{
    cn->out_pos += n;
    cn->written += n;
    if (cn->out_pos == cn->out.len) {
        cn->out_pos = 0;
        cn->out.len = 0;
        cn->base = cn->written;
    } else if (cn->out_pos >= COMPACT_AT) {
        aredis__buf_consume(&cn->out, cn->out_pos);
        cn->base += cn->out_pos;
        cn->out_pos = 0;
    }
}

const char *aredis__conn_cmd_bytes(const aredis__conn *cn,
                                   const aredis__cmd *cmd)
{
    uint64_t start = cmd->end - cmd->len;
    if (start < cn->base || cmd->end > cn->base + cn->out.len)
        return NULL;
    return cn->out.data + (size_t)(start - cn->base);
}

char *aredis__conn_in_buf(aredis__conn *cn, size_t *avail)
{
    return aredis_reader_prepare(cn->rd, 0, avail);
}

int aredis__conn_in_commit(aredis__conn *cn, size_t n)
{
    cn->heard = cn->written;
    return aredis_reader_commit(cn->rd, n);
}

static char stray_msg[] = "reply received with no command awaiting one";

int aredis__conn_next(aredis__conn *cn, aredis__cmd **cmd,
                      const aredis_reply **r)
{
    int e = aredis_reader_get_reply(cn->rd, r);
    if (e <= 0)
        return e;
    if ((*r)->type == AREDIS_REPLY_PUSH || cn->raw_push) {
        *cmd = NULL;
        return 1;
    }
    /* A server answers only what it has received in full: a reply that
     * completed with bytes read before the oldest command had been written
     * (nothing in flight, or a command a handshake reply read in the same
     * batch released) is not for anyone. */
    aredis__cmd *c = cn->head;
    if (c == NULL || c->end > cn->heard)
        return AREDIS_EPROTO;
    cn->head = c->next;
    if (cn->head == NULL)
        cn->tail = NULL;
    cn->inflight--;
    c->next = NULL;
    *cmd = c;
    return 1;
}

const char *aredis__conn_errstr(const aredis__conn *cn)
{
    const char *s = aredis_reader_errstr(cn->rd);
    return s[0] != '\0' ? s : stray_msg;
}

aredis__cmd *aredis__conn_take_inflight(aredis__conn *cn)
{
    aredis__cmd *h = cn->head;
    cn->head = cn->tail = NULL;
    cn->inflight = 0;
    return h;
}
