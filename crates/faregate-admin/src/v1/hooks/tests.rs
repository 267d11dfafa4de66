use axum::http::Uri;
use proptest::prelude::*;

use super::*;

/// What `url_shape` checks, as the OpenAPI document writes it.
const URL_PATTERN: &str = concat!(
    "^https?://[A-Za-z0-9.-]+",
    "(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?",
    "([/?][-A-Za-z0-9._~!$&'()*+,;=:@%/?]*)?$"
);

/// What `type_shape` checks.
const TYPE_PATTERN: &str = "^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)*$";

fn document() -> serde_json::Value {
    serde_json::from_str(include_str!("../../openapi.json")).expect("JSON")
}

#[test]
fn the_document_states_the_servers_rules() {
    let doc = document();
    let new = &doc["components"]["schemas"]["NewWebhookEndpoint"]["properties"];
    assert_eq!(new["url"]["pattern"], URL_PATTERN);
    assert_eq!(new["url"]["maxLength"], MAX_URL);
    assert_eq!(new["events"]["maxItems"], MAX_TYPES);
    assert_eq!(new["events"]["items"]["pattern"], TYPE_PATTERN);
    assert_eq!(new["events"]["items"]["maxLength"], MAX_TYPE);
    assert_eq!(new["description"]["maxLength"], MAX_DESCRIPTION);
}

fn url_ok(url: &str) -> bool {
    valid_url(url.to_owned()).is_ok()
}

#[test]
fn urls_the_sender_can_post_to() {
    for good in [
        "http://127.0.0.1:8080/hooks",
        "https://example.com",
        "https://example.com/",
        "https://example.com?x=1",
        "https://hooks.example.com:443/a/b;c?d=e&f=%20g",
        "https://localhost:65535/",
        "http://a:1",
    ] {
        assert!(url_ok(good), "{good}");
        let uri: Uri = good.parse().unwrap_or_else(|e| panic!("{good}: {e}"));
        assert!(uri.authority().is_some(), "{good}");
    }
    for bad in [
        "",
        "example.com/hooks",
        "ftp://example.com/",
        "HTTPS://example.com/",
        "https://",
        "https:///path",
        "https://user:pass@example.com/",
        "https://example.com/#frag",
        "https://example.com/a b",
        "https://example.com:0/",
        "https://example.com:65536/",
        "https://example.com:080/",
        "https://example.com:/",
        "https://exa_mple.com/",
        "https://[::1]/",
        "http://[::1]:9000/x",
        "https://example.com/\u{e9}",
        "https://example.com/\n",
        "https://example.com\n",
    ] {
        assert!(!url_ok(bad), "{bad:?}");
    }
    let long = format!("https://example.com/{}", "a".repeat(MAX_URL));
    assert!(!url_ok(&long));
}

#[test]
fn event_types_are_dotted_snake_case_once_each() {
    let ok = |t: &[&str]| valid_types(t.iter().map(|s| (*s).to_owned()).collect()).is_ok();
    assert!(ok(&["balance.low"]));
    assert!(ok(&[
        "quota.threshold_reached",
        "invoice.payment_failed",
        "a1"
    ]));
    for bad in [
        &[][..],
        &["Balance.low"],
        &["balance..low"],
        &[".low"],
        &["low."],
        &["1abc"],
        &["a-b"],
        &[""],
        &["a", "a"],
    ] {
        assert!(!ok(bad), "{bad:?}");
    }
    let too_many: Vec<String> = (0..=MAX_TYPES).map(|i| format!("t{i}")).collect();
    assert!(valid_types(too_many).is_err());
    assert!(valid_types(vec!["a".repeat(MAX_TYPE + 1)]).is_err());
}

/// The pattern without its anchors, for proptest's generator.
fn unanchored(pattern: &str) -> &str {
    pattern.trim_start_matches('^').trim_end_matches('$')
}

proptest! {
    /// Every URL the document admits is admitted here and is one `http`
    /// parses with its host and port (positive data is never refused).
    #[test]
    fn every_url_the_pattern_admits_is_valid(
        url in proptest::string::string_regex(unanchored(URL_PATTERN)).unwrap()
    ) {
        prop_assert_eq!(url_ok(&url), url.len() <= MAX_URL, "{}", url);
        let uri: Uri = url.parse().map_err(|e| TestCaseError::fail(format!("{url}: {e}")))?;
        let authority = uri.authority().expect("authority");
        if let Some(port) = authority.port() {
            prop_assert_eq!(port.as_u16().to_string(), port.as_str());
        }
    }

    #[test]
    fn every_type_the_pattern_admits_is_valid(
        t in proptest::string::string_regex(unanchored(TYPE_PATTERN)).unwrap()
    ) {
        let fits = t.len() <= MAX_TYPE;
        prop_assert_eq!(valid_types(vec![t]).is_ok(), fits);
    }
}
