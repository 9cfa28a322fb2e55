/* Interface of the resp layer to the layers above (connection, client).
 *
 * The public reader and writer live in include/aredis/resp.h; this header
 * adds the internal helpers the connection layer uses to encode straight
 * into its own output buffer. */
#ifndef AREDIS_RESP_RESP_H
#define AREDIS_RESP_RESP_H

#include <stddef.h>

#include "aredis/reply.h"
#include "aredis/resp.h"

/* Make room for at least `extra` more bytes after b->len.
 * Returns 0 or AREDIS_ENOMEM (b untouched). */
int aredis__buf_reserve(aredis_buf *b, size_t extra);

/* Append bytes; 0 or AREDIS_ENOMEM. */
int aredis__buf_append(aredis_buf *b, const void *p, size_t n);

/* Forget the first n bytes (already written to the socket). */
void aredis__buf_consume(aredis_buf *b, size_t n);

/* Give back what the reader holds beyond an idle connection's needs (an
 * empty buffer, a large node arena), at its next call, when nothing it
 * returned is borrowed any more. */
void aredis__reader_trim(aredis_reader *rd);
/* Make a reader that holds nothing (no error, no byte of a reply not yet
 * returned) serve another connection, with that one's limits: 0, or -1
 * when it holds something (it is left as it was). */
int aredis__reader_adopt(aredis_reader *rd, const aredis_reader_limits *limits);

/* Parse a RESP3 double's text (inf, -inf, nan or a decimal), locale
 * independently. 0 and *out set, or -1 when it is not a valid double. */
int aredis__parse_double(const char *s, size_t n, double *out);

/* Deep copies of replies into memory the caller manages (the blocking
 * facade keeps the replies of pipelined commands in blocks it reuses).
 * measure: the nodes and string bytes (NULs included) a copy of r needs,
 * 0 or AREDIS_ENOMEM. copy_to: copy r into out, which holds at least
 * nodes * sizeof(aredis_reply) + bytes bytes (nodes, bytes from measure);
 * returns out. aredis_reply_dup() is measure, one allocation, copy_to. */
int aredis__reply_measure(const aredis_reply *r, size_t *nodes, size_t *bytes);
aredis_reply *aredis__reply_copy_to(const aredis_reply *r, aredis_reply *out,
                                    size_t nodes);

/* aredis_reply_dup(), also telling the size of the one allocation it
 * makes (the client-side cache bounds its memory with it). */
aredis_reply *aredis__reply_dup_sized(const aredis_reply *r, size_t *size);

/* Whether a reply node carries text (r->str) of its own, and whether it
 * has children (r->element, r->len of them): what every walk over a reply
 * tree (copy, measure, free) asks of each node. */
static inline int aredis__reply_has_str(const aredis_reply *r)
{
    switch (r->type) {
    case AREDIS_REPLY_STRING:
    case AREDIS_REPLY_STATUS:
    case AREDIS_REPLY_ERROR:
    case AREDIS_REPLY_DOUBLE:
    case AREDIS_REPLY_BIGNUM:
    case AREDIS_REPLY_VERB:
        return r->str != NULL;
    default:
        return 0;
    }
}

static inline int aredis__reply_is_aggregate(const aredis_reply *r)
{
    switch (r->type) {
    case AREDIS_REPLY_ARRAY:
    case AREDIS_REPLY_MAP:
    case AREDIS_REPLY_SET:
    case AREDIS_REPLY_PUSH:
    case AREDIS_REPLY_ATTR:
        return 1;
    default:
        return 0;
    }
}

#endif /* AREDIS_RESP_RESP_H */
