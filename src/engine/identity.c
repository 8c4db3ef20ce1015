/* Lead identities: which kinds exist, and how each value is normalised.
 * THREAD SAFETY: the free-mail list is parsed once under pthread_once and only read after. */
#include "engine/identity.h"
#include "core/embedded.h"
#include "core/err.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const kind_names[LF_ID_KINDS_] = {
    "email", "portal_id", "waalaxy_id", "lemlist_id", "linkedin_url", "phone", "external_id",
};

const char *lf_identity_kind_name(enum lf_identity_kind kind)
{
    return kind >= 0 && kind < LF_ID_KINDS_ ? kind_names[kind] : "unknown";
}

/* Copies s without leading and trailing white space into out (cap bytes). Returns the length
 * or -1 when it does not fit. */
static int trimmed(const char *in, char *out, size_t cap)
{
    while (*in && isspace((unsigned char)*in)) in++;
    size_t n = strlen(in);
    while (n && isspace((unsigned char)in[n - 1])) n--;
    if (n + 1 > cap) return -1;
    memcpy(out, in, n);
    out[n] = '\0';
    return (int)n;
}

static void lower(char *s)
{
    for (; *s; s++) *s = (char)tolower((unsigned char)*s);
}

static int norm_email(const char *in, char *out)
{
    int n = trimmed(in, out, LF_IDENTITY_MAX);
    if (n < 3 || n > 254) return -1;
    lower(out);
    const char *at = strchr(out, '@');
    if (at == NULL || at == out || strchr(at + 1, '@')) return -1;
    const char *domain = at + 1;
    const char *dot = strrchr(domain, '.');
    if (dot == NULL || dot == domain || dot[1] == '\0' || domain[0] == '.') return -1;
    for (const char *p = out; *p; p++)
        if (isspace((unsigned char)*p) || *p == ',' || *p == ';' || *p == '<' || *p == '>')
            return -1;
    return 0;
}

static int norm_linkedin(const char *in, char *out)
{
    char buf[LF_IDENTITY_MAX];
    if (trimmed(in, buf, sizeof buf) < 1) return -1;
    lower(buf);
    char *p = buf;
    if (strncmp(p, "https://", 8) == 0)
        p += 8;
    else if (strncmp(p, "http://", 7) == 0)
        p += 7;
    if (strncmp(p, "www.", 4) == 0)
        p += 4;
    else if (strncmp(p, "de.", 3) == 0 || strncmp(p, "uk.", 3) == 0)
        p += 3; /* country hosts */
    p[strcspn(p, "?#")] = '\0';
    size_t n = strlen(p);
    while (n && p[n - 1] == '/') p[--n] = '\0';
    if (strncmp(p, "linkedin.com/", 13) != 0 || n <= 13) return -1;
    memcpy(out, p, n + 1);
    return 0;
}

static int norm_phone(const char *in, char *out)
{
    size_t o = 0;
    int digits = 0;
    const char *p = in;
    while (*p && isspace((unsigned char)*p)) p++;
    if (*p == '+')
        out[o++] = *p++;
    else if (p[0] == '0' && p[1] == '0') {
        out[o++] = '+';
        p += 2;
    }
    for (; *p; p++) {
        if (isdigit((unsigned char)*p)) {
            if (o + 2 > LF_IDENTITY_MAX) return -1;
            out[o++] = *p;
            digits++;
        } else if (!strchr(" -./()", *p)) {
            return -1;
        }
    }
    out[o] = '\0';
    return digits >= 6 && digits <= 15 ? 0 : -1;
}

int lf_identity_normalise(enum lf_identity_kind kind, const char *in, char *out)
{
    int rc;
    out[0] = '\0';
    if (in == NULL) return -LF_EINVAL;
    switch (kind) {
    case LF_ID_EMAIL: rc = norm_email(in, out); break;
    case LF_ID_LINKEDIN: rc = norm_linkedin(in, out); break;
    case LF_ID_PHONE: rc = norm_phone(in, out); break;
    default: {
        int n = trimmed(in, out, LF_IDENTITY_MAX);
        rc = n >= 1 && n <= 200 ? 0 : -1;
    }
    }
    if (rc < 0) out[0] = '\0';
    return rc < 0 ? -LF_EINVAL : 0;
}

int lf_identities_from_lead(json_t *lead, struct lf_identity out[LF_ID_KINDS_], json_t *invalid)
{
    int n = 0;
    if (!json_is_object(lead)) return 0;
    for (int k = 0; k < LF_ID_KINDS_; k++) {
        json_t *v = json_object_get(lead, kind_names[k]);
        char num[32];
        const char *text = NULL;
        if (json_is_string(v)) {
            text = json_string_value(v);
        } else if (json_is_integer(v) && k != LF_ID_EMAIL && k != LF_ID_LINKEDIN) {
            snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
            text = num;
        } else if (v == NULL || json_is_null(v) || (json_is_string(v) && !json_string_length(v))) {
            continue;
        }
        if (text && *text == '\0') continue;
        if (text && lf_identity_normalise((enum lf_identity_kind)k, text, out[n].value) == 0) {
            out[n].kind = (enum lf_identity_kind)k;
            n++;
        } else if (invalid) {
            json_array_append_new(invalid, json_pack("{s:s, s:s}", "field", kind_names[k],
                                                     "message", "is not a plausible value"));
        }
    }
    return n;
}

static char **freemail;
static size_t nfreemail;
static pthread_once_t freemail_once = PTHREAD_ONCE_INIT;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void load_freemail(void)
{
    const struct lf_embedded *f = lf_embedded_find(lf_embedded_defaults, "free_mail_domains.json");
    json_t *list = f ? json_loadb(f->data, f->len, 0, NULL) : NULL;
    size_t i;
    json_t *v;
    freemail = calloc(json_array_size(list) + 1, sizeof(char *));
    json_array_foreach(list, i, v)
    {
        if (json_is_string(v) && freemail) freemail[nfreemail++] = strdup(json_string_value(v));
    }
    json_decref(list);
    if (freemail) qsort(freemail, nfreemail, sizeof(char *), cmp_str);
}

int lf_email_is_freemail(const char *email)
{
    pthread_once(&freemail_once, load_freemail);
    const char *at = email ? strrchr(email, '@') : NULL;
    if (at == NULL || freemail == NULL) return 0;
    const char *domain = at + 1;
    return bsearch(&domain, freemail, nfreemail, sizeof(char *), cmp_str) != NULL;
}
