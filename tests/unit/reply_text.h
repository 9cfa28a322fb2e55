/* Test helper: render a reply tree as compact canonical text, so a test can
 * compare a whole structure with one string. Header-only so every unit
 * test executable can include it.
 *
 *   status:OK  err:ERR x  str:abc  int:-5  nil  dbl:1.5  bool:1  big:123
 *   verb(txt):hi  [a,b] (array)  {k=>v} (map)  ~(a,b) (set)  >(a,b) (push)
 *   |{k=>v}|str:x  (attributes, then the reply they annotate) */
#ifndef AREDIS_TEST_REPLY_TEXT_H
#define AREDIS_TEST_REPLY_TEXT_H

#include <stdio.h>
#include <string.h>

#include "aredis/reply.h"

typedef struct text_out {
    char *p;
    size_t left;
} text_out;

static void text_put(text_out *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n && o->left > 1; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f) {
            char esc[8];
            int k = snprintf(esc, sizeof esc, "\\x%02x", c);
            for (int j = 0; j < k && o->left > 1; j++) {
                *o->p++ = esc[j];
                o->left--;
            }
            continue;
        }
        *o->p++ = (char)c;
        o->left--;
    }
    *o->p = '\0';
}

static void text_puts(text_out *o, const char *s)
{
    text_put(o, s, strlen(s));
}

static void text_reply(text_out *o, const aredis_reply *r)
{
    char num[64];
    if (r->attrs) {
        text_puts(o, "|");
        text_reply(o, r->attrs);
        text_puts(o, "|");
    }
    switch (r->type) {
    case AREDIS_REPLY_STATUS:
        text_puts(o, "status:");
        text_put(o, r->str, r->len);
        break;
    case AREDIS_REPLY_ERROR:
        text_puts(o, "err:");
        text_put(o, r->str, r->len);
        break;
    case AREDIS_REPLY_STRING:
        text_puts(o, "str:");
        text_put(o, r->str, r->len);
        break;
    case AREDIS_REPLY_INTEGER:
        snprintf(num, sizeof num, "int:%lld", r->integer);
        text_puts(o, num);
        break;
    case AREDIS_REPLY_NIL:
        text_puts(o, "nil");
        break;
    case AREDIS_REPLY_DOUBLE:
        snprintf(num, sizeof num, "dbl:%.17g", r->dval);
        text_puts(o, num);
        break;
    case AREDIS_REPLY_BOOL:
        snprintf(num, sizeof num, "bool:%lld", r->integer);
        text_puts(o, num);
        break;
    case AREDIS_REPLY_BIGNUM:
        text_puts(o, "big:");
        text_put(o, r->str, r->len);
        break;
    case AREDIS_REPLY_VERB:
        text_puts(o, "verb(");
        text_puts(o, r->vformat);
        text_puts(o, "):");
        text_put(o, r->str, r->len);
        break;
    case AREDIS_REPLY_MAP:
    case AREDIS_REPLY_ATTR:
        text_puts(o, "{");
        for (size_t i = 0; i + 1 < r->len; i += 2) {
            if (i)
                text_puts(o, ",");
            text_reply(o, &r->element[i]);
            text_puts(o, "=>");
            text_reply(o, &r->element[i + 1]);
        }
        text_puts(o, "}");
        break;
    default: {
        const char *open = r->type == AREDIS_REPLY_ARRAY ? "["
                           : r->type == AREDIS_REPLY_SET ? "~("
                                                         : ">(";
        text_puts(o, open);
        for (size_t i = 0; i < r->len; i++) {
            if (i)
                text_puts(o, ",");
            text_reply(o, &r->element[i]);
        }
        text_puts(o, r->type == AREDIS_REPLY_ARRAY ? "]" : ")");
        break;
    }
    }
}

/* Render into buf (always NUL-terminated); returns buf. */
static inline const char *reply_text(const aredis_reply *r, char *buf,
                                     size_t cap)
{
    text_out o = {buf, cap};
    buf[0] = '\0';
    text_reply(&o, r);
    return buf;
}

#endif /* AREDIS_TEST_REPLY_TEXT_H */
