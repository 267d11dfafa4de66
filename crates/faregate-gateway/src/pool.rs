//! Keep-alive HTTP/1.1 connections to `http://` upstreams, pooled per
//! upstream authority, on hyper's connection-level client.
//!
//! hyper-util's general client (still used for `https://` upstreams, where
//! ALPN may pick HTTP/2) spends a good share of a proxied request's
//! instructions on pool bookkeeping it needs for every protocol and
//! executor. This pool does only what an HTTP/1.1 proxy needs:
//!
//! - a connection is taken from the top of its upstream's idle stack (the
//!   warmest), waited on until the previous exchange has fully ended, and
//!   skipped when the upstream has closed it or it idled too long;
//! - it goes back when the response body has been read to its end (see
//!   [`Lease`], released by the response body), and is dropped otherwise;
//! - a request that a reused connection could not even start to send (the
//!   upstream had just closed it) is sent again on a new connection, since
//!   not a byte of it left; any other failure is the caller's to handle;
//! - each worker thread keeps its own idle connections, whose driver tasks
//!   run on it ([`crate::workers::PerWorker`]).

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::net::TcpStream;

use crate::body::RequestBody;
use crate::workers::PerWorker;

/// The most idle connections kept per upstream.
const MAX_IDLE: usize = 1024;

/// Why a request got no response head.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// No connection could be made (refused, unreachable, or timed out:
    /// an I/O error of kind `TimedOut`).
    #[error("connect: {0}")]
    Connect(std::io::Error),
    /// The exchange failed after connecting.
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

struct Idle {
    sender: http1::SendRequest<RequestBody>,
    since: Instant,
}

/// Idle connections per upstream authority.
pub(crate) struct Http1Pool {
    /// Each worker's idle connections (their driver tasks run on it).
    idle: PerWorker<Mutex<HashMap<Authority, Vec<Idle>>>>,
    idle_timeout: Duration,
    connect_timeout: Duration,
}

impl std::fmt::Debug for Http1Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http1Pool")
            .field("idle_timeout", &self.idle_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

/// A connection lent to one exchange; dropping it closes the connection,
/// [`Lease::release`] gives it back.
pub(crate) struct Lease {
    pool: Weak<Http1Pool>,
    authority: Authority,
    sender: http1::SendRequest<RequestBody>,
}

impl Lease {
    /// Gives the connection back for the next request. Call it only once
    /// the response body was read to its end.
    pub(crate) fn release(self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.put(self.authority, self.sender);
        }
    }
}

impl Http1Pool {
    /// A pool; a task sweeps connections idle longer than `idle_timeout`.
    pub(crate) fn new(idle_timeout: Duration, connect_timeout: Duration) -> Arc<Self> {
        let pool = Arc::new(Self {
            idle: PerWorker::default(),
            idle_timeout,
            connect_timeout,
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(sweep(Arc::downgrade(&pool)));
        }
        pool
    }

    /// Sends `req` (origin-form target, `Host` set) to `authority` and
    /// returns the response head with the connection it came on.
    pub(crate) async fn send(
        self: &Arc<Self>,
        authority: &Authority,
        mut req: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, Lease), SendError> {
        while let Some(mut sender) = self.take(authority) {
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(response) => return Ok((response, self.lease(authority, sender))),
                Err(mut e) => match e.take_message() {
                    // Not a byte was sent: the upstream had closed this
                    // connection. Try the next one.
                    Some(unsent) => req = unsent,
                    None => return Err(SendError::Http(e.into_error())),
                },
            }
        }
        let mut sender = self.connect(authority).await?;
        let response = sender.send_request(req).await?;
        Ok((response, self.lease(authority, sender)))
    }

    fn lease(
        self: &Arc<Self>,
        authority: &Authority,
        sender: http1::SendRequest<RequestBody>,
    ) -> Lease {
        Lease {
            pool: Arc::downgrade(self),
            authority: authority.clone(),
            sender,
        }
    }

    /// The warmest idle connection that has not idled too long.
    fn take(&self, authority: &Authority) -> Option<http1::SendRequest<RequestBody>> {
        let mut idle = self.idle.get().lock();
        let stack = idle.get_mut(authority)?;
        while let Some(conn) = stack.pop() {
            if conn.since.elapsed() < self.idle_timeout && !conn.sender.is_closed() {
                return Some(conn.sender);
            }
        }
        None
    }

    fn put(&self, authority: Authority, sender: http1::SendRequest<RequestBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.get().lock();
        let stack = idle.entry(authority).or_default();
        if stack.len() < MAX_IDLE {
            stack.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    async fn connect(
        &self,
        authority: &Authority,
    ) -> Result<http1::SendRequest<RequestBody>, SendError> {
        let port = authority.port_u16().unwrap_or(80);
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| {
                SendError::Connect(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no connection within {:?}", self.connect_timeout),
                ))
            })?
            .map_err(SendError::Connect)?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
        Ok(sender)
    }

    fn sweep_once(&self) {
        for idle in self.idle.iter() {
            let mut idle = idle.lock();
            for stack in idle.values_mut() {
                stack.retain(|c| c.since.elapsed() < self.idle_timeout && !c.sender.is_closed());
            }
            idle.retain(|_, stack| !stack.is_empty());
        }
    }
}

/// Drops idle connections that outlived the idle timeout, until the pool
/// itself is gone.
async fn sweep(pool: Weak<Http1Pool>) {
    let every = match pool.upgrade() {
        Some(p) => (p.idle_timeout / 2).max(Duration::from_millis(100)),
        None => return,
    };
    loop {
        tokio::time::sleep(every).await;
        match pool.upgrade() {
            Some(p) => p.sweep_once(),
            None => return,
        }
    }
}
