//! The `forward` and `meter` stages on the HTTP/1 data plane: the request
//! goes upstream on a pooled connection, its body streamed and framed
//! again; the response head is rewritten for the caller, its body streamed
//! back and counted.
//!
//! Failures follow `forward.rs`: an upstream that refuses the connection is
//! marked down and, when the request has no body to replay, the next one is
//! tried; a pooled connection the upstream had closed is replaced by a new
//! one when nothing of the exchange arrived. Refused or broken answers are
//! 502, time-outs 504, a caller's stalled body 408, an oversized one 413.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use std::pin::Pin;
use std::task::Poll;

use bytes::Buf;
use faregate_core::{Problem, ProblemCode};
use http::Method;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::io::poll_read_buf;

use super::chunked::{self, Decoder};
use super::codec::{Framing, RequestHead};
use super::encode::{self, Outbound};
use super::exchange::{BodyState, Done};
use super::io::Deadline;
use super::response::{self, Added, Head, Relayed};
use super::{Conn, Fill, Flow, Slot};
use crate::config::{Access, Route, Upstream};
use crate::forward;
use crate::identify::Caller;
use crate::pipeline::Ctx;

/// The largest response head taken from an upstream.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// How one attempt on one upstream ended.
enum Sent {
    Response(TcpStream, Relayed),
    /// No connection was made.
    Unreachable(Problem),
    /// It failed after connecting; the reason is for the log.
    Failed(Problem, BodyState, String),
    /// The caller closed its connection while waiting.
    ClientGone,
}

/// Why no response head arrived.
#[allow(
    clippy::large_enum_variant,
    reason = "refusals travel the cold path (see `result_large_err`)"
)]
enum NoHead {
    /// The upstream closed without sending a byte.
    Closed,
    /// The answer for the caller, and the reason for the log.
    Failed(Problem, String),
    /// The caller closed its connection while waiting.
    ClientGone,
}

/// Why a request body could not be sent.
enum Upload {
    /// The caller's fault: too large, stalled or badly framed.
    Caller(Problem),
    /// The caller went away mid-body.
    ClientGone,
    /// The upstream stopped taking it.
    Upstream(String),
}

impl Conn {
    pub(super) async fn forward(
        &mut self,
        ctx: &mut Ctx,
        route: &Arc<Route>,
        caller: &Caller,
        head: &RequestHead,
    ) -> (Flow, Done) {
        let limit = route.limits.max_body_bytes;
        if let Framing::Length(n) = head.body
            && n > limit
        {
            let problem = forward::too_large(limit);
            return self.refuse(ctx, head, problem, BodyState::Unread).await;
        }
        if head.expect_continue && !self.body_buffered(head) {
            self.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            if !self.flush_client(route.limits.idle_timeout).await {
                let done = Done {
                    status: 100,
                    sent: 0,
                    complete: false,
                    error: Some("client closed before its body was asked for".into()),
                };
                return (Flow::Close, done);
            }
            self.responded = false;
        }
        let snap = ctx.snap.clone();
        let state = &snap.routes[route.index];
        let now = ctx.started_unix;
        let replayable = head.body == Framing::None;
        let many;
        let order: &[usize] = if route.upstreams.len() == 1 {
            &[0]
        } else {
            many = forward::order(route, state, now);
            &many
        };
        let mut last = None;
        for &i in order {
            let upstream = &route.upstreams[i];
            ctx.tried.push(upstream.name.clone());
            let Some(slot) = state.slots[i].clone() else {
                continue;
            };
            match self
                .send(ctx, route, caller, head, upstream, &slot, replayable)
                .await
            {
                Sent::Response(stream, relayed) => {
                    return self.respond(ctx, route, head, &slot, stream, relayed).await;
                }
                Sent::Unreachable(problem) => {
                    ctx.gw.metrics.upstream_errors.fetch_add(1, Relaxed);
                    ctx.error = Some(format!("{}: {}", upstream.authority, problem.detail));
                    forward::mark_down(route, state, i, now);
                    if !replayable {
                        return self.refuse(ctx, head, problem, BodyState::Unread).await;
                    }
                    last = Some(problem);
                }
                Sent::ClientGone => {
                    ctx.error = Some("the client closed before the response".into());
                    // nginx's code for it: the access log says what happened.
                    let done = Done {
                        status: 499,
                        sent: 0,
                        complete: false,
                        error: None,
                    };
                    return (Flow::Close, done);
                }
                Sent::Failed(problem, body, why) => {
                    ctx.gw.metrics.upstream_errors.fetch_add(1, Relaxed);
                    ctx.error = Some(format!("{}: {why}", upstream.authority));
                    return self.refuse(ctx, head, problem, body).await;
                }
            }
        }
        let problem = last.unwrap_or_else(|| forward::all_down(state, now));
        self.refuse(ctx, head, problem, BodyState::Unread).await
    }

    /// Whether the request's whole body is already buffered.
    fn body_buffered(&self, head: &RequestHead) -> bool {
        match head.body {
            Framing::Length(n) => self.buf.len() as u64 >= n,
            _ => false,
        }
    }

    /// One attempt on `upstream`: a pooled connection first, then a new one
    /// if the pooled one turns out to have been closed.
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &mut self,
        ctx: &Ctx,
        route: &Route,
        caller: &Caller,
        head: &RequestHead,
        upstream: &Upstream,
        slot: &Slot,
        replayable: bool,
    ) -> Sent {
        let req = &head.request;
        let host = if route.preserve_host {
            ctx.authority.as_deref().unwrap_or("").as_bytes()
        } else {
            upstream.host_header.as_bytes()
        };
        let outbound = Outbound {
            method: req.method(),
            target: (
                &upstream.base_path,
                forward::rest_of(route, &ctx.path),
                req.uri().query(),
            ),
            host,
            authority: ctx.authority.as_deref(),
            hop: &ctx.conn.hop,
            request_id: &ctx.request_id,
            key_header: caller.key_header,
            extra: &route.upstream_headers,
            body: head.body,
        };
        let added = Added {
            request_id: &ctx.request_id,
            rate: ctx.rate,
            cors: ctx.cors && matches!(route.access, Access::Rails(_)),
            hold: ctx.hold.headers(),
            head_request: req.method() == Method::HEAD,
            close: !self.keeps_alive(head),
        };
        let mut pooled = true;
        loop {
            let warm = if pooled {
                slot.checkout(ctx.started)
            } else {
                None
            };
            let (mut stream, reused) = match warm {
                Some(stream) => (stream, true),
                None => match slot.connect().await {
                    Ok(stream) => (stream, false),
                    Err(e) => {
                        let timed_out = e.kind() == std::io::ErrorKind::TimedOut;
                        return Sent::Unreachable(forward::connect_failed(timed_out));
                    }
                },
            };
            self.out.clear();
            encode::request_head(&mut self.out, req.headers(), &outbound);
            match self.upload(&mut stream, head, route, ctx).await {
                Ok(()) => {}
                Err(Upload::Upstream(_)) if reused && replayable => {
                    pooled = false;
                    continue;
                }
                Err(Upload::Upstream(why)) => {
                    return Sent::Failed(forward::broken(), body_state(head, false), why);
                }
                Err(Upload::Caller(problem)) => {
                    let why = problem.detail.clone();
                    return Sent::Failed(problem, BodyState::Broken, why);
                }
                Err(Upload::ClientGone) => {
                    let problem =
                        Problem::new(ProblemCode::BadRequest, "the request body ended early");
                    let why = "the client left during its body".to_owned();
                    return Sent::Failed(problem, BodyState::Broken, why);
                }
            }
            // Counted from the end of the upload: for a request with no
            // body that is its arrival, a clock read the request made already.
            let uploaded = match head.body {
                Framing::None => Instant::from_std(ctx.started),
                _ => Instant::now(),
            };
            let timeout = route.limits.first_byte_timeout;
            let first_byte = Deadline::At(uploaded + timeout, timeout);
            match self.response_head(&mut stream, &added, first_byte).await {
                Ok(relayed) => return Sent::Response(stream, relayed),
                Err(NoHead::Closed) if reused && replayable => pooled = false,
                Err(NoHead::Closed) => {
                    let why = "closed the connection without answering".to_owned();
                    return Sent::Failed(forward::broken(), body_state(head, true), why);
                }
                Err(NoHead::Failed(problem, why)) => {
                    return Sent::Failed(problem, body_state(head, true), why);
                }
                Err(NoHead::ClientGone) => return Sent::ClientGone,
            }
        }
    }

    /// Sends the head in `out` and the request body after it.
    async fn upload(
        &mut self,
        up: &mut TcpStream,
        head: &RequestHead,
        route: &Route,
        ctx: &Ctx,
    ) -> Result<(), Upload> {
        let limit = route.limits.max_body_bytes;
        let mut remaining = match head.body {
            Framing::Length(n) => n,
            _ => 0,
        };
        let mut decoder = Decoder::default();
        let mut seen = 0u64;
        loop {
            let before = seen;
            let done = match head.body {
                Framing::None | Framing::Close => true,
                Framing::Length(_) => {
                    let take = remaining.min(self.buf.len() as u64) as usize;
                    self.out.extend_from_slice(&self.buf[..take]);
                    self.buf.advance(take);
                    remaining -= take as u64;
                    seen += take as u64;
                    remaining == 0
                }
                Framing::Chunked => {
                    let out = &mut self.out;
                    let used = decoder
                        .decode(&self.buf, |piece| {
                            chunked::encode(out, piece);
                            seen += piece.len() as u64;
                        })
                        .map_err(|e| {
                            Upload::Caller(Problem::new(ProblemCode::BadRequest, e.to_string()))
                        })?;
                    self.buf.advance(used);
                    if seen > limit {
                        return Err(Upload::Caller(forward::too_large(limit)));
                    }
                    if decoder.is_done() {
                        self.out.extend_from_slice(chunked::LAST_CHUNK);
                    }
                    decoder.is_done()
                }
            };
            ctx.tally.bytes_in.fetch_add(seen - before, Relaxed);
            if !self.out.is_empty() {
                let idle = route.limits.idle_timeout;
                let written = self
                    .upstream_timer
                    .within(Deadline::After(idle), up.write_all(&self.out))
                    .await;
                self.out.clear();
                match written {
                    Some(Ok(())) => {}
                    Some(Err(e)) => return Err(Upload::Upstream(e.to_string())),
                    None => return Err(Upload::Upstream(format!("not writable for {idle:?}"))),
                }
            }
            if done {
                ctx.tally.body_done.store(true, Relaxed);
                return Ok(());
            }
            let idle = route.limits.body_idle_timeout;
            match self.fill(Deadline::After(idle), false).await {
                Fill::Data => {}
                Fill::TimedOut => {
                    return Err(Upload::Caller(Problem::new(
                        ProblemCode::RequestTimeout,
                        format!("the request body paused for more than {idle:?}"),
                    )));
                }
                Fill::Eof | Fill::Failed | Fill::Stopped => return Err(Upload::ClientGone),
            }
        }
    }

    /// Reads the final response head and writes the caller's into `out`.
    async fn response_head(
        &mut self,
        up: &mut TcpStream,
        added: &Added<'_>,
        deadline: Deadline,
    ) -> Result<Relayed, NoHead> {
        self.ubuf.clear();
        loop {
            if !self.ubuf.is_empty() {
                self.out.clear();
                match response::relay(&self.ubuf, added, &mut self.out) {
                    Head::Relayed(relayed) => {
                        self.ubuf.advance(relayed.len);
                        return Ok(relayed);
                    }
                    Head::Interim(len) => {
                        self.ubuf.advance(len);
                        continue;
                    }
                    Head::Partial if self.ubuf.len() > MAX_RESPONSE_HEAD => {
                        return Err(NoHead::Failed(
                            forward::broken(),
                            "its response head is too large".into(),
                        ));
                    }
                    Head::Partial => {}
                    Head::Invalid(why) => {
                        return Err(NoHead::Failed(forward::broken(), why.into()));
                    }
                }
            }
            match self.fill_upstream(up, deadline).await {
                Fill::Data => {}
                Fill::TimedOut => {
                    let problem = Problem::new(
                        ProblemCode::UpstreamTimeout,
                        "the upstream did not answer in time",
                    );
                    return Err(NoHead::Failed(problem, "no response head in time".into()));
                }
                Fill::Stopped => return Err(NoHead::ClientGone),
                _ if self.ubuf.is_empty() => return Err(NoHead::Closed),
                _ => {
                    let why = "it closed during its response head".into();
                    return Err(NoHead::Failed(forward::broken(), why));
                }
            }
        }
    }

    /// Streams the response body after the head in `out`, then settles and
    /// logs; the connection goes back to the pool when the exchange ended
    /// cleanly.
    async fn respond(
        &mut self,
        ctx: &mut Ctx,
        route: &Route,
        head: &RequestHead,
        slot: &Slot,
        mut up: TcpStream,
        relayed: Relayed,
    ) -> (Flow, Done) {
        ctx.upstream_status = Some(relayed.status);
        let close = !self.keeps_alive(head);
        let (sent, error) = self
            .relay_body(&mut up, relayed.body, route.limits.idle_timeout)
            .await;
        let complete = error.is_none();
        if complete && relayed.reusable && self.ubuf.is_empty() {
            slot.checkin(up, ctx.started);
        }
        self.ubuf.clear();
        let flow = if complete && !close {
            Flow::KeepAlive
        } else {
            Flow::Close
        };
        let done = Done {
            status: relayed.status,
            sent,
            complete,
            error,
        };
        (flow, done)
    }

    /// Copies the upstream's body to the caller, framed for the caller;
    /// returns the body bytes sent and, if it broke off, why.
    async fn relay_body(
        &mut self,
        up: &mut TcpStream,
        framing: Framing,
        idle: Duration,
    ) -> (u64, Option<String>) {
        let mut remaining = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        let mut decoder = Decoder::default();
        let mut sent = 0u64;
        let mut eof = false;
        loop {
            let done = match framing {
                Framing::None => true,
                Framing::Length(_) => {
                    let take = remaining.min(self.ubuf.len() as u64) as usize;
                    self.out.extend_from_slice(&self.ubuf[..take]);
                    self.ubuf.advance(take);
                    remaining -= take as u64;
                    sent += take as u64;
                    remaining == 0
                }
                Framing::Chunked => {
                    let out = &mut self.out;
                    let used = match decoder.decode(&self.ubuf, |piece| {
                        chunked::encode(out, piece);
                        sent += piece.len() as u64;
                    }) {
                        Ok(used) => used,
                        Err(e) => return (sent, Some(format!("upstream body: {e}"))),
                    };
                    self.ubuf.advance(used);
                    if decoder.is_done() {
                        self.out.extend_from_slice(chunked::LAST_CHUNK);
                    }
                    decoder.is_done()
                }
                Framing::Close => {
                    chunked::encode(&mut self.out, &self.ubuf);
                    sent += self.ubuf.len() as u64;
                    self.ubuf.clear();
                    if eof {
                        self.out.extend_from_slice(chunked::LAST_CHUNK);
                    }
                    eof
                }
            };
            if !self.out.is_empty() && !self.flush_client(idle).await {
                return (sent, Some("client closed before the body ended".into()));
            }
            if done {
                return (sent, None);
            }
            match self.fill_upstream(up, Deadline::After(idle)).await {
                Fill::Data => {}
                Fill::Eof if framing == Framing::Close => eof = true,
                Fill::TimedOut => {
                    return (
                        sent,
                        Some(format!("upstream body idle for more than {idle:?}")),
                    );
                }
                Fill::Stopped => return (sent, Some("client closed before the body ended".into())),
                _ => {
                    return (
                        sent,
                        Some("the upstream closed before the body ended".into()),
                    );
                }
            }
        }
    }

    /// Reads more of the upstream's bytes into `ubuf`, watching the caller
    /// meanwhile: its closing the connection ends the wait with
    /// [`Fill::Stopped`] (what it sends ahead, a pipelined request, is kept).
    async fn fill_upstream(&mut self, up: &mut TcpStream, deadline: Deadline) -> Fill {
        super::make_room(&mut self.ubuf);
        super::make_room(&mut self.buf);
        let Conn {
            io,
            buf,
            ubuf,
            upstream_timer,
            ..
        } = self;
        let read = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = poll_read_buf(Pin::new(&mut *up), cx, ubuf) {
                return Poll::Ready(match r {
                    Ok(0) => Fill::Eof,
                    Ok(_) => Fill::Data,
                    Err(_) => Fill::Failed,
                });
            }
            // Until the caller's bytes fill the buffer: then only the
            // upstream is waited on.
            while buf.capacity() > buf.len() {
                match poll_read_buf(Pin::new(&mut *io), cx, buf) {
                    Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(Fill::Stopped),
                    Poll::Ready(Ok(_)) => {}
                    Poll::Pending => break,
                }
            }
            Poll::Pending
        });
        upstream_timer
            .within(deadline, read)
            .await
            .unwrap_or(Fill::TimedOut)
    }
}

/// How much of the body was used up when an attempt failed.
fn body_state(head: &RequestHead, uploaded: bool) -> BodyState {
    match (head.body, uploaded) {
        (Framing::None, _) => BodyState::Read,
        (_, true) => BodyState::Read,
        (_, false) => BodyState::Broken,
    }
}
