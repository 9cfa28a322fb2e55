/* libFuzzer target for the RESP reader.
 *
 * The input is parsed twice: once fed whole and once in chunks whose sizes
 * come from the input itself; both runs must give the same replies and the
 * same error. Each reply is then copied with aredis_reply_dup(), encoded
 * back to RESP3 and parsed again (a round trip that must reproduce it), and
 * replies that are arrays of bulk strings also go through the command
 * writer and back. Small limits make the limit checks reachable.
 *
 * Three differential oracles compare the reader with code that shares
 * nothing with it:
 *   - hiredis (Debian's libhiredis 0.14.1 reader) on the RESP2 subset: a
 *     reply one accepts and the other refuses, or that they parse
 *     differently, is a finding;
 *   - the RESP3 encoder below, on every reply: the bytes the reader
 *     consumed for it must be exactly the encoding of the tree it returned
 *     (so a build pass that loses step with the scan is caught), doubles
 *     must match an independent grammar and strtod;
 *   - the same encoder driven by the input as a recipe: it writes a valid
 *     RESP3 reply that the reader must accept and rebuild exactly (so
 *     valid input the reader refuses is caught), and hiredis too when the
 *     recipe stayed within RESP2.
 * The deliberate differences, also listed in docs/internals/reader.md, are
 * the only ones forgiven; see deliberate_* below. Any other difference
 * aborts. */
#include <hiredis/hiredis.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* Encode one node as RESP3: scalars whole, aggregates their header only.
 * A reply has more than one spelling in two places only: an error is
 * "-text" or "!len text", a null is "_", "$-1" or "*-1". `form` picks
 * one ('-', '!', '_', '$', '*'); 0 takes the first. */
static void encode_one(out *o, const aredis_reply *r, char form)
{
    switch (r->type) {
    case AREDIS_REPLY_STATUS:
        put(o, "+", 1);
        put(o, r->str, r->len);
        put(o, "\r\n", 2);
        break;
    case AREDIS_REPLY_ERROR:
        if (form == '!') {
            put_header(o, '!', (long long)r->len);
        } else {
            put(o, "-", 1);
        }
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
        if (form == '$' || form == '*') {
            put(o, &form, 1);
            put(o, "-1\r\n", 4);
        } else {
            put(o, "_\r\n", 3);
        }
        break;
    case AREDIS_REPLY_BOOL:
        put(o, r->integer ? "#t\r\n" : "#f\r\n", 4);
        break;
    case AREDIS_REPLY_DOUBLE:
        /* The server's own text; checked apart (double_text_ok). */
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
        break;
    }
    }
}

/* Encode a reply as RESP3, errors as bulk errors (the binary-safe form).
 * Recursion is fine: depth <= limits.max_depth. */
static void encode(out *o, const aredis_reply *r)
{
    if (r->attrs)
        encode(o, r->attrs);
    encode_one(o, r, r->type == AREDIS_REPLY_ERROR ? '!' : 0);
    if (is_agg(r->type))
        for (size_t i = 0; i < r->len; i++)
            encode(o, &r->element[i]);
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

/* A difference no deliberate_* function forgives: show it and abort. */
static void finding(const char *what, const char *bytes, size_t n,
                    const char *detail)
{
    fprintf(stderr, "finding: %s%s%s\ninput (%zu bytes): \"", what,
            detail ? ": " : "", detail ? detail : "", n);
    for (size_t i = 0; i < n && i < 512; i++) {
        unsigned char c = (unsigned char)bytes[i];
        if (c == '\r')
            fputs("\\r", stderr);
        else if (c == '\n')
            fputs("\\n", stderr);
        else if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
            fprintf(stderr, "\\x%02x", c);
        else
            fputc(c, stderr);
    }
    fputs("\"\n", stderr);
    abort();
}

/* ------------------------------------------------------------------------
 * Oracle 2: the bytes of a reply are the RESP3 encoding of its tree.
 * ------------------------------------------------------------------------ */

static int has_line_break(const char *s, size_t n)
{
    return memchr(s, '\r', n) != NULL || memchr(s, '\n', n) != NULL;
}

static int is_digit(char c)
{
    return (unsigned)(c - '0') <= 9;
}

/* The double grammar the reader documents, written apart from it: inf,
 * -inf, nan or -nan in any case; or an optional sign, digits with an
 * optional point (at least one digit on either side) and an optional
 * exponent. The value must be what strtod makes of the text, bit for bit. */
static int double_text_ok(const char *s, size_t n, double v)
{
    char tmp[400];
    if (n == 0 || n >= sizeof tmp)
        return 0;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    size_t i = tmp[0] == '-' || tmp[0] == '+';
    if (n - i == 3 && strcasecmp(tmp + i, "inf") == 0)
        return tmp[0] != '+' && v == (tmp[0] == '-' ? -INFINITY : INFINITY);
    if (n - i == 3 && strcasecmp(tmp + i, "nan") == 0)
        return tmp[0] != '+' && isnan(v);
    size_t digits = 0;
    for (; is_digit(tmp[i]); i++)
        digits++;
    if (tmp[i] == '.')
        for (i++; is_digit(tmp[i]); i++)
            digits++;
    if (digits == 0)
        return 0;
    if (tmp[i] == 'e' || tmp[i] == 'E') {
        i++;
        i += tmp[i] == '+' || tmp[i] == '-';
        if (!is_digit(tmp[i]))
            return 0;
        while (is_digit(tmp[i]))
            i++;
    }
    if (i != n)
        return 0;
    double want = strtod(tmp, NULL);
    return memcmp(&want, &v, sizeof v) == 0;
}

static int bignum_text_ok(const char *s, size_t n)
{
    size_t i = n > 0 && s[0] == '-';
    if (i == n)
        return 0;
    for (; i < n; i++)
        if (!is_digit(s[i]))
            return 0;
    return 1;
}

/* Match reply r (attributes first, then the node, then its children)
 * against the bytes at *p, advancing *p. Where RESP3 has two spellings of
 * a node, the byte at *p picks one. 0 on the first difference. */
static int span_match(const aredis_reply *r, const char **p, const char *end)
{
    if (r->attrs != NULL && !span_match(r->attrs, p, end))
        return 0;
    char form = *p < end ? **p : 0;
    out o = {0};
    encode_one(&o, r, form);
    int ok = (size_t)(end - *p) >= o.len && memcmp(*p, o.p, o.len) == 0;
    free(o.p);
    if (!ok)
        return 0;
    *p += o.len;
    switch (r->type) {
    case AREDIS_REPLY_STATUS:
        return !has_line_break(r->str, r->len);
    case AREDIS_REPLY_ERROR:
        return form == '!' || !has_line_break(r->str, r->len);
    case AREDIS_REPLY_DOUBLE:
        return double_text_ok(r->str, r->len, r->dval);
    case AREDIS_REPLY_BIGNUM:
        return bignum_text_ok(r->str, r->len);
    default:
        break;
    }
    if (is_agg(r->type))
        for (size_t i = 0; i < r->len; i++)
            if (!span_match(&r->element[i], p, end))
                return 0;
    return 1;
}

/* ------------------------------------------------------------------------
 * Oracle 1: hiredis 0.14.1 on the RESP2 subset.
 * ------------------------------------------------------------------------ */

/* hiredis builds its replies through these, not its own: its own would
 * calloc() whatever element count a header declares (*1333333333 is 10 GB),
 * the very thing aredis refuses to do. A count over our max_elements makes
 * hiredis fail with "Out of memory"; aredis has refused with ETOOBIG by
 * then. */
static redisReply *h_new(const redisReadTask *task, int type)
{
    redisReply *r = calloc(1, sizeof *r);
    CHECK(r != NULL);
    r->type = type;
    if (task->parent != NULL) {
        redisReply *parent = task->parent->obj;
        parent->element[task->idx] = r;
    }
    return r;
}

static void *h_string(const redisReadTask *task, char *s, size_t n)
{
    redisReply *r = h_new(task, task->type);
    r->str = malloc(n + 1);
    CHECK(r->str != NULL);
    memcpy(r->str, s, n);
    r->str[n] = '\0';
    r->len = n;
    return r;
}

static void *h_array(const redisReadTask *task, int n)
{
    if (n < 0 || (size_t)n > limits.max_elements)
        return NULL;
    redisReply *r = h_new(task, REDIS_REPLY_ARRAY);
    if (n > 0) {
        r->element = calloc((size_t)n, sizeof *r->element);
        CHECK(r->element != NULL);
    }
    r->elements = (size_t)n;
    return r;
}

static void *h_integer(const redisReadTask *task, long long v)
{
    redisReply *r = h_new(task, REDIS_REPLY_INTEGER);
    r->integer = v;
    return r;
}

static void *h_nil(const redisReadTask *task)
{
    return h_new(task, REDIS_REPLY_NIL);
}

static void h_free(void *p)
{
    redisReply *r = p;
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->elements; i++)
        h_free(r->element[i]);
    free(r->element);
    free(r->str);
    free(r);
}

static redisReplyObjectFunctions h_functions = {h_string, h_array, h_integer,
                                                h_nil, h_free};

static redisReader *h_reader(void)
{
    redisReader *hr = redisReaderCreateWithFunctions(&h_functions);
    CHECK(hr != NULL);
    return hr;
}

static int same_hiredis(const aredis_reply *a, const redisReply *h)
{
    if (a->attrs != NULL)
        return 0;
    switch (h->type) {
    case REDIS_REPLY_STRING:
        if (a->type != AREDIS_REPLY_STRING)
            return 0;
        break;
    case REDIS_REPLY_STATUS:
        if (a->type != AREDIS_REPLY_STATUS)
            return 0;
        break;
    case REDIS_REPLY_ERROR:
        if (a->type != AREDIS_REPLY_ERROR)
            return 0;
        break;
    case REDIS_REPLY_INTEGER:
        return a->type == AREDIS_REPLY_INTEGER && a->integer == h->integer;
    case REDIS_REPLY_NIL:
        return a->type == AREDIS_REPLY_NIL;
    case REDIS_REPLY_ARRAY:
        if (a->type != AREDIS_REPLY_ARRAY || a->len != h->elements)
            return 0;
        for (size_t i = 0; i < h->elements; i++)
            if (!same_hiredis(&a->element[i], h->element[i]))
                return 0;
        return 1;
    default:
        return 0;
    }
    return a->len == h->len && memcmp(a->str, h->str, h->len) == 0;
}

/* 1 when the bytes at *p are exactly the RESP2 encoding of hiredis's
 * reply (a null as "$-1" or "*-1"); advances *p. */
static int canonical2(const redisReply *h, const char **p, const char *end)
{
    out o = {0};
    switch (h->type) {
    case REDIS_REPLY_STRING:
        put_header(&o, '$', (long long)h->len);
        put(&o, h->str, h->len);
        put(&o, "\r\n", 2);
        break;
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        put(&o, h->type == REDIS_REPLY_STATUS ? "+" : "-", 1);
        put(&o, h->str, h->len);
        put(&o, "\r\n", 2);
        break;
    case REDIS_REPLY_INTEGER:
        put_header(&o, ':', h->integer);
        break;
    case REDIS_REPLY_NIL:
        put(&o, *p < end && **p == '*' ? "*-1\r\n" : "$-1\r\n", 5);
        break;
    default:
        put_header(&o, '*', (long long)h->elements);
        break;
    }
    int ok = (size_t)(end - *p) >= o.len && memcmp(*p, o.p, o.len) == 0;
    free(o.p);
    if (!ok)
        return 0;
    *p += o.len;
    if (h->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < h->elements; i++)
            if (!canonical2(h->element[i], p, end))
                return 0;
    return 1;
}

/* A status or error line of the tree holds a CR or an LF. */
static int tree_has_line_break(const redisReply *h)
{
    if (h->type == REDIS_REPLY_STATUS || h->type == REDIS_REPLY_ERROR)
        return has_line_break(h->str, h->len);
    if (h->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < h->elements; i++)
            if (tree_has_line_break(h->element[i]))
                return 1;
    return 0;
}

/* We refused (code e) a reply that hiredis read as h from the bytes
 * [start, end). Forgiven: D1, our limits (ETOOBIG); D2, hiredis does not
 * read the two bytes after a bulk body, so the bytes are not the RESP2
 * spelling of its tree; D3, a status or error line holding CR or LF. */
static int deliberate_refusal(int e, const redisReply *h, const char *start,
                              const char *end)
{
    if (e == AREDIS_ETOOBIG || tree_has_line_break(h))
        return 1;
    const char *q = start;
    return !canonical2(h, &q, end) || q != end;
}

/* hiredis refused what we accepted or wait for. Forgiven: D4, a RESP3
 * type byte (not the RESP2 subset: oracle 2 covers the rest of the
 * stream); D1, nesting deeper than hiredis's 7 levels. */
static int deliberate_acceptance(const redisReader *hr)
{
    const char *q = strstr(hr->errstr, "got \"");
    if (q != NULL && q[5] != '\0' && q[6] == '"' &&
        strchr(",_#!=(%~>|", q[5]) != NULL)
        return 1;
    return strstr(hr->errstr, "depth > 7") != NULL;
}

/* Bytes that close whatever hiredis still waits for once we refused: end
 * the line, then enough items for the arrays our limits let open. */
enum { FILL_ITEMS = 16 * 256 };

static void oracle_hiredis(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    aredis_reader *rd = aredis_reader_new(&limits);
    redisReader *hr = h_reader();
    CHECK(rd != NULL);
    char *joined = NULL;
    if (aredis_reader_feed(rd, in, size) != 0)
        goto done; /* over max_buffer: D1 */
    CHECK(redisReaderFeed(hr, in, size) == REDIS_OK);
    size_t start = 0, fed = size;
    for (;;) {
        const aredis_reply *a = NULL;
        void *hv = NULL;
        int e = aredis_reader_get_reply(rd, &a);
        int eh = redisReaderGetReply(hr, &hv);
        redisReply *h = hv;
        if (e == 1 && h != NULL) {
            size_t to = size - aredis_reader_buffered(rd);
            if (to != fed - (hr->len - hr->pos) || !same_hiredis(a, h))
                finding("aredis and hiredis parse a reply differently",
                        in + start, size - start, NULL);
            h_free(h);
            start = to;
            continue;
        }
        if (e == 1 || (e == 0 && eh != REDIS_OK)) {
            if (eh == REDIS_OK || !deliberate_acceptance(hr))
                finding("aredis accepts what hiredis refuses or waits for",
                        in + start, size - start,
                        eh == REDIS_OK ? "hiredis waits" : hr->errstr);
            break;
        }
        if (e == 0) {
            if (h != NULL)
                finding("hiredis reads a reply aredis waits for", in + start,
                        size - start, NULL);
            break;
        }
        /* We refused. If hiredis waits, give it what would close the
         * reply and judge what it makes of it. */
        if (eh == REDIS_OK && h == NULL && e != AREDIS_ETOOBIG) {
            size_t fill = 2 + FILL_ITEMS * 4;
            joined = malloc(size + fill);
            CHECK(joined != NULL);
            memcpy(joined, in, size);
            memcpy(joined + size, "\r\n", 2);
            for (size_t i = 0; i < FILL_ITEMS; i++)
                memcpy(joined + size + 2 + i * 4, ":0\r\n", 4);
            CHECK(redisReaderFeed(hr, joined + size, fill) == REDIS_OK);
            in = joined;
            fed = size + fill;
            eh = redisReaderGetReply(hr, &hv);
            h = eh == REDIS_OK ? hv : NULL;
        }
        if (h != NULL) {
            const char *to = in + fed - (hr->len - hr->pos);
            if (!deliberate_refusal(e, h, in + start, to))
                finding("aredis refuses a reply hiredis reads", in + start,
                        (size_t)(to - (in + start)), aredis_reader_errstr(rd));
            h_free(h);
        }
        break;
    }
done:
    free(joined);
    redisReaderFree(hr);
    aredis_reader_free(rd);
}

/* ------------------------------------------------------------------------
 * Oracle 3: the encoder, driven by the input as a recipe, writes a valid
 * RESP3 reply; the reader must accept it and rebuild it exactly.
 * ------------------------------------------------------------------------ */

typedef struct recipe {
    const uint8_t *p, *end;
    size_t nodes;
    int resp2; /* only RESP2 types so far: hiredis must agree too */
} recipe;

static unsigned take(recipe *rc)
{
    return rc->p < rc->end ? *rc->p++ : 0;
}

/* n bytes of the recipe; in a line, CR and LF become other bytes. */
static void gen_bytes(out *o, recipe *rc, size_t n, int line)
{
    for (size_t i = 0; i < n; i++) {
        char c = (char)take(rc);
        if (line && (c == '\r' || c == '\n'))
            c = (char)(c + 1);
        put(o, &c, 1);
    }
}

static void gen_digits(out *o, recipe *rc, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = (char)('0' + take(rc) % 10);
        put(o, &c, 1);
    }
}

static void gen_double(out *o, recipe *rc)
{
    static const char *const special[] = {"inf",  "-inf", "nan",
                                          "-nan", "INF",  "NaN"};
    char tmp[64];
    unsigned k = take(rc) % 4;
    put(o, ",", 1);
    if (k == 0) {
        uint64_t bits = 0;
        for (int i = 0; i < 8; i++)
            bits = bits << 8 | take(rc);
        double d;
        memcpy(&d, &bits, sizeof d);
        int n = snprintf(tmp, sizeof tmp, "%.17g", d);
        put(o, tmp, (size_t)n);
    } else if (k == 1) {
        const char *w = special[take(rc) % 6];
        put(o, w, strlen(w));
    } else {
        unsigned sign = take(rc) % 3;
        if (sign != 0)
            put(o, sign == 1 ? "-" : "+", 1);
        size_t ip = take(rc) % 12, fp = take(rc) % 12;
        int point = take(rc) & 1;
        if (ip + fp == 0 || !point)
            ip++;
        gen_digits(o, rc, ip);
        if (point) {
            put(o, ".", 1);
            gen_digits(o, rc, fp);
        }
        if (take(rc) & 1) {
            put(o, take(rc) & 1 ? "e" : "E", 1);
            unsigned es = take(rc) % 3;
            if (es != 0)
                put(o, es == 1 ? "-" : "+", 1);
            gen_digits(o, rc, 1 + take(rc) % 3);
        }
    }
    put(o, "\r\n", 2);
}

/* One item (and its children) at nesting depth `depth`. */
static void gen(out *o, recipe *rc, int depth, int no_attr)
{
    unsigned k = take(rc) % 16;
    rc->nodes++;
    if (k >= 11 && (depth >= 6 || rc->nodes > 300))
        k = 10; /* a leaf: a RESP2 null */
    if (k == 15 && no_attr)
        k = 11;
    if (k != 0 && k != 1 && k != 3 && k != 5 && k != 10 && k != 11)
        rc->resp2 = 0;
    switch (k) {
    case 0:
    case 1:
        put(o, k == 0 ? "+" : "-", 1);
        gen_bytes(o, rc, take(rc) % 24, 1);
        put(o, "\r\n", 2);
        break;
    case 2:
    case 3: {
        size_t n = take(rc) % 40;
        put_header(o, k == 2 ? '!' : '$', (long long)n);
        gen_bytes(o, rc, n, 0);
        put(o, "\r\n", 2);
        break;
    }
    case 4: {
        size_t n = take(rc) % 32;
        put_header(o, '=', (long long)n + 4);
        gen_bytes(o, rc, 3, 0);
        put(o, ":", 1);
        gen_bytes(o, rc, n, 0);
        put(o, "\r\n", 2);
        break;
    }
    case 5: {
        uint64_t v = 0;
        for (int i = 0; i < 8; i++)
            v = v << 8 | take(rc);
        put_header(o, ':', (long long)v);
        break;
    }
    case 6:
        gen_double(o, rc);
        break;
    case 7:
        put(o, "(", 1);
        if (take(rc) & 1)
            put(o, "-", 1);
        gen_digits(o, rc, 1 + take(rc) % 40);
        put(o, "\r\n", 2);
        break;
    case 8:
        put(o, take(rc) & 1 ? "#t\r\n" : "#f\r\n", 4);
        break;
    case 9:
        put(o, "_\r\n", 3);
        break;
    case 10:
        put(o, take(rc) & 1 ? "$-1\r\n" : "*-1\r\n", 5);
        break;
    case 15: {
        size_t n = take(rc) % 3;
        put_header(o, '|', (long long)n);
        for (size_t i = 0; i < 2 * n; i++)
            gen(o, rc, depth + 1, 0);
        gen(o, rc, depth, 1);
        break;
    }
    default: {
        char t = "*%~>"[k - 11];
        size_t n = take(rc) % 6;
        put_header(o, t, (long long)n);
        for (size_t i = 0; i < (t == '%' ? 2 * n : n); i++)
            gen(o, rc, depth + 1, 0);
        break;
    }
    }
}

static void oracle_encoder(const uint8_t *data, size_t size,
                           const uint8_t *steps, size_t nsteps)
{
    recipe rc = {data, data + size, 0, 1};
    out o = {0};
    gen(&o, &rc, 0, 0);
    aredis_reader *rd = aredis_reader_new(&limits);
    CHECK(rd != NULL);
    const aredis_reply *r = NULL;
    int e = 0;
    for (size_t at = 0, k = 0; at < o.len && e == 0;) {
        size_t n = nsteps ? 1 + (size_t)(steps[k++ % nsteps] % 97) : o.len;
        if (n > o.len - at)
            n = o.len - at;
        CHECK(aredis_reader_feed(rd, o.p + at, n) == 0);
        at += n;
        e = aredis_reader_get_reply(rd, &r);
        if (e == 1 && at != o.len)
            finding("the reader ends a reply early", o.p, o.len, NULL);
    }
    if (e != 1)
        finding("the reader refuses valid RESP3", o.p, o.len,
                e < 0 ? aredis_reader_errstr(rd) : "it waits for more");
    const char *q = o.p;
    if (!span_match(r, &q, o.p + o.len) || q != o.p + o.len)
        finding("the reader rebuilds valid RESP3 wrongly", o.p, o.len, NULL);
    if (rc.resp2) {
        redisReader *hr = h_reader();
        CHECK(redisReaderFeed(hr, o.p, o.len) == REDIS_OK);
        void *hv = NULL;
        if (redisReaderGetReply(hr, &hv) != REDIS_OK || hv == NULL ||
            hr->pos != hr->len || !same_hiredis(r, hv))
            finding("aredis and hiredis differ on valid RESP2", o.p, o.len,
                    hr->errstr);
        h_free(hv);
        redisReaderFree(hr);
    }
    aredis_reader_free(rd);
    free(o.p);
}

/* Parse data[0..size) fed in chunks; record each reply's encoding in `log`.
 * step == 0 feeds it whole. Returns the final status. */
static int run(const uint8_t *data, size_t size, const uint8_t *steps,
               size_t nsteps, out *log, int check)
{
    aredis_reader *rd = aredis_reader_new(&limits);
    CHECK(rd != NULL);
    size_t at = 0, k = 0, from = 0;
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
            /* Oracle 2: the reply's own bytes spell its tree. */
            size_t to = at - aredis_reader_buffered(rd);
            const char *q = (const char *)data + from;
            if (!span_match(r, &q, (const char *)data + to) ||
                q != (const char *)data + to)
                finding("the reply's bytes are not the encoding of its tree",
                        (const char *)data + from, to - from, NULL);
            from = to;
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
    oracle_hiredis(data, size);
    oracle_encoder(data, size, steps, nsteps);
    return 0;
}
