/* The one way the library writes an error message into a caller's buffer
 * (util layer). Every layer that explains a failure in text (the reader,
 * the URL parser, the transports, the slot-map parser, the topologies)
 * formats it through aredis__msgf, so a NULL or zero-sized buffer is
 * always safe and a long message is always cut cleanly, never overrun. */
#ifndef AREDIS_UTIL_MSG_H
#define AREDIS_UTIL_MSG_H

#include <stdarg.h>
#include <stddef.h>

#include "aredis/export.h"

/* printf into buf (cap bytes, NUL-terminated); nothing when buf is NULL
 * or cap is 0. A message too long for buf is cut between two characters
 * (never inside a UTF-8 sequence) and ends with "..."; one whose buffer
 * cannot hold even that (cap < 5) is left empty. */
void aredis__msgf(char *buf, size_t cap, const char *fmt, ...)
    AREDIS_PRINTF(3, 4);
void aredis__vmsgf(char *buf, size_t cap, const char *fmt, va_list ap)
    AREDIS_PRINTF(3, 0);
/* aredis__msgf, then give code back: `return aredis__msgc(...)`. */
int aredis__msgc(char *buf, size_t cap, int code, const char *fmt, ...)
    AREDIS_PRINTF(4, 5);

#endif /* AREDIS_UTIL_MSG_H */
