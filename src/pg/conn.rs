//! One connection shared by many coroutines, with their queries pipelined.
//!
//! A caller writes its whole request (Parse/Bind/Execute… then Sync) under
//! the write lock and queues a slot for the answer in the same step, so the
//! queue order is the wire order. It then takes the read lock; whoever holds
//! it reads answers for everyone, filling the slots in order, until its own
//! is complete. An error answers only the statement group it belongs to
//! (the server skips to that group's Sync), and the connection goes on. A
//! broken connection fails every queued caller at once, and never again
//! takes a query.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use postgres_protocol::Oid;
use smallvec::SmallVec;

use super::connect::Established;
use super::error::{db_error, Error, Result};
use super::transport::{self, ReadHalf, WriteHalf};
use super::types::{Param, Rows};

/// How statements are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementMode {
    /// Named statements, parsed once per connection.
    Prepare,
    /// The unnamed statement, parsed with every use: works through
    /// PgBouncer and Supavisor in transaction mode.
    Describe,
}

/// A statement known at compile time.
#[derive(Debug)]
pub struct Statement {
    pub sql: &'static str,
    /// Parameter type OIDs (0 lets the server infer one).
    pub param_types: &'static [Oid],
}

/// The hint for errors that mean named statements do not survive between
/// transactions: a transaction-mode pooler sits in between.
const POOLER_HINT: &str =
    "named prepared statements do not work through a transaction-mode pooler \
     (PgBouncer, Supavisor on port 6543): set DB_STATEMENT_CACHE=describe";

pub struct Connection {
    writer: may::sync::Mutex<Writer>,
    reader: may::sync::Mutex<Reader>,
    queue: StdMutex<VecDeque<Arc<Pending>>>,
    broken: AtomicBool,
    in_flight: AtomicUsize,
    mode: StatementMode,
    created: Instant,
    /// Microseconds after `created` of the last use.
    last_used: AtomicU64,
    process_id: i32,
}

struct Writer {
    half: WriteHalf,
    buf: BytesMut,
    /// Statement SQL (by address) to its prepared name.
    prepared: HashMap<usize, String>,
    next_name: u32,
}

struct Reader {
    half: ReadHalf,
    buf: BytesMut,
}

/// The answer to one Sync group, filled in by whichever caller is reading.
#[derive(Default)]
struct Pending {
    state: StdMutex<PendingState>,
}

#[derive(Default)]
struct PendingState {
    results: Vec<Rows>,
    current: Rows,
    error: Option<Error>,
    done: bool,
    /// Statements this group parsed for the first time.
    parsed: SmallVec<[usize; 2]>,
}

fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn co_lock<T>(m: &may::sync::Mutex<T>) -> may::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Connection {
    /// Takes over an established connection. Reads waiting longer than
    /// `read_timeout` for an answer break the connection.
    pub fn new(
        est: Established,
        mode: StatementMode,
        read_timeout: Duration,
    ) -> Result<Connection> {
        let (read_half, write_half) = transport::split(est.socket, est.tls)?;
        read_half.set_timeout(Some(read_timeout))?;
        Ok(Connection {
            writer: may::sync::Mutex::new(Writer {
                half: write_half,
                buf: BytesMut::with_capacity(4096),
                prepared: HashMap::new(),
                next_name: 0,
            }),
            reader: may::sync::Mutex::new(Reader {
                half: read_half,
                buf: est.leftover,
            }),
            queue: StdMutex::new(VecDeque::new()),
            broken: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            mode,
            created: Instant::now(),
            last_used: AtomicU64::new(0),
            process_id: est.process_id,
        })
    }

    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    /// Requests written and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    pub fn age(&self) -> Duration {
        self.created.elapsed()
    }

    pub fn idle_for(&self) -> Duration {
        let last = Duration::from_micros(self.last_used.load(Ordering::Relaxed));
        self.created.elapsed().saturating_sub(last)
    }

    /// Runs one statement.
    pub fn query(&self, stmt: &Statement, params: &[Param<'_>]) -> Result<Rows> {
        let mut results = self.batch(&[(stmt, params)])?;
        results
            .pop()
            .ok_or_else(|| Error::Protocol("no result for the statement".into()))
    }

    /// Runs statements as one group before a single Sync. PostgreSQL runs
    /// such a group as one implicit transaction: all of it commits at the
    /// Sync, or none of it does; no other caller's statements interleave.
    pub fn batch(&self, items: &[(&Statement, &[Param<'_>])]) -> Result<Vec<Rows>> {
        let pending = self.submit(items)?;
        let outcome = self.wait(&pending);
        self.last_used
            .store(self.created.elapsed().as_micros() as u64, Ordering::Relaxed);
        outcome
    }

    /// Encodes and writes a group, queueing its slot in wire order.
    fn submit(&self, items: &[(&Statement, &[Param<'_>])]) -> Result<Arc<Pending>> {
        let mut w = co_lock(&self.writer);
        if self.is_broken() {
            return Err(Error::Closed);
        }
        let Writer {
            half,
            buf,
            prepared,
            next_name,
        } = &mut *w;
        buf.clear();
        let mut parsed: SmallVec<[usize; 2]> = SmallVec::new();
        for (stmt, params) in items {
            let key = stmt.sql.as_ptr() as usize;
            let name: &str = match self.mode {
                StatementMode::Describe => {
                    frontend::parse("", stmt.sql, stmt.param_types.iter().copied(), buf)?;
                    ""
                }
                StatementMode::Prepare => {
                    if let std::collections::hash_map::Entry::Vacant(slot) = prepared.entry(key) {
                        let name = format!("ms{}", *next_name);
                        *next_name += 1;
                        frontend::parse(&name, stmt.sql, stmt.param_types.iter().copied(), buf)?;
                        slot.insert(name);
                        parsed.push(key);
                    }
                    prepared.get(&key).map(String::as_str).unwrap_or("")
                }
            };
            let bound = frontend::bind(
                "",
                name,
                [1i16],
                params.iter(),
                |p, buf| p.encode(buf),
                [1i16],
                buf,
            );
            if let Err(e) = bound {
                // Nothing was sent: forget what this call parsed.
                for key in &parsed {
                    prepared.remove(key);
                }
                return Err(match e {
                    frontend::BindError::Conversion(e) => Error::Type(e.to_string()),
                    frontend::BindError::Serialization(e) => Error::Type(e.to_string()),
                });
            }
            frontend::execute("", 0, buf)?;
        }
        frontend::sync(buf);

        let pending = Arc::new(Pending::default());
        lock(&pending.state).parsed = parsed;
        lock(&self.queue).push_back(pending.clone());
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        if let Err(e) = half.write_all(buf) {
            drop(w);
            self.fail_all(&e);
        }
        Ok(pending)
    }

    /// Reads answers (for every queued caller) until `mine` is complete.
    fn wait(&self, mine: &Arc<Pending>) -> Result<Vec<Rows>> {
        {
            let mut r = co_lock(&self.reader);
            while !lock(&mine.state).done {
                if let Err(e) = self.read_one(&mut r) {
                    drop(r);
                    self.fail_all(&e);
                    break;
                }
            }
        }
        let mut st = lock(&mine.state);
        let parsed = std::mem::take(&mut st.parsed);
        match st.error.take() {
            None => Ok(std::mem::take(&mut st.results)),
            Some(e) => {
                drop(st);
                // A failed group may have left a name unprepared on the server.
                let stale = self.mode == StatementMode::Prepare
                    && matches!(e.code(), Some("26000" | "42P05"));
                if !parsed.is_empty() || stale {
                    let mut w = co_lock(&self.writer);
                    if stale {
                        w.prepared.clear();
                    } else {
                        for key in &parsed {
                            w.prepared.remove(key);
                        }
                    }
                }
                Err(match e {
                    Error::Db(mut db) if stale => {
                        db.hint = Some(POOLER_HINT.to_string());
                        Error::Db(db)
                    }
                    other => other,
                })
            }
        }
    }

    /// Reads one message and files it with the oldest waiting group.
    fn read_one(&self, r: &mut Reader) -> std::io::Result<()> {
        let message = loop {
            match Message::parse(&mut r.buf)? {
                Some(m) => break m,
                None => {
                    if r.half.read_into(&mut r.buf)? == 0 {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the server closed the connection",
                        ));
                    }
                }
            }
        };
        let front = lock(&self.queue).front().cloned();
        let Some(front) = front else {
            return match message {
                Message::NoticeResponse(_)
                | Message::ParameterStatus(_)
                | Message::NotificationResponse(_) => Ok(()),
                Message::ErrorResponse(body) => {
                    let e = db_error(&mut body.fields());
                    Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        e.to_string(),
                    ))
                }
                _ => Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "unsolicited message from the server",
                )),
            };
        };
        let mut st = lock(&front.state);
        match message {
            Message::DataRow(row) => st.current.rows.push(row),
            Message::CommandComplete(body) => {
                let tag = body.tag().unwrap_or("");
                st.current.affected = tag
                    .rsplit(' ')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                let done = std::mem::take(&mut st.current);
                st.results.push(done);
            }
            Message::EmptyQueryResponse => {
                let done = std::mem::take(&mut st.current);
                st.results.push(done);
            }
            Message::ErrorResponse(body) => {
                if st.error.is_none() {
                    st.error = Some(db_error(&mut body.fields()));
                }
            }
            Message::ReadyForQuery(_) => {
                st.done = true;
                drop(st);
                lock(&self.queue).pop_front();
                self.in_flight.fetch_sub(1, Ordering::AcqRel);
            }
            Message::ParseComplete
            | Message::BindComplete
            | Message::NoData
            | Message::ParameterDescription(_)
            | Message::RowDescription(_)
            | Message::NoticeResponse(_)
            | Message::ParameterStatus(_)
            | Message::NotificationResponse(_)
            | Message::CloseComplete
            | Message::PortalSuspended => {}
            _ => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "unexpected message from the server",
                ))
            }
        }
        Ok(())
    }

    /// Marks the connection broken and fails every queued group.
    fn fail_all(&self, cause: &std::io::Error) {
        if !self.broken.swap(true, Ordering::AcqRel) {
            crate::log_debug!(
                "database connection (pid {}) broke: {cause}",
                self.process_id
            );
        }
        // Wake a reader blocked on the socket, and refuse further writes.
        if let Ok(w) = self.writer.try_lock() {
            w.half.shutdown();
        }
        if let Ok(r) = self.reader.try_lock() {
            r.half.shutdown();
        }
        let drained: Vec<Arc<Pending>> = lock(&self.queue).drain(..).collect();
        for p in drained {
            let mut st = lock(&p.state);
            if !st.done {
                st.done = true;
                st.error = Some(Error::Io(std::io::Error::new(
                    cause.kind(),
                    cause.to_string(),
                )));
                self.in_flight.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    /// Closes the connection: queued callers get an error.
    pub fn close(&self) {
        if let Ok(mut w) = self.writer.try_lock() {
            let mut buf = BytesMut::new();
            frontend::terminate(&mut buf);
            let _ = w.half.write_all(&buf);
        }
        let e = std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "connection closed by the pool",
        );
        self.fail_all(&e);
    }
}
