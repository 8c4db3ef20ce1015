/* Configuration from the environment: one table of every key. */
#include "core/config.h"
#include "core/mem.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KEY(name, type, def, field, help)                                                          \
    {                                                                                              \
        name, type, def, offsetof(struct lf_config, field), help                                   \
    }

const struct lf_config_key lf_config_keys[] = {
    KEY("LEADFLOW_DB", 's', "./var/leadflow.db", db, "database file path or postgres:// URL"),
    KEY("LEADFLOW_LISTEN", 's', "127.0.0.1:8080", listen, "address and port to serve on"),
    KEY("LEADFLOW_JWT_SECRET", 's', NULL, jwt_secret, "HS256 key for API tokens (required)"),
    KEY("LEADFLOW_WORKERS", 'i', "2", workers, "pipeline worker threads; 0 disables processing"),
    KEY("LEADFLOW_SYNC", 's', "full", sync,
        "full: fsync every commit; normal: faster, may "
        "lose the last commits on power loss"),
    KEY("LEADFLOW_HTTP_THREADS", 'i', "2", http_threads, "HTTP thread pool size"),
    KEY("LEADFLOW_HTTP_TIMEOUT", 'i', "30", http_timeout_s, "idle connection timeout, seconds"),
    KEY("LEADFLOW_MAX_ATTEMPTS", 'i', "5", max_attempts,
        "processing tries before an event "
        "stays failed"),
    KEY("LEADFLOW_RETRY_BASE_MS", 'i', "2000", retry_base_ms,
        "first processing retry delay; "
        "each further one is 4x longer"),
    KEY("LEADFLOW_BATCH_SIZE", 'i', "500", batch_size, "events a worker claims per transaction"),
    KEY("LEADFLOW_INGEST_QUEUE", 'i', "100000", ingest_queue_max,
        "events waiting for the "
        "ingest writer; beyond: 503"),
    KEY("LEADFLOW_INGEST_BATCH", 'i', "1000", ingest_batch_max, "events per group commit"),
    KEY("LEADFLOW_INGEST_WAIT_US", 'i', "0", ingest_wait_us,
        "longest wait to fill a group "
        "commit, microseconds"),
    KEY("LEADFLOW_ACCESS_LOG", 'b', "1", access_log, "write one JSON line per request"),
    KEY("LEADFLOW_LOG_LEVEL", 's', "info", log_level, "debug, info, warn or error"),
    KEY("LEADFLOW_TEST_STAGES", 'b', "0", test_stages, "enable the test stage (test builds)"),
    KEY("LEADFLOW_TEST_NOW", 's', NULL, test_now,
        "start the clock at this RFC 3339 time (test builds)"),
    KEY("LEADFLOW_SCHEDULER", 'b', "1", scheduler, "run scheduled jobs in this process"),
    KEY("LEADFLOW_SCORE_DECAY_CRON", 's', "0 2 * * *", score_decay_cron,
        "when the score decay job runs (cron, UTC)"),
    KEY("LEADFLOW_STAGE_TIMERS_CRON", 's', "*/15 * * * *", stage_timers_cron,
        "when time_in_stage automation rules are checked (cron, UTC)"),
    KEY("LEADFLOW_SLACK_DIGEST_CRON", 's', "0 8 * * 1-5", slack_digest_cron,
        "schedule of the daily Slack digest (cron, UTC)"),
    KEY("LEADFLOW_DISPATCHER", 'b', "1", dispatcher, "1 sends deliveries from this process"),
    KEY("LEADFLOW_DISPATCH_CONCURRENCY", 'i', "512", dispatch_concurrency,
        "deliveries in flight at once (and held in memory)"),
    KEY("LEADFLOW_DISPATCH_PER_HOST", 'i', "128", dispatch_per_host,
        "connections to one target host and port"),
    KEY("LEADFLOW_ALLOW_PRIVATE_TARGETS", 'b', "0", allow_private_targets,
        "let webhooks target loopback and private addresses (tests, on-premise receivers)"),
    KEY("SLACK_WEBHOOK_URL", 's', NULL, slack_webhook_url, "Slack incoming webhook"),
    KEY("SLACK_SIGNING_SECRET", 's', NULL, slack_signing_secret, "Slack request signing key"),
    KEY("MOCO_API_KEY", 's', NULL, moco_api_key, "Moco API token"),
    KEY("MOCO_SUBDOMAIN", 's', NULL, moco_subdomain, "Moco account subdomain"),
    KEY("MOCO_BASE_URL", 's', NULL, moco_base_url, "Moco API base URL (overrides subdomain)"),
    KEY("MOCO_WEBHOOK_SECRET", 's', NULL, moco_webhook_secret,
        "shared secret of Moco's payment webhook"),
    KEY("ENABLE_MOCO_SYNC", 'b', "0", enable_moco_sync, "send deliveries to Moco"),
    KEY("ENABLE_SLACK_ALERTS", 'b', "0", enable_slack_alerts, "send Slack alerts"),
    KEY("ENABLE_SCORE_DECAY", 'b', "1", enable_score_decay, "run the score decay job"),
    {NULL, 0, NULL, 0, NULL},
};

static int parse_bool(const char *s, int *out)
{
    if (!strcasecmp(s, "1") || !strcasecmp(s, "true") || !strcasecmp(s, "yes") ||
        !strcasecmp(s, "on")) {
        *out = 1;
        return 0;
    }
    if (!strcasecmp(s, "0") || !strcasecmp(s, "false") || !strcasecmp(s, "no") ||
        !strcasecmp(s, "off") || !strcasecmp(s, "")) {
        *out = 0;
        return 0;
    }
    return -1;
}

int lf_config_load(struct lf_config *cfg, struct lf_err *err)
{
    memset(cfg, 0, sizeof(*cfg));
    for (const struct lf_config_key *k = lf_config_keys; k->name; k++) {
        const char *v = getenv(k->name);
        if (v == NULL || (*v == '\0' && k->type != 's')) v = k->def;
        if (v == NULL) continue;
        void *field = (char *)cfg + k->offset;
        if (k->type == 's') {
            *(char **)field = *v ? lf_xstrdup(v) : NULL;
        } else if (k->type == 'i') {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end != '\0' || n < 0 || n > 100000000) {
                lf_err_set(err, -LF_EINVAL, "%s must be a whole number, not '%s'", k->name, v);
                goto fail;
            }
            *(int *)field = (int)n;
        } else if (parse_bool(v, (int *)field) < 0) {
            lf_err_set(err, -LF_EINVAL, "%s must be 1/0/true/false, not '%s'", k->name, v);
            goto fail;
        }
    }
    if (strcmp(cfg->sync, "full") != 0 && strcmp(cfg->sync, "normal") != 0) {
        lf_err_set(err, -LF_EINVAL, "LEADFLOW_SYNC must be 'full' or 'normal'");
        goto fail;
    }
    if (cfg->http_threads < 1) cfg->http_threads = 1;
    if (cfg->batch_size < 1) cfg->batch_size = 1;
    if (cfg->ingest_batch_max < 1) cfg->ingest_batch_max = 1;
    if (cfg->max_attempts < 1) cfg->max_attempts = 1;
    if (cfg->dispatch_concurrency < 1) cfg->dispatch_concurrency = 1;
    if (cfg->dispatch_concurrency > 4096) cfg->dispatch_concurrency = 4096;
    if (cfg->dispatch_per_host < 1) cfg->dispatch_per_host = 1;
    return 0;
fail:
    lf_config_free(cfg);
    return -LF_EINVAL;
}

void lf_config_free(struct lf_config *cfg)
{
    for (const struct lf_config_key *k = lf_config_keys; k->name; k++)
        if (k->type == 's') free(*(char **)((char *)cfg + k->offset));
    memset(cfg, 0, sizeof(*cfg));
}
