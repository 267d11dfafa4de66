//! Money as integers: an amount in a currency's atomic unit.
//!
//! USD and the USD stablecoins count in micro-units (6 decimals, the same as
//! USDC on chain); BTC counts in millisatoshis (11 decimals). Config and APIs
//! speak decimal strings (`"0.002 USD"`, `"10 sat"`) that are parsed exactly;
//! there is no floating point anywhere on the way.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What can go wrong turning text into money, or adding it up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The text is not `<decimal> <CURRENCY>`.
    #[error("expected an amount and a currency such as \"0.002 USD\", got {0:?}")]
    Syntax(String),
    /// The currency code is not one faregate knows.
    #[error("unknown currency {0:?} (known: USD, EUR, GBP, USDC, BTC, sat, msat)")]
    UnknownCurrency(String),
    /// More fractional digits than the currency's atomic unit can hold.
    #[error("{amount} has more than {decimals} decimal places for {currency}")]
    TooPrecise {
        /// The amount as written.
        amount: String,
        /// The currency's code.
        currency: &'static str,
        /// How many decimals the currency has.
        decimals: u8,
    },
    /// The amount does not fit in 64 bits of atomic units.
    #[error("amount overflows")]
    Overflow,
    /// Two amounts of different currencies were combined.
    #[error("currency mismatch: {0} and {1}")]
    CurrencyMismatch(&'static str, &'static str),
}

/// A currency and the number of decimals of its atomic unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: &'static str,
    decimals: u8,
}

/// Every currency faregate prices in, with its atomic unit.
const CURRENCIES: &[Currency] = &[
    Currency::new("USD", 6),
    Currency::new("EUR", 6),
    Currency::new("GBP", 6),
    Currency::new("USDC", 6),
    Currency::new("BTC", 11),
];

impl Currency {
    /// US dollars in micro-dollars.
    pub const USD: Currency = Currency::new("USD", 6);
    /// Bitcoin in millisatoshis.
    pub const BTC: Currency = Currency::new("BTC", 11);

    const fn new(code: &'static str, decimals: u8) -> Self {
        Self { code, decimals }
    }

    /// Looks a currency up by its code, ignoring case.
    pub fn from_code(code: &str) -> Result<Self, MoneyError> {
        CURRENCIES
            .iter()
            .find(|c| c.code.eq_ignore_ascii_case(code))
            .copied()
            .ok_or_else(|| MoneyError::UnknownCurrency(code.to_owned()))
    }

    /// The ISO-like code, such as `USD`.
    pub fn code(self) -> &'static str {
        self.code
    }

    /// Decimal places of one atomic unit.
    pub fn decimals(self) -> u8 {
        self.decimals
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code)
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Currency::from_code(&code).map_err(serde::de::Error::custom)
    }
}

/// An amount of money in atomic units of its currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    atomic: u64,
    currency: Currency,
}

impl Money {
    /// `atomic` units of `currency`.
    pub const fn from_atomic(atomic: u64, currency: Currency) -> Self {
        Self { atomic, currency }
    }

    /// Zero in `currency`.
    pub const fn zero(currency: Currency) -> Self {
        Self::from_atomic(0, currency)
    }

    /// The amount in atomic units.
    pub fn atomic(self) -> u64 {
        self.atomic
    }

    /// The currency.
    pub fn currency(self) -> Currency {
        self.currency
    }

    /// Whether the amount is zero.
    pub fn is_zero(self) -> bool {
        self.atomic == 0
    }

    /// `self + other`, refusing overflow and mixed currencies.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let atomic = self
            .atomic
            .checked_add(other.atomic)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::from_atomic(atomic, self.currency))
    }

    /// `self - other`, or `None` when it would go below zero.
    pub fn checked_sub(self, other: Money) -> Result<Option<Money>, MoneyError> {
        self.same_currency(other)?;
        Ok(self
            .atomic
            .checked_sub(other.atomic)
            .map(|a| Money::from_atomic(a, self.currency)))
    }

    /// `self × n`, refusing overflow.
    pub fn checked_mul(self, n: u64) -> Result<Money, MoneyError> {
        let atomic = self.atomic.checked_mul(n).ok_or(MoneyError::Overflow)?;
        Ok(Money::from_atomic(atomic, self.currency))
    }

    fn same_currency(self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch(
                self.currency.code,
                other.currency.code,
            ))
        }
    }

    /// The amount alone as a decimal string, such as `"0.001"`.
    pub fn decimal_string(self) -> String {
        self.decimal().as_str().to_owned()
    }

    /// [`decimal_string`](Self::decimal_string) without allocating.
    pub fn decimal(self) -> Decimal {
        let decimals = usize::from(self.currency.decimals).min(Decimal::MAX_DECIMALS);
        // The digits, right-aligned and zero-padded to at least one whole digit.
        let mut digits = [b'0'; Decimal::MAX_DECIMALS + 21];
        let mut at = digits.len();
        let mut n = self.atomic;
        while n > 0 {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        let start = at.min(digits.len() - decimals - 1);
        let point = digits.len() - decimals;
        let (whole, frac) = (&digits[start..point], &digits[point..]);
        // Keep cents visible for fiat-like currencies, trim the rest.
        let keep = decimals.min(2);
        let trimmed = frac.len() - frac.iter().rev().take_while(|&&d| d == b'0').count();
        let frac = &frac[..trimmed.max(keep)];
        let mut out = Decimal {
            buf: [0; Decimal::MAX_DECIMALS + 22],
            len: 0,
        };
        out.push(whole);
        if !frac.is_empty() {
            out.push(b".");
            out.push(frac);
        }
        out
    }

    /// Parses a decimal amount (no sign, no exponent) in `currency`.
    pub fn parse_decimal(amount: &str, currency: Currency) -> Result<Money, MoneyError> {
        let syntax = || MoneyError::Syntax(amount.to_owned());
        let (whole, frac) = amount.split_once('.').unwrap_or((amount, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(frac) || amount.ends_with('.') {
            return Err(syntax());
        }
        let frac = frac.trim_end_matches('0');
        let decimals = usize::from(currency.decimals);
        if frac.len() > decimals {
            return Err(MoneyError::TooPrecise {
                amount: amount.to_owned(),
                currency: currency.code,
                decimals: currency.decimals,
            });
        }
        let scale = 10u64
            .checked_pow(u32::from(currency.decimals))
            .ok_or(MoneyError::Overflow)?;
        let whole: u64 = whole.parse().map_err(|_| MoneyError::Overflow)?;
        let frac_atomic: u64 = if frac.is_empty() {
            0
        } else {
            let pad =
                10u64.pow(u32::try_from(decimals - frac.len()).map_err(|_| MoneyError::Overflow)?);
            frac.parse::<u64>()
                .map_err(|_| syntax())?
                .checked_mul(pad)
                .ok_or(MoneyError::Overflow)?
        };
        let atomic = whole
            .checked_mul(scale)
            .and_then(|w| w.checked_add(frac_atomic))
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::from_atomic(atomic, currency))
    }
}

impl FromStr for Money {
    type Err = MoneyError;

    /// Parses `"<decimal> <CURRENCY>"`; `sat` and `msat` are BTC units.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split_whitespace();
        let (Some(amount), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(MoneyError::Syntax(s.to_owned()));
        };
        let sub_unit = match unit {
            "sat" | "sats" => Some(1_000),
            "msat" => Some(1),
            _ => None,
        };
        match sub_unit {
            Some(factor) => {
                let n = Money::parse_decimal(amount, Currency::new("msat", 0))
                    .map_err(|_| MoneyError::Syntax(s.to_owned()))?;
                Ok(Money::from_atomic(n.atomic, Currency::BTC).checked_mul(factor)?)
            }
            None => Money::parse_decimal(amount, Currency::from_code(unit)?),
        }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.decimal().as_str(), self.currency)
    }
}

/// An amount as a decimal string, held on the stack.
#[derive(Clone, Copy)]
pub struct Decimal {
    buf: [u8; Decimal::MAX_DECIMALS + 22],
    len: usize,
}

impl Decimal {
    /// The most decimals a currency is written with.
    const MAX_DECIMALS: usize = 24;

    fn push(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and a point were written.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("0")
    }
}

impl fmt::Debug for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What a request costs before anything is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Price {
    /// Nothing.
    Free,
    /// A fixed amount per call.
    Fixed(Money),
}

impl Price {
    /// The amount, or `None` when free.
    pub fn amount(self) -> Option<Money> {
        match self {
            Price::Free => None,
            Price::Fixed(m) if m.is_zero() => None,
            Price::Fixed(m) => Some(m),
        }
    }
}

impl FromStr for Price {
    type Err = MoneyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case("free") {
            Ok(Price::Free)
        } else {
            s.parse().map(Price::Fixed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_decimal_strings_exactly() {
        let m: Money = "0.001 USD".parse().unwrap();
        assert_eq!(m.atomic(), 1_000);
        assert_eq!(m.currency(), Currency::USD);
        assert_eq!(
            "10 sat".parse::<Money>().unwrap(),
            Money::from_atomic(10_000, Currency::BTC)
        );
        assert_eq!("5 usd".parse::<Money>().unwrap().atomic(), 5_000_000);
        assert_eq!("0.1000000 USD".parse::<Money>().unwrap().atomic(), 100_000);
    }

    #[test]
    fn refuses_what_is_not_money() {
        for bad in [
            "", "1", "USD", "-1 USD", "1e3 USD", "1. USD", ".5 USD", "1,5 USD", "1 USD x",
            "0.5 sat",
        ] {
            assert!(bad.parse::<Money>().is_err(), "{bad:?} parsed");
        }
        assert!(matches!(
            "0.0000001 USD".parse::<Money>(),
            Err(MoneyError::TooPrecise { .. })
        ));
        assert!(matches!(
            "1 DOGE".parse::<Money>(),
            Err(MoneyError::UnknownCurrency(_))
        ));
        assert_eq!(
            "99999999999999999999 USD".parse::<Money>(),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn formats_as_decimal_strings() {
        assert_eq!(
            Money::from_atomic(1_000, Currency::USD).to_string(),
            "0.001 USD"
        );
        assert_eq!(
            Money::from_atomic(10_000_000, Currency::USD).to_string(),
            "10.00 USD"
        );
        assert_eq!(
            Money::from_atomic(0, Currency::USD).decimal_string(),
            "0.00"
        );
        assert_eq!(
            Money::from_atomic(1, Currency::USD).decimal_string(),
            "0.000001"
        );
    }

    #[test]
    fn arithmetic_is_checked() {
        let a = Money::from_atomic(u64::MAX, Currency::USD);
        assert_eq!(
            a.checked_add(Money::from_atomic(1, Currency::USD)),
            Err(MoneyError::Overflow)
        );
        let usd = Money::from_atomic(1, Currency::USD);
        assert!(
            usd.checked_add(Money::from_atomic(1, Currency::BTC))
                .is_err()
        );
        assert_eq!(
            usd.checked_sub(Money::from_atomic(2, Currency::USD)),
            Ok(None)
        );
    }

    #[test]
    fn price_free_or_fixed() {
        assert_eq!("free".parse::<Price>().unwrap(), Price::Free);
        assert_eq!(
            "0.001 USD"
                .parse::<Price>()
                .unwrap()
                .amount()
                .unwrap()
                .atomic(),
            1_000
        );
        assert_eq!("0 USD".parse::<Price>().unwrap().amount(), None);
    }

    proptest! {
        #[test]
        fn display_then_parse_is_identity(atomic in any::<u64>()) {
            let m = Money::from_atomic(atomic, Currency::USD);
            prop_assert_eq!(m.to_string().parse::<Money>().unwrap(), m);
        }

        #[test]
        fn decimals_are_written_as_printf_would(atomic in any::<u64>(), decimals in 0u8..=18) {
            let currency = Currency::new("TST", decimals);
            let d = usize::from(decimals);
            // The plain way: pad, split, trim to at least cents.
            let digits = format!("{atomic:0>width$}", width = d + 1);
            let (whole, frac) = digits.split_at(digits.len() - d);
            let trimmed = frac.trim_end_matches('0');
            let frac = if trimmed.len() >= d.min(2) { trimmed } else { &frac[..d.min(2)] };
            let want = if frac.is_empty() { whole.to_owned() } else { format!("{whole}.{frac}") };
            let got = Money::from_atomic(atomic, currency).decimal();
            prop_assert_eq!(got.as_str(), want);
        }
    }
}
