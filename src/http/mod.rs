//! Our HTTP/1.1 server core on `may` and `httparse`.
//!
//! It exists because may_minihttp 0.1.11 drops requests with more than 16
//! headers, panics on a malformed `Content-Length`, never answers a parse
//! error and binds a single listener; this core keeps what makes it fast
//! (batched reads and writes, pipelining, buffers reused per connection, no
//! allocation per request) and answers every request it cannot serve.
//!
//! It knows nothing of messages or databases: a [`Handler`] is given each
//! request and fills in a [`Response`].

mod conn;
pub mod framing;
pub mod limits;
pub mod request;
pub mod response;
pub mod server;

pub use limits::Limits;
pub use request::Request;
pub use response::{Body, InvalidHeader, Response};
pub use server::{init_runtime, DrainFlag, Server, ServerConfig};

/// What the server calls for every request. It runs on a coroutine: it may
/// block on coroutine-aware I/O, never on a thread-blocking call. A panic in
/// it costs that request a `500` and its connection, nothing more.
pub trait Handler: Send + Sync + 'static {
    fn call(&self, req: &Request<'_>, res: &mut Response<'_>);
}

impl<F> Handler for F
where
    F: Fn(&Request<'_>, &mut Response<'_>) + Send + Sync + 'static,
{
    fn call(&self, req: &Request<'_>, res: &mut Response<'_>) {
        self(req, res)
    }
}
