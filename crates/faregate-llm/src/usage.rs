//! What the adapters share: the error for a body without usable usage, and
//! the count of output delivered to a client before its stream ended.

/// Why no usage could be read from a provider's response. The provider is at
/// fault: a successful response must say what it used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    /// The body is not the JSON the API documents.
    #[error("upstream body is not valid JSON: {0}")]
    NotJson(String),
    /// The body has no `usage` object with token counts.
    #[error("upstream body has no usage")]
    Missing,
}

impl From<serde_json::Error> for UsageError {
    fn from(e: serde_json::Error) -> Self {
        UsageError::NotJson(e.to_string())
    }
}

/// Characters per token assumed when counting delivered text.
pub const CHARS_PER_TOKEN: u64 = 4;

/// Output text seen on its way to the client, for charging a stream whose
/// usage never arrived (the client left, or the provider cut off).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    chars: u64,
    pieces: u64,
}

impl Delivered {
    /// Counts one non-empty piece of streamed output.
    pub(crate) fn add(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        let chars = u64::try_from(text.chars().count()).unwrap_or(u64::MAX);
        self.chars = self.chars.saturating_add(chars);
        self.pieces = self.pieces.saturating_add(1);
    }

    /// The token estimate: providers stream about one token per delta, and
    /// English averages about [`CHARS_PER_TOKEN`] characters per token; the
    /// larger of the two is taken, so a delivered stream never costs zero.
    pub fn tokens(&self) -> u64 {
        self.pieces.max(self.chars.div_ceil(CHARS_PER_TOKEN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivered_tokens_take_the_larger_estimate() {
        let mut d = Delivered::default();
        assert_eq!(d.tokens(), 0);
        d.add("Hi");
        d.add("");
        assert_eq!(d.tokens(), 1);
        d.add("a much longer piece of text"); // 27 chars
        assert_eq!(d.tokens(), 29u64.div_ceil(4));
        let mut pieces = Delivered::default();
        (0..5).for_each(|_| pieces.add("é"));
        assert_eq!(pieces.tokens(), 5);
    }
}
