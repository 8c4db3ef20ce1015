/* Error codes shared by every module, and the detail a person reads. */
#ifndef LF_ERR_H
#define LF_ERR_H

#include <stddef.h>
#include <jansson.h>

/* One list yields the codes and their messages. The HTTP status for each code is chosen in
 * src/http/reply.c and nowhere else. */
#define LF_ERRNO_MAP(X)                                                                            \
    X(EINVAL, "invalid input")                                                                     \
    X(EAUTH, "authentication failed")                                                              \
    X(EFORBIDDEN, "not allowed")                                                                   \
    X(ENOTFOUND, "not found")                                                                      \
    X(EMETHOD, "method not allowed")                                                               \
    X(ECONFLICT, "conflict")                                                                       \
    X(ETOOLARGE, "too large")                                                                      \
    X(EMEDIA, "unsupported media type")                                                            \
    X(ERATE, "rate limit exceeded")                                                                \
    X(EBUSY, "busy, try again later")                                                              \
    X(ESTORE, "store unavailable")                                                                 \
    X(ECONSTRAINT, "constraint violated")                                                          \
    X(ENOMEM, "out of memory")                                                                     \
    X(EIO, "input/output error")                                                                   \
    X(EINTERNAL, "internal error")

enum lf_errno {
    LF_OK = 0,
#define LF_ERR_ENUM(name, msg) LF_##name,
    LF_ERR_FIRST_ = 0,
    LF_ERRNO_MAP(LF_ERR_ENUM)
#undef LF_ERR_ENUM
        LF_ERR_LAST_
};
/* Codes are returned negated: a fallible function returns 0 or -LF_Exxx. */

/* Detail for a person: a sentence, and optionally the offending fields. */
struct lf_err {
    int code;          /* negative LF_E… code, 0 when nothing was recorded */
    char msg[256];     /* one sentence for the problem document's detail */
    json_t *fields;    /* array of {"field","message"} or NULL; owned */
    int retry_after_s; /* for ERATE/EBUSY/ESTORE: the Retry-After header, 0 when unset */
    json_t *ext;       /* extension members of the problem document, or NULL; owned */
};

/* The message of a code (negative or positive); never NULL. */
const char *lf_strerror(int code);

/* Records code and a printf-style message in err (which may be NULL) and returns code. */
int lf_err_set(struct lf_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Adds one offending field to err; the message is copied. Returns -LF_EINVAL and sets the
 * code and, when empty, the message, so validators can `return lf_err_field(...)`. */
int lf_err_field(struct lf_err *err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Makes s valid UTF-8 in place: invalid bytes become '?', a sequence cut off at the end is
 * dropped, control characters become spaces. Messages quote input, and JSON needs UTF-8. */
void lf_utf8_sanitize(char *s);

/* The number of characters in the first len bytes of UTF-8 text s (continuation bytes are not
 * counted). */
size_t lf_utf8_chars(const char *s, size_t len);

/* Frees what err owns and makes it empty again. */
void lf_err_clear(struct lf_err *err);

#endif
