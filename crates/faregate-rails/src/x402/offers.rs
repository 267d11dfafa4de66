//! What an x402 route offers: its configured tokens priced for one request,
//! the `PaymentRequired` document, and the 402 challenge that carries it.

use std::time::Duration;

use faregate_core::{Challenge, Money, Offer, Problem, ProblemCode, RailKind};
use faregate_x402::wire::{
    PaymentRequired, PaymentRequirements, Resource, SettleResponse, X402_VERSION, encode_header,
};
use serde_json::{Map, Value};

/// `PAYMENT-REQUIRED`.
pub const PAYMENT_REQUIRED: &str = "payment-required";
/// `PAYMENT-RESPONSE`.
pub const PAYMENT_RESPONSE: &str = "payment-response";

/// One token a route can be paid in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenOffer {
    /// CAIP-2 network, `eip155:<chain id>`.
    pub network: String,
    /// The token contract.
    pub asset: String,
    /// The token's EIP-712 domain name (`"USD Coin"`, `"USDC"`).
    pub name: String,
    /// The token's EIP-712 domain version (`"2"`).
    pub version: String,
    /// The token's decimals; the token is taken at par with the route's
    /// currency (a USD stablecoin for a USD price).
    pub decimals: u8,
    /// Who is paid.
    pub pay_to: String,
    /// How long a signed authorization may be good for.
    pub max_timeout_seconds: u64,
}

impl TokenOffer {
    /// The requirements for paying `price` in this token, or `None` when the
    /// price cannot be written exactly in the token's units (or is zero).
    pub fn requirements(&self, price: Money) -> Option<PaymentRequirements> {
        let amount = token_units(price, self.decimals)?;
        let mut extra = Map::new();
        extra.insert("name".into(), Value::from(self.name.clone()));
        extra.insert("version".into(), Value::from(self.version.clone()));
        Some(PaymentRequirements {
            scheme: "exact".to_owned(),
            network: self.network.clone(),
            amount: amount.to_string(),
            asset: self.asset.clone(),
            pay_to: self.pay_to.clone(),
            max_timeout_seconds: self.max_timeout_seconds,
            extra,
        })
    }
}

/// `price` in atomic units of a token with `decimals`, exactly; `None` for
/// zero or a price finer than the token can carry.
pub fn token_units(price: Money, decimals: u8) -> Option<u128> {
    let atomic = u128::from(price.atomic());
    let ours = price.currency().decimals();
    let units = if decimals >= ours {
        atomic.checked_mul(10u128.checked_pow(u32::from(decimals - ours))?)?
    } else {
        let div = 10u128.checked_pow(u32::from(ours - decimals))?;
        (atomic % div == 0).then_some(atomic / div)?
    };
    (units > 0).then_some(units)
}

/// When a route's x402 payments are settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SettleWhen {
    /// After the upstream answered below 400, before the head is sent (the
    /// default: nobody pays for a failure).
    #[default]
    AfterSuccess,
    /// Before forwarding: the payment is final even if the upstream fails.
    BeforeForward,
}

/// What one payment buys on a route beyond the request it pays for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bundle {
    /// Calls included, the paying one among them; `None`: limited by time.
    pub calls: Option<u64>,
    /// How long the access token is good for.
    pub lifetime: Duration,
}

/// A route's x402 settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteX402 {
    /// The tokens it takes, in the order offered.
    pub offers: Vec<TokenOffer>,
    /// When payments settle.
    pub settle: SettleWhen,
    /// `resource.description`.
    pub description: Option<String>,
    /// `resource.mimeType`.
    pub mime_type: Option<String>,
    /// A prepaid bundle sold for one payment, if any.
    pub bundle: Option<Bundle>,
    /// `bazaar` extension `info` (input and output examples), as configured.
    pub bazaar: Option<Value>,
}

impl RouteX402 {
    /// Every offer priced at `price`.
    pub fn requirements(&self, price: Money) -> Vec<PaymentRequirements> {
        self.offers
            .iter()
            .filter_map(|o| o.requirements(price))
            .collect()
    }

    /// The `extensions` member of this route's 402.
    pub fn extensions(&self) -> Map<String, Value> {
        let mut ext = Map::new();
        if let Some(info) = &self.bazaar {
            ext.insert(
                "bazaar".into(),
                serde_json::json!({"info": info, "schema": bazaar_schema()}),
            );
        }
        ext
    }

    /// The `PaymentRequired` document for `url` at `price`, or `None` when
    /// no offer can carry the price.
    pub fn payment_required(
        &self,
        url: &str,
        price: Money,
        error: &str,
    ) -> Option<PaymentRequired> {
        let accepts = self.requirements(price);
        (!accepts.is_empty()).then(|| PaymentRequired {
            x402_version: X402_VERSION,
            error: Some(error.to_owned()),
            resource: Resource {
                url: url.to_owned(),
                description: self.description.clone(),
                mime_type: self.mime_type.clone(),
                other: Map::new(),
            },
            accepts,
            extensions: self.extensions(),
        })
    }
}

/// The JSON schema of the `bazaar` extension's `info` as we fill it.
fn bazaar_schema() -> Value {
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"input": {"type": "object"}, "output": {"type": "object"}},
    })
}

/// The x402 part of a 402: the `PAYMENT-REQUIRED` header, the offers under
/// `accepts`, and the document's other members for the body.
pub fn offer(required: &PaymentRequired) -> Offer {
    let mut members = Map::new();
    members.insert("x402Version".into(), Value::from(required.x402_version));
    if let Ok(resource) = serde_json::to_value(&required.resource) {
        members.insert("resource".into(), resource);
    }
    members.insert(
        "extensions".into(),
        Value::Object(required.extensions.clone()),
    );
    if let Some(error) = &required.error {
        members.insert("error".into(), Value::from(error.clone()));
    }
    Offer {
        rail: RailKind::X402,
        headers: vec![(PAYMENT_REQUIRED, encode_header(required))],
        accepts: required
            .accepts
            .iter()
            .filter_map(|a| serde_json::to_value(a).ok())
            .collect(),
        members,
    }
}

/// A 402 refusing an x402 payment: `code` says why in our terms, `reason`
/// in x402's; a fresh `PAYMENT-REQUIRED` lets the client pay again, and a
/// failed settlement adds its `PAYMENT-RESPONSE`.
pub fn refusal(
    code: ProblemCode,
    reason: &str,
    detail: String,
    required: Option<&PaymentRequired>,
    settled: Option<&SettleResponse>,
) -> Challenge {
    let problem = Problem::new(code, detail).with_extension("reason", Value::from(reason));
    let mut challenge = Challenge::new(problem);
    if let Some(required) = required {
        let mut required = required.clone();
        required.error = Some(reason.to_owned());
        challenge.offer(offer(&required));
    }
    if let Some(settled) = settled {
        challenge.offer(Offer::headers(
            RailKind::X402,
            vec![(PAYMENT_RESPONSE, encode_header(settled))],
        ));
    }
    challenge
}

#[cfg(test)]
mod tests {
    use faregate_core::Currency;

    use super::*;

    fn usdc() -> TokenOffer {
        TokenOffer {
            network: "eip155:84532".into(),
            asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e".into(),
            name: "USDC".into(),
            version: "2".into(),
            decimals: 6,
            pay_to: "0x2096d7C1B2D4D4C84a4F7a3bD7bFAC6B1b2F287C".into(),
            max_timeout_seconds: 60,
        }
    }

    #[test]
    fn a_usd_price_becomes_token_units_exactly_or_not_at_all() {
        let cent = Money::parse_decimal("0.01", Currency::USD).unwrap();
        assert_eq!(token_units(cent, 6), Some(10_000));
        assert_eq!(token_units(cent, 18), Some(10_000_000_000_000_000));
        assert_eq!(token_units(cent, 2), Some(1));
        let fine = Money::parse_decimal("0.001", Currency::USD).unwrap();
        assert_eq!(
            token_units(fine, 2),
            None,
            "a tenth of a cent in a 2-decimal token"
        );
        assert_eq!(token_units(Money::from_atomic(0, Currency::USD), 6), None);
    }

    #[test]
    fn the_payment_required_document_names_the_url_and_the_token_domain() {
        let route = RouteX402 {
            offers: vec![usdc()],
            settle: SettleWhen::AfterSuccess,
            description: Some("weather".into()),
            mime_type: None,
            bundle: None,
            bazaar: Some(serde_json::json!({"input": {"type": "http", "method": "GET"}})),
        };
        let cent = Money::parse_decimal("0.01", Currency::USD).unwrap();
        let doc = route
            .payment_required("http://h/x?q=1", cent, "Payment required")
            .unwrap();
        assert_eq!(doc.resource.url, "http://h/x?q=1");
        assert_eq!(doc.accepts[0].amount, "10000");
        assert_eq!(doc.accepts[0].extra["name"], "USDC");
        assert!(doc.extensions["bazaar"]["info"]["input"].is_object());
        let offer = offer(&doc);
        assert_eq!(offer.headers[0].0, PAYMENT_REQUIRED);
        let back: PaymentRequired =
            faregate_x402::wire::decode_header(&offer.headers[0].1).unwrap();
        assert_eq!(back, doc);
        assert_eq!(offer.members["x402Version"], 2);
    }
}
