/* Deals, owners and tasks (see deal.h). current_leads is changed only here (and where a lead
 * or a merge removes open deals), always in the statement's transaction, by exactly the
 * change in the member's open deals. */
#include "engine/deal.h"
#include "outbound/outbound.h"
#include "engine/emit.h"
#include "engine/settings.h"
#include "core/crypto.h"
#include "core/jsonx.h"
#include "core/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lf_pipeline_find(struct lf_conn *c, const char *tenant_id, const char *ref, char id[40],
                     char *slug)
{
    struct lf_stmt *st = lf_db_prepare(
        c, "SELECT id, slug FROM pipelines WHERE tenant_id = ? AND (id = ? OR slug = ?)", NULL);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "sss", tenant_id, ref, ref);
    int rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW) {
        snprintf(id, 40, "%s", lf_stmt_text(st, 0));
        if (slug) snprintf(slug, 64, "%s", lf_stmt_text(st, 1));
    }
    lf_stmt_done(st);
    return rc;
}

static const char *const strategy_names[] = {"round_robin", "capacity_based", "manual"};

int lf_strategy_parse(const char *name)
{
    for (int i = 0; name && i < 3; i++)
        if (strcmp(name, strategy_names[i]) == 0) return i;
    return -1;
}

const char *lf_strategy_name(int strategy)
{
    return strategy >= 0 && strategy < 3 ? strategy_names[strategy] : "round_robin";
}

int lf_strategy_default(struct lf_conn *c, const char *tenant_id)
{
    json_t *routing = lf_settings_get(c, tenant_id, "routing");
    int s = lf_strategy_parse(json_string_value(json_object_get(routing, "assignment_strategy")));
    json_decref(routing);
    return s < 0 ? LF_ASSIGN_ROUND_ROBIN : s;
}

int lf_owner_pick(struct lf_conn *c, const char *tenant_id, const char *role, const char *region,
                  int strategy, const char *except, int64_t now, char out[40])
{
    if (strategy == LF_ASSIGN_MANUAL || role == NULL) return 0;
    /* the order is chosen from two fixed texts, never from input */
    const char *sql =
        strategy == LF_ASSIGN_CAPACITY
            ? "SELECT id FROM team_members WHERE tenant_id = ? AND role = ? AND is_active = 1"
              " AND (away_until IS NULL OR away_until <= ?) AND max_leads > 0"
              " AND current_leads < max_leads AND id <> ?"
              " ORDER BY CASE WHEN lower(region) = lower(?) THEN 0 ELSE 1 END,"
              " (current_leads * 1.0) / max_leads, COALESCE(last_assigned_at, 0), created_at, id"
              " LIMIT 1"
            : "SELECT id FROM team_members WHERE tenant_id = ? AND role = ? AND is_active = 1"
              " AND (away_until IS NULL OR away_until <= ?) AND max_leads > 0"
              " AND current_leads < max_leads AND id <> ?"
              " ORDER BY CASE WHEN lower(region) = lower(?) THEN 0 ELSE 1 END,"
              " COALESCE(last_assigned_at, 0), created_at, id LIMIT 1";
    struct lf_stmt *st = lf_db_prepare(c, sql, NULL);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "ssIss", tenant_id, role, now, except ? except : "", region);
    int rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW) snprintf(out, 40, "%s", lf_stmt_text(st, 0));
    lf_stmt_done(st);
    return rc;
}

/* ---- helpers */

struct deal_row {
    char id[40], lead_id[40], pipeline_id[40], stage_id[40], status[8], owner[40];
    char name[256];
};

static int load_deal(struct lf_conn *c, const char *tenant_id, const char *id, struct deal_row *d,
                     struct lf_err *err)
{
    struct lf_stmt *st =
        lf_db_prepare(c,
                      "SELECT id, lead_id, pipeline_id, stage_id, status,"
                      " assigned_to, name FROM deals WHERE tenant_id = ? AND id = ?",
                      err);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "ss", tenant_id, id);
    int rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW) {
        snprintf(d->id, sizeof d->id, "%s", lf_stmt_text(st, 0));
        snprintf(d->lead_id, sizeof d->lead_id, "%s", lf_stmt_text(st, 1));
        snprintf(d->pipeline_id, sizeof d->pipeline_id, "%s", lf_stmt_text(st, 2));
        snprintf(d->stage_id, sizeof d->stage_id, "%s", lf_stmt_text(st, 3));
        snprintf(d->status, sizeof d->status, "%s", lf_stmt_text(st, 4));
        const char *o = lf_stmt_text(st, 5);
        snprintf(d->owner, sizeof d->owner, "%s", o ? o : "");
        snprintf(d->name, sizeof d->name, "%s", lf_stmt_text(st, 6));
    }
    lf_stmt_done(st);
    if (rc == LF_DB_DONE) return lf_err_set(err, -LF_ENOTFOUND, "no deal %s", id);
    return rc < 0 ? rc : 0;
}

/* A stage of the pipeline by id or slug: its id and kind. LF_DB_ROW, LF_DB_DONE or negative. */
static int find_stage(struct lf_conn *c, const char *tenant_id, const char *pipeline_id,
                      const char *ref, char id[40], char kind[8])
{
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT id, kind FROM pipeline_stages WHERE tenant_id = ?"
                                       " AND pipeline_id = ? AND (id = ? OR slug = ?)",
                                       NULL);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "ssss", tenant_id, pipeline_id, ref, ref);
    int rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW) {
        snprintf(id, 40, "%s", lf_stmt_text(st, 0));
        snprintf(kind, 8, "%s", lf_stmt_text(st, 1));
    }
    lf_stmt_done(st);
    return rc;
}

/* The pipeline's first stage of kind (by position). LF_DB_ROW, LF_DB_DONE or negative. */
static int first_stage(struct lf_conn *c, const char *tenant_id, const char *pipeline_id,
                       const char *kind, char id[40])
{
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT id FROM pipeline_stages WHERE tenant_id = ?"
                                       " AND pipeline_id = ? AND kind = ? ORDER BY position, id"
                                       " LIMIT 1",
                                       NULL);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "sss", tenant_id, pipeline_id, kind);
    int rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW) snprintf(id, 40, "%s", lf_stmt_text(st, 0));
    lf_stmt_done(st);
    return rc;
}

static int add_history(struct lf_conn *c, const char *tenant_id, const char *deal_id,
                       const char *from, const char *to, const char *by, int64_t now)
{
    char id[40];
    lf_uuid7(id);
    return lf_db_run(c, NULL,
                     "INSERT INTO deal_stage_history (id, tenant_id, deal_id, from_stage_id,"
                     " to_stage_id, moved_at, moved_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
                     "sssssIs", id, tenant_id, deal_id, from && *from ? from : NULL, to, now, by);
}

/* Adds delta to the member's open-deal count. */
static int load_add(struct lf_conn *c, const char *tenant_id, const char *member, int delta,
                    int64_t now)
{
    if (member == NULL || *member == '\0') return 0;
    return lf_db_run(c, NULL,
                     "UPDATE team_members SET current_leads = CASE WHEN current_leads + ? < 0"
                     " THEN 0 ELSE current_leads + ? END, updated_at = ?"
                     " WHERE tenant_id = ? AND id = ?",
                     "iiIss", delta, delta, now, tenant_id, member);
}

/* Marks the member as just assigned. Strictly after every other member of the tenant, so
 * round robin stays a rotation when many deals are assigned within one millisecond (a batch
 * of events shares its clock). */
static int mark_assigned(struct lf_conn *c, const char *tenant_id, const char *member, int64_t now)
{
    return lf_db_run(c, NULL,
                     "UPDATE team_members SET last_assigned_at = (SELECT CASE WHEN"
                     " COALESCE(MAX(m.last_assigned_at), 0) < ? THEN ? ELSE"
                     " MAX(m.last_assigned_at) + 1 END FROM team_members m WHERE m.tenant_id = ?)"
                     " WHERE tenant_id = ? AND id = ?",
                     "IIsss", now, now, tenant_id, tenant_id, member);
}

static int member_exists(struct lf_conn *c, const char *tenant_id, const char *member,
                         struct lf_err *err)
{
    int64_t n = 0;
    int rc =
        lf_db_int(c, err, &n, "SELECT count(*) FROM team_members WHERE tenant_id = ? AND id = ?",
                  "ss", tenant_id, member);
    if (rc < 0) return rc;
    return n ? 0 : lf_err_set(err, -LF_ENOTFOUND, "no team member %s", member);
}

/* The deal's summary for domain events. */
static json_t *deal_brief(struct lf_conn *c, const char *tenant_id, const char *deal_id)
{
    int rc;
    return lf_deal_json(c, tenant_id, deal_id, 0, &rc);
}

/* Emits a deal.* event about the deal's lead; keyed by the cause and the deal, so one cause may
 * touch several deals of a lead. data is stolen; the deal's summary is added as "deal". */
static int emit_deal(struct lf_conn *c, const char *tenant_id, const char *type,
                     const struct deal_row *d, const char *cause, json_t *data, int64_t now)
{
    char key[160];
    snprintf(key, sizeof key, "%s:%s", cause ? cause : "-", d->id);
    json_object_set_new(data, "deal", deal_brief(c, tenant_id, d->id));
    int rc = lf_emit(c, tenant_id, type, d->lead_id, key, data, now);
    json_decref(data);
    return rc < 0 ? rc : 0;
}

/* ---- deals */

int lf_deal_create(struct lf_conn *c, const char *tenant_id, const struct lf_deal_new *d,
                   int64_t now, char id[40], struct lf_err *err)
{
    char lead_name[256] = "", region[128] = "", pipe_name[256] = "", role[128] = "";
    int have_region = 0, have_role = 0;
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT first_name, last_name, email, region FROM leads"
                                       " WHERE tenant_id = ? AND id = ? AND merged_into IS NULL",
                                       err);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "ss", tenant_id, d->lead_id);
    int rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW) {
        const char *first = lf_stmt_text(st, 0), *last = lf_stmt_text(st, 1);
        const char *email = lf_stmt_text(st, 2), *reg = lf_stmt_text(st, 3);
        if (first || last)
            snprintf(lead_name, sizeof lead_name, "%s%s%s", first ? first : "",
                     first && last ? " " : "", last ? last : "");
        else if (email)
            snprintf(lead_name, sizeof lead_name, "%s", email);
        else
            snprintf(lead_name, sizeof lead_name, "Lead %.8s", d->lead_id);
        if (reg) {
            snprintf(region, sizeof region, "%s", reg);
            have_region = 1;
        }
    }
    lf_stmt_done(st);
    if (rc == LF_DB_DONE) return lf_err_set(err, -LF_ENOTFOUND, "no lead %s", d->lead_id);
    if (rc < 0) return rc;

    st = lf_db_prepare(c, "SELECT name, owner_role FROM pipelines WHERE tenant_id = ? AND id = ?",
                       err);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "ss", tenant_id, d->pipeline_id);
    rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW) {
        snprintf(pipe_name, sizeof pipe_name, "%s", lf_stmt_text(st, 0));
        const char *r = lf_stmt_text(st, 1);
        if (r) {
            snprintf(role, sizeof role, "%s", r);
            have_role = 1;
        }
    }
    lf_stmt_done(st);
    if (rc == LF_DB_DONE) return lf_err_set(err, -LF_ENOTFOUND, "no pipeline %s", d->pipeline_id);
    if (rc < 0) return rc;

    /* one open deal per lead and pipeline */
    st =
        lf_db_prepare(c,
                      "SELECT id FROM deals WHERE tenant_id = ? AND lead_id = ? AND pipeline_id = ?"
                      " AND status = 'open'",
                      err);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "sss", tenant_id, d->lead_id, d->pipeline_id);
    rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW) snprintf(id, 40, "%s", lf_stmt_text(st, 0));
    lf_stmt_done(st);
    if (rc == LF_DB_ROW) return 0;
    if (rc < 0) return rc;

    char stage[40], kind[8] = "open";
    if (d->stage_id) {
        rc = find_stage(c, tenant_id, d->pipeline_id, d->stage_id, stage, kind);
        if (rc == LF_DB_DONE)
            return lf_err_set(err, -LF_ENOTFOUND, "no stage %s in pipeline %s", d->stage_id,
                              d->pipeline_id);
        if (rc >= 0 && strcmp(kind, "open") != 0)
            return lf_err_field(err, "stage", "a new deal starts in an open stage, not a %s one",
                                kind);
    } else {
        rc = first_stage(c, tenant_id, d->pipeline_id, "open", stage);
        if (rc == LF_DB_DONE)
            return lf_err_set(err, -LF_EINVAL, "pipeline %s has no open stage", d->pipeline_id);
    }
    if (rc < 0) return rc;

    char owner[40] = "";
    int strategy = d->strategy >= 0 ? d->strategy : lf_strategy_default(c, tenant_id);
    if (d->owner) {
        if ((rc = member_exists(c, tenant_id, d->owner, err)) < 0) return rc;
        snprintf(owner, sizeof owner, "%s", d->owner);
    } else {
        rc = lf_owner_pick(c, tenant_id, have_role ? role : NULL, have_region ? region : NULL,
                           strategy, NULL, now, owner);
        if (rc < 0) return rc;
    }

    char name[600];
    if (d->name)
        snprintf(name, sizeof name, "%s", d->name);
    else
        snprintf(name, sizeof name, "%.255s \xe2\x80\x94 %.255s", lead_name, pipe_name);
    lf_utf8_sanitize(name); /* the cuts above may split a character */
    lf_uuid7(id);
    rc = lf_db_run(c, err,
                   "INSERT INTO deals (id, tenant_id, lead_id, pipeline_id, stage_id, name,"
                   " value_cents, currency, status, assigned_to, assigned_at, stage_entered_at,"
                   " expected_close_at, created_at, updated_at)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, ?)",
                   "ssssssIssNINII", id, tenant_id, d->lead_id, d->pipeline_id, stage, name,
                   d->value_cents, d->currency ? d->currency : "EUR", *owner ? owner : NULL,
                   (int64_t)(*owner ? now : -1), now, d->expected_close_at, now, now);
    if (rc == -LF_ECONSTRAINT) /* another writer made the lead's open deal meanwhile */
        return lf_err_set(err, -LF_ECONFLICT, "the lead has an open deal in this pipeline");
    if (rc >= 0) rc = add_history(c, tenant_id, id, NULL, stage, d->by, now);
    if (rc >= 0 && *owner) rc = load_add(c, tenant_id, owner, 1, now);
    if (rc >= 0 && *owner) rc = mark_assigned(c, tenant_id, owner, now);
    struct deal_row row = {0};
    snprintf(row.id, sizeof row.id, "%s", id);
    snprintf(row.lead_id, sizeof row.lead_id, "%s", d->lead_id);
    if (rc >= 0)
        rc = emit_deal(
            c, tenant_id, "deal.created", &row, d->cause,
            json_pack("{s:s?, s:s}", "by", d->by, "assignment",
                      *owner ? (d->owner ? "given" : lf_strategy_name(strategy)) : "none"),
            now);
    if (rc >= 0 && !*owner) {
        /* nobody to give it to: a person must */
        char task[40], text[1024];
        struct lf_task_new t = {.lead_id = d->lead_id,
                                .deal_id = id,
                                .title = "Assign an owner",
                                .task_type = "assign_owner",
                                .due_at = -1,
                                .by = d->by,
                                .cause = d->cause};
        rc = lf_task_create(c, tenant_id, &t, now, task, err);
        snprintf(text, sizeof text, "Deal \"%s\" in %s needs an owner (%s).", name, pipe_name,
                 strategy == LF_ASSIGN_MANUAL ? "assignment is manual" : "no eligible team member");
        if (rc >= 0) rc = lf_outbox_slack(c, tenant_id, NULL, text, NULL, now, NULL);
    }
    return rc < 0 ? rc : 1;
}

/* Closes d (open) into stage (may be NULL: stays where it is). */
static int close_into(struct lf_conn *c, const char *tenant_id, const struct deal_row *d,
                      const char *outcome, const char *stage, const char *reason, const char *by,
                      const char *cause, int64_t now)
{
    int moved = stage && strcmp(stage, d->stage_id) != 0;
    const char *to = moved ? stage : d->stage_id;
    int rc =
        lf_db_run(c, NULL,
                  "UPDATE deals SET status = ?, closed_at = ?, close_reason = ?,"
                  " stage_entered_at = CASE WHEN stage_id = ? THEN stage_entered_at ELSE ? END,"
                  " stage_id = ?, updated_at = ? WHERE tenant_id = ? AND id = ?",
                  "sIssIsIss", outcome, now, reason, to, now, to, now, tenant_id, d->id);
    if (rc >= 0 && moved) rc = add_history(c, tenant_id, d->id, d->stage_id, to, by, now);
    if (rc >= 0 && moved)
        rc = emit_deal(c, tenant_id, "deal.stage_changed", d, cause,
                       json_pack("{s:s, s:s, s:s?}", "from_stage_id", d->stage_id, "to_stage_id",
                                 to, "by", by),
                       now);
    if (rc >= 0) rc = load_add(c, tenant_id, d->owner, -1, now);
    if (rc >= 0 && strcmp(outcome, "won") == 0)
        rc = lf_db_run(c, NULL,
                       "UPDATE leads SET status = 'customer', lifecycle_stage = 'customer',"
                       " updated_at = ? WHERE tenant_id = ? AND id = ?",
                       "Iss", now, tenant_id, d->lead_id);
    if (rc >= 0)
        rc = emit_deal(c, tenant_id, strcmp(outcome, "won") == 0 ? "deal.won" : "deal.lost", d,
                       cause, json_pack("{s:s?, s:s?}", "reason", reason, "by", by), now);
    return rc < 0 ? rc : 1;
}

int lf_deal_move(struct lf_conn *c, const char *tenant_id, const char *deal_id, const char *stage,
                 const char *by, const char *cause, int64_t now, struct lf_err *err)
{
    struct deal_row d;
    int rc = load_deal(c, tenant_id, deal_id, &d, err);
    if (rc < 0) return rc;
    char to[40], kind[8];
    rc = find_stage(c, tenant_id, d.pipeline_id, stage, to, kind);
    if (rc == LF_DB_DONE)
        return lf_err_set(err, -LF_ENOTFOUND, "no stage %s in the deal's pipeline", stage);
    if (rc < 0) return rc;
    if (strcmp(d.status, "open") != 0)
        return lf_err_set(err, -LF_ECONFLICT, "the deal is %s; reopen it first", d.status);
    if (strcmp(to, d.stage_id) == 0) return 0;
    if (strcmp(kind, "open") != 0)
        return close_into(c, tenant_id, &d, kind, to, NULL, by, cause, now);
    rc = lf_db_run(c, err,
                   "UPDATE deals SET stage_id = ?, stage_entered_at = ?, updated_at = ?"
                   " WHERE tenant_id = ? AND id = ?",
                   "sIIss", to, now, now, tenant_id, d.id);
    if (rc >= 0) rc = add_history(c, tenant_id, d.id, d.stage_id, to, by, now);
    if (rc >= 0)
        rc = emit_deal(
            c, tenant_id, "deal.stage_changed", &d, cause,
            json_pack("{s:s, s:s, s:s?}", "from_stage_id", d.stage_id, "to_stage_id", to, "by", by),
            now);
    return rc < 0 ? rc : 1;
}

int lf_deal_close(struct lf_conn *c, const char *tenant_id, const char *deal_id,
                  const char *outcome, const char *reason, const char *by, const char *cause,
                  int64_t now, struct lf_err *err)
{
    if (outcome == NULL || (strcmp(outcome, "won") != 0 && strcmp(outcome, "lost") != 0))
        return lf_err_field(err, "outcome", "must be won or lost");
    struct deal_row d;
    int rc = load_deal(c, tenant_id, deal_id, &d, err);
    if (rc < 0) return rc;
    if (strcmp(d.status, "open") != 0)
        return lf_err_set(err, -LF_ECONFLICT, "the deal is %s already", d.status);
    char stage[40];
    rc = first_stage(c, tenant_id, d.pipeline_id, outcome, stage);
    if (rc < 0) return rc;
    return close_into(c, tenant_id, &d, outcome, rc == LF_DB_ROW ? stage : NULL, reason, by, cause,
                      now);
}

int lf_deal_reopen(struct lf_conn *c, const char *tenant_id, const char *deal_id, const char *by,
                   const char *cause, int64_t now, struct lf_err *err)
{
    struct deal_row d;
    int rc = load_deal(c, tenant_id, deal_id, &d, err);
    if (rc < 0) return rc;
    if (strcmp(d.status, "open") == 0) return lf_err_set(err, -LF_ECONFLICT, "the deal is open");
    int64_t other = 0;
    rc = lf_db_int(c, err, &other,
                   "SELECT count(*) FROM deals WHERE tenant_id = ? AND lead_id = ?"
                   " AND pipeline_id = ? AND status = 'open'",
                   "sss", tenant_id, d.lead_id, d.pipeline_id);
    if (rc < 0) return rc;
    if (other)
        return lf_err_set(err, -LF_ECONFLICT,
                          "the lead has another open deal in this pipeline; close it first");
    /* back to the open stage it was last in */
    char to[40] = "";
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT h.to_stage_id FROM deal_stage_history h"
                                       " JOIN pipeline_stages s ON s.id = h.to_stage_id"
                                       " AND s.tenant_id = h.tenant_id AND s.kind = 'open'"
                                       " WHERE h.tenant_id = ? AND h.deal_id = ?"
                                       " ORDER BY h.moved_at DESC, h.id DESC LIMIT 1",
                                       err);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "ss", tenant_id, d.id);
    rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW) snprintf(to, sizeof to, "%s", lf_stmt_text(st, 0));
    lf_stmt_done(st);
    if (rc == LF_DB_DONE) rc = first_stage(c, tenant_id, d.pipeline_id, "open", to);
    if (rc == LF_DB_DONE) return lf_err_set(err, -LF_ECONFLICT, "the pipeline has no open stage");
    if (rc < 0) return rc;
    int moved = strcmp(to, d.stage_id) != 0;
    if (*d.owner) { /* a member deleted since the close owns nothing anymore */
        int64_t n = 0;
        rc = lf_db_int(c, err, &n,
                       "SELECT count(*) FROM team_members WHERE tenant_id = ? AND id = ?", "ss",
                       tenant_id, d.owner);
        if (rc < 0) return rc;
        if (n == 0) {
            rc = lf_db_run(c, err,
                           "UPDATE deals SET assigned_to = NULL, assigned_at = NULL"
                           " WHERE tenant_id = ? AND id = ?",
                           "ss", tenant_id, d.id);
            if (rc < 0) return rc;
            d.owner[0] = '\0';
        }
    }
    rc = lf_db_run(c, err,
                   "UPDATE deals SET status = 'open', closed_at = NULL, close_reason = NULL,"
                   " stage_entered_at = CASE WHEN stage_id = ? THEN stage_entered_at ELSE ? END,"
                   " stage_id = ?, updated_at = ? WHERE tenant_id = ? AND id = ?",
                   "sIsIss", to, now, to, now, tenant_id, d.id);
    if (rc == -LF_ECONSTRAINT)
        return lf_err_set(err, -LF_ECONFLICT, "the lead has another open deal in this pipeline");
    if (rc >= 0 && moved) rc = add_history(c, tenant_id, d.id, d.stage_id, to, by, now);
    if (rc >= 0) rc = load_add(c, tenant_id, d.owner, 1, now);
    if (rc >= 0)
        rc = emit_deal(c, tenant_id, "deal.stage_changed", &d, cause,
                       json_pack("{s:s, s:s, s:b, s:s?}", "from_stage_id", d.stage_id,
                                 "to_stage_id", to, "reopened", 1, "by", by),
                       now);
    return rc < 0 ? rc : 1;
}

int lf_deal_assign(struct lf_conn *c, const char *tenant_id, const char *deal_id, const char *owner,
                   int64_t now, struct lf_err *err)
{
    struct deal_row d;
    int rc = load_deal(c, tenant_id, deal_id, &d, err);
    if (rc < 0) return rc;
    if (owner && (rc = member_exists(c, tenant_id, owner, err)) < 0) return rc;
    if (strcmp(d.owner, owner ? owner : "") == 0) return 0;
    int open = strcmp(d.status, "open") == 0;
    rc = lf_db_run(c, err,
                   "UPDATE deals SET assigned_to = ?, assigned_at = ?, updated_at = ?"
                   " WHERE tenant_id = ? AND id = ?",
                   "sNIss", owner, (int64_t)(owner ? now : -1), now, tenant_id, d.id);
    if (rc >= 0 && open) rc = load_add(c, tenant_id, d.owner, -1, now);
    if (rc >= 0 && open) rc = load_add(c, tenant_id, owner, 1, now);
    if (rc >= 0 && owner && open) rc = mark_assigned(c, tenant_id, owner, now);
    return rc < 0 ? rc : 1;
}

json_t *lf_deal_row_json(struct lf_stmt *st, int f)
{
#define T(i)  lf_json_text(lf_stmt_text(st, f + (i)))
#define TM(i) lf_json_time(lf_stmt_int(st, f + (i)), lf_stmt_isnull(st, f + (i)))
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o,"
                     " s:o, s:o, s:o, s:o, s:o}",
                     "id", T(0), "lead_id", T(1), "pipeline_id", T(2), "stage_id", T(3), "name",
                     T(4), "value_cents", (json_int_t)lf_stmt_int(st, f + 5), "currency", T(6),
                     "status", T(7), "assigned_to", T(8), "assigned_at", TM(9), "stage_entered_at",
                     TM(10), "expected_close_at", TM(11), "close_reason", T(12), "closed_at",
                     TM(13), "moco_offer_id", T(14), "moco_invoice_id", T(15), "paid_at", TM(16),
                     "created_at", TM(17), "updated_at", TM(18));
#undef T
#undef TM
}

/* Appends each row of a query bound to (tenant, id) to arr through fn. */
static int add_rows(struct lf_conn *c, const char *sql, const char *tenant_id, const char *id,
                    json_t *arr, json_t *(*fn)(struct lf_stmt *, int64_t), int64_t arg)
{
    struct lf_stmt *st = lf_db_prepare(c, sql, NULL);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "ss", tenant_id, id);
    int rc;
    while ((rc = lf_stmt_step(st)) == LF_DB_ROW) json_array_append_new(arr, fn(st, arg));
    lf_stmt_done(st);
    return rc;
}

static json_t *history_row(struct lf_stmt *st, int64_t unused)
{
    (void)unused;
    return json_pack(
        "{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id", lf_json_text(lf_stmt_text(st, 0)),
        "from_stage_id", lf_json_text(lf_stmt_text(st, 1)), "from_stage",
        lf_json_text(lf_stmt_text(st, 2)), "to_stage_id", lf_json_text(lf_stmt_text(st, 3)),
        "to_stage", lf_json_text(lf_stmt_text(st, 4)), "moved_at",
        lf_json_time(lf_stmt_int(st, 5), 0), "moved_by", lf_json_text(lf_stmt_text(st, 6)));
}

json_t *lf_deal_json(struct lf_conn *c, const char *tenant_id, const char *id, int full, int *rc)
{
    struct lf_stmt *st = lf_db_prepare(
        c,
        "SELECT " LF_DEAL_COLS ", (SELECT slug FROM pipelines p WHERE p.tenant_id = deals.tenant_id"
        " AND p.id = deals.pipeline_id), (SELECT slug FROM pipeline_stages s WHERE"
        " s.tenant_id = deals.tenant_id AND s.id = deals.stage_id) FROM deals"
        " WHERE tenant_id = ? AND id = ?",
        NULL);
    if (st == NULL) {
        *rc = -LF_EINTERNAL;
        return NULL;
    }
    lf_stmt_bind(st, "ss", tenant_id, id);
    json_t *o = NULL;
    if ((*rc = lf_stmt_step(st)) == LF_DB_ROW) {
        o = lf_deal_row_json(st, 0);
        if (o == NULL) *rc = -LF_EINTERNAL; /* text that is not UTF-8 */
        json_object_set_new(o, "pipeline", lf_json_text(lf_stmt_text(st, LF_DEAL_NCOLS)));
        json_object_set_new(o, "stage", lf_json_text(lf_stmt_text(st, LF_DEAL_NCOLS + 1)));
    }
    lf_stmt_done(st);
    if (o == NULL || !full) return o;

    const char *lead_id = json_string_value(json_object_get(o, "lead_id"));
    st = lf_db_prepare(c,
                       "SELECT id, email, first_name, last_name, total_score, primary_intent,"
                       " intent_confidence, status, lifecycle_stage FROM leads"
                       " WHERE tenant_id = ? AND id = ?",
                       NULL);
    json_t *lead = json_null();
    if (st) {
        lf_stmt_bind(st, "ss", tenant_id, lead_id);
        if ((*rc = lf_stmt_step(st)) == LF_DB_ROW) {
            json_decref(lead);
            lead = json_pack(
                "{s:o, s:o, s:o, s:o, s:I, s:o, s:I, s:o, s:o}", "id",
                lf_json_text(lf_stmt_text(st, 0)), "email", lf_json_text(lf_stmt_text(st, 1)),
                "first_name", lf_json_text(lf_stmt_text(st, 2)), "last_name",
                lf_json_text(lf_stmt_text(st, 3)), "total_score", (json_int_t)lf_stmt_int(st, 4),
                "primary_intent", lf_json_text(lf_stmt_text(st, 5)), "intent_confidence",
                (json_int_t)lf_stmt_int(st, 6), "status", lf_json_text(lf_stmt_text(st, 7)),
                "lifecycle_stage", lf_json_text(lf_stmt_text(st, 8)));
        }
        lf_stmt_done(st);
    }
    json_object_set_new(o, "lead", lead);
    json_t *history = json_array(), *tasks = json_array();
    *rc = add_rows(c,
                   "SELECT h.id, h.from_stage_id, f.slug, h.to_stage_id, t.slug, h.moved_at,"
                   " h.moved_by FROM deal_stage_history h"
                   " LEFT JOIN pipeline_stages f ON f.id = h.from_stage_id"
                   " LEFT JOIN pipeline_stages t ON t.id = h.to_stage_id"
                   " WHERE h.tenant_id = ? AND h.deal_id = ? ORDER BY h.moved_at, h.id LIMIT 1000",
                   tenant_id, id, history, history_row, 0);
    if (*rc >= 0)
        *rc = add_rows(c,
                       "SELECT " LF_TASK_COLS " FROM tasks WHERE tenant_id = ? AND deal_id = ?"
                       " ORDER BY id LIMIT 1000",
                       tenant_id, id, tasks, lf_task_row_json, lf_now_ms());
    json_object_set_new(o, "history", history);
    json_object_set_new(o, "tasks", tasks);
    if (*rc < 0) {
        json_decref(o);
        return NULL;
    }
    *rc = LF_DB_ROW;
    return o;
}

/* ---- tasks */

json_t *lf_task_row_json(struct lf_stmt *st, int64_t now)
{
    int open = strcmp(lf_stmt_text(st, 7), "open") == 0;
    int overdue = open && !lf_stmt_isnull(st, 6) && lf_stmt_int(st, 6) < now;
    return json_pack(
        "{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:b}", "id",
        lf_json_text(lf_stmt_text(st, 0)), "lead_id", lf_json_text(lf_stmt_text(st, 1)), "deal_id",
        lf_json_text(lf_stmt_text(st, 2)), "title", lf_json_text(lf_stmt_text(st, 3)), "task_type",
        lf_json_text(lf_stmt_text(st, 4)), "assigned_to", lf_json_text(lf_stmt_text(st, 5)),
        "due_at", lf_json_time(lf_stmt_int(st, 6), lf_stmt_isnull(st, 6)), "status",
        lf_json_text(lf_stmt_text(st, 7)), "completed_at",
        lf_json_time(lf_stmt_int(st, 8), lf_stmt_isnull(st, 8)), "notes",
        lf_json_text(lf_stmt_text(st, 9)), "created_by", lf_json_text(lf_stmt_text(st, 10)),
        "created_at", lf_json_time(lf_stmt_int(st, 11), 0), "updated_at",
        lf_json_time(lf_stmt_int(st, 12), 0), "overdue", overdue);
}

int lf_task_create(struct lf_conn *c, const char *tenant_id, const struct lf_task_new *t,
                   int64_t now, char id[40], struct lf_err *err)
{
    char lead[40] = "";
    int64_t n = 0;
    int rc = 0;
    if (t->lead_id) snprintf(lead, sizeof lead, "%s", t->lead_id);
    if (t->deal_id) {
        struct deal_row d;
        if ((rc = load_deal(c, tenant_id, t->deal_id, &d, err)) < 0) return rc;
        if (!*lead) snprintf(lead, sizeof lead, "%s", d.lead_id);
        if (strcmp(lead, d.lead_id) != 0)
            return lf_err_field(err, "lead_id", "deal %s belongs to another lead", d.id);
    }
    if (*lead) {
        rc = lf_db_int(c, err, &n,
                       "SELECT count(*) FROM leads WHERE tenant_id = ? AND id = ?"
                       " AND merged_into IS NULL",
                       "ss", tenant_id, lead);
        if (rc >= 0 && n == 0) return lf_err_set(err, -LF_ENOTFOUND, "no lead %s", lead);
    }
    if (rc >= 0 && t->assigned_to) rc = member_exists(c, tenant_id, t->assigned_to, err);
    if (rc < 0) return rc;
    lf_uuid7(id);
    rc = lf_db_run(c, err,
                   "INSERT INTO tasks (id, tenant_id, lead_id, deal_id, title, task_type,"
                   " assigned_to, due_at, status, notes, created_by, created_at, updated_at)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, ?, ?)",
                   "sssssssNssII", id, tenant_id, *lead ? lead : NULL, t->deal_id, t->title,
                   t->task_type ? t->task_type : "todo", t->assigned_to, t->due_at, t->notes, t->by,
                   now, now);
    if (rc < 0) return rc;
    char key[160];
    snprintf(key, sizeof key, "%s:%s", t->cause ? t->cause : "-", id);
    json_t *task = NULL;
    struct lf_stmt *st =
        lf_db_prepare(c, "SELECT " LF_TASK_COLS " FROM tasks WHERE tenant_id = ? AND id = ?", err);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "ss", tenant_id, id);
    if ((rc = lf_stmt_step(st)) == LF_DB_ROW) task = lf_task_row_json(st, now);
    lf_stmt_done(st);
    if (task == NULL) return rc < 0 ? rc : -LF_EINTERNAL;
    json_t *data = json_pack("{s:o, s:s?}", "task", task, "by", t->by);
    rc = lf_emit(c, tenant_id, "task.created", *lead ? lead : NULL, key, data, now);
    json_decref(data);
    return rc < 0 ? rc : 0;
}

/* ---- outbox */

int lf_outbox_slack(struct lf_conn *c, const char *tenant_id, const char *channel, const char *text,
                    const char *event_id, int64_t now, char id_out[40])
{
    json_t *payload = json_pack("{s:s?, s:s}", "channel", channel, "text", text);
    int rc = lf_outbox_put(c, tenant_id, "slack", NULL, event_id, channel ? channel : "default",
                           payload, now, id_out);
    json_decref(payload);
    return rc;
}
