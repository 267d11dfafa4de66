//! A gateway started in process on 127.0.0.1:0 from a config text.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use faregate_gateway::{AccessLog, Gateway, GatewayBuilder, Metrics, Workers};
use faregate_rails::credits::{Credits, CreditsConfig};
use faregate_rails::plans::Plans;
use faregate_store::Store;
use parking_lot::Mutex;
use tokio::sync::oneshot;

/// The access log, kept in memory.
#[derive(Debug, Clone, Default)]
pub struct MemoryLog(Arc<Mutex<Vec<u8>>>);

impl Write for MemoryLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl MemoryLog {
    /// Every line written so far, parsed.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        let text = String::from_utf8_lossy(&self.0.lock()).into_owned();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("access log line is JSON"))
            .collect()
    }
}

/// A running gateway.
#[derive(Debug)]
pub struct TestGateway {
    /// The gateway.
    pub gw: Arc<Gateway>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its access log.
    pub log: MemoryLog,
    /// The credits rail, when started with a store.
    pub credits: Option<Arc<Credits>>,
    /// The plans rail, when started with subscriptions.
    pub plans: Option<Arc<Plans>>,
    /// The x402 rail, when started with one.
    pub x402: Option<Arc<faregate_rails::x402::X402>>,
    /// The data-plane worker threads, when started on some.
    pub workers: Option<Arc<Workers>>,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<()>>,
}

impl TestGateway {
    /// Starts a gateway from `config` (listeners default to 127.0.0.1:0).
    pub async fn start(config: &str) -> Self {
        Self::start_with(config, |b| b).await
    }

    /// Starts a gateway whose accounts, keys and ledger live in `store`,
    /// with the credits rail writing debits every `flush`.
    pub async fn start_paid(
        config: &str,
        store: Arc<dyn Store>,
        flush: std::time::Duration,
    ) -> Self {
        Self::start_paid_with(config, store, flush, None).await
    }

    /// As [`start_paid`](Self::start_paid), serving on `workers`
    /// data-plane threads.
    pub async fn start_paid_on_workers(
        config: &str,
        store: Arc<dyn Store>,
        flush: std::time::Duration,
        workers: usize,
    ) -> Self {
        let workers = Workers::start(workers).expect("start workers");
        Self::start_paid_with(config, store, flush, Some(workers)).await
    }

    async fn start_paid_with(
        config: &str,
        store: Arc<dyn Store>,
        flush: std::time::Duration,
        workers: Option<Arc<Workers>>,
    ) -> Self {
        let compiled = compile(config);
        let credits = Credits::start(
            store,
            CreditsConfig {
                flush_interval: flush,
                top_up: compiled.top_up.clone(),
                ..CreditsConfig::default()
            },
        )
        .await
        .expect("start credits");
        let rail = credits.clone();
        let mut gw =
            Self::start_compiled(compiled, move |b| b.rail(rail.clone()).keys(rail), workers).await;
        gw.credits = Some(credits);
        gw
    }

    /// Starts a gateway with the credits and plans rails on `store`, its
    /// clock (and the plans') being `clock`.
    pub async fn start_subscriptions(
        config: &str,
        store: Arc<dyn Store>,
        clock: Arc<dyn faregate_core::Clock>,
    ) -> Self {
        let compiled = compile(config);
        let credits = Credits::start(
            store.clone(),
            CreditsConfig {
                flush_interval: compiled.store.flush_interval,
                top_up: compiled.top_up.clone(),
                ..CreditsConfig::default()
            },
        )
        .await
        .expect("start credits");
        let mut plans_config = compiled.plans_config();
        plans_config.tick_interval = std::time::Duration::from_millis(50);
        let plans = Plans::start(store, credits.clone(), clock.clone(), plans_config)
            .await
            .expect("start plans");
        let (rail, p) = (credits.clone(), plans.clone());
        let mut gw = Self::start_compiled(
            compiled,
            move |b| b.plans(p).rail(rail.clone()).keys(rail).clock(clock),
            None,
        )
        .await;
        gw.credits = Some(credits);
        gw.plans = Some(plans);
        gw
    }

    /// Starts a gateway with the credits and x402 rails on `store`, x402
    /// payments settled by `settler` (a facilitator client, a chain) and
    /// the clock `clock`.
    pub async fn start_x402(
        config: &str,
        store: Arc<dyn Store>,
        settler: Arc<dyn faregate_x402::settle::Settler>,
        clock: Arc<dyn faregate_core::Clock>,
    ) -> Self {
        Self::start_x402_checked(config, store, settler, None, clock).await
    }

    /// As [`start_x402`](Self::start_x402), with `checker` asked about each
    /// payment (the chain's nonce state and balance) before forwarding.
    pub async fn start_x402_checked(
        config: &str,
        store: Arc<dyn Store>,
        settler: Arc<dyn faregate_x402::settle::Settler>,
        checker: Option<Arc<dyn faregate_x402::settle::Settler>>,
        clock: Arc<dyn faregate_core::Clock>,
    ) -> Self {
        let compiled = compile(config);
        let credits = Credits::start(
            store.clone(),
            CreditsConfig {
                flush_interval: compiled.store.flush_interval,
                ..CreditsConfig::default()
            },
        )
        .await
        .expect("start credits");
        let x402 = Arc::new(faregate_rails::x402::X402::new(
            store,
            settler,
            checker,
            clock.clone(),
            compiled.x402_config(),
        ));
        let (rail, x) = (credits.clone(), x402.clone());
        let mut gw = Self::start_compiled(
            compiled,
            move |b| b.x402(x).rail(rail.clone()).keys(rail).clock(clock),
            None,
        )
        .await;
        gw.credits = Some(credits);
        gw.x402 = Some(x402);
        gw
    }

    /// Starts a gateway, letting the test add rails or a clock.
    pub async fn start_with(
        config: &str,
        customize: impl FnOnce(GatewayBuilder) -> GatewayBuilder,
    ) -> Self {
        Self::start_compiled(compile(config), customize, None).await
    }

    /// Starts a gateway that accepts on the test's runtime and serves its
    /// connections on `workers` data-plane threads, as the binary does.
    pub async fn start_on_workers(config: &str, workers: usize) -> Self {
        let workers = Workers::start(workers).expect("start workers");
        Self::start_compiled(compile(config), |b| b, Some(workers)).await
    }

    async fn start_compiled(
        compiled: faregate_gateway::Config,
        customize: impl FnOnce(GatewayBuilder) -> GatewayBuilder,
        workers: Option<Arc<Workers>>,
    ) -> Self {
        let metrics = Arc::new(Metrics::default());
        let log = MemoryLog::default();
        let access = AccessLog::to_writer(Box::new(log.clone()), metrics.clone());
        let gw = customize(
            Gateway::builder(compiled)
                .metrics(metrics)
                .access_log(access),
        )
        .build()
        .expect("build gateway");
        let listeners = faregate_gateway::bind(&gw).await.expect("bind");
        let addr = listeners[0].local_addr().expect("addr");
        let (tx, rx) = oneshot::channel();
        let stopped = async move {
            let _ = rx.await;
        };
        let served = match &workers {
            None => tokio::spawn(faregate_gateway::serve(gw.clone(), listeners, stopped)),
            Some(w) => tokio::spawn(faregate_gateway::serve_on(
                gw.clone(),
                listeners,
                w.clone(),
                stopped,
            )),
        };
        Self {
            gw,
            addr,
            log,
            credits: None,
            plans: None,
            x402: None,
            workers,
            stop: Some(tx),
            served: Some(served),
        }
    }

    /// `http://127.0.0.1:port{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Shuts down and waits for the drain to finish.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(served) = self.served.take() {
            let _ = served.await;
        }
        if let Some(credits) = &self.credits {
            credits.close().await;
        }
        if let Some(workers) = &self.workers {
            workers.join();
        }
    }

    /// Waits until the access log holds a line matching `pred`.
    pub async fn log_line(&self, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        for _ in 0..500 {
            if let Some(line) = self.log.lines().into_iter().find(|l| pred(l)) {
                return line;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("no matching access-log line in {:?}", self.log.lines());
    }

    /// Waits until the access log holds `n` lines (it is written by a thread).
    pub async fn log_lines(&self, n: usize) -> Vec<serde_json::Value> {
        for _ in 0..200 {
            let lines = self.log.lines();
            if lines.len() >= n {
                return lines;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        self.log.lines()
    }
}

/// Compiles a test config; listeners default to 127.0.0.1:0 and the store
/// to an in-memory SQLite database (tests that use one pass it in).
fn compile(config: &str) -> faregate_gateway::Config {
    let mut text = if config.contains("[[listeners]]") {
        config.to_owned()
    } else {
        format!("[[listeners]]\naddress = \"127.0.0.1:0\"\n{config}")
    };
    if !text.contains("[store]") {
        text.push_str("\n[store]\nurl = \"sqlite::memory:\"\n");
    }
    let rails = [
        faregate_core::RailKind::X402,
        faregate_core::RailKind::Credits,
        faregate_core::RailKind::Plans,
    ];
    faregate_gateway::config::load(&text, Path::new("."), &|_| None, &rails)
        .unwrap_or_else(|e| panic!("test config: {e}"))
}
