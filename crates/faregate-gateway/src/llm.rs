//! The LLM gateway (DESIGN §7): routes of kind `llm` serve OpenAI's chat
//! completions, responses, embeddings and models, and Anthropic's messages,
//! over the providers of `[llm]`, billed by the tokens each call really
//! used; a route with a `prompt` serves one template as its own endpoint.
//!
//! A call goes through the same stages as any request, the price being the
//! call's worst case:
//!
//! ```text
//! read body -> model -> limits (429) -> reserve worst case (402) -> providers
//!   -> whole answer: usage -> Faregate-Cost        \
//!   -> stream: meter each chunk -> cost comment     > charge the truth
//! ```

mod call;
mod limits;
mod prompt;
mod provider;

use std::sync::Arc;

use bytes::Bytes;
use faregate_core::{Decision, Price, Problem, ProblemCode};
use faregate_llm::anthropic::AnthropicStreamMeter;
use faregate_llm::openai::{self, OpenAiStreamMeter};
use faregate_llm::{COST_HEADER, anthropic, cost_header_value};
use http::header::{self, HeaderValue};
use http::{Method, Request, Response};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use serde_json::Value;

use crate::body::{RequestBody, ResponseBody};
use crate::config::Route;
use crate::config::llm::{LlmRoute, ModelTarget, ProviderKind};
use crate::headers::strip_hop_by_hop;
use crate::identify::Caller;
use crate::pipeline::Ctx;

pub(crate) use call::LlmCall;
use call::{MeteredStream, StreamMeter};
use limits::Asker;
pub(crate) use limits::LlmLimiter;

/// The largest non-streamed answer read whole (to find its usage).
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// An endpoint of an `llm` route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Chat,
    Responses,
    Embeddings,
    Messages,
    Models,
}

impl Endpoint {
    fn of(path: &str) -> Option<Endpoint> {
        let path = path.trim_end_matches('/');
        [
            ("/chat/completions", Endpoint::Chat),
            ("/responses", Endpoint::Responses),
            ("/embeddings", Endpoint::Embeddings),
            ("/messages", Endpoint::Messages),
            ("/models", Endpoint::Models),
        ]
        .into_iter()
        .find_map(|(suffix, e)| path.ends_with(suffix).then_some(e))
    }

    /// The path appended to a provider's base URL.
    fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/chat/completions",
            Endpoint::Responses => "/responses",
            Endpoint::Embeddings => "/embeddings",
            Endpoint::Messages => "/messages",
            Endpoint::Models => "/models",
        }
    }

    fn speaks(self) -> ProviderKind {
        match self {
            Endpoint::Messages => ProviderKind::Anthropic,
            _ => ProviderKind::OpenAi,
        }
    }
}

/// Serves a request on an LLM route.
pub(crate) async fn serve(
    ctx: &mut Ctx,
    route: &Arc<Route>,
    llm: &LlmRoute,
    caller: &Caller,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Problem> {
    if let LlmRoute::Prompt(prompt) = llm {
        return prompt::serve(ctx, route, prompt, caller, req).await;
    }
    let Some(endpoint) = Endpoint::of(&ctx.path) else {
        return Err(Problem::new(
            ProblemCode::RouteNotFound,
            "this route serves /chat/completions, /responses, /embeddings, /messages and /models",
        ));
    };
    let method = if endpoint == Endpoint::Models {
        Method::GET
    } else {
        Method::POST
    };
    if req.method() != method {
        return Err(
            Problem::new(ProblemCode::MethodNotAllowed, format!("use {method}"))
                .with_extension("allow", serde_json::json!([method.as_str()])),
        );
    }
    let key = crate::authorize::key_holder(ctx, route, caller)?;
    if endpoint == Endpoint::Models {
        return Ok(prompt::models(ctx, &key));
    }
    let (parts, body) = req.into_parts();
    let body = read_body(ctx, route, body).await?;
    let json: Value = serde_json::from_slice(&body)
        .map_err(|e| Problem::new(ProblemCode::InvalidBody, format!("not JSON: {e}")))?;
    let asked = json
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| Problem::new(ProblemCode::InvalidBody, "'model' (a string) is missing"))?;
    let snap = ctx.snap.clone();
    let settings = &snap.config.llm;
    let model = settings
        .model(asked)
        .ok_or_else(|| not_found(asked))?
        .clone();
    if !key.may_use_model(&model.name) && !key.may_use_model(asked) {
        return Err(Problem::new(
            ProblemCode::ModelNotAllowed,
            format!("key {} may not use model {asked}", key.id),
        ));
    }
    let targets: Vec<&ModelTarget> = model
        .targets
        .iter()
        .filter(|t| settings.providers[t.provider].kind == endpoint.speaks())
        .collect();
    if targets.is_empty() {
        return Err(Problem::new(
            ProblemCode::ModelNotFound,
            format!(
                "model {asked} is not served by an {} provider here",
                endpoint.speaks().as_str()
            ),
        ));
    }
    let stream = json.get("stream").and_then(Value::as_bool) == Some(true);
    let estimated_input = faregate_llm::input_tokens(&json);
    let max_output = if endpoint == Endpoint::Embeddings {
        0
    } else {
        faregate_llm::max_output(&json, model.max_output_tokens)
    };
    let worst = faregate_llm::worst_case(estimated_input, max_output, &model.prices)
        .map_err(|e| Problem::new(ProblemCode::InvalidBody, format!("cannot price: {e}")))?;

    // Limits first (429 is never a money problem), then the money (402).
    let limits = key.limits.or(settings.key_limits);
    let account_budget = key.account.as_deref().and_then(|a| {
        ctx.gw
            .keys
            .as_ref()
            .and_then(|k| k.account_budget(a))
            .or(settings.account_budget)
    });
    let account: Option<Arc<str>> = key.account.clone();
    let asker = Asker {
        key: &key.id,
        account: account.as_ref(),
        limits,
        account_budget,
    };
    let now = ctx.gw.clock.now();
    let admission =
        ctx.gw
            .llm_limits
            .admit(&ctx.gw.limiter, &asker, worst, estimated_input, now)?;
    let head = Request::from_parts(parts, ());
    match crate::authorize::authorize(ctx, route, caller, Price::Fixed(worst), &head).await {
        Decision::Allow(hold) => ctx.hold = crate::settle::PendingHold::new(hold, &ctx.gw),
        Decision::PaymentRequired(challenge) => {
            return Ok(crate::respond::challenge(ctx, challenge));
        }
        Decision::Deny(problem) => return Err(problem),
    }
    let call = LlmCall::new(model.prices, estimated_input, worst, admission);
    ctx.llm = Some(call.clone());

    let (parts, ()) = head.into_parts();
    let injected = std::sync::atomic::AtomicBool::new(false);
    let body_for = |target: &ModelTarget| {
        let body = with_model(&body, asked, &target.model);
        if endpoint == Endpoint::Chat && stream {
            match openai::request_stream_usage(body.clone()) {
                Ok(rewritten) => {
                    injected.store(rewritten.injected, std::sync::atomic::Ordering::Relaxed);
                    return rewritten.body;
                }
                Err(_) => return body,
            }
        }
        body
    };
    let answer = provider::call(
        ctx,
        route,
        settings,
        &targets,
        endpoint.path(),
        &parts.headers,
        &body_for,
    )
    .await?;
    let (mut head, upstream) = answer.response.into_parts();
    strip_hop_by_hop(&mut head.headers);
    if !head.status.is_success() {
        // The provider's refusal, as it is: nothing is charged.
        let body = ResponseBody::upstream(upstream, route.limits.idle_timeout, answer.lease);
        return Ok(Response::from_parts(head, body));
    }
    let is_stream = head
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let response = if is_stream {
        call.set_stream(match endpoint.speaks() {
            ProviderKind::OpenAi => {
                StreamMeter::OpenAi(OpenAiStreamMeter::new(injected.into_inner()))
            }
            ProviderKind::Anthropic => StreamMeter::Anthropic(AnthropicStreamMeter::new()),
        });
        head.headers.remove(header::CONTENT_LENGTH);
        let body = ResponseBody::rewritten(
            upstream,
            route.limits.idle_timeout,
            answer.lease,
            Box::new(MeteredStream(call)),
        );
        Response::from_parts(head, body)
    } else {
        let bytes = read_answer(ctx, route, upstream, answer.lease).await?;
        let usage = match endpoint.speaks() {
            ProviderKind::OpenAi => openai::usage_from_body(&bytes),
            ProviderKind::Anthropic => anthropic::usage_from_body(&bytes),
        };
        match usage {
            Ok(usage) => call.set_usage(usage),
            Err(e) => {
                // No usage in a paid answer: the reservation is the bill.
                tracing::warn!(request_id = %ctx.request_id, error = %e, "no usage in the provider's answer; charging the reservation");
                call.set_usage(worst_usage(estimated_input, max_output));
            }
        }
        if let Ok(v) = HeaderValue::from_str(&cost_header_value(call.cost())) {
            head.headers.insert(COST_HEADER, v);
        }
        head.headers.remove(header::CONTENT_LENGTH);
        Response::from_parts(head, ResponseBody::full(bytes))
    };
    crate::settle::before_head(ctx, response).await
}

fn not_found(asked: &str) -> Problem {
    Problem::new(
        ProblemCode::ModelNotFound,
        format!("no model {asked:?} here; GET /v1/models lists the models your key may use"),
    )
}

fn worst_usage(input: u64, output: u64) -> faregate_llm::Usage {
    faregate_llm::Usage {
        input,
        output,
        ..faregate_llm::Usage::default()
    }
}

/// The caller's body with its `model` swapped for the provider's name;
/// every other byte as the caller sent it.
fn with_model(body: &Bytes, asked: &str, model: &str) -> Bytes {
    if asked == model {
        return body.clone();
    }
    let replaced = (|| {
        let text = std::str::from_utf8(body).ok()?;
        let members: std::collections::BTreeMap<
            std::borrow::Cow<'_, str>,
            &serde_json::value::RawValue,
        > = serde_json::from_str(text).ok()?;
        let raw = members.get("model")?.get();
        let start = raw.as_ptr() as usize - text.as_ptr() as usize;
        let mut out = String::with_capacity(text.len() + model.len());
        out.push_str(&text[..start]);
        out.push_str(&serde_json::to_string(model).ok()?);
        out.push_str(&text[start + raw.len()..]);
        Some(Bytes::from(out))
    })();
    replaced.unwrap_or_else(|| body.clone())
}

/// Reads the caller's body whole, within the route's size limit.
pub(crate) async fn read_body(ctx: &Ctx, route: &Route, body: Incoming) -> Result<Bytes, Problem> {
    let limit = route.limits.max_body_bytes;
    let body = RequestBody::new(
        body,
        limit,
        route.limits.body_idle_timeout,
        ctx.tally.clone(),
    );
    match body.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) => Err(match e.downcast_ref::<crate::body::BodyError>() {
            Some(crate::body::BodyError::TooLarge(limit)) => Problem::new(
                ProblemCode::PayloadTooLarge,
                format!("the request body is larger than {limit} bytes"),
            ),
            Some(crate::body::BodyError::Idle(d)) => Problem::new(
                ProblemCode::RequestTimeout,
                format!("the request body paused for more than {d:?}"),
            ),
            None => Problem::new(ProblemCode::BadRequest, "the request body was cut off"),
        }),
    }
}

/// Reads a provider's whole answer (bounded), as 502 when it breaks off.
pub(crate) async fn read_answer(
    ctx: &mut Ctx,
    route: &Route,
    body: Incoming,
    lease: Option<crate::pool::Lease>,
) -> Result<Bytes, Problem> {
    let body = http_body_util::Limited::new(body, MAX_ANSWER_BYTES);
    match tokio::time::timeout(route.limits.idle_timeout, body.collect()).await {
        Ok(Ok(collected)) => {
            if let Some(lease) = lease {
                // Read to its end: the connection can carry the next call.
                lease.release();
            }
            Ok(collected.to_bytes())
        }
        Ok(Err(e)) => {
            ctx.error = Some(format!("reading the provider's answer: {e}"));
            ctx.upstream_status = None;
            Err(Problem::new(
                ProblemCode::UpstreamUnreachable,
                "the model's provider broke off its answer",
            ))
        }
        Err(_) => {
            ctx.upstream_status = None;
            Err(Problem::new(
                ProblemCode::UpstreamTimeout,
                "the model's provider did not finish its answer in time",
            ))
        }
    }
}
