/* Bulk import of leads: CSV or a JSON array, upserted by identity. */
#include "engine/importer.h"
#include "engine/emit.h"
#include "engine/lead.h"
#include "core/timeutil.h"

#include <csv.h>
#include <stdio.h>
#include <string.h>

#define CHUNK     500
#define FIELD_MAX 200

const char *const lf_import_columns[] = {
    "email",  "first_name",   "last_name", "company",    "job_title",  "phone",       "country",
    "region", "linkedin_url", "portal_id", "waalaxy_id", "lemlist_id", "external_id", NULL,
};

/* Returns the offset of the first byte that is not valid UTF-8, or len when all are. */
static size_t utf8_invalid_at(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (n == 0 || i + n > len) return i;
        for (size_t k = 1; k < n; k++)
            if ((s[i + k] & 0xc0) != 0x80) return i;
        if (n == 2 && c < 0xc2) return i; /* overlong */
        i += n;
    }
    return len;
}

static int line_of(const char *text, size_t pos)
{
    int line = 1;
    for (size_t i = 0; i < pos; i++) line += text[i] == '\n';
    return line;
}

struct csv_state {
    json_t *header; /* array of names */
    json_t *rows;
    json_t *row; /* being built */
    int col;
    int too_many;
    int dup_header;
};

static void on_field(void *data, size_t len, void *arg)
{
    struct csv_state *s = arg;
    char *text = data ? (char *)data : "";
    while (len && (text[0] == ' ' || text[0] == '\t')) text++, len--;
    while (len && (text[len - 1] == ' ' || text[len - 1] == '\t' || text[len - 1] == '\r')) len--;
    if (s->header == NULL) s->header = json_array();
    if (s->rows == NULL) { /* still the header row */
        char name[64];
        size_t n = len < sizeof name - 1 ? len : sizeof name - 1;
        for (size_t i = 0; i < n; i++)
            name[i] = (char)(text[i] >= 'A' && text[i] <= 'Z' ? text[i] + 32 : text[i]);
        name[n] = '\0';
        size_t i;
        json_t *h;
        json_array_foreach(s->header, i, h)
        {
            if (name[0] && strcmp(json_string_value(h), name) == 0) s->dup_header = 1;
        }
        json_array_append_new(s->header, json_string(name));
        return;
    }
    if (s->row == NULL) s->row = json_object();
    const char *key = json_string_value(json_array_get(s->header, (size_t)s->col));
    s->col++;
    if (key && *key && len > 0) json_object_set_new(s->row, key, json_stringn(text, len));
}

static void on_row(int c, void *arg)
{
    struct csv_state *s = arg;
    (void)c;
    if (s->rows == NULL) {
        s->rows = json_array(); /* the header row ended */
    } else if (json_array_size(s->rows) >= LF_IMPORT_MAX_ROWS) {
        s->too_many = 1;
    } else { /* a blank record keeps its place (as null) so row numbers are record numbers */
        int blank = s->row == NULL || json_object_size(s->row) == 0;
        json_array_append_new(s->rows, blank ? json_null() : json_incref(s->row));
    }
    json_decref(s->row);
    s->row = NULL;
    s->col = 0;
}

int lf_import_parse_csv(const char *text, size_t len, json_t **rows, json_t **unknown,
                        struct lf_err *err)
{
    *rows = NULL;
    *unknown = NULL;
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) text += 3, len -= 3;
    size_t bad = utf8_invalid_at((const unsigned char *)text, len);
    if (bad < len)
        return lf_err_set(err, -LF_EINVAL,
                          "the file is not UTF-8: line %d, byte %zu has an invalid sequence",
                          line_of(text, bad), bad + 1);
    struct csv_parser p;
    struct csv_state s = {0};
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0)
        return lf_err_set(err, -LF_ENOMEM, "cannot start the CSV parser");
    size_t done = csv_parse(&p, text, len, on_field, on_row, &s);
    int rc = 0;
    if (done < len || csv_fini(&p, on_field, on_row, &s) != 0)
        rc = lf_err_set(err, -LF_EINVAL, "malformed CSV at line %d: %s (check the quoting)",
                        line_of(text, done < len ? done : len), csv_strerror(csv_error(&p)));
    csv_free(&p);
    json_decref(s.row);
    if (rc == 0 && (s.header == NULL || json_array_size(s.header) == 0))
        rc = lf_err_set(err, -LF_EINVAL, "the file is empty; a header row is expected");
    if (rc == 0 && s.dup_header)
        rc = lf_err_set(err, -LF_EINVAL, "the header row names a column twice");
    if (rc == 0 && s.too_many)
        rc = lf_err_set(err, -LF_EINVAL, "the file has more than %d rows; split it",
                        LF_IMPORT_MAX_ROWS);
    if (rc < 0) {
        json_decref(s.header);
        json_decref(s.rows);
        return rc;
    }
    json_t *unk = json_array();
    size_t i;
    json_t *h;
    json_array_foreach(s.header, i, h)
    {
        int known = 0;
        for (const char *const *c = lf_import_columns; *c; c++)
            known |= strcmp(*c, json_string_value(h)) == 0;
        if (!known) json_array_append(unk, h);
    }
    json_decref(s.header);
    *rows = s.rows ? s.rows : json_array();
    *unknown = unk;
    return 0;
}

static void row_error(struct lf_import_result *res, int row, const char *field, const char *reason)
{
    json_t *e = json_pack("{s:i, s:s}", "row", row, "reason", reason);
    if (field) json_object_set_new(e, "field", json_string(field));
    json_array_append_new(res->errors, e);
    res->failed++;
}

/* One row inside its savepoint. Returns 1 created, 2 updated, 3 skipped (blank), 0 failed
 * (recorded), or a negative store error. */
static int import_row(struct lf_conn *c, const char *tenant_id, json_t *row, int rownum,
                      const char *cause, int64_t now, struct lf_import_result *res)
{
    char reason[200];
    if (json_is_null(row)) return 3; /* a blank CSV record: nothing to do */
    if (!json_is_object(row)) {
        row_error(res, rownum, NULL, "is not an object");
        return 0;
    }
    for (const char *const *col = lf_import_columns; *col; col++) { /* others are ignored */
        json_t *v = json_object_get(row, *col);
        if (v == NULL || json_is_null(v) || json_is_integer(v)) continue;
        if (!json_is_string(v) || json_string_length(v) > FIELD_MAX) {
            snprintf(reason, sizeof reason, "must be text of at most %d characters", FIELD_MAX);
            row_error(res, rownum, *col, reason);
            return 0;
        }
    }
    struct lf_identity ids[LF_ID_KINDS_];
    json_t *invalid = json_array();
    int n = lf_identities_from_lead(row, ids, invalid);
    if (json_array_size(invalid) > 0) {
        const char *f = json_string_value(json_object_get(json_array_get(invalid, 0), "field"));
        row_error(res, rownum, f, "is not a plausible value");
        json_decref(invalid);
        return 0;
    }
    json_decref(invalid);
    if (n == 0) {
        row_error(res, rownum, NULL, "has no identity (email, portal_id, linkedin_url, …)");
        return 0;
    }
    const char *email = ids[0].kind == LF_ID_EMAIL ? ids[0].value : NULL;
    int sup = email ? lf_lead_suppressed(c, tenant_id, email) : 0;
    if (sup < 0) return sup;
    if (sup) {
        row_error(res, rownum, "email", "was erased and may not be imported again");
        return 0;
    }
    char found[LF_LEAD_MATCH_MAX][40], id[40];
    int m = lf_lead_find(c, tenant_id, ids, n, found, NULL);
    if (m < 0) return m;
    if (m > 1) {
        snprintf(reason, sizeof reason,
                 "its identities belong to two leads (%s, %s); merge them first", found[0],
                 found[1]);
        row_error(res, rownum, NULL, reason);
        return 0;
    }
    int rc = 0;
    if (m == 0)
        rc = lf_lead_create(c, tenant_id, now, id);
    else
        memcpy(id, found[0], sizeof id);
    if (rc == 0) rc = lf_lead_attach(c, tenant_id, id, ids, n, now);
    if (rc >= 0) rc = lf_lead_fill(c, tenant_id, id, row, 1, now);
    if (rc >= 0)
        rc = lf_lead_link_org(c, tenant_id, id, json_string_value(json_object_get(row, "company")),
                              email, now);
    if (rc >= 0 && m == 0) {
        json_t *data = json_pack("{s:o, s:s}", "email", email ? json_string(email) : json_null(),
                                 "source", "import");
        char cause_row[120];
        snprintf(cause_row, sizeof cause_row, "%s:%d", cause, rownum);
        rc = lf_emit(c, tenant_id, "lead.created", id, cause_row, data, now);
        json_decref(data);
    }
    if (rc == -LF_ECONFLICT) {
        row_error(res, rownum, NULL, "an identity belongs to another lead");
        return 0;
    }
    return rc < 0 ? rc : (m == 0 ? 1 : 2);
}

int lf_import_rows(struct lf_db *db, const char *tenant_id, json_t *rows, const char *cause,
                   struct lf_import_result *res, void (*progress)(int done, int total, void *arg),
                   void *arg, struct lf_err *err)
{
    int total = (int)json_array_size(rows);
    if (res->errors == NULL) res->errors = json_array();
    for (int start = 0; start < total; start += CHUNK) {
        struct lf_conn *c = lf_db_acquire(db, LF_DB_WRITE, err);
        if (c == NULL) return -LF_ESTORE;
        int64_t now = lf_now_ms();
        int rc = lf_db_begin(c);
        int created = 0, updated = 0;
        int failed_before = res->failed;
        size_t errors_before = json_array_size(res->errors);
        for (int i = start; rc >= 0 && i < total && i < start + CHUNK; i++) {
            rc = lf_db_savepoint(c, "row");
            int out = rc < 0 ? rc
                             : import_row(c, tenant_id, json_array_get(rows, (size_t)i), i + 1,
                                          cause, now, res);
            if (out == 0) {
                rc = lf_db_savepoint_rollback(c, "row");
                if (rc == 0) rc = lf_db_savepoint_release(c, "row");
            } else if (out > 0) {
                rc = lf_db_savepoint_release(c, "row");
                if (out == 1)
                    created++;
                else if (out == 2)
                    updated++;
            } else {
                rc = out;
            }
        }
        if (rc >= 0)
            rc = lf_db_commit(c);
        else
            lf_db_rollback(c);
        lf_db_release(c);
        if (rc < 0) { /* this chunk is not stored: its rows count as neither */
            res->failed = failed_before;
            while (json_array_size(res->errors) > errors_before)
                json_array_remove(res->errors, json_array_size(res->errors) - 1);
            return lf_err_set(err, rc, "the store failed at row %d; rows before it are imported",
                              start + 1);
        }
        res->created += created;
        res->updated += updated;
        if (progress) progress(start + CHUNK < total ? start + CHUNK : total, total, arg);
    }
    return 0;
}
