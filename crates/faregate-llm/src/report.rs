//! Telling the caller what a request cost.
//!
//! Non-streamed responses carry a `Faregate-Cost` header; streams, whose
//! headers are gone before usage is known, end with an SSE comment line.
//! Comments (lines starting with `:`) are ignored by every conforming SSE
//! client, the official OpenAI and Anthropic SDKs included, so appending one
//! after the provider's last event changes nothing a client parses.

use bytes::Bytes;
use faregate_core::Money;

/// The response header that carries the cost of a non-streamed call.
pub const COST_HEADER: &str = "faregate-cost";

/// The header value: the decimal amount and the currency, `0.000123 USD`.
pub fn cost_header_value(cost: Money) -> String {
    cost.to_string()
}

/// The final SSE comment of a stream: `: faregate-cost=0.000123 USD\n\n`.
pub fn cost_comment(cost: Money) -> Bytes {
    Bytes::from(format!(": {COST_HEADER}={cost}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::SseParser;
    use faregate_core::Currency;

    #[test]
    fn formats_the_header_and_the_comment() {
        let cost = Money::from_atomic(123, Currency::USD);
        assert_eq!(cost_header_value(cost), "0.000123 USD");
        assert_eq!(
            cost_comment(cost).as_ref(),
            b": faregate-cost=0.000123 USD\n\n"
        );
        assert_eq!(
            cost_header_value(Money::from_atomic(2_500_000, Currency::USD)),
            "2.50 USD"
        );
    }

    #[test]
    fn the_comment_is_an_event_without_data() {
        let mut p = SseParser::new();
        p.feed(&cost_comment(Money::from_atomic(1, Currency::USD)));
        let event = p.next_event().unwrap();
        assert_eq!(event.data(), None);
        assert!(p.take_rest().is_empty());
    }
}
