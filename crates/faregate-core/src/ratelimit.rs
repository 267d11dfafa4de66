//! GCRA (the generic cell rate algorithm) as pure arithmetic on one number,
//! the theoretical arrival time.
//!
//! We keep our own rather than use `governor` because the gateway needs what
//! governor does not expose directly: the `RateLimit-Remaining` and
//! `RateLimit-Reset` values of every answer, and a state that is a single
//! integer, so the same arithmetic can later run inside a Redis script for
//! cluster-wide limits.

use std::num::NonZeroU32;
use std::time::Duration;

use crate::clock::UnixNanos;

/// An invalid rate-limit definition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitError {
    /// The period is zero or too long.
    #[error("period must be between 1 ms and 1 day")]
    Period,
}

/// `requests` per `period`, with bursts of up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// Nanoseconds between two requests at the sustained rate.
    interval: u64,
    /// How far ahead of schedule a caller may be.
    tolerance: u64,
    burst: NonZeroU32,
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcraOutcome {
    /// Whether the request may pass.
    pub allowed: bool,
    /// The new state to store (unchanged when refused).
    pub tat: UnixNanos,
    /// Requests that could still pass right now.
    pub remaining: u32,
    /// Nanoseconds until the full burst is available again.
    pub reset_after: u64,
    /// Nanoseconds until a refused request could pass (0 when allowed).
    pub retry_after: u64,
}

impl Gcra {
    /// A limit of `requests` per `period` with bursts of `burst`.
    pub fn try_new(
        requests: NonZeroU32,
        period: Duration,
        burst: NonZeroU32,
    ) -> Result<Self, RateLimitError> {
        let period = u64::try_from(period.as_nanos()).map_err(|_| RateLimitError::Period)?;
        if !(1_000_000..=86_400_000_000_000).contains(&period) {
            return Err(RateLimitError::Period);
        }
        let interval = (period / u64::from(requests.get())).max(1);
        let tolerance = interval * u64::from(burst.get() - 1);
        Ok(Self {
            interval,
            tolerance,
            burst,
        })
    }

    /// The burst size, sent as `RateLimit-Limit`.
    pub fn limit(&self) -> u32 {
        self.burst.get()
    }

    /// Decides one request arriving at `now` given the stored `tat`
    /// (0 for a caller never seen).
    pub fn check(&self, tat: UnixNanos, now: UnixNanos) -> GcraOutcome {
        let tat = tat.max(now);
        let ahead = tat - now;
        if ahead > self.tolerance {
            return GcraOutcome {
                allowed: false,
                tat,
                remaining: 0,
                reset_after: ahead,
                retry_after: ahead - self.tolerance,
            };
        }
        let new_tat = tat.saturating_add(self.interval);
        let used = new_tat - now;
        let spare = (self.tolerance + self.interval).saturating_sub(used) / self.interval;
        GcraOutcome {
            allowed: true,
            tat: new_tat,
            remaining: u32::try_from(spare).unwrap_or(u32::MAX),
            reset_after: used,
            retry_after: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    #[test]
    fn admits_the_burst_then_refuses_until_one_interval_passes() {
        let g = Gcra::try_new(nz(10), Duration::from_secs(1), nz(3)).unwrap();
        let now = 1_000 * SEC;
        let mut tat = 0;
        let mut remaining = vec![];
        for _ in 0..3 {
            let o = g.check(tat, now);
            assert!(o.allowed);
            remaining.push(o.remaining);
            tat = o.tat;
        }
        assert_eq!(remaining, [2, 1, 0]);
        let refused = g.check(tat, now);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, SEC / 10);
        assert_eq!(refused.tat, tat, "a refusal does not consume");
        assert!(g.check(tat, now + SEC / 10).allowed);
    }

    #[test]
    fn sustained_rate_is_the_configured_one() {
        let g = Gcra::try_new(nz(5), Duration::from_secs(1), nz(1)).unwrap();
        let (mut tat, mut passed) = (0, 0);
        // One attempt per millisecond for ten seconds.
        for ms in 0..10_000u64 {
            let o = g.check(tat, 50 * SEC + ms * 1_000_000);
            if o.allowed {
                passed += 1;
                tat = o.tat;
            }
        }
        assert_eq!(passed, 50);
    }

    #[test]
    fn rejects_silly_periods() {
        assert!(Gcra::try_new(nz(1), Duration::ZERO, nz(1)).is_err());
        assert!(Gcra::try_new(nz(1), Duration::from_secs(2 * 86_400), nz(1)).is_err());
    }
}
