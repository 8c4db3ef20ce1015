/* JSON helpers shared by the API and the engine (jansson does the parsing). */
#ifndef LF_JSONX_H
#define LF_JSONX_H

#include <jansson.h>
#include <stdint.h>

/* A new string, or JSON null for NULL. */
json_t *lf_json_text(const char *s);
/* An RFC 3339 string for epoch ms, or JSON null when ms < 0 or is_null. */
json_t *lf_json_time(int64_t ms, int is_null);
/* Parses stored JSON text; JSON null for NULL or text that does not parse. */
json_t *lf_json_parse(const char *text);
/* Compact text of v that the caller frees, or NULL for NULL. */
char *lf_json_dump(const json_t *v);

#endif
