/* Unit tests for the RESP reader: every type, every protocol error, every
 * split of a long mixed stream, limits, attributes, push, the zero-copy
 * prepare/commit path, owned copies and allocation failure. No server. */
#include <criterion/criterion.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "aredis/alloc.h"
#include "aredis/error.h"
#include "aredis/resp.h"
#include "reply_text.h"
#include "resp/resp.h"
#include "resp/resp_int.h"

#define TEXT_CAP 8192

/* Feed `in` in one go and render every reply, separated by " ; ". */
static int parse_all(aredis_reader *rd, const char *in, size_t n, char *out,
                     size_t cap)
{
    out[0] = '\0';
    int e = aredis_reader_feed(rd, in, n);
    if (e)
        return e;
    const aredis_reply *r;
    int count = 0;
    while ((e = aredis_reader_get_reply(rd, &r)) == 1) {
        char one[TEXT_CAP];
        reply_text(r, one, sizeof one);
        size_t used = strlen(out);
        snprintf(out + used, cap - used, "%s%s", count ? " ; " : "", one);
        count++;
    }
    return e < 0 ? e : count;
}

static void expect_one(const char *in, size_t n, const char *want)
{
    aredis_reader *rd = aredis_reader_new(NULL);
    cr_assert_not_null(rd);
    char got[TEXT_CAP];
    int k = parse_all(rd, in, n, got, sizeof got);
    cr_assert_eq(k, 1, "input %.*s: %d replies (%s)", (int)n, in, k,
                 aredis_reader_errstr(rd));
    cr_assert_str_eq(got, want, "input %.*s", (int)n, in);
    cr_assert_eq(aredis_reader_buffered(rd), 0);
    aredis_reader_free(rd);
}

#define EXPECT(in, want) expect_one(in, sizeof(in) - 1, want)

Test(reader, every_type)
{
    EXPECT("+OK\r\n", "status:OK");
    EXPECT("+\r\n", "status:");
    EXPECT("-ERR unknown command 'foo'\r\n", "err:ERR unknown command 'foo'");
    EXPECT(":0\r\n", "int:0");
    EXPECT(":-42\r\n", "int:-42");
    EXPECT(":9223372036854775807\r\n", "int:9223372036854775807");
    EXPECT(":-9223372036854775808\r\n", "int:-9223372036854775808");
    EXPECT("$5\r\nhello\r\n", "str:hello");
    EXPECT("$0\r\n\r\n", "str:");
    EXPECT("$4\r\na\r\nb\r\n", "str:a\\x0d\\x0ab");
    EXPECT("$-1\r\n", "nil");
    EXPECT("*-1\r\n", "nil");
    EXPECT("_\r\n", "nil");
    EXPECT("#t\r\n", "bool:1");
    EXPECT("#f\r\n", "bool:0");
    EXPECT(",1.5\r\n", "dbl:1.5");
    EXPECT(",-0.25e2\r\n", "dbl:-25");
    EXPECT(",inf\r\n", "dbl:inf");
    EXPECT(",-inf\r\n", "dbl:-inf");
    EXPECT(",nan\r\n", "dbl:nan");
    EXPECT("(3492890328409238509324850943850943825024385\r\n",
           "big:3492890328409238509324850943850943825024385");
    EXPECT("(-1\r\n", "big:-1");
    EXPECT("!21\r\nSYNTAX invalid syntax\r\n", "err:SYNTAX invalid syntax");
    EXPECT("=15\r\ntxt:Some string\r\n", "verb(txt):Some string");
    EXPECT("=4\r\nmkd:\r\n", "verb(mkd):");
    EXPECT("*0\r\n", "[]");
    EXPECT("*2\r\n$1\r\na\r\n:1\r\n", "[str:a,int:1]");
    EXPECT("%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n",
           "{status:first=>int:1,status:second=>int:2}");
    EXPECT("%0\r\n", "{}");
    EXPECT("~3\r\n+a\r\n+b\r\n+c\r\n", "~(status:a,status:b,status:c)");
    EXPECT(">3\r\n+message\r\n+chan\r\n$2\r\nhi\r\n",
           ">(status:message,status:chan,str:hi)");
    EXPECT("*3\r\n*1\r\n*0\r\n%1\r\n_\r\n#t\r\n~0\r\n",
           "[[[]],{nil=>bool:1},~()]");
}

Test(reader, fields_are_set)
{
    aredis_reader *rd = aredis_reader_new(NULL);
    const aredis_reply *r;
    cr_assert_eq(aredis_reader_feed(rd, "-ERR x\r\n", 8), 0);
    cr_assert_eq(aredis_reader_get_reply(rd, &r), 1);
    cr_assert_eq(r->type, AREDIS_REPLY_ERROR);
    cr_assert_eq(r->code, AREDIS_ESERVER);
    cr_assert_eq(r->len, 5);
    cr_assert_eq(r->str[5], '\0', "strings are NUL-terminated");

    cr_assert_eq(aredis_reader_feed(rd, ":7\r\n", 4), 0);
    cr_assert_eq(aredis_reader_get_reply(rd, &r), 1);
    cr_assert_eq(r->code, 0);
    cr_assert_null(r->attrs);
    cr_assert_eq(r->integer, 7);

    cr_assert_eq(aredis_reader_feed(rd, "=8\r\ntxt:abcd\r\n", 14), 0);
    cr_assert_eq(aredis_reader_get_reply(rd, &r), 1);
    cr_assert_str_eq(r->vformat, "txt");
    cr_assert_eq(r->len, 4);
    cr_assert_str_eq(r->str, "abcd");

    cr_assert_eq(aredis_reader_feed(rd, ",3.25\r\n", 7), 0);
    cr_assert_eq(aredis_reader_get_reply(rd, &r), 1);
    cr_assert_eq(r->dval, 3.25);
    cr_assert_str_eq(r->str, "3.25", "a double keeps its text");

    cr_assert_eq(aredis_reader_feed(rd, "*2\r\n:1\r\n:2\r\n", 12), 0);
    cr_assert_eq(aredis_reader_get_reply(rd, &r), 1);
    cr_assert_eq(r->len, 2);
    cr_assert_eq(r->element[1].integer, 2);
    cr_assert_eq(aredis_reader_get_reply(rd, &r), 0);
    aredis_reader_free(rd);
}

Test(reader, doubles_match_strtod)
{
    static const char *texts[] = {"0",
                                  "-0",
                                  "1",
                                  "0.1",
                                  "3.141592653589793",
                                  "1e300",
                                  "1.7976931348623157e308",
                                  "4.9e-324",
                                  "2.2250738585072014e-308",
                                  "123456789012345678901234567890",
                                  "0.000001",
                                  "1E5",
                                  "-1.25E-3",
                                  "9007199254740993",
                                  "+2.5"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        char in[128];
        int n = snprintf(in, sizeof in, ",%s\r\n", texts[i]);
        aredis_reader *rd = aredis_reader_new(NULL);
        const aredis_reply *r;
        cr_assert_eq(aredis_reader_feed(rd, in, (size_t)n), 0);
        cr_assert_eq(aredis_reader_get_reply(rd, &r), 1, "%s", texts[i]);
        double want = strtod(texts[i], NULL);
        cr_assert(memcmp(&r->dval, &want, sizeof want) == 0,
                  "%s parsed as %.17g, strtod says %.17g", texts[i], r->dval,
                  want);
        aredis_reader_free(rd);
    }
}

/* --- protocol errors --------------------------------------------------- */

static void expect_error(const char *in, size_t n, int code, const char *msg)
{
    aredis_reader *rd = aredis_reader_new(NULL);
    const aredis_reply *r = NULL;
    int e = aredis_reader_feed(rd, in, n);
    if (e == 0) {
        while ((e = aredis_reader_get_reply(rd, &r)) == 1)
            ;
    }
    cr_assert_eq(e, code, "input %.*s: got %d (%s)", (int)n, in, e,
                 aredis_reader_errstr(rd));
    cr_assert_eq(aredis_reader_error(rd), code);
    cr_assert(strstr(aredis_reader_errstr(rd), msg) != NULL,
              "input %.*s: message \"%s\" lacks \"%s\"", (int)n, in,
              aredis_reader_errstr(rd), msg);
    /* Sticky: nothing works afterwards, everything says the same. */
    cr_assert_eq(aredis_reader_feed(rd, "+OK\r\n", 5), code);
    cr_assert_eq(aredis_reader_get_reply(rd, &r), code);
    size_t avail = 1;
    cr_assert_null(aredis_reader_prepare(rd, 0, &avail));
    cr_assert_eq(avail, 0);
    aredis_reader_free(rd);
}

#define EXPECT_ERR(in, code, msg) expect_error(in, sizeof(in) - 1, code, msg)

Test(reader, protocol_errors)
{
    EXPECT_ERR("?\r\n", AREDIS_EPROTO, "unknown reply type byte 0x3f");
    EXPECT_ERR("+OK\r\nX", AREDIS_EPROTO, "type byte 0x58");
    EXPECT_ERR("\x00", AREDIS_EPROTO, "type byte 0x00");
    EXPECT_ERR("+OK\rX\n", AREDIS_EPROTO, "CR not followed by LF");
    EXPECT_ERR(":12a\r\n", AREDIS_EPROTO, "bad integer");
    EXPECT_ERR(":\r\n", AREDIS_EPROTO, "bad integer");
    EXPECT_ERR(":-\r\n", AREDIS_EPROTO, "bad integer");
    EXPECT_ERR(":9223372036854775808\r\n", AREDIS_EPROTO, "bad integer");
    EXPECT_ERR(":-9223372036854775809\r\n", AREDIS_EPROTO, "bad integer");
    EXPECT_ERR(":+1\r\n", AREDIS_EPROTO, "bad integer");
    EXPECT_ERR(",\r\n", AREDIS_EPROTO, "bad double");
    EXPECT_ERR(",1.2.3\r\n", AREDIS_EPROTO, "bad double");
    EXPECT_ERR(",0x10\r\n", AREDIS_EPROTO, "bad double");
    EXPECT_ERR(",1e\r\n", AREDIS_EPROTO, "bad double");
    EXPECT_ERR(", 1\r\n", AREDIS_EPROTO, "bad double");
    EXPECT_ERR(",infinity\r\n", AREDIS_EPROTO, "bad double");
    EXPECT_ERR("(12x\r\n", AREDIS_EPROTO, "bad big number");
    EXPECT_ERR("(\r\n", AREDIS_EPROTO, "bad big number");
    EXPECT_ERR("#x\r\n", AREDIS_EPROTO, "bad boolean");
    EXPECT_ERR("#tt\r\n", AREDIS_EPROTO, "bad boolean");
    EXPECT_ERR("_x\r\n", AREDIS_EPROTO, "bad null");
    EXPECT_ERR("$abc\r\n", AREDIS_EPROTO, "bad bulk length");
    EXPECT_ERR("$\r\n", AREDIS_EPROTO, "bad bulk length");
    EXPECT_ERR("$-2\r\n", AREDIS_EPROTO, "bad bulk length");
    EXPECT_ERR("!-1\r\n", AREDIS_EPROTO, "bad bulk length");
    EXPECT_ERR("$3\r\nabcd\r\n", AREDIS_EPROTO, "not followed by CRLF");
    EXPECT_ERR("$3\r\nab\r\n\r\n", AREDIS_EPROTO, "not followed by CRLF");
    EXPECT_ERR("=3\r\ntxt\r\n", AREDIS_EPROTO,
               "no room for its \"fmt:\" prefix");
    EXPECT_ERR("=5\r\ntxt;x\r\n", AREDIS_EPROTO, "without its \"fmt:\" prefix");
    EXPECT_ERR("*x\r\n", AREDIS_EPROTO, "bad aggregate length");
    EXPECT_ERR("%-1\r\n", AREDIS_EPROTO, "bad aggregate length");
    EXPECT_ERR("~-1\r\n", AREDIS_EPROTO, "bad aggregate length");
    EXPECT_ERR("*1\r\n?\r\n", AREDIS_EPROTO, "type byte 0x3f");
    EXPECT_ERR("|1\r\n+a\r\n+b\r\n|0\r\n+c\r\n", AREDIS_EPROTO,
               "attribute followed by another attribute");
}

/* Refused the same way however the bytes arrive: whole, cut once at every
 * point, and byte by byte; and at once, without waiting for bytes that
 * cannot make it valid. No reply comes out before the error. */
static void refuse_split(const char *in, size_t n, const size_t *cuts,
                         size_t ncuts, int code, const char *msg)
{
    aredis_reader_limits lim = {.max_bulk_len = 10};
    aredis_reader *rd = aredis_reader_new(&lim);
    const aredis_reply *r;
    size_t at = 0;
    int e = 0;
    for (size_t c = 0; c <= ncuts && e == 0; c++) {
        size_t to = c < ncuts ? cuts[c] : n;
        cr_assert_eq(aredis_reader_feed(rd, in + at, to - at), 0);
        at = to;
        e = aredis_reader_get_reply(rd, &r);
        cr_assert_neq(e, 1, "input %.*s: a reply came out", (int)n, in);
    }
    cr_assert_eq(e, code, "input %.*s (%zu cuts, stopped at %zu): got %d (%s)",
                 (int)n, in, ncuts, at, e, aredis_reader_errstr(rd));
    cr_assert(strstr(aredis_reader_errstr(rd), msg) != NULL,
              "input %.*s: message \"%s\" lacks \"%s\"", (int)n, in,
              aredis_reader_errstr(rd), msg);
    aredis_reader_free(rd);
}

static void refuse_every_split(const char *in, size_t n, int code,
                               const char *msg)
{
    refuse_split(in, n, NULL, 0, code, msg);
    for (size_t i = 1; i < n; i++)
        refuse_split(in, n, &i, 1, code, msg);
    size_t *cuts = malloc(n * sizeof *cuts);
    for (size_t i = 0; i + 1 < n; i++)
        cuts[i] = i + 1;
    refuse_split(in, n, cuts, n - 1, code, msg);
    free(cuts);
}

#define REFUSED(in, code, msg) refuse_every_split(in, sizeof(in) - 1, code, msg)

Test(reader, numbers_with_a_leading_zero_are_refused)
{
    /* RESP numbers are canonical decimals, as hiredis reads them: "01",
     * "-01" and "-0" are not. A null written "-01" once desynchronised the
     * build pass from the scan (an element lost; a heap overflow). */
    REFUSED("*2\r\n$-01\r\n:7\r\n", AREDIS_EPROTO, "leading zero");
    REFUSED("*3\r\n$-01\r\n$4\r\n*9\r\n\r\n:1\r\n", AREDIS_EPROTO,
            "leading zero");
    REFUSED("*2\r\n*-01\r\n:7\r\n", AREDIS_EPROTO, "leading zero");
    REFUSED(":01\r\n", AREDIS_EPROTO, "leading zero");
    REFUSED(":00\r\n", AREDIS_EPROTO, "leading zero");
    REFUSED(":-0\r\n", AREDIS_EPROTO, "leading zero");
    REFUSED(":-01\r\n", AREDIS_EPROTO, "leading zero");
    REFUSED("$03\r\nabc\r\n", AREDIS_EPROTO, "leading zero");
    REFUSED("$00\r\n\r\n", AREDIS_EPROTO, "leading zero");
    REFUSED("$-01\r\n", AREDIS_EPROTO, "leading zero");
    REFUSED("$-0\r\n", AREDIS_EPROTO, "leading zero");
    REFUSED("*01\r\n:1\r\n", AREDIS_EPROTO, "leading zero");
    REFUSED("*-01\r\n", AREDIS_EPROTO, "leading zero");
    REFUSED("*-0\r\n", AREDIS_EPROTO, "leading zero");
    REFUSED("%01\r\n:1\r\n:2\r\n", AREDIS_EPROTO, "leading zero");
    REFUSED("~00\r\n", AREDIS_EPROTO, "leading zero");
    REFUSED(">01\r\n:1\r\n", AREDIS_EPROTO, "leading zero");
    REFUSED("|01\r\n:1\r\n:2\r\n:3\r\n", AREDIS_EPROTO, "leading zero");
    REFUSED("!03\r\nERR\r\n", AREDIS_EPROTO, "leading zero");
    REFUSED("=08\r\ntxt:abcd\r\n", AREDIS_EPROTO, "leading zero");
    REFUSED("*1\r\n:-0\r\n", AREDIS_EPROTO, "leading zero");
    /* Zero itself is fine everywhere. */
    EXPECT("*3\r\n:0\r\n$0\r\n\r\n*0\r\n", "[int:0,str:,[]]");
}

Test(reader, malformed_lines_fail_at_once)
{
    /* A simple string holds no CR or LF (RESP3 "Simple string"). */
    REFUSED("+a\nb\r\n", AREDIS_EPROTO, "LF");
    REFUSED("-ERR a\nb\r\n", AREDIS_EPROTO, "LF");
    REFUSED("*1\r\n+a\nb\r\n", AREDIS_EPROTO, "LF");
    /* A bare LF as a line end is refused at once: no CR will come. */
    REFUSED("+OK\n", AREDIS_EPROTO, "LF");
    REFUSED(":1\n", AREDIS_EPROTO, "bad integer");
    REFUSED("+OK\rX", AREDIS_EPROTO, "CR not followed by LF");
    /* After a bulk body comes CRLF and nothing else, on the fast path and
     * inside an aggregate. */
    REFUSED("$3\r\nabc\rX", AREDIS_EPROTO, "not followed by CRLF");
    REFUSED("$3\r\nabcX\n", AREDIS_EPROTO, "not followed by CRLF");
    REFUSED("*1\r\n$3\r\nabc\rX", AREDIS_EPROTO, "not followed by CRLF");
    /* A verbatim string shorter than its "fmt:" prefix is refused on its
     * header, before its body. */
    REFUSED("=3\r\nabc\r\n", AREDIS_EPROTO, "verbatim");
    REFUSED("=3\r\n", AREDIS_EPROTO, "verbatim");
    REFUSED("=0\r\n", AREDIS_EPROTO, "verbatim");
    /* A complete oversized bulk in one read (the fast path) is refused as
     * surely as its header alone (max_bulk_len is 10 here). */
    REFUSED("$11\r\nhello world\r\n", AREDIS_ETOOBIG, "max_bulk_len (10)");
}

Test(reader, doubles_and_verbatim_follow_resp3)
{
    /* RESP3 "Double type": inf, -inf and nan, with no '+' before them. */
    REFUSED(",+inf\r\n", AREDIS_EPROTO, "bad double");
    REFUSED(",+nan\r\n", AREDIS_EPROTO, "bad double");
    EXPECT(",+1.5\r\n", "dbl:1.5");
    EXPECT(",-nan\r\n", "dbl:nan"); /* as some servers print it */
    /* "Verbatim string": any three bytes, then ':'. */
    EXPECT("=10\r\nTXT:LOLWUT\r\n", "verb(TXT):LOLWUT");
    EXPECT("=6\r\nm-d:ab\r\n", "verb(m-d):ab");
    REFUSED("=6\r\nmkd;ab\r\n", AREDIS_EPROTO, "verbatim");
}

/* --- limits ------------------------------------------------------------ */

static size_t alloc_total; /* bytes requested through the hooks */
static long alloc_fail_at; /* fail the Nth allocation; 0 = never */
static long alloc_count;

static int should_fail(void)
{
    alloc_count++;
    return alloc_fail_at != 0 && alloc_count == alloc_fail_at;
}
static void *t_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    alloc_total += n;
    return malloc(n);
}
static void *t_calloc(size_t c, size_t n)
{
    if (should_fail())
        return NULL;
    alloc_total += c * n;
    return calloc(c, n);
}
static void *t_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    alloc_total += n;
    return realloc(p, n);
}
static void install_hooks(long fail_at)
{
    alloc_total = 0;
    alloc_count = 0;
    alloc_fail_at = fail_at;
    aredis_allocator a = {t_malloc, t_calloc, t_realloc, free};
    cr_assert_eq(aredis_set_allocator(&a), 0);
}

Test(reader, limits_are_errors)
{
    aredis_reader_limits lim = {.max_depth = 3,
                                .max_bulk_len = 10,
                                .max_elements = 4,
                                .max_buffer = 64,
                                .max_reply_memory = 4096};
    struct {
        const char *in;
        const char *msg;
    } cases[] = {
        {"*1\r\n*1\r\n*1\r\n*1\r\n", "max_depth (3)"},
        {"$11\r\n", "exceeds max_bulk_len (10)"},
        {"!11\r\n", "exceeds max_bulk_len"},
        {"=11\r\n", "exceeds max_bulk_len"},
        {"*5\r\n", "exceeds max_elements (4)"},
        {"%3\r\n", "3 pairs exceeds max_elements"},
        {"|3\r\n", "exceeds max_elements"},
        {"$99999999999999999999999\r\n", "exceeds max_bulk_len"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        aredis_reader *rd = aredis_reader_new(&lim);
        const aredis_reply *r;
        cr_assert_eq(aredis_reader_feed(rd, cases[i].in, strlen(cases[i].in)),
                     0);
        cr_assert_eq(aredis_reader_get_reply(rd, &r), AREDIS_ETOOBIG, "%s",
                     cases[i].in);
        cr_assert(strstr(aredis_reader_errstr(rd), cases[i].msg) != NULL,
                  "%s: %s", cases[i].in, aredis_reader_errstr(rd));
        aredis_reader_free(rd);
    }
    /* At the limits exactly, everything is accepted. */
    aredis_reader *rd = aredis_reader_new(&lim);
    char got[TEXT_CAP];
    const char ok[] =
        "*1\r\n*1\r\n*4\r\n$10\r\n0123456789\r\n:1\r\n:2\r\n:3\r\n";
    cr_assert_eq(parse_all(rd, ok, sizeof ok - 1, got, sizeof got), 1);
    cr_assert_str_eq(got, "[[[str:0123456789,int:1,int:2,int:3]]]");
    aredis_reader_free(rd);

    /* max_buffer: more unparsed bytes than allowed is refused. */
    rd = aredis_reader_new(&lim);
    char big[65];
    memset(big, ':', sizeof big);
    cr_assert_eq(aredis_reader_feed(rd, "*3\r\n", 4), 0);
    cr_assert_eq(aredis_reader_feed(rd, big, 61), AREDIS_ETOOBIG);
    cr_assert(strstr(aredis_reader_errstr(rd), "max_buffer (64)") != NULL);
    aredis_reader_free(rd);
}

Test(reader, declared_sizes_allocate_nothing)
{
    install_hooks(0);
    aredis_reader *rd = aredis_reader_new(NULL);
    const aredis_reply *r;
    /* A server claims 200 million elements, then sends three. */
    const char in[] = "*200000000\r\n:1\r\n:2\r\n:3\r\n";
    cr_assert_eq(aredis_reader_feed(rd, in, sizeof in - 1), 0);
    cr_assert_eq(aredis_reader_get_reply(rd, &r), 0);
    /* ... and a 500 MB bulk it never sends, nested 60 deep. */
    aredis_reader_free(rd);
    rd = aredis_reader_new(NULL);
    for (int i = 0; i < 60; i++)
        cr_assert_eq(aredis_reader_feed(rd, "*268435456\r\n", 12), 0);
    cr_assert_eq(aredis_reader_feed(rd, "$500000000\r\nabc", 15), 0);
    cr_assert_eq(aredis_reader_get_reply(rd, &r), 0);
    cr_assert_lt(alloc_total, 256 * 1024, "allocated %zu bytes", alloc_total);
    aredis_reader_free(rd);
    aredis_set_allocator(NULL);
}

/* Tiny items cost a 48-byte node each: ~3 MB of "_\r\n" under one array
 * header would ask for 48 MB of nodes. max_reply_memory (default twice
 * max_buffer) refuses the reply during the scan, before any node of it is
 * allocated. */
Test(reader, reply_memory_is_bounded)
{
    enum { ITEMS = 1000000 };
    size_t n = 16 + (size_t)ITEMS * 3;
    char *in = malloc(n);
    size_t len = (size_t)snprintf(in, n, "*%d\r\n", ITEMS);
    for (int i = 0; i < ITEMS; i++, len += 3)
        memcpy(in + len, "_\r\n", 3);
    install_hooks(0);
    aredis_reader_limits lim = {.max_buffer = 4u << 20};
    aredis_reader *rd = aredis_reader_new(&lim);
    const aredis_reply *r;
    cr_assert_eq(aredis_reader_feed(rd, in, len), 0);
    cr_assert_eq(aredis_reader_get_reply(rd, &r), AREDIS_ETOOBIG);
    cr_assert(strstr(aredis_reader_errstr(rd),
                     "exceeds max_reply_memory (8388608)") != NULL,
              "%s", aredis_reader_errstr(rd));
    cr_assert_lt(alloc_total, 2 * len, "allocated %zu bytes for %zu bytes",
                 alloc_total, len);
    aredis_reader_free(rd);

    /* The same bytes in small reads fail as soon as the scan has seen
     * too many nodes, long before the reply is complete. */
    rd = aredis_reader_new(&lim);
    size_t at = 0;
    int e = 0;
    while (at < len && e == 0) {
        size_t k = len - at < 65536 ? len - at : 65536;
        cr_assert_eq(aredis_reader_feed(rd, in + at, k), 0);
        at += k;
        e = aredis_reader_get_reply(rd, &r);
    }
    cr_assert_eq(e, AREDIS_ETOOBIG);
    cr_assert_lt(at, len / 2, "refused only after %zu of %zu bytes", at, len);
    aredis_reader_free(rd);
    aredis_set_allocator(NULL);
    free(in);

    /* At the limit exactly the reply is accepted; one byte less, refused.
     * A scalar is bounded by max_buffer alone. */
    const char arr[] = "*2\r\n:1\r\n:2\r\n";
    size_t need = 3 * sizeof(aredis_reply) + sizeof arr - 1;
    aredis_reader_limits exact = {.max_reply_memory = need};
    rd = aredis_reader_new(&exact);
    cr_assert_eq(aredis_reader_feed(rd, arr, sizeof arr - 1), 0);
    cr_assert_eq(aredis_reader_get_reply(rd, &r), 1);
    cr_assert_eq(r->len, 2);
    cr_assert_eq(aredis_reader_feed(rd, "$9\r\n123456789\r\n", 15), 0);
    cr_assert_eq(aredis_reader_get_reply(rd, &r), 1);
    aredis_reader_free(rd);
    exact.max_reply_memory = need - 1;
    rd = aredis_reader_new(&exact);
    cr_assert_eq(aredis_reader_feed(rd, arr, sizeof arr - 1), 0);
    cr_assert_eq(aredis_reader_get_reply(rd, &r), AREDIS_ETOOBIG);
    aredis_reader_free(rd);
}

Test(reader, deep_nesting_is_not_recursive)
{
    /* 100000 levels with a limit that allows them: no C-stack recursion in
     * the reader or in aredis_reply_dup(). */
    enum { DEPTH = 100000 };
    aredis_reader_limits lim = {.max_depth = DEPTH};
    aredis_reader *rd = aredis_reader_new(&lim);
    for (int i = 0; i < DEPTH; i++)
        cr_assert_eq(aredis_reader_feed(rd, "*1\r\n", 4), 0);
    cr_assert_eq(aredis_reader_feed(rd, ":5\r\n", 4), 0);
    const aredis_reply *r;
    cr_assert_eq(aredis_reader_get_reply(rd, &r), 1);
    aredis_reply *copy = aredis_reply_dup(r);
    cr_assert_not_null(copy);
    const aredis_reply *p = copy;
    for (int i = 0; i < DEPTH; i++) {
        cr_assert_eq(p->type, AREDIS_REPLY_ARRAY);
        p = &p->element[0];
    }
    cr_assert_eq(p->integer, 5);
    aredis_reply_free(copy);
    aredis_reader_free(rd);

    /* With the default limit the same input is refused. */
    rd = aredis_reader_new(NULL);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(aredis_reader_feed(rd, "*1\r\n", 4), 0);
    cr_assert_eq(aredis_reader_get_reply(rd, &r), AREDIS_ETOOBIG);
    aredis_reader_free(rd);
}

/* --- attributes and push ----------------------------------------------- */

Test(reader, attributes_attach_to_the_next_reply)
{
    EXPECT("|1\r\n+ttl\r\n:3600\r\n+OK\r\n",
           "|{status:ttl=>int:3600}|status:OK");
    EXPECT("|0\r\n:1\r\n", "|{}|int:1");
    EXPECT(
        "*2\r\n:1\r\n|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n:2\r\n",
        "[int:1,|{status:key-popularity=>{str:a=>dbl:0.19}}|int:2]");
    EXPECT("|1\r\n+a\r\n+b\r\n*1\r\n|1\r\n+c\r\n+d\r\n$1\r\nx\r\n",
           "|{status:a=>status:b}|[|{status:c=>status:d}|str:x]");
    EXPECT("|1\r\n+a\r\n+b\r\n$-1\r\n", "|{status:a=>status:b}|nil");
    EXPECT("|1\r\n+a\r\n+b\r\n*0\r\n", "|{status:a=>status:b}|[]");

    aredis_reader *rd = aredis_reader_new(NULL);
    const char in[] = "|1\r\n+ttl\r\n:3600\r\n$3\r\nval\r\n";
    const aredis_reply *r;
    cr_assert_eq(aredis_reader_feed(rd, in, sizeof in - 1), 0);
    cr_assert_eq(aredis_reader_get_reply(rd, &r), 1);
    cr_assert_eq(r->type, AREDIS_REPLY_STRING);
    cr_assert_not_null(r->attrs);
    cr_assert_eq(r->attrs->type, AREDIS_REPLY_ATTR);
    const aredis_reply *ttl = aredis_reply_map_get(r->attrs, "ttl", 3);
    cr_assert_not_null(ttl);
    cr_assert_eq(ttl->integer, 3600);
    cr_assert_null(aredis_reply_map_get(r->attrs, "nope", 4));
    cr_assert_null(aredis_reply_map_get(r, "ttl", 3), "not a map");
    aredis_reader_free(rd);
}

Test(reader, push_between_replies)
{
    aredis_reader *rd = aredis_reader_new(NULL);
    char got[TEXT_CAP];
    const char in[] = "+OK\r\n>2\r\n+invalidate\r\n*1\r\n$3\r\nkey\r\n:5\r\n";
    cr_assert_eq(parse_all(rd, in, sizeof in - 1, got, sizeof got), 3);
    cr_assert_str_eq(got, "status:OK ; >(status:invalidate,[str:key]) ; int:5");
    aredis_reader_free(rd);
}

/* --- splits ------------------------------------------------------------ */

static const char mixed[] =
    "+OK\r\n-ERR bad\r\n:123\r\n$5\r\nhello\r\n$0\r\n\r\n$-1\r\n*-1\r\n"
    "*3\r\n$3\r\nfoo\r\n:-1\r\n*2\r\n+a\r\n_\r\n"
    "%2\r\n+k1\r\n,1.5\r\n+k2\r\n~2\r\n#t\r\n#f\r\n"
    ">3\r\n+message\r\n+ch\r\n$4\r\nd\r\na\r\n"
    "|1\r\n+ttl\r\n:10\r\n=9\r\ntxt:hello\r\n"
    "(12345678901234567890\r\n!5\r\nERR x\r\n,-inf\r\n"
    "*2\r\n|1\r\n+a\r\n+b\r\n*0\r\n%0\r\n"
    "$20\r\n01234567890123456789\r\n";

static int feed_chunks(const size_t *cuts, size_t ncuts, char *out, size_t cap)
{
    aredis_reader *rd = aredis_reader_new(NULL);
    const size_t n = sizeof mixed - 1;
    size_t at = 0;
    int count = 0;
    out[0] = '\0';
    for (size_t c = 0; c <= ncuts; c++) {
        size_t to = c < ncuts ? cuts[c] : n;
        cr_assert_eq(aredis_reader_feed(rd, mixed + at, to - at), 0);
        at = to;
        const aredis_reply *r;
        int e;
        while ((e = aredis_reader_get_reply(rd, &r)) == 1) {
            char one[TEXT_CAP];
            reply_text(r, one, sizeof one);
            size_t used = strlen(out);
            snprintf(out + used, cap - used, "%s%s", count ? " ; " : "", one);
            count++;
        }
        cr_assert_eq(e, 0, "error %d: %s", e, aredis_reader_errstr(rd));
    }
    cr_assert_eq(aredis_reader_buffered(rd), 0);
    aredis_reader_free(rd);
    return count;
}

Test(reader, every_split_gives_the_same_replies)
{
    static char want[TEXT_CAP], got[TEXT_CAP];
    int k = feed_chunks(NULL, 0, want, sizeof want);
    cr_assert_eq(k, 16, "%d replies: %s", k, want);
    const size_t n = sizeof mixed - 1;

    /* Byte by byte. */
    size_t *cuts = malloc(n * sizeof *cuts);
    for (size_t i = 0; i < n - 1; i++)
        cuts[i] = i + 1;
    cr_assert_eq(feed_chunks(cuts, n - 1, got, sizeof got), k);
    cr_assert_str_eq(got, want);

    /* Every single split point, and every pair of split points. */
    for (size_t i = 1; i < n; i++) {
        cr_assert_eq(feed_chunks(&i, 1, got, sizeof got), k);
        cr_assert_str_eq(got, want, "split at %zu", i);
        for (size_t j = i + 1; j < n; j += 7) {
            size_t two[2] = {i, j};
            cr_assert_eq(feed_chunks(two, 2, got, sizeof got), k);
            cr_assert_str_eq(got, want, "splits at %zu,%zu", i, j);
        }
    }

    /* Random chunkings. */
    srand(12345);
    for (int round = 0; round < 500; round++) {
        size_t m = 0, at = 0;
        while (1) {
            at += 1 + (size_t)rand() % 17;
            if (at >= n)
                break;
            cuts[m++] = at;
        }
        cr_assert_eq(feed_chunks(cuts, m, got, sizeof got), k);
        cr_assert_str_eq(got, want, "round %d", round);
    }
    free(cuts);
}

Test(reader, prepare_and_commit_read_in_place)
{
    aredis_reader *rd = aredis_reader_new(NULL);
    const size_t n = sizeof mixed - 1;
    size_t at = 0;
    int count = 0;
    while (at < n) {
        size_t avail = 0;
        char *w = aredis_reader_prepare(rd, 3, &avail);
        cr_assert_not_null(w);
        cr_assert_geq(avail, 3);
        size_t k = n - at < 3 ? n - at : 3;
        memcpy(w, mixed + at, k);
        cr_assert_eq(aredis_reader_commit(rd, k), 0);
        at += k;
        const aredis_reply *r;
        while (aredis_reader_get_reply(rd, &r) == 1)
            count++;
    }
    cr_assert_eq(count, 16);
    size_t avail;
    cr_assert_not_null(aredis_reader_prepare(rd, 0, &avail));
    cr_assert_eq(aredis_reader_commit(rd, avail + 1), AREDIS_EINVAL);
    aredis_reader_free(rd);
}

Test(reader, reply_stays_valid_until_next_call)
{
    aredis_reader *rd = aredis_reader_new(NULL);
    const aredis_reply *a;
    cr_assert_eq(aredis_reader_feed(rd, "$3\r\nabc\r\n$3\r\ndef\r\n", 18), 0);
    cr_assert_eq(aredis_reader_get_reply(rd, &a), 1);
    cr_assert_str_eq(a->str, "abc");
    aredis_reply *keep = aredis_reply_dup(a);
    cr_assert_eq(aredis_reader_buffered(rd), 9);
    const aredis_reply *b;
    cr_assert_eq(aredis_reader_get_reply(rd, &b), 1);
    cr_assert_str_eq(b->str, "def");
    /* Force compaction and growth: the copy is independent. */
    char junk[40000];
    memset(junk, 'x', sizeof junk);
    cr_assert_eq(aredis_reader_feed(rd, "$40000\r\n", 8), 0);
    cr_assert_eq(aredis_reader_feed(rd, junk, sizeof junk), 0);
    cr_assert_eq(aredis_reader_feed(rd, "\r\n", 2), 0);
    cr_assert_eq(aredis_reader_get_reply(rd, &b), 1);
    cr_assert_eq(b->len, 40000);
    cr_assert_str_eq(keep->str, "abc");
    aredis_reply_free(keep);
    aredis_reply_free(NULL);
    aredis_reader_free(rd);
    aredis_reader_free(NULL);
}

Test(reader, dup_is_a_deep_copy)
{
    aredis_reader *rd = aredis_reader_new(NULL);
    const size_t n = sizeof mixed - 1;
    cr_assert_eq(aredis_reader_feed(rd, mixed, n), 0);
    const aredis_reply *r;
    aredis_reply *copies[32];
    char want[32][TEXT_CAP / 4];
    int k = 0;
    while (aredis_reader_get_reply(rd, &r) == 1) {
        reply_text(r, want[k], sizeof want[k]);
        copies[k] = aredis_reply_dup(r);
        cr_assert_not_null(copies[k]);
        k++;
    }
    aredis_reader_free(rd); /* the copies must not depend on it */
    for (int i = 0; i < k; i++) {
        char got[TEXT_CAP / 4];
        cr_assert_str_eq(reply_text(copies[i], got, sizeof got), want[i]);
        aredis_reply_free(copies[i]);
    }
}

Test(reader, big_bulk_in_pieces)
{
    enum { LEN = 3 * 1024 * 1024 + 7 };
    char *payload = malloc(LEN);
    for (size_t i = 0; i < LEN; i++)
        payload[i] = (char)(i * 31 + 7);
    aredis_reader *rd = aredis_reader_new(NULL);
    char hdr[32];
    int h = snprintf(hdr, sizeof hdr, "$%d\r\n", LEN);
    cr_assert_eq(aredis_reader_feed(rd, hdr, (size_t)h), 0);
    const aredis_reply *r;
    for (size_t at = 0; at < LEN; at += 4093) {
        size_t k = LEN - at < 4093 ? LEN - at : 4093;
        cr_assert_eq(aredis_reader_get_reply(rd, &r), 0);
        cr_assert_eq(aredis_reader_feed(rd, payload + at, k), 0);
    }
    cr_assert_eq(aredis_reader_feed(rd, "\r\n+OK\r\n", 7), 0);
    cr_assert_eq(aredis_reader_get_reply(rd, &r), 1);
    cr_assert_eq(r->len, LEN);
    cr_assert(memcmp(r->str, payload, LEN) == 0);
    cr_assert_eq(aredis_reader_get_reply(rd, &r), 1);
    cr_assert_eq(r->type, AREDIS_REPLY_STATUS);
    free(payload);
    aredis_reader_free(rd);
}

Test(reader, input_ending_at_a_guard_page)
{
    long page = sysconf(_SC_PAGESIZE);
    char *map = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(map, MAP_FAILED);
    cr_assert_eq(mprotect(map + page, (size_t)page, PROT_NONE), 0);
    const size_t n = sizeof mixed - 1;
    char *in = map + page - n;
    memcpy(in, mixed, n);
    for (size_t cut = 1; cut <= n; cut++) {
        aredis_reader *rd = aredis_reader_new(NULL);
        const aredis_reply *r;
        /* A truncated stream: the reader must not look past its end. */
        cr_assert_eq(aredis_reader_feed(rd, in + n - cut, cut), 0);
        while (aredis_reader_get_reply(rd, &r) == 1)
            ;
        aredis_reader_free(rd);
    }
    munmap(map, (size_t)page * 2);
}

/* --- allocation failure ------------------------------------------------ */

Test(reader, out_of_memory_is_an_error_never_a_crash)
{
    const size_t n = sizeof mixed - 1;
    char want[TEXT_CAP];
    cr_assert_eq(feed_chunks(NULL, 0, want, sizeof want), 16);
    int saw_failure = 0;
    for (long fail_at = 1; fail_at < 200; fail_at++) {
        install_hooks(fail_at);
        aredis_reader *rd = aredis_reader_new(NULL);
        if (rd == NULL) {
            saw_failure = 1;
            continue;
        }
        char got[TEXT_CAP] = "";
        int count = 0;
        int e = aredis_reader_feed(rd, mixed, n);
        if (e == AREDIS_ENOMEM) {
            saw_failure = 1;
            alloc_fail_at = 0;
            e = aredis_reader_feed(rd, mixed, n); /* retry works */
        }
        cr_assert_eq(e, 0);
        const aredis_reply *r;
        for (;;) {
            e = aredis_reader_get_reply(rd, &r);
            if (e == AREDIS_ENOMEM) {
                saw_failure = 1;
                alloc_fail_at = 0; /* not sticky: a retry succeeds */
                continue;
            }
            if (e != 1)
                break;
            aredis_reply *c = aredis_reply_dup(r);
            if (c == NULL) {
                saw_failure = 1;
                alloc_fail_at = 0;
                c = aredis_reply_dup(r);
            }
            char one[TEXT_CAP];
            reply_text(c, one, sizeof one);
            size_t used = strlen(got);
            snprintf(got + used, sizeof got - used, "%s%s", count ? " ; " : "",
                     one);
            count++;
            aredis_reply_free(c);
        }
        cr_assert_eq(e, 0);
        cr_assert_str_eq(got, want, "fail_at %ld", fail_at);
        aredis_reader_free(rd);
    }
    aredis_set_allocator(NULL);
    cr_assert(saw_failure);
}

Test(reader, type_names)
{
    cr_assert_str_eq(aredis_reply_type_name(AREDIS_REPLY_MAP), "map");
    cr_assert_str_eq(aredis_reply_type_name(AREDIS_REPLY_VERB),
                     "verbatim string");
    cr_assert_str_eq(aredis_reply_type_name(999), "unknown");
    cr_assert_str_eq(aredis_err_name(AREDIS_EPROTO), "AREDIS_EPROTO");
    cr_assert_str_eq(aredis_strerror(AREDIS_ETOOBIG),
                     "reply exceeds a configured limit");
    cr_assert_str_eq(aredis_err_name(-999), "AREDIS_UNKNOWN_ERROR");
}

/* aredis__reader_trim() gives back the buffer and shrinks the arena at the
 * next call, never the bytes of a reply still being received, and the
 * reader works on as before. */
Test(reader, trim_gives_memory_back_and_keeps_parsing)
{
    aredis_reader *rd = aredis_reader_new(NULL);
    cr_assert_not_null(rd);
    const aredis_reply *r;
    const char big[] = "%3\r\n+a\r\n:1\r\n+b\r\n:2\r\n+c\r\n*2\r\n:3\r\n:4\r\n";
    cr_assert_eq(aredis_reader_feed(rd, big, sizeof big - 1), 0);
    cr_assert_eq(aredis_reader_get_reply(rd, &r), 1);
    cr_assert_eq(r->type, AREDIS_REPLY_MAP);
    cr_assert_gt(rd->arena_cap, 4);
    aredis__reader_trim(rd);
    cr_assert_eq(r->element[5].element[1].integer, 4, "still borrowed");

    /* Half a reply arrives: the trim happens, its bytes stay. */
    cr_assert_eq(aredis_reader_feed(rd, "*2\r\n:1\r\n", 8), 0);
    cr_assert_eq(rd->arena_cap, 1);
    cr_assert_leq(rd->cap, 512);
    cr_assert_eq(aredis_reader_get_reply(rd, &r), 0);
    aredis__reader_trim(rd);
    cr_assert_eq(aredis_reader_feed(rd, ":2\r\n", 4), 0);
    cr_assert_eq(aredis_reader_get_reply(rd, &r), 1);
    cr_assert_eq(r->type, AREDIS_REPLY_ARRAY);
    cr_assert_eq(r->len, 2);
    cr_assert_eq(r->element[0].integer, 1);
    cr_assert_eq(r->element[1].integer, 2);

    /* Nothing buffered: the buffer itself goes, and comes back small. */
    aredis__reader_trim(rd);
    size_t avail = 0;
    char *p = aredis_reader_prepare(rd, 0, &avail);
    cr_assert_not_null(p);
    cr_assert_eq(avail, 512, "a fresh buffer starts small, got %zu", avail);
    memcpy(p, "+OK\r\n", 5);
    cr_assert_eq(aredis_reader_commit(rd, 5), 0);
    cr_assert_eq(aredis_reader_get_reply(rd, &r), 1);
    cr_assert_str_eq(r->str, "OK");
    aredis_reader_free(rd);
}

/* A read that fills what it was offered makes the next offer twice as
 * large, up to 16 KB. */
Test(reader, reads_grow_while_they_fill)
{
    aredis_reader *rd = aredis_reader_new(NULL);
    cr_assert_not_null(rd);
    size_t avail = 0, last = 0;
    for (int i = 0; i < 8; i++) {
        char *p = aredis_reader_prepare(rd, 0, &avail);
        cr_assert_not_null(p);
        cr_assert_geq(avail, last, "offers never shrink");
        last = avail;
        memset(p, 'x', avail); /* an unfinished simple string */
        p[0] = '+';
        cr_assert_eq(aredis_reader_commit(rd, avail), 0);
    }
    cr_assert_geq(rd->read_hint, (size_t)16 * 1024);
    cr_assert_leq(rd->read_hint, (size_t)16 * 1024);
    aredis_reader_free(rd);
}

Test(reader, dup_of_an_empty_aggregate_has_no_element_pointer)
{
    /* A reply built by hand (a reply hook's, a cluster fan-out's merge)
     * may carry a scratch pointer beside len 0; the copy must not keep
     * it: reply.h promises NULL, and the scratch is freed after the
     * callback that might take the copy. */
    aredis_reply scratch[2] = {{0}};
    aredis_reply parts[2] = {{0}};
    parts[0].type = AREDIS_REPLY_SET;
    parts[0].element = &scratch[0];
    parts[1].type = AREDIS_REPLY_MAP;
    parts[1].element = &scratch[1];
    aredis_reply root = {.type = AREDIS_REPLY_ARRAY, .len = 2};
    root.element = parts;
    aredis_reply *copy = aredis_reply_dup(&root);
    cr_assert_not_null(copy);
    cr_assert_null(copy->element[0].element);
    cr_assert_null(copy->element[1].element);
    aredis_reply_free(copy);
    aredis_reply alone = {.type = AREDIS_REPLY_PUSH, .len = 0};
    alone.element = &scratch[0];
    copy = aredis_reply_dup(&alone);
    cr_assert_not_null(copy);
    cr_assert_null(copy->element);
    aredis_reply_free(copy);
}
