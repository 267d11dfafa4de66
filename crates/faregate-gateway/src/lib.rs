//! The faregate data plane: a streaming reverse proxy whose every request
//! goes through one pipeline,
//!
//! ```text
//! route -> identify -> price -> authorize -> forward -> meter -> settle -> observe
//! ```
//!
//! with one module per stage. Config is compiled once and swapped whole on
//! reload; the hot path reads it with one atomic load.

mod access_log;
mod authorize;
mod billing;
mod body;
pub mod config;
mod forward;
mod gateway;
mod h1;
mod headers;
mod identify;
mod limiter;
mod llm;
mod meter;
mod metrics;
mod observe;
mod path;
mod pipeline;
mod pool;
mod price;
mod respond;
mod route;
mod server;
mod settle;
mod tls;
mod workers;
mod x402;

pub use access_log::AccessLog;
pub use config::{Config, ConfigError};
pub use gateway::{BuildError, Gateway, GatewayBuilder, Snapshot};
pub use metrics::Metrics;
pub use path::{PathError, normalize};
pub use pipeline::{ConnInfo, decide};
pub use respond::PROBLEM_PATH;
pub use server::{bind, serve, serve_on};
pub use workers::{HELPER_NICE, Workers};
