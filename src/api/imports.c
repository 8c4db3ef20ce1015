/* POST /api/v1/leads/bulk: import leads from CSV (text/csv, a header row) or a JSON array. */
#include "api/api.h"
#include "engine/importer.h"
#include "core/crypto.h"
#include "core/log.h"

#include <string.h>
#include <strings.h>

static int type_is(const char *ct, const char *want)
{
    size_t n = ct ? strcspn(ct, ";") : 0;
    while (n > 0 && ct[n - 1] == ' ') n--;
    return ct && n == strlen(want) && strncasecmp(ct, want, n) == 0;
}

void lf_api_import(struct lf_req *r)
{
    struct lf_err err = {0};
    const char *ct = lf_req_header(r, "Content-Type");
    json_t *rows = NULL, *unknown = NULL;
    const char *body = r->body.data ? r->body.data : "";
    if (type_is(ct, "text/csv")) {
        lf_import_parse_csv(body, r->body.len, &rows, &unknown, &err);
    } else if (type_is(ct, "application/json")) {
        json_error_t je;
        rows = json_loadb(body, r->body.len, JSON_REJECT_DUPLICATES, &je);
        if (rows == NULL)
            lf_err_set(&err, -LF_EINVAL, "malformed JSON at line %d, column %d: %s", je.line,
                       je.column, je.text);
        else if (!json_is_array(rows))
            lf_err_set(&err, -LF_EINVAL, "the body must be a JSON array of lead objects");
        else if (json_array_size(rows) > LF_IMPORT_MAX_ROWS)
            lf_err_set(&err, -LF_EINVAL, "at most %d rows are taken at once", LF_IMPORT_MAX_ROWS);
        if (err.code == 0) { /* keys that are not columns, reported once */
            unknown = json_array();
            size_t i;
            json_t *row;
            json_array_foreach(rows, i, row)
            {
                const char *key;
                json_t *v;
                json_object_foreach(row, key, v)
                {
                    int known = 0, listed = 0;
                    for (const char *const *c = lf_import_columns; *c; c++)
                        known |= strcmp(*c, key) == 0;
                    size_t j;
                    json_t *u;
                    json_array_foreach(unknown, j, u) listed |=
                        strcmp(json_string_value(u), key) == 0;
                    if (!known && !listed) json_array_append_new(unknown, json_string(key));
                }
            }
        }
    } else {
        lf_err_set(&err, -LF_EMEDIA, "Content-Type must be text/csv or application/json, not '%s'",
                   ct ? ct : "(none)");
    }
    if (err.code) {
        lf_reply_error(r, err.code, &err);
        goto out;
    }
    struct lf_import_result res = {0};
    char cause[80];
    char op[40]; /* a cause of the server's own: a client's X-Request-Id may repeat */
    lf_uuid7(op);
    snprintf(cause, sizeof cause, "import:%s", op);
    int rc = lf_import_rows(r->app->db, r->auth.tenant_id, rows, cause, &res, NULL, NULL, &err);
    if (rc < 0) {
        lf_reply_error(r, rc, &err);
    } else {
        lf_log_info("leads imported", "{s:i, s:i, s:i, s:s}", "created", res.created, "updated",
                    res.updated, "failed", res.failed, "by", r->auth.sub);
        lf_reply_json(r, 200,
                      json_pack("{s:i, s:i, s:i, s:i, s:O, s:O}", "rows",
                                (int)json_array_size(rows), "created", res.created, "updated",
                                res.updated, "failed", res.failed, "errors", res.errors,
                                "unknown_columns", unknown));
    }
    json_decref(res.errors);
out:
    json_decref(rows);
    json_decref(unknown);
    lf_err_clear(&err);
}
