/* What the client knows about command names (client layer): which
 * commands only read (so they may be re-sent after a lost connection when
 * the user allows it) and which block (so they go to an exclusive
 * connection instead of stalling every caller of the shared one). */
#include <string.h>
#include <strings.h>

#include "client/client_int.h"

static int in_list(const char *name, size_t len, const char *const *list,
                   size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(list[i]) == len && strncasecmp(name, list[i], len) == 0)
            return 1;
    return 0;
}

/* Commands flagged "readonly" by Redis's COMMAND table that clients use
 * most; a command missing here is simply not retried. */
static const char *const read_only[] = {
    "get",
    "mget",
    "exists",
    "strlen",
    "getrange",
    "substr",
    "hget",
    "hmget",
    "hgetall",
    "hkeys",
    "hvals",
    "hlen",
    "hexists",
    "hstrlen",
    "hrandfield",
    "hscan",
    "lrange",
    "llen",
    "lindex",
    "lpos",
    "smembers",
    "sismember",
    "smismember",
    "scard",
    "srandmember",
    "sinter",
    "sunion",
    "sdiff",
    "sintercard",
    "sscan",
    "zrange",
    "zrangebyscore",
    "zrangebylex",
    "zrevrange",
    "zrevrangebyscore",
    "zrevrangebylex",
    "zscore",
    "zmscore",
    "zcard",
    "zcount",
    "zlexcount",
    "zrank",
    "zrevrank",
    "zrandmember",
    "zscan",
    "zunion",
    "zinter",
    "zdiff",
    "zintercard",
    "ttl",
    "pttl",
    "expiretime",
    "pexpiretime",
    "type",
    "keys",
    "scan",
    "dbsize",
    "randomkey",
    "ping",
    "echo",
    "time",
    "lastsave",
    "getbit",
    "bitcount",
    "bitpos",
    "xrange",
    "xrevrange",
    "xlen",
    "xpending",
    "geopos",
    "geodist",
    "geohash",
    "geosearch",
    "touch",
    "object",
    "memory",
    "dump",
    "lcs",
    "sort_ro",
    "evalsha_ro",
    "eval_ro",
    "fcall_ro",
};

int aredis__cmd_is_read_only(const char *name, size_t len)
{
    return in_list(name, len, read_only, sizeof read_only / sizeof *read_only);
}

/* Always blocking (they may wait for data, replicas or the AOF). */
static const char *const blocking[] = {
    "blpop",    "brpop",    "brpoplpush", "blmove", "blmpop",
    "bzpopmin", "bzpopmax", "bzmpop",     "wait",   "waitaof",
};

int aredis__cmd_is_blocking(const char *cmd, size_t len, int argc)
{
    (void)len;
    /* Walk the encoded arguments: the writer's trusted output. */
    const char *p = cmd + 1;
    while (*p != '\r')
        p++;
    p += 2;
    const char *name = NULL;
    size_t nlen = 0;
    int xread = 0;
    for (int i = 0; i < argc; i++) {
        size_t n = 0;
        p++; /* '$' */
        while (*p != '\r')
            n = n * 10 + (size_t)(*p++ - '0');
        p += 2;
        if (i == 0) {
            name = p;
            nlen = n;
            if (in_list(name, nlen, blocking,
                        sizeof blocking / sizeof *blocking))
                return 1;
            xread = (nlen == 5 && strncasecmp(name, "xread", 5) == 0) ||
                    (nlen == 10 && strncasecmp(name, "xreadgroup", 10) == 0);
            if (!xread)
                return 0;
        } else if (n == 5 && strncasecmp(p, "block", 5) == 0) {
            return 1; /* XREAD / XREADGROUP ... BLOCK ms */
        } else if (n == 7 && strncasecmp(p, "streams", 7) == 0) {
            return 0; /* options end where the stream names begin */
        }
        p += n + 2;
    }
    return 0;
}
