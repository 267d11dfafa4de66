//! The subscription lifecycle as pure functions: each event at an instant
//! takes a subscription to its next state and lists the [`Effect`]s the
//! caller must carry out (record an invoice, reset counters, notify).
//!
//! Every transition first brings the subscription up to `now` (as
//! [`Subscription::tick`] does: periods roll over, trials and grace periods
//! end), then applies the event, then catches up again, so it is correct
//! whatever instant the stored state was last brought up to.

use crate::clock::UnixNanos;

use super::calendar::{AnchorDay, Period};
use super::event::{CancelAt, Effect, Event, Notice, Transition, TransitionError};
use super::invoice;
use super::plan::Plan;
use super::subscription::{PaymentMethod, Subscription, SubscriptionState as State};

impl Subscription {
    /// Starts the plan's free trial at `now`.
    pub fn start_trial(
        plan: &Plan,
        now: UnixNanos,
        payment_method: PaymentMethod,
    ) -> Result<Transition, TransitionError> {
        let trial = plan
            .trial_nanos()
            .ok_or_else(|| TransitionError::NoTrial(plan.id().clone()))?;
        let trial_end = now.saturating_add(trial);
        let calendar = Period::starting(now, AnchorDay::of(now), plan.spec().interval)
            .ok_or(TransitionError::TimeOutOfRange)?;
        let period = Period {
            start: now,
            end: calendar.end.min(trial_end),
        };
        let mut sub = Subscription::blank(plan, period, payment_method);
        sub.state = State::Trialing;
        sub.trial_end = Some(trial_end);
        Ok(Transition {
            subscription: sub,
            effects: Vec::new(),
        })
    }

    /// Starts paying for the plan at `now`, without a trial.
    pub fn start(
        plan: &Plan,
        now: UnixNanos,
        payment_method: PaymentMethod,
    ) -> Result<Transition, TransitionError> {
        let placeholder = Period {
            start: now,
            end: now.saturating_add(1),
        };
        let mut change = Change::new(Subscription::blank(plan, placeholder, payment_method), plan);
        change.require_payment_method()?;
        change.start_paid_period(now)?;
        Ok(change.finish())
    }

    /// Applies `event` at `now`.
    pub fn apply(
        &self,
        plan: &Plan,
        event: Event,
        now: UnixNanos,
    ) -> Result<Transition, TransitionError> {
        if &self.plan != plan.id() {
            return Err(TransitionError::PlanMismatch {
                subscription: self.plan.clone(),
                given: plan.id().clone(),
            });
        }
        let mut change = Change::new(self.clone(), plan);
        change.advance_to(now);
        match event {
            Event::Activate => change.activate(now)?,
            Event::PaymentMethodAttached => change.attach(),
            Event::PaymentMethodDetached => change.sub.payment_method = PaymentMethod::Missing,
            Event::InvoicePaid => change.invoice_paid(now)?,
            Event::PaymentFailed => change.payment_failed(now)?,
            Event::Cancel(at) => change.cancel(now, at)?,
            Event::Tick => {}
        }
        change.advance_to(now);
        Ok(change.finish())
    }

    /// Starts paying: from a trial (which ends now), an expired
    /// subscription (a new period from now), or a canceled one (resumed).
    /// Needs a payment method unless the plan is free.
    pub fn activate(&self, plan: &Plan, now: UnixNanos) -> Result<Transition, TransitionError> {
        self.apply(plan, Event::Activate, now)
    }

    /// A payment method was added; a failed invoice is retried with it.
    pub fn payment_method_attached(
        &self,
        plan: &Plan,
        now: UnixNanos,
    ) -> Result<Transition, TransitionError> {
        self.apply(plan, Event::PaymentMethodAttached, now)
    }

    /// The payment method was removed; the subscription runs on until a
    /// payment fails.
    pub fn payment_method_detached(
        &self,
        plan: &Plan,
        now: UnixNanos,
    ) -> Result<Transition, TransitionError> {
        self.apply(plan, Event::PaymentMethodDetached, now)
    }

    /// The open invoice was paid: past due and unpaid become active again;
    /// an unpaid subscription whose period rolled over unbilled renews with
    /// a new period from `now`.
    pub fn invoice_paid(&self, plan: &Plan, now: UnixNanos) -> Result<Transition, TransitionError> {
        self.apply(plan, Event::InvoicePaid, now)
    }

    /// Collecting the open invoice failed: active becomes past due, served
    /// until `now + grace`. A repeated failure does not extend the grace.
    pub fn payment_failed(
        &self,
        plan: &Plan,
        now: UnixNanos,
    ) -> Result<Transition, TransitionError> {
        self.apply(plan, Event::PaymentFailed, now)
    }

    /// The customer canceled, effective `at` the period end or now. An
    /// unpaid subscription, having no service left to run out, ends now.
    pub fn cancel(
        &self,
        plan: &Plan,
        now: UnixNanos,
        at: CancelAt,
    ) -> Result<Transition, TransitionError> {
        self.apply(plan, Event::Cancel(at), now)
    }

    /// Brings the subscription up to `now`: rolls over every period that
    /// ended (invoicing and resetting quotas), ends trials, grace periods
    /// and canceled subscriptions, in the order they fell due.
    pub fn tick(&self, plan: &Plan, now: UnixNanos) -> Result<Transition, TransitionError> {
        self.apply(plan, Event::Tick, now)
    }

    fn blank(plan: &Plan, period: Period, payment_method: PaymentMethod) -> Self {
        Subscription {
            plan: plan.id().clone(),
            state: State::Expired,
            period,
            anchor: AnchorDay::of(period.start),
            trial_end: None,
            grace_until: None,
            payment_method,
            open_invoice: None,
            invoices_issued: 0,
            billed_through: 0,
            usage: Default::default(),
            canceled_at: None,
        }
    }
}

/// A subscription being changed, with the effects gathered so far.
pub(crate) struct Change<'p> {
    pub(crate) sub: Subscription,
    pub(crate) plan: &'p Plan,
    pub(crate) effects: Vec<Effect>,
}

impl<'p> Change<'p> {
    fn new(sub: Subscription, plan: &'p Plan) -> Self {
        Self {
            sub,
            plan,
            effects: Vec::new(),
        }
    }

    fn finish(self) -> Transition {
        Transition {
            subscription: self.sub,
            effects: self.effects,
        }
    }

    fn illegal(&self, event: Event) -> TransitionError {
        TransitionError::Illegal {
            event,
            state: self.sub.state,
        }
    }

    fn require_payment_method(&self) -> Result<(), TransitionError> {
        match (self.sub.payment_method, self.plan.is_free()) {
            (PaymentMethod::Missing, false) => Err(TransitionError::PaymentMethodRequired),
            _ => Ok(()),
        }
    }

    fn activate(&mut self, now: UnixNanos) -> Result<(), TransitionError> {
        match self.sub.state {
            State::Active | State::PastDue | State::Unpaid => Err(self.illegal(Event::Activate)),
            State::Canceled if self.sub.current_period_billed() => {
                self.require_payment_method()?;
                self.resume();
                Ok(())
            }
            State::Trialing | State::Canceled | State::Expired => {
                if let (Some(_), Some(open)) = (self.sub.grace_until, self.sub.open_invoice) {
                    return Err(TransitionError::PaymentOutstanding(open.id));
                }
                self.require_payment_method()?;
                self.start_paid_period(now)
            }
        }
    }

    /// Undoes a cancellation of a paid period, which was already invoiced.
    fn resume(&mut self) {
        self.sub.canceled_at = None;
        self.sub.state = match self.sub.grace_until {
            Some(_) => State::PastDue,
            None => State::Active,
        };
        self.effects.push(Effect::Notify(Notice::Activated));
    }

    /// A new paid period from `now`, invoiced at once; ends a running trial.
    pub(crate) fn start_paid_period(&mut self, now: UnixNanos) -> Result<(), TransitionError> {
        let anchor = AnchorDay::of(now);
        let period = Period::starting(now, anchor, self.plan.spec().interval)
            .ok_or(TransitionError::TimeOutOfRange)?;
        // A trial still running ends now; one that ended stays as it was.
        self.sub.trial_end = self.sub.trial_end.map(|end| end.min(now));
        self.sub.anchor = anchor;
        self.sub.period = period;
        self.sub.state = State::Active;
        self.sub.canceled_at = None;
        self.sub.usage.clear();
        self.effects.push(Effect::ResetQuota { period });
        let line = self.bill(period);
        self.issue(vec![line], now);
        self.effects.push(Effect::Notify(Notice::Activated));
        Ok(())
    }

    /// The subscription line for `period`, which is then paid for.
    pub(crate) fn bill(&mut self, period: Period) -> invoice::InvoiceLine {
        self.sub.billed_through = period.end;
        invoice::subscription_line(self.plan, period)
    }

    pub(crate) fn issue(&mut self, lines: Vec<invoice::InvoiceLine>, at: UnixNanos) {
        if let Some(issued) = invoice::issue(&mut self.sub, self.plan, lines, at) {
            self.effects.push(Effect::IssueInvoice(issued));
        }
    }

    fn attach(&mut self) {
        self.sub.payment_method = PaymentMethod::Attached;
        if let (Some(_), Some(open)) = (self.sub.grace_until, self.sub.open_invoice) {
            self.effects.push(Effect::RetryPayment { invoice: open.id });
        }
    }

    fn invoice_paid(&mut self, now: UnixNanos) -> Result<(), TransitionError> {
        if self.sub.open_invoice.take().is_none() {
            return Err(TransitionError::NoOpenInvoice);
        }
        self.sub.grace_until = None;
        match self.sub.state {
            State::PastDue => {
                self.sub.state = State::Active;
                self.effects.push(Effect::Notify(Notice::Recovered));
            }
            State::Unpaid if self.sub.current_period_billed() => {
                self.sub.state = State::Active;
                self.effects.push(Effect::Notify(Notice::Recovered));
            }
            State::Unpaid => {
                self.effects.push(Effect::Notify(Notice::Recovered));
                self.start_paid_period(now)?;
            }
            State::Trialing | State::Active | State::Canceled | State::Expired => {}
        }
        Ok(())
    }

    fn payment_failed(&mut self, now: UnixNanos) -> Result<(), TransitionError> {
        if self.sub.state == State::Trialing {
            return Err(self.illegal(Event::PaymentFailed));
        }
        let open = self
            .sub
            .open_invoice
            .ok_or(TransitionError::NoOpenInvoice)?;
        let grace_until = *self
            .sub
            .grace_until
            .get_or_insert(now.saturating_add(self.plan.grace_nanos()));
        if self.sub.state == State::Active {
            self.sub.state = State::PastDue;
        }
        self.effects.push(Effect::Notify(Notice::PaymentFailed {
            invoice: open.id,
            grace_until,
        }));
        Ok(())
    }

    fn cancel(&mut self, now: UnixNanos, at: CancelAt) -> Result<(), TransitionError> {
        match (self.sub.state, at) {
            (State::Expired, _) | (State::Canceled, CancelAt::PeriodEnd) => {
                Err(self.illegal(Event::Cancel(at)))
            }
            (State::Unpaid, _) | (_, CancelAt::Now) => {
                self.sub.canceled_at = Some(now);
                let served = Period {
                    start: self.sub.period.start,
                    end: now.max(self.sub.period.start),
                };
                self.end(served, now, Notice::Expired);
                Ok(())
            }
            (State::Trialing | State::Active | State::PastDue, CancelAt::PeriodEnd) => {
                self.sub.state = State::Canceled;
                self.sub.canceled_at = Some(now);
                let ends_at = self.sub.period.end;
                self.effects
                    .push(Effect::Notify(Notice::CancelScheduled { ends_at }));
                Ok(())
            }
        }
    }

    /// Expires the subscription at `at`, invoicing the overage of `served`.
    pub(crate) fn end(&mut self, served: Period, at: UnixNanos, notice: Notice) {
        let lines = invoice::overage_lines(&self.sub, self.plan, served);
        self.issue(lines, at);
        self.sub.usage.clear();
        self.sub.state = State::Expired;
        self.effects.push(Effect::Notify(notice));
    }
}

#[cfg(test)]
mod tests;
