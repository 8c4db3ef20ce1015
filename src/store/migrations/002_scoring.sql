-- Scoring, intent and the scheduler (issue 4).

-- When the event behind a score row happened (its occurred_at, never later than the time it
-- was scored). Per-day caps count by this day; expires_at is measured from it.
ALTER TABLE score_history ADD COLUMN occurred_at BIGINT;
UPDATE score_history SET occurred_at = created_at WHERE occurred_at IS NULL;
CREATE INDEX score_history_caps ON score_history (tenant_id, lead_id, rule_id, occurred_at);

-- The decay job finds signals leaving the intent window by time.
CREATE INDEX intent_signals_time ON intent_signals (detected_at);

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
