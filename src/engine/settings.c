/* Per-tenant settings and what is derived from them. */
#include "engine/settings.h"
#include "core/err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

json_t *lf_settings_get(struct lf_conn *c, const char *tenant_id, const char *key)
{
    struct lf_stmt *st =
        lf_db_prepare(c, "SELECT value FROM settings WHERE tenant_id = ? AND key = ?", NULL);
    if (st == NULL) return NULL;
    lf_stmt_bind(st, "ss", tenant_id, key);
    json_t *v = NULL;
    if (lf_stmt_step(st) == LF_DB_ROW) v = json_loads(lf_stmt_text(st, 0), JSON_DECODE_ANY, NULL);
    lf_stmt_done(st);
    return v;
}

int lf_settings_put(struct lf_conn *c, const char *tenant_id, const char *key, json_t *value,
                    int64_t now)
{
    char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text == NULL) return -LF_ENOMEM;
    int rc =
        lf_db_run(c, NULL,
                  "INSERT INTO settings (tenant_id, key, value, updated_at) VALUES (?, ?, ?, ?)"
                  " ON CONFLICT (tenant_id, key) DO UPDATE SET value = excluded.value,"
                  " updated_at = excluded.updated_at",
                  "sssI", tenant_id, key, text, now);
    free(text);
    return rc < 0 ? rc : 0;
}

static const char *const tier_names[] = {"cold", "warm", "mql", "hot"};
static const int tier_defaults[] = {INT32_MIN, 20, 40, 80};

/* The lower bound of tier i: the setting when given (the lowest tier is open below). */
static int bound(json_t *tiers, int i)
{
    if (i == 0) return INT32_MIN;
    json_t *v = json_object_get(tiers, tier_names[i]);
    return json_is_integer(v) ? (int)json_integer_value(v) : tier_defaults[i];
}

const char *lf_tier_of(int score, json_t *tiers)
{
    const char *name = tier_names[0];
    for (int i = 1; i < 4; i++)
        if (score >= bound(tiers, i)) name = tier_names[i];
    return name;
}

int lf_tier_range(const char *tier, json_t *tiers, int *lo, int *hi)
{
    for (int i = 0; i < 4; i++)
        if (tier && strcmp(tier, tier_names[i]) == 0) {
            *lo = bound(tiers, i);
            *hi = i == 3 ? INT32_MAX : bound(tiers, i + 1);
            return 0;
        }
    return -LF_EINVAL;
}
