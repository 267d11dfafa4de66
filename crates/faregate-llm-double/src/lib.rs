//! A small, deterministic LLM provider double that speaks the OpenAI and
//! Anthropic HTTP wire formats closely enough that the official SDKs accept
//! its answers unchanged. It serves as the built-in model of `faregate demo`,
//! as the upstream provider of integration tests, and as the far end of the
//! benchmark against LiteLLM.
//!
//! Everything it answers follows from the request, so tests can compute what
//! to expect:
//!
//! - usage is [`count_tokens`] summed over every text the request carries
//!   (message contents, `system`, `input`, `instructions`), with no hidden
//!   overhead;
//! - the reply is [`reply_tokens`]`(last user message text, max tokens)`; a
//!   last user message `say:<text>` makes the reply exactly `<text>`;
//! - a model named `fail-NNN` answers status `NNN` in the provider's error
//!   format, and a model whose name contains `slow` streams 30 ms per token.
//!
//! `GET /_double/stats` tells what arrived (request count, count per model,
//! the last POST body) and `POST /_double/reset` forgets it. Every API path is
//! served both under `/v1` and at the root.

mod answer;
mod anthropic;
mod authorize;
mod fields;
mod openai;
mod problem;
mod reply;
mod route;
mod script;
mod server;
mod stats;
mod tokenize;
mod turn;

use std::net::SocketAddr;
use std::time::Duration;

pub use reply::reply_tokens;
pub use server::serve;
pub use tokenize::count_tokens;

/// How the double behaves.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The key clients must present (`Authorization: Bearer` for OpenAI
    /// paths, `x-api-key` for Anthropic ones); `None` lets everyone in.
    pub api_key: Option<String>,
    /// The pause before each streamed token.
    pub token_delay: Duration,
}

/// Binds `127.0.0.1:0`, serves on a spawned task and returns the address.
/// Must be called inside a tokio runtime.
pub fn spawn(options: Options) -> std::io::Result<SocketAddr> {
    let std_listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))?;
    std_listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(std_listener)?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(error) = serve(listener, options).await {
            tracing::error!(%error, "llm double stopped");
        }
    });
    Ok(addr)
}
