/* Pipelines and their stages, and the board view.
 *
 * Positions: a tenant's pipelines, and a pipeline's stages, sit at positions 1..n without gaps.
 * Every write that adds, moves or removes one writes the whole order again (write_order), so
 * rows written by other means (seeds, older data) are set straight by the next change.
 * A pipeline always keeps at least one stage of kind open (where the router starts deals).
 * Paths name pipelines and stages by id or slug; slugs shaped like a UUID are refused so the
 * two never read alike. Every write is one transaction: bad input changes nothing. */
#include "api/api.h"
#include "engine/automation.h"
#include "engine/deal.h"
#include "engine/route.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PIPELINES_MAX 500  /* a tenant's pipelines: the list is one page */
#define STAGES_MAX    100  /* a pipeline's stages, and so the board's */
#define TEXT_MAX      200  /* characters of a name */
#define ORDER_MAX     1000 /* entries a reorder body may list (each one is checked) */

#define PIPELINE_COLS                                                                              \
    "id, slug, name, intent, owner_role, is_discovery, position, created_at, updated_at"
#define STAGE_COLS "id, pipeline_id, slug, name, position, kind, automation, created_at, updated_at"

static const char *const kinds[] = {"open", "won", "lost", NULL};

/* The members each body may hold, and those it must. */
static const char *const pipeline_create_keys[] = {
    "slug", "name", "owner_role", "intent", "is_discovery", "position", "stages", NULL};
static const char *const pipeline_patch_keys[] = {
    "slug", "name", "owner_role", "intent", "is_discovery", "position", NULL};
static const char *const pipeline_required[] = {"slug", "name", "owner_role", NULL};
static const char *const stage_keys[] = {"slug", "name", "kind", "position", "automation", NULL};
static const char *const nested_stage_keys[] = {"slug", "name", "kind", "automation", NULL};
static const char *const stage_required[] = {"slug", "name", NULL};

/* A slug that may name a pipeline or stage in a path: lf_api_is_slug, and not shaped like a
 * UUID, since a path segment may be either. */
static int is_path_slug(const char *s)
{
    if (!lf_api_is_slug(s)) return 0;
    return !(strlen(s) == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-');
}

/* 1 when v is a string of 1 to TEXT_MAX characters (code points), not only spaces, without
 * NUL. */
static int is_text(json_t *v)
{
    const char *s = json_string_value(v);
    if (s == NULL || strlen(s) != json_string_length(v)) return 0;
    size_t n = 0, blank = 0;
    for (const char *p = s; *p; p++) {
        if (((unsigned char)*p & 0xC0) == 0x80) continue; /* a continuation byte */
        n++;
        blank += *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r';
    }
    return n >= 1 && n <= TEXT_MAX && blank < n;
}

static void join(const char *const *set, char *out, size_t size)
{
    size_t len = 0;
    out[0] = '\0';
    for (; *set && len < size; set++)
        len += (size_t)snprintf(out + len, size - len, "%s%s", len ? ", " : "", *set);
}

static void check_stage_list(json_t *v, struct lf_err *err);

/* Checks every member of obj: one of keys, with a valid value; and that the members of
 * required are there. Field names are prefix + member name; what names the object in
 * messages. Records problems in err. */
static void check_members(json_t *obj, const char *const *keys, const char *const *required,
                          const char *prefix, const char *what, struct lf_err *err)
{
    const char *key;
    json_t *v;
    char field[160];
    json_object_foreach(obj, key, v)
    {
        snprintf(field, sizeof field, "%s%s", prefix, key);
        if (!lf_api_one_of(key, keys)) {
            char allowed[160];
            join(keys, allowed, sizeof allowed);
            lf_err_field(err, field, "is not a %s field (allowed: %s)", what, allowed);
            continue;
        }
        const char *s = json_string_value(v);
        if (strcmp(key, "slug") == 0) {
            if (!is_path_slug(s))
                lf_err_field(err, field,
                             "must be a slug: 1-63 of a-z, 0-9, '_', '-', starting with a letter"
                             " or digit, not shaped like a UUID");
        } else if (strcmp(key, "name") == 0) {
            if (!is_text(v))
                lf_err_field(err, field, "must be a non-empty string of at most %d characters",
                             TEXT_MAX);
        } else if (strcmp(key, "owner_role") == 0) {
            if (!lf_api_is_slug(s))
                lf_err_field(err, field, "must be a role name: 1-63 of a-z, 0-9, '_', '-'");
        } else if (strcmp(key, "intent") == 0) {
            if (!json_is_null(v) && !lf_api_is_slug(s))
                lf_err_field(err, field,
                             "must be null or an intent name: 1-63 of a-z, 0-9, '_', '-'");
        } else if (strcmp(key, "is_discovery") == 0) {
            if (!json_is_boolean(v)) lf_err_field(err, field, "must be true or false");
        } else if (strcmp(key, "position") == 0) {
            if (!json_is_integer(v))
                lf_err_field(err, field, "must be a whole number (1 is the first place)");
        } else if (strcmp(key, "kind") == 0) {
            if (!lf_api_one_of(s, kinds)) lf_err_field(err, field, "must be open, won or lost");
        } else if (strcmp(key, "automation") == 0) {
            lf_err_field(err, field,
                         "is read-only: a stage's automation is the automation rules whose"
                         " trigger (stage_entered, time_in_stage) names it; create them with"
                         " POST /api/v1/automation/rules");
        } else if (strcmp(key, "stages") == 0) {
            check_stage_list(v, err);
        }
    }
    for (; required && *required; required++) {
        if (json_object_get(obj, *required) != NULL) continue;
        snprintf(field, sizeof field, "%s%s", prefix, *required);
        lf_err_field(err, field, "is required");
    }
}

/* The stages of a new pipeline: 1..STAGES_MAX objects with distinct slugs, one open at least. */
static void check_stage_list(json_t *v, struct lf_err *err)
{
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > STAGES_MAX) {
        lf_err_field(err, "stages", "must be a list of 1 to %d stages", STAGES_MAX);
        return;
    }
    size_t i;
    json_t *s;
    int open = 0;
    json_array_foreach(v, i, s)
    {
        char prefix[48];
        snprintf(prefix, sizeof prefix, "stages[%zu].", i);
        if (!json_is_object(s)) {
            snprintf(prefix, sizeof prefix, "stages[%zu]", i);
            lf_err_field(err, prefix, "must be an object");
            continue;
        }
        check_members(s, nested_stage_keys, stage_required, prefix, "stage", err);
        json_t *kind = json_object_get(s, "kind");
        open +=
            kind == NULL || (json_is_string(kind) && strcmp(json_string_value(kind), "open") == 0);
        const char *slug = json_string_value(json_object_get(s, "slug"));
        for (size_t j = 0; slug && j < i; j++) {
            const char *other = json_string_value(json_object_get(json_array_get(v, j), "slug"));
            if (other == NULL || strcmp(other, slug) != 0) continue;
            snprintf(prefix, sizeof prefix, "stages[%zu].slug", i);
            lf_err_field(err, prefix, "repeats the slug of stages[%zu]", j);
            break;
        }
    }
    if (open == 0) lf_err_field(err, "stages", "needs at least one stage of kind open");
}

static json_t *pipeline_row(struct lf_stmt *st)
{
    return json_pack(
        "{s:s, s:s, s:s, s:o, s:s, s:b, s:I, s:o, s:o}", "id", lf_stmt_text(st, 0), "slug",
        lf_stmt_text(st, 1), "name", lf_stmt_text(st, 2), "intent",
        lf_json_text(lf_stmt_text(st, 3)), "owner_role", lf_stmt_text(st, 4), "is_discovery",
        lf_stmt_int(st, 5) != 0, "position", (json_int_t)lf_stmt_int(st, 6), "created_at",
        lf_json_time(lf_stmt_int(st, 7), 0), "updated_at", lf_json_time(lf_stmt_int(st, 8), 0));
}

/* A row of STAGE_COLS as JSON; automation lists the automation rules about the stage. */
static json_t *stage_row(struct lf_conn *c, const char *tenant, struct lf_stmt *st)
{
    int rc;
    json_t *automation = lf_auto_stage_rules(c, tenant, lf_stmt_text(st, 0), &rc);
    if (automation == NULL) automation = json_array();
    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:o, s:o, s:o}", "id", lf_stmt_text(st, 0),
                     "pipeline_id", lf_stmt_text(st, 1), "slug", lf_stmt_text(st, 2), "name",
                     lf_stmt_text(st, 3), "position", (json_int_t)lf_stmt_int(st, 4), "kind",
                     lf_stmt_text(st, 5), "automation", automation, "created_at",
                     lf_json_time(lf_stmt_int(st, 7), 0), "updated_at",
                     lf_json_time(lf_stmt_int(st, 8), 0));
}

/* Finds the tenant's pipeline named by ref (id or slug) and writes its id (and slug, when not
 * NULL). Returns 1, or a negative code with err (-LF_ENOTFOUND when there is none). */
static int find_pipeline(struct lf_conn *c, const char *tenant, const char *ref, char id[40],
                         char *slug, struct lf_err *err)
{
    int rc = lf_pipeline_find(c, tenant, ref, id, slug);
    if (rc == LF_DB_DONE) rc = lf_err_set(err, -LF_ENOTFOUND, "no pipeline %s", ref);
    return rc;
}

/* Finds the stage named by ref (id or slug) in pipeline pid and writes its id and kind.
 * Returns 1, or a negative code with err (-LF_ENOTFOUND when there is none). */
static int find_stage(struct lf_conn *c, const char *tenant, const char *pid, const char *ref,
                      char id[40], char kind[8], struct lf_err *err)
{
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT id, kind FROM pipeline_stages WHERE tenant_id = ?"
                                       " AND pipeline_id = ? AND (id = ? OR slug = ?)",
                                       err);
    int rc = st ? lf_stmt_bind(st, "ssss", tenant, pid, ref, ref) : -LF_EINTERNAL;
    if (rc == 0) rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW) {
        snprintf(id, 40, "%s", lf_stmt_text(st, 0));
        snprintf(kind, 8, "%s", lf_stmt_text(st, 1));
    }
    if (st) lf_stmt_done(st);
    if (rc == LF_DB_DONE) rc = lf_err_set(err, -LF_ENOTFOUND, "no stage %s in this pipeline", ref);
    return rc;
}

/* The stages of pipeline pid in order, as a new array; NULL with *rc negative on a store
 * error. */
static json_t *load_stages(struct lf_conn *c, const char *tenant, const char *pid, int *rc,
                           struct lf_err *err)
{
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT " STAGE_COLS " FROM pipeline_stages WHERE"
                                       " tenant_id = ? AND pipeline_id = ? ORDER BY position, id"
                                       " LIMIT ?",
                                       err);
    json_t *stages = json_array();
    *rc = st ? lf_stmt_bind(st, "ssi", tenant, pid, STAGES_MAX) : -LF_EINTERNAL;
    while (*rc >= 0 && (*rc = lf_stmt_step(st)) == LF_DB_ROW)
        json_array_append_new(stages, stage_row(c, tenant, st));
    if (st) lf_stmt_done(st);
    if (*rc < 0) {
        json_decref(stages);
        return NULL;
    }
    return stages;
}

/* The pipeline named by ref (id or slug) as JSON, with its stages when with_stages. NULL with
 * *rc negative and err set (-LF_ENOTFOUND when there is none). */
static json_t *load_pipeline(struct lf_conn *c, const char *tenant, const char *ref,
                             int with_stages, int *rc, struct lf_err *err)
{
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT " PIPELINE_COLS " FROM pipelines WHERE"
                                       " tenant_id = ? AND (id = ? OR slug = ?)",
                                       err);
    *rc = st ? lf_stmt_bind(st, "sss", tenant, ref, ref) : -LF_EINTERNAL;
    if (*rc == 0) *rc = lf_stmt_step(st);
    json_t *p = *rc == LF_DB_ROW ? pipeline_row(st) : NULL;
    if (st) lf_stmt_done(st);
    if (*rc == LF_DB_DONE) *rc = lf_err_set(err, -LF_ENOTFOUND, "no pipeline %s", ref);
    if (p && with_stages) {
        json_t *stages =
            load_stages(c, tenant, json_string_value(json_object_get(p, "id")), rc, err);
        if (stages) {
            json_object_set_new(p, "stages", stages);
        } else {
            json_decref(p);
            p = NULL;
        }
    }
    return p;
}

/* The ids of the tenant's pipelines (pid NULL) or of pipeline pid's stages, in their order, as
 * a new array; NULL with *rc negative on a store error. */
static json_t *load_order(struct lf_conn *c, const char *tenant, const char *pid, int *rc,
                          struct lf_err *err)
{
    struct lf_stmt *st =
        pid ? lf_db_prepare(c,
                            "SELECT id FROM pipeline_stages WHERE tenant_id = ? AND"
                            " pipeline_id = ? ORDER BY position, id",
                            err)
            : lf_db_prepare(c,
                            "SELECT id FROM pipelines WHERE tenant_id = ? ORDER BY position,"
                            " name, id",
                            err);
    json_t *ids = json_array();
    *rc = st == NULL ? -LF_EINTERNAL
          : pid      ? lf_stmt_bind(st, "ss", tenant, pid)
                     : lf_stmt_bind(st, "s", tenant);
    while (*rc >= 0 && (*rc = lf_stmt_step(st)) == LF_DB_ROW)
        json_array_append_new(ids, json_string(lf_stmt_text(st, 0)));
    if (st) lf_stmt_done(st);
    if (*rc < 0) {
        json_decref(ids);
        return NULL;
    }
    return ids;
}

/* Puts id at 1-based position in ids (taking it out first when it is there). */
static void place(json_t *ids, const char *id, json_int_t position)
{
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v)
    {
        if (strcmp(json_string_value(v), id) != 0) continue;
        json_array_remove(ids, i);
        break;
    }
    json_array_insert_new(ids, (size_t)(position - 1), json_string(id));
}

/* Sets position i + 1 on the i-th id of ids, in the tenant's pipelines (pid NULL) or in
 * pipeline pid's stages, touching only rows whose position changes. Returns 0 or a negative
 * code with err. */
static int write_order(struct lf_conn *c, const char *tenant, const char *pid, json_t *ids,
                       int64_t now, struct lf_err *err)
{
    const char *sql = pid ? "UPDATE pipeline_stages SET position = ?, updated_at = ? WHERE"
                            " tenant_id = ? AND id = ? AND position <> ?"
                          : "UPDATE pipelines SET position = ?, updated_at = ? WHERE"
                            " tenant_id = ? AND id = ? AND position <> ?";
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v)
    {
        int64_t pos = (int64_t)i + 1;
        int rc = lf_db_run(c, err, sql, "IIssI", pos, now, tenant, json_string_value(v), pos);
        if (rc < 0) return rc;
    }
    return 0;
}

/* The "position" member of body, 1..max, into *pos (left alone when absent). Returns 0 or
 * -LF_EINVAL with err. */
static int position_arg(json_t *body, json_int_t max, json_int_t *pos, struct lf_err *err)
{
    json_t *v = json_object_get(body, "position");
    if (v == NULL) return 0;
    json_int_t p = json_integer_value(v);
    if (p < 1 || p > max)
        return lf_err_field(err, "position", "must be a whole number from 1 to %lld",
                            (long long)max);
    *pos = p;
    return 0;
}

/* Sets the members of body (each one of allowed, checked already) on the row id of table;
 * booleans as 0/1, arrays as JSON text. Returns 0 or a negative code with err. */
static int set_members(struct lf_conn *c, const char *table, const char *const *allowed,
                       const char *tenant, const char *id, json_t *body, struct lf_err *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        if (!lf_api_one_of(key, allowed)) continue; /* position: the caller moves the row */
        char sql[128];
        /* key is one of allowed, so a column name from the code */
        snprintf(sql, sizeof sql, "UPDATE %s SET %s = ? WHERE tenant_id = ? AND id = ?", table,
                 key);
        int rc;
        if (json_is_null(v)) {
            rc = lf_db_run(c, err, sql, "nss", tenant, id);
        } else if (json_is_boolean(v)) {
            rc = lf_db_run(c, err, sql, "iss", json_is_true(v), tenant, id);
        } else if (json_is_string(v)) {
            rc = lf_db_run(c, err, sql, "sss", json_string_value(v), tenant, id);
        } else {
            char *text = lf_json_dump(v);
            rc = lf_db_run(c, err, sql, "sss", text, tenant, id);
            free(text);
        }
        if (rc < 0) return rc;
    }
    return 0;
}

/* Records a taken slug: 409 naming the field. Returns -LF_ECONFLICT. */
static int slug_taken(struct lf_err *err, json_t *body, const char *what)
{
    lf_err_clear(err);
    lf_err_field(err, "slug", "is taken by another %s", what);
    return lf_err_set(err, -LF_ECONFLICT, "the slug %s is taken by another %s",
                      json_string_value(json_object_get(body, "slug")), what);
}

/* Inserts stage s (slug, name, kind?, checked) into pipeline pid at position and
 * writes its new id. Returns 0 or a negative code with err (-LF_ECONSTRAINT: slug taken). */
static int insert_stage(struct lf_conn *c, const char *tenant, const char *pid, json_t *s,
                        json_int_t position, int64_t now, char id[40], struct lf_err *err)
{
    lf_uuid7(id);
    const char *kind = json_string_value(json_object_get(s, "kind"));
    int rc = lf_db_run(c, err,
                       "INSERT INTO pipeline_stages (id, tenant_id, pipeline_id, slug, name,"
                       " position, kind, created_at, updated_at)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       "sssssIsII", id, tenant, pid, json_string_value(json_object_get(s, "slug")),
                       json_string_value(json_object_get(s, "name")), (int64_t)position,
                       kind ? kind : "open", now, now);
    return rc < 0 ? rc : 0;
}

static int touch_pipeline(struct lf_conn *c, const char *tenant, const char *pid, int64_t now,
                          struct lf_err *err)
{
    int rc = lf_db_run(c, err, "UPDATE pipelines SET updated_at = ? WHERE tenant_id = ? AND id = ?",
                       "Iss", now, tenant, pid);
    return rc < 0 ? rc : 0;
}

/* Commits when rc ≥ 0, else rolls back. Returns rc, or the commit's error. */
static int end_tx(struct lf_conn *c, int rc)
{
    if (rc >= 0) return lf_db_commit(c);
    lf_db_rollback(c);
    return rc;
}

/* Answers the pipeline id (with its stages) read on c, with status; or the error. */
static void reply_pipeline(struct lf_req *r, struct lf_conn *c, const char *id, int status)
{
    struct lf_err err = {0};
    int rc;
    json_t *p = load_pipeline(c, r->auth.tenant_id, id, 1, &rc, &err);
    if (p)
        lf_reply_json(r, status, p);
    else
        lf_reply_error(r, rc < 0 ? rc : -LF_EINTERNAL, &err);
    lf_err_clear(&err);
}

/* Answers stage sid of pipeline pid read on c, with status; or the error. */
static void reply_stage(struct lf_req *r, struct lf_conn *c, const char *pid, const char *sid,
                        int status)
{
    struct lf_err err = {0};
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT " STAGE_COLS " FROM pipeline_stages WHERE"
                                       " tenant_id = ? AND pipeline_id = ? AND id = ?",
                                       &err);
    int rc = st ? lf_stmt_bind(st, "sss", r->auth.tenant_id, pid, sid) : -LF_EINTERNAL;
    if (rc == 0) rc = lf_stmt_step(st);
    json_t *s = rc == LF_DB_ROW ? stage_row(c, r->auth.tenant_id, st) : NULL;
    if (st) lf_stmt_done(st);
    if (s)
        lf_reply_json(r, status, s);
    else
        lf_reply_error(r, rc < 0 ? rc : -LF_EINTERNAL, &err);
    lf_err_clear(&err);
}

/* GET /pipelines: every pipeline by position and name, each with its stages; one page. */
static void list_pipelines(struct lf_req *r)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) return;
    struct lf_err err = {0};
    const char *tenant = r->auth.tenant_id;
    json_t *items = json_array(), *by_id = json_object();
    int rc = lf_db_begin(c); /* one snapshot for both reads */
    int began = rc == 0;
    struct lf_stmt *st = NULL;
    if (rc == 0)
        st = lf_db_prepare(c,
                           "SELECT " PIPELINE_COLS " FROM pipelines WHERE tenant_id = ?"
                           " ORDER BY position, name, id LIMIT ?",
                           &err);
    if (rc == 0) rc = st ? lf_stmt_bind(st, "si", tenant, PIPELINES_MAX) : -LF_EINTERNAL;
    while (rc >= 0 && (rc = lf_stmt_step(st)) == LF_DB_ROW) {
        json_t *p = pipeline_row(st);
        json_object_set_new(p, "stages", json_array());
        json_object_set(by_id, lf_stmt_text(st, 0), p);
        json_array_append_new(items, p);
    }
    if (st) lf_stmt_done(st);
    st = NULL;
    if (rc >= 0)
        st = lf_db_prepare(c,
                           "SELECT " STAGE_COLS " FROM pipeline_stages WHERE tenant_id = ?"
                           " ORDER BY pipeline_id, position, id",
                           &err);
    if (rc >= 0) rc = st ? lf_stmt_bind(st, "s", tenant) : -LF_EINTERNAL;
    while (rc >= 0 && (rc = lf_stmt_step(st)) == LF_DB_ROW) {
        json_t *stages = json_object_get(json_object_get(by_id, lf_stmt_text(st, 1)), "stages");
        if (stages && json_array_size(stages) < STAGES_MAX)
            json_array_append_new(stages, stage_row(c, tenant, st));
    }
    if (st) lf_stmt_done(st);
    if (began) lf_db_rollback(c);
    lf_db_release(c);
    json_decref(by_id);
    if (rc >= 0) {
        lf_reply_json(r, 200, lf_api_page(items, NULL));
    } else {
        json_decref(items);
        lf_reply_error(r, rc, &err);
    }
    lf_err_clear(&err);
}

static void get_pipeline(struct lf_req *r)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) return;
    reply_pipeline(r, c, r->params[0], 200);
    lf_db_release(c);
}

static void create_pipeline(struct lf_req *r)
{
    static const char *const default_stages =
        "[{\"slug\": \"new\", \"name\": \"New\", \"kind\": \"open\"},"
        " {\"slug\": \"won\", \"name\": \"Won\", \"kind\": \"won\"},"
        " {\"slug\": \"lost\", \"name\": \"Lost\", \"kind\": \"lost\"}]";
    struct lf_err err = {0};
    json_t *body = lf_req_json(r, &err), *order = NULL, *stages = NULL;
    if (body) check_members(body, pipeline_create_keys, pipeline_required, "", "pipeline", &err);
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        goto out;
    }
    stages = json_object_get(body, "stages");
    stages = stages ? json_incref(stages) : json_loads(default_stages, 0, NULL);
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) goto out;
    const char *tenant = r->auth.tenant_id;
    char id[40], sid[40];
    int64_t now = lf_now_ms();
    lf_uuid7(id);
    int rc = lf_db_begin(c);
    if (rc == 0) order = load_order(c, tenant, NULL, &rc, &err);
    json_int_t n = order ? (json_int_t)json_array_size(order) : 0, pos = n + 1;
    if (rc >= 0 && n >= PIPELINES_MAX)
        rc = lf_err_set(&err, -LF_ECONFLICT, "a tenant has at most %d pipelines", PIPELINES_MAX);
    if (rc >= 0) rc = position_arg(body, n + 1, &pos, &err);
    if (rc >= 0) {
        json_t *disc = json_object_get(body, "is_discovery");
        rc = lf_db_run(c, &err,
                       "INSERT INTO pipelines (id, tenant_id, slug, name, intent, owner_role,"
                       " is_discovery, position, created_at, updated_at)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       "ssssssiIII", id, tenant, json_string_value(json_object_get(body, "slug")),
                       json_string_value(json_object_get(body, "name")),
                       json_string_value(json_object_get(body, "intent")),
                       json_string_value(json_object_get(body, "owner_role")), json_is_true(disc),
                       (int64_t)pos, now, now);
        if (rc == -LF_ECONSTRAINT) rc = slug_taken(&err, body, "pipeline");
    }
    if (rc >= 0) {
        place(order, id, pos);
        rc = write_order(c, tenant, NULL, order, now, &err);
    }
    size_t i;
    json_t *s;
    json_array_foreach(stages, i, s)
    {
        if (rc < 0) break;
        rc = insert_stage(c, tenant, id, s, (json_int_t)i + 1, now, sid, &err);
    }
    rc = end_tx(c, rc);
    if (rc >= 0) {
        lf_log_info("pipeline created", "{s:s, s:s}", "pipeline_id", id, "by", r->auth.sub);
        reply_pipeline(r, c, id, 201);
    } else {
        lf_reply_error(r, rc, &err);
    }
    lf_db_release(c);
out:
    json_decref(order);
    json_decref(stages);
    json_decref(body);
    lf_err_clear(&err);
}

static void patch_pipeline(struct lf_req *r)
{
    static const char *const columns[] = {"slug",       "name",         "intent",
                                          "owner_role", "is_discovery", NULL};
    struct lf_err err = {0};
    json_t *body = lf_req_json(r, &err), *order = NULL;
    if (body) check_members(body, pipeline_patch_keys, NULL, "", "pipeline", &err);
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        goto out;
    }
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) goto out;
    const char *tenant = r->auth.tenant_id;
    char id[40];
    int64_t now = lf_now_ms();
    int rc = lf_db_begin(c);
    char old_slug[64] = "";
    if (rc == 0) rc = find_pipeline(c, tenant, r->params[0], id, old_slug, &err);
    if (rc >= 0) {
        rc = set_members(c, "pipelines", columns, tenant, id, body, &err);
        if (rc == -LF_ECONSTRAINT) rc = slug_taken(&err, body, "pipeline");
    }
    /* the routing setting names pipelines by slug */
    if (rc >= 0 && json_is_string(json_object_get(body, "slug")))
        rc = lf_routing_pipeline_renamed(c, tenant, old_slug,
                                         json_string_value(json_object_get(body, "slug")), now);
    if (rc >= 0 && json_object_get(body, "position")) {
        order = load_order(c, tenant, NULL, &rc, &err);
        json_int_t pos = 0;
        if (rc >= 0) rc = position_arg(body, (json_int_t)json_array_size(order), &pos, &err);
        if (rc >= 0) {
            place(order, id, pos);
            rc = write_order(c, tenant, NULL, order, now, &err);
        }
    }
    if (rc >= 0) rc = touch_pipeline(c, tenant, id, now, &err);
    rc = end_tx(c, rc);
    if (rc >= 0)
        reply_pipeline(r, c, id, 200);
    else
        lf_reply_error(r, rc, &err);
    lf_db_release(c);
out:
    json_decref(order);
    json_decref(body);
    lf_err_clear(&err);
}

/* DELETE /pipelines/{id}: refused while an open deal is in it; otherwise its closed deals go
 * with their stage history (tasks keep their lead, lose the deal), its stages, and leads that
 * pointed at it point at no pipeline. */
static void delete_pipeline(struct lf_req *r)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) return;
    struct lf_err err = {0};
    const char *tenant = r->auth.tenant_id;
    char id[40];
    int64_t now = lf_now_ms(), open = 0, closed = 0;
    json_t *order = NULL;
    char slug[64] = "";
    int rc = lf_db_begin(c);
    if (rc == 0) rc = find_pipeline(c, tenant, r->params[0], id, slug, &err);
    if (rc >= 0)
        rc = lf_db_int(c, &err, &open,
                       "SELECT COUNT(*) FROM deals WHERE tenant_id = ? AND pipeline_id = ?"
                       " AND status = 'open'",
                       "ss", tenant, id);
    if (rc >= 0 && open > 0) {
        rc = lf_err_set(&err, -LF_ECONFLICT,
                        "pipeline %s holds %lld open deal%s; close or move %s first", r->params[0],
                        (long long)open, open == 1 ? "" : "s", open == 1 ? "it" : "them");
        err.ext = json_pack("{s:I}", "open_deals", (json_int_t)open);
    }
    if (rc >= 0)
        rc = lf_db_run(c, &err,
                       "UPDATE tasks SET deal_id = NULL, updated_at = ? WHERE tenant_id = ? AND"
                       " deal_id IN (SELECT id FROM deals WHERE tenant_id = ? AND pipeline_id = ?)",
                       "Isss", now, tenant, tenant, id);
    if (rc >= 0)
        rc = lf_db_run(c, &err,
                       "DELETE FROM deal_stage_history WHERE tenant_id = ? AND deal_id IN"
                       " (SELECT id FROM deals WHERE tenant_id = ? AND pipeline_id = ?)",
                       "sss", tenant, tenant, id);
    if (rc >= 0) {
        rc = lf_db_run(c, &err, "DELETE FROM deals WHERE tenant_id = ? AND pipeline_id = ?", "ss",
                       tenant, id);
        closed = rc;
    }
    if (rc >= 0)
        rc = lf_db_run(c, &err,
                       "UPDATE leads SET pipeline_id = NULL, updated_at = ? WHERE tenant_id = ?"
                       " AND pipeline_id = ?",
                       "Iss", now, tenant, id);
    if (rc >= 0) rc = lf_auto_stage_rules_delete(c, tenant, id, NULL);
    if (rc >= 0)
        rc = lf_db_run(c, &err,
                       "DELETE FROM pipeline_stages WHERE tenant_id = ? AND pipeline_id = ?", "ss",
                       tenant, id);
    if (rc >= 0)
        rc = lf_db_run(c, &err, "DELETE FROM pipelines WHERE tenant_id = ? AND id = ?", "ss",
                       tenant, id);
    if (rc >= 0) rc = lf_routing_pipeline_renamed(c, tenant, slug, NULL, now);
    if (rc >= 0) order = load_order(c, tenant, NULL, &rc, &err);
    if (rc >= 0) rc = write_order(c, tenant, NULL, order, now, &err);
    rc = end_tx(c, rc);
    lf_db_release(c);
    if (rc >= 0) {
        lf_log_info("pipeline deleted", "{s:s, s:I, s:s}", "pipeline_id", id, "closed_deals",
                    (json_int_t)closed, "by", r->auth.sub);
        lf_reply_json(r, 204, NULL);
    } else {
        lf_reply_error(r, rc, &err);
    }
    json_decref(order);
    lf_err_clear(&err);
}

/* POST /pipelines/{id}/stages: a stage at position (default: last), the others shifted. */
static void create_stage(struct lf_req *r)
{
    struct lf_err err = {0};
    json_t *body = lf_req_json(r, &err), *order = NULL;
    if (body) check_members(body, stage_keys, stage_required, "", "stage", &err);
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        goto out;
    }
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) goto out;
    const char *tenant = r->auth.tenant_id;
    char pid[40], sid[40];
    int64_t now = lf_now_ms();
    int rc = lf_db_begin(c);
    if (rc == 0) rc = find_pipeline(c, tenant, r->params[0], pid, NULL, &err);
    if (rc >= 0) order = load_order(c, tenant, pid, &rc, &err);
    json_int_t n = order ? (json_int_t)json_array_size(order) : 0, pos = n + 1;
    if (rc >= 0 && n >= STAGES_MAX)
        rc = lf_err_set(&err, -LF_ECONFLICT, "a pipeline has at most %d stages", STAGES_MAX);
    if (rc >= 0) rc = position_arg(body, n + 1, &pos, &err);
    if (rc >= 0) {
        rc = insert_stage(c, tenant, pid, body, pos, now, sid, &err);
        if (rc == -LF_ECONSTRAINT) rc = slug_taken(&err, body, "stage of this pipeline");
    }
    if (rc >= 0) {
        place(order, sid, pos);
        rc = write_order(c, tenant, pid, order, now, &err);
    }
    if (rc >= 0) rc = touch_pipeline(c, tenant, pid, now, &err);
    rc = end_tx(c, rc);
    if (rc >= 0)
        reply_stage(r, c, pid, sid, 201);
    else
        lf_reply_error(r, rc, &err);
    lf_db_release(c);
out:
    json_decref(order);
    json_decref(body);
    lf_err_clear(&err);
}

/* How many deals (status is open, or any) sit in stage sid. Returns ≥ 0 or a negative code. */
static int64_t deals_in_stage(struct lf_conn *c, const char *tenant, const char *sid,
                              struct lf_err *err)
{
    int64_t n = 0;
    int rc =
        lf_db_int(c, err, &n, "SELECT COUNT(*) FROM deals WHERE tenant_id = ? AND stage_id = ?",
                  "ss", tenant, sid);
    return rc < 0 ? rc : n;
}

/* 1 when stage sid, of kind open, is the only open stage of pipeline pid; 0 when not; or a
 * negative code. */
static int last_open_stage(struct lf_conn *c, const char *tenant, const char *pid, const char *kind,
                           struct lf_err *err)
{
    if (strcmp(kind, "open") != 0) return 0;
    int64_t n = 0;
    int rc = lf_db_int(c, err, &n,
                       "SELECT COUNT(*) FROM pipeline_stages WHERE tenant_id = ? AND"
                       " pipeline_id = ? AND kind = 'open'",
                       "ss", tenant, pid);
    return rc < 0 ? rc : n <= 1;
}

/* PATCH /pipelines/{id}/stages/{stage}: name, slug, kind, position. */
static void patch_stage(struct lf_req *r)
{
    static const char *const columns[] = {"slug", "name", "kind", NULL};
    struct lf_err err = {0};
    json_t *body = lf_req_json(r, &err), *order = NULL;
    if (body) check_members(body, stage_keys, NULL, "", "stage", &err);
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        goto out;
    }
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) goto out;
    const char *tenant = r->auth.tenant_id;
    char pid[40], sid[40], kind[8];
    int64_t now = lf_now_ms();
    int rc = lf_db_begin(c);
    if (rc == 0) rc = find_pipeline(c, tenant, r->params[0], pid, NULL, &err);
    if (rc >= 0) rc = find_stage(c, tenant, pid, r->params[1], sid, kind, &err);
    const char *new_kind = json_string_value(json_object_get(body, "kind"));
    if (rc >= 0 && new_kind && strcmp(new_kind, kind) != 0) {
        int64_t held = deals_in_stage(c, tenant, sid, &err);
        int last = held == 0 ? last_open_stage(c, tenant, pid, kind, &err) : 0;
        if (held < 0 || last < 0) {
            rc = held < 0 ? (int)held : last;
        } else if (held > 0) {
            rc = lf_err_set(&err, -LF_ECONFLICT,
                            "stage %s holds %lld deal%s; its kind cannot change while it does",
                            r->params[1], (long long)held, held == 1 ? "" : "s");
            err.ext = json_pack("{s:I}", "deals", (json_int_t)held);
        } else if (last) {
            rc = lf_err_set(&err, -LF_ECONFLICT,
                            "stage %s is the pipeline's last open stage; it stays open",
                            r->params[1]);
        }
    }
    if (rc >= 0) {
        rc = set_members(c, "pipeline_stages", columns, tenant, sid, body, &err);
        if (rc == -LF_ECONSTRAINT) rc = slug_taken(&err, body, "stage of this pipeline");
    }
    if (rc >= 0 && json_object_get(body, "position")) {
        order = load_order(c, tenant, pid, &rc, &err);
        json_int_t pos = 0;
        if (rc >= 0) rc = position_arg(body, (json_int_t)json_array_size(order), &pos, &err);
        if (rc >= 0) {
            place(order, sid, pos);
            rc = write_order(c, tenant, pid, order, now, &err);
        }
    }
    if (rc >= 0)
        rc = lf_db_run(c, &err,
                       "UPDATE pipeline_stages SET updated_at = ? WHERE tenant_id = ? AND id = ?",
                       "Iss", now, tenant, sid);
    if (rc >= 0) rc = touch_pipeline(c, tenant, pid, now, &err);
    rc = end_tx(c, rc);
    if (rc >= 0)
        reply_stage(r, c, pid, sid, 200);
    else
        lf_reply_error(r, rc, &err);
    lf_db_release(c);
out:
    json_decref(order);
    json_decref(body);
    lf_err_clear(&err);
}

/* PUT /pipelines/{id}/stages/order {"stages": [id or slug, …]}: every stage exactly once. */
static void order_stages(struct lf_req *r)
{
    struct lf_err err = {0};
    json_t *body = lf_req_json(r, &err), *list = NULL, *ids = json_array();
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        if (strcmp(key, "stages") != 0) lf_err_field(&err, key, "is not a field (allowed: stages)");
    }
    list = json_object_get(body, "stages");
    if (body && (!json_is_array(list) || json_array_size(list) > ORDER_MAX))
        lf_err_field(&err, "stages",
                     "must be a list of every stage's id or slug, in the new order");
    size_t i, j;
    json_array_foreach(list, i, v)
    {
        if (json_is_string(v)) continue;
        char field[48];
        snprintf(field, sizeof field, "stages[%zu]", i);
        lf_err_field(&err, field, "must be a stage id or slug");
    }
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        goto out;
    }
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) goto out;
    const char *tenant = r->auth.tenant_id;
    char pid[40];
    int64_t now = lf_now_ms();
    json_t *stages = NULL;
    int rc = lf_db_begin(c);
    if (rc == 0) rc = find_pipeline(c, tenant, r->params[0], pid, NULL, &err);
    if (rc >= 0) stages = load_stages(c, tenant, pid, &rc, &err);
    size_t n = stages ? json_array_size(stages) : 0;
    char *seen = calloc(n + 1, 1);
    json_array_foreach(list, i, v)
    {
        if (rc < 0) break;
        const char *ref = json_string_value(v);
        for (j = 0; j < n; j++) {
            json_t *s = json_array_get(stages, j);
            if (strcmp(ref, json_string_value(json_object_get(s, "id"))) == 0 ||
                strcmp(ref, json_string_value(json_object_get(s, "slug"))) == 0)
                break;
        }
        char field[48];
        snprintf(field, sizeof field, "stages[%zu]", i);
        if (j == n)
            lf_err_field(&err, field, "%.80s is not a stage of this pipeline", ref);
        else if (seen[j])
            lf_err_field(&err, field, "lists stage %s again", ref);
        else
            json_array_append_new(ids, json_string(json_string_value(
                                           json_object_get(json_array_get(stages, j), "id"))));
        if (j < n) seen[j] = 1;
    }
    for (j = 0; rc >= 0 && j < n; j++)
        if (!seen[j])
            lf_err_field(&err, "stages", "misses stage %s",
                         json_string_value(json_object_get(json_array_get(stages, j), "slug")));
    free(seen);
    if (rc >= 0 && err.code) rc = err.code;
    if (rc >= 0) rc = write_order(c, tenant, pid, ids, now, &err);
    if (rc >= 0) rc = touch_pipeline(c, tenant, pid, now, &err);
    rc = end_tx(c, rc);
    if (rc >= 0)
        reply_pipeline(r, c, pid, 200);
    else
        lf_reply_error(r, rc, &err);
    lf_db_release(c);
    json_decref(stages);
out:
    json_decref(ids);
    json_decref(body);
    lf_err_clear(&err);
}

/* DELETE /pipelines/{id}/stages/{stage}: refused while any deal sits in it, or when it is the
 * last open stage; the stages after it move up. */
static void delete_stage(struct lf_req *r)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) return;
    struct lf_err err = {0};
    const char *tenant = r->auth.tenant_id;
    char pid[40], sid[40], kind[8];
    int64_t now = lf_now_ms();
    json_t *order = NULL;
    int rc = lf_db_begin(c);
    if (rc == 0) rc = find_pipeline(c, tenant, r->params[0], pid, NULL, &err);
    if (rc >= 0) rc = find_stage(c, tenant, pid, r->params[1], sid, kind, &err);
    if (rc >= 0) {
        int64_t held = deals_in_stage(c, tenant, sid, &err);
        int last = held == 0 ? last_open_stage(c, tenant, pid, kind, &err) : 0;
        if (held < 0 || last < 0) {
            rc = held < 0 ? (int)held : last;
        } else if (held > 0) {
            rc = lf_err_set(&err, -LF_ECONFLICT,
                            "stage %s holds %lld deal%s (open or closed); move or delete %s first",
                            r->params[1], (long long)held, held == 1 ? "" : "s",
                            held == 1 ? "it" : "them");
            err.ext = json_pack("{s:I}", "deals", (json_int_t)held);
        } else if (last) {
            rc = lf_err_set(&err, -LF_ECONFLICT,
                            "stage %s is the pipeline's last open stage; a pipeline keeps one",
                            r->params[1]);
        }
    }
    if (rc >= 0) rc = lf_auto_stage_rules_delete(c, tenant, pid, sid);
    if (rc >= 0)
        rc = lf_db_run(c, &err, "DELETE FROM pipeline_stages WHERE tenant_id = ? AND id = ?", "ss",
                       tenant, sid);
    if (rc >= 0) order = load_order(c, tenant, pid, &rc, &err);
    if (rc >= 0) rc = write_order(c, tenant, pid, order, now, &err);
    if (rc >= 0) rc = touch_pipeline(c, tenant, pid, now, &err);
    rc = end_tx(c, rc);
    lf_db_release(c);
    if (rc >= 0)
        lf_reply_json(r, 204, NULL);
    else
        lf_reply_error(r, rc, &err);
    json_decref(order);
    lf_err_clear(&err);
}

/* A board deal: the deal's summary and its lead's. The cursor is "<stage_entered_at>.<id>". */
static json_t *board_deal(struct lf_stmt *st, char *cursor)
{
    snprintf(cursor, LF_CURSOR_MAX, "%lld.%s", (long long)lf_stmt_int(st, 8), lf_stmt_text(st, 0));
    json_t *lead = json_null();
    if (!lf_stmt_isnull(st, 11)) {
        json_decref(lead);
        lead = json_pack("{s:s, s:o, s:o, s:o, s:I}", "id", lf_stmt_text(st, 11), "email",
                         lf_json_text(lf_stmt_text(st, 12)), "first_name",
                         lf_json_text(lf_stmt_text(st, 13)), "last_name",
                         lf_json_text(lf_stmt_text(st, 14)), "total_score",
                         (json_int_t)lf_stmt_int(st, 15));
    }
    return json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:o, s:s, s:o, s:o, s:o, s:o}", "id",
                     lf_stmt_text(st, 0), "lead_id", lf_stmt_text(st, 1), "name",
                     lf_stmt_text(st, 2), "value_cents", (json_int_t)lf_stmt_int(st, 3), "currency",
                     lf_stmt_text(st, 4), "status", lf_stmt_text(st, 5), "assigned_to",
                     lf_json_text(lf_stmt_text(st, 6)), "stage_id", lf_stmt_text(st, 7),
                     "stage_entered_at", lf_json_time(lf_stmt_int(st, 8), 0), "expected_close_at",
                     lf_json_time(lf_stmt_int(st, 9), lf_stmt_isnull(st, 9)), "created_at",
                     lf_json_time(lf_stmt_int(st, 10), 0), "lead", lead);
}

#define BOARD_DEAL_SQL                                                                             \
    "SELECT d.id, d.lead_id, d.name, d.value_cents, d.currency, d.status, d.assigned_to,"          \
    " d.stage_id, d.stage_entered_at, d.expected_close_at, d.created_at, l.id, l.email,"           \
    " l.first_name, l.last_name, l.total_score FROM deals d LEFT JOIN leads l"                     \
    " ON l.tenant_id = d.tenant_id AND l.id = d.lead_id"                                           \
    " WHERE d.tenant_id = ? AND d.pipeline_id = ? AND d.stage_id = ? AND d.status = 'open'"

/* Adds to stage s of the board: its open deals from after the cursor (at, id; id NULL: from
 * the start), at most limit, and next_cursor. Returns 0 or a negative code with err. */
static int board_deals(struct lf_conn *c, const char *tenant, const char *pid, json_t *s, int limit,
                       int64_t at, const char *after, struct lf_err *err)
{
    const char *sid = json_string_value(json_object_get(s, "id"));
    struct lf_stmt *st =
        after ? lf_db_prepare(c,
                              BOARD_DEAL_SQL " AND (d.stage_entered_at > ? OR"
                                             " (d.stage_entered_at = ? AND d.id > ?))"
                                             " ORDER BY d.stage_entered_at, d.id LIMIT ?",
                              err)
              : lf_db_prepare(c, BOARD_DEAL_SQL " ORDER BY d.stage_entered_at, d.id LIMIT ?", err);
    int rc = st == NULL ? -LF_EINTERNAL
             : after    ? lf_stmt_bind(st, "sssIIsi", tenant, pid, sid, at, at, after, limit + 1)
                        : lf_stmt_bind(st, "sssi", tenant, pid, sid, limit + 1);
    json_t *deals = json_array();
    char cursor[LF_CURSOR_MAX] = "", next[LF_CURSOR_MAX] = "";
    while (rc >= 0 && (rc = lf_stmt_step(st)) == LF_DB_ROW) {
        if ((int)json_array_size(deals) == limit) { /* one more: there is a next page */
            memcpy(next, cursor, sizeof next);
            break;
        }
        json_array_append_new(deals, board_deal(st, cursor));
    }
    if (st) lf_stmt_done(st);
    json_object_set_new(s, "deals", deals);
    json_object_set_new(s, "next_cursor", lf_json_text(next[0] ? next : NULL));
    return rc < 0 ? rc : 0;
}

/* The open deals' count and value per stage (and in all) of pipeline pid into sums:
 * {"<stage id>": {"count", "value_cents", "value_by_currency"}, "": the pipeline's}. */
static int board_sums(struct lf_conn *c, const char *tenant, const char *pid, json_t *sums,
                      struct lf_err *err)
{
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT stage_id, currency, COUNT(*), SUM(value_cents)"
                                       " FROM deals WHERE tenant_id = ? AND pipeline_id = ? AND"
                                       " status = 'open' GROUP BY stage_id, currency",
                                       err);
    int rc = st ? lf_stmt_bind(st, "ss", tenant, pid) : -LF_EINTERNAL;
    while (rc >= 0 && (rc = lf_stmt_step(st)) == LF_DB_ROW) {
        const char *keys[2] = {lf_stmt_text(st, 0), ""}, *currency = lf_stmt_text(st, 1);
        json_int_t n = lf_stmt_int(st, 2), value = lf_stmt_int(st, 3);
        for (int k = 0; k < 2; k++) {
            json_t *sum = json_object_get(sums, keys[k]);
            if (sum == NULL) {
                sum = json_pack("{s:I, s:I, s:{}}", "count", (json_int_t)0, "value_cents",
                                (json_int_t)0, "value_by_currency");
                json_object_set_new(sums, keys[k], sum);
            }
            json_t *by = json_object_get(sum, "value_by_currency");
            json_object_set_new(
                sum, "count", json_integer(json_integer_value(json_object_get(sum, "count")) + n));
            json_object_set_new(
                sum, "value_cents",
                json_integer(json_integer_value(json_object_get(sum, "value_cents")) + value));
            json_object_set_new(
                by, currency,
                json_integer(json_integer_value(json_object_get(by, currency)) + value));
        }
    }
    if (st) lf_stmt_done(st);
    return rc < 0 ? rc : 0;
}

static void add_sums(json_t *to, json_t *sum)
{
    json_object_set_new(to, "count",
                        json_integer(json_integer_value(json_object_get(sum, "count"))));
    json_object_set_new(to, "value_cents",
                        json_integer(json_integer_value(json_object_get(sum, "value_cents"))));
    json_t *by = json_object_get(sum, "value_by_currency");
    json_object_set_new(to, "value_by_currency", by ? json_incref(by) : json_object());
}

/* GET /pipelines/{id}/board[?stage=&cursor=&limit=]: the pipeline with its open deals' count
 * and value, and per stage (at most STAGES_MAX) the same and its first page of open deals,
 * oldest in the stage first. With stage, only that stage, paged from cursor. */
static void board(struct lf_req *r)
{
    struct lf_err err = {0};
    int limit = 50;
    lf_req_limit(r, &limit, &err);
    const char *stage = lf_req_query(r, "stage"), *cursor = lf_req_query(r, "cursor");
    long long at;
    const char *after = lf_api_cursor(r, &at, &err);
    if (cursor && stage == NULL) lf_err_field(&err, "cursor", "pages one stage: give stage too");
    if (stage && *stage == '\0') lf_err_field(&err, "stage", "must be a stage id or slug");
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        lf_err_clear(&err);
        return;
    }
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) {
        lf_err_clear(&err);
        return;
    }
    const char *tenant = r->auth.tenant_id;
    json_t *p = NULL, *stages = NULL, *sums = json_object();
    int rc = lf_db_begin(c); /* one snapshot: the sums match the deals listed */
    int began = rc == 0;
    if (rc == 0) p = load_pipeline(c, tenant, r->params[0], 0, &rc, &err);
    const char *pid = p ? json_string_value(json_object_get(p, "id")) : NULL;
    if (p) stages = load_stages(c, tenant, pid, &rc, &err);
    if (stages && stage) { /* just the one stage */
        size_t i;
        json_t *s, *one = NULL;
        json_array_foreach(stages, i, s)
        {
            if (strcmp(stage, json_string_value(json_object_get(s, "id"))) == 0 ||
                strcmp(stage, json_string_value(json_object_get(s, "slug"))) == 0)
                one = json_pack("[O]", s);
        }
        json_decref(stages);
        stages = one;
        if (one == NULL)
            rc = lf_err_set(&err, -LF_ENOTFOUND, "no stage %s in this pipeline", stage);
    }
    if (rc >= 0 && stages) rc = board_sums(c, tenant, pid, sums, &err);
    if (rc >= 0 && stages) {
        size_t i;
        json_t *s;
        json_array_foreach(stages, i, s)
        {
            json_t *sum = json_object_get(sums, json_string_value(json_object_get(s, "id")));
            add_sums(s, sum);
            rc = board_deals(c, tenant, pid, s, limit, (int64_t)at, after, &err);
            if (rc < 0) break;
        }
    }
    if (began) lf_db_rollback(c);
    lf_db_release(c);
    if (rc >= 0 && p && stages) {
        add_sums(p, json_object_get(sums, ""));
        json_object_set_new(p, "stages", stages);
        stages = NULL;
        lf_reply_json(r, 200, p);
        p = NULL;
    } else {
        lf_reply_error(r, rc < 0 ? rc : -LF_EINTERNAL, &err);
    }
    json_decref(p);
    json_decref(stages);
    json_decref(sums);
    lf_err_clear(&err);
}

const struct lf_route lf_pipelines_routes[] = {
    {"GET", "/api/v1/pipelines", list_pipelines, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"POST", "/api/v1/pipelines", create_pipeline, LF_AUTH_TOKEN, LF_ROLES_MANAGE, 1, 0, 0},
    {"GET", "/api/v1/pipelines/{id}", get_pipeline, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"PATCH", "/api/v1/pipelines/{id}", patch_pipeline, LF_AUTH_TOKEN, LF_ROLES_MANAGE, 1, 0, 0},
    {"DELETE", "/api/v1/pipelines/{id}", delete_pipeline, LF_AUTH_TOKEN, LF_ROLES_MANAGE, 0, 0, 0},
    {"GET", "/api/v1/pipelines/{id}/board", board, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"POST", "/api/v1/pipelines/{id}/stages", create_stage, LF_AUTH_TOKEN, LF_ROLES_MANAGE, 1, 0,
     0},
    {"PUT", "/api/v1/pipelines/{id}/stages/order", order_stages, LF_AUTH_TOKEN, LF_ROLES_MANAGE, 1,
     0, 0},
    {"PATCH", "/api/v1/pipelines/{id}/stages/{stage}", patch_stage, LF_AUTH_TOKEN, LF_ROLES_MANAGE,
     1, 0, 0},
    {"DELETE", "/api/v1/pipelines/{id}/stages/{stage}", delete_stage, LF_AUTH_TOKEN,
     LF_ROLES_MANAGE, 0, 0, 0},
    {NULL, NULL, NULL, 0, 0, 0, 0, 0},
};
