//! The request a handler sees: borrowed views into the connection's read
//! buffer, so that handing a request to a handler copies nothing.

use super::limits::MAX_REQUEST_ID_LEN;

/// One request, valid for the duration of the handler call.
pub struct Request<'a> {
    /// The method as sent (`GET`, `POST`, ...).
    pub method: &'a str,
    /// The path, without the query string.
    pub path: &'a str,
    /// The query string after `?`, empty when there is none.
    pub query: &'a str,
    /// Request headers in the order received.
    pub headers: &'a [httparse::Header<'a>],
    /// The body, decoded when it was chunked; empty when there is none.
    pub body: &'a [u8],
    /// The caller's `X-Request-Id` when usable, else a fresh one.
    pub request_id: &'a str,
}

impl<'a> Request<'a> {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// The first header of that name, if it is valid UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&'a str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }
}

/// Splits a request target into path and query.
pub(crate) fn split_target(target: &str) -> (&str, &str) {
    match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    }
}

/// A caller's `X-Request-Id` is echoed when it is 1 to 128 visible ASCII
/// characters; anything else could break a log line or a header.
pub(crate) fn usable_request_id(v: &[u8]) -> Option<&str> {
    if v.is_empty() || v.len() > MAX_REQUEST_ID_LEN || !v.iter().all(|b| (0x21..=0x7e).contains(b))
    {
        return None;
    }
    std::str::from_utf8(v).ok()
}

/// Generates request ids: 32 hex digits, unique within the process (a
/// counter through a bijective mix) and unpredictable across processes (a
/// random key), with no system call, no allocation and no shared write per
/// id: each connection takes a block of 2^32 ids at a time.
pub(crate) struct RequestIds {
    key: u64,
    blocks: std::sync::atomic::AtomicU64,
}

/// One connection's share of the ids.
#[derive(Default)]
pub(crate) struct IdBlock {
    next: u64,
    end: u64,
}

impl RequestIds {
    pub(crate) fn new() -> RequestIds {
        use std::hash::{BuildHasher, Hasher};
        // std seeds RandomState from the OS once per thread.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(crate::time::unix_micros_now() as u64);
        RequestIds {
            key: h.finish(),
            blocks: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub(crate) fn next(&self, block: &mut IdBlock, out: &mut [u8; 32]) {
        if block.next == block.end {
            let b = self
                .blocks
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            block.next = b << 32;
            block.end = block.next + (1 << 32);
        }
        let n = block.next;
        block.next += 1;
        let hi = mix(n ^ self.key);
        let lo = mix(hi ^ self.key.rotate_left(17));
        write_hex(hi, &mut out[..16]);
        write_hex(lo, &mut out[16..]);
    }
}

/// SplitMix64's finaliser: a bijection on u64.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn write_hex(v: u64, out: &mut [u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in out.iter_mut().enumerate().take(16) {
        *b = HEX[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_distinct_hex() {
        let ids = RequestIds::new();
        let mut seen = std::collections::HashSet::new();
        let mut blocks = [IdBlock::default(), IdBlock::default()];
        for i in 0..10_000 {
            let mut b = [0u8; 32];
            ids.next(&mut blocks[i % 2], &mut b);
            assert!(b.iter().all(|c| c.is_ascii_hexdigit()));
            assert!(seen.insert(b));
        }
    }

    #[test]
    fn caller_request_ids() {
        assert_eq!(usable_request_id(b"abc-123"), Some("abc-123"));
        assert_eq!(usable_request_id(b""), None);
        assert_eq!(usable_request_id(b"has space"), None);
        assert_eq!(usable_request_id(&[b'a'; 129]), None);
        assert!(usable_request_id(&[b'a'; 128]).is_some());
    }
}
