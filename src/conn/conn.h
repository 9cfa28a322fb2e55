/* Interface of the connection layer to the client: the sans-I/O state of
 * one server connection.
 *
 * A connection owns the output bytes not yet written, the FIFO of commands
 * awaiting replies and a reader. It is driven with "these bytes arrived"
 * and "these many bytes were written", and it hands out replies paired
 * with the command they answer. It never calls the OS, never reads the
 * clock and never runs a user callback itself, so it can be unit-tested
 * and fuzzed without a server. */
#ifndef AREDIS_CONN_CONN_H
#define AREDIS_CONN_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "aredis/client.h"
#include "aredis/resp.h"
#include "util/heap.h"

typedef struct aredis__cmd aredis__cmd;

/* Flags of a command record. */
enum {
    AREDIS__CMD_NOREPLY = 1 << 0, /* the server sends no reply (CLIENT REPLY) */
    AREDIS__CMD_DONE = 1 << 1,    /* its callback has run or is scheduled */
    AREDIS__CMD_INTERNAL = 1 << 2, /* a handshake step, not a user command */
};

/* One command, from submit to completion: a single allocation that is
 * linked into whichever queue holds it (pending, in flight, done). */
struct aredis__cmd {
    aredis__cmd *next;
    uint64_t end;       /* stream offset just past its bytes (in flight) */
    size_t off, len;    /* its bytes in the client's pending buffer */
    aredis_reply_cb cb; /* user callback, or NULL */
    void *ud;
    void (*icb)(aredis_client *c, aredis__cmd *cmd, const aredis_reply *r);
    aredis_reply_hook hook;
    void *hook_ud;
    /* In the client's deadline heap while it has a deadline: key is the
     * absolute time in ms. */
    aredis__heap_node dl;
    int64_t timeout_ms; /* what the deadline was computed from */
    unsigned flags;
    int norm;      /* built-in RESP2 -> RESP3 reshaping, see client */
    int fail_code; /* for the done queue: the error to report */
    const char *fail_msg;
    int reply_kind;     /* AREDIS__REPLY_*: its effect on CLIENT REPLY */
    void *link;         /* the client's link that holds it, or NULL */
    char *copy;         /* its bytes, kept when it may be re-sent; once it fails
                         * from the loop, the text of its error */
    int64_t wait_until; /* waiting for an exclusive connection until then */
};

/* What a command does to the CLIENT REPLY state. */
enum {
    AREDIS__REPLY_NORMAL,
    AREDIS__REPLY_ON,
    AREDIS__REPLY_OFF,
    AREDIS__REPLY_SKIP,
    AREDIS__REPLY_PUSHED, /* answered by push frames (pub/sub), not a reply */
};

typedef struct aredis__conn {
    aredis_buf out; /* bytes to write; out_pos of them already written */
    size_t out_pos;
    uint64_t queued;  /* stream offset of the end of `out` */
    uint64_t written; /* stream offset written to the socket */
    uint64_t base;    /* stream offset of out.data[0] */
    uint64_t heard;   /* `written` when the latest input arrived: only
                       * commands up to there can have been answered */
    aredis_reader *rd;
    aredis_reader_limits limits;
    aredis__cmd *head, *tail; /* awaiting replies, oldest first */
    size_t inflight;
    int reply_off; /* CLIENT REPLY OFF in effect */
    int skip_next; /* CLIENT REPLY SKIP: the next command gets none */
    int raw_push;  /* RESP2 pub/sub: every reply is a message */
} aredis__conn;

/* 0 or AREDIS_ENOMEM. */
int aredis__conn_init(aredis__conn *cn, const aredis_reader_limits *limits);
void aredis__conn_cleanup(aredis__conn *cn);

/* Forget everything of the previous socket (bytes, reader state, reply
 * mode) for a new one. The FIFO must have been emptied by the caller.
 * 0 or AREDIS_ENOMEM. */
int aredis__conn_reset(aredis__conn *cn);

/* The caller appended a command's `len` bytes to cn->out. Record it in
 * the FIFO unless the CLIENT REPLY state says no reply will come, in which
 * case the NOREPLY flag is set and the caller completes it itself. Returns
 * 1 when the command awaits a reply. */
int aredis__conn_enqueue(aredis__conn *cn, aredis__cmd *cmd, size_t len,
                         int reply_kind);

/* Bytes waiting to be written: valid until the next call on cn. */
static inline size_t aredis__conn_out(const aredis__conn *cn, const char **data)
{
    /* No arithmetic on a NULL buffer (nothing was ever queued). */
    if (cn->out.len == cn->out_pos) {
        *data = cn->out.data;
        return 0;
    }
    *data = cn->out.data + cn->out_pos;
    return cn->out.len - cn->out_pos;
}

/* n bytes of aredis__conn_out() reached the socket. */
void aredis__conn_wrote(aredis__conn *cn, size_t n);

/* A queued command's bytes, if the buffer still holds all of them (the
 * front of the buffer is dropped lazily once written); NULL otherwise. */
const char *aredis__conn_cmd_bytes(const aredis__conn *cn,
                                   const aredis__cmd *cmd);

/* Where the transport should read to, and how much arrived. Bytes that
 * arrive can only answer commands written before they did. */
char *aredis__conn_in_buf(aredis__conn *cn, size_t *avail);
int aredis__conn_in_commit(aredis__conn *cn, size_t n);

/* Input already read and not yet handed out as replies. */
static inline int aredis__conn_has_input(const aredis__conn *cn)
{
    return aredis_reader_buffered(cn->rd) != 0;
}

/* The next complete reply and the command it answers (NULL for a RESP3
 * push). The command has left the FIFO; the reply is borrowed until the
 * next call. Returns 1, 0 when more bytes are needed, or a negative error
 * (protocol error, limit, or a reply nobody asked for: no command in the
 * FIFO, or the oldest one not written in full when the reply's last bytes
 * arrived) with a message from aredis__conn_errstr(). */
int aredis__conn_next(aredis__conn *cn, aredis__cmd **cmd,
                      const aredis_reply **r);
const char *aredis__conn_errstr(const aredis__conn *cn);

/* Detach and return the FIFO of commands awaiting replies. */
aredis__cmd *aredis__conn_take_inflight(aredis__conn *cn);

#endif /* AREDIS_CONN_CONN_H */
