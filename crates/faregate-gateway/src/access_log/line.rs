//! One access-log line as JSON, written straight into the log buffer.
//!
//! Hand-written because it runs for every request: serde_json spent about
//! 6,000 instructions per line here (callgrind, docs/BENCHMARKS.md), most
//! of it in generic map and escaping machinery for seventeen fixed fields.

use super::Entry;

/// Appends `entry` as one JSON object and a newline.
pub(super) fn write(out: &mut Vec<u8>, e: &Entry<'_>) {
    out.extend_from_slice(b"{\"time\":\"");
    e.time.push(out);
    out.push(b'"');
    field_str(out, "request_id", e.request_id);
    field_opt_str(out, "route", e.route);
    field_str(out, "method", e.method);
    field_str(out, "path", e.path);
    field_u64(out, "status", u64::from(e.status));
    match e.upstream_status {
        Some(s) => field_u64(out, "upstream_status", u64::from(s)),
        None => field_raw(out, "upstream_status", b"null"),
    }
    if !e.upstreams.is_empty() {
        key(out, "upstreams");
        out.push(b'[');
        for (i, u) in e.upstreams.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            string(out, u);
        }
        out.push(b']');
    }
    field_u64(out, "duration_us", e.duration_us);
    field_u64(out, "bytes_in", e.bytes_in);
    field_u64(out, "bytes_out", e.bytes_out);
    field_opt_str(out, "caller", e.caller);
    field_str(out, "client", e.client);
    field_str(out, "decision", e.decision);
    match e.charge {
        Some(m) => field_str(out, "charge", &m.to_string()),
        None => field_raw(out, "charge", b"null"),
    }
    field_raw(out, "complete", if e.complete { b"true" } else { b"false" });
    if let Some(error) = e.error {
        field_str(out, "error", error);
    }
    out.extend_from_slice(b"}\n");
}

fn key(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

fn field_raw(out: &mut Vec<u8>, name: &str, raw: &[u8]) {
    key(out, name);
    out.extend_from_slice(raw);
}

fn field_str(out: &mut Vec<u8>, name: &str, value: &str) {
    key(out, name);
    string(out, value);
}

fn field_opt_str(out: &mut Vec<u8>, name: &str, value: Option<&str>) {
    match value {
        Some(v) => field_str(out, name, v),
        None => field_raw(out, name, b"null"),
    }
}

fn field_u64(out: &mut Vec<u8>, name: &str, mut n: u64) {
    key(out, name);
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// A JSON string: quotes, backslashes and control characters escaped
/// (RFC 8259 §7); everything else, UTF-8 included, passes as it is.
fn string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => &[],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]);
        } else {
            out.extend_from_slice(escape);
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
            field_u64(&mut out, "n", n);
            assert_eq!(String::from_utf8(out).unwrap(), format!(",\"n\":{n}"));
        }
    }
}
