/* Interface of the resp layer to the layers above (connection, client).
 *
 * The public reader and writer live in include/aredis/resp.h; this header
 * adds the internal helpers the connection layer uses to encode straight
 * into its own output buffer. */
#ifndef AREDIS_RESP_RESP_H
#define AREDIS_RESP_RESP_H

#include <stddef.h>

#include "aredis/resp.h"

/* Make room for at least `extra` more bytes after b->len.
 * Returns 0 or AREDIS_ENOMEM (b untouched). */
int aredis__buf_reserve(aredis_buf *b, size_t extra);

/* Append bytes; 0 or AREDIS_ENOMEM. */
int aredis__buf_append(aredis_buf *b, const void *p, size_t n);

/* Forget the first n bytes (already written to the socket). */
void aredis__buf_consume(aredis_buf *b, size_t n);

/* Parse a RESP3 double's text (inf, -inf, nan or a decimal), locale
 * independently. 0 and *out set, or -1 when it is not a valid double. */
int aredis__parse_double(const char *s, size_t n, double *out);

/* aredis_reply_dup(), also telling the size of the one allocation it
 * makes (the client-side cache bounds its memory with it). */
aredis_reply *aredis__reply_dup_sized(const aredis_reply *r, size_t *size);

#endif /* AREDIS_RESP_RESP_H */
