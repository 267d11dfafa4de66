//! Stage 4, `authorize`: decide, never fail. Rate limits first (429, never
//! 402), then the route's access rule: anyone, API key holders, or its
//! payment rails in order. The order of evaluation is DESIGN §3's: a payment
//! credential is verified by its rail; an account credential goes to the
//! account rails; a caller with nothing gets every rail's offer in one 402,
//! or a 401 when no rail can be paid anonymously.

use faregate_core::{Challenge, Decision, Hold, Price, Problem, ProblemCode, RailKind};
use faregate_rails::{Credential, RailRequest};
use http::Request;

use crate::config::{Access, RateKey, Route};
use crate::identify::Caller;
use crate::limiter::CallerKey;
use crate::pipeline::Ctx;

const NANOS: u64 = 1_000_000_000;

pub(crate) async fn authorize<B>(
    ctx: &mut Ctx,
    route: &Route,
    caller: &Caller,
    price: Price,
    req: &Request<B>,
) -> Decision {
    if let Some(problem) = rate_limit(ctx, route, caller) {
        return Decision::Deny(problem);
    }
    let kinds: &[RailKind] = match &route.access {
        Access::Anyone => return Decision::Allow(Hold::NONE),
        Access::ApiKey => &[],
        Access::Rails(kinds) => kinds,
    };
    // A key that was sent must be good, whatever else the route takes.
    if let Credential::ApiKey(_) = caller.credential {
        if let Some(problem) = key_problem(ctx, route, caller) {
            return Decision::Deny(problem);
        }
        if route.access == Access::ApiKey {
            return Decision::Allow(Hold::NONE);
        }
    }
    if route.access == Access::ApiKey {
        return Decision::Deny(missing_or_invalid(caller));
    }
    let rails = || {
        kinds
            .iter()
            .filter_map(|k| ctx.gw.rails.iter().find(|r| r.kind() == *k))
    };
    // Absolute resource URLs are for per-request rails' offers; the
    // account rails never read them, so their requests skip building one.
    let origin = if kinds
        .iter()
        .all(|k| matches!(k, RailKind::Credits | RailKind::Plans))
    {
        String::new()
    } else {
        ctx.origin()
    };
    let rail_req = RailRequest {
        request_id: &ctx.request_id,
        route: &route.name,
        method: req.method(),
        url: req.uri(),
        origin: &origin,
        headers: req.headers(),
        credential: &caller.credential,
        account: caller.key.as_ref().and_then(|k| k.account.as_deref()),
        price,
        now: ctx.started_unix,
    };
    if let Some(rail) = rails().find(|r| r.accepts(&caller.credential)) {
        return rail.authorize(&rail_req).await;
    }
    let mut challenge = Challenge::new(Problem::new(
        ProblemCode::PaymentRequired,
        "this resource is paid per request",
    ));
    challenge.problem.price = price.amount();
    let offers: Vec<_> = rails().filter_map(|r| r.offer(&rail_req)).collect();
    // Only a per-request rail makes this a 402: an account's rails alone
    // cannot be paid anonymously, so a caller without a key gets a 401.
    if !offers
        .iter()
        .any(|o| !matches!(o.rail, RailKind::Credits | RailKind::Plans))
    {
        return Decision::Deny(missing_or_invalid(caller));
    }
    // Per-request offers first, then the account rails' hints.
    let (per_request, accounts): (Vec<_>, Vec<_>) = offers
        .into_iter()
        .partition(|o| !matches!(o.rail, RailKind::Credits | RailKind::Plans));
    for offer in per_request.into_iter().chain(accounts) {
        challenge.offer(offer);
    }
    Decision::PaymentRequired(challenge)
}

/// The caller's key, when it is one this route takes (the LLM endpoints
/// bill an account, so they need one): else 401 or 403 as for any route.
pub(crate) fn key_holder(
    ctx: &Ctx,
    route: &Route,
    caller: &Caller,
) -> Result<std::sync::Arc<faregate_rails::ApiKey>, Problem> {
    if let Some(problem) = key_problem(ctx, route, caller) {
        return Err(problem);
    }
    caller.key.clone().ok_or_else(|| missing_or_invalid(caller))
}

/// Why a presented key may not pass this route, if it may not.
fn key_problem(ctx: &Ctx, route: &Route, caller: &Caller) -> Option<Problem> {
    let Some(key) = &caller.key else {
        return Some(missing_or_invalid(caller));
    };
    if key.expired(ctx.started_unix) {
        return Some(Problem::new(
            ProblemCode::ExpiredApiKey,
            format!("key {} has expired", key.id),
        ));
    }
    if !key.may_use(&route.name) {
        return Some(Problem::new(
            ProblemCode::KeyNotAllowed,
            format!("key {} is not scoped to route {}", key.id, route.name),
        ));
    }
    None
}

fn missing_or_invalid(caller: &Caller) -> Problem {
    match caller.credential {
        Credential::ApiKey(_) => {
            Problem::new(ProblemCode::InvalidApiKey, "the API key is not valid")
        }
        _ => Problem::new(
            ProblemCode::MissingCredentials,
            "send an API key: Authorization: Bearer <key>",
        ),
    }
}

/// Checks the route's rate limit; records `RateLimit-*` values either way.
fn rate_limit(ctx: &mut Ctx, route: &Route, caller: &Caller) -> Option<Problem> {
    let limit = route.rate_limit.as_ref()?;
    let who = match (limit.per, &caller.key) {
        (RateKey::Key, Some(key)) => CallerKey::Key(key.id.clone()),
        _ => CallerKey::Ip(ctx.conn.peer),
    };
    let outcome = ctx
        .gw
        .limiter
        .check(&limit.gcra, &route.name, who, ctx.started_unix);
    let reset = outcome.reset_after.div_ceil(NANOS);
    ctx.rate = Some((limit.gcra.limit(), outcome.remaining, reset));
    if outcome.allowed {
        return None;
    }
    let retry = outcome.retry_after.div_ceil(NANOS).max(1);
    Some(
        Problem::new(
            ProblemCode::RateLimited,
            format!(
                "rate limit of route {} reached; retry in {retry} s",
                route.name
            ),
        )
        .with_retry_after(retry),
    )
}
