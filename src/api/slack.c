/* Placeholder: filled in by issue 7's work. */
#include "api/api.h"

const struct lf_route lf_slack_routes[] = {
    {NULL, NULL, NULL, 0, 0, 0, 0, 0},
};
