//! Stage 1, `route`: check the request target and pick the route.
//!
//! The URI length, header size, Host and path are checked here, before
//! anything else looks at the request, and routing uses the normalized path
//! that is also what goes upstream.

use std::sync::Arc;

use faregate_core::{Problem, ProblemCode};
use http::{HeaderMap, Request, header};

use crate::config::{Route, RouteMatch};
use crate::path::{PathError, normalize};
use crate::pipeline::Ctx;
use crate::respond::PROBLEM_PATH;

/// Where a request goes.
#[derive(Debug)]
pub(crate) enum Target {
    /// A configured route.
    Route(Arc<Route>),
    /// The gateway's page explaining a problem code.
    ProblemPage(ProblemCode),
    /// A billing endpoint or the card processor's webhook.
    Billing(crate::billing::Endpoint),
    /// x402 discovery or a facilitator endpoint.
    X402(crate::x402::Endpoint),
    /// A CORS preflight for a paid route: the gateway answers it, since
    /// only the gateway knows the payment headers it takes.
    Preflight(Arc<Route>),
}

pub(crate) fn route<B>(ctx: &mut Ctx, req: &Request<B>) -> Result<Target, Problem> {
    let authority = authority(req)?;
    let host_len = host_of(&authority).len();
    ctx.authority = Some(authority);
    let limits = &ctx.snap.config.limits;
    let uri = req.uri();
    let target_len = uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    if target_len as u64 > limits.max_uri_bytes {
        let detail = format!(
            "the request target is longer than {} bytes",
            limits.max_uri_bytes
        );
        return Err(Problem::new(ProblemCode::UriTooLong, detail));
    }
    if header_bytes(req.headers()) > limits.max_header_bytes {
        let detail = format!("request headers exceed {} bytes", limits.max_header_bytes);
        return Err(Problem::new(ProblemCode::HeadersTooLarge, detail));
    }
    let path = normalize(uri.path())
        .map_err(|e| {
            let detail = match e {
                PathError::BadEscape => "the path has invalid percent-encoding",
                PathError::AboveRoot => "the path climbs above the root with '..'",
                PathError::NotAbsolute => "the path must start with '/'",
            };
            Problem::new(ProblemCode::InvalidPath, detail)
        })?
        .into_owned();
    if let Some(code) = path
        .strip_prefix(PROBLEM_PATH)
        .and_then(ProblemCode::from_code)
    {
        ctx.path = path;
        return Ok(Target::ProblemPage(code));
    }
    if ctx.gw.plans.is_some()
        && let Some(endpoint) = crate::billing::Endpoint::of(&path)
    {
        ctx.path = path;
        return Ok(Target::Billing(endpoint));
    }
    if let Some(endpoint) = crate::x402::Endpoint::of(&path) {
        ctx.path = path;
        return Ok(Target::X402(endpoint));
    }
    let host = ctx.authority.as_deref().map_or("", |a| &a[..host_len]);
    if let Some(method) = preflight_method(req)
        && let RouteMatch::Found(route) = ctx.snap.config.routes.find(host, &path, &method)
        && route.access != crate::config::Access::Anyone
    {
        let route = route.clone();
        ctx.path = path;
        ctx.route = Some(route.clone());
        return Ok(Target::Preflight(route));
    }
    let found = match ctx.snap.config.routes.find(host, &path, req.method()) {
        RouteMatch::Found(route) => Ok(route.clone()),
        RouteMatch::MethodNotAllowed(allowed) => {
            let list: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
            let detail = format!(
                "{} is not allowed here; allowed: {}",
                req.method(),
                list.join(", ")
            );
            Err(Problem::new(ProblemCode::MethodNotAllowed, detail)
                .with_extension("allow", list.into()))
        }
        RouteMatch::NotFound => Err(Problem::new(
            ProblemCode::RouteNotFound,
            format!("no route for {path}"),
        )),
    };
    ctx.path = path;
    let route = found?;
    ctx.route = Some(route.clone());
    Ok(Target::Route(route))
}

/// The method a CORS preflight asks about, if `req` is one.
fn preflight_method<B>(req: &Request<B>) -> Option<http::Method> {
    if req.method() != http::Method::OPTIONS
        || crate::headers::find(req.headers(), &http::header::ORIGIN).is_none()
    {
        return None;
    }
    let asked = req
        .headers()
        .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)?;
    http::Method::from_bytes(asked.as_bytes()).ok()
}

/// The host part of an authority (`[::1]:80` -> `[::1]`, `a:80` -> `a`).
fn host_of(authority: &str) -> &str {
    match authority.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// Total size of the header section as sent (name, value, ": " and CRLF).
fn header_bytes(headers: &HeaderMap) -> u64 {
    headers
        .iter()
        .map(|(n, v)| (n.as_str().len() + v.len() + 4) as u64)
        .sum()
}

/// The authority the caller addressed: from an absolute-form target or
/// HTTP/2 `:authority` when present (RFC 9112 §3.2.2), else the one Host.
fn authority<B>(req: &Request<B>) -> Result<String, Problem> {
    let invalid = |detail: &str| Problem::new(ProblemCode::InvalidHost, detail);
    let (hosts, first) = crate::headers::find_all(req.headers(), &header::HOST);
    if hosts > 1 {
        return Err(invalid("the request has more than one Host header"));
    }
    let (text, parsed) = match (req.uri().authority(), first) {
        (Some(a), _) => (a.as_str(), true),
        (None, Some(h)) => (
            h.to_str()
                .map_err(|_| invalid("the Host header is not ASCII"))?,
            false,
        ),
        (None, None) => return Err(invalid("the request has no Host header")),
    };
    // One pass: check the characters, find the port, note brackets.
    let (mut colons, mut colon, mut brackets) = (0, 0, false);
    for (i, b) in text.bytes().enumerate() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {}
            b':' => {
                colons += 1;
                colon = i;
            }
            b'[' | b']' => brackets = true,
            _ => return Err(invalid("the Host header is not a valid host[:port]")),
        }
    }
    let plain = !brackets && (colons == 0 || (colons == 1 && plain_port(text, colon)));
    if text.is_empty() || !(parsed || plain || text.parse::<http::uri::Authority>().is_ok()) {
        return Err(invalid("the Host header is not a valid host[:port]"));
    }
    let mut owned = text.to_owned();
    owned.make_ascii_lowercase();
    Ok(owned)
}

/// Whether `name:port`, with its one colon at `colon`, has a name and a
/// port number: checked without parsing (and allocating) a full
/// `Authority`, which the rare IPv6 literal gets.
fn plain_port(text: &str, colon: usize) -> bool {
    let port = &text.as_bytes()[colon + 1..];
    colon > 0
        && (1..=5).contains(&port.len())
        && port.iter().all(u8::is_ascii_digit)
        && port.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')) <= 65_535
}
