/* Symbol visibility for the aredis public API.
 *
 * Every public function is declared with AREDIS_API. The shared library is
 * built with hidden visibility by default, so only these symbols are
 * exported; the static library used by the tests reaches internals too. */
#ifndef AREDIS_EXPORT_H
#define AREDIS_EXPORT_H

#if defined(_WIN32) && defined(AREDIS_SHARED_BUILD)
#define AREDIS_API __declspec(dllexport)
#elif defined(__GNUC__) || defined(__clang__)
#define AREDIS_API __attribute__((visibility("default")))
#else
#define AREDIS_API
#endif

#if defined(__GNUC__) || defined(__clang__)
#define AREDIS_PRINTF(fmt_index, first_arg) \
    __attribute__((format(printf, fmt_index, first_arg)))
#else
#define AREDIS_PRINTF(fmt_index, first_arg)
#endif

#endif /* AREDIS_EXPORT_H */
