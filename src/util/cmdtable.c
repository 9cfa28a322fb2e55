/* The command table (util layer): see cmdtable.h.
 *
 * The entries are Redis 7's COMMAND output (flags, key positions) with
 * what the client adds: which commands block and where their timeout is,
 * which it refuses, and which RESP2 replies it reshapes. The index is a
 * hash table over the lower-cased names, built once on first use. Nothing
 * here allocates, and nothing knows about connections or clients. */
#include "util/cmdtable.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

/* Short names for the table below. */
#define RO AREDIS__CMDF_READONLY
#define BLOCK AREDIS__CMDF_BLOCKING
#define BLOCK_OPT AREDIS__CMDF_BLOCK_OPT
#define MS AREDIS__CMDF_TIMEOUT_MS
#define NO_MULTI AREDIS__CMDF_NO_MULTI
#define SUB AREDIS__CMDF_PUBSUB
#define REFUSE AREDIS__CMDF_REFUSED
#define SUBCMD AREDIS__CMDF_SUBCMD
#define CLIENT_REPLY AREDIS__CMDF_CLIENT_REPLY
#define WITHSCORES AREDIS__CMDF_WITHSCORES
#define MOVABLE AREDIS__CMDF_MOVABLE
#define OWN AREDIS__CMDF_OWN_WRITES
#define NEXT AREDIS__CMDF_NEXT
/* Cluster policies (cmdtable.h). */
#define NOCL AREDIS__CMDF_CLUSTER(AREDIS__CL_REFUSE)
#define P_SUM AREDIS__CMDF_CLUSTER(AREDIS__CL_P_SUM)
#define P_UNION AREDIS__CMDF_CLUSTER(AREDIS__CL_P_UNION)
#define P_OK AREDIS__CMDF_CLUSTER(AREDIS__CL_P_OK)
#define P_SAME AREDIS__CMDF_CLUSTER(AREDIS__CL_P_SAME)
#define P_AND AREDIS__CMDF_CLUSTER(AREDIS__CL_P_AND)
#define P_FIRST AREDIS__CMDF_CLUSTER(AREDIS__CL_P_FIRST)
#define N_UNIQ AREDIS__CMDF_CLUSTER(AREDIS__CL_N_UNIQ)
#define N_PAIRSUM AREDIS__CMDF_CLUSTER(AREDIS__CL_N_PAIRSUM)
#define N_SUM AREDIS__CMDF_CLUSTER(AREDIS__CL_N_SUM)
#define N_MAP AREDIS__CMDF_CLUSTER(AREDIS__CL_N_MAP)
#define N_OK AREDIS__CMDF_CLUSTER(AREDIS__CL_N_OK)
#define S_ARRAY AREDIS__CMDF_CLUSTER(AREDIS__CL_S_ARRAY)
#define S_SUM AREDIS__CMDF_CLUSTER(AREDIS__CL_S_SUM)
#define S_OK AREDIS__CMDF_CLUSTER(AREDIS__CL_S_OK)
/* WAIT and WAITAOF: refused on a cluster, where no one connection holds
 * the caller's writes. */
#define WAITS (BLOCK | MS | OWN | NO_MULTI | NOCL)

/* X(name, flags, first key, last key, step, numkeys arg, timeout arg,
 *   normalisation) */
#define COMMANDS(X)                                                     \
    X("acl", 0, 0, 0, 0, 0, 0, NONE)                                    \
    X("append", 0, 1, 1, 1, 0, 0, NONE)                                 \
    X("asking", NEXT, 0, 0, 0, 0, 0, NONE)                              \
    X("auth", 0, 0, 0, 0, 0, 0, NONE)                                   \
    X("bgrewriteaof", NOCL, 0, 0, 0, 0, 0, NONE)                        \
    X("bgsave", NOCL, 0, 0, 0, 0, 0, NONE)                              \
    X("bitcount", RO, 1, 1, 1, 0, 0, NONE)                              \
    X("bitfield", 0, 1, 1, 1, 0, 0, NONE)                               \
    X("bitfield_ro", RO, 1, 1, 1, 0, 0, NONE)                           \
    X("bitop", 0, 2, -1, 1, 0, 0, NONE)                                 \
    X("bitpos", RO, 1, 1, 1, 0, 0, NONE)                                \
    X("blmove", BLOCK | NO_MULTI, 1, 2, 1, 0, -1, NONE)                 \
    X("blmpop", BLOCK | NO_MULTI, 0, 0, 0, 2, 1, NONE)                  \
    X("blpop", BLOCK | NO_MULTI, 1, -2, 1, 0, -1, NONE)                 \
    X("brpop", BLOCK | NO_MULTI, 1, -2, 1, 0, -1, NONE)                 \
    X("brpoplpush", BLOCK | NO_MULTI, 1, 2, 1, 0, -1, NONE)             \
    X("bzmpop", BLOCK | NO_MULTI, 0, 0, 0, 2, 1, NONE)                  \
    X("bzpopmax", BLOCK | NO_MULTI, 1, -2, 1, 0, -1, NONE)              \
    X("bzpopmin", BLOCK | NO_MULTI, 1, -2, 1, 0, -1, NONE)              \
    X("client", SUBCMD, 0, 0, 0, 0, 0, NONE)                            \
    X("cluster", 0, 0, 0, 0, 0, 0, NONE)                                \
    X("command", 0, 0, 0, 0, 0, 0, NONE)                                \
    X("config", SUBCMD, 0, 0, 0, 0, 0, NONE)                            \
    X("copy", 0, 1, 2, 1, 0, 0, NONE)                                   \
    X("dbsize", RO | P_SUM, 0, 0, 0, 0, 0, NONE)                        \
    X("debug", NOCL, 0, 0, 0, 0, 0, NONE)                               \
    X("decr", 0, 1, 1, 1, 0, 0, NONE)                                   \
    X("decrby", 0, 1, 1, 1, 0, 0, NONE)                                 \
    X("del", S_SUM, 1, -1, 1, 0, 0, NONE)                               \
    X("discard", NO_MULTI | NOCL, 0, 0, 0, 0, 0, NONE)                  \
    X("dump", RO, 1, 1, 1, 0, 0, NONE)                                  \
    X("echo", RO, 0, 0, 0, 0, 0, NONE)                                  \
    X("eval", 0, 0, 0, 0, 2, 0, NONE)                                   \
    X("eval_ro", RO, 0, 0, 0, 2, 0, NONE)                               \
    X("evalsha", 0, 0, 0, 0, 2, 0, NONE)                                \
    X("evalsha_ro", RO, 0, 0, 0, 2, 0, NONE)                            \
    X("exec", NO_MULTI | NOCL, 0, 0, 0, 0, 0, NONE)                     \
    X("exists", RO | S_SUM, 1, -1, 1, 0, 0, NONE)                       \
    X("expire", 0, 1, 1, 1, 0, 0, NONE)                                 \
    X("expireat", 0, 1, 1, 1, 0, 0, NONE)                               \
    X("expiretime", RO, 1, 1, 1, 0, 0, NONE)                            \
    X("failover", NOCL, 0, 0, 0, 0, 0, NONE)                            \
    X("fcall", 0, 0, 0, 0, 2, 0, NONE)                                  \
    X("fcall_ro", RO, 0, 0, 0, 2, 0, NONE)                              \
    X("flushall", P_OK, 0, 0, 0, 0, 0, NONE)                            \
    X("flushdb", P_OK, 0, 0, 0, 0, 0, NONE)                             \
    X("function", SUBCMD, 0, 0, 0, 0, 0, NONE)                          \
    X("geoadd", 0, 1, 1, 1, 0, 0, NONE)                                 \
    X("geodist", RO, 1, 1, 1, 0, 0, NONE)                               \
    X("geohash", RO, 1, 1, 1, 0, 0, NONE)                               \
    X("geopos", RO, 1, 1, 1, 0, 0, NONE)                                \
    X("georadius", MOVABLE, 1, 1, 1, 0, 0, NONE)                        \
    X("georadius_ro", RO, 1, 1, 1, 0, 0, NONE)                          \
    X("georadiusbymember", MOVABLE, 1, 1, 1, 0, 0, NONE)                \
    X("georadiusbymember_ro", RO, 1, 1, 1, 0, 0, NONE)                  \
    X("geosearch", RO, 1, 1, 1, 0, 0, NONE)                             \
    X("geosearchstore", 0, 1, 2, 1, 0, 0, NONE)                         \
    X("get", RO, 1, 1, 1, 0, 0, NONE)                                   \
    X("getbit", RO, 1, 1, 1, 0, 0, NONE)                                \
    X("getdel", 0, 1, 1, 1, 0, 0, NONE)                                 \
    X("getex", 0, 1, 1, 1, 0, 0, NONE)                                  \
    X("getrange", RO, 1, 1, 1, 0, 0, NONE)                              \
    X("getset", 0, 1, 1, 1, 0, 0, NONE)                                 \
    X("hdel", 0, 1, 1, 1, 0, 0, NONE)                                   \
    X("hello", REFUSE, 0, 0, 0, 0, 0, NONE)                             \
    X("hexists", RO, 1, 1, 1, 0, 0, NONE)                               \
    X("hget", RO, 1, 1, 1, 0, 0, NONE)                                  \
    X("hgetall", RO, 1, 1, 1, 0, 0, MAP)                                \
    X("hincrby", 0, 1, 1, 1, 0, 0, NONE)                                \
    X("hincrbyfloat", 0, 1, 1, 1, 0, 0, NONE)                           \
    X("hkeys", RO, 1, 1, 1, 0, 0, NONE)                                 \
    X("hlen", RO, 1, 1, 1, 0, 0, NONE)                                  \
    X("hmget", RO, 1, 1, 1, 0, 0, NONE)                                 \
    X("hmset", 0, 1, 1, 1, 0, 0, NONE)                                  \
    X("hrandfield", RO, 1, 1, 1, 0, 0, NONE)                            \
    X("hscan", RO, 1, 1, 1, 0, 0, NONE)                                 \
    X("hset", 0, 1, 1, 1, 0, 0, NONE)                                   \
    X("hsetnx", 0, 1, 1, 1, 0, 0, NONE)                                 \
    X("hstrlen", RO, 1, 1, 1, 0, 0, NONE)                               \
    X("hvals", RO, 1, 1, 1, 0, 0, NONE)                                 \
    X("incr", 0, 1, 1, 1, 0, 0, NONE)                                   \
    X("incrby", 0, 1, 1, 1, 0, 0, NONE)                                 \
    X("incrbyfloat", 0, 1, 1, 1, 0, 0, NONE)                            \
    X("info", N_MAP, 0, 0, 0, 0, 0, NONE)                               \
    X("keys", RO | P_UNION, 0, 0, 0, 0, 0, NONE)                        \
    X("lastsave", RO | N_MAP, 0, 0, 0, 0, 0, NONE)                      \
    X("latency", 0, 0, 0, 0, 0, 0, NONE)                                \
    X("lcs", RO, 1, 2, 1, 0, 0, NONE)                                   \
    X("lindex", RO, 1, 1, 1, 0, 0, NONE)                                \
    X("linsert", 0, 1, 1, 1, 0, 0, NONE)                                \
    X("llen", RO, 1, 1, 1, 0, 0, NONE)                                  \
    X("lmove", 0, 1, 2, 1, 0, 0, NONE)                                  \
    X("lmpop", 0, 0, 0, 0, 1, 0, NONE)                                  \
    X("lolwut", RO, 0, 0, 0, 0, 0, NONE)                                \
    X("lpop", 0, 1, 1, 1, 0, 0, NONE)                                   \
    X("lpos", RO, 1, 1, 1, 0, 0, NONE)                                  \
    X("lpush", 0, 1, 1, 1, 0, 0, NONE)                                  \
    X("lpushx", 0, 1, 1, 1, 0, 0, NONE)                                 \
    X("lrange", RO, 1, 1, 1, 0, 0, NONE)                                \
    X("lrem", 0, 1, 1, 1, 0, 0, NONE)                                   \
    X("lset", 0, 1, 1, 1, 0, 0, NONE)                                   \
    X("ltrim", 0, 1, 1, 1, 0, 0, NONE)                                  \
    X("memory", RO | SUBCMD, 0, 0, 0, 0, 0, NONE)                       \
    X("mget", RO | S_ARRAY, 1, -1, 1, 0, 0, NONE)                       \
    X("migrate", MOVABLE, 3, 3, 1, 0, 0, NONE)                          \
    X("module", 0, 0, 0, 0, 0, 0, NONE)                                 \
    X("monitor", NOCL, 0, 0, 0, 0, 0, NONE)                             \
    X("move", NOCL, 1, 1, 1, 0, 0, NONE)                                \
    X("mset", S_OK, 1, -1, 2, 0, 0, NONE)                               \
    X("msetnx", 0, 1, -1, 2, 0, 0, NONE)                                \
    X("multi", NO_MULTI | NOCL, 0, 0, 0, 0, 0, NONE)                    \
    X("object", RO | SUBCMD, 0, 0, 0, 0, 0, NONE)                       \
    X("persist", 0, 1, 1, 1, 0, 0, NONE)                                \
    X("pexpire", 0, 1, 1, 1, 0, 0, NONE)                                \
    X("pexpireat", 0, 1, 1, 1, 0, 0, NONE)                              \
    X("pexpiretime", RO, 1, 1, 1, 0, 0, NONE)                           \
    X("pfadd", 0, 1, 1, 1, 0, 0, NONE)                                  \
    X("pfcount", RO, 1, -1, 1, 0, 0, NONE)                              \
    X("pfdebug", 0, 2, 2, 1, 0, 0, NONE)                                \
    X("pfmerge", 0, 1, -1, 1, 0, 0, NONE)                               \
    X("pfselftest", 0, 0, 0, 0, 0, 0, NONE)                             \
    X("ping", RO | N_MAP, 0, 0, 0, 0, 0, NONE)                          \
    X("psetex", 0, 1, 1, 1, 0, 0, NONE)                                 \
    X("psubscribe", SUB, 0, 0, 0, 0, 0, NONE)                           \
    X("psync", NO_MULTI, 0, 0, 0, 0, 0, NONE)                           \
    X("pttl", RO, 1, 1, 1, 0, 0, NONE)                                  \
    X("publish", 0, 0, 0, 0, 0, 0, NONE)                                \
    X("pubsub", SUBCMD, 0, 0, 0, 0, 0, NONE)                            \
    X("punsubscribe", SUB, 0, 0, 0, 0, 0, NONE)                         \
    X("quit", 0, 0, 0, 0, 0, 0, NONE)                                   \
    X("randomkey", RO | P_FIRST, 0, 0, 0, 0, 0, NONE)                   \
    X("readonly", NOCL, 0, 0, 0, 0, 0, NONE)                            \
    X("readwrite", NOCL, 0, 0, 0, 0, 0, NONE)                           \
    X("rename", 0, 1, 2, 1, 0, 0, NONE)                                 \
    X("renamenx", 0, 1, 2, 1, 0, 0, NONE)                               \
    X("replconf", 0, 0, 0, 0, 0, 0, NONE)                               \
    X("replicaof", NOCL, 0, 0, 0, 0, 0, NONE)                           \
    X("reset", REFUSE | NO_MULTI, 0, 0, 0, 0, 0, NONE)                  \
    X("restore", 0, 1, 1, 1, 0, 0, NONE)                                \
    X("restore-asking", 0, 1, 1, 1, 0, 0, NONE)                         \
    X("role", N_MAP, 0, 0, 0, 0, 0, NONE)                               \
    X("rpop", 0, 1, 1, 1, 0, 0, NONE)                                   \
    X("rpoplpush", 0, 1, 2, 1, 0, 0, NONE)                              \
    X("rpush", 0, 1, 1, 1, 0, 0, NONE)                                  \
    X("rpushx", 0, 1, 1, 1, 0, 0, NONE)                                 \
    X("sadd", 0, 1, 1, 1, 0, 0, NONE)                                   \
    X("save", NO_MULTI | NOCL, 0, 0, 0, 0, 0, NONE)                     \
    X("scan", RO | NOCL, 0, 0, 0, 0, 0, NONE)                           \
    X("scard", RO, 1, 1, 1, 0, 0, NONE)                                 \
    X("script", SUBCMD, 0, 0, 0, 0, 0, NONE)                            \
    X("sdiff", RO, 1, -1, 1, 0, 0, SET)                                 \
    X("sdiffstore", 0, 1, -1, 1, 0, 0, NONE)                            \
    X("select", REFUSE, 0, 0, 0, 0, 0, NONE)                            \
    X("set", 0, 1, 1, 1, 0, 0, NONE)                                    \
    X("setbit", 0, 1, 1, 1, 0, 0, NONE)                                 \
    X("setex", 0, 1, 1, 1, 0, 0, NONE)                                  \
    X("setnx", 0, 1, 1, 1, 0, 0, NONE)                                  \
    X("setrange", 0, 1, 1, 1, 0, 0, NONE)                               \
    X("shutdown", NO_MULTI | NOCL, 0, 0, 0, 0, 0, NONE)                 \
    X("sinter", RO, 1, -1, 1, 0, 0, SET)                                \
    X("sintercard", RO, 0, 0, 0, 1, 0, NONE)                            \
    X("sinterstore", 0, 1, -1, 1, 0, 0, NONE)                           \
    X("sismember", RO, 1, 1, 1, 0, 0, NONE)                             \
    X("slaveof", NOCL, 0, 0, 0, 0, 0, NONE)                             \
    X("slowlog", 0, 0, 0, 0, 0, 0, NONE)                                \
    X("smembers", RO, 1, 1, 1, 0, 0, SET)                               \
    X("smismember", RO, 1, 1, 1, 0, 0, NONE)                            \
    X("smove", 0, 1, 2, 1, 0, 0, NONE)                                  \
    X("sort", MOVABLE, 1, 1, 1, 0, 0, NONE)                             \
    X("sort_ro", RO | MOVABLE, 1, 1, 1, 0, 0, NONE)                     \
    X("spop", 0, 1, 1, 1, 0, 0, NONE)                                   \
    X("spublish", 0, 1, 1, 1, 0, 0, NONE)                               \
    X("srandmember", RO, 1, 1, 1, 0, 0, NONE)                           \
    X("srem", 0, 1, 1, 1, 0, 0, NONE)                                   \
    X("sscan", RO, 1, 1, 1, 0, 0, NONE)                                 \
    X("ssubscribe", SUB, 1, -1, 1, 0, 0, NONE)                          \
    X("strlen", RO, 1, 1, 1, 0, 0, NONE)                                \
    X("subscribe", SUB, 0, 0, 0, 0, 0, NONE)                            \
    X("substr", RO, 1, 1, 1, 0, 0, NONE)                                \
    X("sunion", RO, 1, -1, 1, 0, 0, SET)                                \
    X("sunionstore", 0, 1, -1, 1, 0, 0, NONE)                           \
    X("sunsubscribe", SUB, 1, -1, 1, 0, 0, NONE)                        \
    X("swapdb", NOCL, 0, 0, 0, 0, 0, NONE)                              \
    X("sync", NO_MULTI, 0, 0, 0, 0, 0, NONE)                            \
    X("time", RO | N_MAP, 0, 0, 0, 0, 0, NONE)                          \
    X("touch", RO | S_SUM, 1, -1, 1, 0, 0, NONE)                        \
    X("ttl", RO, 1, 1, 1, 0, 0, NONE)                                   \
    X("type", RO, 1, 1, 1, 0, 0, NONE)                                  \
    X("unlink", S_SUM, 1, -1, 1, 0, 0, NONE)                            \
    X("unsubscribe", SUB, 0, 0, 0, 0, 0, NONE)                          \
    X("unwatch", NOCL, 0, 0, 0, 0, 0, NONE)                             \
    X("wait", WAITS, 0, 0, 0, 0, -1, NONE)                              \
    X("waitaof", WAITS, 0, 0, 0, 0, -1, NONE)                           \
    X("watch", NO_MULTI, 1, -1, 1, 0, 0, NONE)                          \
    X("xack", 0, 1, 1, 1, 0, 0, NONE)                                   \
    X("xadd", 0, 1, 1, 1, 0, 0, NONE)                                   \
    X("xautoclaim", 0, 1, 1, 1, 0, 0, NONE)                             \
    X("xclaim", 0, 1, 1, 1, 0, 0, NONE)                                 \
    X("xdel", 0, 1, 1, 1, 0, 0, NONE)                                   \
    X("xgroup", SUBCMD, 0, 0, 0, 0, 0, NONE)                            \
    X("xinfo", RO | SUBCMD, 0, 0, 0, 0, 0, NONE)                        \
    X("xlen", RO, 1, 1, 1, 0, 0, NONE)                                  \
    X("xpending", RO, 1, 1, 1, 0, 0, NONE)                              \
    X("xrange", RO, 1, 1, 1, 0, 0, NONE)                                \
    X("xread", RO | BLOCK_OPT | MOVABLE, 0, 0, 0, 0, 0, NONE)           \
    X("xreadgroup", BLOCK_OPT | MOVABLE, 0, 0, 0, 0, 0, NONE)           \
    X("xrevrange", RO, 1, 1, 1, 0, 0, NONE)                             \
    X("xsetid", 0, 1, 1, 1, 0, 0, NONE)                                 \
    X("xtrim", 0, 1, 1, 1, 0, 0, NONE)                                  \
    X("zadd", 0, 1, 1, 1, 0, 0, NONE)                                   \
    X("zcard", RO, 1, 1, 1, 0, 0, NONE)                                 \
    X("zcount", RO, 1, 1, 1, 0, 0, NONE)                                \
    X("zdiff", RO | WITHSCORES, 0, 0, 0, 1, 0, PAIRS_DOUBLE)            \
    X("zdiffstore", 0, 1, 1, 1, 2, 0, NONE)                             \
    X("zincrby", 0, 1, 1, 1, 0, 0, DOUBLE)                              \
    X("zinter", RO | WITHSCORES, 0, 0, 0, 1, 0, PAIRS_DOUBLE)           \
    X("zintercard", RO, 0, 0, 0, 1, 0, NONE)                            \
    X("zinterstore", 0, 1, 1, 1, 2, 0, NONE)                            \
    X("zlexcount", RO, 1, 1, 1, 0, 0, NONE)                             \
    X("zmpop", 0, 0, 0, 0, 1, 0, NONE)                                  \
    X("zmscore", RO, 1, 1, 1, 0, 0, DOUBLES)                            \
    X("zpopmax", 0, 1, 1, 1, 0, 0, NONE)                                \
    X("zpopmin", 0, 1, 1, 1, 0, 0, NONE)                                \
    X("zrandmember", RO | WITHSCORES, 1, 1, 1, 0, 0, PAIRS_DOUBLE)      \
    X("zrange", RO | WITHSCORES, 1, 1, 1, 0, 0, PAIRS_DOUBLE)           \
    X("zrangebylex", RO, 1, 1, 1, 0, 0, NONE)                           \
    X("zrangebyscore", RO | WITHSCORES, 1, 1, 1, 0, 0, PAIRS_DOUBLE)    \
    X("zrangestore", 0, 1, 2, 1, 0, 0, NONE)                            \
    X("zrank", RO, 1, 1, 1, 0, 0, NONE)                                 \
    X("zrem", 0, 1, 1, 1, 0, 0, NONE)                                   \
    X("zremrangebylex", 0, 1, 1, 1, 0, 0, NONE)                         \
    X("zremrangebyrank", 0, 1, 1, 1, 0, 0, NONE)                        \
    X("zremrangebyscore", 0, 1, 1, 1, 0, 0, NONE)                       \
    X("zrevrange", RO | WITHSCORES, 1, 1, 1, 0, 0, PAIRS_DOUBLE)        \
    X("zrevrangebylex", RO, 1, 1, 1, 0, 0, NONE)                        \
    X("zrevrangebyscore", RO | WITHSCORES, 1, 1, 1, 0, 0, PAIRS_DOUBLE) \
    X("zrevrank", RO, 1, 1, 1, 0, 0, NONE)                              \
    X("zscan", RO, 1, 1, 1, 0, 0, NONE)                                 \
    X("zscore", RO, 1, 1, 1, 0, 0, DOUBLE)                              \
    X("zunion", RO | WITHSCORES, 0, 0, 0, 1, 0, PAIRS_DOUBLE)           \
    X("zunionstore", 0, 1, 1, 1, 2, 0, NONE)                            \
    X("config|resetstat", N_OK, 0, 0, 0, 0, 0, NONE)                    \
    X("config|rewrite", N_OK, 0, 0, 0, 0, 0, NONE)                      \
    X("config|set", N_OK, 0, 0, 0, 0, 0, NONE)                          \
    X("function|delete", P_SAME, 0, 0, 0, 0, 0, NONE)                   \
    X("function|flush", P_OK, 0, 0, 0, 0, 0, NONE)                      \
    X("function|load", P_SAME, 0, 0, 0, 0, 0, NONE)                     \
    X("function|restore", P_OK, 0, 0, 0, 0, 0, NONE)                    \
    X("memory|usage", RO, 2, 2, 1, 0, 0, NONE)                          \
    X("object|encoding", RO, 2, 2, 1, 0, 0, NONE)                       \
    X("object|freq", RO, 2, 2, 1, 0, 0, NONE)                           \
    X("object|idletime", RO, 2, 2, 1, 0, 0, NONE)                       \
    X("object|refcount", RO, 2, 2, 1, 0, 0, NONE)                       \
    X("xgroup|create", 0, 2, 2, 1, 0, 0, NONE)                          \
    X("xgroup|createconsumer", 0, 2, 2, 1, 0, 0, NONE)                  \
    X("xgroup|delconsumer", 0, 2, 2, 1, 0, 0, NONE)                     \
    X("xgroup|destroy", 0, 2, 2, 1, 0, 0, NONE)                         \
    X("xgroup|setid", 0, 2, 2, 1, 0, 0, NONE)                           \
    X("xinfo|consumers", RO, 2, 2, 1, 0, 0, NONE)                       \
    X("xinfo|groups", RO, 2, 2, 1, 0, 0, NONE)                          \
    X("xinfo|stream", RO, 2, 2, 1, 0, 0, NONE)                          \
    X("pubsub|channels", N_UNIQ, 0, 0, 0, 0, 0, NONE)                   \
    X("pubsub|numpat", N_SUM, 0, 0, 0, 0, 0, NONE)                      \
    X("pubsub|numsub", N_PAIRSUM, 0, 0, 0, 0, 0, NONE)                  \
    X("pubsub|shardchannels", P_UNION, 0, 0, 0, 0, 0, NONE)             \
    X("script|exists", P_AND, 0, 0, 0, 0, 0, NONE)                      \
    X("script|flush", P_OK, 0, 0, 0, 0, 0, NONE)                        \
    X("script|kill", NOCL, 0, 0, 0, 0, 0, NONE)                         \
    X("script|load", P_SAME, 0, 0, 0, 0, 0, NONE)                       \
    X("client|caching", NEXT, 0, 0, 0, 0, 0, NONE)                      \
    X("client|reply", CLIENT_REPLY, 0, 0, 0, 0, 0, NONE)                \
    X("config|get", N_MAP, 0, 0, 0, 0, 0, MAP)

#define ENTRY(n, f, first, last, step, nk, to, norm) \
    {n, sizeof n - 1, AREDIS__NORM_##norm, (f), first, last, step, nk, to},
static const aredis__cmdinfo table[] = {COMMANDS(ENTRY)};
#define NCMDS (sizeof table / sizeof *table)

/* Shortest and longest names the index takes ("command|subcommand"
 * included). */
#define MIN_NAME 3
#define MAX_NAME 48
/* A power of two, about twice the number of entries: the commands in
 * common use are found at the first probe. */
#define SLOT_BITS 9
#define NSLOTS (1u << SLOT_BITS)

/* Lower case of every byte, as a table: one load per byte. */
#define LC(c) \
    ((unsigned char)((c) >= 'A' && (c) <= 'Z' ? (c) + ('a' - 'A') : (c)))
#define L4(i) LC(i), LC((i) + 1), LC((i) + 2), LC((i) + 3)
#define L16(i) L4(i), L4((i) + 4), L4((i) + 8), L4((i) + 12)
#define L64(i) L16(i), L16((i) + 16), L16((i) + 32), L16((i) + 48)
static const unsigned char lower[256] = {L64(0), L64(64), L64(128), L64(192)};

/* An index slot, one word: the entry's first HEAD_BYTES lower-cased bytes
 * in the low 48 bits, its length in the next 6 and its position + 1 in
 * the top 10 (0: an empty slot). A probe tells names of up to 6 bytes
 * apart (nearly every command) without reading the entry, and the index
 * is 4 KB: one page of private memory, which the first command of a
 * process touches whole. */
typedef uint64_t slot;
#define HEAD_BYTES 6
#define HEAD_MASK ((UINT64_C(1) << 48) - 1)
#define LEN_SHIFT 48
#define IDX_SHIFT 54
#define KEY_MASK ((UINT64_C(1) << IDX_SHIFT) - 1)
_Static_assert(MAX_NAME < 64, "a length takes 6 bits of a slot");
_Static_assert(sizeof table / sizeof *table < 1023,
               "a position takes 10 bits of a slot");

static slot slots[NSLOTS];
static atomic_int built;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* A name's slot, and in *want what its slot holds but the position:
 * multiplicative hashing of its first 8 lower-cased bytes, its length
 * and, past 8 bytes, the last two bytes. */
static inline uint32_t key(const char *p, size_t n, uint64_t *want)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t m = n < 8 ? n : 8;
    uint64_t h = 0;
    for (size_t i = 0; i < m; i++)
        h |= (uint64_t)lower[u[i]] << (8 * i);
    *want = (h & HEAD_MASK) | (uint64_t)n << LEN_SHIFT;
    if (n > 8)
        h ^= (uint64_t)lower[u[n - 1]] << 56 ^ (uint64_t)lower[u[n - 2]] << 48;
    h = (h ^ n) * 0x9e3779b97f4a7c15u;
    return (uint32_t)(h >> (64 - SLOT_BITS));
}

static void build(void)
{
    for (size_t i = 0; i < NCMDS; i++) {
        assert(table[i].len >= MIN_NAME && table[i].len <= MAX_NAME);
        uint64_t want;
        uint32_t s = key(table[i].name, table[i].len, &want);
        while (slots[s] != 0)
            s = (s + 1) & (NSLOTS - 1);
        slots[s] = want | (uint64_t)(i + 1) << IDX_SHIFT;
    }
    atomic_store_explicit(&built, 1, memory_order_release);
}

int aredis__word_is(const char *arg, size_t n, const char *w, size_t wlen)
{
    if (n != wlen)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower[(unsigned char)arg[i]] != (unsigned char)w[i])
            return 0;
    return 1;
}

const aredis__cmdinfo *aredis__cmd_lookup(const char *name, size_t len)
{
    if (len < MIN_NAME || len > MAX_NAME)
        return NULL;
    if (!atomic_load_explicit(&built, memory_order_acquire))
        pthread_once(&once, build);
    uint64_t want;
    for (uint32_t s = key(name, len, &want); slots[s] != 0;
         s = (s + 1) & (NSLOTS - 1)) {
        if ((slots[s] & KEY_MASK) != want)
            continue;
        const aredis__cmdinfo *e = &table[(slots[s] >> IDX_SHIFT) - 1];
        if (len <= HEAD_BYTES ||
            aredis__word_is(name + HEAD_BYTES, len - HEAD_BYTES,
                            e->name + HEAD_BYTES, len - HEAD_BYTES))
            return e;
    }
    return NULL;
}

/* "name|sub", lower case, looked up as one name. */
static const aredis__cmdinfo *lookup_sub(const aredis__cmdinfo *e,
                                         const char *sub, size_t n)
{
    char key[MAX_NAME];
    if (e->len + 1 + n > sizeof key)
        return NULL;
    memcpy(key, e->name, e->len);
    key[e->len] = '|';
    memcpy(key + e->len + 1, sub, n);
    return aredis__cmd_lookup(key, e->len + 1 + n);
}

/* A timeout argument in ms: seconds with an optional fraction, or whole
 * milliseconds. Rounded up. 0 for "without limit" and for anything that
 * is not a plain non-negative number (the server refuses it at once). */
static int64_t parse_timeout(const char *p, size_t n, int in_ms)
{
    int64_t whole = 0, frac = 0, scale = 1000;
    int below = 0; /* a nonzero digit below the millisecond */
    size_t i = 0;
    for (; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
        if (i >= 15)
            return 0; /* longer than any useful wait */
        whole = whole * 10 + (p[i] - '0');
    }
    if (i == 0)
        return 0;
    if (in_ms)
        return i == n ? whole : 0;
    if (i < n && p[i] == '.') {
        for (i++; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
            if (scale > 1) {
                scale /= 10;
                frac += (p[i] - '0') * scale;
            } else if (p[i] != '0') {
                below = 1;
            }
        }
    }
    if (i != n)
        return 0;
    return whole * 1000 + frac + below;
}

int aredis__cmd_classify(const char *enc, aredis__cmdclass *out)
{
    aredis__args it;
    int argc = aredis__args_init(&it, enc);
    const char *a;
    size_t n;
    out->info = NULL;
    out->flags = 0;
    out->norm = AREDIS__NORM_NONE;
    out->client_reply = AREDIS__CLIENT_REPLY_NONE;
    out->block_ms = 0;
    if (!aredis__args_next(&it, &a, &n))
        return argc;
    const aredis__cmdinfo *e = aredis__cmd_lookup(a, n);
    if (e == NULL)
        return argc;
    if ((e->flags & AREDIS__CMDF_SUBCMD) && aredis__args_next(&it, &a, &n)) {
        const aredis__cmdinfo *s = lookup_sub(e, a, n);
        if (s != NULL)
            e = s;
    }
    out->info = e;
    out->flags = e->flags;
    out->norm = e->norm;
    if (!(e->flags & (AREDIS__CMDF_CLIENT_REPLY | AREDIS__CMDF_WITHSCORES |
                      AREDIS__CMDF_BLOCKING | AREDIS__CMDF_BLOCK_OPT)))
        return argc; /* the common case: the name says it all */

    if (e->flags & AREDIS__CMDF_CLIENT_REPLY) {
        if (aredis__args_next(&it, &a, &n)) {
            if (aredis__word_is(a, n, "on", 2))
                out->client_reply = AREDIS__CLIENT_REPLY_ON;
            else if (aredis__word_is(a, n, "off", 3))
                out->client_reply = AREDIS__CLIENT_REPLY_OFF;
            else if (aredis__word_is(a, n, "skip", 4))
                out->client_reply = AREDIS__CLIENT_REPLY_SKIP;
        }
    } else if (e->flags & AREDIS__CMDF_WITHSCORES) {
        out->norm = AREDIS__NORM_NONE;
        while (aredis__args_next(&it, &a, &n))
            if (aredis__word_is(a, n, "withscores", 10))
                out->norm = e->norm;
    } else if (e->flags & AREDIS__CMDF_BLOCKING) {
        /* The timeout: at a fixed place, or the last argument. */
        int want = e->timeout > 0 ? e->timeout : argc - 1;
        for (int k = 1; aredis__args_next(&it, &a, &n); k++) {
            if (k == want) {
                out->block_ms = parse_timeout(
                    a, n, (e->flags & AREDIS__CMDF_TIMEOUT_MS) != 0);
                break;
            }
        }
    } else {
        /* XREAD [COUNT n] [BLOCK ms] STREAMS ...: options end where the
         * stream names begin. */
        while (aredis__args_next(&it, &a, &n)) {
            if (aredis__word_is(a, n, "streams", 7))
                break;
            if (aredis__word_is(a, n, "block", 5)) {
                out->flags |= AREDIS__CMDF_BLOCKING | AREDIS__CMDF_NO_MULTI;
                if (aredis__args_next(&it, &a, &n))
                    out->block_ms = parse_timeout(a, n, 1);
                break;
            }
        }
    }
    return argc;
}

/* The class of a command the name alone classifies (e NULL: unknown). */
static void by_name(const aredis__cmdinfo *e, aredis__cmdclass *out)
{
    out->info = e;
    out->flags = e != NULL ? e->flags : 0;
    out->norm = e != NULL ? e->norm : AREDIS__NORM_NONE;
    out->client_reply = AREDIS__CLIENT_REPLY_NONE;
    out->block_ms = 0;
}

/* The flags of commands the arguments classify, not the name. */
#define BY_ARGS                                        \
    (AREDIS__CMDF_SUBCMD | AREDIS__CMDF_CLIENT_REPLY | \
     AREDIS__CMDF_WITHSCORES | AREDIS__CMDF_BLOCKING | AREDIS__CMDF_BLOCK_OPT)

/* Remember what the name alone decides (key w, n bytes; not a
 * subcommand's entry, nor a class the arguments change). */
static void memo_put(aredis__cmdmemo *m, uint64_t w, size_t n,
                     const aredis__cmdinfo *e)
{
    if (e != NULL && (e->len != n || (e->flags & BY_ARGS)))
        return;
    unsigned k = m->next++ & 1u;
    m->e[k].raw = w;
    m->e[k].info = e;
    m->e[k].flags = e != NULL ? e->flags : 0;
    m->e[k].len = (uint8_t)n;
    m->e[k].norm = e != NULL ? e->norm : AREDIS__NORM_NONE;
}

int aredis__cmd_classify_memo(const char *enc, aredis__cmdclass *out,
                              aredis__cmdmemo *m)
{
    /* "*<argc>\r\n$<n>\r\n<name>\r\n...", read in place when argc and
     * n have one digit each (the common case); anything else goes to the
     * table. */
    if (enc[1] < '1' || enc[1] > '9' || enc[2] != '\r' || enc[5] < '3' ||
        enc[5] > '8' || enc[6] != '\r')
        return aredis__cmd_classify(enc, out);
    int argc = enc[1] - '0';
    size_t n = (size_t)(enc[5] - '0');
    uint64_t w = aredis__cmd_memo_word(enc + 8, n);
    for (int i = 0; i < 2; i++) {
        if (m->e[i].raw == w && m->e[i].len == n) {
            aredis__cmd_memo_get(m, i, out);
            return argc;
        }
    }
    aredis__cmd_classify(enc, out);
    memo_put(m, w, n, out->info);
    return argc;
}

int aredis__cmd_classify_name_slow(const char *name, size_t n,
                                   aredis__cmdclass *out, aredis__cmdmemo *m)
{
    const aredis__cmdinfo *e = aredis__cmd_lookup(name, n);
    if (e != NULL && (e->flags & BY_ARGS))
        return 0;
    by_name(e, out);
    if (n >= 3 && n <= 8)
        memo_put(m, aredis__cmd_memo_word(name, n), n, e);
    return 1;
}

int aredis__cmd_first_key(const char *enc, const char **key, size_t *len)
{
    aredis__cmdclass cls;
    aredis__cmd_classify(enc, &cls);
    return aredis__cmd_first_key_of(enc, &cls, key, len);
}

int aredis__cmd_first_key_walk(const char *enc, const aredis__cmdclass *cls,
                               const char **key, size_t *len)
{
    const aredis__cmdinfo *info = cls->info;
    if (info == NULL)
        return 0;
    /* Positive int8_t positions, read without sign extension. */
    int want = info->first_key > 0 ? (unsigned char)info->first_key : 0;
    int numkeys = info->numkeys > 0 ? (unsigned char)info->numkeys : 0;
    aredis__args it;
    const char *arg = NULL;
    size_t n = 0;
    int argc = aredis__args_init(&it, enc);
    if (numkeys > 0 && want <= 0) {
        /* EVAL script numkeys key...: the first key follows the count. */
        for (int i = 0; i <= numkeys; i++)
            if (!aredis__args_next(&it, &arg, &n))
                return 0;
        if (n == 0 || (n == 1 && arg[0] == '0'))
            return 0;
        return aredis__args_next(&it, key, len);
    }
    if ((info->flags & AREDIS__CMDF_MOVABLE) &&
        (aredis__word_is(info->name, info->len, "xread", 5) ||
         aredis__word_is(info->name, info->len, "xreadgroup", 10))) {
        /* XREAD ... STREAMS key... id...: the first key follows STREAMS. */
        while (aredis__args_next(&it, &arg, &n))
            if (aredis__word_is(arg, n, "streams", 7))
                return aredis__args_next(&it, key, len);
        return 0;
    }
    if (want <= 0 || want >= argc)
        return 0;
    for (int i = 0; i <= want; i++)
        if (!aredis__args_next(&it, key, len))
            return 0;
    if (*len == 0 && (info->flags & AREDIS__CMDF_MOVABLE) &&
        aredis__word_is(info->name, info->len, "migrate", 7)) {
        /* MIGRATE host port "" db timeout ... KEYS key...: the keys
         * follow KEYS. */
        while (aredis__args_next(&it, &arg, &n))
            if (aredis__word_is(arg, n, "keys", 4))
                return aredis__args_next(&it, key, len);
        return 0;
    }
    return 1;
}

/* The argument at index i (0: the name) of an encoded command. */
static int arg_at(const char *enc, int i, const char **a, size_t *n)
{
    aredis__args it;
    int argc = aredis__args_init(&it, enc);
    if (i < 0 || i >= argc)
        return 0;
    for (int k = 0; k <= i; k++)
        aredis__args_next(&it, a, n);
    return 1;
}

/* The first key one spec gives: 1 and *key, *len, or 0. */
static int spec_first_key(const char *enc, int argc, const aredis__keyspec *s,
                          const char **key, size_t *len)
{
    const char *a = NULL;
    size_t n = 0;
    int begin = -1;
    if (s->begin == AREDIS__KS_INDEX) {
        begin = s->index;
    } else if (s->begin == AREDIS__KS_KEYWORD) {
        /* From startfrom onwards, or from argc + startfrom backwards. */
        int from = s->index >= 0 ? s->index : argc + s->index;
        int step = s->index >= 0 ? 1 : -1;
        for (int i = from; i >= 1 && i < argc; i += step) {
            if (arg_at(enc, i, &a, &n) &&
                aredis__word_is(a, n, s->keyword, s->kwlen)) {
                begin = i + 1;
                break;
            }
        }
    }
    if (begin < 1 || begin >= argc)
        return 0;
    if (s->find == AREDIS__KS_RANGE)
        return arg_at(enc, begin, key, len);
    if (s->find != AREDIS__KS_KEYNUM)
        return 0;
    /* A count of keys, then the keys. */
    if (!arg_at(enc, begin + s->keynumidx, &a, &n) || n == 0 || n > 9)
        return 0;
    long count = 0;
    for (size_t i = 0; i < n; i++) {
        if (a[i] < '0' || a[i] > '9')
            return 0;
        count = count * 10 + (a[i] - '0');
    }
    if (count <= 0)
        return 0;
    return arg_at(enc, begin + s->firstkey, key, len);
}

int aredis__keyspec_first_key(const char *enc, const aredis__keyspec *ks,
                              size_t nks, const char **key, size_t *len)
{
    aredis__args it;
    int argc = aredis__args_init(&it, enc);
    int found = 0;
    for (size_t i = 0; i < nks; i++) {
        const char *k = NULL;
        size_t n = 0;
        if (!spec_first_key(enc, argc, &ks[i], &k, &n))
            continue;
        if (!found || *len == 0) {
            *key = k;
            *len = n;
            found = 1;
        }
        if (n > 0)
            break;
    }
    return found;
}
