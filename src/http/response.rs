//! The response a handler fills in, and its encoding onto the wire.
//!
//! A handler writes its body straight into the connection's write buffer;
//! the head, whose `Content-Length` is known only once the body is, is then
//! slid in front of it. Header names and values are the handler's own
//! (owned, dynamic) strings; `Date`, `Content-Length`, `Content-Type`,
//! `X-Request-Id` and `Connection` are always written by the core.

use std::fmt;
use std::io::{self, Write};

/// A header the core refuses to send: a name that is not a token, a value
/// with a control character, or one the core writes itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidHeader(pub String);

impl fmt::Display for InvalidHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid response header {:?}", self.0)
    }
}

impl std::error::Error for InvalidHeader {}

const JSON: &str = "application/json";

/// Headers the core always writes; a handler may not set them.
const CORE_HEADERS: [&str; 6] = [
    "content-length",
    "content-type",
    "date",
    "x-request-id",
    "connection",
    "transfer-encoding",
];

pub struct Response<'a> {
    status: u16,
    content_type: &'static str,
    /// Extra header lines, `Name: value\r\n` each.
    headers: &'a mut Vec<u8>,
    /// The connection's write buffer; this response's body starts at `body_start`.
    out: &'a mut Vec<u8>,
    body_start: usize,
    close: bool,
}

/// Where a handler writes its body: append-only, into the write buffer.
pub struct Body<'r>(&'r mut Vec<u8>);

impl Write for Body<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.extend_from_slice(buf);
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> Response<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>, headers: &'a mut Vec<u8>) -> Response<'a> {
        headers.clear();
        let body_start = out.len();
        Response {
            status: 200,
            content_type: JSON,
            headers,
            out,
            body_start,
            close: false,
        }
    }

    pub fn set_status(&mut self, status: u16) {
        self.status = status;
    }

    pub fn set_content_type(&mut self, content_type: &'static str) {
        self.content_type = content_type;
    }

    /// Adds a header line. Refused when the name is not an HTTP token, the
    /// value holds a control character, or the core writes that header itself.
    pub fn header(&mut self, name: &str, value: &str) -> Result<(), InvalidHeader> {
        let name_ok = !name.is_empty() && name.bytes().all(is_token_byte);
        let value_ok = value
            .bytes()
            .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f));
        if !name_ok || !value_ok || CORE_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h)) {
            return Err(InvalidHeader(name.to_string()));
        }
        self.headers.extend_from_slice(name.as_bytes());
        self.headers.extend_from_slice(b": ");
        self.headers.extend_from_slice(value.as_bytes());
        self.headers.extend_from_slice(b"\r\n");
        Ok(())
    }

    /// Appends to the body.
    pub fn body(&mut self) -> Body<'_> {
        Body(self.out)
    }

    /// Discards the body and extra headers written so far (to answer an error instead).
    pub fn reset(&mut self) {
        self.out.truncate(self.body_start);
        self.headers.clear();
        self.content_type = JSON;
    }

    /// Closes the connection after this response.
    pub fn close_connection(&mut self) {
        self.close = true;
    }

    pub(crate) fn wants_close(&self) -> bool {
        self.close
    }

    /// Replaces the response with the JSON error of `shared/API.md`:
    /// `{"error":{"code":..,"message":..,"field":..}}`.
    pub fn error(&mut self, status: u16, code: &str, message: &str, field: Option<&str>) {
        self.reset();
        self.status = status;
        write_error_body(self.out, code, message, field);
    }

    /// Writes the head in front of the body. `head_only` drops the body (a
    /// `HEAD` request) but keeps its `Content-Length`.
    pub(crate) fn finish(self, meta: &ResponseMeta<'_>) {
        let body_len = self.out.len() - self.body_start;
        if meta.head_only {
            self.out.truncate(self.body_start);
        }
        // The head is appended after the body, then rotated in front of it.
        let head_start = self.out.len();
        let h = &mut *self.out;
        h.reserve(HEAD_RESERVE + self.headers.len());
        // The commonest heads in as few pieces as possible.
        match (meta.minor_version, self.status) {
            (1, 200) => h.extend_from_slice(b"HTTP/1.1 200 OK\r\nDate: "),
            (1, 201) => h.extend_from_slice(b"HTTP/1.1 201 Created\r\nDate: "),
            (minor, status) => {
                h.extend_from_slice(if minor == 0 {
                    b"HTTP/1.0 "
                } else {
                    b"HTTP/1.1 "
                });
                push_status(h, status);
                h.extend_from_slice(b"\r\nDate: ");
            }
        }
        h.extend_from_slice(meta.date);
        if self.content_type == JSON {
            h.extend_from_slice(b"\r\nContent-Type: application/json\r\nContent-Length: ");
        } else {
            h.extend_from_slice(b"\r\nContent-Type: ");
            h.extend_from_slice(self.content_type.as_bytes());
            h.extend_from_slice(b"\r\nContent-Length: ");
        }
        h.extend_from_slice(itoa::Buffer::new().format(body_len).as_bytes());
        h.extend_from_slice(b"\r\nX-Request-Id: ");
        h.extend_from_slice(meta.request_id);
        h.extend_from_slice(b"\r\n");
        if !meta.keep_alive {
            h.extend_from_slice(b"Connection: close\r\n");
        } else if meta.minor_version == 0 {
            h.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        h.extend_from_slice(self.headers);
        h.extend_from_slice(b"\r\n");
        let head_len = h.len() - head_start;
        if let Some(response) = h.get_mut(self.body_start..) {
            response.rotate_right(head_len);
        }
    }
}

/// Room reserved for a head before it is written (it grows if need be).
const HEAD_RESERVE: usize = 256;

/// What the connection knows about the response that the handler does not.
pub(crate) struct ResponseMeta<'a> {
    pub date: &'a [u8],
    /// Visible ASCII.
    pub request_id: &'a [u8],
    pub keep_alive: bool,
    pub minor_version: u8,
    pub head_only: bool,
}

/// The one JSON error encoder, shared by the core's framing errors and the API's.
pub fn write_error_body(out: &mut Vec<u8>, code: &str, message: &str, field: Option<&str>) {
    #[derive(serde::Serialize)]
    struct Inner<'a> {
        code: &'a str,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        field: Option<&'a str>,
    }
    #[derive(serde::Serialize)]
    struct Outer<'a> {
        error: Inner<'a>,
    }
    let body = Outer {
        error: Inner {
            code,
            message,
            field,
        },
    };
    // Serialising plain strings into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &body);
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn push_status(out: &mut Vec<u8>, status: u16) {
    let status = if (100..=999).contains(&status) {
        status
    } else {
        500
    };
    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
}

/// Reason phrases for the statuses this service sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_is_slid_before_body() {
        let mut out = b"PREVIOUS".to_vec();
        let mut headers = Vec::new();
        let mut r = Response::new(&mut out, &mut headers);
        r.body().write_all(b"{\"a\":1}").unwrap();
        r.header("Location", "/x/1").unwrap();
        assert!(r.header("Content-Length", "1").is_err());
        assert!(r.header("X-Bad", "a\r\nb").is_err());
        assert!(r.header("Bad Name", "v").is_err());
        r.set_status(201);
        let meta = ResponseMeta {
            date: b"Sun, 06 Nov 1994 08:49:37 GMT",
            request_id: b"rid",
            keep_alive: true,
            minor_version: 1,
            head_only: false,
        };
        r.finish(&meta);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "PREVIOUSHTTP/1.1 201 Created\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Content-Type: application/json\r\nContent-Length: 7\r\nX-Request-Id: rid\r\n\
             Location: /x/1\r\n\r\n{\"a\":1}"
        );
    }

    #[test]
    fn error_body_shape() {
        let mut out = Vec::new();
        write_error_body(&mut out, "invalid_field", "say \"hi\"", Some("content"));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["error"]["code"], "invalid_field");
        assert_eq!(v["error"]["message"], "say \"hi\"");
        assert_eq!(v["error"]["field"], "content");
    }
}
