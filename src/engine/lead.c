/* The lead model: finding leads by identity, creating them, attaching identities, filling the
 * profile, linking organizations, merging, and the lead as JSON. No SQL here is built from a
 * key name taken from input: profile fields come from a fixed list in this file. */
#include "engine/lead.h"
#include "engine/conditions.h"
#include "engine/emit.h"
#include "engine/score.h"
#include "engine/settings.h"
#include "core/crypto.h"
#include "core/jsonx.h"
#include "core/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const profile_fields[] = {LF_LEAD_PROFILE_FIELDS};
#define NPROFILE (sizeof profile_fields / sizeof profile_fields[0])

int lf_lead_find(struct lf_conn *c, const char *tenant_id, const struct lf_identity *ids, int n,
                 char out[][40], int *known)
{
    int found = 0;
    struct lf_stmt *st = lf_db_prepare(
        c, "SELECT lead_id FROM lead_identities WHERE tenant_id = ? AND kind = ? AND value = ?",
        NULL);
    if (st == NULL) return -LF_EINTERNAL;
    for (int i = 0; i < n; i++) {
        lf_stmt_bind(st, "sss", tenant_id, lf_identity_kind_name(ids[i].kind), ids[i].value);
        int rc = lf_stmt_step(st);
        if (known) known[i] = rc == LF_DB_ROW;
        if (rc == LF_DB_ROW) {
            const char *id = lf_stmt_text(st, 0);
            int dup = 0;
            for (int j = 0; j < found; j++) dup |= strcmp(out[j], id) == 0;
            if (!dup && found < LF_LEAD_MATCH_MAX) snprintf(out[found++], 40, "%s", id);
        }
        lf_stmt_done(st);
        if (rc < 0) return rc;
    }
    /* oldest first: UUIDv7 ids sort by creation */
    for (int i = 1; i < found; i++)
        for (int j = i; j > 0 && strcmp(out[j - 1], out[j]) > 0; j--) {
            char t[40];
            memcpy(t, out[j], 40);
            memcpy(out[j], out[j - 1], 40);
            memcpy(out[j - 1], t, 40);
        }
    return found;
}

int lf_lead_snapshot(struct lf_conn *c, const char *tenant_id, const char *lead_id,
                     struct lf_lead_snapshot *out)
{
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT organization_id IS NOT NULL, first_name, last_name,"
                                       " job_title, phone, country, region FROM leads"
                                       " WHERE tenant_id = ? AND id = ?",
                                       NULL);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "ss", tenant_id, lead_id);
    int rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW) {
        out->has_org = (int)lf_stmt_int(st, 0);
        out->has_fields = 0;
        for (size_t i = 0; i < NPROFILE; i++) {
            const char *v = lf_stmt_text(st, (int)i + 1);
            if (v && *v) out->has_fields |= 1u << i;
        }
    }
    lf_stmt_done(st);
    return rc;
}

int lf_lead_fill_missing(struct lf_conn *c, const char *tenant_id, const char *lead_id, json_t *obj,
                         const struct lf_lead_snapshot *snap, int64_t now)
{
    json_t *missing = NULL;
    for (size_t i = 0; i < NPROFILE; i++) {
        if (snap->has_fields & (1u << i)) continue;
        json_t *v = json_object_get(obj, profile_fields[i]);
        if (!json_is_string(v) || json_string_length(v) == 0) continue;
        if (missing == NULL) missing = json_object();
        json_object_set(missing, profile_fields[i], v);
    }
    if (missing == NULL) return 0;
    int rc = lf_lead_fill(c, tenant_id, lead_id, missing, 0, now);
    json_decref(missing);
    return rc;
}

int lf_lead_create(struct lf_conn *c, const char *tenant_id, int64_t now, char id[40])
{
    lf_uuid7(id);
    int rc = lf_db_run(
        c, NULL, "INSERT INTO leads (id, tenant_id, created_at, updated_at) VALUES (?, ?, ?, ?)",
        "ssII", id, tenant_id, now, now);
    return rc < 0 ? rc : 0;
}

int lf_lead_attach(struct lf_conn *c, const char *tenant_id, const char *lead_id,
                   const struct lf_identity *ids, int n, int64_t now)
{
    int attached = 0;
    for (int i = 0; i < n; i++) {
        const char *kind = lf_identity_kind_name(ids[i].kind);
        int rc =
            lf_db_run(c, NULL,
                      "INSERT INTO lead_identities (tenant_id, lead_id, kind, value, created_at)"
                      " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                      "ssssI", tenant_id, lead_id, kind, ids[i].value, now);
        if (rc < 0) return rc;
        if (rc == 0) { /* held already: by this lead, or by another one */
            struct lf_stmt *st = lf_db_prepare(c,
                                               "SELECT lead_id FROM lead_identities WHERE "
                                               "tenant_id = ? AND kind = ? AND value = ?",
                                               NULL);
            if (st == NULL) return -LF_EINTERNAL;
            lf_stmt_bind(st, "sss", tenant_id, kind, ids[i].value);
            int other = lf_stmt_step(st) == LF_DB_ROW && strcmp(lf_stmt_text(st, 0), lead_id) != 0;
            lf_stmt_done(st);
            if (other) return -LF_ECONFLICT;
            continue;
        }
        attached++;
        if (ids[i].kind == LF_ID_EMAIL) {
            rc = lf_db_run(
                c, NULL,
                "UPDATE leads SET email = ?, updated_at = ? WHERE tenant_id = ? AND id = ?"
                " AND (email IS NULL OR email = '')",
                "sIss", ids[i].value, now, tenant_id, lead_id);
            if (rc < 0) return rc;
        }
    }
    return attached;
}

int lf_lead_fill(struct lf_conn *c, const char *tenant_id, const char *lead_id, json_t *obj,
                 int overwrite, int64_t now)
{
    char sql[768];
    const char *vals[NPROFILE];
    int n = 0;
    size_t len = (size_t)snprintf(sql, sizeof sql, "UPDATE leads SET updated_at = ?");
    for (size_t i = 0; i < NPROFILE; i++) {
        const char *v = json_string_value(json_object_get(obj, profile_fields[i]));
        if (v == NULL || *v == '\0') continue;
        vals[n++] = v;
        len += (size_t)snprintf(sql + len, sizeof sql - len,
                                overwrite ? ", %s = ?" : ", %s = COALESCE(NULLIF(%s, ''), ?)",
                                profile_fields[i], profile_fields[i]);
    }
    if (n == 0) return 0;
    snprintf(sql + len, sizeof sql - len, " WHERE tenant_id = ? AND id = ?");
    struct lf_stmt *st = lf_db_prepare(c, sql, NULL);
    if (st == NULL) return -LF_EINTERNAL;
    int idx = 1;
    lf_stmt_bind_int(st, idx++, now);
    for (int i = 0; i < n; i++) lf_stmt_bind_text(st, idx++, vals[i]);
    lf_stmt_bind_text(st, idx++, tenant_id);
    lf_stmt_bind_text(st, idx, lead_id);
    int rc = lf_stmt_step(st);
    lf_stmt_done(st);
    return rc < 0 ? rc : 0;
}

/* The id of the organization found by sql with one text value, into out; 1 when found. */
static int find_org(struct lf_conn *c, const char *sql, const char *tenant_id, const char *value,
                    char out[40])
{
    struct lf_stmt *st = lf_db_prepare(c, sql, NULL);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "ss", tenant_id, value);
    int rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW) snprintf(out, 40, "%s", lf_stmt_text(st, 0));
    lf_stmt_done(st);
    return rc == LF_DB_ROW ? 1 : rc;
}

int lf_lead_link_org(struct lf_conn *c, const char *tenant_id, const char *lead_id,
                     const char *company, const char *email, int64_t now)
{
    if (company && *company == '\0') company = NULL;
    const char *at = email ? strrchr(email, '@') : NULL;
    const char *domain = at && !lf_email_is_freemail(email) ? at + 1 : NULL;
    if (company == NULL && domain == NULL) return 0;

    int64_t has = 0;
    int rc =
        lf_db_int(c, NULL, &has,
                  "SELECT organization_id IS NOT NULL FROM leads WHERE tenant_id = ? AND id = ?",
                  "ss", tenant_id, lead_id);
    if (rc < 0 || rc == LF_DB_DONE || has) return rc < 0 ? rc : 0;

    char org[40] = "";
    int found = 0;
    if (domain)
        found = find_org(c, "SELECT id FROM organizations WHERE tenant_id = ? AND domain = ?",
                         tenant_id, domain, org);
    if (found == 0 && company) {
        found =
            find_org(c,
                     "SELECT id FROM organizations WHERE tenant_id = ? AND lower(name) = lower(?)"
                     " ORDER BY id LIMIT 1",
                     tenant_id, company, org);
        if (found == 1 && domain) /* a company known by name learns its domain */
            rc = lf_db_run(c, NULL,
                           "UPDATE organizations SET domain = ?, updated_at = ? WHERE tenant_id = ?"
                           " AND id = ? AND domain IS NULL",
                           "sIss", domain, now, tenant_id, org);
    }
    if (found < 0 || rc < 0) return found < 0 ? found : rc;
    if (found == 0) {
        lf_uuid7(org);
        rc = lf_db_run(
            c, NULL,
            "INSERT INTO organizations (id, tenant_id, name, domain, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            "ssssII", org, tenant_id, company ? company : domain, domain, now, now);
        if (rc < 0) return rc;
    }
    rc = lf_db_run(
        c, NULL,
        "UPDATE leads SET organization_id = ?, updated_at = ? WHERE tenant_id = ? AND id = ?"
        " AND organization_id IS NULL",
        "sIss", org, now, tenant_id, lead_id);
    return rc < 0 ? rc : 0;
}

void lf_email_hash(const char *email, char out[65])
{
    unsigned char d[LF_SHA256_LEN];
    lf_sha256(email, strlen(email), d);
    lf_hex_encode(d, sizeof d, out);
}

int lf_lead_suppressed(struct lf_conn *c, const char *tenant_id, const char *email)
{
    char hash[65];
    int64_t n = 0;
    lf_email_hash(email, hash);
    int rc = lf_db_int(c, NULL, &n,
                       "SELECT count(*) FROM erasures WHERE tenant_id = ? AND email_hash = ?", "ss",
                       tenant_id, hash);
    return rc < 0 ? rc : n > 0;
}

int lf_lead_resolve_id(struct lf_conn *c, const char *tenant_id, const char *id, char out[40])
{
    char cur[40];
    snprintf(cur, sizeof cur, "%s", id);
    struct lf_stmt *st =
        lf_db_prepare(c, "SELECT merged_into FROM leads WHERE tenant_id = ? AND id = ?", NULL);
    if (st == NULL) return -LF_EINTERNAL;
    for (int hop = 0; hop < 16; hop++) {
        lf_stmt_bind(st, "ss", tenant_id, cur);
        int rc = lf_stmt_step(st);
        if (rc != LF_DB_ROW) {
            lf_stmt_done(st);
            return rc < 0 ? rc : 0;
        }
        const char *next = lf_stmt_text(st, 0);
        if (next == NULL) {
            lf_stmt_done(st);
            snprintf(out, 40, "%s", cur);
            return 1;
        }
        snprintf(cur, sizeof cur, "%s", next);
        lf_stmt_done(st);
    }
    return -LF_EINTERNAL; /* a merge cycle: cannot happen */
}

/* Touch and profile columns read from the loser of a merge. */
#define MERGE_COLS                                                                                 \
    "email, first_name, last_name, job_title, phone, country, region, organization_id,"            \
    " first_touch_source, first_touch_campaign, first_touch_at, last_touch_source,"                \
    " last_touch_campaign, last_touch_at, last_activity_at"

/* The survivor of a merge holds both leads' score rows and intent signals now. Rows past a
 * rule's caps (max_per_lead ever, max_per_day per UTC day; the oldest count) are taken out:
 * score rows are marked expired, signals deleted. Then its score and intent are derived
 * again (which may make it hot or an MQL). */
static int rescore(struct lf_conn *c, const char *tenant_id, const char *lead_id, const char *cause,
                   int64_t now)
{
    int rc;
    json_t *lead = lf_lead_context(c, tenant_id, lead_id, &rc);
    if (lead == NULL) return rc < 0 ? rc : 0;
    rc = lf_db_run(
        c, NULL,
        "UPDATE score_history SET expired_at = ? WHERE tenant_id = ? AND expired_at IS NULL"
        " AND id IN (SELECT id FROM (SELECT h.id AS id,"
        " ROW_NUMBER() OVER (PARTITION BY h.rule_id ORDER BY h.occurred_at, h.id) AS n_lead,"
        " ROW_NUMBER() OVER (PARTITION BY h.rule_id, h.occurred_at / 86400000"
        " ORDER BY h.occurred_at, h.id) AS n_day, r.max_per_lead AS max_lead,"
        " r.max_per_day AS max_day FROM score_history h JOIN scoring_rules r"
        " ON r.tenant_id = h.tenant_id AND r.id = h.rule_id"
        " WHERE h.tenant_id = ? AND h.lead_id = ?) AS ranked"
        " WHERE (max_lead IS NOT NULL AND n_lead > max_lead)"
        " OR (max_day IS NOT NULL AND n_day > max_day))",
        "Isss", now, tenant_id, tenant_id, lead_id);
    if (rc >= 0)
        rc = lf_db_run(c, NULL,
                       "DELETE FROM intent_signals WHERE tenant_id = ? AND id IN (SELECT id FROM"
                       " (SELECT s.id AS id, ROW_NUMBER() OVER (PARTITION BY s.rule_id"
                       " ORDER BY s.detected_at, s.id) AS n, r.max_per_lead AS m"
                       " FROM intent_signals s JOIN intent_rules r ON r.tenant_id = s.tenant_id"
                       " AND r.id = s.rule_id WHERE s.tenant_id = ? AND s.lead_id = ?) AS ranked"
                       " WHERE m IS NOT NULL AND n > m)",
                       "sss", tenant_id, tenant_id, lead_id);
    struct lf_score_settings s;
    lf_score_settings_load(c, tenant_id, &s);
    if (rc >= 0)
        rc = lf_score_recompute(c, tenant_id, lead_id, &s, "merge", cause, now, NULL, NULL, NULL);
    if (rc >= 0)
        rc = lf_intent_recompute(c, tenant_id, lead_id, &s,
                                 json_string_value(json_object_get(lead, "primary_intent")), cause,
                                 now);
    lf_score_settings_clear(&s);
    json_decref(lead);
    return rc < 0 ? rc : 0;
}

int lf_lead_merge(struct lf_conn *c, const char *tenant_id, const char *survivor, const char *loser,
                  const char *cause, int64_t now)
{
    if (strcmp(survivor, loser) == 0) return -LF_EINVAL;
    int64_t live = 0;
    int rc = lf_db_int(c, NULL, &live,
                       "SELECT count(*) FROM leads WHERE tenant_id = ? AND id IN (?, ?)"
                       " AND merged_into IS NULL AND erased_at IS NULL",
                       "sss", tenant_id, survivor, loser);
    if (rc < 0) return rc;
    if (live != 2) return -LF_ENOTFOUND;

    /* Rows that simply follow the lead. */
    static const char *const moves[] = {
        "UPDATE events SET lead_id = ? WHERE tenant_id = ? AND lead_id = ?",
        "UPDATE score_history SET lead_id = ? WHERE tenant_id = ? AND lead_id = ?",
        "UPDATE intent_signals SET lead_id = ? WHERE tenant_id = ? AND lead_id = ?",
        "UPDATE tasks SET lead_id = ? WHERE tenant_id = ? AND lead_id = ?",
        "UPDATE routing_log SET lead_id = ? WHERE tenant_id = ? AND lead_id = ?",
        "UPDATE lead_identities SET lead_id = ? WHERE tenant_id = ? AND lead_id = ?",
        "UPDATE leads SET merged_into = ? WHERE tenant_id = ? AND merged_into = ?",
    };
    for (size_t i = 0; i < sizeof moves / sizeof moves[0] && rc >= 0; i++)
        rc = lf_db_run(c, NULL, moves[i], "sss", survivor, tenant_id, loser);
    /* One open deal per lead and pipeline: the loser's open deal where the survivor has one
     * open is closed as lost ("merged"), its owner's count dropping; then all its deals move. */
    if (rc >= 0)
        rc = lf_db_run(c, NULL,
                       "UPDATE team_members SET current_leads = CASE WHEN current_leads > n THEN"
                       " current_leads - n ELSE 0 END FROM (SELECT d.assigned_to AS who,"
                       " count(*) AS n FROM deals d WHERE d.tenant_id = ? AND d.lead_id = ?"
                       " AND d.status = 'open' AND d.pipeline_id IN (SELECT pipeline_id FROM deals"
                       " WHERE tenant_id = ? AND lead_id = ? AND status = 'open')"
                       " GROUP BY d.assigned_to) AS gone"
                       " WHERE team_members.tenant_id = ? AND team_members.id = gone.who",
                       "sssss", tenant_id, loser, tenant_id, survivor, tenant_id);
    if (rc >= 0)
        rc = lf_db_run(c, NULL,
                       "UPDATE deals SET status = 'lost', close_reason = 'merged', closed_at = ?,"
                       " updated_at = ? WHERE tenant_id = ? AND lead_id = ? AND status = 'open'"
                       " AND pipeline_id IN (SELECT pipeline_id FROM deals WHERE tenant_id = ?"
                       " AND lead_id = ? AND status = 'open')",
                       "IIssss", now, now, tenant_id, loser, tenant_id, survivor);
    if (rc >= 0)
        rc = lf_db_run(c, NULL,
                       "UPDATE deals SET lead_id = ?, updated_at = ? WHERE tenant_id = ?"
                       " AND lead_id = ?",
                       "sIss", survivor, now, tenant_id, loser);
    /* the survivor takes over the loser's routing when it had none */
    if (rc >= 0)
        rc = lf_db_run(c, NULL,
                       "UPDATE leads SET routing_status = l.routing_status, pipeline_id ="
                       " l.pipeline_id, routed_at = l.routed_at FROM (SELECT routing_status,"
                       " pipeline_id, routed_at FROM leads WHERE tenant_id = ? AND id = ?) AS l"
                       " WHERE leads.tenant_id = ? AND leads.id = ?"
                       " AND leads.routing_status = 'unrouted' AND l.routing_status <> 'unrouted'",
                       "ssss", tenant_id, loser, tenant_id, survivor);
    if (rc >= 0)
        rc = lf_db_run(c, NULL,
                       "UPDATE automation_logs SET lead_id = ?, trigger_key = CASE WHEN EXISTS"
                       " (SELECT 1 FROM automation_logs a WHERE a.lead_id = ?"
                       " AND a.rule_id = automation_logs.rule_id"
                       " AND a.trigger_key = automation_logs.trigger_key)"
                       " THEN trigger_key || '#merged:' || id ELSE trigger_key END"
                       " WHERE tenant_id = ? AND lead_id = ?",
                       "ssss", survivor, survivor, tenant_id, loser);
    if (rc < 0) return rc;

    /* Profile fields the survivor lacks; the earlier first touch and the later last touch. */
    struct lf_stmt *st =
        lf_db_prepare(c, "SELECT " MERGE_COLS " FROM leads WHERE tenant_id = ? AND id = ?", NULL);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "ss", tenant_id, loser);
    if ((rc = lf_stmt_step(st)) != LF_DB_ROW) {
        lf_stmt_done(st);
        return rc < 0 ? rc : -LF_ENOTFOUND;
    }
    char *v[8];
    for (int i = 0; i < 8; i++) v[i] = lf_stmt_text(st, i) ? lf_xstrdup(lf_stmt_text(st, i)) : NULL;
    char *fsrc = lf_stmt_text(st, 8) ? lf_xstrdup(lf_stmt_text(st, 8)) : NULL;
    char *fcmp = lf_stmt_text(st, 9) ? lf_xstrdup(lf_stmt_text(st, 9)) : NULL;
    int64_t fat = lf_stmt_isnull(st, 10) ? -1 : lf_stmt_int(st, 10);
    char *lsrc = lf_stmt_text(st, 11) ? lf_xstrdup(lf_stmt_text(st, 11)) : NULL;
    char *lcmp = lf_stmt_text(st, 12) ? lf_xstrdup(lf_stmt_text(st, 12)) : NULL;
    int64_t lat = lf_stmt_isnull(st, 13) ? -1 : lf_stmt_int(st, 13);
    int64_t act = lf_stmt_int(st, 14);
    lf_stmt_done(st);

    rc = lf_db_run(
        c, NULL,
        "UPDATE leads SET email = COALESCE(NULLIF(email, ''), ?),"
        " first_name = COALESCE(NULLIF(first_name, ''), ?),"
        " last_name = COALESCE(NULLIF(last_name, ''), ?),"
        " job_title = COALESCE(NULLIF(job_title, ''), ?), phone = COALESCE(NULLIF(phone, ''), ?),"
        " country = COALESCE(NULLIF(country, ''), ?), region = COALESCE(NULLIF(region, ''), ?),"
        " organization_id = COALESCE(organization_id, ?), updated_at = ?"
        " WHERE tenant_id = ? AND id = ?",
        "ssssssssIss", v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], now, tenant_id, survivor);
    if (rc >= 0 && fat >= 0)
        rc = lf_db_run(c, NULL,
                       "UPDATE leads SET first_touch_source = ?, first_touch_campaign = ?,"
                       " first_touch_at = ? WHERE tenant_id = ? AND id = ?"
                       " AND (first_touch_at IS NULL OR first_touch_at > ?)",
                       "ssIssI", fsrc, fcmp, fat, tenant_id, survivor, fat);
    if (rc >= 0 && lat >= 0)
        rc = lf_db_run(c, NULL,
                       "UPDATE leads SET last_touch_source = ?, last_touch_campaign = ?,"
                       " last_touch_at = ? WHERE tenant_id = ? AND id = ?"
                       " AND (last_touch_at IS NULL OR last_touch_at < ?)",
                       "ssIssI", lsrc, lcmp, lat, tenant_id, survivor, lat);
    if (rc >= 0 && act > 0)
        rc = lf_db_run(c, NULL,
                       "UPDATE leads SET last_activity_at = ? WHERE tenant_id = ? AND id = ?"
                       " AND last_activity_at < ?",
                       "IssI", act, tenant_id, survivor, act);
    for (int i = 0; i < 8; i++) free(v[i]);
    free(fsrc);
    free(fcmp);
    free(lsrc);
    free(lcmp);
    char per_loser[160]; /* one event merging several leads emits one lead.merged each */
    snprintf(per_loser, sizeof per_loser, "%s:%s", cause, loser);
    if (rc >= 0) rc = rescore(c, tenant_id, survivor, per_loser, now);
    if (rc >= 0)
        rc = lf_db_run(
            c, NULL,
            "UPDATE leads SET merged_into = ?, updated_at = ? WHERE tenant_id = ? AND id = ?",
            "sIss", survivor, now, tenant_id, loser);
    if (rc >= 0) {
        json_t *data = json_pack("{s:s, s:s}", "survivor_id", survivor, "merged_id", loser);
        rc = lf_emit(c, tenant_id, "lead.merged", survivor, per_loser, data, now);
        json_decref(data);
    }
    return rc < 0 ? rc : 0;
}

json_t *lf_lead_row_json(struct lf_stmt *st, json_t *tiers)
{
    int col = 0;
#define TXT()  lf_json_text(lf_stmt_text(st, col++))
#define INT()  json_integer(lf_stmt_int(st, col++))
#define TIME() (col++, lf_json_time(lf_stmt_int(st, col - 1), lf_stmt_isnull(st, col - 1)))
    json_t *o = json_object();
    json_object_set_new(o, "id", TXT());
    json_object_set_new(o, "email", TXT());
    json_object_set_new(o, "first_name", TXT());
    json_object_set_new(o, "last_name", TXT());
    json_object_set_new(o, "job_title", TXT());
    json_object_set_new(o, "phone", TXT());
    json_object_set_new(o, "country", TXT());
    json_object_set_new(o, "region", TXT());
    json_object_set_new(o, "organization_id", TXT());
    json_object_set_new(o, "status", TXT());
    json_object_set_new(o, "lifecycle_stage", TXT());
    json_object_set_new(o, "routing_status", TXT());
    json_object_set_new(o, "pipeline_id", TXT());
    json_object_set_new(o, "routed_at", TIME());
    json_t *score = json_object();
    json_object_set_new(score, "demographic", INT());
    json_object_set_new(score, "engagement", INT());
    json_object_set_new(score, "behavior", INT());
    int total = (int)lf_stmt_int(st, col);
    json_object_set_new(score, "total", INT());
    json_object_set_new(score, "tier", json_string(lf_tier_of(total, tiers)));
    json_object_set_new(o, "score", score);
    json_t *intent = json_object();
    json_object_set_new(intent, "primary", TXT());
    json_object_set_new(intent, "confidence", INT());
    json_t *summary = lf_json_parse(lf_stmt_text(st, col++));
    json_object_set_new(intent, "summary", json_is_null(summary) ? json_object() : summary);
    if (json_is_null(summary)) json_decref(summary);
    json_object_set_new(o, "intent", intent);
    json_t *first = json_object(), *last = json_object();
    json_object_set_new(first, "source", TXT());
    json_object_set_new(first, "campaign", TXT());
    json_object_set_new(first, "at", TIME());
    json_object_set_new(last, "source", TXT());
    json_object_set_new(last, "campaign", TXT());
    json_object_set_new(last, "at", TIME());
    json_object_set_new(o, "first_touch", first);
    json_object_set_new(o, "last_touch", last);
    int64_t activity = lf_stmt_int(st, col++);
    json_object_set_new(o, "last_activity_at", lf_json_time(activity, activity == 0));
    json_object_set_new(o, "merged_into", TXT());
    json_object_set_new(o, "created_at", TIME());
    json_object_set_new(o, "updated_at", TIME());
#undef TXT
#undef INT
#undef TIME
    return o;
}

json_t *lf_lead_json(struct lf_conn *c, const char *tenant_id, const char *id, int full,
                     json_t *tiers, int *rc)
{
    struct lf_stmt *st =
        lf_db_prepare(c, "SELECT " LF_LEAD_COLS " FROM leads WHERE tenant_id = ? AND id = ?", NULL);
    if (st == NULL) {
        *rc = -LF_EINTERNAL;
        return NULL;
    }
    lf_stmt_bind(st, "ss", tenant_id, id);
    *rc = lf_stmt_step(st);
    json_t *o = *rc == LF_DB_ROW ? lf_lead_row_json(st, tiers) : NULL;
    lf_stmt_done(st);
    if (o == NULL || !full) return o;

    json_t *ids = json_array();
    st = lf_db_prepare(c,
                       "SELECT kind, value, created_at FROM lead_identities WHERE tenant_id = ?"
                       " AND lead_id = ? ORDER BY kind, value",
                       NULL);
    if (st) {
        lf_stmt_bind(st, "ss", tenant_id, id);
        while (lf_stmt_step(st) == LF_DB_ROW)
            json_array_append_new(ids, json_pack("{s:s, s:s, s:o}", "kind", lf_stmt_text(st, 0),
                                                 "value", lf_stmt_text(st, 1), "added_at",
                                                 lf_json_time(lf_stmt_int(st, 2), 0)));
        lf_stmt_done(st);
    }
    json_object_set_new(o, "identities", ids);
    json_t *org = json_null();
    const char *org_id = json_string_value(json_object_get(o, "organization_id"));
    st = org_id
             ? lf_db_prepare(c,
                             "SELECT id, name, domain, country, industry, size FROM organizations"
                             " WHERE tenant_id = ? AND id = ?",
                             NULL)
             : NULL;
    if (st) {
        lf_stmt_bind(st, "ss", tenant_id, org_id);
        if (lf_stmt_step(st) == LF_DB_ROW)
            org = json_pack("{s:s, s:s, s:o, s:o, s:o, s:o}", "id", lf_stmt_text(st, 0), "name",
                            lf_stmt_text(st, 1), "domain", lf_json_text(lf_stmt_text(st, 2)),
                            "country", lf_json_text(lf_stmt_text(st, 3)), "industry",
                            lf_json_text(lf_stmt_text(st, 4)), "size",
                            lf_json_text(lf_stmt_text(st, 5)));
        lf_stmt_done(st);
    }
    json_object_set_new(o, "organization", org);
    return o;
}

/* The columns of lf_lead_context, in the order of ctx_names (text ones first). */
static const char *const ctx_names[] = {LF_COND_LEAD_TEXT,  LF_COND_LEAD_NUMBER, "hot_armed",
                                        "score_expires_at", "intent_expires_at", "intent_summary"};
#define NCTX_TEXT 17
#define NCTX      (sizeof ctx_names / sizeof ctx_names[0])
_Static_assert(NCTX == NCTX_TEXT + 5 + 4, "lf_lead_context's SELECT lists every field");

json_t *lf_lead_context(struct lf_conn *c, const char *tenant_id, const char *id, int *rc)
{
    static const char sql[] =
        "SELECT email, first_name, last_name, job_title, phone, country, region, status,"
        " lifecycle_stage, routing_status, pipeline_id, organization_id, primary_intent,"
        " first_touch_source, first_touch_campaign, last_touch_source, last_touch_campaign,"
        " total_score, demographic_score, engagement_score, behavior_score, intent_confidence,"
        " hot_armed, score_expires_at, intent_expires_at, intent_summary FROM leads"
        " WHERE tenant_id = ? AND id = ?";
    struct lf_stmt *st = lf_db_prepare(c, sql, NULL);
    if (st == NULL) {
        *rc = -LF_EINTERNAL;
        return NULL;
    }
    lf_stmt_bind(st, "ss", tenant_id, id);
    json_t *o = NULL;
    if ((*rc = lf_stmt_step(st)) == LF_DB_ROW) {
        o = json_object();
        for (int i = 0; i < (int)NCTX; i++)
            json_object_set_new(o, ctx_names[i],
                                i < NCTX_TEXT || i == NCTX - 1 ? lf_json_text(lf_stmt_text(st, i))
                                : lf_stmt_isnull(st, i)        ? json_null()
                                                               : json_integer(lf_stmt_int(st, i)));
    }
    lf_stmt_done(st);
    return o;
}

json_t *lf_org_context(struct lf_conn *c, const char *tenant_id, const char *id, int *rc)
{
    static const char *const names[] = {LF_COND_ORG_TEXT};
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT name, domain, vat_id, country, industry, size"
                                       " FROM organizations WHERE tenant_id = ? AND id = ?",
                                       NULL);
    if (st == NULL) {
        *rc = -LF_EINTERNAL;
        return NULL;
    }
    lf_stmt_bind(st, "ss", tenant_id, id);
    json_t *o = NULL;
    if ((*rc = lf_stmt_step(st)) == LF_DB_ROW) {
        o = json_object();
        for (int i = 0; i < 6; i++)
            json_object_set_new(o, names[i], lf_json_text(lf_stmt_text(st, i)));
    }
    lf_stmt_done(st);
    return o;
}
