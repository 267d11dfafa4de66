//! The outbox of signed notifications: events the gateway tells operators
//! about (low balance, quota reached, subscription renewed, …), written in
//! the same database transaction as the change that caused them, and one
//! delivery per event and registered endpoint, retried until it lands.
//!
//! A delivery is `pending` until an attempt succeeds (`delivered`) or the
//! sender gives up (`failed`). Senders on several nodes share the queue:
//! [`Notifications::claim_due`] leases the deliveries it returns, so no two
//! nodes send the same one at once, and the lease's end doubles as a fencing
//! token, so an attempt whose lease ran out and was claimed again cannot
//! overwrite the newer attempt's outcome. A node that dies mid-attempt only
//! delays the delivery until its lease ends: delivery is at least once, and
//! receivers deduplicate by the event's id.

use std::fmt;

use crate::Result;

/// An event to put in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    /// `evt_…`, unique; receivers deduplicate by it.
    pub id: String,
    /// The event type, such as `quota.threshold_reached`.
    pub kind: String,
    /// The account it is about, if any.
    pub account_id: Option<String>,
    /// The JSON document sent (the whole body, id and type included).
    pub payload: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

impl NewNotification {
    /// An event with a new `evt_…` id whose body is the usual envelope:
    /// `{"id", "type", "created" (unix seconds), "account_id", "data"}`.
    pub fn new(
        kind: &str,
        account_id: Option<&str>,
        data: serde_json::Value,
        created_at: i64,
    ) -> Self {
        let id = crate::new_id("evt");
        let payload = serde_json::json!({
            "id": id,
            "type": kind,
            "created": created_at.div_euclid(1000),
            "account_id": account_id,
            "data": data,
        });
        Self {
            id,
            kind: kind.to_owned(),
            account_id: account_id.map(str::to_owned),
            payload: payload.to_string(),
            created_at,
        }
    }
}

/// Where an operator receives notifications. Its `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct NotificationEndpoint {
    /// `we_…`
    pub id: String,
    /// An `http://` or `https://` URL, POSTed to.
    pub url: String,
    /// The signing secret (`whsec_…`).
    pub secret: String,
    /// The event types it wants; every type when `None`.
    pub events: Option<Vec<String>>,
    /// A note for people.
    pub description: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    /// When it was disabled; it gets nothing from then on.
    pub disabled_at: Option<i64>,
}

impl NotificationEndpoint {
    /// Whether it wants events of type `kind`.
    pub fn wants(&self, kind: &str) -> bool {
        self.events
            .as_ref()
            .is_none_or(|types| types.iter().any(|t| t == kind))
    }
}

impl fmt::Debug for NotificationEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotificationEndpoint")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("secret", &"..")
            .field("events", &self.events)
            .field("description", &self.description)
            .field("created_at", &self.created_at)
            .field("disabled_at", &self.disabled_at)
            .finish()
    }
}

/// An event as the outbox holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationEvent {
    /// Commit order.
    pub seq: i64,
    /// `evt_…`
    pub id: String,
    /// The event type.
    pub kind: String,
    /// The account it is about, if any.
    pub account_id: Option<String>,
    /// The JSON body sent.
    pub payload: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Not delivered yet; another attempt will be made.
    Pending,
    /// An attempt got a 2xx answer.
    Delivered,
    /// The sender gave up, or the endpoint was disabled first.
    Failed,
}

impl DeliveryState {
    /// Every state.
    pub const ALL: [Self; 3] = [Self::Pending, Self::Delivered, Self::Failed];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// One event's delivery to one endpoint, with its outcome so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Creation order; the paging cursor.
    pub seq: i64,
    /// The event.
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due (unix milliseconds); meaningful while
    /// pending.
    pub next_attempt_at: i64,
    /// The HTTP status of the last attempt, if it got an answer.
    pub last_status: Option<u16>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When an attempt succeeded.
    pub delivered_at: Option<i64>,
    /// When the event was created.
    pub created_at: i64,
}

/// Which deliveries to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryQuery {
    /// Only to this endpoint.
    pub endpoint_id: Option<String>,
    /// Only of this event.
    pub event_id: Option<String>,
    /// Only in this state.
    pub state: Option<DeliveryState>,
    /// Only older than this sequence number (paging cursor).
    pub before_seq: Option<i64>,
    /// At most this many (1 to 1000).
    pub limit: u32,
}

/// A delivery claimed for sending, with what sending needs. Its `Debug`
/// hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct DueDelivery {
    /// The delivery.
    pub seq: i64,
    /// The claim's lease end (unix milliseconds); give it back to
    /// [`Notifications::record_attempt`].
    pub lease_until: i64,
    /// Attempts made before this one.
    pub attempts: u32,
    /// The endpoint.
    pub endpoint_id: String,
    /// Its URL.
    pub url: String,
    /// Its signing secret.
    pub secret: String,
    /// The event.
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// The body to send, as stored.
    pub payload: String,
}

impl fmt::Debug for DueDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DueDelivery")
            .field("seq", &self.seq)
            .field("lease_until", &self.lease_until)
            .field("attempts", &self.attempts)
            .field("endpoint_id", &self.endpoint_id)
            .field("event_id", &self.event_id)
            .field("event_type", &self.event_type)
            .finish_non_exhaustive()
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A 2xx answer with `status` at `at` (unix milliseconds).
    Delivered {
        /// The status.
        status: u16,
        /// When.
        at: i64,
    },
    /// Failed; try again at `next_attempt_at`.
    Retry {
        /// The status, if the endpoint answered.
        status: Option<u16>,
        /// What went wrong.
        error: String,
        /// Unix milliseconds.
        next_attempt_at: i64,
    },
    /// Failed, and no attempt will follow.
    GaveUp {
        /// The status, if the endpoint answered.
        status: Option<u16>,
        /// What went wrong.
        error: String,
        /// When (unix milliseconds).
        at: i64,
    },
}

/// The outbox half of the store.
#[async_trait::async_trait]
pub trait Notifications: Send + Sync {
    /// Puts `events` in the outbox in a database transaction of its own,
    /// with one pending delivery per enabled endpoint that wants each
    /// event's type. An event whose id is already there is skipped. Use
    /// it when nothing else needs committing with the events.
    async fn notify(&self, events: &[NewNotification]) -> Result<()>;

    /// Registers an endpoint; it gets the events created from now on, none
    /// of the older ones.
    async fn create_endpoint(&self, endpoint: &NotificationEndpoint) -> Result<()>;
    /// One endpoint, disabled or not.
    async fn endpoint(&self, id: &str) -> Result<Option<NotificationEndpoint>>;
    /// Every endpoint, disabled ones included, oldest first.
    async fn endpoints(&self) -> Result<Vec<NotificationEndpoint>>;
    /// Disables an endpoint at `at` (disabling twice keeps the first time):
    /// it gets no new events, and its pending deliveries fail. `None` when
    /// there is no such endpoint.
    async fn disable_endpoint(&self, id: &str, at: i64) -> Result<Option<NotificationEndpoint>>;

    /// Claims up to `limit` pending deliveries due at `now` (unix
    /// milliseconds) to enabled endpoints, oldest due first, that no one
    /// else holds, and leases them until `now + lease_ms`.
    async fn claim_due(&self, now: i64, lease_ms: i64, limit: u32) -> Result<Vec<DueDelivery>>;
    /// Records how an attempt on a claimed delivery ended. `false` (and
    /// nothing written) when the claim is no longer held: its lease ended
    /// and someone claimed it again, or the endpoint was disabled.
    async fn record_attempt(&self, claim: &DueDelivery, outcome: &AttemptOutcome) -> Result<bool>;

    /// Deliveries, newest first.
    async fn deliveries(&self, query: &DeliveryQuery) -> Result<Vec<Delivery>>;
    /// How many deliveries are pending.
    async fn pending_deliveries(&self) -> Result<u64>;
    /// Events, newest first, older than the sequence number `before_seq`.
    async fn notification_events(
        &self,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<Vec<NotificationEvent>>;
}

/// Types, one per line, as stored; `None` for every type.
pub(crate) fn encode_types(types: Option<&Vec<String>>) -> Option<String> {
    types.map(|t| t.join("\n"))
}

/// The stored form back.
pub(crate) fn decode_types(types: Option<String>) -> Option<Vec<String>> {
    types.map(|t| {
        if t.is_empty() {
            Vec::new()
        } else {
            t.split('\n').map(str::to_owned).collect()
        }
    })
}

/// The longest error text stored for an attempt.
pub(crate) const MAX_ERROR: usize = 500;

/// `error` cut to [`MAX_ERROR`] bytes on a character boundary.
pub(crate) fn clip_error(error: &str) -> &str {
    if error.len() <= MAX_ERROR {
        return error;
    }
    let mut end = MAX_ERROR;
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    &error[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_names_the_event() {
        let n = NewNotification::new(
            "balance.low",
            Some("acct_1"),
            serde_json::json!({"balance": "1.00"}),
            1_700_000_000_999,
        );
        assert!(n.id.starts_with("evt_"));
        let body: serde_json::Value = serde_json::from_str(&n.payload).unwrap();
        assert_eq!(body["id"], n.id);
        assert_eq!(body["type"], "balance.low");
        assert_eq!(body["created"], 1_700_000_000);
        assert_eq!(body["account_id"], "acct_1");
        assert_eq!(body["data"]["balance"], "1.00");
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let e = NotificationEndpoint {
            id: "we_1".into(),
            url: "https://example.com/hook".into(),
            secret: "whsec_topsecret".into(),
            events: None,
            description: None,
            created_at: 0,
            disabled_at: None,
        };
        assert!(!format!("{e:?}").contains("topsecret"));
        assert!(e.wants("anything"));
    }

    #[test]
    fn errors_are_clipped_on_char_boundaries() {
        let long = "é".repeat(400);
        let clipped = clip_error(&long);
        assert!(clipped.len() <= MAX_ERROR && clipped.len() >= MAX_ERROR - 1);
        assert_eq!(clip_error("short"), "short");
    }

    #[test]
    fn states_round_trip() {
        for s in DeliveryState::ALL {
            assert_eq!(DeliveryState::parse(s.as_str()), Some(s));
        }
        assert_eq!(DeliveryState::parse("nope"), None);
    }
}
