//! The double's tokenizer. A token is a maximal run of alphanumeric
//! characters or one single other non-space character; whitespace is not a
//! token of its own but travels with the token after it, so the pieces of a
//! reply concatenate back to its text.

/// How many tokens `text` holds.
pub fn count_tokens(text: &str) -> u64 {
    let n = Tokens { rest: text }.count();
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// `text` cut into tokens, each with the whitespace before it; whitespace at
/// the very end joins the last token so that nothing is lost.
pub(crate) fn split(text: &str) -> Vec<String> {
    let mut tokens = Tokens { rest: text };
    let mut out: Vec<String> = tokens.by_ref().map(str::to_owned).collect();
    if let Some(last) = out.last_mut() {
        last.push_str(tokens.rest);
    }
    out
}

/// The tokens of a text, each a slice that starts with its leading
/// whitespace. Trailing whitespace stays in `rest`.
struct Tokens<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Tokens<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let (start, first) = self.rest.char_indices().find(|(_, c)| !c.is_whitespace())?;
        let end = if first.is_alphanumeric() {
            self.rest[start..]
                .char_indices()
                .find(|(_, c)| !c.is_alphanumeric())
                .map_or(self.rest.len(), |(i, _)| start + i)
        } else {
            start + first.len_utf8()
        };
        let (token, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_marks_are_tokens_spaces_are_not() {
        assert_eq!(count_tokens(""), 0);
        assert_eq!(count_tokens("   \n\t"), 0);
        assert_eq!(count_tokens("hello"), 1);
        assert_eq!(count_tokens("Hello, world!"), 4);
        assert_eq!(count_tokens("a1b2 c3"), 2);
        assert_eq!(count_tokens("...!?"), 5);
        assert_eq!(count_tokens("héllo wörld 日本"), 3);
        assert_eq!(count_tokens("{\"a\": 1}"), 7);
    }

    #[test]
    fn split_keeps_every_character() {
        for text in [
            "Hello, world!",
            "  lead and trail  ",
            "x",
            "",
            "a\n\nb.",
            "日本 語",
        ] {
            let pieces = split(text);
            assert_eq!(pieces.len() as u64, count_tokens(text), "{text:?}");
            if !pieces.is_empty() {
                assert_eq!(pieces.concat(), text);
            }
        }
        assert_eq!(split(" the world."), [" the", " world", "."]);
    }
}
