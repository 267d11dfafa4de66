//! Prometheus metrics kept in plain atomics: one block of counters per
//! route, found by index on the hot path, rendered as text on scrape.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use faregate_core::ProblemCode;
use parking_lot::Mutex;

/// Upper bounds of the request duration histogram, in microseconds.
const BUCKETS_US: [u64; 12] = [
    250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 500_000, 1_000_000, 10_000_000,
];

/// Counters for one route (or for requests that matched none).
#[derive(Debug)]
pub struct RouteMetrics {
    by_status: Box<[AtomicU64]>,
    by_decision: Box<[AtomicU64]>,
    allowed: AtomicU64,
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
    duration_sum_us: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl Default for RouteMetrics {
    fn default() -> Self {
        Self {
            by_status: (100..600).map(|_| AtomicU64::new(0)).collect(),
            by_decision: ProblemCode::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            allowed: AtomicU64::new(0),
            buckets: Default::default(),
            duration_sum_us: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
        }
    }
}

impl RouteMetrics {
    /// Records one finished request.
    pub fn record(
        &self,
        status: u16,
        refusal: Option<ProblemCode>,
        took: Duration,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        if let Some(c) = self.by_status.get(usize::from(status.saturating_sub(100))) {
            c.fetch_add(1, Relaxed);
        }
        match refusal {
            Some(code) => {
                let i = ProblemCode::ALL
                    .iter()
                    .position(|&c| c == code)
                    .unwrap_or(0);
                self.by_decision[i].fetch_add(1, Relaxed);
            }
            None => {
                self.allowed.fetch_add(1, Relaxed);
            }
        }
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(BUCKETS_US.len());
        self.buckets[bucket].fetch_add(1, Relaxed);
        self.duration_sum_us.fetch_add(us, Relaxed);
        self.bytes_in.fetch_add(bytes_in, Relaxed);
        self.bytes_out.fetch_add(bytes_out, Relaxed);
    }
}

/// Every metric of the process.
#[derive(Debug, Default)]
pub struct Metrics {
    routes: Mutex<HashMap<Arc<str>, Arc<RouteMetrics>>>,
    /// Connections accepted.
    pub connections_total: AtomicU64,
    /// Connections open now.
    pub connections_open: AtomicI64,
    /// Config reloads that took effect.
    pub reloads_ok: AtomicU64,
    /// Config reloads refused (the old config kept running).
    pub reloads_failed: AtomicU64,
    /// Access-log lines dropped because the writer fell behind.
    pub access_log_dropped: AtomicU64,
    /// Upstream attempts that failed before a response.
    pub upstream_errors: AtomicU64,
}

/// The route label of requests that matched no route.
pub(crate) const UNROUTED: &str = "";

impl Metrics {
    /// The counters of route `name`, kept across reloads.
    pub fn route(&self, name: &str) -> Arc<RouteMetrics> {
        let mut routes = self.routes.lock();
        if let Some(m) = routes.get(name) {
            return m.clone();
        }
        let m = Arc::new(RouteMetrics::default());
        routes.insert(name.into(), m.clone());
        m
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let mut routes: Vec<(Arc<str>, Arc<RouteMetrics>)> = self
            .routes
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        routes.sort_by(|a, b| a.0.cmp(&b.0));

        out.push_str("# HELP faregate_requests_total Requests answered, by route and status.\n# TYPE faregate_requests_total counter\n");
        for (name, m) in &routes {
            for (i, c) in m.by_status.iter().enumerate() {
                let n = c.load(Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "faregate_requests_total{{route=\"{}\",status=\"{}\"}} {n}",
                        esc(name),
                        i + 100
                    );
                }
            }
        }
        out.push_str("# HELP faregate_decisions_total Authorization outcomes and refusals, by route and code.\n# TYPE faregate_decisions_total counter\n");
        for (name, m) in &routes {
            let allowed = m.allowed.load(Relaxed);
            if allowed > 0 {
                let _ = writeln!(
                    out,
                    "faregate_decisions_total{{route=\"{}\",code=\"allow\"}} {allowed}",
                    esc(name)
                );
            }
            for (code, c) in ProblemCode::ALL.iter().zip(m.by_decision.iter()) {
                let n = c.load(Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "faregate_decisions_total{{route=\"{}\",code=\"{}\"}} {n}",
                        esc(name),
                        code.as_str()
                    );
                }
            }
        }
        out.push_str("# HELP faregate_request_duration_seconds Time from request head to the end of the response.\n# TYPE faregate_request_duration_seconds histogram\n");
        for (name, m) in &routes {
            let mut cumulative = 0;
            for (i, c) in m.buckets.iter().enumerate() {
                cumulative += c.load(Relaxed);
                let le = BUCKETS_US
                    .get(i)
                    .map_or("+Inf".to_owned(), |us| seconds(*us));
                let _ = writeln!(
                    out,
                    "faregate_request_duration_seconds_bucket{{route=\"{}\",le=\"{le}\"}} {cumulative}",
                    esc(name)
                );
            }
            let _ = writeln!(
                out,
                "faregate_request_duration_seconds_sum{{route=\"{}\"}} {}",
                esc(name),
                seconds(m.duration_sum_us.load(Relaxed))
            );
            let _ = writeln!(
                out,
                "faregate_request_duration_seconds_count{{route=\"{}\"}} {cumulative}",
                esc(name)
            );
        }
        for (metric, help, pick) in [
            (
                "faregate_request_bytes_total",
                "Request body bytes received.",
                0,
            ),
            (
                "faregate_response_bytes_total",
                "Response body bytes sent.",
                1,
            ),
        ] {
            let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} counter");
            for (name, m) in &routes {
                let n = if pick == 0 {
                    m.bytes_in.load(Relaxed)
                } else {
                    m.bytes_out.load(Relaxed)
                };
                let _ = writeln!(out, "{metric}{{route=\"{}\"}} {n}", esc(name));
            }
        }
        let gauges: [(&str, &str, &str, i64); 6] = [
            (
                "faregate_connections_total",
                "counter",
                "Client connections accepted.",
                as_i64(self.connections_total.load(Relaxed)),
            ),
            (
                "faregate_connections_open",
                "gauge",
                "Client connections open now.",
                self.connections_open.load(Relaxed),
            ),
            (
                "faregate_config_reloads_total{result=\"ok\"}",
                "counter",
                "Config reloads.",
                as_i64(self.reloads_ok.load(Relaxed)),
            ),
            (
                "faregate_config_reloads_total{result=\"failed\"}",
                "",
                "",
                as_i64(self.reloads_failed.load(Relaxed)),
            ),
            (
                "faregate_access_log_dropped_total",
                "counter",
                "Access-log lines dropped under back-pressure.",
                as_i64(self.access_log_dropped.load(Relaxed)),
            ),
            (
                "faregate_upstream_errors_total",
                "counter",
                "Upstream attempts that failed before a response.",
                as_i64(self.upstream_errors.load(Relaxed)),
            ),
        ];
        for (name, kind, help, v) in gauges {
            if !kind.is_empty() {
                let base = name.split('{').next().unwrap_or(name);
                let _ = writeln!(out, "# HELP {base} {help}\n# TYPE {base} {kind}");
            }
            let _ = writeln!(out, "{name} {v}");
        }
        out
    }
}

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn seconds(us: u64) -> String {
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

fn esc(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
