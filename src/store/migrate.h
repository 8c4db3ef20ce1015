/* Schema migrations and the seed of a tenant's default configuration. */
#ifndef LF_MIGRATE_H
#define LF_MIGRATE_H

#include "store/db.h"

/* Applies every embedded migration not yet recorded in schema_migrations, each in its own
 * transaction, in order. Sets *applied to the number applied (may be NULL). */
int lf_migrate(struct lf_db *db, int *applied, struct lf_err *err);

/* Creates the tenant with slug (and name) if missing and loads the default configuration
 * (pipelines and stages, scoring and intent rules, settings, team members) for it; what
 * already exists is left alone. Sets tenant_id (37 bytes) when not NULL. */
int lf_seed_tenant(struct lf_db *db, const char *slug, const char *name, char *tenant_id,
                   struct lf_err *err);

/* 1 when the tenant exists, 0 when not, negative on a store error. Sets tenant_id (37 bytes)
 * when found and not NULL. */
int lf_tenant_lookup(struct lf_db *db, const char *slug, char *tenant_id, struct lf_err *err);

#endif
