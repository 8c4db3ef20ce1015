/* Tasks: list with filters, get, create (through the deal engine, which emits task.created),
 * change, complete and delete. A task's JSON is the engine's (lf_task_row_json). */
#include "api/api.h"
#include "engine/automation.h"
#include "engine/deal.h"
#include "engine/lead.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/timeutil.h"

#include <stdio.h>
#include <string.h>

#define TITLE_MAX 500   /* characters of a title */
#define NOTES_MAX 10000 /* characters of the notes */

static const char *const statuses[] = {"open", "done", "cancelled", NULL};

static json_t *load_task(struct lf_conn *c, const char *tenant, const char *id, int *rc)
{
    struct lf_stmt *st =
        lf_db_prepare(c, "SELECT " LF_TASK_COLS " FROM tasks WHERE tenant_id = ? AND id = ?", NULL);
    if (st == NULL) {
        *rc = -LF_EINTERNAL;
        return NULL;
    }
    lf_stmt_bind(st, "ss", tenant, id);
    *rc = lf_stmt_step(st);
    json_t *o = *rc == LF_DB_ROW ? lf_task_row_json(st, lf_now_ms()) : NULL;
    lf_stmt_done(st);
    return o;
}

static void reply_task(struct lf_req *r, struct lf_conn *c, const char *id, int status)
{
    int rc;
    json_t *o = load_task(c, r->auth.tenant_id, id, &rc);
    lf_api_reply_found(r, o, rc, status, "task", id);
}

static json_t *task_row(struct lf_stmt *st, void *arg, char *cursor)
{
    snprintf(cursor, LF_CURSOR_MAX, "%s", lf_stmt_text(st, 0));
    return lf_task_row_json(st, *(const int64_t *)arg);
}

/* GET /tasks: oldest first, by id; filters owner (a member id or "none"), lead, deal, status,
 * due_before, due_after, overdue. */
static void list_tasks(struct lf_req *r)
{
    struct lf_err err = {0};
    struct lf_query q = {0};
    int limit;
    const char *cursor;
    int64_t now = lf_now_ms(), before = -1, after = -1;
    lf_req_page(r, &limit, &cursor, &err);
    const char *owner = lf_req_query(r, "owner"), *lead = lf_req_query(r, "lead");
    const char *deal = lf_req_query(r, "deal"), *status = lf_req_query(r, "status");
    const char *overdue = lf_req_query(r, "overdue");
    if (status && !lf_api_one_of(status, statuses))
        lf_err_field(&err, "status", "must be open, done or cancelled");
    if (overdue && strcmp(overdue, "true") != 0 && strcmp(overdue, "false") != 0)
        lf_err_field(&err, "overdue", "must be true or false");
    lf_api_time_arg(r, "due_before", &before, &err);
    lf_api_time_arg(r, "due_after", &after, &err);
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        goto out;
    }
    lf_query_text(&q, "SELECT " LF_TASK_COLS " FROM tasks WHERE tenant_id = ?", r->auth.tenant_id);
    if (owner && strcmp(owner, "none") == 0)
        lf_query_sql(&q, " AND assigned_to IS NULL");
    else if (owner)
        lf_query_text(&q, " AND assigned_to = ?", owner);
    if (lead) lf_query_text(&q, " AND lead_id = ?", lead);
    if (deal) lf_query_text(&q, " AND deal_id = ?", deal);
    if (status) lf_query_text(&q, " AND status = ?", status);
    if (before >= 0) lf_query_int(&q, " AND due_at < ?", before);
    if (after >= 0) lf_query_int(&q, " AND due_at >= ?", after);
    /* overdue as lf_task_row_json tells it: open and due before now */
    if (overdue && strcmp(overdue, "true") == 0)
        lf_query_int(&q, " AND status = 'open' AND due_at < ?", now);
    else if (overdue)
        lf_query_int(&q, " AND NOT (status = 'open' AND due_at IS NOT NULL AND due_at < ?)", now);
    if (cursor) lf_query_text(&q, " AND id > ?", cursor);
    lf_query_int(&q, " ORDER BY id LIMIT ?", limit + 1);
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) goto out;
    lf_api_reply_rows(r, lf_query_prepare(&q, c, &err), limit, task_row, &now, NULL);
    lf_db_release(c);
out:
    lf_query_free(&q);
    lf_err_clear(&err);
}

static void get_task(struct lf_req *r)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_READ);
    if (c == NULL) return;
    reply_task(r, c, r->params[0], 200);
    lf_db_release(c);
}

/* The body keys of a task and which of them a create or a change may hold. */
enum { K_TITLE, K_TYPE, K_ASSIGNED, K_DUE, K_NOTES, K_STATUS, K_LEAD, K_DEAL, NK };
static const char *const task_keys[NK] = {"title", "task_type", "assigned_to", "due_at",
                                          "notes", "status",    "lead_id",     "deal_id"};

/* The checked values of a task body; has[k] says whether task_keys[k] was given. Text is
 * borrowed from the body; NULL stands for null. */
struct task_in {
    int has[NK];
    const char *text[NK];
    int64_t due_at; /* -1: null */
};

static void check_task(json_t *body, int creating, struct task_in *t, struct lf_err *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        int k = 0;
        while (k < NK && strcmp(key, task_keys[k]) != 0) k++;
        /* a create sets what a task is about; a change may not move it */
        if (k == NK || (creating && k == K_STATUS) || (!creating && (k == K_LEAD || k == K_DEAL))) {
            lf_err_field(err, key, "may not be set (allowed: %s)",
                         creating ? "title, lead_id, deal_id, task_type, assigned_to, due_at,"
                                    " notes"
                                  : "title, task_type, assigned_to, due_at, notes, status");
            continue;
        }
        t->has[k] = 1;
        t->text[k] = json_string_value(v);
        switch (k) {
        case K_TITLE:
            if (!json_is_string(v) || lf_api_chars(v) == 0 || lf_api_chars(v) > TITLE_MAX)
                lf_err_field(err, key, "must be a string of 1 to %d characters", TITLE_MAX);
            break;
        case K_TYPE:
            if (!lf_api_is_slug(t->text[k]))
                lf_err_field(err, key,
                             "must be a slug: 1 to 63 of a-z, 0-9, '_' and '-', such as call");
            break;
        case K_NOTES:
            if (!json_is_null(v) && (!json_is_string(v) || lf_api_chars(v) > NOTES_MAX))
                lf_err_field(err, key, "must be a string of at most %d characters, or null",
                             NOTES_MAX);
            break;
        case K_DUE:
            t->due_at = -1;
            if (!json_is_null(v) &&
                (!json_is_string(v) || lf_time_parse(json_string_value(v), &t->due_at) < 0))
                lf_err_field(err, key, "must be an RFC 3339 date-time, or null");
            break;
        case K_STATUS:
            if (json_is_string(v) && strcmp(t->text[k], "done") == 0)
                lf_err_field(err, key, "done is set by POST /api/v1/tasks/{id}/complete");
            else if (!json_is_string(v) ||
                     (strcmp(t->text[k], "open") != 0 && strcmp(t->text[k], "cancelled") != 0))
                lf_err_field(err, key, "must be open or cancelled");
            break;
        default: /* assigned_to, lead_id, deal_id: an id or null */
            if (!json_is_null(v) && !json_is_string(v)) lf_err_field(err, key, "must be an id");
        }
    }
    if (creating && !t->has[K_TITLE]) lf_err_field(err, "title", "is required");
}

/* POST /tasks: lf_task_create, 201 with the task. A merged lead's id means its survivor. */
static void create_task(struct lf_req *r)
{
    struct lf_err err = {0};
    struct task_in t = {.due_at = -1};
    json_t *body = lf_req_json(r, &err);
    if (body) check_task(body, 1, &t, &err);
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        goto out;
    }
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) goto out;
    const char *tenant = r->auth.tenant_id;
    char id[40], lead[40] = "", cause[80];
    char op[40]; /* a client's X-Request-Id may repeat: the cause must not */
    lf_uuid7(op);
    snprintf(cause, sizeof cause, "api:%s", op);
    int rc = lf_automate_begin(c);
    if (rc == 0 && t.text[K_LEAD]) {
        int found = lf_lead_resolve_id(c, tenant, t.text[K_LEAD], lead);
        if (found == 0) rc = lf_err_set(&err, -LF_ENOTFOUND, "no lead %s", t.text[K_LEAD]);
        if (found < 0) rc = found;
    }
    if (rc >= 0 && *lead && t.text[K_DEAL]) { /* both given: they must agree */
        struct lf_stmt *st =
            lf_db_prepare(c, "SELECT lead_id FROM deals WHERE tenant_id = ? AND id = ?", &err);
        rc = st ? lf_stmt_bind(st, "ss", tenant, t.text[K_DEAL]) : -LF_EINTERNAL;
        if (rc >= 0) rc = lf_stmt_step(st);
        if (rc == LF_DB_ROW && strcmp(lf_stmt_text(st, 0), lead) != 0)
            rc = lf_err_field(&err, "lead_id", "is not the lead of deal %s", t.text[K_DEAL]);
        if (st) lf_stmt_done(st);
        /* a missing deal is the engine's 404 */
    }
    if (rc >= 0) {
        struct lf_task_new tn = {.lead_id = *lead ? lead : NULL,
                                 .deal_id = t.text[K_DEAL],
                                 .title = t.text[K_TITLE],
                                 .task_type = t.text[K_TYPE],
                                 .assigned_to = t.text[K_ASSIGNED],
                                 .notes = t.text[K_NOTES],
                                 .due_at = t.due_at,
                                 .by = r->auth.sub,
                                 .cause = cause};
        rc = lf_task_create(c, tenant, &tn, lf_now_ms(), id, &err);
    }
    if (rc >= 0)
        rc = lf_automate_commit(c, r->auth.tenant_id, lf_now_ms(), &err);
    else
        lf_automate_rollback(c);
    if (rc >= 0) {
        lf_log_info("task created", "{s:s, s:s}", "task_id", id, "by", r->auth.sub);
        reply_task(r, c, id, 201);
    } else {
        lf_reply_error(r, rc, &err);
    }
    lf_db_release(c);
out:
    json_decref(body);
    lf_err_clear(&err);
}

/* PATCH /tasks/{id}: the given keys in one transaction. Setting status open or cancelled
 * clears completed_at. */
static void patch_task(struct lf_req *r)
{
    struct lf_err err = {0};
    struct task_in t = {.due_at = -1};
    json_t *body = lf_req_json(r, &err);
    if (body) check_task(body, 0, &t, &err);
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        goto out;
    }
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) goto out;
    const char *tenant = r->auth.tenant_id, *id = r->params[0];
    int64_t now = lf_now_ms(), n = 0;
    int rc = lf_automate_begin(c);
    if (rc == 0)
        rc = lf_db_run(c, &err, "UPDATE tasks SET updated_at = ? WHERE tenant_id = ? AND id = ?",
                       "Iss", now, tenant, id);
    if (rc == 0) rc = lf_err_set(&err, -LF_ENOTFOUND, "no task %s", id);
    if (rc >= 0 && t.text[K_ASSIGNED]) {
        rc = lf_db_int(c, &err, &n,
                       "SELECT count(*) FROM team_members WHERE tenant_id = ? AND id = ?", "ss",
                       tenant, t.text[K_ASSIGNED]);
        if (rc >= 0 && n == 0)
            rc = lf_err_set(&err, -LF_ENOTFOUND, "no team member %s", t.text[K_ASSIGNED]);
    }
    for (int k = 0; rc >= 0 && k < K_LEAD; k++) {
        if (!t.has[k]) continue;
        char sql[128];
        /* the column is a name from task_keys, never from input */
        snprintf(sql, sizeof sql, "UPDATE tasks SET %s = ? WHERE tenant_id = ? AND id = ?",
                 task_keys[k]);
        if (k == K_DUE)
            rc = lf_db_run(c, &err, sql, "Nss", t.due_at, tenant, id);
        else
            rc = lf_db_run(c, &err, sql, "sss", t.text[k], tenant, id);
    }
    if (rc >= 0 && t.has[K_STATUS])
        rc = lf_db_run(c, &err,
                       "UPDATE tasks SET completed_at = NULL WHERE tenant_id = ? AND id = ?", "ss",
                       tenant, id);
    if (rc >= 0)
        rc = lf_automate_commit(c, r->auth.tenant_id, lf_now_ms(), &err);
    else
        lf_automate_rollback(c);
    if (rc >= 0)
        reply_task(r, c, id, 200);
    else
        lf_reply_error(r, rc, &err);
    lf_db_release(c);
out:
    json_decref(body);
    lf_err_clear(&err);
}

/* POST /tasks/{id}/complete: an open task becomes done now; a done or cancelled one is a
 * conflict. */
static void complete_task(struct lf_req *r)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) return;
    struct lf_err err = {0};
    const char *tenant = r->auth.tenant_id, *id = r->params[0];
    int64_t now = lf_now_ms();
    int rc = lf_automate_begin(c);
    if (rc == 0)
        rc = lf_db_run(c, &err,
                       "UPDATE tasks SET status = 'done', completed_at = ?, updated_at = ?"
                       " WHERE tenant_id = ? AND id = ? AND status = 'open'",
                       "IIss", now, now, tenant, id);
    if (rc == 0) { /* not open: say why */
        struct lf_stmt *st =
            lf_db_prepare(c, "SELECT status FROM tasks WHERE tenant_id = ? AND id = ?", &err);
        rc = st ? lf_stmt_bind(st, "ss", tenant, id) : -LF_EINTERNAL;
        if (rc >= 0) rc = lf_stmt_step(st);
        if (rc == LF_DB_DONE)
            rc = lf_err_set(&err, -LF_ENOTFOUND, "no task %s", id);
        else if (rc == LF_DB_ROW && strcmp(lf_stmt_text(st, 0), "done") == 0)
            rc = lf_err_set(&err, -LF_ECONFLICT, "the task is done already");
        else if (rc == LF_DB_ROW)
            rc = lf_err_set(&err, -LF_ECONFLICT,
                            "the task is %s; set its status to open first (PATCH)",
                            lf_stmt_text(st, 0));
        if (st) lf_stmt_done(st);
    }
    if (rc >= 0)
        rc = lf_automate_commit(c, r->auth.tenant_id, lf_now_ms(), &err);
    else
        lf_automate_rollback(c);
    if (rc >= 0)
        reply_task(r, c, id, 200);
    else
        lf_reply_error(r, rc, &err);
    lf_db_release(c);
    lf_err_clear(&err);
}

static void delete_task(struct lf_req *r)
{
    struct lf_conn *c = lf_api_conn(r, LF_DB_WRITE);
    if (c == NULL) return;
    struct lf_err err = {0};
    int rc = lf_automate_begin(c);
    if (rc == 0)
        rc = lf_db_run(c, &err, "DELETE FROM tasks WHERE tenant_id = ? AND id = ?", "ss",
                       r->auth.tenant_id, r->params[0]);
    if (rc == 0) rc = lf_err_set(&err, -LF_ENOTFOUND, "no task %s", r->params[0]);
    if (rc > 0)
        rc = lf_automate_commit(c, r->auth.tenant_id, lf_now_ms(), &err);
    else
        lf_automate_rollback(c);
    lf_db_release(c);
    if (rc == 0) {
        lf_log_info("task deleted", "{s:s, s:s}", "task_id", r->params[0], "by", r->auth.sub);
        lf_reply_json(r, 204, NULL);
    } else {
        lf_reply_error(r, rc, &err);
    }
    lf_err_clear(&err);
}

const struct lf_route lf_tasks_routes[] = {
    {"GET", "/api/v1/tasks", list_tasks, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"POST", "/api/v1/tasks", create_task, LF_AUTH_TOKEN, LF_ROLES_WRITE, 1, 0, 0},
    {"GET", "/api/v1/tasks/{id}", get_task, LF_AUTH_TOKEN, LF_ROLES_READ, 0, 0, 0},
    {"PATCH", "/api/v1/tasks/{id}", patch_task, LF_AUTH_TOKEN, LF_ROLES_WRITE, 1, 0, 0},
    {"DELETE", "/api/v1/tasks/{id}", delete_task, LF_AUTH_TOKEN, LF_ROLES_WRITE, 0, 0, 0},
    {"POST", "/api/v1/tasks/{id}/complete", complete_task, LF_AUTH_TOKEN, LF_ROLES_WRITE, 0, 0, 0},
    {NULL, NULL, NULL, 0, 0, 0, 0, 0},
};
