//! The double over real HTTP on loopback: every endpoint, streamed and not,
//! usage arithmetic, simulated failures, auth and the control endpoints.

mod client;

mod anthropic;
mod chat;
mod embeddings;
mod refusals;
mod responses;
