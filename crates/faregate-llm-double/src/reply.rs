//! The deterministic reply: seeded by the SHA-256 of the prompt, words from a
//! fixed vocabulary with punctuation now and then, 12 to 40 tokens long. A
//! prompt `say:<text>` replies exactly `<text>`, so tests can fix the output.

use sha2::{Digest, Sha256};

use crate::tokenize::split;

/// The prefix that makes the reply the rest of the prompt.
const SAY: &str = "say:";
/// The shortest natural reply, in tokens.
const MIN_LEN: u64 = 12;
/// The longest natural reply, in tokens.
const MAX_LEN: u64 = 40;

/// Sixty-four words, each one token.
const VOCABULARY: [&str; 64] = [
    "the", "a", "gateway", "pays", "before", "you", "pass", "token", "model", "reply", "request",
    "fare", "ticket", "route", "price", "credit", "ledger", "balance", "stream", "answer", "quick",
    "brown", "fox", "jumps", "over", "lazy", "dog", "river", "mountain", "cloud", "signal",
    "window", "garden", "lamp", "paper", "stone", "silver", "green", "quiet", "bright", "every",
    "some", "many", "often", "never", "always", "here", "there", "with", "without", "under",
    "above", "and", "or", "but", "so", "it", "we", "they", "is", "was", "will", "can", "must",
];

/// The reply to `prompt`, one string per token, at most `max_tokens` long;
/// the strings concatenated are the reply text. The prompt is the text of the
/// request's last user message.
pub fn reply_tokens(prompt: &str, max_tokens: u64) -> Vec<String> {
    let mut tokens = natural_reply(prompt);
    tokens.truncate(usize::try_from(max_tokens).unwrap_or(usize::MAX));
    tokens
}

/// The reply before any `max_tokens` cut.
pub(crate) fn natural_reply(prompt: &str) -> Vec<String> {
    match prompt.strip_prefix(SAY) {
        Some(rest) => split(rest),
        None => generated(prompt),
    }
}

fn generated(prompt: &str) -> Vec<String> {
    let mut rng = SplitMix::seeded(prompt.as_bytes());
    let len = MIN_LEN + rng.below(MAX_LEN - MIN_LEN + 1);
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    let mut sentence_start = true;
    for i in 0..len {
        let last = i + 1 == len;
        let after_word = !sentence_start && out.last().is_none_or(|t: &String| t != ",");
        if last {
            out.push(".".to_owned());
        } else if after_word && i + 2 < len && rng.below(6) == 0 {
            let mark = if rng.below(3) == 0 { "." } else { "," };
            sentence_start = mark == ".";
            out.push(mark.to_owned());
        } else {
            let word = VOCABULARY[usize::try_from(rng.below(64)).unwrap_or(0)];
            out.push(spelled(word, i == 0, sentence_start));
            sentence_start = false;
        }
    }
    out
}

/// `word` with its leading space (none at the very start), capitalised at
/// the start of a sentence.
fn spelled(word: &str, first: bool, capital: bool) -> String {
    let mut s = String::with_capacity(word.len() + 1);
    if !first {
        s.push(' ');
    }
    let mut chars = word.chars();
    if let Some(c) = chars.next() {
        if capital {
            s.extend(c.to_uppercase());
        } else {
            s.push(c);
        }
    }
    s.push_str(chars.as_str());
    s
}

/// SplitMix64 seeded from a SHA-256: small, fast and the same everywhere.
pub(crate) struct SplitMix(u64);

impl SplitMix {
    pub(crate) fn seeded(bytes: &[u8]) -> Self {
        let digest = Sha256::digest(bytes);
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&digest[..8]);
        Self(u64::from_le_bytes(seed))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::count_tokens;

    #[test]
    fn natural_replies_are_stable_and_tokenize_back() {
        for prompt in [
            "hello",
            "",
            "What is a fare?",
            "日本",
            "x".repeat(500).as_str(),
        ] {
            let reply = reply_tokens(prompt, u64::MAX);
            assert_eq!(reply, reply_tokens(prompt, u64::MAX));
            assert!((12..=40).contains(&reply.len()), "{}", reply.len());
            assert_eq!(count_tokens(&reply.concat()), reply.len() as u64);
            assert_eq!(split(&reply.concat()), reply);
            assert_eq!(reply.last().map(String::as_str), Some("."));
        }
        assert_ne!(reply_tokens("one", 100), reply_tokens("two", 100));
    }

    #[test]
    fn max_tokens_cuts_and_say_fixes_the_reply() {
        assert_eq!(reply_tokens("hello", 3), reply_tokens("hello", 100)[..3]);
        assert!(reply_tokens("hello", 0).is_empty());
        assert_eq!(reply_tokens("say:Hi there.", 100), ["Hi", " there", "."]);
        assert_eq!(reply_tokens("say: Hi there.", 2), [" Hi", " there"]);
        assert!(reply_tokens("say:", 10).is_empty());
    }
}
