//! The [`Notifications`] half of both SQL stores, written once by a macro
//! from the same SQL text; only PostgreSQL's claim adds `SKIP LOCKED`, so
//! that nodes claiming at once pass over each other's rows instead of
//! waiting for them (SQLite has one writer at a time anyway).

use sqlx::{QueryBuilder, Row};

use super::{PgStore, SqliteStore, corrupt};
use crate::notify::{
    AttemptOutcome, Delivery, DeliveryQuery, DeliveryState, DueDelivery, NewNotification,
    NotificationEndpoint, NotificationEvent, Notifications, clip_error, decode_types, encode_types,
};
use crate::{Result, StoreError};

const DELIVERY_COLUMNS: &str = "SELECT d.seq, d.event_id, e.type AS event_type, d.endpoint_id, \
     d.state, d.attempts, d.next_attempt_at, d.last_status, d.last_error, d.delivered_at, \
     e.created_at FROM notification_deliveries d \
     JOIN notification_events e ON e.id = d.event_id WHERE 1 = 1";

/// A stored count or status that must fit `T`.
fn fits<T: TryFrom<i32>>(value: i32, what: &str) -> Result<T> {
    T::try_from(value).map_err(|_| corrupt(format!("{what} {value}")))
}

/// The columns an outcome writes: state, last status, last error, next
/// attempt, delivered at.
fn outcome_columns(
    outcome: &AttemptOutcome,
) -> (DeliveryState, Option<i32>, Option<&str>, i64, Option<i64>) {
    match outcome {
        AttemptOutcome::Delivered { status, at } => (
            DeliveryState::Delivered,
            Some(i32::from(*status)),
            None,
            *at,
            Some(*at),
        ),
        AttemptOutcome::Retry {
            status,
            error,
            next_attempt_at,
        } => (
            DeliveryState::Pending,
            status.map(i32::from),
            Some(clip_error(error)),
            *next_attempt_at,
            None,
        ),
        AttemptOutcome::GaveUp { status, error, at } => (
            DeliveryState::Failed,
            status.map(i32::from),
            Some(clip_error(error)),
            *at,
            None,
        ),
    }
}

macro_rules! sql_notify {
    ($store:ident, $db:ty, $skip_locked:literal) => {
        impl $store {
            fn endpoint_row(row: &<$db as sqlx::Database>::Row) -> Result<NotificationEndpoint> {
                Ok(NotificationEndpoint {
                    id: row.try_get("id")?,
                    url: row.try_get("url")?,
                    secret: row.try_get("secret")?,
                    events: decode_types(row.try_get("events")?),
                    description: row.try_get("description")?,
                    created_at: row.try_get("created_at")?,
                    disabled_at: row.try_get("disabled_at")?,
                })
            }

            fn delivery_row(row: &<$db as sqlx::Database>::Row) -> Result<Delivery> {
                let state: String = row.try_get("state")?;
                let status: Option<i32> = row.try_get("last_status")?;
                Ok(Delivery {
                    seq: row.try_get("seq")?,
                    event_id: row.try_get("event_id")?,
                    event_type: row.try_get("event_type")?,
                    endpoint_id: row.try_get("endpoint_id")?,
                    state: DeliveryState::parse(&state)
                        .ok_or_else(|| corrupt(format!("delivery state {state:?}")))?,
                    attempts: fits(row.try_get("attempts")?, "attempts")?,
                    next_attempt_at: row.try_get("next_attempt_at")?,
                    last_status: status.map(|s| fits(s, "status")).transpose()?,
                    last_error: row.try_get("last_error")?,
                    delivered_at: row.try_get("delivered_at")?,
                    created_at: row.try_get("created_at")?,
                })
            }

            fn due_row(row: &<$db as sqlx::Database>::Row) -> Result<DueDelivery> {
                Ok(DueDelivery {
                    seq: row.try_get("seq")?,
                    lease_until: row.try_get("lease_until")?,
                    attempts: fits(row.try_get("attempts")?, "attempts")?,
                    endpoint_id: row.try_get("endpoint_id")?,
                    url: row.try_get("url")?,
                    secret: row.try_get("secret")?,
                    event_id: row.try_get("event_id")?,
                    event_type: row.try_get("event_type")?,
                    payload: row.try_get("payload")?,
                })
            }

            fn event_row(row: &<$db as sqlx::Database>::Row) -> Result<NotificationEvent> {
                Ok(NotificationEvent {
                    seq: row.try_get("seq")?,
                    id: row.try_get("id")?,
                    kind: row.try_get("type")?,
                    account_id: row.try_get("account_id")?,
                    payload: row.try_get("payload")?,
                    created_at: row.try_get("created_at")?,
                })
            }
        }

        #[async_trait::async_trait]
        impl Notifications for $store {
            async fn notify(&self, events: &[NewNotification]) -> Result<()> {
                let mut db = self.pool.begin().await?;
                Self::insert_notifications(&mut db, events).await?;
                db.commit().await?;
                Ok(())
            }

            async fn create_endpoint(&self, endpoint: &NotificationEndpoint) -> Result<()> {
                let inserted = sqlx::query(
                    "INSERT INTO notification_endpoints \
                     (id, url, secret, events, description, created_at, disabled_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&endpoint.id)
                .bind(&endpoint.url)
                .bind(&endpoint.secret)
                .bind(encode_types(endpoint.events.as_ref()))
                .bind(&endpoint.description)
                .bind(endpoint.created_at)
                .bind(endpoint.disabled_at)
                .execute(&self.pool)
                .await;
                match inserted {
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(
                        StoreError::Duplicate(format!("notification endpoint {}", endpoint.id)),
                    ),
                    other => other.map(|_| ()).map_err(StoreError::from),
                }
            }

            async fn endpoint(&self, id: &str) -> Result<Option<NotificationEndpoint>> {
                sqlx::query("SELECT * FROM notification_endpoints WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .map(|row| Self::endpoint_row(&row))
                    .transpose()
            }

            async fn endpoints(&self) -> Result<Vec<NotificationEndpoint>> {
                sqlx::query("SELECT * FROM notification_endpoints ORDER BY created_at, id")
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(Self::endpoint_row)
                    .collect()
            }

            async fn disable_endpoint(
                &self,
                id: &str,
                at: i64,
            ) -> Result<Option<NotificationEndpoint>> {
                let mut db = self.pool.begin().await?;
                let changed = sqlx::query(
                    "UPDATE notification_endpoints SET disabled_at = COALESCE(disabled_at, $2) \
                     WHERE id = $1",
                )
                .bind(id)
                .bind(at)
                .execute(&mut *db)
                .await?;
                if changed.rows_affected() == 0 {
                    db.rollback().await?;
                    return Ok(None);
                }
                sqlx::query(
                    "UPDATE notification_deliveries SET state = 'failed', \
                     last_error = 'the endpoint was disabled', lease_until = NULL \
                     WHERE endpoint_id = $1 AND state = 'pending'",
                )
                .bind(id)
                .execute(&mut *db)
                .await?;
                let row = sqlx::query("SELECT * FROM notification_endpoints WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut *db)
                    .await?;
                db.commit().await?;
                Self::endpoint_row(&row).map(Some)
            }

            async fn claim_due(
                &self,
                now: i64,
                lease_ms: i64,
                limit: u32,
            ) -> Result<Vec<DueDelivery>> {
                let lease_until = now.saturating_add(lease_ms.max(1));
                let mut db = self.pool.begin().await?;
                // The outer conditions repeat the inner ones: a row another
                // node claimed meanwhile fails them when PostgreSQL checks
                // the row again after waiting for its lock.
                let claimed: Vec<i64> = sqlx::query_scalar(concat!(
                    "UPDATE notification_deliveries SET lease_until = $1 \
                     WHERE seq IN (SELECT d.seq FROM notification_deliveries d \
                         JOIN notification_endpoints p ON p.id = d.endpoint_id \
                         WHERE d.state = 'pending' AND d.next_attempt_at <= $2 \
                         AND (d.lease_until IS NULL OR d.lease_until <= $2) \
                         AND p.disabled_at IS NULL \
                         ORDER BY d.next_attempt_at, d.seq LIMIT $3",
                    $skip_locked,
                    ") AND state = 'pending' AND next_attempt_at <= $2 \
                     AND (lease_until IS NULL OR lease_until <= $2) RETURNING seq"
                ))
                .bind(lease_until)
                .bind(now)
                .bind(i64::from(limit.clamp(1, 1000)))
                .fetch_all(&mut *db)
                .await?;
                if claimed.is_empty() {
                    db.commit().await?;
                    return Ok(Vec::new());
                }
                let mut q = QueryBuilder::<$db>::new(
                    "SELECT d.seq, d.lease_until, d.attempts, d.endpoint_id, p.url, p.secret, \
                     d.event_id, e.type AS event_type, e.payload \
                     FROM notification_deliveries d \
                     JOIN notification_endpoints p ON p.id = d.endpoint_id \
                     JOIN notification_events e ON e.id = d.event_id WHERE d.seq IN (",
                );
                let mut seqs = q.separated(", ");
                for seq in &claimed {
                    seqs.push_bind(*seq);
                }
                q.push(") ORDER BY d.next_attempt_at, d.seq");
                let rows = q.build().fetch_all(&mut *db).await?;
                db.commit().await?;
                rows.iter().map(Self::due_row).collect()
            }

            async fn record_attempt(
                &self,
                claim: &DueDelivery,
                outcome: &AttemptOutcome,
            ) -> Result<bool> {
                let (state, status, error, next_attempt_at, delivered_at) =
                    outcome_columns(outcome);
                let changed = sqlx::query(
                    "UPDATE notification_deliveries SET state = $3, attempts = attempts + 1, \
                     last_status = $4, last_error = $5, next_attempt_at = $6, \
                     delivered_at = $7, lease_until = NULL \
                     WHERE seq = $1 AND lease_until = $2 AND state = 'pending'",
                )
                .bind(claim.seq)
                .bind(claim.lease_until)
                .bind(state.as_str())
                .bind(status)
                .bind(error)
                .bind(next_attempt_at)
                .bind(delivered_at)
                .execute(&self.pool)
                .await?;
                Ok(changed.rows_affected() == 1)
            }

            async fn deliveries(&self, query: &DeliveryQuery) -> Result<Vec<Delivery>> {
                let mut q = QueryBuilder::<$db>::new(DELIVERY_COLUMNS);
                if let Some(endpoint) = &query.endpoint_id {
                    q.push(" AND d.endpoint_id = ").push_bind(endpoint.clone());
                }
                if let Some(event) = &query.event_id {
                    q.push(" AND d.event_id = ").push_bind(event.clone());
                }
                if let Some(state) = query.state {
                    q.push(" AND d.state = ").push_bind(state.as_str());
                }
                if let Some(before) = query.before_seq {
                    q.push(" AND d.seq < ").push_bind(before);
                }
                q.push(" ORDER BY d.seq DESC LIMIT ")
                    .push_bind(i64::from(query.limit.clamp(1, 1000)));
                q.build()
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(Self::delivery_row)
                    .collect()
            }

            async fn pending_deliveries(&self) -> Result<u64> {
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM notification_deliveries WHERE state = 'pending'",
                )
                .fetch_one(&self.pool)
                .await?;
                Ok(u64::try_from(n).unwrap_or(0))
            }

            async fn notification_events(
                &self,
                before_seq: Option<i64>,
                limit: u32,
            ) -> Result<Vec<NotificationEvent>> {
                sqlx::query(
                    "SELECT seq, id, type, account_id, payload, created_at \
                     FROM notification_events WHERE seq < $1 ORDER BY seq DESC LIMIT $2",
                )
                .bind(before_seq.unwrap_or(i64::MAX))
                .bind(i64::from(limit.clamp(1, 1000)))
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(Self::event_row)
                .collect()
            }
        }
    };
}

sql_notify!(SqliteStore, sqlx::Sqlite, "");
sql_notify!(PgStore, sqlx::Postgres, " FOR UPDATE OF d SKIP LOCKED");
