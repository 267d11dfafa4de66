//! Embedded migrations, run at start. Both backends get the same tables and
//! columns (so the queries in `sql` serve both); only the auto-increment
//! and binary column types and the triggers that keep the ledger
//! append-only differ.

/// Which database a migration is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// Version 1: the tables, with `{SERIAL}` for an auto-increment key.
const TABLES_V1: &str = r#"
CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    currency TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    live BOOLEAN NOT NULL,
    routes TEXT,
    expires_at BIGINT,
    revoked_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX api_keys_account ON api_keys (account_id);
CREATE TABLE ledger_transactions (
    seq {SERIAL},
    id TEXT NOT NULL UNIQUE,
    idempotency_key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    reference TEXT NOT NULL,
    memo TEXT,
    fingerprint TEXT,
    created_at BIGINT NOT NULL
);
CREATE TABLE ledger_entries (
    seq {SERIAL},
    transaction_id TEXT NOT NULL REFERENCES ledger_transactions (id),
    account TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount BIGINT NOT NULL
);
CREATE INDEX ledger_entries_account ON ledger_entries (account, transaction_id);
CREATE INDEX ledger_entries_transaction ON ledger_entries (transaction_id);
CREATE TABLE usage_records (
    seq {SERIAL},
    transaction_id TEXT NOT NULL REFERENCES ledger_transactions (id),
    reference TEXT NOT NULL,
    amount BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX usage_records_transaction ON usage_records (transaction_id);
CREATE TABLE balances (
    account TEXT NOT NULL,
    currency TEXT NOT NULL,
    balance BIGINT NOT NULL,
    PRIMARY KEY (account, currency)
);
CREATE TABLE revision (id INTEGER PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO revision (id, value) VALUES (1, 0);
"#;

/// Version 1 on SQLite: triggers refuse changes to ledger rows.
const SQLITE_TRIGGERS_V1: &str = r#"
CREATE TRIGGER ledger_transactions_no_update BEFORE UPDATE ON ledger_transactions
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER ledger_transactions_no_delete BEFORE DELETE ON ledger_transactions
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER usage_records_no_update BEFORE UPDATE ON usage_records
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER usage_records_no_delete BEFORE DELETE ON usage_records
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
"#;

/// Version 1 on PostgreSQL: the same, as a trigger function.
const POSTGRES_TRIGGERS_V1: &str = r#"
CREATE FUNCTION faregate_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only';
END
$$;
CREATE TRIGGER ledger_transactions_append_only BEFORE UPDATE OR DELETE ON ledger_transactions
    FOR EACH ROW EXECUTE FUNCTION faregate_append_only();
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION faregate_append_only();
CREATE TRIGGER usage_records_append_only BEFORE UPDATE OR DELETE ON usage_records
    FOR EACH ROW EXECUTE FUNCTION faregate_append_only();
"#;

/// Version 2: subscriptions, invoices and receipts, the card processor's
/// events, and the outbox of signed notifications with their deliveries.
/// Rows here are state, not money: money still moves only in the ledger.
const TABLES_V2: &str = r#"
CREATE TABLE processor_customers (
    customer_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL UNIQUE REFERENCES accounts (id)
);
CREATE TABLE subscriptions (
    account_id TEXT PRIMARY KEY REFERENCES accounts (id),
    plan TEXT NOT NULL,
    state TEXT NOT NULL,
    body TEXT NOT NULL,
    version BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE quota_usage (
    account_id TEXT NOT NULL REFERENCES accounts (id),
    period_start BIGINT NOT NULL,
    grp TEXT NOT NULL,
    included BIGINT NOT NULL,
    overage BIGINT NOT NULL,
    notified INTEGER NOT NULL,
    PRIMARY KEY (account_id, period_start, grp)
);
CREATE TABLE billing_documents (
    seq {SERIAL},
    id TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    amount BIGINT NOT NULL,
    currency TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX billing_documents_account ON billing_documents (account_id, kind, seq);
CREATE TABLE processor_events (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    created BIGINT NOT NULL,
    account_id TEXT,
    outcome TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE TABLE processor_objects (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    account_id TEXT,
    state TEXT NOT NULL,
    created BIGINT NOT NULL
);
CREATE TABLE notification_endpoints (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    events TEXT,
    description TEXT,
    created_at BIGINT NOT NULL,
    disabled_at BIGINT
);
CREATE TABLE notification_events (
    seq {SERIAL},
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    account_id TEXT,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE notification_deliveries (
    seq {SERIAL},
    event_id TEXT NOT NULL REFERENCES notification_events (id),
    endpoint_id TEXT NOT NULL REFERENCES notification_endpoints (id),
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    lease_until BIGINT,
    last_status INTEGER,
    last_error TEXT,
    delivered_at BIGINT,
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (state, next_attempt_at);
CREATE INDEX notification_deliveries_endpoint ON notification_deliveries (endpoint_id, seq);
"#;

/// Version 3: per-request payments (x402) from reservation to settlement,
/// and the prepaid bundles (grants) a payment can buy. The unique key on
/// (network, asset, payer, nonce) is what serves each payment at most once
/// across every node.
const TABLES_V3: &str = r#"
CREATE TABLE x402_payments (
    id TEXT PRIMARY KEY,
    rail TEXT NOT NULL,
    network TEXT NOT NULL,
    asset TEXT NOT NULL,
    payer TEXT NOT NULL,
    nonce TEXT NOT NULL,
    payload_hash TEXT NOT NULL,
    payment_identifier TEXT UNIQUE,
    route TEXT NOT NULL,
    request_id TEXT NOT NULL,
    amount TEXT NOT NULL,
    state TEXT NOT NULL,
    tx_hash TEXT,
    error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (network, asset, payer, nonce)
);
CREATE INDEX x402_payments_pending ON x402_payments (state, created_at);
CREATE TABLE x402_grants (
    id TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL REFERENCES x402_payments (id),
    route TEXT NOT NULL,
    calls_left BIGINT,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
"#;

/// Version 4: LLM scopes and limits. A key may name the models it may use
/// (newline-joined, like its routes) and carry a budget and per-minute
/// token and request limits; an account may carry a budget. Budget amounts
/// are atomic units of the account's currency. Every column is nullable:
/// keys and accounts from before have no limit.
const TABLES_V4: &str = r#"
ALTER TABLE api_keys ADD COLUMN models TEXT NULL;
ALTER TABLE api_keys ADD COLUMN budget_amount BIGINT NULL;
ALTER TABLE api_keys ADD COLUMN budget_period TEXT NULL;
ALTER TABLE api_keys ADD COLUMN tpm BIGINT NULL;
ALTER TABLE api_keys ADD COLUMN rpm BIGINT NULL;
ALTER TABLE accounts ADD COLUMN budget_amount BIGINT NULL;
ALTER TABLE accounts ADD COLUMN budget_period TEXT NULL;
"#;

/// Version 5: per-request charges packed a batch at a time (see
/// `usage.rs`), one append-only row per debit instead of one per request.
const TABLES_V5: &str = r#"
CREATE TABLE usage_batches (
    seq {SERIAL},
    transaction_id TEXT NOT NULL REFERENCES ledger_transactions (id),
    records BIGINT NOT NULL,
    total BIGINT NOT NULL,
    payload {BLOB} NOT NULL
);
CREATE INDEX usage_batches_transaction ON usage_batches (transaction_id);
"#;

const SQLITE_TRIGGERS_V5: &str = r#"
CREATE TRIGGER usage_batches_no_update BEFORE UPDATE ON usage_batches
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER usage_batches_no_delete BEFORE DELETE ON usage_batches
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
"#;

const POSTGRES_TRIGGERS_V5: &str = r#"
CREATE TRIGGER usage_batches_append_only BEFORE UPDATE OR DELETE ON usage_batches
    FOR EACH ROW EXECUTE FUNCTION faregate_append_only();
"#;

/// The numbered schema changes for `backend`, in order.
pub(crate) fn migrations(backend: Backend) -> Vec<(i64, String)> {
    let (serial, blob, triggers, triggers_v5) = match backend {
        Backend::Sqlite => (
            "INTEGER PRIMARY KEY AUTOINCREMENT",
            "BLOB",
            SQLITE_TRIGGERS_V1,
            SQLITE_TRIGGERS_V5,
        ),
        Backend::Postgres => (
            "BIGSERIAL PRIMARY KEY",
            "BYTEA",
            POSTGRES_TRIGGERS_V1,
            POSTGRES_TRIGGERS_V5,
        ),
    };
    vec![
        (
            1,
            format!("{}{triggers}", TABLES_V1.replace("{SERIAL}", serial)),
        ),
        (2, TABLES_V2.replace("{SERIAL}", serial)),
        (3, TABLES_V3.to_owned()),
        (4, TABLES_V4.to_owned()),
        (
            5,
            format!(
                "{}{triggers_v5}",
                TABLES_V5
                    .replace("{SERIAL}", serial)
                    .replace("{BLOB}", blob)
            ),
        ),
    ]
}
