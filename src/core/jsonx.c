/* JSON helpers shared by the API and the engine. */
#include "core/jsonx.h"
#include "core/timeutil.h"

json_t *lf_json_text(const char *s)
{
    return s ? json_string(s) : json_null();
}

json_t *lf_json_time(int64_t ms, int is_null)
{
    if (is_null || ms < 0) return json_null();
    char buf[LF_TIME_BUFSZ];
    return json_string(lf_time_format(ms, buf, sizeof buf));
}

json_t *lf_json_parse(const char *text)
{
    if (text == NULL) return json_null();
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    return v ? v : json_null();
}

char *lf_json_dump(const json_t *v)
{
    return v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}
