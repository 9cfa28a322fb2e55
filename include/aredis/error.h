/* aredis error codes.
 *
 * Every fallible aredis function returns 0 (or a documented non-negative
 * value) on success and one of the negative codes below on failure. A failed
 * command reaches its callback as a reply of type AREDIS_REPLY_ERROR whose
 * `code` field holds one of these codes (AREDIS_ESERVER when the server
 * itself sent the error).
 *
 * New codes may be added in later versions: handle unknown negative values
 * as generic failures. */
#ifndef AREDIS_ERROR_H
#define AREDIS_ERROR_H

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, message). The one list from which the enum, the names and
 * the messages are generated, so they cannot drift apart. */
#define AREDIS_ERRNO_MAP(X)                                                  \
    X(ENOMEM, -1, "out of memory")                                           \
    X(EINVAL, -2, "invalid argument")                                        \
    X(EPROTO, -3, "protocol error")                                          \
    X(ETOOBIG, -4, "reply exceeds a configured limit")                       \
    X(EFORMAT, -5, "bad command format string")                              \
    X(ESERVER, -6, "error reply from the server")                            \
    X(ETIMEDOUT, -7, "timed out")                                            \
    X(ECLOSED, -8, "connection closed")                                      \
    X(ECONNREFUSED, -9, "connection refused")                                \
    X(EIO, -10, "input/output error")                                        \
    X(ECANCELED, -11, "canceled")                                            \
    X(EAUTH, -12, "authentication failed")                                   \
    X(ERESOLVE, -13, "host name resolution failed")                          \
    X(ETLS, -14, "TLS error")                                                \
    X(EURL, -15, "bad URL")                                                  \
    X(EUNKNOWN, -16, "connection lost, outcome unknown")                     \
    X(ENOTSUP, -17, "not supported")                                         \
    X(EBUSY, -18, "resource busy")                                           \
    X(ESTATE, -19, "operation not allowed in this state")                    \
    X(EWATCH, -20, "a watched key changed: the transaction did not run")     \
    X(ENOSCRIPT, -21, "the script is not loaded on the server")              \
    X(ELOCKLOST, -22, "the lock is no longer held by this owner")            \
    X(ENOTHELD, -23, "this lock handle has not acquired the lock")           \
    X(ENOREPLICAS, -24, "too few replicas acknowledged the write")           \
    X(ECORRUPT, -25, "stored data is corrupt or in an unknown format")       \
    X(ENOMASTER, -26, "the sentinels name no usable server for the service") \
    X(EPOOL, -27, "no exclusive connection became free in time")

typedef enum aredis_err {
    AREDIS_OK = 0,
#define AREDIS_ERR_ENUM_(name, value, msg) AREDIS_##name = (value),
    AREDIS_ERRNO_MAP(AREDIS_ERR_ENUM_)
#undef AREDIS_ERR_ENUM_
} aredis_err;

/** Describe an error code.
 * \param code an aredis_err value (0 or negative); unknown values are allowed.
 * \return a static, human-readable message; never NULL. \since 0.1 */
AREDIS_API const char *aredis_strerror(int code);

/** Name an error code.
 * \param code an aredis_err value.
 * \return a static string such as "AREDIS_EPROTO", or "AREDIS_UNKNOWN_ERROR"
 *         for a value this version does not know; never NULL. \since 0.1 */
AREDIS_API const char *aredis_err_name(int code);

#ifdef __cplusplus
}
#endif

#endif /* AREDIS_ERROR_H */
