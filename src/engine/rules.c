/* A tenant's scoring and intent rules compiled into memory, with their validation.
 *
 * DESIGN / THREAD SAFETY
 * One cache holds the newest compiled set per tenant. `lock` protects the cache array and
 * every set's refs; a set itself is immutable once built, so workers read it without the
 * lock while they hold a reference. lf_rules_get reads the tenant's version on the caller's
 * connection; when it differs from the cached set's, the set is compiled (outside the lock)
 * and replaces the cached one, which is freed when its last borrower releases it. */
#include "engine/rules.h"
#include "engine/settings.h"
#include "core/mem.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TENANTS_CACHED 1024

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct lf_ruleset *cache[MAX_TENANTS_CACHED];
static int ncache;

static const char *const categories[LF_CAT_COUNT] = {"demographic", "engagement", "behavior"};

const char *lf_category_name(int cat)
{
    return cat >= 0 && cat < LF_CAT_COUNT ? categories[cat] : "?";
}

int lf_category_parse(const char *name)
{
    for (int i = 0; name && i < LF_CAT_COUNT; i++)
        if (strcmp(name, categories[i]) == 0) return i;
    return -1;
}

void lf_score_rule_clear(struct lf_score_rule *r)
{
    free(r->slug);
    free(r->event_type);
    lf_conds_free(r->conds);
    memset(r, 0, sizeof *r);
}

static void intent_rule_clear(struct lf_intent_rule *r)
{
    free(r->slug);
    free(r->intent);
    free(r->event_type);
    lf_conds_free(r->conds);
}

static struct lf_conds *compile_text(const char *conditions, struct lf_err *err)
{
    json_t *list = json_loads(conditions ? conditions : "[]", 0, NULL);
    struct lf_conds *c = lf_conds_compile(list, "conditions", err);
    json_decref(list);
    return c;
}

int lf_score_rule_compile(struct lf_score_rule *r, const char *id, const char *slug,
                          const char *event_type, const char *conditions, int points,
                          const char *category, int max_per_day, int max_per_lead,
                          int expires_after_days, struct lf_err *err)
{
    memset(r, 0, sizeof *r);
    r->conds = compile_text(conditions, err);
    r->category = lf_category_parse(category);
    if (r->conds == NULL || r->category < 0) {
        if (r->category < 0) lf_err_field(err, "category", "is not a category");
        lf_conds_free(r->conds);
        r->conds = NULL;
        return -LF_EINVAL;
    }
    snprintf(r->id, sizeof r->id, "%s", id);
    r->slug = lf_xstrdup(slug);
    r->event_type = lf_xstrdup(event_type);
    r->points = points;
    r->max_per_day = max_per_day > 0 ? max_per_day : 0;
    r->max_per_lead = max_per_lead > 0 ? max_per_lead : 0;
    r->expires_after_days = expires_after_days > 0 ? expires_after_days : 0;
    return 0;
}

static int int_setting(json_t *obj, const char *key, int def)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (int)json_integer_value(v) : def;
}

void lf_score_settings_load(struct lf_conn *c, const char *tenant_id, struct lf_score_settings *out)
{
    json_t *scoring = lf_settings_get(c, tenant_id, "scoring");
    json_t *intent = lf_settings_get(c, tenant_id, "intent");
    out->mql_threshold = int_setting(scoring, "mql_threshold", 40);
    out->hot_threshold = int_setting(scoring, "hot_threshold", 80);
    out->hot_rearm_margin = int_setting(scoring, "hot_rearm_margin", 10);
    out->intent_window_days = int_setting(intent, "window_days", 180);
    out->intent_min_evidence = int_setting(intent, "min_evidence", 30);
    out->tiers = lf_settings_get(c, tenant_id, "tiers");
    json_t *routing = lf_settings_get(c, tenant_id, "routing");
    out->routing.min_score = int_setting(routing, "min_score", 40);
    out->routing.min_confidence = int_setting(routing, "min_confidence", 60);
    out->routing.conflict_min_score = int_setting(routing, "conflict_min_score", 60);
    out->routing.ambiguity_margin = int_setting(routing, "ambiguity_margin", 15);
    out->routing.discovery_min_score = int_setting(routing, "discovery_min_score", 60);
    out->routing.intent_pipelines = json_incref(json_object_get(routing, "intent_pipelines"));
    json_decref(routing);
    json_decref(scoring);
    json_decref(intent);
}

void lf_score_settings_clear(struct lf_score_settings *s)
{
    json_decref(s->tiers);
    s->tiers = NULL;
    json_decref(s->routing.intent_pipelines);
    s->routing.intent_pipelines = NULL;
}

static void ruleset_free(struct lf_ruleset *rs)
{
    for (int i = 0; i < rs->nscore; i++) lf_score_rule_clear(&rs->score[i]);
    for (int i = 0; i < rs->nintent; i++) intent_rule_clear(&rs->intent[i]);
    for (int i = 0; i < rs->ntypes; i++) {
        free(rs->types[i]);
        free(rs->score_by_type[i].idx);
        free(rs->intent_by_type[i].idx);
    }
    free(rs->types);
    free(rs->score_by_type);
    free(rs->intent_by_type);
    free(rs->score_any.idx);
    free(rs->intent_any.idx);
    free(rs->score);
    free(rs->intent);
    for (int i = 0; i < rs->nauto; i++) lf_auto_rule_clear(&rs->autos[i]);
    free(rs->autos);
    lf_score_settings_clear(&rs->settings);
    free(rs);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int find_type(const struct lf_ruleset *rs, const char *type)
{
    int lo = 0, hi = rs->ntypes - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(type, rs->types[mid]);
        if (c == 0) return mid;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return -1;
}

/* The list for `type`: rules naming it or "*", in the array's (priority) order. */
static void build_list(struct lf_rule_list *out, int n, const char *type,
                       const char *(*type_of)(const struct lf_ruleset *, int),
                       const struct lf_ruleset *rs)
{
    out->idx = lf_xcalloc((size_t)n + 1, sizeof(int));
    out->n = 0;
    for (int i = 0; i < n; i++) {
        const char *t = type_of(rs, i);
        if (strcmp(t, "*") == 0 || (type && strcmp(t, type) == 0)) out->idx[out->n++] = i;
    }
}

static const char *score_type(const struct lf_ruleset *rs, int i)
{
    return rs->score[i].event_type;
}

static const char *intent_type(const struct lf_ruleset *rs, int i)
{
    return rs->intent[i].event_type;
}

/* Builds the per-type lists once the rules are loaded. */
static void index_rules(struct lf_ruleset *rs)
{
    int cap = rs->nscore + rs->nintent;
    rs->types = lf_xcalloc((size_t)cap + 1, sizeof(char *));
    for (int i = 0; i < rs->nscore + rs->nintent; i++) {
        const char *t =
            i < rs->nscore ? rs->score[i].event_type : rs->intent[i - rs->nscore].event_type;
        if (strcmp(t, "*") == 0) continue;
        int seen = 0;
        for (int k = 0; k < rs->ntypes && !seen; k++) seen = strcmp(rs->types[k], t) == 0;
        if (!seen) rs->types[rs->ntypes++] = lf_xstrdup(t);
    }
    qsort(rs->types, (size_t)rs->ntypes, sizeof(char *), cmp_str);
    rs->score_by_type = lf_xcalloc((size_t)rs->ntypes + 1, sizeof(struct lf_rule_list));
    rs->intent_by_type = lf_xcalloc((size_t)rs->ntypes + 1, sizeof(struct lf_rule_list));
    for (int k = 0; k < rs->ntypes; k++) {
        build_list(&rs->score_by_type[k], rs->nscore, rs->types[k], score_type, rs);
        build_list(&rs->intent_by_type[k], rs->nintent, rs->types[k], intent_type, rs);
    }
    build_list(&rs->score_any, rs->nscore, NULL, score_type, rs);
    build_list(&rs->intent_any, rs->nintent, NULL, intent_type, rs);
}

const struct lf_rule_list *lf_rules_score_for(const struct lf_ruleset *rs, const char *type)
{
    int k = type ? find_type(rs, type) : -1;
    return k >= 0 ? &rs->score_by_type[k] : &rs->score_any;
}

const struct lf_rule_list *lf_rules_intent_for(const struct lf_ruleset *rs, const char *type)
{
    int k = type ? find_type(rs, type) : -1;
    return k >= 0 ? &rs->intent_by_type[k] : &rs->intent_any;
}

/* Loads and compiles the tenant's active rules. A stored rule that no longer compiles (it
 * was validated on save, so only a hand edit of the database does this) is skipped. */
/* Adds the tenant's active automation rules (those that compile) to rs. Returns LF_DB_DONE or
 * a negative code. */
static int load_automation(struct lf_conn *c, struct lf_ruleset *rs, struct lf_err *err)
{
    struct lf_stmt *st =
        lf_db_prepare(c,
                      "SELECT id, name, trigger_type, trigger_config, action_type,"
                      " action_config, max_executions_per_hour"
                      " FROM automation_rules WHERE tenant_id = ? AND is_active = 1"
                      " ORDER BY priority, created_at, id",
                      err);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "s", rs->tenant_id);
    int rc, cap = 0;
    while ((rc = lf_stmt_step(st)) == LF_DB_ROW) {
        if (rs->nauto == cap) {
            cap = cap ? 2 * cap : 16;
            rs->autos = lf_xrealloc(rs->autos, (size_t)cap * sizeof(*rs->autos));
        }
        struct lf_auto_rule *r = &rs->autos[rs->nauto];
        if (lf_auto_rule_compile(r, lf_stmt_text(st, 0), lf_stmt_text(st, 1), lf_stmt_text(st, 2),
                                 lf_stmt_text(st, 3), lf_stmt_text(st, 4), lf_stmt_text(st, 5),
                                 (int)lf_stmt_int(st, 6)) == 0) {
            rs->auto_triggers[r->trigger]++;
            rs->nauto++;
        }
    }
    lf_stmt_done(st);
    return rc;
}

static int ruleset_load(struct lf_conn *c, const char *tenant_id, int64_t version,
                        struct lf_ruleset **out, struct lf_err *err)
{
    struct lf_ruleset *rs = lf_xcalloc(1, sizeof(*rs));
    snprintf(rs->tenant_id, sizeof rs->tenant_id, "%s", tenant_id);
    rs->version = version;
    int rc = 0, cap = 0;
    struct lf_stmt *st =
        lf_db_prepare(c,
                      "SELECT id, slug, event_type, conditions, points, category, max_per_day,"
                      " max_per_lead, expires_after_days FROM scoring_rules WHERE tenant_id = ?"
                      " AND is_active = 1 ORDER BY priority, slug",
                      err);
    if (st == NULL) rc = -LF_EINTERNAL;
    if (st) lf_stmt_bind(st, "s", tenant_id);
    while (rc == 0 && (rc = lf_stmt_step(st)) == LF_DB_ROW) {
        rc = 0;
        if (rs->nscore == cap) {
            cap = cap ? 2 * cap : 32;
            rs->score = lf_xrealloc(rs->score, (size_t)cap * sizeof(*rs->score));
        }
        if (lf_score_rule_compile(&rs->score[rs->nscore], lf_stmt_text(st, 0), lf_stmt_text(st, 1),
                                  lf_stmt_text(st, 2), lf_stmt_text(st, 3), (int)lf_stmt_int(st, 4),
                                  lf_stmt_text(st, 5), (int)lf_stmt_int(st, 6),
                                  (int)lf_stmt_int(st, 7), (int)lf_stmt_int(st, 8), NULL) == 0)
            rs->nscore++;
    }
    lf_stmt_done(st);
    if (rc == LF_DB_DONE) {
        cap = 0;
        st = lf_db_prepare(c,
                           "SELECT id, slug, intent, event_type, conditions, points, max_per_lead"
                           " FROM intent_rules WHERE tenant_id = ? AND is_active = 1"
                           " ORDER BY slug",
                           err);
        rc = st ? 0 : -LF_EINTERNAL;
        if (st) lf_stmt_bind(st, "s", tenant_id);
        while (rc == 0 && (rc = lf_stmt_step(st)) == LF_DB_ROW) {
            rc = 0;
            struct lf_conds *conds = compile_text(lf_stmt_text(st, 4), NULL);
            if (conds == NULL) continue;
            if (rs->nintent == cap) {
                cap = cap ? 2 * cap : 32;
                rs->intent = lf_xrealloc(rs->intent, (size_t)cap * sizeof(*rs->intent));
            }
            struct lf_intent_rule *r = &rs->intent[rs->nintent++];
            memset(r, 0, sizeof *r);
            snprintf(r->id, sizeof r->id, "%s", lf_stmt_text(st, 0));
            r->slug = lf_xstrdup(lf_stmt_text(st, 1));
            r->intent = lf_xstrdup(lf_stmt_text(st, 2));
            r->event_type = lf_xstrdup(lf_stmt_text(st, 3));
            r->conds = conds;
            r->points = (int)lf_stmt_int(st, 5);
            r->max_per_lead = (int)lf_stmt_int(st, 6);
        }
        lf_stmt_done(st);
    }
    if (rc == LF_DB_DONE) rc = load_automation(c, rs, err);
    if (rc != LF_DB_DONE) {
        ruleset_free(rs);
        return rc < 0 ? rc : -LF_EINTERNAL;
    }
    for (int i = 0; i < rs->nscore; i++) rs->needs |= lf_conds_needs(rs->score[i].conds);
    for (int i = 0; i < rs->nintent; i++) rs->needs |= lf_conds_needs(rs->intent[i].conds);
    lf_score_settings_load(c, tenant_id, &rs->settings);
    index_rules(rs);
    *out = rs;
    return 0;
}

int lf_rules_get(struct lf_conn *c, const char *tenant_id, struct lf_ruleset **out,
                 struct lf_err *err)
{
    int64_t version = 0;
    int rc = lf_db_int(c, err, &version, "SELECT version FROM rule_versions WHERE tenant_id = ?",
                       "s", tenant_id);
    if (rc < 0) return rc;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < ncache; i++)
        if (strcmp(cache[i]->tenant_id, tenant_id) == 0 && cache[i]->version == version) {
            cache[i]->refs++;
            *out = cache[i];
            pthread_mutex_unlock(&lock);
            return 0;
        }
    pthread_mutex_unlock(&lock);

    struct lf_ruleset *rs;
    rc = ruleset_load(c, tenant_id, version, &rs, err);
    if (rc < 0) return rc;
    rs->refs = 2; /* the cache's and the caller's */
    pthread_mutex_lock(&lock);
    int slot = -1;
    for (int i = 0; i < ncache && slot < 0; i++)
        if (strcmp(cache[i]->tenant_id, tenant_id) == 0) slot = i;
    if (slot < 0 && ncache < MAX_TENANTS_CACHED) slot = ncache++;
    struct lf_ruleset *old = slot >= 0 ? cache[slot] : NULL;
    if (slot >= 0)
        cache[slot] = rs;
    else
        rs->refs--; /* the cache is full: the caller's copy only */
    if (old && --old->refs == 0) ruleset_free(old);
    pthread_mutex_unlock(&lock);
    *out = rs;
    return 0;
}

void lf_rules_release(struct lf_ruleset *rs)
{
    if (rs == NULL) return;
    pthread_mutex_lock(&lock);
    int last = --rs->refs == 0;
    pthread_mutex_unlock(&lock);
    if (last) ruleset_free(rs);
}

void lf_rules_cache_free(void)
{
    pthread_mutex_lock(&lock);
    for (int i = 0; i < ncache; i++)
        if (--cache[i]->refs == 0) ruleset_free(cache[i]);
    ncache = 0;
    pthread_mutex_unlock(&lock);
}

int lf_rules_bump(struct lf_conn *c, const char *tenant_id)
{
    int rc = lf_db_run(c, NULL,
                       "INSERT INTO rule_versions (tenant_id, version) VALUES (?, 1)"
                       " ON CONFLICT (tenant_id) DO UPDATE SET version = rule_versions.version + 1",
                       "s", tenant_id);
    return rc < 0 ? rc : 0;
}

/* Validation of rule bodies (API). */

int lf_event_type_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 100) return 0;
    if (strcmp(s, "*") == 0) return 1;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        int alnum =
            (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!alnum && (i == 0 || (ch != '_' && ch != '.' && ch != '-' && ch != ':')))
            return 0; /* as ingest takes them (src/api/events.c) */
    }
    return 1;
}

/* A slug: 1-63 of [a-z0-9_-], starting with a letter or digit, and not shaped like a UUID
 * (rules are looked up by id or slug, so a slug may never read as another rule's id). */
static int is_slug(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 63) return 0;
    if (n == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-') return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              (i > 0 && (c == '_' || c == '-'))))
            return 0;
    }
    return 1;
}

/* What a key of a rule body may hold. */
struct rule_key {
    const char *name;
    char kind; /* 's' slug, 'n' name, 't' event type, 'c' conditions, 'p' points, 'k'
                  category, 'i' intent name, 'C' cap (null or 1..), 'e' expiry days,
                  'o' priority, 'b' boolean */
    int required;
};

static const struct rule_key score_keys[] = {
    {"slug", 's', 1},        {"name", 'n', 1},         {"event_type", 't', 1},
    {"conditions", 'c', 0},  {"points", 'p', 1},       {"category", 'k', 1},
    {"max_per_day", 'C', 0}, {"max_per_lead", 'C', 0}, {"expires_after_days", 'e', 0},
    {"priority", 'o', 0},    {"is_active", 'b', 0},    {NULL, 0, 0},
};

static const struct rule_key intent_keys[] = {
    {"slug", 's', 1},   {"intent", 'i', 1},       {"event_type", 't', 1}, {"conditions", 'c', 0},
    {"points", 'P', 1}, {"max_per_lead", 'C', 0}, {"is_active", 'b', 0},  {NULL, 0, 0},
};

static void allowed_keys(const struct rule_key *keys, char *out, size_t size)
{
    size_t len = 0;
    out[0] = '\0';
    for (const struct rule_key *k = keys; k->name && len < size; k++)
        len += (size_t)snprintf(out + len, size - len, "%s%s", len ? ", " : "", k->name);
}

static int int_in(json_t *v, long long lo, long long hi)
{
    return json_is_integer(v) && json_integer_value(v) >= lo && json_integer_value(v) <= hi;
}

static int check_rule(json_t *body, int creating, const struct rule_key *keys, struct lf_err *err)
{
    if (!json_is_object(body)) return lf_err_set(err, -LF_EINVAL, "the body must be an object");
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        const struct rule_key *k = keys;
        while (k->name && strcmp(k->name, key) != 0) k++;
        if (k->name == NULL) {
            char allowed[256];
            allowed_keys(keys, allowed, sizeof allowed);
            lf_err_field(err, key, "is not a rule field (allowed: %s)", allowed);
            continue;
        }
        const char *s = json_string_value(v);
        switch (k->kind) {
        case 's':
            if (!is_slug(s)) lf_err_field(err, key, "must be a slug: 1-63 of a-z, 0-9, '_', '-'");
            break;
        case 'i':
            if (!is_slug(s))
                lf_err_field(err, key, "must be an intent name: 1-63 of a-z, 0-9, '_', '-'");
            break;
        case 'n':
            if (s == NULL || json_string_length(v) == 0 || json_string_length(v) > 200)
                lf_err_field(err, key, "must be a string of 1 to 200 characters");
            break;
        case 't':
            if (s == NULL || !lf_event_type_ok(s))
                lf_err_field(
                    err, key,
                    "must be an event type (letters, digits, '_', '.', '-', ':') or \"*\"");
            break;
        case 'c': {
            if (!json_is_array(v)) {
                lf_err_field(err, key, "must be a list of conditions ([] for none)");
                break;
            }
            struct lf_conds *conds = lf_conds_compile(v, "conditions", err);
            lf_conds_free(conds);
            break;
        }
        case 'p':
            if (!int_in(v, -1000, 1000) || json_integer_value(v) == 0)
                lf_err_field(err, key, "must be a non-zero integer from -1000 to 1000");
            break;
        case 'P':
            if (!int_in(v, 1, 1000)) lf_err_field(err, key, "must be an integer from 1 to 1000");
            break;
        case 'k':
            if (lf_category_parse(s) < 0)
                lf_err_field(err, key, "must be one of demographic, engagement, behavior");
            break;
        case 'C':
            if (!json_is_null(v) && !int_in(v, 1, 1000000))
                lf_err_field(err, key, "must be null (no cap) or an integer of at least 1");
            break;
        case 'e':
            if (!json_is_null(v) && !int_in(v, 1, 3650))
                lf_err_field(err, key, "must be null (never) or a number of days from 1 to 3650");
            break;
        case 'o':
            if (!int_in(v, -1000000, 1000000))
                lf_err_field(err, key, "must be an integer (lower runs first)");
            break;
        case 'b':
            if (!json_is_boolean(v)) lf_err_field(err, key, "must be true or false");
            break;
        }
    }
    for (const struct rule_key *k = keys; creating && k->name; k++)
        if (k->required && json_object_get(body, k->name) == NULL)
            lf_err_field(err, k->name, "is required");
    return err->code ? err->code : 0;
}

int lf_score_rule_check(json_t *body, int creating, struct lf_err *err)
{
    return check_rule(body, creating, score_keys, err);
}

int lf_intent_rule_check(json_t *body, int creating, struct lf_err *err)
{
    return check_rule(body, creating, intent_keys, err);
}
