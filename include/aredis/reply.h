/* The reply object: what a command's callback receives.
 *
 * A reply is a tree of plain structs that a program walks directly:
 *
 *     if (r->type == AREDIS_REPLY_ARRAY)
 *         for (size_t i = 0; i < r->len; i++)
 *             use(r->element[i].str, r->element[i].len);
 *
 * Ownership, the one rule: a reply handed to you by aredis (a callback
 * argument, aredis_reader_get_reply()) is BORROWED. It stays valid until the
 * callback returns, or until the next call on the reader, and must not be
 * modified or freed. To keep one longer, take an owned copy with
 * aredis_reply_dup() and release it with aredis_reply_free(). Functions
 * documented as returning an owned reply (the blocking facade) hand you such
 * a copy.
 *
 * All fields are read-only. Strings are NUL-terminated as a convenience and
 * binary safe through `len`. */
#ifndef AREDIS_REPLY_H
#define AREDIS_REPLY_H

#include <stddef.h>

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, wire-type description). RESP3 section names follow
 * https://github.com/redis/redis-specifications/blob/master/protocol/RESP3.md
 */
#define AREDIS_REPLY_TYPE_MAP(X)                                  \
    X(STRING, 1, "bulk string")    /* $: str, len              */ \
    X(ARRAY, 2, "array")           /* *: element[len]          */ \
    X(INTEGER, 3, "integer")       /* :: integer               */ \
    X(NIL, 4, "null")              /* _, $-1, *-1              */ \
    X(STATUS, 5, "simple string")  /* +: str, len              */ \
    X(ERROR, 6, "error")           /* - or !: str, len, code   */ \
    X(DOUBLE, 7, "double")         /* ,: dval; str = its text  */ \
    X(BOOL, 8, "boolean")          /* #: integer is 0 or 1     */ \
    X(MAP, 9, "map")               /* %: element[len], k,v,... */ \
    X(SET, 10, "set")              /* ~: element[len]          */ \
    X(ATTR, 11, "attribute")       /* |: only seen via attrs   */ \
    X(PUSH, 12, "push")            /* >: element[len]          */ \
    X(BIGNUM, 13, "big number")    /* (: str, len (digits)     */ \
    X(VERB, 14, "verbatim string") /* =: str, len, vformat     */

typedef enum aredis_reply_type {
#define AREDIS_REPLY_ENUM_(name, value, desc) AREDIS_REPLY_##name = (value),
    AREDIS_REPLY_TYPE_MAP(AREDIS_REPLY_ENUM_)
#undef AREDIS_REPLY_ENUM_
} aredis_reply_type;

typedef struct aredis_reply aredis_reply;

struct aredis_reply {
    /** One of aredis_reply_type. */
    int type;
    /** For AREDIS_REPLY_ERROR: AREDIS_ESERVER when the server sent the
     * error (`-` or `!`), otherwise the client-side aredis_err that failed
     * the command (timeout, disconnect...). 0 for every other type. */
    int code;
    /** Bytes in `str` (STRING, STATUS, ERROR, VERB, BIGNUM, DOUBLE), or the
     * number of entries in `element` (ARRAY, SET, PUSH, MAP, ATTR). A MAP
     * of n pairs has len == 2n: key 0, value 0, key 1, value 1, ... */
    size_t len;
    union {
        /** Text for the string-like types; for DOUBLE the server's text. */
        const char *str;
        /** Children of an aggregate, contiguous; NULL when len is 0. */
        const aredis_reply *element;
    };
    union {
        /** INTEGER value, or 1/0 for BOOL. */
        long long integer;
        /** DOUBLE value (may be inf, -inf or nan). */
        double dval;
    };
    /** RESP3 attributes sent just before this reply (type ATTR, laid out
     * like a MAP), or NULL. */
    const aredis_reply *attrs;
    /** VERB: the three-letter format ("txt", "mkd"), NUL-terminated. */
    char vformat[4];
};

/** \return a static name for a reply type ("array", "map"...), or "unknown".
 * \since 0.1 */
AREDIS_API const char *aredis_reply_type_name(int type);

/** Deep-copy a reply into one owned allocation.
 * \param r a reply (borrowed or owned); must not be NULL.
 * \return an owned copy to release with aredis_reply_free(), or NULL when
 *         out of memory. \since 0.1 */
AREDIS_API aredis_reply *aredis_reply_dup(const aredis_reply *r);

/** Release a reply returned by aredis_reply_dup() or documented as owned.
 * Never pass a borrowed reply. NULL is a no-op. The reply's nodes (types,
 * lengths, pointers) must be as aredis returned them; the bytes of its
 * strings may have been changed. A small reply's memory may be kept for
 * the next aredis_reply_dup() (one block per process), so a loop of
 * call-and-free allocates nothing. \since 0.1 */
AREDIS_API void aredis_reply_free(aredis_reply *r);

/** Look up a key in a MAP or ATTR reply.
 * \param r the map; key/klen the key, compared byte for byte with string-like
 *          keys (STRING, STATUS, VERB).
 * \return the value (borrowed like r), or NULL when absent or r is not a map.
 * \since 0.1 */
AREDIS_API const aredis_reply *aredis_reply_map_get(const aredis_reply *r,
                                                    const char *key,
                                                    size_t klen);

#ifdef __cplusplus
}
#endif

#endif /* AREDIS_REPLY_H */
