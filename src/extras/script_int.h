/* Script internals shared by the extras layer: reference counting, so a
 * command or a pipeline in flight keeps the script it needs alive after
 * the user's aredis_script_free(). */
#ifndef AREDIS_EXTRAS_SCRIPT_INT_H
#define AREDIS_EXTRAS_SCRIPT_INT_H

#include "aredis/script.h"

/* Take one more reference (thread-safe); returns s. */
aredis_script *aredis__script_retain(aredis_script *s);
/* Drop one (thread-safe); the last frees the script. NULL is a no-op. */
void aredis__script_release(aredis_script *s);

#endif /* AREDIS_EXTRAS_SCRIPT_INT_H */
