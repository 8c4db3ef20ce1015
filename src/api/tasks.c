/* Tasks. */
#include "api/api.h"

const struct lf_route lf_tasks_routes[] = {
    {NULL, NULL, NULL, 0, 0, 0, 0, 0},
};
