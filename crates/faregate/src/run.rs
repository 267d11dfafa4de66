//! Wiring: load config, build the gateway, bind listeners, serve until
//! SIGTERM or Ctrl-C, and reload on SIGHUP or when the file changes.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use faregate_gateway::{AccessLog, Config, Gateway, Metrics};
use faregate_rails::credits::{Credits, CreditsConfig};
use faregate_rails::outbox::{Outbox, OutboxConfig};
use faregate_rails::plans::Plans;
use tokio::net::TcpListener;

/// Rails built into this binary.
pub(crate) const RAILS: &[faregate_core::RailKind] = &[
    faregate_core::RailKind::Credits,
    faregate_core::RailKind::Plans,
    faregate_core::RailKind::X402,
];

/// How often the config file is checked for changes.
const WATCH_EVERY: Duration = Duration::from_secs(1);

pub(crate) fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FAREGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Runs `fut` on `threads` runtime threads (one per CPU when `None`). One
/// thread runs the current-thread scheduler, which skips the work-stealing
/// machinery entirely: the gateway's control plane runs so, its data plane
/// on [`faregate_gateway::Workers`].
pub(crate) fn block_on(
    threads: Option<usize>,
    fut: impl Future<Output = anyhow::Result<ExitCode>>,
) -> anyhow::Result<ExitCode> {
    let mut builder = match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    builder
        .enable_all()
        .build()
        .context("cannot start the runtime")?
        .block_on(fut)
}

pub(crate) fn env(var: &str) -> Option<String> {
    std::env::var(var).ok()
}

pub(crate) fn check_config(file: &Path) -> anyhow::Result<ExitCode> {
    match faregate_gateway::config::load_file(file, &env, RAILS) {
        Ok(c) => {
            println!(
                "{}: ok ({} routes, {} listeners, {} API keys)",
                file.display(),
                c.routes.routes().len(),
                c.listeners.len(),
                c.keys.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprint!("{}: {e}", file.display());
            Ok(ExitCode::FAILURE)
        }
    }
}

pub(crate) async fn serve_file(path: PathBuf, workers: usize) -> anyhow::Result<ExitCode> {
    let config = faregate_gateway::config::load_file(&path, &env, RAILS)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let running = start(config, workers).await?;
    let reload = reloader(
        running.gw.clone(),
        running.credits.clone(),
        running.plans.clone(),
        running.x402.clone(),
        path.clone(),
    );
    tokio::spawn(watch(path, reload.clone()));
    running.wait(Some(reload)).await
}

/// A gateway with its listeners bound.
pub(crate) struct Running {
    pub(crate) gw: Arc<Gateway>,
    pub(crate) credits: Arc<Credits>,
    pub(crate) plans: Arc<Plans>,
    pub(crate) outbox: Arc<Outbox>,
    pub(crate) x402: Arc<faregate_rails::x402::X402>,
    listeners: Vec<TcpListener>,
    admin: TcpListener,
    /// Data-plane worker threads to serve on.
    workers: usize,
}

/// Opens the store named by `url`, creating a SQLite file's folder.
pub(crate) async fn open_store(url: &str) -> anyhow::Result<Arc<dyn faregate_store::Store>> {
    if let Some(path) = url.strip_prefix("sqlite://")
        && let Some(dir) = Path::new(path.split('?').next().unwrap_or(path)).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the data folder {}", dir.display()))?;
    }
    faregate_store::open(url).await.with_context(|| {
        format!(
            "cannot open the store {}",
            faregate_gateway::config::redact_url(url)
        )
    })
}

pub(crate) async fn start(config: Config, workers: usize) -> anyhow::Result<Running> {
    let metrics = Arc::new(Metrics::default());
    let log = AccessLog::to_writer(Box::new(std::io::stdout()), metrics.clone());
    let store = open_store(&config.store.url).await?;
    let credits = Credits::start(
        store.clone(),
        CreditsConfig {
            flush_interval: config.store.flush_interval,
            top_up: config.top_up.clone(),
            ..CreditsConfig::default()
        },
    )
    .await
    .context("cannot load accounts and keys")?;
    let outbox = Outbox::start(
        store.clone(),
        Arc::new(faregate_core::SystemClock),
        OutboxConfig::default(),
    );
    let x402 = crate::x402::rail(&config, store.clone(), Arc::new(faregate_core::SystemClock))?;
    let plans = Plans::start(
        store,
        credits.clone(),
        Arc::new(faregate_core::SystemClock),
        config.plans_config(),
    )
    .await
    .context("cannot load subscriptions")?;
    let gw = Gateway::builder(config)
        .metrics(metrics)
        .access_log(log)
        .plans(plans.clone())
        .x402(x402.clone())
        .rail(credits.clone())
        .keys(credits.clone())
        .build()?;
    let listeners = faregate_gateway::bind(&gw).await?;
    let admin_addr = gw.snapshot().config.admin.address;
    let admin = TcpListener::bind(admin_addr)
        .await
        .with_context(|| format!("cannot listen on {admin_addr} (admin)"))?;
    Ok(Running {
        gw,
        credits,
        plans,
        outbox,
        x402,
        listeners,
        admin,
        workers,
    })
}

impl Running {
    pub(crate) fn addrs(&self) -> (Vec<std::net::SocketAddr>, std::net::SocketAddr) {
        let main = self
            .listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        (
            main,
            self.admin
                .local_addr()
                .unwrap_or_else(|_| ([127, 0, 0, 1], 0).into()),
        )
    }

    /// Serves on the worker threads until SIGTERM or Ctrl-C, then drains;
    /// the workers stop last, after the ledger's final write.
    pub(crate) async fn wait(
        self,
        reload: Option<faregate_admin::Reloader>,
    ) -> anyhow::Result<ExitCode> {
        let (addrs, admin_addr) = self.addrs();
        let workers = faregate_gateway::Workers::start(self.workers)
            .context("cannot start the worker threads")?;
        match workers.lower_helpers() {
            Ok(n) => tracing::debug!(threads = n, "helper threads run below the workers"),
            Err(e) => tracing::warn!(error = %e, "cannot lower the helper threads' priority"),
        }
        tracing::info!(listeners = ?addrs, admin = %admin_addr, workers = workers.count(), "faregate is serving");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut admin_router = faregate_admin::builder(self.gw.clone())
            .credits(self.credits.clone())
            .outbox(self.outbox.clone())
            .plans(self.plans.clone());
        if let Some(reload) = &reload {
            admin_router = admin_router.reload(reload.clone());
        }
        let mut admin_stop = stop_rx.clone();
        let admin = tokio::spawn(faregate_admin::serve(
            self.admin,
            admin_router.build(),
            async move {
                let _ = admin_stop.changed().await;
            },
        ));
        if let Some(reload) = reload {
            tokio::spawn(on_sighup(reload));
        }
        faregate_gateway::serve_on(self.gw, self.listeners, workers.clone(), async move {
            terminated().await;
            let _ = stop_tx.send(true);
        })
        .await;
        drop(stop_rx);
        let _ = admin.await;
        // Every request has settled: write the last debits and counts.
        self.plans.close().await;
        self.credits.close().await;
        self.outbox.close().await;
        workers.join();
        Ok(ExitCode::SUCCESS)
    }
}

async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted"),
        Some(_) = async { term.as_mut()?.recv().await } => tracing::info!("SIGTERM received"),
    }
}

fn reloader(
    gw: Arc<Gateway>,
    credits: Arc<Credits>,
    plans: Arc<Plans>,
    x402: Arc<faregate_rails::x402::X402>,
    path: PathBuf,
) -> faregate_admin::Reloader {
    Arc::new(move || {
        let result = match faregate_gateway::config::load_file(&path, &env, RAILS) {
            Ok(config) => {
                if config.store != gw.snapshot().config.store {
                    tracing::warn!("[store] changed; restart faregate to apply that");
                }
                let top_up = config.top_up.clone();
                let plans_config = config.plans_config();
                let x402_config = config.x402_config();
                if config.x402.settlement != gw.snapshot().config.x402.settlement {
                    tracing::warn!("[x402] settlement changed; restart faregate to apply that");
                }
                gw.reload(config)
                    .map(|()| {
                        credits.set_top_up(top_up);
                        plans.configure(plans_config);
                        x402.configure(x402_config);
                    })
                    .map_err(|e| e.to_string())
            }
            Err(e) => {
                gw.metrics()
                    .reloads_failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Err(e.to_string())
            }
        };
        match &result {
            Ok(()) => tracing::info!(path = %path.display(), "config reloaded"),
            Err(e) => {
                tracing::error!(path = %path.display(), problems = %e, "config reload refused; the previous config keeps running")
            }
        }
        result
    })
}

async fn on_sighup(reload: faregate_admin::Reloader) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        let _ = reload();
    }
}

/// Reloads when the file's modification time or size changes.
async fn watch(path: PathBuf, reload: faregate_admin::Reloader) {
    let stamp = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
    };
    let mut last = stamp(&path);
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        let now = stamp(&path);
        if now.is_some() && now != last {
            last = now;
            let _ = reload();
        }
    }
}
