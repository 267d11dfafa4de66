use super::*;

fn added() -> Added<'static> {
    Added {
        request_id: "rid",
        rate: None,
        cors: false,
        hold: &[],
        head_request: false,
        close: false,
    }
}

fn relayed(text: &str, added: &Added<'_>) -> (Relayed, String) {
    let mut out = Vec::new();
    match relay(text.as_bytes(), added, &mut out) {
        Head::Relayed(r) => (r, String::from_utf8(out).unwrap()),
        other => panic!("{text:?} gave {other:?}"),
    }
}

fn lines(head: &str) -> Vec<String> {
    head.split("\r\n").map(str::to_lowercase).collect()
}

#[test]
fn a_length_response_is_relayed_with_the_gateways_headers() {
    let up = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nDate: x\r\nX-Request-Id: theirs\r\n\r\n{}";
    let (r, head) = relayed(up, &added());
    assert_eq!(r.status, 200);
    assert_eq!(r.len, up.len() - 2);
    assert_eq!(r.body, Framing::Length(2));
    assert!(r.reusable);
    let l = lines(&head);
    assert_eq!(l[0], "http/1.1 200 ok");
    assert!(l.contains(&"content-type: application/json".into()));
    assert!(l.contains(&"content-length: 2".into()));
    assert!(l.contains(&"x-request-id: rid".into()));
    assert!(!head.contains("theirs"));
    assert_eq!(
        head.matches("ate: ").count(),
        1,
        "the upstream's date kept, none added"
    );
    assert!(head.ends_with("\r\n\r\n"));
}

#[test]
fn hop_by_hop_fields_go_and_the_body_is_framed_again() {
    let up = "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\nTrailer: x\r\nX-Kept: 1\r\n\r\n";
    let (r, head) = relayed(up, &added());
    assert_eq!(r.body, Framing::Chunked);
    let l = lines(&head);
    for gone in ["x-hop", "keep-alive", "trailer", "connection"] {
        assert!(
            !l.iter().any(|f| f.starts_with(&format!("{gone}:"))),
            "{gone} kept: {head}"
        );
    }
    assert!(l.contains(&"transfer-encoding: chunked".into()));
    assert!(l.contains(&"x-kept: 1".into()));
    assert!(l.iter().any(|f| f.starts_with("date: ")), "a date is added");
}

#[test]
fn close_delimited_bodies_are_chunked_and_end_the_upstream_connection() {
    let (r, head) = relayed("HTTP/1.1 200 OK\r\nX: 1\r\n\r\n", &added());
    assert_eq!(r.body, Framing::Close);
    assert!(!r.reusable);
    assert!(head.contains("transfer-encoding: chunked\r\n"));
    let (r, _) = relayed(
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
        &added(),
    );
    assert!(!r.reusable);
    let (r, _) = relayed("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", &added());
    assert!(!r.reusable, "HTTP/1.0 upstreams are not kept");
    let (r, _) = relayed(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        &added(),
    );
    assert_eq!(r.body, Framing::Close);
}

#[test]
fn bodiless_responses_keep_the_announced_length() {
    let head_req = Added {
        head_request: true,
        ..added()
    };
    let (r, head) = relayed("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", &head_req);
    assert_eq!(r.body, Framing::None);
    assert!(head.contains("content-length: 99\r\n"));
    let (r, head) = relayed(
        "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
        &added(),
    );
    assert_eq!(r.body, Framing::None);
    assert!(!head.contains("content-length"));
    let (r, head) = relayed(
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n",
        &added(),
    );
    assert_eq!(r.body, Framing::None);
    assert!(head.contains("content-length: 7\r\n"));
}

#[test]
fn interim_and_broken_heads() {
    let mut out = Vec::new();
    let interim = "HTTP/1.1 100 Continue\r\n\r\n";
    assert_eq!(
        relay(interim.as_bytes(), &added(), &mut out),
        Head::Interim(interim.len())
    );
    for bad in [
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "NOT HTTP\r\n\r\n",
    ] {
        assert!(
            matches!(relay(bad.as_bytes(), &added(), &mut out), Head::Invalid(_)),
            "{bad:?}"
        );
    }
    assert_eq!(
        relay(b"HTTP/1.1 200 OK\r\nX: ", &added(), &mut out),
        Head::Partial
    );
    assert!(out.is_empty(), "nothing written for a head not relayed");
}

#[test]
fn rate_limits_cors_and_the_holds_headers_are_added() {
    let hold = [("quota-remaining", "7".to_owned())];
    let a = Added {
        rate: Some((10, 9, 60)),
        cors: true,
        hold: &hold,
        close: true,
        ..added()
    };
    let up = "HTTP/1.1 200 OK\r\nRateLimit-Limit: 1000\r\nAccess-Control-Allow-Origin: https://a.example\r\nAccess-Control-Expose-Headers: X\r\nContent-Length: 0\r\n\r\n";
    let (_, head) = relayed(up, &a);
    let l = lines(&head);
    assert!(l.contains(&"ratelimit-limit: 10".into()) && !head.contains("1000"));
    assert!(l.contains(&"ratelimit-remaining: 9".into()));
    assert!(l.contains(&"ratelimit-reset: 60".into()));
    assert!(l.contains(&"access-control-allow-origin: https://a.example".into()));
    assert!(!l.contains(&"access-control-allow-origin: *".into()));
    assert!(head.contains("access-control-expose-headers: PAYMENT-REQUIRED"));
    assert!(!l.contains(&"access-control-expose-headers: x".into()));
    assert!(l.contains(&"quota-remaining: 7".into()));
    assert!(l.contains(&"connection: close".into()));
}
