//! The `Billing` half of both SQL stores, written once by a macro.

use sqlx::Row;

use super::{PgStore, SqliteStore, corrupt, currency};
use crate::billing::{
    Billing, BillingChange, BillingDocument, BillingOutcome, DocumentKind, ProcessorEvent,
    ProcessorObject, QuotaUsage, SubscriptionRow,
};
use crate::ledger::{Transaction, TxKind};
use crate::notify::NewNotification;
use crate::{Result, StoreError};

const DOCUMENT_COLUMNS: &str =
    "seq, id, account_id, kind, status, amount, currency, created_at, body";

/// The receipt a top-up writes: one per customer account it pays into.
fn receipts(tx: &Transaction) -> Vec<BillingDocument> {
    if tx.kind != TxKind::TopUp {
        return Vec::new();
    }
    tx.postings
        .iter()
        .filter(|p| p.amount > 0)
        .filter_map(|p| {
            let account = p.account.customer_id()?;
            let body = serde_json::json!({
                "transaction_id": tx.id,
                "reference": tx.reference,
                "memo": tx.memo,
            });
            Some(BillingDocument {
                seq: 0,
                id: format!("rcpt_{}", tx.id.trim_start_matches("tx_")),
                account_id: account.to_owned(),
                kind: DocumentKind::Receipt,
                status: "paid".to_owned(),
                amount: p.amount,
                currency: p.currency,
                created_at: tx.created_at,
                body: body.to_string(),
            })
        })
        .collect()
}

macro_rules! sql_billing {
    ($store:ident, $db:ty) => {
        impl $store {
            fn subscription_row(row: &<$db as sqlx::Database>::Row) -> Result<SubscriptionRow> {
                Ok(SubscriptionRow {
                    account_id: row.try_get("account_id")?,
                    plan: row.try_get("plan")?,
                    state: row.try_get("state")?,
                    body: row.try_get("body")?,
                    version: row.try_get("version")?,
                    updated_at: row.try_get("updated_at")?,
                })
            }

            fn object_row(row: &<$db as sqlx::Database>::Row) -> Result<ProcessorObject> {
                Ok(ProcessorObject {
                    id: row.try_get("id")?,
                    kind: row.try_get("kind")?,
                    account_id: row.try_get("account_id")?,
                    state: row.try_get("state")?,
                    created: row.try_get("created")?,
                })
            }

            fn document_row(row: &<$db as sqlx::Database>::Row) -> Result<BillingDocument> {
                let kind: String = row.try_get("kind")?;
                let code: String = row.try_get("currency")?;
                Ok(BillingDocument {
                    seq: row.try_get("seq")?,
                    id: row.try_get("id")?,
                    account_id: row.try_get("account_id")?,
                    kind: DocumentKind::parse(&kind)
                        .ok_or_else(|| corrupt(format!("document kind {kind:?}")))?,
                    status: row.try_get("status")?,
                    amount: row.try_get("amount")?,
                    currency: currency(&code)?,
                    created_at: row.try_get("created_at")?,
                    body: row.try_get("body")?,
                })
            }

            /// Writes the receipts of the top-ups among `txs`.
            pub(super) async fn write_receipts(
                db: &mut sqlx::Transaction<'_, $db>,
                txs: &[&Transaction],
            ) -> Result<()> {
                for doc in txs.iter().flat_map(|tx| receipts(tx)) {
                    Self::upsert_document(db, &doc).await?;
                }
                Ok(())
            }

            async fn upsert_document(
                db: &mut sqlx::Transaction<'_, $db>,
                doc: &BillingDocument,
            ) -> Result<()> {
                sqlx::query(
                    "INSERT INTO billing_documents \
                     (id, account_id, kind, status, amount, currency, created_at, body) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (id) DO UPDATE SET status = excluded.status, \
                     amount = excluded.amount, body = excluded.body",
                )
                .bind(&doc.id)
                .bind(&doc.account_id)
                .bind(doc.kind.as_str())
                .bind(&doc.status)
                .bind(doc.amount)
                .bind(doc.currency.code())
                .bind(doc.created_at)
                .bind(&doc.body)
                .execute(&mut **db)
                .await?;
                Ok(())
            }

            /// Inserts `tx` unless its idempotency key is taken; whether it
            /// was new.
            pub(super) async fn insert_transaction(
                db: &mut sqlx::Transaction<'_, $db>,
                tx: &Transaction,
            ) -> Result<bool> {
                tx.validate()?;
                let seq: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO ledger_transactions \
                     (id, idempotency_key, kind, reference, memo, fingerprint, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (idempotency_key) DO NOTHING RETURNING seq",
                )
                .bind(&tx.id)
                .bind(&tx.idempotency_key)
                .bind(tx.kind.as_str())
                .bind(&tx.reference)
                .bind(&tx.memo)
                .bind(&tx.fingerprint)
                .bind(tx.created_at)
                .fetch_optional(&mut **db)
                .await?;
                if seq.is_none() {
                    return Ok(false);
                }
                Self::write_entries(db, &[tx]).await?;
                Self::write_receipts(db, &[tx]).await?;
                Ok(true)
            }

            async fn insert_event(
                db: &mut sqlx::Transaction<'_, $db>,
                event: &ProcessorEvent,
            ) -> Result<bool> {
                let inserted = sqlx::query(
                    "INSERT INTO processor_events \
                     (id, type, created, account_id, outcome, received_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
                )
                .bind(&event.id)
                .bind(&event.kind)
                .bind(event.created)
                .bind(&event.account_id)
                .bind(&event.outcome)
                .bind(event.received_at)
                .execute(&mut **db)
                .await?;
                Ok(inserted.rows_affected() == 1)
            }

            async fn link(
                db: &mut sqlx::Transaction<'_, $db>,
                customer: &str,
                account: &str,
            ) -> Result<()> {
                // Write first: on SQLite a transaction that reads and then
                // writes can fail at once if another wrote in between.
                let inserted = sqlx::query(
                    "INSERT INTO processor_customers (customer_id, account_id) VALUES ($1, $2) \
                     ON CONFLICT (customer_id) DO NOTHING",
                )
                .bind(customer)
                .bind(account)
                .execute(&mut **db)
                .await;
                match inserted {
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                        return Err(StoreError::Duplicate(format!(
                            "a customer id for account {account}"
                        )));
                    }
                    Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                        return Err(StoreError::NotFound(format!("account {account}")));
                    }
                    Err(e) => return Err(e.into()),
                    Ok(done) if done.rows_affected() == 1 => return Ok(()),
                    Ok(_) => {}
                }
                let linked: Option<String> = sqlx::query_scalar(
                    "SELECT account_id FROM processor_customers WHERE customer_id = $1",
                )
                .bind(customer)
                .fetch_optional(&mut **db)
                .await?;
                match linked {
                    Some(a) if a == account => Ok(()),
                    other => Err(StoreError::Duplicate(format!(
                        "customer {customer} (linked to {})",
                        other.unwrap_or_default()
                    ))),
                }
            }
        }

        #[async_trait::async_trait]
        impl Billing for $store {
            async fn commit_billing(&self, change: &BillingChange) -> Result<BillingOutcome> {
                let mut db = self.pool.begin().await?;
                if let Some(event) = &change.event {
                    if !Self::insert_event(&mut db, event).await? {
                        db.rollback().await?;
                        return Ok(BillingOutcome::DuplicateEvent);
                    }
                }
                if let Some((customer, account)) = &change.link_customer {
                    Self::link(&mut db, customer, account).await?;
                }
                for object in &change.objects {
                    sqlx::query(
                        "INSERT INTO processor_objects (id, kind, account_id, state, created) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET \
                         account_id = excluded.account_id, state = excluded.state, \
                         created = excluded.created",
                    )
                    .bind(&object.id)
                    .bind(&object.kind)
                    .bind(&object.account_id)
                    .bind(&object.state)
                    .bind(object.created)
                    .execute(&mut *db)
                    .await?;
                }
                if let Some(write) = &change.subscription {
                    let row = &write.row;
                    let written = match write.expected_version {
                        Some(version) => sqlx::query(
                            "UPDATE subscriptions SET plan = $2, state = $3, body = $4, \
                             version = version + 1, updated_at = $5 \
                             WHERE account_id = $1 AND version = $6",
                        )
                        .bind(&row.account_id)
                        .bind(&row.plan)
                        .bind(&row.state)
                        .bind(&row.body)
                        .bind(row.updated_at)
                        .bind(version)
                        .execute(&mut *db)
                        .await?
                        .rows_affected(),
                        None => sqlx::query(
                            "INSERT INTO subscriptions \
                             (account_id, plan, state, body, version, updated_at) \
                             VALUES ($1, $2, $3, $4, 1, $5) ON CONFLICT (account_id) DO NOTHING",
                        )
                        .bind(&row.account_id)
                        .bind(&row.plan)
                        .bind(&row.state)
                        .bind(&row.body)
                        .bind(row.updated_at)
                        .execute(&mut *db)
                        .await?
                        .rows_affected(),
                    };
                    if written == 0 {
                        db.rollback().await?;
                        return Ok(BillingOutcome::VersionConflict);
                    }
                }
                for doc in &change.documents {
                    Self::upsert_document(&mut db, doc).await?;
                }
                let mut moved = false;
                for tx in &change.transactions {
                    moved |= Self::insert_transaction(&mut db, tx).await?;
                }
                Self::insert_notifications(&mut db, &change.notifications).await?;
                if moved || change.link_customer.is_some() {
                    Self::bump(&mut db).await?;
                }
                db.commit().await?;
                Ok(BillingOutcome::Committed)
            }

            async fn subscription(&self, account_id: &str) -> Result<Option<SubscriptionRow>> {
                sqlx::query("SELECT * FROM subscriptions WHERE account_id = $1")
                    .bind(account_id)
                    .fetch_optional(&self.pool)
                    .await?
                    .map(|row| Self::subscription_row(&row))
                    .transpose()
            }

            async fn subscriptions(&self) -> Result<Vec<SubscriptionRow>> {
                sqlx::query("SELECT * FROM subscriptions ORDER BY account_id")
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(Self::subscription_row)
                    .collect()
            }

            async fn add_quota_usage(
                &self,
                usage: &[QuotaUsage],
                notifications: &[NewNotification],
            ) -> Result<()> {
                let mut db = self.pool.begin().await?;
                for u in usage {
                    sqlx::query(
                        "INSERT INTO quota_usage \
                         (account_id, period_start, grp, included, overage, notified) \
                         VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (account_id, period_start, grp) DO UPDATE SET \
                         included = quota_usage.included + excluded.included, \
                         overage = quota_usage.overage + excluded.overage, \
                         notified = CASE WHEN excluded.notified > quota_usage.notified \
                         THEN excluded.notified ELSE quota_usage.notified END",
                    )
                    .bind(&u.account_id)
                    .bind(u.period_start)
                    .bind(&u.group)
                    .bind(u.included)
                    .bind(u.overage)
                    .bind(u.notified)
                    .execute(&mut *db)
                    .await?;
                }
                Self::insert_notifications(&mut db, notifications).await?;
                db.commit().await?;
                Ok(())
            }

            async fn quota_usage(
                &self,
                account_id: &str,
                period_start: i64,
            ) -> Result<Vec<QuotaUsage>> {
                let rows = sqlx::query(
                    "SELECT * FROM quota_usage WHERE account_id = $1 AND period_start = $2 \
                     ORDER BY grp",
                )
                .bind(account_id)
                .bind(period_start)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok(QuotaUsage {
                            account_id: row.try_get("account_id")?,
                            period_start: row.try_get("period_start")?,
                            group: row.try_get("grp")?,
                            included: row.try_get("included")?,
                            overage: row.try_get("overage")?,
                            notified: row.try_get("notified")?,
                        })
                    })
                    .collect()
            }

            async fn documents(
                &self,
                account_id: Option<&str>,
                kind: Option<DocumentKind>,
                before_seq: Option<i64>,
                limit: u32,
            ) -> Result<Vec<BillingDocument>> {
                sqlx::query(&format!(
                    "SELECT {DOCUMENT_COLUMNS} FROM billing_documents \
                     WHERE ($1 IS NULL OR account_id = $1) AND ($2 IS NULL OR kind = $2) \
                     AND seq < $3 ORDER BY seq DESC LIMIT $4"
                ))
                .bind(account_id)
                .bind(kind.map(DocumentKind::as_str))
                .bind(before_seq.unwrap_or(i64::MAX))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(Self::document_row)
                .collect()
            }

            async fn document(&self, id: &str) -> Result<Option<BillingDocument>> {
                sqlx::query(&format!(
                    "SELECT {DOCUMENT_COLUMNS} FROM billing_documents WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .map(|row| Self::document_row(&row))
                .transpose()
            }

            async fn link_customer(&self, customer_id: &str, account_id: &str) -> Result<()> {
                let mut db = self.pool.begin().await?;
                Self::link(&mut db, customer_id, account_id).await?;
                db.commit().await?;
                Ok(())
            }

            async fn account_for_customer(&self, customer_id: &str) -> Result<Option<String>> {
                Ok(sqlx::query_scalar(
                    "SELECT account_id FROM processor_customers WHERE customer_id = $1",
                )
                .bind(customer_id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn customer_of(&self, account_id: &str) -> Result<Option<String>> {
                Ok(sqlx::query_scalar(
                    "SELECT customer_id FROM processor_customers WHERE account_id = $1",
                )
                .bind(account_id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn processor_object(&self, id: &str) -> Result<Option<ProcessorObject>> {
                sqlx::query("SELECT * FROM processor_objects WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .map(|row| Self::object_row(&row))
                    .transpose()
            }

            async fn processor_objects_of(
                &self,
                account_id: &str,
                kind: &str,
            ) -> Result<Vec<ProcessorObject>> {
                sqlx::query(
                    "SELECT * FROM processor_objects WHERE account_id = $1 AND kind = $2 \
                     ORDER BY id",
                )
                .bind(account_id)
                .bind(kind)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(Self::object_row)
                .collect()
            }

            async fn processor_event(&self, id: &str) -> Result<Option<ProcessorEvent>> {
                let row = sqlx::query("SELECT * FROM processor_events WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|row| {
                    Ok(ProcessorEvent {
                        id: row.try_get("id")?,
                        kind: row.try_get("type")?,
                        created: row.try_get("created")?,
                        account_id: row.try_get("account_id")?,
                        outcome: row.try_get("outcome")?,
                        received_at: row.try_get("received_at")?,
                    })
                })
                .transpose()
            }

            async fn record_processor_event(&self, event: &ProcessorEvent) -> Result<bool> {
                let mut db = self.pool.begin().await?;
                let new = Self::insert_event(&mut db, event).await?;
                db.commit().await?;
                Ok(new)
            }
        }
    };
}

sql_billing!(SqliteStore, sqlx::Sqlite);
sql_billing!(PgStore, sqlx::Postgres);
