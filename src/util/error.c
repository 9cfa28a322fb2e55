/* Error names and messages (util layer), generated from AREDIS_ERRNO_MAP,
 * and the one formatter of error messages (util/msg.h). */
#include <stdio.h>
#include <string.h>

#include "aredis/error.h"
#include "aredis/version.h"
#include "util/msg.h"

/* A message that did not fit in cap bytes ends with "..." (so a reader
 * knows it was cut), and the cut falls between characters: never inside a
 * UTF-8 sequence, which server text (an error message, a key) may hold.
 * A sequence is at most 4 bytes: the cut moves back 3 bytes at most, so
 * text that is not UTF-8 at all costs nothing more. */
static void cut(char *buf, size_t cap)
{
    static const char dots[] = "...";
    if (cap < sizeof dots + 1) {
        buf[0] = '\0'; /* too small to say anything whole */
        return;
    }
    size_t end = cap - sizeof dots; /* bytes kept */
    for (int i = 0;
         i < 3 && end > 0 && ((unsigned char)buf[end] & 0xC0u) == 0x80u; i++)
        end--;
    memcpy(buf + end, dots, sizeof dots);
}

void aredis__vmsgf(char *buf, size_t cap, const char *fmt, va_list ap)
{
    if (buf != NULL && cap > 0) {
        int n = vsnprintf(buf, cap, fmt, ap);
        if (n < 0)
            buf[0] = '\0'; /* NEVER: a conversion the library does not use */
        else if ((size_t)n >= cap)
            cut(buf, cap);
    }
}

void aredis__msgf(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    aredis__vmsgf(buf, cap, fmt, ap);
    va_end(ap);
}

int aredis__msgc(char *buf, size_t cap, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    aredis__vmsgf(buf, cap, fmt, ap);
    va_end(ap);
    return code;
}

const char *aredis_strerror(int code)
{
    switch (code) {
    case AREDIS_OK:
        return "success";
#define AREDIS_ERR_MSG_(name, value, msg) \
    case AREDIS_##name:                   \
        return msg;
        AREDIS_ERRNO_MAP(AREDIS_ERR_MSG_)
#undef AREDIS_ERR_MSG_
    default:
        return "unknown error";
    }
}

const char *aredis_err_name(int code)
{
    switch (code) {
    case AREDIS_OK:
        return "AREDIS_OK";
#define AREDIS_ERR_NAME_(name, value, msg) \
    case AREDIS_##name:                    \
        return "AREDIS_" #name;
        AREDIS_ERRNO_MAP(AREDIS_ERR_NAME_)
#undef AREDIS_ERR_NAME_
    default:
        return "AREDIS_UNKNOWN_ERROR";
    }
}

unsigned aredis_version(void)
{
    return AREDIS_VERSION_HEX;
}

const char *aredis_version_string(void)
{
    return AREDIS_VERSION_STRING;
}
