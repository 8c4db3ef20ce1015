/* Team members (the owners deals are assigned to) and reassignment. */
#include "api/api.h"

const struct lf_route lf_team_routes[] = {
    {NULL, NULL, NULL, 0, 0, 0, 0, 0},
};
