-- The whole data model of DESIGN §3. Portable SQL for SQLite and PostgreSQL: ids are UUIDv7
-- text, times are BIGINT milliseconds since the epoch (UTC), money is BIGINT cents, JSON is
-- TEXT parsed in C, booleans are INTEGER 0/1. Every row carries tenant_id.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE sources (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    slug             TEXT NOT NULL,
    name             TEXT NOT NULL,
    secret           TEXT NOT NULL,
    rate_limit_per_s INTEGER NOT NULL DEFAULT 0,    -- 0: no limit
    is_active        INTEGER NOT NULL DEFAULT 1,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (tenant_id, slug)
);
CREATE INDEX sources_slug ON sources (slug);

CREATE TABLE events (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    source          TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    origin          TEXT NOT NULL DEFAULT 'external',   -- external | internal
    lead_id         TEXT,
    identity        TEXT,                               -- json: the event's lead object
    metadata        TEXT,                               -- json object
    utm_source      TEXT,
    utm_medium      TEXT,
    utm_campaign    TEXT,
    occurred_at     BIGINT NOT NULL,
    received_at     BIGINT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending',    -- pending|processing|processed|failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,            -- set only while the event waits to be (re)processed
    error_message   TEXT,
    processed_at    BIGINT,
    result          TEXT,                               -- json
    updated_at      BIGINT NOT NULL,
    UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX events_due ON events (next_attempt_at, id) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX events_tenant ON events (tenant_id, id);
-- Only events not yet processed are indexed by status: processing an event then removes one
-- entry instead of moving it, and queries for processed events use events_tenant.
CREATE INDEX events_status ON events (tenant_id, status, id)
    WHERE status IN ('pending', 'processing', 'failed');
CREATE INDEX events_type ON events (tenant_id, event_type, id);
-- lead_id is NULL when an event arrives: leaving those rows out makes ingest cheaper.
CREATE INDEX events_lead ON events (tenant_id, lead_id, id) WHERE lead_id IS NOT NULL;
CREATE INDEX events_processing ON events (status) WHERE status = 'processing';

CREATE TABLE organizations (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    name        TEXT NOT NULL,
    domain      TEXT,
    vat_id      TEXT,
    country     TEXT,
    industry    TEXT,
    size        TEXT,
    moco_id     TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX organizations_domain ON organizations (tenant_id, domain)
    WHERE domain IS NOT NULL;
CREATE INDEX organizations_name ON organizations (tenant_id, lower(name));

CREATE TABLE leads (
    id                    TEXT PRIMARY KEY,
    tenant_id             TEXT NOT NULL,
    email                 TEXT,
    first_name            TEXT,
    last_name             TEXT,
    job_title             TEXT,
    phone                 TEXT,
    country               TEXT,
    region                TEXT,
    organization_id       TEXT,
    status                TEXT NOT NULL DEFAULT 'new',
                          -- new|contacted|qualified|disqualified|customer
    lifecycle_stage       TEXT NOT NULL DEFAULT 'lead',
                          -- subscriber|lead|mql|sql|opportunity|customer
    routing_status        TEXT NOT NULL DEFAULT 'unrouted',  -- unrouted|routed|manual_review
    pipeline_id           TEXT,
    routed_at             BIGINT,
    demographic_score     INTEGER NOT NULL DEFAULT 0,
    engagement_score      INTEGER NOT NULL DEFAULT 0,
    behavior_score        INTEGER NOT NULL DEFAULT 0,
    total_score           INTEGER NOT NULL DEFAULT 0,
    hot_armed             INTEGER NOT NULL DEFAULT 1,  -- lead.hot may fire on the next crossing
    primary_intent        TEXT,
    intent_confidence     INTEGER NOT NULL DEFAULT 0,
    intent_summary        TEXT,                        -- json {intent: points}
    first_touch_source    TEXT,
    first_touch_campaign  TEXT,
    first_touch_at        BIGINT,
    last_touch_source     TEXT,
    last_touch_campaign   TEXT,
    last_touch_at         BIGINT,
    last_activity_at      BIGINT NOT NULL DEFAULT 0,   -- 0: no activity yet
    merged_into           TEXT,
    erased_at             BIGINT,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);
CREATE INDEX leads_tenant ON leads (tenant_id, id);
CREATE INDEX leads_email ON leads (tenant_id, email);
CREATE INDEX leads_created ON leads (tenant_id, created_at, id);
CREATE INDEX leads_merged ON leads (merged_into) WHERE merged_into IS NOT NULL;
CREATE INDEX leads_score ON leads (tenant_id, total_score, id);
CREATE INDEX leads_activity ON leads (tenant_id, last_activity_at, id);
CREATE INDEX leads_routing ON leads (tenant_id, routing_status, id);
CREATE INDEX leads_pipeline ON leads (tenant_id, pipeline_id, id);
CREATE INDEX leads_org ON leads (tenant_id, organization_id);

CREATE TABLE lead_identities (
    tenant_id   TEXT NOT NULL,
    lead_id     TEXT NOT NULL,
    kind        TEXT NOT NULL,   -- email|portal_id|waalaxy_id|lemlist_id|linkedin_url|phone|external_id
    value       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, kind, value)
);
CREATE INDEX lead_identities_lead ON lead_identities (tenant_id, lead_id);

CREATE TABLE scoring_rules (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL,
    slug               TEXT NOT NULL,
    name               TEXT NOT NULL,
    event_type         TEXT NOT NULL,       -- or '*'
    conditions         TEXT NOT NULL DEFAULT '[]',
    points             INTEGER NOT NULL,
    category           TEXT NOT NULL,       -- demographic|engagement|behavior
    max_per_day        INTEGER,
    max_per_lead       INTEGER,
    expires_after_days INTEGER,
    priority           INTEGER NOT NULL DEFAULT 100,
    is_active          INTEGER NOT NULL DEFAULT 1,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    UNIQUE (tenant_id, slug)
);

CREATE TABLE score_history (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    lead_id     TEXT NOT NULL,
    rule_id     TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    category    TEXT NOT NULL,
    points      INTEGER NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    expired_at  BIGINT,
    UNIQUE (event_id, rule_id)
);
CREATE INDEX score_history_lead ON score_history (tenant_id, lead_id, created_at);
CREATE INDEX score_history_expiry ON score_history (expires_at)
    WHERE expires_at IS NOT NULL AND expired_at IS NULL;

CREATE TABLE intent_rules (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    slug         TEXT NOT NULL,
    intent       TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    conditions   TEXT NOT NULL DEFAULT '[]',
    points       INTEGER NOT NULL,
    max_per_lead INTEGER,
    is_active    INTEGER NOT NULL DEFAULT 1,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (tenant_id, slug)
);

CREATE TABLE intent_signals (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    lead_id     TEXT NOT NULL,
    intent      TEXT NOT NULL,
    rule_id     TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    points      INTEGER NOT NULL,
    detected_at BIGINT NOT NULL,
    UNIQUE (event_id, rule_id)
);
CREATE INDEX intent_signals_lead ON intent_signals (tenant_id, lead_id, detected_at);

CREATE TABLE pipelines (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    slug         TEXT NOT NULL,
    name         TEXT NOT NULL,
    intent       TEXT,
    owner_role   TEXT NOT NULL,
    is_discovery INTEGER NOT NULL DEFAULT 0,
    position     INTEGER NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (tenant_id, slug)
);

CREATE TABLE pipeline_stages (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    pipeline_id TEXT NOT NULL,
    slug        TEXT NOT NULL,
    name        TEXT NOT NULL,
    position    INTEGER NOT NULL,
    kind        TEXT NOT NULL DEFAULT 'open',   -- open|won|lost
    automation  TEXT NOT NULL DEFAULT '[]',     -- json
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (tenant_id, pipeline_id, slug)
);

CREATE TABLE deals (
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
    updated_at        BIGINT NOT NULL,
    UNIQUE (lead_id, pipeline_id)
);
CREATE INDEX deals_pipeline ON deals (tenant_id, pipeline_id, stage_id, status);
CREATE INDEX deals_owner ON deals (tenant_id, assigned_to, status);

CREATE TABLE deal_stage_history (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    deal_id       TEXT NOT NULL,
    from_stage_id TEXT,
    to_stage_id   TEXT NOT NULL,
    moved_at      BIGINT NOT NULL,
    moved_by      TEXT
);
CREATE INDEX deal_stage_history_deal ON deal_stage_history (tenant_id, deal_id, moved_at);

CREATE TABLE team_members (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    email            TEXT NOT NULL,
    name             TEXT NOT NULL,
    role             TEXT NOT NULL,
    region           TEXT,
    is_active        INTEGER NOT NULL DEFAULT 1,
    max_leads        INTEGER NOT NULL DEFAULT 50,
    current_leads    INTEGER NOT NULL DEFAULT 0,
    last_assigned_at BIGINT,
    away_until       BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (tenant_id, email)
);

CREATE TABLE tasks (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    lead_id      TEXT,
    deal_id      TEXT,
    title        TEXT NOT NULL,
    task_type    TEXT NOT NULL DEFAULT 'todo',
    assigned_to  TEXT,
    due_at       BIGINT,
    status       TEXT NOT NULL DEFAULT 'open',   -- open|done|cancelled
    completed_at BIGINT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX tasks_owner ON tasks (tenant_id, assigned_to, status, due_at);
CREATE INDEX tasks_lead ON tasks (tenant_id, lead_id);

CREATE TABLE automation_rules (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    name             TEXT NOT NULL,
    trigger_type     TEXT NOT NULL,
    trigger_config   TEXT NOT NULL DEFAULT '{}',
    action_type      TEXT NOT NULL,
    action_config    TEXT NOT NULL DEFAULT '{}',
    priority         INTEGER NOT NULL DEFAULT 100,
    is_active        INTEGER NOT NULL DEFAULT 1,
    last_executed_at BIGINT,
    execution_count  BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

CREATE TABLE automation_logs (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    rule_id     TEXT NOT NULL,
    lead_id     TEXT NOT NULL,
    deal_id     TEXT,
    event_id    TEXT,
    trigger_key TEXT NOT NULL,
    success     INTEGER NOT NULL,
    result      TEXT,
    error       TEXT,
    created_at  BIGINT NOT NULL,
    UNIQUE (rule_id, lead_id, trigger_key)
);
CREATE INDEX automation_logs_tenant ON automation_logs (tenant_id, created_at);

CREATE TABLE subscriptions (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    url             TEXT NOT NULL,
    description     TEXT,
    event_types     TEXT NOT NULL DEFAULT '["*"]',
    secret          TEXT NOT NULL,
    previous_secret TEXT,
    previous_secret_until BIGINT,
    is_active       INTEGER NOT NULL DEFAULT 1,
    disabled_reason TEXT,
    failing_since   BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    kind            TEXT NOT NULL,          -- webhook|slack|moco
    subscription_id TEXT,
    event_id        TEXT,
    target          TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending',  -- pending|in_flight|succeeded|failed|dead
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    last_status     INTEGER,
    last_error      TEXT,
    delivered_at    BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX deliveries_event ON deliveries (tenant_id, event_id);
CREATE INDEX deliveries_subscription ON deliveries (tenant_id, subscription_id, id);

CREATE TABLE delivery_attempts (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    delivery_id      TEXT NOT NULL,
    attempt          INTEGER NOT NULL,
    started_at       BIGINT NOT NULL,
    duration_ms      INTEGER,
    status_code      INTEGER,
    error            TEXT,
    response_excerpt TEXT
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (tenant_id, delivery_id, attempt);

CREATE TABLE settings (
    tenant_id   TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,   -- json
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

CREATE TABLE scheduler_runs (
    tenant_id   TEXT NOT NULL DEFAULT '*',   -- '*' for jobs that span every tenant
    job         TEXT NOT NULL,
    slot        BIGINT NOT NULL,             -- the scheduled minute, epoch ms
    node        TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    result      TEXT,
    PRIMARY KEY (job, slot)
);

CREATE TABLE erasures (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    email_hash   TEXT NOT NULL,
    lead_id      TEXT,
    erased_at    BIGINT NOT NULL,
    requested_by TEXT
);
CREATE UNIQUE INDEX erasures_email ON erasures (tenant_id, email_hash);
