//! The client's errors. A server error keeps its SQLSTATE, constraint and
//! column, so that callers can tell a foreign-key violation on one column
//! from a bad byte in another; connection-level failures are told apart from
//! statement failures, so that callers can answer "try again" for the first.

use std::fmt;
use std::io;

/// An `ErrorResponse` from the server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DbError {
    pub severity: String,
    /// SQLSTATE, such as `23503` (foreign key violation).
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    pub table: Option<String>,
    pub column: Option<String>,
    pub constraint: Option<String>,
}

#[derive(Debug)]
pub enum Error {
    /// The connection settings could not be read. Never holds the password.
    Config(String),
    /// The server could not be reached, or the connection broke.
    Io(io::Error),
    /// Connecting did not finish within the connect timeout.
    ConnectTimeout,
    /// A TLS failure: handshake, certificate, or a server that refuses TLS
    /// when the `sslmode` requires it.
    Tls(String),
    /// Authentication failed or the method is not supported.
    Auth(String),
    /// The server answered with an error.
    Db(Box<DbError>),
    /// The server said something the protocol does not allow.
    Protocol(String),
    /// The connection is closed (it broke earlier, or was retired).
    Closed,
    /// No connection could be had: the database is down or unreachable, and
    /// the pool is backing off before trying again.
    Unavailable(String),
    /// A value could not be encoded or a column could not be decoded as asked.
    Type(String),
}

impl Error {
    /// The SQLSTATE, for a server error.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Db(e) => Some(&e.code),
            _ => None,
        }
    }

    pub fn db(&self) -> Option<&DbError> {
        match self {
            Error::Db(e) => Some(e),
            _ => None,
        }
    }

    /// True when the failure is the connection's or the server's
    /// availability, not the statement's: the caller may retry later.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Io(_)
            | Error::ConnectTimeout
            | Error::Closed
            | Error::Unavailable(_)
            | Error::Tls(_) => true,
            // Class 08 connection exceptions, 57P01..57P03 admin shutdown,
            // crash shutdown, cannot connect now; 53300 too many connections.
            Error::Db(e) => {
                e.code.starts_with("08")
                    || matches!(e.code.as_str(), "57P01" | "57P02" | "57P03" | "53300")
            }
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(m) => write!(f, "invalid database settings: {m}"),
            Error::Io(e) => write!(f, "database connection: {e}"),
            Error::ConnectTimeout => f.write_str("database connection: connect timeout"),
            Error::Tls(m) => write!(f, "database TLS: {m}"),
            Error::Auth(m) => write!(f, "database authentication: {m}"),
            Error::Db(e) => {
                write!(f, "database error {}: {}", e.code, e.message)?;
                if let Some(d) = &e.detail {
                    write!(f, " ({d})")?;
                }
                if let Some(h) = &e.hint {
                    write!(f, "; hint: {h}")?;
                }
                Ok(())
            }
            Error::Protocol(m) => write!(f, "database protocol: {m}"),
            Error::Closed => f.write_str("database connection closed"),
            Error::Unavailable(m) => write!(f, "database unavailable: {m}"),
            Error::Type(m) => write!(f, "database value: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Reads the fields of an `ErrorResponse` body.
pub(crate) fn db_error(fields: &mut postgres_protocol::message::backend::ErrorFields<'_>) -> Error {
    use fallible_iterator::FallibleIterator;
    let mut e = DbError::default();
    while let Ok(Some(field)) = fields.next() {
        let v = String::from_utf8_lossy(field.value_bytes()).into_owned();
        match field.type_() {
            b'V' => e.severity = v,
            b'S' if e.severity.is_empty() => e.severity = v,
            b'C' => e.code = v,
            b'M' => e.message = v,
            b'D' => e.detail = Some(v),
            b'H' => e.hint = Some(v),
            b't' => e.table = Some(v),
            b'c' => e.column = Some(v),
            b'n' => e.constraint = Some(v),
            _ => {}
        }
    }
    Error::Db(Box::new(e))
}
