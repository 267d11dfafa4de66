//! Request heads off the wire, parsed by `httparse` into the `http` types the
//! stages read, with the message framing decided by RFC 9112 §6.3.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Uri, Version};

/// Header fields parsed on the stack; a head with more is parsed again
/// into a larger list.
const FIELDS_ON_STACK: usize = 48;
/// The most header fields a request may have.
pub(super) const MAX_FIELDS: usize = 512;

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body.
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked.
    Chunked,
    /// Until the connection closes (responses only).
    Close,
}

/// A parsed request head.
#[derive(Debug)]
pub(super) struct RequestHead {
    pub(super) request: Request<()>,
    /// The head as received, for handing the connection to hyper.
    pub(super) raw: Bytes,
    pub(super) body: Framing,
    /// The client wants the connection kept open after this exchange.
    pub(super) keep_alive: bool,
    /// `Expect: 100-continue`.
    pub(super) expect_continue: bool,
    /// `Content-Length` and `Transfer-Encoding` together: read as chunked,
    /// and the connection closed afterwards, so nothing can be smuggled.
    pub(super) ambiguous: bool,
    /// HTTP/1.0, an upgrade or CONNECT: served by hyper instead.
    pub(super) unusual: bool,
}

/// What parsing the buffer gave.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "a head is parsed once per request: boxing it would cost an allocation each time"
)]
pub(super) enum Parsed {
    Head(RequestHead),
    /// The head is not complete yet.
    Partial,
    /// Not HTTP/1.x, or broken framing: answered 400.
    Invalid(&'static str),
    /// More than [`MAX_FIELDS`] header fields: answered 431.
    TooManyFields,
}

/// Where a header field lies in the head.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    name: (u32, u32),
    value: (u32, u32),
}

/// Parses the request head at the start of `buf`; when complete, it is
/// split off `buf`.
pub(super) fn parse_request(buf: &mut BytesMut) -> Parsed {
    let mut fields = [const { MaybeUninit::uninit() }; FIELDS_ON_STACK];
    let mut spans = [Span::default(); FIELDS_ON_STACK];
    match parse_into(buf, &mut fields, &mut spans) {
        Err(httparse::Error::TooManyHeaders) => {
            let mut fields: Vec<_> = (0..MAX_FIELDS).map(|_| MaybeUninit::uninit()).collect();
            let mut spans = vec![Span::default(); MAX_FIELDS];
            match parse_into(buf, &mut fields, &mut spans) {
                Err(httparse::Error::TooManyHeaders) => Parsed::TooManyFields,
                other => finish(buf, other, &spans),
            }
        }
        other => finish(buf, other, &spans),
    }
}

/// The request line's parts: method, target and version, as spans.
type Line = ((u32, u32), (u32, u32), u8, usize, usize);

fn parse_into<'b>(
    buf: &'b [u8],
    fields: &mut [MaybeUninit<httparse::Header<'b>>],
    spans: &mut [Span],
) -> Result<Option<Line>, httparse::Error> {
    let mut req = httparse::Request::new(&mut []);
    let httparse::Status::Complete(len) = req.parse_with_uninit_headers(buf, fields)? else {
        return Ok(None);
    };
    let base = buf.as_ptr() as usize;
    // Offsets into `buf`: the fields borrow it, and the head split off it
    // later is the same memory.
    let at = |s: &[u8]| ((s.as_ptr() as usize - base) as u32, s.len() as u32);
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Err(httparse::Error::Token);
    };
    let (method, target) = (at(method.as_bytes()), at(target.as_bytes()));
    let version = req.version.unwrap_or(1);
    let count = req.headers.len();
    for (span, field) in spans.iter_mut().zip(req.headers.iter()) {
        span.name = at(field.name.as_bytes());
        span.value = at(field.value);
    }
    Ok(Some((method, target, version, count, len)))
}

fn finish(
    buf: &mut BytesMut,
    parsed: Result<Option<Line>, httparse::Error>,
    spans: &[Span],
) -> Parsed {
    let (method, target, version, count, len) = match parsed {
        Ok(Some(line)) => line,
        Ok(None) => return Parsed::Partial,
        Err(httparse::Error::Version) => return Parsed::Invalid("not an HTTP/1.x request"),
        Err(_) => return Parsed::Invalid("the request head is malformed"),
    };
    let raw = buf.split_to(len).freeze();
    match build(&raw, method, target, version, &spans[..count]) {
        Ok(mut head) => {
            head.raw = raw;
            Parsed::Head(head)
        }
        Err(why) => Parsed::Invalid(why),
    }
}

fn slice(raw: &Bytes, (at, len): (u32, u32)) -> Bytes {
    raw.slice(at as usize..(at + len) as usize)
}

fn build(
    raw: &Bytes,
    method: (u32, u32),
    target: (u32, u32),
    version: u8,
    spans: &[Span],
) -> Result<RequestHead, &'static str> {
    let method = Method::from_bytes(&slice(raw, method)).map_err(|_| "the method is invalid")?;
    let uri =
        Uri::from_maybe_shared(slice(raw, target)).map_err(|_| "the request target is invalid")?;
    let mut headers = HeaderMap::with_capacity(spans.len());
    let mut f = Framer::default();
    for span in spans {
        let name = HeaderName::from_bytes(&slice(raw, span.name))
            .map_err(|_| "a header name is invalid")?;
        let value = HeaderValue::from_maybe_shared(slice(raw, span.value))
            .map_err(|_| "a header value is invalid")?;
        f.see(&name, &value)?;
        headers.append(name, value);
    }
    let unusual = version == 0 || method == Method::CONNECT || f.upgrade;
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = if version == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    *request.headers_mut() = headers;
    let body = f.request_body()?;
    Ok(RequestHead {
        request,
        raw: Bytes::new(),
        body,
        keep_alive: !f.close,
        expect_continue: f.expect_continue && body != Framing::None,
        ambiguous: f.length.is_some() && f.chunked.is_some(),
        unusual,
    })
}

/// What the framing headers of a request say.
#[derive(Debug, Default)]
struct Framer {
    length: Option<u64>,
    /// Some(whether the last coding is chunked), once a Transfer-Encoding was seen.
    chunked: Option<bool>,
    close: bool,
    upgrade: bool,
    expect_continue: bool,
}

impl Framer {
    fn see(&mut self, name: &HeaderName, value: &HeaderValue) -> Result<(), &'static str> {
        if name == header::CONTENT_LENGTH {
            let n = parse_length(value.as_bytes()).ok_or("Content-Length is invalid")?;
            if self.length.is_some_and(|prior| prior != n) {
                return Err("Content-Length is given twice with different values");
            }
            self.length = Some(n);
        } else if name == header::TRANSFER_ENCODING {
            let last = value
                .as_bytes()
                .rsplit(|&b| b == b',')
                .next()
                .map(<[u8]>::trim_ascii)
                .unwrap_or_default();
            self.chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
        } else if name == header::CONNECTION {
            for token in value.as_bytes().split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    self.close = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    self.upgrade = true;
                }
            }
        } else if name == header::UPGRADE {
            self.upgrade = true;
        } else if name == header::EXPECT {
            self.expect_continue = value.as_bytes().eq_ignore_ascii_case(b"100-continue");
        }
        Ok(())
    }

    /// RFC 9112 §6.3: chunked wins over a length; any other final coding
    /// cannot be delimited in a request.
    fn request_body(&self) -> Result<Framing, &'static str> {
        match (self.chunked, self.length) {
            (Some(true), _) => Ok(Framing::Chunked),
            (Some(false), _) => Err("the request's transfer coding cannot be delimited"),
            (None, Some(0) | None) => Ok(Framing::None),
            (None, Some(n)) => Ok(Framing::Length(n)),
        }
    }
}

/// A Content-Length value: digits only, fitting in 63 bits.
pub(super) fn parse_length(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
mod tests;
