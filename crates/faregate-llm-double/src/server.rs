//! The HTTP glue: accept connections (HTTP/1.1 keep-alive or h2c), run each
//! request through route → read → record → authorize → answer, and turn the
//! answer into a response.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Method, Request, Response};
use http_body_util::{BodyExt as _, Either, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::Options;
use crate::answer::{Answer, Ctx, Payload};
use crate::anthropic;
use crate::authorize::authorize;
use crate::openai::{self, chat, embeddings, responses};
use crate::problem::{Flavor, Problem};
use crate::route::Route;
use crate::script::ScriptBody;
use crate::stats::Stats;

/// The largest request body accepted.
const BODY_LIMIT: usize = 8 * 1024 * 1024;
/// How long to back off when `accept` fails (out of file descriptors, say).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
const JSON: HeaderValue = HeaderValue::from_static("application/json");
const EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");

type Body = Either<Full<Bytes>, ScriptBody>;

/// Shared by every connection.
#[derive(Debug)]
struct State {
    options: Options,
    stats: Stats,
    /// Numbers the answers, for their ids.
    answered: AtomicU64,
}

/// Serves the double on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, options: Options) -> std::io::Result<()> {
    let state = Arc::new(State {
        options,
        stats: Stats::default(),
        answered: AtomicU64::new(0),
    });
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "llm double cannot accept");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // Streamed tokens are small writes that must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(handle(&state, req).await) }
            });
            let served = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(error) = served {
                tracing::debug!(%error, "llm double connection ended");
            }
        });
    }
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<Body> {
    let answer = match respond(state, req).await {
        Ok(answer) => answer,
        Err((problem, flavor)) => problem.render(flavor),
    };
    into_response(answer)
}

/// The pipeline, stage by stage.
async fn respond(state: &State, req: Request<Incoming>) -> Result<Answer, (Problem, Flavor)> {
    let (parts, body) = req.into_parts();
    let Some(route) = Route::find(&parts.method, parts.uri.path()) else {
        let path = parts.uri.path().to_owned();
        return Err((
            Problem::NotFound {
                method: parts.method.to_string(),
                path,
            },
            Flavor::OpenAi,
        ));
    };
    let flavor = route.flavor();
    let at_fault = |problem| (problem, flavor);
    let bytes = read(&parts.headers, body).await.map_err(at_fault)?;
    if !route.is_api() {
        return answer(state, route, &Value::Null).map_err(at_fault);
    }
    let parsed = (parts.method == Method::POST).then(|| serde_json::from_slice::<Value>(&bytes));
    let model = match &parsed {
        Some(Ok(body)) => body.get("model").and_then(Value::as_str),
        _ => None,
    };
    state.stats.record(model, parsed.is_some().then_some(bytes));
    authorize(state.options.api_key.as_deref(), flavor, &parts.headers).map_err(at_fault)?;
    let body = match parsed {
        None => Value::Null,
        Some(Ok(body @ Value::Object(_))) => body,
        Some(_) => {
            return Err(at_fault(Problem::bad(
                "We could not parse the JSON body of your request.",
            )));
        }
    };
    answer(state, route, &body).map_err(at_fault)
}

/// The body, at most [`BODY_LIMIT`] bytes.
async fn read(headers: &http::HeaderMap, body: Incoming) -> Result<Bytes, Problem> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Err(Problem::TooLarge);
    }
    match Limited::new(body, BODY_LIMIT).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(Problem::TooLarge),
        Err(_) => Err(Problem::bad("The request body could not be read.")),
    }
}

fn answer(state: &State, route: Route, body: &Value) -> Result<Answer, Problem> {
    let ctx = Ctx {
        id: format!(
            "{:024x}",
            state.answered.fetch_add(1, Ordering::Relaxed) + 1
        ),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        token_delay: state.options.token_delay,
    };
    match route {
        Route::Chat => chat::answer(body, &ctx),
        Route::Responses => responses::answer(body, &ctx),
        Route::Embeddings => embeddings::answer(body, &ctx),
        Route::Models => Ok(Answer::json(openai::models())),
        Route::Messages => anthropic::answer(body, &ctx),
        Route::CountTokens => anthropic::count(body, &ctx),
        Route::Stats => Ok(Answer::json(state.stats.snapshot())),
        Route::Reset => {
            state.stats.reset();
            Ok(Answer::json(json!({"reset": true})))
        }
    }
}

fn into_response(answer: Answer) -> Response<Body> {
    let (body, content_type) = match answer.payload {
        Payload::Json(value) => (
            Either::Left(Full::new(Bytes::from(value.to_string()))),
            JSON,
        ),
        Payload::Stream(script) => (Either::Right(script.into_body()), EVENT_STREAM),
    };
    let stream = matches!(body, Either::Right(_));
    let mut response = Response::new(body);
    *response.status_mut() = answer.status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, content_type);
    if stream {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    if answer.retry_after {
        headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}
