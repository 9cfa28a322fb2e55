/* Inlining hints for the hot path (util layer): HOT_INLINE for a small
 * function the command path must not call, COLD_PATH for a rare branch
 * kept out of it. Measured with callgrind (bench/client.sh,
 * bench/cluster.sh): compilers otherwise decide per build. */
#ifndef AREDIS_UTIL_INLINE_H
#define AREDIS_UTIL_INLINE_H

#if defined(__GNUC__)
#define COLD_PATH __attribute__((noinline))
#define HOT_INLINE __attribute__((always_inline)) inline
#else
#define COLD_PATH
#define HOT_INLINE inline
#endif

#endif /* AREDIS_UTIL_INLINE_H */
