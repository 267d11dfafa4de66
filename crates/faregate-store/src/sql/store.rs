//! The `Store` trait for both SQL stores, written once by a macro from the
//! same SQL text (`$1` placeholders work on both backends).

use std::collections::{BTreeMap, HashSet};

use faregate_core::{Budget, Currency};
use sqlx::{QueryBuilder, Row};

use super::{CHUNK, PgStore, SqliteStore, compare_balances, corrupt, currency};
use crate::ledger::{LedgerAccount, Transaction, TransactionRecord};
use crate::usage;
use crate::{
    Account, Balance, KeyRecord, LedgerQuery, Posted, Result, Store, UsageRecord, VerifyReport,
};

macro_rules! sql_store {
    ($store:ident, $db:ty, $backend:literal, $snapshot:expr) => {
        #[async_trait::async_trait]
        impl Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn create_account(&self, account: &Account) -> Result<()> {
                self.insert_account(account).await
            }

            async fn account(&self, id: &str) -> Result<Option<Account>> {
                self.select_account(id).await
            }

            async fn accounts(&self, after: Option<&str>, limit: u32) -> Result<Vec<Account>> {
                self.select_accounts(after, limit).await
            }

            async fn create_key(&self, key: &KeyRecord) -> Result<()> {
                self.insert_key(key).await
            }

            async fn key(&self, id: &str) -> Result<Option<KeyRecord>> {
                self.select_key(id).await
            }

            async fn keys(&self, account_id: &str) -> Result<Vec<KeyRecord>> {
                self.select_account_keys(account_id).await
            }

            async fn active_keys(&self) -> Result<Vec<KeyRecord>> {
                self.select_active_keys().await
            }

            async fn revoke_key(&self, id: &str, at: i64) -> Result<Option<KeyRecord>> {
                self.revoke(id, at).await
            }

            async fn set_account_budget(
                &self,
                account_id: &str,
                budget: Option<Budget>,
            ) -> Result<Account> {
                self.update_account_budget(account_id, budget).await
            }

            async fn post(&self, tx: &Transaction) -> Result<Posted> {
                tx.validate()?;
                let mut db = self.pool.begin().await?;
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
                .fetch_optional(&mut *db)
                .await?;
                let Some(seq) = seq else {
                    db.rollback().await?;
                    let first = self
                        .transaction_by_key(&tx.idempotency_key)
                        .await?
                        .ok_or_else(|| corrupt("idempotency key taken by no transaction"))?;
                    return Ok(if first.tx.fingerprint == tx.fingerprint {
                        Posted::Replayed(first)
                    } else {
                        Posted::Conflict(first)
                    });
                };
                Self::write_entries(&mut db, &[tx]).await?;
                Self::write_receipts(&mut db, &[tx]).await?;
                Self::bump(&mut db).await?;
                db.commit().await?;
                Ok(Posted::Created(TransactionRecord {
                    seq,
                    tx: tx.clone(),
                }))
            }

            async fn post_batch(&self, txs: &[Transaction], usage: &[UsageRecord]) -> Result<usize> {
                for tx in txs {
                    tx.validate()?;
                }
                let mut db = self.batch_pool().begin().await?;
                let mut new: HashSet<String> = HashSet::with_capacity(txs.len());
                for chunk in txs.chunks(CHUNK) {
                    let mut q = QueryBuilder::<$db>::new(
                        "INSERT INTO ledger_transactions \
                         (id, idempotency_key, kind, reference, memo, fingerprint, created_at) ",
                    );
                    q.push_values(chunk, |mut b, tx| {
                        b.push_bind(tx.id.as_str())
                            .push_bind(tx.idempotency_key.as_str())
                            .push_bind(tx.kind.as_str())
                            .push_bind(tx.reference.as_str())
                            .push_bind(tx.memo.as_deref())
                            .push_bind(tx.fingerprint.as_deref())
                            .push_bind(tx.created_at);
                    });
                    q.push(" ON CONFLICT (idempotency_key) DO NOTHING RETURNING id");
                    let ids: Vec<String> = q.build_query_scalar().fetch_all(&mut *db).await?;
                    new.extend(ids);
                }
                let fresh: Vec<&Transaction> =
                    txs.iter().filter(|t| new.contains(&t.id)).collect();
                Self::write_entries(&mut db, &fresh).await?;
                // Each new debit's requests, packed into rows of their own.
                // They come grouped by debit: a list of groups, not a map.
                let mut by_tx: Vec<(&str, Vec<&UsageRecord>)> = Vec::new();
                for u in usage {
                    let tx = u.transaction_id.as_str();
                    match by_tx.iter_mut().rev().find(|(t, _)| *t == tx) {
                        Some((_, records)) => records.push(u),
                        None if new.contains(tx) => by_tx.push((tx, vec![u])),
                        None => {}
                    }
                }
                let rows: Vec<(&str, i64, i64, Vec<u8>)> = by_tx
                    .iter()
                    .flat_map(|(tx, records)| {
                        records.chunks(usage::MAX_PER_ROW).map(move |part| {
                            let total = part.iter().map(|u| u.amount).sum::<i64>();
                            (*tx, part.len() as i64, total, usage::encode(part.iter().copied()))
                        })
                    })
                    .collect();
                for chunk in rows.chunks(CHUNK) {
                    let mut q = QueryBuilder::<$db>::new(
                        "INSERT INTO usage_batches (transaction_id, records, total, payload) ",
                    );
                    q.push_values(chunk, |mut b, (tx, records, total, payload)| {
                        b.push_bind(*tx)
                            .push_bind(*records)
                            .push_bind(*total)
                            .push_bind(payload.as_slice());
                    });
                    q.build().execute(&mut *db).await?;
                }
                db.commit().await?;
                Ok(fresh.len())
            }

            async fn usage(
                &self,
                account: &LedgerAccount,
                before_seq: Option<i64>,
                limit: u32,
            ) -> Result<Vec<(i64, UsageRecord)>> {
                let limit = limit.clamp(1, 10_000) as usize;
                let mut out = Vec::new();
                // Packed records first: all are newer than the old rows.
                if let Some((max_row, max_index)) = usage::rows_before(before_seq) {
                    let rows = sqlx::query(
                        "SELECT seq, transaction_id, payload FROM usage_batches \
                         WHERE transaction_id IN \
                             (SELECT transaction_id FROM ledger_entries WHERE account = $1) \
                         AND seq <= $2 ORDER BY seq DESC LIMIT $3",
                    )
                    .bind(account.as_str())
                    .bind(max_row)
                    .bind(limit as i64)
                    .fetch_all(&self.pool)
                    .await?;
                    for row in &rows {
                        let seq: i64 = row.try_get("seq")?;
                        let tx: String = row.try_get("transaction_id")?;
                        let payload: Vec<u8> = row.try_get("payload")?;
                        let records = usage::decode(&tx, &payload)
                            .ok_or_else(|| corrupt(format!("usage of {tx} cannot be read")))?;
                        let upto = if seq == max_row { max_index } else { usize::MAX };
                        for (i, record) in records.into_iter().enumerate().rev() {
                            if i < upto && out.len() < limit {
                                out.push((usage::cursor(seq, i), record));
                            }
                        }
                        if out.len() >= limit {
                            return Ok(out);
                        }
                    }
                }
                let before_old = before_seq.unwrap_or(i64::MAX).min(usage::CURSOR_BASE);
                let old = sqlx::query(
                    "SELECT u.seq, u.transaction_id, u.reference, u.amount, u.created_at \
                     FROM usage_records u \
                     WHERE u.transaction_id IN \
                         (SELECT transaction_id FROM ledger_entries WHERE account = $1) \
                     AND u.seq < $2 ORDER BY u.seq DESC LIMIT $3",
                )
                .bind(account.as_str())
                .bind(before_old)
                .bind((limit - out.len()) as i64)
                .fetch_all(&self.pool)
                .await?;
                for row in &old {
                    out.push((
                        row.try_get("seq")?,
                        UsageRecord {
                            transaction_id: row.try_get("transaction_id")?,
                            reference: row.try_get("reference")?,
                            amount: row.try_get("amount")?,
                            created_at: row.try_get("created_at")?,
                        },
                    ));
                }
                Ok(out)
            }

            async fn transaction_by_key(
                &self,
                idempotency_key: &str,
            ) -> Result<Option<TransactionRecord>> {
                let row = sqlx::query("SELECT * FROM ledger_transactions WHERE idempotency_key = $1")
                    .bind(idempotency_key)
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(row) = row else { return Ok(None) };
                let record = Self::transaction_row(&row)?;
                Ok(self.with_postings(vec![record]).await?.pop())
            }

            async fn ledger(&self, query: &LedgerQuery) -> Result<Vec<TransactionRecord>> {
                let mut q = QueryBuilder::<$db>::new("SELECT * FROM ledger_transactions WHERE 1 = 1");
                if let Some(account) = &query.account {
                    q.push(" AND id IN (SELECT transaction_id FROM ledger_entries WHERE account = ")
                        .push_bind(account.as_str().to_owned())
                        .push(")");
                }
                if let Some(kind) = query.kind {
                    q.push(" AND kind = ").push_bind(kind.as_str());
                }
                if let Some(since) = query.since {
                    q.push(" AND created_at >= ").push_bind(since);
                }
                if let Some(until) = query.until {
                    q.push(" AND created_at < ").push_bind(until);
                }
                if let Some(before) = query.before_seq {
                    q.push(" AND seq < ").push_bind(before);
                }
                q.push(" ORDER BY seq DESC LIMIT ")
                    .push_bind(i64::from(query.limit.clamp(1, 1000)));
                let records = q
                    .build()
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(Self::transaction_row)
                    .collect::<Result<Vec<_>>>()?;
                self.with_postings(records).await
            }

            async fn balance(&self, account: &LedgerAccount, currency: Currency) -> Result<i64> {
                let balance: Option<i64> = sqlx::query_scalar(
                    "SELECT balance FROM balances WHERE account = $1 AND currency = $2",
                )
                .bind(account.as_str())
                .bind(currency.code())
                .fetch_optional(&self.pool)
                .await?;
                Ok(balance.unwrap_or(0))
            }

            async fn balances(&self) -> Result<Vec<Balance>> {
                sqlx::query("SELECT account, currency, balance FROM balances")
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|row| {
                        let code: String = row.try_get("currency")?;
                        Ok(Balance {
                            account: LedgerAccount::from_stored(row.try_get("account")?),
                            currency: currency(&code)?,
                            amount: row.try_get("balance")?,
                        })
                    })
                    .collect()
            }

            async fn revision(&self) -> Result<i64> {
                Ok(sqlx::query_scalar("SELECT value FROM revision WHERE id = 1")
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn verify(&self) -> Result<VerifyReport> {
                // One snapshot, so that a gateway writing meanwhile cannot
                // make a sound ledger look unsound.
                let mut db = self.pool.begin().await?;
                if let Some(snapshot) = $snapshot {
                    sqlx::query(snapshot).execute(&mut *db).await?;
                }
                let mut report = VerifyReport::default();
                let count = |n: i64| u64::try_from(n).unwrap_or(0);
                report.transactions = count(
                    sqlx::query_scalar("SELECT COUNT(*) FROM ledger_transactions")
                        .fetch_one(&mut *db)
                        .await?,
                );
                report.entries = count(
                    sqlx::query_scalar("SELECT COUNT(*) FROM ledger_entries")
                        .fetch_one(&mut *db)
                        .await?,
                );
                report.unbalanced = sqlx::query_as(
                    "SELECT transaction_id, currency, CAST(SUM(amount) AS BIGINT) \
                     FROM ledger_entries GROUP BY transaction_id, currency \
                     HAVING SUM(amount) <> 0 ORDER BY transaction_id",
                )
                .fetch_all(&mut *db)
                .await?;
                report.incomplete = sqlx::query_scalar(
                    "SELECT t.id FROM ledger_transactions t \
                     LEFT JOIN ledger_entries e ON e.transaction_id = t.id \
                     GROUP BY t.id HAVING COUNT(e.seq) < 2 ORDER BY t.id",
                )
                .fetch_all(&mut *db)
                .await?;
                let computed: Vec<(String, String, i64)> = sqlx::query_as(
                    "SELECT account, currency, CAST(SUM(amount) AS BIGINT) \
                     FROM ledger_entries GROUP BY account, currency",
                )
                .fetch_all(&mut *db)
                .await?;
                let cached: Vec<(String, String, i64)> =
                    sqlx::query_as("SELECT account, currency, balance FROM balances")
                        .fetch_all(&mut *db)
                        .await?;
                // A batched debit must equal the requests it carries.
                let mut usage_sums: BTreeMap<String, i64> = BTreeMap::new();
                let old: Vec<(String, i64, i64)> = sqlx::query_as(
                    "SELECT transaction_id, COUNT(*), CAST(SUM(amount) AS BIGINT) \
                     FROM usage_records GROUP BY transaction_id",
                )
                .fetch_all(&mut *db)
                .await?;
                for (tx, n, total) in old {
                    report.usage += count(n);
                    *usage_sums.entry(tx).or_default() += total;
                }
                let packed: Vec<(String, i64, i64, Vec<u8>)> = sqlx::query_as(
                    "SELECT transaction_id, records, total, payload FROM usage_batches",
                )
                .fetch_all(&mut *db)
                .await?;
                for (tx, records, total, payload) in packed {
                    // The row's own count and total must be what it packs.
                    let unpacked = usage::decode(&tx, &payload).filter(|r| {
                        r.len() as i64 == records && r.iter().map(|u| u.amount).sum::<i64>() == total
                    });
                    match unpacked {
                        Some(r) => {
                            report.usage += r.len() as u64;
                            *usage_sums.entry(tx).or_default() += total;
                        }
                        None => report.usage_unreadable.push(tx),
                    }
                }
                let debited: BTreeMap<String, i64> = sqlx::query_as::<_, (String, i64)>(
                    "SELECT transaction_id, CAST(-amount AS BIGINT) FROM ledger_entries \
                     WHERE account LIKE 'customer:%' AND (\
                         transaction_id IN (SELECT transaction_id FROM usage_records) \
                         OR transaction_id IN (SELECT transaction_id FROM usage_batches))",
                )
                .fetch_all(&mut *db)
                .await?
                .into_iter()
                .collect();
                report.usage_mismatched = usage_sums
                    .into_iter()
                    .filter_map(|(tx, total)| {
                        let debit = debited.get(&tx).copied().unwrap_or(0);
                        (debit != total).then_some((tx, total, debit))
                    })
                    .collect();
                db.commit().await?;
                compare_balances(&mut report, cached, computed);
                Ok(report)
            }
        }
    };
}

sql_store!(SqliteStore, sqlx::Sqlite, "sqlite", None::<&str>);
sql_store!(
    PgStore,
    sqlx::Postgres,
    "postgres",
    Some("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
);
