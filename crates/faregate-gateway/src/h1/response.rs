//! The upstream's response head, parsed and rewritten for the caller in one
//! pass over its fields: hop-by-hop fields (and those `Connection` names)
//! dropped, the body framed again by the gateway, and the headers every
//! response carries added (the same ones `meter::common_headers` sets on
//! responses served through hyper).

use std::mem::MaybeUninit;

use http::StatusCode;

use super::codec::{Framing, parse_length};
use super::encode::{date, field, number, status_line};

/// Fields parsed on the stack; an upstream that sends more is refused.
const MAX_FIELDS: usize = 100;

/// What the gateway adds to the upstream's head.
#[derive(Debug)]
pub(super) struct Added<'a> {
    pub(super) request_id: &'a str,
    /// `RateLimit-*` values: (limit, remaining, reset seconds).
    pub(super) rate: Option<(u32, u32, u64)>,
    /// A browser called a paid route: the payment headers are exposed.
    pub(super) cors: bool,
    /// Headers the hold's rail wants (a subscriber's quota).
    pub(super) hold: &'a [(&'static str, String)],
    /// The request was `HEAD`: no body follows whatever the head says.
    pub(super) head_request: bool,
    /// The caller's connection closes after this response.
    pub(super) close: bool,
}

/// The head as relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Relayed {
    pub(super) status: u16,
    /// Bytes of the upstream's head.
    pub(super) len: usize,
    /// How the upstream delimits the body that follows.
    pub(super) body: Framing,
    /// Whether the upstream connection may carry another request.
    pub(super) reusable: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Head {
    Relayed(Relayed),
    /// A 1xx interim response of this many bytes, skipped.
    Interim(usize),
    Partial,
    Invalid(&'static str),
}

/// The kinds of upstream fields the relay treats specially.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Other,
    Hop,
    Connection,
    Date,
    Length,
    TransferEncoding,
    RequestId,
    RateLimit,
    AllowOrigin,
    Expose,
}

fn classify(name: &[u8]) -> Field {
    let is = |s: &[u8]| name.eq_ignore_ascii_case(s);
    match name.len() {
        2 if is(b"te") => Field::Hop,
        4 if is(b"date") => Field::Date,
        7 if is(b"trailer") || is(b"upgrade") => Field::Hop,
        10 if is(b"connection") => Field::Connection,
        10 if is(b"keep-alive") => Field::Hop,
        12 if is(b"x-request-id") => Field::RequestId,
        14 if is(b"content-length") => Field::Length,
        15 if is(b"ratelimit-limit") || is(b"ratelimit-reset") => Field::RateLimit,
        16 if is(b"proxy-connection") => Field::Hop,
        17 if is(b"transfer-encoding") => Field::TransferEncoding,
        18 if is(b"proxy-authenticate") => Field::Hop,
        19 if is(b"proxy-authorization") => Field::Hop,
        19 if is(b"ratelimit-remaining") => Field::RateLimit,
        27 if is(b"access-control-allow-origin") => Field::AllowOrigin,
        29 if is(b"access-control-expose-headers") => Field::Expose,
        _ => Field::Other,
    }
}

/// Everything the first pass learns of the fields.
#[derive(Debug, Default)]
struct Seen<'b> {
    connection: Option<&'b [u8]>,
    length: Option<Option<u64>>,
    chunked: Option<bool>,
    date: bool,
    allow_origin: bool,
}

/// Parses the head at the start of `buf` and, when it is complete and
/// final, appends the caller's head to `out`.
pub(super) fn relay(buf: &[u8], added: &Added<'_>, out: &mut Vec<u8>) -> Head {
    let mut fields = [const { MaybeUninit::uninit() }; MAX_FIELDS];
    let mut res = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut res,
        buf,
        &mut fields,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Head::Partial,
        Err(_) => return Head::Invalid("the upstream sent a malformed response head"),
    };
    let code = res.code.unwrap_or(0);
    let Ok(status) = StatusCode::from_u16(code) else {
        return Head::Invalid("the upstream sent an invalid status");
    };
    if status.is_informational() {
        return if code == 101 {
            Head::Invalid("the upstream switched protocols unasked")
        } else {
            Head::Interim(len)
        };
    }
    let mut seen = Seen::default();
    let mut kinds = [Field::Other; MAX_FIELDS];
    for (kind, f) in kinds.iter_mut().zip(res.headers.iter()) {
        *kind = classify(f.name.as_bytes());
        match *kind {
            Field::Connection => seen.connection = Some(f.value),
            Field::Length => {
                let n = parse_length(f.value);
                if seen.length.is_some_and(|prior| prior != n) {
                    return Head::Invalid("the upstream sent conflicting lengths");
                }
                seen.length = Some(n);
            }
            Field::TransferEncoding => {
                let last = f.value.rsplit(|&b| b == b',').next().unwrap_or_default();
                seen.chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            }
            Field::Date => seen.date = true,
            Field::AllowOrigin => seen.allow_origin = true,
            _ => {}
        }
    }
    let no_body = added.head_request || code == 204 || code == 304;
    let body = match (seen.chunked, seen.length) {
        _ if no_body => Framing::None,
        (Some(true), _) => Framing::Chunked,
        (Some(false), _) => Framing::Close,
        (None, Some(Some(0))) => Framing::None,
        (None, Some(Some(n))) => Framing::Length(n),
        (None, Some(None)) => return Head::Invalid("the upstream sent an invalid Content-Length"),
        (None, None) => Framing::Close,
    };
    let keep_alive =
        res.version == Some(1) && !seen.connection.is_some_and(|v| has_token(v, b"close"));
    out.reserve(len + 512);
    status_line(out, status, res.reason.unwrap_or("").as_bytes());
    // Fields that pass unchanged are copied as they came, a run of
    // neighbours at a time.
    let mut run = Run::default();
    for (kind, f) in kinds.iter().zip(res.headers.iter()) {
        let name = f.name.as_bytes();
        let keep = match kind {
            Field::Other | Field::Date | Field::AllowOrigin => true,
            Field::RateLimit => added.rate.is_none(),
            Field::Expose => !added.cors,
            _ => false,
        };
        if keep && !seen.connection.is_some_and(|v| has_token(v, name)) {
            run.add(buf, name, f.value, out);
        } else {
            run.flush(buf, out);
        }
    }
    run.flush(buf, out);
    frame(out, body, code, added.head_request, seen.length);
    if !seen.date {
        date(out);
    }
    common(out, added, seen.allow_origin);
    out.extend_from_slice(b"\r\n");
    Head::Relayed(Relayed {
        status: code,
        len,
        body,
        reusable: keep_alive && body != Framing::Close,
    })
}

/// The caller's framing: the length when known, else chunked; a `HEAD` or
/// 304 keeps the length the upstream announced.
fn frame(out: &mut Vec<u8>, body: Framing, code: u16, head: bool, length: Option<Option<u64>>) {
    let announced = match body {
        Framing::Length(n) => Some(n),
        Framing::Chunked | Framing::Close => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
            None
        }
        Framing::None if (head || code == 304) => length.flatten(),
        Framing::None if code == 204 => None,
        Framing::None => Some(0),
    };
    if let Some(n) = announced {
        out.extend_from_slice(b"content-length: ");
        number(out, n);
        out.extend_from_slice(b"\r\n");
    }
}

fn common(out: &mut Vec<u8>, added: &Added<'_>, upstream_allows_origin: bool) {
    field(out, b"x-request-id", added.request_id.as_bytes());
    if let Some((limit, remaining, reset)) = added.rate {
        for (name, n) in [
            (&b"ratelimit-limit"[..], u64::from(limit)),
            (b"ratelimit-remaining", u64::from(remaining)),
            (b"ratelimit-reset", reset),
        ] {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            number(out, n);
            out.extend_from_slice(b"\r\n");
        }
    }
    if added.cors {
        if !upstream_allows_origin {
            field(out, b"access-control-allow-origin", b"*");
        }
        field(
            out,
            b"access-control-expose-headers",
            crate::headers::EXPOSED.as_bytes(),
        );
    }
    for (name, value) in added.hold {
        if http::HeaderValue::from_str(value).is_ok() {
            field(out, name.as_bytes(), value.as_bytes());
        }
    }
    if added.close {
        out.extend_from_slice(b"connection: close\r\n");
    }
}

/// Consecutive fields of the upstream's head, kept as one slice of it.
#[derive(Debug, Default)]
struct Run {
    span: Option<(usize, usize)>,
}

impl Run {
    /// Adds the field `name: value` (slices of `buf`).
    fn add(&mut self, buf: &[u8], name: &[u8], value: &[u8], out: &mut Vec<u8>) {
        let base = buf.as_ptr() as usize;
        let start = (name.as_ptr() as usize).wrapping_sub(base);
        let end = (value.as_ptr() as usize)
            .wrapping_sub(base)
            .wrapping_add(value.len());
        if start >= end || end > buf.len() {
            // Not where a parse of `buf` puts fields: write it out plainly.
            self.flush(buf, out);
            field(out, name, value);
            return;
        }
        self.span = match self.span {
            Some((s, e)) if buf.get(e..start) == Some(&b"\r\n"[..]) => Some((s, end)),
            _ => {
                self.flush(buf, out);
                Some((start, end))
            }
        };
    }

    fn flush(&mut self, buf: &[u8], out: &mut Vec<u8>) {
        if let Some((s, e)) = self.span.take() {
            out.extend_from_slice(&buf[s..e]);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// Whether a comma-separated list holds `token` (case-insensitive).
fn has_token(list: &[u8], token: &[u8]) -> bool {
    list.split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests;
