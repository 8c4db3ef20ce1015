/* The dispatcher: one thread that claims due deliveries and sends them with libcurl's multi
 * interface.
 *
 * Loop: claim what is due (as many as there is room for: at most cfg.dispatch_concurrency
 * deliveries are held in memory and in flight), prepare each request (sign webhooks, find
 * Slack's URL, take the next Moco step), hand them to curl (which keeps connections alive and
 * queues past the per-host limit), and record every finished try in one write transaction
 * per round: the attempt row, the delivery's new status and next try, the subscription's
 * failure clock, the integration's status.
 *
 * A claim marks a delivery in_flight with a lease (next_attempt_at = now + LEASE_MS): a
 * process that dies mid-try leaves it in_flight, and it is claimed again when the lease ends
 * (at once on restart: lf_dispatcher_recover). Receivers de-duplicate on webhook-id.
 *
 * Moco deliveries go one at a time (their steps depend on each other's stored ids), at most
 * MOCO_PER_SECOND requests per second, and only while ENABLE_MOCO_SYNC is on (otherwise they
 * wait). */
#include "outbound/outbound.h"
#include "engine/emit.h"
#include "core/crypto.h"
#include "core/jsonx.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LEASE_MS           120000 /* a claim's lease: well past curl's 15 s limit */
#define IDLE_POLL_MS       500    /* look for due deliveries at least this often */
#define CONNECT_MS         5000
#define TOTAL_MS           15000
#define EXCERPT_MAX        2048  /* response bytes kept in the attempt log */
#define MOCO_ANSWER_MAX    65536 /* a Moco answer is read whole (it carries the new id) */
#define MOCO_PER_SECOND    10
#define FAILING_DISABLE_MS (5LL * 86400 * 1000) /* failing this long without success: disabled */
#define STOP_GRACE_MS      5000                 /* on stop, tries in hand get this long to finish */

enum kind { K_WEBHOOK, K_SLACK, K_MOCO };
static const char *const kind_names[] = {"webhook", "slack", "moco"};

/* One delivery in hand. */
struct job {
    char id[40], tenant_id[40], sub_id[40], event_id[40];
    enum kind kind;
    int attempts;     /* this try's number */
    char *target;     /* the row's target: a URL, a Slack channel, a Moco path */
    char *message_id; /* a webhook's id (NULL: the delivery's id) */
    char *url;
    char *shown; /* what the attempt log names instead of the URL (Slack's URL is a secret) */
    char *body;
    struct curl_slist *headers;
    size_t host; /* index into the dispatcher's hosts */
    struct lf_moco_req moco;
    CURL *easy;
    char *answer; /* the response, up to cap bytes */
    size_t answer_len, answer_cap;
    char retry_after[64];
    char curl_error[CURL_ERROR_SIZE];
    int64_t started_at;
    /* the outcome */
    long status;   /* HTTP status, 0 when none */
    char *error;   /* why it failed (owned), NULL on success */
    int no_try;    /* nothing was sent: dead at once (error says why) */
    int moco_done; /* Moco: the operation was already complete, nothing sent */
};

struct dispatcher {
    struct lf_app *app;
    pthread_t thread;
    CURLM *multi;
    _Atomic int stop;
    struct job **jobs; /* in hand, at most cap */
    size_t n, cap;
    CURL **idle; /* easy handles to reuse */
    size_t n_idle;
    int moco_busy;          /* a Moco delivery is in hand */
    int64_t moco_window_at; /* the start of the current second of Moco requests */
    int moco_in_window;
    _Atomic int64_t next_claim_at; /* also set by lf_dispatcher_notify */
    /* Per target host and port: transfers in curl, at most cfg.dispatch_per_host; the rest
     * wait here, outside curl, so their timeouts start only when they are sent. */
    struct host {
        char key[256];
        int active;
    } * hosts;
    size_t n_hosts, cap_hosts;
    struct job **waiting;
    size_t n_waiting;
};

static pthread_mutex_t instance_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dispatcher *instance;

/* ---- the schedule */

static const int64_t schedule_ms[] = {5000, 300000, 1800000, 7200000, 18000000, 36000000, 36000000};

int64_t lf_delivery_delay_ms(int attempts, double jitter)
{
    if (attempts < 1) attempts = 1;
    if (attempts >= LF_DELIVERY_MAX_ATTEMPTS) return -1;
    int64_t base = schedule_ms[attempts - 1];
    return base + (int64_t)((jitter * 0.4 - 0.2) * (double)base);
}

int64_t lf_retry_after_ms(const char *value, int64_t now)
{
    if (value == NULL || *value == '\0') return -1;
    char *end;
    long long s = strtoll(value, &end, 10);
    int64_t ms;
    if (end != value && (*end == '\0' || *end == ' ' || *end == '\r')) {
        if (s < 0) return -1;
        ms = s > 36000 ? 36000000 : (int64_t)s * 1000;
    } else {
        time_t t = curl_getdate(value, NULL);
        if (t < 0) return -1;
        ms = (int64_t)t * 1000 - now;
    }
    if (ms < 1000) ms = 1000;
    if (ms > 36000000) ms = 36000000;
    return ms;
}

static double jitter(void)
{
    uint32_t r;
    lf_random_bytes(&r, sizeof r);
    return (double)r / 4294967296.0;
}

/* ---- requests */

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct job *j = arg;
    size_t n = size * nmemb, room = j->answer_cap - j->answer_len;
    if (room > 0) {
        size_t take = n < room ? n : room;
        memcpy(j->answer + j->answer_len, data, take);
        j->answer_len += take;
        j->answer[j->answer_len] = '\0';
    }
    return n; /* read the rest and drop it: the connection stays reusable */
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    struct job *j = arg;
    size_t n = size * nmemb;
    if (n > 12 && strncasecmp(data, "Retry-After:", 12) == 0) {
        const char *v = data + 12;
        while (*v == ' ' || *v == '\t') v++;
        size_t len = n - (size_t)(v - data);
        while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' ')) len--;
        if (len >= sizeof j->retry_after) len = sizeof j->retry_after - 1;
        memcpy(j->retry_after, v, len);
        j->retry_after[len] = '\0';
    }
    return n;
}

/* Refuses private and loopback addresses at connect time (production mode): a name that
 * resolved to one, or a redirect of DNS after the subscription was checked. */
static curl_socket_t open_public(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
    (void)arg;
    (void)purpose;
    if (lf_addr_private(&a->addr)) return CURL_SOCKET_BAD;
    return socket(a->family, a->socktype, a->protocol);
}

static void job_fail(struct job *j, const char *fmt, const char *detail)
{
    free(j->error);
    size_t n = strlen(fmt) + (detail ? strlen(detail) : 0) + 1;
    j->error = lf_xmalloc(n);
    snprintf(j->error, n, fmt, detail ? detail : "");
}

static void job_free(struct job *j)
{
    if (j == NULL) return;
    free(j->target);
    free(j->message_id);
    free(j->url);
    free(j->shown);
    free(j->body);
    free(j->answer);
    free(j->error);
    free(j->moco.body);
    curl_slist_free_all(j->headers);
    free(j);
}

static struct curl_slist *header(struct curl_slist *h, const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 3;
    char *line = lf_xmalloc(n);
    snprintf(line, n, "%s: %s", name, value);
    h = curl_slist_append(h, line);
    free(line);
    return h;
}

/* A subscription as a claim reads it, once per claim (a fan-out claims many deliveries of few
 * subscriptions). */
struct sub_row {
    char tenant_id[40], id[40];
    int state; /* 1 active, 0 disabled, -1 deleted */
    char *url, *secret, *previous;
};

struct sub_rows {
    struct sub_row *v;
    size_t n, cap;
};

static void sub_rows_free(struct sub_rows *rows)
{
    for (size_t i = 0; i < rows->n; i++) {
        free(rows->v[i].url);
        free(rows->v[i].secret);
        free(rows->v[i].previous);
    }
    free(rows->v);
}

static int sub_row_get(struct lf_conn *c, struct sub_rows *rows, const char *tenant_id,
                       const char *id, int64_t now, const struct sub_row **out)
{
    for (size_t i = 0; i < rows->n; i++)
        if (strcmp(rows->v[i].id, id) == 0 && strcmp(rows->v[i].tenant_id, tenant_id) == 0) {
            *out = &rows->v[i];
            return 0;
        }
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT url, secret, previous_secret,"
                                       " previous_secret_until, is_active FROM subscriptions"
                                       " WHERE tenant_id = ? AND id = ?",
                                       NULL);
    if (st == NULL) return -LF_ESTORE;
    lf_stmt_bind(st, "ss", tenant_id, id);
    int rc = lf_stmt_step(st);
    if (rc < 0) {
        lf_stmt_done(st);
        return rc;
    }
    if (rows->n == rows->cap) {
        rows->cap = rows->cap ? 2 * rows->cap : 8;
        rows->v = lf_xrealloc(rows->v, rows->cap * sizeof(*rows->v));
    }
    struct sub_row *r = &rows->v[rows->n++];
    memset(r, 0, sizeof *r);
    snprintf(r->tenant_id, sizeof r->tenant_id, "%s", tenant_id);
    snprintf(r->id, sizeof r->id, "%s", id);
    r->state = rc == LF_DB_ROW ? (int)(lf_stmt_int(st, 4) != 0) : -1;
    if (rc == LF_DB_ROW) {
        r->url = lf_xstrdup(lf_stmt_text(st, 0));
        r->secret = lf_xstrdup(lf_stmt_text(st, 1));
        if (lf_stmt_text(st, 2) && lf_stmt_int(st, 3) > now)
            r->previous = lf_xstrdup(lf_stmt_text(st, 2));
    }
    lf_stmt_done(st);
    *out = r;
    return 0;
}

/* A webhook: the subscription's URL and secrets as they are now; signed per Standard
 * Webhooks (two signatures while a rotated-out secret is still valid). */
static int prep_webhook(struct lf_conn *c, struct sub_rows *rows, struct job *j, const char *target,
                        const char *message_id, int64_t now)
{
    const char *secret = NULL, *previous = NULL;
    int rc = 0;
    if (*j->sub_id) {
        const struct sub_row *sub;
        rc = sub_row_get(c, rows, j->tenant_id, j->sub_id, now, &sub);
        if (rc < 0) return rc;
        if (sub->state != 1) {
            j->no_try = 1;
            job_fail(j,
                     sub->state == 0 ? "the subscription is disabled%s"
                                     : "the subscription was deleted%s",
                     NULL);
            return 0;
        }
        j->url = lf_xstrdup(sub->url);
        secret = sub->secret;
        previous = sub->previous;
    } else {
        j->url = lf_xstrdup(target); /* an automation action's own URL: unsigned */
    }
    const char *msg = message_id ? message_id : j->id;
    int64_t ts = now / 1000;
    char tsbuf[24];
    snprintf(tsbuf, sizeof tsbuf, "%lld", (long long)ts);
    j->headers = header(j->headers, "webhook-id", msg);
    j->headers = header(j->headers, "webhook-timestamp", tsbuf);
    if (secret) {
        char sig[2 * LF_SIG_BUFSZ + 2], now_sig[LF_SIG_BUFSZ] = "", old_sig[LF_SIG_BUFSZ];
        size_t len = strlen(j->body);
        rc = lf_stdwebhook_sign(secret, msg, ts, j->body, len, now_sig, sizeof now_sig);
        if (rc == 0 && previous &&
            lf_stdwebhook_sign(previous, msg, ts, j->body, len, old_sig, sizeof old_sig) == 0)
            snprintf(sig, sizeof sig, "%s %s", now_sig, old_sig);
        else
            snprintf(sig, sizeof sig, "%s", now_sig);
        if (rc == 0)
            j->headers = header(j->headers, "webhook-signature", sig);
        else {
            j->no_try = 1;
            job_fail(j, "the subscription's secret is unusable%s", NULL);
        }
    }
    return 0;
}

/* Slack: the channel's incoming-webhook URL; the stored message without its channel, a plain
 * text message as one Block Kit section. */
static int prep_slack(struct lf_conn *c, struct lf_app *app, struct job *j, const char *target)
{
    char url[2048];
    int rc = lf_slack_url(c, &app->cfg, j->tenant_id, target, url, sizeof url);
    if (rc == -LF_ESTORE) return rc;
    if (rc < 0) { /* e.g. a URL too long to use: this delivery cannot be sent, others can */
        j->no_try = 1;
        job_fail(j, "the Slack URL is unusable (%s)", lf_strerror(rc));
        return 0;
    }
    j->shown = lf_xstrdup(target && *target ? target : "default"); /* the URL is a secret */
    if (rc == 0) {
        j->no_try = 1;
        job_fail(j, "Slack is not configured (SLACK_WEBHOOK_URL or the slack setting)%s", NULL);
        return 0;
    }
    j->url = lf_xstrdup(url);
    json_t *msg = json_loads(j->body, 0, NULL);
    const char *text = json_string_value(json_object_get(msg, "text"));
    if (msg && json_object_get(msg, "blocks") == NULL && (text == NULL || *text == '\0')) {
        json_decref(msg); /* Slack refuses an empty message: no try would ever succeed */
        j->no_try = 1;
        job_fail(j, "the message is empty%s", NULL);
        return 0;
    }
    if (msg && json_object_get(msg, "blocks") == NULL) {
        json_t *full = lf_slack_text_message(text);
        json_decref(msg);
        msg = full;
    }
    if (msg == NULL) {
        j->no_try = 1;
        job_fail(j, "the stored message is not JSON%s", NULL);
        return 0;
    }
    json_object_del(msg, "channel");
    free(j->body);
    j->body = lf_json_dump(msg);
    json_decref(msg);
    return 0;
}

static const char *moco_base(const struct lf_config *cfg, char *buf, size_t size)
{
    if (cfg->moco_base_url && *cfg->moco_base_url) return cfg->moco_base_url;
    snprintf(buf, size, "https://%s.mocoapp.com/api/v1", cfg->moco_subdomain);
    return buf;
}

/* Moco: the operation's next step (or nothing, when its ids are stored already). */
static int prep_moco(struct lf_conn *c, struct lf_app *app, struct job *j)
{
    struct lf_err err = {0};
    int rc = lf_moco_prepare(c, j->tenant_id, j->body, &j->moco, &err);
    if (rc < 0 && rc != -LF_ESTORE) {
        j->no_try = 1;
        job_fail(j, "%s", err.msg[0] ? err.msg : lf_strerror(rc));
        return 0;
    }
    if (rc < 0) return rc;
    if (rc == 0) {
        j->moco_done = 1;
        return 0;
    }
    char base[300], auth[600];
    const char *b = moco_base(&app->cfg, base, sizeof base);
    size_t n = strlen(b) + strlen(j->moco.path) + 1;
    j->url = lf_xmalloc(n);
    snprintf(j->url, n, "%s%s", b, j->moco.path);
    free(j->body);
    j->body = j->moco.body;
    j->moco.body = NULL;
    snprintf(auth, sizeof auth, "Token token=%s", app->cfg.moco_api_key);
    j->headers = header(j->headers, "Authorization", auth);
    return 0;
}

/* The host table's entry for url's "host:port" (the authority), added when new. */
static size_t host_of(struct dispatcher *d, const char *url)
{
    const char *a = strstr(url, "://");
    a = a ? a + 3 : url;
    size_t n = strcspn(a, "/?#");
    if (n >= sizeof d->hosts[0].key) n = sizeof d->hosts[0].key - 1;
    for (size_t i = 0; i < d->n_hosts; i++)
        if (strncmp(d->hosts[i].key, a, n) == 0 && d->hosts[i].key[n] == '\0') return i;
    if (d->n_hosts == d->cap_hosts) {
        d->cap_hosts = d->cap_hosts ? 2 * d->cap_hosts : 16;
        d->hosts = lf_xrealloc(d->hosts, d->cap_hosts * sizeof(*d->hosts));
    }
    struct host *h = &d->hosts[d->n_hosts];
    memcpy(h->key, a, n);
    h->key[n] = '\0';
    h->active = 0;
    return d->n_hosts++;
}

/* Sends j now when its host has a free slot, else queues it. */
static void launch(struct dispatcher *d, struct job *j)
{
    struct host *h = &d->hosts[j->host];
    if (h->active >= d->app->cfg.dispatch_per_host) {
        d->waiting[d->n_waiting++] = j;
        return;
    }
    h->active++;
    j->started_at = lf_now_ms();
    curl_multi_add_handle(d->multi, j->easy);
}

/* A transfer to host ended: the first job waiting for it goes. */
static void host_freed(struct dispatcher *d, size_t host)
{
    d->hosts[host].active--;
    for (size_t i = 0; i < d->n_waiting; i++)
        if (d->waiting[i]->host == host) {
            struct job *j = d->waiting[i];
            memmove(&d->waiting[i], &d->waiting[i + 1], (d->n_waiting - i - 1) * sizeof(j));
            d->n_waiting--;
            launch(d, j);
            return;
        }
}

/* Hands a prepared job to curl. */
static void start(struct dispatcher *d, struct job *j)
{
    CURL *e = d->n_idle ? d->idle[--d->n_idle] : curl_easy_init();
    j->easy = e;
    j->answer_cap = j->kind == K_MOCO ? MOCO_ANSWER_MAX : EXCERPT_MAX;
    j->answer = lf_xmalloc(j->answer_cap + 1);
    j->answer[0] = '\0';
    j->headers = header(j->headers, "Content-Type", "application/json");
    j->headers = header(j->headers, "User-Agent", "leadflow/" LF_VERSION);
    j->headers = curl_slist_append(j->headers, "Expect:");
    curl_easy_setopt(e, CURLOPT_URL, j->url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(j->body));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->headers);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_MS);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)TOTAL_MS);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, j);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, j->curl_error);
    curl_easy_setopt(e, CURLOPT_PRIVATE, j);
    if (j->kind != K_MOCO && !d->app->cfg.allow_private_targets) {
        curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_public);
        curl_easy_setopt(e, CURLOPT_PROXY, ""); /* a proxy would hide the target's address */
    }
    j->host = host_of(d, j->url);
    launch(d, j);
}

/* ---- claiming */

static int add_job(struct dispatcher *d, struct lf_stmt *st)
{
    struct job *j = lf_xcalloc(1, sizeof *j);
    snprintf(j->id, sizeof j->id, "%s", lf_stmt_text(st, 0));
    snprintf(j->tenant_id, sizeof j->tenant_id, "%s", lf_stmt_text(st, 1));
    const char *kind = lf_stmt_text(st, 2);
    j->kind = strcmp(kind, "slack") == 0 ? K_SLACK : strcmp(kind, "moco") == 0 ? K_MOCO : K_WEBHOOK;
    if (lf_stmt_text(st, 3)) snprintf(j->sub_id, sizeof j->sub_id, "%s", lf_stmt_text(st, 3));
    if (lf_stmt_text(st, 4)) snprintf(j->event_id, sizeof j->event_id, "%s", lf_stmt_text(st, 4));
    j->target = lf_xstrdup(lf_stmt_text(st, 5) ? lf_stmt_text(st, 5) : "");
    j->body = lf_xstrdup(lf_stmt_text(st, 6) ? lf_stmt_text(st, 6) : "{}");
    j->attempts = (int)lf_stmt_int(st, 7);
    j->message_id = lf_stmt_text(st, 8) ? lf_xstrdup(lf_stmt_text(st, 8)) : NULL;
    d->jobs[d->n++] = j;
    return 0;
}

static int claim_some(struct dispatcher *d, struct lf_conn *c, const char *kinds_sql, int limit,
                      int64_t now)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "UPDATE deliveries SET status = 'in_flight', attempts = attempts + 1,"
             " next_attempt_at = ?, updated_at = ? WHERE id IN (SELECT id FROM deliveries"
             " WHERE next_attempt_at <= ? AND %s ORDER BY next_attempt_at LIMIT ?)"
             " RETURNING id, tenant_id, kind, subscription_id, event_id, target, payload,"
             " attempts, message_id",
             kinds_sql);
    struct lf_stmt *st = lf_db_prepare(c, sql, NULL);
    if (st == NULL) return -LF_ESTORE;
    lf_stmt_bind(st, "IIIi", now + LEASE_MS, now, now, limit);
    int rc, got = 0;
    while ((rc = lf_stmt_step(st)) == LF_DB_ROW) {
        add_job(d, st);
        got++;
    }
    lf_stmt_done(st);
    return rc < 0 ? rc : got;
}

static int moco_ready(struct dispatcher *d, int64_t now)
{
    const struct lf_config *cfg = &d->app->cfg;
    if (!cfg->enable_moco_sync || d->moco_busy || cfg->moco_api_key == NULL || !*cfg->moco_api_key)
        return 0;
    if (!(cfg->moco_base_url && *cfg->moco_base_url) &&
        !(cfg->moco_subdomain && *cfg->moco_subdomain))
        return 0;
    if (now - d->moco_window_at >= 1000) {
        d->moco_window_at = now;
        d->moco_in_window = 0;
    }
    return d->moco_in_window < MOCO_PER_SECOND;
}

/* Claims what is due and fits, prepares each, and starts the ones with something to send.
 * Jobs with nothing to send (no_try, moco_done) are finished at once. Returns how many were
 * claimed, or a negative code. */
static int claim(struct dispatcher *d, int64_t now, struct job ***ready, size_t *n_ready)
{
    int room = (int)(d->cap - d->n);
    if (room <= 0) return 0;
    struct lf_err err = {0};
    struct lf_conn *c = lf_db_acquire(d->app->db, LF_DB_WRITE, &err);
    if (c == NULL) return -LF_ESTORE;
    size_t first = d->n;
    struct sub_rows subs = {0};
    int rc = lf_db_begin(c), got = 0;
    if (rc == 0) rc = got = claim_some(d, c, "kind = 'webhook'", room, now);
    if (rc >= 0 && got < room) {
        rc = claim_some(d, c, "kind = 'slack'", room - got, now);
        if (rc > 0) got += rc;
    }
    if (rc >= 0 && got < room && moco_ready(d, now)) {
        rc = claim_some(d, c, "kind = 'moco'", 1, now);
        if (rc > 0) got += rc;
    }
    for (size_t i = first; rc >= 0 && i < d->n; i++) {
        struct job *j = d->jobs[i];
        if (j->kind == K_WEBHOOK)
            rc = prep_webhook(c, &subs, j, j->target, j->message_id, now);
        else if (j->kind == K_SLACK)
            rc = prep_slack(c, d->app, j, j->target);
        else
            rc = prep_moco(c, d->app, j);
        if (rc >= 0 && j->kind == K_MOCO && !j->no_try && !j->moco_done)
            rc = lf_db_run(c, NULL, "UPDATE deliveries SET step = ? WHERE id = ?", "ss",
                           j->moco.step, j->id);
    }
    sub_rows_free(&subs);
    if (rc >= 0) rc = lf_db_commit(c);
    if (rc < 0) {
        lf_db_rollback(c);
        lf_log_error("claiming deliveries failed", "{s:s, s:s}", "error", lf_strerror(rc), "detail",
                     lf_db_errmsg(c));
        for (size_t i = first; i < d->n; i++) job_free(d->jobs[i]);
        d->n = first;
        lf_db_release(c);
        return rc;
    }
    lf_db_release(c);
    for (size_t i = first; i < d->n; i++) {
        struct job *j = d->jobs[i];
        if (j->kind == K_MOCO) d->moco_busy = 1;
        if (j->no_try || j->moco_done) {
            (*ready)[(*n_ready)++] = j;
            continue;
        }
        if (j->kind == K_MOCO) d->moco_in_window++;
        start(d, j);
    }
    return got;
}

/* ---- recording */

static void integration(json_t *seen, const struct job *j, int ok, int64_t now)
{
    char key[64];
    snprintf(key, sizeof key, "%s/%s", j->tenant_id, kind_names[j->kind]);
    json_t *o = json_object_get(seen, key);
    if (o == NULL) {
        o = json_pack("{s:s, s:s}", "tenant", j->tenant_id, "kind", kind_names[j->kind]);
        json_object_set_new(seen, key, o);
    }
    if (ok)
        json_object_set_new(o, "success", json_integer(now));
    else
        json_object_set_new(o, "error", json_string(j->error ? j->error : "failed"));
}

/* 1 the first time in this round a delivery of j's subscription succeeded (its failure clock
 * is cleared once per round). */
static int first_success(json_t *seen, const struct job *j)
{
    char key[90];
    snprintf(key, sizeof key, "ok/%s/%s", j->tenant_id, j->sub_id);
    if (json_object_get(seen, key)) return 0;
    json_object_set_new(seen, key, json_true());
    return 1;
}

/* The subscription failed: starts its failure clock; disables it after five days without a
 * success. Returns 1 when it was disabled. */
static int sub_failed(struct lf_conn *c, const struct job *j, int64_t now)
{
    int rc = lf_db_run(c, NULL,
                       "UPDATE subscriptions SET failing_since = ?, updated_at = ?"
                       " WHERE tenant_id = ? AND id = ? AND failing_since IS NULL",
                       "IIss", now, now, j->tenant_id, j->sub_id);
    int64_t since = now;
    if (rc >= 0)
        rc = lf_db_int(c, NULL, &since,
                       "SELECT failing_since FROM subscriptions WHERE tenant_id = ? AND id = ?",
                       "ss", j->tenant_id, j->sub_id);
    if (rc < 0) return rc;
    if (now - since < FAILING_DISABLE_MS) return 0;
    char reason[120], at[40];
    snprintf(reason, sizeof reason, "failing without a success since %s",
             lf_time_format(since, at, sizeof at));
    return lf_subscription_disable(c, j->tenant_id, j->sub_id, reason, now);
}

/* Records one finished job. *disabled is set when a subscription was disabled. */
static int record(struct lf_conn *c, struct job *j, int64_t now, json_t *seen, int *disabled)
{
    int ok = !j->no_try && !j->error && j->status >= 200 && j->status < 300;
    if (j->moco_done) ok = 1;
    int rc = 0;
    char attempt_id[40];
    if (!j->moco_done) {
        lf_uuid7(attempt_id);
        int64_t took = j->started_at ? now - j->started_at : 0;
        char *excerpt = NULL;
        if (j->answer_len) {
            excerpt = strndup(j->answer, j->answer_len < EXCERPT_MAX ? j->answer_len : EXCERPT_MAX);
            lf_utf8_sanitize(excerpt); /* a cut character or a binary answer stays readable */
        }
        rc = lf_db_run(c, NULL,
                       "INSERT INTO delivery_attempts (id, tenant_id, delivery_id, attempt,"
                       " started_at, duration_ms, status_code, error, response_excerpt, target)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       "sssiIINsss", attempt_id, j->tenant_id, j->id, j->attempts,
                       j->started_at ? j->started_at : now, took < 0 ? 0 : took,
                       j->status > 0 ? (int64_t)j->status : -1, ok ? NULL : j->error, excerpt,
                       j->shown ? j->shown : j->url);
        free(excerpt);
    }
    if (rc < 0) return rc;
    integration(seen, j, ok, now);
    if (j->kind == K_MOCO && ok && !j->moco_done) {
        struct lf_err err = {0};
        rc = lf_moco_store(c, j->tenant_id, &j->moco, j->answer, j->answer_len, now, &err);
        if (rc < 0 && rc != -LF_ESTORE) {
            ok = 0;
            job_fail(j, "%s", err.msg);
            integration(seen, j, 0, now);
            rc = 0;
        }
        if (rc < 0) return rc;
        if (ok) /* the next step (or the finding that all are done) comes at once */
            return lf_db_run(c, NULL,
                             "UPDATE deliveries SET status = 'pending', next_attempt_at = ?,"
                             " last_status = ?, last_error = NULL, updated_at = ? WHERE id = ?",
                             "IiIs", now, (int)j->status, now, j->id);
    }
    if (ok) /* A Moco delivery found complete sent nothing: that claim was no try. */
        rc = lf_db_run(c, NULL,
                       "UPDATE deliveries SET status = 'succeeded', next_attempt_at = NULL,"
                       " attempts = attempts - ?, last_status = COALESCE(?, last_status),"
                       " last_error = NULL, delivered_at = ?, updated_at = ? WHERE id = ?",
                       "iNIIs", j->moco_done ? 1 : 0, j->status > 0 ? (int64_t)j->status : -1, now,
                       now, j->id);
    if (ok && j->kind == K_WEBHOOK && *j->sub_id && rc >= 0 && first_success(seen, j))
        rc = lf_db_run(c, NULL,
                       "UPDATE subscriptions SET failing_since = NULL WHERE tenant_id = ?"
                       " AND id = ? AND failing_since IS NOT NULL",
                       "ss", j->tenant_id, j->sub_id);
    if (ok || rc < 0) return rc;

    int dead = j->no_try;
    if (j->kind == K_WEBHOOK && *j->sub_id && !j->no_try) {
        if (j->status == 410) {
            char reason[300];
            snprintf(reason, sizeof reason, "the endpoint answered 410 Gone (%.200s)", j->url);
            rc = lf_subscription_disable(c, j->tenant_id, j->sub_id, reason, now);
            dead = 1;
        } else {
            rc = sub_failed(c, j, now);
            if (rc > 0) dead = 1;
        }
        if (rc > 0) *disabled = 1;
        if (rc < 0) return rc;
    }
    int64_t delay = dead ? -1 : lf_delivery_delay_ms(j->attempts, jitter());
    if (delay >= 0 && (j->status == 429 || j->status == 503)) {
        int64_t asked = lf_retry_after_ms(j->retry_after, now);
        if (asked >= 0) delay = asked;
    }
    return lf_db_run(c, NULL,
                     "UPDATE deliveries SET status = ?, next_attempt_at = ?, last_status = ?,"
                     " last_error = ?, updated_at = ? WHERE id = ?",
                     "sNNsIs", delay < 0 ? "dead" : "failed", delay < 0 ? -1 : now + delay,
                     j->status > 0 ? (int64_t)j->status : -1, j->error, now, j->id);
}

static int record_integrations(struct lf_conn *c, json_t *seen, int64_t now)
{
    const char *key;
    json_t *o;
    int rc = 0;
    json_object_foreach(seen, key, o)
    {
        if (!json_is_object(o)) continue; /* a subscription's success mark */
        const char *t = json_string_value(json_object_get(o, "tenant"));
        const char *k = json_string_value(json_object_get(o, "kind"));
        json_t *ok = json_object_get(o, "success");
        const char *error = json_string_value(json_object_get(o, "error"));
        rc = lf_db_run(c, NULL,
                       "INSERT INTO integration_status (tenant_id, kind, last_success_at,"
                       " last_error, last_error_at) VALUES (?, ?, ?, ?, ?)"
                       " ON CONFLICT (tenant_id, kind) DO UPDATE SET"
                       " last_success_at = COALESCE(excluded.last_success_at, last_success_at),"
                       " last_error = COALESCE(excluded.last_error, last_error),"
                       " last_error_at = COALESCE(excluded.last_error_at, last_error_at)",
                       "ssNsN", t, k, ok ? json_integer_value(ok) : -1, error, error ? now : -1);
        if (rc < 0) break;
    }
    return rc;
}

/* Records the finished jobs in one transaction and frees them. */
static void record_all(struct dispatcher *d, struct job **done, size_t n)
{
    if (n == 0) return;
    struct lf_err err = {0};
    int64_t now = lf_now_ms();
    json_t *seen = json_object();
    int disabled = 0, rc = -LF_ESTORE;
    struct lf_conn *c = lf_db_acquire(d->app->db, LF_DB_WRITE, &err);
    if (c) rc = lf_db_begin(c);
    for (size_t i = 0; rc >= 0 && i < n; i++) rc = record(c, done[i], now, seen, &disabled);
    if (rc >= 0) rc = record_integrations(c, seen, now);
    if (rc >= 0) rc = lf_db_commit(c);
    if (rc < 0) {
        /* The claims stay in_flight; their leases end and they are tried again. */
        if (c) lf_db_rollback(c);
        lf_log_error("recording deliveries failed", "{s:s, s:s}", "error", lf_strerror(rc),
                     "detail", c ? lf_db_errmsg(c) : err.msg);
    }
    if (c) lf_db_release(c);
    json_decref(seen);
    if (disabled) lf_subs_changed();
    for (size_t i = 0; i < n; i++) {
        if (done[i]->kind == K_MOCO) {
            d->moco_busy = 0;
            atomic_store(&d->next_claim_at, 0); /* its next step is due at once */
        }
        job_free(done[i]);
    }
}

/* Moves finished transfers out of curl into done. */
static void collect(struct dispatcher *d, struct job **done, size_t *n_done)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(d->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        struct job *j = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
        if (m->data.result == CURLE_OK) {
            curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &j->status);
            if (j->status < 200 || j->status >= 300) {
                char what[32];
                snprintf(what, sizeof what, "HTTP %ld", j->status);
                job_fail(j, "%s", what);
            }
        } else {
            job_fail(j, "%s",
                     j->curl_error[0] ? j->curl_error : curl_easy_strerror(m->data.result));
        }
        curl_multi_remove_handle(d->multi, m->easy_handle);
        curl_easy_reset(m->easy_handle);
        d->idle[d->n_idle++] = m->easy_handle;
        j->easy = NULL;
        done[(*n_done)++] = j;
        host_freed(d, j->host);
    }
}

/* Drops finished jobs from the in-hand list. */
static void forget(struct dispatcher *d, struct job **done, size_t n_done)
{
    for (size_t i = 0; i < n_done; i++)
        for (size_t k = 0; k < d->n; k++)
            if (d->jobs[k] == done[i]) {
                d->jobs[k] = d->jobs[--d->n];
                break;
            }
}

/* Results are recorded in rounds, and claims made in batches, so that each write
 * transaction (and its commit) carries many deliveries: a round is written when a quarter of
 * the capacity has finished, when the oldest result has waited RECORD_WAIT_MS, or when
 * nothing else is in flight. Until then finished deliveries stay claimed, which is safe: a
 * crash sends them again, and receivers de-duplicate. */
#define RECORD_WAIT_MS 10

static void *dispatch_main(void *arg)
{
    struct dispatcher *d = arg;
    struct job **done = lf_xcalloc(d->cap, sizeof *done);
    size_t n_done = 0;
    size_t batch = d->cap / 4 ? d->cap / 4 : 1;
    int64_t stop_at = 0, done_since = 0;
    for (;;) {
        int64_t now = lf_now_ms();
        int stopping = atomic_load(&d->stop);
        if (stopping && stop_at == 0) stop_at = now + STOP_GRACE_MS;
        if (stopping && (d->n == n_done || now >= stop_at)) {
            forget(d, done, n_done);
            record_all(d, done, n_done);
            break;
        }
        size_t room = d->cap - d->n;
        if (!stopping && (room >= batch || d->n == 0) && now >= atomic_load(&d->next_claim_at)) {
            size_t before = n_done;
            int got = claim(d, now, &done, &n_done);
            if (n_done > before && before == 0) done_since = now;
            /* A full claim means more is due: claim again as soon as there is room. */
            atomic_store(&d->next_claim_at, got < 0               ? now + 1000
                                            : (size_t)got == room ? now
                                                                  : now + IDLE_POLL_MS);
        }
        int running = 0;
        curl_multi_perform(d->multi, &running);
        size_t before = n_done;
        collect(d, done, &n_done);
        if (n_done > before && before == 0) done_since = now;
        now = lf_now_ms();
        if (n_done > 0 &&
            (n_done >= batch || now - done_since >= RECORD_WAIT_MS || d->n == n_done)) {
            forget(d, done, n_done);
            record_all(d, done, n_done);
            n_done = 0;
            continue; /* room was made: claim at once */
        }
        int64_t wait = stopping ? stop_at - now : atomic_load(&d->next_claim_at) - now;
        if (d->cap - d->n < batch && d->n > 0) wait = IDLE_POLL_MS; /* a transfer wakes us */
        if (n_done > 0 && wait > RECORD_WAIT_MS - (now - done_since))
            wait = RECORD_WAIT_MS - (now - done_since);
        if (wait < 0) wait = 0;
        if (wait > IDLE_POLL_MS) wait = IDLE_POLL_MS;
        curl_multi_poll(d->multi, NULL, 0, (int)wait, NULL);
    }
    /* Whatever is still in hand stays in_flight: its lease ends, or the next start recovers
     * it. */
    for (size_t i = 0; i < d->n; i++) {
        if (d->jobs[i]->easy) curl_multi_remove_handle(d->multi, d->jobs[i]->easy);
        if (d->jobs[i]->easy) curl_easy_cleanup(d->jobs[i]->easy);
        job_free(d->jobs[i]);
    }
    d->n = 0;
    free(done);
    return NULL;
}

/* ---- start, stop, notify */

void lf_dispatcher_notify(void)
{
    pthread_mutex_lock(&instance_lock);
    if (instance) {
        atomic_store(&instance->next_claim_at, 0);
        curl_multi_wakeup(instance->multi);
    }
    pthread_mutex_unlock(&instance_lock);
}

int lf_dispatcher_recover(struct lf_app *app, struct lf_err *err)
{
    if (!app->cfg.dispatcher) return 0; /* the claims are another process's */
    struct lf_conn *c = lf_db_acquire(app->db, LF_DB_WRITE, err);
    if (c == NULL) return -LF_ESTORE;
    int64_t now = lf_now_ms();
    int rc = lf_db_run(c, err,
                       "UPDATE deliveries SET status = 'pending', next_attempt_at = ?,"
                       " updated_at = ? WHERE status = 'in_flight'",
                       "II", now, now);
    int n = rc < 0 ? rc : (int)lf_db_changes(c);
    lf_db_release(c);
    if (n > 0) lf_log_info("deliveries recovered", "{s:i}", "in_flight", n);
    return n;
}

int lf_dispatcher_start(struct lf_app *app, struct lf_err *err)
{
    if (!app->cfg.dispatcher) return 0;
    struct dispatcher *d = lf_xcalloc(1, sizeof *d);
    d->app = app;
    d->cap = (size_t)app->cfg.dispatch_concurrency;
    d->jobs = lf_xcalloc(d->cap, sizeof *d->jobs);
    d->idle = lf_xcalloc(d->cap, sizeof *d->idle);
    d->waiting = lf_xcalloc(d->cap, sizeof *d->waiting);
    d->multi = curl_multi_init();
    curl_multi_setopt(d->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)d->cap);
    curl_multi_setopt(d->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)app->cfg.dispatch_per_host);
    curl_multi_setopt(d->multi, CURLMOPT_MAXCONNECTS, (long)d->cap);
    pthread_mutex_lock(&instance_lock);
    instance = d;
    pthread_mutex_unlock(&instance_lock);
    if (pthread_create(&d->thread, NULL, dispatch_main, d) != 0) {
        pthread_mutex_lock(&instance_lock);
        instance = NULL;
        pthread_mutex_unlock(&instance_lock);
        curl_multi_cleanup(d->multi);
        free(d->jobs);
        free(d->idle);
        free(d->waiting);
        free(d);
        return lf_err_set(err, -LF_EINTERNAL, "cannot start the dispatcher thread");
    }
    return 0;
}

void lf_dispatcher_stop(struct lf_app *app)
{
    (void)app;
    pthread_mutex_lock(&instance_lock);
    struct dispatcher *d = instance;
    if (d) {
        atomic_store(&d->stop, 1);
        curl_multi_wakeup(d->multi);
    }
    pthread_mutex_unlock(&instance_lock);
    if (d == NULL) return;
    pthread_join(d->thread, NULL);
    pthread_mutex_lock(&instance_lock);
    instance = NULL;
    pthread_mutex_unlock(&instance_lock);
    for (size_t i = 0; i < d->n_idle; i++) curl_easy_cleanup(d->idle[i]);
    curl_multi_cleanup(d->multi);
    free(d->jobs);
    free(d->idle);
    free(d->waiting);
    free(d->hosts);
    free(d);
}

/* ---- manual retry and subscriptions */

int lf_delivery_requeue(struct lf_conn *c, const char *tenant_id, const char *delivery_id,
                        int64_t now)
{
    int rc = lf_db_run(c, NULL,
                       "UPDATE deliveries SET status = 'pending', next_attempt_at = ?,"
                       " updated_at = ? WHERE tenant_id = ? AND id = ?"
                       " AND status <> 'in_flight'",
                       "IIss", now, now, tenant_id, delivery_id);
    return rc < 0 ? rc : lf_db_changes(c) > 0;
}

int lf_subscription_disable(struct lf_conn *c, const char *tenant_id, const char *id,
                            const char *reason, int64_t now)
{
    int rc = lf_db_run(c, NULL,
                       "UPDATE subscriptions SET is_active = 0, disabled_reason = ?,"
                       " updated_at = ? WHERE tenant_id = ? AND id = ? AND is_active = 1",
                       "sIss", reason, now, tenant_id, id);
    if (rc < 0 || lf_db_changes(c) == 0) return rc < 0 ? rc : 0;
    lf_subs_changed(); /* its own subscription.disabled must not be relayed to it */
    char cause[80];
    snprintf(cause, sizeof cause, "subscription:%s:%lld", id, (long long)now);
    json_t *data = json_pack("{s:s, s:s}", "subscription_id", id, "reason", reason);
    rc = lf_emit(c, tenant_id, "subscription.disabled", NULL, cause, data, now);
    json_decref(data);
    if (rc >= 0)
        lf_log_warn("subscription disabled", "{s:s, s:s}", "subscription_id", id, "reason", reason);
    return rc < 0 ? rc : 1;
}
