/* Stage 2, attribute: last touch is the event with the latest occurred_at (not the latest to
 * arrive); first touch the earliest seen, so a late event older than the recorded first touch
 * takes its place; last_activity_at is the latest occurred_at. The touch's source is the
 * event's utm source, or the event's own source without one. One statement: every CASE reads
 * the row as it was before the update. */
#include "engine/stage.h"

static int run(struct lf_stage_ctx *ctx, struct lf_event *ev, struct lf_err *err)
{
    if (ev->lead_id == NULL) return 0;
    const char *source = ev->utm_source ? ev->utm_source : ev->source;
    const char *campaign = ev->utm_campaign;
    int64_t at = ev->occurred_at;
    int rc = lf_db_run(
        ctx->conn, err,
        "UPDATE leads SET"
        " last_touch_source = CASE WHEN last_touch_at IS NULL OR last_touch_at <= ? THEN ?"
        " ELSE last_touch_source END,"
        " last_touch_campaign = CASE WHEN last_touch_at IS NULL OR last_touch_at <= ? THEN ?"
        " ELSE last_touch_campaign END,"
        " last_touch_at = CASE WHEN last_touch_at IS NULL OR last_touch_at <= ? THEN ?"
        " ELSE last_touch_at END,"
        " first_touch_source = CASE WHEN first_touch_at IS NULL OR first_touch_at > ? THEN ?"
        " ELSE first_touch_source END,"
        " first_touch_campaign = CASE WHEN first_touch_at IS NULL OR first_touch_at > ? THEN ?"
        " ELSE first_touch_campaign END,"
        " first_touch_at = CASE WHEN first_touch_at IS NULL OR first_touch_at > ? THEN ?"
        " ELSE first_touch_at END,"
        " last_activity_at = CASE WHEN last_activity_at < ? THEN ?"
        " ELSE last_activity_at END,"
        " updated_at = ? WHERE tenant_id = ? AND id = ?",
        "IsIsIIIsIsIIIIIss", at, source, at, campaign, at, at, at, source, at, campaign, at, at, at,
        at, ctx->now, ev->tenant_id, ev->lead_id);
    return rc < 0 ? rc : 0;
}

const struct lf_stage lf_stage_attribute = {"attribute", 0, run, 0};
