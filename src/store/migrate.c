/* Schema migrations and the seed of a tenant's default configuration. */
#include "store/migrate.h"
#include "core/crypto.h"
#include "core/embedded.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct lf_embedded *lf_embedded_find(const struct lf_embedded *table, const char *name)
{
    for (; table->name; table++)
        if (strcmp(table->name, name) == 0) return table;
    return NULL;
}

int lf_migrate(struct lf_db *db, int *applied, struct lf_err *err)
{
    int n = 0, rc;
    struct lf_conn *c = lf_db_acquire(db, LF_DB_WRITE, err);
    if (c == NULL) return -LF_ESTORE;
    rc = lf_db_exec(c,
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY,"
                    " applied_at BIGINT NOT NULL)",
                    err);
    for (const struct lf_embedded *m = lf_embedded_migrations; rc == 0 && m->name; m++) {
        int64_t have = 0;
        rc = lf_db_int(c, err, &have, "SELECT count(*) FROM schema_migrations WHERE version = ?",
                       "s", m->name);
        if (rc < 0 || have) {
            rc = rc < 0 ? rc : 0;
            continue;
        }
        rc = lf_db_begin(c);
        if (rc == 0) rc = lf_db_exec(c, m->data, err);
        if (rc == 0)
            rc = lf_db_run(c, err,
                           "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                           "sI", m->name, lf_now_ms());
        if (rc >= 0)
            rc = lf_db_commit(c);
        else
            lf_db_rollback(c);
        if (rc == 0) {
            n++;
            lf_log_info("migration applied", "{s:s}", "version", m->name);
        } else {
            lf_err_set(err, rc, "migration %s failed: %s", m->name,
                       err && err->msg[0] ? err->msg : lf_db_errmsg(c));
        }
    }
    lf_db_release(c);
    if (applied) *applied = n;
    return rc;
}

int lf_tenant_lookup(struct lf_db *db, const char *slug, char *tenant_id, struct lf_err *err)
{
    struct lf_conn *c = lf_db_acquire(db, LF_DB_READ, err);
    if (c == NULL) return -LF_ESTORE;
    struct lf_stmt *st = lf_db_prepare(c, "SELECT id FROM tenants WHERE slug = ?", err);
    int rc = st ? lf_stmt_bind(st, "s", slug) : -LF_EINTERNAL;
    if (rc == 0) rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW && tenant_id)
        snprintf(tenant_id, LF_UUID_STRLEN + 1, "%s", lf_stmt_text(st, 0));
    lf_stmt_done(st);
    lf_db_release(c);
    return rc;
}

/* How one JSON object of a defaults file maps onto a table's columns. Column names come from
 * this code only. */
struct seed_col {
    const char *name; /* column and JSON key */
    char type;        /* 's' text, 'i' integer, 'j' JSON kept as text */
    const char *def;  /* default when the key is absent (text form), NULL for NULL */
};

struct seed_table {
    const char *table;
    const struct seed_col *cols;
};

static const struct seed_col scoring_cols[] = {
    {"slug", 's', NULL},        {"name", 's', NULL},         {"event_type", 's', "*"},
    {"conditions", 'j', "[]"},  {"points", 'i', "0"},        {"category", 's', "engagement"},
    {"max_per_day", 'i', NULL}, {"max_per_lead", 'i', NULL}, {"expires_after_days", 'i', NULL},
    {"priority", 'i', "100"},   {"is_active", 'i', "1"},     {NULL, 0, NULL}};
static const struct seed_col intent_cols[] = {{"slug", 's', NULL},      {"intent", 's', NULL},
                                              {"event_type", 's', "*"}, {"conditions", 'j', "[]"},
                                              {"points", 'i', "0"},     {"max_per_lead", 'i', NULL},
                                              {"is_active", 'i', "1"},  {NULL, 0, NULL}};
static const struct seed_col pipeline_cols[] = {{"slug", 's', NULL},
                                                {"name", 's', NULL},
                                                {"intent", 's', NULL},
                                                {"owner_role", 's', "bdr"},
                                                {"is_discovery", 'i', "0"},
                                                {"position", 'i', "0"},
                                                {NULL, 0, NULL}};
static const struct seed_col team_cols[] = {
    {"email", 's', NULL},     {"name", 's', NULL},     {"role", 's', NULL}, {"region", 's', NULL},
    {"max_leads", 'i', "50"}, {"is_active", 'i', "1"}, {NULL, 0, NULL}};

/* Inserts one object as a row of t (with id, tenant_id and times), ignoring a conflict with
 * an existing row. extra_col/extra_val add one more text column (may be NULL). */
static int seed_row(struct lf_conn *c, const struct seed_table *t, const char *tenant_id,
                    json_t *obj, const char *extra_col, const char *extra_val, struct lf_err *err)
{
    char sql[1024], vals[256];
    int n = snprintf(sql, sizeof sql, "INSERT INTO %s (id, tenant_id, created_at, updated_at",
                     t->table);
    int v = snprintf(vals, sizeof vals, "?, ?, ?, ?");
    for (const struct seed_col *col = t->cols; col->name; col++) {
        n += snprintf(sql + n, sizeof sql - (size_t)n, ", %s", col->name);
        v += snprintf(vals + v, sizeof vals - (size_t)v, ", ?");
    }
    if (extra_col) {
        n += snprintf(sql + n, sizeof sql - (size_t)n, ", %s", extra_col);
        v += snprintf(vals + v, sizeof vals - (size_t)v, ", ?");
    }
    snprintf(sql + n, sizeof sql - (size_t)n, ") VALUES (%s) ON CONFLICT DO NOTHING", vals);

    struct lf_stmt *st = lf_db_prepare(c, sql, err);
    if (st == NULL) return -LF_EINTERNAL;
    char id[LF_UUID_STRLEN + 1];
    lf_uuid7(id);
    int64_t now = lf_now_ms();
    lf_stmt_bind(st, "ssII", id, tenant_id, now, now);
    int idx = 5;
    for (const struct seed_col *col = t->cols; col->name; col++, idx++) {
        json_t *val = json_object_get(obj, col->name);
        if (val == NULL || json_is_null(val)) {
            if (val == NULL && col->def) {
                if (col->type == 'i')
                    lf_stmt_bind_int(st, idx, atoll(col->def));
                else
                    lf_stmt_bind_text(st, idx, col->def);
            } else {
                lf_stmt_bind_null(st, idx);
            }
        } else if (col->type == 'i') {
            lf_stmt_bind_int(st, idx, json_integer_value(val));
        } else if (col->type == 'j') {
            char *text = json_dumps(val, JSON_COMPACT | JSON_ENCODE_ANY);
            lf_stmt_bind_text(st, idx, text);
            free(text);
        } else {
            lf_stmt_bind_text(st, idx, json_string_value(val));
        }
    }
    if (extra_col) lf_stmt_bind_text(st, idx, extra_val);
    int rc = lf_stmt_step(st);
    lf_stmt_done(st);
    if (rc < 0) return lf_err_set(err, rc, "seeding %s: %s", t->table, lf_db_errmsg(c));
    return 0;
}

static json_t *load_default(const char *name, struct lf_err *err)
{
    const struct lf_embedded *f = lf_embedded_find(lf_embedded_defaults, name);
    if (f == NULL) {
        lf_err_set(err, -LF_EINTERNAL, "default file %s is missing from the build", name);
        return NULL;
    }
    json_error_t je;
    json_t *doc = json_loadb(f->data, f->len, 0, &je);
    if (doc == NULL) lf_err_set(err, -LF_EINTERNAL, "%s line %d: %s", name, je.line, je.text);
    return doc;
}

static int seed_list(struct lf_conn *c, const char *file, const struct seed_table *t,
                     const char *tenant_id, struct lf_err *err)
{
    json_t *doc = load_default(file, err);
    if (doc == NULL) return -LF_EINTERNAL;
    size_t i;
    json_t *obj;
    int rc = 0;
    json_array_foreach(doc, i, obj)
    {
        if ((rc = seed_row(c, t, tenant_id, obj, NULL, NULL, err)) < 0) break;
    }
    json_decref(doc);
    return rc;
}

static int seed_pipelines(struct lf_conn *c, const char *tenant_id, struct lf_err *err)
{
    static const struct seed_col stage_cols[] = {{"slug", 's', NULL},       {"name", 's', NULL},
                                                 {"position", 'i', "0"},    {"kind", 's', "open"},
                                                 {"automation", 'j', "[]"}, {NULL, 0, NULL}};
    static const struct seed_table pipelines = {"pipelines", pipeline_cols};
    static const struct seed_table stages = {"pipeline_stages", stage_cols};
    json_t *doc = load_default("pipelines.json", err);
    if (doc == NULL) return -LF_EINTERNAL;
    size_t i, j;
    json_t *p, *s;
    int rc = 0;
    json_array_foreach(doc, i, p)
    {
        if ((rc = seed_row(c, &pipelines, tenant_id, p, NULL, NULL, err)) < 0) break;
        struct lf_stmt *st =
            lf_db_prepare(c, "SELECT id FROM pipelines WHERE tenant_id = ? AND slug = ?", err);
        if (st == NULL) {
            rc = -LF_EINTERNAL;
            break;
        }
        lf_stmt_bind(st, "ss", tenant_id, json_string_value(json_object_get(p, "slug")));
        char pid[LF_UUID_STRLEN + 1] = "";
        if (lf_stmt_step(st) == LF_DB_ROW) snprintf(pid, sizeof pid, "%s", lf_stmt_text(st, 0));
        lf_stmt_done(st);
        json_array_foreach(json_object_get(p, "stages"), j, s)
        {
            json_t *row = json_deep_copy(s);
            if (!json_object_get(row, "position"))
                json_object_set_new(row, "position", json_integer((json_int_t)j + 1));
            rc = seed_row(c, &stages, tenant_id, row, "pipeline_id", pid, err);
            json_decref(row);
            if (rc < 0) break;
        }
        if (rc < 0) break;
    }
    json_decref(doc);
    return rc;
}

static int seed_settings(struct lf_conn *c, const char *tenant_id, struct lf_err *err)
{
    json_t *doc = load_default("settings.json", err);
    if (doc == NULL) return -LF_EINTERNAL;
    const char *key;
    json_t *val;
    int rc = 0;
    json_object_foreach(doc, key, val)
    {
        char *text = json_dumps(val, JSON_COMPACT | JSON_ENCODE_ANY);
        rc =
            lf_db_run(c, err,
                      "INSERT INTO settings (tenant_id, key, value, updated_at) VALUES (?, ?, ?, ?)"
                      " ON CONFLICT DO NOTHING",
                      "sssI", tenant_id, key, text, lf_now_ms());
        free(text);
        if (rc < 0) break;
    }
    json_decref(doc);
    return rc < 0 ? rc : 0;
}

int lf_seed_tenant(struct lf_db *db, const char *slug, const char *name, char *tenant_id,
                   struct lf_err *err)
{
    static const struct seed_table scoring = {"scoring_rules", scoring_cols};
    static const struct seed_table intents = {"intent_rules", intent_cols};
    static const struct seed_table team = {"team_members", team_cols};
    char id[LF_UUID_STRLEN + 1];
    struct lf_conn *c = lf_db_acquire(db, LF_DB_WRITE, err);
    if (c == NULL) return -LF_ESTORE;
    int rc = lf_db_begin(c);
    if (rc == 0) {
        lf_uuid7(id);
        int64_t now = lf_now_ms();
        rc = lf_db_run(c, err,
                       "INSERT INTO tenants (id, slug, name, created_at, updated_at)"
                       " VALUES (?, ?, ?, ?, ?) ON CONFLICT (slug) DO NOTHING",
                       "sssII", id, slug, name ? name : slug, now, now);
    }
    struct lf_stmt *st =
        rc >= 0 ? lf_db_prepare(c, "SELECT id FROM tenants WHERE slug = ?", err) : NULL;
    if (st) {
        lf_stmt_bind(st, "s", slug);
        rc = lf_stmt_step(st) == LF_DB_ROW ? 0 : -LF_EINTERNAL;
        if (rc == 0) snprintf(id, sizeof id, "%s", lf_stmt_text(st, 0));
        lf_stmt_done(st);
    } else if (rc >= 0) {
        rc = -LF_EINTERNAL;
    }
    if (rc >= 0) rc = seed_pipelines(c, id, err);
    if (rc >= 0) rc = seed_list(c, "scoring_rules.json", &scoring, id, err);
    if (rc >= 0) rc = seed_list(c, "intent_rules.json", &intents, id, err);
    if (rc >= 0) rc = seed_list(c, "team.json", &team, id, err);
    if (rc >= 0) rc = seed_settings(c, id, err);
    /* the engine's compiled rules of this tenant are stale from here (src/engine/rules.h) */
    if (rc >= 0)
        rc = lf_db_run(c, err,
                       "INSERT INTO rule_versions (tenant_id, version) VALUES (?, 1)"
                       " ON CONFLICT (tenant_id) DO UPDATE SET version = rule_versions.version + 1",
                       "s", id);
    if (rc >= 0)
        rc = lf_db_commit(c);
    else
        lf_db_rollback(c);
    lf_db_release(c);
    if (rc == 0 && tenant_id) snprintf(tenant_id, LF_UUID_STRLEN + 1, "%s", id);
    return rc;
}
