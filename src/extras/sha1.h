/* SHA-1 for script digests (extras layer, internal): what Redis names a
 * script by (EVALSHA, SCRIPT LOAD's answer). Not used for anything that
 * needs a secure hash. */
#ifndef AREDIS_EXTRAS_SHA1_H
#define AREDIS_EXTRAS_SHA1_H

#include <stddef.h>

/* The digest as 40 lower-case hex digits and a NUL. Uses libcrypto when
 * the library was built with it (AREDIS_HAVE_LIBCRYPTO), else the portable
 * code below. */
void aredis__sha1_hex(const void *data, size_t len, char out[41]);

/* The portable implementation (FIPS 180-4), always built so that a test
 * can check it against libcrypto. */
void aredis__sha1_portable(const void *data, size_t len, unsigned char md[20]);

/* 1 when aredis__sha1_hex() uses libcrypto. */
int aredis__sha1_uses_libcrypto(void);

#endif /* AREDIS_EXTRAS_SHA1_H */
