/* RESP2 -> RESP3 reply reshaping (client layer).
 *
 * With aredis_options.normalize_resp2, replies that RESP2 encodes flat are
 * given the shape a RESP3 server sends, so a program sees the same types
 * from Redis 5 and Redis 7. The rules look at the reply's shape, not at the
 * protocol, so a reply that already has the RESP3 shape passes unchanged.
 * Which commands get which reshaping is in the command table
 * (util/cmdtable.c). New nodes come from the client's scratch arena. */
#include "client/client_int.h"
#include "resp/resp.h"

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
