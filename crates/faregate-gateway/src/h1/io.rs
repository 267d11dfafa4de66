//! I/O helpers of the HTTP/1 data plane: a reusable deadline, and the
//! rewound stream a connection is handed to hyper with.

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The most a wait may give up after its deadline.
const MAX_SLACK: Duration = Duration::from_secs(1);

/// When a wait gives up.
#[derive(Debug, Clone, Copy)]
pub(super) enum Deadline {
    /// This long after the wait starts to block.
    After(Duration),
    /// At this instant, whenever the wait started: the end of a timeout
    /// this long.
    At(Instant, Duration),
}

/// One timer per connection and direction, reused by every wait.
///
/// A wait that completes at once never touches the timer. A blocked wait
/// needs it to fire at its deadline, or up to an eighth of its timeout (at
/// most a second) later: the timer is re-armed only when it would fire
/// before the deadline, or too late after it, and then to the latest time
/// allowed. A connection whose waits follow each other closely re-arms
/// about once a second, not once a wait.
#[derive(Debug)]
pub(super) struct Timer {
    sleep: Pin<Box<Sleep>>,
    armed: Option<Instant>,
}

impl Timer {
    pub(super) fn new() -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep(Duration::from_secs(3600))),
            armed: None,
        }
    }

    /// `fut`'s output, or `None` once `deadline` passes.
    pub(super) async fn within<F: Future>(
        &mut self,
        deadline: Deadline,
        fut: F,
    ) -> Option<F::Output> {
        let mut fut = pin!(fut);
        let mut armed = false;
        std::future::poll_fn(|cx| {
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(Some(out));
            }
            if !armed {
                armed = true;
                let (at, slack) = match deadline {
                    Deadline::After(d) => (Instant::now() + d, d / 8),
                    Deadline::At(at, timeout) => (at, timeout / 8),
                };
                let slack = slack.min(MAX_SLACK);
                match self.armed {
                    Some(t) if t >= at && t <= at + slack => {}
                    _ => {
                        self.sleep.as_mut().reset(at + slack);
                        self.armed = Some(at + slack);
                    }
                }
            }
            self.sleep.as_mut().poll(cx).map(|()| {
                self.armed = None;
                None
            })
        })
        .await
    }
}

/// A stream whose first bytes were already read: they are read again first.
#[derive(Debug)]
pub(super) struct Rewind<T> {
    prefix: Bytes,
    inner: T,
}

impl<T> Rewind<T> {
    pub(super) fn new(prefix: Bytes, inner: T) -> Self {
        Self { prefix, inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn rewound_bytes_come_first() {
        let (mut a, b) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut a, b" world")
            .await
            .unwrap();
        drop(a);
        let mut r = Rewind::new(Bytes::from_static(b"hello"), b);
        let mut all = String::new();
        r.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "hello world");
    }

    #[tokio::test]
    async fn a_timer_fires_only_on_a_blocked_wait() {
        let mut t = Timer::new();
        let ready = t
            .within(Deadline::After(Duration::from_millis(1)), async { 7 })
            .await;
        assert_eq!(ready, Some(7));
        let blocked = t
            .within(
                Deadline::After(Duration::from_millis(50)),
                std::future::pending::<()>(),
            )
            .await;
        assert_eq!(blocked, None);
        // Reused after firing.
        let later = t
            .within(
                Deadline::After(Duration::from_millis(50)),
                tokio::time::sleep(Duration::from_millis(10)),
            )
            .await;
        assert_eq!(later, Some(()));
    }
}
