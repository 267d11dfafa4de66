//! An incremental Server-Sent-Events parser over arbitrary byte chunks.
//!
//! The gateway must forward a provider's stream byte for byte, drop one event
//! from it, or append one, so this parser yields each event's **raw bytes**
//! (every line up to and including the blank line that ends it) beside its
//! parsed fields. Events may be split anywhere across chunks; lines end in
//! LF, CRLF or a lone CR, as the WHATWG `text/event-stream` grammar allows.
//! Field parsing follows that grammar: `field: value` with one optional space
//! dropped, `data` lines joined with LF, lines starting with `:` are comments.
//!
//! Written here rather than taken from a crate because the SSE crates parse
//! into fields only and lose the raw bytes a pass-through needs.

use bytes::{Bytes, BytesMut};

/// One event block as it came off the wire, with its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    raw: Bytes,
    event: Option<String>,
    data: Option<String>,
}

impl SseEvent {
    /// The exact bytes of the block, its terminating blank line included.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The `event:` field, if any.
    pub fn event(&self) -> Option<&str> {
        self.event.as_deref()
    }

    /// The `data:` lines joined with LF, or `None` when the block has none
    /// (a comment, a keep-alive or a stray blank line).
    pub fn data(&self) -> Option<&str> {
        self.data.as_deref()
    }
}

/// Buffers chunks and yields complete events.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: BytesMut,
    /// How far `buf` has been searched for the end of the current event.
    scanned: usize,
    /// Where the line being scanned starts.
    line_start: usize,
}

impl SseParser {
    /// An empty parser.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the next chunk of the stream.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete event, if the buffered bytes hold one.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        let end = self.find_event_end()?;
        let raw = self.buf.split_to(end).freeze();
        self.scanned = 0;
        self.line_start = 0;
        Some(parse_block(raw))
    }

    /// Takes whatever incomplete tail is left when the stream ends, so a
    /// pass-through can still deliver it.
    pub fn take_rest(&mut self) -> Bytes {
        self.scanned = 0;
        self.line_start = 0;
        self.buf.split().freeze()
    }

    /// Finds the byte after the blank line that ends the first event.
    fn find_event_end(&mut self) -> Option<usize> {
        while self.scanned < self.buf.len() {
            let i = self.scanned;
            let len = match self.buf[i] {
                b'\n' => 1,
                b'\r' if i + 1 == self.buf.len() => return None, // CR or CRLF?
                b'\r' if self.buf[i + 1] == b'\n' => 2,
                b'\r' => 1,
                _ => {
                    self.scanned += 1;
                    continue;
                }
            };
            let blank = i == self.line_start;
            self.scanned = i + len;
            self.line_start = self.scanned;
            if blank {
                return Some(self.scanned);
            }
        }
        None
    }
}

/// Splits a block into lines and reads its fields.
fn parse_block(raw: Bytes) -> SseEvent {
    let mut event = None;
    let mut data: Option<String> = None;
    for line in lines(&raw) {
        if line.is_empty() || line[0] == b':' {
            continue;
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match name {
            b"event" => event = Some(value.into_owned()),
            b"data" => match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(&value);
                }
                None => data = Some(value.into_owned()),
            },
            _ => {} // `id`, `retry` and unknown fields do not matter to billing.
        }
    }
    SseEvent { raw, event, data }
}

/// The lines of a complete block, without their terminators.
fn lines(raw: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = raw;
    std::iter::from_fn(move || {
        let end = rest.iter().position(|&b| b == b'\n' || b == b'\r')?;
        let line = &rest[..end];
        let skip = if rest[end..].starts_with(b"\r\n") {
            2
        } else {
            1
        };
        rest = &rest[end + skip..];
        Some(line)
    })
}

#[cfg(test)]
mod tests;
