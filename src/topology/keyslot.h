/* Hash slots of Redis Cluster keys (topology layer): CRC16 in its XMODEM
 * variant (polynomial 0x1021, initial value 0, no reflection), over the
 * key or over its hash tag, modulo 16384, as the cluster specification
 * defines it. aredis_cluster_keyslot() (include/aredis/cluster.h) is
 * this; the cluster topology, which computes one for every command it
 * routes, has it inline.
 *
 * The CRC takes four bytes per step ("slicing"): the register, shifted
 * up, meets them as one 32-bit number, each of whose bytes is multiplied
 * out by a table; the same pass looks for a '{'. */
#ifndef AREDIS_TOPOLOGY_KEYSLOT_H
#define AREDIS_TOPOLOGY_KEYSLOT_H

#include <stddef.h>
#include <stdint.h>

#include "aredis/cluster.h"

/* [0][b]: b * x^16 mod P, the CRC of the byte b; [k][b]: b * x^(16 + 8k)
 * mod P, the CRC of b followed by k zero bytes (keyslot.c). */
extern const unsigned short aredis__crc16[4][256];

/* The CRC of len bytes at p, in *out; returns 1 when one of them is a
 * '{'. Both in one pass: most keys have no hash tag, and finding that out
 * costs the pass nearly nothing. */
static inline int aredis__crc16_untagged(const unsigned char *p, size_t len,
                                         unsigned *out)
{
    const unsigned short(*t)[256] = aredis__crc16;
    uint32_t crc = 0, brace = 0, w, v, x;
    for (; len >= 4; p += 4, len -= 4) {
        w = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
            p[3];
        /* A zero byte in w ^ "{{{{" is a '{' in w. */
        v = w ^ 0x7b7b7b7bu;
        brace |= (v - 0x01010101u) & ~v & 0x80808080u;
        x = crc << 16 ^ w;
        crc = (uint32_t)t[3][x >> 24] ^ t[2][(x >> 16) & 0xff] ^
              t[1][(x >> 8) & 0xff] ^ t[0][x & 0xff];
    }
    /* The last one to three bytes, in one step too (the bytes above them
     * in w are zeros, which the brace test does not take for '{'). */
    switch (len) {
    case 3:
        w = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
        x = crc << 8 ^ w;
        crc = (uint32_t)t[2][x >> 16] ^ t[1][(x >> 8) & 0xff] ^ t[0][x & 0xff];
        break;
    case 2:
        w = (uint32_t)p[0] << 8 | p[1];
        x = crc ^ w;
        crc = (uint32_t)t[1][x >> 8] ^ t[0][x & 0xff];
        break;
    case 1:
        w = p[0];
        crc = ((crc << 8) & 0xffff) ^ t[0][(crc >> 8) ^ w];
        break;
    default:
        w = 0;
        break;
    }
    v = w ^ 0x7b7b7b7bu;
    brace |= (v - 0x01010101u) & ~v & 0x80808080u;
    *out = crc;
    return brace != 0;
}

/* aredis__keyslot() of a key with a '{' (keyslot.c). */
unsigned aredis__keyslot_tagged(const unsigned char *key, size_t len);

/* The slot of a key: the hash tag, from the first '{' to the first '}'
 * after it, when something lies between them; otherwise the whole key. */
static inline unsigned aredis__keyslot(const void *key, size_t len)
{
    unsigned crc;
    if (aredis__crc16_untagged(key, len, &crc))
        return aredis__keyslot_tagged(key, len);
    return crc & (AREDIS_CLUSTER_SLOTS - 1);
}

#endif /* AREDIS_TOPOLOGY_KEYSLOT_H */
