/* Who is asking: bearer tokens (JWT HS256), source signatures, Standard Webhooks headers, and
 * the per-source rate limit; with the cache of tenants and sources they need. */
#ifndef LF_AUTH_H
#define LF_AUTH_H

#include "app.h"
#include "http/http.h"

/* Makes and frees app->auth. */
void lf_auth_init(struct lf_app *app);
void lf_auth_free(struct lf_app *app);
/* Tells the cache that sources changed in this process (it also reloads every 2 s, for
 * changes made by other processes). */
void lf_auth_sources_changed(struct lf_app *app);

/* Authenticates r from its Authorization header and admits roles. Returns 0 and fills
 * r->auth; -LF_EAUTH for a missing, malformed, badly signed or expired token or an unknown
 * tenant; -LF_EFORBIDDEN when the role is not admitted. */
int lf_auth_token(struct lf_req *r, int roles, struct lf_err *err);

/* Authenticates an ingest request once its body is in: a source signature (X-Source and
 * X-Webhook-Signature), Standard Webhooks headers (webhook-id, webhook-timestamp,
 * webhook-signature, with X-Source or ?source= naming the source), or a bearer token with
 * role ingest or admin. Returns 0 or -LF_EAUTH / -LF_EFORBIDDEN. */
int lf_auth_ingest(struct lf_req *r, struct lf_err *err);

/* Takes n events from the rate of the source that authenticated r (nothing for tokens).
 * Returns 0, -LF_ERATE with err->retry_after_s set, or -LF_EINVAL when n is more than the
 * source may ever send at once (its rate per second). */
int lf_auth_rate(struct lf_req *r, int n, struct lf_err *err);

/* Mints a token for tenant slug, role name and subject, valid for ttl_s seconds. Returns a
 * string the caller frees, or NULL. */
char *lf_auth_mint(const char *secret, const char *tenant, const char *role, const char *sub,
                   long ttl_s);

#endif
