/* Redis Cluster helpers.
 *
 * A cluster splits the key space into 16384 hash slots. A key's slot is
 * CRC16 (XMODEM) of the key modulo 16384, except that when the key holds
 * a hash tag - a '{' followed later by a '}' with at least one byte
 * between them - only the bytes between the first '{' and the first '}'
 * after it are hashed. So "{user:1}:name" and "{user:1}:mail" share a
 * slot, and can be used together in one multi-key command, transaction or
 * script. An empty tag ("{}x") or an unclosed one ("{x") does not count:
 * the whole key is hashed then.
 *
 *     unsigned slot = aredis_cluster_keyslot("{user:1}:name", 13);
 *
 * The result equals what the server's CLUSTER KEYSLOT answers. */
#ifndef AREDIS_CLUSTER_H
#define AREDIS_CLUSTER_H

#include <stddef.h>

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The number of hash slots of a Redis Cluster. */
#define AREDIS_CLUSTER_SLOTS 16384

/* The hash slot (0 to AREDIS_CLUSTER_SLOTS - 1) of the len bytes at key,
 * which may hold any byte, NUL included. key may be NULL when len is 0. */
AREDIS_API unsigned aredis_cluster_keyslot(const void *key, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* AREDIS_CLUSTER_H */
