//! Stage 7, `settle`: turn the hold into the final charge. Rails that must
//! settle before the caller sees the response (x402 puts `PAYMENT-RESPONSE`
//! in the head) do it in [`before_head`]; the others settle in
//! [`after_body`], when the body is done and the outcome is known. The
//! gateway's own 502/503/504 are never charged.

use faregate_core::{Money, Problem};
use faregate_rails::Outcome;
use http::Response;

use crate::body::ResponseBody;
use crate::gateway::Gateway;
use crate::observe::Record;
use crate::pipeline::Ctx;

/// Settles rails that settle before the response head; none do yet.
pub(crate) async fn before_head(
    ctx: &mut Ctx,
    response: Response<ResponseBody>,
) -> Result<Response<ResponseBody>, Problem> {
    let _ = ctx;
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
        measured: None,
        complete,
    };
    rail.settle(record.hold.clone(), &outcome).await.charged
}
