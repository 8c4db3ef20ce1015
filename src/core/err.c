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

int lf_err_set(struct lf_err *err, int code, const char *fmt, ...)
{
    if (err == NULL) return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

int lf_err_field(struct lf_err *err, const char *field, const char *fmt, ...)
{
    if (err == NULL) return -LF_EINVAL;
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (err->fields == NULL) err->fields = json_array();
    json_array_append_new(err->fields, json_pack("{s:s, s:s}", "field", field, "message", text));
    err->code = -LF_EINVAL;
    if (err->msg[0] == '\0') {
        size_t n = strlen(field);
        if (n > sizeof(err->msg) / 2) n = sizeof(err->msg) / 2;
        snprintf(err->msg, sizeof(err->msg), "%.*s: %.*s", (int)n, field, 120, text);
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
