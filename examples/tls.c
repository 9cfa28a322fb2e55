/* Connecting with TLS: the server's certificate is verified against a CA
 * file and its host name, and a client certificate is offered.
 *
 *     ./tls rediss://127.0.0.1:6380 ca.crt [client.crt client.key]
 *
 * Verification is on by default; tls.insecure_skip_verify turns it off,
 * which lets anyone on the path impersonate the server. */
#include <stdio.h>

#include <aredis/aredis.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr,
                "usage: %s rediss://host:port ca.crt "
                "[client.crt client.key]\n",
                argv[0]);
        return 2;
    }
    aredis_options o = {.url = argv[1]};
    o.tls.enabled = 1;
    o.tls.ca_file = argv[2];
    if (argc >= 5) {
        o.tls.cert_file = argv[3];
        o.tls.key_file = argv[4];
    }
    aredis_status st;
    aredis_sync *s = aredis_sync_connect(&o, &st);
    if (s == NULL) {
        fprintf(stderr, "%s: %s\n", argv[1], st.msg);
        return 1;
    }
    aredis_reply *r = aredis_sync_command(s, "PING %s", "over TLS");
    if (r != NULL)
        printf("PING -> %.*s\n", (int)r->len, r->str);
    int bad = r == NULL || r->type == AREDIS_REPLY_ERROR;
    aredis_reply_free(r);
    aredis_sync_free(s);
    return bad;
}
