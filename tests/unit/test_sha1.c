/* Unit tests for script digests (extras/sha1.c): FIPS 180-4 test vectors,
 * every padding boundary, and the portable code against libcrypto when the
 * library has it. No server, no I/O. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aredis/script.h"
#include "extras/sha1.h"

static void hex(const unsigned char md[20], char out[41])
{
    for (int i = 0; i < 20; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static const struct {
    const char *in;
    const char *sha;
} vectors[] = {
    {"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
    {"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "84983e441c3bd26ebaae4aa1f95129e5e54670f1"},
    {"return 1", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"},
};

Test(sha1, known_vectors_both_ways)
{
    for (size_t i = 0; i < sizeof vectors / sizeof *vectors; i++) {
        char got[41];
        unsigned char md[20];
        size_t n = strlen(vectors[i].in);
        aredis__sha1_hex(vectors[i].in, n, got);
        cr_assert_str_eq(got, vectors[i].sha, "\"%s\"", vectors[i].in);
        aredis__sha1_portable(vectors[i].in, n, md);
        hex(md, got);
        cr_assert_str_eq(got, vectors[i].sha, "portable \"%s\"", vectors[i].in);
    }
}

Test(sha1, a_million_a)
{
    size_t n = 1000000;
    char *a = malloc(n);
    cr_assert_not_null(a);
    memset(a, 'a', n);
    unsigned char md[20];
    char got[41];
    aredis__sha1_portable(a, n, md);
    hex(md, got);
    cr_assert_str_eq(got, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    aredis__sha1_hex(a, n, got);
    cr_assert_str_eq(got, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    free(a);
}

/* Lengths around the 55/56/64-byte padding boundaries and beyond, with
 * bytes of every value: the portable code agrees with libcrypto. */
Test(sha1, portable_matches_the_library_at_every_length)
{
    if (!aredis__sha1_uses_libcrypto())
        cr_skip_test("built without libcrypto: the vectors above cover it");
    unsigned char data[300];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 131 + 7);
    for (size_t n = 0; n <= sizeof data; n++) {
        unsigned char md[20];
        char a[41], b[41];
        aredis__sha1_portable(data, n, md);
        hex(md, a);
        aredis__sha1_hex(data, n, b);
        cr_assert_str_eq(a, b, "length %zu", n);
    }
}

Test(sha1, script_objects_use_it)
{
    aredis_script *s = aredis_script_new("return 1", 8);
    cr_assert_not_null(s);
    cr_assert_str_eq(aredis_script_sha(s),
                     "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
    cr_assert_eq(strlen(aredis_script_sha(s)), 40);
    aredis_script_free(s);
}
