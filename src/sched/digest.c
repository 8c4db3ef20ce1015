/* The Slack digest job: each tenant with a Slack URL gets one message a day
 * (LEADFLOW_SLACK_DIGEST_CRON, weekdays at 08:00 UTC by default) about its last 24 hours: new
 * leads, hot leads, deals created, deals won (count and value), the open pipeline's value,
 * and the top sources of the new leads. The counts are read on a reader connection; the
 * message is one slack delivery in the outbox (channel "default"), which the dispatcher
 * sends. Amounts are per currency: deals in different currencies are never added up. */
#include "sched/scheduler.h"
#include "core/jsonx.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "outbound/outbound.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW_MS   (24LL * 3600 * 1000)
#define TOP_SOURCES 5
#define SOURCE_MAX  100 /* characters of a source name shown */
#define CURRENCIES  10  /* currencies listed per amount; more are summed up as "…" */
#define URL_BUFSZ   2048

/* ---- reading the counts */

/* Rows of "currency, count, sum" as [{currency, deals, value_cents}]. */
static int money_rows(struct lf_conn *c, const char *sql, const char *tenant, int64_t lo,
                      int64_t hi, json_t **out)
{
    struct lf_stmt *st = lf_db_prepare(c, sql, NULL);
    if (st == NULL) return -LF_EINTERNAL;
    if (lo >= 0)
        lf_stmt_bind(st, "sII", tenant, lo, hi);
    else
        lf_stmt_bind(st, "s", tenant);
    json_t *rows = json_array();
    int rc;
    while ((rc = lf_stmt_step(st)) == LF_DB_ROW)
        json_array_append_new(rows, json_pack("{s:s, s:I, s:I}", "currency", lf_stmt_text(st, 0),
                                              "deals", (json_int_t)lf_stmt_int(st, 1),
                                              "value_cents", (json_int_t)lf_stmt_int(st, 2)));
    lf_stmt_done(st);
    *out = rows;
    return rc < 0 ? rc : 0;
}

/* The tenant's numbers for the window [lo, hi) as an object. Returns 0 or negative. */
static int read_counts(struct lf_conn *c, const char *tenant, int64_t lo, int64_t hi, json_t **out)
{
    int64_t new_leads = 0, hot = 0, created = 0;
    int rc = lf_db_int(c, NULL, &new_leads,
                       "SELECT count(*) FROM leads WHERE tenant_id = ? AND created_at >= ?"
                       " AND created_at < ? AND merged_into IS NULL AND erased_at IS NULL",
                       "sII", tenant, lo, hi);
    /* lead.hot written by the engine only: an ingested event may carry any name */
    if (rc >= 0)
        rc = lf_db_int(c, NULL, &hot,
                       "SELECT count(DISTINCT lead_id) FROM events WHERE tenant_id = ?"
                       " AND event_type = 'lead.hot' AND origin = 'internal'"
                       " AND occurred_at >= ? AND occurred_at < ?",
                       "sII", tenant, lo, hi);
    if (rc >= 0)
        rc = lf_db_int(c, NULL, &created,
                       "SELECT count(*) FROM deals WHERE tenant_id = ? AND created_at >= ?"
                       " AND created_at < ?",
                       "sII", tenant, lo, hi);
    json_t *won = NULL, *open = NULL, *sources = json_array();
    if (rc >= 0)
        rc = money_rows(c,
                        "SELECT currency, count(*), COALESCE(SUM(value_cents), 0) FROM deals"
                        " WHERE tenant_id = ? AND status = 'won' AND closed_at >= ?"
                        " AND closed_at < ? GROUP BY currency ORDER BY 3 DESC, 1",
                        tenant, lo, hi, &won);
    if (rc >= 0)
        rc = money_rows(c,
                        "SELECT currency, count(*), COALESCE(SUM(value_cents), 0) FROM deals"
                        " WHERE tenant_id = ? AND status = 'open' GROUP BY currency"
                        " ORDER BY 3 DESC, 1",
                        tenant, -1, -1, &open);
    struct lf_stmt *st =
        rc < 0 ? NULL
               : lf_db_prepare(c,
                               "SELECT first_touch_source, count(*) FROM leads WHERE tenant_id = ?"
                               " AND created_at >= ? AND created_at < ? AND merged_into IS NULL"
                               " AND erased_at IS NULL GROUP BY first_touch_source"
                               " ORDER BY 2 DESC, 1 LIMIT ?",
                               NULL);
    if (rc >= 0 && st == NULL) rc = -LF_EINTERNAL;
    if (st) {
        lf_stmt_bind(st, "sIIi", tenant, lo, hi, TOP_SOURCES);
        while ((rc = lf_stmt_step(st)) == LF_DB_ROW)
            json_array_append_new(sources, json_pack("{s:o, s:I}", "source",
                                                     lf_json_text(lf_stmt_text(st, 0)), "leads",
                                                     (json_int_t)lf_stmt_int(st, 1)));
        lf_stmt_done(st);
    }
    if (rc < 0) {
        json_decref(won);
        json_decref(open);
        json_decref(sources);
        return rc;
    }
    *out = json_pack("{s:I, s:I, s:I, s:o, s:o, s:o}", "new_leads", (json_int_t)new_leads,
                     "hot_leads", (json_int_t)hot, "deals_created", (json_int_t)created,
                     "deals_won", won, "open_pipeline", open, "top_sources", sources);
    return 0;
}

/* ---- the message */

/* Appends s cut to max characters with &, < and > escaped (mrkdwn): a source name comes
 * from ingested events. */
static void put_escaped(struct lf_buf *b, const char *s, size_t max)
{
    size_t chars = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; chars++) {
        if (chars == max) {
            lf_buf_puts(b, "…");
            return;
        }
        size_t n = 1;
        while (p[n] && (p[n] & 0xC0) == 0x80) n++;
        if (*p == '&')
            lf_buf_puts(b, "&amp;");
        else if (*p == '<')
            lf_buf_puts(b, "&lt;");
        else if (*p == '>')
            lf_buf_puts(b, "&gt;");
        else
            lf_buf_append(b, p, n);
        p += n;
    }
}

/* cents as "12,500.00". */
static void put_amount(struct lf_buf *b, long long cents)
{
    unsigned long long v = cents < 0 ? 0ULL - (unsigned long long)cents : (unsigned long long)cents;
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%llu", v / 100);
    if (cents < 0) lf_buf_puts(b, "-");
    for (int i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0) lf_buf_puts(b, ",");
        lf_buf_append(b, digits + i, 1);
    }
    lf_buf_printf(b, ".%02llu", v % 100);
}

/* "3 deals · 12,500.00 EUR, 900.00 USD" (or "none") from money rows. */
static void put_money(struct lf_buf *b, json_t *rows)
{
    long long deals = 0;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) deals += json_integer_value(json_object_get(row, "deals"));
    if (deals == 0) {
        lf_buf_puts(b, "none");
        return;
    }
    lf_buf_printf(b, "%lld deal%s", deals, deals == 1 ? "" : "s");
    json_array_foreach(rows, i, row)
    {
        if (i == CURRENCIES) {
            lf_buf_puts(b, ", …");
            break;
        }
        lf_buf_puts(b, i == 0 ? " · " : ", ");
        put_amount(b, json_integer_value(json_object_get(row, "value_cents")));
        lf_buf_puts(b, " ");
        put_escaped(b, json_string_value(json_object_get(row, "currency")), 8);
    }
}

static json_t *field(const char *label, struct lf_buf *value)
{
    json_t *f = json_pack("{s:s, s:s+}", "type", "mrkdwn", "text", label, value->data);
    lf_buf_reset(value);
    return f;
}

/* The digest as a slack payload: {"channel": "default", "text", "blocks"}. Every text stays
 * far below Slack's limits by construction (5 sources of at most 100 characters). */
static json_t *digest_message(const char *tenant_name, json_t *k, int64_t lo, int64_t hi)
{
    struct lf_buf b = {0};
    long long new_leads = json_integer_value(json_object_get(k, "new_leads"));
    long long hot = json_integer_value(json_object_get(k, "hot_leads"));
    long long created = json_integer_value(json_object_get(k, "deals_created"));
    json_t *won = json_object_get(k, "deals_won"), *open = json_object_get(k, "open_pipeline");

    json_t *fields = json_array();
    lf_buf_printf(&b, "%lld", new_leads);
    json_array_append_new(fields, field("*New leads*\n", &b));
    lf_buf_printf(&b, "%lld", hot);
    json_array_append_new(fields, field("*Hot leads*\n", &b));
    lf_buf_printf(&b, "%lld", created);
    json_array_append_new(fields, field("*Deals created*\n", &b));
    put_money(&b, won);
    json_array_append_new(fields, field("*Deals won*\n", &b));
    put_money(&b, open);
    json_array_append_new(fields, field("*Open pipeline*\n", &b));

    lf_buf_puts(&b, "*Top sources of new leads*");
    size_t i;
    json_t *row;
    json_t *sources = json_object_get(k, "top_sources");
    json_array_foreach(sources, i, row)
    {
        const char *source = json_string_value(json_object_get(row, "source"));
        lf_buf_printf(&b, "\n%zu. ", i + 1);
        if (source && *source)
            put_escaped(&b, source, SOURCE_MAX);
        else
            lf_buf_puts(&b, "_no source_");
        lf_buf_printf(&b, " — %lld", (long long)json_integer_value(json_object_get(row, "leads")));
    }
    if (json_array_size(sources) == 0) lf_buf_puts(&b, "\nNo new leads.");
    json_t *top = json_pack("{s:s, s:s}", "type", "mrkdwn", "text", b.data);
    lf_buf_reset(&b);

    char from[LF_TIME_BUFSZ], to[LF_TIME_BUFSZ];
    lf_time_format(lo, from, sizeof from);
    lf_time_format(hi, to, sizeof to);
    put_escaped(&b, tenant_name, SOURCE_MAX);
    lf_buf_printf(&b, " · %.16s – %.16s UTC", from, to);
    json_t *context = json_pack("{s:s, s:s}", "type", "mrkdwn", "text", b.data);
    lf_buf_reset(&b);

    long long won_deals = 0;
    json_array_foreach(won, i, row) won_deals += json_integer_value(json_object_get(row, "deals"));
    lf_buf_printf(&b,
                  "Daily digest: %lld new lead%s, %lld hot, %lld deal%s created, %lld won in the"
                  " last 24 hours",
                  new_leads, new_leads == 1 ? "" : "s", hot, created, created == 1 ? "" : "s",
                  won_deals);
    json_t *payload =
        json_pack("{s:s, s:s, s:[{s:s, s:{s:s, s:s, s:b}}, {s:s, s:o}, {s:s, s:o}, {s:s, s:[o]}]}",
                  "channel", "default", "text", b.data, "blocks", "type", "header", "text", "type",
                  "plain_text", "text", "📊 Daily digest", "emoji", 1, "type", "section", "fields",
                  fields, "type", "section", "text", top, "type", "context", "elements", context);
    lf_buf_free(&b);
    return payload;
}

/* ---- the job */

/* The tenants to look at: the one asked for, or all (id and name). */
static int tenant_list(struct lf_job_run *run, json_t *tenants, struct lf_err *err)
{
    struct lf_conn *c = lf_db_acquire(run->app->db, LF_DB_READ, err);
    if (c == NULL) return -LF_ESTORE;
    struct lf_stmt *st = lf_db_prepare(c,
                                       run->tenant_id ? "SELECT id, name FROM tenants WHERE id = ?"
                                                      : "SELECT id, name FROM tenants ORDER BY id",
                                       err);
    int rc = st ? 0 : -LF_EINTERNAL;
    if (st && run->tenant_id) lf_stmt_bind(st, "s", run->tenant_id);
    while (st && (rc = lf_stmt_step(st)) == LF_DB_ROW)
        json_array_append_new(tenants,
                              json_pack("[s, s]", lf_stmt_text(st, 0), lf_stmt_text(st, 1)));
    if (st) lf_stmt_done(st);
    lf_db_release(c);
    return rc < 0 ? rc : 0;
}

/* One tenant: reads its numbers and writes its digest when it has a Slack URL. Sets *sent. */
static int digest_tenant(struct lf_job_run *run, const char *tenant, const char *name,
                         json_t **counts, int *sent, struct lf_err *err)
{
    char url[URL_BUFSZ];
    int64_t lo = run->now - WINDOW_MS, hi = run->now;
    *sent = 0;
    struct lf_conn *c = lf_db_acquire(run->app->db, LF_DB_READ, err);
    if (c == NULL) return -LF_ESTORE;
    int rc = lf_slack_url(c, &run->app->cfg, tenant, "default", url, sizeof url);
    if (rc == 1)
        rc = read_counts(c, tenant, lo, hi, counts);
    else if (rc == 0)
        rc = 1; /* no Slack for this tenant */
    lf_db_release(c);
    if (rc != 0) return rc < 0 ? lf_err_set(err, rc, "reading the digest of tenant %s", tenant) : 0;

    json_t *payload = digest_message(name, *counts, lo, hi);
    c = lf_db_acquire(run->app->db, LF_DB_WRITE, err);
    rc = c ? lf_outbox_put(c, tenant, "slack", NULL, NULL, "default", payload, run->now, NULL)
           : -LF_ESTORE;
    if (c) lf_db_release(c);
    json_decref(payload);
    if (rc < 0) return lf_err_set(err, rc, "writing the digest of tenant %s", tenant);
    *sent = 1;
    return 0;
}

static int run_digest(struct lf_job_run *run, struct lf_err *err)
{
    json_t *tenants = json_array(), *by_tenant = json_object();
    int rc = tenant_list(run, tenants, err);
    int64_t looked = 0, messages = 0;
    size_t i;
    json_t *t;
    json_array_foreach(tenants, i, t)
    {
        if (rc < 0 || *run->stop) break;
        const char *tenant = json_string_value(json_array_get(t, 0));
        json_t *counts = NULL;
        int sent = 0;
        rc = digest_tenant(run, tenant, json_string_value(json_array_get(t, 1)), &counts, &sent,
                           err);
        looked++;
        messages += sent;
        json_t *mine = json_pack("{s:i}", "messages", sent);
        if (counts) json_object_set_new(mine, "digest", counts);
        json_object_set_new(by_tenant, tenant, mine);
    }
    if (messages > 0) lf_dispatcher_notify();
    json_object_set_new(run->result, "tenants", json_integer(looked));
    json_object_set_new(run->result, "messages", json_integer(messages));
    json_object_set_new(run->result, "by_tenant", by_tenant);
    json_decref(tenants);
    return rc < 0 ? rc : 0;
}

static const char *digest_cron(const struct lf_config *cfg)
{
    return cfg->slack_digest_cron;
}

/* Slack is configured: a process-wide URL, or alerts switched on (tenants then bring their
 * own URLs in the "slack" setting). */
static int digest_enabled(const struct lf_config *cfg)
{
    return (cfg->slack_webhook_url && *cfg->slack_webhook_url) || cfg->enable_slack_alerts;
}

const struct lf_job lf_job_slack_digest = {
    "slack_digest",
    "posts each tenant's daily Slack digest: new and hot leads, deals created and won, open "
    "pipeline value, top sources (last 24 hours)",
    digest_cron,
    digest_enabled,
    run_digest,
};
