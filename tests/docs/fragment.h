/* What every documentation fragment may use without declaring it
 * (tests/docs/run-docs.sh). A fragment is a C block of README.md or
 * docs/ without a main(): it is compiled, never run, so these are only
 * declarations. Anything else a fragment uses must be declared in the page,
 * in the block itself or in a "<!-- doc-test ... -->" comment just before
 * it (see docs/guide/testing.md). */
#ifndef AREDIS_TESTS_DOCS_FRAGMENT_H
#define AREDIS_TESTS_DOCS_FRAGMENT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aredis/aredis.h>

/* The loop and the client a page talks about (both names are used). */
extern aredis_loop *loop;
extern aredis_client *c, *client;
/* A blocking-facade client. */
extern aredis_sync *s;
/* The user data of the callback a fragment shows. */
extern void *ud;
/* A reply being looked at, a pipeline being filled. */
extern const aredis_reply *r;
extern aredis_pipeline *p;
/* Room for a constructor's error. */
extern aredis_status st;
/* A server URL, a key, a value and its length. */
extern const char *url, *key, *val;
extern size_t vlen;

#endif /* AREDIS_TESTS_DOCS_FRAGMENT_H */
