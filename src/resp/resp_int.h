/* Private to the resp folder: the reader's state.
 *
 * The reader keeps every not-yet-returned byte in one buffer and parses a
 * top-level reply in two passes (see reader.c). Offsets rather than
 * pointers are kept between calls because the buffer moves when it grows
 * or is compacted. */
#ifndef AREDIS_RESP_RESP_INT_H
#define AREDIS_RESP_RESP_INT_H

#include <stddef.h>
#include <stdint.h>

#include "aredis/resp.h"

/* One open aggregate during the scan pass. */
typedef struct aredis__scan_frame {
    size_t remaining; /* items still expected */
    int is_attr;      /* an attribute: completing it does not count */
} aredis__scan_frame;

/* One open aggregate during the build pass. */
typedef struct aredis__build_frame {
    aredis_reply *children;
    size_t idx, n;
    aredis_reply *attr;   /* the attribute node when this is an attribute */
    aredis_reply *resume; /* the slot the attribute annotates */
} aredis__build_frame;

struct aredis_reader {
    char *buf;
    size_t cap;
    size_t rpos;      /* first byte of the reply being parsed */
    size_t wpos;      /* end of buffered bytes */
    size_t release;   /* end of the reply returned last; dropped next call */
    size_t prepared;  /* bytes offered by the last prepare() */
    size_t read_hint; /* what prepare(0) offers at least (READ_MIN..CHUNK) */
    int trim;         /* aredis__reader_trim() was called */

    /* Scan pass, resumable across calls. */
    size_t spos;      /* next unscanned byte */
    size_t need;      /* wpos must reach this before scanning resumes */
    size_t line_from; /* where the CR search of an unfinished line resumes */
    size_t nodes;     /* nodes the current reply needs so far */
    size_t depth;     /* open aggregates */
    size_t max_depth_seen; /* deepest nesting, sizes the build stack */
    int attr_pending;      /* an attribute was just completed */
    int scanned;           /* scan finished; the build is still to do */
    int partial;           /* the scan stopped inside a reply */
    aredis__scan_frame *stack;
    size_t stack_cap;

    /* Build pass. */
    aredis__build_frame *bstack;
    size_t bstack_cap;
    aredis_reply *arena; /* nodes of the reply returned last; arena[0] is it */
    size_t arena_cap;

    aredis_reader_limits lim;
    int err;
    char errstr[128];
};

#endif /* AREDIS_RESP_RESP_INT_H */
