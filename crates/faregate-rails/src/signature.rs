//! Webhook signatures in Stripe's scheme, for card-processor events coming
//! in and for the gateway's own notifications going out.
//!
//! The header is `t=<unix seconds>,v1=<hex>[,v1=<hex>…]`; each `v1` is
//! HMAC-SHA256, keyed with the endpoint's secret as written (`whsec_…`),
//! over `"{t}.{raw body}"`. Several `v1` values and several of our secrets
//! may be live at once while a secret is rotated: any pair that matches
//! passes. Comparison is constant-time, and a timestamp further than the
//! tolerance from now, in either direction, is refused, so a captured
//! request cannot be replayed later.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Stripe's default tolerance.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// The longest signature header looked at.
const MAX_HEADER: usize = 4096;
/// The most `v1` signatures looked at.
const MAX_SIGNATURES: usize = 16;

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is not `t=…,v1=…`.
    #[error("malformed signature header: {0}")]
    Malformed(&'static str),
    /// No `v1` signature matches any of the secrets.
    #[error("no signature matches")]
    NoMatch,
    /// The timestamp is too far from now.
    #[error("timestamp {timestamp} is {off} s from now, more than the {tolerance} s tolerated")]
    OutsideTolerance {
        /// The signed timestamp.
        timestamp: u64,
        /// How far it is from now, in seconds.
        off: u64,
        /// The tolerance in seconds.
        tolerance: u64,
    },
}

/// Checks `header` for `payload` against any of `secrets` at `now` (unix
/// seconds); returns the signed timestamp.
pub fn verify(
    header: &str,
    payload: &[u8],
    secrets: &[&[u8]],
    now: u64,
    tolerance: Duration,
) -> Result<u64, SignatureError> {
    if header.len() > MAX_HEADER {
        return Err(SignatureError::Malformed("too long"));
    }
    let mut timestamp = None;
    let mut signatures: Vec<[u8; 32]> = Vec::new();
    for item in header.split(',') {
        let (key, value) = item
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed("an item without '='"))?;
        match key {
            "t" if timestamp.is_none() => {
                timestamp = Some(
                    value
                        .parse::<u64>()
                        .map_err(|_| SignatureError::Malformed("t is not a unix time"))?,
                );
            }
            "t" => return Err(SignatureError::Malformed("t given twice")),
            "v1" if signatures.len() < MAX_SIGNATURES => {
                let mut sig = [0u8; 32];
                // A v1 that is not 64 hex digits cannot match; skip it.
                if hex::decode_to_slice(value, &mut sig).is_ok() {
                    signatures.push(sig);
                }
            }
            // v0 (test mode) and schemes yet to come are ignored, as Stripe does.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed("no t"))?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed("no v1 signature"));
    }
    let matched = secrets.iter().any(|secret| {
        // `verify_slice` compares in constant time.
        signatures
            .iter()
            .any(|sig| mac(secret, timestamp, payload).verify_slice(sig).is_ok())
    });
    if !matched {
        return Err(SignatureError::NoMatch);
    }
    let off = now.abs_diff(timestamp);
    if off > tolerance.as_secs() {
        return Err(SignatureError::OutsideTolerance {
            timestamp,
            off,
            tolerance: tolerance.as_secs(),
        });
    }
    Ok(timestamp)
}

/// The header value signing `payload` with `secret` at `timestamp`.
pub fn sign(payload: &[u8], secret: &[u8], timestamp: u64) -> String {
    let tag = mac(secret, timestamp, payload).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(tag))
}

fn mac(secret: &[u8], timestamp: u64, payload: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"invoice.paid"}"#;

    #[test]
    fn a_signature_verifies_within_the_tolerance_only() {
        let header = sign(BODY, SECRET, 1_700_000_000);
        assert_eq!(
            verify(&header, BODY, &[SECRET], 1_700_000_100, DEFAULT_TOLERANCE),
            Ok(1_700_000_000)
        );
        for now in [1_700_000_301, 1_699_999_699] {
            assert!(matches!(
                verify(&header, BODY, &[SECRET], now, DEFAULT_TOLERANCE),
                Err(SignatureError::OutsideTolerance { off: 301, .. })
            ));
        }
    }

    #[test]
    fn another_body_secret_or_time_does_not_verify() {
        let header = sign(BODY, SECRET, 1_700_000_000);
        let now = 1_700_000_000;
        let tol = DEFAULT_TOLERANCE;
        assert_eq!(
            verify(&header, b"{}", &[SECRET], now, tol),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(&header, BODY, &[b"whsec_other"], now, tol),
            Err(SignatureError::NoMatch)
        );
        let moved = header.replace("t=1700000000", "t=1700000001");
        assert_eq!(
            verify(&moved, BODY, &[SECRET], now, tol),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn rotation_accepts_any_matching_pair() {
        let old = sign(BODY, b"whsec_old", 10);
        let new = sign(BODY, b"whsec_new", 10);
        let both = format!("{old},v1={}", new.split("v1=").nth(1).unwrap());
        let tol = DEFAULT_TOLERANCE;
        assert_eq!(verify(&both, BODY, &[b"whsec_new"], 10, tol), Ok(10));
        assert_eq!(
            verify(&new, BODY, &[b"whsec_old", b"whsec_new"], 10, tol),
            Ok(10)
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        let tol = DEFAULT_TOLERANCE;
        for header in [
            "",
            "v1=00",
            "t=abc,v1=00",
            "t=1",
            "t=1,t=2,v1=00",
            "nonsense",
        ] {
            assert!(
                matches!(
                    verify(header, BODY, &[SECRET], 1, tol),
                    Err(SignatureError::Malformed(_))
                ),
                "{header:?}"
            );
        }
        let long = format!("t=1,v1={}", "0".repeat(MAX_HEADER));
        assert_eq!(
            verify(&long, BODY, &[SECRET], 1, tol),
            Err(SignatureError::Malformed("too long"))
        );
        // A bad-hex v1 beside a good one does not spoil it.
        let good = sign(BODY, SECRET, 1);
        assert_eq!(
            verify(&format!("{good},v1=zz"), BODY, &[SECRET], 1, tol),
            Ok(1)
        );
    }
}
