//! Access tokens for prepaid bundles: `fgx_<grant id>.<expiry ms>.<mac>`,
//! where the MAC is HMAC-SHA256 over `"<grant id>.<expiry ms>"` with the
//! gateway's token secret. The token names its grant; the calls left live
//! in the store, so every node draws from the same count.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// What every access token starts with.
pub const PREFIX: &str = "fgx_";
/// The longest token looked at.
const MAX_LEN: usize = 256;

/// Makes the token for `grant` good until `expires_ms`.
pub fn issue(secret: &[u8], grant: &str, expires_ms: i64) -> String {
    let claim = format!("{grant}.{expires_ms}");
    format!("{PREFIX}{claim}.{}", hex::encode(mac(secret, &claim)))
}

/// The grant id and expiry of a token this gateway made, or why not.
pub fn check(secret: &[u8], token: &str) -> Result<(String, i64), &'static str> {
    if token.len() > MAX_LEN {
        return Err("the access token is too long");
    }
    let rest = token.strip_prefix(PREFIX).ok_or("not an access token")?;
    let (claim, sig) = rest.rsplit_once('.').ok_or("malformed access token")?;
    let sig = hex::decode(sig).map_err(|_| "malformed access token")?;
    let mut m = HmacSha256::new_from_slice(secret).map_err(|_| "no token secret")?;
    m.update(claim.as_bytes());
    // Constant-time comparison.
    m.verify_slice(&sig)
        .map_err(|_| "the access token was not made by this gateway")?;
    let (grant, expires) = claim.rsplit_once('.').ok_or("malformed access token")?;
    let expires = expires.parse().map_err(|_| "malformed access token")?;
    Ok((grant.to_owned(), expires))
}

fn mac(secret: &[u8], claim: &str) -> Vec<u8> {
    // HMAC takes a key of any length.
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    m.update(claim.as_bytes());
    m.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_checks_only_with_its_secret_and_unaltered() {
        let token = issue(b"secret", "grt_abc", 1_700_000_000_000);
        assert_eq!(
            check(b"secret", &token),
            Ok(("grt_abc".to_owned(), 1_700_000_000_000))
        );
        assert!(check(b"other", &token).is_err());
        let forged = token.replace("1_700".replace('_', "").as_str(), "1800");
        assert!(check(b"secret", &forged).is_err());
        assert!(check(b"secret", "fgx_").is_err());
        assert!(check(b"secret", "fg_live_x").is_err());
        assert!(check(b"secret", &"fgx_a".repeat(100)).is_err());
    }
}
