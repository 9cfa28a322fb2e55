/* The application cache and its herd mode (extras layer): identities,
 * payloads, and the commands that read and write them.
 *
 * Written against the public client API only (aredis_commandv_opts,
 * pipelines, scripts, SCAN), so a cache works on every topology; it must
 * not include anything from src/client, src/conn or src/resp. Every
 * command names exactly one key, so a cluster never sees a cross-slot
 * request. Payload encoding lives in cache_codec.c. */
#include "aredis/cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aredis/error.h"
#include "aredis/pipeline.h"
#include "aredis/scan.h"
#include "aredis/script.h"
#include "extras/cache_int.h"
#include "extras/sha1.h"
#include "util/alloc.h"
#include "util/msg.h"

/* A herd entry: 'H', the claim byte ('0', or '1' once a reader was told to
 * recompute), the herd timeout in ms as HERD_DIGITS decimal digits, then
 * an ordinary payload. Fixed width so the script can read it. */
#define HERD_DIGITS 10
#define HERD_PREFIX (2 + HERD_DIGITS)
#define HERD_MAX_MS 9999999999LL

/* The "first reader recomputes" decision, atomic because a script runs
 * alone on the server. Logical expiry is read from the key's own TTL, which
 * is the entry's TTL plus its herd timeout: expired means at most the herd
 * timeout left. Only the server's clock is involved, and only one key.
 * Replies: 0 (no entry) or {payload, 1 fresh | 2 stale | 3 recompute}. */
static const char herd_lua[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if not v then return 0 end\n"
    "if string.byte(v, 1) ~= 72 or string.len(v) < 12 then\n"
    "  return {v, 1}\n"
    "end\n"
    "local herd = tonumber(string.sub(v, 3, 12))\n"
    "local ttl = redis.call('PTTL', KEYS[1])\n"
    "if not herd or ttl < 0 or ttl > herd then return {v, 1} end\n"
    "if string.byte(v, 2) == 49 then return {v, 2} end\n"
    "redis.call('SETRANGE', KEYS[1], 1, '1')\n"
    "return {v, 3}\n";

struct aredis_cache_out {
    aredis_buf buf;
};

struct aredis_cache {
    aredis_client *c;
    /* One for the owner, one per call in flight: a cache freed while calls
     * are pending lives until the last of them completes. */
    size_t refs;
    int codec, level;
    size_t compress_min, max_value_len;
    int64_t ttl_ms, herd_ms, timeout_ms;
    int has_ser;
    aredis_cache_serializer ser;
    aredis_cache_hash_fn hash;
    void *hash_ud;
    aredis_script *herd; /* herd mode only */
    char *match;         /* the app, glob-escaped, and ':' */
    size_t applen;
    char app[];
};

/* ------------------------------------------------------------------------
 * The cache object
 * ------------------------------------------------------------------------ */

int aredis_cache_append(aredis_cache_out *out, const void *data, size_t n)
{
    if (out == NULL || (data == NULL && n != 0))
        return AREDIS_EINVAL;
    return aredis__cache_buf_put(&out->buf, data, n);
}

static int fail(aredis_status *st, int code, const char *msg)
{
    if (st != NULL) {
        st->code = code;
        aredis__msgf(st->msg, sizeof st->msg, "%s", msg);
    }
    return code;
}

static int check_opts(const aredis_cache_opts *o, aredis_status *st)
{
    if (o == NULL || o->app == NULL || o->app[0] == '\0')
        return fail(st, AREDIS_EINVAL, "a cache needs an app prefix");
    if (o->codec < AREDIS_CACHE_NONE || o->codec > AREDIS_CACHE_LZ4)
        return fail(st, AREDIS_EINVAL, "unknown compression codec");
    if (!aredis_cache_codec_available(o->codec)) {
        char msg[160];
        aredis__cache_codec_missing(o->codec, msg, sizeof msg);
        return fail(st, AREDIS_ENOTSUP, msg);
    }
    if (o->ttl_ms < 0 || o->herd_timeout_ms < 0 ||
        o->herd_timeout_ms > HERD_MAX_MS)
        return fail(st, AREDIS_EINVAL,
                    "ttl_ms and herd_timeout_ms must be >= 0 (herd at most "
                    "9999999999)");
    if (o->serializer != NULL && (o->serializer->serialize == NULL ||
                                  o->serializer->deserialize == NULL))
        return fail(st, AREDIS_EINVAL,
                    "a serializer needs both serialize and deserialize");
    return 0;
}

aredis_cache *aredis_cache_new(aredis_client *c, const aredis_cache_opts *o,
                               aredis_status *st)
{
    if (st != NULL) {
        st->code = 0;
        st->msg[0] = '\0';
    }
    if (c == NULL) {
        fail(st, AREDIS_EINVAL, "no client");
        return NULL;
    }
    if (check_opts(o, st) != 0)
        return NULL;
    size_t applen = strlen(o->app);
    aredis_cache *k = NULL;
    if (applen < SIZE_MAX / 2 - sizeof *k - 4)
        k = aredis__calloc(1, sizeof *k + applen + 1);
    /* Every glob-special byte escaped, ':' and a NUL. */
    char *match = k ? aredis__malloc(2 * applen + 2) : NULL;
    if (match == NULL) {
        aredis__free(k);
        fail(st, AREDIS_ENOMEM, "out of memory");
        return NULL;
    }
    size_t m = 0;
    for (size_t i = 0; i < applen; i++) {
        if (strchr("*?[]\\", o->app[i]) != NULL)
            match[m++] = '\\';
        match[m++] = o->app[i];
    }
    match[m++] = ':';
    match[m] = '\0';
    k->match = match;
    memcpy(k->app, o->app, applen + 1);
    k->applen = applen;
    k->c = c;
    k->refs = 1;
    k->codec = o->codec;
    k->level = o->codec_level;
    k->compress_min = o->compress_min ? o->compress_min : 256;
    k->max_value_len = o->max_value_len ? o->max_value_len : 512u << 20;
    k->ttl_ms = o->ttl_ms;
    k->herd_ms = o->herd_timeout_ms;
    k->timeout_ms = o->timeout_ms;
    if (o->serializer != NULL) {
        k->has_ser = 1;
        k->ser = *o->serializer;
    }
    k->hash = o->params_hash;
    k->hash_ud = o->params_hash_ud;
    if (k->herd_ms > 0 &&
        (k->herd = aredis_script_new(herd_lua, sizeof herd_lua - 1)) == NULL) {
        aredis__free(match);
        aredis__free(k);
        fail(st, AREDIS_ENOMEM, "out of memory");
        return NULL;
    }
    return k;
}

static aredis_cache *cache_retain(aredis_cache *k)
{
    k->refs++;
    return k;
}

static void cache_release(aredis_cache *k)
{
    if (--k->refs != 0)
        return;
    aredis_script_free(k->herd);
    aredis__free(k->match);
    aredis__free(k);
}

void aredis_cache_free(aredis_cache *k)
{
    if (k != NULL)
        cache_release(k);
}

aredis_client *aredis_cache_client(const aredis_cache *k)
{
    return k != NULL ? k->c : NULL;
}

/* ------------------------------------------------------------------------
 * Identities: <app>:<key>[:<hash of the parameters>]
 * ------------------------------------------------------------------------ */

typedef struct param_view {
    const char *name, *value;
    size_t nlen, vlen;
} param_view;

static int bytes_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    return c != 0 ? c : (an > bn) - (an < bn);
}

static int param_cmp(const void *x, const void *y)
{
    const param_view *a = x, *b = y;
    int c = bytes_cmp(a->name, a->nlen, b->name, b->nlen);
    return c != 0 ? c : bytes_cmp(a->value, a->vlen, b->value, b->vlen);
}

/* SHA-1 of the parameters sorted by name then value, each written as
 * "<len>:<name><len>:<value>" so no two lists share an encoding. */
static int default_hash(const aredis_cache_param *params, size_t n,
                        char out[41])
{
    param_view small[16], *v = small;
    if (n > 16 && (v = aredis__calloc(n, sizeof *v)) == NULL)
        return AREDIS_ENOMEM;
    int e = 0;
    for (size_t i = 0; i < n; i++) {
        if (params[i].name == NULL || params[i].value == NULL) {
            e = AREDIS_EINVAL;
            goto done;
        }
        v[i].name = params[i].name;
        v[i].nlen = strlen(params[i].name);
        v[i].value = params[i].value;
        v[i].vlen = params[i].len ? params[i].len : strlen(params[i].value);
    }
    qsort(v, n, sizeof *v, param_cmp);
    aredis_buf b;
    aredis_buf_init(&b);
    for (size_t i = 0; i < n && e == 0; i++) {
        char num[48];
        int w = snprintf(num, sizeof num, "%zu:", v[i].nlen);
        e = aredis__cache_buf_put(&b, num, (size_t)w);
        if (e == 0)
            e = aredis__cache_buf_put(&b, v[i].name, v[i].nlen);
        w = snprintf(num, sizeof num, "%zu:", v[i].vlen);
        if (e == 0)
            e = aredis__cache_buf_put(&b, num, (size_t)w);
        if (e == 0)
            e = aredis__cache_buf_put(&b, v[i].value, v[i].vlen);
    }
    if (e == 0) {
        /* The portable code rather than libcrypto's EVP_Digest, whose
         * per-call algorithm fetch (a lock and a lookup) costs more than
         * hashing the few bytes of a parameter list. */
        static const char hex[] = "0123456789abcdef";
        unsigned char md[20];
        aredis__sha1_portable(b.data ? b.data : "", b.len, md);
        for (size_t i = 0; i < 20; i++) {
            out[2 * i] = hex[md[i] >> 4];
            out[2 * i + 1] = hex[md[i] & 15];
        }
        out[40] = '\0';
    }
    aredis_buf_cleanup(&b);
done:
    if (v != small)
        aredis__free(v);
    return e;
}

/* Append the identity of (key, params) to b. */
static int identity(aredis_cache *k, const char *key,
                    const aredis_cache_param *params, size_t n, aredis_buf *b)
{
    if (k == NULL || key == NULL || (params == NULL && n != 0))
        return AREDIS_EINVAL;
    char hash[AREDIS_CACHE_HASH_MAX + 1];
    size_t hlen = 0;
    if (n != 0) {
        int e;
        if (k->hash != NULL) {
            e = k->hash(params, n, hash, k->hash_ud);
            if (e > AREDIS_CACHE_HASH_MAX)
                e = AREDIS_EINVAL;
        } else {
            e = default_hash(params, n, hash);
            if (e == 0)
                e = 40;
        }
        if (e < 0)
            return e;
        hlen = (size_t)e;
    }
    size_t start = b->len;
    int e = aredis__cache_buf_put(b, k->app, k->applen);
    if (e == 0)
        e = aredis__cache_buf_put(b, ":", 1);
    if (e == 0)
        e = aredis__cache_buf_put(b, key, strlen(key));
    if (e == 0 && n != 0)
        e = aredis__cache_buf_put(b, ":", 1);
    if (e == 0)
        e = aredis__cache_buf_put(b, hash, hlen);
    if (e != 0)
        b->len = start;
    return e;
}

long aredis_cache_identity(aredis_cache *k, const char *key,
                           const aredis_cache_param *params, size_t nparams,
                           char *out, size_t cap)
{
    aredis_buf b;
    aredis_buf_init(&b);
    int e = identity(k, key, params, nparams, &b);
    long n = e != 0 ? e : (long)b.len;
    if (e == 0 && out != NULL && b.len < cap) {
        memcpy(out, b.data, b.len);
        out[b.len] = '\0';
    }
    aredis_buf_cleanup(&b);
    return n;
}

/* ------------------------------------------------------------------------
 * Payloads
 * ------------------------------------------------------------------------ */

/* The stored bytes of one value, appended to out. */
static int payload(aredis_cache *k, const void *value, size_t len,
                   aredis_buf *out)
{
    aredis_cache_out ser;
    aredis_buf_init(&ser.buf);
    const char *src = value;
    int e = 0;
    if (k->has_ser) {
        e = k->ser.serialize(value, len, &ser, k->ser.ud);
        src = ser.buf.data ? ser.buf.data : "";
        len = ser.buf.len;
    } else if (value == NULL && len != 0) {
        e = AREDIS_EINVAL;
    }
    if (e == 0 && k->herd != NULL) {
        char head[HERD_PREFIX + 1];
        snprintf(head, sizeof head, "H0%010lld", (long long)k->herd_ms);
        e = aredis__cache_buf_put(out, head, HERD_PREFIX);
    }
    if (e == 0)
        e = aredis__cache_encode(k->codec, k->level, k->compress_min,
                                 src ? src : "", len, out);
    aredis_buf_cleanup(&ser.buf);
    return e;
}

/* The Redis TTL of a set: the entry's TTL, plus the herd timeout in herd
 * mode (so the old value outlives its expiry by that much); 0 for none. */
static int64_t redis_ttl(const aredis_cache *k, int64_t ttl_ms)
{
    if (ttl_ms == 0)
        ttl_ms = k->ttl_ms;
    if (ttl_ms <= 0)
        return 0;
    return ttl_ms + k->herd_ms;
}

/* One decoded read. */
typedef struct item {
    int status;
    const char *data;
    size_t len;
    char *owned;
    void *value;
    char msg[200];
} item;

static void item_error(item *it, int code, const char *msg, size_t len)
{
    it->status = code;
    aredis__msgf(it->msg, sizeof it->msg, "%.*s", (int)len, msg);
}

/* Decode a GET reply (plain) or a herd script reply into it; with
 * want_value, run the deserializer. */
static void decode_read(aredis_cache *k, const aredis_reply *r, int want_value,
                        item *it)
{
    memset(it, 0, sizeof *it);
    const char *p = NULL;
    size_t n = 0;
    int status = AREDIS_CACHE_HIT;
    if (r->type == AREDIS_REPLY_ERROR) {
        item_error(it, r->code, r->str, r->len);
        return;
    }
    if (k->herd == NULL) {
        if (r->type == AREDIS_REPLY_NIL) {
            it->status = AREDIS_CACHE_MISS;
            return;
        }
        if (r->type != AREDIS_REPLY_STRING) {
            item_error(it, AREDIS_EPROTO, "unexpected reply to GET", 23);
            return;
        }
        p = r->str;
        n = r->len;
    } else {
        if (r->type == AREDIS_REPLY_INTEGER && r->integer == 0) {
            it->status = AREDIS_CACHE_MISS;
            return;
        }
        if (r->type != AREDIS_REPLY_ARRAY || r->len != 2 ||
            r->element[0].type != AREDIS_REPLY_STRING ||
            r->element[1].type != AREDIS_REPLY_INTEGER ||
            r->element[1].integer < AREDIS_CACHE_HIT ||
            r->element[1].integer > AREDIS_CACHE_RECOMPUTE) {
            item_error(it, AREDIS_EPROTO, "unexpected reply to the herd read",
                       33);
            return;
        }
        p = r->element[0].str;
        n = r->element[0].len;
        status = (int)r->element[1].integer;
        if (n < HERD_PREFIX || p[0] != 'H') {
            item_error(it, AREDIS_ECORRUPT,
                       "not a herd cache entry (written by a plain cache?)",
                       50);
            return;
        }
        p += HERD_PREFIX;
        n -= HERD_PREFIX;
    }
    int e = aredis__cache_decode(p, n, k->max_value_len, &it->data, &it->len,
                                 &it->owned, it->msg, sizeof it->msg);
    if (e != 0) {
        it->status = e;
        return;
    }
    it->status = status;
    if (want_value && k->has_ser) {
        e = k->ser.deserialize(it->data, it->len, &it->value, k->ser.ud);
        if (e != 0) {
            aredis__msgf(it->msg, sizeof it->msg, "deserialize failed: %s",
                         aredis_strerror(e));
            it->status = e < 0 ? e : AREDIS_ECORRUPT;
            it->value = NULL;
        }
    }
}

static void item_result(const item *it, aredis_cache_result *res)
{
    memset(res, 0, sizeof *res);
    res->status = it->status;
    res->errmsg = it->status < 0 ? it->msg : "";
    if (it->status > 0) {
        res->data = it->data;
        res->len = it->len;
        res->value = it->value;
    }
}

/* ------------------------------------------------------------------------
 * Calls in flight
 * ------------------------------------------------------------------------ */

enum { OP_GET, OP_SET, OP_EXIST, OP_TTL, OP_DEL, OP_DELPAT, OP_MGET, OP_MSET };

typedef struct req {
    aredis_cache *k;
    aredis_cache_cb cb;
    void *ud;
    int op;
    /* Batches */
    size_t n;
    aredis_reply *batch;  /* herd: the pipeline's reply, kept while the
                             items the server did not know the script for
                             are read again */
    aredis_reply **fixed; /* those items' replies */
    size_t waiting;
    aredis_buf ids; /* herd: the identities, NUL-separated */
    size_t *offs;
    /* delete_pattern */
    long long deleted;
    size_t dels;
    int walking;
    int status;
    char errmsg[200];
} req;

typedef struct fix_ctx {
    req *q;
    size_t i;
} fix_ctx;

static req *req_new(aredis_cache *k, int op, aredis_cache_cb cb, void *ud)
{
    req *q = aredis__calloc(1, sizeof *q);
    if (q == NULL)
        return NULL;
    q->k = cache_retain(k);
    q->op = op;
    q->cb = cb;
    q->ud = ud;
    aredis_buf_init(&q->ids);
    return q;
}

static void req_free(req *q)
{
    if (q->fixed != NULL)
        for (size_t i = 0; i < q->n; i++)
            aredis_reply_free(q->fixed[i]);
    aredis__free(q->fixed);
    aredis_reply_free(q->batch);
    aredis_buf_cleanup(&q->ids);
    aredis__free(q->offs);
    cache_release(q->k);
    aredis__free(q);
}

static void deliver(req *q, const aredis_cache_result *res)
{
    if (q->cb != NULL)
        q->cb(q->k, res, q->ud);
    req_free(q);
}

static void deliver_error(req *q, int code, const char *msg, size_t len)
{
    item it;
    memset(&it, 0, sizeof it);
    item_error(&it, code, msg, len);
    aredis_cache_result res;
    item_result(&it, &res);
    deliver(q, &res);
}

static void on_reply(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    req *q = ud;
    aredis_cache_result res;
    memset(&res, 0, sizeof res);
    res.errmsg = "";
    if (q->op == OP_GET) {
        item it;
        decode_read(q->k, r, q->cb != NULL, &it);
        item_result(&it, &res);
        deliver(q, &res);
        aredis__free(it.owned);
        return;
    }
    if (r->type == AREDIS_REPLY_ERROR) {
        deliver_error(q, r->code, r->str, r->len);
        return;
    }
    if (q->op == OP_SET ? r->type != AREDIS_REPLY_STATUS
                        : r->type != AREDIS_REPLY_INTEGER) {
        deliver_error(q, AREDIS_EPROTO, "unexpected reply", 16);
        return;
    }
    if (q->op != OP_SET)
        res.integer = r->integer;
    deliver(q, &res);
}

static int send_cmd(req *q, int argc, const char *const *argv,
                    const size_t *lens)
{
    aredis_cmd_opts o = {.timeout_ms = q->k->timeout_ms};
    return aredis_commandv_opts(q->k->c, &o, on_reply, q, argc, argv, lens);
}

/* exist, ttl, delete: one command on the identity. */
static int key_op(aredis_cache *k, int op, const char *cmd, const char *key,
                  const aredis_cache_param *params, size_t n,
                  aredis_cache_cb cb, void *ud)
{
    if (k == NULL)
        return AREDIS_EINVAL;
    aredis_buf id;
    aredis_buf_init(&id);
    int e = identity(k, key, params, n, &id);
    req *q = NULL;
    if (e == 0 && (q = req_new(k, op, cb, ud)) == NULL)
        e = AREDIS_ENOMEM;
    if (e == 0) {
        const char *argv[] = {cmd, id.data};
        size_t lens[] = {strlen(cmd), id.len};
        e = send_cmd(q, 2, argv, lens);
        if (e != 0)
            req_free(q);
    }
    aredis_buf_cleanup(&id);
    return e;
}

int aredis_cache_exist(aredis_cache *k, const char *key,
                       const aredis_cache_param *params, size_t nparams,
                       aredis_cache_cb cb, void *ud)
{
    return key_op(k, OP_EXIST, "EXISTS", key, params, nparams, cb, ud);
}

int aredis_cache_ttl(aredis_cache *k, const char *key,
                     const aredis_cache_param *params, size_t nparams,
                     aredis_cache_cb cb, void *ud)
{
    return key_op(k, OP_TTL, "PTTL", key, params, nparams, cb, ud);
}

int aredis_cache_delete(aredis_cache *k, const char *key,
                        const aredis_cache_param *params, size_t nparams,
                        aredis_cache_cb cb, void *ud)
{
    return key_op(k, OP_DEL, "DEL", key, params, nparams, cb, ud);
}

int aredis_cache_get(aredis_cache *k, const char *key,
                     const aredis_cache_param *params, size_t nparams,
                     aredis_cache_cb cb, void *ud)
{
    if (k == NULL)
        return AREDIS_EINVAL;
    if (k->herd == NULL)
        return key_op(k, OP_GET, "GET", key, params, nparams, cb, ud);
    aredis_buf id;
    aredis_buf_init(&id);
    int e = identity(k, key, params, nparams, &id);
    req *q = NULL;
    if (e == 0 && (q = req_new(k, OP_GET, cb, ud)) == NULL)
        e = AREDIS_ENOMEM;
    if (e == 0) {
        const char *keys[] = {id.data};
        e = aredis_script_evalv(k->c, k->herd, on_reply, q, 1, keys, &id.len, 0,
                                NULL, NULL);
        if (e != 0)
            req_free(q);
    }
    aredis_buf_cleanup(&id);
    return e;
}

/* The argument vector of SET id payload [PX ms]. */
static int set_argv(const aredis_buf *id, const aredis_buf *pl, int64_t px,
                    char num[32], const char **argv, size_t *lens)
{
    argv[0] = "SET";
    lens[0] = 3;
    argv[1] = id->data;
    lens[1] = id->len;
    argv[2] = pl->data;
    lens[2] = pl->len;
    if (px <= 0)
        return 3;
    argv[3] = "PX";
    lens[3] = 2;
    snprintf(num, 32, "%lld", (long long)px);
    argv[4] = num;
    lens[4] = strlen(num);
    return 5;
}

int aredis_cache_set(aredis_cache *k, const char *key,
                     const aredis_cache_param *params, size_t nparams,
                     const void *value, size_t len, int64_t ttl_ms,
                     aredis_cache_cb cb, void *ud)
{
    if (k == NULL || (ttl_ms < 0 && ttl_ms != AREDIS_CACHE_NO_TTL))
        return AREDIS_EINVAL;
    aredis_buf id, pl;
    aredis_buf_init(&id);
    aredis_buf_init(&pl);
    int e = identity(k, key, params, nparams, &id);
    if (e == 0)
        e = payload(k, value, len, &pl);
    req *q = NULL;
    if (e == 0 && (q = req_new(k, OP_SET, cb, ud)) == NULL)
        e = AREDIS_ENOMEM;
    if (e == 0) {
        const char *argv[5];
        size_t lens[5];
        char num[32];
        int argc = set_argv(&id, &pl, redis_ttl(k, ttl_ms), num, argv, lens);
        e = send_cmd(q, argc, argv, lens);
        if (e != 0)
            req_free(q);
    }
    aredis_buf_cleanup(&pl);
    aredis_buf_cleanup(&id);
    return e;
}

/* ------------------------------------------------------------------------
 * Batches: one pipeline, one round trip
 * ------------------------------------------------------------------------ */

static void finish_mget(req *q, const aredis_reply *const *replies)
{
    item *items = aredis__calloc(q->n, sizeof *items);
    aredis_cache_result *res = aredis__calloc(q->n, sizeof *res);
    if (items == NULL || res == NULL) {
        aredis__free(items);
        aredis__free(res);
        deliver_error(q, AREDIS_ENOMEM, "out of memory", 13);
        return;
    }
    for (size_t i = 0; i < q->n; i++) {
        decode_read(q->k, replies[i], q->cb != NULL, &items[i]);
        item_result(&items[i], &res[i]);
    }
    aredis_cache_result all = {.errmsg = "", .items = res, .nitems = q->n};
    size_t n = q->n;
    deliver(q, &all);
    for (size_t i = 0; i < n; i++)
        aredis__free(items[i].owned);
    aredis__free(items);
    aredis__free(res);
}

static void mget_done(req *q)
{
    const aredis_reply **rs =
        aredis__calloc(q->n, sizeof(const aredis_reply *));
    if (rs == NULL) {
        deliver_error(q, AREDIS_ENOMEM, "out of memory", 13);
        return;
    }
    for (size_t i = 0; i < q->n; i++)
        rs[i] = q->fixed[i] != NULL ? q->fixed[i] : &q->batch->element[i];
    finish_mget(q, rs);
    aredis__free(rs);
}

static void on_fixed(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    fix_ctx *f = ud;
    req *q = f->q;
    aredis_reply err = {.type = AREDIS_REPLY_ERROR,
                        .code = AREDIS_ENOMEM,
                        .str = "out of memory",
                        .len = 13};
    q->fixed[f->i] = aredis_reply_dup(r);
    if (q->fixed[f->i] == NULL)
        q->fixed[f->i] = aredis_reply_dup(&err);
    aredis__free(f);
    if (--q->waiting == 0)
        mget_done(q);
}

static int is_noscript(const aredis_reply *r)
{
    return r->type == AREDIS_REPLY_ERROR && r->code == AREDIS_ESERVER &&
           r->len >= 8 && memcmp(r->str, "NOSCRIPT", 8) == 0;
}

/* Herd batches go out as plain EVALSHA, so a batch is one round trip once
 * the server knows the script. The items it did not know it for (the first
 * batch, or after SCRIPT FLUSH) did not run, so they are read again with
 * aredis_script_evalv(), which loads the script. */
static int refetch(req *q, const aredis_reply *r)
{
    size_t missing = 0;
    for (size_t i = 0; i < q->n; i++)
        missing += is_noscript(&r->element[i]);
    if (missing == 0)
        return 0;
    if ((q->batch = aredis_reply_dup(r)) == NULL ||
        (q->fixed = aredis__calloc(q->n, sizeof(aredis_reply *))) == NULL)
        return AREDIS_ENOMEM;
    q->waiting = 1; /* held until every refetch is submitted */
    for (size_t i = 0; i < q->n; i++) {
        if (!is_noscript(&r->element[i]))
            continue;
        fix_ctx *f = aredis__calloc(1, sizeof *f);
        const char *keys[] = {q->ids.data + q->offs[i]};
        size_t lens[] = {strlen(keys[0])};
        int e = AREDIS_ENOMEM;
        if (f != NULL) {
            f->q = q;
            f->i = i;
            e = aredis_script_evalv(q->k->c, q->k->herd, on_fixed, f, 1, keys,
                                    lens, 0, NULL, NULL);
        }
        if (e == 0) {
            q->waiting++;
            continue;
        }
        aredis__free(f);
        aredis_reply err = {.type = AREDIS_REPLY_ERROR,
                            .code = e,
                            .str = aredis_strerror(e),
                            .len = strlen(aredis_strerror(e))};
        q->fixed[i] = aredis_reply_dup(&err);
    }
    if (--q->waiting == 0)
        mget_done(q);
    return 1;
}

static void on_batch(aredis_pipeline *p, const aredis_reply *r, void *ud)
{
    req *q = ud;
    aredis_pipeline_free(p);
    if (r->type == AREDIS_REPLY_ERROR) {
        deliver_error(q, r->code, r->str, r->len);
        return;
    }
    if (r->type != AREDIS_REPLY_ARRAY || r->len != q->n) {
        deliver_error(q, AREDIS_EPROTO, "unexpected batch reply", 22);
        return;
    }
    if (q->op == OP_MSET) {
        aredis_cache_result *res = aredis__calloc(q->n, sizeof *res);
        if (res == NULL) {
            deliver_error(q, AREDIS_ENOMEM, "out of memory", 13);
            return;
        }
        for (size_t i = 0; i < q->n; i++) {
            const aredis_reply *e = &r->element[i];
            res[i].errmsg = e->type == AREDIS_REPLY_ERROR ? e->str : "";
            res[i].status = e->type == AREDIS_REPLY_ERROR ? e->code : 0;
        }
        aredis_cache_result all = {.errmsg = "", .items = res, .nitems = q->n};
        deliver(q, &all);
        aredis__free(res);
        return;
    }
    if (q->k->herd != NULL) {
        int e = refetch(q, r);
        if (e < 0)
            deliver_error(q, e, "out of memory", 13);
        if (e != 0)
            return;
    }
    const aredis_reply **rs =
        aredis__calloc(q->n, sizeof(const aredis_reply *));
    if (rs == NULL) {
        deliver_error(q, AREDIS_ENOMEM, "out of memory", 13);
        return;
    }
    for (size_t i = 0; i < q->n; i++)
        rs[i] = &r->element[i];
    finish_mget(q, rs);
    aredis__free(rs);
}

/* Queue entry i of a batch on p. */
static int queue_entry(req *q, aredis_pipeline *p, const aredis_cache_entry *en,
                       size_t i)
{
    aredis_cache *k = q->k;
    aredis_buf id, pl;
    aredis_buf_init(&id);
    aredis_buf_init(&pl);
    int e = identity(k, en->key, en->params, en->nparams, &id);
    if (e == 0 && q->op == OP_MSET) {
        if (en->ttl_ms < 0 && en->ttl_ms != AREDIS_CACHE_NO_TTL)
            e = AREDIS_EINVAL;
        if (e == 0)
            e = payload(k, en->value, en->len, &pl);
        const char *argv[5];
        size_t lens[5];
        char num[32];
        if (e == 0)
            e = aredis_pipeline_commandv(
                p,
                set_argv(&id, &pl, redis_ttl(k, en->ttl_ms), num, argv, lens),
                argv, lens);
    } else if (e == 0 && k->herd == NULL) {
        const char *argv[] = {"GET", id.data};
        size_t lens[] = {3, id.len};
        e = aredis_pipeline_commandv(p, 2, argv, lens);
    } else if (e == 0) {
        const char *argv[] = {"EVALSHA", aredis_script_sha(k->herd), "1",
                              id.data};
        size_t lens[] = {7, 40, 1, id.len};
        q->offs[i] = q->ids.len;
        e = aredis__cache_buf_put(&q->ids, id.data, id.len);
        if (e == 0)
            e = aredis__cache_buf_put(&q->ids, "", 1);
        if (e == 0)
            e = aredis_pipeline_commandv(p, 4, argv, lens);
    }
    aredis_buf_cleanup(&pl);
    aredis_buf_cleanup(&id);
    return e;
}

static int batch(aredis_cache *k, int op, const aredis_cache_entry *entries,
                 size_t n, aredis_cache_cb cb, void *ud)
{
    if (k == NULL || entries == NULL || n == 0)
        return AREDIS_EINVAL;
    req *q = req_new(k, op, cb, ud);
    aredis_pipeline *p = aredis_pipeline_new(k->c, 0);
    int e = q == NULL || p == NULL ? AREDIS_ENOMEM : 0;
    if (e == 0) {
        q->n = n;
        aredis_pipeline_opts po = {.timeout_ms = k->timeout_ms};
        e = aredis_pipeline_set_opts(p, &po);
    }
    if (e == 0 && op == OP_MGET && k->herd != NULL &&
        (q->offs = aredis__calloc(n, sizeof *q->offs)) == NULL)
        e = AREDIS_ENOMEM;
    for (size_t i = 0; i < n && e == 0; i++)
        e = queue_entry(q, p, &entries[i], i);
    if (e == 0)
        e = aredis_pipeline_execute(p, on_batch, q);
    if (e != 0) {
        aredis_pipeline_free(p);
        if (q != NULL)
            req_free(q);
    }
    return e;
}

int aredis_cache_get_many(aredis_cache *k, const aredis_cache_entry *entries,
                          size_t n, aredis_cache_cb cb, void *ud)
{
    return batch(k, OP_MGET, entries, n, cb, ud);
}

int aredis_cache_set_many(aredis_cache *k, const aredis_cache_entry *entries,
                          size_t n, aredis_cache_cb cb, void *ud)
{
    return batch(k, OP_MSET, entries, n, cb, ud);
}

/* ------------------------------------------------------------------------
 * Delete by pattern: SCAN MATCH, one DEL per key found
 * ------------------------------------------------------------------------ */

static void delpat_maybe_done(req *q)
{
    if (q->walking || q->dels != 0)
        return;
    aredis_cache_result res = {.status = q->status,
                               .integer = q->deleted,
                               .errmsg = q->status < 0 ? q->errmsg : ""};
    deliver(q, &res);
}

static void delpat_error(req *q, int code, const char *msg, size_t len)
{
    if (q->status != 0)
        return; /* the first error is the one reported */
    q->status = code;
    aredis__msgf(q->errmsg, sizeof q->errmsg, "%.*s", (int)len, msg);
}

static void on_del(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    req *q = ud;
    if (r->type == AREDIS_REPLY_INTEGER)
        q->deleted += r->integer;
    else if (r->type == AREDIS_REPLY_ERROR)
        delpat_error(q, r->code, r->str, r->len);
    q->dels--;
    delpat_maybe_done(q);
}

/* Each key is deleted on its own: a multi-key DEL would be refused by a
 * cluster when the keys hash to different slots. The DELs are pipelined
 * with the walk, so this costs no extra round trips. */
static int on_key(aredis_client *c, const aredis_scan_elem *el, void *ud)
{
    req *q = ud;
    const char *argv[] = {"DEL", el->str};
    size_t lens[] = {3, el->len};
    aredis_cmd_opts o = {.timeout_ms = q->k->timeout_ms};
    int e = aredis_commandv_opts(c, &o, on_del, q, 2, argv, lens);
    if (e != 0) {
        delpat_error(q, e, aredis_strerror(e), strlen(aredis_strerror(e)));
        return 1;
    }
    q->dels++;
    return 0;
}

static void on_walked(aredis_client *c, int status, const aredis_reply *err,
                      void *ud)
{
    (void)c;
    req *q = ud;
    if (status < 0)
        delpat_error(q, status, err->str, err->len);
    q->walking = 0;
    delpat_maybe_done(q);
}

int aredis_cache_delete_pattern(aredis_cache *k, const char *pattern,
                                long long count, aredis_cache_cb cb, void *ud)
{
    if (k == NULL || pattern == NULL || count < 0)
        return AREDIS_EINVAL;
    size_t mlen = strlen(k->match), plen = strlen(pattern);
    char *match = aredis__malloc(mlen + plen + 1);
    req *q = match ? req_new(k, OP_DELPAT, cb, ud) : NULL;
    int e = AREDIS_ENOMEM;
    if (q != NULL) {
        memcpy(match, k->match, mlen);
        memcpy(match + mlen, pattern, plen + 1);
        q->walking = 1;
        aredis_scan_opts so = {
            .match = match, .count = count, .timeout_ms = k->timeout_ms};
        e = aredis_scan(k->c, &so, NULL, on_key, on_walked, q);
        if (e != 0)
            req_free(q);
    }
    aredis__free(match);
    return e;
}
