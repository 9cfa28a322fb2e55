/* A queue of commands encoded ahead of time (extras layer, internal).
 *
 * Pipelines, scripts and the transaction helper must capture a command
 * when the caller queues it (a format's arguments cannot be kept), and
 * submit it later through the public client API, which takes an argument
 * vector. So each command is encoded once with the public RESP writer and
 * decoded back into an argument vector, pointing into the buffer, when it
 * is submitted. Only the writer's own output is ever decoded, so the
 * decoder trusts it.
 *
 * Built only on include/aredis (writer, buffer), util/alloc.h and the
 * command table (util/cmdtable.h). */
#ifndef AREDIS_EXTRAS_CMDBUF_H
#define AREDIS_EXTRAS_CMDBUF_H

#include <stdarg.h>
#include <stddef.h>

#include "aredis/resp.h"

typedef struct aredis__cmdbuf_entry {
    size_t off; /* first byte of the command in enc */
    size_t len; /* its encoded length */
    int argc;
} aredis__cmdbuf_entry;

typedef struct aredis__cmdbuf {
    aredis_buf enc;
    aredis__cmdbuf_entry *cmds;
    size_t n, cap;
    /* Scratch argument vector filled by aredis__cmdbuf_decode(). */
    const char **argv;
    size_t *argvlen;
    size_t argcap;
} aredis__cmdbuf;

/* An empty queue; no allocation. */
void aredis__cmdbuf_init(aredis__cmdbuf *q);
/* Release everything; the queue is empty and may be used again. */
void aredis__cmdbuf_cleanup(aredis__cmdbuf *q);
/* Forget the commands but keep the memory for the next ones. */
void aredis__cmdbuf_clear(aredis__cmdbuf *q);

/* Append one command. Return 0, or the writer's error (AREDIS_EFORMAT,
 * AREDIS_EINVAL, AREDIS_ENOMEM) with the queue unchanged. */
int aredis__cmdbuf_vfmt(aredis__cmdbuf *q, const char *fmt, va_list ap);
int aredis__cmdbuf_argv(aredis__cmdbuf *q, int argc, const char *const *argv,
                        const size_t *argvlen);

/* Append `head` (nhead arguments) followed by the two lists, with a
 * numkeys-style count of the first list in between when `count` is set:
 *     head... [nkeys] keys... args...
 * lens arrays may be NULL (strlen). For EVALSHA and WATCH. */
int aredis__cmdbuf_lists(aredis__cmdbuf *q, int nhead, const char *const *head,
                         int count, int nkeys, const char *const *keys,
                         const size_t *keylens, int nargs,
                         const char *const *args, const size_t *arglens);

/* Decode command i into the scratch vector: valid until the next call on
 * the queue. Return 0 or AREDIS_ENOMEM. */
int aredis__cmdbuf_decode(aredis__cmdbuf *q, size_t i, int *argc,
                          const char *const **argv, const size_t **argvlen);

/* The command name (first argument) of command i, not NUL-terminated. */
const char *aredis__cmdbuf_name(const aredis__cmdbuf *q, size_t i, size_t *len);

/* 1 when command i cannot be part of a MULTI/EXEC batch the library
 * frames (util/cmdtable.h, AREDIS__CMDF_NO_MULTI): it blocks (the client
 * would send it on another connection), it controls the transaction
 * itself (MULTI, EXEC, DISCARD, WATCH, RESET), or the server refuses it
 * there (SAVE, SHUTDOWN...). */
int aredis__cmdbuf_no_multi(const aredis__cmdbuf *q, size_t i);

/* 1 when the client refuses command i outright (SELECT, the subscribe
 * family): in a batch it would be missing from the server's side. */
int aredis__cmdbuf_is_refused(const aredis__cmdbuf *q, size_t i);
/* The cluster slot of command i's first key, or -1 when it names none. */
int aredis__cmdbuf_slot(const aredis__cmdbuf *q, size_t i);

#endif /* AREDIS_EXTRAS_CMDBUF_H */
