/* The RESP protocol layer: a reader (bytes in, replies out) and a writer
 * (commands in, bytes out).
 *
 * Both are pure: no sockets, no clock, no threads. The client uses them
 * internally; they are public for programs that bring their own transport,
 * for tools and for tests. An aredis_reader or aredis_buf must not be used
 * from two threads at once; distinct objects are independent. */
#ifndef AREDIS_RESP_H
#define AREDIS_RESP_H

#include <stdarg.h>
#include <stddef.h>

#include "export.h"
#include "reply.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Reader
 * ------------------------------------------------------------------------ */

/** Limits that protect the reader against a hostile or broken server.
 * A zero member means "use the default". A declared length or count above a
 * limit is a protocol error (AREDIS_ETOOBIG) raised before anything of that
 * size is allocated: memory only ever grows with bytes that really arrived. */
typedef struct aredis_reader_limits {
    /** Deepest aggregate nesting (default 64). */
    size_t max_depth;
    /** Longest bulk string, verbatim string or bulk error (default 512 MiB,
     * Redis's proto-max-bulk-len). */
    size_t max_bulk_len;
    /** Most elements in one aggregate; a map of n pairs counts 2n
     * (default 2^28). */
    size_t max_elements;
    /** Most bytes buffered for replies not yet returned (default 1 GiB +
     * 64 KiB). A top-level reply must fit in it. */
    size_t max_buffer;
    /** Most memory one aggregate reply may take: its bytes as received plus
     * sizeof(aredis_reply) (48 bytes on 64-bit systems) for each of its
     * nodes (default twice max_buffer). A reply of many tiny items (each
     * `_\r\n` is 3 bytes and one node) would otherwise need 16 times its
     * size; this is checked while the reply is scanned, before its nodes
     * are allocated. A scalar reply is bounded by max_buffer alone.
     * \since 0.1 */
    size_t max_reply_memory;
} aredis_reader_limits;

typedef struct aredis_reader aredis_reader;

/** Create a reader.
 * \param limits NULL for the defaults; copied.
 * \return an owned reader for aredis_reader_free(), or NULL when out of
 *         memory. \since 0.1 */
AREDIS_API aredis_reader *aredis_reader_new(const aredis_reader_limits *limits);

/** Free a reader and every reply it returned. NULL is a no-op. \since 0.1 */
AREDIS_API void aredis_reader_free(aredis_reader *rd);

/** Append bytes from the server.
 * \param buf,len the bytes; copied, so the caller keeps ownership.
 * \return 0; AREDIS_ENOMEM; AREDIS_ETOOBIG when max_buffer would be exceeded;
 *         or the sticky error if the reader has already failed. \since 0.1 */
AREDIS_API int aredis_reader_feed(aredis_reader *rd, const char *buf,
                                  size_t len);

/** Get a writable region of the reader's own buffer, so a transport can
 * read() straight into it with no extra copy. Follow with
 * aredis_reader_commit().
 * \param min_size the least number of bytes wanted (0 means a default).
 * \param[out] avail set to the usable size, at least min_size.
 * \return the region, owned by the reader and valid until the next call on
 *         it; NULL on AREDIS_ENOMEM, AREDIS_ETOOBIG or a sticky error (see
 *         aredis_reader_error()). \since 0.1 */
AREDIS_API char *aredis_reader_prepare(aredis_reader *rd, size_t min_size,
                                       size_t *avail);

/** Declare that n bytes were written into the last prepared region.
 * \return 0, or AREDIS_EINVAL when n exceeds what was prepared. \since 0.1 */
AREDIS_API int aredis_reader_commit(aredis_reader *rd, size_t n);

/** Parse the next complete top-level reply.
 * \param[out] out set to the reply on success. The reply is BORROWED: it
 *             lives in the reader and stays valid until the next call on
 *             the reader (any function taking it). aredis_reply_dup() keeps
 *             a copy.
 * \return 1 when a reply was produced; 0 when more bytes are needed; a
 *         negative aredis_err (AREDIS_EPROTO, AREDIS_ETOOBIG, AREDIS_ENOMEM)
 *         on failure. Protocol and limit errors are sticky: every later
 *         call returns the same code; aredis_reader_errstr() explains.
 * \since 0.1 */
AREDIS_API int aredis_reader_get_reply(aredis_reader *rd,
                                       const aredis_reply **out);

/** \return the sticky error code, or 0 when the reader is healthy.
 * \since 0.1 */
AREDIS_API int aredis_reader_error(const aredis_reader *rd);

/** \return a static-lifetime description of the sticky error (valid until
 *          the reader is freed), or "" when healthy. \since 0.1 */
AREDIS_API const char *aredis_reader_errstr(const aredis_reader *rd);

/** \return the number of bytes buffered and not yet consumed by a returned
 *          reply. \since 0.1 */
AREDIS_API size_t aredis_reader_buffered(const aredis_reader *rd);

/* ------------------------------------------------------------------------
 * Writer
 * ------------------------------------------------------------------------ */

/** A growable byte buffer that the writer appends encoded commands to.
 * Embed it anywhere; aredis_buf_init() it, aredis_buf_cleanup() it.
 * `data` is owned by the buffer and may move whenever it grows. */
typedef struct aredis_buf {
    char *data;
    size_t len;
    size_t cap;
} aredis_buf;

/** Initialise an empty buffer (no allocation). \since 0.1 */
AREDIS_API void aredis_buf_init(aredis_buf *b);

/** Release the buffer's memory and make it empty again. \since 0.1 */
AREDIS_API void aredis_buf_cleanup(aredis_buf *b);

/** Encode one command from an argument vector, binary safe.
 * \param argc number of arguments, at least 1.
 * \param argv the arguments; argvlen their lengths, or NULL to use strlen().
 * \return 0; AREDIS_EINVAL (argc < 1, a NULL argument); AREDIS_ENOMEM.
 *         On failure the buffer is unchanged. \since 0.1 */
AREDIS_API int aredis_write_argv(aredis_buf *b, int argc,
                                 const char *const *argv,
                                 const size_t *argvlen);

/** Encode one command from a printf-like format.
 *
 * Arguments are separated by spaces in the format; a run of spaces is one
 * separator, leading and trailing spaces are ignored, and only ' ' counts
 * (a tab is part of an argument). Conversions: %s (C string), %b (pointer,
 * then size_t length), %d %i %u %ld %lu %lld %llu %zu, %f %g (a double,
 * printed with enough digits to round-trip: the shortest of %.15g, %.16g
 * and %.17g that reads back exactly, always with '.' whatever the locale;
 * inf, -inf and nan as such) and %%. No flags, widths or precisions. A
 * conversion may sit inside a word ("user:%d:name"); an empty %s or %b is
 * an empty argument, not a missing one. The whole format is checked before
 * any argument is read.
 * \return 0; AREDIS_EFORMAT for an unknown or truncated conversion or a
 *         format with no argument; AREDIS_EINVAL for a NULL %s or %b
 *         pointer with a non-zero length; AREDIS_ENOMEM. On failure the
 *         buffer is unchanged. \since 0.1 */
AREDIS_API int aredis_write_fmt(aredis_buf *b, const char *fmt, ...);

/** va_list form of aredis_write_fmt(). \since 0.1 */
AREDIS_API int aredis_write_vfmt(aredis_buf *b, const char *fmt, va_list ap);

#ifdef __cplusplus
}
#endif

#endif /* AREDIS_RESP_H */
