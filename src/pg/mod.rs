//! A coroutine-native PostgreSQL client on `may` and `postgres-protocol`.
//!
//! It exists because `may_postgres` is not on the registry and a blocking
//! driver would stall a whole worker thread. Its ideas are kept: a few
//! connections shared by many coroutines, queries pipelined on them,
//! statements prepared once per connection (or unnamed, for transaction-mode
//! poolers). It knows nothing of HTTP or of messages.
//!
//! `config` reads connection settings, `connect` opens and authenticates one
//! connection over `transport` (plain or `tls`), `conn` pipelines queries on
//! it, `pool` shares a few of them, `types` encodes and decodes values, and
//! `error` says what went wrong.

pub mod config;
pub mod conn;
pub mod connect;
pub mod error;
pub mod pool;
pub mod tls;
pub mod transport;
pub mod types;

pub use config::{Host, PgConfig, SslMode};
pub use conn::{Connection, Statement, StatementMode};
pub use error::{DbError, Error, Result};
pub use pool::{Pool, PoolConfig, PoolStatus};
pub use types::{oid, Oid, Param, Row, Rows};
