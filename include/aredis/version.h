/* aredis version numbers.
 *
 * AREDIS_VERSION_HEX packs the version as 0xMMmmpp so it compares with the
 * ordinary integer operators at compile time; aredis_version() returns the
 * same number for the library actually linked at run time. */
#ifndef AREDIS_VERSION_H
#define AREDIS_VERSION_H

#include "export.h"

#define AREDIS_VERSION_MAJOR 0
#define AREDIS_VERSION_MINOR 1
#define AREDIS_VERSION_PATCH 0

#define AREDIS_VERSION_HEX                                        \
    ((AREDIS_VERSION_MAJOR << 16) | (AREDIS_VERSION_MINOR << 8) | \
     (AREDIS_VERSION_PATCH))

#define AREDIS_VERSION_STRING "0.1.0"

#ifdef __cplusplus
extern "C" {
#endif

/** \return the linked library's version as AREDIS_VERSION_HEX. \since 0.1 */
AREDIS_API unsigned aredis_version(void);

/** \return the linked library's version as a static string. \since 0.1 */
AREDIS_API const char *aredis_version_string(void);

#ifdef __cplusplus
}
#endif

#endif /* AREDIS_VERSION_H */
