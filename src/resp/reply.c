/* Reply helpers (resp layer): type names, owned copies, map look-up.
 *
 * An owned copy is one allocation: the nodes first, then every string.
 * It is laid out by a Cheney-style copy (children of an aggregate stay
 * contiguous) so neither counting nor copying recurses on the C stack,
 * whatever the nesting depth. A reply without children has a block of its
 * own kind that goes back to the allocator's one spare when freed, so a
 * loop of dup-and-free (the blocking facade) allocates nothing. Pure
 * memory work: no I/O. */
#include <stdint.h>
#include <string.h>

#include "aredis/error.h"
#include "aredis/reply.h"
#include "resp/resp.h"
#include "util/alloc.h"

const char *aredis_reply_type_name(int type)
{
    switch (type) {
#define AREDIS_REPLY_NAME_(name, value, desc) \
    case AREDIS_REPLY_##name:                 \
        return desc;
        AREDIS_REPLY_TYPE_MAP(AREDIS_REPLY_NAME_)
#undef AREDIS_REPLY_NAME_
    default:
        return "unknown";
    }
}

/* A range of sibling nodes still to count. */
typedef struct range {
    const aredis_reply *first;
    size_t n;
} range;

/* Count nodes and string bytes (with their NULs). 0, or AREDIS_ENOMEM.
 * The stack of ranges starts on the C stack and moves to the heap only
 * for replies nested deeper than that. */
int aredis__reply_measure(const aredis_reply *root, size_t *nodes,
                          size_t *bytes)
{
    range local[16];
    size_t cap = sizeof local / sizeof *local, top = 0;
    range *stack = local;
    stack[top++] = (range){root, 1};
    *nodes = 0;
    *bytes = 0;
    while (top > 0) {
        range rg = stack[--top];
        for (size_t i = 0; i < rg.n; i++) {
            const aredis_reply *r = &rg.first[i];
            ++*nodes;
            if (aredis__reply_has_str(r))
                *bytes += r->len + 1;
            const aredis_reply *kids[2] = {NULL, r->attrs};
            size_t counts[2] = {0, 1};
            if (aredis__reply_is_aggregate(r) && r->len != 0) {
                kids[0] = r->element;
                counts[0] = r->len;
            }
            for (int k = 0; k < 2; k++) {
                if (kids[k] == NULL)
                    continue;
                if (top == cap) {
                    range *s = aredis__reallocarray(
                        stack == local ? NULL : stack, cap * 2, sizeof *stack);
                    if (s == NULL) {
                        if (stack != local)
                            aredis__free(stack);
                        return AREDIS_ENOMEM;
                    }
                    if (stack == local)
                        memcpy(s, local, sizeof local);
                    stack = s;
                    cap *= 2;
                }
                stack[top++] = (range){kids[k], counts[k]};
            }
        }
    }
    if (stack != local)
        aredis__free(stack);
    return 0;
}

/* A copy of a reply without children or attributes (a string, status,
 * error, number, nil...) is a block of its own kind: a header holding the
 * block's size, then the node, then the string. Freed, the block goes back
 * to the allocator's one spare (util/alloc.h) and the next such copy that
 * fits takes it. */
#define SCALAR_HEADER 16

/* The bytes a copy of r needs in a scalar block, or 0 when r is not a
 * scalar (or too large for the spare to be worth it). */
static size_t scalar_need(const aredis_reply *r)
{
    if (aredis__reply_is_aggregate(r) || r->attrs != NULL)
        return 0;
    size_t n = SCALAR_HEADER + sizeof *r;
    if (aredis__reply_has_str(r)) {
        if (r->len > AREDIS__SPARE_MAX)
            return 0;
        n += r->len + 1;
    }
    return n;
}

static char *scalar_block(aredis_reply *r)
{
    return (char *)r - SCALAR_HEADER;
}

aredis_reply *aredis_reply_dup(const aredis_reply *root)
{
    size_t size;
    return aredis__reply_dup_sized(root, &size);
}

aredis_reply *aredis__reply_dup_sized(const aredis_reply *root, size_t *size)
{
    size_t need = scalar_need(root);
    if (need != 0) {
        char *block = aredis__spare_take(need, size);
        if (block == NULL && (block = aredis__malloc(*size = need)) == NULL)
            return NULL;
        memcpy(block, size, sizeof *size);
        aredis_reply *out = (aredis_reply *)(void *)(block + SCALAR_HEADER);
        *out = *root;
        if (aredis__reply_has_str(root)) {
            char *str = (char *)(out + 1);
            memcpy(str, root->str, root->len);
            str[root->len] = '\0';
            out->str = str;
        }
        return out;
    }
    size_t nodes, bytes;
    if (aredis__reply_measure(root, &nodes, &bytes) != 0)
        return NULL;
    if (nodes > (SIZE_MAX - bytes) / sizeof(aredis_reply))
        return NULL;
    *size = nodes * sizeof(aredis_reply) + bytes;
    aredis_reply *out = aredis__malloc(*size);
    if (out == NULL)
        return NULL;
    return aredis__reply_copy_to(root, out, nodes);
}

aredis_reply *aredis__reply_copy_to(const aredis_reply *root, aredis_reply *out,
                                    size_t nodes)
{
    char *strings = (char *)(out + nodes);

    /* Copy the root, then fix up nodes in allocation order: each node's
     * pointers still refer to the source until its turn comes. */
    out[0] = *root;
    size_t used = 1;
    for (size_t i = 0; i < used; i++) {
        aredis_reply *r = &out[i];
        if (aredis__reply_has_str(r)) {
            memcpy(strings, r->str, r->len);
            strings[r->len] = '\0';
            r->str = strings;
            strings += r->len + 1;
        } else if (aredis__reply_is_aggregate(r)) {
            if (r->len == 0) { /* never the source's pointer */
                r->element = NULL;
            } else {
                memcpy(&out[used], r->element, r->len * sizeof *out);
                r->element = &out[used];
                used += r->len;
            }
        }
        if (r->attrs != NULL) {
            out[used] = *r->attrs;
            r->attrs = &out[used];
            used++;
        }
    }
    return out;
}

void aredis_reply_free(aredis_reply *r)
{
    if (r == NULL)
        return;
    if (scalar_need(r) != 0) {
        size_t size;
        memcpy(&size, scalar_block(r), sizeof size);
        aredis__spare_give(scalar_block(r), size);
    } else {
        aredis__free(r);
    }
}

const aredis_reply *aredis_reply_map_get(const aredis_reply *r, const char *key,
                                         size_t klen)
{
    if (r == NULL ||
        (r->type != AREDIS_REPLY_MAP && r->type != AREDIS_REPLY_ATTR))
        return NULL;
    for (size_t i = 0; i + 1 < r->len; i += 2) {
        const aredis_reply *k = &r->element[i];
        if ((k->type == AREDIS_REPLY_STRING || k->type == AREDIS_REPLY_STATUS ||
             k->type == AREDIS_REPLY_VERB) &&
            k->len == klen && memcmp(k->str, key, klen) == 0)
            return &r->element[i + 1];
    }
    return NULL;
}
