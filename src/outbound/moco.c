/* Moco (the finance system): the steps of a Moco delivery. An operation needs what comes
 * before it — an offer needs the customer, an invoice the offer — so each try first reads
 * what is stored and sends the first missing step; the answer's id is stored at once
 * ("only where none is"), so a retry after any failure never creates anything twice. Bodies
 * are built from the store at send time: a renamed organization or a changed deal value is
 * sent as it is now. */
#include "outbound/outbound.h"
#include "core/jsonx.h"
#include "core/mem.h"
#include "core/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void copy_text(char *dst, size_t size, struct lf_stmt *st, int col)
{
    const char *v = lf_stmt_text(st, col);
    snprintf(dst, size, "%s", v ? v : "");
}

json_t *lf_moco_company(struct lf_conn *c, const char *tenant_id, const char *org_id,
                        char moco_id[64], int *rc)
{
    moco_id[0] = '\0';
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT name, domain, vat_id, country, moco_id"
                                       " FROM organizations WHERE tenant_id = ? AND id = ?",
                                       NULL);
    if (st == NULL) {
        *rc = -LF_ESTORE;
        return NULL;
    }
    lf_stmt_bind(st, "ss", tenant_id, org_id);
    json_t *body = NULL;
    *rc = lf_stmt_step(st);
    if (*rc == LF_DB_ROW) {
        const char *domain = lf_stmt_text(st, 1);
        char website[300] = "";
        if (domain) snprintf(website, sizeof website, "https://%s", domain);
        body = json_pack("{s:s?, s:s, s:s?, s:s?, s:s?}", "name", lf_stmt_text(st, 0), "type",
                         "customer", "website", *website ? website : NULL, "vat_identifier",
                         lf_stmt_text(st, 2), "country_code", lf_stmt_text(st, 3));
        copy_text(moco_id, 64, st, 4);
    }
    lf_stmt_done(st);
    return body;
}

/* What an offer or invoice is made from. */
struct deal {
    char name[256], currency[8], offer[64], invoice[64];
    int64_t value_cents;
};

static int deal_load(struct lf_conn *c, const char *tenant_id, const char *deal_id, struct deal *d)
{
    struct lf_stmt *st = lf_db_prepare(c,
                                       "SELECT name, value_cents, currency, moco_offer_id,"
                                       " moco_invoice_id FROM deals"
                                       " WHERE tenant_id = ? AND id = ?",
                                       NULL);
    if (st == NULL) return -LF_ESTORE;
    lf_stmt_bind(st, "ss", tenant_id, deal_id);
    int rc = lf_stmt_step(st);
    if (rc == LF_DB_ROW) {
        copy_text(d->name, sizeof d->name, st, 0);
        d->value_cents = lf_stmt_int(st, 1);
        copy_text(d->currency, sizeof d->currency, st, 2);
        copy_text(d->offer, sizeof d->offer, st, 3);
        copy_text(d->invoice, sizeof d->invoice, st, 4);
        if (!*d->currency) snprintf(d->currency, sizeof d->currency, "EUR");
    }
    lf_stmt_done(st);
    return rc;
}

/* Moco ids are numbers; stored ids are text. A numeric id goes out as a number. */
static json_t *moco_ref(const char *id)
{
    char *end;
    long long n = strtoll(id, &end, 10);
    return *id && *end == '\0' ? json_integer(n) : json_string(id);
}

/* The offer or invoice body for deal d of customer `customer`. */
static json_t *document(const struct deal *d, const char *company, const char *customer,
                        const char *offer, int64_t now)
{
    char price[40], today[40], due[40];
    snprintf(price, sizeof price, "%lld.%02lld", (long long)(d->value_cents / 100),
             (long long)(d->value_cents % 100));
    lf_time_format(now, today, sizeof today);
    lf_time_format(now + 30LL * 86400 * 1000, due, sizeof due);
    today[10] = due[10] = '\0'; /* dates: YYYY-MM-DD */
    json_t *body =
        json_pack("{s:o, s:s, s:s, s:s, s:s, s:s, s:f, s:[{s:s, s:s, s:i, s:s, s:s}]}",
                  offer ? "customer_id" : "company_id", moco_ref(customer), "recipient_address",
                  company, "title", d->name, "currency", d->currency, "date", today, "due_date",
                  due, "tax", 0.0, "items", "type", "item", "title", d->name, "quantity", 1,
                  "unit_price", price, "unit", "flat");
    if (offer) json_object_set_new(body, "offer_id", moco_ref(offer));
    return body;
}

int lf_moco_prepare(struct lf_conn *c, const char *tenant_id, const char *payload,
                    struct lf_moco_req *req, struct lf_err *err)
{
    memset(req, 0, sizeof *req);
    json_t *p = json_loads(payload, 0, NULL);
    const char *op = json_string_value(json_object_get(p, "operation"));
    const char *org = json_string_value(json_object_get(p, "organization_id"));
    const char *deal_id = json_string_value(json_object_get(p, "deal_id"));
    int rc;
    if (op == NULL || org == NULL ||
        (strcmp(op, "create_customer") != 0 && strcmp(op, "create_offer") != 0 &&
         strcmp(op, "create_invoice") != 0)) {
        rc = lf_err_set(err, -LF_EINVAL, "the delivery names no Moco operation and organization");
        goto out;
    }
    snprintf(req->org_id, sizeof req->org_id, "%s", org);
    if (deal_id) snprintf(req->deal_id, sizeof req->deal_id, "%s", deal_id);
    char customer[64];
    json_t *company = lf_moco_company(c, tenant_id, org, customer, &rc);
    if (rc < 0) goto out;
    if (company == NULL) {
        rc = lf_err_set(err, -LF_ENOTFOUND, "the organization %s no longer exists", org);
        goto out;
    }
    if (!*customer) {
        snprintf(req->step, sizeof req->step, "customer");
        snprintf(req->path, sizeof req->path, "/companies");
        req->body = lf_json_dump(company);
        json_decref(company);
        rc = 1;
        goto out;
    }
    char name[256];
    snprintf(name, sizeof name, "%s", json_string_value(json_object_get(company, "name")) ?: "");
    json_decref(company);
    if (strcmp(op, "create_customer") == 0) {
        rc = 0;
        goto out;
    }
    if (!*req->deal_id) {
        rc = lf_err_set(err, -LF_EINVAL, "%s needs a deal", op);
        goto out;
    }
    struct deal d = {0};
    rc = deal_load(c, tenant_id, req->deal_id, &d);
    if (rc < 0) goto out;
    if (rc == LF_DB_DONE) {
        rc = lf_err_set(err, -LF_ENOTFOUND, "the deal %s no longer exists", req->deal_id);
        goto out;
    }
    int64_t now = lf_now_ms();
    if (!*d.offer) {
        snprintf(req->step, sizeof req->step, "offer");
        snprintf(req->path, sizeof req->path, "/offers");
        json_t *body = document(&d, name, customer, NULL, now);
        req->body = lf_json_dump(body);
        json_decref(body);
        rc = 1;
    } else if (strcmp(op, "create_invoice") == 0 && !*d.invoice) {
        snprintf(req->step, sizeof req->step, "invoice");
        snprintf(req->path, sizeof req->path, "/invoices");
        json_t *body = document(&d, name, customer, d.offer, now);
        req->body = lf_json_dump(body);
        json_decref(body);
        rc = 1;
    } else {
        rc = 0;
    }
out:
    json_decref(p);
    return rc;
}

int lf_moco_store(struct lf_conn *c, const char *tenant_id, const struct lf_moco_req *req,
                  const char *answer, size_t len, int64_t now, struct lf_err *err)
{
    json_t *a = answer ? json_loadb(answer, len, 0, NULL) : NULL;
    json_t *idv = json_object_get(a, "id");
    char id[64] = "";
    if (json_is_integer(idv))
        snprintf(id, sizeof id, "%lld", (long long)json_integer_value(idv));
    else if (json_is_string(idv) && json_string_length(idv) < sizeof id)
        snprintf(id, sizeof id, "%s", json_string_value(idv));
    json_decref(a);
    if (!*id) return lf_err_set(err, -LF_EINVAL, "Moco's answer carries no id");
    if (strcmp(req->step, "customer") == 0)
        return lf_db_run(c, NULL,
                         "UPDATE organizations SET moco_id = ?, updated_at = ?"
                         " WHERE tenant_id = ? AND id = ? AND moco_id IS NULL",
                         "sIss", id, now, tenant_id, req->org_id);
    if (strcmp(req->step, "offer") == 0)
        return lf_db_run(c, NULL,
                         "UPDATE deals SET moco_offer_id = ?, updated_at = ?"
                         " WHERE tenant_id = ? AND id = ? AND moco_offer_id IS NULL",
                         "sIss", id, now, tenant_id, req->deal_id);
    return lf_db_run(c, NULL,
                     "UPDATE deals SET moco_invoice_id = ?, updated_at = ?"
                     " WHERE tenant_id = ? AND id = ? AND moco_invoice_id IS NULL",
                     "sIss", id, now, tenant_id, req->deal_id);
}
