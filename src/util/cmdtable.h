/* The command table (util layer): what the library knows about each Redis
 * command, in one place, for the client (routing, retries, deadlines,
 * CLIENT REPLY, RESP2 normalisation) and the extras (what a transaction
 * may hold).
 *
 * A command is classified once, at submit, from its encoded form (the RESP
 * writer's own output, "*<argc>\r\n" then argc "$<len>\r\n<bytes>\r\n",
 * which is trusted and never re-validated here). The name is found by a
 * hash of its lower-cased bytes, so no list is walked and no constant name
 * is measured; only the commands whose meaning depends on their arguments
 * (CLIENT REPLY, CONFIG GET, ... WITHSCORES, blocking timeouts, XREAD
 * BLOCK) have those arguments read. */
#ifndef AREDIS_UTIL_CMDTABLE_H
#define AREDIS_UTIL_CMDTABLE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Flags of a command. */
enum {
    /* Reads only (Redis's "readonly", plus a few harmless others such as
     * PING): may be re-sent after a lost connection when the user allows. */
    AREDIS__CMDF_READONLY = 1 << 0,
    /* May block the connection (BLPOP, WAIT...), so the client sends it on
     * an exclusive connection. XREAD and XREADGROUP have it only when
     * given BLOCK (set by aredis__cmd_classify, never in the table). */
    AREDIS__CMDF_BLOCKING = 1 << 1,
    /* Blocks when given the BLOCK option (XREAD, XREADGROUP). */
    AREDIS__CMDF_BLOCK_OPT = 1 << 2,
    /* The timeout argument is in milliseconds (WAIT); otherwise seconds,
     * possibly with a fraction (BLPOP key 0.5). */
    AREDIS__CMDF_TIMEOUT_MS = 1 << 3,
    /* Cannot be part of a MULTI/EXEC batch the library frames: it controls
     * the transaction itself (MULTI, EXEC, DISCARD, WATCH, RESET), the
     * server refuses it there (SAVE, SHUTDOWN, SYNC, PSYNC), or the client
     * would route it to another connection (every BLOCKING command). */
    AREDIS__CMDF_NO_MULTI = 1 << 4,
    /* (P|S)(UN)SUBSCRIBE: answered by push frames; only aredis_pubsub
     * sends them. */
    AREDIS__CMDF_PUBSUB = 1 << 5,
    /* Refused by the client as a plain command: SELECT (the database is a
     * client option), HELLO and RESET (they would change the protocol,
     * user, name or database of a connection that callers share, behind
     * the client's back). The PUBSUB family is refused too. */
    AREDIS__CMDF_REFUSED = 1 << 6,
    /* The second argument names a subcommand with its own entry
     * ("config|get"). */
    AREDIS__CMDF_SUBCMD = 1 << 7,
    /* CLIENT REPLY: the third argument changes whether replies come. */
    AREDIS__CMDF_CLIENT_REPLY = 1 << 8,
    /* Its normalisation applies only when WITHSCORES is among the
     * arguments. */
    AREDIS__CMDF_WITHSCORES = 1 << 9,
    /* Its keys are found by parsing its arguments (XREAD ... STREAMS,
     * SORT ... STORE); first/last/step give only the fixed ones. */
    AREDIS__CMDF_MOVABLE = 1 << 10,
    /* WAIT, WAITAOF: about the writes of the connection it runs on, so it
     * stays on the connection the caller's writes went to (the shared
     * one), which it holds until answered; BLOCKING gives it a deadline
     * margin like the others, not an exclusive connection. */
    AREDIS__CMDF_OWN_WRITES = 1 << 11,
    /* Applies to the command that follows it on the connection (ASKING,
     * CLIENT CACHING): the two go to the server together or not at all,
     * so a deadline never takes it out of a connection alone (conn.h,
     * AREDIS__CC_GLUED). */
    AREDIS__CMDF_NEXT = 1 << 12,
};

/* What a cluster client does with a command: a field of five bits in the
 * flags (AREDIS__CMDF_CLUSTER(policy) in the table, aredis__cmd_cluster()
 * to read it), so the one table declares it next to everything else.
 * Commands with keys are routed by their first key's slot unless the
 * policy says otherwise; keyless commands without a policy go to any node
 * (their meaning does not depend on which). The fan-out and its merges
 * are the client's (src/client/fanout.c). */
enum {
    AREDIS__CL_KEY,       /* by the first key; keyless: any node */
    AREDIS__CL_REFUSE,    /* refused: its meaning depends on the node */
    AREDIS__CL_P_SUM,     /* every primary; integers summed (DBSIZE) */
    AREDIS__CL_P_UNION,   /* every primary; arrays joined (KEYS) */
    AREDIS__CL_P_OK,      /* every primary; OK when all say OK */
    AREDIS__CL_P_SAME,    /* every primary; the reply when all agree */
    AREDIS__CL_P_AND,     /* every primary; arrays of 0/1 ANDed */
    AREDIS__CL_P_FIRST,   /* every primary; the first non-nil (RANDOMKEY) */
    AREDIS__CL_N_UNIQ,    /* every node; arrays joined without repeats */
    AREDIS__CL_N_PAIRSUM, /* every node; name,count,... counts summed */
    AREDIS__CL_N_SUM,     /* every node; integers summed */
    AREDIS__CL_N_MAP,     /* every node; a map "host:port" -> its reply */
    AREDIS__CL_N_OK,      /* every node; OK when all say OK */
    AREDIS__CL_S_ARRAY,   /* keys split by slot; array in the keys' order */
    AREDIS__CL_S_SUM,     /* keys split by slot; integers summed */
    AREDIS__CL_S_OK,      /* key value pairs split by slot; OK when all OK */
};
#define AREDIS__CMDF_CL_SHIFT 16
#define AREDIS__CMDF_CLUSTER(policy) ((policy) << AREDIS__CMDF_CL_SHIFT)
/* The bits of the field: 0 for every command routed by its key. */
#define AREDIS__CMDF_CL_MASK (31u << AREDIS__CMDF_CL_SHIFT)
_Static_assert(AREDIS__CL_S_OK < 32, "the cluster policy has five bits");

/* The cluster policy (AREDIS__CL_*) of a command's flags. */
static inline int aredis__cmd_cluster(unsigned flags)
{
    return (int)(flags >> AREDIS__CMDF_CL_SHIFT) & 31;
}

/* Built-in reshaping of a RESP2 reply into its RESP3 form (normalize.c). */
enum {
    AREDIS__NORM_NONE,
    AREDIS__NORM_MAP,          /* flat array -> map */
    AREDIS__NORM_SET,          /* array -> set */
    AREDIS__NORM_PAIRS_DOUBLE, /* m,s,m,s -> [m,s(double)],... */
    AREDIS__NORM_DOUBLE,       /* bulk -> double */
    AREDIS__NORM_DOUBLES,      /* array of bulks -> array of doubles */
};

/* What CLIENT REPLY asks for. */
enum {
    AREDIS__CLIENT_REPLY_NONE,
    AREDIS__CLIENT_REPLY_ON,
    AREDIS__CLIENT_REPLY_OFF,
    AREDIS__CLIENT_REPLY_SKIP,
};

/* One command (or "command|subcommand"). Key positions are those of
 * Redis's COMMAND INFO: argument indexes counted from the name (0), last
 * negative counting from the end (-1: the last argument), 0 0 0 for none
 * at fixed places. */
typedef struct aredis__cmdinfo {
    const char *name; /* lower case */
    uint8_t len;
    uint8_t norm;     /* AREDIS__NORM_* */
    uint32_t flags;   /* AREDIS__CMDF_* */
    int8_t first_key; /* 0: none */
    int8_t last_key;  /* negative: from the end */
    int8_t key_step;  /* 2 for MSET's key value pairs */
    int8_t numkeys;   /* the argument holding a key count, keys right
                       * after it (EVAL, ZUNION, BLMPOP); 0: none */
    int8_t timeout;   /* blocking: the timeout argument, -1: the last */
} aredis__cmdinfo;

/* The entry for a command name (any case), or NULL for a name the table
 * does not know (such a command is routed and completed like any other;
 * it is just never re-sent, blocking or reshaped). */
const aredis__cmdinfo *aredis__cmd_lookup(const char *name, size_t len);

/* What one encoded command is. */
typedef struct aredis__cmdclass {
    const aredis__cmdinfo *info; /* the subcommand's entry when it has one;
                                  * NULL: unknown */
    unsigned flags;              /* info's, with BLOCKING added for XREAD
                                  * ... BLOCK */
    int norm;                    /* AREDIS__NORM_* that applies */
    int client_reply;            /* AREDIS__CLIENT_REPLY_* */
    /* BLOCKING commands: how long the server may hold the reply back, in
     * ms. 0: without limit (BLPOP key 0), and also when the timeout
     * argument cannot be read (the server will say why). */
    int64_t block_ms;
} aredis__cmdclass;

/* Classify an encoded command (trusted: the writer's output). Returns its
 * argument count. */
int aredis__cmd_classify(const char *enc, aredis__cmdclass *out);

/* ---- walking an encoded command ----------------------------------------- */

typedef struct aredis__args {
    const char *p;
    int left;
} aredis__args;

/* Start at the beginning of an encoded command; returns its argc. */
static inline int aredis__args_init(aredis__args *it, const char *enc)
{
    const char *p = enc + 1; /* '*' */
    int argc = 0;
    while (*p != '\r')
        argc = argc * 10 + (*p++ - '0');
    it->p = p + 2;
    it->left = argc;
    return argc;
}

/* The next argument (not NUL-terminated); 0 when there is none left. */
static inline int aredis__args_next(aredis__args *it, const char **arg,
                                    size_t *len)
{
    if (it->left == 0)
        return 0;
    const char *p = it->p + 1; /* '$' */
    size_t n = 0;
    while (*p != '\r')
        n = n * 10 + (size_t)(*p++ - '0');
    *arg = p + 2;
    *len = n;
    it->p = p + 2 + n + 2;
    it->left--;
    return 1;
}

/* The last few names classified, by their exact bytes: a program sends the
 * same few commands over and over, and most are classified by their name
 * alone, so aredis__cmd_classify_memo() and _name() answer those without
 * the table. One per caller (the client keeps one); all zeros is empty. */
typedef struct aredis__cmdmemo {
    struct {
        uint64_t raw; /* the name as sent: aredis__cmd_memo_word() */
        const aredis__cmdinfo *info;
        uint32_t flags; /* info's (0: unknown) */
        uint8_t len;    /* 0: an empty entry */
        uint8_t norm;   /* info's */
    } e[2];
    unsigned next; /* the entry to replace */
} aredis__cmdmemo;

/* aredis__cmd_classify() through a memo. */
int aredis__cmd_classify_memo(const char *enc, aredis__cmdclass *out,
                              aredis__cmdmemo *m);

/* The memo's key of a name of 3 to 8 bytes: bytes [0, 4) and [n - 4, n)
 * (overlapping below 8) cover every byte, so with the length it tells
 * the names apart; read without going past the name. */
static inline uint64_t aredis__cmd_memo_word(const char *p, size_t n)
{
    uint32_t lo, hi;
    if (n >= 4) {
        memcpy(&lo, p, sizeof lo);
        memcpy(&hi, p + n - 4, sizeof hi);
    } else {
        uint16_t two;
        memcpy(&two, p, sizeof two);
        lo = two;
        hi = (unsigned char)p[2];
    }
    return (uint64_t)hi << 32 | lo;
}

/* The class of the memo's entry i (as the name alone decides it). */
static inline void aredis__cmd_memo_get(const aredis__cmdmemo *m, int i,
                                        aredis__cmdclass *out)
{
    out->info = m->e[i].info;
    out->flags = m->e[i].flags;
    out->norm = m->e[i].norm;
    out->client_reply = AREDIS__CLIENT_REPLY_NONE;
    out->block_ms = 0;
}

/* aredis__cmd_classify_name() past the memo. */
int aredis__cmd_classify_name_slow(const char *name, size_t n,
                                   aredis__cmdclass *out, aredis__cmdmemo *m);

/* Classify a command not encoded yet by its name (n bytes, any case),
 * through a memo: 1 when the name alone decides (*out is then what
 * aredis__cmd_classify() gives whatever the arguments), 0 when the
 * arguments do (subcommands, CLIENT REPLY, WITHSCORES, blocking
 * timeouts, XREAD BLOCK): classify the encoded command then. */
static inline int aredis__cmd_classify_name(const char *name, size_t n,
                                            aredis__cmdclass *out,
                                            aredis__cmdmemo *m)
{
    if (n >= 3 && n <= 8) {
        uint64_t w = aredis__cmd_memo_word(name, n);
        for (int i = 0; i < 2; i++) {
            if (m->e[i].raw == w && m->e[i].len == n) {
                aredis__cmd_memo_get(m, i, out);
                return 1;
            }
        }
    }
    return aredis__cmd_classify_name_slow(name, n, out, m);
}

/* The first key of a command not encoded yet, from its arguments (argv[0]
 * the name; argvlen NULL: NUL-terminated) and its classification by
 * name: 1 and *key, *len (pointing into argv) for a key at a fixed place,
 * 0 when it names none, -1 when only its encoded form tells (a key count,
 * a keyword, a command the table does not know, an argument missing). */
static inline int aredis__cmd_first_key_argv(const aredis__cmdclass *cls,
                                             int argc, const char *const *argv,
                                             const size_t *argvlen,
                                             const char **key, size_t *len)
{
    const aredis__cmdinfo *info = cls->info;
    if (info == NULL || (info->flags & AREDIS__CMDF_MOVABLE))
        return -1;
    if (info->first_key <= 0)
        return info->numkeys > 0 ? -1 : 0;
    int at = (unsigned char)info->first_key; /* positive */
    if (at >= argc)
        return 0; /* fewer arguments than that */
    if (argv[at] == NULL)
        return -1; /* the writer refuses it */
    *key = argv[at];
    *len = argvlen != NULL ? argvlen[at] : strlen(argv[at]);
    return 1;
}

/* The first key of an encoded command (trusted), by the table's key
 * positions (a fixed one first: ZUNIONSTORE's destination before the keys
 * it counts), the key count of EVAL and the like, the STREAMS argument of
 * XREAD, or the KEYS argument of MIGRATE when its key is "": 1 and *key,
 * *len (pointing into enc), or 0 when it names no key (or the table does
 * not know it). */
int aredis__cmd_first_key(const char *enc, const char **key, size_t *len);
/* aredis__cmd_first_key_of() by walking enc from its start. */
int aredis__cmd_first_key_walk(const char *enc, const aredis__cmdclass *cls,
                               const char **key, size_t *len);
/* The same as aredis__cmd_first_key() from a classification already
 * made: cls as aredis__cmd_classify() or _memo() gave it for enc. */
static inline int aredis__cmd_first_key_of(const char *enc,
                                           const aredis__cmdclass *cls,
                                           const char **key, size_t *len)
{
    /* A cluster client asks this of every command it routes, so the usual
     * case is answered in place: the key at a fixed place (GET k, HSET k
     * ...), and enc beginning "*<argc>\r\n$<n>\r\n<name>\r\n" with one
     * digit each, the name being the entry's own (a subcommand's entry
     * name is longer than the name sent). */
    const aredis__cmdinfo *info = cls->info;
    if (info != NULL && info->first_key > 0 &&
        !(info->flags & AREDIS__CMDF_MOVABLE) && enc[2] == '\r' &&
        enc[6] == '\r' && enc[5] - '0' == info->len) {
        aredis__args it = {enc + 8 + info->len + 2, enc[1] - '0' - 1};
        if (info->first_key > it.left)
            return 0; /* fewer arguments than that */
        for (int at = 1; at < info->first_key; at++)
            aredis__args_next(&it, key, len);
        return aredis__args_next(&it, key, len);
    }
    return aredis__cmd_first_key_walk(enc, cls, key, len);
}

/* ---- key specs, as a server describes a command it knows ------------------
 * For a command the table does not know, a cluster client asks a server
 * (COMMAND INFO): its key specifications say where the keys are. One spec
 * is a place to start from (an argument index, or the argument after a
 * keyword searched from an index) and how keys follow it (a range, or a
 * count of keys at an offset, keys after it). Only the first key matters
 * for routing. */
enum {
    AREDIS__KS_INDEX = 1, /* begin_search index */
    AREDIS__KS_KEYWORD,   /* begin_search keyword */
};
enum {
    AREDIS__KS_RANGE = 1, /* find_keys range: the key is where it begins */
    AREDIS__KS_KEYNUM,    /* find_keys keynum */
    AREDIS__KS_UNKNOWN,   /* a module's own way: not followed */
};
#define AREDIS__KS_KEYWORD_MAX 24
typedef struct aredis__keyspec {
    uint8_t begin;     /* AREDIS__KS_INDEX or _KEYWORD */
    uint8_t find;      /* AREDIS__KS_RANGE, _KEYNUM or _UNKNOWN */
    uint8_t kwlen;     /* bytes of keyword */
    int16_t index;     /* INDEX: the argument; KEYWORD: where the search
                        * starts (negative: from the end, backwards) */
    int16_t keynumidx; /* KEYNUM: the count's offset from the beginning */
    int16_t firstkey;  /* KEYNUM: the first key's offset from it */
    char keyword[AREDIS__KS_KEYWORD_MAX]; /* lower case */
} aredis__keyspec;

/* The first key of an encoded command (trusted) by its key specs, tried in
 * order: 1 and *key, *len (pointing into enc), or 0 when none gives one.
 * An empty key is taken only when no later spec gives another (MIGRATE
 * host port "" ... KEYS k). */
int aredis__keyspec_first_key(const char *enc, const aredis__keyspec *ks,
                              size_t nks, const char **key, size_t *len);

/* 1 when arg (n bytes, any case) is the lower-case word w of wlen bytes. */
int aredis__word_is(const char *arg, size_t n, const char *w, size_t wlen);

#endif /* AREDIS_UTIL_CMDTABLE_H */
