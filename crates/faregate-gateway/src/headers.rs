//! Header names the gateway uses, and header hygiene: hop-by-hop headers
//! removed, `Forwarded` and `X-Forwarded-*` set, request ids.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// `X-Request-Id`.
pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `X-Forwarded-For`.
pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub(crate) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `RateLimit-Limit`.
pub(crate) static RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Remaining`.
pub(crate) static RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// `RateLimit-Reset`.
pub(crate) static RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
/// The response headers a browser may read on a refusal or a paid route.
pub(crate) const EXPOSED: &str = "PAYMENT-REQUIRED, PAYMENT-RESPONSE, WWW-Authenticate, X-Request-Id, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, X402-Access-Token, X402-Access-Expires, X402-Access-Remaining";
/// `Keep-Alive`.
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
/// `Proxy-Connection`.
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// The hop-by-hop headers of RFC 9110 §7.6.1, plus the non-standard
/// `Proxy-Connection` and `Keep-Alive`.
fn hop_by_hop() -> [&'static HeaderName; 9] {
    [
        &header::CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::PROXY_AUTHENTICATE,
        &header::PROXY_AUTHORIZATION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
    ]
}

/// Removes hop-by-hop headers, including those `Connection` names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names finds which are present: most messages carry
    // none, and the rest (an upstream's `Connection: keep-alive`) one or two.
    let hops = hop_by_hop();
    let mut present = [false; 9];
    let mut any = false;
    for name in headers.keys() {
        if let Some(i) = hops.iter().position(|h| *h == name) {
            present[i] = true;
            any = true;
        }
    }
    if !any {
        return;
    }
    // Headers that `Connection` names, beyond the standard ones removed below.
    let mut named: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(&header::CONNECTION) {
        for token in value.to_str().unwrap_or("").split(',').map(str::trim) {
            let standard = token.eq_ignore_ascii_case("close")
                || hops.iter().any(|h| h.as_str().eq_ignore_ascii_case(token));
            if !standard && let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                named.push(name);
            }
        }
    }
    for name in named {
        headers.remove(name);
    }
    for (name, _) in hops.iter().zip(present).filter(|(_, p)| *p) {
        headers.remove(*name);
    }
}

/// What this hop adds to forwarded headers, computed once per connection.
#[derive(Debug)]
pub(crate) struct Hop {
    /// The client's address as text, for `X-Forwarded-For` and the log.
    pub(crate) client: HeaderValue,
    /// `for=<client>;proto=<proto>`, the start of this hop's `Forwarded` element.
    pub(crate) forwarded: String,
    /// `http` or `https`.
    pub(crate) proto: &'static str,
}

impl Hop {
    pub(crate) fn new(client: IpAddr, tls: bool) -> Self {
        let proto = if tls { "https" } else { "http" };
        let text = client.to_string();
        let node = match client {
            IpAddr::V4(_) => text.clone(),
            IpAddr::V6(_) => format!("\"[{text}]\""),
        };
        Self {
            client: HeaderValue::from_str(&text)
                .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
            forwarded: format!("for={node};proto={proto}"),
            proto,
        }
    }
}

/// Appends this hop to `X-Forwarded-For` and `Forwarded`, and sets
/// `X-Forwarded-Proto` and `X-Forwarded-Host`.
pub(crate) fn set_forwarded(headers: &mut HeaderMap, hop: &Hop, host: Option<&str>) {
    let xff = match headers.get(&X_FORWARDED_FOR) {
        Some(prior) => joined(prior.as_bytes(), hop.client.as_bytes()),
        None => Some(hop.client.clone()),
    };
    if let Some(v) = xff {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    headers.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(hop.proto),
    );
    let mut element = String::with_capacity(hop.forwarded.len() + host.map_or(0, |h| h.len() + 6));
    element.push_str(&hop.forwarded);
    if let Some(host) = host {
        if let Ok(v) = HeaderValue::from_str(host) {
            headers.insert(X_FORWARDED_HOST.clone(), v);
        }
        if host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        {
            element.push_str(";host=");
            element.push_str(host);
        }
    }
    let forwarded = match headers.get(&header::FORWARDED) {
        Some(prior) => joined(prior.as_bytes(), element.as_bytes()),
        None => HeaderValue::from_str(&element).ok(),
    };
    if let Some(v) = forwarded {
        headers.insert(header::FORWARDED, v);
    }
}

/// `prior, next` as a header value.
fn joined(prior: &[u8], next: &[u8]) -> Option<HeaderValue> {
    let mut v = Vec::with_capacity(prior.len() + 2 + next.len());
    v.extend_from_slice(prior);
    v.extend_from_slice(b", ");
    v.extend_from_slice(next);
    HeaderValue::from_bytes(&v).ok()
}

/// The first value of `name`. A request carries a handful of fields, and
/// scanning them (names compare as small integers, or short strings)
/// costs a fraction of hashing the name for a map lookup.
pub(crate) fn find<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a HeaderValue> {
    if headers.len() > 12 {
        return headers.get(name);
    }
    headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
}

/// How many values `name` has, and the first.
pub(crate) fn find_all<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> (usize, Option<&'a HeaderValue>) {
    if headers.len() > 12 {
        let mut all = headers.get_all(name).iter();
        let first = all.next();
        return (first.map_or(0, |_| 1 + all.count()), first);
    }
    let mut all = headers.iter().filter(|(n, _)| *n == name).map(|(_, v)| v);
    let first = all.next();
    (first.map_or(0, |_| 1 + all.count()), first)
}

/// The client's request id when it is a sane token, else `None`.
pub(crate) fn client_request_id(headers: &HeaderMap) -> Option<&str> {
    let id = find(headers, &X_REQUEST_ID)?.to_str().ok()?;
    let ok = (1..=128).contains(&id.len())
        && id.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/' | b'+' | b'=')
        });
    ok.then_some(id)
}

/// A new request id: 32 hex digits, unique without being secret (a
/// client may send its own). Each thread draws a random 64-bit seed once
/// and counts; the id is the seed and the count mixed by a bijection, so
/// a thread never repeats one and threads (and nodes) collide only if
/// their seeds do.
pub(crate) fn new_request_id() -> String {
    thread_local! {
        static NEXT: std::cell::Cell<(u64, u64)> =
            std::cell::Cell::new((rand::random(), rand::random()));
    }
    let (seed, count) = NEXT.get();
    NEXT.set((seed, count.wrapping_add(1)));
    let n = (u128::from(seed) << 64) | u128::from(mix(count ^ seed.rotate_left(29)));
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = [0u8; 32];
    for (pair, b) in id.chunks_exact_mut(2).zip(n.to_be_bytes()) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 15)];
    }
    std::str::from_utf8(&id)
        .map(str::to_owned)
        .unwrap_or_default()
}

/// The splitmix64 finalizer: a bijection on 64 bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_and_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn appends_forwarded_elements() {
        let mut h = HeaderMap::new();
        h.insert(&X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        set_forwarded(
            &mut h,
            &Hop::new("127.0.0.1".parse().unwrap(), true),
            Some("api.example.com"),
        );
        assert_eq!(h[&X_FORWARDED_FOR], "10.0.0.1, 127.0.0.1");
        assert_eq!(h[&X_FORWARDED_PROTO], "https");
        assert_eq!(h[&X_FORWARDED_HOST], "api.example.com");
        assert_eq!(
            h[header::FORWARDED],
            "for=127.0.0.1;proto=https;host=api.example.com"
        );
        set_forwarded(&mut h, &Hop::new("::1".parse().unwrap(), false), None);
        assert_eq!(
            h[header::FORWARDED],
            "for=127.0.0.1;proto=https;host=api.example.com, for=\"[::1]\";proto=http"
        );
    }

    #[test]
    fn request_ids() {
        let mut h = HeaderMap::new();
        assert_eq!(client_request_id(&h), None);
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(client_request_id(&h), Some("abc-123"));
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("has space"));
        assert_eq!(client_request_id(&h), None);
        let id = new_request_id();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        let many: std::collections::HashSet<String> =
            (0..10_000).map(|_| new_request_id()).collect();
        assert_eq!(many.len(), 10_000, "ids repeat");
        let other = std::thread::spawn(new_request_id).join().unwrap();
        assert_ne!(other[..16], id[..16], "another thread has another seed");
    }
}
