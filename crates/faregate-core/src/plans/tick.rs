//! Time passing: what falls due next for a subscription, and what happens
//! when it does. A tick after a long pause replays every due moment in
//! order, so a subscription asleep for three months closes three periods.

use crate::clock::UnixNanos;

use super::calendar::Period;
use super::event::{Effect, Notice};
use super::invoice;
use super::subscription::SubscriptionState as State;
use super::transition::Change;

/// The next moment a subscription changes by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    /// The current period ends and the next begins.
    PeriodEnds,
    /// The trial runs out.
    TrialEnds,
    /// The grace after a failed payment runs out.
    GraceEnds,
    /// A subscription canceled at period end reaches it.
    CancellationTakesEffect,
}

impl Change<'_> {
    /// Applies everything that fell due up to `now`, in order.
    pub(crate) fn advance_to(&mut self, now: UnixNanos) {
        while let Some((at, due)) = self.next_due() {
            if at > now || !self.fall_due(at, due) {
                break;
            }
        }
    }

    fn next_due(&self) -> Option<(UnixNanos, Due)> {
        let period_end = self.sub.period.end;
        match self.sub.state {
            State::Trialing => match self.sub.trial_end {
                Some(trial_end) if period_end < trial_end => Some((period_end, Due::PeriodEnds)),
                Some(trial_end) => Some((trial_end, Due::TrialEnds)),
                None => Some((period_end, Due::TrialEnds)),
            },
            State::Active | State::Unpaid => Some((period_end, Due::PeriodEnds)),
            State::PastDue => match self.sub.grace_until {
                Some(grace) if grace > period_end => Some((period_end, Due::PeriodEnds)),
                // A missing deadline counts as a grace already over.
                grace => Some((grace.unwrap_or(0), Due::GraceEnds)),
            },
            State::Canceled => Some((period_end, Due::CancellationTakesEffect)),
            State::Expired => None,
        }
    }

    /// Applies `due` at `at`; false when nothing could change (a period
    /// past the representable time), which stops the catching up.
    fn fall_due(&mut self, at: UnixNanos, due: Due) -> bool {
        match due {
            Due::PeriodEnds => self.roll_over(),
            Due::TrialEnds => {
                self.end(self.sub.period, at, Notice::TrialEnded);
                true
            }
            Due::GraceEnds => {
                self.sub.state = State::Unpaid;
                self.effects.push(Effect::Notify(Notice::GraceEnded));
                true
            }
            Due::CancellationTakesEffect => {
                self.end(self.sub.period, at, Notice::Expired);
                true
            }
        }
    }

    /// Closes the current period and opens the next: invoices the next
    /// period's subscription (unless in a trial or unpaid) and this
    /// period's overage, and resets the quotas.
    fn roll_over(&mut self) -> bool {
        let Some(next) = self.next_period() else {
            return false;
        };
        let closed = self.sub.period;
        let mut lines = Vec::new();
        if matches!(self.sub.state, State::Active | State::PastDue) {
            lines.push(self.bill(next));
        }
        lines.extend(invoice::overage_lines(&self.sub, self.plan, closed));
        self.issue(lines, closed.end);
        self.sub.usage.clear();
        self.sub.period = next;
        self.effects.push(Effect::ResetQuota { period: next });
        true
    }

    /// The period after the current one, cut at the trial's end while
    /// trialing; `None` past the representable time.
    fn next_period(&self) -> Option<Period> {
        let mut next = Period::starting(
            self.sub.period.end,
            self.sub.anchor,
            self.plan.spec().interval,
        )?;
        if let (State::Trialing, Some(trial_end)) = (self.sub.state, self.sub.trial_end) {
            next.end = next.end.min(trial_end);
        }
        (next.end > next.start).then_some(next)
    }
}
