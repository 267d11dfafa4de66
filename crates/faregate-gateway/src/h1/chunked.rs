//! The chunked transfer coding (RFC 9112 §7.1): an incremental decoder
//! that is strict about framing (CRLF only, hex sizes that fit in 64 bits,
//! bounded extensions and trailers), and the encoder.

/// Longest chunk-size line with its extensions, and all trailers together.
const MAX_LINE: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;

/// The chunked framing was broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid chunked encoding: {0}")]
pub(crate) struct ChunkError(&'static str);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In the hex size; `digits` counts them.
    Size,
    /// After the size: whitespace or `;extension` up to CR.
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line, or of the final empty line.
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
    Done,
}

/// Decodes one chunked body, however its bytes arrive.
#[derive(Debug)]
pub(crate) struct Decoder {
    state: State,
    size: u64,
    digits: u8,
    line: usize,
    trailers: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Self {
            state: State::Size,
            size: 0,
            digits: 0,
            line: 0,
            trailers: 0,
        }
    }
}

impl Decoder {
    /// Whether the last chunk and the trailers have been read.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `src`, giving each piece of chunk data to `data`, and
    /// returns how many bytes it consumed: all of `src`, or up to the end of
    /// the body (what follows belongs to the next message).
    pub(crate) fn decode(
        &mut self,
        src: &[u8],
        mut data: impl FnMut(&[u8]),
    ) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < src.len() && self.state != State::Done {
            if self.state == State::Data {
                let take = usize::try_from(self.size)
                    .unwrap_or(usize::MAX)
                    .min(src.len() - i);
                data(&src[i..i + take]);
                i += take;
                self.size -= take as u64;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            self.byte(src[i])?;
            i += 1;
        }
        Ok(i)
    }

    fn byte(&mut self, b: u8) -> Result<(), ChunkError> {
        use State::*;
        self.state = match (self.state, b) {
            (Size, _) if b.is_ascii_hexdigit() => {
                if self.digits == 16 {
                    return Err(ChunkError("chunk size too large"));
                }
                self.digits += 1;
                let d = (b as char).to_digit(16).unwrap_or(0);
                self.size = (self.size << 4) | u64::from(d);
                Size
            }
            (Size, b';' | b' ' | b'\t') if self.digits > 0 => {
                self.line = 0;
                Ext
            }
            (Size, b'\r') if self.digits > 0 => SizeLf,
            (Size, _) => return Err(ChunkError("bad chunk size")),
            (Ext, b'\r') => SizeLf,
            (Ext, b'\n') => return Err(ChunkError("bare LF in a chunk extension")),
            (Ext, _) => {
                self.line += 1;
                if self.line > MAX_LINE {
                    return Err(ChunkError("chunk extension too long"));
                }
                Ext
            }
            (SizeLf, b'\n') => {
                self.digits = 0;
                if self.size == 0 { TrailerStart } else { Data }
            }
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => Size,
            (TrailerStart, b'\r') => EndLf,
            (TrailerLine, b'\r') => TrailerLf,
            (TrailerStart | TrailerLine, b'\n') => {
                return Err(ChunkError("bare LF in a trailer"));
            }
            (TrailerStart | TrailerLine, _) => {
                self.trailers += 1;
                if self.trailers > MAX_TRAILERS {
                    return Err(ChunkError("trailers too large"));
                }
                TrailerLine
            }
            (TrailerLf, b'\n') => TrailerStart,
            (EndLf, b'\n') => Done,
            _ => return Err(ChunkError("missing CRLF")),
        };
        Ok(())
    }
}

/// The last chunk, with no trailers.
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Appends `data` to `out` as one chunk (nothing for empty data, which
/// would read as the last chunk).
pub(crate) fn encode(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut n = data.len();
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = HEX[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.reserve(data.len() + 20);
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], split: usize) -> Result<(Vec<u8>, usize), ChunkError> {
        let mut d = Decoder::default();
        let mut out = Vec::new();
        let mut used = 0;
        for piece in input.chunks(split.max(1)) {
            used += d.decode(piece, |b| out.extend_from_slice(b))?;
            if d.is_done() {
                break;
            }
        }
        assert!(d.is_done(), "not done after {input:?}");
        Ok((out, used))
    }

    #[test]
    fn decodes_whatever_the_byte_split() {
        let body =
            b"3\r\nabc\r\n10;name=value\r\n0123456789abcdef\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        let end = body.len() - 4;
        for split in 1..body.len() {
            let (data, used) = decode_all(body, split).unwrap();
            assert_eq!(data, b"abc0123456789abcdef");
            assert!(used <= end && used > 0);
        }
        // All at once: exactly the body is consumed, not the next message.
        let mut d = Decoder::default();
        assert_eq!(d.decode(body, |_| {}).unwrap(), end);
    }

    #[test]
    fn broken_framing_is_refused() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"3\nabc\r\n0\r\n\r\n",
            b"3\r\nabcd\r\n",
            b"3\r\nabc\n0\r\n\r\n",
            b"11111111111111111\r\n",
            b"0\r\nbad\n\r\n",
            b"3;ext\n",
        ] {
            let mut d = Decoder::default();
            assert!(d.decode(bad, |_| {}).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn encodes_chunks_the_decoder_reads_back() {
        let mut out = Vec::new();
        encode(&mut out, b"hello");
        encode(&mut out, &[b'x'; 300]);
        encode(&mut out, b"");
        out.extend_from_slice(LAST_CHUNK);
        assert!(out.starts_with(b"5\r\nhello\r\n12c\r\n"));
        let (data, used) = decode_all(&out, 7).unwrap();
        assert_eq!(used, out.len());
        assert_eq!(data.len(), 305);
    }
}
