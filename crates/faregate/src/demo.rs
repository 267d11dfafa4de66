//! `faregate demo`: the gateway on 127.0.0.1:8402 in front of an embedded
//! upstream, with free and paid routes, its data in SQLite in a temporary
//! folder, a demo account holding 0.010 USD with a key, and an admin token
//! made up on the spot. No config file, no setup.

use std::convert::Infallible;
use std::io::Write as _;
use std::pin::Pin;
use std::process::ExitCode;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use faregate_core::{Currency, LlmLimits, Money};
use faregate_rails::credits::{Credits, KeyRequest, TopUp, TopUpLink};
use faregate_store::Account;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::time::Sleep;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type DemoBody = BoxBody<Bytes, BoxError>;

/// Events in `/demo/stream`.
const STREAM_EVENTS: u32 = 20;
/// Pause between two events.
const STREAM_EVERY: Duration = Duration::from_millis(50);

pub(crate) async fn run(port: u16, admin_port: u16, workers: usize) -> anyhow::Result<ExitCode> {
    let upstream = TcpListener::bind(("127.0.0.1", 0)).await?;
    let upstream_addr = upstream.local_addr()?;
    tokio::spawn(serve_upstream(upstream));
    // The demo's model: a deterministic double speaking OpenAI's and
    // Anthropic's wire formats, with real token counts.
    let model = faregate_llm_double::spawn(faregate_llm_double::Options::default())?;

    let data = tempfile::Builder::new()
        .prefix("faregate-demo-")
        .tempdir()?;
    let admin_token = random_token(32);
    let text = config_text(
        port,
        admin_port,
        &upstream_addr.to_string(),
        &model.to_string(),
        &data.path().join("faregate.db").display().to_string(),
        &admin_token,
    );
    let config = faregate_gateway::config::load(
        &text,
        std::path::Path::new("."),
        &|name| std::env::var(name).ok(),
        crate::run::RAILS,
    )
    .map_err(|e| anyhow::anyhow!("the demo config is invalid: {e}"))?;
    let running = crate::run::start(config, workers).await?;
    let (account, key) = demo_account(&running.credits).await?;
    let (addrs, admin) = running.addrs();
    let gw = addrs
        .first()
        .copied()
        .unwrap_or(([127, 0, 0, 1], port).into());
    // The demo tops up through the admin API (on whatever port it got).
    running.credits.set_top_up(Some(TopUpLink {
        url: format!("http://{admin}/v1/accounts/{{account}}/credits"),
        method: "POST",
    }));
    print_banner(&Banner {
        gw: &gw.to_string(),
        admin: &admin.to_string(),
        account: &account,
        key: &key,
        admin_token: &admin_token,
        data: &data.path().display().to_string(),
    });
    let code = running.wait(None).await;
    drop(data);
    code
}

/// The demo account's opening credit: ten calls of `/demo/paid`.
const OPENING_CREDIT: &str = "0.010";

/// Creates the demo account with its opening credit and a test key.
async fn demo_account(credits: &Credits) -> anyhow::Result<(String, String)> {
    let account = Account {
        id: faregate_store::new_id("acct"),
        name: "Demo customer".to_owned(),
        currency: Currency::USD,
        created_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0)),
        budget: None,
    };
    credits.create_account(&account).await?;
    credits
        .top_up(TopUp {
            account_id: account.id.clone(),
            amount: Money::parse_decimal(OPENING_CREDIT, Currency::USD)?,
            idempotency_key: format!("demo-opening-credit:{}", account.id),
            reference: "demo".to_owned(),
            reason: Some("demo opening credit".to_owned()),
            fingerprint: None,
        })
        .await?;
    let (key, _) = credits
        .issue_key(KeyRequest {
            account_id: account.id.clone(),
            live: false,
            routes: None,
            models: None,
            limits: LlmLimits::default(),
            expires_at: None,
        })
        .await?;
    Ok((account.id, key))
}

fn config_text(
    port: u16,
    admin_port: u16,
    upstream: &str,
    model: &str,
    db: &str,
    admin_token: &str,
) -> String {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let pay_to = env("FAREGATE_DEMO_X402_PAY_TO").unwrap_or_else(|| DEMO_PAY_TO.to_owned());
    let x402 = x402_table(&env);
    format!(
        r#"
[[listeners]]
address = "127.0.0.1:{port}"

[admin]
address = "127.0.0.1:{admin_port}"
token = "{admin_token}"

[store]
url = "sqlite://{db}"

[[routes]]
name = "demo-free"
path = "/demo/free"
methods = ["GET", "HEAD"]
upstreams = ["http://{upstream}"]

[[routes]]
name = "demo-paid"
path = "/demo/paid"
methods = ["GET", "HEAD"]
upstreams = ["http://{upstream}"]
price = "0.001 USD"

[[routes]]
name = "demo-stream"
path = "/demo/stream"
methods = ["GET"]
upstreams = ["http://{upstream}"]
price = "0.001 USD"

[[routes]]
name = "demo-echo"
path = "/demo/echo"
methods = ["POST", "PUT"]
upstreams = ["http://{upstream}"]

[llm.providers.demo]
kind = "openai"
base_url = "http://{model}/v1"

[llm.providers.demo-anthropic]
kind = "anthropic"
base_url = "http://{model}/v1"

[[llm.models]]
name = "faregate-demo"
aliases = ["gpt-4o-mini"]
input = "0.15"
cached_input = "0.075"
output = "0.60"
max_output_tokens = 1024
providers = [{{ provider = "demo", model = "double-1" }}]

[[llm.models]]
name = "faregate-demo-claude"
input = "0.80"
output = "4.00"
max_output_tokens = 1024
providers = [{{ provider = "demo-anthropic", model = "double-1" }}]

[[routes]]
name = "demo-llm"
path = "/v1/*"
kind = "llm"

[[routes]]
name = "demo-summary"
path = "/demo/summary"
methods = ["POST"]
price = "0.001 USD"
prompt = {{ model = "faregate-demo", system = "You summarize text in one sentence.", template = "Summarize: {{{{text}}}}", max_tokens = 60, output = "text" }}

[[routes]]
name = "demo-x402"
path = "/demo/x402"
methods = ["GET", "HEAD"]
upstreams = ["http://{upstream}"]
price = "0.01 USD"
access = ["x402"]
[routes.x402]
description = "faregate demo: a paid JSON document"
mime_type = "application/json"
[[routes.x402.offers]]
network = "eip155:84532"
asset = "{DEMO_USDC}"
name = "USDC"
version = "2"
pay_to = "{pay_to}"
max_timeout_seconds = 60
{x402}"#
    )
}

/// USDC on Base Sepolia, what `/demo/x402` is paid in.
const DEMO_USDC: &str = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
/// Who `/demo/x402` pays when `FAREGATE_DEMO_X402_PAY_TO` is unset: an
/// address nobody holds the key of (`0x…dEaD`), so test money paid there is
/// burnt, not kept by anyone.
const DEMO_PAY_TO: &str = "0x000000000000000000000000000000000000dEaD";

/// The demo's `[x402]` table: settled on a chain when
/// `FAREGATE_DEMO_X402_RPC` and `FAREGATE_DEMO_X402_KEY` name one (a local
/// anvil, say), else through the public x402.org facilitator for Base
/// Sepolia. Without either, the 402 is still the real one.
fn x402_table(env: &dyn Fn(&str) -> Option<String>) -> String {
    match (env("FAREGATE_DEMO_X402_RPC"), env("FAREGATE_DEMO_X402_KEY")) {
        (Some(rpc), Some(_)) => format!(
            "\n[x402]\nsettlement = \"chain\"\nrpc_url = \"{rpc}\"\nsigner_key = \"$FAREGATE_DEMO_X402_KEY\"\n"
        ),
        _ => "\n[x402]\nsettlement = \"facilitator\"\nfacilitator_url = \"https://x402.org/facilitator\"\n".to_owned(),
    }
}

struct Banner<'a> {
    gw: &'a str,
    admin: &'a str,
    account: &'a str,
    key: &'a str,
    admin_token: &'a str,
    data: &'a str,
}

fn print_banner(b: &Banner<'_>) {
    let Banner {
        gw,
        admin,
        account,
        key,
        admin_token,
        data,
    } = b;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "faregate demo: gateway on http://{gw}, admin on http://{admin}\n\
         FAREGATE_DEMO_ACCOUNT={account}\n\
         FAREGATE_DEMO_KEY={key}\n\
         FAREGATE_ADMIN_TOKEN={admin_token}\n\
         Data (SQLite, deleted on exit): {data}\n\
         \n\
         The demo account holds {OPENING_CREDIT} USD; /demo/paid costs 0.001 USD a call. Try:\n\
         \x20 curl -i http://{gw}/demo/free                                  # free\n\
         \x20 curl -i -H 'Authorization: Bearer {key}' http://{gw}/demo/paid  # 200, charged 0.001 USD\n\
         \x20 for i in $(seq 11); do curl -s -o /dev/null -w '%{{http_code}}\\n' -H 'Authorization: Bearer {key}' http://{gw}/demo/paid; done\n\
         \x20                                                                 # ten 200s at most, then 402 insufficient_credits\n\
         \x20 curl -i -H 'Authorization: Bearer {key}' http://{gw}/demo/paid  # the 402 body: price, balance, a top_up action\n\
         \x20 curl -i -X POST -H 'Authorization: Bearer {admin_token}' -H 'Idempotency-Key: topup-1' \\\n\
         \x20      -H 'Content-Type: application/json' -d '{{\"amount\": \"0.005\", \"currency\": \"USD\", \"reason\": \"top-up\"}}' \\\n\
         \x20      http://{admin}/v1/accounts/{account}/credits                # top up: five more calls\n\
         \x20 curl -s -H 'Authorization: Bearer {admin_token}' http://{admin}/v1/accounts/{account}          # balance\n\
         \x20 curl -s -H 'Authorization: Bearer {admin_token}' http://{admin}/v1/accounts/{account}/usage    # every request's charge\n\
         \x20 curl -s -H 'Authorization: Bearer {admin_token}' http://{admin}/v1/accounts/{account}/ledger   # the double-entry ledger\n\
         \x20 curl -i http://{gw}/demo/paid                                  # refused: 401 problem+json, no key\n\
         \x20 curl -N -H 'Authorization: Bearer {key}' http://{gw}/demo/stream # 20 server-sent events (0.001 USD)\n\
         \x20 curl -i --data 'hello' http://{gw}/demo/echo                   # echoes the body\n\
         \x20 curl -i http://{gw}/demo/x402                                  # 402 with PAYMENT-REQUIRED: pay 0.01 USDC on Base Sepolia (x402)\n\
         \x20 curl -s http://{gw}/.well-known/x402                          # the x402 resources this gateway sells\n\
         \x20 curl -s http://{admin}/metrics                                 # Prometheus metrics\n\
         \n\
         LLM gateway (a built-in model double; billed by tokens, the cost in Faregate-Cost):\n\
         \x20 curl -s -H 'Authorization: Bearer {key}' http://{gw}/v1/models\n\
         \x20 curl -i -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\n\
         \x20      -d '{{\"model\": \"faregate-demo\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello!\"}}]}}' http://{gw}/v1/chat/completions\n\
         \x20 curl -N -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\n\
         \x20      -d '{{\"model\": \"faregate-demo\", \"stream\": true, \"messages\": [{{\"role\": \"user\", \"content\": \"Hello!\"}}]}}' http://{gw}/v1/chat/completions\n\
         \x20 curl -s -H 'Authorization: Bearer {key}' -d '{{\"text\": \"faregate bills LLM calls by their tokens.\"}}' http://{gw}/demo/summary  # a prompt API (0.001 USD)\n\
         \x20 # or the official OpenAI SDK: OpenAI(base_url=\"http://{gw}/v1\", api_key=\"{key}\")\n\
         \n\
         Access log (JSON, one line per request):"
    );
    let _ = out.flush();
}

fn random_token(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

async fn serve_upstream(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service_fn(upstream))
                .await;
        });
    }
}

async fn upstream(req: Request<Incoming>) -> Result<Response<DemoBody>, Infallible> {
    let json = |body: String| {
        let mut r = Response::new(full(body));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            "application/json".parse().expect("static"),
        );
        r
    };
    Ok(match req.uri().path() {
        "/demo/free" => json(r#"{"route":"free","message":"this one is on the house"}"#.into()),
        "/demo/paid" => json(r#"{"route":"paid","message":"you paid 0.001 USD for this"}"#.into()),
        "/demo/x402" => json(
            r#"{"route":"x402","message":"you paid 0.01 USDC on Base Sepolia for this, settled before you saw it"}"#
                .into(),
        ),
        "/demo/stream" => {
            let mut r = Response::new(Sse::new().boxed());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                "text/event-stream".parse().expect("static"),
            );
            r.headers_mut()
                .insert(header::CACHE_CONTROL, "no-cache".parse().expect("static"));
            r
        }
        "/demo/echo" => {
            let content_type = req.headers().get(header::CONTENT_TYPE).cloned();
            let mut r = Response::new(req.into_body().map_err(BoxError::from).boxed());
            if let Some(ct) = content_type {
                r.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            r
        }
        _ => {
            let mut r = json(r#"{"error":"not found"}"#.into());
            *r.status_mut() = http::StatusCode::NOT_FOUND;
            r
        }
    })
}

fn full(body: String) -> DemoBody {
    Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed()
}

/// Server-sent events, one every [`STREAM_EVERY`].
struct Sse {
    sent: u32,
    sleep: Pin<Box<Sleep>>,
}

impl Sse {
    fn new() -> Self {
        Self {
            sent: 0,
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }
}

impl Body for Sse {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.sent == STREAM_EVENTS {
            return Poll::Ready(None);
        }
        ready!(self.sleep.as_mut().poll(cx));
        self.sent += 1;
        let n = self.sent;
        let deadline = tokio::time::Instant::now() + STREAM_EVERY;
        self.sleep.as_mut().reset(deadline);
        let event = format!("id: {n}\nevent: tick\ndata: {{\"n\":{n},\"of\":{STREAM_EVENTS}}}\n\n");
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(event)))))
    }
}
