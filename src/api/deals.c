/* Deals: list, get, create, patch, move, close, reopen. */
#include "api/api.h"

const struct lf_route lf_deals_routes[] = {
    {NULL, NULL, NULL, 0, 0, 0, 0, 0},
};
