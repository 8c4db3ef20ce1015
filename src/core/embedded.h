/* Files compiled into the binary: the migrations and the default configuration. */
#ifndef LF_EMBEDDED_H
#define LF_EMBEDDED_H

#include <stddef.h>

struct lf_embedded {
    const char *name; /* file name without directories; NULL ends a table */
    const char *data; /* NUL-terminated contents */
    size_t len;       /* bytes, without the NUL */
};

/* The .sql files of src/store/migrations, in name order. */
extern const struct lf_embedded lf_embedded_migrations[];
/* The .json files of config/defaults, in name order. */
extern const struct lf_embedded lf_embedded_defaults[];

/* The .json files of src/api (the OpenAPI document). */
extern const struct lf_embedded lf_embedded_api[];

/* The entry named name in table, or NULL. */
const struct lf_embedded *lf_embedded_find(const struct lf_embedded *table, const char *name);

#endif
