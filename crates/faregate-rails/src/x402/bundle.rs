//! Requests carrying a bundle's access token (`Authorization: Bearer
//! fgx_…`): the token checked, then one call drawn from its grant in the
//! store, atomically across nodes.

use std::sync::atomic::Ordering;

use faregate_core::{Decision, Hold, Problem, ProblemCode};
use faregate_store::Draw;
use faregate_x402::wire::PaymentRequired;

use super::offers::refusal;
use super::{ACCESS_REMAINING, Inner, X402Config, now_ms, token};
use crate::RailRequest;

impl Inner {
    /// A request carrying a bundle's access token.
    pub(super) async fn redeem(
        &self,
        req: &RailRequest<'_>,
        config: &X402Config,
        raw: &str,
        required: &PaymentRequired,
    ) -> Decision {
        let refuse = |detail: String| {
            Decision::PaymentRequired(refusal(
                ProblemCode::PaymentRequired,
                "access_token_spent",
                detail,
                Some(required),
                None,
            ))
        };
        let (grant, expires) = match token::check(&config.token_secret, raw.trim()) {
            Ok(claim) => claim,
            Err(why) => {
                return Decision::PaymentRequired(refusal(
                    ProblemCode::PaymentInvalid,
                    "invalid_access_token",
                    why.to_owned(),
                    Some(required),
                    None,
                ));
            }
        };
        let now = now_ms(&*self.clock);
        if expires <= now {
            return refuse("the access token has expired; pay again".to_owned());
        }
        match self.store.grant(&grant).await {
            Ok(Some(g)) if g.route == req.route => {}
            Ok(Some(g)) => {
                return Decision::Deny(Problem::new(
                    ProblemCode::Forbidden,
                    format!(
                        "the access token is for route {}, not {}",
                        g.route, req.route
                    ),
                ));
            }
            Ok(None) => return refuse("the access token names no bundle".to_owned()),
            Err(e) => {
                tracing::error!(error = %e, "cannot read an x402 grant");
                return Decision::Deny(Problem::from_code(ProblemCode::InternalError));
            }
        }
        match self.store.draw_grant(&grant, now).await {
            Ok(Draw::Taken(left)) => {
                self.stats.drawn.fetch_add(1, Ordering::Relaxed);
                Decision::Allow(Hold {
                    rail: None,
                    amount: None,
                    reference: 0,
                    headers: left
                        .map(|n| vec![(ACCESS_REMAINING, n.to_string())])
                        .unwrap_or_default(),
                })
            }
            Ok(Draw::Spent) => refuse("the bundle is used up; pay again".to_owned()),
            Ok(Draw::Unknown) => refuse("the access token names no bundle".to_owned()),
            Err(e) => {
                tracing::error!(error = %e, "cannot draw from an x402 grant");
                Decision::Deny(Problem::from_code(ProblemCode::InternalError))
            }
        }
    }
}
