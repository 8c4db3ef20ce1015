/* Bulk import of leads: CSV (a header row, parsed with libcsv) or a JSON array of objects,
 * upserted by identity. Shared by POST /api/v1/leads/bulk and `leadflow import`. */
#ifndef LF_IMPORTER_H
#define LF_IMPORTER_H

#include "store/db.h"

#include <jansson.h>
#include <stddef.h>

#define LF_IMPORT_MAX_ROWS 50000

/* The columns an import understands, NULL-terminated. */
extern const char *const lf_import_columns[];

/* Parses CSV text into a JSON array of row objects (header names, trimmed and lower-cased, as
 * keys; empty cells left out). A blank record stays in the array as JSON null, so the n-th
 * element is the n-th record after the header: that is the row number errors name. Checks the
 * encoding (UTF-8; a BOM is skipped) and the quoting; on a malformed file returns -LF_EINVAL with
 * the line in err and *rows NULL. Sets *unknown (owned by the caller) to the header names that are
 * not import columns. */
int lf_import_parse_csv(const char *text, size_t len, json_t **rows, json_t **unknown,
                        struct lf_err *err);

struct lf_import_result {
    int created, updated, failed;
    json_t *errors; /* [{"row", "reason", "field"?}], owned */
};

/* Upserts rows: a row's identities find its lead (created when none; a row whose identities
 * belong to two leads fails); given profile values replace stored ones; the organization is
 * linked. Each row is all or nothing; rows are committed in chunks so the writer is never held
 * long. progress (may be NULL) hears after each chunk. Returns 0 or a store error (rows
 * committed before it stay). */
int lf_import_rows(struct lf_db *db, const char *tenant_id, json_t *rows, const char *cause,
                   struct lf_import_result *res, void (*progress)(int done, int total, void *arg),
                   void *arg, struct lf_err *err);

#endif
