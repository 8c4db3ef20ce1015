/* Who is asking: bearer tokens (JWT HS256), source signatures, Standard Webhooks headers, and
 * the per-source rate limit; with the cache of tenants and sources they need.
 *
 * DESIGN / THREAD SAFETY
 * Every HTTP thread reads the cache; `lock` protects all of struct lf_auth_cache. Sources are
 * reloaded from the store when this process changed one (`stale`) or every RELOAD_US, so a
 * change made through another process is seen within that time. Token buckets live in the
 * cached source and survive reloads (matched by id). Tenants are looked up on a miss only:
 * they are never renamed, and a token names its tenant by slug. */
#include "http/auth.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/ratelimit.h"
#include "core/timeutil.h"

#include <errno.h>
#include <jwt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RELOAD_US              2000000
#define STDWEBHOOK_TOLERANCE_S 300

struct cached_source {
    char id[40];
    char tenant_id[40];
    char tenant_slug[64];
    char slug[64];
    char *secret;
    int rate; /* events per second, 0: unlimited */
    int active;
    struct lf_bucket bucket;
};

struct cached_tenant {
    char id[40];
    char slug[64];
};

struct lf_auth_cache {
    pthread_mutex_t lock;
    struct cached_source *sources;
    int nsources;
    int64_t loaded_us; /* 0: load before the next use */
    struct cached_tenant *tenants;
    int ntenants;
};

static const char *const role_names[] = {"admin", "manager", "sales", "viewer", "ingest"};

int lf_role_parse(const char *name)
{
    for (int i = 0; name && i < 5; i++)
        if (strcmp(name, role_names[i]) == 0) return 1 << i;
    return 0;
}

const char *lf_role_name(int role)
{
    for (int i = 0; i < 5; i++)
        if (role == 1 << i) return role_names[i];
    return "none";
}

void lf_auth_init(struct lf_app *app)
{
    app->auth = lf_xcalloc(1, sizeof(*app->auth));
    pthread_mutex_init(&app->auth->lock, NULL);
}

static void free_sources(struct cached_source *s, int n)
{
    for (int i = 0; i < n; i++) free(s[i].secret);
    free(s);
}

void lf_auth_free(struct lf_app *app)
{
    if (app->auth == NULL) return;
    free_sources(app->auth->sources, app->auth->nsources);
    free(app->auth->tenants);
    pthread_mutex_destroy(&app->auth->lock);
    free(app->auth);
    app->auth = NULL;
}

void lf_auth_sources_changed(struct lf_app *app)
{
    pthread_mutex_lock(&app->auth->lock);
    app->auth->loaded_us = 0;
    pthread_mutex_unlock(&app->auth->lock);
}

/* Reloads sources when due. Called with the lock held. */
static int load_sources(struct lf_app *app, struct lf_err *err)
{
    struct lf_auth_cache *ac = app->auth;
    int64_t now = lf_mono_us();
    if (ac->loaded_us && now - ac->loaded_us < RELOAD_US) return 0;
    struct lf_conn *c = lf_db_acquire(app->db, LF_DB_READ, err);
    if (c == NULL) return -LF_ESTORE;
    struct lf_stmt *st = lf_db_prepare(
        c,
        "SELECT s.id, s.tenant_id, t.slug, s.slug, s.secret, s.rate_limit_per_s, s.is_active"
        " FROM sources s JOIN tenants t ON t.id = s.tenant_id ORDER BY s.id",
        err);
    if (st == NULL) {
        lf_db_release(c);
        return -LF_EINTERNAL;
    }
    int cap = 16, n = 0, rc;
    struct cached_source *list = lf_xcalloc((size_t)cap, sizeof(*list));
    while ((rc = lf_stmt_step(st)) == LF_DB_ROW) {
        if (n == cap) {
            cap *= 2;
            list = lf_xrealloc(list, (size_t)cap * sizeof(*list));
        }
        struct cached_source *s = &list[n++];
        memset(s, 0, sizeof(*s));
        snprintf(s->id, sizeof s->id, "%s", lf_stmt_text(st, 0));
        snprintf(s->tenant_id, sizeof s->tenant_id, "%s", lf_stmt_text(st, 1));
        snprintf(s->tenant_slug, sizeof s->tenant_slug, "%s", lf_stmt_text(st, 2));
        snprintf(s->slug, sizeof s->slug, "%s", lf_stmt_text(st, 3));
        s->secret = lf_xstrdup(lf_stmt_text(st, 4));
        s->rate = (int)lf_stmt_int(st, 5);
        s->active = (int)lf_stmt_int(st, 6);
        for (int i = 0; i < ac->nsources; i++) /* keep the bucket of a known source */
            if (strcmp(ac->sources[i].id, s->id) == 0) s->bucket = ac->sources[i].bucket;
    }
    lf_stmt_done(st);
    lf_db_release(c);
    if (rc < 0) {
        free_sources(list, n);
        return lf_err_set(err, rc, "cannot read sources");
    }
    free_sources(ac->sources, ac->nsources);
    ac->sources = list;
    ac->nsources = n;
    ac->loaded_us = now;
    return 0;
}

/* Finds the tenant by slug, asking the store on a miss. Returns 1 and fills id, 0 when
 * unknown, negative on a store error. */
static int tenant_by_slug(struct lf_app *app, const char *slug, char id[40])
{
    struct lf_auth_cache *ac = app->auth;
    pthread_mutex_lock(&ac->lock);
    for (int i = 0; i < ac->ntenants; i++)
        if (strcmp(ac->tenants[i].slug, slug) == 0) {
            memcpy(id, ac->tenants[i].id, 40);
            pthread_mutex_unlock(&ac->lock);
            return 1;
        }
    pthread_mutex_unlock(&ac->lock);
    if (strlen(slug) >= 64) return 0;

    struct lf_conn *c = lf_db_acquire(app->db, LF_DB_READ, NULL);
    if (c == NULL) return -LF_ESTORE;
    struct lf_stmt *st = lf_db_prepare(c, "SELECT id FROM tenants WHERE slug = ?", NULL);
    int rc = st ? lf_stmt_bind(st, "s", slug) : -LF_EINTERNAL;
    if (rc == 0) rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW) snprintf(id, 40, "%s", lf_stmt_text(st, 0));
    lf_stmt_done(st);
    lf_db_release(c);
    if (rc != LF_DB_ROW) return rc < 0 ? rc : 0;

    pthread_mutex_lock(&ac->lock);
    ac->tenants = lf_xrealloc(ac->tenants, (size_t)(ac->ntenants + 1) * sizeof(*ac->tenants));
    struct cached_tenant *t = &ac->tenants[ac->ntenants++];
    memcpy(t->id, id, 40);
    snprintf(t->slug, sizeof t->slug, "%s", slug);
    pthread_mutex_unlock(&ac->lock);
    return 1;
}

int lf_auth_token(struct lf_req *r, int roles, struct lf_err *err)
{
    const char *h = lf_req_header(r, "Authorization");
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
        return lf_err_set(err, -LF_EAUTH, "an Authorization: Bearer token is required");
    const char *token = h + 7;
    while (*token == ' ') token++;
    const char *secret = r->app->cfg.jwt_secret;
    jwt_t *jwt = NULL;
    if (jwt_decode(&jwt, token, (const unsigned char *)secret, (int)strlen(secret)) != 0 ||
        jwt_get_alg(jwt) != JWT_ALG_HS256) {
        jwt_free(jwt);
        return lf_err_set(err, -LF_EAUTH, "the token is malformed or its signature is wrong");
    }
    int rc = 0;
    errno = 0;
    long exp = jwt_get_grant_int(jwt, "exp");
    const char *tenant = jwt_get_grant(jwt, "tenant");
    const char *role_name = jwt_get_grant(jwt, "role");
    const char *sub = jwt_get_grant(jwt, "sub");
    int role = lf_role_parse(role_name);
    char tenant_id[40];
    if (errno == ENOENT || exp <= 0) {
        rc = lf_err_set(err, -LF_EAUTH, "the token has no expiry (exp)");
    } else if (exp <= lf_now_ms() / 1000) { /* in seconds: exp * 1000 could overflow */
        rc = lf_err_set(err, -LF_EAUTH, "the token has expired");
    } else if (tenant == NULL || role == 0) {
        rc = lf_err_set(err, -LF_EAUTH, "the token lacks a known tenant or role");
    } else {
        int found = tenant_by_slug(r->app, tenant, tenant_id);
        if (found < 0)
            rc = lf_err_set(err, found, "the store is unavailable");
        else if (found == 0)
            rc = lf_err_set(err, -LF_EAUTH, "the token's tenant does not exist");
    }
    if (rc == 0 && !(role & roles))
        rc = lf_err_set(err, -LF_EFORBIDDEN, "role '%s' may not do this", role_name);
    if (rc == 0) {
        memcpy(r->auth.tenant_id, tenant_id, sizeof tenant_id);
        snprintf(r->auth.tenant_slug, sizeof r->auth.tenant_slug, "%s", tenant);
        snprintf(r->auth.sub, sizeof r->auth.sub, "%s", sub ? sub : "");
        r->auth.role = role;
        r->authenticated = 1;
    }
    jwt_free(jwt);
    return rc;
}

/* Verifies the body against every source with this slug; on a match fills r->auth. */
static int auth_source(struct lf_req *r, const char *slug, const char *sig, const char *wh_id,
                       int64_t wh_ts, struct lf_err *err)
{
    struct lf_auth_cache *ac = r->app->auth;
    pthread_mutex_lock(&ac->lock);
    int rc = load_sources(r->app, err);
    int matched = -1;
    for (int i = 0; rc == 0 && i < ac->nsources; i++) {
        struct cached_source *s = &ac->sources[i];
        if (strcmp(s->slug, slug) != 0) continue;
        int ok = wh_id
                     ? lf_stdwebhook_verify(s->secret, wh_id, wh_ts,
                                            r->body.data ? r->body.data : "", r->body.len, sig) == 0
                     : lf_signature_verify(s->secret, r->body.data ? r->body.data : "", r->body.len,
                                           sig) == 0;
        if (ok) {
            matched = i;
            break;
        }
    }
    if (rc == 0 && matched < 0) {
        rc = lf_err_set(err, -LF_EAUTH, "the signature does not match source '%s'", slug);
    } else if (rc == 0 && !ac->sources[matched].active) {
        rc = lf_err_set(err, -LF_EFORBIDDEN, "source '%s' is disabled", slug);
    } else if (rc == 0) {
        struct cached_source *s = &ac->sources[matched];
        memcpy(r->auth.tenant_id, s->tenant_id, sizeof r->auth.tenant_id);
        memcpy(r->auth.tenant_slug, s->tenant_slug, sizeof r->auth.tenant_slug);
        memcpy(r->auth.source_id, s->id, sizeof r->auth.source_id);
        memcpy(r->auth.source_slug, s->slug, sizeof r->auth.source_slug);
        snprintf(r->auth.sub, sizeof r->auth.sub, "source:%s", s->slug);
        r->auth.role = LF_ROLE_INGEST;
        if (wh_id) snprintf(r->auth.webhook_id, sizeof r->auth.webhook_id, "%s", wh_id);
    }
    pthread_mutex_unlock(&ac->lock);
    return rc;
}

int lf_auth_ingest(struct lf_req *r, struct lf_err *err)
{
    const char *slug = lf_req_header(r, "X-Source");
    if (slug == NULL) slug = lf_req_query(r, "source");
    const char *sig = lf_req_header(r, "X-Webhook-Signature");
    const char *wh_id = lf_req_header(r, "webhook-id");
    const char *wh_ts = lf_req_header(r, "webhook-timestamp");
    const char *wh_sig = lf_req_header(r, "webhook-signature");

    if (wh_id || wh_sig) {
        if (!wh_id || !wh_ts || !wh_sig)
            return lf_err_set(err, -LF_EAUTH,
                              "Standard Webhooks needs webhook-id, "
                              "webhook-timestamp and webhook-signature");
        if (slug == NULL)
            return lf_err_set(err, -LF_EAUTH, "name the source with X-Source or ?source=");
        if (strlen(wh_id) >= sizeof r->auth.webhook_id)
            return lf_err_set(err, -LF_EAUTH, "webhook-id is too long");
        char *end;
        long long ts = strtoll(wh_ts, &end, 10);
        if (*wh_ts == '\0' || *end != '\0')
            return lf_err_set(err, -LF_EAUTH, "webhook-timestamp must be Unix seconds");
        long long now = lf_now_ms() / 1000;
        if (ts < now - STDWEBHOOK_TOLERANCE_S || ts > now + STDWEBHOOK_TOLERANCE_S)
            return lf_err_set(err, -LF_EAUTH,
                              "webhook-timestamp is outside the 5-minute tolerance");
        return auth_source(r, slug, wh_sig, wh_id, ts, err);
    }
    if (sig || (slug && !lf_req_header(r, "Authorization"))) {
        if (slug == NULL) return lf_err_set(err, -LF_EAUTH, "X-Source names no source");
        if (sig == NULL)
            return lf_err_set(err, -LF_EAUTH, "X-Webhook-Signature: sha256=<hex> is missing");
        return auth_source(r, slug, sig, NULL, 0, err);
    }
    return lf_auth_token(r, LF_ROLE_INGEST | LF_ROLE_ADMIN, err);
}

int lf_auth_rate(struct lf_req *r, int n, struct lf_err *err)
{
    if (r->auth.source_id[0] == '\0') return 0;
    struct lf_auth_cache *ac = r->app->auth;
    int rc = 0;
    pthread_mutex_lock(&ac->lock);
    for (int i = 0; i < ac->nsources; i++) {
        struct cached_source *s = &ac->sources[i];
        if (strcmp(s->id, r->auth.source_id) != 0 || s->rate <= 0) continue;
        int64_t retry_ms = 0;
        if (n > s->rate) { /* can never fit in the bucket: waiting would not help */
            rc = lf_err_field(err, "events",
                              "holds %d events; source '%s' takes at most %d per second, so send "
                              "smaller batches",
                              n, s->slug, s->rate);
            break;
        }
        rc = lf_bucket_take(&s->bucket, s->rate, s->rate, n, lf_mono_us(), &retry_ms);
        if (rc < 0) {
            lf_err_set(err, rc, "source '%s' is over its rate of %d events per second", s->slug,
                       s->rate);
            err->retry_after_s = (int)((retry_ms + 999) / 1000);
        }
        break;
    }
    pthread_mutex_unlock(&ac->lock);
    return rc;
}

char *lf_auth_mint(const char *secret, const char *tenant, const char *role, const char *sub,
                   long ttl_s)
{
    jwt_t *jwt = NULL;
    if (jwt_new(&jwt) != 0) return NULL;
    long now = (long)(lf_now_ms() / 1000);
    char *out = NULL;
    if (jwt_add_grant(jwt, "sub", sub) == 0 && jwt_add_grant(jwt, "tenant", tenant) == 0 &&
        jwt_add_grant(jwt, "role", role) == 0 && jwt_add_grant_int(jwt, "iat", now) == 0 &&
        jwt_add_grant_int(jwt, "exp", now + ttl_s) == 0 &&
        jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret, (int)strlen(secret)) == 0)
        out = jwt_encode_str(jwt);
    jwt_free(jwt);
    return out;
}
