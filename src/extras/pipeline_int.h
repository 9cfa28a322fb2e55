/* What the rest of the extras layer may do to a pipeline beyond its public
 * API (internal): the transaction helper owns pipelines and needs to
 * execute, unwatch and destroy them past the guards that keep users from
 * doing so, and script.c queues EVALSHA with the script attached. */
#ifndef AREDIS_EXTRAS_PIPELINE_INT_H
#define AREDIS_EXTRAS_PIPELINE_INT_H

#include <stddef.h>

#include "aredis/pipeline.h"
#include "aredis/script.h"

/* Mark p as owned by the transaction helper (owner non-NULL): the public
 * execute, reset and free then refuse or ignore it. */
void aredis__pipeline_set_owner(aredis_pipeline *p, void *owner);
void *aredis__pipeline_owner(const aredis_pipeline *p);

/* aredis_pipeline_execute() without the owner check. */
int aredis__pipeline_execute(aredis_pipeline *p, aredis_pipeline_cb cb,
                             void *ud);

/* Drop the WATCH held in immediate mode: UNWATCH, give the connection
 * back when it is answered, then run cb (from the loop) with UNWATCH's
 * reply. The queue is emptied at once.
 * Return 0, AREDIS_ESTATE when not in immediate mode or a batch is in
 * flight, or the client's submit error (nothing changed then). */
int aredis__pipeline_unwatch(aredis_pipeline *p, aredis_pipeline_cb cb,
                             void *ud);

/* aredis_pipeline_free() without the owner check. */
void aredis__pipeline_destroy(aredis_pipeline *p);

/* Queue EVALSHA of s and remember s (retained) for the load before the
 * batch. Errors as aredis_pipeline_command(). */
int aredis__pipeline_add_script(aredis_pipeline *p, aredis_script *s, int nkeys,
                                const char *const *keys, const size_t *keylens,
                                int nargs, const char *const *args,
                                const size_t *arglens);

#endif /* AREDIS_EXTRAS_PIPELINE_INT_H */
