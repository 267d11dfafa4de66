//! Request path normalization (RFC 3986 §6.2.2): routing and forwarding use
//! the same normalized path, so `/free/../paid` cannot slip past a price.
//!
//! Percent-encoded unreserved characters are decoded, other escapes are kept
//! (upper-cased), dot segments are removed, and a path that climbs above the
//! root or carries a broken escape is refused.

use std::borrow::Cow;

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// `%` not followed by two hex digits, or an escaped NUL.
    #[error("invalid percent-encoding")]
    BadEscape,
    /// `..` above the root.
    #[error("path climbs above the root")]
    AboveRoot,
    /// Not starting with `/`.
    #[error("path must start with '/'")]
    NotAbsolute,
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Normalizes `path` (no query). Borrows when it is already normal, which
/// is the common case on the hot path.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let bytes = path.as_bytes();
    // One pass: an escape, or a `/` followed by `.` or `/`.
    let needs_work = bytes
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'%' || (b == b'/' && matches!(bytes.get(i + 1), Some(b'.' | b'/'))));
    if !needs_work {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode_unreserved(bytes)?;
    Ok(Cow::Owned(remove_dot_segments(&decoded)?))
}

fn decode_unreserved(bytes: &[u8]) -> Result<String, PathError> {
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|&c| hex(c)),
                bytes.get(i + 2).and_then(|&c| hex(c)),
            ) else {
                return Err(PathError::BadEscape);
            };
            let v = h * 16 + l;
            if v == 0 {
                return Err(PathError::BadEscape);
            }
            if is_unreserved(v) {
                out.push(char::from(v));
            } else {
                out.push('%');
                out.push(char::from(bytes[i + 1].to_ascii_uppercase()));
                out.push(char::from(bytes[i + 2].to_ascii_uppercase()));
            }
            i += 3;
        } else {
            out.push(char::from(b));
            i += 1;
        }
    }
    Ok(out)
}

fn remove_dot_segments(path: &str) -> Result<String, PathError> {
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    let mut parts = path[1..].split('/').peekable();
    while let Some(seg) = parts.next() {
        let last = parts.peek().is_none();
        match seg {
            "." | "" => trailing_slash = last,
            ".." => {
                segments.pop().ok_or(PathError::AboveRoot)?;
                trailing_slash = last;
            }
            s => {
                segments.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_paths_are_borrowed() {
        assert!(matches!(
            normalize("/demo/free").unwrap(),
            Cow::Borrowed("/demo/free")
        ));
    }

    #[test]
    fn dot_segments_and_escapes() {
        let cases = [
            ("/a/./b", "/a/b"),
            ("/free/../paid", "/paid"),
            ("/a/b/..", "/a/"),
            ("/a//b", "/a/b"),
            ("/a/", "/a/"),
            ("/%7Euser", "/~user"),
            ("/%2e%2e/x", "/x"),
            ("/a%2fb", "/a%2Fb"),
            ("/a/%2E/b", "/a/b"),
            ("/", "/"),
            ("/.", "/"),
        ];
        for (input, want) in cases {
            let got = normalize(input);
            if input == "/%2e%2e/x" {
                assert_eq!(got, Err(PathError::AboveRoot));
                continue;
            }
            assert_eq!(got.as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn refusals() {
        assert_eq!(normalize("/../etc/passwd"), Err(PathError::AboveRoot));
        assert_eq!(normalize("/a/%zz"), Err(PathError::BadEscape));
        assert_eq!(normalize("/a/%4"), Err(PathError::BadEscape));
        assert_eq!(normalize("/a%00"), Err(PathError::BadEscape));
        assert_eq!(normalize("a/b"), Err(PathError::NotAbsolute));
    }

    proptest::proptest! {
        /// Whatever a client sends, a normalized path is a fixed point with no
        /// dot segments, no empty segments, and only escapes that must stay.
        #[test]
        fn normalized_paths_are_canonical(segments in proptest::collection::vec("(\\.|\\.\\.|%2[eEfF]|%41|%7e|%zz|%|a|b/c|[a-z]{1,3}|)", 0..8)) {
            let path = format!("/{}", segments.join("/"));
            if let Ok(n) = normalize(&path) {
                proptest::prop_assert!(n.starts_with('/'));
                let again = normalize(&n).unwrap().into_owned();
                proptest::prop_assert_eq!(again.as_str(), n.as_ref(), "idempotent");
                let inner = n.trim_end_matches('/');
                for seg in inner.split('/').skip(1) {
                    proptest::prop_assert!(seg != "." && seg != ".." && !seg.is_empty(), "segment {:?} in {}", seg, n);
                }
                for (i, _) in n.match_indices('%') {
                    let esc = &n[i + 1..i + 3];
                    proptest::prop_assert!(esc.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase()), "{}", n);
                    let v = u8::from_str_radix(esc, 16).unwrap();
                    proptest::prop_assert!(!is_unreserved(v), "unreserved {} left escaped in {}", esc, n);
                }
            }
        }
    }
}
