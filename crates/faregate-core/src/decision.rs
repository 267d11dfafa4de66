//! What `authorize` decides. A refusal that money would fix is a
//! [`Decision::PaymentRequired`], never an error; everything else that stops
//! a request is a [`Decision::Deny`] with its problem.

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::money::Money;
use crate::problem::Problem;

/// The payment rails faregate knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RailKind {
    /// Prepaid account credit.
    Credits,
    /// Subscription plans with included quota.
    Plans,
    /// x402 v2, EIP-3009 transfers on EVM chains.
    X402,
    /// L402: macaroon plus Lightning invoice.
    L402,
    /// MPP: the `Payment` HTTP authentication scheme.
    Mpp,
}

impl RailKind {
    /// Every rail, in the order a 402 lists them.
    pub const ALL: [RailKind; 5] = [
        Self::Credits,
        Self::Plans,
        Self::X402,
        Self::L402,
        Self::Mpp,
    ];

    /// The name used in config and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            RailKind::Credits => "credits",
            RailKind::Plans => "plans",
            RailKind::X402 => "x402",
            RailKind::L402 => "l402",
            RailKind::Mpp => "mpp",
        }
    }
}

impl fmt::Display for RailKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RailKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RailKind::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown rail {s:?} (known: credits, plans, x402, l402, mpp)"))
    }
}

/// Which outcomes of a request a route charges for. The gateway's own
/// 502/503/504 (and any response it made itself) are never charged, whatever
/// the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChargePolicy {
    /// Only 2xx answers from the upstream (the default).
    #[default]
    Success,
    /// Any upstream answer below 500.
    NonServerError,
    /// Every upstream answer.
    Always,
}

impl ChargePolicy {
    /// Parses the config word: `2xx`, `non_5xx` or `always`.
    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "2xx" => Some(Self::Success),
            "non_5xx" => Some(Self::NonServerError),
            "always" => Some(Self::Always),
            _ => None,
        }
    }

    /// Whether a response with `status` is charged; `from_upstream` is
    /// false for what the gateway answered itself.
    pub fn charges(self, status: u16, from_upstream: bool) -> bool {
        from_upstream
            && match self {
                ChargePolicy::Success => (200..300).contains(&status),
                ChargePolicy::NonServerError => status < 500,
                ChargePolicy::Always => true,
            }
    }
}

/// Money or quota set aside for a request before the upstream is called.
/// The rail that made it turns it into the final charge when the outcome is
/// known, or releases it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// The rail that holds something, or `None` when nothing is held.
    pub rail: Option<RailKind>,
    /// The amount set aside.
    pub amount: Option<Money>,
    /// The rail's own handle for the reservation.
    pub reference: u64,
    /// Headers the rail adds to the served response (a subscriber's
    /// remaining quota, a grace-period warning).
    pub headers: Vec<(&'static str, String)>,
}

impl Hold {
    /// Nothing held: a free route, or a caller who pays nothing here.
    pub const NONE: Hold = Hold {
        rail: None,
        amount: None,
        reference: 0,
        headers: Vec::new(),
    };
}

/// One rail's part of a 402: the headers it adds and its `accepts` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    /// Which rail offers this.
    pub rail: RailKind,
    /// Response headers, such as `PAYMENT-REQUIRED` or `WWW-Authenticate`.
    /// Several entries with the same name are all sent, in order.
    pub headers: Vec<(&'static str, String)>,
    /// The machine-readable offers listed under `accepts` in the body.
    pub accepts: Vec<Value>,
    /// Members the rail adds to the body beside the problem's own (x402
    /// puts its `PaymentRequired` members there: `x402Version`,
    /// `resource`, `extensions`).
    pub members: Map<String, Value>,
}

impl Offer {
    /// An offer of headers only.
    pub fn headers(rail: RailKind, headers: Vec<(&'static str, String)>) -> Self {
        Self {
            rail,
            headers,
            accepts: Vec::new(),
            members: Map::new(),
        }
    }
}

/// A 402: the problem saying why, and every rail's offer at once.
#[derive(Debug, Clone, PartialEq)]
pub struct Challenge {
    /// Why payment is required, with price, balance and actions.
    pub problem: Problem,
    /// What each enabled per-request rail offers.
    pub offers: Vec<Offer>,
}

impl Challenge {
    /// A challenge for `problem` with no per-request offers yet.
    pub fn new(problem: Problem) -> Self {
        Self {
            problem,
            offers: Vec::new(),
        }
    }

    /// Adds one rail's offer, listing it under `accepts` too.
    pub fn offer(&mut self, offer: Offer) {
        self.problem.accepts.extend(offer.accepts.iter().cloned());
        for (k, v) in &offer.members {
            self.problem
                .extensions
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
        self.offers.push(offer);
    }

    /// Every header the offers add, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.offers
            .iter()
            .flat_map(|o| o.headers.iter().map(|(n, v)| (*n, v.as_str())))
    }
}

/// The outcome of `authorize`.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Forward the request; the hold is settled afterwards.
    Allow(Hold),
    /// Paying would fix it: answer 402 with the challenge.
    PaymentRequired(Challenge),
    /// Refused for a reason money does not fix (or a malformed request).
    Deny(Problem),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::ProblemCode;

    #[test]
    fn a_challenge_carries_every_rails_headers_and_accepts() {
        let mut c = Challenge::new(Problem::from_code(ProblemCode::PaymentRequired));
        c.offer(Offer {
            rail: RailKind::X402,
            headers: vec![("payment-required", "eyJ4".into())],
            accepts: vec![serde_json::json!({"scheme": "exact"})],
            members: Map::from_iter([("x402Version".to_owned(), Value::from(2))]),
        });
        c.offer(Offer {
            rail: RailKind::L402,
            headers: vec![
                ("www-authenticate", "LSAT a".into()),
                ("www-authenticate", "L402 a".into()),
            ],
            accepts: Vec::new(),
            members: Map::new(),
        });
        let headers: Vec<_> = c.headers().collect();
        assert_eq!(headers.len(), 3);
        assert_eq!(headers[1], ("www-authenticate", "LSAT a"));
        assert_eq!(c.problem.accepts.len(), 1);
        assert_eq!(c.problem.extensions["x402Version"], 2);
    }

    #[test]
    fn charge_policies_never_charge_the_gateways_own_answers() {
        use ChargePolicy::*;
        for p in [Success, NonServerError, Always] {
            assert!(!p.charges(502, false) && !p.charges(504, false) && !p.charges(200, false));
        }
        assert!(Success.charges(204, true) && !Success.charges(404, true));
        assert!(NonServerError.charges(404, true) && !NonServerError.charges(500, true));
        assert!(Always.charges(503, true));
        assert_eq!(ChargePolicy::parse("non_5xx"), Some(NonServerError));
        assert_eq!(ChargePolicy::parse("4xx"), None);
    }

    #[test]
    fn rail_names_round_trip() {
        for r in RailKind::ALL {
            assert_eq!(r.as_str().parse::<RailKind>().unwrap(), r);
        }
        assert!("paypal".parse::<RailKind>().is_err());
    }
}
