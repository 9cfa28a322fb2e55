/* Payload codecs of the application cache (extras layer, internal): what
 * cache.c and cache_sync.c share with cache_codec.c. */
#ifndef AREDIS_EXTRAS_CACHE_INT_H
#define AREDIS_EXTRAS_CACHE_INT_H

#include <stddef.h>

#include "aredis/cache.h"
#include "aredis/resp.h"

/* Append n bytes (p may be NULL when n is 0) / make room for n more.
 * Return 0 or AREDIS_ENOMEM, the buffer unchanged on failure. */
int aredis__cache_buf_put(aredis_buf *b, const void *p, size_t n);
int aredis__cache_buf_reserve(aredis_buf *b, size_t n);

/* "zlib", "zstd", "lz4", "raw". */
const char *aredis__cache_codec_name(int codec);

/* The message for a codec this build lacks. */
void aredis__cache_codec_missing(int codec, char *msg, size_t cap);

/* Append the payload of src[0..n) to out: the header byte, and the bytes
 * compressed with codec when n >= min and that makes them smaller, else
 * raw. Return 0 or AREDIS_ENOMEM. */
int aredis__cache_encode(int codec, int level, size_t min, const char *src,
                         size_t n, aredis_buf *out);

/* Decode a stored payload p[0..n): *data, *len the value, pointing into p
 * (raw) or into *owned (decompressed; the caller frees it with
 * aredis__free). Decompressed sizes above max are refused.
 * Return 0; AREDIS_ECORRUPT (unknown header, bad length, failed
 * decompression); AREDIS_ENOTSUP (a codec this build lacks);
 * AREDIS_ENOMEM; with a message in msg on failure. */
int aredis__cache_decode(const char *p, size_t n, size_t max, const char **data,
                         size_t *len, char **owned, char *msg, size_t cap);

#endif /* AREDIS_EXTRAS_CACHE_INT_H */
