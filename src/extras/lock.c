/* Distributed locks (extras layer): a random token in a key, set with
 * SET NX PX or an acquire script; release and extend by the token holder
 * only, in Lua; waiters woken by the release script's PUBLISH on the
 * lock's channel, with polling as the fallback; FIFO tickets (fair mode);
 * fencing tokens; replicated mode (WAIT on the connection of the SET); a
 * watchdog that keeps a held lock alive.
 *
 * Written against the public client API only (client.h, pubsub.h,
 * script.h), so it works the same on every topology; it must not include
 * anything from src/client, src/conn or src/resp.
 *
 * One handle runs at most one acquire at a time, and an acquire has at
 * most one thing outstanding: an attempt (its replies) or a wait (a
 * get_message on the handle's pubsub, which exists only while the acquire
 * waits). Every callback registered with the client holds a reference on
 * the handle, so aredis_lock_free() from anywhere leaves them something
 * valid to land on. */
#include "aredis/lock.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "aredis/cluster.h"
#include "aredis/error.h"
#include "aredis/pubsub.h"
#include "aredis/script.h"
#include "aredis/sync.h"
#include "client/sync_int.h"
#include "util/alloc.h"
#include "util/msg.h"

/* ------------------------------------------------------------------------
 * The scripts
 * ------------------------------------------------------------------------ */

/* KEYS: lock, fence, queue, qtime. ARGV: token, ttl, fence (0/1), fair
 * (0/1), grace (ms a waiter's ticket lives without a retry; 0: do not
 * queue, a single try). Returns {1, fence or 0} when acquired, else
 * {0, PTTL of the holder's key}. Fair mode: the lock goes to the head of
 * the queue; tickets not renewed within the grace are dropped from the
 * head, so a dead waiter cannot block the queue for long. */
static const char acquire_lua[] =
    "local token, ttl = ARGV[1], ARGV[2]\n"
    "local grace = tonumber(ARGV[5])\n"
    "if ARGV[4] == '1' then\n"
    "  if redis.replicate_commands then redis.replicate_commands() end\n"
    "  local t = redis.call('TIME')\n"
    "  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "  local head = redis.call('LINDEX', KEYS[3], 0)\n"
    "  while head do\n"
    "    local exp = redis.call('ZSCORE', KEYS[4], head)\n"
    "    if exp and tonumber(exp) > now then break end\n"
    "    redis.call('LPOP', KEYS[3])\n"
    "    redis.call('ZREM', KEYS[4], head)\n"
    "    head = redis.call('LINDEX', KEYS[3], 0)\n"
    "  end\n"
    "  if redis.call('EXISTS', KEYS[1]) == 1 or (head and head ~= token) "
    "then\n"
    "    if grace > 0 then\n"
    "      if not redis.call('ZSCORE', KEYS[4], token) then\n"
    "        redis.call('LREM', KEYS[3], 0, token)\n"
    "        redis.call('RPUSH', KEYS[3], token)\n"
    "      end\n"
    "      redis.call('ZADD', KEYS[4], now + grace, token)\n"
    "      redis.call('PEXPIRE', KEYS[3], grace)\n"
    "      redis.call('PEXPIRE', KEYS[4], grace)\n"
    "    end\n"
    "    return {0, redis.call('PTTL', KEYS[1])}\n"
    "  end\n"
    "  if head then\n"
    "    redis.call('LPOP', KEYS[3])\n"
    "    redis.call('ZREM', KEYS[4], token)\n"
    "  end\n"
    "  redis.call('SET', KEYS[1], token, 'PX', ttl)\n"
    "elseif not redis.call('SET', KEYS[1], token, 'NX', 'PX', ttl) then\n"
    "  return {0, redis.call('PTTL', KEYS[1])}\n"
    "end\n"
    "if ARGV[3] == '1' then return {1, redis.call('INCR', KEYS[2])} end\n"
    "return {1, 0}\n";

/* KEYS: lock. ARGV: token, channel. 1 released (and published), 0 the key
 * does not hold the token. */
static const char release_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  redis.call('PUBLISH', ARGV[2], ARGV[1])\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

/* KEYS: lock. ARGV: token, ms, add (0/1). The new TTL, or 0 when the key
 * does not hold the token. */
static const char extend_lua[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
    "local ttl = tonumber(ARGV[2])\n"
    "if ARGV[3] == '1' then\n"
    "  local left = redis.call('PTTL', KEYS[1])\n"
    "  if left > 0 then ttl = ttl + left end\n"
    "end\n"
    "redis.call('PEXPIRE', KEYS[1], ttl)\n"
    "return ttl\n";

/* KEYS: queue, qtime. ARGV: token, channel. A fair waiter giving up leaves
 * the queue, and says so: the waiter behind it may be next. */
static const char dequeue_lua[] = "redis.call('LREM', KEYS[1], 0, ARGV[1])\n"
                                  "redis.call('ZREM', KEYS[2], ARGV[1])\n"
                                  "redis.call('PUBLISH', ARGV[2], '')\n"
                                  "return 1\n";

/* Immutable and shared by every handle (scripts are thread-safe). */
static aredis_script *s_acquire, *s_release, *s_extend, *s_dequeue;
static pthread_once_t scripts_once = PTHREAD_ONCE_INIT;

static void scripts_init(void)
{
    s_acquire = aredis_script_new(acquire_lua, sizeof acquire_lua - 1);
    s_release = aredis_script_new(release_lua, sizeof release_lua - 1);
    s_extend = aredis_script_new(extend_lua, sizeof extend_lua - 1);
    s_dequeue = aredis_script_new(dequeue_lua, sizeof dequeue_lua - 1);
}

/* ------------------------------------------------------------------------
 * The handle
 * ------------------------------------------------------------------------ */

enum { ST_IDLE, ST_ACQUIRING, ST_HELD };
enum { DEFAULT_TTL_MS = 10000, DEFAULT_POLL_MS = 100, DEFAULT_WAIT_MS = 100 };

struct aredis_lock {
    aredis_client *c;
    aredis_loop *loop;
    int refs;  /* the user's, and one per callback still to come */
    int freed; /* aredis_lock_free() was called */
    int sync;  /* made by aredis_sync_lock_new(): the loop is private */
    aredis_lock_options o;
    char ttl_str[24];
    /* The keys and the channel; all share the hash tag of key. */
    char *key, *fence_key, *queue_key, *qtime_key, *channel;

    int state;
    /* A token that may be in the key (held, lost by the watchdog, or a
     * release whose outcome is unknown): release and extend may try. */
    int have_token;
    unsigned gen; /* counts acquisitions, to match late replies */
    char token[33];
    int64_t valid_until; /* monotonic ms */
    long long fence;
    aredis_lock_stats stats;

    /* The acquire in progress. */
    aredis_lock_cb acb;
    void *aud;
    int64_t timeout, poll, deadline; /* deadline < 0: none */
    int last;                        /* this attempt is the final one */
    int64_t sent_at;
    int pending;         /* replies the attempt still waits for */
    int result;          /* 1 acquired, 0 held by another, < 0 error */
    long long got_fence; /* from the acquire script */
    long long acks;
    int wait_err;
    aredis_exclusive *x; /* replicated: the attempt's connection */
    aredis_pubsub *ps;   /* only while waiting */

    /* The watchdog. */
    aredis_timer *wd;
    int wd_inflight;
    unsigned wd_gen; /* the acquisition the extension in flight is for */
    int64_t wd_next, wd_sent_at;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void unref(aredis_lock *l)
{
    if (--l->refs > 0)
        return;
    aredis_timer_free(l->wd);
    aredis__free(l->key);
    aredis__free(l->fence_key);
    aredis__free(l->queue_key);
    aredis__free(l->qtime_key);
    aredis__free(l->channel);
    aredis__free(l);
}

/* 16 random bytes as hex. The kernel's generator; /dev/urandom when the
 * call is missing; the clock and the address as a last resort, which
 * still makes tokens distinct, if guessable. */
static void new_token(aredis_lock *l)
{
    unsigned char b[16];
    ssize_t n = getrandom(b, sizeof b, GRND_NONBLOCK);
    if (n != (ssize_t)sizeof b) {
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        n = fd >= 0 ? read(fd, b, sizeof b) : -1;
        if (fd >= 0)
            close(fd);
    }
    if (n != (ssize_t)sizeof b) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t v[2] = {(uint64_t)ts.tv_sec * 1000000000u +
                             (uint64_t)ts.tv_nsec,
                         (uint64_t)(uintptr_t)l ^ ((uint64_t)l->gen << 32) ^
                             (uint64_t)getpid()};
        memcpy(b, v, sizeof b);
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof b; i++) {
        l->token[2 * i] = hex[b[i] >> 4];
        l->token[2 * i + 1] = hex[b[i] & 15];
    }
    l->token[32] = '\0';
}

static char *join(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    char *s = aredis__malloc(na + nb + 1);
    if (s != NULL) {
        memcpy(s, a, na);
        memcpy(s + na, b, nb + 1);
    }
    return s;
}

/* Redis Cluster's rule: a '{' followed later by a '}' with at least one
 * byte between them. */
static int has_hash_tag(const char *s)
{
    const char *open = strchr(s, '{');
    if (open == NULL)
        return 0;
    const char *close = strchr(open + 1, '}');
    return close != NULL && close > open + 1;
}

static void wd_fire(void *arg);

static void fail_status(aredis_status *st, int code, const char *msg)
{
    if (st != NULL) {
        st->code = code;
        aredis__msgf(st->msg, sizeof st->msg, "%s", msg);
    }
}

aredis_lock *aredis_lock_new(aredis_client *c, const char *name,
                             const aredis_lock_options *o, aredis_status *st)
{
    aredis_lock_options d;
    memset(&d, 0, sizeof d);
    if (o != NULL)
        d = *o;
    const char *bad = NULL;
    if (c == NULL || name == NULL || name[0] == '\0')
        bad = "a client and a non-empty lock name are required";
    else if (d.ttl_ms < 0 || d.poll_ms < 0 || d.wait_timeout_ms < 0 ||
             d.replicas < 0)
        bad = "ttl_ms, poll_ms, wait_timeout_ms and replicas must not be "
              "negative";
    if (d.ttl_ms == 0)
        d.ttl_ms = DEFAULT_TTL_MS;
    if (d.wait_timeout_ms == 0)
        d.wait_timeout_ms = DEFAULT_WAIT_MS;
    if (bad == NULL && d.replicas > 0 && d.wait_timeout_ms >= d.ttl_ms)
        bad = "wait_timeout_ms must be below ttl_ms";
    if (bad != NULL) {
        fail_status(st, AREDIS_EINVAL, bad);
        return NULL;
    }
    pthread_once(&scripts_once, scripts_init);
    aredis_lock *l = aredis__calloc(1, sizeof *l);
    if (l == NULL || s_acquire == NULL || s_release == NULL ||
        s_extend == NULL || s_dequeue == NULL)
        goto nomem;
    l->c = c;
    l->loop = aredis_client_loop(c);
    l->refs = 1;
    l->o = d;
    snprintf(l->ttl_str, sizeof l->ttl_str, "%lld", (long long)d.ttl_ms);
    if (has_hash_tag(name)) {
        l->key = join(name, "");
    } else {
        char *tmp = join("{", name);
        l->key = tmp != NULL ? join(tmp, "}") : NULL;
        aredis__free(tmp);
    }
    if (l->key == NULL)
        goto nomem;
    l->fence_key = join(l->key, ":fence");
    l->queue_key = join(l->key, ":queue");
    l->qtime_key = join(l->key, ":qtime");
    l->channel = join(l->key, ":released");
    if (l->fence_key == NULL || l->queue_key == NULL || l->qtime_key == NULL ||
        l->channel == NULL)
        goto nomem;
    if (d.watchdog && (l->wd = aredis_timer_new(l->loop, wd_fire, l)) == NULL)
        goto nomem;
    return l;
nomem:
    if (l != NULL)
        unref(l);
    fail_status(st, AREDIS_ENOMEM, "out of memory");
    return NULL;
}

/* ------------------------------------------------------------------------
 * Background commands: a release nobody waits for (the handle freed while
 * holding, an acquire whose outcome is unknown or refused by the
 * replicas), and a fair waiter leaving the queue
 * ------------------------------------------------------------------------ */

static void quiet_reply(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    (void)r;
    unref(ud);
}

static void eval_quiet(aredis_lock *l, aredis_script *s, const char *k1,
                       const char *k2, const char *a2)
{
    const char *keys[2] = {k1, k2};
    const char *args[2] = {l->token, a2};
    l->refs++;
    if (aredis_script_eval(l->c, s, quiet_reply, l, k2 ? 2 : 1, keys, 2,
                           args) != 0)
        l->refs--;
}

static void release_quiet(aredis_lock *l)
{
    eval_quiet(l, s_release, l->key, NULL, l->channel);
}

static void dequeue_quiet(aredis_lock *l)
{
    if (l->o.fair && l->timeout != 0)
        eval_quiet(l, s_dequeue, l->queue_key, l->qtime_key, l->channel);
}

/* ------------------------------------------------------------------------
 * The watchdog
 * ------------------------------------------------------------------------ */

static void wd_arm(aredis_lock *l)
{
    int64_t at = l->valid_until;
    if (!l->wd_inflight && l->wd_next < at)
        at = l->wd_next;
    int64_t ms = at - now_ms();
    aredis_timer_start(l->wd, ms < 0 ? 0 : ms);
}

static void report_lost(aredis_lock *l, int status)
{
    l->state = ST_IDLE; /* not believed held; the token stays for release */
    aredis_timer_stop(l->wd);
    if (l->o.on_lost != NULL && !l->freed) {
        l->refs++;
        l->o.on_lost(l, status, l->o.lost_ud);
        unref(l);
    }
}

static void on_wd_extend(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    aredis_lock *l = ud;
    if (l->wd_gen != l->gen) {
        /* Sent for an earlier acquisition (released since): not ours. */
        unref(l);
        return;
    }
    l->wd_inflight = 0;
    if (!l->freed && l->state == ST_HELD && r->type == AREDIS_REPLY_INTEGER) {
        if (r->integer > 0) {
            l->valid_until = l->wd_sent_at + r->integer;
            l->wd_next = now_ms() + l->o.ttl_ms / 3;
            wd_arm(l);
        } else {
            report_lost(l, AREDIS_ELOCKLOST);
        }
    } else if (!l->freed && l->state == ST_HELD) {
        /* No answer (server gone, deadline): try again soon; the timer
         * still reports the loss when the validity runs out. */
        int64_t retry = l->o.ttl_ms / 10;
        l->wd_next = now_ms() + (retry > 0 ? retry : 1);
        wd_arm(l);
    }
    unref(l);
}

static void wd_fire(void *arg)
{
    aredis_lock *l = arg;
    if (l->freed || l->state != ST_HELD)
        return;
    int64_t now = now_ms();
    if (now >= l->valid_until) {
        report_lost(l, AREDIS_ETIMEDOUT);
        return;
    }
    if (!l->wd_inflight && now >= l->wd_next) {
        const char *keys[1] = {l->key};
        const char *args[3] = {l->token, l->ttl_str, "0"};
        l->refs++;
        l->wd_sent_at = now;
        l->wd_gen = l->gen;
        if (aredis_script_eval(l->c, s_extend, on_wd_extend, l, 1, keys, 3,
                               args) == 0)
            l->wd_inflight = 1;
        else
            l->refs--;
    }
    wd_arm(l);
}

static void wd_start(aredis_lock *l)
{
    if (l->wd == NULL)
        return;
    l->wd_inflight = 0;
    l->wd_next = now_ms() + l->o.ttl_ms / 3;
    wd_arm(l);
}

/* ------------------------------------------------------------------------
 * Acquire
 * ------------------------------------------------------------------------ */

static int send_attempt(aredis_lock *l);
static void next_wait(aredis_lock *l);

static void drop_pubsub(aredis_lock *l)
{
    if (l->ps != NULL) {
        aredis_pubsub_free(l->ps);
        l->ps = NULL;
    }
}

/* The acquire is over: tell the caller. The caller of this holds a
 * reference. */
static void acquire_done(aredis_lock *l, int status)
{
    drop_pubsub(l);
    if (l->freed) {
        if (status == 0)
            release_quiet(l);
        status = AREDIS_ECANCELED;
    }
    if (status == 0) {
        l->state = ST_HELD;
        l->have_token = 1;
        l->fence = l->got_fence;
        l->valid_until = l->sent_at + l->o.ttl_ms;
        wd_start(l);
    } else {
        l->state = ST_IDLE;
    }
    aredis_lock_cb cb = l->acb;
    l->acb = NULL;
    if (cb != NULL)
        cb(l, status, l->aud);
}

static void on_reject_release(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    (void)r;
    aredis_lock *l = ud;
    acquire_done(l, AREDIS_ENOREPLICAS);
    unref(l);
}

/* Every reply of the attempt is in. */
static void attempt_outcome(aredis_lock *l)
{
    if (l->x != NULL) {
        aredis_exclusive_release(l->x);
        l->x = NULL;
    }
    if (l->freed) {
        if (l->result == 1 || l->result == AREDIS_EUNKNOWN)
            release_quiet(l);
        acquire_done(l, AREDIS_ECANCELED);
        return;
    }
    if (l->result < 0) {
        if (l->result == AREDIS_EUNKNOWN)
            release_quiet(l); /* it may have been set: undo if ours */
        acquire_done(l, l->result);
        return;
    }
    if (l->result == 0) {
        next_wait(l);
        return;
    }
    if (l->o.replicas > 0) {
        if (l->wait_err != 0) {
            release_quiet(l);
            acquire_done(l, l->wait_err);
            return;
        }
        if (l->acks < l->o.replicas / 2 + 1) {
            /* Too few copies: undo it before saying so, so the key is
             * gone when the caller hears of it. */
            const char *keys[1] = {l->key};
            const char *args[2] = {l->token, l->channel};
            l->refs++;
            if (aredis_script_eval(l->c, s_release, on_reject_release, l, 1,
                                   keys, 2, args) != 0) {
                l->refs--;
                acquire_done(l, AREDIS_ENOREPLICAS);
            }
            return;
        }
    }
    acquire_done(l, 0);
}

/* The acquire command's reply: SET's OK or nil, or the script's pair. */
static void take_acquire_reply(aredis_lock *l, const aredis_reply *r)
{
    if (r->type == AREDIS_REPLY_STATUS) {
        l->result = 1;
    } else if (r->type == AREDIS_REPLY_NIL) {
        l->result = 0;
    } else if (r->type == AREDIS_REPLY_ARRAY && r->len == 2 &&
               r->element[0].type == AREDIS_REPLY_INTEGER) {
        l->result = r->element[0].integer == 1;
        if (l->result && r->element[1].type == AREDIS_REPLY_INTEGER)
            l->got_fence = r->element[1].integer;
    } else if (r->type == AREDIS_REPLY_ERROR) {
        l->result = r->code != 0 ? r->code : AREDIS_ESERVER;
    } else {
        l->result = AREDIS_EPROTO;
    }
}

static void on_wait_reply(aredis_client *c, const aredis_reply *r, void *ud);

static int send_wait(aredis_lock *l)
{
    char n[16], ms[24];
    snprintf(n, sizeof n, "%d", l->o.replicas / 2 + 1);
    snprintf(ms, sizeof ms, "%lld", (long long)l->o.wait_timeout_ms);
    const char *argv[3] = {"WAIT", n, ms};
    l->refs++;
    int e = aredis_exclusive_commandv(l->x, on_wait_reply, l, 3, argv, NULL);
    if (e != 0)
        l->refs--;
    else
        l->pending++;
    return e;
}

static void on_wait_reply(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    aredis_lock *l = ud;
    l->pending--;
    /* A WAIT answered before the acquire it follows (the script had to be
     * sent again) says nothing about it: acquire_reply sends another. */
    if (l->result != -100) {
        if (r->type == AREDIS_REPLY_INTEGER)
            l->acks = r->integer;
        else if (r->type == AREDIS_REPLY_ERROR)
            l->wait_err = r->code != 0 ? r->code : AREDIS_ESERVER;
        else
            l->wait_err = AREDIS_EPROTO;
    }
    if (l->pending == 0)
        attempt_outcome(l);
    unref(l);
}

static int is_noscript(const aredis_reply *r)
{
    return r->type == AREDIS_REPLY_ERROR && r->code == AREDIS_ESERVER &&
           r->len >= 8 && memcmp(r->str, "NOSCRIPT", 8) == 0;
}

static int send_acquire_cmd(aredis_lock *l, int eval_source);

static void on_acquire_reply(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    aredis_lock *l = ud;
    l->pending--;
    if (l->x != NULL && is_noscript(r) && !l->freed) {
        /* On a borrowed connection the NOSCRIPT fallback is ours: EVAL
         * with the source, and a WAIT behind it again. */
        if (send_acquire_cmd(l, 1) == 0) {
            send_wait(l);
            unref(l);
            return;
        }
    }
    take_acquire_reply(l, r);
    if (l->pending == 0)
        attempt_outcome(l);
    unref(l);
}

/* The acquire command: SET NX PX when nothing else is needed, else the
 * script (EVAL with its source when eval_source). On the attempt's
 * borrowed connection in replicated mode, else on the client. */
static int send_acquire_cmd(aredis_lock *l, int eval_source)
{
    int e;
    l->refs++;
    l->result = -100; /* no answer yet */
    if (!l->o.fair && !l->o.fence) {
        const char *argv[6] = {"SET", l->key, l->token, "NX", "PX", l->ttl_str};
        e = l->x != NULL
                ? aredis_exclusive_commandv(l->x, on_acquire_reply, l, 6, argv,
                                            NULL)
                : aredis_commandv(l->c, on_acquire_reply, l, 6, argv, NULL);
    } else {
        char grace[24];
        int64_t g = l->timeout == 0 ? 0 : 3 * l->poll + 1000;
        snprintf(grace, sizeof grace, "%lld", (long long)g);
        const char *keys[4] = {l->key, l->fence_key, l->queue_key,
                               l->qtime_key};
        const char *args[5] = {l->token, l->ttl_str, l->o.fence ? "1" : "0",
                               l->o.fair ? "1" : "0", grace};
        if (l->x == NULL) {
            e = aredis_script_eval(l->c, s_acquire, on_acquire_reply, l, 4,
                                   keys, 5, args);
        } else {
            const char *argv[12] = {eval_source ? "EVAL" : "EVALSHA",
                                    eval_source
                                        ? aredis_script_source(s_acquire, NULL)
                                        : aredis_script_sha(s_acquire),
                                    "4"};
            memcpy(argv + 3, keys, sizeof keys);
            memcpy(argv + 7, args, sizeof args);
            e = aredis_exclusive_commandv(l->x, on_acquire_reply, l, 12, argv,
                                          NULL);
        }
    }
    if (e != 0)
        l->refs--;
    else
        l->pending++;
    return e;
}

static void on_exclusive(aredis_client *c, aredis_exclusive *x, int status,
                         void *ud)
{
    (void)c;
    aredis_lock *l = ud;
    l->x = x;
    l->sent_at = now_ms();
    l->wait_err = 0;
    l->acks = 0;
    if (status != 0) {
        l->result = status;
    } else if (!l->freed) {
        int e = send_acquire_cmd(l, 0);
        if (e == 0)
            e = send_wait(l);
        if (e != 0 && l->pending == 0)
            l->result = e;
        else if (e != 0)
            l->wait_err = e;
    }
    if (l->pending == 0)
        attempt_outcome(l);
    unref(l);
}

static void drain(aredis_lock *l)
{
    aredis_pubsub_message *m;
    while (l->ps != NULL && (m = aredis_pubsub_poll(l->ps)) != NULL)
        aredis_pubsub_message_free(m);
}

/* One attempt. Returns 0, or a submit error (nothing in flight). */
static int send_attempt(aredis_lock *l)
{
    /* Notifications already queued predate this attempt: it sees what
     * they announce. */
    drain(l);
    l->stats.attempts++;
    l->got_fence = 0;
    if (l->o.replicas > 0) {
        l->refs++;
        /* The connection to the primary serving the lock's keys (they
         * share a hash tag): on a cluster, WAIT must follow the write on
         * that node. */
        int e = aredis_client_acquire_key(l->c, l->key, strlen(l->key),
                                          on_exclusive, l);
        if (e != 0)
            l->refs--;
        return e;
    }
    l->sent_at = now_ms();
    return send_acquire_cmd(l, 0);
}

static void attempt(aredis_lock *l)
{
    int e = send_attempt(l);
    if (e != 0)
        acquire_done(l, e);
}

static void on_wake(aredis_pubsub *ps, const aredis_pubsub_message *m,
                    int status, void *ud)
{
    (void)ps;
    (void)m;
    aredis_lock *l = ud;
    if (status == 0)
        l->stats.wakeups++;
    else if (status == AREDIS_ETIMEDOUT)
        l->stats.polls++;
    if (l->freed || status == AREDIS_ECANCELED) {
        dequeue_quiet(l);
        acquire_done(l, AREDIS_ECANCELED);
    } else if (status != 0 && status != AREDIS_ETIMEDOUT) {
        dequeue_quiet(l);
        acquire_done(l, status);
    } else {
        if (l->deadline >= 0 && now_ms() >= l->deadline)
            l->last = 1;
        attempt(l);
    }
    unref(l);
}

/* The lock is someone else's: give up, or wait for a release (or the
 * poll interval) and try again. */
static void next_wait(aredis_lock *l)
{
    if (l->timeout == 0) {
        acquire_done(l, AREDIS_EBUSY);
        return;
    }
    if (l->last) {
        dequeue_quiet(l);
        acquire_done(l, AREDIS_ETIMEDOUT);
        return;
    }
    int64_t now = now_ms();
    if (l->deadline >= 0 && now >= l->deadline) {
        l->last = 1;
        attempt(l);
        return;
    }
    int e = 0;
    if (l->ps == NULL) {
        /* Subscribe, then wait: the confirmation is the first message,
         * and the attempt it causes closes the gap in which a release
         * could have been published before the subscription. */
        l->ps = aredis_pubsub_new(l->c, NULL);
        e = l->ps == NULL
                ? AREDIS_ENOMEM
                : aredis_pubsub_subscribe(l->ps, l->channel, NULL, NULL);
    }
    if (e == 0) {
        int64_t wait = l->poll;
        if (l->deadline >= 0 && l->deadline - now < wait)
            wait = l->deadline - now;
        l->refs++;
        e = aredis_pubsub_get_message(l->ps, wait, on_wake, l);
        if (e != 0)
            l->refs--;
    }
    if (e != 0) {
        dequeue_quiet(l);
        acquire_done(l, e);
    }
}

int aredis_lock_acquire(aredis_lock *l, int64_t timeout_ms, aredis_lock_cb cb,
                        void *ud)
{
    if (l == NULL || l->freed)
        return AREDIS_EINVAL;
    if (l->state == ST_HELD && !aredis_lock_held(l)) {
        /* The validity ran out: the key has expired, nothing is held
         * (aredis_lock_held() says so too), so the handle may try again. */
        aredis_timer_stop(l->wd);
        l->state = ST_IDLE;
    }
    if (l->state != ST_IDLE)
        return AREDIS_ESTATE;
    int64_t poll = l->o.poll_ms;
    if (poll > 0 && timeout_ms > 0 && poll > timeout_ms)
        return AREDIS_EINVAL;
    if (poll == 0)
        poll = timeout_ms > 0 && timeout_ms < DEFAULT_POLL_MS ? timeout_ms
                                                              : DEFAULT_POLL_MS;
    l->poll = poll;
    l->timeout = timeout_ms;
    l->deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : -1;
    l->last = 0;
    memset(&l->stats, 0, sizeof l->stats);
    l->gen++;
    new_token(l);
    l->have_token = 0;
    l->fence = 0;
    l->acb = cb;
    l->aud = ud;
    l->state = ST_ACQUIRING;
    int e = send_attempt(l);
    if (e != 0) {
        l->state = ST_IDLE;
        l->acb = NULL;
    }
    return e;
}

/* ------------------------------------------------------------------------
 * Release and extend
 * ------------------------------------------------------------------------ */

typedef struct op {
    aredis_lock *l;
    aredis_lock_cb cb;
    void *ud;
    unsigned gen;
    int64_t sent_at;
} op;

static int op_status(const aredis_reply *r)
{
    if (r->type == AREDIS_REPLY_INTEGER)
        return r->integer > 0 ? 0 : AREDIS_ELOCKLOST;
    if (r->type == AREDIS_REPLY_ERROR)
        return r->code != 0 ? r->code : AREDIS_ESERVER;
    return AREDIS_EPROTO;
}

static void op_finish(op *o, int status)
{
    aredis_lock *l = o->l;
    if (o->cb != NULL && !l->freed)
        o->cb(l, status, o->ud);
    aredis__free(o);
    unref(l);
}

static void on_release(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    op *o = ud;
    aredis_lock *l = o->l;
    int status = op_status(r);
    /* Unless the handle has acquired again since, the token is spent once
     * the server said either way. */
    if ((status == 0 || status == AREDIS_ELOCKLOST) && o->gen == l->gen)
        l->have_token = 0;
    op_finish(o, status);
}

static void on_extend(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    op *o = ud;
    aredis_lock *l = o->l;
    int status = op_status(r);
    if (o->gen == l->gen && l->have_token) {
        if (status == 0) {
            l->valid_until = o->sent_at + r->integer;
        } else if (status == AREDIS_ELOCKLOST) {
            l->state = ST_IDLE;
            aredis_timer_stop(l->wd);
        }
    }
    op_finish(o, status);
}

static int start_op(aredis_lock *l, aredis_script *s, aredis_reply_cb done,
                    int nargs, const char *const *args, aredis_lock_cb cb,
                    void *ud)
{
    if (l == NULL || l->freed)
        return AREDIS_EINVAL;
    if (l->state == ST_ACQUIRING)
        return AREDIS_ESTATE;
    if (!l->have_token)
        return AREDIS_ENOTHELD;
    op *o = aredis__calloc(1, sizeof *o);
    if (o == NULL)
        return AREDIS_ENOMEM;
    *o = (op){l, cb, ud, l->gen, now_ms()};
    const char *keys[1] = {l->key};
    l->refs++;
    int e = aredis_script_eval(l->c, s, done, o, 1, keys, nargs, args);
    if (e != 0) {
        l->refs--;
        aredis__free(o);
    }
    return e;
}

int aredis_lock_release(aredis_lock *l, aredis_lock_cb cb, void *ud)
{
    if (l == NULL)
        return AREDIS_EINVAL;
    const char *args[2] = {l->token, l->channel};
    int e = start_op(l, s_release, on_release, 2, args, cb, ud);
    if (e == 0) {
        l->state = ST_IDLE;
        aredis_timer_stop(l->wd);
    }
    return e;
}

int aredis_lock_extend(aredis_lock *l, int64_t ms, int how, aredis_lock_cb cb,
                       void *ud)
{
    if (l == NULL || ms <= 0 ||
        (how != AREDIS_LOCK_EXTEND_ADD && how != AREDIS_LOCK_EXTEND_REPLACE))
        return AREDIS_EINVAL;
    char n[24];
    snprintf(n, sizeof n, "%lld", (long long)ms);
    const char *args[3] = {l->token, n,
                           how == AREDIS_LOCK_EXTEND_ADD ? "1" : "0"};
    return start_op(l, s_extend, on_extend, 3, args, cb, ud);
}

/* ------------------------------------------------------------------------
 * Free and getters
 * ------------------------------------------------------------------------ */

void aredis_lock_free(aredis_lock *l)
{
    if (l == NULL || l->freed)
        return;
    l->freed = 1;
    aredis_timer_stop(l->wd);
    if (l->state == ST_HELD)
        release_quiet(l);
    /* A waiting acquire's get_message completes with AREDIS_ECANCELED
     * (from the loop), which completes the acquire. */
    drop_pubsub(l);
    unref(l);
}

int aredis_lock_held(const aredis_lock *l)
{
    /* Past the validity the key has expired on the server whatever was
     * last heard: the handle cannot believe it still holds the lock. */
    return l != NULL && l->state == ST_HELD && l->valid_until > now_ms();
}

int64_t aredis_lock_validity_ms(const aredis_lock *l)
{
    if (l == NULL || l->state != ST_HELD)
        return 0;
    return l->valid_until - now_ms();
}

long long aredis_lock_fence(const aredis_lock *l)
{
    return l != NULL ? l->fence : 0;
}

const char *aredis_lock_token(const aredis_lock *l)
{
    return l != NULL ? l->token : "";
}

const char *aredis_lock_key(const aredis_lock *l)
{
    return l != NULL ? l->key : "";
}

aredis_client *aredis_lock_client(const aredis_lock *l)
{
    return l != NULL ? l->c : NULL;
}

void aredis_lock_get_stats(const aredis_lock *l, aredis_lock_stats *st)
{
    if (st == NULL)
        return;
    if (l == NULL)
        memset(st, 0, sizeof *st);
    else
        *st = l->stats;
}

/* ------------------------------------------------------------------------
 * The blocking facade: the handle's callbacks, waited for on the facade's
 * private loop
 * ------------------------------------------------------------------------ */

aredis_lock *aredis_sync_lock_new(aredis_sync *s, const char *name,
                                  const aredis_lock_options *o,
                                  aredis_status *st)
{
    aredis_lock *l = aredis_lock_new(aredis_sync_client(s), name, o, st);
    if (l != NULL)
        l->sync = 1;
    return l;
}

/* On the heap: if the wait had to be abandoned, the callback still has
 * somewhere valid to land. */
typedef struct sync_wait {
    int done;
    int abandoned;
    int status;
} sync_wait;

static void sync_done(aredis_lock *l, int status, void *ud)
{
    (void)l;
    sync_wait *w = ud;
    if (w->abandoned) {
        aredis__free(w);
        return;
    }
    w->status = status;
    w->done = 1;
}

enum { SYNC_ACQUIRE, SYNC_RELEASE, SYNC_EXTEND };

static int sync_call(aredis_lock *l, int what, int64_t a, int how)
{
    if (l == NULL || !l->sync)
        return AREDIS_EINVAL;
    sync_wait *w = aredis__calloc(1, sizeof *w);
    if (w == NULL)
        return AREDIS_ENOMEM;
    int e = what == SYNC_ACQUIRE ? aredis_lock_acquire(l, a, sync_done, w)
            : what == SYNC_RELEASE
                ? aredis_lock_release(l, sync_done, w)
                : aredis_lock_extend(l, a, how, sync_done, w);
    if (e == 0) {
        int r = aredis__sync_wait_flag(l->loop, &w->done, -1);
        if (r != 0) {
            w->abandoned = 1; /* the callback frees it */
            return r;
        }
        e = w->status;
    }
    aredis__free(w);
    return e;
}

int aredis_sync_lock_acquire(aredis_lock *l, int64_t timeout_ms)
{
    return sync_call(l, SYNC_ACQUIRE, timeout_ms, 0);
}

int aredis_sync_lock_release(aredis_lock *l)
{
    return sync_call(l, SYNC_RELEASE, 0, 0);
}

int aredis_sync_lock_extend(aredis_lock *l, int64_t ms, int how)
{
    return sync_call(l, SYNC_EXTEND, ms, how);
}
