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

#include "aredis/error.h"
#include "client/client_int.h"

enum { HS_HELLO, HS_AUTH, HS_SETNAME, HS_SELECT, HS_DONE };

static int hs_send(aredis_client *c);

static int starts_with(const aredis_reply *r, const char *prefix)
{
    size_t n = strlen(prefix);
    return r->len >= n && memcmp(r->str, prefix, n) == 0;
}

static void hs_failed(aredis_client *c, const char *step,
                      const aredis_reply *r)
{
    int code = AREDIS_ESERVER;
    if (starts_with(r, "WRONGPASS") || starts_with(r, "NOAUTH") ||
        starts_with(r, "NOPERM") || starts_with(r, "ERR invalid password") ||
        starts_with(r, "ERR AUTH"))
        code = AREDIS_EAUTH;
    char msg[192];
    snprintf(msg, sizeof msg, "handshake failed: %s: %.*s", step,
             (int)(r->len > 150 ? 150 : r->len), r->str);
    aredis__client_conn_failed(c, code, msg);
}

static void hs_advance(aredis_client *c)
{
    c->hs_step++;
    int e = hs_send(c);
    if (e != 0)
        aredis__client_conn_failed(c, e, "handshake failed: out of memory");
}

static void on_hello(aredis_client *c, aredis__cmd *cmd, const aredis_reply *r)
{
    (void)cmd;
    if (r->type != AREDIS_REPLY_ERROR) {
        c->proto = 3;
        c->hs_step = HS_SETNAME; /* AUTH and SETNAME rode on HELLO */
        hs_advance(c);
        return;
    }
    /* Redis before 6 does not know HELLO; 6+ built without RESP3 says
     * NOPROTO. In automatic mode both mean: speak RESP2. */
    if (c->cfg.protocol == 0 &&
        (starts_with(r, "NOPROTO") || starts_with(r, "ERR unknown command"))) {
        c->proto = 2;
        hs_advance(c);
        return;
    }
    hs_failed(c, "HELLO", r);
}

static void on_auth(aredis_client *c, aredis__cmd *cmd, const aredis_reply *r)
{
    (void)cmd;
    if (r->type == AREDIS_REPLY_ERROR)
        hs_failed(c, "AUTH", r);
    else
        hs_advance(c);
}

static void on_setname(aredis_client *c, aredis__cmd *cmd,
                       const aredis_reply *r)
{
    (void)cmd;
    if (r->type == AREDIS_REPLY_ERROR)
        hs_failed(c, "CLIENT SETNAME", r);
    else
        hs_advance(c);
}

static void on_select(aredis_client *c, aredis__cmd *cmd,
                      const aredis_reply *r)
{
    (void)cmd;
    if (r->type == AREDIS_REPLY_ERROR)
        hs_failed(c, "SELECT", r);
    else
        hs_advance(c);
}

/* Send the current step, skipping the ones that have nothing to do. */
static int hs_send(aredis_client *c)
{
    const aredis__config *cfg = &c->cfg;
    const char *argv[8];
    int argc = 0;
    for (;;) {
        switch (c->hs_step) {
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
            return aredis__client_internal(c, argc, argv, on_hello);
        case HS_AUTH:
            if (cfg->password == NULL)
                break;
            argv[argc++] = "AUTH";
            if (cfg->username != NULL)
                argv[argc++] = cfg->username;
            argv[argc++] = cfg->password;
            return aredis__client_internal(c, argc, argv, on_auth);
        case HS_SETNAME:
            if (cfg->client_name == NULL || c->proto == 3)
                break;
            argv[argc++] = "CLIENT";
            argv[argc++] = "SETNAME";
            argv[argc++] = cfg->client_name;
            return aredis__client_internal(c, argc, argv, on_setname);
        case HS_SELECT: {
            if (cfg->db == 0)
                break;
            char db[24];
            snprintf(db, sizeof db, "%d", cfg->db);
            argv[argc++] = "SELECT";
            argv[argc++] = db;
            return aredis__client_internal(c, argc, argv, on_select);
        }
        default:
            if (c->proto == 0)
                c->proto = 2;
            aredis__client_ready(c);
            return 0;
        }
        c->hs_step++;
    }
}

int aredis__handshake_start(aredis_client *c)
{
    c->proto = c->cfg.protocol == 2 ? 2 : 0;
    c->hs_step = c->cfg.protocol == 2 ? HS_AUTH : HS_HELLO;
    return hs_send(c);
}
