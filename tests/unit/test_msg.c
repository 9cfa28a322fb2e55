/* Unit tests for the one error-message formatter (src/util/msg.h): a
 * message that fits is written whole; one that does not ends with "..."
 * and is cut between characters, never inside a UTF-8 sequence, whatever
 * the buffer's size; NULL and tiny buffers are safe. */
#include <criterion/criterion.h>

#include <string.h>

#include "aredis/error.h"
#include "util/msg.h"

/* 1 when s is well-formed UTF-8 as far as sequence lengths go. */
static int utf8_whole(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p != 0) {
        if (*p >= 0x80 && *p < 0xC0)
            return 0; /* a continuation byte where a character starts */
        int n = *p < 0x80 ? 0 : *p >= 0xF0 ? 3 : *p >= 0xE0 ? 2 : 1;
        p++;
        for (int i = 0; i < n; i++, p++)
            if ((*p & 0xC0) != 0x80)
                return 0;
    }
    return 1;
}

Test(msg, a_message_that_fits_is_whole)
{
    char buf[32];
    aredis__msgf(buf, sizeof buf, "%s %d", "port", 6379);
    cr_assert_str_eq(buf, "port 6379");
    /* Exactly full: 31 bytes and the NUL. */
    aredis__msgf(buf, sizeof buf, "%s", "0123456789012345678901234567890");
    cr_assert_str_eq(buf, "0123456789012345678901234567890");
    cr_assert_eq(aredis__msgc(buf, sizeof buf, AREDIS_EIO, "x"), AREDIS_EIO);
    cr_assert_str_eq(buf, "x");
}

Test(msg, a_long_message_ends_with_dots)
{
    char buf[10];
    aredis__msgf(buf, sizeof buf, "%s", "abcdefghijklmnop");
    cr_assert_str_eq(buf, "abcdef...");
    aredis__msgf(buf, sizeof buf, "%s", "0123456789");
    cr_assert_str_eq(buf, "012345...", "one byte too long is cut too");
}

/* Every buffer size over text of 1-, 2-, 3- and 4-byte characters: the
 * result is a prefix of the text plus "...", cut between characters,
 * at most 3 bytes shorter than the room there was. */
Test(msg, a_cut_never_splits_a_character)
{
    /* a é € 😀 (1, 2, 3, 4 bytes), ten times. */
    char text[128] = "";
    for (int i = 0; i < 10; i++)
        strcat(text, "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    size_t len = strlen(text);
    char buf[128];
    for (size_t cap = 5; cap <= len; cap++) {
        memset(buf, 'Z', sizeof buf);
        aredis__msgf(buf, cap, "%s", text);
        size_t n = strlen(buf);
        cr_assert_lt(n, cap, "cap %zu: overrun", cap);
        cr_assert_geq(n, cap - 1 - 3, "cap %zu: cut %zu bytes", cap, n);
        cr_assert_str_eq(buf + n - 3, "...", "cap %zu: %s", cap, buf);
        cr_assert(utf8_whole(buf), "cap %zu: a split character", cap);
        cr_assert_eq(memcmp(buf, text, n - 3), 0, "cap %zu: not a prefix", cap);
        cr_assert_eq(buf[cap], 'Z', "cap %zu: wrote past the buffer", cap);
    }
    aredis__msgf(buf, len + 1, "%s", text);
    cr_assert_str_eq(buf, text);
}

Test(msg, null_and_tiny_buffers_are_safe)
{
    aredis__msgf(NULL, 10, "%s", "x");
    char buf[5] = "ZZZZ";
    aredis__msgf(buf, 0, "%s", "x");
    cr_assert_str_eq(buf, "ZZZZ", "cap 0 writes nothing");
    aredis__msgf(buf, 4, "%s", "abcdef");
    cr_assert_str_eq(buf, "", "no room for a character and the dots");
    aredis__msgf(buf, 5, "%s", "abcdef");
    cr_assert_str_eq(buf, "a...");
}
