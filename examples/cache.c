/* The application cache: a value computed once and read from Redis after,
 * named by what it was computed from; and the herd mode, where one reader
 * recomputes an expired value while the others keep serving the old one.
 *
 *     ./cache redis://127.0.0.1:6379/2
 *
 * Exits non-zero unless the first read misses, the second hits with the
 * stored (zstd-compressed) page, the parameters' order does not matter,
 * and after expiry exactly one of three herd readers is told to
 * recompute. */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <aredis/aredis.h>

static int failed;
static char page[4096];

static const char *status_name(int status)
{
    switch (status) {
    case AREDIS_CACHE_MISS:
        return "miss";
    case AREDIS_CACHE_HIT:
        return "hit";
    case AREDIS_CACHE_STALE:
        return "stale";
    case AREDIS_CACHE_RECOMPUTE:
        return "recompute";
    default:
        return aredis_err_name(status);
    }
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : getenv("REDIS_URL");
    aredis_status st;
    aredis_sync *s = aredis_sync_connect(
        &(aredis_options){.url = url ? url : "redis://127.0.0.1:6379/2"}, &st);
    if (s == NULL) {
        fprintf(stderr, "%s\n", st.msg);
        return 1;
    }
    int codec = aredis_cache_codec_available(AREDIS_CACHE_ZSTD)
                    ? AREDIS_CACHE_ZSTD
                    : AREDIS_CACHE_NONE;
    aredis_cache *cache = aredis_cache_new(
        aredis_sync_client(s),
        &(aredis_cache_opts){.app = "example", .ttl_ms = 60000, .codec = codec},
        &st);
    if (cache == NULL) {
        fprintf(stderr, "%s\n", st.msg);
        return 1;
    }
    aredis_cache_result *r = aredis_sync_cache_delete_pattern(cache, "*", 0);
    aredis_cache_result_free(r);

    /* A listing page, cached by its query parameters. */
    aredis_cache_param q[] = {{"page", "2", 0}, {"sort", "price", 0}};
    aredis_cache_param same[] = {{"sort", "price", 0}, {"page", "2", 0}};
    r = aredis_sync_cache_get(cache, "listing", q, 2);
    printf("first read: %s\n", status_name(r->status));
    failed |= r->status != AREDIS_CACHE_MISS;
    aredis_cache_result_free(r);
    for (size_t i = 0; i + 1 < sizeof page; i++)
        page[i] = "<li>item</li>\n"[i % 14];
    r = aredis_sync_cache_set(cache, "listing", q, 2, page, strlen(page), 0);
    failed |= r->status != 0;
    aredis_cache_result_free(r);
    r = aredis_sync_cache_get(cache, "listing", same, 2);
    printf("second read (parameters in another order): %s, %zu bytes\n",
           status_name(r->status), r->len);
    failed |= r->status != AREDIS_CACHE_HIT || r->len != strlen(page) ||
              memcmp(r->data, page, r->len) != 0;
    aredis_cache_result_free(r);
    aredis_cache_free(cache);

    /* Herd mode: fresh for 200 ms, then served stale for up to 5 s while
     * the one reader told to recompute does so. */
    aredis_cache *herd = aredis_cache_new(
        aredis_sync_client(s),
        &(aredis_cache_opts){.app = "example-herd", .herd_timeout_ms = 5000},
        &st);
    r = aredis_sync_cache_set(herd, "report", NULL, 0, "v1", 2, 200);
    aredis_cache_result_free(r);
    nanosleep(&(struct timespec){.tv_nsec = 300 * 1000 * 1000}, NULL);
    int recomputes = 0;
    for (int reader = 0; reader < 3; reader++) {
        r = aredis_sync_cache_get(herd, "report", NULL, 0);
        printf("herd reader %d after expiry: %s (%.*s)\n", reader,
               status_name(r->status), (int)r->len, r->data ? r->data : "");
        recomputes += r->status == AREDIS_CACHE_RECOMPUTE;
        failed |= r->status != AREDIS_CACHE_RECOMPUTE &&
                  r->status != AREDIS_CACHE_STALE;
        aredis_cache_result_free(r);
    }
    failed |= recomputes != 1;
    r = aredis_sync_cache_set(herd, "report", NULL, 0, "v2", 2, 60000);
    aredis_cache_result_free(r);
    r = aredis_sync_cache_get(herd, "report", NULL, 0);
    printf("after the recompute: %s (%.*s)\n", status_name(r->status),
           (int)r->len, r->data ? r->data : "");
    failed |= r->status != AREDIS_CACHE_HIT;
    aredis_cache_result_free(r);
    r = aredis_sync_cache_delete_pattern(herd, "*", 0);
    aredis_cache_result_free(r);
    aredis_cache_free(herd);
    aredis_sync_free(s);
    return failed;
}
