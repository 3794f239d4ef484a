-- The whole schema of shopify-sync (see README "Postgres").
-- Timestamps from Shopify are TIMESTAMPTZ, ids BIGINT (Shopify ids exceed 2^53), money NUMERIC.

CREATE TABLE shops (
    id             BIGSERIAL PRIMARY KEY,
    domain         TEXT        NOT NULL UNIQUE,
    access_token   TEXT,
    installed_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    uninstalled_at TIMESTAMPTZ
);

CREATE TABLE customers (
    id                 BIGSERIAL PRIMARY KEY,
    shop_id            BIGINT      NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    shopify_id         BIGINT      NOT NULL,
    email              TEXT,
    first_name         TEXT,
    last_name          TEXT,
    phone              TEXT,
    state              TEXT,
    shopify_created_at TIMESTAMPTZ,
    shopify_updated_at TIMESTAMPTZ,
    deleted_at         TIMESTAMPTZ,
    redacted_at        TIMESTAMPTZ,
    raw                JSONB,
    synced_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (shop_id, shopify_id)
);

CREATE TABLE orders (
    id                  BIGSERIAL PRIMARY KEY,
    shop_id             BIGINT      NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    shopify_id          BIGINT      NOT NULL,
    customer_shopify_id BIGINT,
    name                TEXT,
    email               TEXT,
    financial_status    TEXT,
    fulfillment_status  TEXT,
    currency            TEXT,
    total_price         NUMERIC,
    cancelled_at        TIMESTAMPTZ,
    shopify_created_at  TIMESTAMPTZ,
    shopify_updated_at  TIMESTAMPTZ,
    deleted_at          TIMESTAMPTZ,
    redacted_at         TIMESTAMPTZ,
    raw                 JSONB,
    synced_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (shop_id, shopify_id)
);

-- customers/redact finds a customer's orders by this.
CREATE INDEX orders_customer_idx ON orders (shop_id, customer_shopify_id);

CREATE TABLE webhook_deliveries (
    id               BIGSERIAL PRIMARY KEY,
    shop_id          BIGINT      NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    webhook_id       TEXT        NOT NULL,
    event_id         TEXT,
    topic            TEXT        NOT NULL,
    api_version      TEXT,
    status           TEXT        NOT NULL
        CHECK (status IN ('processing', 'processed', 'failed', 'dead_letter', 'ignored')),
    attempts         INTEGER     NOT NULL DEFAULT 0,
    last_error       TEXT,
    payload          JSONB,
    -- The exact body, kept only when `payload` cannot hold it as sent (jsonb refuses `\u0000`, or
    -- the body is not JSON): replay then republishes these bytes. NULL for ordinary bodies.
    payload_raw      BYTEA,
    triggered_at     TIMESTAMPTZ,
    received_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    processed_at     TIMESTAMPTZ,
    dead_lettered_at TIMESTAMPTZ,
    UNIQUE (shop_id, webhook_id)
);

-- `deliveries --status`, `replay --dead-letters` and dashboards look deliveries up by status.
CREATE INDEX webhook_deliveries_status_idx ON webhook_deliveries (status, received_at);
CREATE INDEX webhook_deliveries_received_idx ON webhook_deliveries (received_at);

CREATE TABLE sync_logs (
    id                BIGSERIAL PRIMARY KEY,
    shop_id           BIGINT      NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    resource          TEXT        NOT NULL CHECK (resource IN ('customers', 'orders')),
    status            TEXT        NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    bulk_operation_id TEXT,
    started_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at      TIMESTAMPTZ,
    error_message     TEXT,
    records_synced    BIGINT      NOT NULL DEFAULT 0
);

-- bulk_operations/finish finds its log by the operation's gid.
CREATE INDEX sync_logs_bulk_operation_idx ON sync_logs (bulk_operation_id);
-- At most one running sync per shop and resource: two schedulers can never start the same sync twice.
CREATE UNIQUE INDEX sync_logs_one_running_idx ON sync_logs (shop_id, resource) WHERE status = 'running';

CREATE TABLE compliance_requests (
    id           BIGSERIAL PRIMARY KEY,
    shop_id      BIGINT      NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    topic        TEXT        NOT NULL,
    webhook_id   TEXT,
    payload      JSONB       NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at TIMESTAMPTZ,
    UNIQUE (shop_id, webhook_id)
);
