/* Automation rules as stored things: the names of triggers and actions, checking a rule body
 * when it is saved (every problem named by its key), compiling a stored rule, and templates. */
#include "engine/automation.h"
#include "outbound/outbound.h"
#include "engine/deal.h"
#include "engine/rules.h"
#include "core/jsonx.h"
#include "core/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const trigger_names[LF_TRIG_COUNT + 1] = {
    "event", "score_threshold", "intent_detected", "stage_entered", "time_in_stage", NULL};
static const char *const action_names[LF_ACT_COUNT + 1] = {
    "move_to_stage", "assign_owner",      "send_notification", "create_task", "sync_moco",
    "update_field",  "route_to_pipeline", "send_webhook",      NULL};

const char *lf_auto_trigger_name(int trigger)
{
    return trigger >= 0 && trigger < LF_TRIG_COUNT ? trigger_names[trigger] : "?";
}

int lf_auto_trigger_parse(const char *name)
{
    for (int i = 0; name && i < LF_TRIG_COUNT; i++)
        if (strcmp(name, trigger_names[i]) == 0) return i;
    return -1;
}

const char *lf_auto_action_name(int action)
{
    return action >= 0 && action < LF_ACT_COUNT ? action_names[action] : "?";
}

int lf_auto_action_parse(const char *name)
{
    for (int i = 0; name && i < LF_ACT_COUNT; i++)
        if (strcmp(name, action_names[i]) == 0) return i;
    return -1;
}

/* Templates. */

static const char *const placeholders[] = {
    "lead.first_name", "lead.last_name", "lead.email", "lead.score", "lead.intent",
    "lead.company",    "deal.name",      "deal.value", "deal.stage", "deal.pipeline",
    "owner.name",      "owner.email",    NULL,
};

#define PLACEHOLDER_MAX 64

/* If text[i] opens a placeholder ("{" then letters, digits, '_', '.', '-' then "}"), its
 * length between the braces; else 0 (a lone brace, or braces around spaces, are text). So
 * {Lead.Email} and {lead.emai1} are placeholders, and unknown ones. */
static size_t placeholder_at(const char *text, size_t i)
{
    if (text[i] != '{') return 0;
    size_t n = 0;
    for (const char *p = text + i + 1; *p != '}'; p++, n++) {
        char ch = *p;
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '_' || ch == '.' || ch == '-';
        if (!ok || n >= PLACEHOLDER_MAX) return 0;
    }
    return n;
}

static int known_placeholder(const char *name, size_t n)
{
    for (int i = 0; placeholders[i]; i++)
        if (strlen(placeholders[i]) == n && memcmp(placeholders[i], name, n) == 0) return 1;
    return 0;
}

int lf_template_check(const char *text, const char *field, struct lf_err *err)
{
    for (size_t i = 0; text[i]; i++) {
        size_t n = placeholder_at(text, i);
        if (n == 0 || known_placeholder(text + i + 1, n)) continue;
        char known[400];
        size_t len = 0;
        known[0] = '\0';
        for (int k = 0; placeholders[k] && len < sizeof known; k++)
            len += (size_t)snprintf(known + len, sizeof known - len, "%s{%s}", k ? ", " : "",
                                    placeholders[k]);
        return lf_err_field(err, field, "unknown placeholder {%.*s} (known: %s)", (int)n,
                            text + i + 1, known);
    }
    return 0;
}

char *lf_template_render(const char *text, json_t *vars)
{
    size_t cap = strlen(text) + 64, len = 0;
    char *out = lf_xmalloc(cap);
    for (size_t i = 0; text[i];) {
        size_t n = placeholder_at(text, i);
        const char *val = NULL;
        size_t vlen = 1;
        char name[PLACEHOLDER_MAX + 1], num[32];
        if (n > 0 && known_placeholder(text + i + 1, n)) {
            memcpy(name, text + i + 1, n);
            name[n] = '\0';
            json_t *v = json_object_get(vars, name);
            if (json_is_integer(v)) {
                snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
                val = num;
            } else {
                val = json_is_string(v) ? json_string_value(v) : "";
            }
            vlen = strlen(val);
            i += n + 2;
        } else {
            val = text + i;
            i++;
        }
        if (len + vlen + 1 > cap) {
            cap = 2 * (len + vlen + 1);
            out = lf_xrealloc(out, cap);
        }
        memcpy(out + len, val, vlen);
        len += vlen;
    }
    out[len] = '\0';
    return out;
}

/* Checking a rule body. */

static int is_slug(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 63) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              (i > 0 && (c == '_' || c == '-'))))
            return 0;
    }
    return 1;
}

static int int_in(json_t *v, long long lo, long long hi)
{
    return json_is_integer(v) && json_integer_value(v) >= lo && json_integer_value(v) <= hi;
}

/* The length of a JSON string in characters. */
static size_t chars(json_t *v)
{
    return lf_utf8_chars(json_string_value(v), json_string_length(v));
}

/* A text of 1..max characters. */
static int text_in(json_t *v, size_t max)
{
    return json_is_string(v) && json_string_length(v) > 0 && chars(v) <= max;
}

/* What a key of a config may hold. */
struct config_key {
    const char *name;
    char kind;    /* see check_value */
    int required; /* 1: required */
};

/* The keys of each trigger's and action's config. */
static const struct config_key trigger_keys[LF_TRIG_COUNT][6] = {
    [LF_TRIG_EVENT] = {{"event_type", 't', 1}, {"conditions", 'c', 0}},
    [LF_TRIG_SCORE] = {{"score_gte", 'S', 1}},
    [LF_TRIG_INTENT] = {{"intent", 'i', 0}, {"confidence_gte", '%', 0}},
    [LF_TRIG_STAGE] = {{"pipeline", 'r', 0}, {"stage", 'r', 1}},
    [LF_TRIG_TIME] = {{"days", 'D', 1}, {"hours", 'H', 0}, {"pipeline", 'r', 0}, {"stage", 'r', 0}},
};

static const struct config_key action_keys[LF_ACT_COUNT][6] = {
    [LF_ACT_MOVE] = {{"stage", 'r', 1}, {"pipeline", 'r', 0}},
    [LF_ACT_ASSIGN] = {{"strategy", 'y', 0}, {"role", 'l', 0}, {"region", 'g', 0}},
    [LF_ACT_NOTIFY] = {{"channel", 'h', 0}, {"text", 'T', 0}, {"template", 'N', 0}},
    [LF_ACT_TASK] = {{"title", 'T', 1},
                     {"task_type", 'l', 0},
                     {"due_days", 'd', 0},
                     {"assignee", 'm', 0}},
    [LF_ACT_MOCO] = {{"operation", 'o', 1}},
    [LF_ACT_FIELD] = {{"field", 'f', 1}, {"value", 'v', 1}},
    [LF_ACT_ROUTE] = {{"pipeline", 'r', 1}, {"create_deal", 'b', 0}},
    [LF_ACT_WEBHOOK] = {{"url", 'u', 0}, {"subscription", 'r', 0}},
};

/* The fields update_field may set, and for some the values they allow. */
static const char *const field_names[] = {"first_name", "last_name",       "job_title",
                                          "phone",      "country",         "region",
                                          "status",     "lifecycle_stage", NULL};
static const char *const status_values[] = {"new",          "contacted", "qualified",
                                            "disqualified", "customer",  NULL};
static const char *const lifecycle_values[] = {"subscriber",  "lead",     "mql", "sql",
                                               "opportunity", "customer", NULL};
static const char *const moco_operations[] = {"create_customer", "create_offer", "create_invoice",
                                              NULL};
/* The named messages of send_notification's "template". */
static const char *const message_names[] = {
    "hot_lead", "lead_routed", "deal_created", "deal_won", "deal_lost", "stage_entered", NULL};

static int one_of(const char *v, const char *const *set)
{
    for (int i = 0; v && set[i]; i++)
        if (strcmp(v, set[i]) == 0) return 1;
    return 0;
}

static void list_of(const char *const *set, char *out, size_t size)
{
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; set[i] && len < size; i++)
        len += (size_t)snprintf(out + len, size - len, "%s%s", i ? ", " : "", set[i]);
}

const char *lf_auto_message_text(const char *name)
{
    static const char *const texts[] = {
        ":fire: Hot lead: {lead.first_name} {lead.last_name} <{lead.email}> ({lead.company}) "
        "reached {lead.score} points.",
        "Lead {lead.first_name} {lead.last_name} <{lead.email}> was routed to {deal.pipeline}; "
        "owner: {owner.name}.",
        "New deal {deal.name} ({deal.value}) in {deal.pipeline}, stage {deal.stage}; owner: "
        "{owner.name}.",
        ":trophy: Deal won: {deal.name} ({deal.value}), owner {owner.name}.",
        "Deal lost: {deal.name} ({deal.value}), owner {owner.name}.",
        "Deal {deal.name} entered {deal.stage} in {deal.pipeline}; owner: {owner.name}.",
    };
    for (int i = 0; message_names[i]; i++)
        if (strcmp(name, message_names[i]) == 0) return texts[i];
    return NULL;
}

/* A webhook action's URL follows the rules of a subscription's, without resolving its name
 * (rules are checked while the writer is held; names are judged at connect time). */
static void target_check(const char *url, const char *path, struct lf_err *err)
{
    const struct lf_config *cfg = lf_relay_config();
    struct lf_err why = {0};
    if (cfg && lf_target_check_quick(cfg, url, &why) < 0) lf_err_field(err, path, "%s", why.msg);
    lf_err_clear(&why);
}

/* Checks one config value; problems go to err under path. */
static void check_value(const struct config_key *k, json_t *v, const char *path, struct lf_err *err)
{
    const char *s = json_string_value(v);
    char allowed[200];
    switch (k->kind) {
    case 't':
        if (!lf_event_type_ok(s))
            lf_err_field(err, path,
                         "must be an event type (letters, digits, '_', '.', '-', ':') or \"*\"");
        break;
    case 'c':
        if (!json_is_array(v)) {
            lf_err_field(err, path, "must be a list of conditions ([] for none)");
        } else {
            struct lf_conds *conds = lf_conds_compile(v, path, err);
            lf_conds_free(conds);
        }
        break;
    case 'S':
        if (!int_in(v, -100000, 100000))
            lf_err_field(err, path, "must be an integer score from -100000 to 100000");
        break;
    case 'i':
        if (!json_is_null(v) && !is_slug(s))
            lf_err_field(err, path, "must be an intent name (1-63 of a-z, 0-9, '_', '-') or null");
        break;
    case '%':
        if (!int_in(v, 0, 100)) lf_err_field(err, path, "must be an integer from 0 to 100");
        break;
    case 'r':
        if (!text_in(v, 100)) lf_err_field(err, path, "must be an id or a slug");
        break;
    case 'D':
        if (!int_in(v, 0, 3650)) lf_err_field(err, path, "must be a number of days from 0 to 3650");
        break;
    case 'H':
        if (!int_in(v, 0, 8760))
            lf_err_field(err, path, "must be a number of hours from 0 to 8760");
        break;
    case 'y':
        if (!one_of(s, (const char *const[]){"round_robin", "capacity_based", NULL}))
            lf_err_field(err, path, "must be round_robin or capacity_based");
        break;
    case 'l':
        if (!is_slug(s)) lf_err_field(err, path, "must be a slug: 1-63 of a-z, 0-9, '_', '-'");
        break;
    case 'g':
        if (!text_in(v, 64)) lf_err_field(err, path, "must be a region of 1 to 64 characters");
        break;
    case 'h':
        if (!json_is_null(v) && !text_in(v, 80))
            lf_err_field(err, path, "must be a channel name of 1 to 80 characters, or null");
        break;
    case 'T':
        if (!text_in(v, 2000))
            lf_err_field(err, path, "must be a text of 1 to 2000 characters");
        else
            lf_template_check(s, path, err);
        break;
    case 'N':
        list_of(message_names, allowed, sizeof allowed);
        if (!one_of(s, message_names)) lf_err_field(err, path, "must be one of %s", allowed);
        break;
    case 'd':
        if (!int_in(v, 0, 3650)) lf_err_field(err, path, "must be a number of days from 0 to 3650");
        break;
    case 'm':
        if (!text_in(v, 200))
            lf_err_field(err, path, "must be \"owner\" (the deal's owner), a member id or email");
        break;
    case 'o':
        list_of(moco_operations, allowed, sizeof allowed);
        if (!one_of(s, moco_operations)) lf_err_field(err, path, "must be one of %s", allowed);
        break;
    case 'f':
        list_of(field_names, allowed, sizeof allowed);
        if (!one_of(s, field_names))
            lf_err_field(err, path, "is not a field automation may set (allowed: %s)", allowed);
        break;
    case 'v':
        if (!json_is_null(v) && !text_in(v, 200))
            lf_err_field(err, path, "must be a text of 1 to 200 characters, or null");
        else if (s)
            lf_template_check(s, path, err);
        break;
    case 'b':
        if (!json_is_boolean(v)) lf_err_field(err, path, "must be true or false");
        break;
    case 'u':
        if (!text_in(v, 2000) || (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0))
            lf_err_field(err, path, "must be an http:// or https:// URL");
        else
            target_check(s, path, err);
        break;
    }
}

/* Checks config (an object) against keys; problems named "<prefix>.<key>". */
static void check_config(json_t *config, const struct config_key *keys, const char *prefix,
                         struct lf_err *err)
{
    char path[160], allowed[200];
    size_t len = 0;
    allowed[0] = '\0';
    for (const struct config_key *k = keys; k->name && len < sizeof allowed; k++)
        len +=
            (size_t)snprintf(allowed + len, sizeof allowed - len, "%s%s", len ? ", " : "", k->name);
    if (!json_is_object(config)) {
        lf_err_field(err, prefix, "must be an object (keys: %s)", allowed[0] ? allowed : "none");
        return;
    }
    const char *key;
    json_t *v;
    int seen = 0;
    json_object_foreach(config, key, v)
    {
        if (++seen > 20) { /* a config has at most 6 keys */
            lf_err_field(err, prefix, "has more than 20 keys (allowed: %s)",
                         allowed[0] ? allowed : "none");
            break;
        }
        const struct config_key *k = keys;
        while (k->name && strcmp(k->name, key) != 0) k++;
        snprintf(path, sizeof path, "%s.%s", prefix, key);
        if (k->name == NULL)
            lf_err_field(err, path, "is not a key of this type (allowed: %s)",
                         allowed[0] ? allowed : "none");
        else
            check_value(k, v, path, err);
    }
    for (const struct config_key *k = keys; k->name; k++)
        if (k->required && json_object_get(config, k->name) == NULL) {
            snprintf(path, sizeof path, "%s.%s", prefix, k->name);
            lf_err_field(err, path, "is required");
        }
}

/* A stage named by ref (an id, or a slug of pipeline_ref's pipeline): its id and pipeline id.
 * LF_DB_ROW, LF_DB_DONE or negative. */
static int find_stage(struct lf_conn *c, const char *tenant_id, const char *pipeline_ref,
                      const char *ref, char id[40], char pipeline_id[40])
{
    char pid[40] = "";
    if (pipeline_ref) {
        int rc = lf_pipeline_find(c, tenant_id, pipeline_ref, pid, NULL);
        if (rc != LF_DB_ROW) return rc;
    }
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT id, pipeline_id FROM pipeline_stages"
                                       " WHERE tenant_id = ? AND (id = ? OR (pipeline_id = ?"
                                       " AND slug = ?)) AND (? = '' OR pipeline_id = ?)",
                                       NULL);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "ssssss", tenant_id, ref, pid, ref, pid, pid);
    int rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW) {
        snprintf(id, 40, "%s", lf_stmt_text(st, 0));
        snprintf(pipeline_id, 40, "%s", lf_stmt_text(st, 1));
    }
    lf_stmt_done(st);
    return rc;
}

/* 1 when the tenant has a row with that id (or email) in table. */
static int exists(struct lf_conn *c, const char *sql, const char *tenant_id, const char *ref)
{
    struct lf_stmt *st = lf_db_prepare(c, sql, NULL);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "sss", tenant_id, ref, ref);
    int rc = lf_stmt_step(st);
    lf_stmt_done(st);
    return rc == LF_DB_ROW ? 1 : rc < 0 ? rc : 0;
}

/* Checks the stored things a valid config names, normalising pipelines and stages to ids (a
 * move_to_stage without a pipeline keeps its stage as given: a slug then means the stage of
 * that slug in the deal's pipeline). */
static int check_refs(struct lf_conn *c, const char *tenant_id, int trigger, json_t *tc, int action,
                      json_t *ac, struct lf_err *err)
{
    char sid[40], pid[40];
    int rc;
    if (tc && (trigger == LF_TRIG_STAGE || trigger == LF_TRIG_TIME)) {
        const char *p = json_string_value(json_object_get(tc, "pipeline"));
        const char *s = json_string_value(json_object_get(tc, "stage"));
        if (s) {
            rc = find_stage(c, tenant_id, p, s, sid, pid);
            if (rc < 0) return rc;
            if (rc == LF_DB_DONE)
                lf_err_field(err, "trigger_config.stage",
                             p ? "no stage %s in pipeline %s"
                               : "no stage with id %s (name the pipeline to use a slug)",
                             s, p);
            else {
                json_object_set_new(tc, "stage", json_string(sid));
                json_object_set_new(tc, "pipeline", json_string(pid));
            }
        } else if (p) {
            rc = lf_pipeline_find(c, tenant_id, p, pid, NULL);
            if (rc < 0) return rc;
            if (rc == LF_DB_DONE)
                lf_err_field(err, "trigger_config.pipeline", "no pipeline %s", p);
            else
                json_object_set_new(tc, "pipeline", json_string(pid));
        }
    }
    if (ac == NULL) return 0;
    const char *p = json_string_value(json_object_get(ac, "pipeline"));
    if (p && (action == LF_ACT_MOVE || action == LF_ACT_ROUTE)) {
        rc = lf_pipeline_find(c, tenant_id, p, pid, NULL);
        if (rc < 0) return rc;
        if (rc == LF_DB_DONE) lf_err_field(err, "action_config.pipeline", "no pipeline %s", p);
        const char *s = json_string_value(json_object_get(ac, "stage"));
        if (rc == LF_DB_ROW && action == LF_ACT_MOVE && s) {
            rc = find_stage(c, tenant_id, pid, s, sid, pid);
            if (rc < 0) return rc;
            if (rc == LF_DB_DONE)
                lf_err_field(err, "action_config.stage", "no stage %s in pipeline %s", s, p);
            else
                json_object_set_new(ac, "stage", json_string(sid));
        }
        /* stored as ids, so renaming a pipeline or a stage keeps the rule working */
        if (!err->code) json_object_set_new(ac, "pipeline", json_string(pid));
    }
    const char *stage = json_string_value(json_object_get(ac, "stage"));
    if (action == LF_ACT_MOVE && !p && stage) { /* a slug of some pipeline, or a stage's id */
        rc = exists(c, "SELECT 1 FROM pipeline_stages WHERE tenant_id = ? AND (id = ? OR slug = ?)",
                    tenant_id, stage);
        if (rc < 0) return rc;
        if (rc == 0) lf_err_field(err, "action_config.stage", "no pipeline has a stage %s", stage);
    }
    const char *who = json_string_value(json_object_get(ac, "assignee"));
    if (action == LF_ACT_TASK && who && strcmp(who, "owner") != 0) {
        rc = exists(c,
                    "SELECT 1 FROM team_members WHERE tenant_id = ? AND (id = ? OR"
                    " lower(email) = lower(?))",
                    tenant_id, who);
        if (rc < 0) return rc;
        if (rc == 0)
            lf_err_field(err, "action_config.assignee",
                         "no team member %s (use \"owner\", a member id or email)", who);
    }
    const char *sub = json_string_value(json_object_get(ac, "subscription"));
    if (action == LF_ACT_WEBHOOK && sub) {
        rc = exists(c, "SELECT 1 FROM subscriptions WHERE tenant_id = ? AND id = ? AND id = ?",
                    tenant_id, sub);
        if (rc < 0) return rc;
        if (rc == 0) lf_err_field(err, "action_config.subscription", "no subscription %s", sub);
    }
    return 0;
}

/* Rules between keys of one config that check_config cannot see. */
static void check_combinations(int trigger, json_t *tc, int action, json_t *ac, struct lf_err *err)
{
    if (tc && trigger == LF_TRIG_TIME) {
        json_int_t days = json_integer_value(json_object_get(tc, "days"));
        json_int_t hours = json_integer_value(json_object_get(tc, "hours"));
        if (json_is_integer(json_object_get(tc, "days")) && days * 24 + hours < 1)
            lf_err_field(err, "trigger_config.days",
                         "days and hours must add up to an hour or more");
    }
    if (ac == NULL) return;
    if (action == LF_ACT_NOTIFY) {
        int text = json_object_get(ac, "text") != NULL,
            tpl = json_object_get(ac, "template") != NULL;
        if (text == tpl)
            lf_err_field(err, "action_config.text", "give either text or template (one of them)");
    }
    if (action == LF_ACT_WEBHOOK) {
        int url = json_object_get(ac, "url") != NULL,
            sub = json_object_get(ac, "subscription") != NULL;
        if (url == sub)
            lf_err_field(err, "action_config.url", "give either url or subscription (one of them)");
    }
    if (action == LF_ACT_FIELD) {
        const char *field = json_string_value(json_object_get(ac, "field"));
        json_t *v = json_object_get(ac, "value");
        const char *const *set = field && strcmp(field, "status") == 0            ? status_values
                                 : field && strcmp(field, "lifecycle_stage") == 0 ? lifecycle_values
                                                                                  : NULL;
        char allowed[200];
        if (set && v) {
            list_of(set, allowed, sizeof allowed);
            if (!one_of(json_string_value(v), set))
                lf_err_field(err, "action_config.value", "%s must be one of %s", field, allowed);
        }
    }
}

/* The rule body's own keys. */
static const struct config_key body_keys[] = {
    {"name", 'n', 1},
    {"description", 'e', 0},
    {"trigger_type", 'g', 1},
    {"trigger_config", 'o', 0},
    {"action_type", 'a', 1},
    {"action_config", 'o', 0},
    {"priority", 'p', 0},
    {"is_active", 'b', 0},
    {"max_executions_per_hour", 'x', 0},
    {NULL, 0, 0},
};

int lf_auto_rule_check(struct lf_conn *c, const char *tenant_id, json_t *body, int creating,
                       json_t *current, struct lf_err *err)
{
    if (!json_is_object(body)) return lf_err_set(err, -LF_EINVAL, "the body must be an object");
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        const struct config_key *k = body_keys;
        while (k->name && strcmp(k->name, key) != 0) k++;
        if (k->name == NULL) {
            lf_err_field(err, key,
                         "is not a rule field (allowed: name, description, trigger_type,"
                         " trigger_config, action_type, action_config, priority, is_active,"
                         " max_executions_per_hour)");
            continue;
        }
        char allowed[200];
        switch (k->kind) {
        case 'n':
            if (!text_in(v, 200)) lf_err_field(err, key, "must be a text of 1 to 200 characters");
            break;
        case 'e':
            if (!json_is_null(v) && !(json_is_string(v) && chars(v) <= 2000))
                lf_err_field(err, key, "must be a text of at most 2000 characters, or null");
            break;
        case 'g':
            list_of(trigger_names, allowed, sizeof allowed);
            if (lf_auto_trigger_parse(json_string_value(v)) < 0)
                lf_err_field(err, key, "must be one of %s", allowed);
            break;
        case 'a':
            list_of(action_names, allowed, sizeof allowed);
            if (lf_auto_action_parse(json_string_value(v)) < 0)
                lf_err_field(err, key, "must be one of %s", allowed);
            break;
        case 'o':
            if (!json_is_object(v)) lf_err_field(err, key, "must be an object");
            break;
        case 'p':
            if (!int_in(v, -1000000, 1000000))
                lf_err_field(err, key, "must be an integer (lower runs first)");
            break;
        case 'b':
            if (!json_is_boolean(v)) lf_err_field(err, key, "must be true or false");
            break;
        case 'x':
            if (!json_is_null(v) && !int_in(v, 1, 1000000))
                lf_err_field(err, key, "must be null (no budget) or an integer from 1 to 1000000");
            break;
        }
    }
    if (creating)
        for (const struct config_key *k = body_keys; k->name; k++)
            if (k->required && json_object_get(body, k->name) == NULL)
                lf_err_field(err, k->name, "is required");
    if (err->code) return err->code;

    /* The configs, against the types they go with. A new type needs its config given. */
    json_t *tt = json_object_get(body, "trigger_type"), *at = json_object_get(body, "action_type");
    int trigger = lf_auto_trigger_parse(
        json_string_value(tt ? tt : json_object_get(current, "trigger_type")));
    int action =
        lf_auto_action_parse(json_string_value(at ? at : json_object_get(current, "action_type")));
    json_t *tc = json_object_get(body, "trigger_config");
    json_t *ac = json_object_get(body, "action_config");
    if (trigger < 0 || action < 0)
        return lf_err_set(err, -LF_EINVAL, "the rule has no valid types");
    if (!creating && tt && !tc &&
        strcmp(json_string_value(tt),
               json_string_value(json_object_get(current, "trigger_type"))) != 0)
        lf_err_field(err, "trigger_config", "is required when trigger_type changes");
    if (!creating && at && !ac &&
        strcmp(json_string_value(at), json_string_value(json_object_get(current, "action_type"))) !=
            0)
        lf_err_field(err, "action_config", "is required when action_type changes");
    if (creating && !tc) json_object_set_new(body, "trigger_config", tc = json_object());
    if (creating && !ac) json_object_set_new(body, "action_config", ac = json_object());
    if (tc) check_config(tc, trigger_keys[trigger], "trigger_config", err);
    if (ac) check_config(ac, action_keys[action], "action_config", err);
    if (err->code) return err->code;
    check_combinations(trigger, tc, action, ac, err);
    if (err->code) return err->code;
    int rc = check_refs(c, tenant_id, trigger, tc, action, ac, err);
    if (rc < 0) return rc;
    return err->code ? err->code : 0;
}

/* Compiling a stored rule. */

void lf_auto_rule_clear(struct lf_auto_rule *r)
{
    free(r->name);
    json_decref(r->trigger_config);
    json_decref(r->action_config);
    lf_conds_free(r->conds);
    memset(r, 0, sizeof *r);
}

int lf_auto_rule_compile(struct lf_auto_rule *r, const char *id, const char *name,
                         const char *trigger_type, const char *trigger_config,
                         const char *action_type, const char *action_config, int max_per_hour)
{
    memset(r, 0, sizeof *r);
    snprintf(r->id, sizeof r->id, "%s", id);
    r->name = lf_xstrdup(name ? name : "");
    r->trigger = lf_auto_trigger_parse(trigger_type);
    r->action = lf_auto_action_parse(action_type);
    r->trigger_config = lf_json_parse(trigger_config);
    r->action_config = lf_json_parse(action_config);
    r->max_per_hour = max_per_hour > 0 ? max_per_hour : 0;
    json_t *tc = r->trigger_config;
    if (r->trigger < 0 || r->action < 0 || !json_is_object(tc) || !json_is_object(r->action_config))
        goto bad;
    switch (r->trigger) {
    case LF_TRIG_EVENT:
        r->event_type = json_string_value(json_object_get(tc, "event_type"));
        r->conds = lf_conds_compile(json_object_get(tc, "conditions"), "conditions", NULL);
        if (r->event_type == NULL || r->conds == NULL) goto bad;
        break;
    case LF_TRIG_SCORE:
        r->score_gte = (int)json_integer_value(json_object_get(tc, "score_gte"));
        break;
    case LF_TRIG_INTENT:
        r->intent = json_string_value(json_object_get(tc, "intent"));
        r->confidence_gte = (int)json_integer_value(json_object_get(tc, "confidence_gte"));
        break;
    case LF_TRIG_STAGE:
    case LF_TRIG_TIME:
        r->pipeline = json_string_value(json_object_get(tc, "pipeline"));
        r->stage = json_string_value(json_object_get(tc, "stage"));
        r->in_stage_ms = (json_integer_value(json_object_get(tc, "days")) * 24 +
                          json_integer_value(json_object_get(tc, "hours"))) *
                         3600000;
        if (r->trigger == LF_TRIG_STAGE && r->stage == NULL) goto bad;
        if (r->trigger == LF_TRIG_TIME && r->in_stage_ms <= 0) goto bad;
        break;
    }
    return 0;
bad:
    lf_auto_rule_clear(r);
    return -LF_EINVAL;
}

/* Stage rules. */

/* Steps st (bound to the tenant's stage and timer rules: id, name, trigger_type, action_type,
 * is_active, trigger_config) and calls fn for those naming the stage (or the pipeline). */
static int each_stage_rule(struct lf_conn *c, const char *tenant_id, const char *pipeline_id,
                           const char *stage_id, void (*fn)(struct lf_stmt *st, void *arg),
                           void *arg)
{
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT id, name, trigger_type, action_type, is_active,"
                                       " trigger_config FROM automation_rules WHERE tenant_id = ?"
                                       " AND trigger_type IN ('stage_entered', 'time_in_stage')"
                                       " ORDER BY priority, created_at, id",
                                       NULL);
    if (st == NULL) return -LF_EINTERNAL;
    lf_stmt_bind(st, "s", tenant_id);
    int rc;
    while ((rc = lf_stmt_step(st)) == LF_DB_ROW) {
        json_t *tc = lf_json_parse(lf_stmt_text(st, 5));
        const char *s = json_string_value(json_object_get(tc, "stage"));
        const char *p = json_string_value(json_object_get(tc, "pipeline"));
        if (stage_id ? s && strcmp(s, stage_id) == 0
                     : p && pipeline_id && strcmp(p, pipeline_id) == 0)
            fn(st, arg);
        json_decref(tc);
    }
    lf_stmt_done(st);
    return rc < 0 ? rc : 0;
}

static void add_brief(struct lf_stmt *st, void *arg)
{
    json_array_append_new(arg, json_pack("{s:s, s:s, s:s, s:s, s:b}", "id", lf_stmt_text(st, 0),
                                         "name", lf_stmt_text(st, 1), "trigger_type",
                                         lf_stmt_text(st, 2), "action_type", lf_stmt_text(st, 3),
                                         "is_active", lf_stmt_int(st, 4) != 0));
}

json_t *lf_auto_stage_rules(struct lf_conn *c, const char *tenant_id, const char *stage_id, int *rc)
{
    json_t *list = json_array();
    *rc = each_stage_rule(c, tenant_id, NULL, stage_id, add_brief, list);
    if (*rc < 0) {
        json_decref(list);
        return NULL;
    }
    return list;
}

static void add_id(struct lf_stmt *st, void *arg)
{
    json_array_append_new(arg, json_string(lf_stmt_text(st, 0)));
}

int lf_auto_stage_rules_delete(struct lf_conn *c, const char *tenant_id, const char *pipeline_id,
                               const char *stage_id)
{
    json_t *ids = json_array();
    int rc = each_stage_rule(c, tenant_id, pipeline_id, stage_id, add_id, ids);
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id)
    {
        if (rc < 0) break;
        rc = lf_db_run(c, NULL, "DELETE FROM automation_rules WHERE tenant_id = ? AND id = ?", "ss",
                       tenant_id, json_string_value(id));
    }
    int n = (int)json_array_size(ids);
    json_decref(ids);
    if (rc >= 0 && n > 0) rc = lf_rules_bump(c, tenant_id);
    return rc < 0 ? rc : n;
}
