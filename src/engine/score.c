/* Stage 3, score: the tenant's scoring rules for the event's type whose conditions hold add
 * points to the lead, each at most once per event (the unique (event, rule) row), within the
 * rule's per-day and per-lead caps; then the lead's sums, lifecycle and hot state follow.
 *
 * A score row's time is the event's occurred_at (never later than now): per-day caps count
 * by its UTC day and expiry runs from it, so an imported or late event is scored as of when
 * it happened, and one older than its rule's expiry adds a row that is expired at once. */
#include "engine/score.h"
#include "engine/emit.h"
#include "engine/lead.h"
#include "engine/settings.h"
#include "engine/stage.h"
#include "core/crypto.h"
#include "core/jsonx.h"

#include <stdio.h>
#include <string.h>

static int count_rows(struct lf_conn *c, const char *sql, const char *tenant, const char *lead,
                      const char *rule, int64_t from, int64_t to, int64_t *n)
{
    *n = 0;
    int rc = from < 0 ? lf_db_int(c, NULL, n, sql, "sss", tenant, lead, rule)
                      : lf_db_int(c, NULL, n, sql, "sssII", tenant, lead, rule, from, to);
    return rc < 0 ? rc : 0;
}

/* Adds the rule's row for the event unless a cap is reached or the row exists. Returns 1 when
 * a row counting towards the total was added, 2 when an already expired row was added, 0
 * when capped or already scored, or a negative code. *why says which. */
static int apply(struct lf_stage_ctx *ctx, struct lf_event *ev, const struct lf_score_rule *r,
                 int64_t at, const char **why)
{
    int64_t n;
    int rc;
    if (r->max_per_lead) {
        rc = count_rows(ctx->conn,
                        "SELECT count(*) FROM score_history WHERE tenant_id = ? AND lead_id = ?"
                        " AND rule_id = ?",
                        ev->tenant_id, ev->lead_id, r->id, -1, -1, &n);
        if (rc < 0) return rc;
        if (n >= r->max_per_lead) {
            *why = "max_per_lead";
            return 0;
        }
    }
    if (r->max_per_day) {
        int64_t day = at - at % LF_DAY_MS;
        rc = count_rows(ctx->conn,
                        "SELECT count(*) FROM score_history WHERE tenant_id = ? AND lead_id = ?"
                        " AND rule_id = ? AND occurred_at >= ? AND occurred_at < ?",
                        ev->tenant_id, ev->lead_id, r->id, day, day + LF_DAY_MS, &n);
        if (rc < 0) return rc;
        if (n >= r->max_per_day) {
            *why = "max_per_day";
            return 0;
        }
    }
    int64_t expires = r->expires_after_days ? at + r->expires_after_days * LF_DAY_MS : -1;
    int64_t expired = expires >= 0 && expires <= ctx->now ? ctx->now : -1;
    char id[40];
    lf_uuid7(id);
    rc = lf_db_run(ctx->conn, NULL,
                   "INSERT INTO score_history (id, tenant_id, lead_id, rule_id, event_id, category,"
                   " points, created_at, occurred_at, expires_at, expired_at)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                   " ON CONFLICT (event_id, rule_id) DO NOTHING",
                   "ssssssiIINN", id, ev->tenant_id, ev->lead_id, r->id, ev->id,
                   lf_category_name(r->category), r->points, ctx->now, at, expires, expired);
    if (rc < 0) return rc;
    if (rc == 0) {
        *why = "already_scored";
        return 0;
    }
    return expired >= 0 ? 2 : 1;
}

static int ctx_int(json_t *lead, const char *key)
{
    return (int)json_integer_value(json_object_get(lead, key));
}

static int run(struct lf_stage_ctx *ctx, struct lf_event *ev, struct lf_err *err)
{
    if (ev->lead_id == NULL) return 0;
    struct lf_ruleset *rs;
    int rc = lf_stage_rules(ctx, ev->tenant_id, &rs, err);
    if (rc < 0) return rc;
    const struct lf_rule_list *list = lf_rules_score_for(rs, ev->event_type);
    if (list->n == 0) return 0;
    struct lf_cond_ctx cc;
    rc = lf_stage_cond_ctx(ctx, ev, rs->needs | LF_COND_NEEDS_LEAD, &cc);
    if (rc < 0) return rc;
    if (ev->lead_ctx == NULL) return 0; /* the lead is gone (erased meanwhile) */

    int64_t at = ev->occurred_at < ctx->now ? ev->occurred_at : ctx->now;
    int delta[LF_CAT_COUNT] = {0}, total = 0;
    int64_t next_expiry = -1; /* the earliest expiry among the rows added */
    json_t *applied = json_array(), *skipped = json_object();
    for (int k = 0; k < list->n && rc >= 0; k++) {
        const struct lf_score_rule *r = &rs->score[list->idx[k]];
        if (!lf_conds_match(r->conds, &cc)) continue;
        const char *why = NULL;
        rc = apply(ctx, ev, r, at, &why);
        if (rc == 1) {
            delta[r->category] += r->points;
            total += r->points;
            json_array_append_new(applied, json_string(r->slug));
            int64_t exp = r->expires_after_days ? at + r->expires_after_days * LF_DAY_MS : -1;
            if (exp >= 0 && (next_expiry < 0 || exp < next_expiry)) next_expiry = exp;
        } else if (rc == 2) {
            json_object_set_new(skipped, r->slug, json_string("expired"));
        } else if (rc == 0) {
            json_object_set_new(skipped, r->slug, json_string(why));
        }
    }
    json_t *stored_expiry = json_object_get(ev->lead_ctx, "score_expires_at");
    int due = json_is_integer(stored_expiry) && json_integer_value(stored_expiry) <= ctx->now;
    int old = ctx_int(ev->lead_ctx, "total_score"), now_total = old, hot = 0;
    if (rc >= 0 && due) {
        /* some of the lead's points expired since they were summed: sum the rows again */
        rc = lf_score_recompute(ctx->conn, ev->tenant_id, ev->lead_id, &rs->settings,
                                json_array_size(applied) ? "event" : "expiry", ev->id, ctx->now,
                                applied, &now_total, &hot);
    } else if (rc >= 0 && json_array_size(applied) > 0) {
        rc = lf_db_run(ctx->conn, NULL,
                       "UPDATE leads SET demographic_score = demographic_score + ?,"
                       " engagement_score = engagement_score + ?,"
                       " behavior_score = behavior_score + ?, total_score = total_score + ?,"
                       " score_expires_at = CASE WHEN ? < 0 THEN score_expires_at"
                       " WHEN score_expires_at IS NULL OR score_expires_at > ? THEN ?"
                       " ELSE score_expires_at END, updated_at = ? WHERE tenant_id = ? AND id = ?",
                       "iiiiIIIIss", delta[0], delta[1], delta[2], total, next_expiry, next_expiry,
                       next_expiry, ctx->now, ev->tenant_id, ev->lead_id);
        now_total = old + total;
        struct lf_score_change ch = {
            .old_total = old,
            .new_total = now_total,
            .hot_armed = ctx_int(ev->lead_ctx, "hot_armed"),
            .lifecycle = json_string_value(json_object_get(ev->lead_ctx, "lifecycle_stage")),
            .reason = "event",
            .rules = applied,
        };
        if (rc >= 0)
            rc = lf_score_settle(ctx->conn, ev->tenant_id, ev->lead_id, &ch, &rs->settings, ev->id,
                                 ctx->now, &hot);
        if (rc >= 0) { /* later stages read the lead as it is now */
            static const char *const cols[] = {"demographic_score", "engagement_score",
                                               "behavior_score"};
            json_t *l = ev->lead_ctx;
            for (int i = 0; i < LF_CAT_COUNT; i++)
                json_object_set_new(l, cols[i], json_integer(ctx_int(l, cols[i]) + delta[i]));
            json_object_set_new(l, "total_score", json_integer(now_total));
            json_object_set_new(l, "hot_armed", json_integer(ch.new_armed));
            json_object_set_new(l, "lifecycle_stage", lf_json_text(ch.new_lifecycle));
            if (next_expiry >= 0) {
                json_t *cur = json_object_get(l, "score_expires_at");
                if (!json_is_integer(cur) || json_integer_value(cur) > next_expiry)
                    json_object_set_new(l, "score_expires_at", json_integer(next_expiry));
            }
        }
    }
    if (rc >= 0 && due) {
        /* later stages read the lead as it is now */
        json_t *fresh = lf_lead_context(ctx->conn, ev->tenant_id, ev->lead_id, &rc);
        if (fresh) {
            json_decref(ev->lead_ctx);
            ev->lead_ctx = fresh;
        }
    }
    if (rc >= 0 && json_array_size(applied) > 0)
        json_object_set_new(ev->result, "score",
                            json_pack("{s:i, s:i, s:O, s:b}", "points", total, "total", now_total,
                                      "rules", applied, "hot", hot));
    if (rc >= 0 && json_object_size(skipped) > 0)
        json_object_set(ev->result, "score_skipped", skipped);
    json_decref(applied);
    json_decref(skipped);
    return rc < 0 ? rc : 0;
}

const struct lf_stage lf_stage_score = {"score", 0, run, 0};

int lf_score_settle(struct lf_conn *c, const char *tenant_id, const char *lead_id,
                    struct lf_score_change *ch, const struct lf_score_settings *s,
                    const char *cause, int64_t now, int *hot)
{
    int rc = 0, armed = ch->hot_armed, fired = 0;
    const char *lifecycle = ch->lifecycle;
    if (ch->new_total >= s->mql_threshold && lifecycle &&
        (strcmp(lifecycle, "subscriber") == 0 || strcmp(lifecycle, "lead") == 0))
        lifecycle = "mql";
    if (armed && ch->new_total >= s->hot_threshold) {
        armed = 0;
        fired = 1;
    } else if (!armed && ch->new_total <= s->hot_threshold - s->hot_rearm_margin) {
        armed = 1;
    }
    ch->new_lifecycle = lifecycle;
    ch->new_armed = armed;
    if (lifecycle != ch->lifecycle || armed != ch->hot_armed)
        rc = lf_db_run(c, NULL,
                       "UPDATE leads SET lifecycle_stage = ?, hot_armed = ?, updated_at = ?"
                       " WHERE tenant_id = ? AND id = ?",
                       "siIss", lifecycle, armed, now, tenant_id, lead_id);
    if (rc >= 0 && ch->new_total != ch->old_total) {
        json_t *tiers = s->tiers;
        json_t *data =
            json_pack("{s:i, s:i, s:i, s:s, s:s, s:s}", "score", ch->new_total, "previous_score",
                      ch->old_total, "delta", ch->new_total - ch->old_total, "tier",
                      lf_tier_of(ch->new_total, tiers), "previous_tier",
                      lf_tier_of(ch->old_total, tiers), "reason", ch->reason);
        if (ch->rules) json_object_set(data, "rules", ch->rules);
        rc = lf_emit(c, tenant_id, "lead.scored", lead_id, cause, data, now);
        json_decref(data);
    }
    if (rc >= 0 && fired) {
        json_t *data = json_pack("{s:i, s:i, s:i}", "score", ch->new_total, "previous_score",
                                 ch->old_total, "threshold", s->hot_threshold);
        rc = lf_emit(c, tenant_id, "lead.hot", lead_id, cause, data, now);
        json_decref(data);
    }
    if (hot) *hot = fired;
    return rc < 0 ? rc : 0;
}

int lf_score_recompute(struct lf_conn *c, const char *tenant_id, const char *lead_id,
                       const struct lf_score_settings *s, const char *reason, const char *cause,
                       int64_t now, json_t *rules, int *total_out, int *hot)
{
    int rc;
    json_t *lead = lf_lead_context(c, tenant_id, lead_id, &rc);
    if (lead == NULL) return rc < 0 ? rc : 0;
    /* "+expires_at" keeps the planner on the lead's rows (score_history_caps): without it,
     * SQLite prefers the tenant-wide due index and reads every due row of the tenant for each
     * lead, which made the decay job quadratic. The unary plus is valid SQL everywhere. */
    rc = lf_db_run(c, NULL,
                   "UPDATE score_history SET expired_at = ? WHERE tenant_id = ? AND lead_id = ?"
                   " AND +expires_at <= ? AND expired_at IS NULL",
                   "IssI", now, tenant_id, lead_id, now);
    int sums[LF_CAT_COUNT] = {0};
    int64_t next_expiry = -1;
    struct lf_stmt *st =
        rc < 0 ? NULL
               : lf_db_prepare(c,
                               "SELECT category, SUM(points), MIN(expires_at) FROM score_history"
                               " WHERE tenant_id = ? AND lead_id = ? AND expired_at IS NULL"
                               " GROUP BY category",
                               NULL);
    if (rc >= 0 && st == NULL) rc = -LF_EINTERNAL;
    if (st) {
        lf_stmt_bind(st, "ss", tenant_id, lead_id);
        while ((rc = lf_stmt_step(st)) == LF_DB_ROW) {
            int cat = lf_category_parse(lf_stmt_text(st, 0));
            if (cat >= 0) sums[cat] = (int)lf_stmt_int(st, 1);
            int64_t exp = lf_stmt_isnull(st, 2) ? -1 : lf_stmt_int(st, 2);
            if (exp >= 0 && (next_expiry < 0 || exp < next_expiry)) next_expiry = exp;
        }
        lf_stmt_done(st);
    }
    int total = sums[0] + sums[1] + sums[2];
    int old = ctx_int(lead, "total_score");
    if (rc >= 0)
        rc = lf_db_run(c, NULL,
                       "UPDATE leads SET demographic_score = ?, engagement_score = ?,"
                       " behavior_score = ?, total_score = ?, score_expires_at = ?, updated_at = ?"
                       " WHERE tenant_id = ? AND id = ?",
                       "iiiiNIss", sums[0], sums[1], sums[2], total, next_expiry, now, tenant_id,
                       lead_id);
    struct lf_score_change ch = {
        .old_total = old,
        .new_total = total,
        .hot_armed = ctx_int(lead, "hot_armed"),
        .lifecycle = json_string_value(json_object_get(lead, "lifecycle_stage")),
        .reason = reason,
        .rules = rules,
    };
    if (rc >= 0) rc = lf_score_settle(c, tenant_id, lead_id, &ch, s, cause, now, hot);
    json_decref(lead);
    if (total_out) *total_out = total;
    return rc < 0 ? rc : total != old;
}
