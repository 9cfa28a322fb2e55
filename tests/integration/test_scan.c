/* Integration tests of the SCAN iterators (include/aredis/scan.h) against
 * the real standalone server, on RESP2 and RESP3: every key of an
 * unchanging keyspace is seen at least once, MATCH, COUNT and TYPE, early
 * stops, HSCAN pairs, ZSCAN scores, SSCAN, errors, and the blocking
 * iterator. The done callback must run exactly once in every case.
 *
 * Only test_scan_keyspace flushes a database (4, this file's own); every
 * other test works in database 0 on keys named after its process, with a
 * MATCH on that prefix, since other tests share the server. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aredis/aredis.h"
#include "aredis/scan.h"
#include "testclient.h"
#include "testenv.h"

#define KEYSPACE_DB 4
#define NKEYS 10000

static testenv_server srv;

static void setup(void)
{
    testclient_standalone(&srv, NULL, 0, 0);
}

TestSuite(scan, .init = setup, .timeout = 120);

static const char *url_for(int db, int proto)
{
    static char url[160];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/%d?protocol=%d", srv.port,
             db, proto);
    return url;
}

static aredis_client *connect_to(aredis_loop *loop, int db, int proto)
{
    return testclient_new(loop, url_for(db, proto));
}

/* ---- helpers: commands and their counting ---------------------------------
 */

typedef struct counted {
    int expect, calls, errors;
    char last_error[256];
} counted;

static void count_cb(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    counted *k = ud;
    k->calls++;
    if (r->type == AREDIS_REPLY_ERROR) {
        k->errors++;
        snprintf(k->last_error, sizeof k->last_error, "%.*s", (int)r->len,
                 r->str);
    }
}

static void wait_counted(aredis_loop *loop, counted *k)
{
    for (int waited = 0; k->calls < k->expect && waited < 30000; waited += 10)
        testloop_run_once(loop, 10);
    cr_assert_eq(k->calls, k->expect, "%d of %d replies", k->calls, k->expect);
    cr_assert_eq(k->errors, 0, "%s", k->last_error);
}

/* Send one command and wait for it, asserting it did not fail. */
static void must(aredis_loop *loop, aredis_client *c, const char *fmt, ...)
{
    counted k = {.expect = 1};
    va_list ap;
    va_start(ap, fmt);
    cr_assert_eq(aredis_vcommand(c, count_cb, &k, fmt, ap), 0);
    va_end(ap);
    wait_counted(loop, &k);
}

/* What a walk saw. */
typedef struct walk {
    testscan_end end; /* first: testscan_done's */
    int batches, elements;
    int stop_after_batches;  /* > 0: the batch callback stops there */
    int stop_after_elements; /* > 0: the element callback stops there */
    /* every element, "str" or "str=value" or "str=score", one per line */
    char *seen;
    size_t seenlen, seencap;
    double scores[512];
    char *bitmap; /* for the keyspace test: index seen */
    int foreign;  /* elements not expected */
} walk;

static void note(walk *w, const char *s, size_t n)
{
    if (w->seenlen + n + 2 > w->seencap) {
        w->seencap = (w->seencap + n + 2) * 2;
        w->seen = realloc(w->seen, w->seencap);
        cr_assert_not_null(w->seen);
    }
    memcpy(w->seen + w->seenlen, s, n);
    w->seenlen += n;
    w->seen[w->seenlen++] = '\n';
    w->seen[w->seenlen] = '\0';
}

static int on_batch(aredis_client *c, const aredis_reply *b, void *ud)
{
    (void)c;
    walk *w = ud;
    cr_assert_eq(w->end.calls, 0, "no batch after done");
    cr_assert(b->type == AREDIS_REPLY_ARRAY);
    cr_assert_gt(b->len, 0, "empty batches are not reported");
    w->batches++;
    return w->stop_after_batches > 0 && w->batches >= w->stop_after_batches;
}

static int on_elem(aredis_client *c, const aredis_scan_elem *e, void *ud)
{
    (void)c;
    walk *w = ud;
    cr_assert_eq(w->end.calls, 0, "no element after done");
    char line[600];
    int n;
    if (e->value != NULL)
        n = snprintf(line, sizeof line, "%.*s=%.*s", (int)e->len, e->str,
                     (int)e->vlen, e->value);
    else
        n = snprintf(line, sizeof line, "%.*s", (int)e->len, e->str);
    note(w, line, (size_t)n);
    if (w->elements < (int)(sizeof w->scores / sizeof *w->scores))
        w->scores[w->elements] = e->score;
    w->elements++;
    return w->stop_after_elements > 0 && w->elements >= w->stop_after_elements;
}

/* Walk to the end (or an early stop) and check done ran exactly once. */
static void walk_all(aredis_loop *loop, aredis_client *c,
                     const aredis_scan_opts *o, walk *w, int batches,
                     int elements)
{
    cr_assert_eq(aredis_scan(c, o, batches ? on_batch : NULL,
                             elements ? on_elem : NULL, testscan_done, w),
                 0);
    cr_assert_eq(w->end.calls, 0, "never inside the call");
    cr_assert(testloop_run_until(loop, &w->end.calls, 60000),
              "walk did not end");
    /* Give a second completion a chance to show up. */
    for (int i = 0; i < 5; i++)
        testloop_run_once(loop, 5);
    cr_assert_eq(w->end.calls, 1);
}

/* Count lines of w->seen equal to s. */
static int seen_count(const walk *w, const char *s)
{
    int n = 0;
    size_t len = strlen(s);
    for (const char *p = w->seen; p != NULL && *p;) {
        const char *nl = strchr(p, '\n');
        if ((size_t)(nl - p) == len && memcmp(p, s, len) == 0)
            n++;
        p = nl + 1;
    }
    return n;
}

static void walk_cleanup(walk *w)
{
    free(w->seen);
    free(w->bitmap);
}

static void finish(aredis_loop *loop, aredis_client *c)
{
    cr_assert_eq(aredis_client_pending(c), 0);
    aredis_client_free(c);
    testloop_free(loop);
}

/* ---- the whole keyspace: 10,000 keys ------------------------------------ */

static int key_index(const char *s, size_t n)
{
    /* "k:%05d" */
    if (n != 7 || s[0] != 'k' || s[1] != ':')
        return -1;
    int v = 0;
    for (size_t i = 2; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v < NKEYS ? v : -1;
}

static int mark_key(aredis_client *c, const aredis_scan_elem *e, void *ud)
{
    (void)c;
    walk *w = ud;
    int i = key_index(e->str, e->len);
    if (i < 0)
        w->foreign++;
    else
        w->bitmap[i] = 1;
    w->elements++;
    return 0;
}

static int count_batch(aredis_client *c, const aredis_reply *b, void *ud)
{
    (void)c;
    (void)b;
    ((walk *)ud)->batches++;
    return 0;
}

static void keyspace_walk(aredis_loop *loop, aredis_client *c, long long count,
                          walk *w)
{
    memset(w, 0, sizeof *w);
    w->bitmap = calloc(NKEYS, 1);
    cr_assert_eq(aredis_scan(c, &(aredis_scan_opts){.count = count},
                             count_batch, mark_key, testscan_done, w),
                 0);
    cr_assert(testloop_run_until(loop, &w->end.calls, 60000));
    cr_assert_eq(w->end.status, AREDIS_SCAN_FINISHED, "%d %s", w->end.status,
                 w->end.err);
    int missing = 0;
    for (int i = 0; i < NKEYS; i++)
        missing += !w->bitmap[i];
    cr_assert_eq(missing, 0, "%d keys never returned (COUNT %lld)", missing,
                 count);
    cr_assert_eq(w->foreign, 0);
    cr_assert_geq(w->elements, NKEYS, "at least once each");
}

Test(scan, keyspace_every_key_at_least_once_resp2_and_resp3)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = connect_to(loop, KEYSPACE_DB, 3);
    must(loop, c, "FLUSHDB");
    counted k = {.expect = NKEYS};
    for (int i = 0; i < NKEYS; i++) {
        char key[16];
        snprintf(key, sizeof key, "k:%05d", i);
        cr_assert_eq(aredis_command(c, count_cb, &k, "SET %s %d", key, i), 0);
    }
    wait_counted(loop, &k);
    aredis_client_free(c);

    int batches_default[2] = {0}, batches_1000[2] = {0};
    for (int proto = 2; proto <= 3; proto++) {
        c = connect_to(loop, KEYSPACE_DB, proto);
        walk w;
        keyspace_walk(loop, c, 0, &w);
        batches_default[proto - 2] = w.batches;
        walk_cleanup(&w);
        keyspace_walk(loop, c, 1000, &w);
        batches_1000[proto - 2] = w.batches;
        walk_cleanup(&w);
        cr_assert_eq(aredis_client_protocol(c), proto);
        cr_assert_eq(aredis_client_pending(c), 0);
        aredis_client_free(c);
        /* COUNT is how much the server does per call: 10 by default, so a
         * walk of 10,000 keys takes about 1,000 calls, and far fewer with
         * COUNT 1000. */
        cr_assert_gt(batches_default[proto - 2], 500, "%d",
                     batches_default[proto - 2]);
        cr_assert_lt(batches_1000[proto - 2], 50, "%d",
                     batches_1000[proto - 2]);
    }

    /* The blocking iterator over the same keyspace. */
    for (int proto = 2; proto <= 3; proto++) {
        aredis_status st;
        aredis_sync *s = aredis_sync_connect(
            &(aredis_options){.url = url_for(KEYSPACE_DB, proto)}, &st);
        cr_assert_not_null(s, "%s", st.msg);
        aredis_sync_scan *it =
            aredis_sync_scan_new(s, &(aredis_scan_opts){.count = 500}, &st);
        cr_assert_not_null(it, "%s", st.msg);
        char *bitmap = calloc(NKEYS, 1);
        aredis_scan_elem e;
        int n = 0, r;
        while ((r = aredis_sync_scan_next(it, &e)) == 1) {
            int i = key_index(e.str, e.len);
            cr_assert_geq(i, 0, "foreign key %.*s", (int)e.len, e.str);
            bitmap[i] = 1;
            n++;
        }
        cr_assert_eq(r, 0, "%s", aredis_sync_scan_errmsg(it));
        cr_assert_eq(aredis_sync_scan_next(it, &e), 0, "the end stays the end");
        for (int i = 0; i < NKEYS; i++)
            cr_assert(bitmap[i], "key %d not returned", i);
        cr_assert_geq(n, NKEYS);
        free(bitmap);
        aredis_sync_scan_free(it);
        aredis_sync_free(s);
    }
    testloop_free(loop);
}

/* ---- MATCH, TYPE, COUNT -----------------------------------------------------
 */

Test(scan, match_returns_only_matching_keys)
{
    aredis_loop *loop = testloop_new();
    for (int proto = 2; proto <= 3; proto++) {
        aredis_client *c = connect_to(loop, 0, proto);
        char base[64], pat[80];
        testenv_key(base, sizeof base, proto == 2 ? "m2" : "m3");
        counted k = {.expect = 100};
        for (int i = 0; i < 50; i++) {
            aredis_command(c, count_cb, &k, "SET %s:a:%d x", base, i);
            aredis_command(c, count_cb, &k, "SET %s:b:%d x", base, i);
        }
        wait_counted(loop, &k);
        snprintf(pat, sizeof pat, "%s:a:*", base);
        walk w = {0};
        walk_all(loop, c, &(aredis_scan_opts){.match = pat, .count = 1000}, &w,
                 1, 1);
        cr_assert_eq(w.end.status, AREDIS_SCAN_FINISHED, "%s", w.end.err);
        for (int i = 0; i < 50; i++) {
            char key[128];
            snprintf(key, sizeof key, "%s:a:%d", base, i);
            cr_assert_geq(seen_count(&w, key), 1, "%s missing", key);
            snprintf(key, sizeof key, "%s:b:%d", base, i);
            cr_assert_eq(seen_count(&w, key), 0, "%s matched", key);
        }
        cr_assert_geq(w.elements, 50);
        /* Elements from other tests would fail the pattern: none. */
        for (const char *p = w.seen; *p; p = strchr(p, '\n') + 1)
            cr_assert(strncmp(p, pat, strlen(pat) - 1) == 0, "%.40s", p);
        walk_cleanup(&w);
        for (int i = 0; i < 50; i++)
            aredis_command(c, NULL, NULL, "DEL %s:a:%d %s:b:%d", base, i, base,
                           i);
        must(loop, c, "PING");
        cr_assert_eq(aredis_client_pending(c), 0);
        aredis_client_free(c);
    }
    testloop_free(loop);
}

Test(scan, type_filters_scan_by_value_type)
{
    aredis_loop *loop = testloop_new();
    for (int proto = 2; proto <= 3; proto++) {
        aredis_client *c = connect_to(loop, 0, proto);
        char base[64], pat[80], key[128];
        testenv_key(base, sizeof base, proto == 2 ? "t2" : "t3");
        counted k = {.expect = 50};
        for (int i = 0; i < 10; i++) {
            aredis_command(c, count_cb, &k, "SET %s:s%d v", base, i);
            aredis_command(c, count_cb, &k, "HSET %s:h%d f v", base, i);
            aredis_command(c, count_cb, &k, "SADD %s:S%d m", base, i);
            aredis_command(c, count_cb, &k, "ZADD %s:z%d 1 m", base, i);
            aredis_command(c, count_cb, &k, "RPUSH %s:l%d x", base, i);
        }
        wait_counted(loop, &k);
        snprintf(pat, sizeof pat, "%s:*", base);
        static const char *const types[] = {"string", "hash", "set", "zset",
                                            "list"};
        static const char tag[] = {'s', 'h', 'S', 'z', 'l'};
        for (int t = 0; t < 5; t++) {
            walk w = {0};
            walk_all(loop, c,
                     &(aredis_scan_opts){
                         .match = pat, .type = types[t], .count = 200},
                     &w, 0, 1);
            cr_assert_eq(w.end.status, AREDIS_SCAN_FINISHED, "%s", w.end.err);
            for (int i = 0; i < 10; i++) {
                snprintf(key, sizeof key, "%s:%c%d", base, tag[t], i);
                cr_assert_geq(seen_count(&w, key), 1, "%s: %s missing",
                              types[t], key);
            }
            /* Nothing of another type: every line is base:<tag>N. */
            for (const char *p = w.seen; *p; p = strchr(p, '\n') + 1)
                cr_assert_eq(p[strlen(base) + 1], tag[t], "TYPE %s gave %.40s",
                             types[t], p);
            walk_cleanup(&w);
        }
        for (int i = 0; i < 10; i++)
            aredis_command(c, NULL, NULL,
                           "DEL %s:s%d %s:h%d %s:S%d %s:z%d %s:l%d", base, i,
                           base, i, base, i, base, i, base, i);
        must(loop, c, "PING");
        aredis_client_free(c);
    }
    testloop_free(loop);
}

/* ---- early stop -------------------------------------------------------------
 */

Test(scan, early_stop_from_either_callback)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = connect_to(loop, 0, 3);
    char base[64], pat[80];
    testenv_key(base, sizeof base, "stop");
    counted k = {.expect = 300};
    for (int i = 0; i < 300; i++)
        aredis_command(c, count_cb, &k, "SET %s:%d x", base, i);
    wait_counted(loop, &k);
    snprintf(pat, sizeof pat, "%s:*", base);

    /* A batch callback that says stop after its first batch. */
    walk w = {.stop_after_batches = 1};
    walk_all(loop, c, &(aredis_scan_opts){.match = pat, .count = 50}, &w, 1, 1);
    cr_assert_eq(w.end.status, AREDIS_SCAN_STOPPED);
    cr_assert_eq(w.batches, 1);
    cr_assert_eq(w.elements, 0, "no element callback for a refused batch");
    walk_cleanup(&w);

    /* An element callback that stops at the fifth element. */
    walk w2 = {.stop_after_elements = 5};
    walk_all(loop, c, &(aredis_scan_opts){.match = pat, .count = 1000}, &w2, 0,
             1);
    cr_assert_eq(w2.end.status, AREDIS_SCAN_STOPPED);
    cr_assert_eq(w2.elements, 5);
    walk_cleanup(&w2);

    for (int i = 0; i < 300; i++)
        aredis_command(c, NULL, NULL, "DEL %s:%d", base, i);
    must(loop, c, "PING");
    finish(loop, c);
}

/* ---- HSCAN, ZSCAN, SSCAN
 * ------------------------------------------------------- */

Test(scan, hscan_gives_field_value_pairs)
{
    aredis_loop *loop = testloop_new();
    for (int proto = 2; proto <= 3; proto++) {
        aredis_client *c = connect_to(loop, 0, proto);
        char small[64], big[64];
        testenv_key(small, sizeof small, proto == 2 ? "hs2" : "hs3");
        testenv_key(big, sizeof big, proto == 2 ? "hb2" : "hb3");
        /* 5 fields stay a listpack (one batch); 1000 (over the default
         * hash-max-listpack-entries, 512) make a real hash table, walked
         * in many batches. */
        counted k = {.expect = 1005};
        for (int i = 0; i < 5; i++)
            aredis_command(c, count_cb, &k, "HSET %s f%d v%d", small, i, i);
        for (int i = 0; i < 1000; i++)
            aredis_command(c, count_cb, &k, "HSET %s f%d v%d", big, i, i * 7);
        wait_counted(loop, &k);

        walk w = {0};
        walk_all(loop, c,
                 &(aredis_scan_opts){.kind = AREDIS_SCAN_HASH, .key = small},
                 &w, 1, 1);
        cr_assert_eq(w.end.status, AREDIS_SCAN_FINISHED, "%s", w.end.err);
        cr_assert_eq(w.elements, 5, "pairs, not flat elements");
        cr_assert_eq(w.batches, 1);
        for (int i = 0; i < 5; i++) {
            char line[32];
            snprintf(line, sizeof line, "f%d=v%d", i, i);
            cr_assert_eq(seen_count(&w, line), 1, "%s", line);
        }
        walk_cleanup(&w);

        walk w2 = {0};
        walk_all(loop, c,
                 &(aredis_scan_opts){.kind = AREDIS_SCAN_HASH,
                                     .key = big,
                                     .keylen = strlen(big)},
                 &w2, 1, 1);
        cr_assert_eq(w2.end.status, AREDIS_SCAN_FINISHED, "%s", w2.end.err);
        cr_assert_gt(w2.batches, 1);
        for (int i = 0; i < 1000; i++) {
            char line[32];
            snprintf(line, sizeof line, "f%d=v%d", i, i * 7);
            cr_assert_geq(seen_count(&w2, line), 1, "%s", line);
        }
        walk_cleanup(&w2);

        /* MATCH applies to fields. */
        walk w3 = {0};
        walk_all(loop, c,
                 &(aredis_scan_opts){.kind = AREDIS_SCAN_HASH,
                                     .key = big,
                                     .match = "f4?",
                                     .count = 1000},
                 &w3, 0, 1);
        /* f40..f49 (at least once each: a hash being rehashed may return
         * one twice), and nothing else. */
        cr_assert_geq(w3.elements, 10, "%s", w3.seen);
        for (int i = 40; i < 50; i++) {
            char line[32];
            snprintf(line, sizeof line, "f%d=v%d", i, i * 7);
            cr_assert_geq(seen_count(&w3, line), 1, "%s", line);
        }
        for (const char *p = w3.seen; *p; p = strchr(p, '\n') + 1)
            cr_assert(p[0] == 'f' && p[1] == '4' && p[3] == '=', "%.20s", p);
        walk_cleanup(&w3);
        aredis_command(c, NULL, NULL, "DEL %s %s", small, big);
        must(loop, c, "PING");
        aredis_client_free(c);
    }
    testloop_free(loop);
}

Test(scan, zscan_gives_member_score_pairs_as_doubles)
{
    aredis_loop *loop = testloop_new();
    static const double scores[] = {0.5, -2.25, 3, 1e10, -0.125};
    for (int proto = 2; proto <= 3; proto++) {
        aredis_client *c = connect_to(loop, 0, proto);
        char key[64], big[64];
        testenv_key(key, sizeof key, proto == 2 ? "z2" : "z3");
        testenv_key(big, sizeof big, proto == 2 ? "zb2" : "zb3");
        must(loop, c,
             "ZADD %s 0.5 a -2.25 b 3 c 1e10 d -0.125 e inf pinf -inf "
             "ninf",
             key);
        walk w = {0};
        walk_all(loop, c,
                 &(aredis_scan_opts){.kind = AREDIS_SCAN_ZSET, .key = key}, &w,
                 0, 1);
        cr_assert_eq(w.end.status, AREDIS_SCAN_FINISHED, "%s", w.end.err);
        cr_assert_eq(w.elements, 7);
        /* Find each member's line and score. */
        const char *p = w.seen;
        for (int i = 0; i < w.elements; i++) {
            char m = p[0];
            double s = w.scores[i];
            if (m >= 'a' && m <= 'e' && p[1] == '=')
                cr_assert_eq(s, scores[m - 'a'], "%c: %g", m, s);
            else if (strncmp(p, "pinf=", 5) == 0)
                cr_assert(s > 1e308, "inf: %g", s);
            else if (strncmp(p, "ninf=", 5) == 0)
                cr_assert(s < -1e308, "-inf: %g", s);
            else
                cr_assert_fail("unexpected element %.20s", p);
            p = strchr(p, '\n') + 1;
        }
        walk_cleanup(&w);

        /* A sorted set big enough to be a skiplist, walked in batches. */
        counted k = {.expect = 300};
        for (int i = 0; i < 300; i++)
            aredis_command(c, count_cb, &k, "ZADD %s %f m%d", big, i / 4.0, i);
        wait_counted(loop, &k);
        walk w2 = {0};
        walk_all(loop, c,
                 &(aredis_scan_opts){.kind = AREDIS_SCAN_ZSET, .key = big}, &w2,
                 1, 1);
        cr_assert_gt(w2.batches, 1);
        cr_assert_geq(w2.elements, 300);
        const char *q = w2.seen;
        for (int i = 0; i < w2.elements && i < 300; i++) {
            int m = (int)strtol(q + 1, NULL, 10);
            cr_assert_eq(w2.scores[i], m / 4.0, "m%d: %g", m, w2.scores[i]);
            q = strchr(q, '\n') + 1;
        }
        walk_cleanup(&w2);
        aredis_command(c, NULL, NULL, "DEL %s %s", key, big);
        must(loop, c, "PING");
        aredis_client_free(c);
    }
    testloop_free(loop);
}

Test(scan, sscan_members_intset_and_hashtable)
{
    aredis_loop *loop = testloop_new();
    for (int proto = 2; proto <= 3; proto++) {
        aredis_client *c = connect_to(loop, 0, proto);
        char ints[64], strs[64];
        testenv_key(ints, sizeof ints, proto == 2 ? "si2" : "si3");
        testenv_key(strs, sizeof strs, proto == 2 ? "ss2" : "ss3");
        counted k = {.expect = 600};
        for (int i = 0; i < 300; i++) {
            aredis_command(c, count_cb, &k, "SADD %s %d", ints, i * 3);
            aredis_command(c, count_cb, &k, "SADD %s member-%d", strs, i);
        }
        wait_counted(loop, &k);
        walk w = {0};
        walk_all(loop, c,
                 &(aredis_scan_opts){.kind = AREDIS_SCAN_SET, .key = ints}, &w,
                 1, 1);
        cr_assert_eq(w.end.status, AREDIS_SCAN_FINISHED, "%s", w.end.err);
        for (int i = 0; i < 300; i++) {
            char m[16];
            snprintf(m, sizeof m, "%d", i * 3);
            cr_assert_geq(seen_count(&w, m), 1, "%s", m);
        }
        walk_cleanup(&w);
        walk w2 = {0};
        walk_all(loop, c,
                 &(aredis_scan_opts){.kind = AREDIS_SCAN_SET,
                                     .key = strs,
                                     .match = "member-1*"},
                 &w2, 1, 1);
        cr_assert_eq(w2.end.status, AREDIS_SCAN_FINISHED, "%s", w2.end.err);
        /* member-1, member-10..19, member-100..199, each at least once. */
        cr_assert_geq(w2.elements, 1 + 10 + 100, "%d", w2.elements);
        for (int i = 0; i < 300; i++) {
            char m[32];
            snprintf(m, sizeof m, "member-%d", i);
            cr_assert_eq(seen_count(&w2, m) > 0, m[7] == '1', "%s", m);
        }
        walk_cleanup(&w2);
        aredis_command(c, NULL, NULL, "DEL %s %s", ints, strs);
        must(loop, c, "PING");
        aredis_client_free(c);
    }
    testloop_free(loop);
}

/* ---- errors and the completion rule
 * ----------------------------------------------- */

Test(scan, bad_options_are_refused_without_callbacks)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = connect_to(loop, 0, 3);
    walk w = {0};
    cr_assert_eq(aredis_scan(c, &(aredis_scan_opts){.kind = AREDIS_SCAN_SET},
                             on_batch, on_elem, testscan_done, &w),
                 AREDIS_EINVAL, "SSCAN needs a key");
    cr_assert_eq(aredis_scan(c, &(aredis_scan_opts){.key = "k"}, on_batch,
                             on_elem, testscan_done, &w),
                 AREDIS_EINVAL, "SCAN takes no key");
    cr_assert_eq(aredis_scan(c,
                             &(aredis_scan_opts){.kind = AREDIS_SCAN_HASH,
                                                 .key = "k",
                                                 .type = "hash"},
                             on_batch, on_elem, testscan_done, &w),
                 AREDIS_EINVAL, "TYPE is for SCAN only");
    cr_assert_eq(aredis_scan(c, &(aredis_scan_opts){.kind = 9}, on_batch,
                             on_elem, testscan_done, &w),
                 AREDIS_EINVAL);
    cr_assert_eq(aredis_scan(c, &(aredis_scan_opts){.count = -1}, on_batch,
                             on_elem, testscan_done, &w),
                 AREDIS_EINVAL);
    cr_assert_eq(aredis_scan(c, NULL, NULL, NULL, testscan_done, &w),
                 AREDIS_EINVAL);
    for (int i = 0; i < 10; i++)
        testloop_run_once(loop, 5);
    cr_assert_eq(w.end.calls, 0);
    cr_assert_eq(aredis_client_pending(c), 0);
    aredis_status st;
    cr_assert_null(aredis_sync_scan_new(
        NULL, &(aredis_scan_opts){.kind = AREDIS_SCAN_ZSET}, &st));
    cr_assert_eq(st.code, AREDIS_EINVAL);
    /* The blocking iterator says which option is wrong. */
    aredis_sync *s = aredis_sync_connect(
        &(aredis_options){.host = "127.0.0.1", .port = srv.port}, &st);
    cr_assert_not_null(s, "%s", st.msg);
    cr_assert_null(aredis_sync_scan_new(
        s,
        &(aredis_scan_opts){
            .kind = AREDIS_SCAN_HASH, .key = "k", .type = "hash"},
        &st));
    cr_assert_eq(st.code, AREDIS_EINVAL);
    cr_assert(strstr(st.msg, "type") != NULL, "%s", st.msg);
    cr_assert_null(
        aredis_sync_scan_new(s, &(aredis_scan_opts){.count = -1}, &st));
    cr_assert(strstr(st.msg, "count") != NULL, "%s", st.msg);
    cr_assert_null(aredis_sync_scan_new(
        s, &(aredis_scan_opts){.kind = AREDIS_SCAN_SET}, &st));
    cr_assert(strstr(st.msg, "need a key") != NULL, "%s", st.msg);
    aredis_sync_free(s);
    finish(loop, c);
}

Test(scan, wrong_type_and_missing_key)
{
    aredis_loop *loop = testloop_new();
    for (int proto = 2; proto <= 3; proto++) {
        aredis_client *c = connect_to(loop, 0, proto);
        char key[64], none[64];
        testenv_key(key, sizeof key, "wrongtype");
        testenv_key(none, sizeof none, "nosuchkey");
        must(loop, c, "SET %s x", key);
        walk w = {0};
        walk_all(loop, c,
                 &(aredis_scan_opts){.kind = AREDIS_SCAN_SET, .key = key}, &w,
                 1, 1);
        cr_assert_eq(w.end.status, AREDIS_ESERVER);
        cr_assert(strncmp(w.end.err, "WRONGTYPE", 9) == 0, "%s", w.end.err);
        cr_assert_eq(w.batches + w.elements, 0);
        walk_cleanup(&w);

        walk w2 = {0};
        walk_all(loop, c,
                 &(aredis_scan_opts){.kind = AREDIS_SCAN_HASH, .key = none},
                 &w2, 1, 1);
        cr_assert_eq(w2.end.status, AREDIS_SCAN_FINISHED);
        cr_assert_eq(w2.batches + w2.elements, 0);
        walk_cleanup(&w2);
        must(loop, c, "DEL %s", key);
        aredis_client_free(c);
    }
    testloop_free(loop);
}

static int free_client_in_batch(aredis_client *c, const aredis_reply *b,
                                void *ud)
{
    walk *w = ud;
    (void)b;
    w->batches++;
    aredis_client_free(c); /* deferred until this callback returns */
    return 0;
}

Test(scan, freeing_the_client_ends_the_walk_once)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = connect_to(loop, 0, 3);
    char base[64], pat[80];
    testenv_key(base, sizeof base, "free");
    counted k = {.expect = 100};
    for (int i = 0; i < 100; i++)
        aredis_command(c, count_cb, &k, "SET %s:%d x", base, i);
    wait_counted(loop, &k);
    snprintf(pat, sizeof pat, "%s:*", base);

    /* Freed while a SCAN call is in flight: it is cancelled. */
    walk w = {0};
    cr_assert_eq(aredis_scan(c, &(aredis_scan_opts){.match = pat}, on_batch,
                             NULL, testscan_done, &w),
                 0);
    aredis_client_free(c);
    cr_assert(testloop_run_until(loop, &w.end.calls, 5000));
    cr_assert_lt(w.end.status, 0, "a failure, not a finish");
    cr_assert_eq(w.end.status, AREDIS_ECANCELED, "%d: %s", w.end.status,
                 w.end.err);
    walk_cleanup(&w);

    /* Freed from inside a batch callback: the next call is refused. */
    c = connect_to(loop, 0, 3);
    walk w2 = {0};
    cr_assert_eq(aredis_scan(c, &(aredis_scan_opts){.match = pat, .count = 5},
                             free_client_in_batch, NULL, testscan_done, &w2),
                 0);
    cr_assert(testloop_run_until(loop, &w2.end.calls, 5000));
    for (int i = 0; i < 5; i++)
        testloop_run_once(loop, 5);
    cr_assert_eq(w2.end.calls, 1);
    cr_assert_eq(w2.batches, 1);
    cr_assert_eq(w2.end.status, AREDIS_ESTATE, "%d: %s", w2.end.status,
                 w2.end.err);
    walk_cleanup(&w2);

    c = connect_to(loop, 0, 3);
    for (int i = 0; i < 100; i++)
        aredis_command(c, NULL, NULL, "DEL %s:%d", base, i);
    must(loop, c, "PING");
    finish(loop, c);
}

/* ---- the blocking iterator
 * ---------------------------------------------------- */

Test(scan, sync_iterator_pairs_errors_and_lifetime)
{
    for (int proto = 2; proto <= 3; proto++) {
        aredis_status st;
        aredis_sync *s = aredis_sync_connect(
            &(aredis_options){.url = url_for(0, proto)}, &st);
        cr_assert_not_null(s, "%s", st.msg);
        char h[64], z[64], str[64];
        testenv_key(h, sizeof h, "synch");
        testenv_key(z, sizeof z, "syncz");
        testenv_key(str, sizeof str, "syncs");
        for (int i = 0; i < 200; i++)
            aredis_reply_free(
                aredis_sync_command(s, "HSET %s f%d %d", h, i, i * i));
        aredis_reply_free(aredis_sync_command(s, "ZADD %s 1.5 x -3 y", z));
        aredis_reply_free(aredis_sync_command(s, "SET %s v", str));

        aredis_sync_scan *it = aredis_sync_scan_new(
            s, &(aredis_scan_opts){.kind = AREDIS_SCAN_HASH, .key = h}, &st);
        cr_assert_not_null(it, "%s", st.msg);
        char *seen = calloc(200, 1);
        aredis_scan_elem e;
        int r, n = 0;
        while ((r = aredis_sync_scan_next(it, &e)) == 1) {
            char field[16], value[16];
            cr_assert_lt(e.len, sizeof field);
            snprintf(field, sizeof field, "%.*s", (int)e.len, e.str);
            snprintf(value, sizeof value, "%.*s", (int)e.vlen, e.value);
            int i = (int)strtol(field + 1, NULL, 10);
            cr_assert_eq(strtol(value, NULL, 10), i * i, "%s=%s", field, value);
            seen[i] = 1;
            n++;
        }
        cr_assert_eq(r, 0, "%s", aredis_sync_scan_errmsg(it));
        cr_assert_str_eq(aredis_sync_scan_errmsg(it), "");
        for (int i = 0; i < 200; i++)
            cr_assert(seen[i], "f%d", i);
        free(seen);
        aredis_sync_scan_free(it);

        it = aredis_sync_scan_new(
            s, &(aredis_scan_opts){.kind = AREDIS_SCAN_ZSET, .key = z}, &st);
        double sum = 0;
        int members = 0;
        while ((r = aredis_sync_scan_next(it, &e)) == 1) {
            sum += e.score;
            members++;
        }
        cr_assert_eq(r, 0);
        cr_assert_eq(members, 2);
        cr_assert_eq(sum, -1.5);
        aredis_sync_scan_free(it);

        /* A server error is returned, and stays. */
        it = aredis_sync_scan_new(
            s, &(aredis_scan_opts){.kind = AREDIS_SCAN_ZSET, .key = str}, &st);
        cr_assert_eq(aredis_sync_scan_next(it, &e), AREDIS_ESERVER);
        cr_assert(strncmp(aredis_sync_scan_errmsg(it), "WRONGTYPE", 9) == 0,
                  "%s", aredis_sync_scan_errmsg(it));
        cr_assert_eq(aredis_sync_scan_next(it, &e), AREDIS_ESERVER, "sticky");
        aredis_sync_scan_free(it);

        /* Freed before the end: nothing leaks (ASan checks). */
        it = aredis_sync_scan_new(
            s, &(aredis_scan_opts){.kind = AREDIS_SCAN_HASH, .key = h}, &st);
        cr_assert_eq(aredis_sync_scan_next(it, &e), 1);
        aredis_sync_scan_free(it);
        aredis_sync_scan_free(NULL);

        aredis_reply_free(aredis_sync_command(s, "DEL %s %s %s", h, z, str));
        aredis_sync_free(s);
    }
}
