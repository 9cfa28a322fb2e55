/* RESP2/RESP3 reader (resp layer): bytes in, replies out.
 *
 * Pure code: no sockets, no clock, no threads; memory only through the
 * allocator hooks. A top-level reply is parsed in two passes. The scan pass
 * validates the bytes, is resumable at any split of the input and counts
 * the nodes the reply needs. The build pass then fills exactly that many
 * nodes in one arena, with strings pointing into the reader's own buffer
 * (NUL-terminated in place over the CR), so a reply costs no allocation at
 * all in the steady state. Sizes declared by the server are checked against
 * the limits and never used to allocate: nodes are counted from bytes that
 * really arrived. Wire format: RESP3.md in redis/redis-specifications. */
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aredis/error.h"
#include "resp/resp.h"
#include "resp/resp_int.h"
#include "util/alloc.h"
#include "util/msg.h"

#define DEFAULT_MAX_DEPTH 64
#define DEFAULT_MAX_BULK ((size_t)512 * 1024 * 1024)
#define DEFAULT_MAX_ELEMENTS ((size_t)1 << 28)
#define DEFAULT_MAX_BUFFER (((size_t)1 << 30) + (size_t)64 * 1024)
/* Reads start at READ_MIN bytes and double while they fill what they were
 * offered, up to READ_CHUNK: an idle connection holds a small buffer, a
 * busy one reads in large chunks. */
#define READ_MIN ((size_t)512)
#define READ_CHUNK ((size_t)16 * 1024)
#define INITIAL_ARENA 4
/* Past these sizes an idle buffer or arena is given back, so one huge reply
 * does not pin its memory for the life of the connection. */
#define KEEP_BUF ((size_t)1024 * 1024)
#define KEEP_ARENA ((size_t)64 * 1024)
/* A textual double longer than this is not something Redis sends. */
#define MAX_DOUBLE_TEXT 320

/* scan() results besides 0 (need more) and errors. */
#define SCAN_COMPLETE 1 /* the reply needs the build pass */
#define SCAN_BUILT 2    /* a scalar root, already filled in arena[0] */

static int fail(aredis_reader *rd, int code, const char *fmt, ...)
    AREDIS_PRINTF(3, 4);

static int fail(aredis_reader *rd, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    aredis__vmsgf(rd->errstr, sizeof rd->errstr, fmt, ap);
    va_end(ap);
    rd->err = code;
    return code;
}

/* ------------------------------------------------------------------------
 * Number parsing. The scan pass validates (read_num, parse_double); the
 * build pass re-reads bytes already validated with the trusting forms.
 * ------------------------------------------------------------------------ */

/* Trusting decimal read up to the CR; used on validated bytes. */
static size_t fast_len(const char **pp)
{
    const char *p = *pp;
    size_t v = 0;
    while (*p != '\r')
        v = v * 10 + (size_t)(*p++ - '0');
    *pp = p;
    return v;
}

/* The two bytes at p are CRLF, compared in one load. */
static inline int is_crlf(const char *p)
{
    uint16_t w, crlf;
    memcpy(&w, p, 2);
    memcpy(&crlf, "\r\n", 2);
    return w == crlf;
}

/* Past the CRLF of a validated line. */
static char *past_line(char *p)
{
    while (*p != '\r')
        p++;
    return p + 2;
}

static long long fast_ll(const char *p)
{
    int neg = *p == '-';
    p += neg;
    uint64_t v = 0;
    while (*p != '\r')
        v = v * 10 + (uint64_t)(*p++ - '0');
    /* Negate in unsigned arithmetic: -LLONG_MIN is not representable. */
    return neg ? (long long)(0 - v) : (long long)v;
}

static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static locale_t c_locale;

static void make_c_locale(void)
{
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

/* strtod in the C locale whatever setlocale() the program made. */
static double strtod_c(const char *s, char **end)
{
    pthread_once(&c_locale_once, make_c_locale);
    if (c_locale != (locale_t)0)
        return strtod_l(s, end, c_locale);
    return strtod(s, end);
}

static const double pow10_exact[] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* A RESP3 double (section "Double type"): inf, -inf, nan, or a decimal
 * with optional fraction and exponent. Short decimals are converted
 * exactly with one multiplication or division (both operands are exact
 * doubles, so the result is correctly rounded); the rest go to strtod in
 * the C locale. Declared in resp/resp.h for the client's reply reshaping. */
/* Digits of a decimal, collected for the exact fast path. */
typedef struct decimal {
    uint64_t mant;
    int digits; /* significant digits kept; 99: too many for the fast path */
    int frac;   /* digits after the point */
} decimal;

static void take_digit(decimal *d, char c)
{
    if (d->digits < 19 && (d->mant != 0 || c != '0')) {
        d->mant = d->mant * 10 + (uint64_t)(c - '0');
        d->digits++;
    } else if (d->digits >= 19) {
        d->digits = 99;
    }
}

/* inf, -inf, nan (any case). Returns 1 when s[i..n) is one of them. */
static int parse_special(const char *w, size_t len, int neg, double *out)
{
    if (len != 3)
        return 0;
    if ((w[0] | 0x20) == 'i' && (w[1] | 0x20) == 'n' && (w[2] | 0x20) == 'f') {
        *out = neg ? -INFINITY : INFINITY;
        return 1;
    }
    if ((w[0] | 0x20) == 'n' && (w[1] | 0x20) == 'a' && (w[2] | 0x20) == 'n') {
        *out = NAN;
        return 1;
    }
    return 0;
}

/* The exponent after 'e': optional sign, at least one digit, to the end.
 * Returns 0 or -1; huge exponents saturate (the slow path handles them). */
static int parse_exponent(const char *s, size_t i, size_t n, long *exp10)
{
    int eneg = 0;
    if (i < n && (s[i] == '-' || s[i] == '+'))
        eneg = s[i++] == '-';
    if (i == n)
        return -1;
    long e = 0;
    for (; i < n; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (d > 9)
            return -1;
        if (e < 100000)
            e = e * 10 + (long)d;
    }
    *exp10 = eneg ? -e : e;
    return 0;
}

int aredis__parse_double(const char *s, size_t n, double *out)
{
    if (n == 0 || n > MAX_DOUBLE_TEXT)
        return -1;
    size_t i = 0;
    int neg = s[0] == '-';
    if (s[0] == '-' || s[0] == '+')
        i = 1;
    /* inf, -inf and nan take no '+' (RESP3 "Double type"); -nan is read
     * as nan, as some servers have printed it. */
    if (s[0] != '+' && parse_special(s + i, n - i, neg, out))
        return 0;
    decimal d = {0, 0, 0};
    int seen_digit = 0;
    for (; i < n && (unsigned)(s[i] - '0') <= 9; i++, seen_digit = 1)
        take_digit(&d, s[i]);
    if (i < n && s[i] == '.')
        for (i++; i < n && (unsigned)(s[i] - '0') <= 9; i++, seen_digit = 1) {
            take_digit(&d, s[i]);
            d.frac++;
        }
    if (!seen_digit)
        return -1;
    long exp10 = 0;
    if (i < n && (s[i] | 0x20) == 'e') {
        if (parse_exponent(s, i + 1, n, &exp10) != 0)
            return -1;
        i = n;
    }
    if (i != n)
        return -1;
    exp10 -= d.frac;
    if (d.digits <= 15 && exp10 >= -22 && exp10 <= 22) {
        double v = (double)d.mant;
        v = exp10 < 0 ? v / pow10_exact[-exp10] : v * pow10_exact[exp10];
        *out = neg ? -v : v;
        return 0;
    }
    char tmp[MAX_DOUBLE_TEXT + 1];
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    char *end;
    *out = strtod_c(tmp, &end);
    return end == tmp + n ? 0 : -1;
}

static int is_bignum(const char *s, size_t n)
{
    size_t i = n != 0 && s[0] == '-';
    if (i == n)
        return 0;
    for (; i < n; i++)
        if ((unsigned)(s[i] - '0') > 9)
            return 0;
    return 1;
}

/* ------------------------------------------------------------------------
 * Filling nodes. Line and bulk bodies are NUL-terminated in place: the
 * byte overwritten is the CR that the scan pass already checked.
 * ------------------------------------------------------------------------ */

static void fill_line(aredis_reply *r, char type, char *line, size_t len)
{
    r->code = 0;
    r->attrs = NULL;
    r->vformat[0] = '\0';
    r->str = line;
    r->len = len;
    r->integer = 0;
    switch (type) {
    case '+':
        r->type = AREDIS_REPLY_STATUS;
        break;
    case '-':
        r->type = AREDIS_REPLY_ERROR;
        r->code = AREDIS_ESERVER;
        break;
    case ':':
        r->type = AREDIS_REPLY_INTEGER;
        r->integer = fast_ll(line); /* stops at the CR, still in place */
        r->str = NULL;
        r->len = 0;
        break;
    case ',':
        r->type = AREDIS_REPLY_DOUBLE;
        (void)aredis__parse_double(line, len, &r->dval);
        break;
    case '(':
        r->type = AREDIS_REPLY_BIGNUM;
        break;
    case '#':
        r->type = AREDIS_REPLY_BOOL;
        r->integer = line[0] == 't';
        r->str = NULL;
        r->len = 0;
        break;
    default: /* '_' */
        r->type = AREDIS_REPLY_NIL;
        r->str = NULL;
        r->len = 0;
        break;
    }
    line[len] = '\0';
}

static void fill_nil(aredis_reply *r)
{
    r->type = AREDIS_REPLY_NIL;
    r->code = 0;
    r->len = 0;
    r->str = NULL;
    r->integer = 0;
    r->attrs = NULL;
    r->vformat[0] = '\0';
}

static void fill_bulk(aredis_reply *r, char type, char *body, size_t len)
{
    body[len] = '\0';
    r->code = 0;
    r->attrs = NULL;
    r->integer = 0;
    r->vformat[0] = '\0';
    r->str = body;
    r->len = len;
    if (type == '$') {
        r->type = AREDIS_REPLY_STRING;
    } else if (type == '!') {
        r->type = AREDIS_REPLY_ERROR;
        r->code = AREDIS_ESERVER;
    } else { /* '=': "fmt:" then the text */
        r->type = AREDIS_REPLY_VERB;
        memcpy(r->vformat, body, 3);
        r->vformat[3] = '\0';
        r->str = body + 4;
        r->len = len - 4;
    }
}

static int agg_type(char t)
{
    switch (t) {
    case '*':
        return AREDIS_REPLY_ARRAY;
    case '%':
        return AREDIS_REPLY_MAP;
    case '~':
        return AREDIS_REPLY_SET;
    case '>':
        return AREDIS_REPLY_PUSH;
    default: /* '|' */
        return AREDIS_REPLY_ATTR;
    }
}

static void fill_agg(aredis_reply *r, char t, aredis_reply *children, size_t n)
{
    r->type = agg_type(t);
    r->code = 0;
    r->len = n;
    r->element = n ? children : NULL;
    r->integer = 0;
    r->attrs = NULL;
    r->vformat[0] = '\0';
}

/* ------------------------------------------------------------------------
 * Scan pass.
 * ------------------------------------------------------------------------ */

static int push_scan_frame(aredis_reader *rd, size_t items, int is_attr)
{
    if (rd->depth >= rd->lim.max_depth)
        return fail(rd, AREDIS_ETOOBIG,
                    "aggregates nested deeper than max_depth (%zu)",
                    rd->lim.max_depth);
    if (rd->depth == rd->stack_cap) {
        size_t cap = rd->stack_cap ? rd->stack_cap * 2 : 16;
        aredis__scan_frame *s = aredis__reallocarray(rd->stack, cap, sizeof *s);
        if (s == NULL)
            return AREDIS_ENOMEM;
        rd->stack = s;
        rd->stack_cap = cap;
    }
    rd->stack[rd->depth].remaining = items;
    rd->stack[rd->depth].is_attr = is_attr;
    rd->depth++;
    return 0;
}

/* Outcomes of read_num(). */
enum { NUM_OK, NUM_MORE, NUM_BAD, NUM_BIG, NUM_NOLF, NUM_ZERO };

/* Read the decimal that follows a type byte, up to its CRLF, in one loop
 * (no separate search for the CR). The number is at most 19 digits, so a
 * header cut short is cheap to read again when more bytes arrive. Only the
 * canonical form is a number: no leading zero, no "-0" (as hiredis reads
 * them), so every number has exactly one spelling and the build pass can
 * re-read it without doubt. */
static inline int read_num(const char *p, const char *end, int *neg,
                           uint64_t *out, const char **crp)
{
    *neg = 0;
    if (p < end && *p == '-') {
        *neg = 1;
        p++;
    }
    const char *start = p;
    if (p == end)
        return NUM_MORE;
    uint64_t v = (unsigned)(unsigned char)*p - '0';
    if (v > 9)
        return NUM_BAD;
    p++;
    if (v == 0) {
        /* A zero is the whole number, and never negative. */
        if (*neg || (p < end && (unsigned)(unsigned char)*p - '0' <= 9))
            return NUM_ZERO;
    } else {
        for (; p < end; p++) {
            unsigned d = (unsigned)(unsigned char)*p - '0';
            if (d > 9)
                break;
            if (p - start == 19)
                return NUM_BIG;
            v = v * 10 + d;
        }
    }
    if (p == end)
        return NUM_MORE;
    if (*p != '\r')
        return NUM_BAD;
    if (p + 1 == end)
        return NUM_MORE;
    if (p[1] != '\n')
        return NUM_NOLF;
    *out = v;
    *crp = p;
    return NUM_OK;
}

static void fill_int(aredis_reply *r, long long v)
{
    r->type = AREDIS_REPLY_INTEGER;
    r->code = 0;
    r->len = 0;
    r->str = NULL;
    r->integer = v;
    r->attrs = NULL;
    r->vformat[0] = '\0';
}

/* How much of a bad header an error message shows: up to the CR, at most
 * 24 bytes. */
static int shown(const char *p, const char *end)
{
    int n = 0;
    while (n < 24 && p + n < end && p[n] != '\r')
        n++;
    return n;
}

/* A complete item at the current level: close every aggregate it
 * completes. Returns 1 when the top-level reply is complete. */
static int item_done(aredis_reader *rd)
{
    for (;;) {
        if (rd->depth == 0)
            return 1;
        aredis__scan_frame *f = &rd->stack[rd->depth - 1];
        if (--f->remaining != 0)
            return 0;
        rd->depth--;
        if (f->is_attr) {
            /* An attribute does not count as an item of its parent: it
             * annotates the item that follows. */
            rd->attr_pending = 1;
            return 0;
        }
    }
}

/* What one header did, for scan(). Negative values are errors. */
enum {
    STEP_MORE,   /* cut short: wait for more bytes */
    STEP_SCALAR, /* a complete scalar inside an aggregate */
    STEP_BUILT,  /* a scalar root, filled in arena[0] */
    STEP_OPENED, /* an aggregate (or attribute) opened */
    STEP_EMPTY,  /* an empty aggregate: a complete item */
    STEP_ATTR0,  /* an empty attribute: the next item is annotated */
};

/* The length or count of a bulk or aggregate header is above its limit. */
static int too_big(aredis_reader *rd, char t, const char *h, const char *end)
{
    if (t == '$' || t == '!' || t == '=')
        return fail(rd, AREDIS_ETOOBIG,
                    "bulk length %.*s exceeds max_bulk_len (%zu)",
                    shown(h, end), h, rd->lim.max_bulk_len);
    return fail(rd, AREDIS_ETOOBIG,
                "aggregate of %.*s%s exceeds max_elements (%zu)", shown(h, end),
                h, t == '%' || t == '|' ? " pairs" : "", rd->lim.max_elements);
}

/* A bulk body of n bytes starting at *next: complete, CRLF-terminated,
 * and for '=' with a "fmt:" prefix: any three bytes, then ':' (RESP3
 * "Verbatim string"; the header already checked n >= 4). */
static int scan_bulk_body(aredis_reader *rd, char t, char **next,
                          const char *end, size_t n, int root)
{
    char *body = *next;
    if ((size_t)(end - body) < n + 2) {
        /* Wait for the body without reading the header again for every
         * byte that arrives. */
        rd->need = (size_t)(body - rd->buf) + n + 2;
        return STEP_MORE;
    }
    if (!is_crlf(body + n))
        return fail(rd, AREDIS_EPROTO, "bulk string not followed by CRLF");
    if (t == '=' && body[3] != ':')
        return fail(rd, AREDIS_EPROTO,
                    "verbatim string without its \"fmt:\" prefix");
    *next = body + n + 2;
    if (root) {
        fill_bulk(&rd->arena[0], t, body, n);
        return STEP_BUILT;
    }
    return STEP_SCALAR;
}

/* A header whose line is a number: integers, bulk lengths, aggregate
 * counts. *next is set past what was consumed. */
static int scan_numeric(aredis_reader *rd, char *p, const char *end, int root,
                        char **next)
{
    char t = *p;
    int neg;
    uint64_t v = 0;
    const char *cr = NULL;
    const char *h = p + 1;
    int r = read_num(h, end, &neg, &v, &cr);
    if (r == NUM_MORE)
        return STEP_MORE;
    if (r == NUM_NOLF)
        return fail(rd, AREDIS_EPROTO, "CR not followed by LF");
    if (r == NUM_ZERO)
        return fail(rd, AREDIS_EPROTO, "bad %s \"%.*s\": leading zero or -0",
                    t == ':'                           ? "integer"
                    : t == '$' || t == '!' || t == '=' ? "bulk length"
                                                       : "aggregate length",
                    shown(h, end), h);
    *next = r == NUM_OK ? (char *)cr + 2 : p;
    if (t == ':') {
        if (r != NUM_OK || v > (uint64_t)LLONG_MAX + (uint64_t)neg)
            return fail(rd, AREDIS_EPROTO, "bad integer \"%.*s\"",
                        shown(h, end), h);
        if (!root)
            return STEP_SCALAR;
        fill_int(&rd->arena[0], neg ? (long long)(0 - v) : (long long)v);
        return STEP_BUILT;
    }
    if (r == NUM_OK && neg && v == 1 && (t == '$' || t == '*')) {
        /* RESP2 null bulk or null array. */
        if (!root)
            return STEP_SCALAR;
        fill_nil(&rd->arena[0]);
        return STEP_BUILT;
    }
    int bulk = t == '$' || t == '!' || t == '=';
    int pairs = t == '%' || t == '|';
    size_t limit = bulk ? rd->lim.max_bulk_len : rd->lim.max_elements;
    if (pairs)
        limit /= 2;
    if (r == NUM_BIG || (r == NUM_OK && !neg && v > limit))
        return too_big(rd, t, h, end);
    if (r != NUM_OK || neg)
        return fail(rd, AREDIS_EPROTO, "bad %s length \"%.*s\"",
                    bulk ? "bulk" : "aggregate", shown(h, end), h);
    size_t n = (size_t)v;
    if (t == '=' && n < 4)
        return fail(rd, AREDIS_EPROTO,
                    "verbatim string of %zu bytes has no room for its "
                    "\"fmt:\" prefix",
                    n);
    if (bulk)
        return scan_bulk_body(rd, t, next, end, n, root);
    if (t == '|') {
        if (rd->attr_pending)
            return fail(rd, AREDIS_EPROTO,
                        "attribute followed by another attribute");
        rd->attr_pending = n == 0;
    }
    rd->nodes++;
    if (n == 0)
        return t == '|' ? STEP_ATTR0 : STEP_EMPTY;
    int e = push_scan_frame(rd, pairs ? n * 2 : n, t == '|');
    if (e != 0)
        return e;
    if (rd->depth > rd->max_depth_seen)
        rd->max_depth_seen = rd->depth;
    return STEP_OPENED;
}

/* A header whose value is the rest of its line: + - , ( # _ */
static int scan_line(aredis_reader *rd, char *p, const char *end, int root,
                     char **next)
{
    char *buf = rd->buf;
    char t = *p;
    /* Resume the CR search of a line that was cut short. */
    char *from = p + 1;
    if (rd->line_from > (size_t)(from - buf))
        from = buf + rd->line_from;
    /* A line holds no CR or LF (RESP3 "Simple string"): a bare LF fails
     * at once rather than waiting for a CR that would not make it valid. */
    char *cr = from;
    for (; cr < end; cr++) {
        unsigned char c = (unsigned char)*cr;
        if (c <= '\r' && (c == '\r' || c == '\n'))
            break;
    }
    if (cr < end && *cr == '\n')
        return fail(rd, AREDIS_EPROTO, "LF without CR in a line");
    if (cr >= end - 1) {
        rd->line_from = (size_t)(cr - buf);
        return STEP_MORE;
    }
    if (cr[1] != '\n')
        return fail(rd, AREDIS_EPROTO, "CR not followed by LF");
    rd->line_from = 0;
    char *line = p + 1;
    size_t llen = (size_t)(cr - line);
    double d;
    if (t == ',' && aredis__parse_double(line, llen, &d) != 0)
        return fail(rd, AREDIS_EPROTO, "bad double \"%.*s\"", shown(line, end),
                    line);
    if (t == '(' && !is_bignum(line, llen))
        return fail(rd, AREDIS_EPROTO, "bad big number");
    if (t == '#' && (llen != 1 || (line[0] != 't' && line[0] != 'f')))
        return fail(rd, AREDIS_EPROTO, "bad boolean");
    if (t == '_' && llen != 0)
        return fail(rd, AREDIS_EPROTO, "bad null");
    *next = cr + 2;
    if (!root)
        return STEP_SCALAR;
    fill_line(&rd->arena[0], t, line, llen);
    return STEP_BUILT;
}

/* The nodes counted so far and the bytes scanned must fit in
 * max_reply_memory: checked whenever the scan stops, so no node is ever
 * allocated for a reply over the limit (the scan itself allocates only its
 * stack, bounded by max_depth). */
static int check_reply_memory(aredis_reader *rd)
{
    size_t bytes = rd->spos - rd->rpos;
    size_t lim = rd->lim.max_reply_memory;
    if (bytes <= lim && rd->nodes <= (lim - bytes) / sizeof(aredis_reply))
        return 0;
    return fail(rd, AREDIS_ETOOBIG,
                "reply of %zu nodes in %zu bytes exceeds max_reply_memory "
                "(%zu)",
                rd->nodes, bytes, lim);
}

/* Validate from rd->spos on. Returns 0 when more bytes are needed (the
 * state is saved), SCAN_COMPLETE or SCAN_BUILT when a whole top-level reply
 * is buffered, or a negative error. */
static int scan(aredis_reader *rd)
{
    char *buf = rd->buf;
    const char *end = buf + rd->wpos;
    char *p = buf + rd->spos;

    if (rd->wpos < rd->need)
        return 0;
    rd->need = 0;
    while (p < end) {
        char t = *p;
        int root = rd->depth == 0 && rd->nodes == 0;
        char *next = p;
        int r;

        if (t != '|')
            rd->attr_pending = 0;
        switch (t) {
        case ':':
        case '$':
        case '!':
        case '=':
        case '*':
        case '%':
        case '~':
        case '>':
        case '|':
            r = scan_numeric(rd, p, end, root, &next);
            break;
        case '+':
        case '-':
        case ',':
        case '(':
        case '#':
        case '_':
            r = scan_line(rd, p, end, root, &next);
            break;
        default:
            return fail(rd, AREDIS_EPROTO,
                        "unknown reply type byte 0x%02x at offset %zu",
                        (unsigned)(unsigned char)t,
                        (size_t)(p - buf) - rd->rpos);
        }
        if (r < 0)
            return r;
        if (r == STEP_MORE)
            break;
        if (r == STEP_BUILT) {
            rd->nodes = 1;
            rd->spos = (size_t)(next - buf);
            return SCAN_BUILT;
        }
        if (r == STEP_SCALAR)
            rd->nodes++;
        p = next;
        if ((r == STEP_SCALAR || r == STEP_EMPTY) && item_done(rd)) {
            rd->spos = (size_t)(p - buf);
            int e = check_reply_memory(rd);
            return e != 0 ? e : SCAN_COMPLETE;
        }
    }
    rd->spos = (size_t)(p - buf);
    return check_reply_memory(rd);
}

/* ------------------------------------------------------------------------
 * Build pass: walk the validated bytes again and fill rd->nodes nodes.
 * Children of an aggregate take consecutive nodes, reserved when its header
 * is read; an attribute takes its own nodes and is hung on the slot of the
 * item that follows it.
 * ------------------------------------------------------------------------ */

static int reserve_build(aredis_reader *rd)
{
    size_t n = rd->nodes;
    if (n > rd->arena_cap ||
        (rd->arena_cap > KEEP_ARENA && n < KEEP_ARENA / 4)) {
        size_t cap = n < INITIAL_ARENA ? INITIAL_ARENA : n;
        aredis_reply *a = aredis__reallocarray(NULL, cap, sizeof *a);
        if (a == NULL)
            return AREDIS_ENOMEM;
        aredis__free(rd->arena);
        rd->arena = a;
        rd->arena_cap = cap;
    }
    if (rd->max_depth_seen > rd->bstack_cap) {
        aredis__build_frame *s =
            aredis__reallocarray(rd->bstack, rd->max_depth_seen, sizeof *s);
        if (s == NULL)
            return AREDIS_ENOMEM;
        rd->bstack = s;
        rd->bstack_cap = rd->max_depth_seen;
    }
    return 0;
}

static void build(aredis_reader *rd)
{
    char *buf = rd->buf;
    aredis_reply *arena = rd->arena;
    aredis__build_frame *st = rd->bstack;
    size_t depth = 0, next = 1;
    aredis_reply *slot = &arena[0];
    aredis_reply *pending = NULL;
    char *p = buf + rd->rpos;

    for (;;) {
        char t = *p++;
        switch (t) {
        case '$':
        case '!':
        case '=':
            if (*p == '-') {
                fill_nil(slot);
                p = past_line(p);
            } else {
                const char *q = p;
                size_t len = fast_len(&q);
                char *body = p + (q - p) + 2;
                fill_bulk(slot, t, body, len);
                p = body + len + 2;
            }
            break;
        case '*':
        case '%':
        case '~':
        case '>':
        case '|': {
            if (*p == '-') {
                fill_nil(slot);
                p = past_line(p);
                break;
            }
            const char *q = p;
            size_t n = fast_len(&q);
            p += (q - p) + 2;
            if (t == '%' || t == '|')
                n *= 2;
            aredis_reply *node = t == '|' ? &arena[next++] : slot;
            fill_agg(node, t, &arena[next], n);
            if (t == '|' && n == 0) {
                pending = node;
                continue;
            }
            if (n == 0)
                break;
            if (t != '|') {
                node->attrs = pending;
                pending = NULL;
            }
            aredis__build_frame *f = &st[depth++];
            f->children = &arena[next];
            f->idx = 0;
            f->n = n;
            f->attr = t == '|' ? node : NULL;
            f->resume = slot;
            next += n;
            slot = f->children;
            continue;
        }
        default: {
            char *cr = memchr(p, '\r', rd->spos - (size_t)(p - buf));
            fill_line(slot, t, p, (size_t)(cr - p));
            p = cr + 2;
            break;
        }
        }
        /* The slot holds a complete item: hang the attribute on it. */
        slot->attrs = pending;
        pending = NULL;
        for (;;) {
            if (depth == 0)
                return;
            aredis__build_frame *f = &st[depth - 1];
            if (++f->idx < f->n) {
                slot = &f->children[f->idx];
                break;
            }
            depth--;
            if (f->attr != NULL) {
                pending = f->attr;
                slot = f->resume;
                break;
            }
        }
    }
}

/* ------------------------------------------------------------------------
 * Fast path: most replies are a lone +status, -error, :integer or $bulk.
 * When a fresh top-level reply is one of those and is complete and plain,
 * fill it directly; anything unusual (cut short, malformed, long, limits)
 * returns 0 and goes through scan(), which has the whole rule book.
 * ------------------------------------------------------------------------ */

static inline int fast_scalar(aredis_reader *rd)
{
    char *p = rd->buf + rd->spos;
    const char *end = rd->buf + rd->wpos;
    aredis_reply *r = rd->arena;
    char t = *p;

    if (t == '+' || t == '-') {
        char *q = p + 1;
        const char *stop = end - p > 65 ? p + 64 : end - 1;
        /* Stop at any byte up to CR: an LF (refused) or another control
         * byte (rare) takes the full scan. */
        while (q < stop && (unsigned char)*q > '\r')
            q++;
        if (q >= stop || !is_crlf(q))
            return 0;
        size_t len = (size_t)(q - p - 1);
        *q = '\0';
        r->type = t == '+' ? AREDIS_REPLY_STATUS : AREDIS_REPLY_ERROR;
        r->code = t == '+' ? 0 : AREDIS_ESERVER;
        r->len = len;
        r->str = p + 1;
        r->integer = 0;
        r->attrs = NULL;
        r->vformat[0] = '\0';
        rd->spos = (size_t)(q + 2 - rd->buf);
        return 1;
    }
    if (t != ':' && t != '$')
        return 0;
    char *q = p + 1;
    int neg = q < end && *q == '-';
    q += neg;
    const char *digits = q;
    const char *stop = end - q > 19 ? q + 18 : end - 1;
    uint64_t v = 0;
    unsigned d;
    while (q < stop && (d = (unsigned)(unsigned char)*q - '0') <= 9) {
        v = v * 10 + d;
        q++;
    }
    /* 18 digits at most here: no overflow; longer numbers take scan(). */
    if (q == digits || q >= stop || !is_crlf(q) ||
        (*digits == '0' && (q - digits > 1 || neg)))
        return 0;
    char *body = q + 2;
    if (t == ':') {
        fill_int(r, neg ? (long long)(0 - v) : (long long)v);
        rd->spos = (size_t)(body - rd->buf);
        return 1;
    }
    if (neg || v > rd->lim.max_bulk_len || (size_t)(end - body) < v + 2 ||
        !is_crlf(body + v))
        return 0;
    fill_bulk(r, '$', body, (size_t)v);
    rd->spos = (size_t)(body + v + 2 - rd->buf);
    return 1;
}

/* ------------------------------------------------------------------------
 * Buffer management and the public API.
 * ------------------------------------------------------------------------ */

static void reset_scan(aredis_reader *rd)
{
    rd->partial = 0;
    rd->need = 0;
    rd->line_from = 0;
    rd->nodes = 0;
    rd->depth = 0;
    rd->max_depth_seen = 0;
    rd->attr_pending = 0;
}

/* Drop the bytes of the reply returned last: it is no longer borrowed. */
static void trim(aredis_reader *rd);

static inline void release(aredis_reader *rd)
{
    if (rd->trim)
        trim(rd);
    if (rd->release == 0)
        return;
    rd->rpos = rd->release;
    rd->release = 0;
    if (rd->rpos == rd->wpos) {
        rd->rpos = rd->wpos = rd->spos = 0;
        if (rd->cap > KEEP_BUF) {
            aredis__free(rd->buf);
            rd->buf = NULL;
            rd->cap = 0;
        }
    }
}

/* Deferred from aredis__reader_trim(): nothing is borrowed now. */
static void trim(aredis_reader *rd)
{
    rd->trim = 0;
    if (rd->release != 0) {
        rd->rpos = rd->release;
        rd->release = 0;
    }
    if (rd->rpos == rd->wpos) {
        rd->rpos = rd->wpos = rd->spos = 0;
        aredis__free(rd->buf);
        rd->buf = NULL;
        rd->cap = 0;
        rd->read_hint = READ_MIN;
    }
    /* Between replies: the stacks are rebuilt when a reply needs them. */
    if (rd->depth == 0 && !rd->scanned && !rd->partial) {
        aredis__free(rd->stack);
        aredis__free(rd->bstack);
        rd->stack = NULL;
        rd->bstack = NULL;
        rd->stack_cap = rd->bstack_cap = 0;
    }
    /* One node: room for a scalar reply; the first aggregate after this
     * sizes the arena again. */
    if (rd->arena_cap > 1) {
        aredis_reply *a = aredis__reallocarray(NULL, 1, sizeof *rd->arena);
        if (a != NULL) {
            aredis__free(rd->arena);
            rd->arena = a;
            rd->arena_cap = 1;
        }
    }
}

void aredis__reader_trim(aredis_reader *rd)
{
    rd->trim = 1;
}

/* Make room for `extra` bytes after wpos, compacting before growing. */
static int ensure_space(aredis_reader *rd, size_t extra)
{
    if (rd->cap - rd->wpos >= extra)
        return 0;
    size_t used = rd->wpos - rd->rpos;
    if (rd->rpos > 0) {
        size_t shift = rd->rpos;
        if (used != 0)
            memmove(rd->buf, rd->buf + shift, used);
        rd->wpos -= shift;
        rd->spos -= shift;
        rd->rpos = 0;
        if (rd->need != 0)
            rd->need -= shift;
        if (rd->line_from != 0)
            rd->line_from -= shift;
        if (rd->cap - rd->wpos >= extra)
            return 0;
    }
    if (extra > SIZE_MAX - used)
        return AREDIS_ENOMEM;
    size_t want = used + extra;
    size_t cap = rd->cap < READ_MIN ? READ_MIN : rd->cap;
    while (cap < want)
        cap = cap > SIZE_MAX / 2 ? want : cap * 2;
    char *b = aredis__realloc(rd->buf, cap);
    if (b == NULL)
        return AREDIS_ENOMEM;
    rd->buf = b;
    rd->cap = cap;
    return 0;
}

/* The limits given, with the defaults for zero members. */
static void set_limits(aredis_reader *rd, const aredis_reader_limits *limits)
{
    memset(&rd->lim, 0, sizeof rd->lim);
    if (limits != NULL)
        rd->lim = *limits;
    if (rd->lim.max_depth == 0)
        rd->lim.max_depth = DEFAULT_MAX_DEPTH;
    if (rd->lim.max_bulk_len == 0)
        rd->lim.max_bulk_len = DEFAULT_MAX_BULK;
    if (rd->lim.max_elements == 0)
        rd->lim.max_elements = DEFAULT_MAX_ELEMENTS;
    if (rd->lim.max_buffer == 0)
        rd->lim.max_buffer = DEFAULT_MAX_BUFFER;
    if (rd->lim.max_reply_memory == 0)
        rd->lim.max_reply_memory = rd->lim.max_buffer > SIZE_MAX / 2
                                       ? SIZE_MAX
                                       : rd->lim.max_buffer * 2;
}

int aredis__reader_adopt(aredis_reader *rd, const aredis_reader_limits *limits)
{
    if (rd->err != 0 || aredis_reader_buffered(rd) != 0 || rd->depth != 0 ||
        rd->scanned || rd->partial)
        return -1;
    set_limits(rd, limits);
    return 0;
}

aredis_reader *aredis_reader_new(const aredis_reader_limits *limits)
{
    aredis_reader *rd = aredis__calloc(1, sizeof *rd);
    if (rd == NULL)
        return NULL;
    set_limits(rd, limits);
    rd->arena = aredis__reallocarray(NULL, INITIAL_ARENA, sizeof *rd->arena);
    if (rd->arena == NULL) {
        aredis__free(rd);
        return NULL;
    }
    rd->arena_cap = INITIAL_ARENA;
    rd->read_hint = READ_MIN;
    return rd;
}

void aredis_reader_free(aredis_reader *rd)
{
    if (rd == NULL)
        return;
    aredis__free(rd->buf);
    aredis__free(rd->stack);
    aredis__free(rd->bstack);
    aredis__free(rd->arena);
    aredis__free(rd);
}

static int check_buffer_limit(aredis_reader *rd, size_t extra)
{
    size_t used = rd->wpos - rd->rpos;
    if (extra > rd->lim.max_buffer || used > rd->lim.max_buffer - extra)
        return fail(rd, AREDIS_ETOOBIG,
                    "more than max_buffer (%zu) bytes buffered for one reply",
                    rd->lim.max_buffer);
    return 0;
}

int aredis_reader_feed(aredis_reader *rd, const char *buf, size_t len)
{
    if (rd->err)
        return rd->err;
    release(rd);
    /* The common case: it fits after what is buffered, within the limit
     * (buffered bytes never exceed max_buffer, so this cannot wrap). */
    if (len <= rd->cap - rd->wpos &&
        len <= rd->lim.max_buffer - (rd->wpos - rd->rpos)) {
        if (len != 0)
            memcpy(rd->buf + rd->wpos, buf, len);
        rd->wpos += len;
        return 0;
    }
    int e = check_buffer_limit(rd, len);
    if (e == 0)
        e = ensure_space(rd, len);
    if (e != 0)
        return e;
    memcpy(rd->buf + rd->wpos, buf, len);
    rd->wpos += len;
    return 0;
}

char *aredis_reader_prepare(aredis_reader *rd, size_t min_size, size_t *avail)
{
    *avail = 0;
    rd->prepared = 0;
    if (rd->err)
        return NULL;
    release(rd);
    if (min_size == 0)
        min_size = rd->read_hint;
    size_t used = rd->wpos - rd->rpos;
    if (used >= rd->lim.max_buffer) {
        check_buffer_limit(rd, 1);
        return NULL;
    }
    size_t room = rd->lim.max_buffer - used;
    if (min_size > room)
        min_size = room;
    if (ensure_space(rd, min_size) != 0)
        return NULL;
    size_t n = rd->cap - rd->wpos;
    rd->prepared = n < room ? n : room;
    *avail = rd->prepared;
    return rd->buf + rd->wpos;
}

int aredis_reader_commit(aredis_reader *rd, size_t n)
{
    if (n > rd->prepared)
        return AREDIS_EINVAL;
    /* A read that filled all it was offered: more was waiting. */
    if (n == rd->prepared && rd->read_hint < READ_CHUNK)
        rd->read_hint *= 2;
    rd->wpos += n;
    rd->prepared = 0;
    return 0;
}

int aredis_reader_get_reply(aredis_reader *rd, const aredis_reply **out)
{
    if (rd->err)
        return rd->err;
    release(rd);
    rd->prepared = 0;
    if (rd->spos == rd->wpos)
        return 0;
    if (!rd->partial && fast_scalar(rd)) {
        *out = rd->arena;
        rd->release = rd->spos;
        return 1;
    }
    if (!rd->scanned) {
        int r = scan(rd);
        if (r == 0)
            rd->partial = 1;
        if (r <= 0)
            return r;
        if (r == SCAN_COMPLETE)
            rd->scanned = 1;
    }
    if (rd->scanned) {
        /* Out of memory here is not sticky: the scan is kept, and a later
         * call retries the build. */
        if (reserve_build(rd) != 0)
            return AREDIS_ENOMEM;
        build(rd);
        rd->scanned = 0;
    }
    *out = rd->arena;
    rd->release = rd->spos;
    reset_scan(rd);
    return 1;
}

int aredis_reader_error(const aredis_reader *rd)
{
    return rd->err;
}

const char *aredis_reader_errstr(const aredis_reader *rd)
{
    return rd->err ? rd->errstr : "";
}

size_t aredis_reader_buffered(const aredis_reader *rd)
{
    return rd->wpos - (rd->release ? rd->release : rd->rpos);
}
