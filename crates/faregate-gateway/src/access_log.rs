//! The JSON access log: one line per request. Lines are serialized into a
//! shared buffer that a background thread swaps out and writes every
//! [`FLUSH_EVERY`], so the request path never makes a system call or wakes a
//! thread for logging. When the writer falls behind and the buffer reaches
//! [`MAX_BUFFER`], lines are dropped and counted rather than slowing traffic.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use parking_lot::Mutex;

use crate::metrics::Metrics;

pub(crate) mod line;

/// How often the writer thread writes out what has been logged.
const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// Bytes buffered before new lines are dropped.
const MAX_BUFFER: usize = 16 * 1024 * 1024;

/// One request's line.
#[derive(Debug)]
pub(crate) struct Entry<'a> {
    /// RFC 3339 UTC time the request arrived.
    pub time: Rfc3339,
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
    pub upstreams: &'a crate::pipeline::Tried,
    /// Microseconds from request head to the end of the response.
    pub duration_us: u64,
    /// Request body bytes received.
    pub bytes_in: u64,
    /// Response body bytes sent.
    pub bytes_out: u64,
    /// Who called: the key's id, or `None`.
    pub caller: Option<&'a str>,
    /// The client's address.
    pub client: &'a str,
    /// `allow` or the refusal's problem code.
    pub decision: &'a str,
    /// What was charged, as `"0.001 USD"`.
    pub charge: Option<faregate_core::Money>,
    /// Whether the response body reached the client whole.
    pub complete: bool,
    /// What went wrong, for the operator (never sent to the caller).
    pub error: Option<&'a str>,
}

/// The log; cheap to clone.
#[derive(Debug, Clone)]
pub struct AccessLog {
    shared: Option<Arc<Shared>>,
    metrics: Arc<Metrics>,
}

struct Shared {
    buffer: Mutex<Vec<u8>>,
    out: Mutex<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl Shared {
    /// Writes out what is buffered.
    fn flush(&self, spare: &mut Vec<u8>) {
        std::mem::swap(&mut *self.buffer.lock(), spare);
        if spare.is_empty() {
            return;
        }
        let mut out = self.out.lock();
        let _ = out.write_all(spare);
        let _ = out.flush();
        spare.clear();
    }
}

impl AccessLog {
    /// A log that writes nothing.
    pub fn off(metrics: Arc<Metrics>) -> Self {
        Self {
            shared: None,
            metrics,
        }
    }

    /// A log written to `out` by a background thread.
    pub fn to_writer(out: Box<dyn Write + Send>, metrics: Arc<Metrics>) -> Self {
        let shared = Arc::new(Shared {
            buffer: Mutex::new(Vec::with_capacity(256 * 1024)),
            out: Mutex::new(out),
        });
        let writer = Arc::downgrade(&shared);
        let spawned = std::thread::Builder::new()
            .name("faregate-access-log".into())
            .spawn(move || {
                let mut spare = Vec::with_capacity(256 * 1024);
                loop {
                    std::thread::sleep(FLUSH_EVERY);
                    let Some(shared) = writer.upgrade() else {
                        return;
                    };
                    shared.flush(&mut spare);
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the access-log writer; access log is off");
            return Self::off(metrics);
        }
        Self {
            shared: Some(shared),
            metrics,
        }
    }

    /// Appends one line.
    pub(crate) fn write(&self, entry: &Entry<'_>) {
        let Some(shared) = &self.shared else { return };
        let mut buffer = shared.buffer.lock();
        if buffer.len() > MAX_BUFFER {
            drop(buffer);
            self.metrics
                .access_log_dropped
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        line::write(&mut buffer, entry);
    }

    /// Writes out everything logged so far (at shutdown, so nothing is lost).
    pub fn flush(&self) {
        if let Some(shared) = &self.shared {
            shared.flush(&mut Vec::new());
        }
    }
}

/// A time written as `2026-11-22T00:46:01.123Z`, without allocating.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rfc3339(pub(crate) u64);

impl Rfc3339 {
    /// Appends the time to `out`, formatting the date only once per second
    /// per thread: most lines share their second with the previous one.
    pub(crate) fn push(self, out: &mut Vec<u8>) {
        thread_local! {
            static LAST: std::cell::Cell<(u64, [u8; 19])> = const { std::cell::Cell::new((u64::MAX, [0; 19])) };
        }
        let secs = self.0 / 1_000_000_000;
        let (cached, mut date) = LAST.get();
        if cached != secs {
            let days = i64::try_from(secs / 86_400).unwrap_or(0);
            let rem = secs % 86_400;
            let (y, m, d) = civil_from_days(days);
            let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
            let text = format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}");
            match <[u8; 19]>::try_from(text.as_bytes()) {
                Ok(bytes) => {
                    date = bytes;
                    LAST.set((secs, date));
                }
                // Years past 9999: not worth caching.
                Err(_) => {
                    out.extend_from_slice(text.as_bytes());
                    return push_millis(out, self.0);
                }
            }
        }
        out.extend_from_slice(&date);
        push_millis(out, self.0);
    }
}

fn push_millis(out: &mut Vec<u8>, unix_nanos: u64) {
    let ms = (unix_nanos / 1_000_000) % 1_000;
    let digit = |n: u64| b'0' + u8::try_from(n % 10).unwrap_or(0);
    out.extend_from_slice(&[b'.', digit(ms / 100), digit(ms / 10), digit(ms), b'Z']);
}

impl std::fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = Vec::with_capacity(24);
        self.push(&mut text);
        f.write_str(std::str::from_utf8(&text).map_err(|_| std::fmt::Error)?)
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
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
        assert_eq!(Rfc3339(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Rfc3339(1_795_308_361_123_000_000).to_string(),
            "2026-11-22T00:46:01.123Z"
        );
        assert_eq!(
            Rfc3339(951_782_400_000_000_000).to_string(),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn lines_are_written_whole_and_flushed() {
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let log = AccessLog::to_writer(Box::new(sink.clone()), Arc::default());
        let entry = Entry {
            time: Rfc3339(0),
            request_id: "r-1",
            route: None,
            method: "GET",
            path: "/a\"b\\c",
            status: 200,
            upstream_status: None,
            upstreams: &crate::pipeline::Tried::default(),
            duration_us: 1,
            bytes_in: 0,
            bytes_out: 0,
            caller: None,
            client: "127.0.0.1",
            decision: "allow",
            charge: None,
            complete: true,
            error: None,
        };
        log.write(&entry);
        log.write(&entry);
        log.flush();
        let text = String::from_utf8(sink.0.lock().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["request_id"], "r-1");
        assert_eq!(lines[0]["path"], "/a\"b\\c");
        assert_eq!(lines[0]["client"], "127.0.0.1");
        assert_eq!(lines[0]["time"], "1970-01-01T00:00:00.000Z");
    }
}
