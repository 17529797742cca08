//! Listening, accepting and stopping: one `SO_REUSEPORT` listener per may
//! worker on the same address (Fiber's prefork, in one process), a
//! coroutine per connection on the worker that accepted it, a cap on open
//! connections, and a graceful shutdown that lets in-flight requests finish.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use may::coroutine::{Builder, JoinHandle};
use may::go;
use may::net::{TcpListener, TcpStream};

use super::conn::{self, ConnSlot};
use super::limits::{Limits, REAPER_TICK};
use super::request::{IdBlock, RequestIds};
use super::response::{Response, ResponseMeta};
use super::Handler;
use crate::time::{write_http_date, Civil, HTTP_DATE_LEN};

/// Coroutine stack size, in machine words. serde_json's recursion limit
/// (128 levels) and the handler stack fit with a wide margin; pages that are
/// never touched cost no memory.
pub const COROUTINE_STACK_WORDS: usize = 32 * 1024;

/// Sets up the may runtime: `workers` threads, not pinned to cores (pinning
/// to cores 0..n of a shared Kubernetes node would stack every pod on the
/// same cores). Only the first call has any effect.
pub fn init_runtime(workers: usize) {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let cfg = may::config();
        cfg.set_workers(workers.max(1))
            .set_stack_size(COROUTINE_STACK_WORDS);
        cfg.set_worker_pin(false);
    });
}

/// Set when a graceful shutdown begins; `/ready` reads it.
#[derive(Clone, Default)]
pub struct DrainFlag(Arc<AtomicBool>);

impl DrainFlag {
    pub fn new() -> DrainFlag {
        DrainFlag::default()
    }

    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    pub fn begin(&self) {
        self.0.store(true, Ordering::Release);
    }
}

pub struct ServerConfig {
    pub addr: SocketAddr,
    /// Listeners (one per worker).
    pub workers: usize,
    pub limits: Limits,
}

/// State shared by the acceptors, the connections and the shutdown controller.
pub(crate) struct Shared {
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) limits: Limits,
    pub(crate) draining: DrainFlag,
    pub(crate) ids: RequestIds,
    open: AtomicUsize,
    next_id: AtomicU64,
    /// Milliseconds since `epoch`, advanced by the reaper every tick.
    clock: AtomicU64,
    epoch: Instant,
    /// The wall clock's current second, for the `Date` header.
    unix_second: AtomicI64,
    stopped: AtomicBool,
    /// Live connections, so that shutdown can close the idle ones. An entry
    /// is removed before its socket is closed, and shutdown holds the lock
    /// while it closes, so a descriptor number is never reused under it.
    conns: Mutex<HashMap<u64, Arc<ConnSlot>>>,
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptors: Vec<JoinHandle<()>>,
}

impl Server {
    /// Binds one listener per worker and starts accepting. Port 0 picks a
    /// free port, shared by all the listeners.
    pub fn start(
        config: ServerConfig,
        handler: Arc<dyn Handler>,
        draining: DrainFlag,
    ) -> io::Result<Server> {
        init_runtime(config.workers);
        let workers = config.workers.max(1);
        let first = TcpListener::bind(config.addr)?;
        let addr = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..workers {
            listeners.push(TcpListener::bind(addr)?);
        }

        let shared = Arc::new(Shared {
            handler,
            limits: config.limits,
            draining,
            ids: RequestIds::new(),
            open: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            // Starts past zero: a deadline of 0 means "none".
            clock: AtomicU64::new(1),
            epoch: Instant::now(),
            unix_second: AtomicI64::new(crate::time::unix_micros_now().div_euclid(1_000_000)),
            stopped: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
        });
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("http-reaper".into())
            .spawn(move || reaper(weak))?;
        let mut acceptors = Vec::with_capacity(workers);
        for (worker, listener) in listeners.into_iter().enumerate() {
            let shared = shared.clone();
            // may polls a descriptor on worker `fd % workers`: running the
            // coroutine there too saves a cross-thread wake-up per event.
            let on = listener.as_raw_fd() as usize;
            let builder = Builder::new().name(format!("accept-{worker}")).id(on);
            acceptors.push(go!(builder, move || accept_loop(listener, shared, worker))?);
        }
        Ok(Server {
            addr,
            shared,
            acceptors,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::Acquire)
    }

    /// Graceful shutdown: sets the drain flag, closes the listeners, closes
    /// idle connections, and lets requests in flight finish (their answers
    /// carry `Connection: close`) for up to `timeout`; then closes whatever
    /// is left. Returns true when every connection finished in time.
    pub fn shutdown(self, timeout: Duration) -> bool {
        self.shared.draining.begin();
        let _stop_reaper = StopReaper(&self.shared);
        for acceptor in self.acceptors {
            // SAFETY: cancelling unwinds the accept coroutine at its blocking
            // accept, dropping (closing) its listener; it holds no locks.
            unsafe { acceptor.coroutine().cancel() };
            let _ = acceptor.join();
        }
        let deadline = Instant::now() + timeout;
        loop {
            self.shared.close_connections(false);
            if self.shared.open.load(Ordering::Acquire) == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.shared.close_connections(true);
        let grace = Instant::now() + Duration::from_secs(1);
        while self.shared.open.load(Ordering::Acquire) > 0 && Instant::now() < grace {
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

/// Stops the reaper when shutdown returns.
struct StopReaper<'a>(&'a Shared);

impl Drop for StopReaper<'_> {
    fn drop(&mut self) {
        self.0.stopped.store(true, Ordering::Release);
    }
}

/// Advances the coarse clock and ends waits past their deadline, every
/// tick, until the server stops or is gone.
fn reaper(shared: std::sync::Weak<Shared>) {
    loop {
        std::thread::sleep(REAPER_TICK);
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.stopped.load(Ordering::Acquire) {
            return;
        }
        let now = shared.epoch.elapsed().as_millis() as u64 + 1;
        shared.clock.store(now, Ordering::Release);
        shared.unix_second.store(
            crate::time::unix_micros_now().div_euclid(1_000_000),
            Ordering::Release,
        );
        let conns = match shared.conns.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        for slot in conns.values() {
            slot.reap_if_expired(now);
        }
    }
}

impl Shared {
    /// The coarse clock, in milliseconds.
    pub(crate) fn clock_ms(&self) -> u64 {
        self.clock.load(Ordering::Acquire)
    }

    pub(crate) fn unix_second(&self) -> i64 {
        self.unix_second.load(Ordering::Acquire)
    }

    /// Shuts the sockets of idle connections, or of all of them when `all`.
    fn close_connections(&self, all: bool) {
        let conns = match self.conns.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        for slot in conns.values() {
            if all {
                slot.mark_closing();
            } else if !slot.claim_idle() {
                continue;
            }
            // SAFETY: the descriptor is open: its entry is still registered.
            unsafe { libc::shutdown(slot.fd, libc::SHUT_RDWR) };
        }
    }

    fn register(&self, slot: Arc<ConnSlot>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut conns = match self.conns.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        conns.insert(id, slot);
        id
    }

    fn deregister(&self, id: u64) {
        let mut conns = match self.conns.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        conns.remove(&id);
    }
}

/// A connection's resources, released in a safe order whatever way the
/// coroutine ends: deregistered first, then the socket closed, then counted.
struct Connection {
    shared: Arc<Shared>,
    id: u64,
    slot: Arc<ConnSlot>,
    stream: Option<TcpStream>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.deregister(self.id);
        drop(self.stream.take());
        self.shared.open.fetch_sub(1, Ordering::AcqRel);
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>, worker: usize) {
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, most likely: back off instead of spinning.
                crate::log_error!("accept on worker {worker} failed: {e}");
                may::coroutine::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if shared.open.fetch_add(1, Ordering::AcqRel) >= shared.limits.max_connections {
            shared.open.fetch_sub(1, Ordering::AcqRel);
            refuse_busy(&stream, &shared);
            continue;
        }
        let slot = Arc::new(ConnSlot::new(stream.as_raw_fd()));
        let id = shared.register(slot.clone());
        let mut connection = Connection {
            shared: shared.clone(),
            id,
            slot,
            stream: Some(stream),
        };
        // The worker that polls this descriptor (see `Server::start`).
        let builder = Builder::new().id(connection.slot.fd as usize);
        let spawned = go!(builder, move || {
            let Connection {
                ref shared,
                ref slot,
                ref mut stream,
                ..
            } = connection;
            if let Some(stream) = stream.as_mut() {
                conn::serve(stream, shared, slot);
            }
        });
        if let Err(e) = spawned {
            crate::log_error!("could not start a connection coroutine: {e}");
        }
    }
}

/// Over the connection cap: one `503` written without blocking, then close.
fn refuse_busy(stream: &TcpStream, shared: &Shared) {
    let mut out = Vec::with_capacity(256);
    let mut extra = Vec::new();
    let mut date = [0u8; HTTP_DATE_LEN];
    write_http_date(&Civil::now(), &mut date);
    let mut id = [0u8; 32];
    shared.ids.next(&mut IdBlock::default(), &mut id);
    let mut res = Response::new(&mut out, &mut extra);
    res.error(503, "unavailable", "too many open connections", None);
    let _ = res.header("Retry-After", "1");
    res.finish(&ResponseMeta {
        date: &date,
        request_id: &id,
        keep_alive: false,
        minor_version: 1,
        head_only: false,
    });
    let _ = stream.inner().write(&out);
}
