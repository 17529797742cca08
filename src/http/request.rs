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
    /// The caller's `X-Request-Id` when usable, else a fresh one (visible ASCII).
    pub(crate) request_id: &'a [u8],
}

impl<'a> Request<'a> {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// The caller's `X-Request-Id` when usable, else a fresh one.
    pub fn request_id(&self) -> &'a str {
        // Visible ASCII by construction.
        std::str::from_utf8(self.request_id).unwrap_or("")
    }
}

/// Splits a request target into path and query.
pub(crate) fn split_target(target: &str) -> (&str, &str) {
    // A byte scan: targets are short, and `?` is ASCII.
    match target.bytes().position(|b| b == b'?') {
        Some(i) => (
            target.get(..i).unwrap_or(""),
            target.get(i + 1..).unwrap_or(""),
        ),
        None => (target, ""),
    }
}

/// A caller's `X-Request-Id` is echoed when it is 1 to 128 visible ASCII
/// characters; anything else could break a log line or a header.
pub(crate) fn usable_request_id(v: &[u8]) -> Option<&[u8]> {
    let usable = !v.is_empty()
        && v.len() <= MAX_REQUEST_ID_LEN
        && v.iter().all(|b| (0x21..=0x7e).contains(b));
    usable.then_some(v)
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

/// Two hex digits per byte value.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [HEX[i >> 4], HEX[i & 0xf]];
        i += 1;
    }
    t
};

fn write_hex(v: u64, out: &mut [u8]) {
    for (pair, byte) in out.chunks_exact_mut(2).zip(v.to_be_bytes()) {
        pair.copy_from_slice(&HEX_PAIRS[byte as usize]);
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
            assert!(b
                .iter()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
            assert!(seen.insert(b));
        }
    }

    #[test]
    fn caller_request_ids() {
        assert_eq!(usable_request_id(b"abc-123"), Some(&b"abc-123"[..]));
        assert_eq!(usable_request_id(b""), None);
        assert_eq!(usable_request_id(b"has space"), None);
        assert_eq!(usable_request_id(&[b'a'; 129]), None);
        assert!(usable_request_id(&[b'a'; 128]).is_some());
    }
}
