/* Integration tests of the application cache (include/aredis/cache.h)
 * against the real standalone server: identities, every operation, each
 * codec's round trip and the errors for damaged payloads, the serializer,
 * herd mode (50 concurrent readers at expiry: exactly one recomputes),
 * batches in one round trip (timed through a delaying proxy), delete by
 * pattern (no DEL when nothing matches, watched with MONITOR), the
 * blocking form, and exactly-once completion when the client or the cache
 * is freed with calls in flight.
 *
 * Every cache's app prefix carries this process's pid, so tests running
 * beside it on the same server never see each other's entries. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aredis/aredis.h"
#include "faults.h"
#include "testenv.h"
#include "testloop.h"

static testenv_server srv;
static char url[128];

static void setup(void)
{
    cr_assert_eq(testenv_server_load(&srv, "standalone"), 0, "%s",
                 testenv_errstr());
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", srv.port);
}

TestSuite(cache, .init = setup, .timeout = 60);

static int run_until(aredis_loop *loop, const int *flag, int want,
                     int timeout_ms)
{
    for (int waited = 0; *flag < want && waited < timeout_ms; waited += 5)
        testloop_run_once(loop, 5);
    return *flag >= want;
}

/* A kept result: a deep enough copy for the assertions. */
typedef struct got {
    int calls;
    int status;
    long long integer;
    char data[4096];
    size_t len;
    int has_data;
    void *value;
    char errmsg[256];
    size_t nitems;
    int item_status[64];
    char item_data[64][64];
} got;

static void keep(aredis_cache *k, const aredis_cache_result *r, void *ud)
{
    (void)k;
    got *g = ud;
    cr_assert_not_null(r);
    cr_assert_not_null(r->errmsg);
    g->calls++;
    g->status = r->status;
    g->integer = r->integer;
    g->has_data = r->data != NULL;
    g->len = r->len;
    if (r->data != NULL && r->len < sizeof g->data)
        memcpy(g->data, r->data, r->len);
    g->value = r->value;
    snprintf(g->errmsg, sizeof g->errmsg, "%s", r->errmsg);
    g->nitems = r->nitems;
    for (size_t i = 0; i < r->nitems && i < 64; i++) {
        g->item_status[i] = r->items[i].status;
        snprintf(g->item_data[i], sizeof g->item_data[i], "%.*s",
                 (int)(r->items[i].data ? r->items[i].len : 0),
                 r->items[i].data ? r->items[i].data : "");
    }
}

typedef struct env {
    aredis_loop *loop;
    aredis_client *c;
    char app[64];
} env;

static void env_open(env *e, const char *tag)
{
    e->loop = testloop_new();
    e->c = aredis_client_new(e->loop, &(aredis_options){.url = url}, NULL);
    cr_assert_not_null(e->c);
    testenv_key(e->app, sizeof e->app, tag);
}

static void env_close(env *e)
{
    int never = 0;
    run_until(e->loop, &never, 1, 30);
    cr_assert_eq(aredis_client_pending(e->c), 0, "nothing left in flight");
    aredis_client_free(e->c);
    testloop_free(e->loop);
}

typedef struct kept {
    int calls;
    aredis_reply *r;
} kept;

static void keep_reply(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    kept *k = ud;
    k->calls++;
    aredis_reply_free(k->r);
    k->r = aredis_reply_dup(r);
}

/* Run one raw command (binary argument vector) and return its reply,
 * owned by the caller. */
static aredis_reply *raw(env *e, int argc, const char *const *argv,
                         const size_t *lens)
{
    kept k = {0};
    cr_assert_eq(aredis_commandv(e->c, keep_reply, &k, argc, argv, lens), 0);
    cr_assert(run_until(e->loop, &k.calls, 1, 5000), "%s timed out", argv[0]);
    return k.r;
}

static aredis_reply *raw2(env *e, const char *a0, const char *a1)
{
    const char *argv[] = {a0, a1};
    return raw(e, a1 ? 2 : 1, argv, NULL);
}

static aredis_cache *cache_open(env *e, aredis_cache_opts o)
{
    o.app = e->app;
    aredis_status st;
    aredis_cache *k = aredis_cache_new(e->c, &o, &st);
    cr_assert_not_null(k, "%s", st.msg);
    return k;
}

#define WAIT(e, g) cr_assert(run_until((e)->loop, &(g).calls, 1, 5000))

static void sync_set(env *e, aredis_cache *k, const char *key,
                     const aredis_cache_param *p, size_t np, const char *v,
                     size_t len, int64_t ttl)
{
    got g = {0};
    cr_assert_eq(aredis_cache_set(k, key, p, np, v, len, ttl, keep, &g), 0);
    WAIT(e, g);
    cr_assert_eq(g.status, 0, "%s", g.errmsg);
}

static void sync_get(env *e, aredis_cache *k, const char *key,
                     const aredis_cache_param *p, size_t np, got *g)
{
    memset(g, 0, sizeof *g);
    cr_assert_eq(aredis_cache_get(k, key, p, np, keep, g), 0);
    WAIT(e, *g);
    cr_assert_eq(g->calls, 1);
}

/* ---- identity ------------------------------------------------------------ */

static int short_hash(const aredis_cache_param *p, size_t n, char *out,
                      void *ud)
{
    (void)ud;
    return snprintf(out, AREDIS_CACHE_HASH_MAX, "%zu-%s", n, p[0].value);
}

Test(cache, identity_is_prefix_key_and_an_order_free_hash)
{
    env e;
    env_open(&e, "id");
    aredis_cache *k = cache_open(&e, (aredis_cache_opts){0});
    char a[256], b[256], c[256], want[128];
    aredis_cache_param p1[] = {{"page", "2", 0}, {"sort", "price", 0}};
    aredis_cache_param p2[] = {{"sort", "price", 0}, {"page", "2", 0}};
    aredis_cache_param p3[] = {{"page", "3", 0}, {"sort", "price", 0}};
    cr_assert_gt(aredis_cache_identity(k, "list", p1, 2, a, sizeof a), 0);
    cr_assert_gt(aredis_cache_identity(k, "list", p2, 2, b, sizeof b), 0);
    cr_assert_gt(aredis_cache_identity(k, "list", p3, 2, c, sizeof c), 0);
    cr_assert_str_eq(a, b, "argument order does not matter");
    cr_assert_str_neq(a, c);
    snprintf(want, sizeof want, "%s:list:", e.app);
    cr_assert(strncmp(a, want, strlen(want)) == 0, "%s", a);
    cr_assert_eq(strlen(a), strlen(want) + 40, "a SHA-1: %s", a);
    /* "ab"+"c" and "a"+"bc" are different lists. */
    aredis_cache_param q1[] = {{"ab", "c", 0}}, q2[] = {{"a", "bc", 0}};
    aredis_cache_identity(k, "x", q1, 1, a, sizeof a);
    aredis_cache_identity(k, "x", q2, 1, b, sizeof b);
    cr_assert_str_neq(a, b);
    /* No parameters: just the prefix and the key. */
    long n = aredis_cache_identity(k, "plain", NULL, 0, a, sizeof a);
    snprintf(want, sizeof want, "%s:plain", e.app);
    cr_assert_str_eq(a, want);
    cr_assert_eq(n, (long)strlen(want));
    cr_assert_eq(aredis_cache_identity(k, NULL, NULL, 0, a, sizeof a),
                 AREDIS_EINVAL);
    aredis_cache_free(k);
    /* A user hash. */
    k = cache_open(&e, (aredis_cache_opts){.params_hash = short_hash});
    aredis_cache_identity(k, "u", p1, 2, a, sizeof a);
    snprintf(want, sizeof want, "%s:u:2-2", e.app);
    cr_assert_str_eq(a, want);
    aredis_cache_free(k);
    env_close(&e);
}

Test(cache, bad_options_are_refused_with_a_message)
{
    env e;
    env_open(&e, "opts");
    aredis_status st;
    cr_assert_null(aredis_cache_new(e.c, &(aredis_cache_opts){0}, &st));
    cr_assert_eq(st.code, AREDIS_EINVAL);
    cr_assert_null(aredis_cache_new(
        e.c, &(aredis_cache_opts){.app = "x", .codec = 9}, &st));
    cr_assert_eq(st.code, AREDIS_EINVAL);
    cr_assert_null(aredis_cache_new(
        e.c, &(aredis_cache_opts){.app = "x", .herd_timeout_ms = -1}, &st));
    cr_assert_eq(st.code, AREDIS_EINVAL);
    for (int codec = AREDIS_CACHE_ZLIB; codec <= AREDIS_CACHE_LZ4; codec++) {
        aredis_cache *k = aredis_cache_new(
            e.c, &(aredis_cache_opts){.app = "x", .codec = codec}, &st);
        if (aredis_cache_codec_available(codec)) {
            cr_assert_not_null(k);
        } else {
            cr_assert_null(k);
            cr_assert_eq(st.code, AREDIS_ENOTSUP);
            cr_assert(strstr(st.msg, "not built") != NULL, "%s", st.msg);
        }
        aredis_cache_free(k);
    }
    env_close(&e);
}

/* ---- operations ---------------------------------------------------------- */

Test(cache, get_set_exist_ttl_delete)
{
    env e;
    env_open(&e, "ops");
    aredis_cache *k = cache_open(&e, (aredis_cache_opts){.ttl_ms = 60000});
    aredis_cache_param p[] = {{"user", "42", 0}};
    got g;
    sync_get(&e, k, "profile", p, 1, &g);
    cr_assert_eq(g.status, AREDIS_CACHE_MISS);
    cr_assert_eq(g.has_data, 0);
    sync_set(&e, k, "profile", p, 1, "alice\0bin", 9, 0);
    sync_get(&e, k, "profile", p, 1, &g);
    cr_assert_eq(g.status, AREDIS_CACHE_HIT, "%s", g.errmsg);
    cr_assert_eq(g.len, 9);
    cr_assert(memcmp(g.data, "alice\0bin", 9) == 0);
    /* Another parameter value is another entry. */
    aredis_cache_param p2[] = {{"user", "43", 0}};
    sync_get(&e, k, "profile", p2, 1, &g);
    cr_assert_eq(g.status, AREDIS_CACHE_MISS);

    memset(&g, 0, sizeof g);
    cr_assert_eq(aredis_cache_exist(k, "profile", p, 1, keep, &g), 0);
    WAIT(&e, g);
    cr_assert_eq(g.integer, 1);
    memset(&g, 0, sizeof g);
    cr_assert_eq(aredis_cache_ttl(k, "profile", p, 1, keep, &g), 0);
    WAIT(&e, g);
    cr_assert(g.integer > 59000 && g.integer <= 60000, "%lld", g.integer);
    /* An explicit TTL, and none. */
    sync_set(&e, k, "short", NULL, 0, "v", 1, 1500);
    memset(&g, 0, sizeof g);
    aredis_cache_ttl(k, "short", NULL, 0, keep, &g);
    WAIT(&e, g);
    cr_assert(g.integer > 1000 && g.integer <= 1500, "%lld", g.integer);
    sync_set(&e, k, "forever", NULL, 0, "v", 1, AREDIS_CACHE_NO_TTL);
    memset(&g, 0, sizeof g);
    aredis_cache_ttl(k, "forever", NULL, 0, keep, &g);
    WAIT(&e, g);
    cr_assert_eq(g.integer, -1);

    memset(&g, 0, sizeof g);
    cr_assert_eq(aredis_cache_delete(k, "profile", p, 1, keep, &g), 0);
    WAIT(&e, g);
    cr_assert_eq(g.status, 0);
    cr_assert_eq(g.integer, 1);
    memset(&g, 0, sizeof g);
    aredis_cache_exist(k, "profile", p, 1, keep, &g);
    WAIT(&e, g);
    cr_assert_eq(g.integer, 0);
    memset(&g, 0, sizeof g);
    aredis_cache_ttl(k, "profile", p, 1, keep, &g);
    WAIT(&e, g);
    cr_assert_eq(g.integer, -2);
    /* Refused calls never run their callback. */
    cr_assert_eq(aredis_cache_get(k, NULL, NULL, 0, keep, &g), AREDIS_EINVAL);
    cr_assert_eq(aredis_cache_get(k, "x", NULL, 1, keep, &g), AREDIS_EINVAL);
    cr_assert_eq(aredis_cache_set(k, "x", NULL, 0, "v", 1, -5, keep, &g),
                 AREDIS_EINVAL);
    aredis_cache_delete(k, "short", NULL, 0, NULL, NULL);
    aredis_cache_delete(k, "forever", NULL, 0, NULL, NULL);
    aredis_cache_free(k);
    env_close(&e);
}

/* ---- payloads ------------------------------------------------------------ */

static unsigned char stored_header(env *e, aredis_cache *k, const char *key)
{
    char id[256];
    aredis_cache_identity(k, key, NULL, 0, id, sizeof id);
    aredis_reply *r = raw2(e, "GET", id);
    cr_assert_eq(r->type, AREDIS_REPLY_STRING);
    cr_assert_gt(r->len, 0);
    unsigned char h = (unsigned char)r->str[0];
    aredis_reply_free(r);
    return h;
}

Test(cache, every_codec_round_trips_with_its_header)
{
    env e;
    env_open(&e, "codec");
    char big[3000], noise[600];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = "the quick brown fox "[i % 20];
    unsigned x = 12345;
    for (size_t i = 0; i < sizeof noise; i++) {
        x = x * 1103515245u + 12345u;
        noise[i] = (char)(x >> 16);
    }
    for (int codec = AREDIS_CACHE_NONE; codec <= AREDIS_CACHE_LZ4; codec++) {
        cr_assert(aredis_cache_codec_available(codec),
                  "the test build has every codec");
        aredis_cache *k = cache_open(
            &e, (aredis_cache_opts){.codec = codec, .compress_min = 100});
        got g;
        /* Above the threshold and compressible: the codec's header. */
        sync_set(&e, k, "big", NULL, 0, big, sizeof big, 60000);
        cr_assert_eq(stored_header(&e, k, "big"),
                     AREDIS_CACHE_HEADER_BASE + codec);
        sync_get(&e, k, "big", NULL, 0, &g);
        cr_assert_eq(g.status, AREDIS_CACHE_HIT, "%s", g.errmsg);
        cr_assert_eq(g.len, sizeof big);
        cr_assert(memcmp(g.data, big, sizeof big) == 0);
        /* Below the threshold: raw. */
        sync_set(&e, k, "small", NULL, 0, big, 50, 60000);
        cr_assert_eq(stored_header(&e, k, "small"), AREDIS_CACHE_HEADER_BASE);
        sync_get(&e, k, "small", NULL, 0, &g);
        cr_assert_eq(g.len, 50);
        /* Incompressible: raw, whatever the codec. */
        sync_set(&e, k, "noise", NULL, 0, noise, sizeof noise, 60000);
        cr_assert_eq(stored_header(&e, k, "noise"), AREDIS_CACHE_HEADER_BASE);
        sync_get(&e, k, "noise", NULL, 0, &g);
        cr_assert_eq(g.len, sizeof noise);
        cr_assert(memcmp(g.data, noise, sizeof noise) == 0);
        /* An empty value. */
        sync_set(&e, k, "empty", NULL, 0, "", 0, 60000);
        sync_get(&e, k, "empty", NULL, 0, &g);
        cr_assert_eq(g.status, AREDIS_CACHE_HIT);
        cr_assert_eq(g.len, 0);
        aredis_cache_free(k);
    }
    /* A reader with no codec configured reads every codec: the header says
     * which. */
    aredis_cache *w = cache_open(
        &e, (aredis_cache_opts){.codec = AREDIS_CACHE_ZSTD, .compress_min = 1});
    aredis_cache *r = cache_open(&e, (aredis_cache_opts){0});
    sync_set(&e, w, "z", NULL, 0, big, sizeof big, 60000);
    got g;
    sync_get(&e, r, "z", NULL, 0, &g);
    cr_assert_eq(g.status, AREDIS_CACHE_HIT);
    cr_assert_eq(g.len, sizeof big);
    got d = {0};
    aredis_cache_delete_pattern(r, "*", 0, keep, &d);
    WAIT(&e, d);
    aredis_cache_free(w);
    aredis_cache_free(r);
    env_close(&e);
}

static void put_raw(env *e, aredis_cache *k, const char *key, const char *v,
                    size_t n)
{
    char id[256];
    aredis_cache_identity(k, key, NULL, 0, id, sizeof id);
    const char *argv[] = {"SET", id, v, "PX", "60000"};
    size_t lens[] = {3, strlen(id), n, 2, 5};
    aredis_reply_free(raw(e, 5, argv, lens));
}

Test(cache, a_damaged_payload_is_an_error_never_raw_bytes)
{
    env e;
    env_open(&e, "corrupt");
    aredis_cache *k = cache_open(
        &e, (aredis_cache_opts){.codec = AREDIS_CACHE_ZLIB, .compress_min = 1});
    char big[2000];
    memset(big, 'a', sizeof big);
    sync_set(&e, k, "good", NULL, 0, big, sizeof big, 60000);
    char id[256];
    aredis_cache_identity(k, "good", NULL, 0, id, sizeof id);
    aredis_reply *good = raw2(&e, "GET", id);
    cr_assert_eq((unsigned char)good->str[0], AREDIS_CACHE_HEADER_BASE + 1);

    struct {
        const char *name;
        char v[64];
        size_t n;
    } cases[8];
    int nc = 0;
    /* Written by someone else: no header at all. */
    cases[nc].name = "plain text";
    memcpy(cases[nc].v, "hello", 5);
    cases[nc++].n = 5;
    cases[nc].name = "unknown header";
    memcpy(cases[nc].v, "\xA7xyz", 4);
    cases[nc++].n = 4;
    cases[nc].name = "empty";
    cases[nc++].n = 0;
    /* zlib header, garbage body. */
    cases[nc].name = "zlib garbage";
    memcpy(cases[nc].v, "\xA1\x10garbage-garbage", 17);
    cases[nc++].n = 17;
    /* zstd and lz4 headers with a truncated length. */
    cases[nc].name = "zstd bad length";
    memcpy(cases[nc].v, "\xA2\xff\xff", 3);
    cases[nc++].n = 3;
    cases[nc].name = "lz4 garbage";
    memcpy(cases[nc].v, "\xA3\x20\x00\x01\x02\x03", 6);
    cases[nc++].n = 6;
    /* A valid zlib payload cut short. */
    cases[nc].name = "truncated zlib";
    size_t cut = good->len / 2 < sizeof cases[nc].v ? good->len / 2 : 60;
    memcpy(cases[nc].v, good->str, cut);
    cases[nc++].n = cut;
    /* A size far beyond what the bytes could hold. */
    cases[nc].name = "bomb";
    memcpy(cases[nc].v, "\xA1\xff\xff\xff\xff\x0f\x78\x9c", 8);
    cases[nc++].n = 8;
    aredis_reply_free(good);
    for (int i = 0; i < nc; i++) {
        put_raw(&e, k, "bad", cases[i].v, cases[i].n);
        got g;
        sync_get(&e, k, "bad", NULL, 0, &g);
        cr_assert_eq(g.status, AREDIS_ECORRUPT, "%s: %d %s", cases[i].name,
                     g.status, g.errmsg);
        cr_assert_eq(g.has_data, 0, "%s: no bytes handed out", cases[i].name);
        cr_assert_neq(g.errmsg[0], '\0');
    }
    /* In a batch too, next to a good entry. */
    aredis_cache_entry en[] = {{.key = "good"}, {.key = "bad"}};
    got g = {0};
    cr_assert_eq(aredis_cache_get_many(k, en, 2, keep, &g), 0);
    WAIT(&e, g);
    cr_assert_eq(g.status, 0);
    cr_assert_eq(g.item_status[0], AREDIS_CACHE_HIT);
    cr_assert_eq(g.item_status[1], AREDIS_ECORRUPT);
    got d = {0};
    aredis_cache_delete_pattern(k, "*", 0, keep, &d);
    WAIT(&e, d);
    cr_assert_eq(d.integer, 2);
    aredis_cache_free(k);
    env_close(&e);
}

/* A serializer for a small struct. */
typedef struct point {
    int x, y;
} point;

static int pt_ser(const void *v, size_t len, aredis_cache_out *out, void *ud)
{
    (void)len;
    (void)ud;
    const point *p = v;
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%d,%d", p->x, p->y);
    return aredis_cache_append(out, buf, (size_t)n);
}

static int pt_deser(const char *data, size_t len, void **v, void *ud)
{
    (void)ud;
    char buf[64];
    if (len >= sizeof buf)
        return AREDIS_ECORRUPT;
    memcpy(buf, data, len);
    buf[len] = '\0';
    point *p = malloc(sizeof *p);
    if (sscanf(buf, "%d,%d", &p->x, &p->y) != 2) {
        free(p);
        return AREDIS_ECORRUPT;
    }
    *v = p;
    return 0;
}

Test(cache, a_serializer_stores_program_values)
{
    env e;
    env_open(&e, "ser");
    aredis_cache_serializer s = {pt_ser, pt_deser, NULL};
    aredis_cache *k = cache_open(&e, (aredis_cache_opts){.serializer = &s});
    point in = {3, -4};
    sync_set(&e, k, "pt", NULL, 0, (const char *)&in, 0, 60000);
    got g;
    sync_get(&e, k, "pt", NULL, 0, &g);
    cr_assert_eq(g.status, AREDIS_CACHE_HIT);
    cr_assert_eq(g.len, 4);
    cr_assert(memcmp(g.data, "3,-4", 4) == 0);
    point *out = g.value;
    cr_assert_not_null(out);
    cr_assert_eq(out->x, 3);
    cr_assert_eq(out->y, -4);
    free(out);
    /* What the deserializer refuses is an error. */
    aredis_cache *plain = cache_open(&e, (aredis_cache_opts){0});
    sync_set(&e, plain, "pt", NULL, 0, "nonsense", 8, 60000);
    sync_get(&e, k, "pt", NULL, 0, &g);
    cr_assert_eq(g.status, AREDIS_ECORRUPT);
    cr_assert_null(g.value);
    aredis_cache_delete(k, "pt", NULL, 0, NULL, NULL);
    aredis_cache_free(plain);
    aredis_cache_free(k);
    env_close(&e);
}

/* ---- herd mode ----------------------------------------------------------- */

#define READERS 50
#define CLIENTS 10

typedef struct herd_count {
    int calls, hit, stale, recompute, miss, other;
    int bad_value;
} herd_count;

static void count_herd(aredis_cache *k, const aredis_cache_result *r, void *ud)
{
    (void)k;
    herd_count *h = ud;
    h->calls++;
    switch (r->status) {
    case AREDIS_CACHE_HIT:
        h->hit++;
        break;
    case AREDIS_CACHE_STALE:
        h->stale++;
        break;
    case AREDIS_CACHE_RECOMPUTE:
        h->recompute++;
        break;
    case AREDIS_CACHE_MISS:
        h->miss++;
        break;
    default:
        h->other++;
        break;
    }
    if (r->status > 0 && (r->len != 5 || memcmp(r->data, "old-v", 5) != 0))
        h->bad_value++;
}

/* READERS gets at once, spread over CLIENTS connections (one cache each),
 * so the server interleaves readers that are really concurrent. */
static herd_count herd_readers(env *e, aredis_cache_opts o)
{
    aredis_client *cs[CLIENTS];
    aredis_cache *ks[CLIENTS];
    o.app = e->app;
    for (int i = 0; i < CLIENTS; i++) {
        cs[i] = aredis_client_new(e->loop, &(aredis_options){.url = url}, NULL);
        ks[i] = aredis_cache_new(cs[i], &o, NULL);
        cr_assert_not_null(ks[i]);
        /* Connected before the readers go. */
        kept k = {0};
        aredis_command(cs[i], keep_reply, &k, "PING");
        cr_assert(run_until(e->loop, &k.calls, 1, 5000));
        aredis_reply_free(k.r);
    }
    herd_count h = {0};
    for (int i = 0; i < READERS; i++)
        cr_assert_eq(
            aredis_cache_get(ks[i % CLIENTS], "hot", NULL, 0, count_herd, &h),
            0);
    cr_assert(run_until(e->loop, &h.calls, READERS, 10000));
    for (int i = 0; i < CLIENTS; i++) {
        aredis_cache_free(ks[i]);
        aredis_client_free(cs[i]);
    }
    return h;
}

Test(cache, herd_exactly_one_reader_recomputes_at_expiry)
{
    env e;
    env_open(&e, "herd");
    aredis_cache_opts o = {.herd_timeout_ms = 3000};
    aredis_cache *k = cache_open(&e, o);
    /* The Redis TTL is the TTL plus the herd timeout. */
    sync_set(&e, k, "hot", NULL, 0, "old-v", 5, 300);
    got g = {0};
    aredis_cache_ttl(k, "hot", NULL, 0, keep, &g);
    WAIT(&e, g);
    cr_assert(g.integer > 3000 && g.integer <= 3300, "PTTL %lld", g.integer);

    /* Before expiry: everyone gets a fresh value, nobody recomputes. */
    herd_count h = herd_readers(&e, o);
    cr_assert_eq(h.hit, READERS, "hit %d stale %d recompute %d", h.hit, h.stale,
                 h.recompute);
    cr_assert_eq(h.bad_value, 0);

    /* After expiry the key is still there (the original's defect: it was
     * not, so herd protection never fired), and of 50 concurrent readers
     * exactly one recomputes while 49 get the old value. */
    usleep(450 * 1000);
    h = herd_readers(&e, o);
    cr_assert_eq(h.recompute, 1,
                 "recompute %d stale %d hit %d miss %d other %d", h.recompute,
                 h.stale, h.hit, h.miss, h.other);
    cr_assert_eq(h.stale, READERS - 1);
    cr_assert_eq(h.bad_value, 0);
    /* Later readers keep getting the old value, and nobody else is told to
     * recompute. */
    h = herd_readers(&e, o);
    cr_assert_eq(h.stale, READERS, "stale %d recompute %d", h.stale,
                 h.recompute);

    /* The recomputed value is fresh again for everyone. */
    sync_set(&e, k, "hot", NULL, 0, "new-v", 5, 60000);
    sync_get(&e, k, "hot", NULL, 0, &g);
    cr_assert_eq(g.status, AREDIS_CACHE_HIT);
    cr_assert(memcmp(g.data, "new-v", 5) == 0);
    aredis_cache_delete(k, "hot", NULL, 0, NULL, NULL);
    aredis_cache_free(k);
    env_close(&e);
}

Test(cache, herd_without_expiry_never_goes_stale)
{
    env e;
    env_open(&e, "herd-noexp");
    aredis_cache_opts o = {.herd_timeout_ms = 200};
    aredis_cache *k = cache_open(&e, o);
    sync_set(&e, k, "hot", NULL, 0, "old-v", 5, AREDIS_CACHE_NO_TTL);
    got g = {0};
    aredis_cache_ttl(k, "hot", NULL, 0, keep, &g);
    WAIT(&e, g);
    cr_assert_eq(g.integer, -1, "no expiry: no Redis TTL either");
    usleep(300 * 1000); /* past the herd timeout: irrelevant without TTL */
    herd_count h = herd_readers(&e, o);
    cr_assert_eq(h.hit, READERS, "hit %d stale %d recompute %d", h.hit, h.stale,
                 h.recompute);
    /* After the herd window the old value is gone, for everyone. */
    sync_set(&e, k, "hot", NULL, 0, "old-v", 5, 100);
    usleep(400 * 1000);
    h = herd_readers(&e, o);
    cr_assert_eq(h.miss, READERS);
    /* A plain cache refuses a herd entry rather than return its bytes. */
    sync_set(&e, k, "hot", NULL, 0, "old-v", 5, 60000);
    aredis_cache *plain = cache_open(&e, (aredis_cache_opts){0});
    sync_get(&e, plain, "hot", NULL, 0, &g);
    cr_assert_eq(g.status, AREDIS_ECORRUPT, "%d %s", g.status, g.errmsg);
    aredis_cache_delete(k, "hot", NULL, 0, NULL, NULL);
    aredis_cache_free(plain);
    aredis_cache_free(k);
    env_close(&e);
}

/* ---- batches ------------------------------------------------------------- */

static void batch_round_trip(int herd)
{
    faults_proxy px;
    cr_assert_eq(faults_proxy_start(&px, srv.port), 0, "%s", testenv_errstr());
    char purl[128];
    snprintf(purl, sizeof purl, "redis://127.0.0.1:%d/0", px.port);
    env e;
    e.loop = testloop_new();
    e.c = aredis_client_new(e.loop, &(aredis_options){.url = purl}, NULL);
    testenv_key(e.app, sizeof e.app, herd ? "batch-herd" : "batch");
    aredis_cache *k =
        cache_open(&e, (aredis_cache_opts){.herd_timeout_ms = herd ? 1000 : 0});
    enum { N = 20 };
    aredis_cache_entry en[N];
    char keys[N][16], vals[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        snprintf(vals[i], sizeof vals[i], "value-%d", i);
        en[i] = (aredis_cache_entry){.key = keys[i],
                                     .value = vals[i],
                                     .len = strlen(vals[i]),
                                     .ttl_ms = 60000};
    }
    /* Connected, and (herd) the script known to the server, before the
     * clock starts: a cold batch also loads the script. */
    got g = {0};
    aredis_cache_get_many(k, en, 1, keep, &g);
    WAIT(&e, g);
    cr_assert_eq(faults_proxy_ctl(&px, "delay 600 down", NULL, 0), 0);

    int64_t t0 = testenv_now_ms();
    memset(&g, 0, sizeof g);
    cr_assert_eq(aredis_cache_set_many(k, en, N, keep, &g), 0);
    WAIT(&e, g);
    int64_t set_ms = testenv_now_ms() - t0;
    cr_assert_eq(g.status, 0, "%s", g.errmsg);
    cr_assert_eq(g.nitems, N);
    for (int i = 0; i < N; i++)
        cr_assert_eq(g.item_status[i], 0);

    en[N - 1].key = "absent";
    t0 = testenv_now_ms();
    memset(&g, 0, sizeof g);
    cr_assert_eq(aredis_cache_get_many(k, en, N, keep, &g), 0);
    WAIT(&e, g);
    int64_t get_ms = testenv_now_ms() - t0;
    cr_assert_eq(g.status, 0, "%s", g.errmsg);
    cr_assert_eq(g.nitems, N);
    for (int i = 0; i < N - 1; i++) {
        cr_assert_eq(g.item_status[i], AREDIS_CACHE_HIT);
        cr_assert_str_eq(g.item_data[i], vals[i]);
    }
    cr_assert_eq(g.item_status[N - 1], AREDIS_CACHE_MISS);
    /* Every reply is held 600 ms: one round trip is 600 ms and more, two
     * would be 1200 (the margin is for a loaded machine). */
    cr_assert(set_ms >= 590 && set_ms < 1190, "set_many took %lld ms",
              (long long)set_ms);
    cr_assert(get_ms >= 590 && get_ms < 1190, "get_many took %lld ms",
              (long long)get_ms);
    cr_assert_eq(faults_proxy_ctl(&px, "reset", NULL, 0), 0);
    got d = {0};
    aredis_cache_delete_pattern(k, "*", 0, keep, &d);
    WAIT(&e, d);
    cr_assert_eq(d.integer, N);
    cr_assert_eq(aredis_cache_get_many(k, en, 0, keep, &g), AREDIS_EINVAL);
    aredis_cache_free(k);
    env_close(&e);
    faults_proxy_stop(&px);
}

Test(cache, batch_get_and_set_take_one_round_trip)
{
    batch_round_trip(0);
}

Test(cache, herd_batches_take_one_round_trip)
{
    batch_round_trip(1);
}

Test(cache, a_cold_herd_batch_loads_the_script_and_claims_once)
{
    /* A script the server has never seen (SCRIPT FLUSH on a private
     * server): the batch's EVALSHAs meet NOSCRIPT and are read again. */
    faults_server fs;
    cr_assert_eq(faults_server_start(&fs, "cache", NULL, 0, 0), 0, "%s",
                 testenv_errstr());
    char purl[128];
    snprintf(purl, sizeof purl, "redis://127.0.0.1:%d/0", fs.s.port);
    env e;
    e.loop = testloop_new();
    e.c = aredis_client_new(e.loop, &(aredis_options){.url = purl}, NULL);
    testenv_key(e.app, sizeof e.app, "cold");
    aredis_cache *k =
        cache_open(&e, (aredis_cache_opts){.herd_timeout_ms = 2000});
    sync_set(&e, k, "a", NULL, 0, "old-v", 5, 100);
    sync_set(&e, k, "b", NULL, 0, "old-v", 5, 60000);
    usleep(200 * 1000);
    aredis_reply_free(raw2(&e, "SCRIPT", "FLUSH"));
    aredis_cache_entry en[] = {{.key = "a"}, {.key = "b"}, {.key = "a"}};
    got g = {0};
    cr_assert_eq(aredis_cache_get_many(k, en, 3, keep, &g), 0);
    WAIT(&e, g);
    cr_assert_eq(g.status, 0, "%s", g.errmsg);
    cr_assert_eq(g.item_status[0], AREDIS_CACHE_RECOMPUTE);
    cr_assert_eq(g.item_status[1], AREDIS_CACHE_HIT);
    cr_assert_eq(g.item_status[2], AREDIS_CACHE_STALE);
    cr_assert_str_eq(g.item_data[2], "old-v");
    aredis_cache_free(k);
    env_close(&e);
    faults_server_stop(&fs);
}

/* ---- delete by pattern --------------------------------------------------- */

/* Commands our client sent, seen through MONITOR on a raw connection. */
typedef struct monitor {
    testenv_conn conn;
    char addr[64]; /* "127.0.0.1:port] " of the client watched */
} monitor;

static void monitor_start(monitor *m, env *e)
{
    aredis_reply *r = raw2(e, "CLIENT", "INFO");
    cr_assert(r->type == AREDIS_REPLY_STRING || r->type == AREDIS_REPLY_VERB);
    const char *a = strstr(r->str, "addr=");
    cr_assert_not_null(a);
    a += 5;
    size_t n = strcspn(a, " ");
    snprintf(m->addr, sizeof m->addr, "%.*s]", (int)n, a);
    aredis_reply_free(r);
    cr_assert_eq(testenv_connect(&m->conn, &srv), 0, "%s", testenv_errstr());
    const aredis_reply *ok;
    cr_assert_eq(testenv_command(&m->conn, &ok, "MONITOR"), 0);
    cr_assert_eq(ok->type, AREDIS_REPLY_STATUS);
}

/* Count the watched client's commands named cmd (e.g. "\"DEL\"") until it
 * sends ECHO marker. */
static int monitor_count(monitor *m, env *e, const char *cmd_name)
{
    char marker[64];
    snprintf(marker, sizeof marker, "end-%ld", (long)getpid());
    aredis_reply_free(raw2(e, "ECHO", marker));
    int count = 0;
    for (;;) {
        const aredis_reply *r;
        cr_assert_eq(testenv_read_reply(&m->conn, &r), 0, "%s",
                     testenv_errstr());
        if (strstr(r->str, m->addr) == NULL)
            continue;
        if (strstr(r->str, marker) != NULL)
            break;
        const char *c = strstr(r->str, m->addr) + strlen(m->addr);
        if (strncmp(c + 1, cmd_name, strlen(cmd_name)) == 0)
            count++;
    }
    testenv_close(&m->conn);
    return count;
}

Test(cache, delete_pattern_deletes_its_own_keys_one_by_one)
{
    env e;
    env_open(&e, "delpat");
    /* An app prefix with glob characters matches only itself. */
    char odd[80];
    snprintf(odd, sizeof odd, "%s*[x]", e.app);
    aredis_cache *k = cache_open(&e, (aredis_cache_opts){0});
    aredis_cache *other =
        aredis_cache_new(e.c, &(aredis_cache_opts){.app = odd}, NULL);
    aredis_cache_param p[] = {{"n", "1", 0}};
    for (int i = 0; i < 30; i++) {
        char key[32];
        snprintf(key, sizeof key, "%s%d", i % 2 ? "user" : "item", i);
        sync_set(&e, k, key, i % 3 ? p : NULL, i % 3 ? 1 : 0, "v", 1, 60000);
    }
    sync_set(&e, other, "user1", NULL, 0, "v", 1, 60000);
    monitor m;
    monitor_start(&m, &e);
    got g = {0};
    cr_assert_eq(aredis_cache_delete_pattern(k, "user*", 5, keep, &g), 0);
    WAIT(&e, g);
    cr_assert_eq(g.status, 0, "%s", g.errmsg);
    cr_assert_eq(g.integer, 15);
    cr_assert_eq(monitor_count(&m, &e, "\"DEL\""), 15, "one DEL per key");
    /* The other app's entry and the items are still there. */
    memset(&g, 0, sizeof g);
    aredis_cache_exist(other, "user1", NULL, 0, keep, &g);
    WAIT(&e, g);
    cr_assert_eq(g.integer, 1);

    /* Nothing matches: no DEL at all (never an empty or useless one). */
    monitor_start(&m, &e);
    memset(&g, 0, sizeof g);
    cr_assert_eq(aredis_cache_delete_pattern(k, "user*", 0, keep, &g), 0);
    WAIT(&e, g);
    cr_assert_eq(g.integer, 0);
    cr_assert_eq(monitor_count(&m, &e, "\"DEL\""), 0);

    memset(&g, 0, sizeof g);
    aredis_cache_delete_pattern(k, "*", 0, keep, &g);
    WAIT(&e, g);
    cr_assert_eq(g.integer, 15);
    memset(&g, 0, sizeof g);
    aredis_cache_delete_pattern(other, "*", 0, keep, &g);
    WAIT(&e, g);
    cr_assert_eq(g.integer, 1);
    aredis_cache_free(other);
    aredis_cache_free(k);
    env_close(&e);
}

/* ---- completion ---------------------------------------------------------- */

Test(cache, every_call_completes_once_when_the_client_is_freed)
{
    env e;
    env_open(&e, "free");
    aredis_cache *k = cache_open(&e, (aredis_cache_opts){.herd_timeout_ms = 0});
    aredis_cache *h = cache_open(&e, (aredis_cache_opts){.herd_timeout_ms = 5});
    got gs[9];
    memset(gs, 0, sizeof gs);
    aredis_cache_entry en[] = {{.key = "a", .value = "v", .len = 1}};
    cr_assert_eq(aredis_cache_get(k, "a", NULL, 0, keep, &gs[0]), 0);
    cr_assert_eq(aredis_cache_set(k, "a", NULL, 0, "v", 1, 0, keep, &gs[1]), 0);
    cr_assert_eq(aredis_cache_exist(k, "a", NULL, 0, keep, &gs[2]), 0);
    cr_assert_eq(aredis_cache_ttl(k, "a", NULL, 0, keep, &gs[3]), 0);
    cr_assert_eq(aredis_cache_delete(k, "a", NULL, 0, keep, &gs[4]), 0);
    cr_assert_eq(aredis_cache_delete_pattern(k, "*", 0, keep, &gs[5]), 0);
    cr_assert_eq(aredis_cache_get_many(k, en, 1, keep, &gs[6]), 0);
    cr_assert_eq(aredis_cache_set_many(k, en, 1, keep, &gs[7]), 0);
    cr_assert_eq(aredis_cache_get(h, "a", NULL, 0, keep, &gs[8]), 0);
    /* The caches go first: their calls keep them alive. */
    aredis_cache_free(k);
    aredis_cache_free(h);
    aredis_client_free(e.c);
    for (int i = 0; i < 9; i++)
        cr_assert_eq(gs[i].calls, 0, "never inside the call");
    int never = 0;
    run_until(e.loop, &never, 1, 200);
    for (int i = 0; i < 9; i++) {
        cr_assert_eq(gs[i].calls, 1, "call %d: %d callbacks", i, gs[i].calls);
        cr_assert_lt(gs[i].status, 0, "call %d failed", i);
    }
    testloop_free(e.loop);
}

/* ---- blocking form ------------------------------------------------------- */

Test(cache, the_blocking_form)
{
    aredis_status st;
    aredis_sync *s = aredis_sync_connect(&(aredis_options){.url = url}, &st);
    cr_assert_not_null(s, "%s", st.msg);
    char app[64];
    testenv_key(app, sizeof app, "sync");
    aredis_cache *k = aredis_cache_new(
        aredis_sync_client(s),
        &(aredis_cache_opts){
            .app = app, .codec = AREDIS_CACHE_LZ4, .compress_min = 10},
        &st);
    cr_assert_not_null(k, "%s", st.msg);
    aredis_cache_result *r = aredis_sync_cache_get(k, "a", NULL, 0);
    cr_assert_eq(r->status, AREDIS_CACHE_MISS);
    aredis_cache_result_free(r);
    r = aredis_sync_cache_set(k, "a", NULL, 0, "aaaaaaaaaaaaaaaaaaaaaaaa", 24,
                              60000);
    cr_assert_eq(r->status, 0, "%s", r->errmsg);
    aredis_cache_result_free(r);
    r = aredis_sync_cache_get(k, "a", NULL, 0);
    cr_assert_eq(r->status, AREDIS_CACHE_HIT);
    cr_assert_eq(r->len, 24);
    cr_assert_str_eq(r->data, "aaaaaaaaaaaaaaaaaaaaaaaa");
    aredis_cache_result_free(r);
    r = aredis_sync_cache_exist(k, "a", NULL, 0);
    cr_assert_eq(r->integer, 1);
    aredis_cache_result_free(r);
    r = aredis_sync_cache_ttl(k, "a", NULL, 0);
    cr_assert_gt(r->integer, 50000);
    aredis_cache_result_free(r);
    aredis_cache_entry en[] = {{.key = "b", .value = "2", .len = 1},
                               {.key = "c", .value = "3", .len = 1}};
    r = aredis_sync_cache_set_many(k, en, 2);
    cr_assert_eq(r->nitems, 2);
    aredis_cache_result_free(r);
    r = aredis_sync_cache_get_many(k, en, 2);
    cr_assert_eq(r->nitems, 2);
    cr_assert_str_eq(r->items[1].data, "3");
    cr_assert_eq(r->items[0].status, AREDIS_CACHE_HIT);
    aredis_cache_result_free(r);
    r = aredis_sync_cache_delete(k, "a", NULL, 0);
    cr_assert_eq(r->integer, 1);
    aredis_cache_result_free(r);
    r = aredis_sync_cache_delete_pattern(k, "*", 0);
    cr_assert_eq(r->integer, 2);
    aredis_cache_result_free(r);
    /* A refused call comes back as a result. */
    r = aredis_sync_cache_get(k, NULL, NULL, 0);
    cr_assert_eq(r->status, AREDIS_EINVAL);
    aredis_cache_result_free(r);
    aredis_cache_free(k);
    aredis_sync_free(s);
}
