//! Shared test support: a server on an ephemeral port with the test's own
//! handler, and a raw HTTP/1.1 client over a real socket, so that tests can
//! send exactly the bytes a rule is about.
#![allow(dead_code)]

pub mod pg;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use message_service::http::{DrainFlag, Handler, Limits, Server, ServerConfig};

/// Worker threads for test servers (the machines have 2 cores).
pub const TEST_WORKERS: usize = 2;

/// A running server; shut down when dropped.
pub struct TestServer {
    pub server: Option<Server>,
    pub addr: SocketAddr,
    pub draining: DrainFlag,
}

impl TestServer {
    pub fn start(handler: impl Handler, limits: Limits) -> TestServer {
        let draining = DrainFlag::new();
        let config = ServerConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            workers: TEST_WORKERS,
            limits,
        };
        let server = Server::start(config, Arc::new(handler), draining.clone()).unwrap();
        let addr = server.local_addr();
        TestServer {
            server: Some(server),
            addr,
            draining,
        }
    }

    pub fn connect(&self) -> TcpStream {
        connect(self.addr)
    }

    /// Stops the server, returning whether every connection finished in time.
    pub fn shutdown(&mut self, timeout: Duration) -> bool {
        self.server
            .take()
            .map(|s| s.shutdown(timeout))
            .unwrap_or(true)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown(Duration::from_millis(200));
    }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// A response as read off the wire.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }
}

/// Reads responses off one connection, keeping bytes past the current one.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn new(stream: TcpStream) -> Client {
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn connect(addr: SocketAddr) -> Client {
        Client::new(connect(addr))
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// The next response; `None` when the server closed the connection first.
    /// `head_only` for answers to `HEAD`, which carry no body.
    pub fn read_response_with(&mut self, head_only: bool) -> Option<RawResponse> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut headers);
            if let Ok(httparse::Status::Complete(n)) = resp.parse(&self.buf) {
                let status = resp.code.unwrap();
                let headers: Vec<(String, String)> = resp
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                let len = if head_only || status == 100 {
                    0
                } else {
                    headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                        .map(|(_, v)| v.parse::<usize>().unwrap())
                        .expect("every response carries Content-Length")
                };
                while self.buf.len() < n + len {
                    if !self.fill() {
                        panic!("connection closed inside a response body");
                    }
                }
                let body = self.buf[n..n + len].to_vec();
                self.buf.drain(..n + len);
                return Some(RawResponse {
                    status,
                    headers,
                    body,
                });
            }
            if !self.fill() {
                assert!(
                    self.buf.is_empty(),
                    "partial response: {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
                return None;
            }
        }
    }

    pub fn read_response(&mut self) -> Option<RawResponse> {
        self.read_response_with(false)
    }

    pub fn expect_response(&mut self) -> RawResponse {
        self.read_response()
            .expect("server closed the connection without answering")
    }

    /// True when the server has closed the connection (EOF or reset) with
    /// nothing more to read.
    pub fn is_closed(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        !self.fill()
    }

    /// True when nothing arrives within `wait` (the connection is still open and quiet).
    pub fn is_quiet_for(&mut self, wait: Duration) -> bool {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut b = [0u8; 1];
        let quiet = match self.stream.read(&mut b) {
            Ok(0) => false,
            Ok(_) => {
                self.buf.push(b[0]);
                false
            }
            Err(e) => matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        self.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        quiet
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => false,
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

/// One request on a fresh connection.
pub fn request(addr: SocketAddr, raw: &str) -> RawResponse {
    let mut c = Client::connect(addr);
    c.send(raw.as_bytes());
    c.expect_response()
}

/// Raises this process's open-file limit to its hard limit (tests that hold
/// a thousand connections open need both ends in one process).
pub fn raise_fd_limit() {
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
