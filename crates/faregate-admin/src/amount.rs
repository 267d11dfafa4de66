//! Money at the API's edge: amounts are read as decimal strings (never JSON
//! numbers, which clients turn into floats) and written as decimal strings
//! with every decimal of the currency (`"5.000000"` for USD), so that a
//! program can compare them as text and a replayed answer is byte-identical.

use faregate_core::{Currency, Money};
use serde_json::Value;

use crate::problem::{Code, Problem};

/// `money` with all of its currency's decimals: `"0.001000"`.
pub(crate) fn fixed(money: Money) -> String {
    let decimals = usize::from(money.currency().decimals());
    let digits = format!("{:0>width$}", money.atomic(), width = decimals + 1);
    let (whole, frac) = digits.split_at(digits.len() - decimals);
    if frac.is_empty() {
        whole.to_owned()
    } else {
        format!("{whole}.{frac}")
    }
}

/// A signed ledger amount (atomic units) as a decimal string, `-` first
/// when negative.
pub(crate) fn signed(atomic: i64, currency: Currency) -> String {
    let text = fixed(Money::from_atomic(atomic.unsigned_abs(), currency));
    if atomic < 0 { format!("-{text}") } else { text }
}

/// A currency code the gateway knows.
pub(crate) fn currency(code: &str) -> Result<Currency, Problem> {
    Currency::from_code(code).map_err(|e| Problem::new(Code::InvalidCurrency, e.to_string()))
}

/// A positive amount of `currency`, given as a decimal string, that the
/// ledger can hold (at most 2^63 - 1 atomic units).
pub(crate) fn positive(value: &Value, currency: Currency) -> Result<Money, Problem> {
    let invalid = |detail: String| Problem::new(Code::InvalidAmount, detail);
    let Value::String(text) = value else {
        return Err(invalid(format!(
            "amount must be a decimal string such as \"5.00\", not {}",
            json_kind(value)
        )));
    };
    let money = Money::parse_decimal(text, currency).map_err(|e| invalid(e.to_string()))?;
    if money.is_zero() {
        return Err(invalid("amount must be greater than zero".into()));
    }
    if i64::try_from(money.atomic()).is_err() {
        return Err(invalid(format!(
            "{text} {} is more than the ledger can hold",
            currency.code()
        )));
    }
    Ok(money)
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a JSON number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const USD: Currency = Currency::USD;

    #[test]
    fn formats_every_decimal() {
        assert_eq!(fixed(Money::zero(USD)), "0.000000");
        assert_eq!(fixed(Money::from_atomic(1_000, USD)), "0.001000");
        assert_eq!(fixed(Money::from_atomic(5_000_000, USD)), "5.000000");
        assert_eq!(fixed(Money::from_atomic(1, Currency::BTC)), "0.00000000001");
        assert_eq!(signed(-1_000, USD), "-0.001000");
        assert_eq!(signed(i64::MIN, USD), "-9223372036854.775808");
        assert_eq!(signed(0, USD), "0.000000");
    }

    #[test]
    fn reads_positive_decimal_strings_only() {
        assert_eq!(positive(&json!("5.00"), USD).unwrap().atomic(), 5_000_000);
        assert_eq!(positive(&json!("0.000001"), USD).unwrap().atomic(), 1);
        assert_eq!(
            positive(&json!("9223372036854.775807"), USD)
                .unwrap()
                .atomic(),
            i64::MAX as u64
        );
        for bad in [
            json!("-5"),
            json!("0"),
            json!("0.000000"),
            json!("1e3"),
            json!("abc"),
            json!("5.0000001"),
            json!(""),
            json!(" 5"),
            json!("+5"),
            json!("9223372036854.775808"),
            json!("99999999999999999999"),
            json!(5),
            json!(5.5),
            json!(null),
            json!(["5"]),
        ] {
            let e = positive(&bad, USD).unwrap_err();
            assert_eq!(e.code, Code::InvalidAmount, "{bad}");
        }
    }

    #[test]
    fn unknown_currencies_are_refused() {
        assert_eq!(currency("usd").unwrap(), USD);
        assert_eq!(currency("XYZ").unwrap_err().code, Code::InvalidCurrency);
    }
}
