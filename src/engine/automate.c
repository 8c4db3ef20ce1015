/* The automate stage and the automation engine: which rules a fact triggers, their execution
 * (claim, depth, budget, action in a savepoint, log, counters, automation.executed), the
 * actions, the API transaction helpers and the dry run. See automation.h for the contract. */
#include "engine/automation.h"
#include "engine/deal.h"
#include "engine/emit.h"
#include "engine/lead.h"
#include "engine/route.h"
#include "engine/rules.h"
#include "engine/stage.h"
#include "outbound/outbound.h"
#include "core/crypto.h"
#include "core/jsonx.h"
#include "core/mem.h"
#include "core/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_MS  86400000LL
#define HOUR_MS 3600000LL

int lf_automate_any(const struct lf_ruleset *rs)
{
    return rs && rs->nauto > 0;
}

/* One line for a person from err: its message, or its first field's. */
static void err_text(const struct lf_err *err, int code, char *out, size_t size)
{
    json_t *f = json_array_get(err->fields, 0);
    if (f)
        snprintf(out, size, "%s: %s", json_string_value(json_object_get(f, "field")),
                 json_string_value(json_object_get(f, "message")));
    else
        snprintf(out, size, "%s", err->msg[0] ? err->msg : lf_strerror(code));
}

/* What an action works on: the lead, its deal (the one the trigger is about, else its open
 * deal, preferring its pipeline's) and the values templates read. */
struct subject {
    json_t *vars; /* template values, "lead.first_name" … */
    char lead_pipeline[40];
    char region[65];
    char org_id[40];
    char deal_id[40]; /* "" when there is no deal */
    char deal_status[8];
    char pipeline_id[40];
    char owner[40];      /* the deal's owner, "" for none */
    char owner_role[64]; /* the deal's pipeline's */
    char moco_offer[64], moco_invoice[64];
    int64_t value_cents;
    char currency[8];
};

static void copy_col(char *out, size_t size, struct lf_stmt *st, int col)
{
    const char *v = lf_stmt_text(st, col);
    snprintf(out, size, "%s", v ? v : "");
}

static void set_text(json_t *vars, const char *key, struct lf_stmt *st, int col)
{
    const char *v = lf_stmt_text(st, col);
    json_object_set_new(vars, key, v ? json_string(v) : json_null());
}

/* Loads the deal (by id) into s. LF_DB_ROW, LF_DB_DONE or negative. */
static int load_deal(struct lf_conn *c, const char *tenant_id, const char *deal_id,
                     struct subject *s)
{
    struct lf_stmt *st = lf_db_prepare(
        c,
        "SELECT d.id, d.name, d.value_cents, d.currency, s.name, p.name, m.name, m.email,"
        " d.pipeline_id, d.assigned_to, d.status, p.owner_role, d.moco_offer_id,"
        " d.moco_invoice_id FROM deals d JOIN pipeline_stages s ON s.id = d.stage_id"
        " JOIN pipelines p ON p.id = d.pipeline_id"
        " LEFT JOIN team_members m ON m.id = d.assigned_to AND m.tenant_id = d.tenant_id"
        " WHERE d.tenant_id = ? AND d.id = ?",
        NULL);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "ss", tenant_id, deal_id);
    int rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW) {
        copy_col(s->deal_id, sizeof s->deal_id, st, 0);
        set_text(s->vars, "deal.name", st, 1);
        s->value_cents = lf_stmt_int(st, 2);
        copy_col(s->currency, sizeof s->currency, st, 3);
        char value[64];
        snprintf(value, sizeof value, "%lld.%02lld %s", (long long)(s->value_cents / 100),
                 (long long)(s->value_cents % 100), s->currency);
        json_object_set_new(s->vars, "deal.value", json_string(value));
        set_text(s->vars, "deal.stage", st, 4);
        set_text(s->vars, "deal.pipeline", st, 5);
        set_text(s->vars, "owner.name", st, 6);
        set_text(s->vars, "owner.email", st, 7);
        copy_col(s->pipeline_id, sizeof s->pipeline_id, st, 8);
        copy_col(s->owner, sizeof s->owner, st, 9);
        copy_col(s->deal_status, sizeof s->deal_status, st, 10);
        copy_col(s->owner_role, sizeof s->owner_role, st, 11);
        copy_col(s->moco_offer, sizeof s->moco_offer, st, 12);
        copy_col(s->moco_invoice, sizeof s->moco_invoice, st, 13);
    }
    lf_stmt_done(st);
    return rc;
}

/* The lead's open deal, in pipeline when given, else preferring the lead's pipeline. */
static int open_deal(struct lf_conn *c, const char *tenant_id, const char *lead_id,
                     const char *pipeline, const char *prefer, char out[40])
{
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT id FROM deals WHERE tenant_id = ? AND lead_id = ?"
                                       " AND status = 'open' AND (? = '' OR pipeline_id = ?)"
                                       " ORDER BY pipeline_id = ? DESC, updated_at DESC, id DESC"
                                       " LIMIT 1",
                                       NULL);
    if (st == NULL) return -LF_EINTERNAL;
    const char *p = pipeline ? pipeline : "";
    lf_stmt_bind(st, "sssss", tenant_id, lead_id, p, p, prefer ? prefer : "");
    int rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW) copy_col(out, 40, st, 0);
    lf_stmt_done(st);
    return rc;
}

/* Loads the subject of an execution. deal_id: the trigger's deal, or NULL; pipeline (an id,
 * may be NULL): the deal must be the lead's open deal there. Returns 0 (s->deal_id "" when
 * none), -LF_ENOTFOUND (no lead) or a store error. */
static int subject_load(struct lf_conn *c, const char *tenant_id, const char *lead_id,
                        const char *deal_id, const char *pipeline, struct subject *s)
{
    memset(s, 0, sizeof *s);
    s->vars = json_object();
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT l.first_name, l.last_name, l.email, l.total_score,"
                                       " l.primary_intent, o.name, l.region, l.organization_id,"
                                       " l.pipeline_id FROM leads l LEFT JOIN organizations o"
                                       " ON o.id = l.organization_id AND o.tenant_id = l.tenant_id"
                                       " WHERE l.tenant_id = ? AND l.id = ?",
                                       NULL);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "ss", tenant_id, lead_id);
    int rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW) {
        set_text(s->vars, "lead.first_name", st, 0);
        set_text(s->vars, "lead.last_name", st, 1);
        set_text(s->vars, "lead.email", st, 2);
        json_object_set_new(s->vars, "lead.score", json_integer(lf_stmt_int(st, 3)));
        set_text(s->vars, "lead.intent", st, 4);
        set_text(s->vars, "lead.company", st, 5);
        copy_col(s->region, sizeof s->region, st, 6);
        copy_col(s->org_id, sizeof s->org_id, st, 7);
        copy_col(s->lead_pipeline, sizeof s->lead_pipeline, st, 8);
    }
    lf_stmt_done(st);
    if (rc == LF_DB_DONE) return -LF_ENOTFOUND;
    if (rc < 0) return rc;
    char deal[40] = "";
    if (deal_id && !pipeline)
        snprintf(deal, sizeof deal, "%s", deal_id);
    else {
        rc = open_deal(c, tenant_id, lead_id, pipeline, deal_id ? NULL : s->lead_pipeline, deal);
        if (rc < 0) return rc;
        /* the trigger's deal wins when it is the lead's open deal in that pipeline */
        if (deal_id && rc == LF_DB_ROW) {
            struct subject probe = {.vars = json_object()};
            rc = load_deal(c, tenant_id, deal_id, &probe);
            if (rc == LF_DB_ROW && strcmp(probe.pipeline_id, pipeline) == 0 &&
                strcmp(probe.deal_status, "open") == 0)
                snprintf(deal, sizeof deal, "%s", deal_id);
            json_decref(probe.vars);
            if (rc < 0) return rc;
        }
    }
    if (*deal) {
        rc = load_deal(c, tenant_id, deal, s);
        if (rc < 0) return rc;
    }
    return 0;
}

static void subject_free(struct subject *s)
{
    json_decref(s->vars);
    s->vars = NULL;
}

/* The actions. Each returns 0 with *result set (what it did), or a negative code with err
 * (a failure the log records). */

struct action_ctx {
    struct lf_auto_run *run;
    const struct lf_auto_rule *rule;
    const struct lf_auto_fact *fact;
    const char *deal_id; /* the trigger's deal, or NULL */
    const char *cause;   /* the execution's log id */
    json_t *config;      /* the rule's action_config */
};

#define BY "automation"

static const char *cfg_text(const struct action_ctx *a, const char *key)
{
    return json_string_value(json_object_get(a->config, key));
}

/* Renders tpl into *out, refusing (-LF_ETOOLARGE) a result longer than max characters: a
 * template can repeat a placeholder, and a value can hold what an earlier template wrote. */
static int render(const char *tpl, json_t *vars, size_t max, const char *what, char **out,
                  struct lf_err *err)
{
    *out = lf_template_render(tpl, vars);
    size_t n = lf_utf8_chars(*out, strlen(*out));
    if (n <= max) return 0;
    free(*out);
    *out = NULL;
    return lf_err_set(err, -LF_ETOOLARGE, "the rendered %s has %zu characters; at most %zu fit",
                      what, n, max);
}

#define TEXT_MAX  4000 /* a Slack message */
#define TITLE_MAX 500  /* a task title, as the tasks API takes */
#define FIELD_MAX 200  /* a lead field, as the leads API takes */

static int need_open_deal(const struct subject *s, struct lf_err *err)
{
    if (!*s->deal_id) return lf_err_set(err, -LF_ECONFLICT, "the lead has no open deal");
    if (strcmp(s->deal_status, "open") != 0)
        return lf_err_set(err, -LF_ECONFLICT, "the deal %s is %s, not open", s->deal_id,
                          s->deal_status);
    return 0;
}

static int act_move(struct action_ctx *a, struct subject *s, json_t **result, struct lf_err *err)
{
    struct lf_auto_run *run = a->run;
    const char *pref = cfg_text(a, "pipeline"), *stage = cfg_text(a, "stage");
    char pid[40] = "";
    if (pref) {
        int rc = lf_pipeline_find(run->conn, run->tenant_id, pref, pid, NULL);
        if (rc == LF_DB_DONE) return lf_err_set(err, -LF_ENOTFOUND, "no pipeline %s", pref);
        if (rc < 0) return rc;
    }
    int rc =
        subject_load(run->conn, run->tenant_id, a->fact->lead_id, a->deal_id, *pid ? pid : NULL, s);
    if (rc >= 0) rc = need_open_deal(s, err);
    if (rc < 0) return rc;
    rc = lf_deal_move(run->conn, run->tenant_id, s->deal_id, stage, BY, a->cause, run->now, err);
    if (rc < 0) return rc;
    struct subject after = {.vars = json_object()};
    int found = load_deal(run->conn, run->tenant_id, s->deal_id, &after);
    *result = json_pack("{s:s, s:O, s:O}", "deal_id", s->deal_id, "from_stage",
                        json_object_get(s->vars, "deal.stage"), "to_stage",
                        json_object_get(after.vars, "deal.stage"));
    subject_free(&after);
    if (found < 0) return found;
    if (rc == 0) json_object_set_new(*result, "unchanged", json_true());
    return 0;
}

static int act_assign(struct action_ctx *a, struct subject *s, json_t **result, struct lf_err *err)
{
    struct lf_auto_run *run = a->run;
    int rc = subject_load(run->conn, run->tenant_id, a->fact->lead_id, a->deal_id, NULL, s);
    if (rc >= 0) rc = need_open_deal(s, err);
    if (rc < 0) return rc;
    const char *role = cfg_text(a, "role") ? cfg_text(a, "role") : s->owner_role;
    const char *region = cfg_text(a, "region") ? cfg_text(a, "region") : s->region;
    const char *sname = cfg_text(a, "strategy");
    int strategy =
        sname ? lf_strategy_parse(sname) : lf_strategy_default(run->conn, run->tenant_id);
    if (strategy == LF_ASSIGN_MANUAL) strategy = LF_ASSIGN_ROUND_ROBIN;
    char owner[40];
    rc = lf_owner_pick(run->conn, run->tenant_id, role, *region ? region : NULL, strategy, NULL,
                       run->now, owner);
    if (rc < 0) return rc;
    if (rc == 0)
        return lf_err_set(err, -LF_ECONFLICT,
                          "nobody to assign: no active %s member who is not away and under"
                          " their max_leads",
                          role);
    rc = lf_deal_assign(run->conn, run->tenant_id, s->deal_id, owner, run->now, err);
    if (rc < 0) return rc;
    *result = json_pack("{s:s, s:s, s:s?, s:s, s:s}", "deal_id", s->deal_id, "owner_id", owner,
                        "previous_owner_id", *s->owner ? s->owner : NULL, "strategy",
                        lf_strategy_name(strategy), "role", role);
    if (rc == 0) json_object_set_new(*result, "unchanged", json_true());
    return 0;
}

static int act_notify(struct action_ctx *a, struct subject *s, json_t **result, struct lf_err *err)
{
    struct lf_auto_run *run = a->run;
    int rc = subject_load(run->conn, run->tenant_id, a->fact->lead_id, a->deal_id, NULL, s);
    if (rc < 0) return rc;
    const char *tpl = cfg_text(a, "text");
    if (tpl == NULL) tpl = lf_auto_message_text(cfg_text(a, "template"));
    if (tpl == NULL) return lf_err_set(err, -LF_EINVAL, "the rule has no text");
    char *text;
    rc = render(tpl, s->vars, TEXT_MAX, "text", &text, err);
    if (rc < 0) return rc;
    const char *channel = cfg_text(a, "channel");
    char id[40];
    rc = lf_outbox_slack(run->conn, run->tenant_id, channel, text, a->fact->event_id, run->now, id);
    if (rc >= 0)
        *result =
            json_pack("{s:s, s:s?, s:s}", "delivery_id", id, "channel", channel, "text", text);
    free(text);
    return rc < 0 ? rc : 0;
}

/* A member named by id or email: its id. LF_DB_ROW, LF_DB_DONE or negative. */
static int find_member(struct lf_conn *c, const char *tenant_id, const char *ref, char out[40])
{
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT id FROM team_members WHERE tenant_id = ? AND"
                                       " (id = ? OR lower(email) = lower(?))",
                                       NULL);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "sss", tenant_id, ref, ref);
    int rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW) copy_col(out, 40, st, 0);
    lf_stmt_done(st);
    return rc;
}

static int act_task(struct action_ctx *a, struct subject *s, json_t **result, struct lf_err *err)
{
    struct lf_auto_run *run = a->run;
    int rc = subject_load(run->conn, run->tenant_id, a->fact->lead_id, a->deal_id, NULL, s);
    if (rc < 0) return rc;
    const char *who = cfg_text(a, "assignee");
    char member[40] = "";
    if (who && strcmp(who, "owner") != 0) {
        rc = find_member(run->conn, run->tenant_id, who, member);
        if (rc == LF_DB_DONE) return lf_err_set(err, -LF_ENOTFOUND, "no team member %s", who);
        if (rc < 0) return rc;
    } else {
        snprintf(member, sizeof member, "%s", s->owner);
    }
    json_t *due = json_object_get(a->config, "due_days");
    char *title;
    rc = render(cfg_text(a, "title"), s->vars, TITLE_MAX, "title", &title, err);
    if (rc < 0) return rc;
    if (strlen(title) == 0) {
        free(title);
        title = lf_xstrdup("Follow up");
    }
    struct lf_task_new t = {.lead_id = a->fact->lead_id,
                            .deal_id = *s->deal_id ? s->deal_id : NULL,
                            .title = title,
                            .task_type = cfg_text(a, "task_type"),
                            .assigned_to = *member ? member : NULL,
                            .due_at = due ? run->now + json_integer_value(due) * DAY_MS : -1,
                            .by = BY,
                            .cause = a->cause};
    char id[40];
    rc = lf_task_create(run->conn, run->tenant_id, &t, run->now, id, err);
    if (rc >= 0) {
        char at[40];
        *result = json_pack("{s:s, s:s, s:s?, s:s?, s:s?}", "task_id", id, "title", title,
                            "deal_id", t.deal_id, "assigned_to", t.assigned_to, "due_at",
                            t.due_at >= 0 ? lf_time_format(t.due_at, at, sizeof at) : NULL);
    }
    free(title);
    return rc < 0 ? rc : 0;
}

/* Writes an outbox row; its id goes to id. */
static int act_moco(struct action_ctx *a, struct subject *s, json_t **result, struct lf_err *err)
{
    struct lf_auto_run *run = a->run;
    const char *op = cfg_text(a, "operation");
    int rc = subject_load(run->conn, run->tenant_id, a->fact->lead_id, a->deal_id, NULL, s);
    if (rc < 0) return rc;
    if (!*s->org_id)
        return lf_err_set(err, -LF_ECONFLICT, "the lead has no organization to bill in Moco");
    char moco[64] = "";
    json_t *company = lf_moco_company(run->conn, run->tenant_id, s->org_id, moco, &rc);
    if (company == NULL) return rc < 0 ? rc : lf_err_set(err, -LF_ENOTFOUND, "no organization");
    const char *path, *existing = NULL;
    json_t *body;
    if (strcmp(op, "create_customer") == 0) {
        path = "/companies";
        existing = *moco ? moco : NULL;
        body = json_incref(company);
    } else {
        if (!*s->deal_id) {
            json_decref(company);
            return lf_err_set(err, -LF_ECONFLICT, "the lead has no deal to %s for",
                              strcmp(op, "create_offer") == 0 ? "make an offer" : "invoice");
        }
        int offer = strcmp(op, "create_offer") == 0;
        path = offer ? "/offers" : "/invoices";
        existing = offer ? (*s->moco_offer ? s->moco_offer : NULL)
                         : (*s->moco_invoice ? s->moco_invoice : NULL);
        json_t *title = json_object_get(s->vars, "deal.name");
        char price[40];
        snprintf(price, sizeof price, "%lld.%02lld", (long long)(s->value_cents / 100),
                 (long long)(s->value_cents % 100));
        body = json_pack("{s:s?, s:O, s:s, s:[{s:s, s:O, s:i, s:s}]}",
                         offer ? "company_id" : "customer_id", *moco ? moco : NULL, "title", title,
                         "currency", s->currency, "items", "type", "item", "title", title,
                         "quantity", 1, "unit_price", price);
    }
    json_decref(company);
    if (existing) {
        *result = json_pack("{s:s, s:s, s:b}", "operation", op, "moco_id", existing, "exists", 1);
        json_decref(body);
        return 0;
    }
    json_t *payload =
        json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:s?}", "operation", op, "method", "POST", "path",
                  path, "body", body, "lead_id", a->fact->lead_id, "organization_id", s->org_id,
                  "deal_id", *s->deal_id ? s->deal_id : NULL);
    char id[40];
    rc = lf_outbox_put(run->conn, run->tenant_id, "moco", NULL, a->fact->event_id, path, payload,
                       run->now, id);
    if (rc >= 0)
        *result =
            json_pack("{s:s, s:s, s:O}", "delivery_id", id, "operation", op, "payload", payload);
    json_decref(payload);
    return rc;
}

static int act_field(struct action_ctx *a, struct subject *s, json_t **result, struct lf_err *err)
{
    struct lf_auto_run *run = a->run;
    static const struct {
        const char *field, *update, *select;
    } fields[] = {
#define FIELD(f)                                                                                   \
    {#f, "UPDATE leads SET " #f " = ?, updated_at = ? WHERE tenant_id = ? AND id = ?",             \
     "SELECT " #f " FROM leads WHERE tenant_id = ? AND id = ?"}
        FIELD(first_name), FIELD(last_name), FIELD(job_title), FIELD(phone),
        FIELD(country),    FIELD(region),    FIELD(status),    FIELD(lifecycle_stage),
#undef FIELD
    };
    const char *field = cfg_text(a, "field");
    size_t i = 0;
    while (i < sizeof fields / sizeof fields[0] && strcmp(fields[i].field, field) != 0) i++;
    if (i == sizeof fields / sizeof fields[0])
        return lf_err_set(err, -LF_EINVAL, "%s is not a field automation may set", field);
    int rc = subject_load(run->conn, run->tenant_id, a->fact->lead_id, a->deal_id, NULL, s);
    if (rc < 0) return rc;
    const char *tpl = cfg_text(a, "value");
    char *value = NULL;
    if (tpl && (rc = render(tpl, s->vars, FIELD_MAX, field, &value, err)) < 0) return rc;
    if (value && *value == '\0') {
        free(value);
        value = NULL;
    }
    struct lf_stmt *st = lf_db_prepare(run->conn, fields[i].select, NULL);
    char before[256] = "";
    int had = 0;
    if (st == NULL) rc = -LF_EINTERNAL;
    if (st) {
        lf_stmt_bind(st, "ss", run->tenant_id, a->fact->lead_id);
        rc = lf_stmt_step(st);
        had = rc == LF_DB_ROW && lf_stmt_text(st, 0) != NULL;
        if (had) copy_col(before, sizeof before, st, 0);
        lf_stmt_done(st);
    }
    if (rc >= 0)
        rc = lf_db_run(run->conn, err, fields[i].update, "sIss", value, run->now, run->tenant_id,
                       a->fact->lead_id);
    if (rc >= 0) {
        *result = json_pack("{s:s, s:s?, s:s?}", "field", field, "from", had ? before : NULL, "to",
                            value);
        if ((had && value && strcmp(before, value) == 0) || (!had && !value))
            json_object_set_new(*result, "unchanged", json_true());
    }
    free(value);
    return rc < 0 ? rc : 0;
}

static int act_route(struct action_ctx *a, struct subject *s, json_t **result, struct lf_err *err)
{
    struct lf_auto_run *run = a->run;
    (void)s;
    json_t *create = json_object_get(a->config, "create_deal");
    int with_deal = create == NULL || json_is_true(create);
    char deal[40] = "";
    const char *pipeline = cfg_text(a, "pipeline");
    int rc = lf_route_lead(run->conn, run->tenant_id, a->fact->lead_id, pipeline, NULL,
                           "automation", BY, a->cause, run->now, with_deal, deal, err);
    if (rc >= 0)
        *result = json_pack("{s:s, s:s?}", "pipeline", pipeline, "deal_id", *deal ? deal : NULL);
    return rc < 0 ? rc : 0;
}

static int act_webhook(struct action_ctx *a, struct subject *s, json_t **result, struct lf_err *err)
{
    struct lf_auto_run *run = a->run;
    const char *sub = cfg_text(a, "subscription"), *url = cfg_text(a, "url");
    char target[2048] = "";
    int rc;
    if (sub) {
        struct lf_stmt *st = lf_db_prepare(run->conn,
                                           "SELECT url FROM subscriptions WHERE tenant_id = ?"
                                           " AND id = ?",
                                           NULL);
        if (st == NULL) return -LF_EINTERNAL;
        lf_stmt_bind(st, "ss", run->tenant_id, sub);
        rc = lf_stmt_step(st);
        if (rc == LF_DB_ROW) copy_col(target, sizeof target, st, 0);
        lf_stmt_done(st);
        if (rc == LF_DB_DONE) return lf_err_set(err, -LF_ENOTFOUND, "no subscription %s", sub);
        if (rc < 0) return rc;
    } else {
        snprintf(target, sizeof target, "%s", url);
    }
    rc = subject_load(run->conn, run->tenant_id, a->fact->lead_id, a->deal_id, NULL, s);
    if (rc < 0) return rc;
    json_t *lead = lf_lead_json(run->conn, run->tenant_id, a->fact->lead_id, 0, NULL, &rc);
    json_t *deal = *s->deal_id ? lf_deal_json(run->conn, run->tenant_id, s->deal_id, 0, &rc) : NULL;
    char id[40], at[40];
    lf_uuid7(id);
    const struct lf_auto_fact *f = a->fact;
    json_t *event = f->event_id ? json_pack("{s:s, s:s?, s:O?}", "id", f->event_id, "type",
                                            f->event_type, "metadata", f->metadata)
                                : json_null();
    /* The Standard Webhooks body; "id" is the message id the receiver de-duplicates on. */
    json_t *payload =
        json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:o, s:o*, s:o*}}", "id", id, "type",
                  f->event_type ? f->event_type : "deal.time_in_stage", "timestamp",
                  lf_time_format(run->now, at, sizeof at), "data", "rule_id", a->rule->id, "rule",
                  a->rule->name, "event", event, "lead", lead, "deal", deal);
    char delivery[40];
    rc = lf_outbox_put(run->conn, run->tenant_id, "webhook", sub, f->event_id, target, payload,
                       run->now, delivery);
    if (rc >= 0)
        *result = json_pack("{s:s, s:s, s:s?, s:s}", "delivery_id", delivery, "target", target,
                            "subscription_id", sub, "message_id", id);
    json_decref(payload);
    return rc < 0 ? rc : 0;
}

typedef int action_fn(struct action_ctx *a, struct subject *s, json_t **result, struct lf_err *err);

static action_fn *const actions[LF_ACT_COUNT] = {
    [LF_ACT_MOVE] = act_move,   [LF_ACT_ASSIGN] = act_assign,   [LF_ACT_NOTIFY] = act_notify,
    [LF_ACT_TASK] = act_task,   [LF_ACT_MOCO] = act_moco,       [LF_ACT_FIELD] = act_field,
    [LF_ACT_ROUTE] = act_route, [LF_ACT_WEBHOOK] = act_webhook,
};

/* Execution. */

/* Writes the outcome on the log row (and the deal the action worked on, when the trigger named
 * none) and, unless skipped, the rule's counters. A skip gives the trigger key back (the row
 * keeps it with a suffix): a once-only trigger skipped by the budget or the depth limit can
 * still fire later. */
static int finish(struct lf_auto_run *run, const struct lf_auto_rule *rule, const char *log_id,
                  const char *status, json_t *result, const char *error, const char *deal_id)
{
    char *text = result ? lf_json_dump(result) : NULL;
    int skipped = strcmp(status, "skipped") == 0;
    int rc = lf_db_run(run->conn, NULL,
                       "UPDATE automation_logs SET status = ?, success = ?, result = ?, error = ?,"
                       " deal_id = COALESCE(deal_id, ?), trigger_key = CASE WHEN ? = 1"
                       " THEN trigger_key || '#skipped:' || id ELSE trigger_key END WHERE id = ?",
                       "sisssis", status, strcmp(status, "executed") == 0, text, error,
                       deal_id && *deal_id ? deal_id : NULL, skipped, log_id);
    free(text);
    if (rc >= 0 && strcmp(status, "skipped") != 0)
        rc = lf_db_run(run->conn, NULL,
                       "UPDATE automation_rules SET last_executed_at = ?,"
                       " execution_count = execution_count + 1 WHERE id = ?",
                       "Is", run->now, rule->id);
    return rc < 0 ? rc : 0;
}

/* Executions of the rule in the hour before now (not skipped ones). */
static int64_t executions_last_hour(struct lf_auto_run *run, const struct lf_auto_rule *rule)
{
    struct lf_stmt *st = lf_db_prepare(run->conn,
                                       "SELECT count(*) FROM automation_logs WHERE tenant_id = ?"
                                       " AND rule_id = ? AND created_at > ?"
                                       " AND status IN ('executed', 'failed')",
                                       NULL);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "ssI", run->tenant_id, rule->id, run->now - HOUR_MS);
    int rc = lf_stmt_step(st);
    int64_t n = rc == LF_DB_ROW ? lf_stmt_int(st, 0) : rc < 0 ? rc : 0;
    lf_stmt_done(st);
    return n;
}

static void report(struct lf_auto_run *run, const struct lf_auto_rule *rule, const char *log_id,
                   const char *key, int depth, const char *status, json_t *result,
                   const char *error)
{
    if (run->report == NULL) return;
    json_array_append_new(
        run->report, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:O?, s:s?}", "log_id",
                               log_id, "rule_id", rule->id, "rule", rule->name, "trigger_type",
                               lf_auto_trigger_name(rule->trigger), "action_type",
                               lf_auto_action_name(rule->action), "trigger_key", key, "depth",
                               depth, "status", status, "result", result, "error", error));
}

/* Runs rule for fact under key: claim, depth, budget, action, log. Returns 1 when it ran (any
 * outcome), 0 when the key was claimed before, or a negative store error. */
static int execute(struct lf_auto_run *run, const struct lf_auto_rule *rule,
                   const struct lf_auto_fact *fact, const char *key, const char *deal_id)
{
    int depth = fact->depth + 1;
    char log_id[40];
    lf_uuid7(log_id);
    int rc = lf_db_run(run->conn, NULL,
                       "INSERT INTO automation_logs (id, tenant_id, rule_id, lead_id, deal_id,"
                       " event_id, trigger_key, success, status, depth, trigger_type, action_type,"
                       " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, 'running', ?, ?, ?, ?)"
                       " ON CONFLICT (rule_id, lead_id, trigger_key) DO NOTHING",
                       "sssssssissI", log_id, run->tenant_id, rule->id, fact->lead_id, deal_id,
                       fact->event_id, key, depth, lf_auto_trigger_name(rule->trigger),
                       lf_auto_action_name(rule->action), run->now);
    if (rc <= 0) return rc;
    char error[300];
    if (depth > LF_AUTO_MAX_DEPTH) {
        snprintf(error, sizeof error,
                 "chain depth limit: a chain of rules stops at depth %d (this would be %d)",
                 LF_AUTO_MAX_DEPTH, depth);
        report(run, rule, log_id, key, depth, "skipped", NULL, error);
        return finish(run, rule, log_id, "skipped", NULL, error, NULL) < 0 ? -LF_ESTORE : 1;
    }
    if (rule->max_per_hour > 0) {
        int64_t n = executions_last_hour(run, rule);
        if (n < 0) return (int)n;
        if (n >= rule->max_per_hour) {
            snprintf(error, sizeof error,
                     "budget: %lld executions in the last hour reach the rule's"
                     " max_executions_per_hour (%d)",
                     (long long)n, rule->max_per_hour);
            report(run, rule, log_id, key, depth, "skipped", NULL, error);
            return finish(run, rule, log_id, "skipped", NULL, error, NULL) < 0 ? -LF_ESTORE : 1;
        }
    }

    rc = lf_db_savepoint(run->conn, "auto");
    if (rc < 0) return rc;
    size_t mark = lf_emit_captured_count();
    int old_depth = lf_emit_set_depth(depth);
    struct action_ctx a = {.run = run,
                           .rule = rule,
                           .fact = fact,
                           .deal_id = deal_id,
                           .cause = log_id,
                           .config = rule->action_config};
    struct subject s = {0};
    struct lf_err aerr = {0};
    json_t *result = NULL;
    int arc = actions[rule->action](&a, &s, &result, &aerr);
    char used_deal[40];
    snprintf(used_deal, sizeof used_deal, "%s", s.deal_id);
    subject_free(&s);
    lf_emit_set_depth(old_depth);
    if (arc < 0) {
        rc = lf_db_savepoint_rollback(run->conn, "auto");
        if (rc == 0) rc = lf_db_savepoint_release(run->conn, "auto");
        lf_emit_truncate(mark);
        err_text(&aerr, arc, error, sizeof error);
        json_decref(result);
        result = NULL;
    } else {
        rc = lf_db_savepoint_release(run->conn, "auto");
    }
    lf_err_clear(&aerr);
    const char *status = arc < 0 ? "failed" : "executed";
    if (rc >= 0)
        rc = finish(run, rule, log_id, status, result, arc < 0 ? error : NULL,
                    arc < 0 ? NULL : used_deal);
    report(run, rule, log_id, key, depth, status, result, arc < 0 ? error : NULL);
    if (rc >= 0 && arc >= 0) {
        json_t *data = json_pack(
            "{s:s, s:s, s:s, s:s, s:s, s:s?, s:s?, s:i, s:O?}", "log_id", log_id, "rule_id",
            rule->id, "rule", rule->name, "trigger_type", lf_auto_trigger_name(rule->trigger),
            "action_type", lf_auto_action_name(rule->action), "trigger_event_id", fact->event_id,
            "deal_id", deal_id, "depth", depth, "result", result);
        old_depth = lf_emit_set_depth(depth);
        rc = lf_emit(run->conn, run->tenant_id, "automation.executed", fact->lead_id, log_id, data,
                     run->now);
        lf_emit_set_depth(old_depth);
        json_decref(data);
    }
    json_decref(result);
    return rc < 0 ? rc : 1;
}

/* The deal a domain event is about: data.deal.id, else data.deal_id. (Never read from an
 * external event: its metadata is the client's.) */
static const char *fact_deal(json_t *data)
{
    const char *id = json_string_value(json_object_get(json_object_get(data, "deal"), "id"));
    return id ? id : json_string_value(json_object_get(data, "deal_id"));
}

/* 1 when the fact is an event the engine wrote (a domain event): only those can say a score,
 * an intent or a stage changed. An external event may carry any type name. */
static int from_engine(const struct lf_auto_fact *f)
{
    return f->internal;
}

/* Loads the lead, and its organization when needs asks (LF_COND_NEEDS_ORG), once per fact. */
static void lead_ctx_load(struct lf_auto_run *run, const struct lf_auto_fact *f, unsigned needs,
                          json_t **lead_ctx, json_t **org_ctx)
{
    int rc = 0;
    if (*lead_ctx == NULL) *lead_ctx = lf_lead_context(run->conn, run->tenant_id, f->lead_id, &rc);
    const char *org = json_string_value(json_object_get(*lead_ctx, "organization_id"));
    if ((needs & LF_COND_NEEDS_ORG) && org && *org_ctx == NULL)
        *org_ctx = lf_org_context(run->conn, run->tenant_id, org, &rc);
}

/* Whether rule fires for fact; writes its trigger key. cc is filled on first need. */
static int matches(struct lf_auto_run *run, const struct lf_auto_rule *rule,
                   const struct lf_auto_fact *f, char key[160], struct lf_cond_ctx *cc,
                   json_t **lead_ctx, json_t **org_ctx)
{
    const char *type = f->event_type;
    json_t *data = f->metadata;
    switch (rule->trigger) {
    case LF_TRIG_EVENT: {
        if (type == NULL) return 0;
        int any = strcmp(rule->event_type, "*") == 0;
        /* "*" means every event that came from outside; domain events are named */
        if (any ? from_engine(f) : strcmp(rule->event_type, type) != 0) return 0;
        unsigned needs = lf_conds_needs(rule->conds);
        if (needs) lead_ctx_load(run, f, needs, lead_ctx, org_ctx);
        *cc = (struct lf_cond_ctx){.event_type = type,
                                   .source = f->source,
                                   .utm_source = f->utm_source,
                                   .utm_medium = f->utm_medium,
                                   .utm_campaign = f->utm_campaign,
                                   .metadata = data,
                                   .lead = *lead_ctx,
                                   .organization = *org_ctx};
        if (!lf_conds_match(rule->conds, cc)) return 0;
        snprintf(key, 160, "event:%s", f->event_id);
        return 1;
    }
    case LF_TRIG_SCORE:
        if (type == NULL || !from_engine(f) || strcmp(type, "lead.scored") != 0) return 0;
        if (json_integer_value(json_object_get(data, "score")) < rule->score_gte) return 0;
        snprintf(key, 160, "score_gte:%d", rule->score_gte);
        return 1;
    case LF_TRIG_INTENT: {
        /* The lead's primary intent as it stands: lead.intent_detected when it changes, and
         * after an external event (its confidence may have risen without a change). Once per
         * lead and intent. */
        json_t *src = data;
        if (type == NULL) return 0;
        if (!from_engine(f)) {
            lead_ctx_load(run, f, LF_COND_NEEDS_LEAD, lead_ctx, org_ctx);
            src = *lead_ctx;
        } else if (strcmp(type, "lead.intent_detected") != 0) {
            return 0;
        }
        const char *intent =
            json_string_value(json_object_get(src, from_engine(f) ? "intent" : "primary_intent"));
        json_int_t conf = json_integer_value(
            json_object_get(src, from_engine(f) ? "confidence" : "intent_confidence"));
        if (intent == NULL || (rule->intent && strcmp(rule->intent, intent) != 0)) return 0;
        if (conf < rule->confidence_gte) return 0;
        snprintf(key, 160, "intent:%s", intent);
        return 1;
    }
    case LF_TRIG_STAGE: {
        if (type == NULL || !from_engine(f)) return 0;
        json_t *deal = json_object_get(data, "deal");
        const char *stage = strcmp(type, "deal.created") == 0
                                ? json_string_value(json_object_get(deal, "stage_id"))
                            : strcmp(type, "deal.stage_changed") == 0
                                ? json_string_value(json_object_get(data, "to_stage_id"))
                                : NULL;
        if (stage == NULL || strcmp(stage, rule->stage) != 0) return 0;
        snprintf(key, 160, "stage:%s", f->event_id);
        return 1;
    }
    case LF_TRIG_TIME:
        if (type != NULL || f->deal_id == NULL) return 0;
        snprintf(key, 160, "time:%s:%lld", f->deal_id, (long long)f->timer_key_at);
        return 1;
    }
    return 0;
}

/* Runs every rule fact triggers. Returns executions or a negative code. */
static int fire(struct lf_auto_run *run, const struct lf_auto_fact *f)
{
    if (f->lead_id == NULL) return 0;
    const struct lf_ruleset *rs = run->rules;
    json_t *lead_ctx = NULL, *org_ctx = NULL;
    int n = 0, rc = 0;
    for (int i = 0; i < rs->nauto && rc >= 0; i++) {
        const struct lf_auto_rule *rule = &rs->autos[i];
        if (run->only && strcmp(run->only, rule->id) != 0) continue;
        char key[160];
        struct lf_cond_ctx cc;
        if (!matches(run, rule, f, key, &cc, &lead_ctx, &org_ctx)) continue;
        rc = execute(run, rule, f, key, f->deal_id);
        if (rc > 0) {
            n++;
            /* the action may have changed the lead: conditions read it again */
            json_decref(lead_ctx);
            json_decref(org_ctx);
            lead_ctx = org_ctx = NULL;
        }
    }
    json_decref(lead_ctx);
    json_decref(org_ctx);
    return rc < 0 ? rc : n;
}

int lf_automate(struct lf_auto_run *run, const struct lf_auto_fact *fact, size_t *next,
                struct lf_err *err)
{
    int total = 0, rc = 0;
    if (!lf_automate_any(run->rules)) {
        *next = lf_emit_captured_count();
        return 0;
    }
    if (fact) rc = fire(run, fact);
    if (rc > 0) total += rc;
    const char *only = run->only; /* it names the rule the fact may fire, not the chain */
    run->only = NULL;
    const struct lf_emitted *e;
    while (rc >= 0 && (e = lf_emit_captured(*next)) != NULL) {
        (*next)++;
        if (e->lead_id == NULL || strcmp(e->tenant_id, run->tenant_id) != 0) continue;
        /* copies: firing may grow the list and move its entries */
        char id[40];
        snprintf(id, sizeof id, "%s", e->id);
        char *type = lf_xstrdup(e->type), *lead = lf_xstrdup(e->lead_id);
        json_t *data = json_incref(e->data);
        struct lf_auto_fact f = {.event_id = id,
                                 .event_type = type,
                                 .source = "leadflow",
                                 .metadata = data,
                                 .lead_id = lead,
                                 .deal_id = fact_deal(data),
                                 .depth = e->depth,
                                 .internal = 1};
        rc = fire(run, &f);
        if (rc > 0) total += rc;
        free(type);
        free(lead);
        json_decref(data);
    }
    run->only = only;
    if (rc < 0) return lf_err_set(err, rc, "automation failed: %s", lf_db_errmsg(run->conn));
    return total;
}

/* The stage: after routing, the rules the event and the domain events of its processing
 * trigger. */
static int automate_stage(struct lf_stage_ctx *ctx, struct lf_event *ev, struct lf_err *err)
{
    if (ev->lead_id == NULL || !lf_emit_capturing()) return 0;
    struct lf_ruleset *rs;
    int rc = lf_stage_rules(ctx, ev->tenant_id, &rs, err);
    if (rc < 0) return rc;
    if (!lf_automate_any(rs)) return 0;
    struct lf_auto_run run = {
        .conn = ctx->conn, .tenant_id = ev->tenant_id, .rules = rs, .now = ctx->now};
    struct lf_auto_fact fact = {.event_id = ev->id,
                                .event_type = ev->event_type,
                                .source = ev->source,
                                .utm_source = ev->utm_source,
                                .utm_medium = ev->utm_medium,
                                .utm_campaign = ev->utm_campaign,
                                .metadata = lf_event_metadata(ev),
                                .lead_id = ev->lead_id};
    size_t next = 0;
    rc = lf_automate(&run, &fact, &next, err);
    if (rc > 0) json_object_set_new(ev->result, "automation", json_pack("{s:i}", "executions", rc));
    return rc < 0 ? rc : 0;
}

const struct lf_stage lf_stage_automate = {"automate", 0, automate_stage, 0};

/* API transactions. */

int lf_automate_begin(struct lf_conn *c)
{
    int rc = lf_db_begin(c);
    if (rc == 0) lf_emit_capture_start();
    return rc;
}

int lf_automate_commit(struct lf_conn *c, const char *tenant_id, int64_t now, struct lf_err *err)
{
    int rc = 0;
    if (lf_emit_captured_count() > 0) {
        struct lf_ruleset *rs = NULL;
        rc = lf_rules_get(c, tenant_id, &rs, err);
        if (rc == 0 && lf_automate_any(rs)) {
            struct lf_auto_run run = {.conn = c, .tenant_id = tenant_id, .rules = rs, .now = now};
            size_t next = 0;
            rc = lf_automate(&run, NULL, &next, err);
        }
        lf_rules_release(rs);
    }
    lf_emit_capture_stop();
    if (rc >= 0 && (rc = lf_db_commit(c)) == 0) lf_outbox_committed();
    if (rc >= 0) return rc;
    lf_db_rollback(c);
    return rc;
}

int lf_automate_rollback(struct lf_conn *c)
{
    lf_emit_capture_stop();
    return lf_db_rollback(c);
}

/* The dry run. */

/* The stored rule id, compiled whether active or not. LF_DB_ROW, LF_DB_DONE, -LF_EINVAL (it
 * no longer compiles) or a store error. */
static int rule_load(struct lf_conn *c, const char *tenant_id, const char *id,
                     struct lf_auto_rule *rule)
{
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT id, name, trigger_type, trigger_config, action_type,"
                                       " action_config, max_executions_per_hour"
                                       " FROM automation_rules WHERE tenant_id = ? AND id = ?",
                                       NULL);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "ss", tenant_id, id);
    int rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW &&
        lf_auto_rule_compile(rule, lf_stmt_text(st, 0), lf_stmt_text(st, 1), lf_stmt_text(st, 2),
                             lf_stmt_text(st, 3), lf_stmt_text(st, 4), lf_stmt_text(st, 5),
                             (int)lf_stmt_int(st, 6)) < 0)
        rc = -LF_EINVAL;
    lf_stmt_done(st);
    return rc;
}

/* What a dry run works on besides the rule: the fact, and owned copies of its strings. */
struct dry_fact {
    struct lf_auto_fact f;
    char lead[40], deal[40], event[40];
    char *type, *source, *utm[3];
    json_t *metadata;
};

static void dry_fact_free(struct dry_fact *d)
{
    free(d->type);
    free(d->source);
    for (int i = 0; i < 3; i++) free(d->utm[i]);
    json_decref(d->metadata);
}

static char *dup_text(struct lf_stmt *st, int col)
{
    const char *v = lf_stmt_text(st, col);
    return v ? lf_xstrdup(v) : NULL;
}

/* The event of an event trigger's dry run: a stored event (id), a described one (object), or
 * the lead's latest external event of the rule's type. 1 found, 0 none, or negative. */
static int dry_event(struct lf_conn *c, const char *tenant_id, const struct lf_auto_rule *rule,
                     json_t *event, struct dry_fact *d, struct lf_err *err)
{
    if (json_is_object(event)) {
        const char *type = json_string_value(json_object_get(event, "event_type"));
        json_t *md = json_object_get(event, "metadata");
        if (type == NULL) return lf_err_field(err, "event.event_type", "is required");
        if (md && !json_is_object(md))
            return lf_err_field(err, "event.metadata", "must be an object");
        const char *keys[] = {"source", "utm_source", "utm_medium", "utm_campaign"};
        for (int i = 0; i < 4; i++) {
            json_t *v = json_object_get(event, keys[i]);
            char field[40];
            snprintf(field, sizeof field, "event.%s", keys[i]);
            if (v && !json_is_string(v)) return lf_err_field(err, field, "must be a string");
        }
        snprintf(d->event, sizeof d->event, "dry-run");
        d->type = lf_xstrdup(type);
        d->source = lf_xstrdup(json_string_value(json_object_get(event, "source"))
                                   ? json_string_value(json_object_get(event, "source"))
                                   : "dry-run");
        for (int i = 0; i < 3; i++) {
            const char *v = json_string_value(json_object_get(event, keys[i + 1]));
            d->utm[i] = v ? lf_xstrdup(v) : NULL;
        }
        d->metadata = md ? json_incref(md) : json_object();
        return 1;
    }
    const char *id = json_string_value(event);
    struct lf_stmt *st = lf_db_prepare(
        c,
        id ? "SELECT id, event_type, source, utm_source, utm_medium, utm_campaign, metadata"
             " FROM events WHERE tenant_id = ? AND id = ? AND ? = ?"
           : "SELECT id, event_type, source, utm_source, utm_medium, utm_campaign, metadata"
             " FROM events WHERE tenant_id = ? AND lead_id = ? AND origin = 'external'"
             " AND (? = '*' OR event_type = ?) ORDER BY occurred_at DESC, id DESC LIMIT 1",
        NULL);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "ssss", tenant_id, id ? id : d->lead,
                 rule->event_type ? rule->event_type : "*",
                 rule->event_type ? rule->event_type : "*");
    int rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW) {
        copy_col(d->event, sizeof d->event, st, 0);
        d->type = dup_text(st, 1);
        d->source = dup_text(st, 2);
        for (int i = 0; i < 3; i++) d->utm[i] = dup_text(st, 3 + i);
        d->metadata = lf_json_parse(lf_stmt_text(st, 6));
        if (!json_is_object(d->metadata)) {
            json_decref(d->metadata);
            d->metadata = json_object();
        }
    }
    lf_stmt_done(st);
    if (rc == LF_DB_DONE && id) return lf_err_set(err, -LF_ENOTFOUND, "no event %s", id);
    return rc == LF_DB_ROW ? 1 : rc < 0 ? rc : 0;
}

/* The lead's open deal the stage or timer trigger is about: in the rule's stage (or pipeline)
 * and, for a timer, in it since at least in_stage_ms. 1 found (deal and entered written), 0
 * none, or negative. */
static int dry_deal(struct lf_conn *c, const char *tenant_id, const struct lf_auto_rule *rule,
                    const char *lead_id, int64_t now, char deal[40], int64_t *entered)
{
    struct lf_stmt *st =
        lf_db_prepare(c,
                      "SELECT id, stage_entered_at FROM deals WHERE tenant_id = ?"
                      " AND lead_id = ? AND status = 'open'"
                      " AND (? = '' OR stage_id = ?) AND (? = '' OR pipeline_id = ?)"
                      " AND stage_entered_at <= ?"
                      " ORDER BY stage_entered_at, id LIMIT 1",
                      NULL);
    if (st == NULL) return -LF_EINTERNAL;
    const char *stage = rule->stage ? rule->stage : "",
               *pipeline = rule->pipeline ? rule->pipeline : "";
    lf_stmt_bind(st, "ssssssI", tenant_id, lead_id, stage, stage, pipeline, pipeline,
                 now - rule->in_stage_ms);
    int rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW) {
        copy_col(deal, 40, st, 0);
        *entered = lf_stmt_int(st, 1);
    }
    lf_stmt_done(st);
    return rc == LF_DB_ROW ? 1 : rc < 0 ? rc : 0;
}

/* Builds the fact of the dry run; *why says why the rule would not fire (NULL: it would). */
static int dry_build(struct lf_conn *c, const char *tenant_id, const struct lf_auto_rule *rule,
                     json_t *event, int64_t now, struct dry_fact *d, char *why, size_t size,
                     struct lf_err *err)
{
    struct lf_auto_fact *f = &d->f;
    f->lead_id = d->lead;
    f->event_id = "dry-run";
    int rc;
    json_t *lead = lf_lead_context(c, tenant_id, d->lead, &rc);
    if (lead == NULL) return rc < 0 ? rc : lf_err_set(err, -LF_ENOTFOUND, "no lead %s", d->lead);
    switch (rule->trigger) {
    case LF_TRIG_EVENT:
        rc = dry_event(c, tenant_id, rule, event, d, err);
        if (rc == 0)
            snprintf(why, size, "no event given and the lead has no %s event",
                     strcmp(rule->event_type, "*") == 0 ? "external" : rule->event_type);
        if (rc == 1) {
            f->event_id = d->event;
            f->event_type = d->type;
            f->source = d->source;
            f->utm_source = d->utm[0];
            f->utm_medium = d->utm[1];
            f->utm_campaign = d->utm[2];
            f->metadata = d->metadata;
        }
        break;
    case LF_TRIG_SCORE: {
        json_int_t score = json_integer_value(json_object_get(lead, "total_score"));
        d->type = lf_xstrdup("lead.scored");
        d->metadata = json_pack("{s:I}", "score", score);
        if (score < rule->score_gte)
            snprintf(why, size, "the lead's score %lld is below %d", (long long)score,
                     rule->score_gte);
        break;
    }
    case LF_TRIG_INTENT: {
        const char *intent = json_string_value(json_object_get(lead, "primary_intent"));
        json_int_t conf = json_integer_value(json_object_get(lead, "intent_confidence"));
        d->type = lf_xstrdup("lead.intent_detected");
        d->metadata = json_pack("{s:s?, s:I}", "intent", intent, "confidence", conf);
        if (intent == NULL)
            snprintf(why, size, "the lead has no primary intent");
        else if (rule->intent && strcmp(rule->intent, intent) != 0)
            snprintf(why, size, "the lead's primary intent is %s, not %s", intent, rule->intent);
        else if (conf < rule->confidence_gte)
            snprintf(why, size, "the lead's intent confidence %lld is below %d", (long long)conf,
                     rule->confidence_gte);
        break;
    }
    case LF_TRIG_STAGE:
    case LF_TRIG_TIME: {
        int64_t entered = 0;
        rc = dry_deal(c, tenant_id, rule, d->lead, now, d->deal, &entered);
        if (rc == 0)
            snprintf(why, size,
                     rule->trigger == LF_TRIG_STAGE
                         ? "the lead has no open deal in the rule's stage"
                         : "no open deal of the lead has been long enough in the rule's stage");
        if (rc == 1) {
            f->deal_id = d->deal;
            f->timer_key_at = entered;
            if (rule->trigger == LF_TRIG_STAGE) {
                d->type = lf_xstrdup("deal.stage_changed");
                d->metadata = json_pack("{s:s, s:{s:s, s:s}}", "to_stage_id", rule->stage, "deal",
                                        "id", d->deal, "stage_id", rule->stage);
            }
        }
        break;
    }
    }
    json_decref(lead);
    if (rule->trigger != LF_TRIG_EVENT) { /* what the engine would have written */
        f->event_type = d->type;
        f->metadata = d->metadata;
        f->source = "leadflow";
        f->internal = 1;
    }
    return rc < 0 ? rc : 0;
}

json_t *lf_automate_dry_run(struct lf_conn *c, const char *tenant_id, const char *rule_id,
                            const char *lead_id, json_t *event, int64_t now, struct lf_err *err)
{
    struct lf_auto_rule rule;
    struct dry_fact d = {0};
    struct lf_ruleset one = {0}, *rs = NULL;
    json_t *out = NULL, *executions = json_array();
    char why[300] = "", key[160] = "";
    int rc = rule_load(c, tenant_id, rule_id, &rule);
    if (rc == LF_DB_DONE) rc = lf_err_set(err, -LF_ENOTFOUND, "no automation rule %s", rule_id);
    if (rc == -LF_EINVAL) lf_err_set(err, rc, "the stored rule %s no longer compiles", rule_id);
    if (rc < 0 && err->code == 0) lf_err_set(err, rc, "%s", lf_strerror(rc));
    if (rc < 0) {
        json_decref(executions);
        return NULL;
    }
    snprintf(d.lead, sizeof d.lead, "%s", lead_id);
    rc = lf_automate_begin(c);
    if (rc == 0) rc = dry_build(c, tenant_id, &rule, event, now, &d, why, sizeof why, err);
    struct lf_cond_ctx cc;
    json_t *lead_ctx = NULL, *org_ctx = NULL;
    struct lf_auto_run run = {.conn = c, .tenant_id = tenant_id, .now = now, .report = executions};
    if (rc >= 0 && !*why && !matches(&run, &rule, &d.f, key, &cc, &lead_ctx, &org_ctx))
        snprintf(why, sizeof why, "the event is not the rule's type or its conditions do not hold");
    json_decref(lead_ctx);
    json_decref(org_ctx);
    if (rc >= 0 && !*why) {
        struct lf_stmt *st = lf_db_prepare(c,
                                           "SELECT status, created_at FROM automation_logs"
                                           " WHERE rule_id = ? AND lead_id = ? AND trigger_key = ?",
                                           NULL);
        rc = st ? 0 : -LF_EINTERNAL;
        if (st) {
            lf_stmt_bind(st, "sss", rule.id, d.lead, key);
            rc = lf_stmt_step(st);
            char at[40];
            if (rc == LF_DB_ROW)
                snprintf(why, sizeof why, "it already ran for this lead and trigger (%s, %s)",
                         lf_stmt_text(st, 0), lf_time_format(lf_stmt_int(st, 1), at, sizeof at));
            lf_stmt_done(st);
        }
    }
    if (rc >= 0 && !*why) {
        /* the rule itself (active or not), then every rule the events it writes trigger */
        one.autos = &rule;
        one.nauto = 1;
        run.rules = &one;
        rc = execute(&run, &rule, &d.f, key, d.f.deal_id);
        if (rc >= 0) rc = lf_rules_get(c, tenant_id, &rs, err);
        if (rc >= 0) {
            run.rules = rs;
            size_t next = 0;
            rc = lf_automate(&run, NULL, &next, err);
        }
    }
    if (rc >= 0) {
        json_t *events = json_array();
        const struct lf_emitted *e;
        for (size_t i = 0; (e = lf_emit_captured(i)) != NULL; i++)
            json_array_append_new(events, json_pack("{s:s, s:s?, s:O?}", "type", e->type, "lead_id",
                                                    e->lead_id, "data", e->data));
        out = json_pack("{s:b, s:s?, s:s?, s:O, s:o}", "would_fire", *why == 0, "reason",
                        *why ? why : NULL, "trigger_key", *key ? key : NULL, "executions",
                        executions, "events", events);
    }
    lf_automate_rollback(c); /* a dry run changes nothing */
    lf_rules_release(rs);
    json_decref(executions);
    dry_fact_free(&d);
    lf_auto_rule_clear(&rule);
    if (rc < 0 && err->code == 0) lf_err_set(err, rc, "%s", lf_strerror(rc));
    return out;
}

/* The time_in_stage sweep. */

#define TIMER_BATCH 200

/* One batch of due deals for rule: fires it for each. Returns how many deals it took, or a
 * negative code. */
static int timer_batch(struct lf_db *db, const char *tenant_id, const char *rule_id, int64_t now,
                       int64_t *executions, struct lf_err *err)
{
    struct lf_conn *c = lf_db_acquire(db, LF_DB_WRITE, err);
    if (c == NULL) return -LF_ESTORE;
    struct lf_ruleset *rs = NULL;
    int n = 0, rc = lf_rules_get(c, tenant_id, &rs, err);
    /* the rule as it stands now: one disabled, deleted or changed meanwhile ends the sweep */
    const struct lf_auto_rule *rule = NULL;
    for (int i = 0; rc == 0 && i < rs->nauto; i++)
        if (strcmp(rs->autos[i].id, rule_id) == 0 && rs->autos[i].trigger == LF_TRIG_TIME)
            rule = &rs->autos[i];
    if (rc == 0 && rule == NULL) {
        lf_rules_release(rs);
        lf_db_release(c);
        return 0;
    }
    if (rc == 0) rc = lf_automate_begin(c);
    struct lf_stmt *st = rc == 0
                             ? lf_db_prepare(c,
                                             "SELECT d.id, d.lead_id, d.stage_entered_at"
                                             " FROM deals d WHERE d.tenant_id = ?"
                                             " AND d.status = 'open' AND d.stage_entered_at <= ?"
                                             " AND (? = '' OR d.pipeline_id = ?)"
                                             " AND (? = '' OR d.stage_id = ?)"
                                             " AND NOT EXISTS (SELECT 1 FROM automation_logs a"
                                             " WHERE a.rule_id = ? AND a.lead_id = d.lead_id"
                                             " AND (a.trigger_key = 'time:' || d.id || ':' ||"
                                             " CAST(d.stage_entered_at AS TEXT) OR"
                                             " (a.created_at >= ? AND a.trigger_key LIKE"
                                             " 'time:' || d.id || ':%')))"
                                             " ORDER BY d.stage_entered_at, d.id LIMIT ?",
                                             err)
                             : NULL;
    if (rc == 0 && st == NULL) rc = -LF_EINTERNAL;
    struct {
        char deal[40], lead[40];
        int64_t entered;
    } *due = lf_xcalloc(TIMER_BATCH, sizeof(*due));
    if (st) {
        const char *p = rule->pipeline ? rule->pipeline : "", *s = rule->stage ? rule->stage : "";
        lf_stmt_bind(st, "sIsssssIi", tenant_id, now - rule->in_stage_ms, p, p, s, s, rule->id, now,
                     TIMER_BATCH); /* a deal skipped in this sweep is not taken again */
        while (n < TIMER_BATCH && (rc = lf_stmt_step(st)) == LF_DB_ROW) {
            copy_col(due[n].deal, 40, st, 0);
            copy_col(due[n].lead, 40, st, 1);
            due[n++].entered = lf_stmt_int(st, 2);
        }
        lf_stmt_done(st);
        if (rc == LF_DB_DONE || rc == LF_DB_ROW) rc = 0;
    }
    for (int i = 0; rc >= 0 && i < n; i++) {
        struct lf_auto_run run = {
            .conn = c, .tenant_id = tenant_id, .rules = rs, .now = now, .only = rule->id};
        struct lf_auto_fact f = {
            .lead_id = due[i].lead, .deal_id = due[i].deal, .timer_key_at = due[i].entered};
        size_t next = lf_emit_captured_count();
        rc = lf_automate(&run, &f, &next, err);
        if (rc > 0) *executions += rc;
    }
    free(due);
    if (rc >= 0) {
        lf_emit_capture_stop();
        rc = lf_db_commit(c);
    } else {
        lf_automate_rollback(c);
    }
    lf_rules_release(rs);
    lf_db_release(c);
    return rc < 0 ? rc : n;
}

int lf_automate_timers(struct lf_db *db, const char *tenant_id, int64_t now, json_t *result,
                       const _Atomic int *stop, struct lf_err *err)
{
    struct lf_conn *c = lf_db_acquire(db, LF_DB_READ, err);
    if (c == NULL) return -LF_ESTORE;
    /* the tenants with active timer rules, and those rules */
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT tenant_id, id, name, trigger_type, trigger_config,"
                                       " action_type, action_config, max_executions_per_hour"
                                       " FROM automation_rules WHERE trigger_type = 'time_in_stage'"
                                       " AND is_active = 1 AND (? = '' OR tenant_id = ?)"
                                       " ORDER BY tenant_id, priority, created_at, id",
                                       err);
    if (st == NULL) {
        lf_db_release(c);
        return -LF_EINTERNAL;
    }
    const char *t = tenant_id ? tenant_id : "";
    lf_stmt_bind(st, "ss", t, t);
    struct timer {
        char tenant[40];
        struct lf_auto_rule rule;
    } *timers = NULL;
    int n = 0, cap = 0, rc;
    while ((rc = lf_stmt_step(st)) == LF_DB_ROW) {
        if (n == cap) {
            cap = cap ? 2 * cap : 8;
            timers = lf_xrealloc(timers, (size_t)cap * sizeof(*timers));
        }
        copy_col(timers[n].tenant, 40, st, 0);
        if (lf_auto_rule_compile(&timers[n].rule, lf_stmt_text(st, 1), lf_stmt_text(st, 2),
                                 lf_stmt_text(st, 3), lf_stmt_text(st, 4), lf_stmt_text(st, 5),
                                 lf_stmt_text(st, 6), (int)lf_stmt_int(st, 7)) == 0)
            n++;
    }
    lf_stmt_done(st);
    lf_db_release(c);
    int64_t deals = 0, executions = 0;
    for (int i = 0; rc >= 0 && i < n && !*stop; i++) {
        int got;
        do {
            got = timer_batch(db, timers[i].tenant, timers[i].rule.id, now, &executions, err);
            if (got > 0) deals += got;
        } while (got == TIMER_BATCH && !*stop);
        if (got < 0) rc = got;
    }
    for (int i = 0; i < n; i++) lf_auto_rule_clear(&timers[i].rule);
    free(timers);
    json_object_set_new(result, "rules", json_integer(n));
    json_object_set_new(result, "deals_due", json_integer(deals));
    json_object_set_new(result, "executions", json_integer(executions));
    return rc < 0 ? rc : 0;
}
