/* The HTTP server: libmicrohttpd with its epoll thread pool, glued to the router.
 *
 * DESIGN / THREAD SAFETY
 * libmicrohttpd runs a pool of threads, each with its own epoll set; a connection stays on
 * one thread, so a struct lf_req is only touched by that thread, except across a suspension:
 * the handler suspends the connection (inside its own call) before it hands work to another
 * thread, and that thread calls lf_req_resume when the work is done; libmicrohttpd's resume
 * goes through its inter-thread channel, which orders the writes before the next call.
 * `active` counts requests between their first byte and completion, for the drain.
 *
 * A request's life: the URI callback makes the lf_req (arena, start time); the first call of
 * the access handler routes it and checks what the headers alone can decide (404/405, body
 * size, content type, the bearer token); the body then arrives in chunks up to 1 MiB; the
 * last call authenticates a signed ingest request and runs the handler; the completion
 * callback writes the access-log line, records metrics and frees everything. */
#include "http/server.h"
#include "http/auth.h"
#include "http/router.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/timeutil.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

struct lf_server {
    struct MHD_Daemon *daemon;
    atomic_int draining; /* set on SIGTERM: answers close their connections */
    atomic_int active;
    int port;
};

const char *lf_req_header(struct lf_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *lf_req_query(struct lf_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

json_t *lf_req_json(struct lf_req *r, struct lf_err *err)
{
    if (r->body.len == 0) {
        lf_err_set(err, -LF_EINVAL, "the request body is empty; a JSON object is expected");
        return NULL;
    }
    json_error_t je;
    json_t *doc = json_loadb(r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &je);
    if (doc == NULL) {
        lf_err_set(err, -LF_EINVAL, "malformed JSON at line %d, column %d: %s", je.line, je.column,
                   je.text);
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        lf_err_set(err, -LF_EINVAL, "the request body must be a JSON object");
        return NULL;
    }
    return doc;
}

int lf_req_limit(struct lf_req *r, int *limit, struct lf_err *err)
{
    const char *l = lf_req_query(r, "limit");
    *limit = 50;
    if (l == NULL) return 0;
    char *end;
    long n = strtol(l, &end, 10);
    if (*l == '\0' || *end != '\0' || n < 1 || n > 500)
        return lf_err_field(err, "limit", "must be a whole number from 1 to 500");
    *limit = (int)n;
    return 0;
}

int lf_req_page(struct lf_req *r, int *limit, const char **cursor, struct lf_err *err)
{
    int rc = lf_req_limit(r, limit, err);
    *cursor = lf_req_query(r, "cursor");
    if (*cursor && !lf_uuid_valid(*cursor))
        return lf_err_field(err, "cursor", "is not a cursor this API gave out");
    return rc;
}

void lf_req_suspend(struct lf_req *r, lf_handler_fn *fn)
{
    r->suspended = 1;
    r->on_resume = fn;
    MHD_suspend_connection(r->conn);
}

void lf_req_resume(struct lf_req *r)
{
    MHD_resume_connection(r->conn);
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct lf_app *app = cls;
    struct lf_req *r = lf_xcalloc(1, sizeof(*r));
    r->app = app;
    r->conn = conn;
    r->start_us = lf_mono_us();
    r->body.max = LF_BODY_MAX_DEFAULT;
    atomic_fetch_add(&app->server->active, 1);
    (void)uri;
    return r;
}

static void set_request_id(struct lf_req *r)
{
    const char *given = lf_req_header(r, "X-Request-Id");
    size_t n = given ? strlen(given) : 0;
    int ok = n > 0 && n < sizeof(r->request_id);
    for (size_t i = 0; ok && i < n; i++)
        if (given[i] < 0x21 || given[i] > 0x7e) ok = 0;
    if (ok)
        memcpy(r->request_id, given, n + 1);
    else
        lf_uuid7(r->request_id);
}

static int has_body_method(const char *m)
{
    return !strcmp(m, "POST") || !strcmp(m, "PUT") || !strcmp(m, "PATCH");
}

static int is_json_type(const char *ct)
{
    if (ct == NULL) return 0;
    size_t n = strcspn(ct, ";");
    while (n > 0 && ct[n - 1] == ' ') n--;
    if (n == 16 && strncasecmp(ct, "application/json", 16) == 0) return 1;
    /* application/<anything>+json */
    return n > 17 && strncasecmp(ct, "application/", 12) == 0 &&
           strncasecmp(ct + n - 5, "+json", 5) == 0;
}

/* What the headers alone decide. Answers (sets r->response) when the request must stop. */
static void first_call(struct lf_req *r, const char *url, const char *method)
{
    struct lf_err err = {0};
    r->method = lf_arena_strdup(&r->arena, method);
    char *path = lf_arena_strdup(&r->arena, url);
    lf_utf8_sanitize(path); /* it is logged; routing uses url itself */
    r->path = path;
    set_request_id(r);
    int status = 404;
    r->route = lf_router_match(method, url, &r->arena, r->params, &status);
    if (r->route == NULL) {
        lf_err_set(&err, status == 404 ? -LF_ENOTFOUND : -LF_EMETHOD, "%s %s: %s", method, url,
                   status == 404 ? "no such resource" : "method not allowed here");
        lf_reply_error(r, err.code, &err);
        if (status == 405) {
            /* RFC 9110 wants Allow; list what the path accepts. */
            char allow[64] = "";
            size_t used = 0;
            static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
            for (int i = 0; i < 5; i++) {
                int st;
                if (lf_router_match(methods[i], url, &r->arena, NULL, &st))
                    used += (size_t)snprintf(allow + used, sizeof allow - used, "%s%s",
                                             used ? ", " : "", methods[i]);
            }
            MHD_add_response_header(r->response, "Allow", allow);
        }
        goto out;
    }
    if (r->route->body_max) r->body.max = r->route->body_max;
    const char *cl = lf_req_header(r, "Content-Length");
    if (cl && strtoull(cl, NULL, 10) > r->body.max) {
        lf_err_set(&err, -LF_ETOOLARGE, "the body is over the limit of %zu bytes", r->body.max);
        lf_reply_error(r, err.code, &err);
        goto out;
    }
    if (r->route->json_body && has_body_method(method) &&
        !is_json_type(lf_req_header(r, "Content-Type"))) {
        const char *ct = lf_req_header(r, "Content-Type");
        lf_err_set(&err, -LF_EMEDIA, "Content-Type must be application/json, not '%s'",
                   ct ? ct : "(none)");
        lf_reply_error(r, err.code, &err);
        goto out;
    }
    /* A bearer token is checked before any body is read; an ingest request without a source
     * signature is a token request too (its signature, if any, needs the body). */
    int token_ingest = r->route->auth == LF_AUTH_INGEST && lf_req_header(r, "Authorization") &&
                       !lf_req_header(r, "X-Source") && !lf_req_query(r, "source") &&
                       !lf_req_header(r, "webhook-id") && !lf_req_header(r, "webhook-signature") &&
                       !lf_req_header(r, "X-Webhook-Signature");
    if (r->route->auth == LF_AUTH_TOKEN || token_ingest) {
        int rc =
            lf_auth_token(r, token_ingest ? LF_ROLE_INGEST | LF_ROLE_ADMIN : r->route->roles, &err);
        if (rc < 0) lf_reply_error(r, rc, &err);
    }
out:
    lf_err_clear(&err);
}

static enum MHD_Result queue(struct lf_req *r)
{
    if (r->response == NULL) lf_reply_error(r, -LF_EINTERNAL, NULL);
    enum MHD_Result rc = MHD_queue_response(r->conn, (unsigned)r->status, r->response);
    MHD_destroy_response(r->response);
    r->response = NULL;
    r->suspended = 0;
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    struct lf_req *r = *con_cls;
    (void)cls;
    (void)version;
    if (r->suspended) { /* woken by lf_req_resume */
        r->suspended = 0;
        r->on_resume(r);
        if (r->suspended) return MHD_YES;
        return queue(r);
    }
    if (r->method == NULL) {
        first_call(r, url, method);
        if (r->response) return queue(r);
        return MHD_YES;
    }
    if (*upload_size) {
        if (!r->body_too_large && lf_buf_append(&r->body, upload_data, *upload_size) < 0)
            r->body_too_large = 1;
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->called) return MHD_YES; /* answered already; nothing more to do */
    struct lf_err err = {0};
    if (r->body_too_large) {
        lf_err_set(&err, -LF_ETOOLARGE, "the body is over the limit of %zu bytes", r->body.max);
        lf_reply_error(r, err.code, &err);
    } else if (r->route->auth == LF_AUTH_INGEST && !r->authenticated &&
               lf_auth_ingest(r, &err) < 0) {
        lf_reply_error(r, err.code, &err);
    } else {
        r->called = 1;
        r->route->fn(r);
    }
    lf_err_clear(&err);
    if (r->suspended) return MHD_YES;
    r->called = 1;
    return queue(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct lf_app *app = cls;
    struct lf_req *r = *con_cls;
    (void)conn;
    if (r == NULL) return;
    double secs = (double)(lf_mono_us() - r->start_us) / 1e6;
    int status = r->status ? r->status : 499; /* closed before an answer */
    lf_metrics_request(r->route ? r->route->index : -1, status, secs);
    if (app->cfg.access_log && r->method) {
        json_t *f = json_pack("{s:s, s:s, s:s, s:i, s:f, s:s}", "request_id", r->request_id,
                              "method", r->method, "path", r->path, "status", status, "ms",
                              secs * 1000.0, "tenant", r->auth.tenant_slug);
        if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
            json_object_set_new(f, "terminated", json_integer(toe));
        lf_log_json(LF_LOG_INFO, "request", f);
        json_decref(f);
    }
    if (r->response) MHD_destroy_response(r->response);
    if (r->pending_free) r->pending_free(r->pending);
    lf_buf_free(&r->body);
    lf_arena_free(&r->arena);
    free(r);
    *con_cls = NULL;
    atomic_fetch_sub(&app->server->active, 1);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n') msg[--n] = '\0';
    lf_log(LF_LOG_WARN, "http", "{s:s}", "detail", msg);
    (void)cls;
}

static int parse_listen(const char *listen, struct sockaddr_in *sa, struct lf_err *err)
{
    char host[128];
    const char *colon = strrchr(listen, ':');
    if (colon == NULL || (size_t)(colon - listen) >= sizeof host)
        return lf_err_set(err, -LF_EINVAL, "LEADFLOW_LISTEN must be host:port, not '%s'", listen);
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return lf_err_set(err, -LF_EINVAL, "LEADFLOW_LISTEN has a bad port: '%s'", listen);
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    const char *h = (host[0] == '\0' || !strcmp(host, "localhost")) ? "127.0.0.1" : host;
    if (inet_pton(AF_INET, h, &sa->sin_addr) != 1)
        return lf_err_set(err, -LF_EINVAL, "LEADFLOW_LISTEN needs an IPv4 address, not '%s'", host);
    return 0;
}

int lf_server_start(struct lf_app *app, struct lf_err *err)
{
    struct sockaddr_in sa;
    int rc = parse_listen(app->cfg.listen, &sa, err);
    if (rc < 0) return rc;
    app->server = lf_xcalloc(1, sizeof(*app->server));
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                     MHD_USE_TURBO;
    /* The logger comes first so it hears about the other options. No address-reuse option:
     * SO_REUSEPORT would let a second server bind the same port and silently share its
     * connections (with another database); the default refuses a port in use. */
    app->server->daemon = MHD_start_daemon(
        flags, ntohs(sa.sin_port), NULL, NULL, on_request, app, MHD_OPTION_EXTERNAL_LOGGER,
        on_mhd_log, app, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)app->cfg.http_threads, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)app->cfg.http_timeout_s, MHD_OPTION_CONNECTION_LIMIT, 10000u,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, app, MHD_OPTION_NOTIFY_COMPLETED, on_completed, app,
        MHD_OPTION_END);
    if (app->server->daemon == NULL) {
        free(app->server);
        app->server = NULL;
        return lf_err_set(err, -LF_EIO, "cannot listen on %s (in use, or not allowed)",
                          app->cfg.listen);
    }
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(app->server->daemon, MHD_DAEMON_INFO_BIND_PORT);
    app->server->port = info ? info->port : ntohs(sa.sin_port);
    return 0;
}

void lf_server_drain_begin(struct lf_app *app)
{
    if (app->server) atomic_store(&app->server->draining, 1);
}

int lf_server_draining(const struct lf_app *app)
{
    return app->server ? atomic_load(&app->server->draining) : 0;
}

void lf_server_quiesce(struct lf_app *app)
{
    if (app->server && app->server->daemon) {
        MHD_socket s = MHD_quiesce_daemon(app->server->daemon);
        if (s != MHD_INVALID_SOCKET) close(s);
    }
}

int lf_server_active(struct lf_app *app)
{
    return app->server ? atomic_load(&app->server->active) : 0;
}

void lf_server_stop(struct lf_app *app)
{
    if (app->server == NULL) return;
    if (app->server->daemon) MHD_stop_daemon(app->server->daemon);
    free(app->server);
    app->server = NULL;
}

int lf_server_port(struct lf_app *app)
{
    return app->server ? app->server->port : 0;
}
