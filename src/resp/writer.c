/* RESP writer (resp layer): turns one command, given as an argument vector
 * or as a printf-like format, into the RESP array of bulk strings a Redis
 * server expects, appended to an aredis_buf.
 *
 * Pure encoding: no I/O, no clock, no threads, no global state of its own.
 * Memory comes only from aredis_buf growth and util/alloc.h. Every entry
 * point either appends one whole command or leaves the buffer exactly as it
 * was. See docs/internals/writer.md for the design and its measurements. */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aredis/error.h"
#include "resp/resp.h"
#include "util/alloc.h"

/* ------------------------------------------------------------------------
 * Numbers
 * ------------------------------------------------------------------------ */

/* Two decimal digits per entry, so the conversion loop divides by 100 and
 * halves the number of (slow) divisions. */
static const char digit_pairs[201] = "0001020304050607080910111213141516171819"
                                     "2021222324252627282930313233343536373839"
                                     "4041424344454647484950515253545556575859"
                                     "6061626364656667686970717273747576777879"
                                     "8081828384858687888990919293949596979899";

/* Room for any number the writer prints: a 64-bit integer with its sign
 * (21 bytes) or a double in the shortest round-trip form (at most 24 bytes,
 * "-2.2250738585072014e-308"). */
#define NUM_SLOT 32

_Static_assert(sizeof(unsigned long long) * 3 + 2 <= NUM_SLOT,
               "an integer must fit a number slot");

static unsigned count_digits(unsigned long long v)
{
    /* Lengths and counts are almost always small, so test from the bottom
     * and take four digits per step for the rare large value. */
    unsigned n = 1;
    for (;;) {
        if (v < 10)
            return n;
        if (v < 100)
            return n + 1;
        if (v < 1000)
            return n + 2;
        if (v < 10000)
            return n + 3;
        v /= 10000;
        n += 4;
    }
}

/* Write v as exactly ndigits decimal digits (ndigits == count_digits(v))
 * at p, back to front, and return the end. */
static inline char *put_uint(char *p, unsigned long long v, unsigned ndigits)
{
    char *end = p + ndigits;
    char *q = end;
    while (v >= 100) {
        unsigned i = (unsigned)(v % 100) * 2;
        v /= 100;
        q -= 2;
        q[0] = digit_pairs[i];
        q[1] = digit_pairs[i + 1];
    }
    if (v >= 10) {
        unsigned i = (unsigned)v * 2;
        q[-2] = digit_pairs[i];
        q[-1] = digit_pairs[i + 1];
    } else {
        q[-1] = (char)('0' + v);
    }
    return end;
}

static size_t fmt_ull(char *out, unsigned long long v)
{
    unsigned n = count_digits(v);
    put_uint(out, v, n);
    return n;
}

static size_t fmt_ll(char *out, long long v)
{
    if (v >= 0)
        return fmt_ull(out, (unsigned long long)v);
    /* Negate in unsigned arithmetic so LLONG_MIN does not overflow. */
    out[0] = '-';
    return 1 + fmt_ull(out + 1, 0ULL - (unsigned long long)v);
}

/* Every power of ten that a double holds exactly, so that multiplying or
 * dividing an exact integer by one is a single correctly rounded
 * operation. */
static const double pow10_dbl[] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* The common case of a double with a short decimal form (12.5, 0.1, 3.14)
 * without printf: find the smallest k such that an integer m <= 1e15 gives
 * m / 10^k == |d|. Because m < 2^53 and 10^k are both exact, that division
 * is correctly rounded, so it equals what strtod() makes of the decimal
 * m * 10^-k (Clinger's fast path); and as that decimal has at most 15
 * significant digits and lies within half an ulp of d, it is exactly what
 * %.15g prints. Restricted to 1e-4 <= |d| < 1e15, where %g uses plain
 * (not exponent) notation, so the bytes match the snprintf() path below;
 * there 10^k never needs more than k = 19. Returns 0 when d has no such
 * form (it needs 16 or 17 digits). */
static size_t fmt_short_decimal(char *out, double d)
{
    double a = d < 0 ? -d : d;
    if (!(a >= 1e-4 && a < 1e15))
        return 0;
    unsigned long long scale = 1;
    for (unsigned k = 1; k <= 19; k++) {
        scale *= 10;
        double t = a * pow10_dbl[k];
        if (t >= 1e15)
            return 0;
        unsigned long long m = (unsigned long long)(t + 0.5);
        if ((double)m / pow10_dbl[k] != a)
            continue;
        unsigned long long ip = m / scale, frac = m % scale;
        /* The smallest k leaves no trailing zero in the fraction and |d|
         * is not integral (handled before), but strip zeros anyway rather
         * than rely on that; the fraction keeps at least one digit. */
        unsigned digits = k;
        while (digits > 1 && frac % 10 == 0) {
            frac /= 10;
            digits--;
        }
        size_t len = 0;
        if (d < 0)
            out[len++] = '-';
        len += fmt_ull(out + len, ip);
        out[len++] = '.';
        /* Zero-padded to exactly `digits` digits, written back to front. */
        for (unsigned j = digits; j > 0; j--) {
            out[len + j - 1] = (char)('0' + frac % 10);
            frac /= 10;
        }
        return len + digits;
    }
    return 0;
}

/* True for the bytes of a %g number other than its decimal point. */
static int is_g_char(char c)
{
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e';
}

/* The rule itself, spelled out with the C library: the first of %.15g,
 * %.16g and %.17g that strtod() reads back, with the locale's decimal point
 * turned into '.'. Only used when fmt_double_digits() cannot decide, as it
 * costs up to three snprintf() and two strtod() calls. */
static size_t fmt_double_printf(char *out, double d)
{
    /* snprintf() and strtod() both follow LC_NUMERIC, which is fine for the
     * round-trip check because they agree with each other. The buffer is
     * larger than NUM_SLOT in case a locale's decimal point is several
     * bytes long. */
    char tmp[64];
    int w = 0;
    for (int prec = 15; prec <= 17; prec++) {
        w = snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (w <= 0 || (size_t)w >= sizeof tmp)
            return 0;
        if (prec == 17 || strtod(tmp, NULL) == d)
            break;
    }

    /* Everything %g prints for a finite value is a digit, a sign, 'e' or
     * the decimal point, so any other run of bytes is the point. Compact
     * it to a single '.' in place; the result only ever gets shorter. */
    size_t len = 0, n = (size_t)w;
    for (size_t i = 0; i < n;) {
        if (is_g_char(tmp[i])) {
            tmp[len++] = tmp[i++];
            continue;
        }
        tmp[len++] = '.';
        while (i < n && !is_g_char(tmp[i]))
            i++;
    }
    if (len > NUM_SLOT)
        return 0;
    memcpy(out, tmp, len);
    return len;
}

/* Lay out what %.<prec>g prints, given its prec correctly rounded
 * significant digits and the decimal exponent x of the first one
 * (C11 7.21.6.1): plain notation when -4 <= x < prec, otherwise
 * d.ddde+xx with at least two exponent digits; trailing zeros of the
 * fraction are dropped, and the point with them if nothing is left. */
static size_t put_g(char *out, int neg, const char *dig, int prec, int x)
{
    size_t nd = (size_t)prec, len = 0;
    while (nd > 1 && dig[nd - 1] == '0')
        nd--;
    if (neg)
        out[len++] = '-';
    if (x >= -4 && x < prec) {
        if (x < 0) {
            out[len++] = '0';
            out[len++] = '.';
            for (int i = -1; i > x; i--)
                out[len++] = '0';
            memcpy(out + len, dig, nd);
            return len + nd;
        }
        size_t ip = (size_t)x + 1;
        for (size_t i = 0; i < ip; i++)
            out[len++] = i < nd ? dig[i] : '0';
        if (nd > ip) {
            out[len++] = '.';
            memcpy(out + len, dig + ip, nd - ip);
            len += nd - ip;
        }
        return len;
    }
    out[len++] = dig[0];
    if (nd > 1) {
        out[len++] = '.';
        memcpy(out + len, dig + 1, nd - 1);
        len += nd - 1;
    }
    out[len++] = 'e';
    out[len++] = x < 0 ? '-' : '+';
    unsigned ux = (unsigned)(x < 0 ? -x : x);
    if (ux < 10)
        out[len++] = '0';
    return len + fmt_ull(out + len, ux);
}

/* Digits the double path asks printf for. Three beyond the 17 that can
 * matter make a tie it cannot settle rare (a few values in a thousand
 * need the slow path), while each extra digit costs printf some work. */
#define EXACT_DIGITS 20

/* Round the EXACT_DIGITS correctly rounded digits in all to prec digits in
 * dig, carrying into the exponent *x when needed. Because all is within
 * half a unit of its last place of the true value, the true value rounds
 * the same way unless the dropped digits read exactly 5000.... Such a tie
 * is real when `exact` says the digits are the whole decimal expansion,
 * and then goes to the even digit as printf does; otherwise it cannot be
 * settled from these digits and the function returns -1. */
static int round_digits(const char *all, int prec, int exact, char *dig, int *x)
{
    size_t p = (size_t)prec;
    memcpy(dig, all, p);
    int up = all[p] > '5';
    if (all[p] == '5') {
        for (size_t i = p + 1; i < EXACT_DIGITS && !up; i++)
            up = all[i] != '0';
        if (!up && !exact)
            return -1;
        if (!up)
            up = (dig[p - 1] - '0') % 2 == 1;
    }
    if (!up)
        return 0;
    size_t i = p;
    while (i > 0 && dig[i - 1] == '9')
        dig[--i] = '0';
    if (i > 0) {
        dig[i - 1]++;
    } else {
        dig[0] = '1';
        (*x)++;
    }
    return 0;
}

/* Whether the decimal dig[0..prec) * 10^(x - prec + 1) reads back as a. */
static int reads_back(const char *dig, int prec, int x, double a)
{
    unsigned long long q = 0;
    for (int i = 0; i < prec; i++)
        q = q * 10 + (unsigned)(dig[i] - '0');
    int e = x - prec + 1;
    /* Clinger's fast path: q and 10^|e| are exact doubles, so one
     * correctly rounded operation gives what strtod() would. */
    if (q <= (1ULL << 53) && e >= -22 && e <= 22) {
        double v =
            e >= 0 ? (double)q * pow10_dbl[e] : (double)q / pow10_dbl[-e];
        return v == a;
    }
    /* Written with an exponent and no decimal point, the text reads the
     * same in every locale. */
    char text[48];
    snprintf(text, sizeof text, "%llue%d", q, e);
    return strtod(text, NULL) == a;
}

/* Whether the whole decimal expansion of a (finite, > 0), whose first
 * digit is at 10^x, fits in EXACT_DIGITS significant digits, so that the
 * digits printf gave are exact rather than rounded. With a = m * 2^e and
 * m odd, the expansion ends at 10^e when e < 0 (2^-n = 5^n / 10^n ends in
 * a 5 at the n-th decimal) and at or after the units digit otherwise. */
static int expansion_fits(double a, int x)
{
    int e;
    double f = frexp(a, &e);
    /* f is in [0.5, 1): 53 bits of it make an integer. */
    unsigned long long m = (unsigned long long)ldexp(f, 53);
    e -= 53;
    while (m != 0 && m % 2 == 0) {
        m /= 2;
        e++;
    }
    int last = e < 0 ? e : 0;
    return last >= x - (EXACT_DIGITS - 1);
}

/* The same result as fmt_double_printf() from one snprintf() and no
 * strtod() in the common case: take 20 exact digits once, round them to
 * 15, 16 and 17 digits ourselves and check each candidate with exact
 * double arithmetic. Falls back to fmt_double_printf() on a rounding tie
 * or an unexpected snprintf() output. */
static size_t fmt_double_digits(char *out, double d)
{
    double a = d < 0 ? -d : d;
    char tmp[64];
    int w = snprintf(tmp, sizeof tmp, "%.19e", a);
    if (w <= 0 || (size_t)w >= sizeof tmp)
        return fmt_double_printf(out, d);
    char all[EXACT_DIGITS];
    size_t nd = 0;
    const char *p = tmp;
    /* "d.ddd...e-xx", whatever bytes the locale uses for the point. */
    for (; *p != '\0' && *p != 'e'; p++) {
        if (*p < '0' || *p > '9')
            continue;
        if (nd == EXACT_DIGITS)
            return fmt_double_printf(out, d);
        all[nd++] = *p;
    }
    if (nd != EXACT_DIGITS || *p != 'e')
        return fmt_double_printf(out, d);
    p++;
    int neg = *p == '-';
    if (*p == '-' || *p == '+')
        p++;
    int x = 0;
    for (int i = 0; i < 4 && *p >= '0' && *p <= '9'; i++, p++)
        x = x * 10 + (*p - '0');
    if (*p != '\0')
        return fmt_double_printf(out, d);
    if (neg)
        x = -x;

    char dig[17];
    int exact = -1; /* not yet known */
    for (int prec = 15; prec <= 17; prec++) {
        int xr = x;
        int rc = round_digits(all, prec, exact == 1, dig, &xr);
        if (rc != 0 && exact == -1) {
            exact = expansion_fits(a, x);
            rc = round_digits(all, prec, exact == 1, dig, &xr);
        }
        if (rc != 0)
            return fmt_double_printf(out, d);
        /* Seventeen digits always read back (IEEE 754 binary64). */
        if (prec == 17 || reads_back(dig, prec, xr, a))
            return put_g(out, d < 0, dig, prec, xr);
    }
    return 0;
}

/* A double in the shortest "%.Ng" form (N = 15, 16 or 17) that strtod()
 * reads back to the same value, with '.' as the decimal point whatever the
 * locale says, so the server sees the same bytes everywhere. Cheap cases
 * first: integers, then short decimals, then the digit-rounding path.
 * Like the C library, the shortcuts assume the default round-to-nearest
 * floating-point mode.
 * Returns the length, or 0 if the C library produced something absurd. */
static size_t fmt_double(char *out, double d)
{
    if (isnan(d)) {
        memcpy(out, "nan", 3);
        return 3;
    }
    if (isinf(d)) {
        if (d < 0) {
            memcpy(out, "-inf", 4);
            return 4;
        }
        memcpy(out, "inf", 3);
        return 3;
    }
    /* Integral values below 1e15 print as plain integers under %.15g, so
     * the integer path gives the same bytes without printf's cost. Zero
     * is apart because -0.0 must keep its sign to round-trip. */
    if (d == 0) {
        if (signbit(d)) {
            memcpy(out, "-0", 2);
            return 2;
        }
        out[0] = '0';
        return 1;
    }
    if (d > -1e15 && d < 1e15) {
        long long i = (long long)d;
        if ((double)i == d)
            return fmt_ll(out, i);
    }
    size_t n = fmt_short_decimal(out, d);
    if (n != 0)
        return n;
    return fmt_double_digits(out, d);
}

/* ------------------------------------------------------------------------
 * Buffer helpers
 * ------------------------------------------------------------------------ */

/* The common case is a buffer that already has room; checking that here
 * saves a call into buf.c for every command. */
static int reserve(aredis_buf *b, size_t n)
{
    if (b->cap - b->len >= n)
        return 0;
    return aredis__buf_reserve(b, n);
}

/* Bytes taken by "$<len>\r\n<len bytes>\r\n", or SIZE_MAX on overflow. */
static size_t bulk_size(size_t len)
{
    /* A length with 20 digits plus "$\r\n\r\n" is at most 25 bytes. */
    if (len > SIZE_MAX - 25)
        return SIZE_MAX;
    return len + count_digits(len) + 5;
}

static inline char *put_header(char *p, char type, size_t n)
{
    *p++ = type;
    p = put_uint(p, n, count_digits(n));
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

/* ------------------------------------------------------------------------
 * Argument vector
 * ------------------------------------------------------------------------ */

int aredis_write_argv(aredis_buf *b, int argc, const char *const *argv,
                      const size_t *argvlen)
{
    if (b == NULL || argc < 1 || argv == NULL)
        return AREDIS_EINVAL;
    size_t n = (size_t)argc;

    /* First pass: validate and size the whole command, so the buffer grows
     * at most once and nothing is written unless everything fits. */
    size_t total = count_digits(n) + 3;
    for (size_t i = 0; i < n; i++) {
        if (argv[i] == NULL)
            return AREDIS_EINVAL;
        size_t one = bulk_size(argvlen != NULL ? argvlen[i] : strlen(argv[i]));
        if (one > SIZE_MAX - total)
            return AREDIS_ENOMEM;
        total += one;
    }
    int rc = reserve(b, total);
    if (rc != 0)
        return rc;

    char *p = put_header(b->data + b->len, '*', n);
    for (size_t i = 0; i < n; i++) {
        size_t len = argvlen != NULL ? argvlen[i] : strlen(argv[i]);
        p = put_header(p, '$', len);
        memcpy(p, argv[i], len);
        p += len;
        *p++ = '\r';
        *p++ = '\n';
    }
    b->len = (size_t)(p - b->data);
    return 0;
}

/* ------------------------------------------------------------------------
 * printf-like format
 *
 * Three steps, and only the second one reads the va_list:
 *   1. scan:   validate every conversion and count arguments, pieces and
 *              numbers, reading the format alone. A va_list cannot be
 *              checked against its format, so a bad format must be refused
 *              before a single va_arg() is taken, or it would be undefined
 *              behaviour rather than an error.
 *   2. gather: walk the format again, take the values and describe every
 *              argument as a list of pieces (pointer, length) into the
 *              format, the caller's strings or a small number scratch.
 *              This fixes each argument's length and the total size.
 *   3. emit:   reserve once and copy the pieces out behind "*N" and "$len".
 * Nothing touches the buffer before step 3, and step 3 cannot fail.
 * ------------------------------------------------------------------------ */

enum conv {
    CONV_BAD,
    CONV_PCT,
    CONV_STR,
    CONV_BIN,
    /* Every conversion from here on prints a number into a slot. */
    CONV_INT,
    CONV_UINT,
    CONV_LONG,
    CONV_ULONG,
    CONV_LLONG,
    CONV_ULLONG,
    CONV_SIZE,
    CONV_DOUBLE
};

/* Decode the conversion whose letters start at p (just after a '%').
 * Sets *used to the number of letters; the set is exactly the documented
 * one, and anything else, the end of the string included, is CONV_BAD. */
static inline enum conv parse_conv(const char *p, size_t *used)
{
    *used = 1;
    switch (p[0]) {
    case '%':
        return CONV_PCT;
    case 's':
        return CONV_STR;
    case 'b':
        return CONV_BIN;
    case 'd':
    case 'i':
        return CONV_INT;
    case 'u':
        return CONV_UINT;
    case 'f':
    case 'g':
        return CONV_DOUBLE;
    case 'z':
        *used = 2;
        return p[1] == 'u' ? CONV_SIZE : CONV_BAD;
    case 'l':
        *used = 2;
        if (p[1] == 'd')
            return CONV_LONG;
        if (p[1] == 'u')
            return CONV_ULONG;
        if (p[1] != 'l')
            return CONV_BAD;
        *used = 3;
        if (p[2] == 'd')
            return CONV_LLONG;
        if (p[2] == 'u')
            return CONV_ULLONG;
        return CONV_BAD;
    default:
        return CONV_BAD;
    }
}

struct fmt_counts {
    size_t nargs;
    size_t npieces; /* an upper bound */
    size_t nnums;
};

/* Bytes that end a literal run: the end of the string, the argument
 * separator and the start of a conversion. Testing one table entry per
 * byte keeps the format walks (there are two) to a load and a branch. */
static const unsigned char ends_run[256] = {['\0'] = 1, [' '] = 1, ['%'] = 1};

/* Step 1. Only ' ' separates arguments; runs of spaces count as one and
 * leading or trailing spaces are ignored, so "  GET  k " has two. */
static int scan_format(const char *fmt, struct fmt_counts *c)
{
    size_t nargs = 0, npieces = 0, nnums = 0;
    const char *p = fmt;
    for (;;) {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            break;
        nargs++;
        /* The literal run that may end the argument. */
        npieces++;
        for (;;) {
            while (!ends_run[(unsigned char)*p])
                p++;
            if (*p != '%')
                break;
            size_t used;
            enum conv k = parse_conv(p + 1, &used);
            if (k == CONV_BAD)
                return AREDIS_EFORMAT;
            p += 1 + used;
            /* "%%" closes the literal run before it (keeping one '%');
             * a value adds that run and itself. */
            npieces += k == CONV_PCT ? 1 : 2;
            if (k >= CONV_INT)
                nnums++;
        }
    }
    if (nargs == 0)
        return AREDIS_EFORMAT;
    c->nargs = nargs;
    c->npieces = npieces;
    c->nnums = nnums;
    return 0;
}

struct piece {
    const char *ptr;
    size_t len;
};

struct arg {
    size_t len;
    size_t npieces;
};

/* What step 2 fills in and step 3 reads. */
struct plan {
    struct piece *pieces;
    struct arg *args;
    char *nums; /* nnums slots of NUM_SLOT bytes */
    size_t nargs;
    size_t total; /* bytes of the whole encoded command */
};

/* Format one numeric value into slot; returns its length, 0 on failure. */
static size_t take_number(enum conv k, char *slot, va_list *ap)
{
    switch (k) {
    case CONV_INT:
        return fmt_ll(slot, va_arg(*ap, int));
    case CONV_UINT:
        return fmt_ull(slot, va_arg(*ap, unsigned int));
    case CONV_LONG:
        return fmt_ll(slot, va_arg(*ap, long));
    case CONV_ULONG:
        return fmt_ull(slot, va_arg(*ap, unsigned long));
    case CONV_LLONG:
        return fmt_ll(slot, va_arg(*ap, long long));
    case CONV_ULLONG:
        return fmt_ull(slot, va_arg(*ap, unsigned long long));
    case CONV_SIZE:
        return fmt_ull(slot, va_arg(*ap, size_t));
    case CONV_DOUBLE:
        return fmt_double(slot, va_arg(*ap, double));
    default:
        return 0;
    }
}

/* Add n to *sum, reporting overflow; a command that large cannot be
 * allocated anyway, hence AREDIS_ENOMEM. */
static int add_size(size_t *sum, size_t n)
{
    if (n > SIZE_MAX - *sum)
        return AREDIS_ENOMEM;
    *sum += n;
    return 0;
}

/* Take the value of conversion k (not %%) into *pc: a pointer to the
 * caller's bytes for %s and %b, or a number formatted into the next slot.
 * Returns 0, or AREDIS_EINVAL for a NULL pointer the contract refuses (or
 * a double the C library failed to print, which does not happen). */
static int take_value(enum conv k, va_list *ap, char **slot, struct piece *pc)
{
    if (k == CONV_STR) {
        const char *s = va_arg(*ap, const char *);
        if (s == NULL)
            return AREDIS_EINVAL;
        pc->ptr = s;
        pc->len = strlen(s);
        return 0;
    }
    if (k == CONV_BIN) {
        const void *s = va_arg(*ap, const void *);
        size_t n = va_arg(*ap, size_t);
        if (s == NULL && n != 0)
            return AREDIS_EINVAL;
        /* memcpy() wants a valid pointer even for zero bytes. */
        pc->ptr = s != NULL ? s : "";
        pc->len = n;
        return 0;
    }
    pc->len = take_number(k, *slot, ap);
    if (pc->len == 0)
        return AREDIS_EINVAL;
    pc->ptr = *slot;
    *slot += NUM_SLOT;
    return 0;
}

/* Record the literal bytes [from, to) as a piece and count them. */
static inline struct piece *add_literal(struct piece *pc, const char *from,
                                        const char *to, size_t *len)
{
    pc->ptr = from;
    pc->len = (size_t)(to - from);
    *len += pc->len;
    return pc + 1;
}

/* Step 2, over a format that scan_format() accepted. It fills at most the
 * counts scan_format() found, and sets pl->nargs and pl->total from what
 * it really produced. */
static int gather(const char *fmt, va_list *ap, struct plan *pl)
{
    struct piece *pc = pl->pieces;
    struct arg *arg = pl->args;
    char *slot = pl->nums;
    size_t total = 0;
    const char *p = fmt;

    for (;;) {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            break;
        struct piece *first = pc;
        size_t len = 0;
        const char *lit = p;
        for (;;) {
            while (!ends_run[(unsigned char)*p])
                p++;
            if (*p != '%')
                break;
            size_t used;
            enum conv k = parse_conv(p + 1, &used);
            if (k == CONV_PCT) {
                /* Keep the first '%' in the run, skip the second. */
                pc = add_literal(pc, lit, p + 1, &len);
                p += 2;
                lit = p;
                continue;
            }
            if (p != lit)
                pc = add_literal(pc, lit, p, &len);
            p += 1 + used;
            lit = p;
            int rc = take_value(k, ap, &slot, pc);
            if (rc != 0)
                return rc;
            if (add_size(&len, pc->len) != 0)
                return AREDIS_ENOMEM;
            pc++;
        }
        if (p != lit)
            pc = add_literal(pc, lit, p, &len);
        arg->len = len;
        arg->npieces = (size_t)(pc - first);
        arg++;
        if (add_size(&total, bulk_size(len)) != 0)
            return AREDIS_ENOMEM;
    }
    pl->nargs = (size_t)(arg - pl->args);
    pl->total = count_digits(pl->nargs) + 3;
    return add_size(&pl->total, total);
}

/* Step 3: cannot fail, the room was reserved. */
static void emit(aredis_buf *b, const struct plan *pl)
{
    char *p = put_header(b->data + b->len, '*', pl->nargs);
    const struct piece *pc = pl->pieces;
    for (size_t i = 0; i < pl->nargs; i++) {
        const struct arg *a = &pl->args[i];
        p = put_header(p, '$', a->len);
        for (size_t j = 0; j < a->npieces; j++, pc++) {
            memcpy(p, pc->ptr, pc->len);
            p += pc->len;
        }
        *p++ = '\r';
        *p++ = '\n';
    }
    b->len = (size_t)(p - b->data);
}

/* Stack room for the plan of an ordinary command; a longer format pays
 * for one heap block. */
#define STACK_PIECES 32
#define STACK_ARGS 16
#define STACK_NUMS 8

int aredis_write_vfmt(aredis_buf *b, const char *fmt, va_list ap)
{
    if (b == NULL || fmt == NULL)
        return AREDIS_EINVAL;
    struct fmt_counts cnt;
    int rc = scan_format(fmt, &cnt);
    if (rc != 0)
        return rc;

    struct piece stack_pieces[STACK_PIECES];
    struct arg stack_args[STACK_ARGS];
    char stack_nums[STACK_NUMS * NUM_SLOT];
    void *heap = NULL;
    struct plan pl = {stack_pieces, stack_args, stack_nums, cnt.nargs, 0};

    if (cnt.npieces > STACK_PIECES || cnt.nargs > STACK_ARGS ||
        cnt.nnums > STACK_NUMS) {
        /* Each count is bounded by the format's length, so the size cannot
         * overflow for any format that fits in memory; check anyway rather
         * than rely on it. Keeping each product under a quarter of
         * SIZE_MAX keeps their sum in range too. */
        size_t psz = sizeof(struct piece), asz = sizeof(struct arg);
        if (cnt.npieces > SIZE_MAX / psz / 4 ||
            cnt.nargs > SIZE_MAX / asz / 4 ||
            cnt.nnums > SIZE_MAX / NUM_SLOT / 4)
            return AREDIS_ENOMEM;
        size_t size =
            cnt.npieces * psz + cnt.nargs * asz + cnt.nnums * NUM_SLOT;
        heap = aredis__malloc(size);
        if (heap == NULL)
            return AREDIS_ENOMEM;
        /* Pieces first, then args (both pointer-or-size_t aligned), and the
         * byte-aligned number slots last. */
        pl.pieces = heap;
        pl.args = (struct arg *)(void *)(pl.pieces + cnt.npieces);
        pl.nums = (char *)(pl.args + cnt.nargs);
    }

    /* A va_list parameter may be an array type adjusted to a pointer, so
     * &ap is not portably a va_list *; a local copy's address is. */
    va_list cp;
    va_copy(cp, ap);
    rc = gather(fmt, &cp, &pl);
    va_end(cp);
    if (rc == 0)
        rc = reserve(b, pl.total);
    if (rc == 0)
        emit(b, &pl);
    if (heap != NULL)
        aredis__free(heap);
    return rc;
}

int aredis_write_fmt(aredis_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = aredis_write_vfmt(b, fmt, ap);
    va_end(ap);
    return rc;
}
