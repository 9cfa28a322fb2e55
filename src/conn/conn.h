/* Interface of the connection layer to the layers above: the sans-I/O state
 * machine of one server connection.
 *
 * A connection owns everything about one server connection that needs no
 * system call: its state (idle, backoff, resolving, connecting, handshake,
 * ready), the commands waiting for it to be ready, the output bytes, the
 * FIFO of commands awaiting replies, a reader, the handshake (HELLO 3, AUTH,
 * SETNAME, SELECT, with the RESP2 fallback, then the owner's extra steps),
 * the attempts and the backoff
 * between them, and the policy for a lost connection: what is sent again
 * and what fails "outcome unknown".
 *
 * It is driven by events (the aredis__conn_* calls below: connect
 * requested, resolution done, transport open or failed, bytes arrived,
 * bytes written, closed, timer fired, command submitted or cancelled) and
 * answers with actions that the driver takes one at a time with
 * aredis__conn_poll(): resolve, open a transport to address i, close it,
 * complete a command, deliver a push, report a connection event. It never
 * calls the OS, never reads the clock (`now` is passed in) and never runs
 * user code: a completion is an action, so the state is consistent
 * whenever the driver runs a callback. Unit-tested and fuzzed without a
 * server (tests/unit/test_conn.c, fuzz/fuzz_conn.c). */
#ifndef AREDIS_CONN_CONN_H
#define AREDIS_CONN_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "aredis/resp.h"

/* States. */
enum {
    AREDIS__ST_IDLE,       /* no transport; the next command connects */
    AREDIS__ST_BACKOFF,    /* waiting before the next attempt */
    AREDIS__ST_RESOLVING,  /* waiting for the host name */
    AREDIS__ST_CONNECTING, /* a transport is opening (TCP connect, TLS) */
    AREDIS__ST_HANDSHAKE,  /* HELLO / AUTH / SETNAME / SELECT */
    AREDIS__ST_READY,
};

/* Flags of a command's connection part. */
enum {
    /* A part of a whole with the commands around it (MULTI ... EXEC): the
     * server would make something else of them without it, so
     * aredis__conn_cancel() never takes it out. */
    AREDIS__CC_TOGETHER = 1 << 0,
    AREDIS__CC_INTERNAL = 1 << 1,  /* a handshake step, owned by the conn */
    AREDIS__CC_PENDING = 1 << 2,   /* waiting for the connection to be ready */
    AREDIS__CC_RETRY = 1 << 3,     /* may be re-sent after it was written */
    AREDIS__CC_NO_RESEND = 1 << 4, /* never re-sent, even unwritten */
    AREDIS__CC_WAS_SENT = 1 << 5,  /* written once already (a retry) */
    AREDIS__CC_CANCELLED = 1 << 6, /* its owner completed it: drop its reply */
    /* Applies to the command queued right after it (ASKING before a
     * redirected command, CLIENT CACHING YES before a read): never taken
     * out by aredis__conn_cancel() on its own, and taken out with that
     * command. */
    AREDIS__CC_GLUED = 1 << 7,
};

/* What a command does to the CLIENT REPLY state. */
enum {
    AREDIS__REPLY_NORMAL,
    AREDIS__REPLY_ON,
    AREDIS__REPLY_OFF,
    AREDIS__REPLY_SKIP,
    AREDIS__REPLY_PUSHED, /* answered by push frames (pub/sub), not a reply */
};

typedef struct aredis__conn_cmd aredis__conn_cmd;

/* The connection's part of a command record. The owner embeds it (as the
 * first member, so a pointer to it is a pointer to the record) and keeps
 * everything else about the command, callbacks included, to itself.
 *
 * 32 bytes: it is paid once per command in flight, so fields that are
 * never live at the same time share their room (tests/unit/test_conn.c
 * pins the size). */
struct aredis__conn_cmd {
    aredis__conn_cmd *next; /* the queue that holds it (its owner's too) */
    union {
        /* In flight: stream offset just past its bytes (lowered when an
         * unwritten command before it is taken out: aredis__conn_cancel). */
        uint64_t end;
        size_t off;      /* pending: its bytes' offset in the pending buffer */
        const char *msg; /* in a done list: the error's text */
    };
    /* Owned (aredis__malloc): its bytes, kept when it may be re-sent; once
     * it fails, the text of its error. Freed by the owner with the record. */
    char *copy;
    uint32_t len;       /* its bytes' length (AREDIS__CONN_CMD_MAX at most) */
    uint8_t flags;      /* AREDIS__CC_* */
    uint8_t reply_kind; /* AREDIS__REPLY_* */
    int16_t code;       /* in a done list: the error (0: a nil reply) */
};

/* The longest command a record can describe. */
#define AREDIS__CONN_CMD_MAX UINT32_MAX
/* The longest message the connection keeps or composes (NUL included): a
 * loss's reason, which may quote the server (a refused handshake) or name
 * every sentinel a discovery asked. Longer ones are cut cleanly
 * (aredis__msgf). */
#define AREDIS__CONN_MSG_MAX 512

/* A command a connection's handshake sends after its built-in steps (the
 * client-side cache's CLIENT TRACKING): its RESP bytes, and its name for
 * the error message when the server refuses it. Borrowed. */
typedef struct aredis__conn_step {
    const char *name;
    const char *bytes;
    size_t len;
} aredis__conn_step;

/* Fixed for the connection's life; strings are borrowed. */
typedef struct aredis__conn_config {
    int protocol; /* 0: automatic (RESP3, RESP2 fallback), 2 or 3 */
    int db;
    const char *username, *password, *client_name;
    int max_attempts;    /* per outage; < 0: forever; 0: never retry */
    uint8_t one_address; /* a unix socket: open address 0, no lookup */
    /* The bytes of every command stay in the output buffer until its
     * reply (or its failure) has been taken, where
     * aredis__conn_cmd_bytes() finds them: an owner that may send a
     * command again elsewhere after its reply (a cluster's redirects)
     * needs no copy of its own. */
    uint8_t keep_inflight;
    int64_t backoff_first_ms;           /* first wait after a failed attempt */
    int64_t backoff_max_ms;             /* cap of the doubling */
    int64_t connect_timeout_ms;         /* < 0: none */
    const aredis_reader_limits *limits; /* NULL: the reader's defaults */
    /* The jitter's random source: a uniform 64-bit value. */
    uint64_t (*rand)(void *ud);
    /* Optional: a block (aredis__malloc'd, *cap bytes, now the
     * connection's) for an empty output buffer to grow from, or NULL. An
     * idle connection gives its buffer back (aredis__conn_take_out). */
    void *(*spare_block)(void *ud, size_t *cap);
    void *ud; /* rand's and spare_block's */
} aredis__conn_config;

/* Actions (aredis__conn_poll). */
enum {
    AREDIS__ACT_RESOLVE = 1, /* start resolving; answer resolved()/failed() */
    AREDIS__ACT_OPEN,        /* open a transport to address `index`; answer
                              * opened() or open_failed() */
    AREDIS__ACT_CLOSE,       /* close the transport and any resolution */
    AREDIS__ACT_COMPLETE,    /* cmd is done: `reply`, or error `code`/`msg`
                              * (code 0 and no reply: the server sends none,
                              * a nil). Check CANCELLED. The conn no longer
                              * holds it. */
    AREDIS__ACT_PUSH,        /* a push frame (RESP3) or, with raw_push, any
                              * reply: `reply` */
    AREDIS__ACT_EVENT,       /* `event` (AREDIS__EV_*) with code, msg,
                              * delay_ms, attempt */
};

/* Connection events, as the public AREDIS_CONN_* values. */
enum {
    AREDIS__EV_CONNECTED = 1,
    AREDIS__EV_DISCONNECTED = 2,
    AREDIS__EV_RECONNECTING = 3,
};

/* cmd, reply, code and msg are NULL or 0 unless the kind carries them;
 * index, event, delay_ms and attempt are only set for the kinds that
 * carry them. */
typedef struct aredis__conn_action {
    int kind;
    aredis__conn_cmd *cmd;
    const aredis_reply *reply; /* borrowed until the next call on the conn */
    int code;
    const char *msg; /* borrowed until the next call on the conn */
    size_t index;
    int event;
    int64_t delay_ms;
    int attempt;
} aredis__conn_action;

/* A queued action (events and I/O; completions have their own list):
 * 16 bytes, four of them in every connection. */
typedef struct aredis__conn_qa {
    int32_t delay_ms; /* a backoff, capped at INT32_MAX ms */
    int32_t attempt;
    uint32_t index;
    int16_t code; /* error codes are small (error.h) */
    uint8_t kind, event;
} aredis__conn_qa;

/* A transition queues at most three actions (CLOSE, DISCONNECTED,
 * RECONNECTING) and the driver takes them after every event it feeds. */
enum { AREDIS__CONN_QMAX = 4 };

/* Every connection of a client holds one, idle or not: the members are
 * ordered so that the small ones share words (tests/unit/test_conn.c
 * bounds the size). */
typedef struct aredis__conn {
    const aredis__conn_config *cfg;
    int attempts; /* failed attempts in the current outage */
    /* The attempt's addresses, the next one (a resolution gives a
     * handful: more than 65535 are not tried). */
    uint16_t naddrs, addr_next;
    /* Steps every handshake ends with, after SELECT and before any queued
     * command, one at a time; a refusal fails the handshake like any
     * step's. Borrowed (`extra`, below): the owner keeps the array valid
     * while it is set and may change it between steps (each connect reads
     * it afresh). */
    uint8_t nextra;
    uint8_t extra_i; /* the extra step in flight */

    uint8_t state;   /* AREDIS__ST_* */
    uint8_t proto;   /* 2 or 3 once negotiated */
    uint8_t hs_step; /* the handshake step in flight */
    /* Flags, together so that they cost a byte each and no padding. */
    uint8_t ever_ready;
    /* Policy, set by the owner. */
    uint8_t exclusive; /* one caller at a time: dropped, not retried, when
                        * idle */
    uint8_t lent;      /* lent to a caller: never reconnected behind its
                        * back */
    uint8_t keep;      /* carries subscriptions: reconnects for as long as
                        * it takes */
    uint8_t broken;    /* a lent connection was lost: commands fail until it
                        * is given back */
    uint8_t raw_push;  /* RESP2 pub/sub: every reply is a message */
    /* The bytes of the latest write stay at the front of `out` until the
     * next one, so that a close proving them undelivered
     * (aredis__conn_acked) finds them to send again. */
    uint8_t keep_sent;
    /* aredis__conn_acked() before this loss: only `acked` bytes of the
     * stream reached the server. */
    uint8_t have_acked;
    uint8_t unsettled; /* not ready, or ready since the reader's last
                        * aredis__conn_take_reader() */
    uint8_t reply_off; /* CLIENT REPLY OFF in effect */
    uint8_t skip_next; /* CLIENT REPLY SKIP: the next command gets none */
    /* Actions not yet taken: q[qhead], then the next qlen - 1. */
    uint8_t qhead, qlen;
    /* The latest write is not all written yet (the transport took part
     * of it): its rest goes out whatever aredis__conn_held() says. A
     * cancel that takes out all of that rest ends it. */
    uint8_t wpart;
    /* The bytes of the latest write so far, modulo 2^32: it began at
     * `written` - wlast. A wrong count (a write of 4 GB) is harmless:
     * only a command written in full is waited for. */
    uint32_t wlast;

    int64_t deadline; /* connect deadline or end of backoff; 0: none */
    /* Allocated at the first loss (a connection that never loses one
     * never pays for it); NULL also when that allocation failed. */
    struct aredis__conn_msgs {
        char err[AREDIS__CONN_MSG_MAX]; /* why the connection was last lost */
        char ev[AREDIS__CONN_MSG_MAX];  /* the message of the event reported */
    } * msgs;
    int64_t now; /* the latest time an event brought */

    uint64_t acked; /* see have_acked */
    const aredis__conn_step *extra;

    /* Commands waiting for the connection to be ready, with their bytes. */
    aredis_buf pend_out;
    aredis__conn_cmd *pend_head, *pend_tail;
    /* Commands pending and in flight (head..tail). 32 bits: each holds a
     * record of its own, so four billion of them would not fit in
     * memory. */
    uint32_t npend, inflight;

    /* Bytes to write; out_pos of them already written. The rest is the
     * bytes of the commands queued since, back to back in their order (a
     * cancelled one is cut out: aredis__conn_cancel). */
    aredis_buf out;
    size_t out_pos;
    uint64_t queued;  /* stream offset of the end of `out` */
    uint64_t written; /* stream offset written to the transport */
    uint64_t base;    /* stream offset of out.data[0] */
    uint64_t heard;   /* `written` when the latest input arrived: only
                       * commands up to there can have been answered */
    aredis_reader *rd;
    aredis__conn_cmd *head, *tail; /* awaiting replies, oldest first */

    aredis__conn_qa q[AREDIS__CONN_QMAX];
    aredis__conn_cmd *done_head, *done_tail;
} aredis__conn;

/* 0 or AREDIS_ENOMEM. cfg is borrowed for the connection's life. */
int aredis__conn_init(aredis__conn *cn, const aredis__conn_config *cfg);
/* Frees what the connection owns; commands still held are not touched
 * (take them first with aredis__conn_take_all). */
void aredis__conn_cleanup(aredis__conn *cn);

/* ---- events -------------------------------------------------------------- */

/* Connect requested: from IDLE or BACKOFF only (one attempt at a time). */
void aredis__conn_connect(aredis__conn *cn, int64_t now);
/* The name resolved to n addresses (open_failed() walks them). */
void aredis__conn_resolved(aredis__conn *cn, size_t n, int64_t now);
/* Resolution failed, or a transport could not be opened or broke before
 * the handshake: try the next address, or give the attempt up. */
void aredis__conn_open_failed(aredis__conn *cn, int code, const char *msg,
                              int64_t now);
/* The transport is open (TCP connected, TLS done): the handshake starts. */
void aredis__conn_opened(aredis__conn *cn, int64_t now);
/* The transport failed or the server closed it. */
void aredis__conn_closed(aredis__conn *cn, int code, const char *msg,
                         int64_t now);
/* Evidence for the close about to be reported with aredis__conn_closed():
 * the server closed (its FIN arrived) having acknowledged only `acked`
 * bytes of the stream. A command whose last byte lies beyond never
 * reached the server, so it is sent again like one never written (its
 * bytes are found with keep_sent). The count may only overstate what was
 * received (then fewer commands are re-sent), never understate it. */
void aredis__conn_acked(aredis__conn *cn, uint64_t acked);
/* The timer (aredis__conn_deadline) fired. */
void aredis__conn_timer(aredis__conn *cn, int64_t now);

/* Submit a command with its len (cmd->len) bytes. bytes == NULL means they
 * are already at the end of cn->out (the fast path, READY only). Returns 0
 * (the command will be completed through an action, exactly once) or
 * AREDIS_ENOMEM (nothing happened). */
int aredis__conn_submit(aredis__conn *cn, aredis__conn_cmd *cmd,
                        const char *bytes, int64_t now);
/* The owner completed cmd itself (a deadline). A command none of whose
 * bytes were written, pending or queued in `out` (held in a deep
 * pipeline, refused by a full socket, waiting for the end of the loop
 * turn), is taken out with its bytes: it is never sent, and returns 1
 * (the owner has it back). Commands GLUED in front of it go with it and
 * complete (AREDIS_ECANCELED) through COMPLETE actions.
 *
 * Otherwise it stays, so its late reply is read in order, and comes back
 * through a COMPLETE action with CANCELLED set (returns 0): when any of
 * its bytes (or of those glued in front of it) were written, and,
 * pending or queued alike, when taking it out would change what the
 * server makes of the others: a command aredis__conn_cmd_bound() names
 * (CLIENT REPLY, GLUED, TOGETHER: the parts of MULTI ... EXEC stay
 * whole), any on a lent connection (the borrower's sequence, WATCH ...
 * EXEC), and one that CLIENT REPLY OFF or SKIP silences. NO_RESEND alone
 * keeps nothing: it is about a loss, not a deadline.
 * O(commands in flight): deadlines are rare. */
int aredis__conn_cancel(aredis__conn *cn, aredis__conn_cmd *cmd);
/* Whether the command itself (wherever it waits: a connection, or its
 * owner's queue before one) must never be taken out unsent alone: the
 * commands around it depend on it (aredis__conn_cancel). */
static inline int aredis__conn_cmd_bound(const aredis__conn_cmd *cmd)
{
    return cmd->reply_kind != AREDIS__REPLY_NORMAL ||
           (cmd->flags &
            (AREDIS__CC_GLUED | AREDIS__CC_TOGETHER | AREDIS__CC_INTERNAL));
}
/* Close and fail everything with code/msg (COMPLETE actions). */
void aredis__conn_abort(aredis__conn *cn, int code, const char *msg);
/* Detach the commands waiting for the connection to be ready, with
 * nothing else changed, for the owner to send elsewhere: each comes with
 * its bytes in cmd->copy (copied from the pending buffer when it had
 * none; one that cannot be copied stays, completed AREDIS_ENOMEM). */
aredis__conn_cmd *aredis__conn_take_pending(aredis__conn *cn);
/* With cfg->keep_inflight: the bytes of a command in flight, or of one
 * whose reply the latest COMPLETE action carried (they stay until the
 * next write is reported). NULL when the connection does not hold them.
 * The pointer is good until the next call on cn: a submit may move the
 * buffer. */
const char *aredis__conn_cmd_bytes(const aredis__conn *cn,
                                   const aredis__conn_cmd *cmd);
/* Detach every command the connection holds (pending, in flight, done);
 * handshake steps are freed. For the owner's final cleanup. */
aredis__conn_cmd *aredis__conn_take_all(aredis__conn *cn);

/* The connection's reader if it holds nothing (no byte of a reply not yet
 * returned, no error) and aredis__conn_sheds(), now the caller's, or
 * NULL; the connection makes or is given another with its next bytes.
 * Not while a reply it returned is in use. */
aredis_reader *aredis__conn_take_reader(aredis__conn *cn);
/* The output buffer of an idle ready connection with nothing to write,
 * or an empty one of a connection that aredis__conn_sheds() (its
 * handshake's bytes written), moved to *out (the connection's is then
 * empty, and grows again with the next bytes, from a spare block if the
 * owner has one): 0, or -1 otherwise or when it has no buffer. */
int aredis__conn_take_out(aredis__conn *cn, aredis_buf *out);
/* Give it back (the caller could not place it): the connection must be
 * as aredis__conn_take_out() left it. */
void aredis__conn_put_out(aredis__conn *cn, aredis_buf *out);

/* Give a connection without a reader one that holds nothing (from
 * aredis__conn_take_reader() of this or another connection): 0, or -1
 * (rd stays the caller's). */
int aredis__conn_give_reader(aredis__conn *cn, aredis_reader *rd);

/* Where the transport should read to: NULL when the reply being read has
 * outgrown the limits, in which case the connection is lost (ETOOBIG).
 * Then how many bytes arrived. Bytes that arrive can only answer commands
 * written before they did. */
char *aredis__conn_in_buf(aredis__conn *cn, size_t *avail);
void aredis__conn_in_commit(aredis__conn *cn, size_t n, int64_t now);

/* Bytes to write now: valid until the next call on cn. 0 unless the
 * connection is in the handshake or ready, and 0 while it holds them
 * (aredis__conn_held). */
size_t aredis__conn_out(const aredis__conn *cn, const char **data);
/* n bytes of aredis__conn_out() reached the transport. */
void aredis__conn_wrote(aredis__conn *cn, size_t n);

/* ---- actions and queries ------------------------------------------------- */

/* The next action: 1 and *a filled, or 0 when there is none. Replies are
 * parsed here, one per call; a reply or message in *a is borrowed until
 * the next call on cn. Not re-entrant (debug builds assert it): the driver
 * takes an action, runs what it asks (user callbacks included), then
 * polls again. */
int aredis__conn_poll(aredis__conn *cn, aredis__conn_action *a);

/* When the driver should call aredis__conn_timer(); 0: never. */
static inline int64_t aredis__conn_deadline(const aredis__conn *cn)
{
    return cn->deadline;
}

/* A shared connection with many commands awaiting replies (a deep
 * pipeline) has at most two writes unanswered: while the older of the
 * two latest is not all answered, the next one waits, and the bytes
 * queued meanwhile go out together once a reply completes it. The server
 * has the latest write to go on with when it has answered the one
 * before, and the owner writes about once per batch of replies rather
 * than once per batch of submits (a cluster client's callbacks submit to
 * every node on every loop turn). With fewer commands in flight the
 * server is likely to take both writes in one read and then wait for
 * the held ones: each write goes as it comes (without the threshold, a
 * cluster client with 16 SETs in flight over three primaries did 10%
 * fewer per second; with it, 1024 in flight cost a quarter less client
 * CPU, bench/bench_cluster.c).
 * Held bytes were never written: a loss sends them again like any
 * unwritten command, and a deadline takes its command out with them
 * (aredis__conn_cancel). An exclusive connection (one caller, who waits)
 * never holds. */
enum { AREDIS__CONN_HOLD_MIN = 64 };

static inline int aredis__conn_held(const aredis__conn *cn)
{
    /* No command straddles the start of a write all written. */
    return cn->inflight >= AREDIS__CONN_HOLD_MIN &&
           cn->head->end + cn->wlast <= cn->written && !cn->wpart &&
           !cn->exclusive;
}

/* Bytes are waiting to be written (aredis__conn_out() may hold them
 * still: the owner asks again when a reply has come). */
static inline int aredis__conn_want_write(const aredis__conn *cn)
{
    return cn->state >= AREDIS__ST_HANDSHAKE && cn->out.len > cn->out_pos;
}

/* Nothing to do: no command pending, in flight or owed a completion. */
static inline int aredis__conn_idle(const aredis__conn *cn)
{
    return cn->npend == 0 && cn->inflight == 0 && cn->done_head == NULL;
}

/* Whether the connection would give its reader back (when it holds
 * nothing): when idle, while not ready, and once when its handshake is
 * done, though the commands that waited for it are in flight then. So a
 * thousand clients connecting at once parse their handshakes with the
 * few readers the loop keeps, not one each, while a busy connection
 * keeps its own between replies. */
static inline int aredis__conn_sheds(const aredis__conn *cn)
{
    return cn->unsettled || aredis__conn_idle(cn);
}

#endif /* AREDIS_CONN_CONN_H */
