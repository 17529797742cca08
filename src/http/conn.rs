//! One client connection: read what the client sent, answer every complete
//! request in it, in order, write the answers out in one go, and wait for
//! more. This is may_minihttp's loop (batched reads and writes, pipelining,
//! buffers reused for the life of the connection) with the framing rules of
//! `framing.rs`, the timeouts of `limits.rs`, and an answer for every request
//! that cannot be served instead of a dropped connection.

use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

use may::io::WaitIo;
use may::net::TcpStream;

use super::framing::{parse_head, BodyKind, ChunkedDecoder, FrameError, Framing, Parsed};
use super::limits::{
    INITIAL_BUFFER_BYTES, MAX_HEADERS, MAX_HEAD_BYTES, MIN_READ_SPACE, REAPER_TICK,
    WRITE_FLUSH_BYTES,
};
use super::request::{split_target, usable_request_id, IdBlock, Request};
use super::response::{Response, ResponseMeta};
use super::server::Shared;
use crate::time::{write_http_date, Civil, HTTP_DATE_LEN};

/// What the shutdown controller may do with a connection, by its state.
pub(crate) struct ConnSlot {
    pub(crate) fd: i32,
    state: AtomicU8,
    /// When the current wait for bytes must end, in the server's coarse
    /// clock (milliseconds); 0 while the connection is not waiting.
    deadline: AtomicU64,
    /// Set by the reaper when it cut a wait short at its deadline.
    timed_out: AtomicBool,
}

const BUSY: u8 = 0;
/// Waiting for the first byte of a new request: safe to close.
const IDLE: u8 = 1;
/// Closed by shutdown: the connection must not start another request.
const CLOSING: u8 = 2;

impl ConnSlot {
    pub(crate) fn new(fd: i32) -> ConnSlot {
        ConnSlot {
            fd,
            state: AtomicU8::new(BUSY),
            deadline: AtomicU64::new(0),
            timed_out: AtomicBool::new(false),
        }
    }

    /// The reaper's side: if the connection's wait is past `now`, ends it.
    /// An idle connection is closed outright; one in the middle of a
    /// request has its read side shut, so that it can still answer `408`.
    pub(crate) fn reap_if_expired(&self, now: u64) {
        let deadline = self.deadline.load(Ordering::Acquire);
        if deadline == 0 || deadline > now {
            return;
        }
        if self.claim_idle() {
            // SAFETY: called with the registry locked: the descriptor is open.
            unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
        } else if !self.timed_out.swap(true, Ordering::AcqRel) {
            // SAFETY: as above.
            unsafe { libc::shutdown(self.fd, libc::SHUT_RD) };
        }
    }

    /// Claims an idle connection for closing; false when it is busy.
    pub(crate) fn claim_idle(&self) -> bool {
        self.state
            .compare_exchange(IDLE, CLOSING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    pub(crate) fn mark_closing(&self) {
        self.state.store(CLOSING, Ordering::Release);
    }

    fn set_idle(&self) -> bool {
        self.state
            .compare_exchange(BUSY, IDLE, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn set_busy(&self) -> bool {
        self.state
            .compare_exchange(IDLE, BUSY, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// What the connection waits for when it needs more bytes.
#[derive(Clone, Copy)]
enum Wait {
    /// A new request: the idle timeout applies.
    Idle,
    /// The rest of a request head: the header deadline applies.
    Head,
    /// More of a body: it must keep arriving.
    Body,
}

enum Step {
    NeedMore(Wait),
    /// Answers are piling up: write them before serving more.
    Flush,
    Close,
}

/// The read buffer: bytes `start..end` are received and not yet consumed.
struct ReadBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl ReadBuf {
    fn pending(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or(&[])
    }

    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            // A large body grew the buffer; give the memory back.
            if self.buf.len() > 4 * INITIAL_BUFFER_BYTES {
                self.buf.truncate(INITIAL_BUFFER_BYTES);
                self.buf.shrink_to_fit();
            }
        }
    }

    /// Space to read into: moves pending bytes to the front and grows the
    /// buffer, up to `limit` bytes in all. Empty when the limit is reached.
    fn spare(&mut self, limit: usize) -> &mut [u8] {
        if self.start > 0 && self.buf.len() - self.end < MIN_READ_SPACE {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < MIN_READ_SPACE && self.buf.len() < limit {
            let grown = (self.buf.len() * 2).max(INITIAL_BUFFER_BYTES).min(limit);
            self.buf.resize(grown, 0);
        }
        let end = self.end;
        self.buf.get_mut(end..).unwrap_or(&mut [])
    }
}

/// The `Date` header value, formatted once per second per connection.
struct DateCache {
    second: i64,
    text: [u8; HTTP_DATE_LEN],
}

impl DateCache {
    /// Follows the server's wall-clock second (kept by the reaper), so that
    /// serving a request reads no clock at all.
    fn refresh(&mut self, shared: &Shared) {
        let second = shared.unix_second();
        if second != self.second {
            self.second = second;
            write_http_date(&Civil::from_unix_micros(second * 1_000_000), &mut self.text);
        }
    }
}

/// Per-request state that survives reads while a body is arriving.
#[derive(Default)]
struct InProgress {
    /// When the connection first waited for the rest of the current head
    /// (coarse clock).
    head_deadline: Option<u64>,
    continue_sent: bool,
    /// Decoder and raw bytes it has used, for a chunked body.
    chunked: Option<(ChunkedDecoder, usize)>,
}

struct Conn<'s> {
    shared: &'s Shared,
    rbuf: ReadBuf,
    wbuf: Vec<u8>,
    /// The handler's extra response headers.
    extra: Vec<u8>,
    /// A decoded chunked body.
    body: Vec<u8>,
    date: DateCache,
    ids: IdBlock,
    current: InProgress,
    read_limit: usize,
}

/// Serves one connection until it closes.
pub(crate) fn serve(stream: &mut TcpStream, shared: &Shared, slot: &ConnSlot) {
    let limits = &shared.limits;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(limits.write_timeout));
    let mut conn = Conn {
        shared,
        rbuf: ReadBuf {
            buf: vec![0; INITIAL_BUFFER_BYTES],
            start: 0,
            end: 0,
        },
        wbuf: Vec::with_capacity(INITIAL_BUFFER_BYTES),
        extra: Vec::new(),
        body: Vec::new(),
        date: DateCache {
            second: i64::MIN,
            text: [0; HTTP_DATE_LEN],
        },
        ids: IdBlock::default(),
        current: InProgress::default(),
        // Room for a head and a body at the limit; chunk framing may add to
        // the raw size of a body, so a chunked one gets twice the limit.
        read_limit: limits
            .max_body_bytes
            .saturating_mul(2)
            .saturating_add(MAX_HEAD_BYTES + MIN_READ_SPACE),
    };
    // Waits are bounded by the reaper (server.rs) through `slot.deadline`,
    // not by socket timeouts: a socket timeout costs a timer per read.
    let _ = stream.set_read_timeout(None);
    // Whether the last read left the socket empty (see `read_some`).
    let mut drained = false;

    loop {
        let wait = match conn.serve_buffered() {
            Step::NeedMore(wait) => wait,
            Step::Flush => {
                if flush(stream, &mut conn.wbuf).is_err() {
                    return;
                }
                continue;
            }
            Step::Close => {
                let _ = flush(stream, &mut conn.wbuf);
                return;
            }
        };
        if flush(stream, &mut conn.wbuf).is_err() {
            return;
        }

        // The coarse clock may lag by a tick: never end a wait early.
        let now = shared.clock_ms() + millis(REAPER_TICK);
        let deadline = match wait {
            Wait::Idle => {
                if shared.draining.is_draining() || !slot.set_idle() {
                    return;
                }
                now + millis(limits.idle_timeout)
            }
            Wait::Head => *conn
                .current
                .head_deadline
                .get_or_insert(now + millis(limits.header_timeout)),
            Wait::Body => now + millis(limits.body_timeout),
        };
        slot.deadline.store(deadline, Ordering::Release);

        let spare = conn.rbuf.spare(conn.read_limit);
        if spare.is_empty() {
            // Only a body at the limit wrapped in a great deal of chunk framing gets here.
            conn.frame_error(FrameError::PayloadTooLarge);
            let _ = flush(stream, &mut conn.wbuf);
            return;
        }
        let asked = spare.len();
        let result = read_some(stream, spare, drained);
        slot.deadline.store(0, Ordering::Release);
        if matches!(wait, Wait::Idle) && !slot.set_busy() {
            // Shutdown or the idle timeout closed this connection.
            return;
        }
        if slot.timed_out.load(Ordering::Acquire) {
            return conn.timed_out(stream);
        }
        match result {
            Ok(0) => return,
            Ok(n) => {
                conn.rbuf.end += n;
                drained = n < asked;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => drained = false,
            Err(_) => return,
        }
    }
}

/// Reads what has arrived, waiting for the socket to become readable when
/// nothing has: a plain non-blocking read and may's `wait_io`, lighter than
/// may's `Read`, which arms a timeout and a cancellation on every wait (the
/// reaper bounds waits here instead).
///
/// `drained` says the previous read returned less than it asked for, so the
/// socket was empty then. may's readiness flag was cleared just before that
/// read, so anything that has arrived since has set it again: the wait can
/// come first, and a keep-alive client that sends its next request only
/// after our answer costs one read per request instead of two (the second
/// being the one that finds nothing).
fn read_some(stream: &mut TcpStream, buf: &mut [u8], drained: bool) -> io::Result<usize> {
    if drained {
        stream.wait_io();
    }
    loop {
        clear_readiness(stream);
        match stream.inner_mut().read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                stream.wait_io();
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// Clears may's readiness flag for the socket, before a read.
#[allow(deprecated)] // may calls it needless for its own `Read`, which resets internally.
fn clear_readiness(stream: &TcpStream) {
    stream.reset_io();
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 2)
}

impl Conn<'_> {
    /// Answers every complete request in the read buffer.
    fn serve_buffered(&mut self) -> Step {
        self.date.refresh(self.shared);
        loop {
            let max_body = self.shared.limits.max_body_bytes;
            let pending = self.rbuf.pending();
            if pending.is_empty() {
                return Step::NeedMore(Wait::Idle);
            }
            let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
            let (req, framing) = match parse_head(pending, &mut headers, max_body) {
                Ok(Parsed::Complete(req, framing)) => (req, framing),
                Ok(Parsed::Partial) => return Step::NeedMore(Wait::Head),
                Err(e) => {
                    self.frame_error(e);
                    return Step::Close;
                }
            };
            let head_len = framing.head_len;
            let after_head = pending.get(head_len..).unwrap_or(&[]);

            let (body, consumed): (&[u8], usize) = match framing.body {
                BodyKind::Empty => (&[], head_len),
                BodyKind::Length(n) => match after_head.get(..n) {
                    Some(body) => (body, head_len + n),
                    None => {
                        send_continue(&mut self.wbuf, &framing, &mut self.current);
                        return Step::NeedMore(Wait::Body);
                    }
                },
                BodyKind::Chunked => {
                    let (decoder, used) = self
                        .current
                        .chunked
                        .get_or_insert_with(|| (ChunkedDecoder::new(), 0));
                    let input = after_head.get(*used..).unwrap_or(&[]);
                    match decoder.decode(input, &mut self.body, max_body) {
                        Ok(progress) => {
                            *used += progress.consumed;
                            if !progress.done {
                                send_continue(&mut self.wbuf, &framing, &mut self.current);
                                return Step::NeedMore(Wait::Body);
                            }
                            (&self.body[..], head_len + *used)
                        }
                        Err(e) => {
                            self.frame_error(e);
                            return Step::Close;
                        }
                    }
                }
            };

            let close = dispatch(
                self.shared,
                &req,
                &framing,
                body,
                Scratch {
                    wbuf: &mut self.wbuf,
                    extra: &mut self.extra,
                    ids: &mut self.ids,
                },
                &self.date.text,
            );
            self.rbuf.consume(consumed);
            self.current = InProgress::default();
            self.body.clear();
            if close {
                return Step::Close;
            }
            if self.wbuf.len() >= WRITE_FLUSH_BYTES {
                return Step::Flush;
            }
        }
    }

    /// Answers a request that cannot be framed; the connection then closes.
    fn frame_error(&mut self, e: FrameError) {
        self.answer_and_close(e.status(), e.code(), e.message());
    }

    fn timed_out(&mut self, stream: &mut TcpStream) {
        self.answer_and_close(408, "request_timeout", "the request did not arrive in time");
        let _ = flush(stream, &mut self.wbuf);
    }

    fn answer_and_close(&mut self, status: u16, code: &str, message: &str) {
        let mut id = [0u8; 32];
        self.shared.ids.next(&mut self.ids, &mut id);
        let request_id = &id[..];
        self.date.refresh(self.shared);
        let mut res = Response::new(&mut self.wbuf, &mut self.extra);
        res.error(status, code, message, None);
        let meta = ResponseMeta {
            date: &self.date.text,
            request_id,
            keep_alive: false,
            minor_version: 1,
            head_only: false,
        };
        res.finish(&meta);
    }
}

/// `100 Continue`, once per request, when the client asked to wait for it.
fn send_continue(wbuf: &mut Vec<u8>, framing: &Framing, current: &mut InProgress) {
    if framing.expect_continue && !current.continue_sent {
        wbuf.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        current.continue_sent = true;
    }
}

/// The connection's reusable buffers and id block, lent to one dispatch.
struct Scratch<'c> {
    wbuf: &'c mut Vec<u8>,
    extra: &'c mut Vec<u8>,
    ids: &'c mut IdBlock,
}

/// Calls the handler for one request and encodes its answer. Returns whether
/// the connection must close afterwards.
fn dispatch(
    shared: &Shared,
    req: &httparse::Request<'_, '_>,
    framing: &Framing,
    body: &[u8],
    scratch: Scratch<'_>,
    date: &[u8],
) -> bool {
    let Scratch { wbuf, extra, ids } = scratch;
    let method = req.method.unwrap_or("GET");
    let (path, query) = split_target(req.path.unwrap_or("/"));
    let mut generated = [0u8; 32];
    let request_id = match req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("x-request-id"))
        .and_then(|h| usable_request_id(h.value))
    {
        Some(id) => id,
        None => {
            shared.ids.next(ids, &mut generated);
            &generated[..]
        }
    };
    let request = Request {
        method,
        path,
        query,
        headers: req.headers,
        body,
        request_id,
    };

    let mut res = Response::new(wbuf, extra);
    let outcome = catch_unwind(AssertUnwindSafe(|| shared.handler.call(&request, &mut res)));
    if outcome.is_err() {
        // The panic hook has logged what and where.
        crate::log_error!(
            "handler panicked on {method} {path} (request {}); connection closed",
            request.request_id()
        );
        res.error(500, "internal", "internal server error", None);
        res.close_connection();
    }
    let keep_alive = framing.keep_alive && !res.wants_close() && !shared.draining.is_draining();
    let meta = ResponseMeta {
        date,
        request_id,
        keep_alive,
        minor_version: framing.minor_version,
        head_only: method == "HEAD",
    };
    res.finish(&meta);
    !keep_alive
}

/// Writes out and empties the write buffer.
fn flush(stream: &mut TcpStream, wbuf: &mut Vec<u8>) -> io::Result<()> {
    let mut written = 0;
    while let Some(rest) = wbuf.get(written..).filter(|r| !r.is_empty()) {
        match stream.write(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    wbuf.clear();
    if wbuf.capacity() > 4 * WRITE_FLUSH_BYTES {
        wbuf.shrink_to(INITIAL_BUFFER_BYTES);
    }
    Ok(())
}
