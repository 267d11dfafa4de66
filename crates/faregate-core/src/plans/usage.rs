//! Recording what a subscriber used, apart from admitting it, so the gateway
//! can reserve units when it admits a request and give them back when the
//! upstream fails; and the 80 % / 100 % thresholds reported once a period.

use super::plan::{Plan, PlanId};
use super::subscription::Subscription;

/// A share of a group's included units worth telling the customer about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuotaThreshold {
    /// 80 % of the included units are used.
    Percent80,
    /// All included units are used.
    Percent100,
}

impl QuotaThreshold {
    /// Every threshold, lowest first.
    pub const ALL: [QuotaThreshold; 2] = [Self::Percent80, Self::Percent100];

    /// The share in percent.
    pub fn percent(self) -> u8 {
        match self {
            Self::Percent80 => 80,
            Self::Percent100 => 100,
        }
    }

    /// Whether `used` of `included` units reach this threshold.
    pub fn reached(self, used: u64, included: u64) -> bool {
        u128::from(used) * 100 >= u128::from(included) * u128::from(self.percent())
    }

    /// The thresholds reached at `used` units and not yet reported (above
    /// `notified`), lowest first. Usage only grows within a period, so with
    /// `notified` kept per period each is reported exactly once.
    pub fn newly_reached(
        notified: Option<QuotaThreshold>,
        used: u64,
        included: u64,
    ) -> impl Iterator<Item = QuotaThreshold> {
        Self::ALL
            .into_iter()
            .filter(move |t| Some(*t) > notified && t.reached(used, included))
    }
}

/// What [`Subscription::record`] counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Units that fell past the included quota: to charge from credits on a
    /// `FromCredits` plan (the admission already said how many); on a
    /// `HardStop` plan they are counted but never charged.
    pub overage_units: u64,
    /// Thresholds crossed by this record, to notify the customer of; each
    /// is reported once per period.
    pub crossed: Vec<QuotaThreshold>,
}

/// Why usage could not be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The plan given is not the subscription's.
    #[error("subscription is on plan {subscription}, not {given}")]
    PlanMismatch {
        /// The subscription's plan.
        subscription: PlanId,
        /// The plan passed in.
        given: PlanId,
    },
    /// The plan has no quota group of that name.
    #[error("plan has no quota group {0:?}")]
    UnknownGroup(String),
}

impl Subscription {
    /// Counts `units` used in quota `group` this period: included units
    /// first, the rest as overage. Call it for what [`admit`](super::admit)
    /// served, after it or in place of a reservation; call
    /// [`release`](Self::release) to give back what was not used.
    pub fn record(
        &mut self,
        plan: &Plan,
        group: &str,
        units: u64,
    ) -> Result<Recorded, RecordError> {
        if &self.plan != plan.id() {
            return Err(RecordError::PlanMismatch {
                subscription: self.plan.clone(),
                given: plan.id().clone(),
            });
        }
        let quota = plan
            .quota(group)
            .ok_or_else(|| RecordError::UnknownGroup(group.to_owned()))?;
        let used = self.usage.entry(group.to_owned()).or_default();
        let room = quota.included.saturating_sub(used.included);
        let included = units.min(room);
        let overage_units = units - included;
        used.included += included;
        used.overage = used.overage.saturating_add(overage_units);
        let crossed: Vec<QuotaThreshold> =
            QuotaThreshold::newly_reached(used.notified, used.total(), quota.included).collect();
        if let Some(highest) = crossed.last() {
            used.notified = Some(*highest);
        }
        Ok(Recorded {
            overage_units,
            crossed,
        })
    }

    /// Gives back up to `units` recorded in `group` this period, overage
    /// first; returns how many were given back. Thresholds already reported
    /// stay reported. A reservation made before a period rolled over is
    /// gone with its period: releasing it then gives back units of the new
    /// period (in the customer's favour), so release promptly.
    pub fn release(&mut self, group: &str, units: u64) -> u64 {
        let Some(used) = self.usage.get_mut(group) else {
            return 0;
        };
        let from_overage = units.min(used.overage);
        used.overage -= from_overage;
        let from_included = (units - from_overage).min(used.included);
        used.included -= from_included;
        from_overage + from_included
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plans::fixtures::{T0, basic_plan, metered_plan, trialing};

    #[test]
    fn thresholds_are_reported_once_per_period() {
        let plan = basic_plan();
        let mut sub = trialing(&plan, T0);
        let crossed = |sub: &mut Subscription, units| sub.record(&plan, "calls", units).unwrap();
        assert!(crossed(&mut sub, 79).crossed.is_empty());
        assert_eq!(crossed(&mut sub, 1).crossed, [QuotaThreshold::Percent80]);
        assert!(crossed(&mut sub, 1).crossed.is_empty());
        sub.release("calls", 5);
        assert!(crossed(&mut sub, 5).crossed.is_empty(), "no second 80 %");
        assert_eq!(crossed(&mut sub, 19).crossed, [QuotaThreshold::Percent100]);
        assert!(crossed(&mut sub, 1).crossed.is_empty());
    }

    #[test]
    fn one_big_record_reports_both_thresholds() {
        let plan = basic_plan();
        let mut sub = trialing(&plan, T0);
        let recorded = sub.record(&plan, "calls", 150).unwrap();
        assert_eq!(recorded.crossed, QuotaThreshold::ALL);
        assert_eq!(recorded.overage_units, 50);
        assert_eq!(sub.usage_of("calls").included, 100);
        assert_eq!(sub.usage_of("calls").overage, 50);
    }

    #[test]
    fn release_gives_back_overage_first() {
        let plan = metered_plan();
        let mut sub = trialing(&plan, T0);
        sub.record(&plan, "calls", 103).unwrap();
        assert_eq!(sub.release("calls", 5), 5);
        assert_eq!(sub.usage_of("calls").included, 98);
        assert_eq!(sub.usage_of("calls").overage, 0);
        assert_eq!(sub.release("calls", 1_000), 98);
        assert_eq!(sub.release("nothing", 1), 0);
    }

    #[test]
    fn refuses_unknown_groups_and_other_plans() {
        let plan = basic_plan();
        let mut sub = trialing(&plan, T0);
        assert_eq!(
            sub.record(&plan, "bulk", 1),
            Err(RecordError::UnknownGroup("bulk".into()))
        );
        assert!(matches!(
            sub.record(&metered_plan(), "calls", 1),
            Err(RecordError::PlanMismatch { .. })
        ));
    }

    #[test]
    fn threshold_arithmetic_does_not_overflow() {
        assert!(QuotaThreshold::Percent80.reached(u64::MAX, u64::MAX));
        assert!(!QuotaThreshold::Percent100.reached(u64::MAX - 1, u64::MAX));
        assert!(QuotaThreshold::Percent80.reached(4, 5));
        assert!(!QuotaThreshold::Percent80.reached(3, 5));
    }
}
