/* The contract between the HTTP server and the API handlers: a request, its auth, and the
 * ways to answer it. Handlers never see libmicrohttpd.
 *
 * A handler is called once the whole body has arrived and the caller is authenticated and
 * allowed. It answers with lf_reply_json / lf_reply_error, or suspends the request
 * (lf_req_suspend) and arranges for lf_req_resume to be called later from any thread; the
 * server then calls r->on_resume, which must answer. */
#ifndef LF_HTTP_H
#define LF_HTTP_H

#include "core/err.h"
#include "core/mem.h"

#include <jansson.h>
#include <stdint.h>

struct lf_app;
struct lf_req;
struct MHD_Connection;
struct MHD_Response;

/* Roles, as bits so a route can name the set it admits. */
enum lf_role {
    LF_ROLE_ADMIN = 1 << 0,
    LF_ROLE_MANAGER = 1 << 1,
    LF_ROLE_SALES = 1 << 2,
    LF_ROLE_VIEWER = 1 << 3,
    LF_ROLE_INGEST = 1 << 4,
};
#define LF_ROLES_READ   (LF_ROLE_ADMIN | LF_ROLE_MANAGER | LF_ROLE_SALES | LF_ROLE_VIEWER)
#define LF_ROLES_WRITE  (LF_ROLE_ADMIN | LF_ROLE_MANAGER | LF_ROLE_SALES)
#define LF_ROLES_MANAGE (LF_ROLE_ADMIN | LF_ROLE_MANAGER)
#define LF_ROLES_ADMIN  (LF_ROLE_ADMIN)

/* The role bit for a name, or 0 when unknown; and back. */
int lf_role_parse(const char *name);
const char *lf_role_name(int role);

/* Who is asking, established by src/http/auth.c. */
struct lf_auth {
    char tenant_id[40]; /* the tenant every query of this request is limited to */
    char tenant_slug[64];
    int role;           /* one LF_ROLE_ bit; LF_ROLE_INGEST for a source signature */
    char sub[128];      /* the token's subject, or "source:<slug>" */
    char source_id[40]; /* set when a source signature authenticated the request */
    char source_slug[64];
    char webhook_id[128]; /* the Standard Webhooks message id, when that mode was used */
};

enum lf_auth_mode {
    LF_AUTH_NONE,   /* public: health, metrics, the OpenAPI document */
    LF_AUTH_TOKEN,  /* a Bearer JWT whose role is in the route's set */
    LF_AUTH_INGEST, /* a source signature, Standard Webhooks headers, or a JWT ingest/admin */
};

typedef void lf_handler_fn(struct lf_req *r);

struct lf_route {
    const char *method;  /* "GET", "POST", … */
    const char *pattern; /* "/api/v1/events/{id}"; a {name} segment matches one segment */
    lf_handler_fn *fn;
    enum lf_auth_mode auth;
    int roles;       /* LF_ROLE_ bits admitted (LF_AUTH_TOKEN) */
    int json_body;   /* 1: the body must be application/json */
    int index;       /* set by the router: the route's place, for metrics */
    size_t body_max; /* the body cap in bytes; 0: the default of 1 MiB */
};

#define LF_BODY_MAX_DEFAULT (1024 * 1024)

#define LF_MAX_PARAMS 4

struct lf_req {
    struct lf_app *app;
    struct MHD_Connection *conn;
    struct lf_arena arena; /* freed when the request completes */
    const char *method;
    const char *path;
    const struct lf_route *route;
    const char *params[LF_MAX_PARAMS]; /* the {…} segments of the path, in order */
    struct lf_buf body;                /* capped at 1 MiB */
    int body_too_large;
    char request_id[64];
    int64_t start_us;
    struct lf_auth auth;
    int authenticated;             /* auth was established from a token in the headers */
    int status;                    /* the status answered, for the access log */
    struct MHD_Response *response; /* queued once the handler answered */
    int suspended;                 /* waiting for lf_req_resume */
    int called;                    /* the handler ran */
    lf_handler_fn *on_resume;      /* what answers after a resume */
    void *pending;                 /* handler state kept across a suspension */
    void (*pending_free)(void *);  /* frees pending when the request completes, or NULL */
};

/* A request header (case-insensitive name), or NULL. Valid for the request's lifetime. */
const char *lf_req_header(struct lf_req *r, const char *name);
/* A query-string argument, or NULL. */
const char *lf_req_query(struct lf_req *r, const char *name);

/* The body parsed as a JSON object. On failure answers nothing, returns NULL and fills err
 * (-LF_EINVAL with the parse position). The caller owns the result. */
json_t *lf_req_json(struct lf_req *r, struct lf_err *err);

/* Answers with body (stolen; NULL sends no body) as application/json. */
void lf_reply_json(struct lf_req *r, int status, json_t *body);
/* Answers with a problem document for code, using err's detail and fields when given. */
void lf_reply_error(struct lf_req *r, int code, struct lf_err *err);
/* Answers with text (copied) of the given content type. */
void lf_reply_text(struct lf_req *r, int status, const char *content_type, const char *text,
                   size_t len);

/* The HTTP status and problem title for an LF_E code. */
int lf_http_status(int code);

/* Suspends the request after the handler returns; fn answers when lf_req_resume is called. */
void lf_req_suspend(struct lf_req *r, lf_handler_fn *fn);
/* Wakes a suspended request; callable from any thread, once. */
void lf_req_resume(struct lf_req *r);

/* Parses ?limit= (default 50, 1..500). Returns 0 or -LF_EINVAL naming "limit" in err. */
int lf_req_limit(struct lf_req *r, int *limit, struct lf_err *err);

/* Parses ?limit= (default 50, 1..500) and ?cursor= (an id) for list endpoints. Returns 0 or
 * -LF_EINVAL with the field in err. */
int lf_req_page(struct lf_req *r, int *limit, const char **cursor, struct lf_err *err);

#endif
