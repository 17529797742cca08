//! API keys (`API_KEY`, comma-separated for rotation), taken from
//! `Authorization: Bearer <key>` or `apikey: <key>` and compared in constant
//! time, so that response timing says nothing about how much of a key matched.

use crate::http::Request;

pub struct Keys {
    keys: Vec<Vec<u8>>,
}

impl Keys {
    pub fn new(keys: &[String]) -> Keys {
        Keys {
            keys: keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
        }
    }

    /// True when no key is configured.
    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether the request carries one of the keys.
    pub fn allows(&self, req: &Request<'_>) -> bool {
        if self.is_open() {
            return true;
        }
        let bearer = req.header("authorization").and_then(|v| {
            let (scheme, token) = split_once(v, b' ')?;
            scheme.eq_ignore_ascii_case(b"bearer").then(|| trim(token))
        });
        let apikey = req.header("apikey").map(trim);
        [bearer, apikey]
            .into_iter()
            .flatten()
            .any(|presented| self.matches(presented))
    }

    /// Compares against every key, without stopping at the first match.
    fn matches(&self, presented: &[u8]) -> bool {
        let mut found = false;
        for key in &self.keys {
            found |= constant_time_eq(key, presented);
        }
        found
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn split_once(v: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let i = v.iter().position(|b| *b == sep)?;
    Some((&v[..i], &v[i + 1..]))
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| *b != b' ').unwrap_or(v.len());
    let end = v.iter().rposition(|b| *b != b' ').map_or(start, |i| i + 1);
    &v[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
