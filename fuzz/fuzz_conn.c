/* libFuzzer target for the connection state machine (src/conn).
 *
 * The input is a program of events for one connection, played by a fake
 * driver that keeps to the driver's contract (it answers only what the
 * connection asked: a resolution after RESOLVE, an open after OPEN):
 * submits (every CLIENT REPLY kind, re-sendable or not), connect requests,
 * resolutions done or failed, transports open or failed, server bytes
 * (canned replies such as HELLO's map, errors, pushes, or raw input
 * bytes), bytes written, closes, timers with the clock moved on, cancels,
 * aborts, and frees (everything taken back, a new connection), with the
 * configuration (protocol, AUTH, SELECT, attempts, lent, exclusive,
 * subscriptions) drawn from the first bytes. Completions may submit
 * again (re-entry). The driver does what the node's link does after each
 * event: whenever the connection sheds, it takes the empty output buffer
 * and the reader (into one spare of each, which outlives a free), and
 * gives them back for the next bytes, so a reader moves between
 * connections and mid-handshake. Checked throughout:
 *   - each command comes back exactly once (a COMPLETE action, a cancel
 *     that returns it, or the final take-all), never while still queued;
 *   - at most one transport and one resolution at a time, and none asked
 *     for while one is open;
 *   - no completion or event while the connection is half torn down: when
 *     it is idle or backing off, its transport is already closed;
 *   - completions carry a reply, or an error code with a message;
 *   - with keep_inflight, the bytes of each command in flight, and of one
 *     its reply completes, are still in the output buffer, and those of a
 *     command in flight are its own (a cancel that takes an unwritten
 *     command out moves the ones after it). Some submits are GLUED.
 * The corpus also replays through fuzz/replay.c. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aredis/error.h"
#include "conn/conn.h"
#include "resp/resp.h"
#include "util/alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                  \
            abort();                                                         \
        }                                                                    \
    } while (0)

enum { NCMD = 24 };

typedef struct fcmd {
    aredis__conn_cmd cc; /* first */
    int held;            /* the connection has it */
    int submitted, returned;
} fcmd;

static struct {
    const uint8_t *p, *end;
    aredis__conn_config cfg;
    aredis__conn cn;
    fcmd cmds[NCMD];
    int64_t now;
    int resolving, opening, open; /* what the driver has going */
    int refill;                   /* completions submit again */
    int lent, exclusive, keep;    /* the owner's policy */
    aredis_reader *spare_rd;      /* one spare reader and one block */
    char *spare_blk;
    size_t spare_cap;
    uint64_t seed;
} f;

static unsigned byte(void)
{
    return f.p < f.end ? *f.p++ : 0;
}

static uint64_t rand_src(void *ud)
{
    (void)ud;
    f.seed = f.seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return f.seed >> 17;
}

static void *spare_block(void *ud, size_t *cap)
{
    (void)ud;
    char *p = f.spare_blk;
    if (p != NULL) {
        *cap = f.spare_cap;
        f.spare_blk = NULL;
    }
    return p;
}

/* What the link does after servicing: a connection that sheds gives its
 * empty output buffer and its reader back. */
static void shed(void)
{
    if (!aredis__conn_sheds(&f.cn))
        return;
    aredis_buf out;
    if (aredis__conn_take_out(&f.cn, &out) == 0) {
        CHECK(f.cn.out.data == NULL && f.cn.out.len == 0);
        if (f.spare_blk == NULL) {
            f.spare_blk = out.data;
            f.spare_cap = out.cap;
        } else {
            aredis_buf_cleanup(&out);
        }
    }
    aredis_reader *rd = aredis__conn_take_reader(&f.cn);
    if (rd != NULL) {
        CHECK(f.cn.rd == NULL && aredis_reader_buffered(rd) == 0);
        if (f.spare_rd == NULL)
            f.spare_rd = rd;
        else
            aredis_reader_free(rd);
    }
}

/* The command is in none of the connection's queues. */
static int queued(const aredis__conn_cmd *cc)
{
    const aredis__conn_cmd *lists[3] = {f.cn.pend_head, f.cn.head,
                                        f.cn.done_head};
    for (int i = 0; i < 3; i++)
        for (const aredis__conn_cmd *q = lists[i]; q != NULL; q = q->next)
            if (q == cc)
                return 1;
    return 0;
}

static void give_back(fcmd *c)
{
    CHECK(c->held);
    c->held = 0;
    c->returned++;
    CHECK(c->returned == c->submitted);
    aredis__free(c->cc.copy);
    c->cc.copy = NULL;
}

/* The two commands submit_one() sends, encoded. */
static const char get_bytes[] = "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
static const char reply_bytes[] =
    "*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$3\r\nOFF\r\n";

static void submit_one(unsigned sel)
{
    fcmd *c = NULL;
    for (int i = 0; i < NCMD && c == NULL; i++) {
        fcmd *k = &f.cmds[(sel + (unsigned)i) % NCMD];
        if (!k->held)
            c = k;
    }
    if (c == NULL)
        return;
    static const char *const argv_get[] = {"GET", "k"};
    static const char *const argv_reply[] = {"CLIENT", "REPLY", "OFF"};
    aredis_buf b;
    aredis_buf_init(&b);
    int kind = (int)(sel >> 3) % 8;
    kind = kind <= AREDIS__REPLY_PUSHED ? kind : AREDIS__REPLY_NORMAL;
    const char *const *argv =
        kind == AREDIS__REPLY_NORMAL || kind == AREDIS__REPLY_PUSHED
            ? argv_get
            : argv_reply;
    if (aredis_write_argv(&b, argv == argv_get ? 2 : 3, (const char **)argv,
                          NULL) != 0) {
        aredis_buf_cleanup(&b);
        return;
    }
    memset(&c->cc, 0, sizeof c->cc);
    c->cc.len = (uint32_t)b.len;
    c->cc.reply_kind = (uint8_t)kind;
    if (sel & 0x40) {
        c->cc.flags |= AREDIS__CC_RETRY;
        c->cc.copy = aredis__strndup(b.data, b.len);
        if (c->cc.copy == NULL)
            c->cc.flags &= (uint8_t)~AREDIS__CC_RETRY;
    } else if (sel & 0x80) {
        c->cc.flags |= AREDIS__CC_NO_RESEND;
        if (sel & 1) /* a part of a whole: never taken out alone */
            c->cc.flags |= AREDIS__CC_TOGETHER;
    }
    if ((sel & 0xc0) == 0xc0) /* an ASKING: goes with the next command */
        c->cc.flags |= AREDIS__CC_GLUED;
    int e = aredis__conn_submit(&f.cn, &c->cc, b.data, f.now);
    aredis_buf_cleanup(&b);
    if (e != 0) {
        aredis__free(c->cc.copy);
        c->cc.copy = NULL;
        return;
    }
    c->held = 1;
    c->submitted++;
}

/* The connection is never half torn down when the driver acts for it. */
static void consistent(void)
{
    if (f.cn.state <= AREDIS__ST_BACKOFF)
        CHECK(!f.open && !f.opening && !f.resolving);
    if (f.cn.state == AREDIS__ST_READY || f.cn.state == AREDIS__ST_HANDSHAKE)
        CHECK(f.open);
    CHECK(f.cn.npend == 0 || f.cn.pend_head != NULL);
    CHECK(f.cn.state == AREDIS__ST_READY || f.cn.head == NULL ||
          f.cn.state == AREDIS__ST_HANDSHAKE);
    /* keep_inflight: the bytes of every command in flight are at hand,
     * and they are its own (a cancel moves the ones after it). */
    for (const aredis__conn_cmd *q = f.cn.head;
         q != NULL && f.cfg.keep_inflight; q = q->next) {
        const char *bytes = aredis__conn_cmd_bytes(&f.cn, q);
        CHECK(bytes != NULL);
        if (q->flags & AREDIS__CC_INTERNAL)
            continue;
        const char *want =
            q->reply_kind == AREDIS__REPLY_NORMAL ? get_bytes : reply_bytes;
        CHECK(q->len == strlen(want) && memcmp(bytes, want, q->len) == 0);
    }
}

static void drain(void)
{
    aredis__conn_action a;
    CHECK(f.cn.qlen <= 3);
    while (aredis__conn_poll(&f.cn, &a)) {
        switch (a.kind) {
        case AREDIS__ACT_RESOLVE:
            CHECK(!f.resolving && !f.open && !f.opening);
            f.resolving = 1;
            break;
        case AREDIS__ACT_OPEN:
            CHECK(!f.open && !f.opening && !f.resolving);
            f.opening = 1;
            break;
        case AREDIS__ACT_CLOSE:
            f.open = f.opening = f.resolving = 0;
            break;
        case AREDIS__ACT_COMPLETE: {
            consistent();
            fcmd *c = (fcmd *)a.cmd;
            CHECK(c >= f.cmds && c < f.cmds + NCMD);
            CHECK(!queued(&c->cc));
            /* ... and of the one a reply completes, while it completes. */
            CHECK(a.reply == NULL || !f.cfg.keep_inflight ||
                  aredis__conn_cmd_bytes(&f.cn, a.cmd) != NULL);
            CHECK(a.reply != NULL || a.code == 0 || a.msg != NULL);
            give_back(c);
            if (f.refill && (byte() & 1))
                submit_one(byte());
            break;
        }
        case AREDIS__ACT_PUSH:
            CHECK(a.reply != NULL);
            break;
        case AREDIS__ACT_EVENT:
            consistent();
            CHECK(a.event != AREDIS__EV_DISCONNECTED || a.msg != NULL);
            if (f.refill && (byte() & 1))
                submit_one(byte());
            break;
        default:
            CHECK(0);
        }
    }
}

static const char *const canned[] = {
    "%3\r\n+server\r\n+redis\r\n+version\r\n+7.2.0\r\n+proto\r\n:3\r\n",
    "+OK\r\n",
    "-ERR unknown command 'HELLO'\r\n",
    "-NOPROTO sorry\r\n",
    "-WRONGPASS no\r\n",
    ":1\r\n",
    "$1\r\nx\r\n",
    ">2\r\n+invalidate\r\n*1\r\n$1\r\nk\r\n",
    "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n",
    "@bad\r\n",
    "*6\r\n+server\r\n+redis\r\n+version\r\n+5\r\n+proto\r\n:2\r\n",
    "$12\r\nhello world!\r\n",
};

static void feed(const char *bytes, size_t n)
{
    while (n > 0 && f.open && f.cn.state >= AREDIS__ST_HANDSHAKE) {
        if (f.cn.rd == NULL && f.spare_rd != NULL &&
            aredis__conn_give_reader(&f.cn, f.spare_rd) == 0)
            f.spare_rd = NULL;
        size_t avail = 0;
        char *w = aredis__conn_in_buf(&f.cn, &avail);
        if (w == NULL)
            break;
        size_t k = n < avail ? n : avail;
        memcpy(w, bytes, k);
        aredis__conn_in_commit(&f.cn, k, f.now);
        bytes += k;
        n -= k;
        drain();
        shed();
    }
    drain();
}

static void policy(void)
{
    f.cn.lent = f.lent;
    f.cn.exclusive = f.exclusive;
    f.cn.keep = f.keep;
}

static void step(unsigned op)
{
    unsigned arg = byte();
    /* Drained after every event: the action queue never comes near full. */
    CHECK(f.cn.qlen == 0);
    switch (op % 14) {
    case 0:
    case 1:
        submit_one(arg);
        break;
    case 2:
        aredis__conn_connect(&f.cn, f.now);
        break;
    case 3:
        if (f.resolving) {
            f.resolving = 0;
            aredis__conn_resolved(&f.cn, arg % 4, f.now);
        }
        break;
    case 4:
        if (f.resolving || f.opening) {
            f.resolving = f.opening = 0;
            aredis__conn_open_failed(&f.cn, AREDIS_ECONNREFUSED, "refused",
                                     f.now);
        }
        break;
    case 5:
        if (f.opening) {
            f.opening = 0;
            f.open = 1;
            aredis__conn_opened(&f.cn, f.now);
        }
        break;
    case 6: {
        const char *s = canned[arg % (sizeof canned / sizeof *canned)];
        feed(s, strlen(s));
        break;
    }
    case 7: {
        size_t n = arg % 16;
        if ((size_t)(f.end - f.p) < n)
            n = (size_t)(f.end - f.p);
        feed((const char *)f.p, n);
        f.p += n;
        break;
    }
    case 8: {
        const char *out;
        size_t n = aredis__conn_out(&f.cn, &out);
        if (f.open && n > 0)
            aredis__conn_wrote(&f.cn, (arg & 1) ? n : 1 + arg % n);
        break;
    }
    case 9:
        if (f.open || f.opening) {
            f.open = f.opening = 0;
            aredis__conn_closed(&f.cn, AREDIS_ECLOSED, "closed", f.now);
        }
        break;
    case 10:
        f.now += (int64_t)arg * 8;
        aredis__conn_timer(&f.cn, f.now);
        break;
    case 11: {
        fcmd *c = &f.cmds[arg % NCMD];
        if (c->held && aredis__conn_cancel(&f.cn, &c->cc))
            give_back(c);
        break;
    }
    case 12:
        aredis__conn_abort(&f.cn, AREDIS_ECANCELED, "aborted");
        break;
    default: {
        /* Free: take everything back, start a new connection. */
        aredis__conn_cmd *all = aredis__conn_take_all(&f.cn);
        while (all != NULL) {
            aredis__conn_cmd *next = all->next;
            give_back((fcmd *)all);
            all = next;
        }
        aredis__conn_cleanup(&f.cn);
        f.open = f.opening = f.resolving = 0;
        if (aredis__conn_init(&f.cn, &f.cfg) != 0)
            abort();
        policy();
        break;
    }
    }
    drain();
    shed();
    consistent();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    memset(&f, 0, sizeof f);
    f.p = data;
    f.end = data + size;
    f.now = 1000;
    unsigned conf = byte(), conf2 = byte();
    f.cfg.protocol = (int)(conf % 3) == 1 ? 2 : (int)(conf % 3) == 2 ? 3 : 0;
    f.cfg.password = conf & 4 ? "pw" : NULL;
    f.cfg.client_name = conf & 8 ? "fz" : NULL;
    f.cfg.db = conf & 16 ? 3 : 0;
    f.cfg.max_attempts = (int)(conf2 % 5) - 1; /* -1 (forever) .. 3 */
    f.cfg.backoff_first_ms = 10;
    f.cfg.backoff_max_ms = 100;
    f.cfg.connect_timeout_ms = conf2 & 8 ? -1 : 200;
    f.cfg.one_address = (conf2 & 16) != 0;
    static const aredis_reader_limits small = {.max_bulk_len = 8};
    f.cfg.limits = conf2 & 32 ? &small : NULL;
    f.cfg.rand = rand_src;
    f.cfg.spare_block = spare_block;
    f.refill = (conf & 32) != 0;
    if (aredis__conn_init(&f.cn, &f.cfg) != 0)
        return 0;
    f.lent = (conf & 64) != 0;
    f.exclusive = (conf & 128) != 0;
    f.keep = (conf2 & 64) != 0;
    f.cfg.keep_inflight = (conf2 & 128) != 0;
    policy();

    while (f.p < f.end)
        step(byte());

    /* The owner's final cleanup gets back everything still held. */
    aredis__conn_cmd *all = aredis__conn_take_all(&f.cn);
    while (all != NULL) {
        aredis__conn_cmd *next = all->next;
        give_back((fcmd *)all);
        all = next;
    }
    for (int i = 0; i < NCMD; i++) {
        CHECK(!f.cmds[i].held);
        CHECK(f.cmds[i].submitted == f.cmds[i].returned);
    }
    aredis__conn_cleanup(&f.cn);
    aredis_reader_free(f.spare_rd);
    aredis__free(f.spare_blk);
    return 0;
}
