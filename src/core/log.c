/* Structured logging: one JSON object per line on stderr.
 *
 * THREAD SAFETY: each line is formatted into its own buffer and written with one write(2),
 * which does not interleave with other writers for lines below PIPE_BUF. */
#include "core/log.h"
#include "core/timeutil.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static enum lf_log_level min_level = LF_LOG_INFO;
static const char *const names[] = {"debug", "info", "warn", "error"};

void lf_log_set_level(enum lf_log_level level)
{
    min_level = level;
}

int lf_log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

void lf_log_json(enum lf_log_level level, const char *msg, json_t *fields)
{
    if (level < min_level) return;
    char ts[LF_TIME_BUFSZ];
    json_t *line = json_pack("{s:s, s:s, s:s}", "ts", lf_time_format(lf_now_ms(), ts, sizeof ts),
                             "level", names[level], "msg", msg);
    if (fields) json_object_update(line, fields);
    char *text = json_dumps(line, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(line);
    if (text == NULL) return;
    size_t n = strlen(text);
    text[n] = '\n'; /* replaces the NUL; the length below stays exact */
    ssize_t w = write(STDERR_FILENO, text, n + 1);
    (void)w;
    free(text);
}

void lf_log(enum lf_log_level level, const char *msg, const char *fields_fmt, ...)
{
    if (level < min_level) return;
    json_t *fields = NULL;
    if (fields_fmt) {
        va_list ap;
        va_start(ap, fields_fmt);
        fields = json_vpack_ex(NULL, 0, fields_fmt, ap);
        va_end(ap);
    }
    lf_log_json(level, msg, fields);
    json_decref(fields);
}
