/* Reports: one line per test for people, CSV or JSON for programs, and the
 * progress bar (standard error, on a terminal only).
 *
 * Every format carries the same figures: ops/s, p50/p99/p99.9/max latency
 * in ms (from the histogram), client CPU seconds, and CPU seconds per
 * million commands. JSON adds the latency CDF, for plots. */
#include <stdio.h>
#include <string.h>

#include "bm.h"

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

/* A JSON string literal: quotes, backslashes and control bytes escaped. */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* Where the tool connects, as people write it. */
static void target(const bm_config *c, char *buf, size_t len)
{
    if (c->url)
        snprintf(buf, len, "%s", c->url);
    else if (c->socket)
        snprintf(buf, len, "unix://%s", c->socket);
    else
        snprintf(buf, len, "%s://%s:%d", c->tls ? "rediss" : "redis", c->host,
                 c->port);
}

static const char *tests_upper(bm_test t, char *buf, size_t len)
{
    const char *n = bm_test_name(t);
    size_t i = 0;
    for (; n[i] && i + 1 < len; i++)
        buf[i] = (char)(n[i] >= 'a' && n[i] <= 'z' ? n[i] - 32 : n[i]);
    buf[i] = '\0';
    return buf;
}

void bm_report_begin(bm_report *r)
{
    const bm_config *c = r->cfg;
    char where[512];
    target(c, where, sizeof where);
    r->ntests = 0;
    switch (c->output) {
    case BM_OUT_TEXT:
        fprintf(r->out, "# %s: %s, %s, %d connection%s, %d in flight each, ",
                r->tool, r->client, where, c->connections,
                c->connections == 1 ? "" : "s", c->inflight);
        if (c->duration_s > 0)
            fprintf(r->out, "%g s per test", c->duration_s);
        else
            fprintf(r->out, "%lld requests per test", c->requests);
        fprintf(r->out, ", %zu-byte values, ", c->datasize);
        if (c->keyspace > 0)
            fprintf(r->out, "%s keys over %lld names\n",
                    c->sequential ? "sequential" : "random", c->keyspace);
        else
            fprintf(r->out, "one key\n");
        break;
    case BM_OUT_CSV:
        fprintf(r->out,
                "client,test,connections,inflight,datasize,requests,errors,"
                "seconds,ops_per_sec,p50_ms,p99_ms,p999_ms,max_ms,cpu_s,"
                "cpu_s_per_million\n");
        break;
    case BM_OUT_JSON:
        fprintf(r->out, "{\n  \"tool\": ");
        json_str(r->out, r->tool);
        fprintf(r->out, ",\n  \"client\": ");
        json_str(r->out, r->client);
        fprintf(r->out, ",\n  \"config\": {\"target\": ");
        json_str(r->out, where);
        fprintf(r->out,
                ", \"connections\": %d, \"inflight\": %d, \"requests\": %lld, "
                "\"duration_s\": %g, \"datasize\": %zu, \"keyspace\": %lld, "
                "\"sequential\": %s, \"sync\": %s},\n  \"tests\": [",
                c->connections, c->inflight,
                c->duration_s > 0 ? 0 : c->requests, c->duration_s, c->datasize,
                c->keyspace, c->sequential ? "true" : "false",
                c->sync ? "true" : "false");
        break;
    }
    fflush(r->out);
}

static void json_test(bm_report *r, const bm_result *res, const char *name,
                      double ops, double cpu_m)
{
    FILE *f = r->out;
    const bm_hist *h = res->hist;
    fprintf(f,
            "%s\n    {\"test\": \"%s\", \"requests\": %llu, "
            "\"errors\": %llu, \"seconds\": %.6f, \"ops_per_sec\": %.1f,\n"
            "     \"latency_ms\": {\"p50\": %.4f, \"p90\": %.4f, "
            "\"p99\": %.4f, \"p999\": %.4f, \"max\": %.4f},\n"
            "     \"cpu_s\": %.4f, \"cpu_s_per_million\": %.4f,\n"
            "     \"cdf\": [",
            r->ntests ? "," : "", name, res->requests, res->errors,
            res->seconds, ops, ms(bm_hist_quantile(h, 0.5)),
            ms(bm_hist_quantile(h, 0.9)), ms(bm_hist_quantile(h, 0.99)),
            ms(bm_hist_quantile(h, 0.999)), ms(h->max_ns), res->cpu_s, cpu_m);
    /* [upper edge of a bucket in ms, fraction of commands at or below]. */
    uint64_t seen = 0;
    int first = 1;
    for (int i = 0; i < BM_HIST_BUCKETS && h->count; i++) {
        if (h->b[i] == 0)
            continue;
        seen += h->b[i];
        uint64_t hi = bm_hist_bucket_low(i) + bm_hist_bucket_width(i);
        if (hi > h->max_ns)
            hi = h->max_ns;
        fprintf(f, "%s[%.4f, %.6f]", first ? "" : ", ", ms(hi),
                (double)seen / (double)h->count);
        first = 0;
    }
    fprintf(f, "]}");
}

void bm_report_test(bm_report *r, const bm_result *res)
{
    const bm_config *c = r->cfg;
    const bm_hist *h = res->hist;
    char name[16];
    tests_upper(res->test, name, sizeof name);
    double ops = res->seconds > 0 ? (double)res->requests / res->seconds : 0;
    double cpu_m = res->requests ? res->cpu_s * 1e6 / (double)res->requests : 0;
    int inflight = res->test == BM_KEYS ? 1 : c->inflight;
    switch (c->output) {
    case BM_OUT_TEXT:
        fprintf(r->out,
                "%-6s %12.1f ops/s  p50 %.3f  p99 %.3f  p99.9 %.3f  max %.3f "
                "ms  %.3f CPU s/M",
                name, ops, ms(bm_hist_quantile(h, 0.5)),
                ms(bm_hist_quantile(h, 0.99)), ms(bm_hist_quantile(h, 0.999)),
                ms(h->max_ns), cpu_m);
        if (res->errors)
            fprintf(r->out, "  %llu errors", res->errors);
        fputc('\n', r->out);
        break;
    case BM_OUT_CSV:
        fprintf(r->out,
                "\"%s\",%s,%d,%d,%zu,%llu,%llu,%.6f,%.1f,%.4f,%.4f,%.4f,%.4f,"
                "%.4f,%.4f\n",
                r->client, name, c->connections, inflight, c->datasize,
                res->requests, res->errors, res->seconds, ops,
                ms(bm_hist_quantile(h, 0.5)), ms(bm_hist_quantile(h, 0.99)),
                ms(bm_hist_quantile(h, 0.999)), ms(h->max_ns), res->cpu_s,
                cpu_m);
        break;
    case BM_OUT_JSON:
        json_test(r, res, name, ops, cpu_m);
        break;
    }
    r->ntests++;
    fflush(r->out);
}

void bm_report_end(bm_report *r)
{
    if (r->cfg->output == BM_OUT_JSON)
        fprintf(r->out, "\n  ]\n}\n");
    fflush(r->out);
}

void bm_progress(const bm_config *cfg, bm_test t, unsigned long long done,
                 uint64_t start_ns)
{
    if (!cfg->progress)
        return;
    double el = (double)(bm_now_ns() - start_ns) / 1e9;
    double frac = cfg->duration_s > 0 ? el / cfg->duration_s
                                      : (double)done / (double)cfg->requests;
    if (frac > 1)
        frac = 1;
    char bar[31];
    int fill = (int)(frac * 30);
    memset(bar, '#', (size_t)fill);
    memset(bar + fill, '.', (size_t)(30 - fill));
    bar[30] = '\0';
    char name[16];
    fprintf(stderr, "\r%-6s [%s] %3.0f%%  %.0f ops/s   ",
            tests_upper(t, name, sizeof name), bar, frac * 100,
            el > 0 ? (double)done / el : 0.0);
    fflush(stderr);
}

void bm_progress_clear(const bm_config *cfg)
{
    if (cfg->progress) {
        fprintf(stderr, "\r%-70s\r", "");
        fflush(stderr);
    }
}
