/* Unit tests for aredis_cluster_keyslot() (include/aredis/cluster.h):
 * CRC16 XMODEM check value, slots the server computed (CLUSTER KEYSLOT on
 * Redis 7.0), and every hash tag rule of the cluster specification. The
 * comparison against a live cluster over many random keys is in
 * tests/integration/test_cluster.c. */
#include <criterion/criterion.h>

#include <string.h>

#include "aredis/cluster.h"

static unsigned slot(const char *key)
{
    return aredis_cluster_keyslot(key, strlen(key));
}

Test(keyslot, crc16_xmodem_check_value)
{
    /* The CRC16/XMODEM check value of "123456789" is 0x31C3. */
    cr_assert_eq(slot("123456789"), 0x31C3u & 16383u);
    cr_assert_eq(slot("123456789"), 12739u);
}

Test(keyslot, known_slots_from_the_server)
{
    static const struct {
        const char *key;
        unsigned slot;
    } v[] = {
        {"foo", 12182},       {"bar", 5061},
        {"hello", 866},       {"{user1000}.following", 3443},
        {"foo{}{bar}", 8363}, {"foo{{bar}}zap", 4015},
        {"{bar", 4015},       {"foo{bar}{zap}", 5061},
        {"{}", 15257},        {"}{x}", 16287},
        {"{", 4092},          {"a{b}", 3300},
        {"{a}b", 15495},      {"", 0},
    };
    for (size_t i = 0; i < sizeof v / sizeof *v; i++)
        cr_expect_eq(slot(v[i].key), v[i].slot, "%s: %u, expected %u", v[i].key,
                     slot(v[i].key), v[i].slot);
}

Test(keyslot, hash_tag_rules)
{
    /* Keys with the same tag share a slot; the tag alone hashes the same. */
    cr_assert_eq(slot("{user1000}.following"), slot("{user1000}.followers"));
    cr_assert_eq(slot("{user1000}.following"), slot("user1000"));
    /* Only the first '{' and the first '}' after it count. */
    cr_assert_eq(slot("foo{bar}{zap}"), slot("bar"));
    cr_assert_eq(slot("foo{{bar}}zap"), slot("{bar"));
    cr_assert_eq(slot("x}y{z}"), slot("z"));
    /* An empty tag hashes the whole key; so does an unclosed one. */
    cr_assert_neq(slot("foo{}{bar}"), slot("bar"));
    cr_assert_eq(slot("{}x"), aredis_cluster_keyslot("{}x", 3));
    cr_assert_neq(slot("{bar"), slot("bar"));
}

Test(keyslot, binary_keys_and_bounds)
{
    /* NUL bytes are part of the key, inside and outside a tag. */
    cr_assert_eq(aredis_cluster_keyslot("a\0{b\0c}", 7),
                 aredis_cluster_keyslot("b\0c", 3));
    cr_assert_neq(aredis_cluster_keyslot("a\0b", 3), slot("a"));
    cr_assert_eq(aredis_cluster_keyslot(NULL, 0), 0u);
    /* The tag search never reads past len: "{a}" cut before its '}'. */
    cr_assert_eq(aredis_cluster_keyslot("{a}", 2), slot("{a"));
    unsigned char all[256];
    for (unsigned i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    for (size_t n = 0; n <= sizeof all; n++)
        cr_assert_lt(aredis_cluster_keyslot(all, n), AREDIS_CLUSTER_SLOTS);
}

/* The CRC one bit at a time, straight from the definition. */
static unsigned crc16_bitwise(const unsigned char *p, size_t len)
{
    unsigned crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (unsigned)p[i] << 8;
        for (int b = 0; b < 8; b++)
            crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff
                               : (crc << 1) & 0xffff;
    }
    return crc;
}

Test(keyslot, every_length_and_byte_as_the_definition)
{
    /* The table-driven CRC takes the key four, two and one byte at a time:
     * every length up to 64 (each mix of those steps) over bytes that
     * cover all 256 values, none of them a brace. */
    unsigned char key[64];
    unsigned seed = 12345;
    for (int round = 0; round < 64; round++) {
        for (size_t i = 0; i < sizeof key; i++) {
            seed = seed * 1103515245u + 12345u;
            unsigned char b = (unsigned char)(seed >> 16);
            key[i] = b == '{' || b == '}' ? (unsigned char)(i + round) : b;
            if (key[i] == '{' || key[i] == '}')
                key[i] = 'x';
        }
        for (size_t len = 0; len <= sizeof key; len++)
            cr_assert_eq(aredis_cluster_keyslot(key, len),
                         crc16_bitwise(key, len) & 16383u,
                         "round %d, length %zu", round, len);
    }
}

Test(keyslot, each_byte_at_each_place_of_a_step)
{
    /* Every byte value at each place of the four-byte step, of the
     * two-byte one and of the last single byte, so every table entry is
     * used. */
    for (unsigned b = 0; b < 256; b++) {
        if (b == '{' || b == '}')
            continue;
        for (size_t at = 0; at < 6; at++) {
            unsigned char key[6] = {'a', 'b', 'c', 'd', 'e', 'f'};
            key[at] = (unsigned char)b;
            for (size_t len = at + 1; len <= sizeof key; len++)
                cr_assert_eq(aredis_cluster_keyslot(key, len),
                             crc16_bitwise(key, len) & 16383u,
                             "byte %u at %zu, length %zu", b, at, len);
        }
    }
}
