/* leadflow: argv, start, stop — nothing else. */
#include "app.h"
#include "api/api.h"
#include "engine/importer.h"
#include "engine/ingest.h"
#include "engine/replay.h"
#include "engine/rules.h"
#include "engine/worker.h"
#include "http/auth.h"
#include "http/router.h"
#include "http/server.h"
#include "outbound/outbound.h"
#include "sched/scheduler.h"
#include "store/migrate.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"

#include <curl/curl.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DRAIN_TIMEOUT_MS 10000

static void usage(FILE *out)
{
    fputs("usage: leadflow COMMAND [ARGS]\n"
          "  serve                          run the API, workers and writer (SIGTERM drains)\n"
          "  migrate                        apply schema migrations\n"
          "  seed                           migrate, then create tenant 'default' with the\n"
          "                                 default configuration (idempotent)\n"
          "  token --tenant T --role R [--ttl 30d] [--sub NAME]\n"
          "                                 print an API token (roles: admin manager sales\n"
          "                                 viewer ingest; ttl in s, m, h or d)\n"
          "  tenant add SLUG [NAME]         create a tenant with the default configuration\n"
          "  tenant list                    list tenants\n"
          "  replay --tenant T [--status S] [--type T] [--source S] [--since TIME]\n"
          "         [--until TIME] [--limit N]\n"
          "                                 set matching events back to pending\n"
          "  import FILE.csv [--tenant T]   import leads from CSV (header row; upsert by\n"
          "                                 identity), with a progress line\n"
          "  config                         list the configuration variables\n"
          "  version                        print the version\n",
          out);
}

/* With LEADFLOW_LISTEN "host:0" the system picks the port; the configuration then names the
 * real one (webhook targets are checked against the service's own address). */
static void bind_port_in_config(struct lf_app *app)
{
    size_t n = strlen(app->cfg.listen);
    if (n < 2 || strcmp(app->cfg.listen + n - 2, ":0") != 0) return;
    char buf[300];
    snprintf(buf, sizeof buf, "%.*s:%d", (int)(n - 2), app->cfg.listen, lf_server_port(app));
    free(app->cfg.listen);
    app->cfg.listen = lf_xstrdup(buf);
}

/* Lifts the soft limit on open files to the hard one. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int die(const char *what, struct lf_err *err)
{
    fprintf(stderr, "leadflow: %s: %s\n", what, err && err->msg[0] ? err->msg : "failed");
    lf_err_clear(err);
    return 1;
}

static void close_app(struct lf_app *app)
{
    lf_relay_configure(NULL);
    lf_relay_free();
    lf_db_close(app->db);
    app->db = NULL;
    lf_config_free(&app->cfg);
}

/* Loads configuration and opens (and migrates) the store. On failure nothing stays open. */
static int open_app(struct lf_app *app, struct lf_err *err)
{
    memset(app, 0, sizeof(*app));
    app->started_at = lf_now_ms();
    if (lf_config_load(&app->cfg, err) < 0) return -1;
    lf_relay_configure(&app->cfg);
    if (app->cfg.test_now) {
#ifdef LF_TESTING
        int64_t t;
        if (lf_time_parse(app->cfg.test_now, &t) < 0)
            return lf_err_set(err, -LF_EINVAL, "LEADFLOW_TEST_NOW is not an RFC 3339 time");
        lf_clock_set(t);
        app->started_at = t;
#else
        return lf_err_set(err, -LF_EINVAL, "LEADFLOW_TEST_NOW works in test builds only");
#endif
    }
    int level = lf_log_level_parse(app->cfg.log_level);
    int rc = level < 0 ? lf_err_set(err, -LF_EINVAL,
                                    "LEADFLOW_LOG_LEVEL is not one of debug, "
                                    "info, warn, error")
                       : 0;
    if (rc == 0) {
        lf_log_set_level((enum lf_log_level)level);
        struct lf_db_opts opts = {strcmp(app->cfg.sync, "full") == 0,
                                  app->cfg.http_threads + app->cfg.workers + 4};
        rc = lf_db_open(app->cfg.db, &opts, &app->db, err);
    }
    if (rc == 0) rc = lf_migrate(app->db, NULL, err);
    if (rc < 0) {
        close_app(app);
        return -1;
    }
    return 0;
}

static int cmd_migrate(void)
{
    struct lf_app app;
    struct lf_err err = {0};
    if (open_app(&app, &err) < 0) return die("migrate", &err);
    printf("schema is up to date (%s)\n", app.cfg.db);
    close_app(&app);
    return 0;
}

static int cmd_seed(void)
{
    struct lf_app app;
    struct lf_err err = {0};
    char id[40];
    if (open_app(&app, &err) < 0 || lf_seed_tenant(app.db, "default", "Default", id, &err) < 0)
        return die("seed", &err);
    printf("tenant default (%s) has the default configuration\n", id);
    close_app(&app);
    return 0;
}

static int cmd_tenant(int argc, char **argv)
{
    struct lf_app app;
    struct lf_err err = {0};
    if (argc < 1) {
        usage(stderr);
        return 2;
    }
    if (open_app(&app, &err) < 0) return die("tenant", &err);
    int rc = 0;
    if (strcmp(argv[0], "add") == 0 && argc >= 2) {
        if (!lf_api_is_slug(argv[1])) {
            fprintf(stderr, "leadflow: tenant slug must be 1-63 of a-z, 0-9, '_', '-'\n");
            rc = 2;
        } else if (lf_tenant_lookup(app.db, argv[1], NULL, &err) == LF_DB_ROW) {
            fprintf(stderr, "leadflow: tenant '%s' exists already\n", argv[1]);
            rc = 1;
        } else {
            char id[40];
            if (lf_seed_tenant(app.db, argv[1], argc >= 3 ? argv[2] : argv[1], id, &err) < 0)
                rc = die("tenant add", &err);
            else
                printf("tenant %s created (%s) with the default configuration\n", argv[1], id);
        }
    } else if (strcmp(argv[0], "list") == 0) {
        struct lf_conn *c = lf_db_acquire(app.db, LF_DB_READ, &err);
        struct lf_stmt *st =
            c ? lf_db_prepare(c, "SELECT slug, name, id FROM tenants ORDER BY slug", &err) : NULL;
        while (st && lf_stmt_step(st) == LF_DB_ROW)
            printf("%-20s %-30s %s\n", lf_stmt_text(st, 0), lf_stmt_text(st, 1),
                   lf_stmt_text(st, 2));
        lf_stmt_done(st);
        lf_db_release(c);
        if (st == NULL) rc = die("tenant list", &err);
    } else {
        usage(stderr);
        rc = 2;
    }
    close_app(&app);
    return rc;
}

/* "30d", "12h", "15m", "3600s" or "3600" → seconds; -1 when malformed. */
static long parse_ttl(const char *s)
{
    char *end;
    long n = strtol(s, &end, 10);
    if (end == s || n <= 0) return -1;
    long mult = 1;
    if (*end == 'm')
        mult = 60;
    else if (*end == 'h')
        mult = 3600;
    else if (*end == 'd')
        mult = 86400;
    else if (*end != 's' && *end != '\0')
        return -1;
    if (*end && end[1]) return -1;
    return n * mult;
}

static const char *arg_value(int argc, char **argv, const char *name)
{
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) return argv[i + 1];
    return NULL;
}

static int cmd_token(int argc, char **argv)
{
    const char *tenant = arg_value(argc, argv, "--tenant");
    const char *role = arg_value(argc, argv, "--role");
    const char *ttl_s = arg_value(argc, argv, "--ttl");
    const char *sub = arg_value(argc, argv, "--sub");
    long ttl = ttl_s ? parse_ttl(ttl_s) : 30L * 86400;
    if (tenant == NULL || role == NULL || ttl < 0) {
        usage(stderr);
        return 2;
    }
    if (lf_role_parse(role) == 0) {
        fprintf(stderr, "leadflow: unknown role '%s' (admin, manager, sales, viewer, ingest)\n",
                role);
        return 2;
    }
    struct lf_app app;
    struct lf_err err = {0};
    if (open_app(&app, &err) < 0) return die("token", &err);
    int rc = 0;
    if (app.cfg.jwt_secret == NULL) {
        fprintf(stderr, "leadflow: LEADFLOW_JWT_SECRET is not set\n");
        rc = 1;
    } else if (lf_tenant_lookup(app.db, tenant, NULL, &err) != LF_DB_ROW) {
        fprintf(stderr, "leadflow: no tenant '%s' (see 'leadflow tenant list')\n", tenant);
        rc = 1;
    } else {
        char *tok = lf_auth_mint(app.cfg.jwt_secret, tenant, role, sub ? sub : role, ttl);
        if (tok)
            printf("%s\n", tok);
        else
            rc = die("token", NULL);
        free(tok);
    }
    close_app(&app);
    return rc;
}

static int cmd_replay(int argc, char **argv)
{
    const char *tenant = arg_value(argc, argv, "--tenant");
    const char *limit_s = arg_value(argc, argv, "--limit");
    struct lf_event_filter f = LF_EVENT_FILTER_NONE;
    f.status = arg_value(argc, argv, "--status");
    f.event_type = arg_value(argc, argv, "--type");
    f.source = arg_value(argc, argv, "--source");
    const char *since = arg_value(argc, argv, "--since"), *until = arg_value(argc, argv, "--until");
    int limit = limit_s ? atoi(limit_s) : 1000;
    if (tenant == NULL || limit < 1 || limit > 1000000 ||
        (f.status && !lf_event_status_valid(f.status)) ||
        (since && lf_time_parse(since, &f.since) < 0) ||
        (until && lf_time_parse(until, &f.until) < 0) || !lf_event_filter_any(&f)) {
        fputs("leadflow replay: needs --tenant, one filter, valid times and statuses\n", stderr);
        return 2;
    }
    struct lf_app app;
    struct lf_err err = {0};
    char tenant_id[40];
    if (open_app(&app, &err) < 0) return die("replay", &err);
    int rc = 0;
    if (lf_tenant_lookup(app.db, tenant, tenant_id, &err) != LF_DB_ROW) {
        fprintf(stderr, "leadflow: no tenant '%s'\n", tenant);
        rc = 1;
    } else {
        struct lf_conn *c = lf_db_acquire(app.db, LF_DB_WRITE, &err);
        int n = c ? lf_events_replay(c, tenant_id, &f, limit, lf_now_ms(), &err) : -LF_ESTORE;
        lf_db_release(c);
        if (n < 0)
            rc = die("replay", &err);
        else
            printf("%d events set back to pending\n", n);
    }
    close_app(&app);
    return rc;
}

#define IMPORT_FILE_MAX (256L * 1024 * 1024)

static void import_progress(int done, int total, void *arg)
{
    (void)arg;
    fprintf(stderr, "\rimported %d/%d rows", done, total);
    if (done == total) fputc('\n', stderr);
}

static int cmd_import(int argc, char **argv)
{
    const char *tenant = arg_value(argc, argv, "--tenant");
    const char *path = NULL; /* the one argument that is not an option or its value */
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--tenant") == 0)
            i++;
        else if (path == NULL)
            path = argv[i];
    }
    if (path == NULL) {
        usage(stderr);
        return 2;
    }
    if (tenant == NULL) tenant = "default";
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "leadflow: cannot open %s\n", path);
        return 1;
    }
    struct lf_buf text = {0};
    text.max = IMPORT_FILE_MAX;
    char chunk[65536];
    size_t n;
    int rc = 0;
    while (rc == 0 && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = lf_buf_append(&text, chunk, n);
    fclose(f);
    if (rc < 0) {
        fprintf(stderr, "leadflow: %s is larger than %ld bytes\n", path, IMPORT_FILE_MAX);
        lf_buf_free(&text);
        return 1;
    }
    struct lf_app app;
    struct lf_err err = {0};
    char tenant_id[40];
    json_t *rows = NULL, *unknown = NULL;
    struct lf_import_result res = {0};
    if (open_app(&app, &err) < 0) {
        lf_buf_free(&text);
        return die("import", &err);
    }
    if (lf_tenant_lookup(app.db, tenant, tenant_id, &err) != LF_DB_ROW) {
        fprintf(stderr, "leadflow: no tenant '%s'\n", tenant);
        rc = 1;
    } else if (lf_import_parse_csv(text.data ? text.data : "", text.len, &rows, &unknown, &err) <
               0) {
        rc = die(path, &err);
    } else {
        if (json_array_size(unknown) > 0) {
            char *u = json_dumps(unknown, JSON_COMPACT);
            fprintf(stderr, "leadflow: ignoring unknown columns %s\n", u);
            free(u);
        }
        char cause[64];
        snprintf(cause, sizeof cause, "cli:%lld", (long long)lf_now_ms());
        if (lf_import_rows(app.db, tenant_id, rows, cause, &res, import_progress, NULL, &err) < 0) {
            fputc('\n', stderr); /* end the progress line */
            rc = die("import", &err);
        }
        printf("%zu rows: %d created, %d updated, %d failed\n", json_array_size(rows), res.created,
               res.updated, res.failed);
        size_t i;
        json_t *e;
        json_array_foreach(res.errors, i, e)
        {
            const char *field = json_string_value(json_object_get(e, "field"));
            printf("row %lld: %s%s%s\n", (long long)json_integer_value(json_object_get(e, "row")),
                   field ? field : "", field ? " " : "",
                   json_string_value(json_object_get(e, "reason")));
        }
        if (res.failed) rc = 1;
    }
    json_decref(rows);
    json_decref(unknown);
    json_decref(res.errors);
    lf_buf_free(&text);
    close_app(&app);
    return rc;
}

static int cmd_config(void)
{
    for (const struct lf_config_key *k = lf_config_keys; k->name; k++)
        printf("%-24s %-10s %s\n", k->name, k->def ? k->def : "(unset)", k->help);
    return 0;
}

/* Waits up to ms for cond(app) to become false. */
static void wait_while(struct lf_app *app, int (*cond)(struct lf_app *), int ms)
{
    for (int waited = 0; cond(app) && waited < ms; waited += 10) {
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
}

static int cmd_serve(void)
{
    struct lf_app app;
    struct lf_err err = {0};
    /* Signals are taken by sigwait below; every thread started from here inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (open_app(&app, &err) < 0) return die("serve", &err);
    if (app.cfg.jwt_secret == NULL || strlen(app.cfg.jwt_secret) < 16) {
        fprintf(stderr, "leadflow: serve needs LEADFLOW_JWT_SECRET (at least 16 characters) to "
                        "sign and check API tokens; `make run` makes one in ./var/jwt-secret\n");
        close_app(&app);
        return 1;
    }
    char host[48] = "";
    gethostname(host, sizeof host - 1);
    snprintf(app.node, sizeof app.node, "%s:%d", host, (int)getpid());
    if (lf_tenant_lookup(app.db, "default", NULL, &err) == LF_DB_DONE) {
        int64_t tenants = 0;
        struct lf_conn *c = lf_db_acquire(app.db, LF_DB_READ, &err);
        if (c) lf_db_int(c, &err, &tenants, "SELECT count(*) FROM tenants", NULL);
        lf_db_release(c);
        if (tenants == 0 && lf_seed_tenant(app.db, "default", "Default", NULL, &err) < 0)
            return die("seed", &err);
    }
    if (lf_workers_recover(&app, &err) < 0 || lf_dispatcher_recover(&app, &err) < 0)
        return die("recover", &err);
    raise_fd_limit(); /* the dispatcher keeps up to LEADFLOW_DISPATCH_CONCURRENCY connections */

    lf_auth_init(&app);
    lf_router_init(lf_api_tables);
    if (lf_ingest_start(&app, &err) < 0 || lf_workers_start(&app, &err) < 0 ||
        lf_sched_start(&app, &err) < 0 || lf_dispatcher_start(&app, &err) < 0 ||
        lf_server_start(&app, &err) < 0) {
        int rc = die("serve", &err);
        lf_ingest_free(&app); /* stops what did start, so no thread outlives the store */
        lf_workers_stop(&app);
        lf_sched_stop(&app);
        lf_dispatcher_stop(&app);
        lf_auth_free(&app);
        lf_rules_cache_free();
        close_app(&app);
        return rc;
    }
    bind_port_in_config(&app);
    lf_log_info("leadflow serving", "{s:s, s:i, s:s, s:s, s:i, s:s}", "listen", app.cfg.listen,
                "port", lf_server_port(&app), "db", app.cfg.db, "sync", app.cfg.sync, "workers",
                app.cfg.workers, "version", LF_VERSION);

    int sig = 0;
    sigwait(&set, &sig);
    lf_log_info("draining", "{s:s}", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    /* The order matters: libmicrohttpd must never be stopped with a connection suspended, so
     * the ingest writer is flushed (resuming every waiting request) before the HTTP side stops,
     * and from the drain's start every answer closes its keep-alive connection. */
    lf_server_drain_begin(&app);
    lf_server_quiesce(&app); /* no new connections */
    lf_ingest_stop(&app);    /* commit what is queued; later ingests are answered 503 */
    wait_while(&app, lf_server_active, DRAIN_TIMEOUT_MS); /* answers in flight */
    lf_server_stop(&app);
    lf_ingest_free(&app);
    lf_workers_stop(&app);    /* each worker finishes the batch in hand */
    lf_sched_stop(&app);      /* a running job ends after its batch in hand */
    lf_dispatcher_stop(&app); /* tries in hand get a few seconds; the rest are retried later */
    lf_auth_free(&app);
    lf_rules_cache_free();
    lf_log_info("stopped", NULL);
    close_app(&app);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "serve")) {
        curl_global_init(CURL_GLOBAL_DEFAULT); /* before any thread starts */
        int rc = cmd_serve();
        curl_global_cleanup();
        return rc;
    }
    if (!strcmp(cmd, "migrate")) return cmd_migrate();
    if (!strcmp(cmd, "seed")) return cmd_seed();
    if (!strcmp(cmd, "token")) return cmd_token(argc - 2, argv + 2);
    if (!strcmp(cmd, "tenant")) return cmd_tenant(argc - 2, argv + 2);
    if (!strcmp(cmd, "replay")) return cmd_replay(argc - 2, argv + 2);
    if (!strcmp(cmd, "import")) return cmd_import(argc - 2, argv + 2);
    if (!strcmp(cmd, "config")) return cmd_config();
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("leadflow %s\n", LF_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "leadflow: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
