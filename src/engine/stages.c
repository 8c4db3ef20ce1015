/* The registry of processing stages, in the order they run.
 *
 * The lead stages (resolve, attribute, score, intent, route, automate) are added here as
 * they are built. Test builds also carry a stage for exercising the framework. */
#include "engine/stage.h"

#include <stddef.h>

#ifdef LF_TESTING
extern const struct lf_stage lf_stage_test;
#endif

static const struct lf_stage production[] = {
    {NULL, NULL},
};

#ifdef LF_TESTING
static struct lf_stage with_test[sizeof(production) / sizeof(production[0]) + 1];
#endif

const struct lf_stage *lf_stages(const struct lf_config *cfg)
{
#ifdef LF_TESTING
    if (cfg->test_stages) {
        size_t n = 0;
        for (; production[n].name; n++) with_test[n] = production[n];
        with_test[n] = lf_stage_test;
        with_test[n + 1] = (struct lf_stage){NULL, NULL};
        return with_test;
    }
#endif
    (void)cfg;
    return production;
}
