//! Listeners: accept connections, terminate TLS, and drain gracefully on
//! shutdown. Plain-text connections start on faregate's own HTTP/1 data
//! plane ([`crate::h1`]), which hands to hyper what it does not serve
//! itself; TLS connections (where ALPN may pick HTTP/2) are hyper's.
//! Connections are served where they are accepted ([`serve`]) or on
//! data-plane worker threads ([`serve_on`], [`crate::workers`]).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Response;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use std::sync::atomic::AtomicBool;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tokio_util::task::TaskTracker;

use crate::body::ResponseBody;
use crate::gateway::Gateway;
use crate::pipeline::{ConnInfo, pipeline};
use crate::workers::{Load, Workers};

/// Header fields hyper parses per HTTP/1 request; `max_header_bytes` is the
/// limit callers see, this only bounds the parser's work.
const MAX_HEADER_FIELDS: usize = 512;

pin_project_lite::pin_project! {
    /// Runs the pipeline; a panic inside it (a bug, perhaps in a rail)
    /// becomes a 500 with no detail, and the connection lives on.
    struct CatchPanic<F> {
        #[pin]
        inner: F,
    }
}

impl<F: Future<Output = Response<ResponseBody>>> Future for CatchPanic<F> {
    type Output = Response<ResponseBody>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.project().inner;
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(polled) => polled,
            // The inner future is never polled again.
            Err(_) => Poll::Ready(crate::respond::internal_error()),
        }
    }
}

/// How often an idle HTTP/2 connection is pinged, and how long the answer may take.
const H2_PING_EVERY: Duration = Duration::from_secs(30);

/// Binds every listener of the gateway's config, in order.
pub async fn bind(gw: &Gateway) -> std::io::Result<Vec<TcpListener>> {
    let mut out = Vec::new();
    for l in &gw.snapshot().config.listeners {
        let listener = TcpListener::bind(l.address).await.map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot listen on {}: {e}", l.address))
        })?;
        out.push(listener);
    }
    Ok(out)
}

/// Tells the HTTP/1 data plane's connections to finish and close: a flag
/// read once per request, and a token that wakes idle connections.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stop {
    flag: Arc<AtomicBool>,
    token: CancellationToken,
}

impl Stop {
    fn stop(&self) {
        self.flag.store(true, Relaxed);
        self.token.cancel();
    }

    /// Whether shutdown has begun.
    pub(crate) fn is_set(&self) -> bool {
        self.flag.load(Relaxed)
    }

    /// Resolves when shutdown begins.
    pub(crate) fn wait(&self) -> WaitForCancellationFutureOwned {
        self.token.clone().cancelled_owned()
    }
}

/// What every connection task shares to shut down together.
#[derive(Clone)]
struct Shutdown {
    stop: Stop,
    /// Every connection task, whichever side serves it.
    tasks: TaskTracker,
}

/// Serves `listeners` on the current runtime until `shutdown` resolves,
/// then stops accepting and waits up to the configured drain timeout for
/// requests in flight.
pub async fn serve(
    gw: Arc<Gateway>,
    listeners: Vec<TcpListener>,
    shutdown: impl Future<Output = ()>,
) {
    serve_with(gw, listeners, None, shutdown).await;
}

/// Like [`serve`], but accepts here and serves every connection on one of
/// `workers` (the least loaded). The workers keep running after this
/// returns, until [`Workers::join`].
pub async fn serve_on(
    gw: Arc<Gateway>,
    listeners: Vec<TcpListener>,
    workers: Arc<Workers>,
    shutdown: impl Future<Output = ()>,
) {
    serve_with(gw, listeners, Some(workers), shutdown).await;
}

async fn serve_with(
    gw: Arc<Gateway>,
    listeners: Vec<TcpListener>,
    workers: Option<Arc<Workers>>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = Arc::new(GracefulShutdown::new());
    let down = Shutdown {
        stop: Stop::default(),
        tasks: TaskTracker::new(),
    };
    let mut loops = Vec::new();
    for (index, listener) in listeners.into_iter().enumerate() {
        loops.push(tokio::spawn(accept_loop(
            gw.clone(),
            index,
            listener,
            graceful.clone(),
            down.clone(),
            workers.clone(),
        )));
    }
    shutdown.await;
    down.stop.stop();
    for l in loops {
        let _ = l.await;
    }
    down.tasks.close();
    let drain = gw.snapshot().config.limits.drain_timeout;
    // The accept loops, the only other owners, have ended.
    if let Ok(graceful) = Arc::try_unwrap(graceful) {
        tracing::info!(?drain, "shutting down: draining requests in flight");
        let drained = async {
            tokio::join!(graceful.shutdown(), down.tasks.wait());
        };
        match tokio::time::timeout(drain, drained).await {
            Ok(()) => tracing::info!("all connections drained"),
            Err(_) => tracing::warn!("drain timeout reached; closing the connections left"),
        }
    }
    gw.access_log.flush();
}

async fn accept_loop(
    gw: Arc<Gateway>,
    index: usize,
    listener: TcpListener,
    graceful: Arc<GracefulShutdown>,
    down: Shutdown,
    workers: Option<Arc<Workers>>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let accepted = Accepted { index, stream, peer, watcher: graceful.watcher() };
                    match &workers {
                        None => connection(&gw, accepted, &down, Load::NONE),
                        Some(workers) => hand_over(workers, &gw, accepted, &down),
                    }
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = down.stop.token.cancelled() => return,
        }
    }
}

/// A connection just accepted.
struct Accepted {
    /// Which listener took it.
    index: usize,
    stream: TcpStream,
    peer: SocketAddr,
    /// Holds a drain open until the connection ends.
    watcher: Watcher,
}

/// Moves an accepted connection to a worker's runtime, which serves it.
fn hand_over(workers: &Workers, gw: &Arc<Gateway>, accepted: Accepted, down: &Shutdown) {
    let Accepted {
        index,
        stream,
        peer,
        watcher,
    } = accepted;
    // Off this runtime's reactor, onto the worker's.
    let stream = match stream.into_std() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "cannot hand a connection to a worker");
            return;
        }
    };
    let (gw, down) = (gw.clone(), down.clone());
    // The watcher travels with the connection, so a drain that begins
    // before the worker takes it still waits for it.
    workers.run(move |load| match TcpStream::from_std(stream) {
        Ok(stream) => {
            let accepted = Accepted {
                index,
                stream,
                peer,
                watcher,
            };
            connection(&gw, accepted, &down, load);
        }
        Err(e) => tracing::warn!(%peer, error = %e, "a worker cannot take a connection"),
    });
}

/// Spawns the task serving one connection on the current runtime; `load`
/// is dropped when it ends.
fn connection(gw: &Arc<Gateway>, accepted: Accepted, down: &Shutdown, load: Load) {
    let Accepted {
        index,
        stream,
        peer,
        watcher,
    } = accepted;
    let _ = stream.set_nodelay(true);
    let snap = gw.snapshot();
    let tls = snap.config.listeners.get(index).and_then(|l| l.tls.clone());
    let header_timeout = snap.config.limits.header_read_timeout;
    let conn = ConnInfo::new(peer.ip(), tls.is_some());
    gw.metrics.connections_total.fetch_add(1, Relaxed);
    gw.metrics.connections_open.fetch_add(1, Relaxed);
    let gw = gw.clone();
    match tls {
        None => {
            let stop = down.stop.clone();
            down.tasks.spawn(async move {
                crate::h1::serve(gw.clone(), stream, conn, stop, watcher).await;
                gw.metrics.connections_open.fetch_sub(1, Relaxed);
                drop(load);
            });
        }
        Some(tls) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls);
            down.tasks.spawn(async move {
                match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(tls_stream)) => serve_hyper(&gw, tls_stream, conn, watcher).await,
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
                gw.metrics.connections_open.fetch_sub(1, Relaxed);
                drop(load);
            });
        }
    }
}

/// Serves a connection with hyper (HTTP/1.1 or HTTP/2, whichever the
/// client speaks) until it closes or shutdown drains it.
pub(crate) async fn serve_hyper<IO>(gw: &Arc<Gateway>, io: IO, conn: ConnInfo, watcher: Watcher)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let snap = gw.snapshot();
    let limits = &snap.config.limits;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(MAX_HEADER_FIELDS)
        .keep_alive(true);
    // Leave room above our own limit, so that faregate, not hyper, refuses
    // large heads with a problem document.
    let header_list = u32::try_from(limits.max_header_bytes.saturating_mul(2)).unwrap_or(u32::MAX);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(header_list)
        .max_concurrent_streams(256)
        // HTTP/2 connections have no head to time out on: ping idle ones so
        // a vanished peer is noticed and its connection closed.
        .keep_alive_interval(Some(H2_PING_EVERY))
        .keep_alive_timeout(H2_PING_EVERY);
    let gw2 = gw.clone();
    let service = service_fn(move |req| {
        let gw = gw2.clone();
        let conn = conn.clone();
        async move {
            Ok::<_, Infallible>(
                CatchPanic {
                    inner: pipeline(gw, req, conn),
                }
                .await,
            )
        }
    });
    let served = builder
        .serve_connection(TokioIo::new(io), service)
        .into_owned();
    let _ = watcher.watch(served).await;
}
