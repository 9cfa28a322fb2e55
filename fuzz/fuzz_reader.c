/* libFuzzer target for the RESP reader.
 *
 * The input is parsed twice: once fed whole and once in chunks whose sizes
 * come from the input itself; both runs must give the same replies and the
 * same error. Each reply is then copied with aredis_reply_dup(), encoded
 * back to RESP3 and parsed again (a round trip that must reproduce it), and
 * replies that are arrays of bulk strings also go through the command
 * writer and back. Any difference aborts. Small limits make the limit
 * checks reachable. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aredis/error.h"
#include "aredis/resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const aredis_reader_limits limits = {
    .max_depth = 16,
    .max_bulk_len = 4096,
    .max_elements = 256,
    .max_buffer = 64 * 1024,
};

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                  \
            abort();                                                         \
        }                                                                    \
    } while (0)

/* A growing byte string. */
typedef struct out {
    char *p;
    size_t len, cap;
} out;

static void put(out *o, const void *s, size_t n)
{
    if (o->len + n > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap < o->len + n)
            cap *= 2;
        o->p = realloc(o->p, cap);
        CHECK(o->p != NULL);
        o->cap = cap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

/* A type byte followed by a decimal and CRLF. */
static void put_header(out *o, char type, long long v)
{
    char tmp[64];
    int n = snprintf(tmp, sizeof tmp, "%c%lld\r\n", type, v);
    put(o, tmp, (size_t)n);
}

static int is_agg(int type)
{
    return type == AREDIS_REPLY_ARRAY || type == AREDIS_REPLY_MAP ||
           type == AREDIS_REPLY_SET || type == AREDIS_REPLY_PUSH ||
           type == AREDIS_REPLY_ATTR;
}

/* Encode a reply as RESP3 (recursion is fine: depth <= limits.max_depth). */
static void encode(out *o, const aredis_reply *r)
{
    if (r->attrs)
        encode(o, r->attrs);
    switch (r->type) {
    case AREDIS_REPLY_STATUS:
        put(o, "+", 1);
        put(o, r->str, r->len);
        put(o, "\r\n", 2);
        break;
    case AREDIS_REPLY_ERROR:
        put_header(o, '!', (long long)r->len);
        put(o, r->str, r->len);
        put(o, "\r\n", 2);
        break;
    case AREDIS_REPLY_STRING:
        put_header(o, '$', (long long)r->len);
        put(o, r->str, r->len);
        put(o, "\r\n", 2);
        break;
    case AREDIS_REPLY_VERB:
        put_header(o, '=', (long long)r->len + 4);
        put(o, r->vformat, 3);
        put(o, ":", 1);
        put(o, r->str, r->len);
        put(o, "\r\n", 2);
        break;
    case AREDIS_REPLY_INTEGER:
        put_header(o, ':', r->integer);
        break;
    case AREDIS_REPLY_NIL:
        put(o, "_\r\n", 3);
        break;
    case AREDIS_REPLY_BOOL:
        put(o, r->integer ? "#t\r\n" : "#f\r\n", 4);
        break;
    case AREDIS_REPLY_DOUBLE:
        /* The server's own text, which parsed once already. */
        put(o, ",", 1);
        put(o, r->str, r->len);
        put(o, "\r\n", 2);
        break;
    case AREDIS_REPLY_BIGNUM:
        put(o, "(", 1);
        put(o, r->str, r->len);
        put(o, "\r\n", 2);
        break;
    default: {
        char t = r->type == AREDIS_REPLY_ARRAY  ? '*'
                 : r->type == AREDIS_REPLY_MAP  ? '%'
                 : r->type == AREDIS_REPLY_SET  ? '~'
                 : r->type == AREDIS_REPLY_PUSH ? '>'
                                                : '|';
        size_t n = (t == '%' || t == '|') ? r->len / 2 : r->len;
        put_header(o, t, (long long)n);
        for (size_t i = 0; i < r->len; i++)
            encode(o, &r->element[i]);
        break;
    }
    }
}

/* Structural equality, attributes included. */
static int same(const aredis_reply *a, const aredis_reply *b)
{
    if (a->type != b->type || a->code != b->code || a->len != b->len)
        return 0;
    if ((a->attrs == NULL) != (b->attrs == NULL))
        return 0;
    if (a->attrs && !same(a->attrs, b->attrs))
        return 0;
    switch (a->type) {
    case AREDIS_REPLY_INTEGER:
    case AREDIS_REPLY_BOOL:
        return a->integer == b->integer;
    case AREDIS_REPLY_NIL:
        return 1;
    case AREDIS_REPLY_DOUBLE:
        if (memcmp(&a->dval, &b->dval, sizeof a->dval) != 0 &&
            !(a->dval != a->dval && b->dval != b->dval))
            return 0;
        return memcmp(a->str, b->str, a->len) == 0;
    case AREDIS_REPLY_VERB:
        if (memcmp(a->vformat, b->vformat, 4) != 0)
            return 0;
        return memcmp(a->str, b->str, a->len) == 0;
    default:
        if (is_agg(a->type)) {
            for (size_t i = 0; i < a->len; i++)
                if (!same(&a->element[i], &b->element[i]))
                    return 0;
            return 1;
        }
        CHECK(a->str[a->len] == '\0' && b->str[b->len] == '\0');
        return memcmp(a->str, b->str, a->len) == 0;
    }
}

static void round_trip(const aredis_reply *r)
{
    aredis_reply *copy = aredis_reply_dup(r);
    CHECK(copy != NULL);
    CHECK(same(r, copy));

    out o = {0};
    encode(&o, r);
    aredis_reader *rd = aredis_reader_new(NULL);
    CHECK(rd != NULL);
    CHECK(aredis_reader_feed(rd, o.p, o.len) == 0);
    const aredis_reply *again;
    CHECK(aredis_reader_get_reply(rd, &again) == 1);
    CHECK(same(copy, again));
    CHECK(aredis_reader_buffered(rd) == 0);

    /* Arrays of bulk strings are commands: the writer must agree. */
    int strings =
        r->type == AREDIS_REPLY_ARRAY && r->len > 0 && r->attrs == NULL;
    for (size_t i = 0; strings && i < r->len; i++)
        strings = r->element[i].type == AREDIS_REPLY_STRING &&
                  r->element[i].attrs == NULL;
    if (strings) {
        const char **argv = malloc(r->len * sizeof *argv);
        size_t *lens = malloc(r->len * sizeof *lens);
        CHECK(argv && lens);
        for (size_t i = 0; i < r->len; i++) {
            argv[i] = r->element[i].str;
            lens[i] = r->element[i].len;
        }
        aredis_buf b;
        aredis_buf_init(&b);
        CHECK(aredis_write_argv(&b, (int)r->len, argv, lens) == 0);
        CHECK(aredis_reader_feed(rd, b.data, b.len) == 0);
        CHECK(aredis_reader_get_reply(rd, &again) == 1);
        CHECK(same(copy, again));
        aredis_buf_cleanup(&b);
        free(argv);
        free(lens);
    }
    aredis_reader_free(rd);
    aredis_reply_free(copy);
    free(o.p);
}

/* Parse data[0..size) fed in chunks; record each reply's encoding in `log`.
 * step == 0 feeds it whole. Returns the final status. */
static int run(const uint8_t *data, size_t size, const uint8_t *steps,
               size_t nsteps, out *log, int check)
{
    aredis_reader *rd = aredis_reader_new(&limits);
    CHECK(rd != NULL);
    size_t at = 0, k = 0;
    int e = 0;
    while (at < size && e >= 0) {
        size_t n = nsteps ? 1 + (size_t)(steps[k++ % nsteps] % 97) : size;
        if (n > size - at)
            n = size - at;
        if (k % 3 == 0) {
            size_t avail;
            char *w = aredis_reader_prepare(rd, n, &avail);
            if (w == NULL) {
                e = aredis_reader_error(rd);
                CHECK(e < 0);
                break;
            }
            CHECK(avail >= n);
            memcpy(w, data + at, n);
            CHECK(aredis_reader_commit(rd, n) == 0);
        } else {
            e = aredis_reader_feed(rd, (const char *)data + at, n);
            if (e < 0)
                break;
        }
        at += n;
        const aredis_reply *r;
        while ((e = aredis_reader_get_reply(rd, &r)) == 1) {
            encode(log, r);
            put(log, "\n", 1);
            if (check)
                round_trip(r);
        }
    }
    if (e < 0)
        CHECK(aredis_reader_errstr(rd)[0] != '\0');
    aredis_reader_free(rd);
    return e < 0 ? e : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t nsteps = data[0] % 8;
    if (nsteps + 1 > size)
        return 0;
    const uint8_t *steps = data + 1;
    data += nsteps + 1;
    size -= nsteps + 1;

    out whole = {0}, chunked = {0};
    int e1 = run(data, size, NULL, 0, &whole, 1);
    int e2 = run(data, size, steps, nsteps ? nsteps : 1, &chunked, 0);
    /* Limit errors on the buffer may legitimately differ (prepare asks
     * for room differently); everything else must match exactly. */
    if (e1 != AREDIS_ETOOBIG && e2 != AREDIS_ETOOBIG) {
        CHECK(e1 == e2);
        CHECK(whole.len == chunked.len);
        CHECK(whole.len == 0 || memcmp(whole.p, chunked.p, whole.len) == 0);
    }
    free(whole.p);
    free(chunked.p);
    return 0;
}
