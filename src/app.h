/* The application: everything `leadflow serve` runs, in one place. */
#ifndef LF_APP_H
#define LF_APP_H

#include "core/config.h"
#include "store/db.h"

struct lf_ingest;
struct lf_workers;
struct lf_server;
struct lf_auth_cache;
struct lf_sched;

struct lf_app {
    struct lf_config cfg;
    struct lf_db *db;
    struct lf_ingest *ingest;   /* the group-commit writer */
    struct lf_workers *workers; /* the pipeline workers */
    struct lf_server *server;   /* the HTTP server */
    struct lf_auth_cache *auth; /* tenants and sources, cached */
    struct lf_sched *sched;     /* the scheduler (jobs can be run by hand without its thread) */
    char node[64];              /* this process: host:pid */
    int64_t started_at;         /* epoch ms */
};

#endif
