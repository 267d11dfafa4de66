//! Stage 2, `identify`: who is calling. A per-request payment credential
//! (`PAYMENT-SIGNATURE`, `Authorization: L402 …`, `Authorization: Payment …`)
//! comes first, then an API key (`Authorization: Bearer` or `X-Api-Key`).
//! Identifying never refuses by itself, except a credential that is not
//! even text; `authorize` decides what the caller may do.

use faregate_core::{Problem, ProblemCode, RailKind};
use faregate_rails::Credential;
use http::{HeaderMap, HeaderName, header};

use std::sync::Arc;

use crate::config::{Access, ApiKey, Route};
use crate::pipeline::Ctx;

/// `PAYMENT-SIGNATURE` (x402 v2).
pub(crate) static PAYMENT_SIGNATURE: HeaderName = HeaderName::from_static("payment-signature");
/// `X-Api-Key`.
pub(crate) static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// The caller as identified.
#[derive(Debug)]
pub(crate) struct Caller {
    /// What the request carried.
    pub(crate) credential: Credential,
    /// The key it matched (from the file or an account's), if any.
    pub(crate) key: Option<Arc<ApiKey>>,
    /// The header that carried an API key, removed before forwarding.
    pub(crate) key_header: Option<&'static HeaderName>,
}

pub(crate) fn identify(
    ctx: &mut Ctx,
    route: &Route,
    headers: &HeaderMap,
) -> Result<Caller, Problem> {
    // An open route takes nobody's credentials: they pass to the upstream
    // untouched, since they may be the upstream's own.
    if route.access == Access::Anyone {
        return Ok(Caller {
            credential: Credential::None,
            key: None,
            key_header: None,
        });
    }
    credentials(ctx, headers)
}

/// The credential the request carries, and the key it names if known.
pub(crate) fn credentials(ctx: &mut Ctx, headers: &HeaderMap) -> Result<Caller, Problem> {
    let malformed = |what: &str| {
        Problem::new(
            ProblemCode::BadRequest,
            format!("the {what} header is not valid text"),
        )
    };
    if let Some(v) = crate::headers::find(headers, &PAYMENT_SIGNATURE) {
        let v = v.to_str().map_err(|_| {
            Problem::new(
                ProblemCode::MalformedPayment,
                "the PAYMENT-SIGNATURE header is not valid text",
            )
        })?;
        return Ok(Caller {
            credential: Credential::Payment(RailKind::X402, v.to_owned()),
            key: None,
            key_header: None,
        });
    }
    let mut key_header = None;
    let mut presented = None;
    if let Some(v) = crate::headers::find(headers, &header::AUTHORIZATION) {
        let v = v.to_str().map_err(|_| malformed("Authorization"))?;
        let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("L402") || scheme.eq_ignore_ascii_case("LSAT") {
            return Ok(payment(RailKind::L402, v));
        }
        if scheme.eq_ignore_ascii_case("Payment") {
            return Ok(payment(RailKind::Mpp, v));
        }
        // A bundle's access token, bought with one x402 payment.
        if scheme.eq_ignore_ascii_case("Bearer")
            && rest.starts_with(faregate_rails::x402::token::PREFIX)
        {
            return Ok(payment(RailKind::X402, rest));
        }
        if scheme.eq_ignore_ascii_case("Bearer") && !rest.is_empty() {
            presented = Some(rest.to_owned());
            key_header = Some(&header::AUTHORIZATION);
        }
    }
    if presented.is_none()
        && let Some(v) = crate::headers::find(headers, &X_API_KEY)
    {
        presented = Some(
            v.to_str()
                .map_err(|_| malformed("X-Api-Key"))?
                .trim()
                .to_owned(),
        );
        key_header = Some(&X_API_KEY);
    }
    let Some(presented) = presented else {
        return Ok(Caller {
            credential: Credential::None,
            key: None,
            key_header: None,
        });
    };
    // Hashed once for both tables.
    let hash = faregate_rails::key_hash(&presented);
    let key = match ctx.snap.config.keys.find_hashed(&hash) {
        Some(key) => Some(key.clone()),
        None => ctx.gw.keys.as_ref().and_then(|d| d.find_hashed(&hash)),
    };
    ctx.caller = key.as_ref().map(|k| k.id.clone());
    Ok(Caller {
        credential: Credential::ApiKey(presented),
        key,
        key_header,
    })
}

fn payment(rail: RailKind, value: &str) -> Caller {
    Caller {
        credential: Credential::Payment(rail, value.to_owned()),
        key: None,
        key_header: None,
    }
}
