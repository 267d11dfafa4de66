//! `/v1/webhook_endpoints`: where operators receive signed notifications.
//! Register (the signing secret is shown once, in that answer), show, list
//! (never the secret) and delete. An endpoint gets the events created
//! after it was registered and before it was deleted. Deleting disables it
//! in the store, which keeps the record that its deliveries name; the API
//! answers 404 for it from then on.
//!
//! The URL rule is exact and the OpenAPI pattern says the same thing:
//! `http://` or `https://` (lowercase), a host name or IPv4 address (no
//! IPv6 literal), an optional port 1 to 65535, then an optional path and
//! query of URL characters (no fragment, no user info, no spaces). Every
//! URL it admits is one the sender can POST to.

use std::collections::HashSet;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use faregate_rails::credits::Credits;
use faregate_rails::outbox::new_secret;
use faregate_store::new_id;
use faregate_store::notify::NotificationEndpoint;
use serde::{Deserialize, Serialize};

use super::views::Page;
use crate::AdminState;
use crate::extract::{JsonBody, PathParam, StoreAccess};
use crate::problem::{Code, Problem};
use crate::time::format_ms;

/// The longest URL, in bytes (it is ASCII).
pub(super) const MAX_URL: usize = 2048;
/// The most event types one endpoint may name.
const MAX_TYPES: usize = 100;
/// The longest event type.
const MAX_TYPE: usize = 100;
/// The longest description, in characters.
const MAX_DESCRIPTION: usize = 500;

/// `POST /v1/webhook_endpoints`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewEndpoint {
    url: String,
    /// Event types it wants; every type when absent or null.
    #[serde(default)]
    events: Option<Vec<String>>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct EndpointView {
    id: String,
    url: String,
    events: Option<Vec<String>>,
    description: Option<String>,
    created_at: String,
    disabled_at: Option<String>,
}

impl From<NotificationEndpoint> for EndpointView {
    fn from(e: NotificationEndpoint) -> Self {
        Self {
            id: e.id,
            url: e.url,
            events: e.events,
            description: e.description,
            created_at: format_ms(e.created_at),
            disabled_at: e.disabled_at.map(format_ms),
        }
    }
}

/// A new endpoint: the only answer that carries its secret.
#[derive(Debug, Serialize)]
pub(super) struct CreatedEndpointView {
    secret: String,
    #[serde(flatten)]
    endpoint: EndpointView,
}

pub(super) async fn create(
    StoreAccess(credits): StoreAccess,
    State(s): State<AdminState>,
    JsonBody(body): JsonBody<NewEndpoint>,
) -> Result<(StatusCode, Json<CreatedEndpointView>), Problem> {
    let endpoint = NotificationEndpoint {
        id: new_id("we"),
        url: valid_url(body.url)?,
        secret: new_secret(),
        events: body.events.map(valid_types).transpose()?,
        description: body.description.map(valid_description).transpose()?,
        created_at: s.now_ms(),
        disabled_at: None,
    };
    credits.store().create_endpoint(&endpoint).await?;
    tracing::info!(endpoint = %endpoint.id, "webhook endpoint registered");
    let secret = endpoint.secret.clone();
    Ok((
        StatusCode::CREATED,
        Json(CreatedEndpointView {
            secret,
            endpoint: endpoint.into(),
        }),
    ))
}

/// `GET /v1/webhook_endpoints`: every endpoint in use, oldest first, on
/// one page (`next` is always null).
pub(super) async fn list(
    StoreAccess(credits): StoreAccess,
) -> Result<Json<Page<EndpointView>>, Problem> {
    let endpoints = credits.store().endpoints().await?;
    Ok(Json(Page {
        data: endpoints
            .into_iter()
            .filter(|e| e.disabled_at.is_none())
            .map(EndpointView::from)
            .collect(),
        next: None,
    }))
}

/// `GET /v1/webhook_endpoints/{id}`.
pub(super) async fn show(
    StoreAccess(credits): StoreAccess,
    PathParam(id): PathParam<String>,
) -> Result<Json<EndpointView>, Problem> {
    in_use(&credits, &id).await.map(|e| Json(e.into()))
}

/// `DELETE /v1/webhook_endpoints/{id}`: disables it, for good: it gets no
/// new events, its pending deliveries fail, and the API answers 404 for it
/// from then on. The store keeps its record, which deliveries name.
pub(super) async fn disable(
    StoreAccess(credits): StoreAccess,
    State(s): State<AdminState>,
    PathParam(id): PathParam<String>,
) -> Result<Json<EndpointView>, Problem> {
    in_use(&credits, &id).await?;
    let Some(endpoint) = credits.store().disable_endpoint(&id, s.now_ms()).await? else {
        return Err(endpoint_not_found(&id));
    };
    tracing::info!(endpoint = %endpoint.id, "webhook endpoint disabled");
    Ok(Json(endpoint.into()))
}

/// The endpoint `id` if it exists and is not disabled, or `404
/// webhook_endpoint_not_found`.
async fn in_use(credits: &Credits, id: &str) -> Result<NotificationEndpoint, Problem> {
    match credits.store().endpoint(id).await? {
        Some(e) if e.disabled_at.is_none() => Ok(e),
        _ => Err(endpoint_not_found(id)),
    }
}

fn endpoint_not_found(id: &str) -> Problem {
    Problem::new(
        Code::WebhookEndpointNotFound,
        format!("no webhook endpoint {id} in use"),
    )
}

/// `url` if it follows the rule in the module's doc.
pub(super) fn valid_url(url: String) -> Result<String, Problem> {
    if url.len() <= MAX_URL && url_shape(url.as_bytes()) {
        Ok(url)
    } else {
        Err(Problem::new(
            Code::InvalidUrl,
            format!(
                "url must be an http:// or https:// URL of at most {MAX_URL} characters: \
                 a host, an optional port 1 to 65535, an optional path and query, \
                 no user info, no fragment"
            ),
        ))
    }
}

fn url_shape(b: &[u8]) -> bool {
    let Some(rest) = b
        .strip_prefix(b"https://")
        .or_else(|| b.strip_prefix(b"http://"))
    else {
        return false;
    };
    let end = rest
        .iter()
        .position(|&c| c == b'/' || c == b'?')
        .unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    authority_shape(authority) && tail.iter().all(|&c| is_url_char(c))
}

/// `host[:port]`, the host a name or IPv4 address (`[A-Za-z0-9.-]+`).
/// IPv6 literals are refused: a name serves as well, and a loose pattern
/// for them admits strings that are no address.
fn authority_shape(a: &[u8]) -> bool {
    let end = a.iter().position(|&c| c == b':').unwrap_or(a.len());
    let (host, rest) = a.split_at(end);
    !host.is_empty()
        && host
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-')
        && match rest.strip_prefix(b":") {
            None => rest.is_empty(),
            Some(port) => port_shape(port),
        }
}

/// 1 to 65535, without leading zeros.
fn port_shape(p: &[u8]) -> bool {
    (1..=5).contains(&p.len())
        && p[0] != b'0'
        && p.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(p)
            .ok()
            .and_then(|s| s.parse::<u16>().ok())
            .is_some()
}

/// RFC 3986 unreserved and sub-delimiter characters, `:`, `@`, `%`, `/`
/// and `?`: what a path and query may hold here.
fn is_url_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@%/?".contains(&c)
}

/// `types` if it names 1 to [`MAX_TYPES`] types, once each, each
/// lowercase dot-separated snake_case words (`quota.threshold_reached`).
fn valid_types(types: Vec<String>) -> Result<Vec<String>, Problem> {
    let invalid = |detail: String| Problem::new(Code::InvalidEvents, detail);
    if types.is_empty() || types.len() > MAX_TYPES {
        return Err(invalid(format!(
            "events must list 1 to {MAX_TYPES} event types; leave it out for every type"
        )));
    }
    let mut seen = HashSet::new();
    for t in &types {
        if t.len() > MAX_TYPE || !type_shape(t) {
            return Err(invalid(format!(
                "{t:?} is not an event type: lowercase words of letters, digits and _, \
                 separated by dots, at most {MAX_TYPE} characters"
            )));
        }
        if !seen.insert(t) {
            return Err(invalid(format!("event type {t:?} is listed twice")));
        }
    }
    Ok(types)
}

/// `^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`
fn type_shape(t: &str) -> bool {
    t.split('.').all(|word| {
        let mut bytes = word.bytes();
        bytes.next().is_some_and(|c| c.is_ascii_lowercase())
            && bytes.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
    })
}

fn valid_description(text: String) -> Result<String, Problem> {
    if text.chars().count() > MAX_DESCRIPTION {
        return Err(Problem::new(
            Code::InvalidDescription,
            format!("description must be at most {MAX_DESCRIPTION} characters"),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests;
