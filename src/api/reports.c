/* Reports: leads per score tier (with the bounds used) and per primary intent in each
 * confidence band (merged and erased leads not counted); a pipeline's funnel (deals entering
 * each stage, conversion to the next, median time in stage, won, lost and open value); and
 * routing effectiveness (decisions per pipeline and kind, time to route, outcomes, conflicts,
 * manual overrides) from routing_log.
 *
 * The funnel and routing reports take ?since (inclusive) and ?until (exclusive). Their counts
 * are SQL aggregates; their medians are computed here over at most ROWS_MAX rows (SQL has no
 * portable percentile), and "truncated" says when that cap cut the rows short. */
#include "api/api.h"
#include "engine/settings.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const tier_names[] = {"cold", "warm", "mql", "hot"};

static void score_tiers(struct lf_req *r)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) return;
    json_t *tiers = lf_settings_get(c, r->auth.tenant_id, "tiers");
    json_t *items = json_array();
    int64_t total = 0;
    int rc = 0;
    for (int i = 0; i < 4 && rc >= 0; i++) {
        int lo, hi;
        lf_tier_range(tier_names[i], tiers, &lo, &hi);
        int64_t n = 0;
        rc = lf_db_int(c, NULL, &n,
                       "SELECT count(*) FROM leads WHERE tenant_id = ? AND total_score >= ?"
                       " AND total_score < ? AND merged_into IS NULL AND erased_at IS NULL",
                       "sII", r->auth.tenant_id, (int64_t)lo, (int64_t)hi);
        total += n;
        json_array_append_new(
            items, json_pack("{s:s, s:o, s:o, s:I}", "tier", tier_names[i], "min_score",
                             lo == INT32_MIN ? json_null() : json_integer(lo), "max_score",
                             hi == INT32_MAX ? json_null() : json_integer(hi - 1), "leads",
                             (json_int_t)n));
    }
    json_decref(tiers);
    lf_db_release(c);
    if (rc < 0) {
        json_decref(items);
        lf_reply_error(r, rc, NULL);
        return;
    }
    lf_reply_json(r, 200, json_pack("{s:o, s:I}", "tiers", items, "total", (json_int_t)total));
}

/* Confidence bands: low < 40 <= medium < 70 <= high. */
static void intents(struct lf_req *r)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) return;
    struct lf_stmt *st = lf_db_prepare(
        c,
        "SELECT primary_intent, CASE WHEN intent_confidence >= 70 THEN 'high'"
        " WHEN intent_confidence >= 40 THEN 'medium' ELSE 'low' END, count(*) FROM leads"
        " WHERE tenant_id = ? AND merged_into IS NULL AND erased_at IS NULL"
        " GROUP BY 1, 2 ORDER BY 1, 2",
        NULL);
    int rc = st ? lf_stmt_bind(st, "s", r->auth.tenant_id) : -LF_EINTERNAL;
    json_t *by = json_object();
    int64_t none = 0, total = 0;
    while (rc >= 0 && (rc = lf_stmt_step(st)) == LF_DB_ROW) {
        int64_t n = lf_stmt_int(st, 2);
        total += n;
        const char *intent = lf_stmt_text(st, 0);
        if (intent == NULL) {
            none += n;
            continue;
        }
        json_t *o = json_object_get(by, intent);
        if (o == NULL) {
            o = json_pack("{s:s, s:i, s:{s:i, s:i, s:i}}", "intent", intent, "leads", 0, "bands",
                          "low", 0, "medium", 0, "high", 0);
            json_object_set_new(by, intent, o);
        }
        json_object_set_new(o, "leads",
                            json_integer(json_integer_value(json_object_get(o, "leads")) + n));
        json_object_set_new(json_object_get(o, "bands"), lf_stmt_text(st, 1), json_integer(n));
    }
    if (st) lf_stmt_done(st);
    lf_db_release(c);
    if (rc < 0) {
        json_decref(by);
        lf_reply_error(r, rc, NULL);
        return;
    }
    json_t *items = json_array();
    const char *key;
    json_t *v;
    json_object_foreach(by, key, v) json_array_append(items, v);
    json_decref(by);
    lf_reply_json(r, 200,
                  json_pack("{s:o, s:I, s:I, s:{s:[i,i], s:[i,i], s:[i,i]}}", "intents", items,
                            "no_intent", (json_int_t)none, "total", (json_int_t)total, "bands",
                            "low", 0, 39, "medium", 40, 69, "high", 70, 100));
}

/* ---- shared by the funnel and routing reports */

#define ROWS_MAX      500000 /* rows a report reads for its medians */
#define STAGES_MAX    100    /* a pipeline's stages (the pipelines API's cap) */
#define PIPELINES_MAX 500    /* a tenant's pipelines (the pipelines API's cap) */
#define DAY_MS        86400000LL

/* A report's window on some time column: lo <= t < hi. */
struct window {
    int64_t since, until; /* as asked; -1 when absent */
    int64_t lo, hi;       /* the bounds bound into the SQL */
};

/* Reads ?since and ?until. Returns 0, or -LF_EINVAL with each bad argument named in err. */
static int window_args(struct lf_req *r, struct window *w, struct lf_err *err)
{
    lf_api_time_arg(r, "since", &w->since, err);
    lf_api_time_arg(r, "until", &w->until, err);
    if (w->since >= 0 && w->until >= 0 && w->until < w->since)
        lf_err_field(err, "until", "must not be before since");
    w->lo = w->since >= 0 ? w->since : INT64_MIN;
    w->hi = w->until >= 0 ? w->until : INT64_MAX;
    return err->code;
}

/* Durations in ms for one median. Grown with realloc: a store with many rows makes a report
 * fail with 500, never abort the process. */
struct durations {
    int64_t *v;
    size_t n, cap;
};

static int durations_add(struct durations *d, int64_t ms)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 64;
        int64_t *v = realloc(d->v, cap * sizeof *v);
        if (v == NULL) return -LF_ENOMEM;
        d->v = v;
        d->cap = cap;
    }
    d->v[d->n++] = ms < 0 ? 0 : ms;
    return 0;
}

static int cmp_int64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The median (for an even count the mean of the middle two, rounded down), or -1 when d is
 * empty. Sorts d. */
static int64_t durations_median(struct durations *d)
{
    if (d->n == 0) return -1;
    qsort(d->v, d->n, sizeof *d->v, cmp_int64);
    int64_t a = d->v[(d->n - 1) / 2], b = d->v[d->n / 2];
    return a + (b - a) / 2;
}

static json_t *ms_json(int64_t ms)
{
    return ms < 0 ? json_null() : json_integer(ms);
}

/* ms in days with one decimal (half up), or null for -1. */
static json_t *days_json(int64_t ms)
{
    if (ms < 0) return json_null();
    return json_real((double)((ms + DAY_MS / 20) / (DAY_MS / 10)) / 10.0);
}

/* num / den rounded to 4 decimals, or null when den is 0. */
static json_t *share_json(int64_t num, int64_t den)
{
    if (den <= 0) return json_null();
    return json_real((double)((num * 10000 + den / 2) / den) / 10000.0);
}

/* The index stored under key in a map of json integers, or -1. */
static int index_of(json_t *map, const char *key)
{
    json_t *v = key ? json_object_get(map, key) : NULL;
    return v ? (int)json_integer_value(v) : -1;
}

/* ---- GET /reports/funnel */

struct funnel_stage {
    json_t *item;           /* id, slug, name, kind; the report's entry */
    int closing;            /* kind won or lost: no conversion */
    int64_t entered;        /* distinct deals that entered it in the window */
    int64_t converted;      /* of those, deals that went on to a later open stage or a won one */
    struct durations stays; /* completed stays that began in the window */
};

/* The tenant's pipeline named by ref (id or slug): its id and {id, slug, name} into *out.
 * Returns LF_DB_ROW, or a negative code with err (-LF_ENOTFOUND when there is none). */
static int funnel_pipeline(struct lf_conn *c, const char *tenant, const char *ref, char id[40],
                           json_t **out, struct lf_err *err)
{
    struct lf_stmt *st = lf_db_prepare(
        c, "SELECT id, slug, name FROM pipelines WHERE tenant_id = ? AND (id = ? OR slug = ?)",
        err);
    int rc = st ? lf_stmt_bind(st, "sss", tenant, ref, ref) : -LF_EINTERNAL;
    if (rc == 0) rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW) {
        snprintf(id, 40, "%s", lf_stmt_text(st, 0));
        *out = json_pack("{s:s, s:s, s:s}", "id", lf_stmt_text(st, 0), "slug", lf_stmt_text(st, 1),
                         "name", lf_stmt_text(st, 2));
    }
    if (st) lf_stmt_done(st);
    if (rc == LF_DB_DONE) rc = lf_err_set(err, -LF_ENOTFOUND, "no pipeline %s", ref);
    return rc;
}

/* The pipeline's stages in position order into s (at most STAGES_MAX; *n counts them, also
 * on failure) and an id → index map into idx. Returns 0 or a negative code. */
static int funnel_stages(struct lf_conn *c, const char *tenant, const char *pid,
                         struct funnel_stage *s, json_t *idx, int *n)
{
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT id, slug, name, kind FROM pipeline_stages"
                                       " WHERE tenant_id = ? AND pipeline_id = ?"
                                       " ORDER BY position, id LIMIT ?",
                                       NULL);
    int rc = st ? lf_stmt_bind(st, "ssi", tenant, pid, STAGES_MAX) : -LF_EINTERNAL;
    while (rc >= 0 && *n < STAGES_MAX && (rc = lf_stmt_step(st)) == LF_DB_ROW) {
        const char *kind = lf_stmt_text(st, 3);
        s[*n].item = json_pack("{s:s, s:s, s:s, s:s}", "id", lf_stmt_text(st, 0), "slug",
                               lf_stmt_text(st, 1), "name", lf_stmt_text(st, 2), "kind", kind);
        s[*n].closing = strcmp(kind, "won") == 0 || strcmp(kind, "lost") == 0;
        json_object_set_new(idx, lf_stmt_text(st, 0), json_integer(*n));
        (*n)++;
    }
    if (st) lf_stmt_done(st);
    return rc < 0 ? rc : 0;
}

/* Per stage: the distinct deals with a history row into it in the window, and of those the
 * ones that afterwards (from their first entry in the window on) entered an open stage of a
 * higher position or a won stage. A move into a lost stage is not a conversion. */
static int funnel_entries(struct lf_conn *c, const char *tenant, const char *pid,
                          const struct window *w, struct funnel_stage *s, json_t *idx)
{
    struct lf_stmt *st = lf_db_prepare(
        c,
        "WITH e AS (SELECT h.deal_id, h.to_stage_id AS stage_id, MIN(h.moved_at) AS first_at"
        " FROM deal_stage_history h JOIN pipeline_stages s ON s.tenant_id = h.tenant_id"
        " AND s.id = h.to_stage_id WHERE h.tenant_id = ? AND s.pipeline_id = ?"
        " AND h.moved_at >= ? AND h.moved_at < ? GROUP BY h.deal_id, h.to_stage_id)"
        " SELECT e.stage_id, count(*), COALESCE(SUM(CASE WHEN EXISTS (SELECT 1"
        " FROM deal_stage_history n JOIN pipeline_stages ns ON ns.tenant_id = n.tenant_id"
        " AND ns.id = n.to_stage_id WHERE n.tenant_id = es.tenant_id AND n.deal_id = e.deal_id"
        " AND n.moved_at >= e.first_at AND n.to_stage_id <> e.stage_id AND (ns.kind = 'won'"
        " OR (ns.kind = 'open' AND ns.position > es.position))) THEN 1 ELSE 0 END), 0)"
        " FROM e JOIN pipeline_stages es ON es.tenant_id = ? AND es.id = e.stage_id"
        " GROUP BY e.stage_id",
        NULL);
    int rc = st ? lf_stmt_bind(st, "ssIIs", tenant, pid, w->lo, w->hi, tenant) : -LF_EINTERNAL;
    while (rc >= 0 && (rc = lf_stmt_step(st)) == LF_DB_ROW) {
        int i = index_of(idx, lf_stmt_text(st, 0));
        if (i < 0) continue; /* a stage past STAGES_MAX */
        s[i].entered = lf_stmt_int(st, 1);
        s[i].converted = lf_stmt_int(st, 2);
    }
    if (st) lf_stmt_done(st);
    return rc;
}

/* The completed stays that began in the window, per stage: from a history row into the stage
 * to the deal's next history row (by moved_at, then id). A deal closed without a history row
 * (its pipeline has no stage of that kind) ends its last stay at closed_at. Stays still going
 * on are not counted. Reads at most ROWS_MAX rows, the earliest first. */
static int funnel_stays(struct lf_conn *c, const char *tenant, const char *pid,
                        const struct window *w, struct funnel_stage *s, json_t *idx, int *truncated)
{
    struct lf_stmt *st = lf_db_prepare(
        c,
        "SELECT h.to_stage_id, h.moved_at, (SELECT MIN(n.moved_at) FROM deal_stage_history n"
        " WHERE n.tenant_id = h.tenant_id AND n.deal_id = h.deal_id AND (n.moved_at > h.moved_at"
        " OR (n.moved_at = h.moved_at AND n.id > h.id))),"
        " CASE WHEN d.status <> 'open' AND s.kind = 'open' THEN d.closed_at END"
        " FROM deal_stage_history h JOIN pipeline_stages s ON s.tenant_id = h.tenant_id"
        " AND s.id = h.to_stage_id JOIN deals d ON d.tenant_id = h.tenant_id AND d.id = h.deal_id"
        " WHERE h.tenant_id = ? AND s.pipeline_id = ? AND h.moved_at >= ? AND h.moved_at < ?"
        " ORDER BY h.moved_at, h.id LIMIT ?",
        NULL);
    int rc = st ? lf_stmt_bind(st, "ssIII", tenant, pid, w->lo, w->hi, (int64_t)ROWS_MAX + 1)
                : -LF_EINTERNAL;
    int64_t rows = 0;
    while (rc >= 0 && (rc = lf_stmt_step(st)) == LF_DB_ROW) {
        if (++rows > ROWS_MAX) {
            *truncated = 1;
            break;
        }
        int i = index_of(idx, lf_stmt_text(st, 0));
        if (i < 0) continue;
        int64_t at = lf_stmt_int(st, 1), end;
        if (!lf_stmt_isnull(st, 2))
            end = lf_stmt_int(st, 2);
        else if (!lf_stmt_isnull(st, 3))
            end = lf_stmt_int(st, 3);
        else
            continue; /* still in the stage */
        rc = durations_add(&s[i].stays, end - at);
    }
    if (st) lf_stmt_done(st);
    return rc < 0 ? rc : 0;
}

/* Deals won and lost with closed_at in the window, and open now: {count, value_cents} each. */
static int funnel_totals(struct lf_conn *c, const char *tenant, const char *pid,
                         const struct window *w, json_t *out)
{
    struct lf_stmt *st = lf_db_prepare(
        c,
        "SELECT status, count(*), COALESCE(SUM(value_cents), 0) FROM deals"
        " WHERE tenant_id = ? AND pipeline_id = ? AND (status = 'open' OR (status IN ('won',"
        " 'lost') AND closed_at >= ? AND closed_at < ?)) GROUP BY status",
        NULL);
    int rc = st ? lf_stmt_bind(st, "ssII", tenant, pid, w->lo, w->hi) : -LF_EINTERNAL;
    while (rc >= 0 && (rc = lf_stmt_step(st)) == LF_DB_ROW) {
        json_t *o = json_object_get(out, lf_stmt_text(st, 0));
        if (o == NULL) continue;
        json_object_set_new(o, "count", json_integer(lf_stmt_int(st, 1)));
        json_object_set_new(o, "value_cents", json_integer(lf_stmt_int(st, 2)));
    }
    if (st) lf_stmt_done(st);
    return rc;
}

static void funnel(struct lf_req *r)
{
    struct lf_err err = {0};
    struct window w;
    const char *ref = lf_req_query(r, "pipeline");
    if (ref == NULL || *ref == '\0')
        lf_err_field(&err, "pipeline", "is required: a pipeline id or slug");
    window_args(r, &w, &err);
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        lf_err_clear(&err);
        return;
    }
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) return;
    const char *tenant = r->auth.tenant_id;
    struct funnel_stage *s = calloc(STAGES_MAX, sizeof *s);
    json_t *idx = json_object(), *pipeline = NULL;
    json_t *totals =
        json_pack("{s:{s:i, s:i}, s:{s:i, s:i}, s:{s:i, s:i}}", "won", "count", 0, "value_cents", 0,
                  "lost", "count", 0, "value_cents", 0, "open", "count", 0, "value_cents", 0);
    char pid[40];
    int n = 0, truncated = 0;
    int rc = s ? funnel_pipeline(c, tenant, ref, pid, &pipeline, &err) : -LF_ENOMEM;
    if (rc >= 0) rc = funnel_stages(c, tenant, pid, s, idx, &n);
    if (rc >= 0) rc = funnel_entries(c, tenant, pid, &w, s, idx);
    if (rc >= 0) rc = funnel_stays(c, tenant, pid, &w, s, idx, &truncated);
    if (rc >= 0) rc = funnel_totals(c, tenant, pid, &w, totals);
    lf_db_release(c);

    json_t *items = json_array();
    for (int i = 0; i < n; i++) {
        json_t *o = s[i].item;
        int64_t median = durations_median(&s[i].stays);
        json_object_set_new(o, "entered", json_integer(s[i].entered));
        json_object_set_new(o, "conversion_to_next",
                            s[i].closing ? json_null() : share_json(s[i].converted, s[i].entered));
        json_object_set_new(o, "median_time_in_stage_ms", ms_json(median));
        json_object_set_new(o, "median_time_in_stage_days", days_json(median));
        json_array_append_new(items, o);
        free(s[i].stays.v);
    }
    free(s);
    json_decref(idx);
    if (rc < 0) {
        json_decref(items);
        json_decref(pipeline);
        json_decref(totals);
        lf_reply_error(r, rc, &err);
        lf_err_clear(&err);
        return;
    }
    json_t *body = json_pack("{s:o, s:o, s:o, s:o}", "pipeline", pipeline, "since",
                             lf_json_time(w.since, w.since < 0), "until",
                             lf_json_time(w.until, w.until < 0), "stages", items);
    json_object_update(body, totals);
    json_decref(totals);
    json_object_set_new(body, "truncated", json_boolean(truncated));
    lf_reply_json(r, 200, body);
}

/* ---- GET /reports/routing */

struct route_pipeline {
    char id[40];
    char slug[64];        /* "" for a pipeline deleted since */
    int64_t kind[3];      /* rows of kind auto, discovery, manual in the window */
    int64_t won, lost;    /* their deals closed now (distinct) */
    struct durations ttr; /* created_at - first_event_at of the auto and discovery rows */
};

static const char *const route_kinds[] = {"auto", "discovery", "manual"};

struct route_report {
    struct route_pipeline *p;
    int n, cap;
    json_t *idx; /* pipeline id → index in p */
};

/* The entry of pipeline id, added (with slug, "" when unknown) when missing. Returns its
 * index or -LF_ENOMEM. */
static int route_entry(struct route_report *rr, const char *id, const char *slug)
{
    int i = index_of(rr->idx, id);
    if (i >= 0) return i;
    if (rr->n == rr->cap) {
        int cap = rr->cap ? 2 * rr->cap : 16;
        struct route_pipeline *p = realloc(rr->p, (size_t)cap * sizeof *p);
        if (p == NULL) return -LF_ENOMEM;
        rr->p = p;
        rr->cap = cap;
    }
    struct route_pipeline *e = &rr->p[rr->n];
    memset(e, 0, sizeof *e);
    snprintf(e->id, sizeof e->id, "%s", id);
    snprintf(e->slug, sizeof e->slug, "%s", slug ? slug : "");
    json_object_set_new(rr->idx, id, json_integer(rr->n));
    return rr->n++;
}

/* The tenant's pipelines in list order (position, name, id), each with an entry. */
static int routing_pipelines(struct lf_conn *c, const char *tenant, struct route_report *rr)
{
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT id, slug FROM pipelines WHERE tenant_id = ?"
                                       " ORDER BY position, name, id LIMIT ?",
                                       NULL);
    int rc = st ? lf_stmt_bind(st, "si", tenant, PIPELINES_MAX) : -LF_EINTERNAL;
    while (rc >= 0 && (rc = lf_stmt_step(st)) == LF_DB_ROW)
        rc = route_entry(rr, lf_stmt_text(st, 0), lf_stmt_text(st, 1));
    if (st) lf_stmt_done(st);
    return rc < 0 ? rc : 0;
}

/* The window's rows by pipeline, kind and previous status: per-pipeline kinds, conflicts
 * raised, and manual overrides by what the lead was before ({total, rerouted, from_review,
 * from_pool} in overrides). */
static int routing_counts(struct lf_conn *c, const char *tenant, const struct window *w,
                          struct route_report *rr, int64_t *raised, json_t *overrides)
{
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT pipeline_id, kind, previous, count(*)"
                                       " FROM routing_log WHERE tenant_id = ? AND created_at >= ?"
                                       " AND created_at < ? GROUP BY pipeline_id, kind, previous",
                                       NULL);
    int rc = st ? lf_stmt_bind(st, "sII", tenant, w->lo, w->hi) : -LF_EINTERNAL;
    while (rc >= 0 && (rc = lf_stmt_step(st)) == LF_DB_ROW) {
        const char *pid = lf_stmt_text(st, 0), *kind = lf_stmt_text(st, 1);
        const char *prev = lf_stmt_text(st, 2);
        int64_t n = lf_stmt_int(st, 3);
        if (strcmp(kind, "conflict") == 0) {
            *raised += n;
            continue;
        }
        int k;
        for (k = 0; k < 3; k++)
            if (strcmp(kind, route_kinds[k]) == 0) break;
        if (k == 3 || pid == NULL) continue; /* a kind this report does not know */
        int i = route_entry(rr, pid, NULL);
        if (i < 0) {
            rc = i;
            break;
        }
        rr->p[i].kind[k] += n;
        if (k != 2) continue;
        const char *key = prev == NULL                         ? NULL
                          : strcmp(prev, "routed") == 0        ? "rerouted"
                          : strcmp(prev, "manual_review") == 0 ? "from_review"
                          : strcmp(prev, "unrouted") == 0      ? "from_pool"
                                                               : NULL;
        json_object_set_new(
            overrides, "total",
            json_integer(json_integer_value(json_object_get(overrides, "total")) + n));
        if (key)
            json_object_set_new(
                overrides, key,
                json_integer(json_integer_value(json_object_get(overrides, key)) + n));
    }
    if (st) lf_stmt_done(st);
    return rc < 0 ? rc : 0;
}

/* Per pipeline, the distinct deals of the window's routed rows that are won or lost now. */
static int routing_outcomes(struct lf_conn *c, const char *tenant, const struct window *w,
                            struct route_report *rr)
{
    struct lf_stmt *st = lf_db_prepare(
        c,
        "SELECT l.pipeline_id, d.status, count(DISTINCT d.id) FROM routing_log l"
        " JOIN deals d ON d.tenant_id = l.tenant_id AND d.id = l.deal_id"
        " WHERE l.tenant_id = ? AND l.created_at >= ? AND l.created_at < ?"
        " AND l.kind IN ('auto', 'discovery', 'manual') AND d.status IN ('won', 'lost')"
        " GROUP BY l.pipeline_id, d.status",
        NULL);
    int rc = st ? lf_stmt_bind(st, "sII", tenant, w->lo, w->hi) : -LF_EINTERNAL;
    while (rc >= 0 && (rc = lf_stmt_step(st)) == LF_DB_ROW) {
        int i = index_of(rr->idx, lf_stmt_text(st, 0));
        if (i < 0) continue;
        if (strcmp(lf_stmt_text(st, 1), "won") == 0)
            rr->p[i].won = lf_stmt_int(st, 2);
        else
            rr->p[i].lost = lf_stmt_int(st, 2);
    }
    if (st) lf_stmt_done(st);
    return rc;
}

/* Time to route of the window's auto and discovery rows, at most ROWS_MAX, the earliest
 * first. A first event stamped after the decision counts as 0. */
static int routing_times(struct lf_conn *c, const char *tenant, const struct window *w,
                         struct route_report *rr, int *truncated)
{
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT pipeline_id, created_at - first_event_at"
                                       " FROM routing_log WHERE tenant_id = ? AND created_at >= ?"
                                       " AND created_at < ? AND kind IN ('auto', 'discovery')"
                                       " AND first_event_at IS NOT NULL"
                                       " ORDER BY created_at, id LIMIT ?",
                                       NULL);
    int rc =
        st ? lf_stmt_bind(st, "sIII", tenant, w->lo, w->hi, (int64_t)ROWS_MAX + 1) : -LF_EINTERNAL;
    int64_t rows = 0;
    while (rc >= 0 && (rc = lf_stmt_step(st)) == LF_DB_ROW) {
        if (++rows > ROWS_MAX) {
            *truncated = 1;
            break;
        }
        int i = index_of(rr->idx, lf_stmt_text(st, 0));
        if (i >= 0) rc = durations_add(&rr->p[i].ttr, lf_stmt_int(st, 1));
    }
    if (st) lf_stmt_done(st);
    return rc < 0 ? rc : 0;
}

/* How the window's conflicts ended. For each lead with a conflict row in the window, the
 * first manual row at or after its first such conflict (at any time up to now) resolved it;
 * resolved_by_pipeline counts them by that row's pipeline slug (its id for a pipeline deleted
 * since). "open" counts those leads still in manual review now. */
static int routing_conflicts(struct lf_conn *c, const char *tenant, const struct window *w,
                             json_t *conflicts)
{
    struct lf_stmt *st = lf_db_prepare(
        c,
        "WITH x AS (SELECT lead_id, MIN(created_at) AS first_at FROM routing_log WHERE tenant_id = "
        "?"
        " AND kind = 'conflict' AND created_at >= ? AND created_at < ? GROUP BY lead_id),"
        " r AS (SELECT x.lead_id, (SELECT m.pipeline_id FROM routing_log m WHERE m.tenant_id = ?"
        " AND m.lead_id = x.lead_id AND m.kind = 'manual' AND m.created_at >= x.first_at"
        " ORDER BY m.created_at, m.id LIMIT 1) AS pid FROM x)"
        " SELECT r.pid, p.slug, count(*) FROM r LEFT JOIN pipelines p ON p.tenant_id = ?"
        " AND p.id = r.pid WHERE r.pid IS NOT NULL GROUP BY r.pid, p.slug",
        NULL);
    int rc = st ? lf_stmt_bind(st, "sIIss", tenant, w->lo, w->hi, tenant, tenant) : -LF_EINTERNAL;
    int64_t resolved = 0;
    json_t *by = json_object_get(conflicts, "resolved_by_pipeline");
    while (rc >= 0 && (rc = lf_stmt_step(st)) == LF_DB_ROW) {
        const char *slug = lf_stmt_text(st, 1);
        int64_t n = lf_stmt_int(st, 2);
        resolved += n;
        json_object_set_new(by, slug ? slug : lf_stmt_text(st, 0), json_integer(n));
    }
    if (st) lf_stmt_done(st);
    int64_t open = 0;
    if (rc >= 0)
        rc = lf_db_int(c, NULL, &open,
                       "SELECT count(*) FROM leads WHERE tenant_id = ?"
                       " AND routing_status = 'manual_review' AND merged_into IS NULL"
                       " AND id IN (SELECT lead_id FROM routing_log WHERE tenant_id = ?"
                       " AND kind = 'conflict' AND created_at >= ? AND created_at < ?)",
                       "ssII", tenant, tenant, w->lo, w->hi);
    json_object_set_new(conflicts, "resolved_manually", json_integer(resolved));
    json_object_set_new(conflicts, "open", json_integer(open));
    return rc < 0 ? rc : 0;
}

static void routing(struct lf_req *r)
{
    struct lf_err err = {0};
    struct window w;
    if (window_args(r, &w, &err) < 0) {
        lf_reply_error(r, err.code, &err);
        lf_err_clear(&err);
        return;
    }
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) return;
    const char *tenant = r->auth.tenant_id;
    struct route_report rr = {.idx = json_object()};
    int64_t raised = 0;
    int truncated = 0;
    json_t *overrides = json_pack("{s:i, s:i, s:i, s:i}", "total", 0, "rerouted", 0, "from_review",
                                  0, "from_pool", 0);
    json_t *conflicts = json_pack("{s:i, s:i, s:{}, s:i}", "raised", 0, "resolved_manually", 0,
                                  "resolved_by_pipeline", "open", 0);
    int rc = routing_pipelines(c, tenant, &rr);
    if (rc >= 0) rc = routing_counts(c, tenant, &w, &rr, &raised, overrides);
    if (rc >= 0) rc = routing_outcomes(c, tenant, &w, &rr);
    if (rc >= 0) rc = routing_times(c, tenant, &w, &rr, &truncated);
    if (rc >= 0) rc = routing_conflicts(c, tenant, &w, conflicts);
    lf_db_release(c);

    json_t *items = json_array();
    int64_t total = 0;
    for (int i = 0; i < rr.n; i++) {
        struct route_pipeline *p = &rr.p[i];
        int64_t routed = p->kind[0] + p->kind[1] + p->kind[2];
        total += routed;
        json_array_append_new(
            items, json_pack("{s:s, s:o, s:I, s:I, s:I, s:I, s:o, s:I, s:I, s:o}", "pipeline_id",
                             p->id, "pipeline", lf_json_text(*p->slug ? p->slug : NULL), "routed",
                             (json_int_t)routed, "auto", (json_int_t)p->kind[0], "discovery",
                             (json_int_t)p->kind[1], "manual", (json_int_t)p->kind[2],
                             "median_time_to_route_ms", ms_json(durations_median(&p->ttr)), "won",
                             (json_int_t)p->won, "lost", (json_int_t)p->lost, "win_rate",
                             share_json(p->won, p->won + p->lost)));
        free(p->ttr.v);
    }
    free(rr.p);
    json_decref(rr.idx);
    if (rc < 0) {
        json_decref(items);
        json_decref(overrides);
        json_decref(conflicts);
        lf_reply_error(r, rc, NULL);
        return;
    }
    json_object_set_new(conflicts, "raised", json_integer(raised));
    lf_reply_json(r, 200,
                  json_pack("{s:o, s:o, s:o, s:o, s:o, s:I, s:b}", "since",
                            lf_json_time(w.since, w.since < 0), "until",
                            lf_json_time(w.until, w.until < 0), "pipelines", items, "conflicts",
                            conflicts, "manual_overrides", overrides, "total_routed",
                            (json_int_t)total, "truncated", truncated));
}

const struct lf_route lf_reports_routes[] = {
    {"GET", "/api/v1/reports/score-tiers", score_tiers, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"GET", "/api/v1/reports/intents", intents, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"GET", "/api/v1/reports/funnel", funnel, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"GET", "/api/v1/reports/routing", routing, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {NULL, NULL, NULL, 0, 0, 0, 0, 0},
};
