//! One access-log line as JSON, written straight into the log buffer.
//!
//! Hand-written because it runs for every request: serde_json spent about
//! 6,000 instructions per line here (callgrind, docs/BENCHMARKS.md), most
//! of it in generic map and escaping machinery for seventeen fixed fields.

use super::Entry;

/// Appends `entry` as one JSON object and a newline.
pub(super) fn write(out: &mut Vec<u8>, e: &Entry<'_>) {
    out.reserve(384);
    out.extend_from_slice(b"{\"time\":\"");
    e.time.push(out);
    out.extend_from_slice(b"\",\"request_id\":");
    raw_string(out, e.request_id);
    out.extend_from_slice(b",\"route\":");
    opt_string(out, e.route);
    out.extend_from_slice(b",\"method\":");
    raw_string(out, e.method);
    out.extend_from_slice(b",\"path\":");
    string(out, e.path);
    out.extend_from_slice(b",\"status\":");
    number(out, u64::from(e.status));
    out.extend_from_slice(b",\"upstream_status\":");
    match e.upstream_status {
        Some(s) => number(out, u64::from(s)),
        None => out.extend_from_slice(b"null"),
    }
    if !e.upstreams.is_empty() {
        out.extend_from_slice(b",\"upstreams\":[");
        for (i, u) in e.upstreams.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            raw_string(out, u);
        }
        out.push(b']');
    }
    out.extend_from_slice(b",\"duration_us\":");
    number(out, e.duration_us);
    out.extend_from_slice(b",\"bytes_in\":");
    number(out, e.bytes_in);
    out.extend_from_slice(b",\"bytes_out\":");
    number(out, e.bytes_out);
    out.extend_from_slice(b",\"caller\":");
    opt_string(out, e.caller);
    out.extend_from_slice(b",\"client\":");
    raw_string(out, e.client);
    out.extend_from_slice(b",\"decision\":");
    raw_string(out, e.decision);
    out.extend_from_slice(b",\"charge\":");
    match e.charge {
        Some(m) => {
            out.push(b'"');
            out.extend_from_slice(m.decimal().as_str().as_bytes());
            out.push(b' ');
            out.extend_from_slice(m.currency().code().as_bytes());
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(if e.complete {
        b",\"complete\":true"
    } else {
        b",\"complete\":false"
    });
    if let Some(error) = e.error {
        out.extend_from_slice(b",\"error\":");
        string(out, error);
    }
    out.extend_from_slice(b"}\n");
}

fn opt_string(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(v) => string(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

pub(crate) fn number(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// A string from a charset with nothing to escape: a validated request id
/// (`A-Za-z0-9-_.:/+=`), a method token, a problem code, an IP address, an
/// authority. Checked in debug builds.
fn raw_string(out: &mut Vec<u8>, s: &str) {
    debug_assert!(!s.bytes().any(needs_escape), "{s:?} needs escaping");
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// Whether `b` must be escaped in a JSON string (RFC 8259 §7).
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// A JSON string: quotes, backslashes and control characters escaped;
/// everything else, UTF-8 included, passes as it is.
fn string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.push(b'"');
    if !bytes.iter().copied().any(needs_escape) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !needs_escape(b) {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_string(s: &str) -> String {
        let mut out = Vec::new();
        string(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_round_trip_through_a_json_parser() {
        for s in [
            "plain",
            "quote\" back\\slash",
            "new\nline\ttab\r",
            "\u{1}\u{1f}ctl",
            "héllo ✓",
            "",
        ] {
            let parsed: String = serde_json::from_str(&json_string(s)).unwrap();
            assert_eq!(parsed, s);
        }
    }

    #[test]
    fn numbers_are_written_in_full() {
        for n in [0, 7, 10, 12_345, u64::MAX] {
            let mut out = Vec::new();
            number(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
    }
}
