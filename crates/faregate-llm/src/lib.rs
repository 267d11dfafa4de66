//! The pure groundwork of faregate's LLM gateway: token prices and the cost of
//! a request's usage, a conservative input estimate for reservations, an
//! incremental Server-Sent-Events parser, and the OpenAI and Anthropic
//! adapters that read usage from bodies and meter streams.
//!
//! Nothing here does I/O: callers hand in request bodies and the provider's
//! bytes as they arrive, and get back bytes to forward and usage to charge.
//! One request goes:
//!
//! 1. reserve [`worst_case`]`(`[`input_tokens`]`(body), `[`max_output`]`(body, limit), prices)`;
//! 2. for a streamed chat completion, forward
//!    [`openai::request_stream_usage`]`(body).body` and remember `injected`;
//! 3. non-streamed: charge [`cost`] of [`openai::usage_from_body`] or
//!    [`anthropic::usage_from_body`] and send [`COST_HEADER`] with
//!    [`cost_header_value`];
//! 4. streamed: pass each upstream chunk through
//!    [`openai::OpenAiStreamMeter`] or [`anthropic::AnthropicStreamMeter`],
//!    forward what it returns, then charge [`cost`] of its `billable(estimate)`
//!    (the reported usage, or what was delivered when the stream was cut) and
//!    append [`cost_comment`] when the client is still there.

pub mod anthropic;
mod estimate;
pub mod openai;
mod price;
mod report;
mod sse;
mod usage;

pub use estimate::{BYTES_PER_TOKEN, MESSAGE_OVERHEAD, REQUEST_OVERHEAD, input_tokens, max_output};
pub use price::{PriceError, Rate, SUB_ATOMIC_DECIMALS, TokenPrices, Usage, cost, worst_case};
pub use report::{COST_HEADER, cost_comment, cost_header_value};
pub use sse::{SseEvent, SseParser};
pub use usage::{CHARS_PER_TOKEN, Delivered, UsageError};
