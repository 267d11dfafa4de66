//! Heads onto the wire: the request sent upstream, written straight from
//! the caller's header map with this hop's headers, and the gateway's own
//! responses. Header names the gateway writes are lowercase.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response};

use super::codec::Framing;
pub(super) use crate::access_log::line::number;
use crate::body::ResponseBody;
use crate::headers::{Hop, X_FORWARDED_FOR};

/// Appends `name: value\r\n`.
pub(super) fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends `HTTP/1.1 <code> <reason>\r\n`.
pub(super) fn status_line(out: &mut Vec<u8>, status: http::StatusCode, reason: &[u8]) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    match status.canonical_reason() {
        Some(r) => out.extend_from_slice(r.as_bytes()),
        None => out.extend_from_slice(reason),
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends a `date` field for now, formatting it once a second per thread.
pub(super) fn date(out: &mut Vec<u8>) {
    thread_local! {
        static LAST: Cell<(u64, [u8; 29])> = const { Cell::new((u64::MAX, [0; 29])) };
    }
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (cached, mut text) = LAST.get();
    if cached != secs {
        text = imf_fixdate(secs);
        LAST.set((secs, text));
    }
    field(out, b"date", &text);
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 §5.6.7).
fn imf_fixdate(secs: u64) -> [u8; 29] {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = crate::access_log::civil_from_days(i64::try_from(days).unwrap_or(0));
    let text = format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(m as usize).saturating_sub(1) % 12],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
    );
    <[u8; 29]>::try_from(text.as_bytes()).unwrap_or(*b"Thu, 01 Jan 1970 00:00:00 GMT")
}

/// A response the gateway made itself, with its whole body.
pub(super) fn gateway_response(
    out: &mut Vec<u8>,
    response: &Response<ResponseBody>,
    body: &[u8],
    head_only: bool,
    close: bool,
) {
    let status = response.status();
    status_line(out, status, b"");
    for (name, value) in response.headers() {
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    let bodiless =
        status == http::StatusCode::NO_CONTENT || status == http::StatusCode::NOT_MODIFIED;
    if !bodiless {
        out.extend_from_slice(b"content-length: ");
        number(out, body.len() as u64);
        out.extend_from_slice(b"\r\n");
    }
    date(out);
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only && !bodiless {
        out.extend_from_slice(body);
    }
}

/// What goes upstream besides the caller's own headers.
#[derive(Debug)]
pub(super) struct Outbound<'a> {
    pub(super) method: &'a Method,
    /// The upstream's base path, then the request's path less any stripped
    /// prefix, then the query.
    pub(super) target: (&'a str, &'a str, Option<&'a str>),
    /// The `Host` to send.
    pub(super) host: &'a [u8],
    /// The authority the caller addressed, for `X-Forwarded-Host`.
    pub(super) authority: Option<&'a str>,
    pub(super) hop: &'a Hop,
    pub(super) request_id: &'a str,
    /// The header that carried the caller's key to the gateway.
    pub(super) key_header: Option<&'a HeaderName>,
    /// The route's `upstream_headers`, which replace the caller's.
    pub(super) extra: &'a [(HeaderName, HeaderValue)],
    pub(super) body: Framing,
}

/// Appends the request head for the upstream: hop-by-hop headers (and the
/// ones `Connection` names), `Expect` and the caller's key removed;
/// `X-Forwarded-*` and `Forwarded` extended, the request id set; the body
/// framed by the gateway.
pub(super) fn request_head(out: &mut Vec<u8>, headers: &HeaderMap, o: &Outbound<'_>) {
    out.extend_from_slice(o.method.as_str().as_bytes());
    out.push(b' ');
    let (base, rest, query) = o.target;
    out.extend_from_slice(base.as_bytes());
    out.extend_from_slice(if rest.is_empty() { "/" } else { rest }.as_bytes());
    if let Some(q) = query {
        out.push(b'?');
        out.extend_from_slice(q.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    field(out, b"host", o.host);
    let (mut named, mut xff, mut fwd) = (None, None, None);
    for (name, value) in headers {
        if name == header::CONNECTION {
            named = named.or(Some(value.as_bytes()));
        } else if name == X_FORWARDED_FOR {
            xff = xff.or(Some(value.as_bytes()));
        } else if name == header::FORWARDED {
            fwd = fwd.or(Some(value.as_bytes()));
        }
    }
    for (name, value) in headers {
        if dropped(name, named)
            || Some(name) == o.key_header
            || o.extra.iter().any(|(n, _)| n == name)
        {
            continue;
        }
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    forwarded(out, (xff, fwd), o);
    field(out, b"x-request-id", o.request_id.as_bytes());
    for (name, value) in o.extra {
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    match o.body {
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            number(out, n);
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::None | Framing::Close => {}
    }
    out.extend_from_slice(b"\r\n");
}

/// Whether a caller's header stays behind: hop-by-hop, named by
/// `Connection`, or one this hop writes itself.
fn dropped(name: &HeaderName, connection: Option<&[u8]>) -> bool {
    let standard = matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "expect"
            | "host"
            | "content-length"
            | "x-forwarded-for"
            | "x-forwarded-proto"
            | "x-forwarded-host"
            | "forwarded"
            | "x-request-id"
    );
    standard
        || connection.is_some_and(|list| {
            list.split(|&b| b == b',').any(|t| {
                t.trim_ascii()
                    .eq_ignore_ascii_case(name.as_str().as_bytes())
            })
        })
}

/// This hop's `X-Forwarded-For`, `-Proto`, `-Host` and `Forwarded`, after
/// any the caller sent.
fn forwarded(out: &mut Vec<u8>, (xff, fwd): (Option<&[u8]>, Option<&[u8]>), o: &Outbound<'_>) {
    out.extend_from_slice(b"x-forwarded-for: ");
    if let Some(prior) = xff {
        out.extend_from_slice(prior);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(o.hop.client.as_bytes());
    out.extend_from_slice(b"\r\nx-forwarded-proto: ");
    out.extend_from_slice(o.hop.proto.as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(host) = o.authority {
        field(out, b"x-forwarded-host", host.as_bytes());
    }
    out.extend_from_slice(b"forwarded: ");
    if let Some(prior) = fwd {
        out.extend_from_slice(prior);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(o.hop.forwarded.as_bytes());
    if let Some(host) = o.authority
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
    {
        out.extend_from_slice(b";host=");
        out.extend_from_slice(host.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_imf_fixdate() {
        assert_eq!(&imf_fixdate(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(&imf_fixdate(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            &imf_fixdate(1_796_401_488),
            b"Fri, 04 Dec 2026 16:24:48 GMT"
        );
    }

    #[test]
    fn the_upstream_head_is_cleaned_and_extended() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-hop"),
        );
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::HOST, HeaderValue::from_static("gw.example"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer k"));
        h.insert(header::EXPECT, HeaderValue::from_static("100-continue"));
        h.insert(&X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        h.append("x-multi", HeaderValue::from_static("a"));
        h.append("x-multi", HeaderValue::from_static("b"));
        h.insert("x-set", HeaderValue::from_static("caller"));
        let hop = Hop::new("127.0.0.1".parse().unwrap(), false);
        let extra = [(
            HeaderName::from_static("x-set"),
            HeaderValue::from_static("route"),
        )];
        let mut out = Vec::new();
        request_head(
            &mut out,
            &h,
            &Outbound {
                method: &Method::POST,
                target: ("/base", "/a", Some("q=1")),
                host: b"up:8080",
                authority: Some("gw.example"),
                hop: &hop,
                request_id: "rid",
                key_header: Some(&header::AUTHORIZATION),
                extra: &extra,
                body: Framing::Length(5),
            },
        );
        let text = String::from_utf8(out).unwrap();
        let mut lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0], "POST /base/a?q=1 HTTP/1.1");
        assert_eq!(lines[1], "host: up:8080");
        lines.sort_unstable();
        let want = [
            "",
            "",
            "content-length: 5",
            "forwarded: for=127.0.0.1;proto=http;host=gw.example",
            "x-forwarded-for: 10.0.0.1, 127.0.0.1",
            "x-forwarded-host: gw.example",
            "x-forwarded-proto: http",
            "x-multi: a",
            "x-multi: b",
            "x-request-id: rid",
            "x-set: route",
        ];
        let mut got: Vec<&str> = lines
            .into_iter()
            .filter(|l| !l.starts_with("POST") && !l.starts_with("host:"))
            .collect();
        got.sort_unstable();
        assert_eq!(got, want);
    }
}
