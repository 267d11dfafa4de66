//! What a plan sells: a price per period, the routes it includes, included
//! units per route group, and what happens past them. A [`PlanSpec`] is the
//! plan as written; [`Plan::try_new`] checks it and reports every problem at
//! once, so a [`Plan`] is always valid.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use crate::money::{Currency, Money};

use super::calendar::Interval;

/// The longest trial a plan may offer: longer is almost surely a typo.
pub const MAX_TRIAL: Duration = Duration::from_secs(366 * 86_400);
/// The longest grace period a plan may allow after a failed payment.
pub const MAX_GRACE: Duration = Duration::from_secs(90 * 86_400);

/// A plan's stable identifier, as used in config, APIs and `upgrade_plan`
/// actions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlanId(String);

impl PlanId {
    /// The id `id` (checked for emptiness by [`Plan::try_new`]).
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PlanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Units included per period for a group of routes that share one counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    /// The group's name, shown to callers with their remaining units.
    pub group: String,
    /// The routes that draw from this group; each must be one the plan
    /// includes, and in no other group.
    pub routes: Vec<String>,
    /// Units included per period (at least one).
    pub included: u64,
}

/// What happens when a group's included units are used up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overage {
    /// Refuse with `quota_exhausted` until the quota resets.
    HardStop,
    /// Serve, and charge each unit past the quota from prepaid credits.
    FromCredits {
        /// The price of one unit past the quota, in the plan's currency.
        unit_price: Money,
    },
}

/// A plan as written in config or sent to the admin API, not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSpec {
    /// Stable identifier.
    pub id: PlanId,
    /// Human name.
    pub name: String,
    /// Price of one period, charged at the start of each paid period.
    pub price: Money,
    /// How long a period lasts.
    pub interval: Interval,
    /// Length of the free trial, if the plan offers one.
    pub trial: Option<Duration>,
    /// How long a subscription stays served after a failed payment.
    pub grace: Duration,
    /// Every route the plan gives access to.
    pub routes: Vec<String>,
    /// Included units per period, by route group. Routes in no group are
    /// included without limit.
    pub quotas: Vec<Quota>,
    /// What happens past a group's included units.
    pub overage: Overage,
}

/// One thing wrong with a [`PlanSpec`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanProblem {
    /// The id is empty.
    #[error("the plan id is empty")]
    EmptyId,
    /// The name is empty.
    #[error("the plan name is empty")]
    EmptyName,
    /// The plan includes no route.
    #[error("the plan includes no route")]
    NoRoutes,
    /// A route name is empty.
    #[error("a route name is empty")]
    EmptyRoute,
    /// A route is listed twice.
    #[error("route {0:?} is listed twice")]
    DuplicateRoute(String),
    /// The trial is zero or longer than [`MAX_TRIAL`].
    #[error("the trial must last between one second and 366 days")]
    TrialLength,
    /// The grace period is longer than [`MAX_GRACE`].
    #[error("the grace period must not exceed 90 days")]
    GraceLength,
    /// A quota group has no name.
    #[error("a quota group has no name")]
    EmptyGroup,
    /// Two quota groups share a name.
    #[error("quota group {0:?} is defined twice")]
    DuplicateGroup(String),
    /// A quota group lists no route.
    #[error("quota group {0:?} lists no route")]
    GroupWithoutRoutes(String),
    /// A quota group includes no units.
    #[error(
        "quota group {0:?} includes no units; leave its routes out of every group to include them without limit"
    )]
    NothingIncluded(String),
    /// A quota group names a route the plan does not include.
    #[error("quota group {group:?} names route {route:?}, which the plan does not include")]
    RouteNotIncluded {
        /// The group.
        group: String,
        /// The route.
        route: String,
    },
    /// A route draws from two quota groups.
    #[error("route {route:?} is in quota groups {first:?} and {second:?}")]
    RouteInTwoGroups {
        /// The route.
        route: String,
        /// The first group naming it.
        first: String,
        /// The second group naming it.
        second: String,
    },
    /// The overage price is in another currency than the plan's price.
    #[error("the overage unit price is in {overage}, the plan's price in {price}")]
    CurrencyMismatch {
        /// The plan price's currency.
        price: Currency,
        /// The overage unit price's currency.
        overage: Currency,
    },
    /// Overage from credits at a zero unit price would make every quota
    /// unlimited.
    #[error(
        "the overage unit price is zero, which makes every quota unlimited; use hard_stop or a larger quota"
    )]
    FreeOverage,
}

/// A [`PlanSpec`] that failed its checks, with every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plan {id:?} is invalid: {}", list(.problems))]
pub struct InvalidPlan {
    /// The plan's id as written.
    pub id: String,
    /// Everything wrong with it, in the order checked.
    pub problems: Vec<PlanProblem>,
}

fn list(problems: &[PlanProblem]) -> String {
    let texts: Vec<String> = problems.iter().map(ToString::to_string).collect();
    texts.join("; ")
}

/// A checked plan: every route and group name is unique, every quota names
/// included routes, and all money is in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    spec: PlanSpec,
}

impl Plan {
    /// Checks `spec`, reporting every problem at once.
    pub fn try_new(spec: PlanSpec) -> Result<Self, InvalidPlan> {
        let problems = problems(&spec);
        if problems.is_empty() {
            Ok(Self { spec })
        } else {
            Err(InvalidPlan {
                id: spec.id.0,
                problems,
            })
        }
    }

    /// The plan as written.
    pub fn spec(&self) -> &PlanSpec {
        &self.spec
    }

    /// The plan's id.
    pub fn id(&self) -> &PlanId {
        &self.spec.id
    }

    /// Whether the plan gives access to `route`.
    pub fn includes(&self, route: &str) -> bool {
        self.spec.routes.iter().any(|r| r == route)
    }

    /// The quota `route` draws from, if it is metered.
    pub fn quota_for_route(&self, route: &str) -> Option<&Quota> {
        self.spec
            .quotas
            .iter()
            .find(|q| q.routes.iter().any(|r| r == route))
    }

    /// The quota group named `group`.
    pub fn quota(&self, group: &str) -> Option<&Quota> {
        self.spec.quotas.iter().find(|q| q.group == group)
    }

    /// Whether a period costs nothing (no payment method is needed).
    pub fn is_free(&self) -> bool {
        self.spec.price.is_zero()
    }

    /// The trial length in nanoseconds, if any.
    pub(crate) fn trial_nanos(&self) -> Option<u64> {
        self.spec.trial.map(nanos)
    }

    /// The grace period in nanoseconds.
    pub(crate) fn grace_nanos(&self) -> u64 {
        nanos(self.spec.grace)
    }
}

/// `d` in nanoseconds, saturating (plans cap durations far below that).
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn problems(spec: &PlanSpec) -> Vec<PlanProblem> {
    let mut found = Vec::new();
    if spec.id.0.trim().is_empty() {
        found.push(PlanProblem::EmptyId);
    }
    if spec.name.trim().is_empty() {
        found.push(PlanProblem::EmptyName);
    }
    check_durations(spec, &mut found);
    check_routes(&spec.routes, &mut found);
    check_quotas(spec, &mut found);
    check_overage(spec, &mut found);
    found
}

fn check_durations(spec: &PlanSpec, found: &mut Vec<PlanProblem>) {
    let min_trial = Duration::from_secs(1);
    if spec
        .trial
        .is_some_and(|t| !(min_trial..=MAX_TRIAL).contains(&t))
    {
        found.push(PlanProblem::TrialLength);
    }
    if spec.grace > MAX_GRACE {
        found.push(PlanProblem::GraceLength);
    }
}

fn check_routes(routes: &[String], found: &mut Vec<PlanProblem>) {
    if routes.is_empty() {
        found.push(PlanProblem::NoRoutes);
    }
    let mut seen = HashSet::new();
    for route in routes {
        if route.is_empty() {
            found.push(PlanProblem::EmptyRoute);
        } else if !seen.insert(route.as_str()) {
            found.push(PlanProblem::DuplicateRoute(route.clone()));
        }
    }
}

fn check_quotas(spec: &PlanSpec, found: &mut Vec<PlanProblem>) {
    let mut groups = HashSet::new();
    let mut owner: Vec<(&str, &str)> = Vec::new();
    for quota in &spec.quotas {
        let group = quota.group.as_str();
        if group.is_empty() {
            found.push(PlanProblem::EmptyGroup);
        } else if !groups.insert(group) {
            found.push(PlanProblem::DuplicateGroup(group.to_owned()));
        }
        if quota.routes.is_empty() {
            found.push(PlanProblem::GroupWithoutRoutes(group.to_owned()));
        }
        if quota.included == 0 {
            found.push(PlanProblem::NothingIncluded(group.to_owned()));
        }
        for route in &quota.routes {
            check_quota_route(spec, group, route, &mut owner, found);
        }
    }
}

fn check_quota_route<'s>(
    spec: &PlanSpec,
    group: &'s str,
    route: &'s str,
    owner: &mut Vec<(&'s str, &'s str)>,
    found: &mut Vec<PlanProblem>,
) {
    if !spec.routes.iter().any(|r| r == route) {
        found.push(PlanProblem::RouteNotIncluded {
            group: group.to_owned(),
            route: route.to_owned(),
        });
    }
    match owner.iter().find(|(r, _)| *r == route) {
        Some((_, first)) if *first == group => {
            found.push(PlanProblem::DuplicateRoute(route.to_owned()));
        }
        Some((_, first)) => found.push(PlanProblem::RouteInTwoGroups {
            route: route.to_owned(),
            first: (*first).to_owned(),
            second: group.to_owned(),
        }),
        None => owner.push((route, group)),
    }
}

fn check_overage(spec: &PlanSpec, found: &mut Vec<PlanProblem>) {
    let Overage::FromCredits { unit_price } = spec.overage else {
        return;
    };
    if unit_price.currency() != spec.price.currency() {
        found.push(PlanProblem::CurrencyMismatch {
            price: spec.price.currency(),
            overage: unit_price.currency(),
        });
    }
    if unit_price.is_zero() {
        found.push(PlanProblem::FreeOverage);
    }
}

#[cfg(test)]
mod tests;
