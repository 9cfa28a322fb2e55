/* Round trips from the RESP writer to the RESP reader (resp layer): what
 * the writer encodes, the reader must read back as an array of bulk strings
 * holding exactly the original arguments, whatever the bytes and however
 * the stream is cut. No server, no I/O. */
#include <criterion/criterion.h>

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aredis/error.h"
#include "aredis/resp.h"

struct cmd {
    int argc;
    const char *argv[64];
    size_t lens[64];
};

/* Check that reply r is the array of bulk strings described by c. */
static void expect_command(const aredis_reply *r, const struct cmd *c)
{
    cr_assert_eq(r->type, AREDIS_REPLY_ARRAY, "type %d", r->type);
    cr_assert_eq(r->len, (size_t)c->argc);
    for (int i = 0; i < c->argc; i++) {
        const aredis_reply *e = &r->element[i];
        cr_assert_eq(e->type, AREDIS_REPLY_STRING, "element %d type %d", i,
                     e->type);
        cr_assert_eq(e->len, c->lens[i], "element %d length", i);
        cr_assert(c->lens[i] == 0 || memcmp(e->str, c->argv[i], e->len) == 0,
                  "element %d bytes", i);
    }
}

/* Feed [p, p+n) to a fresh reader in pieces of `step` bytes (0: at once)
 * and check that it yields exactly the commands in cmds, in order. */
static void read_back(const char *p, size_t n, size_t step,
                      const struct cmd *cmds, size_t ncmds)
{
    aredis_reader *rd = aredis_reader_new(NULL);
    cr_assert(rd != NULL);
    size_t got = 0, off = 0;
    while (off < n || got < ncmds) {
        if (off < n) {
            size_t chunk = step == 0 || n - off < step ? n - off : step;
            cr_assert_eq(aredis_reader_feed(rd, p + off, chunk), 0);
            off += chunk;
        }
        for (;;) {
            const aredis_reply *r;
            int rc = aredis_reader_get_reply(rd, &r);
            cr_assert(rc >= 0, "reader error %d: %s", rc,
                      aredis_reader_errstr(rd));
            if (rc == 0)
                break;
            cr_assert(got < ncmds, "more replies than commands");
            expect_command(r, &cmds[got]);
            got++;
        }
        if (off == n)
            break;
    }
    cr_assert_eq(got, ncmds, "read %zu of %zu commands", got, ncmds);
    cr_assert_eq(aredis_reader_buffered(rd), 0);
    aredis_reader_free(rd);
}

Test(roundtrip_writer, argv_binary_every_split)
{
    static const char val[] = {'\0', '\r', '\n', '$', '*', '-', ':', '\r'};
    struct cmd c = {3, {"SET", "k\0y", val}, {3, 3, sizeof val}};
    aredis_buf b;
    aredis_buf_init(&b);
    cr_assert_eq(aredis_write_argv(&b, c.argc, c.argv, c.lens), 0);
    for (size_t step = 0; step <= b.len; step++)
        read_back(b.data, b.len, step, &c, 1);
    aredis_buf_cleanup(&b);
}

Test(roundtrip_writer, fmt_conversions)
{
    struct cmd c = {7,
                    {"HSET", "user:42:name", "", "100%", "-9223372036854775808",
                     "0.1", "bin\0ary"},
                    {4, 12, 0, 4, 20, 3, 7}};
    aredis_buf b;
    aredis_buf_init(&b);
    cr_assert_eq(aredis_write_fmt(&b, "HSET user:%d:name %s 100%% %lld %f %b",
                                  42, "", LLONG_MIN, 0.1, "bin\0ary",
                                  (size_t)7),
                 0);
    read_back(b.data, b.len, 0, &c, 1);
    read_back(b.data, b.len, 1, &c, 1);
    aredis_buf_cleanup(&b);
}

static uint64_t rng = 0x243F6A8885A308D3ULL;

static uint64_t next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

Test(roundtrip_writer, random_pipeline)
{
    /* 200 random commands with random binary arguments, written back to
     * back into one buffer, then read back whole, per byte and in random
     * chunk sizes. */
    enum { NCMDS = 200 };
    static struct cmd cmds[NCMDS];
    static char pool[NCMDS][64][40];
    aredis_buf b;
    aredis_buf_init(&b);
    for (size_t i = 0; i < NCMDS; i++) {
        struct cmd *c = &cmds[i];
        c->argc = 1 + (int)(next_random() % 64);
        for (int a = 0; a < c->argc; a++) {
            size_t len = next_random() % 40;
            for (size_t j = 0; j < len; j++)
                pool[i][a][j] = (char)next_random();
            c->argv[a] = pool[i][a];
            c->lens[a] = len;
        }
        if (i % 2 == 0) {
            cr_assert_eq(aredis_write_argv(&b, c->argc, c->argv, c->lens), 0);
        } else {
            /* The same through the format, one %b per argument, built up
             * three at a time so the call stays simple. */
            aredis_buf one;
            aredis_buf_init(&one);
            cr_assert_eq(aredis_write_argv(&one, c->argc, c->argv, c->lens), 0);
            size_t before = b.len;
            if (c->argc == 1) {
                cr_assert_eq(aredis_write_fmt(&b, "%b", c->argv[0], c->lens[0]),
                             0);
            } else if (c->argc == 2) {
                cr_assert_eq(aredis_write_fmt(&b, "%b %b", c->argv[0],
                                              c->lens[0], c->argv[1],
                                              c->lens[1]),
                             0);
            } else {
                /* Longer commands: keep three arguments. */
                c->argc = 3;
                aredis_buf_cleanup(&one);
                aredis_buf_init(&one);
                cr_assert_eq(aredis_write_argv(&one, 3, c->argv, c->lens), 0);
                cr_assert_eq(aredis_write_fmt(&b, "%b  %b %b", c->argv[0],
                                              c->lens[0], c->argv[1],
                                              c->lens[1], c->argv[2],
                                              c->lens[2]),
                             0);
            }
            cr_assert_eq(b.len - before, one.len);
            cr_assert(memcmp(b.data + before, one.data, one.len) == 0);
            aredis_buf_cleanup(&one);
        }
    }
    read_back(b.data, b.len, 0, cmds, NCMDS);
    read_back(b.data, b.len, 1, cmds, NCMDS);
    read_back(b.data, b.len, 7, cmds, NCMDS);
    read_back(b.data, b.len, 4096, cmds, NCMDS);
    aredis_buf_cleanup(&b);
}
