/* The blocking form of the application cache (extras layer): each call
 * runs the loop of the cache's client until the asynchronous call's
 * callback has run, and returns an owned copy of its result.
 *
 * Built on the public API (cache.h, the loop), like the cache itself,
 * and on the facade's one wait (client/sync_int.h). */
#include <stdio.h>
#include <string.h>

#include "aredis/cache.h"
#include "aredis/error.h"
#include "aredis/loop.h"
#include "client/sync_int.h"
#include "util/alloc.h"

typedef struct waiter {
    int done;
    int abandoned; /* the caller gave up: the callback frees the waiter */
    aredis_cache_result *r;
} waiter;

static size_t text_size(const aredis_cache_result *r)
{
    return (r->data ? r->len + 1 : 0) + strlen(r->errmsg ? r->errmsg : "") + 1;
}

/* Copy r's strings to *at, r's fields to out. */
static void copy_one(aredis_cache_result *out, const aredis_cache_result *r,
                     char **at)
{
    *out = *r;
    out->items = NULL;
    out->nitems = 0;
    if (r->data != NULL) {
        memcpy(*at, r->data, r->len);
        (*at)[r->len] = '\0';
        out->data = *at;
        *at += r->len + 1;
    }
    const char *msg = r->errmsg ? r->errmsg : "";
    size_t n = strlen(msg);
    memcpy(*at, msg, n + 1);
    out->errmsg = *at;
    *at += n + 1;
}

/* One allocation: the result, its items, then every string. */
static aredis_cache_result *result_dup(const aredis_cache_result *r)
{
    size_t size = sizeof *r, text = text_size(r);
    if (r->nitems > (SIZE_MAX / 2) / sizeof *r)
        return NULL;
    size += r->nitems * sizeof *r;
    for (size_t i = 0; i < r->nitems; i++) {
        size_t t = text_size(&r->items[i]);
        if (t > SIZE_MAX / 2 - text)
            return NULL;
        text += t;
    }
    if (text > SIZE_MAX - size)
        return NULL;
    aredis_cache_result *out = aredis__malloc(size + text);
    if (out == NULL)
        return NULL;
    aredis_cache_result *items = out + 1;
    char *at = (char *)(items + r->nitems);
    copy_one(out, r, &at);
    for (size_t i = 0; i < r->nitems; i++)
        copy_one(&items[i], &r->items[i], &at);
    if (r->nitems != 0) {
        out->items = items;
        out->nitems = r->nitems;
    }
    return out;
}

void aredis_cache_result_free(aredis_cache_result *r)
{
    aredis__free(r);
}

static aredis_cache_result *error_result(int code, const char *msg)
{
    aredis_cache_result r = {.status = code, .errmsg = msg};
    return result_dup(&r);
}

static void on_done(aredis_cache *k, const aredis_cache_result *r, void *ud)
{
    (void)k;
    waiter *w = ud;
    if (w->abandoned) {
        aredis__free(w);
        return;
    }
    w->r = result_dup(r);
    w->done = 1;
}

/* e: what the submit returned. Run the loop until the callback ran. */
static aredis_cache_result *wait_for(aredis_cache *k, waiter *w, int e)
{
    if (e != 0) {
        aredis__free(w);
        return error_result(e, aredis_strerror(e));
    }
    aredis_loop *loop = aredis_client_loop(aredis_cache_client(k));
    int rc = aredis__sync_wait_flag(loop, &w->done, -1);
    if (rc != 0) {
        /* A loop failure, or idle with the call unfinished (which a
         * pending command cannot cause): say so rather than spin. */
        w->abandoned = 1;
        return error_result(rc, "the loop stopped before the call completed");
    }
    aredis_cache_result *r = w->r;
    aredis__free(w);
    return r;
}

/* Each call: a waiter on the heap (if the wait had to be abandoned, the
 * callback still has somewhere valid to land), the asynchronous call, the
 * wait. */
#define SYNC_CALL(call)                       \
    waiter *w = aredis__calloc(1, sizeof *w); \
    if (w == NULL)                            \
        return NULL;                          \
    return wait_for(k, w, (call))

aredis_cache_result *aredis_sync_cache_get(aredis_cache *k, const char *key,
                                           const aredis_cache_param *params,
                                           size_t nparams)
{
    SYNC_CALL(aredis_cache_get(k, key, params, nparams, on_done, w));
}

aredis_cache_result *aredis_sync_cache_set(aredis_cache *k, const char *key,
                                           const aredis_cache_param *params,
                                           size_t nparams, const void *value,
                                           size_t len, int64_t ttl_ms)
{
    SYNC_CALL(aredis_cache_set(k, key, params, nparams, value, len, ttl_ms,
                               on_done, w));
}

aredis_cache_result *aredis_sync_cache_exist(aredis_cache *k, const char *key,
                                             const aredis_cache_param *params,
                                             size_t nparams)
{
    SYNC_CALL(aredis_cache_exist(k, key, params, nparams, on_done, w));
}

aredis_cache_result *aredis_sync_cache_ttl(aredis_cache *k, const char *key,
                                           const aredis_cache_param *params,
                                           size_t nparams)
{
    SYNC_CALL(aredis_cache_ttl(k, key, params, nparams, on_done, w));
}

aredis_cache_result *aredis_sync_cache_delete(aredis_cache *k, const char *key,
                                              const aredis_cache_param *params,
                                              size_t nparams)
{
    SYNC_CALL(aredis_cache_delete(k, key, params, nparams, on_done, w));
}

aredis_cache_result *aredis_sync_cache_delete_pattern(aredis_cache *k,
                                                      const char *pattern,
                                                      long long count)
{
    SYNC_CALL(aredis_cache_delete_pattern(k, pattern, count, on_done, w));
}

aredis_cache_result *aredis_sync_cache_get_many(
    aredis_cache *k, const aredis_cache_entry *entries, size_t n)
{
    SYNC_CALL(aredis_cache_get_many(k, entries, n, on_done, w));
}

aredis_cache_result *aredis_sync_cache_set_many(
    aredis_cache *k, const aredis_cache_entry *entries, size_t n)
{
    SYNC_CALL(aredis_cache_set_many(k, entries, n, on_done, w));
}
