//! End-to-end tests of the admin API: the real router served over real HTTP
//! on 127.0.0.1:0, against a real SQLite file and, when
//! `FAREGATE_TEST_DATABASE_URL` names a PostgreSQL server (for example
//! `postgres://postgres@127.0.0.1:5432/test`), against a fresh schema there
//! too. Every refusal is checked to be a problem document that wrote
//! nothing.

#[path = "admin_api/accounts.rs"]
mod accounts;
#[path = "admin_api/credits.rs"]
mod credits;
#[path = "admin_api/harness.rs"]
mod harness;
#[path = "admin_api/keys.rs"]
mod keys;
#[path = "admin_api/ledger.rs"]
mod ledger;
#[path = "admin_api/llm.rs"]
mod llm;
#[path = "admin_api/refusals.rs"]
mod refusals;
#[path = "admin_api/subscriptions.rs"]
mod subscriptions;
#[path = "admin_api/usage.rs"]
mod usage;
#[path = "admin_api/webhooks.rs"]
mod webhooks;
