//! Keep-alive connections to `http://` upstreams for the HTTP/1 data plane:
//! plain TCP streams, one stack per upstream authority.
//!
//! Each compiled upstream holds its [`Slot`] (looked up once per config
//! snapshot, never per request). A connection is taken from the top of its
//! stack (the warmest), skipped when it idled too long or the upstream has
//! closed it, and goes back only after an exchange read to its end.
//!
//! A slot keeps one stack per data-plane worker ([`crate::workers`]): a
//! socket is driven by the reactor of the runtime that opened it, so a
//! worker only takes back connections it opened itself.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use http::uri::Authority;
use parking_lot::Mutex;
use tokio::net::TcpStream;

use crate::workers::PerWorker;

/// The most idle connections kept per upstream and worker.
const MAX_IDLE: usize = 1024;

#[derive(Debug)]
struct Idle {
    stream: TcpStream,
    since: Instant,
}

/// The idle connections to one upstream authority.
#[derive(Debug)]
pub(crate) struct Slot {
    host: String,
    port: u16,
    idle: PerWorker<Mutex<Vec<Idle>>>,
    idle_timeout: Duration,
    connect_timeout: Duration,
}

impl Slot {
    /// The warmest idle connection that is still open, as of `now` (a
    /// time the caller read already: a clock read saved per request).
    pub(super) fn checkout(&self, now: Instant) -> Option<TcpStream> {
        let mut idle = self.idle.get().lock();
        while let Some(c) = idle.pop() {
            if now.saturating_duration_since(c.since) < self.idle_timeout && open(&c.stream) {
                return Some(c.stream);
            }
        }
        None
    }

    /// Gives back a connection whose last exchange ended cleanly, idle
    /// since `since` (at the latest: it may count as idle a little early).
    pub(super) fn checkin(&self, stream: TcpStream, since: Instant) {
        let mut idle = self.idle.get().lock();
        if idle.len() < MAX_IDLE {
            idle.push(Idle { stream, since });
        }
    }

    /// A new connection; a refusal or a timeout (an error of kind
    /// `TimedOut`) means the upstream is not there.
    pub(super) async fn connect(&self) -> io::Result<TcpStream> {
        let connecting = TcpStream::connect((self.host.as_str(), self.port));
        let stream = tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no connection within {:?}", self.connect_timeout),
                )
            })??;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    fn sweep(&self) {
        for idle in self.idle.iter() {
            idle.lock()
                .retain(|c| c.since.elapsed() < self.idle_timeout && open(&c.stream));
        }
    }
}

/// Whether an idle connection is still open: it has nothing to read (a
/// closed one reads as end of stream). No system call is made unless the
/// socket became readable since it went idle.
fn open(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// Every slot of one config generation (kept across reloads when the
/// timeouts did not change).
#[derive(Debug)]
pub(crate) struct Pool {
    slots: Mutex<HashMap<Authority, Arc<Slot>>>,
    idle_timeout: Duration,
    connect_timeout: Duration,
}

impl Pool {
    /// A pool; a task sweeps connections idle longer than `idle_timeout`.
    pub(crate) fn new(idle_timeout: Duration, connect_timeout: Duration) -> Arc<Self> {
        let pool = Arc::new(Self {
            slots: Mutex::new(HashMap::new()),
            idle_timeout,
            connect_timeout,
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(sweep(Arc::downgrade(&pool)));
        }
        pool
    }

    /// Whether this pool was made with these timeouts.
    pub(crate) fn made_with(&self, idle_timeout: Duration, connect_timeout: Duration) -> bool {
        self.idle_timeout == idle_timeout && self.connect_timeout == connect_timeout
    }

    /// The slot of `authority`.
    pub(crate) fn slot(&self, authority: &Authority) -> Arc<Slot> {
        self.slots
            .lock()
            .entry(authority.clone())
            .or_insert_with(|| {
                Arc::new(Slot {
                    host: authority
                        .host()
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_owned(),
                    port: authority.port_u16().unwrap_or(80),
                    idle: PerWorker::default(),
                    idle_timeout: self.idle_timeout,
                    connect_timeout: self.connect_timeout,
                })
            })
            .clone()
    }
}

async fn sweep(pool: Weak<Pool>) {
    let every = match pool.upgrade() {
        Some(p) => (p.idle_timeout / 2).max(Duration::from_millis(100)),
        None => return,
    };
    loop {
        tokio::time::sleep(every).await;
        let Some(pool) = pool.upgrade() else { return };
        let slots: Vec<Arc<Slot>> = pool.slots.lock().values().cloned().collect();
        for slot in slots {
            slot.sweep();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn closed_and_stale_connections_are_not_lent() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        let pool = Pool::new(Duration::from_millis(200), Duration::from_secs(1));
        let slot = pool.slot(&authority);
        assert!(Arc::ptr_eq(&slot, &pool.slot(&authority)));

        let kept = slot.connect().await.unwrap();
        let (mut kept_peer, _) = listener.accept().await.unwrap();
        let closed = slot.connect().await.unwrap();
        let (closed_peer, _) = listener.accept().await.unwrap();
        slot.checkin(kept, Instant::now());
        slot.checkin(closed, Instant::now());
        drop(closed_peer);
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The closed one is on top, and skipped.
        let lent = slot.checkout(Instant::now()).expect("the open connection");
        assert!(slot.checkout(Instant::now()).is_none());
        kept_peer.write_all(b"x").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // One that has unread bytes is not clean either.
        slot.checkin(lent, Instant::now());
        assert!(slot.checkout(Instant::now()).is_none());

        let stale = slot.connect().await.unwrap();
        let _peer = listener.accept().await.unwrap();
        slot.checkin(stale, Instant::now());
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(
            slot.checkout(Instant::now()).is_none(),
            "idled past the timeout"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        drop(listener);
        let pool = Pool::new(Duration::from_secs(1), Duration::from_secs(1));
        assert!(pool.slot(&authority).connect().await.is_err());
    }
}
