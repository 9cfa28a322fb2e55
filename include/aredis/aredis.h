/* aredis: an asynchronous Redis client library for C.
 *
 * This umbrella header includes every public header. Programs may include
 * the individual headers instead. */
#ifndef AREDIS_AREDIS_H
#define AREDIS_AREDIS_H

#include "alloc.h"
#include "cache.h"
#include "client.h"
#include "client_cache.h"
#include "error.h"
#include "export.h"
#include "lock.h"
#include "loop.h"
#include "options.h"
#include "pipeline.h"
#include "pubsub.h"
#include "reply.h"
#include "resp.h"
#include "scan.h"
#include "script.h"
#include "stream.h"
#include "sync.h"
#include "transaction.h"
#include "version.h"

#endif /* AREDIS_AREDIS_H */
