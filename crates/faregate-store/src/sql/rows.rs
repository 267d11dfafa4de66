//! The inherent half of each SQL store: migrations, row decoding, and the
//! writes shared by several `Store` methods. One macro writes it for both
//! pool types, from the same SQL text.

use std::collections::BTreeMap;

use sqlx::{QueryBuilder, Row};

use super::{CHUNK, PgStore, SqliteStore, balance_deltas, corrupt, currency, now_millis};
use crate::Result;
use crate::ledger::{LedgerAccount, Posting, Transaction, TransactionRecord, TxKind};
use crate::notify::NewNotification;

macro_rules! sql_helpers {
    ($store:ident, $db:ty, $backend:literal) => {
        impl $store {
            pub(super) async fn migrate(
                &self,
                list: &[(i64, String)],
                lock: Option<&str>,
            ) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                if let Some(lock) = lock {
                    sqlx::raw_sql(lock).execute(&mut *tx).await?;
                }
                sqlx::raw_sql(
                    "CREATE TABLE IF NOT EXISTS faregate_migrations \
                     (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
                )
                .execute(&mut *tx)
                .await?;
                let applied: Vec<i64> =
                    sqlx::query_scalar("SELECT version FROM faregate_migrations")
                        .fetch_all(&mut *tx)
                        .await?;
                for (version, sql) in list {
                    if applied.contains(version) {
                        continue;
                    }
                    sqlx::raw_sql(sql).execute(&mut *tx).await?;
                    sqlx::query(
                        "INSERT INTO faregate_migrations (version, applied_at) VALUES ($1, $2)",
                    )
                    .bind(*version)
                    .bind(now_millis())
                    .execute(&mut *tx)
                    .await?;
                    tracing::info!(version, backend = $backend, "store migration applied");
                }
                tx.commit().await?;
                Ok(())
            }

            pub(super) async fn bump(db: &mut sqlx::Transaction<'_, $db>) -> Result<()> {
                sqlx::query("UPDATE revision SET value = value + 1 WHERE id = 1")
                    .execute(&mut **db)
                    .await?;
                Ok(())
            }

            pub(super) fn transaction_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<TransactionRecord> {
                let kind: String = row.try_get("kind")?;
                Ok(TransactionRecord {
                    seq: row.try_get("seq")?,
                    tx: Transaction {
                        id: row.try_get("id")?,
                        idempotency_key: row.try_get("idempotency_key")?,
                        kind: TxKind::parse(&kind)
                            .ok_or_else(|| corrupt(format!("transaction kind {kind:?}")))?,
                        reference: row.try_get("reference")?,
                        memo: row.try_get("memo")?,
                        fingerprint: row.try_get("fingerprint")?,
                        created_at: row.try_get("created_at")?,
                        postings: Vec::new(),
                    },
                })
            }

            /// Fills in the postings of `records`.
            pub(super) async fn with_postings(
                &self,
                mut records: Vec<TransactionRecord>,
            ) -> Result<Vec<TransactionRecord>> {
                for chunk in records.chunks_mut(CHUNK) {
                    let mut q = QueryBuilder::<$db>::new(
                        "SELECT transaction_id, account, currency, amount \
                         FROM ledger_entries WHERE transaction_id IN (",
                    );
                    let mut ids = q.separated(", ");
                    for r in chunk.iter() {
                        ids.push_bind(r.tx.id.clone());
                    }
                    q.push(") ORDER BY seq");
                    let rows = q.build().fetch_all(&self.pool).await?;
                    let mut by_tx: BTreeMap<String, Vec<Posting>> = BTreeMap::new();
                    for row in rows {
                        let code: String = row.try_get("currency")?;
                        by_tx
                            .entry(row.try_get("transaction_id")?)
                            .or_default()
                            .push(Posting {
                                account: LedgerAccount::from_stored(row.try_get("account")?),
                                currency: currency(&code)?,
                                amount: row.try_get("amount")?,
                            });
                    }
                    for r in chunk.iter_mut() {
                        r.tx.postings = by_tx.remove(&r.tx.id).unwrap_or_default();
                    }
                }
                Ok(records)
            }

            /// Writes the entries of `txs` and moves the cached balances.
            pub(super) async fn write_entries(
                db: &mut sqlx::Transaction<'_, $db>,
                txs: &[&Transaction],
            ) -> Result<()> {
                let postings: Vec<(&str, &Posting)> = txs
                    .iter()
                    .flat_map(|t| t.postings.iter().map(move |p| (t.id.as_str(), p)))
                    .collect();
                for chunk in postings.chunks(CHUNK) {
                    let mut q = QueryBuilder::<$db>::new(
                        "INSERT INTO ledger_entries (transaction_id, account, currency, amount) ",
                    );
                    q.push_values(chunk, |mut b, (tx, p)| {
                        b.push_bind(*tx)
                            .push_bind(p.account.as_str())
                            .push_bind(p.currency.code())
                            .push_bind(p.amount);
                    });
                    q.build().execute(&mut **db).await?;
                }
                let deltas = balance_deltas(txs)?;
                for chunk in deltas.chunks(CHUNK) {
                    let mut q = QueryBuilder::<$db>::new(
                        "INSERT INTO balances (account, currency, balance) ",
                    );
                    q.push_values(chunk, |mut b, (account, currency, delta)| {
                        b.push_bind(account.as_str())
                            .push_bind(*currency)
                            .push_bind(*delta);
                    });
                    q.push(
                        " ON CONFLICT (account, currency) \
                         DO UPDATE SET balance = balances.balance + excluded.balance",
                    );
                    q.build().execute(&mut **db).await?;
                }
                Ok(())
            }

            /// Puts `events` in the outbox with one pending delivery per
            /// enabled endpoint that wants the event's type, inside `db`.
            pub(super) async fn insert_notifications(
                db: &mut sqlx::Transaction<'_, $db>,
                events: &[NewNotification],
            ) -> Result<()> {
                if events.is_empty() {
                    return Ok(());
                }
                // `events` is NULL (every type) or the wanted types, one per
                // line.
                let endpoints: Vec<(String, Option<String>)> = sqlx::query_as(
                    "SELECT id, events FROM notification_endpoints WHERE disabled_at IS NULL",
                )
                .fetch_all(&mut **db)
                .await?;
                for event in events {
                    let inserted = sqlx::query(
                        "INSERT INTO notification_events \
                         (id, type, account_id, payload, created_at) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(&event.id)
                    .bind(&event.kind)
                    .bind(&event.account_id)
                    .bind(&event.payload)
                    .bind(event.created_at)
                    .execute(&mut **db)
                    .await?;
                    if inserted.rows_affected() == 0 {
                        continue;
                    }
                    let wanted = endpoints.iter().filter(|(_, types)| {
                        types
                            .as_deref()
                            .is_none_or(|t| t.split('\n').any(|k| k == event.kind))
                    });
                    for (endpoint, _) in wanted {
                        sqlx::query(
                            "INSERT INTO notification_deliveries \
                             (event_id, endpoint_id, state, attempts, next_attempt_at) \
                             VALUES ($1, $2, 'pending', 0, $3)",
                        )
                        .bind(&event.id)
                        .bind(endpoint)
                        .bind(event.created_at)
                        .execute(&mut **db)
                        .await?;
                    }
                }
                Ok(())
            }
        }
    };
}

sql_helpers!(SqliteStore, sqlx::Sqlite, "sqlite");
sql_helpers!(PgStore, sqlx::Postgres, "postgres");
