//! faregate's own HTTP/1.1 data plane, for plain-text listeners and
//! `http://` upstreams: the hot path of a proxy route.
//!
//! hyper serves every protocol and case (HTTP/2, TLS, upgrades, the
//! gateway's own endpoints, LLM routes), and it costs about as many
//! instructions per proxied request as the whole of nginx does
//! (docs/BENCHMARKS.md §2). This module is what a pingora-style proxy
//! does instead: one task per connection reads the request head into one
//! buffer, parses it with `httparse` (no allocation beyond the header
//! map the stages read), runs the same stages as [`pipeline`], drives the
//! upstream connection itself from a pool of plain TCP streams, and
//! writes the upstream's response head rewritten in one pass, with the
//! body streamed both ways and framed again (length or chunked).
//!
//! A request this plane does not serve itself (see [`exchange`]) is handed,
//! with the bytes already read, to hyper for the rest of the connection:
//! the connection is then hyper's, as if it had been from the start.
//!
//! [`pipeline`]: crate::pipeline

mod chunked;
mod codec;
mod encode;
mod exchange;
mod io;
mod pool;
mod relay;
mod response;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use faregate_core::{Problem, ProblemCode};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::gateway::Gateway;
use crate::pipeline::ConnInfo;
use crate::server::Stop;
use codec::{Parsed, RequestHead};
use io::{Deadline, Rewind, Timer};
pub(crate) use pool::{Pool, Slot};

/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 16 * 1024;
/// How long a kept-alive connection waits for its next request.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(75);
/// The client preface of HTTP/2 with prior knowledge (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Makes room to read into `buf`, reusing its memory when what was split
/// off it is gone: reserving no more than fits lets `BytesMut` move the
/// unread bytes to the front instead of allocating.
fn make_room(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < READ_CHUNK / 4 {
        buf.reserve(READ_CHUNK / 2);
    }
}

/// What the connection does after an exchange.
#[derive(Debug)]
enum Flow {
    KeepAlive,
    Close,
    /// Let hyper serve the connection, starting with these bytes.
    Handoff(Bytes),
}

/// What waiting for a request head gave.
#[derive(Debug)]
enum Next {
    Request(RequestHead),
    /// HTTP/2 with prior knowledge: hyper's.
    Http2,
    /// Unparseable, too large or too slow: answered, then closed.
    Refuse(Problem),
    /// Closed, idle too long, or shutting down.
    Closed,
}

/// What a read gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    Data,
    Eof,
    Failed,
    TimedOut,
    /// Shutdown began (between requests), or the caller left (while the
    /// gateway waited on the upstream).
    Stopped,
}

/// One client connection and the buffers its exchanges reuse.
struct Conn {
    gw: Arc<Gateway>,
    io: TcpStream,
    info: ConnInfo,
    /// The client's bytes not yet consumed.
    buf: BytesMut,
    /// The upstream's bytes not yet consumed.
    ubuf: BytesMut,
    /// What is about to be written, to either side.
    out: Vec<u8>,
    client_timer: Timer,
    upstream_timer: Timer,
    stop: Stop,
    stopped: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Whether any of the current response went out.
    responded: bool,
}

/// Serves one plain-text connection until it closes, shutdown begins
/// while it is idle, or it is handed over to hyper.
pub(crate) async fn serve(
    gw: Arc<Gateway>,
    io: TcpStream,
    info: ConnInfo,
    stop: Stop,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let mut conn = Conn {
        gw,
        io,
        info,
        buf: BytesMut::with_capacity(READ_CHUNK),
        ubuf: BytesMut::with_capacity(READ_CHUNK),
        out: Vec::new(),
        client_timer: Timer::new(),
        upstream_timer: Timer::new(),
        stopped: Box::pin(stop.wait()),
        stop,
        responded: false,
    };
    let handoff = loop {
        match conn.next_request().await {
            Next::Request(head) => match conn.exchange_caught(&head).await {
                Flow::KeepAlive => {}
                Flow::Close => break None,
                Flow::Handoff(raw) => break Some(raw),
            },
            Next::Http2 => break Some(Bytes::new()),
            Next::Refuse(problem) => {
                conn.refuse_head(problem).await;
                break None;
            }
            Next::Closed => break None,
        }
    };
    match handoff {
        Some(raw) => {
            let mut prefix = BytesMut::with_capacity(raw.len() + conn.buf.len());
            prefix.extend_from_slice(&raw);
            prefix.extend_from_slice(&conn.buf);
            let io = Rewind::new(prefix.freeze(), conn.io);
            crate::server::serve_hyper(&conn.gw, io, conn.info, watcher).await;
        }
        None => {
            let _ = conn.io.shutdown().await;
        }
    }
}

impl Conn {
    /// Reads until a whole request head is buffered.
    async fn next_request(&mut self) -> Next {
        let snap = self.gw.snapshot();
        let limits = &snap.config.limits;
        // Room for the largest head the route stage accepts, so that it,
        // with a problem document, refuses what is too large.
        let cap = usize::try_from(2 * (limits.max_header_bytes + limits.max_uri_bytes))
            .unwrap_or(usize::MAX)
            .max(16 * 1024);
        let mut head_deadline = None;
        loop {
            if !self.buf.is_empty() {
                let n = self.buf.len().min(H2_PREFACE.len());
                if self.buf[..n] == H2_PREFACE[..n] {
                    if n == H2_PREFACE.len() {
                        return Next::Http2;
                    }
                } else {
                    match codec::parse_request(&mut self.buf) {
                        Parsed::Head(head) => return Next::Request(head),
                        Parsed::Partial => {}
                        Parsed::Invalid(why) => {
                            return Next::Refuse(Problem::new(ProblemCode::BadRequest, why));
                        }
                        Parsed::TooManyFields => {
                            return Next::Refuse(Problem::new(
                                ProblemCode::HeadersTooLarge,
                                format!(
                                    "the request has more than {} header fields",
                                    codec::MAX_FIELDS
                                ),
                            ));
                        }
                    }
                }
                if self.buf.len() > cap {
                    return Next::Refuse(Problem::new(
                        ProblemCode::HeadersTooLarge,
                        format!("the request head exceeds {cap} bytes"),
                    ));
                }
                head_deadline.get_or_insert_with(|| {
                    tokio::time::Instant::now() + limits.header_read_timeout
                });
            }
            let (deadline, idle) = match head_deadline {
                Some(at) => (Deadline::At(at, limits.header_read_timeout), false),
                None => (Deadline::After(KEEPALIVE_TIMEOUT), true),
            };
            match self.fill(deadline, idle).await {
                Fill::Data => {}
                Fill::TimedOut if !idle => {
                    return Next::Refuse(Problem::new(
                        ProblemCode::RequestTimeout,
                        format!(
                            "the request head did not arrive within {:?}",
                            limits.header_read_timeout
                        ),
                    ));
                }
                Fill::Eof | Fill::Failed | Fill::TimedOut | Fill::Stopped => return Next::Closed,
            }
        }
    }

    /// Reads more of the client's bytes into `buf`; `idle` says the
    /// connection is between requests, where shutdown closes it.
    async fn fill(&mut self, deadline: Deadline, idle: bool) -> Fill {
        make_room(&mut self.buf);
        let Conn {
            io,
            buf,
            client_timer,
            stopped,
            ..
        } = self;
        let read = std::future::poll_fn(|cx| {
            if idle && stopped.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Fill::Stopped);
            }
            tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, buf).map(|r| match r {
                Ok(0) => Fill::Eof,
                Ok(_) => Fill::Data,
                Err(_) => Fill::Failed,
            })
        });
        client_timer
            .within(deadline, read)
            .await
            .unwrap_or(Fill::TimedOut)
    }

    /// Writes `out` to the client within `idle`; false when the client is
    /// gone or stopped reading.
    async fn flush_client(&mut self, idle: Duration) -> bool {
        self.responded = true;
        let Conn {
            io,
            out,
            client_timer,
            ..
        } = self;
        let written = client_timer
            .within(Deadline::After(idle), io.write_all(out))
            .await;
        out.clear();
        matches!(written, Some(Ok(())))
    }

    /// Runs one exchange; a panic in it (a bug, perhaps in a rail) is a
    /// 500 with no detail, and the connection is closed.
    async fn exchange_caught(&mut self, head: &RequestHead) -> Flow {
        self.responded = false;
        let caught = {
            let mut exchange = std::pin::pin!(self.exchange(head));
            std::future::poll_fn(|cx| {
                match std::panic::catch_unwind(AssertUnwindSafe(|| exchange.as_mut().poll(cx))) {
                    Ok(Poll::Ready(flow)) => Poll::Ready(Some(flow)),
                    Ok(Poll::Pending) => Poll::Pending,
                    Err(_) => Poll::Ready(None),
                }
            })
            .await
        };
        match caught {
            Some(flow) => flow,
            None => {
                if !self.responded {
                    let response = crate::respond::internal_error();
                    self.write_gateway_response(response, false, true).await;
                }
                Flow::Close
            }
        }
    }

    /// Answers a head that never became a request, and closes.
    async fn refuse_head(&mut self, problem: Problem) {
        let id = crate::headers::new_request_id();
        tracing::debug!(request_id = %id, code = problem.code.as_str(), detail = %problem.detail, "unreadable request head");
        let body = problem.to_json(crate::respond::PROBLEM_PATH, &id);
        let mut response = http::Response::new(crate::body::ResponseBody::full(body));
        *response.status_mut() =
            http::StatusCode::from_u16(problem.status()).unwrap_or(http::StatusCode::BAD_REQUEST);
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
        if let Ok(v) = http::HeaderValue::from_str(&id) {
            headers.insert(crate::headers::X_REQUEST_ID.clone(), v);
        }
        self.write_gateway_response(response, false, true).await;
    }

    /// Writes a response the gateway made; returns the body bytes sent, or
    /// `None` when the client is gone.
    async fn write_gateway_response(
        &mut self,
        mut response: http::Response<crate::body::ResponseBody>,
        head_only: bool,
        close: bool,
    ) -> Option<u64> {
        let body = response.body_mut().take_full();
        self.out.clear();
        encode::gateway_response(&mut self.out, &response, &body, head_only, close);
        let idle = self.gw.snapshot().config.limits.idle_timeout;
        self.flush_client(idle)
            .await
            .then_some(if head_only { 0 } else { body.len() as u64 })
    }
}
