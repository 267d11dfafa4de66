//! The JSON access log: one line per request, written by a background
//! thread so the request path never waits on stdout. When the writer falls
//! behind, lines are dropped and counted rather than slowing traffic.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use serde::Serialize;

use crate::metrics::Metrics;

/// Lines queued before new ones are dropped.
const QUEUE: usize = 64 * 1024;

/// One request's line.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    /// RFC 3339 UTC time the request arrived.
    pub time: String,
    /// The request id.
    pub request_id: &'a str,
    /// The matched route, if any.
    pub route: Option<&'a str>,
    /// The method.
    pub method: &'a str,
    /// The normalized path (no query: queries may hold secrets).
    pub path: &'a str,
    /// Status sent to the caller.
    pub status: u16,
    /// Status the upstream sent, if it was reached.
    pub upstream_status: Option<u16>,
    /// Upstreams tried, in order.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub upstreams: &'a [String],
    /// Microseconds from request head to the end of the response.
    pub duration_us: u64,
    /// Request body bytes received.
    pub bytes_in: u64,
    /// Response body bytes sent.
    pub bytes_out: u64,
    /// Who called: the key's id, or `None`.
    pub caller: Option<&'a str>,
    /// The client's address.
    pub client: String,
    /// `allow` or the refusal's problem code.
    pub decision: &'a str,
    /// What was charged, as `"0.001 USD"`.
    pub charge: Option<String>,
    /// Whether the response body reached the client whole.
    pub complete: bool,
    /// What went wrong, for the operator (never sent to the caller).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
}

/// The log's sending side; cheap to clone.
#[derive(Debug, Clone)]
pub struct AccessLog {
    tx: Option<SyncSender<Vec<u8>>>,
    metrics: Arc<Metrics>,
}

impl AccessLog {
    /// A log that writes nothing.
    pub fn off(metrics: Arc<Metrics>) -> Self {
        Self { tx: None, metrics }
    }

    /// A log written to `out` by a background thread.
    pub fn to_writer(out: Box<dyn Write + Send>, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("faregate-access-log".into())
            .spawn(move || writer(rx, out));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the access-log writer; access log is off");
            return Self::off(metrics);
        }
        Self {
            tx: Some(tx),
            metrics,
        }
    }

    /// Queues one line.
    pub fn write(&self, entry: &Entry<'_>) {
        let Some(tx) = &self.tx else { return };
        let Ok(mut line) = serde_json::to_vec(entry) else {
            return;
        };
        line.push(b'\n');
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = tx.try_send(line) {
            self.metrics
                .access_log_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn writer(rx: Receiver<Vec<u8>>, out: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    while let Ok(line) = rx.recv() {
        let _ = out.write_all(&line);
        // Drain what is queued, then flush once: cheap under load, prompt when idle.
        while let Ok(line) = rx.try_recv() {
            let _ = out.write_all(&line);
        }
        let _ = out.flush();
    }
}

/// Formats nanoseconds since the epoch as `2026-11-22T00:46:01.123Z`.
pub(crate) fn rfc3339(unix_nanos: u64) -> String {
    let secs = unix_nanos / 1_000_000_000;
    let millis = (unix_nanos / 1_000_000) % 1_000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        // 2026-11-22T00:46:01.123Z
        assert_eq!(
            rfc3339(1_795_308_361_123_000_000),
            "2026-11-22T00:46:01.123Z"
        );
        assert_eq!(rfc3339(951_782_400_000_000_000), "2000-02-29T00:00:00.000Z");
    }
}
