/* Error names and messages (util layer), generated from AREDIS_ERRNO_MAP,
 * and the one formatter of error messages (util/msg.h). */
#include <stdio.h>

#include "aredis/error.h"
#include "aredis/version.h"
#include "util/msg.h"

void aredis__vmsgf(char *buf, size_t cap, const char *fmt, va_list ap)
{
    if (buf != NULL && cap > 0)
        vsnprintf(buf, cap, fmt, ap);
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
