//! Token prices and what a request's usage costs, in exact integers.
//!
//! Providers publish prices per million tokens as decimals ("2.50 USD per 1M
//! input tokens"), which makes one token cost a fraction of the currency's
//! atomic unit (0.0000025 USD = 2.5 micro-dollars). A [`Rate`] therefore keeps
//! the per-million price in *sub-atomic* units, [`SUB_ATOMIC_DECIMALS`] more
//! decimals than the currency has, and [`cost`] sums `tokens × rate` exactly
//! in `u128` before rounding up to the atomic unit **once per request**. No
//! float is involved anywhere.

use faregate_core::{Currency, Money};

/// How many decimals finer than the currency's atomic unit a rate may be.
pub const SUB_ATOMIC_DECIMALS: u32 = 6;

/// Tokens per priced unit: prices are quoted per million tokens.
const TOKENS_PER_QUOTE: u128 = 1_000_000;

/// Sub-atomic units per atomic unit.
const SUB_PER_ATOMIC: u128 = 1_000_000;

/// What a request's exact cost is divided by to give atomic units.
const DIVISOR: u128 = TOKENS_PER_QUOTE * SUB_PER_ATOMIC;

/// What can go wrong parsing a price or costing usage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    /// The price is not a plain non-negative decimal such as `2.50`.
    #[error("expected a price per million tokens such as \"2.50\", got {0:?}")]
    Syntax(String),
    /// More decimals than a rate in this currency can hold.
    #[error("{amount} has more than {max} decimal places for {currency}")]
    TooPrecise {
        /// The price as written.
        amount: String,
        /// The currency's code.
        currency: &'static str,
        /// The most decimals allowed.
        max: u32,
    },
    /// The price or the cost does not fit.
    #[error("price or cost overflows")]
    Overflow,
}

/// A price per million tokens, in sub-atomic units of some currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Rate {
    sub_per_million: u128,
}

impl Rate {
    /// Free.
    pub const ZERO: Rate = Rate { sub_per_million: 0 };

    /// Parses a per-million-token price such as `"2.50"` or `"0.075"` in
    /// `currency`, exactly; up to the currency's decimals plus
    /// [`SUB_ATOMIC_DECIMALS`] fractional digits.
    pub fn parse(text: &str, currency: Currency) -> Result<Rate, PriceError> {
        let syntax = || PriceError::Syntax(text.to_owned());
        let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(frac) || text.ends_with('.') {
            return Err(syntax());
        }
        let frac = frac.trim_end_matches('0');
        let max = u32::from(currency.decimals()) + SUB_ATOMIC_DECIMALS;
        let frac_len = u32::try_from(frac.len()).map_err(|_| PriceError::Overflow)?;
        if frac_len > max {
            return Err(PriceError::TooPrecise {
                amount: text.to_owned(),
                currency: currency.code(),
                max,
            });
        }
        let whole: u128 = whole.parse().map_err(|_| PriceError::Overflow)?;
        let frac_value: u128 = if frac.is_empty() {
            0
        } else {
            frac.parse().map_err(|_| syntax())?
        };
        let pow = |n: u32| 10u128.checked_pow(n).ok_or(PriceError::Overflow);
        let sub = whole
            .checked_mul(pow(max)?)
            .and_then(|w| w.checked_add(frac_value.checked_mul(pow(max - frac_len).ok()?)?))
            .ok_or(PriceError::Overflow)?;
        // `max` decimals below the currency's whole unit are sub-atomic units.
        Ok(Rate {
            sub_per_million: sub,
        })
    }

    /// The price per million tokens in sub-atomic units.
    pub fn sub_atomic_per_million(self) -> u128 {
        self.sub_per_million
    }
}

/// A model's prices per million tokens, all in one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenPrices {
    /// The currency every rate is in.
    pub currency: Currency,
    /// Uncached input (prompt) tokens.
    pub input: Rate,
    /// Input tokens read from the provider's prompt cache.
    pub cached_input: Rate,
    /// Output (completion) tokens, reasoning included.
    pub output: Rate,
    /// Input tokens written to the prompt cache (Anthropic's
    /// `cache_creation_input_tokens`). `None` prices them as uncached input,
    /// which is what OpenAI does and what a catalog without the price means.
    pub cache_write: Option<Rate>,
}

impl TokenPrices {
    /// Parses the three per-million prices in `currency`.
    pub fn parse(
        currency: Currency,
        input: &str,
        cached_input: &str,
        output: &str,
    ) -> Result<TokenPrices, PriceError> {
        Ok(TokenPrices {
            currency,
            input: Rate::parse(input, currency)?,
            cached_input: Rate::parse(cached_input, currency)?,
            output: Rate::parse(output, currency)?,
            cache_write: None,
        })
    }

    fn cache_write_rate(&self) -> Rate {
        self.cache_write.unwrap_or(self.input)
    }
}

/// Tokens one request used, normalized to OpenAI's shape.
///
/// `input` counts **every** prompt token, cached or not. OpenAI reports it so:
/// `prompt_tokens` (chat, embeddings) or `input_tokens` (responses) include
/// `prompt_tokens_details.cached_tokens` / `input_tokens_details.cached_tokens`.
/// Anthropic reports `input_tokens` *without* `cache_read_input_tokens` and
/// `cache_creation_input_tokens`; its adapter adds them into `input`. The
/// parts are then priced apart: `cached_input` at the cached rate,
/// `cache_creation` at the cache-write rate, the rest at the input rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// All prompt tokens, the cached and cache-written ones included.
    pub input: u64,
    /// Prompt tokens read from the cache (part of `input`).
    pub cached_input: u64,
    /// Prompt tokens written to the cache (part of `input`; Anthropic only).
    pub cache_creation: u64,
    /// Output tokens, reasoning included.
    pub output: u64,
}

impl Usage {
    /// Prompt tokens priced at the plain input rate. A provider that reports
    /// more cached than total tokens is taken at its word on the parts.
    pub fn uncached_input(&self) -> u64 {
        self.input
            .saturating_sub(self.cached_input)
            .saturating_sub(self.cache_creation)
    }
}

/// What `usage` costs at `prices`: the exact sum, rounded up to the
/// currency's atomic unit once.
pub fn cost(usage: &Usage, prices: &TokenPrices) -> Result<Money, PriceError> {
    round_up(exact_sub_millionths(usage, prices)?, prices.currency)
}

/// The most a request can cost: `estimated_input` tokens at the dearest input
/// rate (the cache may not hit, or may be written) and `max_output` tokens.
pub fn worst_case(
    estimated_input: u64,
    max_output: u64,
    prices: &TokenPrices,
) -> Result<Money, PriceError> {
    let input_rate = prices
        .input
        .max(prices.cached_input)
        .max(prices.cache_write_rate());
    let exact = mul(estimated_input, input_rate)?
        .checked_add(mul(max_output, prices.output)?)
        .ok_or(PriceError::Overflow)?;
    round_up(exact, prices.currency)
}

/// `Σ tokens × rate`, in sub-atomic units × tokens per quote.
fn exact_sub_millionths(usage: &Usage, prices: &TokenPrices) -> Result<u128, PriceError> {
    [
        mul(usage.uncached_input(), prices.input)?,
        mul(usage.cached_input, prices.cached_input)?,
        mul(usage.cache_creation, prices.cache_write_rate())?,
        mul(usage.output, prices.output)?,
    ]
    .into_iter()
    .try_fold(0u128, |sum, part| sum.checked_add(part))
    .ok_or(PriceError::Overflow)
}

fn mul(tokens: u64, rate: Rate) -> Result<u128, PriceError> {
    u128::from(tokens)
        .checked_mul(rate.sub_per_million)
        .ok_or(PriceError::Overflow)
}

fn round_up(exact: u128, currency: Currency) -> Result<Money, PriceError> {
    let atomic = exact.div_ceil(DIVISOR);
    let atomic = u64::try_from(atomic).map_err(|_| PriceError::Overflow)?;
    Ok(Money::from_atomic(atomic, currency))
}

#[cfg(test)]
mod tests;
