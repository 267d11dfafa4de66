use super::*;
use crate::plans::fixtures::{basic_plan, basic_spec, metered_plan, usd};

#[test]
fn a_valid_plan_answers_what_it_includes() {
    let plan = basic_plan();
    assert_eq!(plan.id().as_str(), "basic");
    assert!(plan.includes("search") && plan.includes("status"));
    assert!(!plan.includes("export"));
    assert_eq!(plan.quota_for_route("summarize").unwrap().group, "calls");
    assert!(plan.quota_for_route("status").is_none(), "unmetered");
    assert_eq!(plan.quota("calls").unwrap().included, 100);
    assert!(!plan.is_free());
    assert_eq!(plan.trial_nanos(), Some(14 * 86_400 * 1_000_000_000));
    assert!(metered_plan().spec().overage != Overage::HardStop);
}

#[test]
fn reports_every_problem_at_once() {
    let spec = PlanSpec {
        id: PlanId::new(" "),
        name: String::new(),
        trial: Some(Duration::ZERO),
        grace: MAX_GRACE + Duration::from_secs(1),
        routes: vec!["search".into(), "search".into(), String::new()],
        quotas: vec![
            Quota {
                group: "calls".into(),
                routes: vec!["search".into(), "export".into()],
                included: 0,
            },
            Quota {
                group: "calls".into(),
                routes: vec!["search".into()],
                included: 5,
            },
            Quota {
                group: String::new(),
                routes: vec![],
                included: 5,
            },
        ],
        overage: Overage::FromCredits {
            unit_price: Money::zero(Currency::BTC),
        },
        ..basic_spec()
    };
    let err = Plan::try_new(spec).unwrap_err();
    assert_eq!(
        err.problems,
        [
            PlanProblem::EmptyId,
            PlanProblem::EmptyName,
            PlanProblem::TrialLength,
            PlanProblem::GraceLength,
            PlanProblem::DuplicateRoute("search".into()),
            PlanProblem::EmptyRoute,
            PlanProblem::NothingIncluded("calls".into()),
            PlanProblem::RouteNotIncluded {
                group: "calls".into(),
                route: "export".into()
            },
            PlanProblem::DuplicateGroup("calls".into()),
            PlanProblem::DuplicateRoute("search".into()),
            PlanProblem::EmptyGroup,
            PlanProblem::GroupWithoutRoutes(String::new()),
            PlanProblem::CurrencyMismatch {
                price: Currency::USD,
                overage: Currency::BTC
            },
            PlanProblem::FreeOverage,
        ]
    );
    let text = err.to_string();
    assert!(text.starts_with("plan \" \" is invalid: the plan id is empty; "));
    assert!(text.contains("the overage unit price is in BTC, the plan's price in USD"));
}

#[test]
fn a_route_in_two_groups_names_both() {
    let mut spec = basic_spec();
    spec.quotas.push(Quota {
        group: "more".into(),
        routes: vec!["search".into()],
        included: 1,
    });
    assert_eq!(
        Plan::try_new(spec).unwrap_err().problems,
        [PlanProblem::RouteInTwoGroups {
            route: "search".into(),
            first: "calls".into(),
            second: "more".into(),
        }]
    );
}

#[test]
fn needs_routes_and_a_sane_trial() {
    let mut spec = basic_spec();
    spec.routes.clear();
    spec.quotas.clear();
    spec.trial = Some(MAX_TRIAL + Duration::from_secs(1));
    assert_eq!(
        Plan::try_new(spec).unwrap_err().problems,
        [PlanProblem::TrialLength, PlanProblem::NoRoutes]
    );
    let mut free = basic_spec();
    free.price = usd(0);
    free.trial = None;
    assert!(Plan::try_new(free).unwrap().is_free());
}
