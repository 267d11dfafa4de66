//! One model turn: what the request cost in prompt tokens and what the model
//! says back, shared by every chat-like endpoint.

use crate::reply::natural_reply;
use crate::tokenize::count_tokens;

/// The request's prompt reduced to what decides the answer.
#[derive(Debug)]
pub(crate) struct Prompt<'a> {
    /// Every text the request carries; their token counts sum to the usage.
    pub(crate) texts: Vec<&'a str>,
    /// The text of the last user message, which seeds the reply.
    pub(crate) last_user: String,
    /// The output limit, if the request set one.
    pub(crate) max_tokens: Option<u64>,
}

/// A turn's outcome.
#[derive(Debug)]
pub(crate) struct Turn {
    pub(crate) prompt_tokens: u64,
    /// The reply, one string per token.
    pub(crate) tokens: Vec<String>,
    /// Whether `max_tokens` cut the reply short.
    pub(crate) truncated: bool,
}

impl Turn {
    pub(crate) fn new(prompt: &Prompt<'_>) -> Self {
        let prompt_tokens = prompt.texts.iter().map(|t| count_tokens(t)).sum();
        let mut tokens = natural_reply(&prompt.last_user);
        let limit = prompt
            .max_tokens
            .map_or(usize::MAX, |m| usize::try_from(m).unwrap_or(usize::MAX));
        let truncated = tokens.len() > limit;
        tokens.truncate(limit);
        Self {
            prompt_tokens,
            tokens,
            truncated,
        }
    }

    /// The reply text.
    pub(crate) fn text(&self) -> String {
        self.tokens.concat()
    }

    pub(crate) fn output_tokens(&self) -> u64 {
        u64::try_from(self.tokens.len()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_the_sum_of_the_texts_and_max_tokens_cuts() {
        let prompt = Prompt {
            texts: vec!["be brief", "say:one two three"],
            last_user: "say:one two three".into(),
            max_tokens: Some(2),
        };
        let turn = Turn::new(&prompt);
        assert_eq!(turn.prompt_tokens, 2 + 5);
        assert_eq!(turn.text(), "one two");
        assert!(turn.truncated);
        let exact = Turn::new(&Prompt {
            max_tokens: Some(3),
            ..prompt
        });
        assert!(!exact.truncated);
        assert_eq!(exact.output_tokens(), 3);
    }
}
