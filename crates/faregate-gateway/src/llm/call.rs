//! One LLM call's bill: what was reserved, what the provider reported or
//! delivered, and the cost. The response body (a stream) and the record
//! that settles the request share it: the body feeds it, settlement reads
//! what to charge from it, whichever way the stream ended.

use std::sync::Arc;

use bytes::Bytes;
use faregate_core::Money;
use faregate_llm::anthropic::AnthropicStreamMeter;
use faregate_llm::openai::OpenAiStreamMeter;
use faregate_llm::{TokenPrices, Usage, cost, cost_comment};
use parking_lot::Mutex;

use super::limits::{Admission, LlmLimiter};
use crate::body::Rewrite;

/// A stream's meter, by wire format.
#[derive(Debug)]
pub(crate) enum StreamMeter {
    OpenAi(OpenAiStreamMeter),
    Anthropic(AnthropicStreamMeter),
}

#[derive(Debug)]
enum Billed {
    /// Nothing to charge (the provider refused, or no answer came).
    Nothing,
    /// The usage of a whole answer.
    Usage(Usage),
    /// A stream, metered as it goes.
    Stream(StreamMeter),
}

/// The bill of one call.
#[derive(Debug)]
pub(crate) struct LlmCall {
    prices: TokenPrices,
    /// The input estimate, charged for a stream cut before the provider
    /// reported the true count.
    estimated_input: u64,
    /// The reservation: never charge more.
    held: Money,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    billed: Billed,
    admission: Option<Admission>,
}

impl LlmCall {
    pub(crate) fn new(
        prices: TokenPrices,
        estimated_input: u64,
        held: Money,
        admission: Admission,
    ) -> Arc<Self> {
        Arc::new(Self {
            prices,
            estimated_input,
            held,
            state: Mutex::new(State {
                billed: Billed::Nothing,
                admission: Some(admission),
            }),
        })
    }

    /// The whole answer's usage is known.
    pub(crate) fn set_usage(&self, usage: Usage) {
        self.state.lock().billed = Billed::Usage(usage);
    }

    /// The answer streams through `meter`.
    pub(crate) fn set_stream(&self, meter: StreamMeter) {
        self.state.lock().billed = Billed::Stream(meter);
    }

    /// The usage to charge now, if any.
    fn usage(&self, billed: &Billed) -> Option<Usage> {
        match billed {
            Billed::Nothing => None,
            Billed::Usage(usage) => Some(*usage),
            Billed::Stream(StreamMeter::OpenAi(m)) => Some(m.billable(self.estimated_input)),
            Billed::Stream(StreamMeter::Anthropic(m)) => Some(m.billable(self.estimated_input)),
        }
    }

    /// What the usage costs, capped at the reservation.
    fn charge_of(&self, usage: Option<Usage>) -> Money {
        let full = usage.map_or(Money::zero(self.held.currency()), |u| {
            // Prices and usage are bounded; an overflow charges the hold.
            cost(&u, &self.prices).unwrap_or(self.held)
        });
        if full.atomic() > self.held.atomic() {
            tracing::warn!(
                cost = %full.decimal_string(),
                held = %self.held.decimal_string(),
                "an LLM call cost more than its reservation; charging the reservation"
            );
            return self.held;
        }
        full
    }

    /// What to charge, as metered so far: the measured amount settlement
    /// hands to the rail (zero when nothing is owed).
    pub(crate) fn measured(&self) -> Money {
        let state = self.state.lock();
        self.charge_of(self.usage(&state.billed))
    }

    /// The cost of a whole answer, for `Faregate-Cost`.
    pub(crate) fn cost(&self) -> Money {
        self.measured()
    }

    /// Gives the limits back with the truth: `charged` atomic units and the
    /// tokens used.
    pub(crate) fn finish(&self, limiter: &LlmLimiter, charged: Option<Money>) {
        let mut state = self.state.lock();
        let tokens = self
            .usage(&state.billed)
            .map_or(0, |u| u.input.saturating_add(u.output));
        if let Some(admission) = state.admission.take() {
            limiter.finish(admission, charged.map_or(0, Money::atomic), tokens);
        }
    }
}

/// The stream's way to the caller: each chunk through the meter, and the
/// cost as a final SSE comment.
pub(crate) struct MeteredStream(pub(crate) Arc<LlmCall>);

impl Rewrite for MeteredStream {
    fn chunk(&mut self, chunk: Bytes) -> Bytes {
        let mut state = self.0.state.lock();
        match &mut state.billed {
            Billed::Stream(StreamMeter::OpenAi(m)) => m.feed(chunk),
            Billed::Stream(StreamMeter::Anthropic(m)) => m.feed(chunk),
            _ => chunk,
        }
    }

    fn end(&mut self) -> Bytes {
        let mut state = self.0.state.lock();
        let rest = match &mut state.billed {
            Billed::Stream(StreamMeter::OpenAi(m)) => m.finish(),
            _ => Bytes::new(),
        };
        let cost = self.0.charge_of(self.0.usage(&state.billed));
        let comment = cost_comment(cost);
        let mut out = Vec::with_capacity(rest.len() + comment.len());
        out.extend_from_slice(&rest);
        out.extend_from_slice(&comment);
        Bytes::from(out)
    }
}
