/* Configuration from the environment: one table of every key. */
#ifndef LF_CONFIG_H
#define LF_CONFIG_H

#include "core/err.h"

struct lf_config {
    char *db;                   /* LEADFLOW_DB: a file path or a postgres:// URL */
    char *listen;               /* LEADFLOW_LISTEN: host:port */
    char *jwt_secret;           /* LEADFLOW_JWT_SECRET: HS256 key; serve refuses to start without */
    int workers;                /* LEADFLOW_WORKERS: pipeline worker threads (0: no processing) */
    char *sync;                 /* LEADFLOW_SYNC: full | normal */
    int http_threads;           /* LEADFLOW_HTTP_THREADS: libmicrohttpd thread pool size */
    int http_timeout_s;         /* LEADFLOW_HTTP_TIMEOUT: idle connection timeout, seconds */
    int max_attempts;           /* LEADFLOW_MAX_ATTEMPTS: tries before an event stays failed */
    int retry_base_ms;          /* LEADFLOW_RETRY_BASE_MS: first retry delay; doubles x4 each try */
    int batch_size;             /* LEADFLOW_BATCH_SIZE: events a worker claims at once */
    int ingest_queue_max;       /* LEADFLOW_INGEST_QUEUE: events waiting for the writer; full=503 */
    int ingest_batch_max;       /* LEADFLOW_INGEST_BATCH: events per group commit */
    int ingest_wait_us;         /* LEADFLOW_INGEST_WAIT_US: longest wait to fill a group commit */
    int access_log;             /* LEADFLOW_ACCESS_LOG: 1 writes a JSON line per request */
    char *log_level;            /* LEADFLOW_LOG_LEVEL: debug | info | warn | error */
    int test_stages;            /* LEADFLOW_TEST_STAGES: enable the test stage (test builds only) */
    char *test_now;             /* LEADFLOW_TEST_NOW: start the clock here (test builds only) */
    int scheduler;              /* LEADFLOW_SCHEDULER: 1 runs scheduled jobs in this process */
    char *score_decay_cron;     /* LEADFLOW_SCORE_DECAY_CRON: the decay job's schedule */
    char *stage_timers_cron;    /* LEADFLOW_STAGE_TIMERS_CRON: the stage timers job's schedule */
    char *slack_digest_cron;    /* LEADFLOW_SLACK_DIGEST_CRON: the Slack digest's schedule */
    int dispatcher;             /* LEADFLOW_DISPATCHER: 1 sends deliveries from this process */
    int dispatch_concurrency;   /* LEADFLOW_DISPATCH_CONCURRENCY: deliveries in flight at once */
    int dispatch_per_host;      /* LEADFLOW_DISPATCH_PER_HOST: connections per host and port */
    int allow_private_targets;  /* LEADFLOW_ALLOW_PRIVATE_TARGETS: loopback/private targets ok */
    char *slack_webhook_url;    /* SLACK_WEBHOOK_URL */
    char *slack_signing_secret; /* SLACK_SIGNING_SECRET */
    char *moco_api_key;         /* MOCO_API_KEY */
    char *moco_subdomain;       /* MOCO_SUBDOMAIN */
    char *moco_base_url;        /* MOCO_BASE_URL: overrides the subdomain, for tests */
    char *moco_webhook_secret;  /* MOCO_WEBHOOK_SECRET: the payment webhook's shared secret */
    int enable_moco_sync;       /* ENABLE_MOCO_SYNC */
    int enable_slack_alerts;    /* ENABLE_SLACK_ALERTS */
    int enable_score_decay;     /* ENABLE_SCORE_DECAY */
};

/* One row per key, for loading and for `leadflow config`. */
struct lf_config_key {
    const char *name; /* environment variable */
    char type;        /* 's' string, 'i' integer, 'b' boolean */
    const char *def;  /* default as text, or NULL for none */
    size_t offset;    /* field in struct lf_config */
    const char *help; /* one line for people */
};
extern const struct lf_config_key lf_config_keys[];

/* Loads every key from the environment into cfg (defaults where unset). Returns 0, or
 * -LF_EINVAL naming the bad key in err. */
int lf_config_load(struct lf_config *cfg, struct lf_err *err);
void lf_config_free(struct lf_config *cfg);

#endif
