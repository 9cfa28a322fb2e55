/* Unit tests for the command table (util/cmdtable.c): every name is found
 * in any case and unknown ones are not; classification reads the
 * arguments that change a command's meaning (CLIENT REPLY, CONFIG GET,
 * WITHSCORES, XREAD BLOCK) and a blocking command's server-side timeout,
 * in seconds with a fraction or in milliseconds. No server, no I/O. */
#include <criterion/criterion.h>

#include <string.h>

#include "aredis/resp.h"
#include "util/cmdtable.h"

/* Encode a command with the public writer, as the client does. */
static aredis_buf buf;

static const char *enc(const char *fmt)
{
    aredis_buf_cleanup(&buf);
    aredis_buf_init(&buf);
    cr_assert_eq(aredis_write_fmt(&buf, fmt), 0, "%s", fmt);
    return buf.data;
}

static void done(void)
{
    aredis_buf_cleanup(&buf);
}

TestSuite(cmdtable, .fini = done);

Test(cmdtable, names_are_found_in_any_case)
{
    const char *names[] = {
        "get",   "GET",        "Get",     "set",
        "BLPOP", "xreadgroup", "ZRANGE",  "restore-asking",
        "WAIT",  "waitaof",    "sort_ro", "GEORADIUSBYMEMBER_RO"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const aredis__cmdinfo *e =
            aredis__cmd_lookup(names[i], strlen(names[i]));
        cr_assert_not_null(e, "%s", names[i]);
        cr_assert_eq(e->len, strlen(names[i]));
        for (size_t k = 0; k < e->len; k++)
            cr_assert_eq(e->name[k] | 0x20, names[i][k] | 0x20, "%s", names[i]);
    }
}

Test(cmdtable, unknown_names_are_not_found)
{
    const char *names[] = {
        "",
        "ge",
        "gett",
        "xyzzy",
        "get ",
        "GET\r",
        "blpo",
        "client|",
        "CONFIG|GETX",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        cr_assert_null(aredis__cmd_lookup(names[i], strlen(names[i])), "%s",
                       names[i]);
    /* A name that matches except for a byte that only differs by 0x20
     * outside the letters. */
    cr_assert_null(aredis__cmd_lookup("sort\x7fro", 7));
}

Test(cmdtable, flags_and_key_positions)
{
    const aredis__cmdinfo *e = aredis__cmd_lookup("GET", 3);
    cr_assert(e->flags & AREDIS__CMDF_READONLY);
    cr_assert_eq(e->first_key, 1);
    cr_assert_eq(e->last_key, 1);
    cr_assert_eq(e->key_step, 1);
    e = aredis__cmd_lookup("MSET", 4);
    cr_assert_not(e->flags & AREDIS__CMDF_READONLY);
    cr_assert_eq(e->first_key, 1);
    cr_assert_eq(e->last_key, -1);
    cr_assert_eq(e->key_step, 2);
    e = aredis__cmd_lookup("EVALSHA", 7);
    cr_assert_eq(e->numkeys, 2);
    e = aredis__cmd_lookup("BLPOP", 5);
    cr_assert(e->flags & AREDIS__CMDF_BLOCKING);
    cr_assert(e->flags & AREDIS__CMDF_NO_MULTI);
    cr_assert_eq(e->last_key, -2);
    e = aredis__cmd_lookup("XREAD", 5);
    cr_assert_not(e->flags & AREDIS__CMDF_BLOCKING);
    cr_assert(e->flags & AREDIS__CMDF_MOVABLE);
    cr_assert(aredis__cmd_lookup("SELECT", 6)->flags & AREDIS__CMDF_REFUSED);
    cr_assert(aredis__cmd_lookup("ssubscribe", 10)->flags &
              AREDIS__CMDF_PUBSUB);
    cr_assert_not(aredis__cmd_lookup("PUBLISH", 7)->flags &
                  AREDIS__CMDF_PUBSUB);
}

typedef struct blocking_case {
    const char *cmd;
    int blocking;
    long long block_ms;
} blocking_case;

Test(cmdtable, blocking_commands_and_their_timeouts)
{
    const blocking_case cases[] = {
        {"BLPOP k 2", 1, 2000},
        {"brpop a b 0.5", 1, 500},
        {"BLPOP k 0", 1, 0},
        {"BLPOP k 0.0001", 1, 1}, /* below a millisecond: rounded up */
        {"BLPOP k 1.2345", 1, 1235},
        {"BLPOP k -1", 1, 0},  /* refused by the server at once */
        {"BLPOP k 1e3", 1, 0}, /* not a plain number: no bound known */
        {"BLPOP k 2x", 1, 0},
        {"BRPOPLPUSH a b 3", 1, 3000},
        {"BLMOVE a b LEFT RIGHT 1.5", 1, 1500},
        {"BZPOPMIN z 7", 1, 7000},
        {"BLMPOP 1.5 2 a b LEFT COUNT 3", 1, 1500},
        {"BZMPOP 4 1 z MIN", 1, 4000},
        {"WAIT 1 250", 1, 250},
        {"WAIT 1 2.5", 1, 0}, /* milliseconds are whole */
        {"WAITAOF 0 1 30", 1, 30},
        {"XREAD COUNT 1 BLOCK 100 STREAMS s $", 1, 100},
        {"xreadgroup GROUP g c block 0 STREAMS s >", 1, 0},
        {"XREAD COUNT 1 STREAMS block 5", 0, 0}, /* a stream named block */
        {"XREAD STREAMS s 0", 0, 0},
        {"GET blpop", 0, 0},
        {"SET k v", 0, 0},
        {"NOSUCHCOMMAND 1 2", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        aredis__cmdclass k;
        aredis__cmd_classify(enc(cases[i].cmd), &k);
        cr_assert_eq((k.flags & AREDIS__CMDF_BLOCKING) != 0, cases[i].blocking,
                     "%s", cases[i].cmd);
        cr_assert_eq(k.block_ms, cases[i].block_ms, "%s: %lld", cases[i].cmd,
                     (long long)k.block_ms);
        if (cases[i].blocking)
            cr_assert(k.flags & AREDIS__CMDF_NO_MULTI, "%s", cases[i].cmd);
    }
}

Test(cmdtable, arguments_that_change_the_meaning)
{
    aredis__cmdclass k;
    cr_assert_eq(aredis__cmd_classify(enc("CLIENT REPLY OFF"), &k), 3);
    cr_assert_eq(k.client_reply, AREDIS__CLIENT_REPLY_OFF);
    aredis__cmd_classify(enc("client reply skip"), &k);
    cr_assert_eq(k.client_reply, AREDIS__CLIENT_REPLY_SKIP);
    aredis__cmd_classify(enc("Client Reply On"), &k);
    cr_assert_eq(k.client_reply, AREDIS__CLIENT_REPLY_ON);
    aredis__cmd_classify(enc("CLIENT SETNAME x"), &k);
    cr_assert_eq(k.client_reply, AREDIS__CLIENT_REPLY_NONE);
    cr_assert_not_null(k.info);
    aredis__cmd_classify(enc("CLIENT"), &k);
    cr_assert_eq(k.client_reply, AREDIS__CLIENT_REPLY_NONE);

    aredis__cmd_classify(enc("CONFIG GET maxmemory"), &k);
    cr_assert_eq(k.norm, AREDIS__NORM_MAP);
    aredis__cmd_classify(enc("config set maxmemory 0"), &k);
    cr_assert_eq(k.norm, AREDIS__NORM_NONE);

    aredis__cmd_classify(enc("ZRANGE z 0 -1 WITHSCORES"), &k);
    cr_assert_eq(k.norm, AREDIS__NORM_PAIRS_DOUBLE);
    aredis__cmd_classify(enc("ZRANGE z 0 -1"), &k);
    cr_assert_eq(k.norm, AREDIS__NORM_NONE);
    aredis__cmd_classify(enc("HGETALL h"), &k);
    cr_assert_eq(k.norm, AREDIS__NORM_MAP);
    aredis__cmd_classify(enc("zmscore z a b"), &k);
    cr_assert_eq(k.norm, AREDIS__NORM_DOUBLES);

    aredis__cmd_classify(enc("GET k"), &k);
    cr_assert(k.flags & AREDIS__CMDF_READONLY);
    cr_assert_str_eq(k.info->name, "get");
    aredis__cmd_classify(enc("SET k v"), &k);
    cr_assert_not(k.flags & AREDIS__CMDF_READONLY);
}
