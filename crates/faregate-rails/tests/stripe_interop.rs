//! Our webhook signatures against Stripe's own library: headers made by
//! npm `stripe` (`webhooks.generateTestHeaderString`) must verify here, and
//! ours must be byte for byte the same. `interop/stripe-signature.sh` makes
//! the vectors with the real library and runs this with
//! `FAREGATE_STRIPE_VECTORS` set; without it the test says it is skipped.

use faregate_rails::signature::{DEFAULT_TOLERANCE, SignatureError, sign, verify};

#[test]
fn stripe_made_headers_verify_and_ours_are_identical() {
    let Ok(path) = std::env::var("FAREGATE_STRIPE_VECTORS") else {
        eprintln!(
            "stripe_made_headers_verify_and_ours_are_identical: skipped: \
             FAREGATE_STRIPE_VECTORS is not set (run interop/stripe-signature.sh)"
        );
        return;
    };
    let text = std::fs::read_to_string(&path).expect("vectors file");
    let vectors: Vec<serde_json::Value> = serde_json::from_str(&text).expect("vectors JSON");
    assert!(vectors.len() >= 50, "too few vectors: {}", vectors.len());
    for v in &vectors {
        let payload = v["payload"].as_str().unwrap().as_bytes();
        let secret = v["secret"].as_str().unwrap().as_bytes();
        let t = v["timestamp"].as_u64().unwrap();
        let header = v["header"].as_str().unwrap();
        assert_eq!(sign(payload, secret, t), header, "our header for {v}");
        assert_eq!(
            verify(header, payload, &[secret], t + 60, DEFAULT_TOLERANCE),
            Ok(t)
        );
        assert_eq!(
            verify(header, b"tampered", &[secret], t, DEFAULT_TOLERANCE),
            Err(SignatureError::NoMatch)
        );
        assert!(matches!(
            verify(header, payload, &[secret], t + 301, DEFAULT_TOLERANCE),
            Err(SignatureError::OutsideTolerance { .. })
        ));
    }
}
