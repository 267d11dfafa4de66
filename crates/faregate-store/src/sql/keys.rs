//! Accounts and API keys in SQL, for both stores: their rows with the LLM
//! columns of schema version 4 (a key's models, budget and per-minute
//! limits; an account's budget), and the writes that check that a budget is
//! kept in its account's currency. A key's row carries no currency, so keys
//! are always read joined with their account.

use faregate_core::{Budget, Currency, LlmLimits, Money};
use sqlx::Row;

use super::{PgStore, SqliteStore, corrupt, currency, decode_routes, encode_routes};
use crate::{Account, KeyRecord, LedgerError, Result, StoreError};

/// A budget as its two columns: atomic units and `day` or `month`.
fn budget_columns(budget: Option<&Budget>) -> Result<(Option<i64>, Option<&'static str>)> {
    let Some(b) = budget else {
        return Ok((None, None));
    };
    let atomic = i64::try_from(b.amount.atomic()).map_err(|_| LedgerError::OutOfRange)?;
    Ok((Some(atomic), Some(b.period.as_str())))
}

/// A budget read back from its columns, in `currency`.
fn read_budget(
    amount: Option<i64>,
    period: Option<String>,
    currency: Currency,
) -> Result<Option<Budget>> {
    match (amount, period) {
        (None, None) => Ok(None),
        (Some(amount), Some(period)) => {
            let atomic =
                u64::try_from(amount).map_err(|_| corrupt(format!("budget amount {amount}")))?;
            Ok(Some(Budget {
                amount: Money::from_atomic(atomic, currency),
                period: period
                    .parse()
                    .map_err(|_| corrupt(format!("budget period {period:?}")))?,
            }))
        }
        _ => Err(corrupt("a budget with an amount or a period, not both")),
    }
}

/// A per-minute limit as its column.
fn limit_column(limit: Option<u64>) -> Result<Option<i64>> {
    limit
        .map(|n| i64::try_from(n).map_err(|_| StoreError::from(LedgerError::OutOfRange)))
        .transpose()
}

/// A per-minute limit read back.
fn read_limit(limit: Option<i64>) -> Result<Option<u64>> {
    limit
        .map(|n| u64::try_from(n).map_err(|_| corrupt(format!("per-minute limit {n}"))))
        .transpose()
}

/// Refuses a budget in another currency than `held`, account `account`'s.
fn same_currency(account: &str, held: Currency, budget: Option<&Budget>) -> Result<()> {
    match budget {
        Some(b) if b.amount.currency() != held => Err(StoreError::Currency {
            account: account.to_owned(),
            held: held.code(),
            given: b.amount.currency().code(),
        }),
        _ => Ok(()),
    }
}

macro_rules! sql_keys {
    ($store:ident, $db:ty) => {
        impl $store {
            pub(super) fn account_row(row: &<$db as sqlx::Database>::Row) -> Result<Account> {
                let code: String = row.try_get("currency")?;
                let currency = currency(&code)?;
                Ok(Account {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    currency,
                    created_at: row.try_get("created_at")?,
                    budget: read_budget(
                        row.try_get("budget_amount")?,
                        row.try_get("budget_period")?,
                        currency,
                    )?,
                })
            }

            /// A key's row joined with its account's `currency` (as
            /// `account_currency`), which its budget is kept in.
            pub(super) fn key_row(row: &<$db as sqlx::Database>::Row) -> Result<KeyRecord> {
                let code: String = row.try_get("account_currency")?;
                let budget = read_budget(
                    row.try_get("budget_amount")?,
                    row.try_get("budget_period")?,
                    currency(&code)?,
                )?;
                Ok(KeyRecord {
                    id: row.try_get("id")?,
                    account_id: row.try_get("account_id")?,
                    hash: row.try_get("hash")?,
                    prefix: row.try_get("prefix")?,
                    live: row.try_get("live")?,
                    routes: decode_routes(row.try_get("routes")?),
                    models: decode_routes(row.try_get("models")?),
                    limits: LlmLimits {
                        budget,
                        tpm: read_limit(row.try_get("tpm")?)?,
                        rpm: read_limit(row.try_get("rpm")?)?,
                    },
                    expires_at: row.try_get("expires_at")?,
                    revoked_at: row.try_get("revoked_at")?,
                    created_at: row.try_get("created_at")?,
                })
            }

            /// One account, read inside `db`.
            async fn account_in(
                db: &mut sqlx::Transaction<'_, $db>,
                id: &str,
            ) -> Result<Option<Account>> {
                sqlx::query(
                    "SELECT id, name, currency, created_at, budget_amount, budget_period \
                     FROM accounts WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&mut **db)
                .await?
                .map(|row| Self::account_row(&row))
                .transpose()
            }

            pub(super) async fn insert_account(&self, account: &Account) -> Result<()> {
                same_currency(&account.id, account.currency, account.budget.as_ref())?;
                let (budget_amount, budget_period) = budget_columns(account.budget.as_ref())?;
                let mut db = self.pool.begin().await?;
                let inserted = sqlx::query(
                    "INSERT INTO accounts \
                     (id, name, currency, created_at, budget_amount, budget_period) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&account.id)
                .bind(&account.name)
                .bind(account.currency.code())
                .bind(account.created_at)
                .bind(budget_amount)
                .bind(budget_period)
                .execute(&mut *db)
                .await;
                match inserted {
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                        db.rollback().await?;
                        return Err(StoreError::Duplicate(format!("account {}", account.id)));
                    }
                    other => {
                        other?;
                    }
                }
                Self::bump(&mut db).await?;
                db.commit().await?;
                Ok(())
            }

            pub(super) async fn select_account(&self, id: &str) -> Result<Option<Account>> {
                sqlx::query(
                    "SELECT id, name, currency, created_at, budget_amount, budget_period \
                     FROM accounts WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .map(|row| Self::account_row(&row))
                .transpose()
            }

            pub(super) async fn select_accounts(
                &self,
                after: Option<&str>,
                limit: u32,
            ) -> Result<Vec<Account>> {
                sqlx::query(
                    "SELECT id, name, currency, created_at, budget_amount, budget_period \
                     FROM accounts WHERE id > $1 ORDER BY id LIMIT $2",
                )
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(Self::account_row)
                .collect()
            }

            /// Writes first, then reads, inside the transaction: on SQLite a
            /// transaction that reads first cannot become a writer once
            /// another connection has committed (`SQLITE_BUSY_SNAPSHOT`).
            pub(super) async fn update_account_budget(
                &self,
                id: &str,
                budget: Option<Budget>,
            ) -> Result<Account> {
                let (budget_amount, budget_period) = budget_columns(budget.as_ref())?;
                let mut db = self.pool.begin().await?;
                sqlx::query(
                    "UPDATE accounts SET budget_amount = $2, budget_period = $3 WHERE id = $1",
                )
                .bind(id)
                .bind(budget_amount)
                .bind(budget_period)
                .execute(&mut *db)
                .await?;
                let Some(account) = Self::account_in(&mut db, id).await? else {
                    db.rollback().await?;
                    return Err(StoreError::NotFound(format!("account {id}")));
                };
                if let Err(e) = same_currency(id, account.currency, budget.as_ref()) {
                    db.rollback().await?;
                    return Err(e);
                }
                Self::bump(&mut db).await?;
                db.commit().await?;
                Ok(account)
            }

            /// Inserts first, then checks the budget's currency against the
            /// account's and rolls back on a mismatch (see
            /// [`update_account_budget`](Self::update_account_budget) on why
            /// the write comes first).
            pub(super) async fn insert_key(&self, key: &KeyRecord) -> Result<()> {
                let (budget_amount, budget_period) = budget_columns(key.limits.budget.as_ref())?;
                let (tpm, rpm) = (limit_column(key.limits.tpm)?, limit_column(key.limits.rpm)?);
                let mut db = self.pool.begin().await?;
                let inserted = sqlx::query(
                    "INSERT INTO api_keys (id, account_id, hash, prefix, live, routes, \
                     expires_at, revoked_at, created_at, models, budget_amount, budget_period, \
                     tpm, rpm) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                )
                .bind(&key.id)
                .bind(&key.account_id)
                .bind(&key.hash)
                .bind(&key.prefix)
                .bind(key.live)
                .bind(encode_routes(key.routes.as_ref()))
                .bind(key.expires_at)
                .bind(key.revoked_at)
                .bind(key.created_at)
                .bind(encode_routes(key.models.as_ref()))
                .bind(budget_amount)
                .bind(budget_period)
                .bind(tpm)
                .bind(rpm)
                .execute(&mut *db)
                .await;
                match inserted {
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                        db.rollback().await?;
                        return Err(StoreError::Duplicate(format!("key {}", key.id)));
                    }
                    Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                        db.rollback().await?;
                        return Err(StoreError::NotFound(format!("account {}", key.account_id)));
                    }
                    other => {
                        other?;
                    }
                }
                let account = Self::account_in(&mut db, &key.account_id).await?;
                let checked = match &account {
                    Some(a) => same_currency(&a.id, a.currency, key.limits.budget.as_ref()),
                    None => Err(StoreError::NotFound(format!("account {}", key.account_id))),
                };
                if let Err(e) = checked {
                    db.rollback().await?;
                    return Err(e);
                }
                Self::bump(&mut db).await?;
                db.commit().await?;
                Ok(())
            }

            /// Keys with their account's currency; `filter` (on `k`, with
            /// any order) is appended and `bind` bound to `$1` when given.
            async fn select_keys(
                &self,
                filter: &str,
                bind: Option<&str>,
            ) -> Result<Vec<KeyRecord>> {
                let sql = format!(
                    "SELECT k.*, a.currency AS account_currency \
                     FROM api_keys k JOIN accounts a ON a.id = k.account_id {filter}"
                );
                let mut query = sqlx::query(&sql);
                if let Some(value) = bind {
                    query = query.bind(value);
                }
                query
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(Self::key_row)
                    .collect()
            }

            pub(super) async fn select_key(&self, id: &str) -> Result<Option<KeyRecord>> {
                Ok(self
                    .select_keys("WHERE k.id = $1", Some(id))
                    .await?
                    .pop())
            }

            pub(super) async fn select_account_keys(
                &self,
                account_id: &str,
            ) -> Result<Vec<KeyRecord>> {
                self.select_keys(
                    "WHERE k.account_id = $1 ORDER BY k.created_at, k.id",
                    Some(account_id),
                )
                .await
            }

            pub(super) async fn select_active_keys(&self) -> Result<Vec<KeyRecord>> {
                self.select_keys("WHERE k.revoked_at IS NULL", None).await
            }

            pub(super) async fn revoke(&self, id: &str, at: i64) -> Result<Option<KeyRecord>> {
                let mut db = self.pool.begin().await?;
                let changed = sqlx::query(
                    "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
                )
                .bind(id)
                .bind(at)
                .execute(&mut *db)
                .await?;
                if changed.rows_affected() == 0 {
                    db.rollback().await?;
                    return Ok(None);
                }
                Self::bump(&mut db).await?;
                let row = sqlx::query(
                    "SELECT k.*, a.currency AS account_currency \
                     FROM api_keys k JOIN accounts a ON a.id = k.account_id WHERE k.id = $1",
                )
                .bind(id)
                .fetch_one(&mut *db)
                .await?;
                db.commit().await?;
                Self::key_row(&row).map(Some)
            }
        }
    };
}

sql_keys!(SqliteStore, sqlx::Sqlite);
sql_keys!(PgStore, sqlx::Postgres);

#[cfg(test)]
mod tests {
    use faregate_core::BudgetPeriod;

    use super::*;

    #[test]
    fn budgets_round_trip_through_their_columns() {
        let budget = Budget::parse("5.00 USD/day", None).unwrap();
        let (amount, period) = budget_columns(Some(&budget)).unwrap();
        assert_eq!((amount, period), (Some(5_000_000), Some("day")));
        let back = read_budget(amount, period.map(str::to_owned), Currency::USD).unwrap();
        assert_eq!(back, Some(budget));
        assert_eq!(budget_columns(None).unwrap(), (None, None));
        assert_eq!(read_budget(None, None, Currency::USD).unwrap(), None);
    }

    #[test]
    fn half_a_budget_or_a_negative_one_is_corrupt() {
        for (amount, period) in [
            (Some(5), None),
            (None, Some("day")),
            (Some(-1), Some("day")),
            (Some(5), Some("week")),
        ] {
            let read = read_budget(amount, period.map(str::to_owned), Currency::USD);
            assert!(
                matches!(read, Err(StoreError::Corrupt(_))),
                "{amount:?} {period:?}"
            );
        }
        assert!(matches!(read_limit(Some(-1)), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn what_63_bits_cannot_hold_is_refused() {
        let huge = Budget {
            amount: Money::from_atomic(u64::MAX, Currency::USD),
            period: BudgetPeriod::Month,
        };
        assert!(budget_columns(Some(&huge)).is_err());
        assert!(limit_column(Some(u64::MAX)).is_err());
        assert_eq!(limit_column(Some(7)).unwrap(), Some(7));
    }

    #[test]
    fn a_budget_must_be_in_the_accounts_currency() {
        let eur = Budget::parse("5 EUR/month", None).unwrap();
        let held = Currency::from_code("EUR").unwrap();
        assert!(same_currency("a", held, Some(&eur)).is_ok());
        assert!(matches!(
            same_currency("a", Currency::USD, Some(&eur)),
            Err(StoreError::Currency {
                held: "USD",
                given: "EUR",
                ..
            })
        ));
        assert!(same_currency("a", Currency::USD, None).is_ok());
    }
}
