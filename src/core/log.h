/* Structured logging: one JSON object per line on stderr. */
#ifndef LF_LOG_H
#define LF_LOG_H

#include <jansson.h>

enum lf_log_level { LF_LOG_DEBUG, LF_LOG_INFO, LF_LOG_WARN, LF_LOG_ERROR };

/* Sets the lowest level written (default info). */
void lf_log_set_level(enum lf_log_level level);
/* Parses "debug|info|warn|error"; returns -1 when unknown. */
int lf_log_level_parse(const char *s);

/* Writes {"ts","level","msg", …fields} as one line. fields_fmt is a jansson pack format for
 * an object ("{s:s, s:i}") or NULL. Lines from several threads never interleave. */
void lf_log(enum lf_log_level level, const char *msg, const char *fields_fmt, ...);

/* Writes an already built object (borrowed) as one line, adding ts and level. */
void lf_log_json(enum lf_log_level level, const char *msg, json_t *fields);

#define lf_log_info(msg, ...)  lf_log(LF_LOG_INFO, msg, __VA_ARGS__)
#define lf_log_warn(msg, ...)  lf_log(LF_LOG_WARN, msg, __VA_ARGS__)
#define lf_log_error(msg, ...) lf_log(LF_LOG_ERROR, msg, __VA_ARGS__)

#endif
