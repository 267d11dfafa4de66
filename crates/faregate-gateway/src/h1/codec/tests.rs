use super::*;

fn parse(text: &str) -> (Parsed, BytesMut) {
    let mut buf = BytesMut::from(text.as_bytes());
    let parsed = parse_request(&mut buf);
    (parsed, buf)
}

fn head(text: &str) -> (RequestHead, BytesMut) {
    match parse(text) {
        (Parsed::Head(h), rest) => (h, rest),
        (other, _) => panic!("{text:?} gave {other:?}"),
    }
}

#[test]
fn a_head_becomes_a_request_and_what_follows_stays_buffered() {
    let (h, rest) =
        head("GET /a/b?x=1 HTTP/1.1\r\nHost: Example.com\r\nX-Two: 1\r\nx-two: 2\r\n\r\nGET /next");
    assert_eq!(h.request.method(), Method::GET);
    assert_eq!(h.request.uri().path(), "/a/b");
    assert_eq!(h.request.uri().query(), Some("x=1"));
    assert_eq!(h.request.headers()["host"], "Example.com");
    let twos: Vec<_> = h.request.headers().get_all("x-two").iter().collect();
    assert_eq!(twos, ["1", "2"]);
    assert_eq!(h.body, Framing::None);
    assert!(h.keep_alive && !h.unusual && !h.ambiguous);
    assert!(h.raw.starts_with(b"GET /a/b") && h.raw.ends_with(b"\r\n\r\n"));
    assert_eq!(&rest[..], b"GET /next");
}

#[test]
fn partial_heads_wait_for_more() {
    for text in ["", "GET / HT", "GET / HTTP/1.1\r\nHost: a\r\n"] {
        assert!(matches!(parse(text).0, Parsed::Partial), "{text:?}");
    }
}

#[test]
fn the_body_framing_follows_rfc_9112() {
    let (h, _) = head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n");
    assert_eq!(h.body, Framing::Length(12));
    let (h, _) = head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(h.body, Framing::None);
    let (h, _) = head("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n");
    assert_eq!(h.body, Framing::Chunked);
    let (h, _) = head(
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    assert_eq!(h.body, Framing::Chunked);
    assert!(h.ambiguous, "both: read as chunked, then closed");
    let (h, _) =
        head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(h.body, Framing::Length(5));
    let (h, _) =
        head("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    assert!(h.expect_continue);
}

#[test]
fn broken_heads_are_invalid() {
    for text in [
        "GARBAGE\x01 / HTTP/9\r\n\r\n",
        "GET / HTTP/9.9\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        "GET /a b HTTP/1.1\r\n\r\n",
    ] {
        assert!(
            matches!(parse(text).0, Parsed::Invalid(_)),
            "{text:?} accepted"
        );
    }
}

#[test]
fn what_hyper_serves_is_marked_unusual() {
    for text in [
        "GET / HTTP/1.0\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
    ] {
        assert!(head(text).0.unusual, "{text:?}");
    }
    let (h, _) = head("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n");
    assert!(!h.keep_alive && !h.unusual);
}

#[test]
fn many_fields_are_parsed_and_too_many_refused() {
    let fields = |n: usize| (0..n).map(|i| format!("X-F{i}: v\r\n")).collect::<String>();
    let (h, _) = head(&format!("GET / HTTP/1.1\r\n{}\r\n", fields(200)));
    assert_eq!(h.request.headers().len(), 200);
    let text = format!("GET / HTTP/1.1\r\n{}\r\n", fields(MAX_FIELDS + 1));
    assert!(matches!(parse(&text).0, Parsed::TooManyFields));
}

#[test]
fn lengths_are_digits_only() {
    assert_eq!(parse_length(b" 42 "), Some(42));
    assert_eq!(parse_length(b"0"), Some(0));
    for bad in [&b""[..], b"4 2", b"+1", b"0x10", b"1234567890123456789"] {
        assert_eq!(parse_length(bad), None, "{bad:?}");
    }
}
