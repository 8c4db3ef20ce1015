/* The registry of processing stages, in the order they run.
 *
 * resolve and attribute are built; score, intent, route and automate follow them here as
 * they are built. Test builds also carry a stage for exercising the framework. */
#include "engine/stage.h"

#include <pthread.h>
#include <stddef.h>

extern const struct lf_stage lf_stage_resolve;
extern const struct lf_stage lf_stage_attribute;
#ifdef LF_TESTING
extern const struct lf_stage lf_stage_test;
#endif

static const struct lf_stage *const production[] = {
    &lf_stage_resolve,
    &lf_stage_attribute,
    NULL,
};

static struct lf_stage table[sizeof(production) / sizeof(production[0]) + 1];

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static int table_built;

/* Copies the registry into one array, with the test stage first when enabled; built once
 * (under table_lock) and only read afterwards. */
const struct lf_stage *lf_stages(const struct lf_config *cfg)
{
    pthread_mutex_lock(&table_lock);
    if (table_built) {
        pthread_mutex_unlock(&table_lock);
        return table;
    }
    size_t n = 0;
#ifdef LF_TESTING
    if (cfg->test_stages) table[n++] = lf_stage_test; /* first: it probes the framework */
#endif
    for (size_t i = 0; production[i]; i++) table[n++] = *production[i];
    (void)cfg;
    table[n] = (struct lf_stage){0};
    table_built = 1;
    pthread_mutex_unlock(&table_lock);
    return table;
}
