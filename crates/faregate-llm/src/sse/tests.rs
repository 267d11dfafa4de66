use super::*;

fn parse_all(chunks: &[&[u8]]) -> (Vec<SseEvent>, Bytes) {
    let mut p = SseParser::new();
    let mut out = Vec::new();
    for c in chunks {
        p.feed(c);
        while let Some(e) = p.next_event() {
            out.push(e);
        }
    }
    (out, p.take_rest())
}

const STREAM: &[u8] = b": keep-alive\n\nevent: a\r\ndata: one\r\ndata:two\r\n\r\nid: 7\rdata: {\"x\":1}\r\rdata\n\n\ndata: tail";

#[test]
fn reads_fields_and_keeps_raw_bytes() {
    let (events, rest) = parse_all(&[STREAM]);
    let datas: Vec<_> = events.iter().map(|e| e.data()).collect();
    assert_eq!(
        datas,
        [None, Some("one\ntwo"), Some("{\"x\":1}"), Some(""), None]
    );
    assert_eq!(events[1].event(), Some("a"));
    assert_eq!(events[0].raw().as_ref(), b": keep-alive\n\n");
    assert_eq!(events[4].raw().as_ref(), b"\n");
    assert_eq!(rest.as_ref(), b"data: tail");
    let mut joined: Vec<u8> = events.iter().flat_map(|e| e.raw().to_vec()).collect();
    joined.extend_from_slice(&rest);
    assert_eq!(joined, STREAM);
}

#[test]
fn any_split_gives_the_same_events() {
    let (whole, whole_rest) = parse_all(&[STREAM]);
    for i in 0..=STREAM.len() {
        for j in i..=STREAM.len() {
            let (events, rest) = parse_all(&[&STREAM[..i], &STREAM[i..j], &STREAM[j..]]);
            assert_eq!(events, whole, "split at {i},{j}");
            assert_eq!(rest, whole_rest);
        }
    }
}

#[test]
fn byte_by_byte_crlf_is_not_mistaken_for_two_lines() {
    let s = b"data: a\r\n\r\n";
    let chunks: Vec<&[u8]> = s.chunks(1).collect();
    let (events, rest) = parse_all(&chunks);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].raw().as_ref(), s);
    assert!(rest.is_empty());
}

#[test]
fn invalid_utf8_is_replaced_not_fatal() {
    let (events, _) = parse_all(&[b"data: \xff\n\n"]);
    assert_eq!(events[0].data(), Some("\u{fffd}"));
}

mod props {
    use super::*;
    use proptest::prelude::*;

    /// Bytes drawn mostly from the SSE alphabet, so that fields, comments
    /// and every kind of line ending turn up often.
    fn wire() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            Just(b'\n'),
            Just(b'\r'),
            Just(b':'),
            Just(b' '),
            Just(b'd'),
            Just(b'a'),
            Just(b't'),
            any::<u8>(),
        ];
        proptest::collection::vec(byte, 0..200)
    }

    proptest! {
        #[test]
        fn splits_never_change_events_and_no_byte_is_lost(
            stream in wire(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut offsets: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            offsets.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut at = 0;
            for o in offsets {
                chunks.push(&stream[at..o]);
                at = o;
            }
            chunks.push(&stream[at..]);
            let whole = parse_all(&[&stream]);
            let split = parse_all(&chunks);
            prop_assert_eq!(&split, &whole);
            let mut joined: Vec<u8> = whole.0.iter().flat_map(|e| e.raw().to_vec()).collect();
            joined.extend_from_slice(&whole.1);
            prop_assert_eq!(joined, stream);
        }
    }
}
