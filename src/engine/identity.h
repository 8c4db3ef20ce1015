/* Lead identities: which kinds exist, and how each value is normalised before it is stored
 * or looked up. Pure functions; no store access. */
#ifndef LF_IDENTITY_H
#define LF_IDENTITY_H

#include <jansson.h>
#include <stddef.h>

enum lf_identity_kind {
    LF_ID_EMAIL,
    LF_ID_PORTAL,
    LF_ID_WAALAXY,
    LF_ID_LEMLIST,
    LF_ID_LINKEDIN,
    LF_ID_PHONE,
    LF_ID_EXTERNAL,
    LF_ID_KINDS_
};

#define LF_IDENTITY_MAX 256 /* bytes of a normalised value, with the NUL */

/* The kind's name as stored and as the key in an event's lead object ("email", "portal_id",
 * …). */
const char *lf_identity_kind_name(enum lf_identity_kind kind);

/* Normalises a value of kind into out (LF_IDENTITY_MAX bytes). Returns 0, or -LF_EINVAL when
 * the value is not plausible for its kind (out is then empty):
 *   email         trimmed, lower-cased, one '@', a dotted domain, no spaces
 *   linkedin_url  scheme, "www.", query and fragment dropped; host and path lower-cased; no
 *                 trailing slash: "linkedin.com/in/ada-lovelace"
 *   phone         "+" and digits only ("00" becomes "+"), at least 6 digits
 *   others        trimmed, 1 to 200 characters */
int lf_identity_normalise(enum lf_identity_kind kind, const char *in, char *out);

/* One identity found in an event. */
struct lf_identity {
    enum lf_identity_kind kind;
    char value[LF_IDENTITY_MAX];
};

/* Reads every identity of a lead object (strings, or integers for the id kinds) in kind order,
 * email first. Implausible values are skipped and, when invalid is not NULL, named there as
 * {"field","message"} objects. Returns the number found (at most LF_ID_KINDS_). */
int lf_identities_from_lead(json_t *lead, struct lf_identity out[LF_ID_KINDS_], json_t *invalid);

/* 1 when the email's domain is a free-mail domain (gmail.com, …) from the list compiled in
 * from config/defaults/free_mail_domains.json. */
int lf_email_is_freemail(const char *email);

#endif
