//! message-service: ingests and serves chat messages over PostgreSQL.
//!
//! Layers point one way: `main` → `api` → `store` → `pg`, and `api` →
//! `http`. `http` is a general HTTP/1.1 server core and `pg` a general
//! PostgreSQL client; `api` is the service's routes and rules, `store` its
//! SQL. `api` never sees `pg`: the store turns database errors into its own.

pub mod api;
pub mod config;
pub mod devdb;
pub mod http;
pub mod logging;
pub mod pg;
pub mod signals;
pub mod store;
pub mod time;
