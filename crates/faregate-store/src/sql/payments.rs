//! The [`Payments`] half of both SQL stores, written once by a macro.

use sqlx::Row;

use super::{PgStore, SqliteStore, corrupt};
use crate::ledger::Transaction;
use crate::payments::{Draw, Grant, PaymentRecord, PaymentState, Payments, Reservation};
use crate::{Result, StoreError};

const PAYMENT_COLUMNS: &str = "id, rail, network, asset, payer, nonce, payload_hash, \
     payment_identifier, route, request_id, amount, state, tx_hash, error, created_at, updated_at";

macro_rules! sql_payments {
    ($store:ident, $db:ty) => {
        impl $store {
            fn payment_row(row: &<$db as sqlx::Database>::Row) -> Result<PaymentRecord> {
                let state: String = row.try_get("state")?;
                Ok(PaymentRecord {
                    id: row.try_get("id")?,
                    rail: row.try_get("rail")?,
                    network: row.try_get("network")?,
                    asset: row.try_get("asset")?,
                    payer: row.try_get("payer")?,
                    nonce: row.try_get("nonce")?,
                    payload_hash: row.try_get("payload_hash")?,
                    payment_identifier: row.try_get("payment_identifier")?,
                    route: row.try_get("route")?,
                    request_id: row.try_get("request_id")?,
                    amount: row.try_get("amount")?,
                    state: PaymentState::parse(&state)
                        .ok_or_else(|| corrupt(format!("payment state {state:?}")))?,
                    transaction: row.try_get("tx_hash")?,
                    error: row.try_get("error")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            }

            fn grant_row(row: &<$db as sqlx::Database>::Row) -> Result<Grant> {
                Ok(Grant {
                    id: row.try_get("id")?,
                    payment_id: row.try_get("payment_id")?,
                    route: row.try_get("route")?,
                    calls_left: row.try_get("calls_left")?,
                    expires_at: row.try_get("expires_at")?,
                    created_at: row.try_get("created_at")?,
                })
            }

            /// Moves a pending payment on; an error when it is not pending.
            async fn finish_payment(
                db: &mut sqlx::Transaction<'_, $db>,
                id: &str,
                state: PaymentState,
                transaction: Option<&str>,
                error: Option<&str>,
                at: i64,
            ) -> Result<()> {
                let done = sqlx::query(
                    "UPDATE x402_payments SET state = $1, tx_hash = COALESCE($2, tx_hash), \
                     error = $3, updated_at = $4 WHERE id = $5 AND state = 'pending'",
                )
                .bind(state.as_str())
                .bind(transaction)
                .bind(error)
                .bind(at)
                .bind(id)
                .execute(&mut **db)
                .await?;
                if done.rows_affected() == 1 {
                    Ok(())
                } else {
                    Err(StoreError::NotFound(format!("pending payment {id}")))
                }
            }
        }

        #[async_trait::async_trait]
        impl Payments for $store {
            async fn reserve_payment(&self, p: &PaymentRecord) -> Result<Reservation> {
                let inserted = sqlx::query(&format!(
                    "INSERT INTO x402_payments ({PAYMENT_COLUMNS}) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
                     ON CONFLICT DO NOTHING"
                ))
                .bind(&p.id)
                .bind(&p.rail)
                .bind(&p.network)
                .bind(&p.asset)
                .bind(&p.payer)
                .bind(&p.nonce)
                .bind(&p.payload_hash)
                .bind(&p.payment_identifier)
                .bind(&p.route)
                .bind(&p.request_id)
                .bind(&p.amount)
                .bind(PaymentState::Pending.as_str())
                .bind(&p.transaction)
                .bind(&p.error)
                .bind(p.created_at)
                .bind(p.updated_at)
                .execute(&self.pool)
                .await?;
                if inserted.rows_affected() == 1 {
                    return Ok(Reservation::Reserved);
                }
                let row = sqlx::query(&format!(
                    "SELECT {PAYMENT_COLUMNS} FROM x402_payments WHERE \
                     (network = $1 AND asset = $2 AND payer = $3 AND nonce = $4) \
                     OR payment_identifier = $5 OR id = $6 LIMIT 1"
                ))
                .bind(&p.network)
                .bind(&p.asset)
                .bind(&p.payer)
                .bind(&p.nonce)
                .bind(&p.payment_identifier)
                .bind(&p.id)
                .fetch_optional(&self.pool)
                .await?;
                match row {
                    Some(row) => Ok(Reservation::Taken(Box::new(Self::payment_row(&row)?))),
                    // Released between our insert and our read: try again.
                    None => Box::pin(self.reserve_payment(p)).await,
                }
            }

            async fn release_payment(&self, id: &str) -> Result<()> {
                sqlx::query("DELETE FROM x402_payments WHERE id = $1 AND state = 'pending'")
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn settle_payment(
                &self,
                id: &str,
                transaction: &str,
                ledger: Option<&Transaction>,
                grant: Option<&Grant>,
                at: i64,
            ) -> Result<()> {
                let mut db = self.pool.begin().await?;
                Self::finish_payment(&mut db, id, PaymentState::Settled, Some(transaction), None, at)
                    .await?;
                if let Some(ledger) = ledger {
                    Self::insert_transaction(&mut db, ledger).await?;
                }
                if let Some(g) = grant {
                    sqlx::query(
                        "INSERT INTO x402_grants \
                         (id, payment_id, route, calls_left, expires_at, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(&g.id)
                    .bind(&g.payment_id)
                    .bind(&g.route)
                    .bind(g.calls_left)
                    .bind(g.expires_at)
                    .bind(g.created_at)
                    .execute(&mut *db)
                    .await?;
                }
                db.commit().await?;
                Ok(())
            }

            async fn fail_payment(
                &self,
                id: &str,
                error: &str,
                transaction: Option<&str>,
                at: i64,
            ) -> Result<()> {
                let mut db = self.pool.begin().await?;
                Self::finish_payment(&mut db, id, PaymentState::Failed, transaction, Some(error), at)
                    .await?;
                db.commit().await?;
                Ok(())
            }

            async fn payment(&self, id: &str) -> Result<Option<PaymentRecord>> {
                sqlx::query(&format!(
                    "SELECT {PAYMENT_COLUMNS} FROM x402_payments WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .map(|row| Self::payment_row(&row))
                .transpose()
            }

            async fn pending_payments(&self, before: i64, limit: u32) -> Result<Vec<PaymentRecord>> {
                sqlx::query(&format!(
                    "SELECT {PAYMENT_COLUMNS} FROM x402_payments \
                     WHERE state = 'pending' AND created_at < $1 ORDER BY created_at LIMIT $2"
                ))
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(Self::payment_row)
                .collect()
            }

            async fn grant(&self, id: &str) -> Result<Option<Grant>> {
                sqlx::query(
                    "SELECT id, payment_id, route, calls_left, expires_at, created_at \
                     FROM x402_grants WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .map(|row| Self::grant_row(&row))
                .transpose()
            }

            async fn draw_grant(&self, id: &str, now: i64) -> Result<Draw> {
                // One statement: the row lock (PostgreSQL) or the single
                // writer (SQLite) makes concurrent draws take one call each.
                let left: Option<Option<i64>> = sqlx::query_scalar(
                    "UPDATE x402_grants SET calls_left = calls_left - 1 \
                     WHERE id = $1 AND expires_at > $2 \
                     AND (calls_left IS NULL OR calls_left > 0) RETURNING calls_left",
                )
                .bind(id)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
                if let Some(left) = left {
                    return Ok(Draw::Taken(left));
                }
                let known: Option<String> =
                    sqlx::query_scalar("SELECT id FROM x402_grants WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(if known.is_some() { Draw::Spent } else { Draw::Unknown })
            }
        }
    };
}

sql_payments!(SqliteStore, sqlx::Sqlite);
sql_payments!(PgStore, sqlx::Postgres);
