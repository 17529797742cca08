//! HTTP/1.1 message framing (RFC 9112): where a request ends, whether the
//! connection stays open after it, and how a chunked body decodes. Every
//! rule that decides how bytes on the wire become requests lives here, so
//! that request smuggling has one place to be ruled out; the functions are
//! pure, and the fuzz target drives them directly.

use std::fmt;

use super::limits::{MAX_CHUNK_LINE_BYTES, MAX_HEADERS, MAX_HEAD_BYTES, MAX_TRAILER_BYTES};

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No `Content-Length` and no `Transfer-Encoding`: no body.
    Empty,
    /// `Content-Length: n`.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// What the head of a request says about its framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    /// Bytes of request line and headers, including the blank line.
    pub head_len: usize,
    pub body: BodyKind,
    /// Whether the connection may carry another request after this one.
    pub keep_alive: bool,
    /// The client sent `Expect: 100-continue` and waits before sending its body.
    pub expect_continue: bool,
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub minor_version: u8,
}

/// A request that cannot be framed. It is answered, and then the connection
/// is closed: nothing after it can be trusted to start a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Malformed request line, header or framing header (`400 bad_request`).
    BadRequest(&'static str),
    /// More headers, or a longer head, than accepted (`431 headers_too_large`).
    HeadersTooLarge,
    /// A body over the limit (`413 payload_too_large`).
    PayloadTooLarge,
    /// A transfer coding other than `chunked` (`501 not_implemented`).
    UnsupportedTransferEncoding,
}

impl FrameError {
    pub fn status(&self) -> u16 {
        match self {
            FrameError::BadRequest(_) => 400,
            FrameError::HeadersTooLarge => 431,
            FrameError::PayloadTooLarge => 413,
            FrameError::UnsupportedTransferEncoding => 501,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            FrameError::BadRequest(_) => "bad_request",
            FrameError::HeadersTooLarge => "headers_too_large",
            FrameError::PayloadTooLarge => "payload_too_large",
            FrameError::UnsupportedTransferEncoding => "not_implemented",
        }
    }

    pub fn message(&self) -> &'static str {
        match self {
            FrameError::BadRequest(m) => m,
            FrameError::HeadersTooLarge => "request headers are too many or too large",
            FrameError::PayloadTooLarge => "request body is larger than the server accepts",
            FrameError::UnsupportedTransferEncoding => {
                "only the chunked transfer coding is supported"
            }
        }
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status(), self.code(), self.message())
    }
}

/// The outcome of looking at the start of a buffer for a request head.
pub enum Parsed<'b, 'h> {
    /// A whole head: the parsed request and what it says about framing.
    Complete(httparse::Request<'h, 'b>, Framing),
    /// More bytes are needed.
    Partial,
}

/// Parses the request head at the start of `buf`, into `headers`, and
/// applies the framing rules. `max_body` is the body limit.
pub fn parse_head<'b, 'h>(
    buf: &'b [u8],
    headers: &'h mut [std::mem::MaybeUninit<httparse::Header<'b>>; MAX_HEADERS],
    max_body: usize,
) -> Result<Parsed<'b, 'h>, FrameError> {
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(buf, headers) {
        Ok(httparse::Status::Complete(head_len)) => {
            if head_len > MAX_HEAD_BYTES {
                return Err(FrameError::HeadersTooLarge);
            }
            let framing = framing(&req, head_len, max_body)?;
            Ok(Parsed::Complete(req, framing))
        }
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => {
            Err(FrameError::HeadersTooLarge)
        }
        Ok(httparse::Status::Partial) => Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => Err(FrameError::HeadersTooLarge),
        Err(httparse::Error::Version) => Err(FrameError::BadRequest("unsupported HTTP version")),
        Err(_) => Err(FrameError::BadRequest("malformed request line or header")),
    }
}

/// The framing rules of RFC 9112 §6 and §9.3 applied to a parsed head.
pub fn framing(
    req: &httparse::Request<'_, '_>,
    head_len: usize,
    max_body: usize,
) -> Result<Framing, FrameError> {
    let minor_version = req.version.unwrap_or(1);
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut chunked = false;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut expect_continue = false;
    let mut hosts = 0;

    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            for item in h.value.split(|&b| b == b',') {
                let n = parse_content_length(trim(item))
                    .ok_or(FrameError::BadRequest("invalid Content-Length"))?;
                match content_length {
                    Some(prev) if prev != n => {
                        return Err(FrameError::BadRequest("conflicting Content-Length values"))
                    }
                    _ => content_length = Some(n),
                }
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Codings are listed in order applied; chunked must come last,
            // and we decode no other.
            for coding in h.value.split(|&b| b == b',') {
                let coding = trim(coding);
                if coding.is_empty() {
                    continue;
                }
                if transfer_encoding && chunked {
                    // Something after chunked: not a framing we can follow.
                    return Err(FrameError::BadRequest(
                        "chunked must be the final transfer coding",
                    ));
                }
                transfer_encoding = true;
                if coding.eq_ignore_ascii_case(b"chunked") {
                    chunked = true;
                } else {
                    return Err(FrameError::UnsupportedTransferEncoding);
                }
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = trim(token);
                if token.eq_ignore_ascii_case(b"close") {
                    conn_close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    conn_keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            if trim(h.value).eq_ignore_ascii_case(b"100-continue") {
                expect_continue = true;
            }
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        }
    }

    if minor_version == 1 && hosts != 1 {
        return Err(FrameError::BadRequest(
            "an HTTP/1.1 request needs exactly one Host header",
        ));
    }
    if transfer_encoding && content_length.is_some() {
        return Err(FrameError::BadRequest(
            "Transfer-Encoding and Content-Length together",
        ));
    }
    if transfer_encoding && minor_version == 0 {
        return Err(FrameError::BadRequest(
            "Transfer-Encoding in an HTTP/1.0 request",
        ));
    }
    let body = match content_length {
        _ if chunked => BodyKind::Chunked,
        Some(0) | None => BodyKind::Empty,
        Some(n) if n > max_body as u64 => return Err(FrameError::PayloadTooLarge),
        Some(n) => BodyKind::Length(n as usize),
    };
    let keep_alive = if minor_version == 1 {
        !conn_close
    } else {
        conn_keep_alive && !conn_close
    };
    Ok(Framing {
        head_len,
        body,
        keep_alive,
        expect_continue: expect_continue && minor_version == 1 && body != BodyKind::Empty,
        minor_version,
    })
}

/// `1*DIGIT`, no sign, no spaces, at most 19 digits so it fits in a u64.
fn parse_content_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| *b != b' ' && *b != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| *b != b' ' && *b != b'\t')
        .map_or(start, |i| i + 1);
    v.get(start..end).unwrap_or(&[])
}

/// Incremental decoder for a chunked body (RFC 9112 §7.1). It is fed the
/// bytes after the head as they arrive, appends the data to `out`, and says
/// how many input bytes it used; the state survives between calls, so a body
/// that trickles in is decoded once, not again on every read.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: ChunkState,
    /// Bytes of the current size line or trailer section seen so far.
    line_len: usize,
    /// Digits of the current chunk size.
    digits: u32,
    size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size,
    SizeWhitespace,
    Extension,
    SizeLf,
    Data(u64),
    DataCr,
    DataLf,
    TrailerLineStart,
    TrailerLine,
    TrailerLf,
    FinalLf,
    Done,
}

/// Progress of one `ChunkedDecoder::decode` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkProgress {
    /// Input bytes used.
    pub consumed: usize,
    /// The last chunk and the trailers are through: the body is complete.
    pub done: bool,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> ChunkedDecoder {
        ChunkedDecoder {
            state: ChunkState::Size,
            line_len: 0,
            digits: 0,
            size: 0,
        }
    }

    /// Decodes from `input`, appending data to `out`, which may hold at most
    /// `max_body` bytes.
    pub fn decode(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        max_body: usize,
    ) -> Result<ChunkProgress, FrameError> {
        const BAD: FrameError = FrameError::BadRequest("malformed chunked body");
        let mut i = 0;
        while i < input.len() {
            if self.state == ChunkState::Done {
                break;
            }
            if let ChunkState::Data(remaining) = self.state {
                let avail = (input.len() - i) as u64;
                let take = remaining.min(avail) as usize;
                out.extend_from_slice(input.get(i..i + take).unwrap_or(&[]));
                i += take;
                let left = remaining - take as u64;
                self.state = if left == 0 {
                    ChunkState::DataCr
                } else {
                    ChunkState::Data(left)
                };
                continue;
            }
            let b = input[i];
            i += 1;
            self.state = match self.state {
                ChunkState::Size | ChunkState::SizeWhitespace | ChunkState::Extension => {
                    self.line_len += 1;
                    if self.line_len > MAX_CHUNK_LINE_BYTES {
                        return Err(BAD);
                    }
                    self.size_line_byte(b)?
                }
                ChunkState::SizeLf => {
                    if b != b'\n' {
                        return Err(BAD);
                    }
                    self.line_len = 0;
                    if self.size == 0 {
                        ChunkState::TrailerLineStart
                    } else {
                        if out.len() as u64 + self.size > max_body as u64 {
                            return Err(FrameError::PayloadTooLarge);
                        }
                        ChunkState::Data(self.size)
                    }
                }
                ChunkState::DataCr if b == b'\r' => ChunkState::DataLf,
                ChunkState::DataLf if b == b'\n' => {
                    self.size = 0;
                    self.digits = 0;
                    ChunkState::Size
                }
                ChunkState::DataCr | ChunkState::DataLf => return Err(BAD),
                ChunkState::TrailerLineStart | ChunkState::TrailerLine | ChunkState::TrailerLf => {
                    self.line_len += 1;
                    if self.line_len > MAX_TRAILER_BYTES {
                        return Err(FrameError::HeadersTooLarge);
                    }
                    match (self.state, b) {
                        (ChunkState::TrailerLineStart, b'\r') => ChunkState::FinalLf,
                        (ChunkState::TrailerLf, b'\n') => ChunkState::TrailerLineStart,
                        (ChunkState::TrailerLf, _) | (_, b'\n') => return Err(BAD),
                        (_, b'\r') => ChunkState::TrailerLf,
                        _ => ChunkState::TrailerLine,
                    }
                }
                ChunkState::FinalLf if b == b'\n' => ChunkState::Done,
                ChunkState::FinalLf => return Err(BAD),
                ChunkState::Data(_) | ChunkState::Done => self.state,
            };
        }
        Ok(ChunkProgress {
            consumed: i,
            done: self.state == ChunkState::Done,
        })
    }

    fn size_line_byte(&mut self, b: u8) -> Result<ChunkState, FrameError> {
        const BAD: FrameError = FrameError::BadRequest("malformed chunk size");
        match self.state {
            ChunkState::Size => {
                if let Some(d) = hex_value(b) {
                    // 15 hex digits is already far past any body limit.
                    if self.digits >= 15 {
                        return Err(FrameError::PayloadTooLarge);
                    }
                    self.digits += 1;
                    self.size = self.size * 16 + u64::from(d);
                    Ok(ChunkState::Size)
                } else if self.digits == 0 {
                    Err(BAD)
                } else {
                    match b {
                        b'\r' => Ok(ChunkState::SizeLf),
                        b';' => Ok(ChunkState::Extension),
                        b' ' | b'\t' => Ok(ChunkState::SizeWhitespace),
                        _ => Err(BAD),
                    }
                }
            }
            ChunkState::SizeWhitespace => match b {
                b' ' | b'\t' => Ok(ChunkState::SizeWhitespace),
                b';' => Ok(ChunkState::Extension),
                b'\r' => Ok(ChunkState::SizeLf),
                _ => Err(BAD),
            },
            _ => match b {
                b'\r' => Ok(ChunkState::SizeLf),
                b'\n' | 0 => Err(BAD),
                _ => Ok(ChunkState::Extension),
            },
        }
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::MaybeUninit;

    fn frame(raw: &str) -> Result<Option<Framing>, FrameError> {
        let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
        match parse_head(raw.as_bytes(), &mut headers, 1000)? {
            Parsed::Complete(_, f) => Ok(Some(f)),
            Parsed::Partial => Ok(None),
        }
    }

    #[test]
    fn content_length_forms() {
        let f = frame("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n").unwrap();
        assert_eq!(f.unwrap().body, BodyKind::Length(5));
        let f = frame("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n").unwrap();
        assert_eq!(f.unwrap().body, BodyKind::Length(5));
        for bad in [
            "abc",
            "-1",
            "+5",
            "5 5",
            "",
            "1,2",
            "99999999999999999999",
            "0x10",
        ] {
            let raw = format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {bad}\r\n\r\n");
            assert!(
                matches!(frame(&raw), Err(FrameError::BadRequest(_))),
                "{bad}"
            );
        }
        let raw = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
        assert!(matches!(frame(raw), Err(FrameError::BadRequest(_))));
        let raw = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n";
        assert_eq!(frame(raw), Err(FrameError::PayloadTooLarge));
    }

    #[test]
    fn transfer_encoding_rules() {
        let raw = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(frame(raw).unwrap().unwrap().body, BodyKind::Chunked);
        let raw = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n";
        assert_eq!(frame(raw), Err(FrameError::UnsupportedTransferEncoding));
        let raw =
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n";
        assert!(matches!(frame(raw), Err(FrameError::BadRequest(_))));
        let raw = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n";
        assert!(matches!(frame(raw), Err(FrameError::BadRequest(_))));
    }

    #[test]
    fn keep_alive_rules() {
        let ka = |raw: &str| frame(raw).unwrap().unwrap().keep_alive;
        assert!(ka("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(!ka(
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ));
        assert!(!ka("GET / HTTP/1.0\r\n\r\n"));
        assert!(ka("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    }

    #[test]
    fn head_limits() {
        let mut raw = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
        for i in 0..MAX_HEADERS {
            raw.push_str(&format!("X-{i}: v\r\n"));
        }
        raw.push_str("\r\n");
        assert_eq!(frame(&raw), Err(FrameError::HeadersTooLarge));
        let long = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX: {}",
            "a".repeat(MAX_HEAD_BYTES)
        );
        assert_eq!(frame(&long), Err(FrameError::HeadersTooLarge));
        assert_eq!(frame("GET / HTTP/1.1\r\nHost: x\r\n").unwrap(), None);
        assert!(matches!(
            frame("GET / HTTP/1.1\r\nHost x\r\n\r\n"),
            Err(FrameError::BadRequest(_))
        ));
        assert!(matches!(
            frame("GET / HTTP/1.1\r\n\r\n"),
            Err(FrameError::BadRequest(_))
        ));
    }

    fn dechunk(input: &[u8], max: usize) -> Result<(Vec<u8>, ChunkProgress), FrameError> {
        let mut out = Vec::new();
        let p = ChunkedDecoder::new().decode(input, &mut out, max)?;
        Ok((out, p))
    }

    #[test]
    fn chunked_decoding() {
        let body =
            b"4\r\nWiki\r\n5;ext=1\r\npedia\r\nE \r\n in\r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let (out, p) = dechunk(body, 100).unwrap();
        assert_eq!(out, b"Wikipedia in\r\n\r\nchunks.");
        assert!(p.done);
        assert_eq!(&body[p.consumed..], b"NEXT");
        assert!(!dechunk(b"5\r\nab", 100).unwrap().1.done);
        assert!(dechunk(b"x\r\n", 100).is_err());
        assert!(dechunk(b"3\r\nabcX", 100).is_err());
        assert!(dechunk(b"3\nabc", 100).is_err());
        assert_eq!(
            dechunk(b"65\r\n", 100).err(),
            Some(FrameError::PayloadTooLarge)
        );
        assert_eq!(
            dechunk(b"ffffffffffffffffff\r\n", 100).err(),
            Some(FrameError::PayloadTooLarge)
        );
    }

    #[test]
    fn chunked_byte_by_byte_equals_whole() {
        let body = b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n";
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let mut done = false;
        for b in body.iter() {
            let p = d.decode(std::slice::from_ref(b), &mut out, 100).unwrap();
            assert_eq!(p.consumed, 1);
            done = p.done;
        }
        assert!(done);
        assert_eq!(out, b"Wikipedia");
    }
}
