//! Bodies in both directions, streamed and never buffered whole.
//!
//! [`RequestBody`] passes the caller's body upstream while counting it,
//! enforcing the route's size limit and the idle timeout. [`ResponseBody`]
//! passes the upstream's body (or the gateway's own) to the caller while
//! counting it and enforcing the idle timeout; when it ends, or the caller
//! goes away, its [`Finish`] runs the `settle` and `observe` stages.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::pool::Lease;

/// Errors from either body.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a streamed body stopped early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// The caller sent more than the route accepts.
    #[error("request body exceeds {0} bytes")]
    TooLarge(u64),
    /// The other side paused longer than the idle timeout.
    #[error("body idle for more than {0:?}")]
    Idle(Duration),
}

/// Byte counts shared between a request's bodies and its finish.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Request body bytes received.
    pub bytes_in: AtomicU64,
    /// Whether the request body has been read to its end.
    pub body_done: AtomicBool,
}

/// A re-armable idle timer, allocated only once a body actually waits.
#[derive(Debug)]
struct Idle {
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Idle {
    fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            sleep: None,
        }
    }

    /// Called when the inner body is pending: fires after `timeout`.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let timeout = self.timeout;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        sleep.as_mut().poll(cx)
    }

    /// Called when data arrived: the next wait starts from now.
    fn reset(&mut self) {
        if let Some(sleep) = &mut self.sleep {
            sleep.as_mut().reset(Instant::now() + self.timeout);
        }
    }
}

/// The caller's body on its way upstream.
#[derive(Debug)]
pub(crate) struct RequestBody {
    inner: Option<Incoming>,
    /// A body the gateway read whole or made itself (LLM calls).
    full: Option<Bytes>,
    limit: u64,
    seen: u64,
    idle: Idle,
    tally: Arc<Tally>,
}

impl RequestBody {
    /// Wraps `inner` with a size `limit` and an idle timeout.
    pub(crate) fn new(inner: Incoming, limit: u64, idle: Duration, tally: Arc<Tally>) -> Self {
        tally.body_done.store(inner.is_end_stream(), Relaxed);
        Self {
            inner: Some(inner),
            full: None,
            limit,
            seen: 0,
            idle: Idle::new(idle),
            tally,
        }
    }

    /// A body held whole (an LLM call, rewritten for its provider).
    pub(crate) fn full(bytes: Bytes, tally: Arc<Tally>) -> Self {
        tally.body_done.store(true, Relaxed);
        Self {
            inner: None,
            full: (!bytes.is_empty()).then_some(bytes),
            limit: 0,
            seen: 0,
            idle: Idle::new(Duration::from_secs(1)),
            tally,
        }
    }

    /// An empty body, for retrying a request that had none.
    pub(crate) fn empty(tally: Arc<Tally>) -> Self {
        tally.body_done.store(true, Relaxed);
        Self {
            inner: None,
            full: None,
            limit: 0,
            seen: 0,
            idle: Idle::new(Duration::from_secs(1)),
            tally,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let Some(inner) = &mut this.inner else {
            return Poll::Ready(this.full.take().map(|b| Ok(Frame::data(b))));
        };
        match Pin::new(&mut *inner).poll_frame(cx) {
            Poll::Pending => {
                ready!(this.idle.poll_expired(cx));
                Poll::Ready(Some(Err(BodyError::Idle(this.idle.timeout).into())))
            }
            Poll::Ready(Some(Ok(frame))) => {
                this.idle.reset();
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    this.seen += n;
                    this.tally.bytes_in.fetch_add(n, Relaxed);
                    if this.seen > this.limit {
                        return Poll::Ready(Some(Err(BodyError::TooLarge(this.limit).into())));
                    }
                }
                if inner.is_end_stream() {
                    this.tally.body_done.store(true, Relaxed);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => {
                this.tally.body_done.store(true, Relaxed);
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.full.is_none() && self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map_or_else(
            || SizeHint::with_exact(self.full.as_ref().map_or(0, |b| b.len() as u64)),
            Body::size_hint,
        )
    }
}

/// Runs when a response body is done: settles and logs the request.
pub(crate) trait Finish: Send + 'static {
    /// `bytes_out` bytes were sent; `complete` says whether the body reached
    /// its end (false when the caller left or the upstream broke off);
    /// `error` says what broke it.
    fn finish(self: Box<Self>, bytes_out: u64, complete: bool, error: Option<String>);
}

/// Changes a streamed body on its way to the caller (an LLM stream: the
/// usage chunk the caller did not ask for taken out, the cost added last).
pub(crate) trait Rewrite: Send + 'static {
    /// What to send for `chunk` (may be empty).
    fn chunk(&mut self, chunk: Bytes) -> Bytes;
    /// What to send after the upstream's last chunk (may be empty).
    fn end(&mut self) -> Bytes;
}

enum Source {
    Full(Option<Bytes>),
    Upstream {
        body: Incoming,
        idle: Idle,
        /// The pooled connection it came on, given back at the body's end.
        lease: Option<Lease>,
        /// Applied to every chunk, when set.
        rewriting: Option<Box<Rewriting>>,
    },
}

/// A rewritten stream between polls.
struct Rewriting {
    rewrite: Box<dyn Rewrite>,
    /// The rewrite's last words, once the upstream is done.
    tail: Option<Bytes>,
    /// Whether the upstream body has ended.
    ended: bool,
    /// An upstream error that came after gathered bytes, returned next.
    failed: Option<BoxError>,
    /// Output not sent yet, kept while the upstream's task has its turn.
    gathered: Gathered,
    /// Turns given to the upstream's task since the last frame was sent.
    turns: u8,
    /// Of those, the last ones in a row that brought no chunk.
    quiet: u8,
}

/// The body sent to the caller.
pub(crate) struct ResponseBody {
    source: Source,
    sent: u64,
    finish: Option<Box<dyn Finish>>,
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl ResponseBody {
    /// A body the gateway made itself.
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        let source = Source::Full(if bytes.is_empty() { None } else { Some(bytes) });
        Self {
            source,
            sent: 0,
            finish: None,
        }
    }

    /// The upstream's body, with an idle timeout between frames; `lease` is
    /// the pooled connection it came on.
    pub(crate) fn upstream(body: Incoming, idle: Duration, lease: Option<Lease>) -> Self {
        Self {
            source: Source::Upstream {
                body,
                idle: Idle::new(idle),
                lease,
                rewriting: None,
            },
            sent: 0,
            finish: None,
        }
    }

    /// The upstream's body passed through `rewrite`.
    pub(crate) fn rewritten(
        body: Incoming,
        idle: Duration,
        lease: Option<Lease>,
        rewrite: Box<dyn Rewrite>,
    ) -> Self {
        let mut this = Self::upstream(body, idle, lease);
        if let Source::Upstream { rewriting, .. } = &mut this.source {
            *rewriting = Some(Box::new(Rewriting {
                rewrite,
                tail: None,
                ended: false,
                failed: None,
                gathered: Gathered::Nothing,
                turns: 0,
                quiet: 0,
            }));
        }
        this
    }

    /// The whole body of a response the gateway made (empty for any other).
    pub(crate) fn take_full(&mut self) -> Bytes {
        match &mut self.source {
            Source::Full(bytes) => bytes.take().unwrap_or_default(),
            Source::Upstream { .. } => Bytes::new(),
        }
    }

    /// Runs `finish` when the body is done or dropped.
    pub(crate) fn on_finish(&mut self, finish: Box<dyn Finish>) {
        self.finish = Some(finish);
    }

    fn done(&mut self, complete: bool, error: Option<String>) {
        if let Source::Upstream { lease, .. } = &mut self.source
            && let Some(lease) = lease.take()
            && complete
        {
            // Read to its end: the connection can carry the next request.
            lease.release();
        }
        if let Some(f) = self.finish.take() {
            f.finish(self.sent, complete, error);
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = match &mut this.source {
            Source::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Source::Upstream {
                body,
                idle,
                rewriting: None,
                ..
            } => match Pin::new(body).poll_frame(cx) {
                Poll::Pending => {
                    ready!(idle.poll_expired(cx));
                    Poll::Ready(Some(Err(BodyError::Idle(idle.timeout).into())))
                }
                Poll::Ready(other) => {
                    idle.reset();
                    Poll::Ready(other.map(|r| r.map_err(BoxError::from)))
                }
            },
            Source::Upstream {
                body,
                idle,
                rewriting: Some(rewriting),
                ..
            } => poll_rewritten(body, idle, rewriting, cx),
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.sent += data.len() as u64;
                }
                if this.is_end_stream() {
                    this.done(true, None);
                }
            }
            Poll::Ready(Some(Err(e))) => this.done(false, Some(e.to_string())),
            Poll::Ready(None) => this.done(true, None),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.source {
            Source::Full(bytes) => bytes.is_none(),
            Source::Upstream {
                body,
                rewriting: None,
                ..
            } => body.is_end_stream(),
            Source::Upstream {
                rewriting: Some(r), ..
            } => r.ended && r.tail.is_none() && r.failed.is_none() && r.gathered.is_empty(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.source {
            Source::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Source::Upstream {
                body,
                rewriting: None,
                ..
            } => body.size_hint(),
            Source::Upstream { .. } => SizeHint::default(),
        }
    }
}

/// Bytes of a rewritten stream gathered into one frame at most.
const GATHER: usize = 64 * 1024;

/// Turns given to the upstream connection's task before a gathered frame
/// goes out anyway, and turns in a row without a chunk that say the
/// upstream has nothing more for now.
const MAX_TURNS: u8 = 64;
const QUIET_TURNS: u8 = 2;

/// Polls an upstream body through its rewrite: chunks that rewrite to
/// nothing are skipped, the output of every chunk that has already arrived
/// is gathered into one frame (an LLM stream's events, read together, go
/// out in one write instead of one each), and the rewrite's last words
/// follow the upstream's end. Trailers are dropped (the tail must come
/// last). An upstream error after gathered bytes is returned on the next
/// poll, so those bytes still go out.
///
/// hyper hands a response body over one chunk at a time from the
/// connection's own task, so "nothing yet" may only mean that task has not
/// run since the last chunk. With bytes gathered, "nothing yet" gives it a
/// turn (this task wakes itself and waits once); the frame goes out when
/// [`QUIET_TURNS`] turns in a row bring nothing (the upstream's task needs
/// two to hand over a chunk it holds), after [`MAX_TURNS`], or at the end.
/// A stream whose events were read together then costs one write instead
/// of one per event, and one that really waits on its upstream (tokens as
/// they are generated) loses two scheduler turns, microseconds.
fn poll_rewritten(
    body: &mut Incoming,
    idle: &mut Idle,
    r: &mut Rewriting,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
    if let Some(e) = r.failed.take() {
        return Poll::Ready(Some(Err(e)));
    }
    // Whether this poll brought a chunk.
    let mut fresh = false;
    let end = |r: &mut Rewriting| {
        r.ended = true;
        let last = r.rewrite.end();
        r.tail = (!last.is_empty()).then_some(last);
    };
    let send = |r: &mut Rewriting| {
        r.turns = 0;
        r.quiet = 0;
        let frame = std::mem::take(&mut r.gathered).into_bytes();
        Poll::Ready(Some(Ok(Frame::data(frame))))
    };
    loop {
        if r.ended {
            if let Some(last) = r.tail.take() {
                r.gathered.push(last);
            }
            return if r.gathered.is_empty() {
                Poll::Ready(None)
            } else {
                send(r)
            };
        }
        match Pin::new(&mut *body).poll_frame(cx) {
            Poll::Pending if !r.gathered.is_empty() => {
                // Bytes are still gathered only after a turn (`turns` > 0).
                r.quiet = if fresh {
                    0
                } else {
                    r.quiet + u8::from(r.turns > 0)
                };
                if r.quiet >= QUIET_TURNS || r.turns >= MAX_TURNS {
                    return send(r);
                }
                r.turns += 1;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Pending => {
                ready!(idle.poll_expired(cx));
                return Poll::Ready(Some(Err(BodyError::Idle(idle.timeout).into())));
            }
            Poll::Ready(Some(Err(e))) if !r.gathered.is_empty() => {
                r.failed = Some(e.into());
                return send(r);
            }
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => end(r),
            Poll::Ready(Some(Ok(frame))) => {
                idle.reset();
                fresh = true;
                let out = frame.into_data().map(|data| r.rewrite.chunk(data));
                if body.is_end_stream() {
                    end(r);
                }
                if let Ok(out) = out {
                    r.gathered.push(out);
                }
                if r.gathered.len() >= GATHER {
                    return send(r);
                }
            }
        }
    }
}

/// Bytes gathered for one frame: the first chunk is kept as it came, and
/// copied only when a second joins it.
#[derive(Debug, Default)]
enum Gathered {
    #[default]
    Nothing,
    One(Bytes),
    Many(BytesMut),
}

impl Gathered {
    fn push(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        *self = match std::mem::take(self) {
            Gathered::Nothing => Gathered::One(bytes),
            Gathered::One(first) => {
                let mut many = BytesMut::with_capacity(first.len() + bytes.len());
                many.extend_from_slice(&first);
                many.extend_from_slice(&bytes);
                Gathered::Many(many)
            }
            Gathered::Many(mut many) => {
                many.extend_from_slice(&bytes);
                Gathered::Many(many)
            }
        };
    }

    fn len(&self) -> usize {
        match self {
            Gathered::Nothing => 0,
            Gathered::One(b) => b.len(),
            Gathered::Many(m) => m.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn into_bytes(self) -> Bytes {
        match self {
            Gathered::Nothing => Bytes::new(),
            Gathered::One(b) => b,
            Gathered::Many(m) => m.freeze(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // The caller went away, or hyper never polled (HEAD, 204, 304).
        let complete = self.is_end_stream();
        let error = (!complete).then(|| "client closed before the body ended".to_owned());
        self.done(complete, error);
    }
}
