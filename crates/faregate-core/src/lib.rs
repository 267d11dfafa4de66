//! The pure core of faregate: money in atomic units, prices, the problem
//! documents of the 402 contract, authorization decisions, and the GCRA
//! arithmetic behind rate limits.
//!
//! Nothing here does I/O or reads the wall clock: time comes in through
//! [`Clock`], so every rule can be tested on a fake clock.

mod clock;
mod decision;
mod money;
mod problem;
mod ratelimit;

pub use clock::{Clock, FakeClock, SystemClock, UnixNanos};
pub use decision::{Challenge, ChargePolicy, Decision, Hold, Offer, RailKind};
pub use money::{Currency, Money, MoneyError, Price};
pub use problem::{Action, ActionKind, Problem, ProblemCode};
pub use ratelimit::{Gcra, GcraOutcome, RateLimitError};
