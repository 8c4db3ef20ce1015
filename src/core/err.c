/* Error codes, their messages, and the per-call error detail. */
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const messages[] = {[0] = "ok",
#define LF_ERR_MSG(name, msg) [LF_##name] = msg,
                                       LF_ERRNO_MAP(LF_ERR_MSG)
#undef LF_ERR_MSG
};

const char *lf_strerror(int code)
{
    if (code < 0) code = -code;
    if (code >= LF_ERR_LAST_ || messages[code] == NULL) return "unknown error";
    return messages[code];
}

size_t lf_utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

void lf_utf8_sanitize(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        unsigned char c = *p;
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        size_t k = 1;
        while (n > 1 && k < n && (p[k] & 0xc0) == 0x80) k++;
        if (n == 0 || k < n || (n == 2 && c < 0xc2)) { /* a bad or cut-off sequence */
            if (p[1] == '\0' && n > 1) {               /* cut off at the end: drop it */
                *p = '\0';
                break;
            }
            *p++ = '?';
            continue;
        }
        if (c < 0x20 && c != '\t') *p = ' '; /* control characters read badly in a log */
        p += n;
    }
}

int lf_err_set(struct lf_err *err, int code, const char *fmt, ...)
{
    if (err == NULL) return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    lf_utf8_sanitize(err->msg); /* input quoted in a message may be any bytes */
    return code;
}

int lf_err_field(struct lf_err *err, const char *field, const char *fmt, ...)
{
    if (err == NULL) return -LF_EINVAL;
    char text[256], name[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    snprintf(name, sizeof name, "%s", field);
    lf_utf8_sanitize(text);
    lf_utf8_sanitize(name);
    if (err->fields == NULL) err->fields = json_array();
    json_array_append_new(err->fields, json_pack("{s:s, s:s}", "field", name, "message", text));
    err->code = -LF_EINVAL;
    if (err->msg[0] == '\0') {
        snprintf(err->msg, sizeof(err->msg), "%s: %.120s", name, text);
        lf_utf8_sanitize(err->msg);
    }
    return -LF_EINVAL;
}

void lf_err_clear(struct lf_err *err)
{
    if (err == NULL) return;
    json_decref(err->fields);
    json_decref(err->ext);
    memset(err, 0, sizeof(*err));
}
