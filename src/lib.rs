//! message-service: ingests and serves chat messages over PostgreSQL.
//!
//! Layers point one way: `main` → `api` → `http`. `http` is a general
//! HTTP/1.1 server core; `api` is the service's routes and rules.

pub mod api;
pub mod config;
pub mod http;
pub mod logging;
pub mod pg;
pub mod signals;
pub mod time;
