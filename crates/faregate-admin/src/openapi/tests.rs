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
