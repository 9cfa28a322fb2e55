/* The protocol handshake run on every (re)connect (client layer).
 *
 * HELLO 3 with AUTH and SETNAME where the server has it; otherwise, in
 * automatic mode, RESP2 with AUTH (password, or user and password) and
 * CLIENT SETNAME; then SELECT. Steps go one at a time, so a fallback never
 * races a command sent on the wrong assumption, and user commands wait in
 * the client until the last step succeeds. A refused step fails the
 * connect with the server's own message. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "aredis/error.h"
#include "client/client_int.h"

enum { HS_HELLO, HS_AUTH, HS_SETNAME, HS_SELECT, HS_DONE };

static int hs_send(aredis__link *l);

/* Internal commands carry their link in cmd->link. */
static aredis__link *link_of(aredis__cmd *cmd)
{
    return cmd->link;
}

static int starts_with(const aredis_reply *r, const char *prefix)
{
    size_t n = strlen(prefix);
    return r->len >= n && memcmp(r->str, prefix, n) == 0;
}

static void hs_failed(aredis__link *l, const char *step, const aredis_reply *r)
{
    int code = AREDIS_ESERVER;
    if (starts_with(r, "WRONGPASS") || starts_with(r, "NOAUTH") ||
        starts_with(r, "NOPERM") || starts_with(r, "ERR invalid password") ||
        starts_with(r, "ERR AUTH"))
        code = AREDIS_EAUTH;
    char msg[192];
    snprintf(msg, sizeof msg, "handshake failed: %s: %.*s", step,
             (int)(r->len > 150 ? 150 : r->len), r->str);
    aredis__link_lost(l, code, msg);
}

static void hs_advance(aredis__link *l)
{
    l->hs_step++;
    int e = hs_send(l);
    if (e != 0)
        aredis__link_lost(l, e, "handshake failed: out of memory");
}

static int str_is(const aredis_reply *r, const char *s)
{
    size_t n = strlen(s);
    return (r->type == AREDIS_REPLY_STRING || r->type == AREDIS_REPLY_STATUS ||
            r->type == AREDIS_REPLY_VERB) &&
           r->len == n && strncasecmp(r->str, s, n) == 0;
}

/* The protocol a successful HELLO reply says the connection now speaks,
 * or 0 when the reply is not one. HELLO answers with the connection's
 * properties (the HELLO command's documentation): a map under RESP3, the
 * same pairs as a flat array under RESP2, with at least server, version
 * and proto. Anything else (a bare +OK, a reply meant for something else)
 * means the stream is not what the client thinks it is. */
static int hello_proto(const aredis_reply *r)
{
    if ((r->type != AREDIS_REPLY_MAP && r->type != AREDIS_REPLY_ARRAY) ||
        r->len % 2 != 0)
        return 0;
    int server = 0, version = 0;
    long long proto = 0;
    for (size_t i = 0; i < r->len; i += 2) {
        const aredis_reply *k = &r->element[i], *v = &r->element[i + 1];
        int text = v->type == AREDIS_REPLY_STRING ||
                   v->type == AREDIS_REPLY_STATUS ||
                   v->type == AREDIS_REPLY_VERB;
        if (str_is(k, "server") && text)
            server = 1;
        else if (str_is(k, "version") && text)
            version = 1;
        else if (str_is(k, "proto") && v->type == AREDIS_REPLY_INTEGER)
            proto = v->integer;
    }
    if (!server || !version)
        return 0;
    if (r->type == AREDIS_REPLY_MAP && proto == 3)
        return 3;
    if (r->type == AREDIS_REPLY_ARRAY && proto == 2)
        return 2;
    return 0;
}

static void on_hello(aredis_client *c, aredis__cmd *cmd, const aredis_reply *r)
{
    aredis__link *l = link_of(cmd);
    if (r->type != AREDIS_REPLY_ERROR) {
        if (hello_proto(r) != 3) {
            aredis__link_lost(l, AREDIS_EPROTO,
                              "handshake failed: HELLO 3 was not answered "
                              "with a RESP3 map of server, version and "
                              "proto");
            return;
        }
        l->proto = 3;
        l->hs_step = HS_SETNAME; /* AUTH and SETNAME rode on HELLO */
        hs_advance(l);
        return;
    }
    /* Redis before 6 does not know HELLO; 6+ built without RESP3 says
     * NOPROTO. In automatic mode both mean: speak RESP2. */
    if (c->cfg.protocol == 0 &&
        (starts_with(r, "NOPROTO") || starts_with(r, "ERR unknown command"))) {
        l->proto = 2;
        hs_advance(l);
        return;
    }
    hs_failed(l, "HELLO", r);
}

static void on_auth(aredis_client *c, aredis__cmd *cmd, const aredis_reply *r)
{
    aredis__link *l = link_of(cmd);
    (void)c;
    if (r->type == AREDIS_REPLY_ERROR)
        hs_failed(l, "AUTH", r);
    else
        hs_advance(l);
}

static void on_setname(aredis_client *c, aredis__cmd *cmd,
                       const aredis_reply *r)
{
    aredis__link *l = link_of(cmd);
    (void)c;
    if (r->type == AREDIS_REPLY_ERROR)
        hs_failed(l, "CLIENT SETNAME", r);
    else
        hs_advance(l);
}

static void on_select(aredis_client *c, aredis__cmd *cmd, const aredis_reply *r)
{
    aredis__link *l = link_of(cmd);
    (void)c;
    if (r->type == AREDIS_REPLY_ERROR)
        hs_failed(l, "SELECT", r);
    else
        hs_advance(l);
}

/* Send the current step, skipping the ones that have nothing to do. */
static int hs_send(aredis__link *l)
{
    const aredis__config *cfg = &l->c->cfg;
    const char *argv[8];
    int argc = 0;
    for (;;) {
        switch (l->hs_step) {
        case HS_HELLO:
            argv[argc++] = "HELLO";
            argv[argc++] = "3";
            if (cfg->password != NULL) {
                argv[argc++] = "AUTH";
                argv[argc++] = cfg->username ? cfg->username : "default";
                argv[argc++] = cfg->password;
            }
            if (cfg->client_name != NULL) {
                argv[argc++] = "SETNAME";
                argv[argc++] = cfg->client_name;
            }
            return aredis__link_internal(l, argc, argv, on_hello);
        case HS_AUTH:
            if (cfg->password == NULL)
                break;
            argv[argc++] = "AUTH";
            if (cfg->username != NULL)
                argv[argc++] = cfg->username;
            argv[argc++] = cfg->password;
            return aredis__link_internal(l, argc, argv, on_auth);
        case HS_SETNAME:
            if (cfg->client_name == NULL || l->proto == 3)
                break;
            argv[argc++] = "CLIENT";
            argv[argc++] = "SETNAME";
            argv[argc++] = cfg->client_name;
            return aredis__link_internal(l, argc, argv, on_setname);
        case HS_SELECT: {
            if (cfg->db == 0)
                break;
            char db[24];
            snprintf(db, sizeof db, "%d", cfg->db);
            argv[argc++] = "SELECT";
            argv[argc++] = db;
            return aredis__link_internal(l, argc, argv, on_select);
        }
        default:
            if (l->proto == 0)
                l->proto = 2;
            aredis__link_ready(l);
            return 0;
        }
        l->hs_step++;
    }
}

int aredis__handshake_start(aredis__link *l)
{
    int protocol = l->c->cfg.protocol;
    l->proto = protocol == 2 ? 2 : 0;
    l->hs_step = protocol == 2 ? HS_AUTH : HS_HELLO;
    return hs_send(l);
}
