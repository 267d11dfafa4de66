//! The outbox of signed notifications: events the gateway tells operators
//! about (low balance, quota reached, subscription renewed, …), written in
//! the same database transaction as the change that caused them, and one
//! delivery per event and registered endpoint, retried until it lands.

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
