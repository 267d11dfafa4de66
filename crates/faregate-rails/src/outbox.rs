//! The sender of the notification outbox: signed webhooks to the endpoints
//! operators registered, at least once, retried with exponential backoff.
//!
//! Events and their deliveries are written to the store in the same
//! database transaction as the change they report (see
//! `faregate_store::notify`). This task polls the store on a real tokio
//! interval (or at once on [`Outbox::wake`]), claims the deliveries that
//! are due (a lease, so that gateway nodes sharing a store never send the
//! same delivery at once), POSTs each, and records how it ended: a 2xx is
//! delivered; any other status, a refused connection or no answer within
//! the timeout is a failed attempt, tried again after
//! `min(max_backoff, base_backoff × 2^(attempt-1))` less up to a quarter at
//! random, until `max_attempts` have failed and the delivery is `failed`.
//! A node that dies mid-attempt leaves its claim to expire, and another
//! node sends the delivery again: receivers deduplicate by
//! `Faregate-Event-Id`.
//!
//! Every time (due dates, leases, the signature's timestamp) comes from the
//! injected [`Clock`], so tests move a fake clock past the backoff instead
//! of waiting for it.

mod post;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use faregate_core::Clock;
use faregate_store::Store;
use faregate_store::notify::{AttemptOutcome, DueDelivery};
use http::HeaderValue;
use parking_lot::Mutex;
use rand::Rng;
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};

use post::{Backoff, HttpClient};

/// How often the store is polled by default.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long one attempt may take by default, connecting included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts before a delivery is given up, by default: with the default
/// backoff, about three days of trying.
pub const DEFAULT_MAX_ATTEMPTS: NonZeroU32 = NonZeroU32::new(16).expect("not zero");
/// The wait after a first failure, by default.
pub const DEFAULT_BASE_BACKOFF: Duration = Duration::from_secs(10);
/// The longest wait between attempts, by default.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);
/// Deliveries claimed (and sent at once) per round, by default.
pub const DEFAULT_BATCH: NonZeroU32 = NonZeroU32::new(32).expect("not zero");

/// How the outbox sends.
#[derive(Debug, Clone)]
pub struct OutboxConfig {
    /// How often the store is asked for due deliveries.
    pub poll_interval: Duration,
    /// The most one attempt may take, connecting and reading the answer
    /// included.
    pub timeout: Duration,
    /// Attempts in all before a delivery is `failed`.
    pub max_attempts: NonZeroU32,
    /// The wait after the first failed attempt; it doubles with each.
    pub base_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
    /// The `User-Agent` sent.
    pub user_agent: String,
    /// The most deliveries claimed and sent at once per round.
    pub batch: NonZeroU32,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            poll_interval: DEFAULT_POLL_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            base_backoff: DEFAULT_BASE_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            user_agent: concat!("faregate/", env!("CARGO_PKG_VERSION")).to_owned(),
            batch: DEFAULT_BATCH,
        }
    }
}

/// What the outbox has done since it started.
#[derive(Debug, Default)]
pub struct OutboxStats {
    /// Deliveries that got a 2xx.
    pub delivered: AtomicU64,
    /// Attempts that failed (each retry counts).
    pub failed_attempts: AtomicU64,
    /// Deliveries given up after their last attempt.
    pub given_up: AtomicU64,
    /// Attempts whose outcome was not recorded because the claim had ended
    /// (the lease ran out, or the endpoint was disabled meanwhile).
    pub stale: AtomicU64,
    /// Polls or records the store failed.
    pub store_errors: AtomicU64,
    /// Deliveries pending at the last poll.
    pub backlog: AtomicU64,
}

/// The running sender.
#[derive(Debug)]
pub struct Outbox {
    worker: Arc<Worker>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Outbox {
    /// Starts the sender on the current tokio runtime.
    pub fn start(store: Arc<dyn Store>, clock: Arc<dyn Clock>, config: OutboxConfig) -> Arc<Self> {
        let user_agent = HeaderValue::from_str(&config.user_agent).unwrap_or_else(|_| {
            tracing::warn!("the notification User-Agent is not a header value; using the default");
            HeaderValue::from_static("faregate")
        });
        let worker = Arc::new(Worker {
            client: post::client(config.timeout),
            backoff: Backoff {
                base: config.base_backoff,
                max: config.max_backoff,
                max_attempts: config.max_attempts.get(),
            },
            store,
            clock,
            user_agent,
            wake: Notify::new(),
            stats: OutboxStats::default(),
            config,
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(worker.clone().run(stopped));
        Arc::new(Self {
            worker,
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    /// Polls at once (call it after queueing events that should not wait
    /// for the next tick).
    pub fn wake(&self) {
        self.worker.wake.notify_one();
    }

    /// Stops polling and waits for the attempts in flight to end (each
    /// within the timeout). Deliveries left pending are sent after the
    /// next start, by this node or another.
    pub async fn close(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// The counters.
    pub fn stats(&self) -> &OutboxStats {
        &self.worker.stats
    }

    /// The counters in Prometheus text format.
    pub fn render_metrics(&self) -> String {
        use std::fmt::Write as _;
        let s = &self.worker.stats;
        let mut out = String::new();
        for (name, kind, help, value) in [
            (
                "faregate_notifications_delivered_total",
                "counter",
                "Notification deliveries that got a 2xx answer.",
                &s.delivered,
            ),
            (
                "faregate_notification_attempts_failed_total",
                "counter",
                "Notification attempts that failed and are retried or given up.",
                &s.failed_attempts,
            ),
            (
                "faregate_notifications_failed_total",
                "counter",
                "Notification deliveries given up after their last attempt.",
                &s.given_up,
            ),
            (
                "faregate_notification_store_errors_total",
                "counter",
                "Outbox polls or records that the store failed.",
                &s.store_errors,
            ),
            (
                "faregate_notification_backlog",
                "gauge",
                "Notification deliveries pending at the last poll.",
                &s.backlog,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                value.load(Relaxed)
            );
        }
        out
    }
}

/// A new endpoint signing secret: `whsec_` and 32 random bytes in hex.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    format!("whsec_{}", hex::encode(bytes))
}

/// The polling task's half.
#[derive(Debug)]
struct Worker {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: OutboxConfig,
    client: HttpClient,
    backoff: Backoff,
    user_agent: HeaderValue,
    wake: Notify,
    stats: OutboxStats,
}

impl Worker {
    async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.config.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                // A send, or the `Outbox` dropped.
                _ = stop.changed() => break,
                _ = tick.tick() => {}
                () = self.wake.notified() => {}
            }
            self.drain(&stop).await;
        }
        tracing::debug!("notification outbox stopped");
    }

    /// Sends rounds of due deliveries until a round finds fewer than a
    /// full batch, or the outbox is closed.
    async fn drain(self: &Arc<Self>, stop: &watch::Receiver<bool>) {
        let batch = self.config.batch.get();
        while !*stop.borrow() {
            let claimed = match self
                .store
                .claim_due(self.now_ms(), self.lease_ms(), batch)
                .await
            {
                Ok(claimed) => claimed,
                Err(error) => {
                    self.stats.store_errors.fetch_add(1, Relaxed);
                    tracing::warn!(%error, "notification outbox: claiming due deliveries failed");
                    break;
                }
            };
            let full = claimed.len() >= usize::try_from(batch).unwrap_or(usize::MAX);
            let mut attempts = JoinSet::new();
            for delivery in claimed {
                let worker = self.clone();
                attempts.spawn(async move { worker.attempt(delivery).await });
            }
            while attempts.join_next().await.is_some() {}
            if !full {
                break;
            }
        }
        match self.store.pending_deliveries().await {
            Ok(n) => self.stats.backlog.store(n, Relaxed),
            Err(error) => {
                self.stats.store_errors.fetch_add(1, Relaxed);
                tracing::warn!(%error, "notification outbox: counting the backlog failed");
            }
        }
    }

    /// One attempt, and its outcome recorded.
    async fn attempt(&self, d: DueDelivery) {
        let seconds = self.clock.now() / 1_000_000_000;
        let answer = post::post(
            &self.client,
            &d,
            seconds,
            &self.user_agent,
            self.config.timeout,
        )
        .await;
        let outcome = self.backoff.outcome(answer, d.attempts, self.now_ms());
        match self.store.record_attempt(&d, &outcome).await {
            Ok(true) => self.count(&d, &outcome),
            Ok(false) => {
                self.stats.stale.fetch_add(1, Relaxed);
                tracing::info!(
                    delivery = d.seq,
                    endpoint = %d.endpoint_id,
                    event = %d.event_id,
                    "notification attempt not recorded: the claim had ended"
                );
            }
            Err(error) => {
                // The claim expires and the delivery is sent again.
                self.count(&d, &outcome);
                self.stats.store_errors.fetch_add(1, Relaxed);
                tracing::warn!(
                    %error,
                    delivery = d.seq,
                    "notification outbox: recording an attempt failed"
                );
            }
        }
    }

    /// Counts and logs an attempt whose outcome stands.
    fn count(&self, d: &DueDelivery, outcome: &AttemptOutcome) {
        let attempt = d.attempts.saturating_add(1);
        match outcome {
            AttemptOutcome::Delivered { status, .. } => {
                self.stats.delivered.fetch_add(1, Relaxed);
                tracing::debug!(
                    delivery = d.seq,
                    endpoint = %d.endpoint_id,
                    event = %d.event_id,
                    attempt,
                    status,
                    "notification delivered"
                );
            }
            AttemptOutcome::Retry {
                status,
                error,
                next_attempt_at,
            } => {
                self.stats.failed_attempts.fetch_add(1, Relaxed);
                tracing::info!(
                    delivery = d.seq,
                    endpoint = %d.endpoint_id,
                    event = %d.event_id,
                    attempt,
                    status,
                    error = %error,
                    next_attempt_at,
                    "notification attempt failed; it will be retried"
                );
            }
            AttemptOutcome::GaveUp { status, error, .. } => {
                self.stats.failed_attempts.fetch_add(1, Relaxed);
                self.stats.given_up.fetch_add(1, Relaxed);
                tracing::warn!(
                    delivery = d.seq,
                    endpoint = %d.endpoint_id,
                    event = %d.event_id,
                    attempt,
                    status,
                    error = %error,
                    "notification given up after its last attempt"
                );
            }
        }
    }

    fn now_ms(&self) -> i64 {
        i64::try_from(self.clock.now() / 1_000_000).unwrap_or(i64::MAX)
    }

    /// How long a claim is held: every attempt of a round runs at once and
    /// ends within the timeout, so twice that and a margin for the store.
    fn lease_ms(&self) -> i64 {
        let lease = self.config.timeout.saturating_mul(2) + Duration::from_secs(30);
        i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_prefixed() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert!(a.starts_with("whsec_") && a.len() == 6 + 64, "{a}");
    }
}
