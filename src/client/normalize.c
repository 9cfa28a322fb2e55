/* RESP2 -> RESP3 reply reshaping (client layer).
 *
 * With aredis_options.normalize_resp2, replies that RESP2 encodes flat are
 * given the shape a RESP3 server sends, so a program sees the same types
 * from Redis 5 and Redis 7. The rules look at the reply's shape, not at the
 * protocol, so a reply that already has the RESP3 shape passes unchanged.
 * New nodes come from the client's scratch arena. */
#include <string.h>
#include <strings.h>

#include "client/client_int.h"
#include "resp/resp.h"

typedef struct rule {
    const char *name;
    int norm;
} rule;

/* Commands whose RESP2 reply is reshaped whatever their arguments. */
static const rule by_name[] = {
    {"hgetall", AREDIS__NORM_MAP},    {"smembers", AREDIS__NORM_SET},
    {"sinter", AREDIS__NORM_SET},     {"sunion", AREDIS__NORM_SET},
    {"sdiff", AREDIS__NORM_SET},      {"zscore", AREDIS__NORM_DOUBLE},
    {"zincrby", AREDIS__NORM_DOUBLE}, {"zmscore", AREDIS__NORM_DOUBLES},
};

/* Commands reshaped only WITHSCORES: member/score pairs. */
static const char *const with_scores[] = {
    "zrange", "zrangebyscore", "zrevrange", "zrevrangebyscore",
    "zunion", "zinter",        "zdiff",     "zrandmember",
};

static int word_is(const char *p, size_t n, const char *w)
{
    return strlen(w) == n && strncasecmp(p, w, n) == 0;
}

/* Walk the encoded arguments (the writer's trusted output). */
static const char *next_arg(const char *p, const char **arg, size_t *n)
{
    size_t len = 0;
    p++; /* '$' */
    while (*p != '\r')
        len = len * 10 + (size_t)(*p++ - '0');
    *arg = p + 2;
    *n = len;
    return p + 2 + len + 2;
}

int aredis__norm_classify(const char *name, size_t len, const char *cmd,
                          size_t cmdlen, int argc)
{
    (void)cmdlen;
    for (size_t i = 0; i < sizeof by_name / sizeof *by_name; i++)
        if (word_is(name, len, by_name[i].name))
            return by_name[i].norm;
    const char *p = cmd + 1;
    while (*p != '\r')
        p++;
    p += 2;
    const char *arg;
    size_t n;
    if (word_is(name, len, "config")) {
        p = next_arg(p, &arg, &n); /* CONFIG itself */
        next_arg(p, &arg, &n);
        return argc >= 2 && word_is(arg, n, "get") ? AREDIS__NORM_MAP
                                                   : AREDIS__NORM_NONE;
    }
    for (size_t i = 0; i < sizeof with_scores / sizeof *with_scores; i++) {
        if (!word_is(name, len, with_scores[i]))
            continue;
        for (int a = 0; a < argc; a++) {
            p = next_arg(p, &arg, &n);
            if (a > 0 && word_is(arg, n, "withscores"))
                return AREDIS__NORM_PAIRS_DOUBLE;
        }
        return AREDIS__NORM_NONE;
    }
    return AREDIS__NORM_NONE;
}

static int to_double(aredis_reply *out, const aredis_reply *in)
{
    double d;
    if (in->type != AREDIS_REPLY_STRING ||
        aredis__parse_double(in->str, in->len, &d) != 0)
        return -1;
    *out = *in;
    out->type = AREDIS_REPLY_DOUBLE;
    out->dval = d;
    return 0;
}

const aredis_reply *aredis__normalize(aredis_reply_arena *a, int norm,
                                      const aredis_reply *r)
{
    aredis_reply *n;
    switch (norm) {
    case AREDIS__NORM_MAP:
    case AREDIS__NORM_SET:
        if (r->type != AREDIS_REPLY_ARRAY ||
            (norm == AREDIS__NORM_MAP && r->len % 2 != 0))
            return r;
        if ((n = aredis_arena_nodes(a, 1)) == NULL)
            return r;
        *n = *r;
        n->type =
            norm == AREDIS__NORM_MAP ? AREDIS_REPLY_MAP : AREDIS_REPLY_SET;
        return n;
    case AREDIS__NORM_DOUBLE:
        if ((n = aredis_arena_nodes(a, 1)) == NULL || to_double(n, r) != 0)
            return r;
        return n;
    case AREDIS__NORM_DOUBLES: {
        if (r->type != AREDIS_REPLY_ARRAY || r->len == 0)
            return r;
        aredis_reply *kids = aredis_arena_nodes(a, r->len + 1);
        if (kids == NULL)
            return r;
        for (size_t i = 0; i < r->len; i++) {
            const aredis_reply *e = &r->element[i];
            if (e->type == AREDIS_REPLY_NIL)
                kids[i + 1] = *e;
            else if (to_double(&kids[i + 1], e) != 0)
                return r;
        }
        kids[0] = *r;
        kids[0].element = kids + 1;
        return kids;
    }
    case AREDIS__NORM_PAIRS_DOUBLE: {
        if (r->type != AREDIS_REPLY_ARRAY || r->len == 0 || r->len % 2 != 0)
            return r;
        for (size_t i = 0; i < r->len; i++)
            if (r->element[i].type != AREDIS_REPLY_STRING)
                return r; /* already RESP3 pairs, or something else */
        size_t pairs = r->len / 2;
        aredis_reply *nodes = aredis_arena_nodes(a, 1 + pairs + r->len);
        if (nodes == NULL)
            return r;
        aredis_reply *root = nodes, *pair = nodes + 1, *leaf = pair + pairs;
        *root = *r;
        root->element = pair;
        root->len = pairs;
        for (size_t i = 0; i < pairs; i++) {
            leaf[2 * i] = r->element[2 * i];
            if (to_double(&leaf[2 * i + 1], &r->element[2 * i + 1]) != 0)
                return r;
            pair[i].type = AREDIS_REPLY_ARRAY;
            pair[i].len = 2;
            pair[i].element = &leaf[2 * i];
        }
        return root;
    }
    default:
        return r;
    }
}
