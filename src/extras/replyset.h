/* The replies of one batch, copied into memory kept for the next batch
 * (extras layer, internal).
 *
 * A pipeline keeps each command's reply until the last one has come, then
 * hands the batch's callback one ARRAY over them. Copying each reply into
 * its own block (aredis_reply_dup) would cost an allocation per command;
 * here the roots go into one array of `cap` entries and everything they
 * point to (strings, children, attributes) into a chain of chunks, both
 * kept when the set is cleared. So a pipeline run again with a similar
 * batch allocates nothing: the cost per command does not depend on the
 * batch's size.
 *
 * Built only on include/aredis (reply) and util/alloc.h. */
#ifndef AREDIS_EXTRAS_REPLYSET_H
#define AREDIS_EXTRAS_REPLYSET_H

#include <stddef.h>

#include "aredis/reply.h"

typedef struct aredis__rs_chunk aredis__rs_chunk;

typedef struct aredis__replyset {
    aredis_reply *elems; /* elems[i]: the root of reply i */
    size_t cap;
    aredis__rs_chunk *chunks; /* the chain, oldest first */
    aredis__rs_chunk *cur;    /* the chunk being filled */
    size_t used;              /* bytes used in cur */
    /* Work list of the copy: nodes whose pointers still refer to the
     * source. Kept too. */
    aredis_reply **work;
    size_t work_cap;
} aredis__replyset;

/* An empty set; no allocation. */
void aredis__replyset_init(aredis__replyset *s);
/* Release everything; the set is empty and may be used again. */
void aredis__replyset_cleanup(aredis__replyset *s);

/* Make room for n roots and forget the replies copied so far (what they
 * pointed to is reused by the next copies). The chunks beyond a bound are
 * released, so one huge batch does not pin its memory forever. Return 0
 * or AREDIS_ENOMEM (the set is then cleared but smaller than n). */
int aredis__replyset_reset(aredis__replyset *s, size_t n);

/* Deep-copy r into elems[i] (i < the n of the last reset). Return 0 or
 * AREDIS_ENOMEM (elems[i] is then unusable). */
int aredis__replyset_put(aredis__replyset *s, size_t i, const aredis_reply *r);

#endif /* AREDIS_EXTRAS_REPLYSET_H */
