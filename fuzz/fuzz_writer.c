/* libFuzzer target for the RESP writer (resp layer).
 *
 * The first input byte picks a mode (modulo 3):
 *   0  a format built together with correctly typed arguments, so every
 *      conversion it holds is matched (the contract makes anything else
 *      undefined behaviour, which no fuzzer may provoke);
 *   1  the raw input as a format, called with no arguments only when that
 *      is legal: it holds no conversion but "%%", or a conversion the writer
 *      must refuse before it takes any argument;
 *   2  an argument vector cut from the input, with and without lengths.
 * Every success is checked by a small RESP checker of its own (this target
 * must not depend on the reader), and every failure must leave the buffer
 * exactly as it was. The corpus also replays through fuzz/replay.c. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aredis/error.h"
#include "aredis/resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                  \
            abort();                                                         \
        }                                                                    \
    } while (0)

/* ------------------------------------------------------------------------
 * Input cursor
 * ------------------------------------------------------------------------ */

struct input {
    const uint8_t *p;
    size_t n;
};

/* The next byte, or 0 once the input is used up. */
static uint8_t next(struct input *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

static void next_bytes(struct input *in, void *out, size_t n)
{
    uint8_t *o = out;
    for (size_t i = 0; i < n; i++)
        o[i] = next(in);
}

/* ------------------------------------------------------------------------
 * RESP checker
 * ------------------------------------------------------------------------ */

struct span {
    const char *p;
    size_t n;
};

/* Read a canonical decimal number (no sign, no leading zero) ending in
 * "\r\n". Returns the position after it, or NULL. */
static const char *parse_len(const char *p, const char *end, size_t *out)
{
    size_t v = 0;
    const char *start = p;
    while (p < end && *p >= '0' && *p <= '9') {
        if (p - start >= 19)
            return NULL;
        v = v * 10 + (size_t)(*p - '0');
        p++;
    }
    if (p == start || (*start == '0' && p - start > 1))
        return NULL;
    if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
        return NULL;
    *out = v;
    return p + 2;
}

/* Check that [d, d+len) is exactly one command: "*N\r\n" and N bulk
 * strings. Fills args (which must have room for max) and returns N. */
static size_t check_command(const char *d, size_t len, struct span *args,
                            size_t max)
{
    const char *p = d, *end = d + len;
    size_t n;
    CHECK(len >= 1 && *p == '*');
    p = parse_len(p + 1, end, &n);
    CHECK(p != NULL);
    CHECK(n >= 1 && n <= max);
    for (size_t i = 0; i < n; i++) {
        size_t bl;
        CHECK(p < end && *p == '$');
        p = parse_len(p + 1, end, &bl);
        CHECK(p != NULL);
        CHECK((size_t)(end - p) >= bl + 2);
        args[i].p = p;
        args[i].n = bl;
        p += bl;
        CHECK(p[0] == '\r' && p[1] == '\n');
        p += 2;
    }
    CHECK(p == end);
    return n;
}

/* A buffer with a prefix in it, so every call appends to existing data. */
static const char prefix[] = "*1\r\n$4\r\nPING\r\n";

static void start_buf(aredis_buf *b)
{
    aredis_buf_init(b);
    CHECK(aredis_write_argv(b, 1, (const char *const[]){"PING"}, NULL) == 0);
    CHECK(b->len == sizeof prefix - 1);
}

static void check_untouched(const aredis_buf *b)
{
    CHECK(b->len == sizeof prefix - 1);
    CHECK(memcmp(b->data, prefix, b->len) == 0);
}

/* The bytes after the prefix as a command; also re-encode its arguments
 * through aredis_write_argv and demand identical bytes. */
static size_t check_output(const aredis_buf *b, struct span *args, size_t max)
{
    CHECK(b->len > sizeof prefix - 1);
    CHECK(memcmp(b->data, prefix, sizeof prefix - 1) == 0);
    const char *cmd = b->data + sizeof prefix - 1;
    size_t len = b->len - (sizeof prefix - 1);
    size_t n = check_command(cmd, len, args, max);

    const char **argv = malloc(n * sizeof *argv);
    size_t *lens = malloc(n * sizeof *lens);
    CHECK(argv != NULL && lens != NULL);
    for (size_t i = 0; i < n; i++) {
        argv[i] = args[i].p;
        lens[i] = args[i].n;
    }
    aredis_buf again;
    aredis_buf_init(&again);
    CHECK(aredis_write_argv(&again, (int)n, argv, lens) == 0);
    CHECK(again.len == len && memcmp(again.data, cmd, len) == 0);
    aredis_buf_cleanup(&again);
    free(argv);
    free(lens);
    return n;
}

/* ------------------------------------------------------------------------
 * Mode 0: generated format with matching arguments
 * ------------------------------------------------------------------------ */

enum type {
    T_S,
    T_B,
    T_INT,
    T_UINT,
    T_LONG,
    T_ULONG,
    T_LLONG,
    T_ULLONG,
    T_SIZE,
    T_DOUBLE
};

#define SLOTS 10

/* The argument types of each call site below, slot by slot. C cannot build
 * a call at run time, so the order of types is fixed per schedule while
 * the fuzzer picks the schedule, how many conversions are used, where they
 * sit, their letters and their values. */
static const enum type schedules[3][SLOTS] = {
    {T_S, T_B, T_INT, T_UINT, T_LONG, T_ULONG, T_LLONG, T_ULLONG, T_SIZE,
     T_DOUBLE},
    {T_DOUBLE, T_S, T_INT, T_S, T_B, T_LLONG, T_DOUBLE, T_S, T_SIZE, T_S},
    {T_B, T_B, T_S, T_S, T_DOUBLE, T_DOUBLE, T_INT, T_INT, T_S, T_B},
};

struct values {
    const char *s[SLOTS];
    const void *bp[SLOTS];
    size_t bl[SLOTS];
    int i[SLOTS];
    unsigned u[SLOTS];
    long l[SLOTS];
    unsigned long ul[SLOTS];
    long long ll[SLOTS];
    unsigned long long ull[SLOTS];
    size_t z[SLOTS];
    double d[SLOTS];
    char sbuf[SLOTS][16];
    uint8_t bbuf[SLOTS][24];
};

#define MAX_WORDS 8
#define MAX_ARG 512

struct expect {
    size_t nwords;
    char arg[MAX_WORDS][MAX_ARG];
    size_t len[MAX_WORDS];
    int ndoubles[MAX_WORDS];    /* exact bytes unknown: check loosely */
    int only_double[MAX_WORDS]; /* 1 + the slot when the word is exactly
                                 * one %f or %g, else 0 */
    int bad;                    /* a NULL pointer: AREDIS_EINVAL expected */
};

static void put(struct expect *e, size_t w, const void *p, size_t n)
{
    CHECK(e->len[w] + n <= MAX_ARG);
    memcpy(e->arg[w] + e->len[w], p, n);
    e->len[w] += n;
}

/* A literal byte for the format: anything but NUL, ' ' and '%'. */
static char literal(uint8_t c)
{
    return c == 0 || c == ' ' || c == '%' ? 'x' : (char)c;
}

/* Give slot k a value of type t and write the conversion for it into the
 * format; the expected text goes into word w. */
static void conversion(struct input *in, struct values *v, struct expect *e,
                       enum type t, size_t k, size_t w, char *f, size_t *fl)
{
    uint8_t sel = next(in);
    char num[64];
    int n = 0;
    switch (t) {
    case T_S: {
        size_t len = sel % 16;
        for (size_t j = 0; j < len; j++) {
            uint8_t c = next(in);
            v->sbuf[k][j] = c == 0 ? 'z' : (char)c;
        }
        v->sbuf[k][len < 16 ? len : 15] = '\0';
        v->s[k] = v->sbuf[k];
        if ((sel & 0xf0) == 0xf0) {
            v->s[k] = NULL;
            e->bad = 1;
        } else {
            put(e, w, v->s[k], strlen(v->s[k]));
        }
        f[(*fl)++] = '%';
        f[(*fl)++] = 's';
        return;
    }
    case T_B: {
        size_t len = sel % 24;
        next_bytes(in, v->bbuf[k], len);
        v->bp[k] = v->bbuf[k];
        v->bl[k] = len;
        if ((sel & 0xe0) == 0xe0) {
            /* NULL is fine with no bytes and refused with some. */
            v->bp[k] = NULL;
            if (len != 0)
                e->bad = 1;
        } else {
            put(e, w, v->bbuf[k], len);
        }
        f[(*fl)++] = '%';
        f[(*fl)++] = 'b';
        return;
    }
    default:
        break;
    }

    uint64_t raw;
    next_bytes(in, &raw, sizeof raw);
    /* Small magnitudes are the common case; mask most inputs down. */
    if (sel & 1)
        raw &= 0xffff;
    const char *letters;
    switch (t) {
    case T_INT:
        v->i[k] = (int)(int32_t)(uint32_t)raw;
        n = snprintf(num, sizeof num, "%d", v->i[k]);
        letters = sel & 2 ? "i" : "d";
        break;
    case T_UINT:
        v->u[k] = (unsigned)(uint32_t)raw;
        n = snprintf(num, sizeof num, "%u", v->u[k]);
        letters = "u";
        break;
    case T_LONG:
        v->l[k] = (long)(int64_t)raw;
        n = snprintf(num, sizeof num, "%ld", v->l[k]);
        letters = "ld";
        break;
    case T_ULONG:
        v->ul[k] = (unsigned long)raw;
        n = snprintf(num, sizeof num, "%lu", v->ul[k]);
        letters = "lu";
        break;
    case T_LLONG:
        v->ll[k] = (long long)(int64_t)raw;
        n = snprintf(num, sizeof num, "%lld", v->ll[k]);
        letters = "lld";
        break;
    case T_ULLONG:
        v->ull[k] = (unsigned long long)raw;
        n = snprintf(num, sizeof num, "%llu", v->ull[k]);
        letters = "llu";
        break;
    case T_SIZE:
        v->z[k] = (size_t)raw;
        n = snprintf(num, sizeof num, "%zu", v->z[k]);
        letters = "zu";
        break;
    default: /* T_DOUBLE: any bit pattern, NaNs, infinities and all. */
        memcpy(&v->d[k], &raw, sizeof v->d[k]);
        if (sel & 1)
            v->d[k] = (double)(int16_t)raw / 8.0;
        e->ndoubles[w]++;
        letters = sel & 2 ? "g" : "f";
        break;
    }
    if (n > 0)
        put(e, w, num, (size_t)n);
    f[(*fl)++] = '%';
    for (const char *l = letters; *l; l++)
        f[(*fl)++] = *l;
}

static int call_schedule(aredis_buf *b, int sched, const char *fmt,
                         const struct values *v)
{
    switch (sched) {
    case 0:
        return aredis_write_fmt(b, fmt, v->s[0], v->bp[1], v->bl[1], v->i[2],
                                v->u[3], v->l[4], v->ul[5], v->ll[6], v->ull[7],
                                v->z[8], v->d[9]);
    case 1:
        return aredis_write_fmt(b, fmt, v->d[0], v->s[1], v->i[2], v->s[3],
                                v->bp[4], v->bl[4], v->ll[5], v->d[6], v->s[7],
                                v->z[8], v->s[9]);
    default:
        return aredis_write_fmt(b, fmt, v->bp[0], v->bl[0], v->bp[1], v->bl[1],
                                v->s[2], v->s[3], v->d[4], v->d[5], v->i[6],
                                v->i[7], v->s[8], v->bp[9], v->bl[9]);
    }
}

/* A word that is a lone double must read back to the very same bits. */
static void check_double_word(const struct span *a, double want)
{
    char text[64];
    CHECK(a->n >= 1 && a->n <= 24);
    memcpy(text, a->p, a->n);
    text[a->n] = '\0';
    if (isnan(want)) {
        CHECK(strcmp(text, "nan") == 0);
        return;
    }
    char *end;
    double d = strtod(text, &end);
    CHECK(*end == '\0');
    CHECK(memcmp(&d, &want, sizeof d) == 0);
}

static void mode_generated(struct input *in)
{
    static struct values v;
    static struct expect e;
    memset(&v, 0, sizeof v);
    memset(&e, 0, sizeof e);
    for (size_t k = 0; k < SLOTS; k++) {
        v.s[k] = "";
        v.bp[k] = "";
    }

    int sched = next(in) % 3;
    char f[1024];
    size_t fl = 0;
    size_t nconv = 0;
    size_t nwords = 1 + next(in) % MAX_WORDS;
    uint8_t spacing = next(in);
    size_t lead = spacing & 3;
    for (size_t j = 0; j < lead; j++)
        f[fl++] = ' ';
    for (size_t w = 0; w < nwords; w++) {
        if (w > 0) {
            size_t gap = 1 + (next(in) & 3);
            for (size_t j = 0; j < gap; j++)
                f[fl++] = ' ';
        }
        size_t items = 1 + next(in) % 5;
        for (size_t it = 0; it < items; it++) {
            uint8_t kind = next(in) % 3;
            if (kind == 2 && nconv < SLOTS) {
                enum type t = schedules[sched][nconv];
                conversion(in, &v, &e, t, nconv, w, f, &fl);
                if (t == T_DOUBLE && items == 1)
                    e.only_double[w] = 1 + (int)nconv;
                nconv++;
            } else if (kind == 1) {
                f[fl++] = '%';
                f[fl++] = '%';
                put(&e, w, "%", 1);
            } else {
                size_t n = 1 + next(in) % 4;
                for (size_t j = 0; j < n; j++) {
                    char c = literal(next(in));
                    f[fl++] = c;
                    put(&e, w, &c, 1);
                }
            }
        }
    }
    size_t trail = (spacing >> 2) & 3;
    for (size_t j = 0; j < trail; j++)
        f[fl++] = ' ';
    f[fl] = '\0';
    CHECK(fl < sizeof f);
    e.nwords = nwords;

    aredis_buf b;
    start_buf(&b);
    int rc = call_schedule(&b, sched, f, &v);
    if (e.bad) {
        CHECK(rc == AREDIS_EINVAL);
        check_untouched(&b);
        aredis_buf_cleanup(&b);
        return;
    }
    CHECK(rc == 0);
    struct span args[MAX_WORDS];
    size_t n = check_output(&b, args, MAX_WORDS);
    CHECK(n == nwords);
    for (size_t w = 0; w < nwords; w++) {
        if (e.only_double[w]) {
            check_double_word(&args[w], v.d[e.only_double[w] - 1]);
        } else if (e.ndoubles[w] != 0) {
            /* The other pieces are known; each double adds 1 to 24 bytes. */
            size_t nd = (size_t)e.ndoubles[w];
            CHECK(args[w].n >= e.len[w] + nd);
            CHECK(args[w].n <= e.len[w] + 24 * nd);
        } else {
            CHECK(args[w].n == e.len[w]);
            CHECK(memcmp(args[w].p, e.arg[w], e.len[w]) == 0);
        }
    }
    aredis_buf_cleanup(&b);
}

/* ------------------------------------------------------------------------
 * Mode 1: raw format
 * ------------------------------------------------------------------------ */

/* This harness's own reading of the documented conversion set: the length
 * of the conversion at p (just after '%'), or 0 when it is not one. */
static size_t known_conversion(const char *p)
{
    static const char *const valid[] = {"%", "s",  "b",  "d",   "i",   "u", "f",
                                        "g", "ld", "lu", "lld", "llu", "zu"};
    size_t best = 0;
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        size_t n = strlen(valid[i]);
        if (strncmp(p, valid[i], n) == 0 && n > best)
            best = n;
    }
    return best;
}

static void mode_raw(struct input *in)
{
    char f[1024];
    size_t fl = 0;
    while (in->n > 0 && fl + 1 < sizeof f) {
        uint8_t c = next(in);
        if (c == 0)
            break;
        f[fl++] = (char)c;
    }
    f[fl] = '\0';

    /* Classify: conversions other than "%%" present, any invalid one, and
     * the expected arguments when only "%%" appears. */
    int has_value_conv = 0, has_bad = 0;
    for (size_t i = 0; i < fl; i++) {
        if (f[i] != '%')
            continue;
        size_t n = known_conversion(f + i + 1);
        if (n == 0) {
            has_bad = 1;
            break;
        }
        if (f[i + 1] != '%')
            has_value_conv = 1;
        i += n;
    }
    if (has_value_conv && !has_bad)
        return; /* would need arguments this mode cannot type */

    aredis_buf b;
    start_buf(&b);
    int rc = aredis_write_fmt(&b, f);
    if (has_bad) {
        CHECK(rc == AREDIS_EFORMAT);
        check_untouched(&b);
        aredis_buf_cleanup(&b);
        return;
    }

    /* Expected arguments: words split on ' ', "%%" read as '%'. */
    static char exp[1024];
    static struct span want[512];
    size_t nw = 0, el = 0;
    for (size_t i = 0; i < fl;) {
        while (i < fl && f[i] == ' ')
            i++;
        if (i == fl)
            break;
        want[nw].p = exp + el;
        size_t start = el;
        while (i < fl && f[i] != ' ') {
            exp[el++] = f[i];
            i += f[i] == '%' ? 2 : 1;
        }
        want[nw].n = el - start;
        nw++;
    }
    if (nw == 0) {
        CHECK(rc == AREDIS_EFORMAT);
        check_untouched(&b);
        aredis_buf_cleanup(&b);
        return;
    }
    CHECK(rc == 0);
    static struct span args[512];
    size_t n = check_output(&b, args, 512);
    CHECK(n == nw);
    for (size_t i = 0; i < n; i++) {
        CHECK(args[i].n == want[i].n);
        CHECK(memcmp(args[i].p, want[i].p, want[i].n) == 0);
    }
    aredis_buf_cleanup(&b);
}

/* ------------------------------------------------------------------------
 * Mode 2: argument vector
 * ------------------------------------------------------------------------ */

#define MAX_ARGV 64

static void mode_argv(struct input *in)
{
    size_t argc = 1 + next(in) % MAX_ARGV;
    const char *argv[MAX_ARGV];
    size_t lens[MAX_ARGV];
    char *copies[MAX_ARGV];
    int nul_free = 1;
    for (size_t i = 0; i < argc; i++) {
        size_t want = next(in);
        if (want > in->n)
            want = in->n;
        argv[i] = (const char *)in->p;
        lens[i] = want;
        if (want != 0 && memchr(in->p, 0, want) != NULL)
            nul_free = 0;
        in->p += want;
        in->n -= want;
    }

    aredis_buf b;
    start_buf(&b);
    CHECK(aredis_write_argv(&b, (int)argc, argv, lens) == 0);
    struct span args[MAX_ARGV];
    size_t n = check_output(&b, args, MAX_ARGV);
    CHECK(n == argc);
    for (size_t i = 0; i < n; i++) {
        CHECK(args[i].n == lens[i]);
        CHECK(lens[i] == 0 || memcmp(args[i].p, argv[i], lens[i]) == 0);
    }

    /* Without lengths (strlen) the bytes must be the same when no
     * argument holds a NUL. */
    if (nul_free) {
        for (size_t i = 0; i < argc; i++) {
            copies[i] = malloc(lens[i] + 1);
            CHECK(copies[i] != NULL);
            memcpy(copies[i], argv[i], lens[i]);
            copies[i][lens[i]] = '\0';
        }
        aredis_buf c;
        start_buf(&c);
        CHECK(aredis_write_argv(&c, (int)argc, (const char *const *)copies,
                                NULL) == 0);
        CHECK(c.len == b.len && memcmp(c.data, b.data, b.len) == 0);
        aredis_buf_cleanup(&c);
        for (size_t i = 0; i < argc; i++)
            free(copies[i]);
    }

    /* A NULL entry anywhere is refused and changes nothing. */
    size_t before = b.len;
    size_t hole = next(in) % argc;
    argv[hole] = NULL;
    CHECK(aredis_write_argv(&b, (int)argc, argv, lens) == AREDIS_EINVAL);
    CHECK(b.len == before);
    aredis_buf_cleanup(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct input in = {data, size};
    switch (next(&in) % 3) {
    case 0:
        mode_generated(&in);
        break;
    case 1:
        mode_raw(&in);
        break;
    default:
        mode_argv(&in);
        break;
    }
    return 0;
}
