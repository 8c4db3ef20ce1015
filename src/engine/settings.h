/* Per-tenant settings (the settings table) and what is derived from them. */
#ifndef LF_SETTINGS_H
#define LF_SETTINGS_H

#include "store/db.h"

#include <jansson.h>
#include <stdint.h>

/* The tenant's value for key, parsed; NULL when unset. The caller owns the result. */
json_t *lf_settings_get(struct lf_conn *c, const char *tenant_id, const char *key);

/* Stores value (borrowed) as the tenant's key, in the caller's transaction. Returns 0 or a
 * negative code. */
int lf_settings_put(struct lf_conn *c, const char *tenant_id, const char *key, json_t *value,
                    int64_t now);

/* The tier name of a score given the "tiers" setting ({"cold":0,"warm":20,"mql":40,"hot":80};
 * NULL means those defaults): the tier with the highest lower bound not above the score. */
const char *lf_tier_of(int score, json_t *tiers);
/* The score range [lo, hi) of a tier; returns 0, or -LF_EINVAL for an unknown tier. hi is
 * INT32_MAX for the top tier, lo INT32_MIN for the bottom one. */
int lf_tier_range(const char *tier, json_t *tiers, int *lo, int *hi);

#endif
