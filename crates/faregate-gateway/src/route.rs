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
}

pub(crate) fn route<B>(ctx: &mut Ctx, req: &Request<B>) -> Result<Target, Problem> {
    let authority = authority(req)?;
    let host = host_of(&authority).to_owned();
    ctx.authority = Some(authority);
    let limits = &ctx.snap.config.limits;
    let uri = req.uri();
    let target_len = uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    if target_len as u64 > limits.max_uri_bytes {
        return Err(Problem::new(
            ProblemCode::UriTooLong,
            format!(
                "the request target is longer than {} bytes",
                limits.max_uri_bytes
            ),
        ));
    }
    if header_bytes(req.headers()) > limits.max_header_bytes {
        return Err(Problem::new(
            ProblemCode::HeadersTooLarge,
            format!("request headers exceed {} bytes", limits.max_header_bytes),
        ));
    }
    let path = normalize(uri.path()).map_err(|e| {
        let detail = match e {
            PathError::BadEscape => "the path has invalid percent-encoding",
            PathError::AboveRoot => "the path climbs above the root with '..'",
            PathError::NotAbsolute => "the path must start with '/'",
        };
        Problem::new(ProblemCode::InvalidPath, detail)
    })?;
    ctx.path = path.into_owned();
    if let Some(code) = ctx
        .path
        .strip_prefix(PROBLEM_PATH)
        .and_then(ProblemCode::from_code)
    {
        return Ok(Target::ProblemPage(code));
    }
    match ctx.snap.config.routes.find(&host, &ctx.path, req.method()) {
        RouteMatch::Found(route) => {
            ctx.route = Some(route.clone());
            Ok(Target::Route(route.clone()))
        }
        RouteMatch::MethodNotAllowed(allowed) => {
            let list: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
            Err(Problem::new(
                ProblemCode::MethodNotAllowed,
                format!(
                    "{} is not allowed here; allowed: {}",
                    req.method(),
                    list.join(", ")
                ),
            )
            .with_extension("allow", list.into()))
        }
        RouteMatch::NotFound => Err(Problem::new(
            ProblemCode::RouteNotFound,
            format!("no route for {}", ctx.path),
        )),
    }
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
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err(invalid("the request has more than one Host header"));
    }
    let text = match (req.uri().authority(), first) {
        (Some(a), _) => a.as_str().to_owned(),
        (None, Some(h)) => h
            .to_str()
            .map_err(|_| invalid("the Host header is not ASCII"))?
            .to_owned(),
        (None, None) => return Err(invalid("the request has no Host header")),
    };
    let valid = !text.is_empty()
        && !text.contains('@')
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
        && text.parse::<http::uri::Authority>().is_ok();
    if !valid {
        return Err(invalid("the Host header is not a valid host[:port]"));
    }
    Ok(text.to_ascii_lowercase())
}
