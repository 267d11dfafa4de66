use std::collections::BTreeSet;

use serde_json::Value;

use super::DOCUMENT;
use crate::problem::Code;
use crate::v1::endpoints;

fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("openapi.json is JSON")
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// `(method, path)` of every operation the document describes.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            let item = item.as_object().expect("path item");
            item.keys()
                .filter(|k| METHODS.contains(&k.as_str()))
                .map(|m| (m.clone(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn is_openapi_3_1() {
    let doc = document();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
    assert!(doc["info"]["title"].is_string());
    assert_eq!(
        doc["components"]["securitySchemes"]["adminToken"]["scheme"],
        "bearer"
    );
}

#[test]
fn describes_every_v1_route_and_no_other() {
    let doc = document();
    let served: BTreeSet<(String, String)> = endpoints()
        .iter()
        .map(|e| (e.method.as_str().to_ascii_lowercase(), e.path.to_owned()))
        .collect();
    let described: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .filter(|(_, p)| p.starts_with("/v1/"))
        .collect();
    assert_eq!(served, described);
    for public in ["/metrics", "/healthz", "/openapi.json"] {
        assert!(doc["paths"][public]["get"].is_object(), "{public}");
    }
}

#[test]
fn every_v1_operation_needs_the_token_and_public_ones_do_not() {
    let doc = document();
    assert_eq!(doc["security"], serde_json::json!([{"adminToken": []}]));
    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][&method];
        assert!(op["operationId"].is_string(), "{method} {path}");
        assert!(op["responses"].is_object(), "{method} {path}");
        let public = op["security"] == serde_json::json!([]);
        assert_eq!(public, !path.starts_with("/v1/"), "{method} {path}");
    }
}

#[test]
fn lists_every_problem_code() {
    let doc = document();
    let listed: BTreeSet<&str> =
        doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
            .as_array()
            .expect("Problem.code.enum")
            .iter()
            .map(|c| c.as_str().expect("code"))
            .collect();
    let codes: BTreeSet<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(listed, codes);
}

#[test]
fn every_reference_resolves() {
    let doc = document();
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let pointer = r.strip_prefix('#').expect("local reference");
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// Cursors are `seq`s, which the server reads as `i64`: a larger `before`
/// was schema-valid yet refused (found by schemathesis).
#[test]
fn cursors_are_int64() {
    let doc = document();
    let before = &doc["components"]["parameters"]["Before"]["schema"];
    assert_eq!(before["format"], "int64");
    assert_eq!(before["minimum"].as_i64(), Some(i64::MIN));
    assert_eq!(before["maximum"].as_i64(), Some(i64::MAX));
}

/// `since` and `until` are unix seconds in the range the server reads, or
/// any `date-time`; an empty string was schema-valid yet refused (found by
/// schemathesis).
#[test]
fn instants_in_queries_are_seconds_or_date_times() {
    let doc = document();
    for name in ["Since", "Until"] {
        let any_of = &doc["components"]["parameters"][name]["schema"]["anyOf"];
        assert_eq!(any_of[0]["type"], "integer", "{name}");
        assert_eq!(any_of[0]["minimum"], 0, "{name}");
        assert_eq!(any_of[0]["maximum"], crate::time::MAX_SECONDS, "{name}");
        assert_eq!(
            any_of[1],
            serde_json::json!({"type": "string", "format": "date-time"})
        );
    }
}

/// A character class of the document's patterns: `[^…]` or `[…]` holding
/// `\uXXXX` or `\xXX` characters and ranges of them.
#[derive(Debug, PartialEq)]
struct Class {
    negated: bool,
    ranges: Vec<(u32, u32)>,
}

impl Class {
    fn matches(&self, c: char) -> bool {
        let inside = self
            .ranges
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&u32::from(c)));
        inside != self.negated
    }
}

/// `pattern` with each class replaced by `C`, and the classes in order.
fn classes(pattern: &str) -> (String, Vec<Class>) {
    let mut shape = String::new();
    let mut found = Vec::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('[') {
        shape.push_str(&rest[..open]);
        let close = open + rest[open..].find(']').expect("a closed class");
        let body = &rest[open + 1..close];
        let (negated, body) = match body.strip_prefix('^') {
            Some(b) => (true, b),
            None => (false, body),
        };
        found.push(Class {
            negated,
            ranges: ranges(body),
        });
        shape.push('C');
        rest = &rest[close + 1..];
    }
    shape.push_str(rest);
    (shape, found)
}

fn ranges(mut body: &str) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let lo = escaped(&mut body);
        let hi = match body.strip_prefix('-') {
            Some(rest) => {
                body = rest;
                escaped(&mut body)
            }
            None => lo,
        };
        out.push((lo, hi));
    }
    out
}

/// The `\uXXXX` or `\xXX` at the start of `body`, which moves past it.
fn escaped(body: &mut &str) -> u32 {
    let digits = match body.get(..2) {
        Some("\\u") => 4,
        Some("\\x") => 2,
        _ => panic!("not an escaped character: {body}"),
    };
    let c = u32::from_str_radix(&body[2..2 + digits], 16).expect("hex");
    *body = &body[2 + digits..];
    c
}

/// Every `char`; the patterns are checked against the server's own
/// predicates on all of them.
fn every_char() -> impl Iterator<Item = char> {
    (0..=u32::from(char::MAX)).filter_map(char::from_u32)
}

/// The name pattern says what `valid_name` checks (no `char::is_control`,
/// not blank by `str::trim`, which is `char::is_whitespace`): names with
/// control characters were schema-valid yet refused (found by
/// schemathesis).
#[test]
fn the_name_pattern_is_the_servers_rule() {
    let doc = document();
    let name = &doc["components"]["schemas"]["NewAccount"]["properties"]["name"];
    let (shape, c) = classes(name["pattern"].as_str().expect("pattern"));
    assert_eq!(shape, "^C*CC*$");
    assert_eq!(c[0], c[2]);
    for ch in every_char() {
        assert_eq!(c[0].matches(ch), !ch.is_control(), "{ch:?}");
        let visible = !ch.is_control() && !ch.is_whitespace();
        assert_eq!(c[1].matches(ch), visible, "{ch:?}");
    }
}

/// A reason holds at least one character that is not white space, as
/// `valid_reason` checks.
#[test]
fn the_reason_pattern_is_the_servers_rule() {
    let doc = document();
    let reason = &doc["components"]["schemas"]["NewCredit"]["properties"]["reason"];
    let (shape, c) = classes(reason["pattern"].as_str().expect("pattern"));
    assert_eq!(shape, "C");
    for ch in every_char() {
        assert_eq!(c[0].matches(ch), !ch.is_whitespace(), "{ch:?}");
    }
}

/// An Idempotency-Key is printable ASCII, as the server checks, but neither
/// starts nor ends with a space: HTTP drops those, so a key `" "` that the
/// document allowed arrived empty and was refused.
#[test]
fn the_idempotency_key_pattern_is_what_http_carries() {
    let doc = document();
    let schema = &doc["components"]["parameters"]["IdempotencyKey"]["schema"];
    assert_eq!(
        (schema["minLength"].as_u64(), schema["maxLength"].as_u64()),
        (Some(1), Some(255))
    );
    let (shape, c) = classes(schema["pattern"].as_str().expect("pattern"));
    assert_eq!(shape, "^C(C*C)?$");
    assert_eq!(c[0], c[2]);
    for ch in every_char() {
        assert_eq!(c[0].matches(ch), ('!'..='~').contains(&ch), "{ch:?}");
        assert_eq!(c[1].matches(ch), (' '..='~').contains(&ch), "{ch:?}");
    }
}
