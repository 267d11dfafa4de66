//! The notification outbox as operators see it: `GET /v1/events` lists the
//! events written, newest first, and `GET /v1/webhook_deliveries` each
//! event's delivery to each endpoint with how it went (state, attempts,
//! the last answer or error, when the next attempt is due).

use axum::Json;
use faregate_store::notify::{Delivery, DeliveryQuery, DeliveryState, NotificationEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::page_limit;
use super::views::{Page, paginate};
use crate::extract::{QueryParams, StoreAccess};
use crate::problem::{Code, Problem};
use crate::time::format_ms;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeliveryParams {
    limit: Option<u32>,
    /// The `next` of the previous page: deliveries before this `seq`.
    starting_after: Option<i64>,
    /// Only to this endpoint.
    endpoint: Option<String>,
    /// Only of this event.
    event: Option<String>,
    /// `pending`, `delivered` or `failed`.
    state: Option<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct DeliveryView {
    seq: i64,
    event_id: String,
    event_type: String,
    endpoint_id: String,
    state: &'static str,
    attempts: u32,
    last_status: Option<u16>,
    last_error: Option<String>,
    /// When the next attempt is due; null unless pending.
    next_attempt_at: Option<String>,
    delivered_at: Option<String>,
    /// When the event was created.
    created_at: String,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        Self {
            seq: d.seq,
            next_attempt_at: (d.state == DeliveryState::Pending)
                .then(|| format_ms(d.next_attempt_at)),
            state: d.state.as_str(),
            event_id: d.event_id,
            event_type: d.event_type,
            endpoint_id: d.endpoint_id,
            attempts: d.attempts,
            last_status: d.last_status,
            last_error: d.last_error,
            delivered_at: d.delivered_at.map(format_ms),
            created_at: format_ms(d.created_at),
        }
    }
}

/// `GET /v1/webhook_deliveries`, newest first.
pub(super) async fn deliveries(
    StoreAccess(credits): StoreAccess,
    QueryParams(q): QueryParams<DeliveryParams>,
) -> Result<Json<Page<DeliveryView>>, Problem> {
    let limit = page_limit(q.limit)?;
    let state = q.state.as_deref().map(state).transpose()?;
    let query = DeliveryQuery {
        endpoint_id: q.endpoint,
        event_id: q.event,
        state,
        before_seq: q.starting_after,
        limit: u32::try_from(limit + 1).unwrap_or(u32::MAX),
    };
    let found = credits.store().deliveries(&query).await?;
    let (found, next) = paginate(found, limit, |d| d.seq.to_string());
    Ok(Json(Page {
        data: found.into_iter().map(DeliveryView::from).collect(),
        next,
    }))
}

fn state(name: &str) -> Result<DeliveryState, Problem> {
    DeliveryState::parse(name).ok_or_else(|| {
        Problem::new(
            Code::InvalidQuery,
            "state must be one of pending, delivered, failed",
        )
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventParams {
    limit: Option<u32>,
    /// The `next` of the previous page: events before this `seq`.
    starting_after: Option<i64>,
}

#[derive(Debug, Serialize)]
pub(super) struct EventView {
    seq: i64,
    id: String,
    #[serde(rename = "type")]
    kind: String,
    account_id: Option<String>,
    created_at: String,
    /// The body sent, as JSON.
    payload: Value,
}

impl From<NotificationEvent> for EventView {
    fn from(e: NotificationEvent) -> Self {
        // Payloads are written as JSON; one that is not is shown as text
        // rather than hidden.
        let payload = serde_json::from_str(&e.payload).unwrap_or(Value::String(e.payload));
        Self {
            seq: e.seq,
            id: e.id,
            kind: e.kind,
            account_id: e.account_id,
            created_at: format_ms(e.created_at),
            payload,
        }
    }
}

/// `GET /v1/events`, newest first.
pub(super) async fn events(
    StoreAccess(credits): StoreAccess,
    QueryParams(q): QueryParams<EventParams>,
) -> Result<Json<Page<EventView>>, Problem> {
    let limit = page_limit(q.limit)?;
    let found = credits
        .store()
        .notification_events(
            q.starting_after,
            u32::try_from(limit + 1).unwrap_or(u32::MAX),
        )
        .await?;
    let (found, next) = paginate(found, limit, |e| e.seq.to_string());
    Ok(Json(Page {
        data: found.into_iter().map(EventView::from).collect(),
        next,
    }))
}
