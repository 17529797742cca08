//! The connection pool: up to `max_conns` shared, pipelined connections.
//!
//! A caller is handed the least-loaded live connection; a new connection is
//! opened only when every live one already has requests queued, so light
//! load uses few connections and heavy load spreads over all of them.
//! `min_conns` are opened in the background at start. Connections past
//! their lifetime or idle too long are retired, broken ones replaced. While
//! the database is down, callers fail within the connect timeout, then fast
//! during a short backoff; once it is back, the next attempt reconnects.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use rustls::ClientConfig;

use super::config::PgConfig;
use super::conn::{Connection, Statement, StatementMode};
use super::connect;
use super::error::{Error, Result};
use super::tls;
use super::types::{Param, Rows};

/// Queued requests on every live connection before another is opened.
pub const PIPELINE_DEPTH: usize = 4;
/// First and longest wait after a failed connect before trying again.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How often the pool retires, replaces and tops up connections.
pub const MAINTENANCE_INTERVAL: Duration = Duration::from_millis(500);
/// A query waiting longer than this for its answer breaks the connection.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub pg: PgConfig,
    pub max_conns: usize,
    pub min_conns: usize,
    pub max_lifetime: Duration,
    pub max_idle: Duration,
    pub connect_timeout: Duration,
    pub mode: StatementMode,
    pub query_timeout: Duration,
}

/// Counts for metrics and `/ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    pub open: usize,
    /// Open connections with requests in flight.
    pub busy: usize,
    pub connecting: usize,
}

#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: PoolConfig,
    tls: Option<Arc<ClientConfig>>,
    conns: RwLock<Vec<Arc<Connection>>>,
    connecting: AtomicUsize,
    backoff: Mutex<Backoff>,
}

#[derive(Default)]
struct Backoff {
    until: Option<Instant>,
    delay: Duration,
    last_error: String,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    match l.read() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    match l.write() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Pool {
    /// Creates the pool and starts its maintenance coroutine, which opens
    /// `min_conns` in the background: this returns at once.
    pub fn new(mut cfg: PoolConfig) -> Result<Pool> {
        cfg.max_conns = cfg.max_conns.max(1);
        cfg.min_conns = cfg.min_conns.min(cfg.max_conns);
        if let Some(t) = cfg.pg.connect_timeout {
            cfg.connect_timeout = cfg.connect_timeout.min(t);
        }
        let tls = tls::client_config(&cfg.pg)?;
        let inner = Arc::new(Inner {
            cfg,
            tls,
            conns: RwLock::new(Vec::new()),
            connecting: AtomicUsize::new(0),
            backoff: Mutex::new(Backoff::default()),
        });
        let weak = Arc::downgrade(&inner);
        may::go!(
            may::coroutine::Builder::new().name("pg-pool".into()),
            move || maintain(weak)
        )
        .map_err(Error::Io)?;
        Ok(Pool { inner })
    }

    /// A connection to send queries on (shared with other callers).
    pub fn get(&self) -> Result<Arc<Connection>> {
        let deadline = Instant::now() + self.inner.cfg.connect_timeout;
        loop {
            let best = self.inner.least_loaded();
            if let Some(c) = best.as_ref().filter(|c| c.in_flight() < PIPELINE_DEPTH) {
                return Ok(c.clone());
            }
            if let Some(wait) = self.inner.backing_off() {
                return match best {
                    Some(c) => Ok(c),
                    None => Err(Error::Unavailable(wait)),
                };
            }
            if self.inner.reserve() {
                // If others still work, use one of them.
                return self.inner.open().or_else(|e| best.ok_or(e));
            }
            if let Some(c) = best {
                return Ok(c);
            }
            // All slots are being connected by others: wait for one.
            if Instant::now() >= deadline {
                return Err(Error::Unavailable(
                    "no connection became ready in time".into(),
                ));
            }
            may::coroutine::sleep(Duration::from_millis(2));
        }
    }

    /// Runs one statement on a pooled connection.
    pub fn query(&self, stmt: &Statement, params: &[Param<'_>]) -> Result<Rows> {
        self.get()?.query(stmt, params)
    }

    /// Runs statements as one transaction (see [`Connection::batch`]).
    pub fn batch(&self, items: &[(&Statement, &[Param<'_>])]) -> Result<Vec<Rows>> {
        self.get()?.batch(items)
    }

    /// A round trip to the server, failing after `timeout`.
    pub fn ping(&self, timeout: Duration) -> Result<()> {
        static PING: Statement = Statement {
            sql: "SELECT 1",
            param_types: &[],
        };
        let (tx, rx) = may::sync::mpsc::channel();
        let pool = self.clone();
        may::go!(move || {
            let _ = tx.send(pool.query(&PING, &[]).map(|_| ()));
        });
        match rx.recv_timeout(timeout) {
            Ok(result) => result,
            Err(_) => Err(Error::Unavailable(format!("no answer within {timeout:?}"))),
        }
    }

    pub fn status(&self) -> PoolStatus {
        let conns = read(&self.inner.conns);
        let live = conns.iter().filter(|c| !c.is_broken());
        let (mut open, mut busy) = (0, 0);
        for c in live {
            open += 1;
            if c.in_flight() > 0 {
                busy += 1;
            }
        }
        PoolStatus {
            open,
            busy,
            connecting: self.inner.connecting.load(Ordering::Acquire),
        }
    }

    /// Closes every connection (they are reopened on demand).
    pub fn close_all(&self) {
        let conns = std::mem::take(&mut *write(&self.inner.conns));
        for c in conns {
            c.close();
        }
    }
}

impl Inner {
    fn least_loaded(&self) -> Option<Arc<Connection>> {
        let conns = read(&self.conns);
        let mut best: Option<&Arc<Connection>> = None;
        for c in conns.iter() {
            if c.is_broken() {
                continue;
            }
            let load = c.in_flight();
            if load == 0 {
                return Some(c.clone());
            }
            if best.is_none_or(|b| load < b.in_flight()) {
                best = Some(c);
            }
        }
        best.cloned()
    }

    /// Why callers must wait, while backing off after a failed connect.
    fn backing_off(&self) -> Option<String> {
        let b = lock(&self.backoff);
        match b.until {
            Some(until) if Instant::now() < until => Some(format!(
                "cannot connect to the database ({}); retrying shortly",
                b.last_error
            )),
            _ => None,
        }
    }

    /// Claims room for one more connection.
    fn reserve(&self) -> bool {
        let live = read(&self.conns).iter().filter(|c| !c.is_broken()).count();
        let mut connecting = self.connecting.load(Ordering::Acquire);
        loop {
            if live + connecting >= self.cfg.max_conns {
                return false;
            }
            match self.connecting.compare_exchange(
                connecting,
                connecting + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(now) => connecting = now,
            }
        }
    }

    /// Opens a connection into the room `reserve` claimed.
    fn open(&self) -> Result<Arc<Connection>> {
        /// Gives the room back however this returns.
        struct Reserved<'a>(&'a AtomicUsize);
        impl Drop for Reserved<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let _reserved = Reserved(&self.connecting);
        let result = connect::connect(&self.cfg.pg, self.tls.as_ref(), self.cfg.connect_timeout)
            .and_then(|est| Connection::new(est, self.cfg.mode, self.cfg.query_timeout));
        match result {
            Ok(conn) => {
                let conn = Arc::new(conn);
                let mut conns = write(&self.conns);
                conns.retain(|c| !c.is_broken());
                conns.push(conn.clone());
                *lock(&self.backoff) = Backoff::default();
                Ok(conn)
            }
            Err(e) => {
                let mut b = lock(&self.backoff);
                b.delay = (b.delay * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
                b.until = Some(Instant::now() + b.delay);
                b.last_error = e.to_string();
                drop(b);
                crate::log_warn!("database connect to {} failed: {e}", self.cfg.pg.target());
                Err(e)
            }
        }
    }

    /// Drops broken connections and retires old or idle ones.
    fn retire(&self) {
        let mut retired = Vec::new();
        {
            let mut conns = write(&self.conns);
            let mut live = conns.iter().filter(|c| !c.is_broken()).count();
            conns.retain(|c| {
                if c.is_broken() {
                    return false;
                }
                let quiet = c.in_flight() == 0;
                let old = c.age() >= self.cfg.max_lifetime;
                let idle = c.idle_for() >= self.cfg.max_idle && live > self.cfg.min_conns;
                if quiet && (old || idle) {
                    live -= 1;
                    retired.push(c.clone());
                    return false;
                }
                true
            });
        }
        for c in retired {
            c.close();
        }
    }
}

fn maintain(pool: Weak<Inner>) {
    loop {
        may::coroutine::sleep(MAINTENANCE_INTERVAL);
        let Some(inner) = pool.upgrade() else {
            return;
        };
        inner.retire();
        loop {
            let live = read(&inner.conns).iter().filter(|c| !c.is_broken()).count();
            let pending = inner.connecting.load(Ordering::Acquire);
            if live + pending >= inner.cfg.min_conns
                || inner.backing_off().is_some()
                || !inner.reserve()
                || inner.open().is_err()
            {
                break;
            }
        }
    }
}
