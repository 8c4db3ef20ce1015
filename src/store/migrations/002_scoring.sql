-- Scoring, intent and the scheduler (issue 4).

-- When the event behind a score row happened (its occurred_at, never later than the time it
-- was scored). Per-day caps count by this day; expires_at is measured from it.
ALTER TABLE score_history ADD COLUMN occurred_at BIGINT;
UPDATE score_history SET occurred_at = created_at WHERE occurred_at IS NULL;
CREATE INDEX score_history_caps ON score_history (tenant_id, lead_id, rule_id, occurred_at);
-- The caps index serves every per-lead read too (a lead's rows are few), so 001's per-lead
-- index is one write per score row too many.
DROP INDEX score_history_lead;
-- The decay job looks for due rows per tenant; the index of 001 had no tenant and was not
-- chosen for that query.
DROP INDEX score_history_expiry;
CREATE INDEX score_history_due ON score_history (tenant_id, expires_at)
    WHERE expires_at IS NOT NULL AND expired_at IS NULL;

-- The earliest expires_at of the lead's unexpired score rows (NULL: none expire). The score
-- stage adds points to the stored sums while this lies in the future, and recomputes them
-- from the rows once it has passed, so expired points never count, decay job or not.
ALTER TABLE leads ADD COLUMN score_expires_at BIGINT;
-- Likewise for intent: when the oldest signal counted in intent_summary leaves the window.
-- The intent stage adds new signals to the summary while it lies in the future, and sums the
-- window again once it has passed; the decay job finds the leads whose time has come.
ALTER TABLE leads ADD COLUMN intent_expires_at BIGINT;
CREATE INDEX leads_intent_due ON leads (tenant_id, intent_expires_at)
    WHERE intent_expires_at IS NOT NULL;

-- Bumped in the transaction that changes a tenant's scoring or intent rules or the settings
-- the engine reads, so every worker (in any process) recompiles before its next batch.
CREATE TABLE rule_versions (
    tenant_id TEXT PRIMARY KEY,
    version   BIGINT NOT NULL
);

-- 'schedule' for a cron slot, 'manual' for POST /scheduler/jobs/{job}/run (slot: minus the
-- time it was asked for, so it never takes a scheduled slot's key).
ALTER TABLE scheduler_runs ADD COLUMN trigger_kind TEXT NOT NULL DEFAULT 'schedule';
CREATE INDEX scheduler_runs_job ON scheduler_runs (job, started_at);
