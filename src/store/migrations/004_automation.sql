-- The automation engine (issue 6).

-- A rule may carry a description and an hourly budget: past max_executions_per_hour
-- executions in the last hour it is skipped (and the skip logged).
ALTER TABLE automation_rules ADD COLUMN description TEXT;
ALTER TABLE automation_rules ADD COLUMN max_executions_per_hour INTEGER;
CREATE INDEX automation_rules_tenant ON automation_rules (tenant_id, priority, id);

-- Every execution's outcome: executed | failed | skipped (budget, chain depth). success is 1
-- only for executed. depth is the chain depth it ran at (1: fired by an event or a job).
-- The rule's trigger and action types are copied so the log explains itself after the rule
-- changed or was deleted.
ALTER TABLE automation_logs ADD COLUMN status TEXT NOT NULL DEFAULT 'executed';
ALTER TABLE automation_logs ADD COLUMN depth INTEGER NOT NULL DEFAULT 1;
ALTER TABLE automation_logs ADD COLUMN trigger_type TEXT;
ALTER TABLE automation_logs ADD COLUMN action_type TEXT;
CREATE INDEX automation_logs_rule ON automation_logs (tenant_id, rule_id, created_at);
CREATE INDEX automation_logs_lead ON automation_logs (tenant_id, lead_id, created_at);
CREATE INDEX automation_logs_deal ON automation_logs (tenant_id, deal_id) WHERE deal_id IS NOT NULL;

-- The outbox read newest first per tenant (GET /api/v1/deliveries).
CREATE INDEX deliveries_tenant_created ON deliveries (tenant_id, created_at, id);
