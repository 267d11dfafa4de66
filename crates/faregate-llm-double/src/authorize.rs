//! The provider's key check: `Authorization: Bearer <key>` on OpenAI paths,
//! `x-api-key: <key>` plus `anthropic-version` on Anthropic ones. Anthropic
//! also takes `Authorization: Bearer`, which recent versions of its SDK send
//! instead of `x-api-key`. Keys are compared in constant time.

use http::HeaderMap;
use http::header::AUTHORIZATION;
use subtle::ConstantTimeEq as _;

use crate::problem::{Flavor, Problem};

pub(crate) fn authorize(
    key: Option<&str>,
    flavor: Flavor,
    headers: &HeaderMap,
) -> Result<(), Problem> {
    let Some(key) = key else {
        return Ok(());
    };
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let given = match flavor {
        Flavor::OpenAi => header(AUTHORIZATION.as_str()).and_then(bearer),
        Flavor::Anthropic => {
            header("x-api-key").or_else(|| header(AUTHORIZATION.as_str()).and_then(bearer))
        }
    };
    let Some(given) = given else {
        return Err(Problem::Unauthorized);
    };
    if !bool::from(given.as_bytes().ct_eq(key.as_bytes())) {
        return Err(Problem::Unauthorized);
    }
    if flavor == Flavor::Anthropic && header("anthropic-version").is_none() {
        return Err(Problem::MissingVersion);
    }
    Ok(())
}

/// The credentials of `Bearer <credentials>` (scheme in any case).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (http::HeaderName::from_static(k), v.parse().expect("value")))
            .collect()
    }

    #[test]
    fn checks_each_providers_header() {
        let key = Some("sk-1");
        assert!(authorize(None, Flavor::OpenAi, &HeaderMap::new()).is_ok());
        assert!(
            authorize(
                key,
                Flavor::OpenAi,
                &headers(&[("authorization", "Bearer sk-1")])
            )
            .is_ok()
        );
        assert!(
            authorize(
                key,
                Flavor::OpenAi,
                &headers(&[("authorization", "bearer sk-1")])
            )
            .is_ok()
        );
        assert!(
            authorize(
                key,
                Flavor::OpenAi,
                &headers(&[("authorization", "Bearer sk-2")])
            )
            .is_err()
        );
        assert!(authorize(key, Flavor::OpenAi, &headers(&[("x-api-key", "sk-1")])).is_err());
        let anthropic = headers(&[("x-api-key", "sk-1"), ("anthropic-version", "2023-06-01")]);
        assert!(authorize(key, Flavor::Anthropic, &anthropic).is_ok());
        assert!(matches!(
            authorize(key, Flavor::Anthropic, &headers(&[("x-api-key", "sk-1")])),
            Err(Problem::MissingVersion)
        ));
        assert!(
            authorize(
                key,
                Flavor::Anthropic,
                &headers(&[("authorization", "Bearer sk-1")])
            )
            .is_err()
        );
    }
}
