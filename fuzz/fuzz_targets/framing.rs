//! Fuzzes the request framing rules the way the connection loop uses them:
//! a byte stream is cut into requests (head, then a Content-Length or
//! chunked body) until it runs out or is refused. Checks that nothing
//! panics, that every request consumes bytes and stays inside the buffer,
//! and that a chunked body decodes the same however it is split.
#![no_main]

use std::mem::MaybeUninit;

use libfuzzer_sys::fuzz_target;
use message_service::http::framing::{parse_head, BodyKind, ChunkedDecoder, Parsed};
use message_service::http::limits::MAX_HEADERS;

const MAX_BODY: usize = 4096;

fuzz_target!(|data: &[u8]| {
    // The first byte picks where chunked bodies are split in two.
    let Some((&split, stream)) = data.split_first() else { return };
    let mut pos = 0;
    while pos < stream.len() {
        let buf = &stream[pos..];
        let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
        let framing = match parse_head(buf, &mut headers, MAX_BODY) {
            Ok(Parsed::Complete(_, framing)) => framing,
            Ok(Parsed::Partial) | Err(_) => return,
        };
        assert!(framing.head_len > 0 && framing.head_len <= buf.len());
        let rest = &buf[framing.head_len..];
        let body_len = match framing.body {
            BodyKind::Empty => 0,
            BodyKind::Length(n) => {
                assert!(n <= MAX_BODY);
                if rest.len() < n {
                    return;
                }
                n
            }
            BodyKind::Chunked => {
                let mut whole = Vec::new();
                let p = match ChunkedDecoder::new().decode(rest, &mut whole, MAX_BODY) {
                    Ok(p) => p,
                    Err(_) => return,
                };
                assert!(p.consumed <= rest.len() && whole.len() <= MAX_BODY);
                if !p.done {
                    return;
                }
                // The same bytes in two pieces decode to the same body.
                let cut = (split as usize).min(p.consumed);
                let mut d = ChunkedDecoder::new();
                let mut parts = Vec::new();
                let a = d.decode(&rest[..cut], &mut parts, MAX_BODY).unwrap();
                assert_eq!(a.consumed, cut);
                let b = d.decode(&rest[cut..p.consumed], &mut parts, MAX_BODY).unwrap();
                assert!(b.done && a.consumed + b.consumed == p.consumed);
                assert_eq!(parts, whole);
                p.consumed
            }
        };
        pos += framing.head_len + body_len;
        if !framing.keep_alive {
            return;
        }
    }
});
