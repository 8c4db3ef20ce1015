/* The events resource: ingestion (one and batch), inspection, lists, counts and replay. */
#include "api/api.h"
#include "engine/emit.h"
#include "engine/ingest.h"
#include "engine/replay.h"
#include "engine/worker.h"
#include "http/auth.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH_MAX       1000
#define KEY_MAX         255
#define NAME_MAX_LEN    100
#define TEXT_MAX        512
#define LEAD_MAX        16384
#define METADATA_MAX    65536
#define FUTURE_SLACK_MS (24LL * 3600 * 1000)
#define REPLAY_MAX      10000

/* A dotted or underscored name: letters, digits, '_', '.', '-', ':'; starting with a letter
 * or digit. */
static int is_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-' && c != ':'))) return 0;
    }
    return 1;
}

/* Field name for errors: "event_type" or "events[3].event_type". */
static const char *fname(char *buf, size_t size, const char *prefix, const char *field)
{
    snprintf(buf, size, "%s%s", prefix, field);
    return buf;
}

/* Takes an optional string member (under name or its alias). Returns 0 with *out NULL when
 * absent, or -LF_EINVAL recorded in err. */
static int opt_string(json_t *obj, const char *name, const char *alias, const char *prefix,
                      size_t max, const char **out, struct lf_err *err)
{
    char f[96];
    json_t *v = json_object_get(obj, name);
    if (v == NULL && alias) v = json_object_get(obj, alias);
    *out = NULL;
    if (v == NULL || json_is_null(v)) return 0;
    if (!json_is_string(v))
        return lf_err_field(err, fname(f, sizeof f, prefix, name), "must be a string");
    if (json_string_length(v) > max)
        return lf_err_field(err, fname(f, sizeof f, prefix, name), "is longer than %zu characters",
                            max);
    *out = json_string_value(v);
    return 0;
}

/* Serialises an optional object member (or alias) with a size cap. */
static int opt_object(json_t *obj, const char *name, const char *alias, const char *prefix,
                      size_t max, char **out, struct lf_err *err)
{
    char f[96];
    json_t *v = json_object_get(obj, name);
    if (v == NULL && alias) v = json_object_get(obj, alias);
    *out = NULL;
    if (v == NULL || json_is_null(v)) return 0;
    if (!json_is_object(v))
        return lf_err_field(err, fname(f, sizeof f, prefix, name), "must be an object");
    char *text = json_dumps(v, JSON_COMPACT);
    if (text && strlen(text) > max) {
        free(text);
        return lf_err_field(err, fname(f, sizeof f, prefix, name), "is larger than %zu bytes", max);
    }
    *out = text;
    return 0;
}

/* Checks every value of the lead object: strings (or numbers) of sane length. */
static void check_lead(json_t *lead, const char *prefix, struct lf_err *err)
{
    const char *key;
    json_t *v;
    char f[160];
    json_object_foreach(lead, key, v)
    {
        snprintf(f, sizeof f, "%slead.%.64s", prefix, key);
        if (json_is_null(v) || json_is_number(v)) continue;
        if (!json_is_string(v))
            lf_err_field(err, f, "must be a string");
        else if (json_string_length(v) > TEXT_MAX)
            lf_err_field(err, f, "is longer than %d characters", TEXT_MAX);
    }
}

/* Validates one event object and fills it. Every problem is recorded in err (all of them,
 * not only the first). Returns 0 or -LF_EINVAL. */
static int parse_event(struct lf_req *r, json_t *obj, const char *prefix, int64_t now,
                       struct lf_ingest_item *it, struct lf_err *err)
{
    char f[96];
    int before = err->fields ? (int)json_array_size(err->fields) : 0;
    const char *type = NULL, *source = NULL, *occurred = NULL, *key = NULL;
    const char *utm[3] = {NULL, NULL, NULL};
    static const char *const utm_names[3] = {"source", "medium", "campaign"};

    json_t *tv = json_object_get(obj, "event_type");
    if (tv == NULL) tv = json_object_get(obj, "eventType");
    if (tv == NULL || json_is_null(tv))
        lf_err_field(err, fname(f, sizeof f, prefix, "event_type"), "is required");
    else if (!json_is_string(tv) || !is_name(json_string_value(tv)))
        lf_err_field(err, fname(f, sizeof f, prefix, "event_type"),
                     "must be a name of letters, digits, '_', '.', '-' (at most %d)", NAME_MAX_LEN);
    else
        type = json_string_value(tv);

    if (opt_string(obj, "source", NULL, prefix, 64, &source, err) == 0 && source) {
        if (!is_name(source))
            lf_err_field(err, fname(f, sizeof f, prefix, "source"),
                         "must be a name of letters, digits, '_', '.', '-'");
        else if (r->auth.source_slug[0] && strcmp(source, r->auth.source_slug) != 0)
            lf_err_field(err, fname(f, sizeof f, prefix, "source"),
                         "does not match the signing source '%s'", r->auth.source_slug);
    }
    int64_t occurred_at = now;
    if (opt_string(obj, "occurred_at", "occurredAt", prefix, 64, &occurred, err) == 0 && occurred) {
        if (lf_time_parse(occurred, &occurred_at) < 0)
            lf_err_field(err, fname(f, sizeof f, prefix, "occurred_at"),
                         "must be an RFC 3339 date-time, e.g. 2026-11-20T10:00:00Z");
        else if (occurred_at > now + FUTURE_SLACK_MS)
            lf_err_field(err, fname(f, sizeof f, prefix, "occurred_at"),
                         "is more than a day in the future");
    }
    if (opt_string(obj, "idempotency_key", NULL, prefix, KEY_MAX, &key, err) == 0 && key &&
        (*key == '\0' || strncmp(key, LF_DOMAIN_KEY_PREFIX, strlen(LF_DOMAIN_KEY_PREFIX)) == 0))
        lf_err_field(err, fname(f, sizeof f, prefix, "idempotency_key"),
                     "must not be empty or start with '" LF_DOMAIN_KEY_PREFIX "'");
    char *lead = NULL, *metadata = NULL;
    if (opt_object(obj, "lead", NULL, prefix, LEAD_MAX, &lead, err) == 0 && lead)
        check_lead(json_object_get(obj, "lead"), prefix, err);
    opt_object(obj, "metadata", "payload", prefix, METADATA_MAX, &metadata, err);
    json_t *u = json_object_get(obj, "utm");
    if (u && !json_is_null(u) && !json_is_object(u)) {
        lf_err_field(err, fname(f, sizeof f, prefix, "utm"), "must be an object");
    } else if (u) {
        char p2[80];
        snprintf(p2, sizeof p2, "%sutm.", prefix);
        for (int i = 0; i < 3; i++) opt_string(u, utm_names[i], NULL, p2, 256, &utm[i], err);
    }

    if (err->fields && (int)json_array_size(err->fields) > before) {
        free(lead);
        free(metadata);
        return -LF_EINVAL;
    }
    lf_uuid7(it->id);
    it->event_type = lf_xstrdup(type);
    /* The source is the signer, else what the body says, else the token's subject when it is
     * a valid name, else "api". */
    it->source = lf_xstrdup(source                   ? source
                            : r->auth.source_slug[0] ? r->auth.source_slug
                            : is_name(r->auth.sub)   ? r->auth.sub
                                                     : "api");
    it->idempotency_key = key ? lf_xstrdup(key) : NULL;
    it->identity = lead;
    it->metadata = metadata;
    it->utm_source = utm[0] ? lf_xstrdup(utm[0]) : NULL;
    it->utm_medium = utm[1] ? lf_xstrdup(utm[1]) : NULL;
    it->utm_campaign = utm[2] ? lf_xstrdup(utm[2]) : NULL;
    it->occurred_at = occurred_at;
    it->received_at = now;
    return 0;
}

/* The state of an ingest request while it waits for the commit. */
struct pending_ingest {
    struct lf_ingest_job job;
    struct lf_ingest_item *items;
    int n;
    int batch; /* answered as a batch */
    int64_t t0_us;
};

static void pending_free(void *p)
{
    struct pending_ingest *pi = p;
    for (int i = 0; i < pi->n; i++) lf_ingest_item_clear(&pi->items[i]);
    free(pi->items);
    free(pi);
}

static void on_committed(struct lf_ingest_job *job)
{
    lf_req_resume(job->arg);
}

static json_t *timing(struct pending_ingest *pi, int64_t received_at)
{
    char ts[LF_TIME_BUFSZ];
    return json_pack("{s:s, s:f}", "received_at", lf_time_format(received_at, ts, sizeof ts),
                     "processing_time_ms", (double)(lf_mono_us() - pi->t0_us) / 1000.0);
}

static void answer_single(struct lf_req *r)
{
    struct pending_ingest *pi = r->pending;
    struct lf_ingest_item *it = &pi->items[0];
    struct lf_err err = {0};
    if (it->outcome < 0) {
        lf_err_set(&err, it->outcome, "the event could not be stored; nothing was kept");
        err.retry_after_s = 1;
        lf_reply_error(r, it->outcome, &err);
    } else if (it->outcome == LF_INGEST_DUPLICATE) {
        lf_err_set(&err, -LF_ECONFLICT, "an event with idempotency key '%s' was already accepted",
                   it->idempotency_key);
        err.ext = json_pack("{s:s, s:s}", "event_id", it->existing_id, "idempotency_key",
                            it->idempotency_key);
        lf_reply_error(r, -LF_ECONFLICT, &err);
    } else {
        json_t *body = timing(pi, it->received_at);
        json_object_set_new(body, "event_id", json_string(it->id));
        json_object_set_new(body, "status", json_string("accepted"));
        json_object_set_new(body, "idempotency_key", json_string(it->idempotency_key));
        lf_reply_json(r, 202, body);
    }
    lf_err_clear(&err);
}

static void answer_batch(struct lf_req *r)
{
    struct pending_ingest *pi = r->pending;
    struct lf_err err = {0};
    if (pi->n > 0 && pi->items[0].outcome < 0) { /* the whole batch shares one transaction */
        lf_err_set(&err, pi->items[0].outcome, "the batch could not be stored; nothing was kept");
        err.retry_after_s = 1;
        lf_reply_error(r, pi->items[0].outcome, &err);
        lf_err_clear(&err);
        return;
    }
    json_t *results = json_array();
    int accepted = 0, dups = 0;
    for (int i = 0; i < pi->n; i++) {
        struct lf_ingest_item *it = &pi->items[i];
        int dup = it->outcome == LF_INGEST_DUPLICATE;
        dup ? dups++ : accepted++;
        json_array_append_new(results, json_pack("{s:i, s:s, s:s, s:s}", "index", i, "event_id",
                                                 dup ? it->existing_id : it->id, "status",
                                                 dup ? "duplicate" : "accepted", "idempotency_key",
                                                 it->idempotency_key));
    }
    json_t *body = timing(pi, pi->n ? pi->items[0].received_at : lf_now_ms());
    json_object_set_new(body, "accepted", json_integer(accepted));
    json_object_set_new(body, "duplicates", json_integer(dups));
    json_object_set_new(body, "results", results);
    lf_reply_json(r, 202, body);
}

/* Fills idempotency keys, checks the rate, and hands the events to the writer. */
static void submit(struct lf_req *r, struct pending_ingest *pi, const char *header_key)
{
    struct lf_err err = {0};
    for (int i = 0; i < pi->n; i++) {
        struct lf_ingest_item *it = &pi->items[i];
        if (it->idempotency_key && r->auth.webhook_id[0] && !pi->batch) {
            free(it->idempotency_key); /* Standard Webhooks: webhook-id is the key */
            it->idempotency_key = NULL;
        }
        if (it->idempotency_key) continue;
        char key[KEY_MAX + 16];
        if (header_key && pi->batch)
            snprintf(key, sizeof key, "%s:%d", header_key, i);
        else if (header_key)
            snprintf(key, sizeof key, "%s", header_key);
        else
            snprintf(key, sizeof key, "%s", it->id); /* the server makes one */
        it->idempotency_key = lf_xstrdup(key);
    }
    int rc = lf_auth_rate(r, pi->n, &err);
    if (rc == 0) {
        memcpy(pi->job.tenant_id, r->auth.tenant_id, sizeof pi->job.tenant_id);
        pi->job.items = pi->items;
        pi->job.n = pi->n;
        pi->job.done = on_committed;
        pi->job.arg = r;
        r->pending = pi;
        r->pending_free = pending_free;
        /* Suspend first: the writer may finish before this thread returns. */
        lf_req_suspend(r, pi->batch ? answer_batch : answer_single);
        rc = lf_ingest_submit(r->app->ingest, &pi->job, &err);
        if (rc < 0) {
            r->suspended = 0;
            lf_req_resume(r);
            r->on_resume = NULL;
        }
    }
    if (rc < 0) {
        lf_metrics_inc(LF_M_EVENTS_REJECTED, (uint64_t)pi->n);
        lf_reply_error(r, rc, &err);
    }
    lf_err_clear(&err);
}

static const char *header_key(struct lf_req *r, struct lf_err *err)
{
    const char *k =
        r->auth.webhook_id[0] ? r->auth.webhook_id : lf_req_header(r, "X-Idempotency-Key");
    if (k && (strlen(k) == 0 || strlen(k) > KEY_MAX ||
              strncmp(k, LF_DOMAIN_KEY_PREFIX, strlen(LF_DOMAIN_KEY_PREFIX)) == 0)) {
        lf_err_field(err, "x-idempotency-key",
                     "must be 1 to %d characters, not starting with '" LF_DOMAIN_KEY_PREFIX "'",
                     KEY_MAX);
        return NULL;
    }
    return k;
}

static void ingest_one(struct lf_req *r)
{
    struct lf_err err = {0};
    json_t *doc = lf_req_json(r, &err);
    const char *hkey = header_key(r, &err);
    struct pending_ingest *pi = lf_xcalloc(1, sizeof(*pi));
    pi->t0_us = r->start_us;
    pi->items = lf_xcalloc(1, sizeof(*pi->items));
    if (doc && !err.code && parse_event(r, doc, "", lf_now_ms(), &pi->items[0], &err) == 0) {
        pi->n = 1;
        submit(r, pi, hkey);
        if (r->pending != pi) pending_free(pi);
    } else {
        lf_metrics_inc(LF_M_EVENTS_REJECTED, 1);
        lf_reply_error(r, err.code ? err.code : -LF_EINVAL, &err);
        pending_free(pi);
    }
    json_decref(doc);
    lf_err_clear(&err);
}

static void ingest_batch(struct lf_req *r)
{
    struct lf_err err = {0};
    json_t *doc = lf_req_json(r, &err);
    const char *hkey = header_key(r, &err);
    json_t *events = doc ? json_object_get(doc, "events") : NULL;
    if (doc && !err.code) {
        if (!json_is_array(events))
            lf_err_field(&err, "events", "must be an array of events");
        else if (json_array_size(events) == 0)
            lf_err_field(&err, "events", "must hold at least one event");
        else if (json_array_size(events) > BATCH_MAX)
            lf_err_field(&err, "events", "holds %zu events; at most %d are taken at once",
                         json_array_size(events), BATCH_MAX);
    }
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        json_decref(doc);
        lf_err_clear(&err);
        return;
    }
    size_t n = json_array_size(events);
    struct pending_ingest *pi = lf_xcalloc(1, sizeof(*pi));
    pi->t0_us = r->start_us;
    pi->batch = 1;
    pi->items = lf_xcalloc(n, sizeof(*pi->items));
    int64_t now = lf_now_ms();
    for (size_t i = 0; i < n; i++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "events[%zu].", i);
        json_t *ev = json_array_get(events, i);
        if (!json_is_object(ev)) {
            char f[40];
            snprintf(f, sizeof f, "events[%zu]", i);
            lf_err_field(&err, f, "must be an object");
        } else if (parse_event(r, ev, prefix, now, &pi->items[pi->n], &err) == 0) {
            pi->n++;
        }
    }
    if (err.code) { /* one bad event refuses the batch: nothing is stored */
        lf_err_set(&err, -LF_EINVAL, "%zu of %zu events are invalid; nothing was stored",
                   n - (size_t)pi->n, n);
        lf_metrics_inc(LF_M_EVENTS_REJECTED, n);
        lf_reply_error(r, -LF_EINVAL, &err);
        pending_free(pi);
    } else {
        submit(r, pi, hkey);
        if (r->pending != pi) pending_free(pi);
    }
    json_decref(doc);
    lf_err_clear(&err);
}

#define EVENT_COLS                                                                                 \
    "id, source, event_type, idempotency_key, origin, lead_id, identity, metadata, utm_source,"    \
    " utm_medium, utm_campaign, occurred_at, received_at, status, attempts, next_attempt_at,"      \
    " error_message, processed_at, result"

static json_t *event_json(struct lf_stmt *st)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(lf_stmt_text(st, 0)));
    json_object_set_new(o, "source", json_string(lf_stmt_text(st, 1)));
    json_object_set_new(o, "event_type", json_string(lf_stmt_text(st, 2)));
    json_object_set_new(o, "idempotency_key", json_string(lf_stmt_text(st, 3)));
    json_object_set_new(o, "origin", json_string(lf_stmt_text(st, 4)));
    json_object_set_new(o, "lead_id", lf_json_text(lf_stmt_text(st, 5)));
    json_object_set_new(o, "lead", lf_json_parse(lf_stmt_text(st, 6)));
    json_object_set_new(o, "metadata", lf_json_parse(lf_stmt_text(st, 7)));
    json_object_set_new(o, "utm",
                        json_pack("{s:o, s:o, s:o}", "source", lf_json_text(lf_stmt_text(st, 8)),
                                  "medium", lf_json_text(lf_stmt_text(st, 9)), "campaign",
                                  lf_json_text(lf_stmt_text(st, 10))));
    json_object_set_new(o, "occurred_at", lf_json_time(lf_stmt_int(st, 11), 0));
    json_object_set_new(o, "received_at", lf_json_time(lf_stmt_int(st, 12), 0));
    json_object_set_new(o, "status", json_string(lf_stmt_text(st, 13)));
    json_object_set_new(o, "attempts", json_integer(lf_stmt_int(st, 14)));
    json_object_set_new(o, "next_attempt_at",
                        lf_json_time(lf_stmt_int(st, 15), lf_stmt_isnull(st, 15)));
    json_object_set_new(o, "error_message", lf_json_text(lf_stmt_text(st, 16)));
    json_object_set_new(o, "processed_at",
                        lf_json_time(lf_stmt_int(st, 17), lf_stmt_isnull(st, 17)));
    json_object_set_new(o, "result", lf_json_parse(lf_stmt_text(st, 18)));
    return o;
}

#define EVENT_DELIVERIES_MAX 100 /* deliveries an event's answer lists at most */

/* The deliveries written for the tenant's event, oldest first (at most EVENT_DELIVERIES_MAX),
 * as summaries (GET /deliveries/{id} has the rest); NULL with *rc negative on a store error. */
static json_t *event_deliveries(struct lf_conn *c, const char *tenant_id, const char *event_id,
                                int *rc)
{
    struct lf_stmt *st = lf_db_prepare(
        c,
        "SELECT id, kind, subscription_id, target, status, attempts, last_status, last_error,"
        " next_attempt_at, delivered_at FROM deliveries WHERE tenant_id = ? AND event_id = ?"
        " ORDER BY created_at, id LIMIT ?",
        NULL);
    if (st == NULL) {
        *rc = -LF_EINTERNAL;
        return NULL;
    }
    json_t *list = json_array();
    *rc = lf_stmt_bind(st, "ssi", tenant_id, event_id, EVENT_DELIVERIES_MAX);
    while (*rc >= 0 && (*rc = lf_stmt_step(st)) == LF_DB_ROW)
        json_array_append_new(
            list,
            json_pack("{s:o, s:o, s:o, s:o, s:o, s:I, s:o, s:o, s:o, s:o}", "id",
                      lf_json_text(lf_stmt_text(st, 0)), "kind", lf_json_text(lf_stmt_text(st, 1)),
                      "subscription_id", lf_json_text(lf_stmt_text(st, 2)), "target",
                      lf_json_text(lf_stmt_text(st, 3)), "status",
                      lf_json_text(lf_stmt_text(st, 4)), "attempts", (json_int_t)lf_stmt_int(st, 5),
                      "last_status",
                      lf_stmt_isnull(st, 6) ? json_null() : json_integer(lf_stmt_int(st, 6)),
                      "last_error", lf_json_text(lf_stmt_text(st, 7)), "next_attempt_at",
                      lf_json_time(lf_stmt_int(st, 8), lf_stmt_isnull(st, 8)), "delivered_at",
                      lf_json_time(lf_stmt_int(st, 9), lf_stmt_isnull(st, 9))));
    lf_stmt_done(st);
    if (*rc < 0) {
        json_decref(list);
        return NULL;
    }
    return list;
}

/* GET /events/{id}: the event with its deliveries. */
static void get_event(struct lf_req *r)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) return;
    struct lf_err err = {0};
    struct lf_stmt *st =
        lf_db_prepare(c, "SELECT " EVENT_COLS " FROM events WHERE tenant_id = ? AND id = ?", &err);
    int rc = st ? lf_stmt_bind(st, "ss", r->auth.tenant_id, r->params[0]) : -LF_EINTERNAL;
    if (rc == 0) rc = lf_stmt_step(st);
    json_t *ev = rc == LF_DB_ROW ? event_json(st) : NULL;
    lf_stmt_done(st);
    json_t *deliveries = ev ? event_deliveries(c, r->auth.tenant_id, r->params[0], &rc) : NULL;
    if (deliveries) {
        json_object_set_new(ev, "deliveries", deliveries);
        lf_reply_json(r, 200, ev);
    } else {
        json_decref(ev);
        if (rc == LF_DB_DONE) lf_err_set(&err, -LF_ENOTFOUND, "no event %s", r->params[0]);
        lf_reply_error(r, rc == LF_DB_DONE ? -LF_ENOTFOUND : rc, &err);
    }
    lf_db_release(c);
    lf_err_clear(&err);
}

/* Reads the filter from the query string, or from a JSON body when body is given. */
static void parse_filter(struct lf_req *r, json_t *body, struct lf_event_filter *f,
                         struct lf_err *err)
{
    static const char *const names[] = {"status", "event_type", "source", "lead_id"};
    const char **slots[] = {&f->status, &f->event_type, &f->source, &f->lead_id};
    for (int i = 0; i < 4; i++) {
        const char *v = NULL;
        if (body) {
            json_t *bv = json_object_get(body, names[i]);
            if (bv && !json_is_string(bv)) lf_err_field(err, names[i], "must be a string");
            v = json_string_value(bv);
        } else {
            v = lf_req_query(r, names[i]);
        }
        if (i == 0 && v && !lf_event_status_valid(v))
            lf_err_field(err, "status", "must be pending, processing, processed or failed");
        *slots[i] = v;
    }
    if (body) {
        static const char *const tn[] = {"since", "until"};
        int64_t *tv[] = {&f->since, &f->until};
        for (int i = 0; i < 2; i++) {
            json_t *v = json_object_get(body, tn[i]);
            if (v && (!json_is_string(v) || lf_time_parse(json_string_value(v), tv[i]) < 0))
                lf_err_field(err, tn[i], "must be an RFC 3339 date-time");
        }
    } else {
        lf_api_time_arg(r, "since", &f->since, err);
        lf_api_time_arg(r, "until", &f->until, err);
    }
}

static json_t *event_row(struct lf_stmt *st, void *arg, char *cursor)
{
    (void)arg;
    snprintf(cursor, LF_CURSOR_MAX, "%s", lf_stmt_text(st, 0));
    return event_json(st);
}

static void list_events(struct lf_req *r)
{
    struct lf_err err = {0};
    struct lf_query q = {0};
    int limit;
    const char *cursor;
    lf_query_text(&q, "SELECT " EVENT_COLS " FROM events WHERE tenant_id = ?", r->auth.tenant_id);
    struct lf_event_filter f = LF_EVENT_FILTER_NONE;
    lf_req_page(r, &limit, &cursor, &err);
    parse_filter(r, NULL, &f, &err);
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        goto out;
    }
    lf_event_filter_sql(&q, &f);
    if (cursor) lf_query_text(&q, " AND id < ?", cursor);
    lf_query_int(&q, " ORDER BY id DESC LIMIT ?", limit + 1);
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) goto out;
    lf_api_reply_rows(r, lf_query_prepare(&q, c, &err), limit, event_row, NULL, NULL);
    lf_db_release(c);
out:
    lf_query_free(&q);
    lf_err_clear(&err);
}

static void pending_counts(struct lf_req *r)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) return;
    struct lf_err err = {0};
    struct lf_stmt *st = lf_db_prepare(
        c,
        "SELECT status, event_type, count(*) FROM events WHERE tenant_id = ?"
        " AND status IN ('pending', 'processing', 'failed') GROUP BY status, event_type"
        " ORDER BY status, event_type",
        &err);
    json_t *by_status = json_pack("{s:i, s:i, s:i}", "pending", 0, "processing", 0, "failed", 0);
    json_t *by_type = json_array();
    int rc = st ? lf_stmt_bind(st, "s", r->auth.tenant_id) : -LF_EINTERNAL;
    json_int_t waiting = 0;
    while (rc >= 0 && (rc = lf_stmt_step(st)) == LF_DB_ROW) {
        const char *status = lf_stmt_text(st, 0);
        json_int_t n = lf_stmt_int(st, 2);
        json_t *cur = json_object_get(by_status, status);
        json_object_set_new(by_status, status, json_integer(json_integer_value(cur) + n));
        if (strcmp(status, "failed") != 0) waiting += n;
        json_array_append_new(by_type, json_pack("{s:s, s:s, s:I}", "status", status, "event_type",
                                                 lf_stmt_text(st, 1), "count", n));
    }
    lf_stmt_done(st);
    int64_t retrying = 0;
    if (rc >= 0)
        rc = lf_db_int(c, &err, &retrying,
                       "SELECT count(*) FROM events WHERE tenant_id = ? AND status = 'failed'"
                       " AND next_attempt_at IS NOT NULL",
                       "s", r->auth.tenant_id);
    lf_db_release(c);
    if (rc < 0) {
        json_decref(by_status);
        json_decref(by_type);
        lf_reply_error(r, rc, &err);
    } else {
        lf_reply_json(r, 200,
                      json_pack("{s:I, s:I, s:o, s:o, s:i}", "pending", waiting, "failed_retrying",
                                (json_int_t)retrying, "by_status", by_status, "by_type", by_type,
                                "ingest_queue", lf_ingest_depth(r->app->ingest)));
    }
    lf_err_clear(&err);
}

static void replay_one(struct lf_req *r)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) return;
    struct lf_err err = {0};
    int rc = lf_event_replay(c, r->auth.tenant_id, r->params[0], lf_now_ms());
    lf_db_release(c);
    if (rc == 0) {
        lf_err_set(&err, -LF_ENOTFOUND, "no event %s", r->params[0]);
        lf_reply_error(r, -LF_ENOTFOUND, &err);
    } else if (rc < 0) {
        lf_reply_error(r, rc, &err);
    } else {
        if (r->app->workers) lf_workers_notify(r->app->workers);
        lf_log_info("event replayed", "{s:s, s:s}", "event_id", r->params[0], "by", r->auth.sub);
        lf_reply_json(r, 202,
                      json_pack("{s:s, s:s}", "event_id", r->params[0], "status", "pending"));
    }
    lf_err_clear(&err);
}

static void replay_filter(struct lf_req *r)
{
    struct lf_err err = {0};
    struct lf_event_filter f = LF_EVENT_FILTER_NONE;
    json_t *body = lf_req_json(r, &err);
    json_int_t limit = 1000;
    if (body) {
        json_t *l = json_object_get(body, "limit");
        if (l && (!json_is_integer(l) || json_integer_value(l) < 1 ||
                  json_integer_value(l) > REPLAY_MAX))
            lf_err_field(&err, "limit", "must be a whole number from 1 to %d", REPLAY_MAX);
        else if (l)
            limit = json_integer_value(l);
        parse_filter(r, body, &f, &err);
        if (!err.code && !lf_event_filter_any(&f))
            lf_err_field(&err, "filter",
                         "name at least one of status, event_type, source, "
                         "lead_id, since, until");
    }
    struct lf_conn *c = err.code ? NULL : lf_api_conn(r, LF_DB_WRITE);
    if (err.code) {
        lf_reply_error(r, err.code, &err);
    } else if (c) {
        int n = lf_events_replay(c, r->auth.tenant_id, &f, (int)limit, lf_now_ms(), &err);
        lf_db_release(c);
        if (n < 0) {
            lf_reply_error(r, n, &err);
        } else {
            if (r->app->workers) lf_workers_notify(r->app->workers);
            lf_log_info("events replayed", "{s:i, s:s}", "count", n, "by", r->auth.sub);
            lf_reply_json(r, 202, json_pack("{s:i}", "replayed", n));
        }
    }
    json_decref(body);
    lf_err_clear(&err);
}

const struct lf_route lf_events_routes[] = {
    {"POST", "/api/v1/events", ingest_one, LF_AUTH_INGEST, 0, 1, 0, 0},
    {"POST", "/api/v1/events/batch", ingest_batch, LF_AUTH_INGEST, 0, 1, 0, 0},
    {"POST", "/api/v1/events/replay", replay_filter, LF_AUTH_TOKEN, LF_ROLES_MANAGE, 1, 0, 0},
    {"GET", "/api/v1/events/status/pending", pending_counts, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"GET", "/api/v1/events", list_events, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"GET", "/api/v1/events/{id}", get_event, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"POST", "/api/v1/events/{id}/replay", replay_one, LF_AUTH_TOKEN, LF_ROLES_MANAGE, 0, 0, 0},
    {NULL, NULL, NULL, 0, 0, 0, 0, 0},
};
