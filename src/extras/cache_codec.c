/* Payload codecs of the application cache (extras layer): the header byte,
 * compression with zlib, zstd or lz4 when the build has them, and the
 * checks that make a damaged payload an error rather than garbage.
 *
 * Pure functions over byte buffers: no client, no I/O. The stored bytes are
 * untrusted (anything may have written the key), so every length read from
 * them is checked before it is used, and a decompressed size is bounded by
 * the caller's limit and by the codec's largest possible ratio before any
 * memory is allocated for it. */
#include "extras/cache_int.h"

#include <stdio.h>
#include <string.h>

#include "aredis/error.h"
#include "util/alloc.h"

#ifdef AREDIS_HAVE_ZLIB
#include <zlib.h>
#endif
#ifdef AREDIS_HAVE_ZSTD
#include <zstd.h>
#endif
#ifdef AREDIS_HAVE_LZ4
#include <lz4.h>
#endif

static const char *const codec_names[] = {"raw", "zlib", "zstd", "lz4"};
static const char *const codec_pkgs[] = {"", "zlib1g-dev", "libzstd-dev",
                                         "liblz4-dev"};

const char *aredis__cache_codec_name(int codec)
{
    return codec >= 0 && codec <= AREDIS_CACHE_LZ4 ? codec_names[codec] : "?";
}

/* Which codecs this build has, by aredis_cache_codec value. */
static const int codec_built[] = {
    1,
#ifdef AREDIS_HAVE_ZLIB
    1,
#else
    0,
#endif
#ifdef AREDIS_HAVE_ZSTD
    1,
#else
    0,
#endif
#ifdef AREDIS_HAVE_LZ4
    1,
#else
    0,
#endif
};

int aredis_cache_codec_available(int codec)
{
    return codec >= 0 && codec <= AREDIS_CACHE_LZ4 && codec_built[codec];
}

void aredis__cache_codec_missing(int codec, char *msg, size_t cap)
{
    snprintf(msg, cap,
             "%s compression is not built into this aredis (install %s "
             "and rebuild)",
             aredis__cache_codec_name(codec), codec_pkgs[codec]);
}

int aredis__cache_buf_reserve(aredis_buf *b, size_t n)
{
    if (n > SIZE_MAX - b->len)
        return AREDIS_ENOMEM;
    if (b->len + n <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n)
        cap = cap > SIZE_MAX / 2 ? b->len + n : cap * 2;
    char *d = aredis__realloc(b->data, cap);
    if (d == NULL)
        return AREDIS_ENOMEM;
    b->data = d;
    b->cap = cap;
    return 0;
}

int aredis__cache_buf_put(aredis_buf *b, const void *p, size_t n)
{
    if (aredis__cache_buf_reserve(b, n) != 0)
        return AREDIS_ENOMEM;
    if (n != 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

/* ---- LEB128 lengths ------------------------------------------------------ */

static size_t put_varint(unsigned char *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (unsigned char)v;
    return n;
}

/* \return bytes used, or 0 when truncated or longer than 64 bits. */
static size_t get_varint(const unsigned char *p, size_t n, uint64_t *v)
{
    uint64_t x = 0;
    for (size_t i = 0; i < n && i < 10; i++) {
        uint64_t b = p[i] & 0x7f;
        if (i == 9 && b > 1)
            return 0;
        x |= b << (7 * i);
        if ((p[i] & 0x80) == 0) {
            *v = x;
            return i + 1;
        }
    }
    return 0;
}

/* ---- compression --------------------------------------------------------- */

/* Compress src into out after the header and the length. \return 0, 1 when
 * the codec cannot or need not be used (the caller stores raw), or
 * AREDIS_ENOMEM. */
static int compress_body(int codec, int level, const char *src, size_t n,
                         aredis_buf *out)
{
    size_t bound = 0;
    switch (codec) {
#ifdef AREDIS_HAVE_ZLIB
    case AREDIS_CACHE_ZLIB:
        if (n > (uLong)-1)
            return 1;
        bound = compressBound((uLong)n);
        break;
#endif
#ifdef AREDIS_HAVE_ZSTD
    case AREDIS_CACHE_ZSTD:
        bound = ZSTD_compressBound(n);
        if (ZSTD_isError(bound))
            return 1;
        break;
#endif
#ifdef AREDIS_HAVE_LZ4
    case AREDIS_CACHE_LZ4:
        if (n > LZ4_MAX_INPUT_SIZE)
            return 1;
        bound = (size_t)LZ4_compressBound((int)n);
        break;
#endif
    default:
        return 1;
    }
    unsigned char head[11];
    head[0] = (unsigned char)(AREDIS_CACHE_HEADER_BASE + codec);
    size_t hn = 1 + put_varint(head + 1, n);
    size_t start = out->len;
    if (aredis__cache_buf_put(out, head, hn) != 0 ||
        aredis__cache_buf_reserve(out, bound) != 0) {
        out->len = start;
        return AREDIS_ENOMEM;
    }
    size_t at = out->len;
    size_t clen = 0;
    int ok = 0;
    switch (codec) {
#ifdef AREDIS_HAVE_ZLIB
    case AREDIS_CACHE_ZLIB: {
        uLongf dl = (uLongf)bound;
        ok = compress2((Bytef *)out->data + at, &dl, (const Bytef *)src,
                       (uLong)n, level ? level : 6) == Z_OK;
        clen = dl;
        break;
    }
#endif
#ifdef AREDIS_HAVE_ZSTD
    case AREDIS_CACHE_ZSTD: {
        size_t r =
            ZSTD_compress(out->data + at, bound, src, n, level ? level : 3);
        ok = !ZSTD_isError(r);
        clen = r;
        break;
    }
#endif
#ifdef AREDIS_HAVE_LZ4
    case AREDIS_CACHE_LZ4: {
        int r = LZ4_compress_default(src, out->data + at, (int)n, (int)bound);
        ok = r > 0;
        clen = ok ? (size_t)r : 0;
        break;
    }
#endif
    default:
        break;
    }
    (void)level; /* unused when no codec is built */
    (void)src;
    if (!ok || hn + clen >= 1 + n) {
        out->len = start; /* not smaller: store raw */
        return 1;
    }
    out->len = at + clen;
    return 0;
}

int aredis__cache_encode(int codec, int level, size_t min, const char *src,
                         size_t n, aredis_buf *out)
{
    if (codec != AREDIS_CACHE_NONE && n >= min) {
        int e = compress_body(codec, level, src, n, out);
        if (e <= 0)
            return e;
    }
    unsigned char h = AREDIS_CACHE_HEADER_BASE;
    if (aredis__cache_buf_put(out, &h, 1) != 0 ||
        aredis__cache_buf_put(out, src, n) != 0)
        return AREDIS_ENOMEM;
    return 0;
}

/* ---- decompression ------------------------------------------------------- */

/* "<codec> payload: <why>". */
static int corrupt(char *msg, size_t cap, const char *codec, const char *why)
{
    snprintf(msg, cap, "%s payload %s", codec, why);
    return AREDIS_ECORRUPT;
}

int aredis__cache_decode(const char *p, size_t n, size_t max, const char **data,
                         size_t *len, char **owned, char *msg, size_t cap)
{
    *owned = NULL;
    if (n == 0)
        return corrupt(msg, cap, "cached", "is empty");
    unsigned h = (unsigned char)p[0];
    if (h < AREDIS_CACHE_HEADER_BASE ||
        h > AREDIS_CACHE_HEADER_BASE + AREDIS_CACHE_LZ4) {
        snprintf(msg, cap,
                 "cached payload has unknown header byte 0x%02x (not written "
                 "by an aredis cache?)",
                 h);
        return AREDIS_ECORRUPT;
    }
    int codec = (int)(h - AREDIS_CACHE_HEADER_BASE);
    if (codec == AREDIS_CACHE_NONE) {
        *data = p + 1;
        *len = n - 1;
        return 0;
    }
    const char *name = aredis__cache_codec_name(codec);
    if (!aredis_cache_codec_available(codec)) {
        aredis__cache_codec_missing(codec, msg, cap);
        return AREDIS_ENOTSUP;
    }
    uint64_t want = 0;
    size_t vn = get_varint((const unsigned char *)p + 1, n - 1, &want);
    if (vn == 0)
        return corrupt(msg, cap, name, "has a bad length");
    const char *src = p + 1 + vn;
    size_t slen = n - 1 - vn;
    /* The largest ratios: deflate 1032:1, lz4 255:1; zstd is only bounded
     * by the limit. */
    uint64_t ratio = codec == AREDIS_CACHE_ZLIB  ? 1032
                     : codec == AREDIS_CACHE_LZ4 ? 255
                                                 : UINT64_MAX;
    if (want > max || (ratio != UINT64_MAX && want / ratio > slen + 16))
        return corrupt(msg, cap, name, "declares an impossible size");
    char *dst = aredis__malloc(want ? (size_t)want : 1);
    if (dst == NULL) {
        snprintf(msg, cap, "out of memory");
        return AREDIS_ENOMEM;
    }
    int ok = 0;
    switch (codec) {
#ifdef AREDIS_HAVE_ZLIB
    case AREDIS_CACHE_ZLIB: {
        uLongf dl = (uLongf)want;
        ok = slen <= (uLong)-1 &&
             uncompress((Bytef *)dst, &dl, (const Bytef *)src, (uLong)slen) ==
                 Z_OK &&
             dl == want;
        break;
    }
#endif
#ifdef AREDIS_HAVE_ZSTD
    case AREDIS_CACHE_ZSTD: {
        size_t r = ZSTD_decompress(dst, (size_t)want, src, slen);
        ok = !ZSTD_isError(r) && r == want;
        break;
    }
#endif
#ifdef AREDIS_HAVE_LZ4
    case AREDIS_CACHE_LZ4:
        ok = slen <= LZ4_MAX_INPUT_SIZE && want <= LZ4_MAX_INPUT_SIZE &&
             LZ4_decompress_safe(src, dst, (int)slen, (int)want) == (int)want;
        break;
#endif
    default:
        break;
    }
    (void)src; /* unused when no codec is built */
    if (!ok) {
        aredis__free(dst);
        return corrupt(msg, cap, name, "failed to decompress");
    }
    *owned = dst;
    *data = dst;
    *len = (size_t)want;
    return 0;
}
