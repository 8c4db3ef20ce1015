-- Pipelines, deals, routing, owners and tasks (issue 5).

-- One OPEN deal per lead and pipeline. 001 made (lead_id, pipeline_id) unique outright, so a
-- lead whose deal was lost could never get a new one in that pipeline, and a merge could not
-- move the loser's closed deals. The table is rebuilt (SQLite cannot drop a constraint) with
-- the rule as a partial unique index.
CREATE TABLE deals_new (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL,
    lead_id           TEXT NOT NULL,
    pipeline_id       TEXT NOT NULL,
    stage_id          TEXT NOT NULL,
    name              TEXT NOT NULL,
    value_cents       BIGINT NOT NULL DEFAULT 0,
    currency          TEXT NOT NULL DEFAULT 'EUR',
    status            TEXT NOT NULL DEFAULT 'open',   -- open|won|lost
    assigned_to       TEXT,
    assigned_at       BIGINT,
    stage_entered_at  BIGINT NOT NULL,
    expected_close_at BIGINT,
    close_reason      TEXT,
    closed_at         BIGINT,
    moco_offer_id     TEXT,
    moco_invoice_id   TEXT,
    paid_at           BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
INSERT INTO deals_new SELECT id, tenant_id, lead_id, pipeline_id, stage_id, name, value_cents,
    currency, status, assigned_to, assigned_at, stage_entered_at, expected_close_at,
    close_reason, closed_at, moco_offer_id, moco_invoice_id, paid_at, created_at, updated_at
    FROM deals;
DROP TABLE deals;
ALTER TABLE deals_new RENAME TO deals;
CREATE UNIQUE INDEX deals_open_lead ON deals (tenant_id, lead_id, pipeline_id)
    WHERE status = 'open';
CREATE INDEX deals_lead ON deals (tenant_id, lead_id);
CREATE INDEX deals_pipeline ON deals (tenant_id, pipeline_id, stage_id, status);
CREATE INDEX deals_owner ON deals (tenant_id, assigned_to, status);

-- Every routing decision, automatic or by a person: what the routing report counts (routed per
-- pipeline, time from the lead's first event, conflicts and how they ended, manual overrides).
-- kind: auto (the router), discovery (the router, no intent), conflict (sent to manual
-- review), manual (a person: the API or a Slack button).
CREATE TABLE routing_log (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    lead_id        TEXT NOT NULL,
    kind           TEXT NOT NULL,
    pipeline_id    TEXT,
    deal_id        TEXT,
    previous       TEXT,            -- the lead's routing_status before
    decided_by     TEXT,            -- "router" or the person's token subject
    first_event_at BIGINT,          -- the lead's first touch (its earliest event)
    created_at     BIGINT NOT NULL
);
CREATE INDEX routing_log_time ON routing_log (tenant_id, created_at);
CREATE INDEX routing_log_lead ON routing_log (tenant_id, lead_id, created_at);

CREATE INDEX deal_stage_history_to ON deal_stage_history (tenant_id, to_stage_id, moved_at);
CREATE INDEX tasks_deal ON tasks (tenant_id, deal_id);
CREATE INDEX pipeline_stages_pipeline ON pipeline_stages (tenant_id, pipeline_id, position);

-- Who created a task and what it is about beyond its title.
ALTER TABLE tasks ADD COLUMN notes TEXT;
ALTER TABLE tasks ADD COLUMN created_by TEXT;
