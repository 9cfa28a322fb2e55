/* aredis: an asynchronous Redis client library for C.
 *
 * This umbrella header includes every public header. Programs may include
 * the individual headers instead. */
#ifndef AREDIS_AREDIS_H
#define AREDIS_AREDIS_H

#include "alloc.h"
#include "error.h"
#include "export.h"
#include "reply.h"
#include "resp.h"
#include "version.h"

#endif /* AREDIS_AREDIS_H */
