//! Test helpers shared by faregate's end-to-end suites: a real upstream
//! server on a loopback port, real HTTP/1.1 and HTTP/2 clients, raw TCP for
//! malformed input, and a gateway started on port 0.

pub mod anvil;
mod client;
mod gateway;
mod rail;
mod store;
mod upstream;
pub mod x402;

pub use client::{Client, Reply, dead_port, free_port, parse_reply, raw, temp_dir};
pub use gateway::{MemoryLog, TestGateway};
pub use rail::TestRail;
pub use store::{PG_ENV, TestStore};
pub use upstream::Upstream;
