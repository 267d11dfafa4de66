//! A payment rail for tests: it takes the credential `valid`, panics on
//! `panic` (to test that a buggy rail cannot take the gateway down), refuses
//! anything else with a fresh challenge, and charges the held amount for a
//! 2xx.

use faregate_core::{Challenge, Decision, Hold, Offer, Problem, ProblemCode, RailKind};
use faregate_rails::{BoxFuture, Credential, Outcome, Rail, RailRequest, Settlement};

/// A rail that takes the credential `valid`, panics on `panic`, and offers
/// a fixed header.
#[derive(Debug)]
pub struct TestRail(pub RailKind);

impl Rail for TestRail {
    fn kind(&self) -> RailKind {
        self.0
    }

    fn accepts(&self, credential: &Credential) -> bool {
        matches!(credential, Credential::Payment(kind, _) if *kind == self.0)
    }

    fn authorize<'a>(&'a self, req: &'a RailRequest<'a>) -> BoxFuture<'a, Decision> {
        Box::pin(async move {
            match req.credential {
                Credential::Payment(_, v) if v == "panic" => panic!("a bug in a rail"),
                Credential::Payment(_, v) if v == "valid" => Decision::Allow(Hold {
                    rail: Some(self.0),
                    amount: req.price.amount(),
                    reference: 7,
                    headers: Vec::new(),
                }),
                _ => {
                    let mut c = Challenge::new(Problem::new(
                        ProblemCode::PaymentInvalid,
                        "signature does not verify",
                    ));
                    c.offer(self.offer(req).expect("offers"));
                    Decision::PaymentRequired(c)
                }
            }
        })
    }

    fn offer(&self, _req: &RailRequest<'_>) -> Option<Offer> {
        Some(match self.0 {
            RailKind::X402 => Offer {
                rail: self.0,
                headers: vec![("payment-required", "offer-x402".into())],
                accepts: vec![serde_json::json!({"rail": "x402"})],
                members: serde_json::Map::new(),
            },
            _ => Offer {
                rail: self.0,
                headers: vec![("www-authenticate", "Payment offer-credits".into())],
                accepts: Vec::new(),
                members: serde_json::Map::new(),
            },
        })
    }

    fn settle<'a>(&'a self, hold: Hold, outcome: &'a Outcome) -> BoxFuture<'a, Settlement> {
        Box::pin(async move {
            let charged = if (200..300).contains(&outcome.status) {
                hold.amount
            } else {
                None
            };
            Settlement {
                charged,
                headers: Vec::new(),
            }
        })
    }
}
