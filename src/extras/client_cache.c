/* Server-assisted client-side caching (extras): the store, the tracking
 * state and, in REDIRECT mode, the connection that carries invalidations.
 *
 * Built on the client API plus three internal seams: the shared
 * connection's extra handshake step (CLIENT TRACKING on every connect,
 * before any queued command), the client's watch (pushes and connection
 * events, first), and the pool's exclusive connections for the REDIRECT
 * subscriber. It never touches a connection's bytes.
 *
 * Correctness rests on two counters. `epoch` moves on every flush and
 * every change of the tracking state; a key's `gen` moves on each of its
 * invalidations. A miss remembers both when it is sent, and its reply is
 * stored only if neither moved and the cache is active: a reply that may
 * have been invalidated on its way, or read on a connection whose
 * invalidations may be lost, is never stored. */
#include "aredis/client_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aredis/cluster.h"
#include "aredis/error.h"
#include "client/client_int.h"
#include "node/node.h"
#include "resp/resp.h"
#include "util/alloc.h"
#include "util/msg.h"

#define DEFAULT_MAX_ENTRIES 10000
#define DEFAULT_MAX_BYTES ((size_t)64 * 1024 * 1024)
#define MAX_FREE_HITS 256
#define SUB_RETRY_MS 200

static const char invalidate_channel[] = "__redis__:invalidate";

typedef struct keyrec keyrec;
typedef struct entry entry;

/* One Redis key: its entries, and what misses in flight compare with. */
struct keyrec {
    keyrec *hnext;
    uint64_t hash;
    entry *entries;
    uint64_t gen; /* moves on each invalidation of the key */
    size_t users; /* entries (held or awaiting release) + misses */
    size_t klen;
    char key[];
};

/* One cached reply: a command on the key, its reply. `rest` is the
 * command without the key: its upper-cased name, then the arguments after
 * the key, each as a 4-byte length and its bytes. */
struct entry {
    entry *knext;         /* the key's next entry */
    entry *lprev, *lnext; /* LRU list, most recent first */
    keyrec *k;
    aredis_reply *reply; /* owned */
    size_t bytes;
    unsigned refs; /* hits not delivered yet */
    int dead;      /* out of the store; freed when refs reach 0 */
    size_t rlen;
    char rest[];
};

typedef struct hit {
    struct hit *next;
    entry *e;
    aredis_reply_cb cb;
    void *ud;
} hit;

/* A miss on its way. Freed by its completion, which always comes. */
typedef struct miss {
    struct miss *prev, *next;
    aredis_ccache *cc; /* NULL once the cache is freed */
    keyrec *k;
    uint64_t gen, epoch;
    aredis_reply_cb cb;
    void *ud;
} miss;

/* An internal command on its way (CLIENT TRACKING, CLIENT ID, PING). */
typedef struct op {
    struct op *next;
    aredis_ccache *cc; /* NULL once the cache is freed */
    uint64_t epoch;
    struct syncreq *sync;
} op;

/* A sync call: one or two PINGs (parts) to wait for. */
typedef struct syncreq {
    struct syncreq *next; /* the cache's list, while reportable */
    aredis_ccache *cc;
    aredis_ccache_sync_cb cb;
    void *ud;
    int parts;    /* PINGs not answered yet */
    int status;   /* the first failure */
    int reported; /* cb has run */
    int pong;     /* waiting for the subscriber's ["pong", token] */
    uint64_t token;
} syncreq;

struct aredis_ccache {
    aredis_client *c; /* NULL once the client is released */
    aredis_loop *loop;
    aredis__watch watch;
    int state;
    int redirect; /* invalidations come on the cache's own connection */
    int freeing;
    uint64_t epoch;

    size_t max_entries, max_bytes;
    int mode;
    char **cmds;
    size_t *cmd_lens;
    size_t ncmds;
    char **prefixes;
    size_t *prefix_lens;
    size_t nprefixes;

    /* The tracking command, as argv and encoded (the handshake step). */
    const char **targv;
    size_t *tlens;
    int targc;
    char redirect_arg[24];
    aredis_buf tbytes;
    aredis__conn_step step;
    int step_on; /* installed on the shared connection */

    keyrec **buckets;
    size_t nbuckets, nkeys;
    uint64_t seed;
    entry *lru_head, *lru_tail;
    aredis_ccache_stats st;

    hit *hit_head, *hit_tail, *hit_free;
    size_t nhit_free;
    aredis__defer hit_defer;
    aredis__defer free_defer;
    miss *misses;
    op *ops;
    syncreq *syncs;
    uint64_t next_token;

    /* REDIRECT: the subscriber. */
    aredis_exclusive *sub;
    long long sub_id;
    int sub_up;        /* subscribed: the id may be redirected to */
    int sub_acquiring; /* an acquire is on its way */
    int sub_dropping;  /* sub_defer will drop it */
    aredis_timer *sub_timer;
    aredis__defer sub_defer;

    aredis_buf scratch;
};

static void flush_all(aredis_ccache *cc);
static void sub_start(aredis_ccache *cc);
static void on_free(void *arg);
static void send_tracking(aredis_ccache *cc);
static void sync_part_done(syncreq *s, int status);

/* ------------------------------------------------------------------------
 * The store
 * ------------------------------------------------------------------------ */

static uint64_t hash_bytes(uint64_t seed, const char *p, size_t n)
{
    uint64_t h = seed ^ (n * 0x9E3779B97F4A7C15ull);
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = (h ^ v) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    uint64_t v = 0;
    memcpy(&v, p, n);
    h = (h ^ v) * 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 29);
}

static keyrec *key_find(const aredis_ccache *cc, const char *key, size_t klen,
                        uint64_t h)
{
    for (keyrec *k = cc->buckets[h & (cc->nbuckets - 1)]; k != NULL;
         k = k->hnext)
        if (k->hash == h && k->klen == klen && memcmp(k->key, key, klen) == 0)
            return k;
    return NULL;
}

static void grow(aredis_ccache *cc)
{
    size_t n = cc->nbuckets * 2;
    // NOLINTNEXTLINE(bugprone-sizeof-expression)
    keyrec **b = aredis__calloc(n, sizeof *b);
    if (b == NULL)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < cc->nbuckets; i++) {
        keyrec *k = cc->buckets[i];
        while (k != NULL) {
            keyrec *next = k->hnext;
            k->hnext = b[k->hash & (n - 1)];
            b[k->hash & (n - 1)] = k;
            k = next;
        }
    }
    aredis__free(cc->buckets);
    cc->buckets = b;
    cc->nbuckets = n;
}

static keyrec *key_get(aredis_ccache *cc, const char *key, size_t klen,
                       uint64_t h)
{
    keyrec *k = key_find(cc, key, klen, h);
    if (k != NULL)
        return k;
    k = aredis__malloc(sizeof *k + klen + 1);
    if (k == NULL)
        return NULL;
    memset(k, 0, sizeof *k);
    k->hash = h;
    k->klen = klen;
    memcpy(k->key, key, klen);
    k->key[klen] = '\0';
    k->hnext = cc->buckets[h & (cc->nbuckets - 1)];
    cc->buckets[h & (cc->nbuckets - 1)] = k;
    if (++cc->nkeys > cc->nbuckets)
        grow(cc);
    return k;
}

/* Drop a user of k; the last one frees it. */
static void key_put(aredis_ccache *cc, keyrec *k)
{
    if (--k->users > 0)
        return;
    keyrec **pp = &cc->buckets[k->hash & (cc->nbuckets - 1)];
    while (*pp != k)
        pp = &(*pp)->hnext;
    *pp = k->hnext;
    cc->nkeys--;
    aredis__free(k);
}

static void entry_release(aredis_ccache *cc, entry *e)
{
    aredis_reply_free(e->reply);
    keyrec *k = e->k;
    aredis__free(e);
    key_put(cc, k);
}

/* Take e out of the store (its key's list and the LRU); freed now, or
 * when its last undelivered hit is (a dead entry is never served). */
static void entry_remove(aredis_ccache *cc, entry *e)
{
    entry **pp = &e->k->entries;
    while (*pp != e)
        pp = &(*pp)->knext;
    *pp = e->knext;
    if (e->lprev)
        e->lprev->lnext = e->lnext;
    else
        cc->lru_head = e->lnext;
    if (e->lnext)
        e->lnext->lprev = e->lprev;
    else
        cc->lru_tail = e->lprev;
    cc->st.entries--;
    cc->st.bytes -= e->bytes;
    e->dead = 1;
    if (e->refs == 0)
        entry_release(cc, e);
}

static void lru_front(aredis_ccache *cc, entry *e)
{
    if (cc->lru_head == e)
        return;
    e->lprev->lnext = e->lnext;
    if (e->lnext)
        e->lnext->lprev = e->lprev;
    else
        cc->lru_tail = e->lprev;
    e->lprev = NULL;
    e->lnext = cc->lru_head;
    cc->lru_head->lprev = e;
    cc->lru_head = e;
}

static entry *entry_find(const keyrec *k, const char *rest, size_t rlen)
{
    for (entry *e = k->entries; e != NULL; e = e->knext)
        if (e->rlen == rlen && memcmp(e->rest, rest, rlen) == 0)
            return e;
    return NULL;
}

static void store(aredis_ccache *cc, keyrec *k, const char *rest, size_t rlen,
                  const aredis_reply *r)
{
    entry *old = entry_find(k, rest, rlen);
    if (old != NULL)
        entry_remove(cc, old);
    size_t rsize = 0;
    aredis_reply *copy = aredis__reply_dup_sized(r, &rsize);
    if (copy == NULL)
        return;
    size_t bytes = sizeof(entry) + rlen + rsize + sizeof(keyrec) + k->klen;
    entry *e = bytes <= cc->max_bytes ? aredis__malloc(sizeof *e + rlen) : NULL;
    if (e == NULL) {
        aredis_reply_free(copy);
        return;
    }
    memset(e, 0, sizeof *e);
    e->k = k;
    e->reply = copy;
    e->bytes = bytes;
    e->rlen = rlen;
    memcpy(e->rest, rest, rlen);
    k->users++;
    e->knext = k->entries;
    k->entries = e;
    e->lnext = cc->lru_head;
    if (cc->lru_head)
        cc->lru_head->lprev = e;
    else
        cc->lru_tail = e;
    cc->lru_head = e;
    cc->st.entries++;
    cc->st.bytes += bytes;
    while (cc->st.entries > cc->max_entries || cc->st.bytes > cc->max_bytes) {
        cc->st.evictions++;
        entry_remove(cc, cc->lru_tail);
    }
}

static void invalidate_key(aredis_ccache *cc, const char *key, size_t klen)
{
    keyrec *k = key_find(cc, key, klen, hash_bytes(cc->seed, key, klen));
    if (k == NULL)
        return;
    k->gen++;   /* misses of this key on their way are not stored */
    k->users++; /* hold it while its entries go */
    while (k->entries != NULL) {
        cc->st.invalidations++;
        entry_remove(cc, k->entries);
    }
    key_put(cc, k);
}

/* Everything goes, and nothing on its way is stored. */
static void flush_all(aredis_ccache *cc)
{
    cc->epoch++;
    if (cc->lru_head == NULL)
        return;
    cc->st.flushes++;
    while (cc->lru_head != NULL)
        entry_remove(cc, cc->lru_head);
}

/* An invalidation's payload: the keys (an array), or null for "all". */
static void invalidate(aredis_ccache *cc, const aredis_reply *keys)
{
    if (keys->type == AREDIS_REPLY_NIL) {
        flush_all(cc);
        return;
    }
    if (keys->type == AREDIS_REPLY_STRING) {
        invalidate_key(cc, keys->str, keys->len);
        return;
    }
    if (keys->type != AREDIS_REPLY_ARRAY && keys->type != AREDIS_REPLY_SET &&
        keys->type != AREDIS_REPLY_PUSH) {
        flush_all(cc); /* not understood: the safe answer */
        return;
    }
    for (size_t i = 0; i < keys->len; i++) {
        const aredis_reply *k = &keys->element[i];
        if (k->type == AREDIS_REPLY_STRING || k->type == AREDIS_REPLY_STATUS)
            invalidate_key(cc, k->str, k->len);
        else
            flush_all(cc);
    }
}

/* ------------------------------------------------------------------------
 * Tracking state
 * ------------------------------------------------------------------------ */

static aredis__link *shared(const aredis_ccache *cc)
{
    return aredis__client_main(cc->c);
}

static void set_state(aredis_ccache *cc, int state)
{
    if (cc->state != state)
        cc->epoch++;
    cc->state = state;
}

static void step_install(aredis_ccache *cc, int on)
{
    aredis__conn *cn = &shared(cc)->conn;
    cc->step_on = on;
    cn->extra = on ? &cc->step : NULL;
    cn->nextra = on ? 1 : 0;
}

/* Encode CLIENT TRACKING ON with the mode's options (and the redirect id
 * in REDIRECT mode) into the handshake step. 0 or AREDIS_ENOMEM. */
static int build_tracking(aredis_ccache *cc)
{
    int n = 0;
    cc->targv[n++] = "CLIENT";
    cc->targv[n++] = "TRACKING";
    cc->targv[n++] = "ON";
    if (cc->redirect) {
        snprintf(cc->redirect_arg, sizeof cc->redirect_arg, "%lld", cc->sub_id);
        cc->targv[n++] = "REDIRECT";
        cc->targv[n++] = cc->redirect_arg;
    }
    if (cc->mode == AREDIS_CCACHE_BCAST) {
        cc->targv[n++] = "BCAST";
        for (size_t i = 0; i < cc->nprefixes; i++) {
            cc->targv[n++] = "PREFIX";
            cc->targv[n++] = cc->prefixes[i];
        }
    } else if (cc->mode == AREDIS_CCACHE_OPTIN) {
        cc->targv[n++] = "OPTIN";
    } else if (cc->mode == AREDIS_CCACHE_OPTOUT) {
        cc->targv[n++] = "OPTOUT";
    }
    cc->targc = n;
    for (int i = 0; i < n; i++)
        cc->tlens[i] = strlen(cc->targv[i]);
    cc->tbytes.len = 0;
    int e = aredis_write_argv(&cc->tbytes, n, cc->targv, cc->tlens);
    cc->step =
        (aredis__conn_step){"CLIENT TRACKING", cc->tbytes.data, cc->tbytes.len};
    return e;
}

static op *op_new(aredis_ccache *cc)
{
    op *o = aredis__calloc(1, sizeof *o);
    if (o == NULL)
        return NULL;
    o->cc = cc;
    o->epoch = cc->epoch;
    o->next = cc->ops;
    cc->ops = o;
    return o;
}

/* The cache that sent o, still alive; o leaves its list either way. */
static aredis_ccache *op_done(op *o)
{
    aredis_ccache *cc = o->cc;
    if (cc != NULL) {
        op **pp = &cc->ops;
        while (*pp != o)
            pp = &(*pp)->next;
        *pp = o->next;
    }
    return cc;
}

static void on_tracking(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    op *o = ud;
    aredis_ccache *cc = op_done(o);
    uint64_t epoch = o->epoch;
    aredis__free(o);
    /* Only the answer to the latest request, with nothing in between,
     * decides; a loss in between has its own way back (the handshake). */
    if (cc == NULL || cc->freeing || epoch != cc->epoch ||
        cc->state != AREDIS_CCACHE_STARTING)
        return;
    if (r->type != AREDIS_REPLY_ERROR) {
        set_state(cc, AREDIS_CCACHE_ACTIVE);
        return;
    }
    if (r->code != AREDIS_ESERVER) {
        /* A loss comes back through the handshake (CONNECTED moved the
         * epoch already); anything else, a deadline say, is asked again. */
        if (shared(cc)->conn.state == AREDIS__ST_READY)
            send_tracking(cc);
        return;
    }
    if (cc->redirect && strstr(r->str, "redirect") != NULL) {
        set_state(cc, AREDIS_CCACHE_SUSPENDED); /* the id went meanwhile */
        return;
    }
    step_install(cc, 0);
    set_state(cc, AREDIS_CCACHE_UNSUPPORTED);
}

/* Turn tracking on on the connection that is up now (the handshake step
 * covers the next ones): the reads sent after it are tracked, those
 * before it are not stored (the epoch moves). */
static void send_tracking(aredis_ccache *cc)
{
    cc->epoch++;
    cc->state = AREDIS_CCACHE_STARTING;
    op *o = op_new(cc);
    if (o == NULL)
        return; /* stays STARTING until the next connect */
    aredis_cmd_opts opts = {.flags = AREDIS_CMD_IDEMPOTENT};
    if (aredis_commandv_opts(cc->c, &opts, on_tracking, o, cc->targc, cc->targv,
                             cc->tlens) != 0) {
        op_done(o);
        aredis__free(o);
    }
}

/* The redirect target is subscribed: point the shared connection at it. */
static void redirect_ready(aredis_ccache *cc)
{
    if (build_tracking(cc) != 0) {
        step_install(cc, 0);
        return;
    }
    step_install(cc, 1);
    if (shared(cc)->conn.state == AREDIS__ST_READY)
        send_tracking(cc);
    /* else: the handshake sends it, and CONNECTED confirms it */
}

static void go_redirect(aredis_ccache *cc)
{
    cc->redirect = 1;
    step_install(cc, 0);
    set_state(cc, AREDIS_CCACHE_SUSPENDED);
    sub_start(cc);
}

/* The shared connection completed a handshake. */
static void shared_connected(aredis_ccache *cc)
{
    flush_all(cc);
    if (cc->state == AREDIS_CCACHE_UNSUPPORTED)
        return;
    int proto = shared(cc)->conn.proto;
    if (!cc->redirect && proto == 2) {
        go_redirect(cc); /* RESP2: pushes cannot reach this connection */
        return;
    }
    if (!cc->redirect) {
        /* The step was in this handshake: tracking is on. */
        set_state(cc,
                  cc->step_on ? AREDIS_CCACHE_ACTIVE : AREDIS_CCACHE_STARTING);
        return;
    }
    /* REDIRECT: the handshake may have named an id that has gone since;
     * confirm with the current one. */
    if (cc->sub_up)
        send_tracking(cc);
    else
        set_state(cc, AREDIS_CCACHE_SUSPENDED);
}

/* ------------------------------------------------------------------------
 * REDIRECT: the subscriber
 * ------------------------------------------------------------------------ */

static aredis__link *sub_link(const aredis_ccache *cc)
{
    return (aredis__link *)cc->sub;
}

static void on_sub_timer(void *arg)
{
    sub_start(arg);
}

static void sub_retry_later(aredis_ccache *cc)
{
    if (cc->sub_timer != NULL)
        aredis_timer_start(cc->sub_timer, SUB_RETRY_MS);
}

/* Fail the syncs waiting for the subscriber's pong (a completion may
 * take one off the list: start again after each). */
static void fail_pongs(aredis_ccache *cc, int status)
{
    for (;;) {
        syncreq *s = cc->syncs;
        while (s != NULL && !s->pong)
            s = s->next;
        if (s == NULL)
            return;
        s->pong = 0;
        sync_part_done(s, status);
    }
}

/* From the loop: close the lost subscriber and start another. */
static void on_sub_defer(void *arg)
{
    aredis_ccache *cc = arg;
    cc->sub_dropping = 0;
    if (cc->sub != NULL && cc->c != NULL)
        aredis__pool_drop(sub_link(cc));
    cc->sub = NULL;
    if (!cc->freeing && cc->c != NULL)
        sub_retry_later(cc);
}

/* The invalidations' connection is gone: nothing said on it since can be
 * trusted, so everything goes, and nothing is stored until a new one is
 * subscribed and the shared connection redirected to it. */
static void sub_lost(aredis_ccache *cc)
{
    cc->sub_up = 0;
    flush_all(cc);
    step_install(cc, 0);
    if (cc->state != AREDIS_CCACHE_UNSUPPORTED)
        set_state(cc, AREDIS_CCACHE_SUSPENDED);
    fail_pongs(cc, AREDIS_ECLOSED);
    if (!cc->sub_dropping) {
        cc->sub_dropping = 1;
        aredis__loop_defer(cc->loop, &cc->sub_defer, on_sub_defer, cc);
    }
}

static void on_sub_id(aredis_client *c, const aredis_reply *r, void *ud)
{
    op *o = ud;
    aredis_ccache *cc = op_done(o);
    aredis__free(o);
    if (cc == NULL || cc->freeing || cc->sub == NULL || cc->sub_dropping)
        return;
    if (r->type != AREDIS_REPLY_INTEGER) {
        sub_lost(cc);
        return;
    }
    cc->sub_id = r->integer;
    aredis__link *l = sub_link(cc);
    /* Every reply from here on is a message (RESP2 subscribed mode); on
     * RESP3 they are push frames anyway. */
    if (l->conn.proto == 2)
        l->conn.raw_push = 1;
    const char *argv[] = {"SUBSCRIBE", invalidate_channel};
    size_t lens[] = {9, sizeof invalidate_channel - 1};
    if (aredis__send_pushed(c, l, 2, argv, lens) != 0)
        sub_lost(cc);
}

static void on_sub_acquired(aredis_client *c, aredis_exclusive *x, int status,
                            void *ud)
{
    (void)c;
    aredis_ccache *cc = ud;
    cc->sub_acquiring = 0;
    if (cc->freeing || cc->c == NULL) {
        if (x != NULL && cc->c != NULL)
            aredis__pool_drop((aredis__link *)x);
        if (cc->freeing)
            aredis__loop_defer(cc->loop, &cc->free_defer, on_free, cc);
        return;
    }
    if (x == NULL) {
        (void)status;
        sub_retry_later(cc);
        return;
    }
    cc->sub = x;
    op *o = op_new(cc);
    if (o == NULL ||
        aredis_exclusive_command(x, on_sub_id, o, "CLIENT ID") != 0) {
        if (o != NULL) {
            op_done(o);
            aredis__free(o);
        }
        sub_lost(cc);
    }
}

static void sub_start(aredis_ccache *cc)
{
    if (cc->freeing || cc->c == NULL || cc->sub != NULL || cc->sub_acquiring ||
        cc->sub_dropping)
        return;
    if (aredis_client_acquire(cc->c, on_sub_acquired, cc) == 0)
        cc->sub_acquiring = 1;
    else
        sub_retry_later(cc);
}

/* ------------------------------------------------------------------------
 * The watch: pushes and events, first
 * ------------------------------------------------------------------------ */

static int word(const aredis_reply *r, const char *w)
{
    size_t n = strlen(w);
    return (r->type == AREDIS_REPLY_STRING || r->type == AREDIS_REPLY_STATUS) &&
           r->len == n && strncasecmp(r->str, w, n) == 0;
}

static void sub_pong(aredis_ccache *cc, const aredis_reply *r)
{
    if (r->len < 2 || r->element[1].type != AREDIS_REPLY_STRING)
        return;
    uint64_t token = strtoull(r->element[1].str, NULL, 10);
    for (syncreq *s = cc->syncs; s != NULL; s = s->next)
        if (s->pong && s->token == token) {
            s->pong = 0;
            sync_part_done(s, 0);
            return;
        }
}

static int w_push(void *ud, aredis__link *l, const aredis_reply *r)
{
    aredis_ccache *cc = ud;
    int on_sub = cc->sub != NULL && l == sub_link(cc);
    if (cc->freeing || (!on_sub && l != shared(cc)))
        return 0;
    int agg = r->type == AREDIS_REPLY_PUSH ||
              (on_sub && r->type == AREDIS_REPLY_ARRAY);
    if (!agg || r->len == 0)
        return on_sub;
    const aredis_reply *w = &r->element[0];
    if (word(w, "invalidate") && r->len >= 2) {
        invalidate(cc, &r->element[1]);
        return 1;
    }
    if (on_sub) {
        if (word(w, "message") && r->len >= 3 &&
            word(&r->element[1], invalidate_channel)) {
            invalidate(cc, &r->element[2]);
        } else if (word(w, "subscribe") && !cc->sub_up) {
            cc->sub_up = 1;
            redirect_ready(cc);
        } else if (word(w, "pong")) {
            sub_pong(cc, r);
        }
        return 1; /* nothing on it is anyone else's */
    }
    if (word(w, "tracking-redir-broken")) {
        sub_lost(cc);
        return 1;
    }
    return 0;
}

static void w_event(void *ud, aredis__link *l, int event)
{
    aredis_ccache *cc = ud;
    if (cc->freeing)
        return;
    if (cc->sub != NULL && l == sub_link(cc)) {
        if (event == AREDIS__EV_DISCONNECTED)
            sub_lost(cc);
        return;
    }
    if (l != shared(cc))
        return;
    if (event == AREDIS__EV_CONNECTED) {
        shared_connected(cc);
    } else if (event == AREDIS__EV_DISCONNECTED) {
        /* Invalidations sent to the lost connection are lost with it. */
        flush_all(cc);
        if (cc->state == AREDIS_CCACHE_ACTIVE)
            set_state(cc, AREDIS_CCACHE_STARTING);
    }
}

/* ------------------------------------------------------------------------
 * Reads
 * ------------------------------------------------------------------------ */

static void hit_free(aredis_ccache *cc, hit *h)
{
    if (cc->nhit_free < MAX_FREE_HITS) {
        h->next = cc->hit_free;
        cc->hit_free = h;
        cc->nhit_free++;
        return;
    }
    aredis__free(h);
}

static void on_miss(aredis_client *c, const aredis_reply *r, void *ud)
{
    miss *m = ud;
    aredis_ccache *cc = m->cc;
    if (cc != NULL) {
        if (m->prev)
            m->prev->next = m->next;
        else
            cc->misses = m->next;
        if (m->next)
            m->next->prev = m->prev;
        keyrec *k = m->k;
        if (r->type != AREDIS_REPLY_ERROR) {
            if (cc->state == AREDIS_CCACHE_ACTIVE && m->epoch == cc->epoch &&
                k->gen == m->gen) {
                const char *rest = (const char *)(m + 1);
                size_t rlen;
                memcpy(&rlen, rest, sizeof rlen);
                store(cc, k, rest + sizeof rlen, rlen, r);
            } else {
                cc->st.not_stored++;
            }
        }
        key_put(cc, k);
    }
    if (m->cb != NULL) {
        c->in_cb++;
        m->cb(c, r, m->ud);
        c->in_cb--;
    }
    aredis__free(m);
}

/* The parts of a cacheable command. */
typedef struct read_args {
    int argc;
    const char *const *argv;
    const size_t *lens;
    char *rest; /* name and the arguments after the key (see entry) */
    size_t rlen;
} read_args;

static int send_miss(aredis_ccache *cc, const read_args *ra, keyrec *k,
                     aredis_reply_cb cb, void *ud)
{
    miss *m = aredis__malloc(sizeof *m + sizeof(size_t) + ra->rlen);
    if (m == NULL)
        return AREDIS_ENOMEM;
    memset(m, 0, sizeof *m);
    m->cc = cc;
    m->k = k;
    m->gen = k->gen;
    m->epoch = cc->epoch;
    m->cb = cb;
    m->ud = ud;
    char *rest = (char *)(m + 1);
    memcpy(rest, &ra->rlen, sizeof ra->rlen);
    memcpy(rest + sizeof ra->rlen, ra->rest, ra->rlen);
    if (cc->mode == AREDIS_CCACHE_OPTIN && cc->state == AREDIS_CCACHE_ACTIVE) {
        /* Tracks the very next command on the connection: this read. */
        static const char *const yes[] = {"CLIENT", "CACHING", "YES"};
        if (aredis_commandv(cc->c, NULL, NULL, 3, yes, NULL) != 0)
            m->epoch = 0; /* not tracked: not stored */
    }
    int e = aredis_commandv(cc->c, on_miss, m, ra->argc, ra->argv, ra->lens);
    if (e != 0) {
        aredis__free(m);
        return e;
    }
    k->users++;
    m->next = cc->misses;
    if (cc->misses)
        cc->misses->prev = m;
    cc->misses = m;
    cc->st.misses++;
    return 0;
}

static void on_hits(void *arg);

static int serve_hit(aredis_ccache *cc, entry *e, aredis_reply_cb cb, void *ud)
{
    hit *h = cc->hit_free;
    if (h != NULL) {
        cc->hit_free = h->next;
        cc->nhit_free--;
    } else if ((h = aredis__malloc(sizeof *h)) == NULL) {
        return AREDIS_ENOMEM;
    }
    h->next = NULL;
    h->e = e;
    h->cb = cb;
    h->ud = ud;
    e->refs++;
    if (cc->hit_tail)
        cc->hit_tail->next = h;
    else
        cc->hit_head = h;
    cc->hit_tail = h;
    if (!aredis__defer_queued(&cc->hit_defer))
        aredis__loop_defer(cc->loop, &cc->hit_defer, on_hits, cc);
    cc->st.hits++;
    lru_front(cc, e);
    return 0;
}

/* Rebuild the argument vector of a dead entry's command and send it. */
static void resend(aredis_ccache *cc, entry *e, aredis_reply_cb cb, void *ud)
{
    const char *p = e->rest, *end = e->rest + e->rlen;
    const char *argv[64] = {0};
    size_t lens[64] = {0};
    int argc = 0;
    while (p < end && argc < 64) {
        uint32_t n;
        memcpy(&n, p, 4);
        argv[argc] = p + 4;
        lens[argc++] = n;
        p += 4 + n;
        if (argc == 1) {
            argv[argc] = e->k->key;
            lens[argc++] = e->k->klen;
        }
    }
    read_args ra = {argc, argv, lens, e->rest, e->rlen};
    keyrec *k = e->k;
    if (send_miss(cc, &ra, k, cb, ud) == 0)
        return;
    aredis_reply err;
    memset(&err, 0, sizeof err);
    err.type = AREDIS_REPLY_ERROR;
    err.code = AREDIS_ENOMEM;
    err.str = "out of memory";
    err.len = strlen(err.str);
    cb(cc->c, &err, ud);
}

/* Deliver the hits of this loop turn. One whose entry went in the
 * meantime (an invalidation read in the same turn) goes to the server. */
static void on_hits(void *arg)
{
    aredis_ccache *cc = arg;
    hit *h = cc->hit_head;
    cc->hit_head = cc->hit_tail = NULL;
    aredis_client *c = cc->c;
    while (h != NULL) {
        hit *next = h->next;
        entry *e = h->e;
        if (h->cb != NULL) {
            if (c == NULL) {
                aredis_reply err;
                memset(&err, 0, sizeof err);
                err.type = AREDIS_REPLY_ERROR;
                err.code = AREDIS_ECANCELED;
                err.str = "canceled: the client was freed";
                err.len = strlen(err.str);
                h->cb(NULL, &err, h->ud);
            } else if (e->dead) {
                cc->st.hits--;
                resend(cc, e, h->cb, h->ud);
            } else {
                c->in_cb++;
                h->cb(c, e->reply, h->ud);
                c->in_cb--;
            }
        }
        if (--e->refs == 0 && e->dead)
            entry_release(cc, e);
        hit_free(cc, h);
        h = next;
    }
}

static int upper_eq(const char *a, const char *b, size_t n)
{
    return strncasecmp(a, b, n) == 0;
}

/* The command is one the cache holds, on a key it may hold. */
static int cacheable(const aredis_ccache *cc, int argc, const char *const *argv,
                     const size_t *lens)
{
    if (argc < 2 || cc->state != AREDIS_CCACHE_ACTIVE)
        return 0;
    size_t n = lens[0];
    int known = 0;
    for (size_t i = 0; i < cc->ncmds && !known; i++)
        known = cc->cmd_lens[i] == n && upper_eq(cc->cmds[i], argv[0], n);
    if (!known)
        return 0;
    /* EXISTS and SMISMEMBER... name one key only when EXISTS has one. */
    if (n == 6 && upper_eq(argv[0], "EXISTS", 6) && argc != 2)
        return 0;
    if (cc->mode != AREDIS_CCACHE_BCAST || cc->nprefixes == 0)
        return 1;
    for (size_t i = 0; i < cc->nprefixes; i++)
        if (lens[1] >= cc->prefix_lens[i] &&
            memcmp(argv[1], cc->prefixes[i], cc->prefix_lens[i]) == 0)
            return 1;
    return 0;
}

static int ccache_read(aredis_ccache *cc, aredis_reply_cb cb, void *ud,
                       int argc, const char *const *argv, const size_t *lens)
{
    if (!cacheable(cc, argc, argv, lens))
        return aredis_commandv(cc->c, cb, ud, argc, argv, lens);
    size_t rlen = 4 + lens[0];
    for (int i = 2; i < argc; i++)
        rlen += 4 + lens[i];
    char small[256];
    char *rest = rlen <= sizeof small ? small : aredis__malloc(rlen);
    if (rest == NULL)
        return AREDIS_ENOMEM;
    char *p = rest;
    for (int i = 0; i < argc; i++) {
        if (i == 1)
            continue;
        uint32_t n = (uint32_t)lens[i];
        memcpy(p, &n, 4);
        p += 4;
        if (i == 0) {
            for (size_t j = 0; j < lens[0]; j++) {
                char ch = argv[0][j];
                p[j] = (char)(ch >= 'a' && ch <= 'z' ? ch - 32 : ch);
            }
        } else {
            memcpy(p, argv[i], lens[i]);
        }
        p += lens[i];
    }
    uint64_t h = hash_bytes(cc->seed, argv[1], lens[1]);
    int e;
    keyrec *k = key_find(cc, argv[1], lens[1], h);
    entry *hit_e = k != NULL ? entry_find(k, rest, rlen) : NULL;
    if (hit_e != NULL) {
        e = serve_hit(cc, hit_e, cb, ud);
    } else {
        k = k != NULL ? k : key_get(cc, argv[1], lens[1], h);
        if (k == NULL) {
            e = AREDIS_ENOMEM;
        } else {
            read_args ra = {argc, argv, lens, rest, rlen};
            k->users++; /* held across the submit */
            e = send_miss(cc, &ra, k, cb, ud);
            key_put(cc, k);
        }
    }
    if (rest != small)
        aredis__free(rest);
    return e;
}

int aredis_ccache_commandv(aredis_ccache *cc, aredis_reply_cb cb, void *ud,
                           int argc, const char *const *argv,
                           const size_t *argvlen)
{
    if (cc == NULL || cc->c == NULL || cc->freeing)
        return AREDIS_ESTATE;
    if (argc <= 0 || argv == NULL)
        return AREDIS_EINVAL;
    if (argvlen != NULL)
        return ccache_read(cc, cb, ud, argc, argv, argvlen);
    size_t lens[64] = {0};
    if (argc > 64)
        return aredis_commandv(cc->c, cb, ud, argc, argv, NULL);
    for (int i = 0; i < argc; i++) {
        if (argv[i] == NULL)
            return AREDIS_EINVAL;
        lens[i] = strlen(argv[i]);
    }
    return ccache_read(cc, cb, ud, argc, argv, lens);
}

int aredis_ccache_command(aredis_ccache *cc, aredis_reply_cb cb, void *ud,
                          const char *fmt, ...)
{
    if (cc == NULL || cc->c == NULL || cc->freeing)
        return AREDIS_ESTATE;
    if (fmt == NULL)
        return AREDIS_EFORMAT;
    cc->scratch.len = 0;
    va_list ap;
    va_start(ap, fmt);
    int e = aredis_write_vfmt(&cc->scratch, fmt, ap);
    va_end(ap);
    if (e != 0)
        return e;
    /* Read the arguments back from the writer's own output. */
    const char *p = cc->scratch.data + 1;
    int argc = 0;
    while (*p != '\r')
        argc = argc * 10 + (*p++ - '0');
    p += 2;
    if (argc > 64) /* no cacheable read has that many: pass it on */
        return aredis__submit_encoded(cc->c, NULL, cb, ud, cc->scratch.data,
                                      cc->scratch.len);
    const char *argv[64] = {0};
    size_t lens[64] = {0};
    for (int i = 0; i < argc; i++) {
        size_t n = 0;
        p++; /* '$' */
        while (*p != '\r')
            n = n * 10 + (size_t)(*p++ - '0');
        p += 2;
        argv[i] = p;
        lens[i] = n;
        p += n + 2;
    }
    return ccache_read(cc, cb, ud, argc, argv, lens);
}

/* ------------------------------------------------------------------------
 * Sync
 * ------------------------------------------------------------------------ */

static void sync_report(syncreq *s)
{
    s->reported = 1;
    aredis_ccache *cc = s->cc;
    if (cc != NULL) {
        syncreq **pp = &cc->syncs;
        while (*pp != s)
            pp = &(*pp)->next;
        *pp = s->next;
        if (s->status != 0)
            flush_all(cc); /* freshness unknown: start again */
    }
    aredis_client *c = cc != NULL ? cc->c : NULL;
    if (c != NULL)
        c->in_cb++;
    s->cb(cc, s->status, s->ud);
    if (c != NULL)
        c->in_cb--;
}

static void sync_part_done(syncreq *s, int status)
{
    if (status != 0 && s->status == 0)
        s->status = status;
    if (--s->parts > 0)
        return;
    if (!s->reported)
        sync_report(s);
    aredis__free(s);
}

static void on_sync_ping(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    op *o = ud;
    op_done(o);
    syncreq *s = o->sync;
    aredis__free(o);
    sync_part_done(s, r->type == AREDIS_REPLY_ERROR
                          ? (r->code != 0 ? r->code : AREDIS_ESERVER)
                          : 0);
}

static int sync_ping(aredis_ccache *cc, syncreq *s, aredis_exclusive *x)
{
    op *o = op_new(cc);
    if (o == NULL)
        return AREDIS_ENOMEM;
    o->sync = s;
    aredis_cmd_opts opts = {.flags = AREDIS_CMD_IDEMPOTENT};
    static const char *const ping[] = {"PING"};
    int e = x != NULL ? aredis_exclusive_command(x, on_sync_ping, o, "PING")
                      : aredis_commandv_opts(cc->c, &opts, on_sync_ping, o, 1,
                                             ping, NULL);
    if (e != 0) {
        op_done(o);
        aredis__free(o);
        return e;
    }
    s->parts++;
    return 0;
}

int aredis_ccache_sync(aredis_ccache *cc, aredis_ccache_sync_cb cb, void *ud)
{
    if (cc == NULL || cc->c == NULL || cc->freeing)
        return AREDIS_ESTATE;
    if (cb == NULL)
        return AREDIS_EINVAL;
    syncreq *s = aredis__calloc(1, sizeof *s);
    if (s == NULL)
        return AREDIS_ENOMEM;
    s->cc = cc;
    s->cb = cb;
    s->ud = ud;
    s->parts = 1; /* held while the PINGs go */
    s->next = cc->syncs;
    cc->syncs = s;
    int e = sync_ping(cc, s, NULL);
    if (e == 0 && cc->redirect && cc->sub_up) {
        /* The invalidations travel on the subscriber: its PING proves
         * they have all arrived. In RESP2 subscribed mode the answer is
         * a ["pong", token] message. */
        aredis__link *l = sub_link(cc);
        if (l->conn.proto == 3) {
            e = sync_ping(cc, s, cc->sub);
        } else {
            char tok[24];
            s->token = ++cc->next_token;
            snprintf(tok, sizeof tok, "%llu", (unsigned long long)s->token);
            const char *argv[] = {"PING", tok};
            size_t lens[] = {4, strlen(tok)};
            e = aredis__send_pushed(cc->c, l, 2, argv, lens);
            if (e == 0) {
                s->pong = 1;
                s->parts++;
            }
        }
    }
    if (e != 0 && s->parts == 1) {
        syncreq **pp = &cc->syncs;
        while (*pp != s)
            pp = &(*pp)->next;
        *pp = s->next;
        aredis__free(s);
        return e;
    }
    if (e != 0)
        s->status = e;
    s->parts--; /* the hold */
    return 0;
}

/* ------------------------------------------------------------------------
 * Life cycle
 * ------------------------------------------------------------------------ */

static void cleanup(aredis_ccache *cc)
{
    while (cc->lru_head != NULL)
        entry_remove(cc, cc->lru_head);
    for (miss *m = cc->misses; m != NULL; m = m->next)
        m->cc = NULL;
    for (op *o = cc->ops; o != NULL; o = o->next)
        o->cc = NULL;
    for (size_t i = 0; i < cc->nbuckets; i++) {
        keyrec *k = cc->buckets[i];
        while (k != NULL) {
            keyrec *next = k->hnext;
            aredis__free(k);
            k = next;
        }
    }
    aredis__free(cc->buckets);
    while (cc->hit_free != NULL) {
        hit *next = cc->hit_free->next;
        aredis__free(cc->hit_free);
        cc->hit_free = next;
    }
    for (size_t i = 0; i < cc->ncmds; i++)
        aredis__free(cc->cmds[i]);
    aredis__free(cc->cmds);
    aredis__free(cc->cmd_lens);
    for (size_t i = 0; i < cc->nprefixes; i++)
        aredis__free(cc->prefixes[i]);
    aredis__free(cc->prefixes);
    aredis__free(cc->prefix_lens);
    aredis__free(cc->targv);
    aredis__free(cc->tlens);
    aredis_buf_cleanup(&cc->tbytes);
    aredis_buf_cleanup(&cc->scratch);
    aredis_timer_free(cc->sub_timer);
    aredis__free(cc);
}

/* Report the syncs not reported yet (the cache or its client goes); the
 * last of their PINGs' completions frees them. */
static void cancel_syncs(aredis_ccache *cc)
{
    while (cc->syncs != NULL) {
        syncreq *s = cc->syncs;
        if (s->status == 0)
            s->status = AREDIS_ECANCELED;
        sync_report(s); /* takes it off the list */
        s->cc = NULL;
        if (s->pong) {
            s->pong = 0;
            if (--s->parts == 0)
                aredis__free(s);
        }
    }
}

/* The client is going (from its release, in the loop): hits still owed
 * are cancelled like its commands, and the cache is detached. */
static void w_release(void *ud)
{
    aredis_ccache *cc = ud;
    aredis_client *c = cc->c;
    cc->c = NULL;
    on_hits(cc);
    aredis__loop_undefer(cc->loop, &cc->hit_defer);
    cancel_syncs(cc);
    cc->sub = NULL; /* the pool frees it */
    if (cc->sub_timer != NULL)
        aredis_timer_stop(cc->sub_timer);
    aredis__loop_undefer(cc->loop, &cc->sub_defer);
    cc->sub_dropping = 0;
    (void)c;
}

/* From the loop, after aredis_ccache_free(): what is owed is delivered,
 * then the memory goes. */
static void on_free(void *arg)
{
    aredis_ccache *cc = arg;
    if (cc->sub_acquiring) {
        return; /* on_sub_acquired queues this again */
    }
    if (cc->c != NULL && cc->c->watch == &cc->watch)
        cc->c->watch = NULL;
    on_hits(cc);
    cancel_syncs(cc);
    if (cc->sub != NULL && cc->c != NULL)
        aredis__pool_drop(sub_link(cc));
    cc->sub = NULL;
    aredis__loop_undefer(cc->loop, &cc->sub_defer);
    cleanup(cc);
}

void aredis_ccache_free(aredis_ccache *cc)
{
    if (cc == NULL || cc->freeing)
        return;
    cc->freeing = 1;
    if (cc->c != NULL && !cc->c->freeing) {
        step_install(cc, 0);
        if (shared(cc)->conn.state == AREDIS__ST_READY &&
            cc->state != AREDIS_CCACHE_UNSUPPORTED)
            aredis_command(cc->c, NULL, NULL, "CLIENT TRACKING OFF");
    }
    if (cc->sub_timer != NULL)
        aredis_timer_stop(cc->sub_timer);
    /* The watch stays until on_free runs, so a client released first
     * still reaches the cache (w_release). */
    aredis__loop_defer(cc->loop, &cc->free_defer, on_free, cc);
}

static int fail(aredis_status *st, int code, const char *msg)
{
    if (st != NULL) {
        st->code = code;
        aredis__msgf(st->msg, sizeof st->msg, "%s", msg);
    }
    return code;
}

/* Copy the options; 0 or the error (st filled). */
static int configure(aredis_ccache *cc, const aredis_ccache_opts *o,
                     aredis_status *st)
{
    static const char *const def[] = {"GET"};
    const char *const *cmds = o->commands ? o->commands : def;
    size_t ncmds = o->commands ? o->ncommands : 1;
    if (o->mode < AREDIS_CCACHE_DEFAULT || o->mode > AREDIS_CCACHE_OPTOUT)
        return fail(st, AREDIS_EINVAL, "bad option: mode");
    if (o->nprefixes > 0 && o->mode != AREDIS_CCACHE_BCAST)
        return fail(st, AREDIS_EINVAL, "bad option: prefixes need BCAST");
    if (o->nprefixes > 1000)
        return fail(st, AREDIS_EINVAL, "bad option: too many prefixes");
    cc->max_entries = o->max_entries ? o->max_entries : DEFAULT_MAX_ENTRIES;
    cc->max_bytes = o->max_bytes ? o->max_bytes : DEFAULT_MAX_BYTES;
    cc->mode = o->mode;
    cc->cmds = aredis__calloc(ncmds ? ncmds : 1, sizeof *cc->cmds);
    cc->cmd_lens = aredis__calloc(ncmds ? ncmds : 1, sizeof(size_t));
    cc->prefixes = aredis__calloc(o->nprefixes + 1, sizeof *cc->prefixes);
    cc->prefix_lens = aredis__calloc(o->nprefixes + 1, sizeof(size_t));
    cc->targv = aredis__calloc(2 * o->nprefixes + 8, sizeof *cc->targv);
    cc->tlens = aredis__calloc(2 * o->nprefixes + 8, sizeof(size_t));
    if (!cc->cmds || !cc->cmd_lens || !cc->prefixes || !cc->prefix_lens ||
        !cc->targv || !cc->tlens)
        return fail(st, AREDIS_ENOMEM, "out of memory");
    for (size_t i = 0; i < ncmds; i++) {
        const char *name = cmds[i];
        size_t n = name ? strlen(name) : 0;
        const char *list = AREDIS_CCACHE_COMMANDS;
        int ok = 0;
        for (const char *p = list; *p && n > 0 && !ok;) {
            size_t w = strcspn(p, " ");
            ok = w == n && strncasecmp(p, name, n) == 0;
            p += w + (p[w] == ' ');
        }
        if (!ok) {
            char nm[64], msg[160];
            aredis__msgf(nm, sizeof nm, "%s", name ? name : "(null)");
            aredis__msgf(msg, sizeof msg,
                         "bad option: %s is not a cacheable command "
                         "(AREDIS_CCACHE_COMMANDS)",
                         nm);
            return fail(st, AREDIS_EINVAL, msg);
        }
        if ((cc->cmds[cc->ncmds] = aredis__strndup(name, n)) == NULL)
            return fail(st, AREDIS_ENOMEM, "out of memory");
        cc->cmd_lens[cc->ncmds++] = n;
    }
    for (size_t i = 0; i < o->nprefixes; i++) {
        const char *p = o->prefixes[i] ? o->prefixes[i] : "";
        cc->prefix_lens[i] = strlen(p);
        if ((cc->prefixes[i] = aredis__strndup(p, cc->prefix_lens[i])) == NULL)
            return fail(st, AREDIS_ENOMEM, "out of memory");
        cc->nprefixes++;
    }
    cc->nbuckets = 64;
    // NOLINTNEXTLINE(bugprone-sizeof-expression)
    cc->buckets = aredis__calloc(cc->nbuckets, sizeof *cc->buckets);
    cc->sub_timer = aredis_timer_new(cc->loop, on_sub_timer, cc);
    if (cc->buckets == NULL || cc->sub_timer == NULL)
        return fail(st, AREDIS_ENOMEM, "out of memory");
    return 0;
}

aredis_ccache *aredis_ccache_new(aredis_client *c, const aredis_ccache_opts *o,
                                 aredis_status *st)
{
    aredis_ccache_opts none;
    if (o == NULL) {
        memset(&none, 0, sizeof none);
        o = &none;
    }
    if (st != NULL) {
        st->code = 0;
        st->msg[0] = '\0';
    }
    if (c == NULL || c->freeing || c->closing || c->watch != NULL) {
        fail(st, AREDIS_ESTATE,
             c != NULL && c->watch != NULL
                 ? "the client has a client-side cache already"
                 : "the client is closing");
        return NULL;
    }
    /* Tracking lives on the shared connection of one node: a cluster's
     * other primaries would never say that their keys changed. */
    if (aredis_client_is_cluster(c)) {
        fail(st, AREDIS_ENOTSUP,
             "client-side caching needs a standalone or sentinel client, "
             "not a cluster client");
        return NULL;
    }
    aredis_ccache *cc = aredis__calloc(1, sizeof *cc);
    if (cc == NULL) {
        fail(st, AREDIS_ENOMEM, "out of memory");
        return NULL;
    }
    cc->c = c;
    cc->loop = aredis_client_loop(c);
    cc->seed = (uint64_t)(uintptr_t)cc ^ (uint64_t)aredis__now_ms();
    aredis_buf_init(&cc->tbytes);
    aredis_buf_init(&cc->scratch);
    if (configure(cc, o, st) != 0) {
        cleanup(cc);
        return NULL;
    }
    cc->watch = (aredis__watch){w_push, w_event, w_release, cc};
    c->watch = &cc->watch;
    cc->state = AREDIS_CCACHE_STARTING;

    /* RESP2 (known, or insisted on) or asked for: REDIRECT. Otherwise
     * RESP3 is assumed and the step goes into the next handshake; if
     * that one falls back to RESP2, shared_connected() switches. */
    aredis__link *l = shared(cc);
    int proto = l->conn.proto ? l->conn.proto : c->cfg.protocol;
    if (o->redirect || proto == 2) {
        go_redirect(cc);
        return cc;
    }
    if (build_tracking(cc) != 0) {
        c->watch = NULL;
        cleanup(cc);
        fail(st, AREDIS_ENOMEM, "out of memory");
        return NULL;
    }
    step_install(cc, 1);
    if (l->conn.state == AREDIS__ST_READY)
        send_tracking(cc);
    return cc;
}

/* ------------------------------------------------------------------------
 * Small calls
 * ------------------------------------------------------------------------ */

void aredis_ccache_flush(aredis_ccache *cc)
{
    if (cc != NULL)
        flush_all(cc);
}

void aredis_ccache_invalidate(aredis_ccache *cc, const char *key, size_t len)
{
    if (cc != NULL && key != NULL)
        invalidate_key(cc, key, len);
}

int aredis_ccache_get_state(const aredis_ccache *cc)
{
    return cc != NULL ? cc->state : AREDIS_EINVAL;
}

void aredis_ccache_get_stats(const aredis_ccache *cc, aredis_ccache_stats *out)
{
    if (out == NULL)
        return;
    if (cc != NULL)
        *out = cc->st;
    else
        memset(out, 0, sizeof *out);
}
