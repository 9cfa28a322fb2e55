/* Unit tests for the command table (util/cmdtable.c): every name is found
 * in any case and unknown ones are not; classification reads the
 * arguments that change a command's meaning (CLIENT REPLY, CONFIG GET,
 * WITHSCORES, XREAD BLOCK), the commands that apply to the next one, and
 * a blocking command's server-side timeout, in seconds with a fraction or
 * in milliseconds. No server, no I/O. */
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
    cr_assert_not(k.flags & AREDIS__CMDF_NEXT);

    /* Applying to the command after them: never left behind alone. */
    aredis__cmd_classify(enc("ASKING"), &k);
    cr_assert(k.flags & AREDIS__CMDF_NEXT);
    aredis__cmd_classify(enc("CLIENT CACHING YES"), &k);
    cr_assert(k.flags & AREDIS__CMDF_NEXT);
    aredis__cmd_classify(enc("CLIENT SETNAME x"), &k);
    cr_assert_not(k.flags & AREDIS__CMDF_NEXT);
}

/* The memo answers exactly what the table does, whatever the order: names
 * decided by their bytes alone come from it, the rest (subcommands, CLIENT
 * REPLY, WITHSCORES, blocking timeouts, XREAD BLOCK) are classified anew
 * each time. */
Test(cmdtable, memo_agrees_with_the_table)
{
    static const char *const cmds[] = {
        "SET k v",
        "GET k",
        "set k v",
        "GET k",
        "BLPOP q 2",
        "BLPOP q 5",
        "CLIENT REPLY OFF",
        "CLIENT REPLY ON",
        "XREAD BLOCK 10 STREAMS s 0",
        "XREAD STREAMS s 0",
        "ZRANGE z 0 -1 WITHSCORES",
        "ZRANGE z 0 -1",
        "CONFIG GET x",
        "CONFIG SET x y",
        "NOSUCHCMD a",
        "PING",
        "SUBSCRIBE ch",
        "SELECT 1",
        "HGETALL h",
        "MSET a 1 b 2 c 3 d 4 e 5",
        "ZRANGEBYSCORE z 0 1",
        "NO x",
        "GET k",
        "SET k v",
    };
    aredis__cmdmemo memo;
    memset(&memo, 0, sizeof memo);
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
            aredis__cmdclass want, got;
            const char *e = enc(cmds[i]);
            int argc = aredis__cmd_classify(e, &want);
            cr_assert_eq(aredis__cmd_classify_memo(e, &got, &memo), argc);
            cr_assert_eq(got.info, want.info, "%s", cmds[i]);
            cr_assert_eq(got.flags, want.flags, "%s", cmds[i]);
            cr_assert_eq(got.norm, want.norm, "%s", cmds[i]);
            cr_assert_eq(got.client_reply, want.client_reply, "%s", cmds[i]);
            cr_assert_eq(got.block_ms, want.block_ms, "%s", cmds[i]);
        }
    }
    /* And it does remember: the same bytes twice in a row hit it. */
    memset(&memo, 0, sizeof memo);
    aredis__cmdclass k;
    aredis__cmd_classify_memo(enc("GET k"), &k, &memo);
    cr_assert_eq(memo.e[0].len, 3);
    cr_assert_eq(memo.e[0].info, k.info);
}

/* Split a command of words separated by single spaces into argv (into
 * room, at most max words), as a caller of aredis_commandv() gives it. */
static int split(const char *cmd, char *room, const char **argv, size_t *lens,
                 int max)
{
    strcpy(room, cmd);
    int argc = 0;
    for (char *p = room; *p != '\0' && argc < max;) {
        char *sp = strchr(p, ' ');
        argv[argc] = p;
        lens[argc] = sp != NULL ? (size_t)(sp - p) : strlen(p);
        argc++;
        if (sp == NULL)
            break;
        *sp = '\0';
        p = sp + 1;
    }
    return argc;
}

/* Classification by name, before a command is encoded (the client routes
 * the usual command that way): whenever it answers, it answers what
 * classifying the encoded command does, and it leaves to the bytes every
 * command whose arguments change its class. So does the first key from
 * the arguments, by the table's fixed key places. */
Test(cmdtable, by_name_agrees_with_the_bytes)
{
    static const struct {
        const char *cmd;
        int by_name; /* the name alone decides */
    } cmds[] = {
        {"SET k v", 1},
        {"GET k", 1},
        {"set k v", 1},
        {"BLPOP q 2", 0},
        {"CLIENT REPLY OFF", 0},
        {"XREAD BLOCK 10 STREAMS s 0", 0},
        {"XREAD STREAMS s 0", 0},
        {"ZRANGE z 0 -1 WITHSCORES", 0},
        {"CONFIG GET x", 0},
        {"NOSUCHCMD a", 1},
        {"PING", 1},
        {"HGETALL h", 1},
        {"MSET a 1 b 2", 1},
        {"ZRANGEBYSCORE z 0 1", 0},
        {"EVAL s 1 ke", 1},
        {"ZUNIONSTORE dst 2 a b", 1},
        {"MIGRATE h 1 km 0 5000", 1},
        {"GET", 1},
        {"NO x", 1},
        {"HSET h f v", 1},
        {"GET k", 1},
    };
    aredis__cmdmemo memo;
    memset(&memo, 0, sizeof memo);
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
            char room[64];
            const char *argv[8];
            size_t lens[8];
            int argc = split(cmds[i].cmd, room, argv, lens, 8);
            aredis__cmdclass want, got;
            const char *e = enc(cmds[i].cmd);
            aredis__cmd_classify(e, &want);
            int by = aredis__cmd_classify_name(argv[0], lens[0], &got, &memo);
            cr_assert_eq(by, cmds[i].by_name, "%s", cmds[i].cmd);
            if (!by)
                continue;
            cr_assert_eq(got.info, want.info, "%s", cmds[i].cmd);
            cr_assert_eq(got.flags, want.flags, "%s", cmds[i].cmd);
            cr_assert_eq(got.norm, want.norm, "%s", cmds[i].cmd);
            cr_assert_eq(got.client_reply, want.client_reply, "%s",
                         cmds[i].cmd);
            cr_assert_eq(got.block_ms, want.block_ms, "%s", cmds[i].cmd);
            /* The first key: the same one, or "ask the bytes". */
            const char *k1 = NULL, *k2 = NULL;
            size_t n1 = 0, n2 = 0;
            int has =
                aredis__cmd_first_key_argv(&got, argc, argv, lens, &k1, &n1);
            int lens_null =
                aredis__cmd_first_key_argv(&got, argc, argv, NULL, &k2, &n2);
            cr_assert_eq(lens_null, has, "%s", cmds[i].cmd);
            if (has < 0)
                continue;
            cr_assert_eq(has, aredis__cmd_first_key(e, &k2, &n2), "%s",
                         cmds[i].cmd);
            if (has)
                cr_assert(n1 == n2 && memcmp(k1, k2, n1) == 0, "%s",
                          cmds[i].cmd);
        }
    }
    /* Commands whose keys follow a count or a keyword are left to the
     * bytes, as is a missing argument. */
    aredis__cmdclass k;
    const char *argv[3] = {"EVAL", "s", "1"};
    size_t lens[3] = {4, 1, 1};
    const char *key;
    size_t len;
    cr_assert(aredis__cmd_classify_name("EVAL", 4, &k, &memo));
    cr_assert_eq(aredis__cmd_first_key_argv(&k, 3, argv, lens, &key, &len), -1);
    const char *nul[2] = {"GET", NULL};
    cr_assert(aredis__cmd_classify_name("GET", 3, &k, &memo));
    cr_assert_eq(aredis__cmd_first_key_argv(&k, 2, nul, NULL, &key, &len), -1);
    cr_assert_eq(aredis__cmd_first_key_argv(&k, 1, nul, NULL, &key, &len), 0);
    /* Names of 3 to 8 bytes are remembered, in any case, each as sent. */
    memset(&memo, 0, sizeof memo);
    cr_assert(aredis__cmd_classify_name("hset", 4, &k, &memo));
    cr_assert_eq(memo.e[0].len, 4);
    cr_assert_eq(memo.e[0].info, k.info);
    cr_assert(aredis__cmd_classify_name("HSET", 4, &k, &memo));
    cr_assert_eq(memo.e[1].info, memo.e[0].info);
    cr_assert_neq(memo.e[1].raw, memo.e[0].raw);
}

/* The cluster policy each command declares (what a cluster client does
 * with it), read through classification as the client reads it:
 * subcommands have their own (SCRIPT LOAD is not SCRIPT KILL). */
Test(cmdtable, cluster_policies)
{
    static const struct {
        const char *cmd;
        int policy;
    } want[] = {
        {"GET k", AREDIS__CL_KEY},
        {"ECHO x", AREDIS__CL_KEY},
        {"PUBLISH ch m", AREDIS__CL_KEY},
        {"MGET a b", AREDIS__CL_S_ARRAY},
        {"MSET a 1 b 2", AREDIS__CL_S_OK},
        {"DEL a b", AREDIS__CL_S_SUM},
        {"EXISTS a", AREDIS__CL_S_SUM},
        {"UNLINK a", AREDIS__CL_S_SUM},
        {"TOUCH a", AREDIS__CL_S_SUM},
        {"KEYS *", AREDIS__CL_P_UNION},
        {"DBSIZE", AREDIS__CL_P_SUM},
        {"FLUSHALL", AREDIS__CL_P_OK},
        {"RANDOMKEY", AREDIS__CL_P_FIRST},
        {"SCRIPT LOAD x", AREDIS__CL_P_SAME},
        {"script exists a b", AREDIS__CL_P_AND},
        {"SCRIPT FLUSH", AREDIS__CL_P_OK},
        {"SCRIPT KILL", AREDIS__CL_REFUSE},
        {"PUBSUB CHANNELS", AREDIS__CL_N_UNIQ},
        {"PUBSUB NUMSUB a", AREDIS__CL_N_PAIRSUM},
        {"PUBSUB NUMPAT", AREDIS__CL_N_SUM},
        {"INFO", AREDIS__CL_N_MAP},
        {"CONFIG GET maxmemory", AREDIS__CL_N_MAP},
        {"CONFIG SET maxmemory 0", AREDIS__CL_N_OK},
        {"PING", AREDIS__CL_N_MAP},
        {"TIME", AREDIS__CL_N_MAP},
        {"SCAN 0", AREDIS__CL_REFUSE},
        {"MULTI", AREDIS__CL_REFUSE},
        {"WAIT 1 0", AREDIS__CL_REFUSE},
        {"SWAPDB 0 1", AREDIS__CL_REFUSE},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        aredis__cmdclass k;
        aredis__cmd_classify(enc(want[i].cmd), &k);
        cr_assert_not_null(k.info, "%s", want[i].cmd);
        cr_assert_eq(aredis__cmd_cluster(k.flags), want[i].policy, "%s: %d",
                     want[i].cmd, aredis__cmd_cluster(k.flags));
    }
    /* The policy does not disturb the other flags. */
    aredis__cmdclass k;
    aredis__cmd_classify(enc("WAIT 1 0"), &k);
    cr_assert(k.flags & AREDIS__CMDF_BLOCKING);
    cr_assert(k.flags & AREDIS__CMDF_OWN_WRITES);
    aredis__cmd_classify(enc("EXISTS a"), &k);
    cr_assert(k.flags & AREDIS__CMDF_READONLY);
}

/* The first key of an encoded command, as the pipeline's slot check and
 * the cluster read it. */
Test(cmdtable, first_key)
{
    static const struct {
        const char *cmd;
        const char *key; /* NULL: none */
    } want[] = {
        {"GET k1", "k1"},
        {"BITOP AND dst a b", "dst"},
        {"EVAL s 2 ka kb x", "ka"},
        {"EVAL s 0 x", NULL},
        {"XREAD COUNT 1 STREAMS st 0", "st"},
        {"PING", NULL},
        {"NOSUCHCOMMAND k", NULL},
        {"EVALSHA abc 1 kx", "kx"},
        {"FCALL f 1 kf a", "kf"},
        {"FCALL_RO f 0", NULL},
        {"XREADGROUP GROUP g c COUNT 1 STREAMS sx sy > >", "sx"},
        {"XREAD STREAMS", NULL},
        {"MIGRATE h 1 km 0 5000", "km"},
        {"OBJECT ENCODING ko", "ko"},
        {"object freq kq", "kq"},
        {"OBJECT HELP", NULL},
        {"MEMORY USAGE ku", "ku"},
        {"XINFO STREAM ks", "ks"},
        {"XGROUP CREATE kg g $", "kg"},
        {"SORT ks BY w STORE dst", "ks"},
        {"GEORADIUS kgeo 0 0 1 km STORE dst", "kgeo"},
        {"ZUNIONSTORE dst 2 za zb", "dst"},
        {"ZINTERSTORE dst 2 za zb WEIGHTS 1 2", "dst"},
        {"ZUNION 2 za zb", "za"},
        {"BLMPOP 0 2 la lb LEFT", "la"},
        {"BITOP NOT dst src", "dst"},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        const char *key = NULL;
        size_t len = 0;
        int has = aredis__cmd_first_key(enc(want[i].cmd), &key, &len);
        cr_assert_eq(has, want[i].key != NULL, "%s", want[i].cmd);
        if (has) {
            cr_assert_eq(len, strlen(want[i].key), "%s", want[i].cmd);
            cr_assert_eq(memcmp(key, want[i].key, len), 0, "%s", want[i].cmd);
        }
    }
    /* MIGRATE with an empty key: the keys follow KEYS. */
    const char *key = NULL;
    size_t len = 0;
    aredis_buf_cleanup(&buf);
    aredis_buf_init(&buf);
    cr_assert_eq(
        aredis_write_fmt(&buf, "MIGRATE h 1 %s 0 5000 COPY KEYS ka kb", ""), 0);
    cr_assert(aredis__cmd_first_key(buf.data, &key, &len));
    cr_assert(len == 2 && memcmp(key, "ka", 2) == 0);
    aredis_buf_cleanup(&buf);
    aredis_buf_init(&buf);
    cr_assert_eq(aredis_write_fmt(&buf, "MIGRATE h 1 %s 0 5000", ""), 0);
    cr_assert(!aredis__cmd_first_key(buf.data, &key, &len));
}

/* The first key by key specs, as COMMAND INFO describes a command the
 * table does not know (the cluster learns them). */
Test(cmdtable, keyspec_first_key)
{
    static const aredis__keyspec eval[] = {
        {.begin = AREDIS__KS_INDEX,
         .index = 2,
         .find = AREDIS__KS_KEYNUM,
         .keynumidx = 0,
         .firstkey = 1},
    };
    static const aredis__keyspec xread[] = {
        {.begin = AREDIS__KS_KEYWORD,
         .index = 1,
         .keyword = "streams",
         .kwlen = 7,
         .find = AREDIS__KS_RANGE},
    };
    static const aredis__keyspec migrate[] = {
        {.begin = AREDIS__KS_INDEX, .index = 3, .find = AREDIS__KS_RANGE},
        {.begin = AREDIS__KS_KEYWORD,
         .index = -2,
         .keyword = "keys",
         .kwlen = 4,
         .find = AREDIS__KS_RANGE},
    };
    static const aredis__keyspec store[] = {
        {.begin = AREDIS__KS_INDEX, .index = 1, .find = AREDIS__KS_RANGE},
        {.begin = AREDIS__KS_KEYWORD,
         .index = 1,
         .keyword = "store",
         .kwlen = 5,
         .find = AREDIS__KS_RANGE},
    };
    static const aredis__keyspec module[] = {
        {.begin = AREDIS__KS_INDEX, .index = 1, .find = AREDIS__KS_UNKNOWN},
    };
    static const struct {
        const aredis__keyspec *ks;
        size_t n;
        const char *cmd;
        const char *key; /* NULL: none */
    } want[] = {
        {eval, 1, "EVAL s 2 ka kb", "ka"},
        {eval, 1, "FCALL f 1 kf x", "kf"},
        {eval, 1, "EVAL s 0 x", NULL},
        {eval, 1, "EVAL s x", NULL},
        {eval, 1, "EVAL s", NULL},
        {xread, 1, "XREAD COUNT 2 STREAMS s1 s2 0 0", "s1"},
        {xread, 1, "XREAD COUNT 2", NULL},
        {xread, 1, "XREAD STREAMS", NULL},
        {migrate, 2, "MIGRATE h 1 km 0 5", "km"},
        {migrate, 2, "MIGRATE h 1 km", "km"},
        {store, 2, "SORT ks STORE dst", "ks"},
        {module, 1, "MOD.CMD k", NULL},
        {NULL, 0, "GET k", NULL},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        const char *key = NULL;
        size_t len = 0;
        int has = aredis__keyspec_first_key(enc(want[i].cmd), want[i].ks,
                                            want[i].n, &key, &len);
        cr_assert_eq(has, want[i].key != NULL, "%s", want[i].cmd);
        if (has) {
            cr_assert_eq(len, strlen(want[i].key), "%s", want[i].cmd);
            cr_assert_eq(memcmp(key, want[i].key, len), 0, "%s", want[i].cmd);
        }
    }
    /* MIGRATE with "": the KEYS spec, searched from the end. */
    const char *key = NULL;
    size_t len = 0;
    aredis_buf_cleanup(&buf);
    aredis_buf_init(&buf);
    cr_assert_eq(aredis_write_fmt(&buf, "MIGRATE h 1 %s 0 5 KEYS ka kb", ""),
                 0);
    cr_assert(aredis__keyspec_first_key(buf.data, migrate, 2, &key, &len));
    cr_assert(len == 2 && memcmp(key, "ka", 2) == 0);
}
