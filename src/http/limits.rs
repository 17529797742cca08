//! Every limit and timeout of the HTTP core, in one place. The constants are
//! compiled in (they size stack arrays); `Limits` is what configuration sets.

use std::time::Duration;

/// Request headers accepted; one more is `431`. Ingress controllers and
/// service meshes add a dozen or more of their own.
pub const MAX_HEADERS: usize = 100;

/// Bytes of request head (request line and headers) accepted; more is `431`.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Bytes of one chunk-size line (size plus extensions) in a chunked body.
pub const MAX_CHUNK_LINE_BYTES: usize = 1024;

/// Bytes of trailer section after a chunked body.
pub const MAX_TRAILER_BYTES: usize = MAX_HEAD_BYTES;

/// Longest caller-supplied `X-Request-Id` echoed back.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Read and write buffers start at this size and are reused for the life of
/// the connection.
pub const INITIAL_BUFFER_BYTES: usize = 8 * 1024;

/// Free space guaranteed in the read buffer before each read.
pub const MIN_READ_SPACE: usize = 4 * 1024;

/// Answers queued for a pipelining client are written out once they exceed
/// this, instead of all at the end of the batch.
pub const WRITE_FLUSH_BYTES: usize = 64 * 1024;

/// How often the reaper ends waits past their deadline (idle, header and
/// body timeouts are enforced to within this).
pub const REAPER_TICK: std::time::Duration = std::time::Duration::from_millis(100);

/// Limits that configuration may change.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body (`MAX_BODY_BYTES`); more is `413`.
    pub max_body_bytes: usize,
    /// A request head must arrive within this once its first byte has (slowloris).
    pub header_timeout: Duration,
    /// Keep-alive connections idle for this long are closed.
    pub idle_timeout: Duration,
    /// A request body must make progress at least this often.
    pub body_timeout: Duration,
    /// A response write must make progress at least this often.
    pub write_timeout: Duration,
    /// Open connections at once across all workers; more are answered `503` and closed.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body_bytes: 1 << 20,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            max_connections: 10_000,
        }
    }
}
