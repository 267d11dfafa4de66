//! The two SQL stores. Their queries are the same text (`$1` placeholders
//! work on both), so macros write the [`Store`](crate::Store) implementation
//! for each pool type (`store.rs`) and the helpers it shares (`rows.rs`,
//! and `keys.rs` for accounts and keys); opening, the migrations and
//! snapshot reads differ.

mod billing;
mod keys;
mod notify;
mod payments;
mod rows;
mod store;

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use faregate_core::Currency;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::ledger::{LedgerAccount, Transaction};
use crate::{Result, StoreError, VerifyReport, migrate};

/// Rows per multi-row statement: far below both backends' bind limits
/// (SQLite 32766, PostgreSQL 65535 parameters).
const CHUNK: usize = 1000;

/// The advisory lock nodes take to migrate one at a time.
const PG_MIGRATION_LOCK: &str = "SELECT pg_advisory_xact_lock(4652737412)";

/// Unix milliseconds now.
pub(crate) fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The embedded store: one SQLite file in WAL mode, every commit synced.
#[derive(Debug)]
pub(crate) struct SqliteStore {
    pool: SqlitePool,
    /// The batched writer's own connection: its page cache stays warm from
    /// one flush to the next, where a pooled connection would re-read the
    /// pages another one last wrote.
    batch: SqlitePool,
}

impl SqliteStore {
    pub(crate) async fn open(url: &str) -> Result<Self> {
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Money paid in is acknowledged only once it is on disk.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let mut pool = SqlitePoolOptions::new().max_connections(if memory { 1 } else { 4 });
        if memory {
            // An in-memory database lives as long as its one connection.
            pool = pool.idle_timeout(None).max_lifetime(None);
        }
        let pool = pool.connect_with(options.clone()).await?;
        let batch = if memory {
            pool.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_lazy_with(options)
        };
        let store = Self { pool, batch };
        store
            .migrate(&migrate::migrations(migrate::Backend::Sqlite), None)
            .await?;
        // Open the batch connection now: its thread, where every group
        // commit runs, then exists before the gateway lowers its helper
        // threads below the data plane (`Workers::lower_helpers`).
        drop(store.batch.acquire().await?);
        Ok(store)
    }

    /// Where batches of debits are written.
    fn batch_pool(&self) -> &SqlitePool {
        &self.batch
    }
}

/// The shared store for several nodes.
#[derive(Debug)]
pub(crate) struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub(crate) async fn open(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        let store = Self { pool };
        store
            .migrate(
                &migrate::migrations(migrate::Backend::Postgres),
                Some(PG_MIGRATION_LOCK),
            )
            .await?;
        Ok(store)
    }

    /// Where batches of debits are written: any of the pool's connections
    /// (the server keeps one cache for all of them).
    fn batch_pool(&self) -> &PgPool {
        &self.pool
    }
}

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

fn currency(code: &str) -> Result<Currency> {
    Currency::from_code(code).map_err(|_| corrupt(format!("currency {code:?}")))
}

/// Names (routes, models) newline-joined into one column.
fn encode_routes(routes: Option<&Vec<String>>) -> Option<String> {
    routes.map(|r| r.join("\n"))
}

fn decode_routes(routes: Option<String>) -> Option<Vec<String>> {
    routes.map(|r| {
        if r.is_empty() {
            Vec::new()
        } else {
            r.split('\n').map(str::to_owned).collect()
        }
    })
}

/// The balance changes a set of transactions makes, summed per ledger
/// account and currency, in one fixed order (so concurrent writers lock
/// balance rows in the same order and cannot deadlock).
fn balance_deltas(txs: &[&Transaction]) -> Result<Vec<(String, &'static str, i64)>> {
    let mut sums: BTreeMap<(&str, &'static str), i128> = BTreeMap::new();
    for tx in txs {
        for p in &tx.postings {
            *sums
                .entry((p.account.as_str(), p.currency.code()))
                .or_default() += i128::from(p.amount);
        }
    }
    sums.into_iter()
        .filter(|(_, sum)| *sum != 0)
        .map(|((account, currency), sum)| {
            let sum = i64::try_from(sum).map_err(|_| crate::LedgerError::OutOfRange)?;
            Ok((account.to_owned(), currency, sum))
        })
        .collect()
}

/// Compares cached balances with recomputed ones.
fn compare_balances(
    report: &mut VerifyReport,
    cached: Vec<(String, String, i64)>,
    computed: Vec<(String, String, i64)>,
) {
    let mut all: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    for (account, currency, amount) in cached {
        all.entry((account, currency)).or_default().0 = amount;
    }
    for (account, currency, amount) in computed {
        all.entry((account, currency)).or_default().1 = amount;
    }
    report.balances = all.len() as u64;
    for ((account, currency), (cached, computed)) in all {
        if cached != computed {
            report
                .mismatched
                .push((account.clone(), currency.clone(), cached, computed));
        }
        if computed < 0
            && LedgerAccount::from_stored(account.clone())
                .customer_id()
                .is_some()
        {
            report.overdrawn.push((account, currency, computed));
        }
    }
}
