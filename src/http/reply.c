/* The one place errors become problem documents (RFC 9457), and the other ways to answer. */
#include "http/http.h"
#include "http/server.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct status_map {
    int code;
    int status;
    const char *title;
    const char *slug; /* the last segment of the problem type URI */
};

static const struct status_map statuses[] = {
    {LF_EINVAL, 400, "Bad Request", "invalid-input"},
    {LF_EAUTH, 401, "Unauthorized", "unauthenticated"},
    {LF_EFORBIDDEN, 403, "Forbidden", "forbidden"},
    {LF_ENOTFOUND, 404, "Not Found", "not-found"},
    {LF_EMETHOD, 405, "Method Not Allowed", "method-not-allowed"},
    {LF_ECONFLICT, 409, "Conflict", "conflict"},
    {LF_ECONSTRAINT, 409, "Conflict", "conflict"},
    {LF_ETOOLARGE, 413, "Content Too Large", "too-large"},
    {LF_EMEDIA, 415, "Unsupported Media Type", "unsupported-media-type"},
    {LF_ERATE, 429, "Too Many Requests", "rate-limited"},
    {LF_EBUSY, 503, "Service Unavailable", "busy"},
    {LF_ESTORE, 503, "Service Unavailable", "store-unavailable"},
    {LF_ENOMEM, 503, "Service Unavailable", "out-of-memory"},
    {LF_EIO, 500, "Internal Server Error", "io-error"},
    {LF_EINTERNAL, 500, "Internal Server Error", "internal-error"},
};

static const struct status_map *lookup(int code)
{
    if (code < 0) code = -code;
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
        if (statuses[i].code == code) return &statuses[i];
    return &statuses[sizeof(statuses) / sizeof(statuses[0]) - 1];
}

int lf_http_status(int code)
{
    return lookup(code)->status;
}

static void set_response(struct lf_req *r, int status, const char *ctype, char *data, size_t len)
{
    if (r->response) { /* answered twice: a bug; keep the first answer */
        free(data);
        return;
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, data, data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (ctype) MHD_add_response_header(resp, "Content-Type", ctype);
    MHD_add_response_header(resp, "X-Request-Id", r->request_id);
    if (lf_server_draining(r->app)) MHD_add_response_header(resp, "Connection", "close");
    r->status = status;
    r->response = resp;
}

void lf_reply_json(struct lf_req *r, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(body);
    set_response(r, status, body ? "application/json" : NULL, text, text ? strlen(text) : 0);
}

void lf_reply_text(struct lf_req *r, int status, const char *content_type, const char *text,
                   size_t len)
{
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        lf_reply_error(r, -LF_ENOMEM, NULL);
        return;
    }
    memcpy(copy, text, len);
    set_response(r, status, content_type, copy, len);
}

void lf_reply_error(struct lf_req *r, int code, struct lf_err *err)
{
    if (err && err->code && code == 0) code = err->code;
    const struct status_map *m = lookup(code);
    const char *detail = err && err->msg[0] ? err->msg : lf_strerror(code);
    char type[96];
    snprintf(type, sizeof type, "https://leadflow.dev/problems/%s", m->slug);
    json_t *doc = json_pack("{s:s, s:s, s:i, s:s, s:s}", "type", type, "title", m->title, "status",
                            m->status, "detail", detail, "request_id", r->request_id);
    if (doc && err && err->fields) json_object_set(doc, "errors", err->fields);
    if (doc && err && err->ext) json_object_update(doc, err->ext);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (text == NULL) { /* never fail to answer: a fixed document without the detail */
        char fixed[256];
        snprintf(fixed, sizeof fixed, "{\"type\":\"%s\",\"title\":\"%s\",\"status\":%d}", type,
                 m->title, m->status);
        text = strdup(fixed);
    }
    set_response(r, m->status, "application/problem+json", text, text ? strlen(text) : 0);
    if (err && err->retry_after_s > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", err->retry_after_s);
        MHD_add_response_header(r->response, "Retry-After", ra);
    } else if (m->status == 503) {
        MHD_add_response_header(r->response, "Retry-After", "1");
    }
    if (m->status == 401) MHD_add_response_header(r->response, "WWW-Authenticate", "Bearer");
}
