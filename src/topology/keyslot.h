/* Hash slots of Redis Cluster keys (topology layer): CRC16 in its XMODEM
 * variant (polynomial 0x1021, initial value 0, no reflection), over the
 * key or over its hash tag, modulo 16384, as the cluster specification
 * defines it. aredis_cluster_keyslot() (include/aredis/cluster.h) is
 * this; the cluster topology, which computes one for every command it
 * routes, has it inline.
 *
 * The CRC takes four bytes per step ("slicing"): the register, shifted
 * up, meets them as one 32-bit number, each of whose bytes is multiplied
 * out by a table; the same pass looks for a '{'. A key of 4 to 8 bytes
 * (the usual one) is one step of up to eight bytes: with a zero register,
 * zero bytes in front of a message leave its CRC as it is, so the key,
 * right-aligned in a 64-bit number, is eight table lookups and no
 * branch. */
#ifndef AREDIS_TOPOLOGY_KEYSLOT_H
#define AREDIS_TOPOLOGY_KEYSLOT_H

#include <stddef.h>
#include <stdint.h>

#include "aredis/cluster.h"

/* [0][b]: b * x^16 mod P, the CRC of the byte b; [k][b]: b * x^(16 + 8k)
 * mod P, the CRC of b followed by k zero bytes (keyslot.c). */
extern const unsigned short aredis__crc16[8][256];

/* aredis__crc16_untagged() of any length (keyslot.c). */
int aredis__crc16_any(const unsigned char *p, size_t len, unsigned *out);

/* aredis__crc16_untagged() of 4 to 8 bytes (the usual key), with no
 * branch. */
static inline int aredis__crc16_short(const unsigned char *p, size_t len,
                                      unsigned *out)
{
    const unsigned short(*t)[256] = aredis__crc16;
    /* The first four and the last four (the same bytes, in the same
     * places, where they overlap), big-endian. */
    const unsigned char *q = p + len - 4;
    uint64_t k = ((uint64_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
                             (uint32_t)p[2] << 8 | p[3])
                  << 8 * (len - 4)) |
                 ((uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 |
                  (uint32_t)q[2] << 8 | q[3]);
    *out = (unsigned)(t[0][k & 0xff] ^ t[1][(k >> 8) & 0xff] ^
                      t[2][(k >> 16) & 0xff] ^ t[3][(k >> 24) & 0xff] ^
                      t[4][(k >> 32) & 0xff] ^ t[5][(k >> 40) & 0xff] ^
                      t[6][(k >> 48) & 0xff] ^ t[7][k >> 56]);
    /* A zero byte in k ^ "{{{{{{{{" is a '{' in k (not one of the zero
     * bytes in front). */
    uint64_t b = k ^ 0x7b7b7b7b7b7b7b7bu;
    return ((b - 0x0101010101010101u) & ~b & 0x8080808080808080u) != 0;
}

/* The CRC of len bytes at p, in *out; returns 1 when one of them is a
 * '{'. Both in one pass: most keys have no hash tag, and finding that out
 * costs the pass nearly nothing. */
static inline int aredis__crc16_untagged(const unsigned char *p, size_t len,
                                         unsigned *out)
{
    if (len - 4 <= 4) /* 4 to 8 bytes */
        return aredis__crc16_short(p, len, out);
    return aredis__crc16_any(p, len, out);
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
