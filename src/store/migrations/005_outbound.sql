-- Reliable outbound (issue 7): the dispatcher, subscriptions, Slack and Moco.

-- A delivery's status: pending (due at next_attempt_at) | in_flight (claimed; next_attempt_at
-- is the claim's lease: past it, a crashed node's claim is taken again) | succeeded |
-- failed (the last try failed, the next is due at next_attempt_at) | dead (no more tries).
-- next_attempt_at is NULL exactly when no try is due (succeeded, dead).
-- step: the Moco step the next try makes (customer, offer, invoice); NULL for other kinds.
ALTER TABLE deliveries ADD COLUMN step TEXT;
-- message_id: a webhook's Standard Webhooks id (webhook-id), the same on every try.
ALTER TABLE deliveries ADD COLUMN message_id TEXT;
CREATE INDEX deliveries_status ON deliveries (tenant_id, status, kind);
-- The dispatcher claims per kind in due order (Moco rows waiting while the sync is off are
-- never walked past).
CREATE INDEX deliveries_kind_due ON deliveries (kind, next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;
CREATE INDEX deliveries_sub_created ON deliveries (tenant_id, subscription_id, created_at)
    WHERE subscription_id IS NOT NULL;

-- What each try sent: the URL (Moco steps differ per try).
ALTER TABLE delivery_attempts ADD COLUMN target TEXT;

CREATE INDEX subscriptions_tenant ON subscriptions (tenant_id, is_active);

-- Per tenant and integration (webhook, slack, moco): the last success and the last error,
-- written by the dispatcher once per batch of results.
CREATE TABLE integration_status (
    tenant_id       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    last_success_at BIGINT,
    last_error      TEXT,
    last_error_at   BIGINT,
    PRIMARY KEY (tenant_id, kind)
);

-- The payment webhook finds the deal by its Moco invoice (or offer) id.
CREATE INDEX deals_moco_invoice ON deals (moco_invoice_id) WHERE moco_invoice_id IS NOT NULL;
CREATE INDEX deals_moco_offer ON deals (moco_offer_id) WHERE moco_offer_id IS NOT NULL;
