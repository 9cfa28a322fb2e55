/* SHA-1 of Lua scripts (extras layer): libcrypto's EVP digest when the
 * library links OpenSSL, otherwise a small portable implementation of FIPS
 * 180-4 section 6.1. Pure computation: no I/O, no allocation. */
#include <stdint.h>
#include <string.h>

#include "extras/sha1.h"

#ifdef AREDIS_HAVE_LIBCRYPTO
#include <openssl/evp.h>
#endif

static uint32_t rol(uint32_t v, unsigned n)
{
    return (v << n) | (v >> (32 - n));
}

static void block(uint32_t h[5], const unsigned char *p)
{
    uint32_t w[80];
    for (size_t t = 0; t < 16; t++)
        w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 |
               (uint32_t)p[4 * t + 2] << 8 | (uint32_t)p[4 * t + 3];
    for (int t = 16; t < 80; t++)
        w[t] = rol(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int t = 0; t < 80; t++) {
        uint32_t f, k;
        if (t < 20) {
            f = (b & c) | (~b & d);
            k = 0x5a827999u;
        } else if (t < 40) {
            f = b ^ c ^ d;
            k = 0x6ed9eba1u;
        } else if (t < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8f1bbcdcu;
        } else {
            f = b ^ c ^ d;
            k = 0xca62c1d6u;
        }
        uint32_t tmp = rol(a, 5) + f + e + k + w[t];
        e = d;
        d = c;
        c = rol(b, 30);
        b = a;
        a = tmp;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

void aredis__sha1_portable(const void *data, size_t len, unsigned char md[20])
{
    uint32_t h[5] = {0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u,
                     0xc3d2e1f0u};
    const unsigned char *p = data;
    size_t left = len;
    for (; left >= 64; left -= 64, p += 64)
        block(h, p);
    /* The tail, the 0x80 marker and the bit length, in one or two blocks. */
    unsigned char tail[128];
    memset(tail, 0, sizeof tail);
    if (left != 0)
        memcpy(tail, p, left);
    tail[left] = 0x80;
    size_t n = left < 56 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8u;
    for (int i = 0; i < 8; i++)
        tail[n - 1 - (size_t)i] = (unsigned char)(bits >> (8 * i));
    block(h, tail);
    if (n == 128)
        block(h, tail + 64);
    for (size_t i = 0; i < 5; i++) {
        md[4 * i] = (unsigned char)(h[i] >> 24);
        md[4 * i + 1] = (unsigned char)(h[i] >> 16);
        md[4 * i + 2] = (unsigned char)(h[i] >> 8);
        md[4 * i + 3] = (unsigned char)h[i];
    }
}

int aredis__sha1_uses_libcrypto(void)
{
#ifdef AREDIS_HAVE_LIBCRYPTO
    return 1;
#else
    return 0;
#endif
}

void aredis__sha1_hex(const void *data, size_t len, char out[41])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[20];
    if (data == NULL)
        data = "";
#ifdef AREDIS_HAVE_LIBCRYPTO
    unsigned int n = 0;
    /* A provider without SHA-1 (a strict FIPS configuration) makes
     * EVP_Digest fail: the portable code still names the script. */
    if (EVP_Digest(data, len, md, &n, EVP_sha1(), NULL) != 1 || n != 20)
        aredis__sha1_portable(data, len, md);
#else
    aredis__sha1_portable(data, len, md);
#endif
    for (size_t i = 0; i < 20; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[40] = '\0';
}
