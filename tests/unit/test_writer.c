/* Unit tests for the RESP writer (resp layer): exact bytes for the argument
 * vector and printf-like forms, every conversion, bad formats, allocation
 * failure and locales. No server, no I/O. */
#include <criterion/criterion.h>

#include <float.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aredis/alloc.h"
#include "aredis/error.h"
#include "aredis/resp.h"

static aredis_buf buf;

static void setup(void)
{
    aredis_buf_init(&buf);
}

static void teardown(void)
{
    aredis_buf_cleanup(&buf);
    aredis_set_allocator(NULL);
}

TestSuite(writer, .init = setup, .fini = teardown);

/* Render bytes with C escapes so a failed comparison is readable. */
static const char *show(const char *p, size_t n)
{
    static char out[4096];
    size_t o = 0;
    for (size_t i = 0; i < n && o + 8 < sizeof out; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\r')
            o += (size_t)snprintf(out + o, sizeof out - o, "\\r");
        else if (c == '\n')
            o += (size_t)snprintf(out + o, sizeof out - o, "\\n");
        else if (c < 32 || c > 126)
            o += (size_t)snprintf(out + o, sizeof out - o, "\\x%02x", c);
        else
            out[o++] = (char)c;
    }
    out[o] = '\0';
    return out;
}

static void expect_bytes_at(const aredis_buf *b, size_t off, const char *exp,
                            size_t n)
{
    cr_assert_eq(b->len, off + n, "length %zu, expected %zu: got \"%s\"",
                 b->len, off + n, show(b->data + off, b->len - off));
    cr_assert(memcmp(b->data + off, exp, n) == 0, "got \"%s\"",
              show(b->data + off, n));
}

/* Compare the whole buffer with a string literal (which may hold NULs). */
#define EXPECT(b, lit) expect_bytes_at((b), 0, (lit), sizeof(lit) - 1)

/* A snapshot of a buffer, to prove that a failed call left it alone. */
struct snap {
    char data[256];
    size_t len;
};

static struct snap take_snap(const aredis_buf *b)
{
    struct snap s;
    cr_assert(b->len <= sizeof s.data);
    s.len = b->len;
    if (b->len != 0)
        memcpy(s.data, b->data, b->len);
    return s;
}

static void expect_unchanged(const aredis_buf *b, const struct snap *s)
{
    cr_assert_eq(b->len, s->len, "length changed from %zu to %zu", s->len,
                 b->len);
    cr_assert(s->len == 0 || memcmp(b->data, s->data, s->len) == 0,
              "content changed");
}

static void prefill(aredis_buf *b)
{
    cr_assert_eq(aredis_write_fmt(b, "PING"), 0);
    EXPECT(b, "*1\r\n$4\r\nPING\r\n");
}

/* The value of the only argument of a one-argument command, as a C string
 * (the tests below only use this on text). */
static const char *only_arg(const aredis_buf *b, char *out, size_t cap)
{
    const char *p = b->data;
    cr_assert(b->len > 8 && memcmp(p, "*1\r\n$", 5) == 0, "got \"%s\"",
              show(p, b->len));
    char *end;
    unsigned long n = strtoul(p + 5, &end, 10);
    cr_assert(end[0] == '\r' && end[1] == '\n');
    cr_assert(n < cap);
    memcpy(out, end + 2, n);
    out[n] = '\0';
    cr_assert_eq((size_t)(end + 2 - p) + n + 2, b->len);
    return out;
}

/* ------------------------------------------------------------------------
 * Argument vector
 * ------------------------------------------------------------------------ */

Test(writer, argv_basic)
{
    const char *argv[] = {"SET", "key", "value"};
    size_t lens[] = {3, 3, 5};
    cr_assert_eq(aredis_write_argv(&buf, 3, argv, lens), 0);
    EXPECT(&buf, "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n");
}

Test(writer, argv_binary)
{
    const char val[] = {'a', '\0', 'b', '\r', '\n', 'c', '$', '*'};
    const char *argv[] = {"SET", "k\0y", val};
    size_t lens[] = {3, 3, sizeof val};
    cr_assert_eq(aredis_write_argv(&buf, 3, argv, lens), 0);
    EXPECT(&buf, "*3\r\n$3\r\nSET\r\n$3\r\nk\0y\r\n$8\r\na\0b\r\nc$*\r\n");
}

Test(writer, argv_strlen)
{
    const char *argv[] = {"HSET", "h", "field", ""};
    cr_assert_eq(aredis_write_argv(&buf, 4, argv, NULL), 0);
    EXPECT(&buf, "*4\r\n$4\r\nHSET\r\n$1\r\nh\r\n$5\r\nfield\r\n$0\r\n\r\n");
}

Test(writer, argv_length_digits)
{
    /* Lengths on both sides of each power of ten. */
    static char big[100001];
    memset(big, 'x', sizeof big);
    size_t sizes[] = {0, 9, 10, 99, 100, 999, 1000, 9999, 10000, 99999, 100000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        buf.len = 0;
        const char *argv[] = {big};
        cr_assert_eq(aredis_write_argv(&buf, 1, argv, &sizes[i]), 0);
        char head[32];
        int h = snprintf(head, sizeof head, "*1\r\n$%zu\r\n", sizes[i]);
        cr_assert_eq(buf.len, (size_t)h + sizes[i] + 2);
        cr_assert(memcmp(buf.data, head, (size_t)h) == 0);
        cr_assert(memcmp(buf.data + buf.len - 2, "\r\n", 2) == 0);
    }
}

Test(writer, argv_many_args)
{
    static const char *argv[1000];
    for (int i = 0; i < 1000; i++)
        argv[i] = "ab";
    cr_assert_eq(aredis_write_argv(&buf, 1000, argv, NULL), 0);
    cr_assert_eq(buf.len, 7 + 1000 * 8);
    cr_assert(memcmp(buf.data, "*1000\r\n$2\r\nab\r\n$2\r\nab\r\n", 23) == 0);
}

Test(writer, argv_invalid)
{
    prefill(&buf);
    struct snap s = take_snap(&buf);
    const char *argv[] = {"GET", NULL};
    size_t lens[] = {3, 0};
    cr_assert_eq(aredis_write_argv(&buf, 0, argv, NULL), AREDIS_EINVAL);
    expect_unchanged(&buf, &s);
    cr_assert_eq(aredis_write_argv(&buf, -1, argv, NULL), AREDIS_EINVAL);
    expect_unchanged(&buf, &s);
    cr_assert_eq(aredis_write_argv(&buf, 2, argv, lens), AREDIS_EINVAL);
    expect_unchanged(&buf, &s);
    cr_assert_eq(aredis_write_argv(&buf, 2, argv, NULL), AREDIS_EINVAL);
    expect_unchanged(&buf, &s);
    cr_assert_eq(aredis_write_argv(&buf, 1, NULL, NULL), AREDIS_EINVAL);
    expect_unchanged(&buf, &s);
    cr_assert_eq(aredis_write_argv(NULL, 1, argv, NULL), AREDIS_EINVAL);
}

/* ------------------------------------------------------------------------
 * Format: conversions
 * ------------------------------------------------------------------------ */

Test(writer, fmt_plain)
{
    cr_assert_eq(aredis_write_fmt(&buf, "GET key"), 0);
    EXPECT(&buf, "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n");
}

Test(writer, fmt_s)
{
    cr_assert_eq(aredis_write_fmt(&buf, "SET %s %s", "key", "a value"), 0);
    EXPECT(&buf, "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$7\r\na value\r\n");
}

Test(writer, fmt_b_binary)
{
    const char val[] = {'\0', '\r', '\n', ' ', '%', 's'};
    cr_assert_eq(
        aredis_write_fmt(&buf, "SET %b %b", "k\0y", (size_t)3, val, sizeof val),
        0);
    EXPECT(&buf, "*3\r\n$3\r\nSET\r\n$3\r\nk\0y\r\n$6\r\n\0\r\n %s\r\n");
}

Test(writer, fmt_int)
{
    cr_assert_eq(
        aredis_write_fmt(&buf, "X %d %d %i %d %d", 0, -42, 7, INT_MIN, INT_MAX),
        0);
    EXPECT(&buf, "*6\r\n$1\r\nX\r\n$1\r\n0\r\n$3\r\n-42\r\n$1\r\n7\r\n"
                 "$11\r\n-2147483648\r\n$10\r\n2147483647\r\n");
}

Test(writer, fmt_unsigned)
{
    cr_assert_eq(aredis_write_fmt(&buf, "X %u %u", 0u, UINT_MAX), 0);
    EXPECT(&buf, "*3\r\n$1\r\nX\r\n$1\r\n0\r\n$10\r\n4294967295\r\n");
}

Test(writer, fmt_long)
{
    char exp[128];
    char a[32], b[32];
    snprintf(a, sizeof a, "%ld", LONG_MIN);
    snprintf(b, sizeof b, "%lu", ULONG_MAX);
    int n = snprintf(exp, sizeof exp,
                     "*3\r\n$1\r\nX\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n", strlen(a),
                     a, strlen(b), b);
    cr_assert_eq(aredis_write_fmt(&buf, "X %ld %lu", LONG_MIN, ULONG_MAX), 0);
    expect_bytes_at(&buf, 0, exp, (size_t)n);
}

Test(writer, fmt_long_long)
{
    cr_assert_eq(aredis_write_fmt(&buf, "X %lld %lld %llu %llu", LLONG_MIN,
                                  LLONG_MAX, 0ULL, ULLONG_MAX),
                 0);
    EXPECT(&buf, "*5\r\n$1\r\nX\r\n$20\r\n-9223372036854775808\r\n"
                 "$19\r\n9223372036854775807\r\n$1\r\n0\r\n"
                 "$20\r\n18446744073709551615\r\n");
}

Test(writer, fmt_size)
{
    char exp[128], v[32];
    snprintf(v, sizeof v, "%zu", SIZE_MAX);
    int n =
        snprintf(exp, sizeof exp, "*3\r\n$1\r\nX\r\n$1\r\n5\r\n$%zu\r\n%s\r\n",
                 strlen(v), v);
    cr_assert_eq(aredis_write_fmt(&buf, "X %zu %zu", (size_t)5, SIZE_MAX), 0);
    expect_bytes_at(&buf, 0, exp, (size_t)n);
}

Test(writer, fmt_integer_digit_boundaries)
{
    long long vals[] = {9,    10,    99,    100,    999,       1000,
                        9999, 10000, 99999, 100000, 123456789, 1000000000000LL,
                        -1,   -10,   -99,   -100};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        buf.len = 0;
        char got[64], exp[32];
        cr_assert_eq(aredis_write_fmt(&buf, "%lld", vals[i]), 0);
        snprintf(exp, sizeof exp, "%lld", vals[i]);
        cr_assert_str_eq(only_arg(&buf, got, sizeof got), exp);
    }
}

Test(writer, fmt_double_exact_text)
{
    struct {
        double v;
        const char *text;
    } cases[] = {
        {1.5, "1.5"},
        {0.1, "0.1"},
        {-2.25, "-2.25"},
        {1e300, "1e+300"},
        {1.0 / 3.0, "0.3333333333333333"},
        {0.1 + 0.2, "0.30000000000000004"},
        {42.0, "42"},
        {-7.0, "-7"},
        {0.0, "0"},
        {-0.0, "-0"},
        {1e15, "1e+15"},
        {123456789012345.0, "123456789012345"},
        {1e-5, "1e-05"},
        {INFINITY, "inf"},
        {-INFINITY, "-inf"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char got[64];
        buf.len = 0;
        cr_assert_eq(aredis_write_fmt(&buf, "%f", cases[i].v), 0);
        cr_assert_str_eq(only_arg(&buf, got, sizeof got), cases[i].text);
        buf.len = 0;
        cr_assert_eq(aredis_write_fmt(&buf, "%g", cases[i].v), 0);
        cr_assert_str_eq(only_arg(&buf, got, sizeof got), cases[i].text);
    }
}

Test(writer, fmt_double_nan)
{
    char got[64];
    cr_assert_eq(aredis_write_fmt(&buf, "%f", NAN), 0);
    cr_assert_str_eq(only_arg(&buf, got, sizeof got), "nan");
    cr_assert(isnan(strtod(got, NULL)));
    buf.len = 0;
    cr_assert_eq(aredis_write_fmt(&buf, "%g", -NAN), 0);
    cr_assert_str_eq(only_arg(&buf, got, sizeof got), "nan");
}

static void expect_round_trip(double v)
{
    char got[64];
    buf.len = 0;
    cr_assert_eq(aredis_write_fmt(&buf, "%g", v), 0);
    only_arg(&buf, got, sizeof got);
    char *end;
    double back = strtod(got, &end);
    cr_assert_eq(*end, '\0', "\"%s\" is not a whole number", got);
    cr_assert(memcmp(&back, &v, sizeof v) == 0, "%.17g came back as %.17g (%s)",
              v, back, got);
    /* Never more than the 17 significant digits a double needs. */
    cr_assert(strlen(got) <= 24, "\"%s\" is too long", got);
}

Test(writer, fmt_double_round_trip)
{
    double vals[] = {0.1,
                     1e300,
                     -0.0,
                     0.0,
                     1.0 / 3.0,
                     2.0 / 3.0,
                     0.1 + 0.2,
                     DBL_MAX,
                     -DBL_MAX,
                     DBL_MIN,
                     5e-324,
                     DBL_EPSILON,
                     9007199254740993.0,
                     9007199254740992.0,
                     1e15,
                     1e16,
                     999999999999999.0,
                     -999999999999999.9,
                     3.141592653589793,
                     2.718281828459045,
                     123.456,
                     1e-300,
                     INFINITY,
                     -INFINITY};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
        expect_round_trip(vals[i]);
    /* A deterministic spread of awkward bit patterns. */
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    for (int i = 0; i < 2000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double d;
        memcpy(&d, &x, sizeof d);
        if (isnan(d))
            continue;
        expect_round_trip(d);
    }
}

/* The documented rule, spelled out with the C library alone: the first of
 * %.15g, %.16g, %.17g that strtod() reads back to the same value. The
 * writer takes shortcuts for integers and short decimals; they must give
 * the very same bytes. */
static void reference_text(double v, char *out, size_t cap)
{
    if (isnan(v)) {
        snprintf(out, cap, "nan");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

static void expect_reference(double v)
{
    char got[64], want[64];
    buf.len = 0;
    cr_assert_eq(aredis_write_fmt(&buf, "%f", v), 0);
    only_arg(&buf, got, sizeof got);
    reference_text(v, want, sizeof want);
    cr_assert_str_eq(got, want, "%.17g printed as \"%s\", expected \"%s\"", v,
                     got, want);
}

Test(writer, fmt_double_matches_reference)
{
    /* Short decimals of every magnitude around the shortcut's limits. */
    static const char *texts[] = {
        "0.0001", "0.00010000000000000001", "0.000099999999999999991",
        "0.00012", "0.0001234567890123", "0.5", "1.25", "3.14", "12.5", "99.99",
        "123.456", "1234567.875", "0.30000000000000004", "999999999999999.9",
        "999999999999999.5", "99999999999999.98", "123456789012345.6", "1e15",
        "1.5e15", "9.999999999999999e14", "1e-4", "9.9999e-5", "1e-5", "1e22",
        "1e23", "4.35", "2.675", "1.0000000000000002", "0.9999999999999999",
        "100000000000000.1",
        /* Exact binary fractions whose 16-digit rounding is a true tie,
         * and values whose 20 printed digits leave a tie unsettled. */
        "1000.00006103515625", "1000.0001220703125", "0.000030517578125",
        "3.9168040601008555e-39", "-1.0948669730935775e-21",
        "-3.0759454679032105e+65", "1e300", "5e-324", "1.7976931348623157e308",
        "2.2250738585072014e-308", "9007199254740993", "18014398509481985",
        "123456789012345678", "1e21", "1.5e-7"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        double v = strtod(texts[i], NULL);
        expect_reference(v);
        expect_reference(-v);
        expect_reference(nextafter(v, 0));
        expect_reference(nextafter(v, INFINITY));
    }
    /* Random short decimals: m / 10^k for random m and k. */
    uint64_t x = 0x0123456789ABCDEFULL;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        char text[48];
        snprintf(text, sizeof text, "%llue-%d",
                 (unsigned long long)(x % 10000000000000000ULL >> (x % 40)),
                 (int)(x >> 58) % 22);
        expect_reference(strtod(text, NULL));
        double d;
        memcpy(&d, &x, sizeof d);
        expect_reference(d);
        expect_reference((double)(int32_t)x / 64.0);
    }
}

Test(writer, fmt_double_is_a_double_vararg)
{
    /* A float is promoted to double by the call, as with printf. */
    float f = 0.5f;
    char got[64];
    cr_assert_eq(aredis_write_fmt(&buf, "%f", f), 0);
    cr_assert_str_eq(only_arg(&buf, got, sizeof got), "0.5");
}

Test(writer, fmt_percent)
{
    cr_assert_eq(aredis_write_fmt(&buf, "%% 100%% a%%b %%d %%%%"), 0);
    EXPECT(&buf, "*5\r\n$1\r\n%\r\n$4\r\n100%\r\n$3\r\na%b\r\n$2\r\n%d\r\n"
                 "$2\r\n%%\r\n");
}

Test(writer, fmt_conversion_inside_word)
{
    cr_assert_eq(aredis_write_fmt(&buf, "GET user:%d:name", 42), 0);
    EXPECT(&buf, "*2\r\n$3\r\nGET\r\n$12\r\nuser:42:name\r\n");
    buf.len = 0;
    cr_assert_eq(aredis_write_fmt(&buf, "SET k:%s:%b:%u%% pre%lld%spost", "a",
                                  "bc", (size_t)2, 9u, -5LL, ""),
                 0);
    EXPECT(&buf, "*3\r\n$3\r\nSET\r\n$9\r\nk:a:bc:9%\r\n$9\r\npre-5post\r\n");
    buf.len = 0;
    cr_assert_eq(aredis_write_fmt(&buf, "%s%s%d%f", "x", "y", 1, 2.5), 0);
    EXPECT(&buf, "*1\r\n$6\r\nxy12.5\r\n");
}

Test(writer, fmt_empty_arguments)
{
    cr_assert_eq(aredis_write_fmt(&buf, "SET k %s", ""), 0);
    EXPECT(&buf, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    buf.len = 0;
    cr_assert_eq(
        aredis_write_fmt(&buf, "SET %b %b", NULL, (size_t)0, "xyz", (size_t)0),
        0);
    EXPECT(&buf, "*3\r\n$3\r\nSET\r\n$0\r\n\r\n$0\r\n\r\n");
    buf.len = 0;
    cr_assert_eq(aredis_write_fmt(&buf, "%s", ""), 0);
    EXPECT(&buf, "*1\r\n$0\r\n\r\n");
}

Test(writer, fmt_spaces)
{
    cr_assert_eq(aredis_write_fmt(&buf, "  SET    k  %s   ", "v"), 0);
    EXPECT(&buf, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n");
    /* Only ' ' separates: other white space is part of an argument, and
     * spaces inside a %s value are data. */
    buf.len = 0;
    cr_assert_eq(aredis_write_fmt(&buf, "A\tB %s", " x y "), 0);
    EXPECT(&buf, "*2\r\n$3\r\nA\tB\r\n$5\r\n x y \r\n");
}

Test(writer, fmt_no_arguments)
{
    prefill(&buf);
    struct snap s = take_snap(&buf);
    cr_assert_eq(aredis_write_fmt(&buf, ""), AREDIS_EFORMAT);
    expect_unchanged(&buf, &s);
    cr_assert_eq(aredis_write_fmt(&buf, "     "), AREDIS_EFORMAT);
    expect_unchanged(&buf, &s);
    cr_assert_eq(aredis_write_fmt(&buf, " "), AREDIS_EFORMAT);
    expect_unchanged(&buf, &s);
}

Test(writer, fmt_bad_conversions)
{
    /* Every call passes arguments for the valid conversions before the bad
     * one; the writer must refuse before taking any of them. */
    const char *bad[] = {"%q",  "GET %q",  "%l",    "%l?", "%lx",
                         "%ll", "%llx",    "%lli",  "%z",  "%zd",
                         "%",   "SET k %", "a%",    "% s", "%5d",
                         "%-s", "%.3s",    "%x",    "%p",  "%c",
                         "%S",  "%hd",     "%s %q", "%d%", "%f %lf"};
    prefill(&buf);
    struct snap s = take_snap(&buf);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(aredis_write_fmt(&buf, bad[i], "k", 1), AREDIS_EFORMAT,
                     "format \"%s\" was accepted", bad[i]);
        expect_unchanged(&buf, &s);
    }
}

Test(writer, fmt_null_pointers)
{
    prefill(&buf);
    struct snap s = take_snap(&buf);
    cr_assert_eq(aredis_write_fmt(&buf, "SET %s %s", "k", (const char *)NULL),
                 AREDIS_EINVAL);
    expect_unchanged(&buf, &s);
    cr_assert_eq(
        aredis_write_fmt(&buf, "SET k %b", (const void *)NULL, (size_t)3),
        AREDIS_EINVAL);
    expect_unchanged(&buf, &s);
    cr_assert_eq(aredis_write_fmt(&buf, NULL), AREDIS_EINVAL);
    expect_unchanged(&buf, &s);
    cr_assert_eq(aredis_write_fmt(NULL, "PING"), AREDIS_EINVAL);
}

static int call_vfmt(aredis_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = aredis_write_vfmt(b, fmt, ap);
    va_end(ap);
    return rc;
}

Test(writer, vfmt)
{
    cr_assert_eq(call_vfmt(&buf, "INCRBY %s %lld", "n", -3LL), 0);
    EXPECT(&buf, "*3\r\n$6\r\nINCRBY\r\n$1\r\nn\r\n$2\r\n-3\r\n");
}

Test(writer, append_several)
{
    const char *argv[] = {"DEL", "a", "b"};
    cr_assert_eq(aredis_write_fmt(&buf, "SET %s %d", "a", 1), 0);
    cr_assert_eq(aredis_write_argv(&buf, 3, argv, NULL), 0);
    cr_assert_eq(aredis_write_fmt(&buf, "PING"), 0);
    EXPECT(&buf, "*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n"
                 "*3\r\n$3\r\nDEL\r\n$1\r\na\r\n$1\r\nb\r\n"
                 "*1\r\n$4\r\nPING\r\n");
}

Test(writer, large_bulk)
{
    size_t n = 1u << 20;
    char *big = malloc(n);
    cr_assert(big != NULL);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)(i * 7 + 3);
    prefill(&buf);
    size_t off = buf.len;
    cr_assert_eq(aredis_write_fmt(&buf, "SET big %b", big, n), 0);
    const char head[] = "*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$1048576\r\n";
    cr_assert_eq(buf.len, off + sizeof head - 1 + n + 2);
    cr_assert(memcmp(buf.data + off, head, sizeof head - 1) == 0);
    cr_assert(memcmp(buf.data + off + sizeof head - 1, big, n) == 0);
    cr_assert(memcmp(buf.data + buf.len - 2, "\r\n", 2) == 0);

    /* The same through the argument vector. */
    buf.len = 0;
    const char *argv[] = {"SET", "big", big};
    size_t lens[] = {3, 3, n};
    cr_assert_eq(aredis_write_argv(&buf, 3, argv, lens), 0);
    cr_assert_eq(buf.len, sizeof head - 1 + n + 2);
    cr_assert(memcmp(buf.data, head, sizeof head - 1) == 0);
    cr_assert(memcmp(buf.data + sizeof head - 1, big, n) == 0);
    free(big);
}

/* A format long enough that its plan does not fit the stack arrays must give
 * the same bytes as the argument vector. */
Test(writer, fmt_many_arguments_matches_argv)
{
    aredis_buf other;
    aredis_buf_init(&other);
    cr_assert_eq(
        aredis_write_fmt(&buf,
                         "MSET %d %s %d %s %d %s %d %s %d %s %d %s %d %s "
                         "%d %s %d %s %d %s %d %s k:%d:%d:%d:%d %f",
                         1, "a", 2, "b", 3, "c", 4, "d", 5, "e", 6, "f", 7, "g",
                         8, "h", 9, "i", 10, "j", 11, "k", 1, 2, 3, 4, 0.25),
        0);
    const char *argv[] = {"MSET", "1", "a",         "2",   "b", "3",  "c",
                          "4",    "d", "5",         "e",   "6", "f",  "7",
                          "g",    "8", "h",         "9",   "i", "10", "j",
                          "11",   "k", "k:1:2:3:4", "0.25"};
    cr_assert_eq(aredis_write_argv(&other, 25, argv, NULL), 0);
    expect_bytes_at(&buf, 0, other.data, other.len);
    aredis_buf_cleanup(&other);
}

/* ------------------------------------------------------------------------
 * Allocation failure
 * ------------------------------------------------------------------------ */

static long alloc_count;
static long alloc_fail_at; /* 0: never fail */

static int should_fail(void)
{
    return ++alloc_count == alloc_fail_at;
}

static void *fail_malloc(size_t n)
{
    return should_fail() ? NULL : malloc(n);
}

static void *fail_calloc(size_t c, size_t n)
{
    return should_fail() ? NULL : calloc(c, n);
}

static void *fail_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : realloc(p, n);
}

static const aredis_allocator failing = {fail_malloc, fail_calloc, fail_realloc,
                                         free};

typedef int (*write_fn)(aredis_buf *b);

/* Fail the Nth allocation of write(b) for N = 1, 2, ... until a run
 * succeeds; every failed run must return AREDIS_ENOMEM and leave the
 * buffer exactly as it was. Returns how many runs failed. */
static long oom_loop(write_fn write, const char *exp, size_t explen)
{
    cr_assert_eq(aredis_set_allocator(&failing), 0);
    long failures = 0;
    for (long n = 1;; n++) {
        aredis_buf b;
        aredis_buf_init(&b);
        alloc_fail_at = 0;
        cr_assert_eq(aredis_write_fmt(&b, "PING"), 0);
        struct snap s = take_snap(&b);
        alloc_count = 0;
        alloc_fail_at = n;
        int rc = write(&b);
        alloc_fail_at = 0;
        if (rc == 0) {
            expect_bytes_at(&b, s.len, exp, explen);
            aredis_buf_cleanup(&b);
            break;
        }
        cr_assert_eq(rc, AREDIS_ENOMEM, "allocation %ld: rc %d", n, rc);
        expect_unchanged(&b, &s);
        aredis_buf_cleanup(&b);
        failures++;
        cr_assert(n < 100, "no success after 100 failed allocations");
    }
    aredis_set_allocator(NULL);
    return failures;
}

/* Each command is longer than the 64 bytes a fresh buffer holds, so the
 * buffer must grow. */
static int oom_argv(aredis_buf *b)
{
    const char *argv[] = {"SET", "some-key-of-some-length",
                          "and-a-value-long-enough-to-need-a-realloc"};
    return aredis_write_argv(b, 3, argv, NULL);
}

static int oom_fmt_small(aredis_buf *b)
{
    return aredis_write_fmt(b, "SET %s %s", "some-key-of-some-length",
                            "and-a-value-long-enough-to-need-a-realloc");
}

static int oom_fmt_heap_plan(aredis_buf *b)
{
    return aredis_write_fmt(b, "A %d %d %d %d %d %d %d %d %d %d", 1, 2, 3, 4, 5,
                            6, 7, 8, 9, 10);
}

Test(writer, oom_argv)
{
    const char exp[] = "*3\r\n$3\r\nSET\r\n$23\r\nsome-key-of-some-length\r\n"
                       "$41\r\nand-a-value-long-enough-to-need-a-realloc\r\n";
    cr_assert_geq(oom_loop(oom_argv, exp, sizeof exp - 1), 1);
}

Test(writer, oom_fmt)
{
    const char exp[] = "*3\r\n$3\r\nSET\r\n$23\r\nsome-key-of-some-length\r\n"
                       "$41\r\nand-a-value-long-enough-to-need-a-realloc\r\n";
    cr_assert_geq(oom_loop(oom_fmt_small, exp, sizeof exp - 1), 1);
}

Test(writer, oom_fmt_heap_plan)
{
    /* Ten numbers do not fit the plan's stack room, so this takes two
     * allocations: the plan, then the buffer. */
    const char exp[] = "*11\r\n$1\r\nA\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n"
                       "$1\r\n4\r\n$1\r\n5\r\n$1\r\n6\r\n$1\r\n7\r\n$1\r\n8\r\n"
                       "$1\r\n9\r\n$2\r\n10\r\n";
    cr_assert_geq(oom_loop(oom_fmt_heap_plan, exp, sizeof exp - 1), 2);
}

Test(writer, overflowing_length)
{
    /* A length no buffer can hold fails cleanly instead of wrapping. */
    prefill(&buf);
    struct snap s = take_snap(&buf);
    const char *argv[] = {"SET", "k", "v"};
    size_t lens[] = {3, 1, SIZE_MAX - 10};
    cr_assert_eq(aredis_write_argv(&buf, 3, argv, lens), AREDIS_ENOMEM);
    expect_unchanged(&buf, &s);
    size_t lens2[] = {3, SIZE_MAX / 2, SIZE_MAX / 2};
    cr_assert_eq(aredis_write_argv(&buf, 3, argv, lens2), AREDIS_ENOMEM);
    expect_unchanged(&buf, &s);
    cr_assert_eq(aredis_write_fmt(&buf, "SET %b %b", "k", SIZE_MAX / 2, "v",
                                  SIZE_MAX / 2),
                 AREDIS_ENOMEM);
    expect_unchanged(&buf, &s);
}

/* ------------------------------------------------------------------------
 * Locales
 * ------------------------------------------------------------------------ */

static void expect_locale_independent(void)
{
    char got[64];
    buf.len = 0;
    cr_assert_eq(aredis_write_fmt(&buf, "%f", 1.5), 0);
    cr_assert_str_eq(only_arg(&buf, got, sizeof got), "1.5");
    buf.len = 0;
    cr_assert_eq(aredis_write_fmt(&buf, "%g", -1234.0625), 0);
    cr_assert_str_eq(only_arg(&buf, got, sizeof got), "-1234.0625");
    buf.len = 0;
    cr_assert_eq(aredis_write_fmt(&buf, "%f", 1.0 / 3.0), 0);
    cr_assert_str_eq(only_arg(&buf, got, sizeof got), "0.3333333333333333");
    buf.len = 0;
    cr_assert_eq(aredis_write_fmt(&buf, "%g", 1.25e-100), 0);
    cr_assert_str_eq(only_arg(&buf, got, sizeof got), "1.25e-100");
    buf.len = 0;
    cr_assert_eq(aredis_write_fmt(&buf, "%g", 0.1 + 0.2), 0);
    cr_assert_str_eq(only_arg(&buf, got, sizeof got), "0.30000000000000004");
    /* Its 20 digits end in an unsettled tie: the snprintf fallback. */
    buf.len = 0;
    cr_assert_eq(aredis_write_fmt(&buf, "%g", 3.9168040601008555e-39), 0);
    cr_assert_str_eq(only_arg(&buf, got, sizeof got), "3.9168040601008555e-39");
    buf.len = 0;
    cr_assert_eq(aredis_write_fmt(&buf, "%d", 1234567), 0);
    cr_assert_str_eq(only_arg(&buf, got, sizeof got), "1234567");
}

Test(writer, locale_c_utf8)
{
    const char *names[] = {"C.UTF-8", "C.utf8"};
    const char *got = NULL;
    for (size_t i = 0; i < 2 && got == NULL; i++)
        got = setlocale(LC_ALL, names[i]);
    if (got == NULL)
        cr_skip_test("no C.UTF-8 locale installed");
    expect_locale_independent();
    setlocale(LC_ALL, "C");
}

Test(writer, locale_decimal_comma)
{
    /* These locales write 1,5 for 1.5. Set LOCPATH to a directory made with
     * localedef to run this where none is installed (see
     * docs/internals/writer.md). */
    const char *names[] = {"de_DE.UTF-8", "de_DE.utf8", "de_DE",
                           "fr_FR.UTF-8", "fr_FR.utf8", "nl_NL.UTF-8",
                           "ru_RU.UTF-8"};
    const char *got = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && got == NULL; i++)
        got = setlocale(LC_NUMERIC, names[i]);
    if (got == NULL)
        cr_skip_test("no locale with a decimal comma is installed");
    char probe[16];
    snprintf(probe, sizeof probe, "%.1f", 1.5);
    cr_assert_str_eq(probe, "1,5", "locale %s has no decimal comma", got);
    expect_locale_independent();
    setlocale(LC_NUMERIC, "C");
}
