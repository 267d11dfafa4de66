//! Stage 7, `settle`: turn the hold into the final charge. Rails that must
//! settle before the caller sees the response (x402 puts `PAYMENT-RESPONSE`
//! in the head) do it in [`before_head`]; the others settle in
//! [`after_body`], when the body is done and the outcome is known. The
//! gateway's own 502/503/504 are never charged.

use std::sync::Arc;

use faregate_core::{ChargePolicy, Hold, Money, Problem};
use faregate_rails::{Head, HeadVerdict, Outcome};
use http::Response;

use crate::body::ResponseBody;
use crate::gateway::Gateway;
use crate::observe::Record;
use crate::pipeline::Ctx;

/// Lets the hold's rail settle before anything is served (x402: the
/// payment must be final, and `PAYMENT-RESPONSE` goes in the head), then
/// adds the headers the rail asked for (a subscriber's quota, a grace
/// warning). A rail that refuses replaces the upstream's response with its
/// 402; the upstream's body is dropped unread.
pub(crate) async fn before_head(
    ctx: &mut Ctx,
    mut response: Response<ResponseBody>,
) -> Result<Response<ResponseBody>, Problem> {
    if let Some(kind) = ctx.hold.rail()
        && let Some(rail) = ctx.gw.rails.iter().find(|r| r.kind() == kind).cloned()
    {
        let head = Head {
            request_id: ctx.request_id.clone(),
            method: ctx.method.clone(),
            status: response.status().as_u16(),
            from_upstream: ctx.upstream_status.is_some(),
        };
        match rail.before_head(ctx.hold.hold(), &head).await {
            HeadVerdict::Send(headers) => {
                for (name, value) in headers {
                    if let Ok(value) = http::HeaderValue::from_str(&value) {
                        response.headers_mut().insert(name, value);
                    }
                }
            }
            HeadVerdict::Refuse(challenge) => {
                ctx.upstream_status = None;
                return Ok(crate::respond::challenge(ctx, challenge));
            }
        }
    }
    for (name, value) in ctx.hold.headers() {
        if let Ok(value) = http::HeaderValue::from_str(value) {
            response.headers_mut().append(*name, value);
        }
    }
    Ok(response)
}

/// Settles the hold once the body is done; returns what was charged.
pub(crate) async fn after_body(gw: &Gateway, record: &Record, complete: bool) -> Option<Money> {
    let kind = record.hold.rail?;
    let rail = gw.rails.iter().find(|r| r.kind() == kind)?;
    let outcome = Outcome {
        request_id: record.request_id.clone(),
        policy: record.route.as_ref().map(|r| r.charge).unwrap_or_default(),
        status: record.status,
        from_upstream: record.upstream_status.is_some(),
        measured: record.llm.as_ref().map(|call| call.measured()),
        complete,
    };
    let charged = rail.settle(record.hold.clone(), &outcome).await.charged;
    if let Some(call) = &record.llm {
        call.finish(&gw.llm_limits, charged);
    }
    charged
}

/// A hold between `authorize` and the record that settles it. Should the
/// request die on the way (a panic in a later stage drops its context),
/// dropping this gives the hold back to its rail, so no money stays
/// reserved for a request that was never answered.
#[derive(Debug)]
pub(crate) struct PendingHold {
    hold: Hold,
    gw: Option<Arc<Gateway>>,
}

impl PendingHold {
    /// Nothing held.
    pub(crate) const NONE: PendingHold = PendingHold {
        hold: Hold::NONE,
        gw: None,
    };

    pub(crate) fn new(hold: Hold, gw: &Arc<Gateway>) -> Self {
        // Nothing held needs no way back to a rail.
        let gw = hold.rail.is_some().then(|| gw.clone());
        Self { hold, gw }
    }

    /// The headers the rail wants on the served response.
    pub(crate) fn headers(&self) -> &[(&'static str, String)] {
        &self.hold.headers
    }

    /// The rail holding something, if any.
    pub(crate) fn rail(&self) -> Option<faregate_core::RailKind> {
        self.hold.rail
    }

    /// The hold itself.
    pub(crate) fn hold(&self) -> &Hold {
        &self.hold
    }

    /// Hands the hold over to whoever settles it.
    pub(crate) fn take(&mut self) -> Hold {
        self.gw = None;
        std::mem::replace(&mut self.hold, Hold::NONE)
    }
}

impl Drop for PendingHold {
    fn drop(&mut self) {
        let (Some(gw), Some(kind)) = (self.gw.take(), self.hold.rail) else {
            return;
        };
        let Some(rail) = gw.rails.iter().find(|r| r.kind() == kind).cloned() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(rail = %kind, "a hold was dropped with no runtime to release it on");
            return;
        };
        let hold = std::mem::replace(&mut self.hold, Hold::NONE);
        tracing::warn!(rail = %kind, "a request ended without settling; releasing its hold");
        runtime.spawn(async move {
            let outcome = Outcome {
                request_id: String::new(),
                policy: ChargePolicy::Success,
                status: 500,
                from_upstream: false,
                measured: None,
                complete: false,
            };
            rail.settle(hold, &outcome).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use faregate_core::{Currency, Decision, Offer, RailKind};
    use faregate_rails::{BoxFuture, Credential, Rail, RailRequest, Settlement};

    use super::*;

    /// Records what it is asked to settle.
    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<(Hold, Outcome)>>);

    impl Rail for Recorder {
        fn kind(&self) -> RailKind {
            RailKind::Credits
        }
        fn accepts(&self, _: &Credential) -> bool {
            false
        }
        fn authorize<'a>(&'a self, _: &'a RailRequest<'a>) -> BoxFuture<'a, Decision> {
            Box::pin(async { Decision::Allow(Hold::NONE) })
        }
        fn offer(&self, _: &RailRequest<'_>) -> Option<Offer> {
            None
        }
        fn settle<'a>(&'a self, hold: Hold, outcome: &'a Outcome) -> BoxFuture<'a, Settlement> {
            self.0.lock().unwrap().push((hold, outcome.clone()));
            Box::pin(async { Settlement::default() })
        }
    }

    fn gateway(rail: Arc<Recorder>) -> Arc<Gateway> {
        let config = crate::config::load(
            "[[routes]]\nname = \"a\"\npath = \"/a\"\nupstreams = [\"http://127.0.0.1:9\"]\n",
            std::path::Path::new("."),
            &|_| None,
            &[RailKind::Credits],
        )
        .unwrap();
        Gateway::builder(config).rail(rail).build().unwrap()
    }

    fn hold() -> Hold {
        Hold {
            rail: Some(RailKind::Credits),
            amount: Some(Money::from_atomic(5, Currency::USD)),
            reference: 3,
            headers: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_hold_dropped_on_the_way_is_released_uncharged() {
        let rail = Arc::new(Recorder::default());
        drop(PendingHold::new(hold(), &gateway(rail.clone())));
        tokio::task::yield_now().await;
        let settled = rail.0.lock().unwrap();
        assert_eq!(settled.len(), 1);
        assert_eq!(settled[0].0, hold());
        assert!(!settled[0].1.chargeable(), "released, never charged");
    }

    #[tokio::test]
    async fn a_hold_handed_over_is_not_released_twice() {
        let rail = Arc::new(Recorder::default());
        let mut pending = PendingHold::new(hold(), &gateway(rail.clone()));
        assert_eq!(pending.take(), hold());
        drop(pending);
        tokio::task::yield_now().await;
        assert!(rail.0.lock().unwrap().is_empty());
    }
}
