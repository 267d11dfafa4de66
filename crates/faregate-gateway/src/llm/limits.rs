//! What LLM callers may use, counted in memory on this node: requests per
//! minute (GCRA, in the gateway's limiter), tokens per minute, and spending
//! budgets per key and per account for the UTC day or month. A request's
//! worst case is reserved against each budget before it is forwarded and
//! swapped for its true charge when it ends, so parallel requests cannot
//! spend past a budget.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use faregate_core::{Budget, Gcra, LlmLimits, Money, Problem, ProblemCode, UnixNanos};
use parking_lot::Mutex;

use crate::limiter::{CallerKey, Limiter};

const NANOS_PER_SEC: u64 = 1_000_000_000;
const MINUTE: u64 = 60 * NANOS_PER_SEC;
/// Maps this large are swept of windows that have ended.
const SWEEP_AT: usize = 4_096;

/// Whose budget.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Scope {
    Key(Arc<str>),
    Account(Arc<str>),
}

#[derive(Debug, Default, Clone, Copy)]
struct Spend {
    /// Atomic units charged in the window.
    spent: u64,
    /// Atomic units held by requests in flight.
    reserved: u64,
    /// When the window ends.
    end: UnixNanos,
}

#[derive(Debug, Default, Clone, Copy)]
struct Tokens {
    minute: u64,
    used: u64,
}

/// The counters behind every LLM limit.
#[derive(Debug, Default)]
pub(crate) struct LlmLimiter {
    spend: Mutex<HashMap<(Scope, UnixNanos), Spend>>,
    tokens: Mutex<HashMap<Arc<str>, Tokens>>,
}

/// What one request took from the limits; given back (with the truth) by
/// [`LlmLimiter::finish`], or released when dropped unfinished.
#[derive(Debug)]
pub(crate) struct Admission {
    limiter: Arc<LlmLimiter>,
    /// (scope, window start, amount reserved).
    budgets: Vec<(Scope, UnixNanos, u64)>,
    /// The key and the minute its tokens were counted in, and how many.
    tokens: Option<(Arc<str>, u64, u64)>,
    done: bool,
}

/// Who is asking and what they may use.
#[derive(Debug)]
pub(crate) struct Asker<'a> {
    pub(crate) key: &'a Arc<str>,
    pub(crate) account: Option<&'a Arc<str>>,
    pub(crate) limits: LlmLimits,
    pub(crate) account_budget: Option<Budget>,
}

impl LlmLimiter {
    /// Admits a request that may cost up to `worst` and whose input is
    /// about `input_tokens`, or says which limit it would break (429).
    pub(crate) fn admit(
        self: &Arc<Self>,
        rate: &Limiter,
        asker: &Asker<'_>,
        worst: Money,
        input_tokens: u64,
        now: UnixNanos,
    ) -> Result<Admission, Problem> {
        if let Some(rpm) = asker.limits.rpm {
            check_rpm(rate, asker.key, rpm, now)?;
        }
        let tokens = match asker.limits.tpm {
            Some(tpm) => Some(self.take_tokens(asker.key, tpm, input_tokens, now)?),
            None => None,
        };
        let mut admission = Admission {
            limiter: self.clone(),
            budgets: Vec::new(),
            tokens,
            done: false,
        };
        let mut wanted = Vec::new();
        if let Some(budget) = asker.limits.budget {
            wanted.push((Scope::Key(asker.key.clone()), budget));
        }
        if let (Some(account), Some(budget)) = (asker.account, asker.account_budget) {
            wanted.push((Scope::Account(account.clone()), budget));
        }
        if wanted.is_empty() {
            return Ok(admission);
        }
        let mut spend = self.spend.lock();
        // Check every budget before reserving in any.
        for (scope, budget) in &wanted {
            if budget.amount.currency() != worst.currency() {
                continue;
            }
            let (start, end) = budget.period.window(now);
            let s = spend
                .get(&(scope.clone(), start))
                .copied()
                .unwrap_or_default();
            let after = s
                .spent
                .saturating_add(s.reserved)
                .saturating_add(worst.atomic());
            if after > budget.amount.atomic() {
                let whose = match scope {
                    Scope::Key(id) => format!("key {id}"),
                    Scope::Account(id) => format!("account {id}"),
                };
                let left = budget.amount.atomic().saturating_sub(s.spent + s.reserved);
                return Err(Problem::new(
                    ProblemCode::BudgetExhausted,
                    format!(
                        "the {} budget of {whose} ({budget}) has {} left and this request may cost up to {}",
                        budget.period,
                        Money::from_atomic(left, worst.currency()).decimal_string(),
                        worst.decimal_string(),
                    ),
                )
                .with_retry_after(secs_until(now, end)));
            }
        }
        if spend.len() >= SWEEP_AT {
            spend.retain(|_, s| s.end > now || s.reserved > 0);
        }
        for (scope, budget) in wanted {
            if budget.amount.currency() != worst.currency() {
                continue;
            }
            let (start, end) = budget.period.window(now);
            let s = spend.entry((scope.clone(), start)).or_default();
            s.end = end;
            s.reserved = s.reserved.saturating_add(worst.atomic());
            admission.budgets.push((scope, start, worst.atomic()));
        }
        Ok(admission)
    }

    fn take_tokens(
        &self,
        key: &Arc<str>,
        tpm: u64,
        input_tokens: u64,
        now: UnixNanos,
    ) -> Result<(Arc<str>, u64, u64), Problem> {
        let minute = now / MINUTE;
        let mut map = self.tokens.lock();
        if map.len() >= SWEEP_AT && !map.contains_key(key) {
            map.retain(|_, t| t.minute >= minute);
        }
        let t = map.entry(key.clone()).or_default();
        if t.minute != minute {
            *t = Tokens { minute, used: 0 };
        }
        // The first request of a minute always passes, however large.
        if t.used > 0 && t.used.saturating_add(input_tokens) > tpm {
            return Err(Problem::new(
                ProblemCode::TokensPerMinuteExceeded,
                format!(
                    "key {key} has used {} of its {tpm} tokens this minute",
                    t.used
                ),
            )
            .with_retry_after(secs_until(now, (minute + 1) * MINUTE)));
        }
        t.used = t.used.saturating_add(input_tokens);
        Ok((key.clone(), minute, input_tokens))
    }

    /// Swaps what `admission` reserved for what the request really used.
    pub(crate) fn finish(&self, mut admission: Admission, charged: u64, tokens: u64) {
        self.settle(&mut admission, charged, tokens);
    }

    fn settle(&self, admission: &mut Admission, charged: u64, tokens: u64) {
        if std::mem::replace(&mut admission.done, true) {
            return;
        }
        {
            let mut spend = self.spend.lock();
            for (scope, start, reserved) in admission.budgets.drain(..) {
                if let Some(s) = spend.get_mut(&(scope, start)) {
                    s.reserved = s.reserved.saturating_sub(reserved);
                    s.spent = s.spent.saturating_add(charged);
                }
            }
        }
        if let Some((key, minute, reserved)) = admission.tokens.take() {
            let mut map = self.tokens.lock();
            if let Some(t) = map.get_mut(&key) {
                if t.minute == minute {
                    t.used = t.used.saturating_sub(reserved).saturating_add(tokens);
                } else {
                    // Used now, in the minute that is running.
                    t.used = t.used.saturating_add(tokens);
                }
            }
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let limiter = self.limiter.clone();
        limiter.settle(self, 0, 0);
    }
}

fn check_rpm(rate: &Limiter, key: &Arc<str>, rpm: u64, now: UnixNanos) -> Result<(), Problem> {
    static RPM: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| "llm:rpm".into());
    let n = NonZeroU32::new(u32::try_from(rpm).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
    let Ok(gcra) = Gcra::try_new(n, Duration::from_secs(60), n) else {
        return Ok(());
    };
    let outcome = rate.check(&gcra, &RPM, CallerKey::Key(key.clone()), now);
    if outcome.allowed {
        return Ok(());
    }
    Err(Problem::new(
        ProblemCode::RequestsPerMinuteExceeded,
        format!("key {key} has made its {rpm} requests this minute"),
    )
    .with_retry_after(outcome.retry_after.div_ceil(NANOS_PER_SEC).max(1)))
}

fn secs_until(now: UnixNanos, at: UnixNanos) -> u64 {
    at.saturating_sub(now).div_ceil(NANOS_PER_SEC).max(1)
}

#[cfg(test)]
mod tests {
    use faregate_core::{BudgetPeriod, Currency};

    use super::*;

    const NOW: UnixNanos = 1_795_359_600 * NANOS_PER_SEC;

    fn usd(atomic: u64) -> Money {
        Money::from_atomic(atomic, Currency::USD)
    }

    fn asker<'a>(key: &'a Arc<str>, limits: LlmLimits) -> Asker<'a> {
        Asker {
            key,
            account: None,
            limits,
            account_budget: None,
        }
    }

    #[test]
    fn a_budget_holds_worst_cases_in_flight_and_keeps_the_truth() {
        let limiter = Arc::new(LlmLimiter::default());
        let rate = Limiter::default();
        let key: Arc<str> = "k".into();
        let budget = Budget {
            amount: usd(100),
            period: BudgetPeriod::Day,
        };
        let limits = LlmLimits {
            budget: Some(budget),
            ..LlmLimits::default()
        };
        let a = limiter
            .admit(&rate, &asker(&key, limits), usd(60), 1, NOW)
            .unwrap();
        let refused = limiter
            .admit(&rate, &asker(&key, limits), usd(60), 1, NOW)
            .unwrap_err();
        assert_eq!(refused.code, ProblemCode::BudgetExhausted);
        assert!(refused.retry_after.is_some_and(|s| s <= 86_400));
        // It cost 10: 90 left.
        limiter.finish(a, 10, 0);
        let b = limiter
            .admit(&rate, &asker(&key, limits), usd(90), 1, NOW)
            .unwrap();
        assert!(
            limiter
                .admit(&rate, &asker(&key, limits), usd(1), 1, NOW)
                .is_err()
        );
        // Dropped unfinished: released, nothing spent.
        drop(b);
        assert!(
            limiter
                .admit(&rate, &asker(&key, limits), usd(90), 1, NOW)
                .is_ok()
        );
        // The next day starts afresh.
        let tomorrow = NOW + 86_400 * NANOS_PER_SEC;
        assert!(
            limiter
                .admit(&rate, &asker(&key, limits), usd(100), 1, tomorrow)
                .is_ok()
        );
    }

    #[test]
    fn tokens_per_minute_count_the_truth_and_reset_each_minute() {
        let limiter = Arc::new(LlmLimiter::default());
        let rate = Limiter::default();
        let key: Arc<str> = "k".into();
        let limits = LlmLimits {
            tpm: Some(100),
            ..LlmLimits::default()
        };
        let a = limiter
            .admit(&rate, &asker(&key, limits), usd(1), 30, NOW)
            .unwrap();
        limiter.finish(a, 1, 95);
        let refused = limiter
            .admit(&rate, &asker(&key, limits), usd(1), 10, NOW)
            .unwrap_err();
        assert_eq!(refused.code, ProblemCode::TokensPerMinuteExceeded);
        assert!(
            limiter
                .admit(&rate, &asker(&key, limits), usd(1), 10, NOW + MINUTE)
                .is_ok()
        );
    }

    #[test]
    fn requests_per_minute_are_their_own_429() {
        let limiter = Arc::new(LlmLimiter::default());
        let rate = Limiter::default();
        let key: Arc<str> = "k".into();
        let limits = LlmLimits {
            rpm: Some(2),
            ..LlmLimits::default()
        };
        for _ in 0..2 {
            drop(
                limiter
                    .admit(&rate, &asker(&key, limits), usd(1), 1, NOW)
                    .unwrap(),
            );
        }
        let refused = limiter
            .admit(&rate, &asker(&key, limits), usd(1), 1, NOW)
            .unwrap_err();
        assert_eq!(refused.code, ProblemCode::RequestsPerMinuteExceeded);
        assert!(refused.retry_after.is_some());
    }
}
